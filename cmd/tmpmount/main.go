// Command tmpmount mounts a temporary FUSE filesystem whose files live in
// RAM and roll over to disk past a per-file size.
package main

import (
	"errors"
	"flag"
	"fmt"
	"io"
	"log"
	"os"
	"os/exec"
	"os/signal"
	"runtime/debug"
	"syscall"

	"github.com/hanwen/go-fuse/v2/fuse"
	"golang.org/x/sys/unix"

	"github.com/tmpmount/tmpmount/fsnode"
	"github.com/tmpmount/tmpmount/policy"
	"github.com/tmpmount/tmpmount/spool"
)

// Exit codes.
const (
	exitOK      = 0
	exitFailure = 1 // a failure while serving
	exitUsage   = 2 // bad command line or setup: nothing was mounted
)

func main() {
	os.Exit(run(os.Args[1:], os.Stdout, os.Stderr))
}

func run(args []string, stdout, stderr io.Writer) int {
	// Logging to a pipe whose reader went away must not kill the daemon
	// (and leave its mount dead): the write fails instead.
	signal.Ignore(syscall.SIGPIPE)
	logger := log.New(stderr, "tmpmount: ", 0)
	o, err := parseArgs(args, stdout)
	if errors.Is(err, flag.ErrHelp) {
		return exitOK
	}
	if err != nil {
		logger.Print(err)
		return exitUsage
	}
	if o.version {
		fmt.Fprintln(stdout, versionString())
		return exitOK
	}
	if o.inodes < 0 {
		logger.Printf("invalid --inodes %d: give a number of nodes, or 0 for no limit", o.inodes)
		return exitUsage
	}

	mountpoint, err := checkMountpoint(o.mountpoint, logger)
	if err != nil {
		logger.Print(err)
		return exitUsage
	}
	if err := checkFUSE(); err != nil {
		logger.Print(err)
		return exitUsage
	}
	parent, err := spillParent(o.spillDir, mountpoint)
	if err != nil {
		logger.Print(err)
		return exitUsage
	}
	resolver := policy.Resolver{Rules: o.rules.rules, Default: o.deleteDef.p}
	keepDir := ""
	switch {
	case o.keepDir != "":
		if keepDir, err = checkKeepDir(o.keepDir, mountpoint); err != nil {
			logger.Print(err)
			return exitUsage
		}
	case resolver.Uses(policy.Keep):
		logger.Print("a keep policy is in force but there is no --keep-dir to save kept files to: give one")
		return exitUsage
	}
	var events *os.File
	if o.events != "" {
		if events, err = openEvents(o.events, mountpoint); err != nil {
			logger.Print(err)
			return exitUsage
		}
		defer events.Close()
	}

	// Take SIGINT and SIGTERM from before the mount exists: one that
	// arrived while mounting would otherwise kill the daemon with its mount
	// half made. It is acted on once the mount is up.
	signals := make(chan os.Signal, 1)
	signal.Notify(signals, syscall.SIGINT, syscall.SIGTERM)
	defer signal.Stop(signals)

	cfg := fsnode.Config{
		Spool: spool.Config{
			SpillParent: parent,
			MaxSize:     o.maxSize.bytes,
			MemLimit:    o.memLimit.bytes,
			SizeLimit:   o.size.bytes,
		},
		MaxInodes: o.inodes,
		Mode:      o.mode,
		UID:       o.uid,
		GID:       o.gid,
		Resolver:  resolver,
		KeepDir:   keepDir,
		Logger:    logger,
	}
	if events != nil {
		cfg.Events = events
	}
	root, err := fsnode.New(cfg)
	if err != nil {
		logger.Printf("%v: choose another with --spill-dir", err)
		return exitUsage
	}
	store := root.Store()
	defer func() {
		if err := store.Close(); err != nil {
			logger.Print(err)
		}
	}()
	server, err := root.Mount(mountpoint, fsnode.MountConfig{AllowOther: o.allowOther, Debug: o.debug, NoPassthrough: o.noPassthrough})
	if err != nil {
		logger.Printf("%v", err)
		root.Shutdown()
		return exitUsage
	}
	logger.Printf("serving %s (max-size %s, mem-limit %s, size %s, delete %s, spill dir %s, passthrough %s)",
		mountpoint, describeMaxSize(o.maxSize.bytes), formatSize(o.memLimit.bytes), describeLimit(o.size.bytes),
		o.deleteDef.p, store.Dir(), root.Passthrough())

	go func() {
		for sig := range signals {
			logger.Printf("%v: unmounting %s", sig, mountpoint)
			unmount(server, mountpoint, logger)
		}
	}()
	server.Wait()
	saved, failed := root.Shutdown()
	if saved > 0 || failed > 0 {
		logger.Printf("saved %d keep file(s) to %s", saved, keepDir)
	}
	logger.Printf("unmounted %s", mountpoint)
	if failed > 0 {
		logger.Printf("%d keep file(s) could not be saved (see above)", failed)
		return exitFailure
	}
	return exitOK
}

// unmount unmounts, and if the mount is busy, detaches it lazily: the
// mount point is free at once, and the daemon serves the processes still
// inside until the last one leaves.
func unmount(server *fuse.Server, mountpoint string, logger *log.Logger) {
	err := server.Unmount()
	if err == nil {
		return
	}
	logger.Printf("%s is busy (%v); detaching it lazily: it goes away when the last process using it leaves", mountpoint, err)
	if os.Geteuid() == 0 {
		err = unix.Unmount(mountpoint, unix.MNT_DETACH)
	} else if bin, lookErr := fusermountPath(); lookErr != nil {
		err = lookErr
	} else {
		err = exec.Command(bin, "-u", "-z", mountpoint).Run()
	}
	if err != nil {
		logger.Printf("lazy unmount of %s failed: %v", mountpoint, err)
	}
}

func describeLimit(n int64) string {
	if n == 0 {
		return "unlimited"
	}
	return formatSize(n)
}

func describeMaxSize(n int64) string {
	if n == 0 {
		return "0, never by size"
	}
	return formatSize(n)
}

// version is set at link time (-ldflags "-X main.version=...") for
// releases; otherwise the module version is used.
var version = ""

func versionString() string {
	v := version
	if v == "" {
		v = "(devel)"
		if bi, ok := debug.ReadBuildInfo(); ok && bi.Main.Version != "" {
			v = bi.Main.Version
		}
	}
	fuseVersion := ""
	if bi, ok := debug.ReadBuildInfo(); ok {
		for _, dep := range bi.Deps {
			if dep.Path == "github.com/hanwen/go-fuse/v2" {
				fuseVersion = ", go-fuse " + dep.Version
			}
		}
	}
	return fmt.Sprintf("tmpmount %s%s", v, fuseVersion)
}

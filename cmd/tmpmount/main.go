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
	"os/signal"
	"runtime/debug"
	"syscall"
	"time"
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

// run dispatches: tmpmount run, tmpmount stat, or a mount. (A mount point
// named "run" or "stat" is given as ./run.)
func run(args []string, stdout, stderr io.Writer) int {
	// Logging to a pipe whose reader went away must not kill the daemon
	// (and leave its mount dead): the write fails instead.
	signal.Ignore(syscall.SIGPIPE)
	logger := log.New(stderr, "tmpmount: ", 0)
	if len(args) > 0 {
		switch args[0] {
		case "run":
			return runCommand(args[1:], stdout, stderr, logger)
		case "stat":
			return statCommand(args[1:], stdout, logger)
		}
	}
	if isRemount(args) {
		return remountCommand(args, logger)
	}
	return mountCommand(args, stdout, stderr, logger)
}

// afterParse ends a command whose flags asked for help or the version, or
// were bad (done is true, with the exit status).
func afterParse(err error, o *options, stdout io.Writer, logger *log.Logger) (code int, done bool) {
	switch {
	case errors.Is(err, flag.ErrHelp):
		return exitOK, true
	case err != nil:
		logger.Print(err)
		return exitUsage, true
	case o.version:
		fmt.Fprintln(stdout, versionString())
		return exitOK, true
	}
	return 0, false
}

// mountCommand mounts and serves until the mount is gone.
func mountCommand(args []string, stdout, stderr io.Writer, logger *log.Logger) int {
	o, err := parseArgs(args, stdout)
	if code, done := afterParse(err, o, stdout, logger); done {
		return code
	}
	if o.viaMount && !o.foreground && !isDaemonChild() {
		// Started by mount(8): go to the background once mounted.
		return daemonize(args, logger)
	}
	switch {
	case o.logFile != "":
		f, err := openOutput("log file", o.logFile, syscall.O_APPEND)
		if err != nil {
			logger.Print(err)
			notifyParent(err)
			return exitUsage
		}
		defer f.Close()
		logger.SetOutput(f)
	case isDaemonChild():
		logger.SetOutput(backgroundLog())
		logger.SetPrefix("")
	}

	// Take SIGINT, SIGTERM and SIGHUP (a closed terminal) from before the mount exists: one that
	// arrived while mounting would otherwise kill the daemon with its mount
	// half made. It is acted on once the mount is up.
	signals := make(chan os.Signal, 1)
	signal.Notify(signals, syscall.SIGINT, syscall.SIGTERM, syscall.SIGHUP)
	defer signal.Stop(signals)

	if o.profileDir != "" {
		stop, err := startProfiles(o.profileDir)
		if err != nil {
			logger.Print(err)
			notifyParent(err)
			return exitUsage
		}
		defer stop(logger)
	}

	mountpoint, err := checkMountpoint(o.mountpoint, logger)
	if err != nil {
		logger.Print(err)
		notifyParent(err)
		return exitUsage
	}
	s, err := startSession(o, mountpoint, logger)
	if err != nil {
		logger.Print(err)
		notifyParent(err)
		return exitUsage
	}
	notifyParent(nil)
	go s.serveSignals(signals)
	return s.finish(progressPrinter(logger))
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

// progressPrinter reports the saving of keep files when it takes longer
// than a second: bytes done of the total, about once a second.
func progressPrinter(logger *log.Logger) func(done, total int64) {
	start := time.Now()
	var last time.Time
	return func(done, total int64) {
		now := time.Now()
		if now.Sub(start) < time.Second || (now.Sub(last) < time.Second && done < total) {
			return
		}
		last = now
		logger.Printf("saving keep files: %s of %s", formatSize(done), formatSize(total))
	}
}

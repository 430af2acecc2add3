package main

import (
	"errors"
	"fmt"
	"log"
	"os"
	"os/exec"
	"strings"

	"github.com/hanwen/go-fuse/v2/fuse"
	"golang.org/x/sys/unix"

	"github.com/tmpmount/tmpmount/fsnode"
	"github.com/tmpmount/tmpmount/policy"
	"github.com/tmpmount/tmpmount/spool"
)

// session is one mount being served: what tmpmount MOUNTPOINT and
// tmpmount run share.
type session struct {
	o          *options
	mountpoint string
	keepDir    string
	logger     *log.Logger
	root       *fsnode.Root
	server     *fuse.Server
	events     *os.File
}

// startSession checks everything the options and the machine say, then
// mounts. An error is one line for the user: nothing is mounted then.
func startSession(o *options, mountpoint string, logger *log.Logger) (*session, error) {
	if o.inodes < 0 {
		return nil, fmt.Errorf("invalid --inodes %d: give a number of nodes, or 0 for no limit", o.inodes)
	}
	if err := checkFUSE(); err != nil {
		return nil, err
	}
	parent, err := spillParent(o.spillDir, mountpoint)
	if err != nil {
		return nil, err
	}
	s := &session{o: o, mountpoint: mountpoint, logger: logger}
	resolver := policy.Resolver{Rules: o.rules.rules, Default: o.deleteDef.p}
	switch {
	case o.keepDir != "":
		if s.keepDir, err = checkKeepDir(o.keepDir, mountpoint); err != nil {
			return nil, err
		}
	case resolver.Uses(policy.Keep):
		return nil, errors.New("a keep policy is in force but there is no --keep-dir to save kept files to: give one")
	}
	if o.events != "" {
		if s.events, err = openEvents(o.events, mountpoint); err != nil {
			return nil, err
		}
	}
	cfg := fsnode.Config{
		Spool: spool.Config{
			SpillParent: parent,
			MaxSize:     o.maxSize.bytes,
			MemLimit:    o.memLimit.bytes,
			SizeLimit:   o.size.bytes,
			// Without --size, a runaway job must not fill the disk.
			SpillReserve: spool.DefaultSpillReserve,
		},
		MaxInodes: o.inodes,
		Mode:      o.mode,
		UID:       o.uid,
		GID:       o.gid,
		Resolver:  resolver,
		KeepDir:   s.keepDir,
		Logger:    logger,
	}
	if s.events != nil {
		cfg.Events = s.events
	}
	if s.root, err = fsnode.New(cfg); err != nil {
		s.closeFiles()
		return nil, fmt.Errorf("%v: choose another with --spill-dir", err)
	}
	s.server, err = s.root.Mount(mountpoint, fsnode.MountConfig{
		AllowOther: o.allowOther, Debug: o.debug, NoPassthrough: o.noPassthrough,
		ReadOnly: o.readOnly, NoExec: o.noExec,
	})
	if err != nil {
		s.root.Shutdown(nil)
		s.closeFiles()
		return nil, explainMountError(err, o, mountpoint)
	}
	logger.Printf("serving %s (max-size %s, mem-limit %s, size %s, delete %s, spill dir %s, passthrough %s)",
		mountpoint, describeMaxSize(o.maxSize.bytes), formatSize(o.memLimit.bytes), describeSize(o.size.bytes, s.root.Store().SpillReserve()),
		o.deleteDef.p, s.root.Store().Dir(), s.root.Passthrough())
	return s, nil
}

// finish waits until the mount is gone (unmounted by whoever), then saves
// keep files and frees everything. It returns the exit status.
func (s *session) finish(progress func(done, total int64)) int {
	s.server.Wait()
	saved, failed := s.root.Shutdown(progress)
	if saved > 0 || failed > 0 {
		s.logger.Printf("saved %d keep file(s) to %s", saved, s.keepDir)
	}
	s.logger.Printf("unmounted %s", s.mountpoint)
	s.closeFiles()
	if failed > 0 {
		s.logger.Printf("%d keep file(s) could not be saved (see above)", failed)
		return exitFailure
	}
	return exitOK
}

func (s *session) closeFiles() {
	if s.root != nil {
		if err := s.root.Store().Close(); err != nil {
			s.logger.Print(err)
		}
	}
	if s.events != nil {
		s.events.Close()
	}
}

// unmount unmounts, and if the mount is busy, detaches it lazily: the
// mount point is free at once, and the daemon serves the processes still
// inside until the last one leaves.
func (s *session) unmount() {
	err := s.server.Unmount()
	if err == nil {
		return
	}
	s.logger.Printf("%s is busy (%s); detaching it lazily: it goes away when the last process using it leaves", s.mountpoint, oneLine(err))
	if err := lazyUnmount(s.mountpoint); err != nil {
		s.logger.Printf("lazy unmount of %s failed: %v", s.mountpoint, err)
	}
}

// oneLine puts an error (fusermount3's output, say) on one log line.
func oneLine(err error) string {
	return strings.Join(strings.Fields(err.Error()), " ")
}

func lazyUnmount(mountpoint string) error {
	if os.Geteuid() == 0 {
		return unix.Unmount(mountpoint, unix.MNT_DETACH)
	}
	bin, err := fusermountPath()
	if err != nil {
		return err
	}
	return exec.Command(bin, "-u", "-z", mountpoint).Run()
}

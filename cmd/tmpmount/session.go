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
	dev        uint64 // the mount's device number, once known
	detached   bool   // unmounted lazily: still served until the last user leaves
}

// startSession checks everything the options and the machine say, then
// mounts. An error is one line for the user: nothing is mounted then.
func startSession(o *options, mountpoint string, logger *log.Logger) (*session, error) {
	s, err := prepareSession(o, mountpoint, logger)
	if err != nil {
		return nil, err
	}
	if err := s.mount(0); err != nil {
		return nil, err
	}
	return s, nil
}

// prepareSession checks everything the options and the machine say and
// makes the (empty) tree, without mounting it yet.
func prepareSession(o *options, mountpoint string, logger *log.Logger) (*session, error) {
	if err := checkFUSE(); err != nil {
		return nil, err
	}
	parent, err := spillParent(o.spillDir, mountpoint, logger)
	if err != nil {
		return nil, err
	}
	adviseOnOptions(o, logger)
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
		Atime:     o.atimeSettings(),
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
	return s, nil
}

// mountConfig is what the mount takes from the options.
func (s *session) mountConfig() fsnode.MountConfig {
	o := s.o
	return fsnode.MountConfig{
		AllowOther: o.allowOther, Debug: o.debug, NoPassthrough: o.noPassthrough,
		ReadOnly: o.readOnly, NoExec: o.noExec, Dev: o.dev, Suid: o.suid, Source: o.source,
		NoACL:   o.noACL,
		Atime:   o.atimeSettings(),
		NoURing: o.noURing,
	}
}

// mount mounts the prepared tree and serves it: at the mount point, or,
// with fd not 0, on the /dev/fuse descriptor fd that another process has
// mounted (tmpmount run's command stage, in a mount namespace of its own).
// On error everything prepared is freed.
func (s *session) mount(fd int) error {
	mc := s.mountConfig()
	mc.FD = fd
	said, err := withFusermountOutput(func() (err error) {
		s.server, err = s.root.Mount(s.mountpoint, mc)
		return err
	})
	if err != nil {
		s.abandon()
		return explainMountError(err, said, s.mountpoint)
	}
	if said != "" {
		s.logger.Print(oneLineText(said))
	}
	if fd == 0 {
		var st unix.Stat_t
		if unix.Stat(s.mountpoint, &st) == nil {
			s.dev = st.Dev
		}
	}
	lowerOOMScore(s.logger)
	s.logger.Printf("serving %s (max-size %s, mem-limit %s, size %s, delete %s, spill dir %s, transport %s, passthrough %s)",
		s.mountpoint, describeMaxSize(s.o.maxSize.bytes), describeLimit(s.o.memLimit.bytes), describeSize(s.o.size.bytes, s.root.Store().SpillReserve()),
		s.o.deleteDef.p, s.root.Store().Dir(), s.root.Transport(), s.root.Passthrough())
	return nil
}

// abandon frees a prepared session that will not be served.
func (s *session) abandon() {
	s.root.Shutdown(nil)
	s.closeFiles()
}

// finish waits until the mount is gone (unmounted by whoever), then saves
// keep files and frees everything. It returns the exit status.
func (s *session) finish(progress func(done, total int64)) int {
	s.server.Wait()
	s.root.StopTransport()
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

// serveSignals acts on SIGINT, SIGTERM and SIGHUP to the daemon: the
// first unmounts; once the mount is detached, a later one says what the
// daemon waits for and what to do about it.
func (s *session) serveSignals(signals <-chan os.Signal) {
	for sig := range signals {
		if !s.detached {
			s.logger.Printf("%v: unmounting %s", sig, s.mountpoint)
			s.unmount()
			continue
		}
		users := usersOfDev(s.dev)
		if len(users) == 0 {
			s.logger.Printf("%v: %s is already detached; tmpmount ends, saving keep files, as soon as the kernel releases it", sig, s.mountpoint)
			continue
		}
		s.logger.Printf("%v: %s is already detached, and tmpmount serves it until the last process using it lets go: %d still do (%s); it then saves keep files and exits. To end sooner, end them: kill %s",
			sig, s.mountpoint, len(users), joinProcesses(users), pidList(users))
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
	users := usersOfDev(s.dev)
	if len(users) == 0 {
		s.logger.Printf("%s could not be unmounted: %s; detaching it lazily: it goes away, and tmpmount exits, when the last process using it leaves",
			s.mountpoint, describeUnmountError(err))
	} else {
		s.logger.Printf("%s is busy: %d process(es) use it: %s; detaching it lazily: it goes away, and tmpmount exits, when the last of them leaves",
			s.mountpoint, len(users), joinProcesses(users))
	}
	if err := lazyUnmount(s.mountpoint); err != nil {
		s.logger.Printf("lazy unmount of %s failed: %v; unmount it yourself (umount -l %s)", s.mountpoint, oneLine(err), s.mountpoint)
		return
	}
	s.detached = true
}

func joinProcesses(ps []process) string {
	parts := make([]string, len(ps))
	for i, p := range ps {
		parts[i] = p.String()
	}
	return strings.Join(parts, ", ")
}

// oneLine puts an error (fusermount3's output, say) on one log line.
func oneLine(err error) string {
	return oneLineText(err.Error())
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

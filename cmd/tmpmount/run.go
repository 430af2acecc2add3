package main

import (
	"errors"
	"fmt"
	"io"
	"log"
	"os"
	"os/exec"
	"os/signal"
	"syscall"
	"time"

	"golang.org/x/sys/unix"
)

// runCommand is `tmpmount run [flags] -- CMD [ARGS...]`: a private mount
// point, a mount on it, CMD run with TMPDIR (and TMP, TEMP) pointing there
// and the mount point in TMPMOUNT_DIR; when CMD exits, keep files are
// saved, the mount goes (after the processes still using it have had a
// chance to leave, then been told to), the mount point is removed, and
// tmpmount exits with CMD's status (128+N if a signal N killed it).
func runCommand(args []string, stdout, stderr io.Writer, logger *log.Logger) int {
	o, err := parseRunArgs(args, stdout)
	if code, done := afterParse(err, o, stdout, logger); done {
		return code
	}
	signals := make(chan os.Signal, 4)
	signal.Notify(signals, syscall.SIGINT, syscall.SIGTERM, syscall.SIGHUP)
	defer signal.Stop(signals)

	mountpoint, err := makeRunMountpoint()
	if err != nil {
		logger.Print(err)
		return exitUsage
	}
	defer os.Remove(mountpoint)
	s, err := startSession(o, mountpoint, logger)
	if err != nil {
		logger.Print(err)
		return exitUsage
	}

	status := runChild(o.command, mountpoint, signals, logger)
	s.unmountWhenFree()
	code := s.finish(progressPrinter(logger))
	if err := os.Remove(mountpoint); err != nil && !errors.Is(err, os.ErrNotExist) {
		logger.Printf("remove mount point: %v", err)
	}
	if status == 0 && code != exitOK {
		return code // keep files were lost: say so in the status too
	}
	return status
}

// makeRunMountpoint makes a private (0700) directory to mount on, in
// $XDG_RUNTIME_DIR, else /tmp.
func makeRunMountpoint() (string, error) {
	base := os.Getenv("XDG_RUNTIME_DIR")
	if st, err := os.Stat(base); base == "" || err != nil || !st.IsDir() || unix.Access(base, unix.W_OK) != nil {
		base = "/tmp"
	}
	dir, err := os.MkdirTemp(base, "tmpmount-run-")
	if err != nil {
		return "", fmt.Errorf("make a mount point in %s: %v", base, err)
	}
	return dir, nil
}

// runChild runs the command with its temporary directory on the mount,
// forwarding SIGINT, SIGTERM and SIGHUP, and returns its exit status as a
// shell would report it.
func runChild(command []string, mountpoint string, signals <-chan os.Signal, logger *log.Logger) int {
	cmd := exec.Command(command[0], command[1:]...)
	cmd.Stdin, cmd.Stdout, cmd.Stderr = os.Stdin, os.Stdout, os.Stderr
	cmd.Env = append(os.Environ(),
		"TMPDIR="+mountpoint, "TMP="+mountpoint, "TEMP="+mountpoint, "TMPMOUNT_DIR="+mountpoint)
	if err := cmd.Start(); err != nil {
		logger.Printf("cannot run %s: %v", command[0], err)
		if errors.Is(err, exec.ErrNotFound) || errors.Is(err, os.ErrNotExist) {
			return 127
		}
		return 126
	}
	// A Ctrl-C at a terminal reaches the whole foreground process group,
	// the command included: passing it on would deliver it twice.
	fromTerminal := isTerminal(0)
	done := make(chan struct{})
	go func() {
		for {
			select {
			case sig := <-signals:
				if sig == syscall.SIGINT && fromTerminal {
					continue
				}
				cmd.Process.Signal(sig)
			case <-done:
				return
			}
		}
	}()
	cmd.Wait()
	close(done)
	ws, _ := cmd.ProcessState.Sys().(syscall.WaitStatus)
	if ws.Signaled() {
		return 128 + int(ws.Signal())
	}
	return ws.ExitStatus()
}

func isTerminal(fd int) bool {
	_, err := unix.IoctlGetTermios(fd, unix.TCGETS)
	return err == nil
}

// Graces given, at the end of tmpmount run, to processes still using the
// mount: to leave by themselves, then after SIGTERM.
const (
	leaveGrace = 5 * time.Second
	termGrace  = 2 * time.Second
)

// unmountWhenFree unmounts. If processes still use the mount (a
// background job the command left), it waits for them, then sends them
// SIGTERM, then SIGKILL, saying so each time, and at last detaches the
// mount lazily if even that did not free it.
func (s *session) unmountWhenFree() {
	if s.server.Unmount() == nil {
		return
	}
	steps := []struct {
		sig   syscall.Signal
		grace time.Duration
		say   string
	}{
		{0, leaveGrace, "waiting up to %v for them to leave"},
		{syscall.SIGTERM, termGrace, "sending them SIGTERM, waiting up to %v"},
		{syscall.SIGKILL, termGrace, "sending them SIGKILL, waiting up to %v"},
	}
	for _, step := range steps {
		users := usersOf(s.mountpoint)
		s.logger.Printf("%d process(es) still use %s: %v; "+step.say, len(users), s.mountpoint, users, step.grace)
		if step.sig != 0 {
			for _, p := range users {
				syscall.Kill(p.pid, step.sig)
			}
		}
		deadline := time.Now().Add(step.grace)
		for time.Now().Before(deadline) {
			if len(usersOf(s.mountpoint)) == 0 && s.server.Unmount() == nil {
				return
			}
			time.Sleep(100 * time.Millisecond)
		}
	}
	s.logger.Printf("%s is still busy; detaching it lazily", s.mountpoint)
	if err := lazyUnmount(s.mountpoint); err != nil {
		s.logger.Printf("lazy unmount of %s failed: %v", s.mountpoint, err)
	}
}

package main

import (
	"bufio"
	"errors"
	"fmt"
	"io"
	"os"
	"os/signal"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
)

// errInterrupted ends the run after a signal; the cleanup then runs as on
// any other error.
var errInterrupted = errors.New("interrupted")

// interrupted is set by the first SIGINT/SIGTERM/SIGHUP. Workloads check it
// between operations, so that the run stops with no file open on a mount
// and the normal teardown can unmount cleanly.
var interrupted atomic.Bool

func checkInterrupted() error {
	if interrupted.Load() {
		return errInterrupted
	}
	return nil
}

// cleaner is the stack of things to undo: mounts to unmount, daemons to
// stop, directories to remove. Every step registers itself as soon as
// there is something to undo, so whatever way the run ends, runAll undoes
// it all, newest first.
type cleaner struct {
	mu    sync.Mutex
	steps []*cleanStep
}

// cleanStep undoes one thing. fn may run twice (the forced cleanup of a
// second Ctrl-C can overlap the normal one), so it must be idempotent.
// force asks it to be quick rather than graceful: lazy unmounts, kills.
type cleanStep struct {
	desc string
	fn   func(force bool) error
}

func (c *cleaner) push(desc string, fn func(force bool) error) *cleanStep {
	s := &cleanStep{desc: desc, fn: fn}
	c.mu.Lock()
	c.steps = append(c.steps, s)
	c.mu.Unlock()
	return s
}

// run runs s now and forgets it. The step stays registered while it runs,
// so a forced cleanup meanwhile still sees it.
func (c *cleaner) run(s *cleanStep, force bool) error {
	err := s.fn(force)
	c.mu.Lock()
	for i, t := range c.steps {
		if t == s {
			c.steps = append(c.steps[:i], c.steps[i+1:]...)
			break
		}
	}
	c.mu.Unlock()
	if err != nil {
		return fmt.Errorf("%s: %w", s.desc, err)
	}
	return nil
}

// runAll runs every registered step, newest first.
func (c *cleaner) runAll(force bool) []error {
	c.mu.Lock()
	pending := append([]*cleanStep{}, c.steps...)
	c.mu.Unlock()
	var errs []error
	for i := len(pending) - 1; i >= 0; i-- {
		if err := c.run(pending[i], force); err != nil {
			errs = append(errs, err)
		}
	}
	return errs
}

// handleSignals makes the first signal stop the run at the next operation
// (the normal teardown then unmounts everything) and a second one clean up
// by force and exit at once. It returns a function that stops listening.
func handleSignals(cl *cleaner, stderr io.Writer) (stop func()) {
	sigs := make(chan os.Signal, 2)
	signal.Notify(sigs, syscall.SIGINT, syscall.SIGTERM, syscall.SIGHUP)
	done := make(chan struct{})
	go func() {
		select {
		case sig := <-sigs:
			interrupted.Store(true)
			fmt.Fprintf(stderr, "\nbench: %v: stopping after the current operation and cleaning up (send it again to force)\n", sig)
		case <-done:
			return
		}
		select {
		case <-sigs:
			fmt.Fprintln(stderr, "bench: forcing the cleanup: lazy unmounts, daemons killed")
			for _, err := range cl.runAll(true) {
				fmt.Fprintln(stderr, "bench: cleanup:", err)
			}
			os.Exit(130)
		case <-done:
		}
	}()
	return func() {
		signal.Stop(sigs)
		close(done)
	}
}

// mountEntry is one line of /proc/self/mountinfo.
type mountEntry struct {
	Point     string `json:"mount_point"`
	Options   string `json:"mount_options"` // per-mount: rw,nosuid,...
	FSType    string `json:"fs_type"`
	Source    string `json:"source"`
	SuperOpts string `json:"super_options"` // per-superblock: size=, user_id=, ...
}

func (m *mountEntry) String() string {
	return fmt.Sprintf("%s %s (%s; %s)", m.FSType, m.Source, m.Options, m.SuperOpts)
}

// readMounts parses /proc/self/mountinfo:
// ID PARENT MAJ:MIN ROOT MOUNTPOINT OPTIONS [OPTIONAL...] - FSTYPE SOURCE SUPER
func readMounts() ([]mountEntry, error) {
	f, err := os.Open("/proc/self/mountinfo")
	if err != nil {
		return nil, fmt.Errorf("read the mount table: %w", err)
	}
	defer f.Close()
	var out []mountEntry
	sc := bufio.NewScanner(f)
	sc.Buffer(make([]byte, 64<<10), 1<<20)
	for sc.Scan() {
		fields := strings.Fields(sc.Text())
		sep := -1
		for i, f := range fields {
			if f == "-" {
				sep = i
				break
			}
		}
		if sep < 6 || len(fields) < sep+3 {
			continue
		}
		e := mountEntry{
			Point:   unescapeMountinfo(fields[4]),
			Options: fields[5],
			FSType:  fields[sep+1],
			Source:  unescapeMountinfo(fields[sep+2]),
		}
		if sep+3 < len(fields) {
			e.SuperOpts = fields[sep+3]
		}
		out = append(out, e)
	}
	return out, sc.Err()
}

// mountAt returns the topmost mount at exactly path, or nil.
func mountAt(path string) (*mountEntry, error) {
	mounts, err := readMounts()
	if err != nil {
		return nil, err
	}
	var found *mountEntry
	for i := range mounts {
		if mounts[i].Point == path {
			found = &mounts[i]
		}
	}
	return found, nil
}

// mountContaining returns the mount that holds path (the longest mount
// point that is path or a parent of it).
func mountContaining(path string) (*mountEntry, error) {
	mounts, err := readMounts()
	if err != nil {
		return nil, err
	}
	var found *mountEntry
	for i := range mounts {
		m := &mounts[i]
		if isUnder(path, m.Point) && (found == nil || len(m.Point) >= len(found.Point)) {
			found = m
		}
	}
	return found, nil
}

// isUnder reports whether path is dir or inside it.
func isUnder(path, dir string) bool {
	return path == dir || dir == "/" || strings.HasPrefix(path, dir+"/")
}

// safeRemoveAll removes dir, but never while something is mounted in it:
// RemoveAll would walk into the mount and delete what is there.
func safeRemoveAll(dir string) error {
	mounts, err := readMounts()
	if err != nil {
		return err
	}
	for _, m := range mounts {
		if isUnder(m.Point, dir) {
			return fmt.Errorf("not removing %s: %s is still mounted at %s (unmount it: umount %s)", dir, m.FSType, m.Point, m.Point)
		}
	}
	return os.RemoveAll(dir)
}

// unescapeMountinfo undoes mountinfo's octal escapes (\040 for a space).
func unescapeMountinfo(s string) string {
	if !strings.Contains(s, `\`) {
		return s
	}
	var b strings.Builder
	for i := 0; i < len(s); i++ {
		if s[i] == '\\' && i+3 < len(s) {
			v, ok := byte(0), true
			for _, c := range []byte(s[i+1 : i+4]) {
				if c < '0' || c > '7' {
					ok = false
					break
				}
				v = v*8 + c - '0'
			}
			if ok {
				b.WriteByte(v)
				i += 3
				continue
			}
		}
		b.WriteByte(s[i])
	}
	return b.String()
}

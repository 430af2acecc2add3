// Package e2e mounts the real tmpmount binary and drives it with real
// programs and system calls. It imports no tmpmount package: it talks to
// the binary, as a user would.
package e2e

import (
	"bytes"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"slices"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"golang.org/x/sys/unix"
)

// tmpmountBin is the binary under test, built once by TestMain.
var tmpmountBin string

func TestMain(m *testing.M) {
	dir, err := os.MkdirTemp("", "tmpmount-e2e-")
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	tmpmountBin = filepath.Join(dir, "tmpmount")
	buildArgs := []string{"build", "-o", tmpmountBin}
	if raceBuild() {
		// A data race in the daemon then makes it exit non-zero, which
		// every test's cleanup checks.
		buildArgs = append(buildArgs, "-race")
	}
	build := exec.Command("go", append(buildArgs, "../cmd/tmpmount")...)
	build.Stdout, build.Stderr = os.Stderr, os.Stderr
	if err := build.Run(); err != nil {
		fmt.Fprintln(os.Stderr, "building tmpmount:", err)
		os.Exit(1)
	}
	if err := checkTransportSwitch(); err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	code := m.Run()
	os.RemoveAll(dir)
	os.Exit(code)
}

// requireFUSE skips a test that needs FUSE where there is none, except
// under CI=true, where a missing FUSE is a failure.
func requireFUSE(t *testing.T) {
	t.Helper()
	missing := ""
	if _, err := os.Stat("/dev/fuse"); err != nil {
		missing = "no /dev/fuse"
	} else if os.Geteuid() != 0 {
		if _, err := exec.LookPath("fusermount3"); err != nil {
			missing = "not root and no fusermount3"
		}
	}
	if missing == "" {
		return
	}
	if os.Getenv("CI") == "true" {
		t.Fatalf("FUSE is required under CI=true: %s", missing)
	}
	t.Skipf("FUSE not available: %s", missing)
}

// requireRoot skips (or, under CI, fails) a test that needs root.
func requireRoot(t *testing.T) {
	t.Helper()
	if os.Geteuid() == 0 {
		return
	}
	if os.Getenv("CI") == "true" {
		t.Fatalf("this test needs root under CI=true")
	}
	t.Skip("needs root")
}

// syncBuffer collects a process's stderr safely.
type syncBuffer struct {
	mu  sync.Mutex
	buf bytes.Buffer
}

func (b *syncBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.Write(p)
}

func (b *syncBuffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.String()
}

// Mount is a running tmpmount daemon and its mount point.
type Mount struct {
	Dir         string // the mount point
	SpillParent string // what --spill-dir was given
	Stderr      *syncBuffer

	cmd     *exec.Cmd
	done    chan struct{} // closed when the daemon exits
	waitErr error
}

// startMount starts tmpmount with args on a fresh mount point and a fresh
// spill parent, waits until the mount is there, and unmounts it when the
// test ends, checking that the daemon exited cleanly and left nothing in
// the spill parent.
func startMount(t *testing.T, args ...string) *Mount {
	t.Helper()
	requireFUSE(t)
	m := &Mount{Dir: t.TempDir(), SpillParent: t.TempDir(), Stderr: &syncBuffer{}}
	full := append([]string{"--spill-dir", m.SpillParent}, args...)
	if e2eTransport() == "dev" && forcedURing == "" {
		// Whatever the machine-wide switch says meanwhile.
		full = append(full, "--no-uring")
	}
	full = append(full, m.Dir)
	m.cmd = exec.Command(tmpmountBin, full...)
	m.cmd.Stderr = m.Stderr
	m.cmd.Stdout = m.Stderr
	if err := m.cmd.Start(); err != nil {
		t.Fatalf("start tmpmount: %v", err)
	}
	m.done = make(chan struct{})
	go func() {
		m.waitErr = m.cmd.Wait()
		close(m.done)
	}()
	// Ready means mounted and serving, with its signal handling in place:
	// the daemon logs "serving" once the mount is up.
	waitFor(t, 10*time.Second, "mount at "+m.Dir, func() bool {
		select {
		case <-m.done:
			t.Fatalf("tmpmount exited before mounting: %v\n%s", m.waitErr, m.Stderr)
		default:
		}
		return isMountPoint(m.Dir) && strings.Contains(m.Stderr.String(), "tmpmount: serving ")
	})
	t.Cleanup(func() { m.stop(t) })
	checkTransport(t, m.Stderr.String(), args)
	return m
}

// The e2e suite runs on either request path: TMPMOUNT_E2E_TRANSPORT=uring
// (FUSE over io_uring; needs enable_uring=Y, which scripts/test.sh sets
// as root for that run) or dev (/dev/fuse only: startMount adds
// --no-uring, and scripts/test.sh turns the switch off for the mounts
// made otherwise). Unset, each mount uses whatever the kernel offers and
// nothing is checked.
const transportEnv = "TMPMOUNT_E2E_TRANSPORT"

// enableURingPath is the kernel's switch for FUSE over io_uring.
const enableURingPath = "/sys/module/fuse/parameters/enable_uring"

func e2eTransport() string { return os.Getenv(transportEnv) }

// checkTransportSwitch refuses a run whose machine cannot give the
// transport asked for.
func checkTransportSwitch() error {
	switch want := e2eTransport(); want {
	case "":
	case "uring":
		if b, err := os.ReadFile(enableURingPath); err != nil || strings.TrimSpace(string(b)) != "Y" {
			return fmt.Errorf("%s=uring needs FUSE over io_uring: as root, echo Y > %s (scripts/test.sh does, for that run)", transportEnv, enableURingPath)
		}
	case "dev":
	default:
		return fmt.Errorf("%s=%q: give uring or dev", transportEnv, want)
	}
	return nil
}

// checkTransport checks, from the daemon's serving line, that a mount is
// served the way the run asked for.
func checkTransport(t *testing.T, log string, args []string) {
	t.Helper()
	mode := e2eTransport()
	switch forcedURing { // set by tests of the transport itself
	case "Y":
		mode = "uring"
	case "N":
		mode = "dev"
	}
	var want string
	switch mode {
	case "uring":
		want = "transport io_uring ("
		if slices.ContainsFunc(args, func(a string) bool { return strings.Contains(a, "no-uring") || strings.Contains(a, "no_uring") }) {
			want = "transport /dev/fuse (io_uring off: --no-uring)"
		}
	case "dev":
		want = "transport /dev/fuse ("
	default:
		return
	}
	if !strings.Contains(log, want) {
		t.Fatalf("the mount is not served over %s as asked (want %q):\n%s", mode, want, log)
	}
}

// stop unmounts (if still mounted) and checks the daemon's exit.
func (m *Mount) stop(t *testing.T) {
	t.Helper()
	select {
	case <-m.done:
	default:
		if isMountPoint(m.Dir) {
			if err := unmountPath(m.Dir); err != nil {
				t.Errorf("unmount %s: %v", m.Dir, err)
				m.cmd.Process.Signal(syscall.SIGTERM)
			}
		}
	}
	m.waitExit(t, 20*time.Second)
	if m.waitErr != nil {
		t.Errorf("tmpmount exited with %v\n%s", m.waitErr, m.Stderr)
	}
	entries, err := os.ReadDir(m.SpillParent)
	if err != nil {
		t.Errorf("read spill parent: %v", err)
	}
	for _, e := range entries {
		t.Errorf("spill parent %s still holds %s after unmount", m.SpillParent, e.Name())
	}
}

// waitExit waits for the daemon to exit. Past the deadline it kills it,
// and if even that does not end it (a daemon blocked on a request to its
// own mount cannot die), it aborts the FUSE connection with a forced
// unmount, so a hung daemon fails one test instead of hanging the suite.
func (m *Mount) waitExit(t *testing.T, d time.Duration) {
	t.Helper()
	select {
	case <-m.done:
		return
	case <-time.After(d):
	}
	t.Errorf("tmpmount did not exit within %v after unmount\n%s", d, m.Stderr)
	m.cmd.Process.Kill()
	select {
	case <-m.done:
		return
	case <-time.After(5 * time.Second):
	}
	syscall.Unmount(m.Dir, syscall.MNT_FORCE|syscall.MNT_DETACH)
	select {
	case <-m.done:
	case <-time.After(5 * time.Second):
		t.Errorf("tmpmount (pid %d) survives SIGKILL and a forced unmount", m.cmd.Process.Pid)
	}
}

// Path joins names onto the mount point.
func (m *Mount) Path(names ...string) string {
	return filepath.Join(append([]string{m.Dir}, names...)...)
}

func unmountPath(dir string) error {
	if os.Geteuid() == 0 {
		return syscall.Unmount(dir, 0)
	}
	out, err := exec.Command("fusermount3", "-u", dir).CombinedOutput()
	if err != nil {
		return fmt.Errorf("%v: %s", err, out)
	}
	return nil
}

// mountEntry is one line of a mountinfo file.
type mountEntry struct {
	point  string // unescaped
	fstype string
	line   string
}

// readMountinfo reads a mountinfo file: /proc/self/mountinfo, or another
// process's, to see its mount namespace.
func readMountinfo(path string) ([]mountEntry, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		return nil, err
	}
	var mounts []mountEntry
	for _, line := range strings.Split(string(data), "\n") {
		f := strings.Fields(line)
		if len(f) < 5 {
			continue
		}
		m := mountEntry{point: unescapeMountinfo(f[4]), line: line}
		if i := slices.Index(f, "-"); i >= 0 && i+1 < len(f) {
			m.fstype = f[i+1]
		}
		mounts = append(mounts, m)
	}
	return mounts, nil
}

// mountsOf reads /proc/self/mountinfo or fails the test.
func mountsOf(t *testing.T, mountinfo string) []mountEntry {
	t.Helper()
	mounts, err := readMountinfo(mountinfo)
	if err != nil {
		t.Fatalf("read %s: %v", mountinfo, err)
	}
	return mounts
}

// unescapeMountinfo undoes mountinfo's octal escapes (\040 for space).
func unescapeMountinfo(s string) string {
	var b strings.Builder
	for i := 0; i < len(s); i++ {
		if s[i] == '\\' && i+3 < len(s) {
			if v, err := strconv.ParseUint(s[i+1:i+4], 8, 8); err == nil {
				b.WriteByte(byte(v))
				i += 3
				continue
			}
		}
		b.WriteByte(s[i])
	}
	return b.String()
}

// isMountPoint reports whether a tmpmount mount sits at dir.
func isMountPoint(dir string) bool {
	mounts, _ := readMountinfo("/proc/self/mountinfo")
	return slices.ContainsFunc(mounts, func(m mountEntry) bool {
		return m.point == dir && m.fstype == "fuse.tmpmount"
	})
}

// waitFor polls cond until it holds or the deadline passes.
func waitFor(t *testing.T, d time.Duration, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(d)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out after %v waiting for %s", d, what)
		}
		time.Sleep(5 * time.Millisecond)
		runtime.Gosched()
	}
}

// runCmd runs a command in dir and fails the test if it fails.
func runCmd(t *testing.T, dir string, name string, args ...string) string {
	t.Helper()
	cmd := exec.Command(name, args...)
	cmd.Dir = dir
	out, err := cmd.CombinedOutput()
	if err != nil {
		var ee *exec.ExitError
		if errors.As(err, &ee) {
			t.Fatalf("%s %s: %v\n%s", name, strings.Join(args, " "), err, out)
		}
		t.Fatalf("%s: %v", name, err)
	}
	return string(out)
}

// mountTmpfs mounts a reference tmpfs with opts on dir, as root, and
// unmounts it when the test ends. huge=never is always added: it keeps the
// pages at 4 KiB whatever the machine's transparent_hugepage/shmem_enabled
// says, the page size tmpmount models, on which st_blocks and the
// SEEK_DATA/SEEK_HOLE granularity depend.
func mountTmpfs(t *testing.T, dir, opts string) string {
	t.Helper()
	requireRoot(t)
	all := "huge=never"
	if opts != "" {
		all += "," + opts
	}
	if err := unix.Mount("tmpfs", dir, "tmpfs", 0, all); err != nil {
		t.Fatalf("mount -t tmpfs -o %s tmpfs %s: %v", all, dir, err)
	}
	t.Cleanup(func() {
		if err := unix.Unmount(dir, 0); err != nil {
			t.Errorf("unmount reference tmpfs %s: %v", dir, err)
			unix.Unmount(dir, unix.MNT_DETACH)
		}
	})
	return dir
}

// raceBuild reports whether the daemon under test is built with the race
// detector (E2E_RACE=1), whose shadow memory multiplies its RSS: tests of
// memory use then only log their figures (scripts/test.sh runs them again
// on a normal build).
func raceBuild() bool { return os.Getenv("E2E_RACE") == "1" }

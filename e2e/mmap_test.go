package e2e

// Memory mappings of tmpmount files: a random-operation (fsx-style) test
// against a model, coherence between mappings and read(2)/write(2) across
// processes, rollover by a write through a shared mapping, the spill xattr,
// FUSE passthrough (shown by stopping the daemon), the times and sizes of
// passthrough files, and the close delete policy for a mapped file.
//
// The second process of the coherence tests is a small python3 "agent"
// driven line by line over a pipe (mmAgentScript). Note that Python's
// mmap.mmap dup()s the descriptor it maps, so an agent's mapping always
// comes with an open handle of its own.

import (
	"bufio"
	"bytes"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"math/rand/v2"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"golang.org/x/sys/unix"
)

const (
	mmPage         = 4096
	mmSpillAttr    = "user.tmpmount.spill"
	mmMaxSize      = 64 << 10 // the --max-size most tests here mount with
	mmReplyTimeout = 10 * time.Second
)

// ---------------------------------------------------------------------------
// Mounts

// mmKind is one way of mounting tmpmount.
type mmKind struct {
	name        string
	args        []string
	passthrough bool // rolled-over files are expected to open in passthrough
}

// mmPassthroughKinds are the two ways every mmap test runs.
var mmPassthroughKinds = []mmKind{
	{name: "passthrough", args: []string{"--max-size", "64k"}, passthrough: true},
	{name: "no-passthrough", args: []string{"--max-size", "64k", "--no-passthrough"}},
}

// mmStart mounts tmpmount as kind says (plus extra flags) and checks that
// the daemon reports the passthrough state the kind expects.
func mmStart(t *testing.T, kind mmKind, extra ...string) *Mount {
	t.Helper()
	if kind.passthrough {
		mmRequirePassthroughHost(t)
	}
	args := append(append([]string{}, kind.args...), extra...)
	m := startMount(t, args...)
	line := mmServingLine(m)
	if kind.passthrough && !strings.Contains(line, "passthrough on)") {
		t.Fatalf("daemon log %q: want passthrough on (root on Linux %s)", line, mmKernelRelease())
	}
	if !kind.passthrough && !strings.Contains(line, "passthrough off (") {
		t.Fatalf("daemon log %q: want passthrough off", line)
	}
	return m
}

// mmRequirePassthroughHost skips where FUSE passthrough cannot work: it
// needs root (CAP_SYS_ADMIN) and Linux 6.9 or later.
func mmRequirePassthroughHost(t *testing.T) {
	t.Helper()
	requireRoot(t)
	var major, minor int
	fmt.Sscanf(mmKernelRelease(), "%d.%d", &major, &minor)
	if major < 6 || major == 6 && minor < 9 {
		t.Skipf("FUSE passthrough needs Linux 6.9+, this is %s", mmKernelRelease())
	}
}

func mmKernelRelease() string {
	var u unix.Utsname
	if err := unix.Uname(&u); err != nil {
		return "?"
	}
	return unix.ByteSliceToString(u.Release[:])
}

// mmServingLine is the daemon's "serving" log line.
func mmServingLine(m *Mount) string {
	for _, l := range strings.Split(m.Stderr.String(), "\n") {
		if strings.Contains(l, "tmpmount: serving ") {
			return l
		}
	}
	return ""
}

// mmMountTmpfs mounts a reference tmpfs on a fresh directory.
func mmMountTmpfs(t *testing.T) string {
	t.Helper()
	return mountTmpfs(t, t.TempDir(), "size=64m")
}

// ---------------------------------------------------------------------------
// Small helpers

func mmWantResidency(t *testing.T, path, want string) {
	t.Helper()
	if got := readResidency(t, path); got != want {
		t.Fatalf("%s: residency %q, want %q", filepath.Base(path), got, want)
	}
}

// mmBytes is n reproducible bytes for a label.
func mmBytes(label string, n int) []byte {
	var seed uint64 = 14695981039346656037
	for i := 0; i < len(label); i++ {
		seed = (seed ^ uint64(label[i])) * 1099511628211
	}
	rng := rand.New(rand.NewPCG(seed, uint64(n)))
	b := make([]byte, n)
	for i := range b {
		b[i] = byte(rng.Uint32())
	}
	return b
}

// mmFirstDiff is the first offset where got and want differ, or -1.
func mmFirstDiff(got, want []byte) int {
	for i := 0; i < min(len(got), len(want)); i++ {
		if got[i] != want[i] {
			return i
		}
	}
	if len(got) != len(want) {
		return min(len(got), len(want))
	}
	return -1
}

// mmDescribeDiff says where got differs from want.
func mmDescribeDiff(got, want []byte) string {
	i := mmFirstDiff(got, want)
	if i < 0 {
		return "equal"
	}
	g, w := "EOF", "EOF"
	if i < len(got) {
		g = fmt.Sprintf("%#02x", got[i])
	}
	if i < len(want) {
		w = fmt.Sprintf("%#02x", want[i])
	}
	return fmt.Sprintf("first difference at offset %d (got %s, want %s); got %d bytes, want %d", i, g, w, len(got), len(want))
}

func mmCheckBytes(t *testing.T, what string, got, want []byte) {
	t.Helper()
	if !bytes.Equal(got, want) {
		t.Fatalf("%s: %s", what, mmDescribeDiff(got, want))
	}
}

func mmOpen(t *testing.T, path string, flags int) int {
	t.Helper()
	fd, err := unix.Open(path, flags|unix.O_CLOEXEC, 0o644)
	if err != nil {
		t.Fatalf("open %s: %v", path, err)
	}
	return fd
}

func mmClose(t *testing.T, fd int) {
	t.Helper()
	if err := unix.Close(fd); err != nil {
		t.Fatalf("close fd %d: %v", fd, err)
	}
}

// mmWriteFile creates path with data through one open, write and close.
func mmWriteFile(t *testing.T, path string, data []byte) {
	t.Helper()
	fd := mmOpen(t, path, unix.O_RDWR|unix.O_CREAT|unix.O_TRUNC)
	mmPwrite(t, fd, data, 0)
	mmClose(t, fd)
}

func mmPwrite(t *testing.T, fd int, data []byte, off int64) {
	t.Helper()
	n, err := unix.Pwrite(fd, data, off)
	if err != nil || n != len(data) {
		t.Fatalf("pwrite(fd %d, %d bytes at %d) = %d, %v", fd, len(data), off, n, err)
	}
}

// mmReadAll reads fd from offset 0 to EOF with pread(2).
func mmReadAll(fd int) ([]byte, error) {
	var out []byte
	buf := make([]byte, 128<<10)
	for {
		n, err := unix.Pread(fd, buf, int64(len(out)))
		if err != nil {
			return out, err
		}
		if n == 0 {
			return out, nil
		}
		out = append(out, buf[:n]...)
	}
}

// mmCheckFile reads path through a fresh open and compares it with want.
func mmCheckFile(t *testing.T, path string, want []byte) {
	t.Helper()
	fd := mmOpen(t, path, unix.O_RDONLY)
	defer unix.Close(fd)
	got, err := mmReadAll(fd)
	if err != nil {
		t.Fatalf("read %s: %v", path, err)
	}
	mmCheckBytes(t, "read(2) of "+filepath.Base(path), got, want)
}

func mmPread(t *testing.T, fd int, off int64, n int) []byte {
	t.Helper()
	buf := make([]byte, n)
	got, err := unix.Pread(fd, buf, off)
	if err != nil {
		t.Fatalf("pread(fd %d, %d at %d): %v", fd, n, off, err)
	}
	return buf[:got]
}

func mmMap(t *testing.T, fd int, length int, prot, flags int) []byte {
	t.Helper()
	b, err := unix.Mmap(fd, 0, length, prot, flags)
	if err != nil {
		t.Fatalf("mmap(fd %d, %d bytes): %v", fd, length, err)
	}
	return b
}

func mmMsync(t *testing.T, b []byte) {
	t.Helper()
	if err := unix.Msync(b, unix.MS_SYNC); err != nil {
		t.Fatalf("msync: %v", err)
	}
}

func mmUnmap(t *testing.T, b []byte) {
	t.Helper()
	if err := unix.Munmap(b); err != nil {
		t.Fatalf("munmap: %v", err)
	}
}

func mmStat(t *testing.T, path string) unix.Stat_t {
	t.Helper()
	var st unix.Stat_t
	if err := unix.Stat(path, &st); err != nil {
		t.Fatalf("stat %s: %v", path, err)
	}
	return st
}

func mmFstat(t *testing.T, fd int) unix.Stat_t {
	t.Helper()
	var st unix.Stat_t
	if err := unix.Fstat(fd, &st); err != nil {
		t.Fatalf("fstat fd %d: %v", fd, err)
	}
	return st
}

func mmExists(path string) bool {
	var st unix.Stat_t
	return unix.Lstat(path, &st) == nil
}

// mmNextTick waits until the kernel's coarse clock, which file times come
// from, has moved on, so that a change of time can be seen.
func mmNextTick() {
	var start, now unix.Timespec
	unix.ClockGettime(unix.CLOCK_REALTIME_COARSE, &start)
	for {
		time.Sleep(200 * time.Microsecond)
		unix.ClockGettime(unix.CLOCK_REALTIME_COARSE, &now)
		if now != start {
			return
		}
	}
}

func mmTsAfter(a, b unix.Timespec) bool {
	return a.Sec > b.Sec || a.Sec == b.Sec && a.Nsec > b.Nsec
}

func mmTs(ts unix.Timespec) string {
	return time.Unix(ts.Sec, ts.Nsec).UTC().Format("2006-01-02T15:04:05.000000000")
}

// ---------------------------------------------------------------------------
// The python3 agent: a second process that opens, maps, reads and writes.

const mmAgentScript = `
import errno, mmap, os, sys
fd = -1
m = None
def reply(s):
    sys.stdout.write(s + "\n")
    sys.stdout.flush()
for line in sys.stdin:
    a = line.split()
    try:
        c = a[0]
        if c == "open":
            fd = os.open(a[1], os.O_RDWR)
            reply("ok")
        elif c == "close":
            os.close(fd)
            fd = -1
            reply("ok")
        elif c == "map":
            m = mmap.mmap(fd, int(a[1]), mmap.MAP_SHARED, mmap.PROT_READ | mmap.PROT_WRITE)
            reply("ok")
        elif c == "unmap":
            m.close()
            m = None
            reply("ok")
        elif c == "mget":
            o, n = int(a[1]), int(a[2])
            reply("ok " + m[o:o + n].hex())
        elif c == "mset":
            o, b = int(a[1]), bytes.fromhex(a[2])
            m[o:o + len(b)] = b
            reply("ok")
        elif c == "msync":
            m.flush()
            reply("ok")
        elif c == "pread":
            reply("ok " + os.pread(fd, int(a[2]), int(a[1])).hex())
        elif c == "pwrite":
            reply("ok %d" % os.pwrite(fd, bytes.fromhex(a[2]), int(a[1])))
        elif c == "dontneed":
            os.posix_fadvise(fd, 0, 0, os.POSIX_FADV_DONTNEED)
            reply("ok")
        else:
            reply("err unknown command " + c)
    except OSError as e:
        reply("err " + errno.errorcode.get(e.errno, str(e.errno)))
`

// mmAgent is a running python3 agent.
type mmAgent struct {
	t      *testing.T
	name   string
	cmd    *exec.Cmd
	stdin  io.WriteCloser
	lines  chan string   // its answers; closed at its exit
	done   chan struct{} // closed once it has exited and been waited for
	stderr *syncBuffer
}

func mmStartAgent(t *testing.T, name string) *mmAgent {
	t.Helper()
	py, err := exec.LookPath("python3")
	if err != nil {
		if os.Getenv("CI") == "true" {
			t.Fatalf("python3 is required under CI=true: %v", err)
		}
		t.Skipf("no python3: %v", err)
	}
	a := &mmAgent{t: t, name: name, lines: make(chan string, 16), done: make(chan struct{}), stderr: &syncBuffer{}}
	a.cmd = exec.Command(py, "-c", mmAgentScript)
	a.cmd.Dir = "/"
	a.cmd.Stderr = a.stderr
	a.stdin, err = a.cmd.StdinPipe()
	if err != nil {
		t.Fatal(err)
	}
	stdout, err := a.cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := a.cmd.Start(); err != nil {
		t.Fatalf("start agent %s: %v", name, err)
	}
	go func() {
		sc := bufio.NewScanner(stdout)
		sc.Buffer(make([]byte, 1<<20), 8<<20)
		for sc.Scan() {
			a.lines <- sc.Text()
		}
		close(a.lines)
		a.cmd.Wait()
		close(a.done)
	}()
	t.Cleanup(a.stop)
	return a
}

func (a *mmAgent) pid() int { return a.cmd.Process.Pid }

// stop ends the agent (it may be blocked on the mount) and reaps it.
func (a *mmAgent) stop() {
	a.stdin.Close()
	select {
	case <-a.done:
		return
	default:
	}
	a.cmd.Process.Kill()
	for range a.lines {
	}
	select {
	case <-a.done:
	case <-time.After(10 * time.Second):
		a.t.Errorf("agent %s (pid %d) did not die of SIGKILL", a.name, a.pid())
	}
}

func (a *mmAgent) send(format string, args ...any) {
	a.t.Helper()
	line := fmt.Sprintf(format, args...)
	if _, err := io.WriteString(a.stdin, line+"\n"); err != nil {
		a.t.Fatalf("agent %s: send %q: %v", a.name, mmShort(line), err)
	}
}

// await waits up to d for the next answer; ok is false on timeout or exit.
func (a *mmAgent) await(d time.Duration) (reply string, ok bool) {
	select {
	case r, open := <-a.lines:
		return r, open
	case <-time.After(d):
		return "", false
	}
}

// answer takes the answer to the command just sent, failing the test on
// an error answer, a timeout or an exit.
func (a *mmAgent) answer(cmd string) string {
	a.t.Helper()
	r, ok := a.await(mmReplyTimeout)
	if !ok {
		a.t.Fatalf("agent %s: no answer to %q within %v (%s)\nstderr: %s", a.name, mmShort(cmd), mmReplyTimeout, a.exitState(), a.stderr)
	}
	if !strings.HasPrefix(r, "ok") {
		a.t.Fatalf("agent %s: %q: %s", a.name, mmShort(cmd), r)
	}
	return strings.TrimPrefix(strings.TrimPrefix(r, "ok"), " ")
}

// do sends a command and returns its answer (without "ok ").
func (a *mmAgent) do(format string, args ...any) string {
	a.t.Helper()
	cmd := fmt.Sprintf(format, args...)
	a.send("%s", cmd)
	return a.answer(cmd)
}

// bytesOf decodes an agent's hex answer.
func (a *mmAgent) bytesOf(answer string) []byte {
	a.t.Helper()
	b, err := hex.DecodeString(answer)
	if err != nil {
		a.t.Fatalf("agent %s: bad hex answer %q: %v", a.name, mmShort(answer), err)
	}
	return b
}

func (a *mmAgent) mget(off, n int) []byte {
	a.t.Helper()
	return a.bytesOf(a.do("mget %d %d", off, n))
}

func (a *mmAgent) pread(off, n int) []byte {
	a.t.Helper()
	return a.bytesOf(a.do("pread %d %d", off, n))
}

func (a *mmAgent) mset(off int, b []byte) {
	a.t.Helper()
	a.do("mset %d %x", off, b)
}

func (a *mmAgent) pwrite(off int, b []byte) {
	a.t.Helper()
	if got := a.do("pwrite %d %x", off, b); got != strconv.Itoa(len(b)) {
		a.t.Fatalf("agent %s: pwrite of %d bytes wrote %s", a.name, len(b), got)
	}
}

// exitState describes whether and how the agent ended.
func (a *mmAgent) exitState() string {
	select {
	case <-a.done:
		return "exited: " + a.cmd.ProcessState.String()
	default:
		return "still running"
	}
}

// waitSignal waits for the agent to die and returns the signal that
// killed it (0 if it exited normally).
func (a *mmAgent) waitSignal(d time.Duration) syscall.Signal {
	a.t.Helper()
	for range a.lines {
	}
	select {
	case <-a.done:
	case <-time.After(d):
		a.t.Fatalf("agent %s still alive after %v", a.name, d)
	}
	ws := a.cmd.ProcessState.Sys().(syscall.WaitStatus)
	if !ws.Signaled() {
		return 0
	}
	return ws.Signal()
}

// mmSink keeps a read of a mapping from being optimised away.
var mmSink byte

func mmShort(s string) string {
	if len(s) > 80 {
		return s[:80] + "..."
	}
	return s
}

// ---------------------------------------------------------------------------
// Stopping the daemon, to see which I/O needs it

// mmStopDaemon stops the daemon with SIGSTOP and returns what resumes it.
// The test's cleanup resumes it too, before anything registered earlier
// (unmount, killing agents) runs.
func mmStopDaemon(t *testing.T, m *Mount) (resume func()) {
	t.Helper()
	pid := m.cmd.Process.Pid
	var once sync.Once
	resume = func() {
		once.Do(func() {
			if err := syscall.Kill(pid, syscall.SIGCONT); err != nil {
				t.Errorf("SIGCONT daemon %d: %v", pid, err)
			}
		})
	}
	t.Cleanup(resume)
	if err := syscall.Kill(pid, syscall.SIGSTOP); err != nil {
		t.Fatalf("SIGSTOP daemon %d: %v", pid, err)
	}
	waitFor(t, 5*time.Second, "every daemon thread stopped", func() bool { return mmAllThreadsStopped(pid) })
	return resume
}

// mmAllThreadsStopped: every thread of pid is in state T (stopped).
func mmAllThreadsStopped(pid int) bool {
	tasks, err := os.ReadDir(fmt.Sprintf("/proc/%d/task", pid))
	if err != nil || len(tasks) == 0 {
		return false
	}
	for _, task := range tasks {
		if mmProcState(fmt.Sprintf("/proc/%d/task/%s/stat", pid, task.Name())) != "T" {
			return false
		}
	}
	return true
}

// mmProcState is the state letter of a /proc stat file.
func mmProcState(statPath string) string {
	b, err := os.ReadFile(statPath)
	if err != nil {
		return ""
	}
	s := string(b)
	i := strings.LastIndexByte(s, ')')
	if i < 0 || i+2 >= len(s) {
		return ""
	}
	return s[i+2 : i+3]
}

// mmSleepingIn reports whether pid is asleep inside system call nr.
func mmSleepingIn(pid int, nr int) bool {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/syscall", pid))
	if err != nil {
		return false
	}
	f := strings.Fields(string(b))
	if len(f) == 0 || f[0] != strconv.Itoa(nr) {
		return false
	}
	st := mmProcState(fmt.Sprintf("/proc/%d/stat", pid))
	return st == "S" || st == "D"
}

// mmAgentIO has the agent run one pread or pwrite command while the daemon
// is stopped. wantDaemonless: the command must complete with the daemon
// stopped (passthrough); otherwise it must block, asleep in its system
// call, until the daemon is resumed, and then complete. It returns the
// command's answer.
func mmAgentIO(t *testing.T, m *Mount, a *mmAgent, wantDaemonless bool, format string, args ...any) string {
	t.Helper()
	cmd := fmt.Sprintf(format, args...)
	nr := unix.SYS_PREAD64
	if strings.HasPrefix(cmd, "pwrite") {
		nr = unix.SYS_PWRITE64
	}
	resume := mmStopDaemon(t, m)
	a.send("%s", cmd)
	if wantDaemonless {
		r, ok := a.await(mmReplyTimeout)
		diag := ""
		if !ok {
			diag = mmProcDiag(a.pid())
		}
		resume()
		if !ok {
			t.Fatalf("%q with the daemon stopped: no answer within %v (%s; %s): the open is not passthrough", mmShort(cmd), mmReplyTimeout, a.exitState(), diag)
		}
		return mmAnswerOK(t, a, cmd, r)
	}
	deadline := time.Now().Add(5 * time.Second)
	for !mmSleepingIn(a.pid(), nr) {
		select {
		case r := <-a.lines:
			resume()
			t.Fatalf("%q completed with the daemon stopped (answer %q): want it to wait for the daemon", mmShort(cmd), mmShort(r))
		default:
		}
		if time.Now().After(deadline) {
			t.Fatalf("%q: agent neither answered nor blocked in syscall %d within 5s (%s)", mmShort(cmd), nr, a.exitState())
		}
		time.Sleep(2 * time.Millisecond)
	}
	// Blocked in the system call; it must still be there when we resume.
	select {
	case r := <-a.lines:
		resume()
		t.Fatalf("%q completed with the daemon stopped (answer %q): want it to wait for the daemon", mmShort(cmd), mmShort(r))
	default:
	}
	resume()
	r, ok := a.await(mmReplyTimeout)
	if !ok {
		t.Fatalf("%q: no answer within %v after SIGCONT (%s)", mmShort(cmd), mmReplyTimeout, a.exitState())
	}
	return mmAnswerOK(t, a, cmd, r)
}

// mmProcDiag describes where a blocked process waits: its system call and
// kernel stack (readable as root).
func mmProcDiag(pid int) string {
	sc, _ := os.ReadFile(fmt.Sprintf("/proc/%d/syscall", pid))
	stack, _ := os.ReadFile(fmt.Sprintf("/proc/%d/stack", pid))
	return fmt.Sprintf("pid %d in syscall %q, kernel stack:\n%s", pid, strings.Fields(string(sc) + " ?")[0], stack)
}

func mmAnswerOK(t *testing.T, a *mmAgent, cmd, r string) string {
	t.Helper()
	if !strings.HasPrefix(r, "ok") {
		t.Fatalf("agent %s: %q: %s", a.name, mmShort(cmd), r)
	}
	return strings.TrimPrefix(strings.TrimPrefix(r, "ok"), " ")
}

// ---------------------------------------------------------------------------
// 1. fsx-style random operations against a model

const (
	mmFsxMaxLen   = 256 << 10 // files stay within this
	mmFsxMaxOp    = 40 << 10  // longest single read, write or range
	mmFsxBoundary = 64 << 10  // offsets cluster around here (the --max-size)
	mmFsxCheckGap = 8         // full read(2) check every this many ops
	mmFsxLogTail  = 20
)

type mmFsx struct {
	t       *testing.T
	path    string
	seed    uint64
	rng     *rand.Rand
	maxSize int64 // 0: only mapped writes and spill roll over

	model []byte
	fds   []int
	log   []string
	op    int

	// Residency expectations since the file was (re)created: mustDisk,
	// something rolled it over for sure; mayDisk, something might have
	// (a KEEP_SIZE fallocate past max-size); sawDisk, it was seen on disk.
	mustDisk, mayDisk, sawDisk bool
	recreates                  int
	counts                     map[string]int
}

// TestMmapFsx runs random operations on one file and checks every result
// against a model of its bytes: pwrite, pread, reads through MAP_SHARED or
// MAP_PRIVATE mappings, writes through MAP_SHARED (msync, munmap) or
// MAP_PRIVATE mappings, ftruncate, punching holes, fallocate (0 and
// KEEP_SIZE), closing every descriptor and opening again (after which a
// rolled-over file opens in passthrough), a second or third descriptor,
// the spill xattr, and now and then a fresh file (back in RAM). Offsets
// cluster around 64 KiB, the --max-size, and files stay within 256 KiB.
// After every operation the size (fstat of every descriptor) and the
// residency are checked, and every mmFsxCheckGap operations and at the end
// the whole file through read(2). TMPMOUNT_FSX_OPS=N runs N operations per
// configuration instead of 3000; TMPMOUNT_FSX_SEED=S changes the seed.
func TestMmapFsx(t *testing.T) {
	ops := 3000
	if s := os.Getenv("TMPMOUNT_FSX_OPS"); s != "" {
		n, err := strconv.Atoi(s)
		if err != nil || n <= 0 {
			t.Fatalf("TMPMOUNT_FSX_OPS=%q: want a positive number", s)
		}
		ops = n
	}
	seed := uint64(0x6d6d61702d667378) // "mmap-fsx"
	if s := os.Getenv("TMPMOUNT_FSX_SEED"); s != "" {
		v, err := strconv.ParseUint(s, 0, 64)
		if err != nil {
			t.Fatalf("TMPMOUNT_FSX_SEED=%q: %v", s, err)
		}
		seed = v
	}
	configs := []struct {
		name    string
		kind    mmKind
		maxSize int64
	}{
		{name: "passthrough", kind: mmPassthroughKinds[0], maxSize: mmMaxSize},
		{name: "no-passthrough", kind: mmPassthroughKinds[1], maxSize: mmMaxSize},
		{name: "max-size-0", kind: mmKind{name: "max-size-0", args: []string{"--max-size", "0"}, passthrough: true}, maxSize: 0},
	}
	for _, c := range configs {
		t.Run(c.name, func(t *testing.T) {
			m := mmStart(t, c.kind)
			x := &mmFsx{t: t, path: m.Path("fsx"), seed: seed, maxSize: c.maxSize,
				rng: rand.New(rand.NewPCG(seed, seed^0x9e3779b97f4a7c15)), counts: map[string]int{}}
			x.create()
			defer func() { // before the unmount; no failing from here
				for _, fd := range x.fds {
					unix.Close(fd)
				}
			}()
			start := time.Now()
			for x.op = 0; x.op < ops; x.op++ {
				x.step()
				if x.op%mmFsxCheckGap == mmFsxCheckGap-1 {
					x.checkContents()
				}
			}
			x.checkContents()
			t.Logf("seed %#x, %d ops in %v, %d recreations; ops: %v", seed, ops, time.Since(start).Round(time.Millisecond), x.recreates, x.counts)
		})
	}
}

// fail reports a failed check with everything needed to reproduce it.
func (x *mmFsx) fail(format string, args ...any) {
	x.t.Helper()
	tail := x.log[max(0, len(x.log)-mmFsxLogTail):]
	x.t.Fatalf("fsx seed %#x (TMPMOUNT_FSX_SEED=%#x), op %d: %s\nlast %d ops:\n  %s",
		x.seed, x.seed, x.op, fmt.Sprintf(format, args...), len(tail), strings.Join(tail, "\n  "))
}

func (x *mmFsx) logf(format string, args ...any) {
	x.log = append(x.log, fmt.Sprintf("#%d ", x.op)+fmt.Sprintf(format, args...))
	if len(x.log) > 4*mmFsxLogTail {
		x.log = append([]string(nil), x.log[len(x.log)-mmFsxLogTail:]...)
	}
}

func (x *mmFsx) create() {
	fd, err := unix.Open(x.path, unix.O_RDWR|unix.O_CREAT|unix.O_EXCL|unix.O_CLOEXEC, 0o644)
	if err != nil {
		x.fail("create %s: %v", x.path, err)
	}
	x.fds = []int{fd}
	x.model = nil
	x.mustDisk, x.mayDisk, x.sawDisk = false, false, false
}

func (x *mmFsx) closeAll() {
	for _, fd := range x.fds {
		if err := unix.Close(fd); err != nil {
			x.fail("close fd %d: %v", fd, err)
		}
	}
	x.fds = nil
}

func (x *mmFsx) fd() int { return x.fds[x.rng.IntN(len(x.fds))] }

func (x *mmFsx) size() int64 { return int64(len(x.model)) }

func (x *mmFsx) randBytes(n int64) []byte {
	b := make([]byte, n)
	for i := 0; i < len(b); i += 8 {
		v := x.rng.Uint64()
		for j := 0; j < 8 && i+j < len(b); j++ {
			b[i+j] = byte(v >> (8 * j))
		}
	}
	return b
}

// offset picks an offset below mmFsxMaxLen: near the rollover boundary,
// near the end of file, or anywhere.
func (x *mmFsx) offset() int64 {
	var off int64
	switch x.rng.IntN(4) {
	case 0:
		off = mmFsxBoundary - 8192 + x.rng.Int64N(16384)
	case 1:
		off = x.size() - 4096 + x.rng.Int64N(8192)
	default:
		off = x.rng.Int64N(mmFsxMaxLen)
	}
	return min(max(off, 0), mmFsxMaxLen-1)
}

// length picks a length for an operation at off that ends within
// mmFsxMaxLen: tiny, whole pages, or anything up to mmFsxMaxOp.
func (x *mmFsx) length(off int64) int64 {
	var n int64
	switch x.rng.IntN(4) {
	case 0:
		n = 1 + x.rng.Int64N(16)
	case 1:
		n = mmPage * (1 + x.rng.Int64N(4))
	default:
		n = 1 + x.rng.Int64N(mmFsxMaxOp)
	}
	return max(1, min(n, mmFsxMaxLen-off))
}

// newSize picks a size for a truncate: 0, around the boundary, a little off
// the current size, or anything.
func (x *mmFsx) newSize() int64 {
	switch x.rng.IntN(6) {
	case 0:
		return 0
	case 1, 2:
		return mmFsxBoundary - 4096 + x.rng.Int64N(8192)
	case 3:
		return min(max(x.size()-2048+x.rng.Int64N(4096), 0), mmFsxMaxLen)
	}
	return x.rng.Int64N(mmFsxMaxLen + 1)
}

func (x *mmFsx) past(end int64) bool { return x.maxSize > 0 && end > x.maxSize }

func (x *mmFsx) resize(n int64) {
	if n <= x.size() {
		x.model = x.model[:n]
		return
	}
	x.model = append(x.model, make([]byte, n-x.size())...)
}

func (x *mmFsx) step() {
	type op struct {
		name   string
		weight int
		run    func()
	}
	ops := []op{
		{"pwrite", 18, x.opPwrite},
		{"pread", 10, x.opPread},
		{"mapread", 10, x.opMapRead},
		{"mapwrite", 10, x.opMapWrite},
		{"truncate", 10, x.opTruncate},
		{"punch", 6, x.opPunch},
		{"fallocate", 8, x.opFallocate},
		{"reopen", 4, x.opReopen},
		{"open2", 3, x.opOpenAnother},
		{"spill", 1, x.opSpill},
		{"recreate", 1, x.opRecreate},
	}
	total := 0
	for _, o := range ops {
		total += o.weight
	}
	pick := x.rng.IntN(total)
	for _, o := range ops {
		if pick < o.weight {
			x.counts[o.name]++
			o.run()
			break
		}
		pick -= o.weight
	}
	x.checkSize()
	x.checkResidency()
}

func (x *mmFsx) opPwrite() {
	fd := x.fd()
	off := x.offset()
	data := x.randBytes(x.length(off))
	end := off + int64(len(data))
	x.logf("pwrite fd=%d off=%d len=%d end=%d (size %d)", fd, off, len(data), end, x.size())
	n, err := unix.Pwrite(fd, data, off)
	if err != nil || n != len(data) {
		x.fail("pwrite(fd %d, %d bytes at %d) = %d, %v", fd, len(data), off, n, err)
	}
	if end > x.size() {
		x.resize(end)
	}
	copy(x.model[off:], data)
	if x.past(end) {
		x.mustDisk, x.mayDisk = true, true
	}
}

func (x *mmFsx) opPread() {
	fd := x.fd()
	off := x.offset()
	n := x.length(off)
	x.logf("pread fd=%d off=%d len=%d (size %d)", fd, off, n, x.size())
	buf := make([]byte, n)
	got, err := unix.Pread(fd, buf, off)
	if err != nil {
		x.fail("pread(fd %d, %d at %d): %v", fd, n, off, err)
	}
	var want []byte
	if off < x.size() {
		want = x.model[off:min(off+n, x.size())]
	}
	if !bytes.Equal(buf[:got], want) {
		x.fail("pread(fd %d, %d at %d): %s (file offset %d)", fd, n, off, mmDescribeDiff(buf[:got], want), off+int64(mmFirstDiff(buf[:got], want)))
	}
}

func (x *mmFsx) opMapRead() {
	size := x.size()
	fd := x.fd()
	flags, kind := unix.MAP_SHARED, "MAP_SHARED"
	if x.rng.IntN(2) == 0 {
		flags, kind = unix.MAP_PRIVATE, "MAP_PRIVATE"
	}
	if size == 0 {
		x.logf("mapread skipped (empty file)")
		return
	}
	x.logf("mapread fd=%d %s PROT_READ len=%d", fd, kind, size)
	b, err := unix.Mmap(fd, 0, int(size), unix.PROT_READ, flags)
	if err != nil {
		x.fail("mmap(fd %d, %d, %s): %v", fd, size, kind, err)
	}
	// Only [0, size) is touched: past EOF is SIGBUS.
	diff := mmFirstDiff(b, x.model)
	var desc string
	if diff >= 0 {
		desc = mmDescribeDiff(b, x.model)
	}
	if err := unix.Munmap(b); err != nil {
		x.fail("munmap: %v", err)
	}
	if diff >= 0 {
		x.fail("mapped read (%s): %s", kind, desc)
	}
}

// opMapWrite writes through a mapping: MAP_SHARED mostly (which reaches the
// file and rolls it over), sometimes MAP_PRIVATE (which must change
// neither the file nor its residency).
func (x *mmFsx) opMapWrite() {
	size := x.size()
	fd := x.fd()
	if size == 0 {
		x.logf("mapwrite skipped (empty file)")
		return
	}
	flags, kind := unix.MAP_SHARED, "MAP_SHARED"
	if x.rng.IntN(4) == 0 {
		flags, kind = unix.MAP_PRIVATE, "MAP_PRIVATE"
	}
	off := x.rng.Int64N(size)
	n := 1 + x.rng.Int64N(min(mmFsxMaxOp, size-off))
	data := x.randBytes(n)
	x.logf("mapwrite fd=%d %s len=%d: %d bytes at %d, msync, munmap", fd, kind, size, n, off)
	b, err := unix.Mmap(fd, 0, int(size), unix.PROT_READ|unix.PROT_WRITE, flags)
	if err != nil {
		x.fail("mmap(fd %d, %d, %s rw): %v", fd, size, kind, err)
	}
	copy(b[off:off+n], data)
	if err := unix.Msync(b, unix.MS_SYNC); err != nil {
		x.fail("msync: %v", err)
	}
	if err := unix.Munmap(b); err != nil {
		x.fail("munmap: %v", err)
	}
	if flags == unix.MAP_SHARED {
		copy(x.model[off:], data)
		x.mustDisk, x.mayDisk = true, true
	}
}

func (x *mmFsx) opTruncate() {
	fd := x.fd()
	n := x.newSize()
	x.logf("ftruncate fd=%d %d -> %d", fd, x.size(), n)
	if err := unix.Ftruncate(fd, n); err != nil {
		x.fail("ftruncate(fd %d, %d): %v", fd, n, err)
	}
	x.resize(n)
	if x.past(n) {
		x.mustDisk, x.mayDisk = true, true
	}
}

func (x *mmFsx) opPunch() {
	fd := x.fd()
	off := x.offset()
	n := x.length(off)
	x.logf("fallocate fd=%d PUNCH_HOLE|KEEP_SIZE off=%d len=%d (size %d)", fd, off, n, x.size())
	if err := unix.Fallocate(fd, unix.FALLOC_FL_PUNCH_HOLE|unix.FALLOC_FL_KEEP_SIZE, off, n); err != nil {
		x.fail("fallocate(fd %d, PUNCH_HOLE|KEEP_SIZE, %d, %d): %v", fd, off, n, err)
	}
	if off < x.size() {
		clear(x.model[off:min(off+n, x.size())])
	}
}

func (x *mmFsx) opFallocate() {
	fd := x.fd()
	off := x.offset()
	n := x.length(off)
	mode, name := uint32(0), "0"
	if x.rng.IntN(2) == 0 {
		mode, name = unix.FALLOC_FL_KEEP_SIZE, "KEEP_SIZE"
	}
	end := off + n
	x.logf("fallocate fd=%d mode=%s off=%d len=%d end=%d (size %d)", fd, name, off, n, end, x.size())
	if err := unix.Fallocate(fd, mode, off, n); err != nil {
		x.fail("fallocate(fd %d, %s, %d, %d): %v", fd, name, off, n, err)
	}
	if mode == 0 && end > x.size() {
		x.resize(end)
	}
	if x.past(end) {
		x.mayDisk = true
		if mode == 0 {
			x.mustDisk = true
		}
	}
}

// opReopen closes every descriptor and opens the file again: a file on
// disk with no handle left then opens in passthrough (where it is on).
func (x *mmFsx) opReopen() {
	x.logf("reopen (close %d fds)", len(x.fds))
	x.closeAll()
	fd, err := unix.Open(x.path, unix.O_RDWR|unix.O_CLOEXEC, 0)
	if err != nil {
		x.fail("reopen %s: %v", x.path, err)
	}
	x.fds = []int{fd}
}

func (x *mmFsx) opOpenAnother() {
	if len(x.fds) >= 3 {
		x.logf("open2 skipped (%d fds open)", len(x.fds))
		return
	}
	fd, err := unix.Open(x.path, unix.O_RDWR|unix.O_CLOEXEC, 0)
	x.logf("open another fd -> %d (%v)", fd, err)
	if err != nil {
		x.fail("second open of %s: %v", x.path, err)
	}
	x.fds = append(x.fds, fd)
}

func (x *mmFsx) opSpill() {
	fd := x.fd()
	x.logf("fsetxattr fd=%d %s", fd, mmSpillAttr)
	if err := unix.Fsetxattr(fd, mmSpillAttr, []byte("1"), 0); err != nil {
		x.fail("fsetxattr(%s): %v", mmSpillAttr, err)
	}
	x.mustDisk, x.mayDisk = true, true
}

// opRecreate replaces the file with a new, empty one (in RAM again).
func (x *mmFsx) opRecreate() {
	x.logf("recreate (close all, unlink, create)")
	x.closeAll()
	if err := unix.Unlink(x.path); err != nil {
		x.fail("unlink %s: %v", x.path, err)
	}
	x.create()
	x.recreates++
}

func (x *mmFsx) checkSize() {
	for _, fd := range x.fds {
		var st unix.Stat_t
		if err := unix.Fstat(fd, &st); err != nil {
			x.fail("fstat fd %d: %v", fd, err)
		}
		if st.Size != x.size() {
			x.fail("fstat(fd %d).st_size = %d, want %d", fd, st.Size, x.size())
		}
	}
}

func (x *mmFsx) checkResidency() {
	buf := make([]byte, 16)
	n, err := unix.Fgetxattr(x.fds[0], residencyAttr, buf)
	if err != nil {
		x.fail("fgetxattr(%s): %v", residencyAttr, err)
	}
	got := string(buf[:n])
	switch {
	case x.mustDisk && got != "disk":
		x.fail("residency %q, want \"disk\" (the file went past max-size %d, was written through a shared mapping, or was spilled)", got, x.maxSize)
	case !x.mayDisk && got != "memory":
		x.fail("residency %q, want \"memory\" (nothing has taken the file past max-size %d, written it through a shared mapping or spilled it)", got, x.maxSize)
	case x.sawDisk && got != "disk":
		x.fail("residency went from \"disk\" back to %q", got)
	}
	x.sawDisk = got == "disk"
}

func (x *mmFsx) checkContents() {
	fd := x.fds[0]
	got, err := mmReadAll(fd)
	if err != nil {
		x.fail("read(2) of the whole file (fd %d): %v", fd, err)
	}
	if !bytes.Equal(got, x.model) {
		x.fail("read(2) of the whole file (fd %d) against the model: %s", fd, mmDescribeDiff(got, x.model))
	}
}

// ---------------------------------------------------------------------------
// 2. Coherence of shared mappings and read(2)/write(2) across processes

func TestMmapCoherence(t *testing.T) {
	type target struct {
		name string
		kind *mmKind // nil: the reference tmpfs
	}
	targets := []target{{name: "tmpfs"}}
	for i := range mmPassthroughKinds {
		targets = append(targets, target{name: mmPassthroughKinds[i].name, kind: &mmPassthroughKinds[i]})
	}
	files := []mmCoherenceFile{
		// In RAM; a shared mapped write rolls it over while both map it.
		{name: "ram-mapped-write-rolls", size: 32 << 10, residency: "memory"},
		// In RAM; write(2) grows it past max-size while both map it.
		{name: "ram-write-grows", size: 32 << 10, residency: "memory", growFirst: true},
		// On disk from the start: both opens are passthrough where on.
		{name: "disk", size: 96 << 10, residency: "disk"},
	}
	for _, tg := range targets {
		t.Run(tg.name, func(t *testing.T) {
			var dir string
			if tg.kind == nil {
				dir = mmMountTmpfs(t)
			} else {
				dir = mmStart(t, *tg.kind).Dir
			}
			for _, f := range files {
				t.Run(f.name, func(t *testing.T) {
					mmCoherence(t, filepath.Join(dir, "coh-"+f.name), f, tg.kind != nil)
				})
			}
		})
	}
}

type mmCoherenceFile struct {
	name      string
	size      int    // at creation; max-size is 64 KiB
	residency string // after creation
	growFirst bool   // grow past max-size with write(2) before any mapped write
}

// mmCoherence has process A (this one) and process B (an agent) map the
// file MAP_SHARED and checks, in both directions, that a mapped write
// followed by msync shows in the other's read(2) and mapping, and that a
// write(2) shows in the other's existing mapping; across a rollover while
// mapped; and that B touching its mapping past a new, smaller EOF dies of
// SIGBUS. checkResidency: on tmpmount (not tmpfs).
func mmCoherence(t *testing.T, path string, f mmCoherenceFile, checkResidency bool) {
	size := f.size
	residency := func(want string) {
		t.Helper()
		if checkResidency {
			mmWantResidency(t, path, want)
		}
	}
	model := mmBytes("coherence", size)
	mmWriteFile(t, path, model)
	residency(f.residency)

	b := mmStartAgent(t, "B")
	b.do("open %s", path)
	b.do("map %d", size)
	fd := mmOpen(t, path, unix.O_RDWR)
	defer unix.Close(fd)
	am := mmMap(t, fd, size, unix.PROT_READ|unix.PROT_WRITE, unix.MAP_SHARED)
	mapped := true
	defer func() {
		if mapped {
			unix.Munmap(am)
		}
	}()

	// write(2) in one process shows in the other's existing mapping, on a
	// page the mapping has already faulted in, as soon as write returns.
	mmCheckBytes(t, "B mapping before A's write(2)", b.mget(100, 1000), model[100:1100])
	p1 := mmBytes("p1", 1000)
	mmPwrite(t, fd, p1, 100)
	copy(model[100:], p1)
	mmCheckBytes(t, "B's existing mapping right after A's write(2) returned", b.mget(100, 1000), p1)
	mmSink = am[12000] // fault the page in first
	p2 := mmBytes("p2", 1500)
	b.pwrite(12000, p2)
	copy(model[12000:], p2)
	mmCheckBytes(t, "A's existing mapping right after B's write(2) returned", am[12000:13500], p2)
	residency(f.residency) // write(2) within max-size does not roll over

	grown := false
	grow := func() {
		t.Helper()
		// Grow the file with write(2) past max-size while both map it.
		p := mmBytes("grow", 64<<10)
		mmPwrite(t, fd, p, int64(size))
		model = append(model, p...)
		residency("disk")
		grown = true
		q := mmBytes("after-grow", 700)
		mmPwrite(t, fd, q, 8000)
		copy(model[8000:], q)
		mmCheckBytes(t, "B mapping after the file grew past max-size and A wrote", b.mget(8000, 700), q)
		mmCheckBytes(t, "A mapping after the file grew and A wrote", am[8000:8700], q)
		r := mmBytes("after-grow-B", 900)
		b.mset(24000, r)
		b.do("msync")
		copy(model[24000:], r)
		mmCheckBytes(t, "A read(2) after B's mapped write to the grown file", mmPread(t, fd, 24000, 900), r)
		mmCheckBytes(t, "A mapping after B's mapped write to the grown file", am[24000:24900], r)
	}
	if f.growFirst {
		grow()
	}

	// A writes through its mapping and msyncs (a RAM file rolls over now,
	// mapped by both): B's read(2) and B's mapping see it.
	p3 := mmBytes("p3", 3000)
	copy(am[5000:], p3)
	mmMsync(t, am)
	copy(model[5000:], p3)
	residency("disk")
	mmCheckBytes(t, "B read(2) after A's mapped write + msync", b.pread(5000, 3000), p3)
	mmCheckBytes(t, "B mapping after A's mapped write + msync", b.mget(5000, 3000), p3)

	// B writes through its mapping and msyncs: A's read(2) and A's
	// mapping see it.
	p4 := mmBytes("p4", 2000)
	b.mset(20000, p4)
	b.do("msync")
	copy(model[20000:], p4)
	mmCheckBytes(t, "A read(2) after B's mapped write + msync", mmPread(t, fd, 20000, 2000), p4)
	mmCheckBytes(t, "A mapping after B's mapped write + msync", am[20000:22000], p4)
	// And write(2) into mapped pages again, now that the file is on disk.
	p5 := mmBytes("p5", 600)
	mmPwrite(t, fd, p5, 150)
	copy(model[150:], p5)
	mmCheckBytes(t, "B's existing mapping after A's write(2) to the file on disk", b.mget(150, 600), p5)

	if !grown {
		grow()
	}
	mmCheckBytes(t, "B mapping of the original length", b.mget(0, size), model[:size])
	mmCheckBytes(t, "A mapping of the original length", am, model[:size])
	got, err := mmReadAll(fd)
	if err != nil {
		t.Fatal(err)
	}
	mmCheckBytes(t, "A read(2) of the whole grown file", got, model)

	// Truncate under B's mapping: below the new EOF still reads, past it
	// is SIGBUS.
	mmUnmap(t, am)
	mapped = false
	if err := unix.Ftruncate(fd, mmPage); err != nil {
		t.Fatalf("ftruncate to %d: %v", mmPage, err)
	}
	mmCheckBytes(t, "B mapping below the new EOF", b.mget(100, 10), model[100:110])
	b.send("mget %d 1", 2*mmPage)
	if r, ok := b.await(mmReplyTimeout); ok {
		t.Fatalf("B read its mapping past the new EOF: answer %q, want death by SIGBUS", mmShort(r))
	}
	if sig := b.waitSignal(mmReplyTimeout); sig != syscall.SIGBUS {
		t.Fatalf("B touching its mapping past the new EOF: %s, want killed by SIGBUS", b.exitState())
	}
	if st := mmFstat(t, fd); st.Size != mmPage {
		t.Fatalf("size after ftruncate: %d, want %d", st.Size, mmPage)
	}
}

// ---------------------------------------------------------------------------
// 3. A write through a shared mapping rolls a file over; others do not

func TestMmapWriteRollsOver(t *testing.T) {
	for _, kind := range mmPassthroughKinds {
		t.Run(kind.name, func(t *testing.T) {
			m := mmStart(t, kind)
			const size = 8 << 10

			t.Run("read-only shared mapping stays in memory", func(t *testing.T) {
				path := m.Path("ro")
				data := mmBytes("ro", size)
				mmWriteFile(t, path, data)
				mmWantResidency(t, path, "memory")
				fd := mmOpen(t, path, unix.O_RDONLY)
				b := mmMap(t, fd, size, unix.PROT_READ, unix.MAP_SHARED)
				mmCheckBytes(t, "read-only mapping", b, data)
				mmMsync(t, b)
				mmWantResidency(t, path, "memory")
				mmUnmap(t, b)
				mmClose(t, fd)
				mmWantResidency(t, path, "memory")
			})

			t.Run("private mapping write stays in memory", func(t *testing.T) {
				path := m.Path("private")
				data := mmBytes("private", size)
				mmWriteFile(t, path, data)
				fd := mmOpen(t, path, unix.O_RDWR)
				b := mmMap(t, fd, size, unix.PROT_READ|unix.PROT_WRITE, unix.MAP_PRIVATE)
				copy(b[100:], bytes.Repeat([]byte{0xAB}, 5000))
				mmMsync(t, b)
				mmWantResidency(t, path, "memory")
				mmUnmap(t, b)
				mmClose(t, fd)
				mmWantResidency(t, path, "memory")
				mmCheckFile(t, path, data)
			})

			t.Run("shared mapping write rolls over", func(t *testing.T) {
				path := m.Path("shared")
				data := mmBytes("shared", size)
				mmWriteFile(t, path, data)
				mmWantResidency(t, path, "memory")
				fd := mmOpen(t, path, unix.O_RDWR)
				b := mmMap(t, fd, size, unix.PROT_READ|unix.PROT_WRITE, unix.MAP_SHARED)
				patch := mmBytes("patch", 3000)
				copy(b[4000:], patch)
				copy(data[4000:], patch)
				mmMsync(t, b)
				waitFor(t, 5*time.Second, "residency disk after a shared mapped write + msync", func() bool {
					return readResidency(t, path) == "disk"
				})
				mmCheckBytes(t, "read(2) while still mapped", mmPread(t, fd, 0, size), data)
				mmUnmap(t, b)
				mmClose(t, fd)
				mmCheckFile(t, path, data)
				mmWantResidency(t, path, "disk")
				if st := mmStat(t, path); st.Size != size {
					t.Fatalf("size %d, want %d", st.Size, size)
				}
			})
		})
	}
}

// ---------------------------------------------------------------------------
// 4. The user.tmpmount.spill xattr

func TestMmapSpillXattr(t *testing.T) {
	for _, kind := range mmPassthroughKinds {
		t.Run(kind.name, func(t *testing.T) {
			m := mmStart(t, kind)

			t.Run("file", func(t *testing.T) {
				path := m.Path("spill-me")
				data := mmBytes("spill", 10000)
				mmWriteFile(t, path, data)
				mmWantResidency(t, path, "memory")
				if err := unix.Setxattr(path, mmSpillAttr, nil, 0); err != nil {
					t.Fatalf("setxattr %s (empty value): %v", mmSpillAttr, err)
				}
				mmWantResidency(t, path, "disk")
				if err := unix.Setxattr(path, mmSpillAttr, []byte("again"), 0); err != nil {
					t.Fatalf("setxattr %s a second time: %v, want success (idempotent)", mmSpillAttr, err)
				}
				mmWantResidency(t, path, "disk")
				if st := mmStat(t, path); st.Size != int64(len(data)) {
					t.Fatalf("size after spill %d, want %d", st.Size, len(data))
				}
				mmCheckFile(t, path, data)

				// Write-only: reading and removing it give ENODATA; it is
				// not listed.
				if _, err := unix.Getxattr(path, mmSpillAttr, make([]byte, 64)); err != unix.ENODATA {
					t.Errorf("getxattr %s: %v, want ENODATA", mmSpillAttr, err)
				}
				if err := unix.Removexattr(path, mmSpillAttr); err != unix.ENODATA {
					t.Errorf("removexattr %s: %v, want ENODATA", mmSpillAttr, err)
				}
				list := make([]byte, 4096)
				n, err := unix.Listxattr(path, list)
				if err != nil {
					t.Fatalf("listxattr: %v", err)
				}
				if strings.Contains(string(list[:n]), "tmpmount") {
					t.Errorf("listxattr lists %q, want no user.tmpmount.* name", list[:n])
				}
				mmWantResidency(t, path, "disk")
				mmCheckFile(t, path, data)

				// With every handle closed, a new open of the spilled file
				// is passthrough where that is on.
				a := mmStartAgent(t, "reader")
				a.do("open %s", path)
				a.do("dontneed")
				got := a.bytesOf(mmAgentIO(t, m, a, kind.passthrough, "pread 0 %d", len(data)))
				mmCheckBytes(t, "agent read of the spilled file", got, data)
				a.do("close")
			})

			t.Run("empty file", func(t *testing.T) {
				path := m.Path("empty")
				mmWriteFile(t, path, nil)
				if err := unix.Setxattr(path, mmSpillAttr, []byte("1"), 0); err != nil {
					t.Fatalf("setxattr %s on an empty file: %v", mmSpillAttr, err)
				}
				mmWantResidency(t, path, "disk")
				if st := mmStat(t, path); st.Size != 0 || st.Blocks != 0 {
					t.Fatalf("spilled empty file: size %d blocks %d, want 0 and 0", st.Size, st.Blocks)
				}
				mmCheckFile(t, path, nil)
			})

			t.Run("while open and mapped", func(t *testing.T) {
				path := m.Path("spill-mapped")
				data := mmBytes("spill-mapped", 12000)
				mmWriteFile(t, path, data)
				fd := mmOpen(t, path, unix.O_RDWR)
				defer unix.Close(fd)
				b := mmMap(t, fd, len(data), unix.PROT_READ|unix.PROT_WRITE, unix.MAP_SHARED)
				defer unix.Munmap(b)
				mmCheckBytes(t, "mapping before the spill", b, data)
				if err := unix.Fsetxattr(fd, mmSpillAttr, []byte("1"), 0); err != nil {
					t.Fatalf("fsetxattr %s: %v", mmSpillAttr, err)
				}
				mmWantResidency(t, path, "disk")
				mmCheckBytes(t, "mapping after the spill", b, data)
				p := mmBytes("after-spill", 777)
				mmPwrite(t, fd, p, 3000)
				copy(data[3000:], p)
				mmCheckBytes(t, "mapping after a write(2) following the spill", b, data)
				q := mmBytes("mapped-after-spill", 555)
				copy(b[9000:], q)
				copy(data[9000:], q)
				mmMsync(t, b)
				mmCheckBytes(t, "read(2) after a mapped write following the spill", mmPread(t, fd, 0, len(data)), data)
				mmCheckFile(t, path, data)
			})

			t.Run("directory", func(t *testing.T) {
				// On a directory, spill is just another unknown
				// user.tmpmount.* name: set and remove are EPERM, get is
				// ENODATA. (On a file, an unknown name behaves the same.)
				dir := m.Path("spill-dir")
				if err := os.Mkdir(dir, 0o755); err != nil {
					t.Fatal(err)
				}
				file := m.Path("plain")
				mmWriteFile(t, file, []byte("x"))
				type outcome struct{ set, get, remove error }
				probe := func(path, name string) outcome {
					var o outcome
					o.set = unix.Setxattr(path, name, []byte("1"), 0)
					_, o.get = unix.Getxattr(path, name, make([]byte, 64))
					o.remove = unix.Removexattr(path, name)
					return o
				}
				want := outcome{set: unix.EPERM, get: unix.ENODATA, remove: unix.EPERM}
				for _, c := range []struct{ what, path, name string }{
					{"directory, spill", dir, mmSpillAttr},
					{"directory, unknown name", dir, "user.tmpmount.no-such-name"},
					{"file, unknown name", file, "user.tmpmount.no-such-name"},
				} {
					if got := probe(c.path, c.name); got != want {
						t.Errorf("%s (%s): set/get/remove = %v/%v/%v, want %v/%v/%v", c.what, c.name,
							got.set, got.get, got.remove, want.set, want.get, want.remove)
					}
				}
			})
		})
	}
}

// ---------------------------------------------------------------------------
// 5. Passthrough is really used, and only when allowed

func TestMmapPassthroughBypassesDaemon(t *testing.T) {
	for _, kind := range mmPassthroughKinds {
		t.Run(kind.name, func(t *testing.T) {
			m := mmStart(t, kind)
			path := m.Path("pt")
			model := mmBytes("pt", 16<<10)
			mmWriteFile(t, path, model)

			// A file in RAM is never passthrough: its read needs the daemon.
			ram := mmStartAgent(t, "ram-reader")
			ram.do("open %s", path)
			ram.do("dontneed")
			got := ram.bytesOf(mmAgentIO(t, m, ram, false, "pread 0 %d", len(model)))
			mmCheckBytes(t, "read of the RAM file", got, model)
			ram.do("close")

			// Opened before the rollover: the handle stays cached and
			// keeps working after it.
			fdA := mmOpen(t, path, unix.O_RDWR)
			grow := mmBytes("grow", 112<<10)
			mmPwrite(t, fdA, grow, int64(len(model)))
			model = append(model, grow...)
			mmWantResidency(t, path, "disk")
			gotA, err := mmReadAll(fdA)
			if err != nil {
				t.Fatalf("read through the handle opened before rollover: %v", err)
			}
			mmCheckBytes(t, "read through the handle opened before rollover", gotA, model)

			// A second open while that one is open works (no EIO) and is
			// coherent with it.
			fdB, err := unix.Open(path, unix.O_RDWR|unix.O_CLOEXEC, 0)
			if err != nil {
				t.Fatalf("second open while a pre-rollover handle is open: %v, want success", err)
			}
			gotB, err := mmReadAll(fdB)
			if err != nil {
				t.Fatalf("read through the second handle: %v", err)
			}
			mmCheckBytes(t, "read through the second handle", gotB, model)
			q := mmBytes("q", 3000)
			mmPwrite(t, fdB, q, 1000)
			copy(model[1000:], q)
			mmCheckBytes(t, "first handle reads the second's write", mmPread(t, fdA, 1000, 3000), q)

			// Another open while cached handles exist is cached too: its
			// read needs the daemon.
			mid := mmStartAgent(t, "while-cached")
			mid.do("open %s", path)
			mid.do("dontneed")
			got = mid.bytesOf(mmAgentIO(t, m, mid, false, "pread 1000 3000"))
			mmCheckBytes(t, "agent read while cached handles are open", got, q)
			mid.do("close")
			mmClose(t, fdA)
			mmClose(t, fdB)

			// All handles closed: a new open is passthrough where it is on.
			// Its reads and writes then need no daemon.
			pt := mmStartAgent(t, "after-close")
			pt.do("open %s", path)
			pt.do("dontneed")
			got = pt.bytesOf(mmAgentIO(t, m, pt, kind.passthrough, "pread 0 %d", len(model)))
			mmCheckBytes(t, "agent read of the rolled-over file after all handles closed", got, model)
			// A write first asks the daemon for security.capability
			// (file_remove_privs) whenever the kernel refreshed the
			// inode's attributes since the last write (that clears
			// S_NOSEC); an ordinary write first settles that, so the
			// stopped one below tests the data path alone.
			pt.pwrite(0, model[:1])
			w := mmBytes("w", 5000)
			mmAgentIO(t, m, pt, kind.passthrough, "pwrite %d %x", len(model)-1000, w)
			model = append(model[:len(model)-1000], w...)
			mmCheckBytes(t, "agent pread of its own write", pt.pread(len(model)-5000, 5000), w)
			if st := mmStat(t, path); st.Size != int64(len(model)) {
				t.Fatalf("size after the agent's write: %d, want %d", st.Size, len(model))
			}
			mmCheckFile(t, path, model)
			pt.do("close")
		})
	}
}

// ---------------------------------------------------------------------------
// 6. Times and sizes of passthrough files

func TestMmapPassthroughTimes(t *testing.T) {
	targets := []struct {
		name string
		kind *mmKind // nil: the reference tmpfs
	}{
		{name: "tmpfs"},
		{name: "passthrough", kind: &mmPassthroughKinds[0]},
	}
	for _, tg := range targets {
		t.Run(tg.name, func(t *testing.T) {
			var m *Mount
			var dir string
			if tg.kind == nil {
				dir = mmMountTmpfs(t)
			} else {
				m = mmStart(t, *tg.kind)
				dir = m.Dir
			}
			mmPassthroughTimes(t, m, filepath.Join(dir, "times"))
		})
	}
}

// mmPassthroughTimes: m is nil on tmpfs; on tmpmount every agent read and
// write runs with the daemon stopped, which shows it is passthrough.
func mmPassthroughTimes(t *testing.T, m *Mount, path string) {
	data := mmBytes("times", 96<<10)
	mmWriteFile(t, path, data)
	if m != nil {
		mmWantResidency(t, path, "disk")
	}
	stPre := mmStat(t, path)
	mmNextTick()
	// The first passthrough open: the daemon gives the backing file the
	// node's times then.
	a := mmStartAgent(t, "io")
	a.do("open %s", path)
	agentIO := func(format string, args ...any) string {
		t.Helper()
		if m == nil {
			return a.do(format, args...)
		}
		return mmAgentIO(t, m, a, true, format, args...)
	}
	agentIO("pread 0 4096") // also makes the kernel fetch the attributes again
	fd := mmOpen(t, path, unix.O_RDONLY)
	defer unix.Close(fd)
	// stat and fstat must agree on everything that matters here.
	statBoth := func(what string) unix.Stat_t {
		t.Helper()
		st, fst := mmStat(t, path), mmFstat(t, fd)
		if st.Size != fst.Size || st.Blocks != fst.Blocks || st.Atim != fst.Atim || st.Mtim != fst.Mtim || st.Ctim != fst.Ctim {
			t.Fatalf("%s: stat and fstat disagree: stat size=%d blocks=%d atime=%s mtime=%s ctime=%s; fstat size=%d blocks=%d atime=%s mtime=%s ctime=%s",
				what, st.Size, st.Blocks, mmTs(st.Atim), mmTs(st.Mtim), mmTs(st.Ctim),
				fst.Size, fst.Blocks, mmTs(fst.Atim), mmTs(fst.Mtim), mmTs(fst.Ctim))
		}
		return st
	}
	st0 := statBoth("after open and a read")
	if st0.Mtim != stPre.Mtim || st0.Ctim != stPre.Ctim {
		t.Errorf("opening and reading changed mtime %s -> %s, ctime %s -> %s; want both unchanged",
			mmTs(stPre.Mtim), mmTs(st0.Mtim), mmTs(stPre.Ctim), mmTs(st0.Ctim))
	}

	// A write that grows the file. The stat above refreshed the inode's
	// attributes, which makes the kernel's next write to it ask the daemon
	// for security.capability (file_remove_privs), passthrough or not; an
	// ordinary one-byte rewrite settles that, so that the growing write
	// can run with the daemon stopped.
	mmNextTick()
	a.pwrite(0, data[:1])
	agentIO("pwrite %d %x", len(data), mmBytes("more", 64<<10))
	st1 := statBoth("after a growing write")
	if want := int64(len(data) + 64<<10); st1.Size != want {
		t.Errorf("size after the write: %d, want %d", st1.Size, want)
	}
	if st1.Blocks <= st0.Blocks {
		t.Errorf("st_blocks after growing by 64 KiB: %d, want more than %d", st1.Blocks, st0.Blocks)
	}
	if !mmTsAfter(st1.Mtim, st0.Mtim) || !mmTsAfter(st1.Ctim, st0.Ctim) {
		t.Errorf("after a write: mtime %s -> %s, ctime %s -> %s; want both later", mmTs(st0.Mtim), mmTs(st1.Mtim), mmTs(st0.Ctim), mmTs(st1.Ctim))
	}

	// utimensat to the past shows exactly those times.
	mmNextTick()
	past := []unix.Timespec{{Sec: 981173106, Nsec: 700000000}, {Sec: 1012708800, Nsec: 123456789}} // 2001-02-03, 2002-02-03
	if err := unix.UtimesNanoAt(unix.AT_FDCWD, path, past, 0); err != nil {
		t.Fatalf("utimensat: %v", err)
	}
	st2 := statBoth("after utimensat to the past")
	if st2.Atim != past[0] || st2.Mtim != past[1] {
		t.Errorf("after utimensat: atime %s mtime %s, want %s and %s", mmTs(st2.Atim), mmTs(st2.Mtim), mmTs(past[0]), mmTs(past[1]))
	}
	if !mmTsAfter(st2.Ctim, st1.Ctim) {
		t.Errorf("utimensat left ctime at %s (was %s), want it later", mmTs(st2.Ctim), mmTs(st1.Ctim))
	}

	// relatime: a read updates atime when atime is not after mtime or
	// ctime...
	mmNextTick()
	var before unix.Timespec
	unix.ClockGettime(unix.CLOCK_REALTIME_COARSE, &before)
	agentIO("pread 0 4096")
	st3 := statBoth("after a read")
	if mmTsAfter(before, st3.Atim) || st3.Atim.Sec > time.Now().Unix()+1 {
		t.Errorf("atime after a read (atime was before mtime): %s, want now (at or after %s)", mmTs(st3.Atim), mmTs(before))
	}
	if st3.Mtim != past[1] || st3.Ctim != st2.Ctim {
		t.Errorf("a read changed mtime/ctime: %s/%s, want %s/%s", mmTs(st3.Mtim), mmTs(st3.Ctim), mmTs(past[1]), mmTs(st2.Ctim))
	}
	// ...and leaves it alone when it is after both (and not a day old).
	mmNextTick()
	agentIO("pread 4096 4096")
	st4 := statBoth("after a second read")
	if st4.Atim != st3.Atim {
		t.Errorf("relatime: a second read moved atime %s -> %s, want unchanged", mmTs(st3.Atim), mmTs(st4.Atim))
	}
	// A write makes mtime and ctime newer than atime, so the next read
	// updates atime again.
	mmNextTick()
	a.pwrite(0, []byte("0123456789")) // after a stat: asks the daemon for security.capability (see above)
	st5 := statBoth("after a small write")
	if !mmTsAfter(st5.Mtim, st4.Mtim) || !mmTsAfter(st5.Ctim, st4.Ctim) || st5.Atim != st4.Atim || st5.Size != st4.Size {
		t.Errorf("after an overwrite: mtime %s -> %s, ctime %s -> %s, atime %s -> %s, size %d -> %d; want mtime and ctime later, atime and size unchanged",
			mmTs(st4.Mtim), mmTs(st5.Mtim), mmTs(st4.Ctim), mmTs(st5.Ctim), mmTs(st4.Atim), mmTs(st5.Atim), st4.Size, st5.Size)
	}
	mmNextTick()
	agentIO("pread 0 10")
	st6 := statBoth("after a read following the write")
	if !mmTsAfter(st6.Atim, st5.Atim) {
		t.Errorf("relatime: a read after a write left atime at %s (mtime %s), want it updated", mmTs(st6.Atim), mmTs(st6.Mtim))
	}
	t.Logf("atime: after utimensat %s, 1st read %s, 2nd read %s, after write+read %s", mmTs(st2.Atim), mmTs(st3.Atim), mmTs(st4.Atim), mmTs(st6.Atim))

	// A write replaces an mtime set in the future with the time of the
	// write, as every write does.
	future := []unix.Timespec{{Sec: time.Now().Unix() + 365*24*3600, Nsec: 5}, {Sec: time.Now().Unix() + 400*24*3600, Nsec: 7}}
	if err := unix.UtimesNanoAt(unix.AT_FDCWD, path, future, 0); err != nil {
		t.Fatalf("utimensat: %v", err)
	}
	st7 := statBoth("after utimensat to the future")
	if st7.Atim != future[0] || st7.Mtim != future[1] {
		t.Errorf("after utimensat: atime %s mtime %s, want %s and %s", mmTs(st7.Atim), mmTs(st7.Mtim), mmTs(future[0]), mmTs(future[1]))
	}
	mmNextTick()
	unix.ClockGettime(unix.CLOCK_REALTIME_COARSE, &before)
	a.pwrite(100, []byte("abc"))
	st8 := statBoth("after a write following utimensat to the future")
	if mmTsAfter(before, st8.Mtim) || st8.Mtim.Sec > time.Now().Unix()+1 {
		t.Errorf("mtime after a write (mtime was set to %s): %s, want the time of the write (at or after %s)", mmTs(future[1]), mmTs(st8.Mtim), mmTs(before))
	}
	if st8.Atim != future[0] {
		t.Errorf("a write changed atime %s -> %s", mmTs(future[0]), mmTs(st8.Atim))
	}
	a.do("close")
}

// ---------------------------------------------------------------------------
// 7. The close delete policy and mappings

func TestMmapClosePolicy(t *testing.T) {
	for _, kind := range mmPassthroughKinds {
		t.Run(kind.name, func(t *testing.T) {
			m := mmStart(t, kind, "--delete", "close")
			// Files made in "hold" get the unmount policy, so that a
			// rolled-over file can exist with no handle open (and then open
			// in passthrough); it is given the close policy afterwards.
			hold := m.Path("hold")
			if err := os.Mkdir(hold, 0o755); err != nil {
				t.Fatal(err)
			}
			if err := unix.Setxattr(hold, "user.tmpmount.delete", []byte("unmount"), 0); err != nil {
				t.Fatalf("setxattr user.tmpmount.delete=unmount on a directory: %v", err)
			}
			barriers := 0
			// barrier: create and close a close-policy file and wait for it
			// to go. Its release follows any release sent before it, so
			// once it is gone, an earlier release has been seen too.
			barrier := func() {
				t.Helper()
				barriers++
				p := m.Path(fmt.Sprintf("barrier-%d", barriers))
				mmWriteFile(t, p, []byte("b"))
				waitFor(t, 5*time.Second, "close-policy file "+p+" to go after its close", func() bool { return !mmExists(p) })
			}

			t.Run("ram", func(t *testing.T) {
				path := m.Path("mapped-ram")
				data := mmBytes("close-ram", 8000)
				fd := mmOpen(t, path, unix.O_RDWR|unix.O_CREAT|unix.O_EXCL)
				mmPwrite(t, fd, data, 0)
				mmClosePolicyMapped(t, path, fd, data, barrier)
			})

			t.Run("disk", func(t *testing.T) {
				staged := filepath.Join(hold, "mapped-disk")
				data := mmBytes("close-disk", 96<<10)
				mmWriteFile(t, staged, data)
				mmWantResidency(t, staged, "disk")
				if err := unix.Setxattr(staged, "user.tmpmount.delete", []byte("close"), 0); err != nil {
					t.Fatalf("setxattr user.tmpmount.delete=close: %v", err)
				}
				fd := mmOpen(t, staged, unix.O_RDWR) // passthrough where on
				mmClosePolicyMapped(t, staged, fd, data, barrier)
			})
		})
	}
}

// mmClosePolicyMapped maps the close-policy file open as fd, closes fd, and
// checks the file lives while mapped and goes at munmap.
func mmClosePolicyMapped(t *testing.T, path string, fd int, data []byte, barrier func()) {
	t.Helper()
	b := mmMap(t, fd, len(data), unix.PROT_READ|unix.PROT_WRITE, unix.MAP_SHARED)
	mapped := true
	defer func() {
		if mapped {
			unix.Munmap(b)
		}
	}()
	mmClose(t, fd)
	barrier()
	if !mmExists(path) {
		t.Fatalf("%s is gone after close(2) while still mapped: want it to live until munmap (the mapping holds a handle)", filepath.Base(path))
	}
	mmCheckBytes(t, "mapping after close(2)", b, data)
	p := mmBytes("late", 1000)
	copy(b[2000:], p)
	copy(data[2000:], p)
	mmMsync(t, b)
	mmCheckFile(t, path, data) // this open and close keep the file: the mapping's handle is still there
	barrier()
	if !mmExists(path) {
		t.Fatalf("%s is gone after another open and close while mapped", filepath.Base(path))
	}
	mmUnmap(t, b)
	mapped = false
	waitFor(t, 5*time.Second, filepath.Base(path)+" to go after munmap", func() bool { return !mmExists(path) })
	if _, err := os.Stat(path); !errors.Is(err, os.ErrNotExist) {
		t.Fatalf("stat after munmap: %v, want ENOENT", err)
	}
}

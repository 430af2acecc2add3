package e2e

// Tests that drive tmpmount with real, unmodified programs: a shell, cp,
// tar, git, python3 with sqlite, unix sockets, FIFOs, a venv, cc and go
// build, flock(1) and POSIX record locks. Each test runs on its own mount.
// The data-heavy ones run twice: with the default --max-size (everything
// stays in RAM) and with --max-size 64k, so that files roll over to disk in
// the middle of the program's work.
//
// Helpers of this file carry a "prog" prefix so that they cannot collide
// with helpers of other test files in the package.

import (
	"bufio"
	"bytes"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"math/rand/v2"
	"os"
	"os/exec"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"golang.org/x/sys/unix"
)

// progTimeout bounds every program run by these tests.
const progTimeout = 60 * time.Second

// progSizeSettings are the two --max-size settings the data-heavy tests
// run under. bigResidency is what user.tmpmount.residency must say for a
// file well over 64 KiB once the program is done with it.
var progSizeSettings = []struct {
	name         string
	args         []string
	bigResidency string
}{
	{name: "default-max-size", args: nil, bigResidency: "memory"},
	{name: "max-size-64k", args: []string{"--max-size", "64k"}, bigResidency: "disk"},
}

// ---------------------------------------------------------------------
// Running programs

// progRequire skips a test whose program is not installed (fails under
// CI=true) and returns its path.
func progRequire(t *testing.T, name string) string {
	t.Helper()
	p, err := exec.LookPath(name)
	if err == nil {
		return p
	}
	if os.Getenv("CI") == "true" {
		t.Fatalf("%s is required under CI=true: %v", name, err)
	}
	t.Skipf("%s not installed: %v", name, err)
	return ""
}

var (
	progPythonOnce sync.Once
	progPythonPath string
	progPythonErr  error
)

// progPython returns the real python3 interpreter (sys.executable), not a
// shim that may depend on $HOME (pyenv).
func progPython(t *testing.T) string {
	t.Helper()
	shim := progRequire(t, "python3")
	progPythonOnce.Do(func() {
		out, err := exec.Command(shim, "-c", "import sys; print(sys.executable)").Output()
		progPythonPath, progPythonErr = strings.TrimSpace(string(out)), err
		if err == nil && progPythonPath == "" {
			progPythonErr = errors.New("sys.executable is empty")
		}
	})
	if progPythonErr != nil {
		t.Fatalf("find the python3 interpreter: %v", progPythonErr)
	}
	return progPythonPath
}

// progRun describes one run of a program.
type progRun struct {
	dir   string   // working directory
	env   []string // added to the test's environment (later entries win)
	stdin []byte
	name  string
	args  []string
}

func (r progRun) command() *exec.Cmd {
	cmd := exec.Command(r.name, r.args...)
	cmd.Dir = r.dir
	cmd.Env = append(append(os.Environ(), "LC_ALL=C"), r.env...)
	if r.stdin != nil {
		cmd.Stdin = bytes.NewReader(r.stdin)
	}
	return cmd
}

func (r progRun) String() string {
	return strings.Join(append([]string{r.name}, r.args...), " ")
}

// try runs the program to its end and returns its stdout, stderr and exit
// code. It fails the test if the program cannot start or outlives
// progTimeout.
func (r progRun) try(t *testing.T) (stdout, stderr string, code int) {
	t.Helper()
	cmd := r.command()
	var outBuf, errBuf bytes.Buffer
	cmd.Stdout, cmd.Stderr = &outBuf, &errBuf
	if err := cmd.Start(); err != nil {
		t.Fatalf("start %s: %v", r, err)
	}
	err := progWait(t, cmd, r.String())
	var ee *exec.ExitError
	switch {
	case err == nil:
		code = 0
	case errors.As(err, &ee):
		code = ee.ExitCode()
	default:
		t.Fatalf("%s: %v", r, err)
	}
	return outBuf.String(), errBuf.String(), code
}

// run runs the program, fails the test unless it exits 0, and returns its
// stdout.
func (r progRun) run(t *testing.T) string {
	t.Helper()
	stdout, stderr, code := r.try(t)
	if code != 0 {
		t.Fatalf("%s (in %s): exit code %d\nstdout:\n%s\nstderr:\n%s", r, r.dir, code, stdout, stderr)
	}
	return stdout
}

// progWait waits for a started command, killing it and failing the test
// if it outlives progTimeout.
func progWait(t *testing.T, cmd *exec.Cmd, what string) error {
	t.Helper()
	done := make(chan error, 1)
	go func() { done <- cmd.Wait() }()
	select {
	case err := <-done:
		return err
	case <-time.After(progTimeout):
		cmd.Process.Kill()
		<-done
		t.Fatalf("%s did not finish within %v", what, progTimeout)
		return nil
	}
}

// progBackground is a program running next to the test, with its stdin
// held open and its stdout read line by line.
type progBackground struct {
	what   string
	cmd    *exec.Cmd
	stdin  io.WriteCloser
	lines  chan string // stdout lines; closed at EOF
	stderr *syncBuffer
	done   chan struct{} // closed once the process has exited
	err    error         // cmd.Wait's result, valid after done
}

// start starts the program in the background. At test end a program that
// is still running is killed.
func (r progRun) start(t *testing.T) *progBackground {
	t.Helper()
	cmd := r.command()
	cmd.Stdin = nil
	stdin, err := cmd.StdinPipe()
	if err != nil {
		t.Fatal(err)
	}
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	p := &progBackground{
		what:   r.String(),
		cmd:    cmd,
		stdin:  stdin,
		lines:  make(chan string, 1024),
		stderr: &syncBuffer{},
		done:   make(chan struct{}),
	}
	cmd.Stderr = p.stderr
	if err := cmd.Start(); err != nil {
		t.Fatalf("start %s: %v", r, err)
	}
	go func() {
		sc := bufio.NewScanner(stdout)
		for sc.Scan() {
			p.lines <- sc.Text()
		}
		close(p.lines)
		p.err = cmd.Wait() // only after every read from the pipe is done
		close(p.done)
	}()
	t.Cleanup(func() {
		select {
		case <-p.done:
		default:
			cmd.Process.Kill()
			<-p.done
		}
	})
	return p
}

// expectLine waits for the next stdout line and fails unless it is want.
func (p *progBackground) expectLine(t *testing.T, want string) {
	t.Helper()
	select {
	case got, ok := <-p.lines:
		if !ok {
			<-p.done
			t.Fatalf("%s: stdout ended (exit %v) while waiting for %q\nstderr:\n%s", p.what, p.err, want, p.stderr)
		}
		if got != want {
			t.Fatalf("%s: stdout line = %q, want %q\nstderr:\n%s", p.what, got, want, p.stderr)
		}
	case <-time.After(progTimeout):
		t.Fatalf("%s: no stdout line within %v (want %q)\nstderr:\n%s", p.what, progTimeout, want, p.stderr)
	}
}

// finish closes the program's stdin, waits for it to exit and fails the
// test unless it exited 0.
func (p *progBackground) finish(t *testing.T) {
	t.Helper()
	p.stdin.Close()
	select {
	case <-p.done:
	case <-time.After(progTimeout):
		t.Fatalf("%s did not exit within %v after its stdin was closed", p.what, progTimeout)
	}
	if p.err != nil {
		t.Fatalf("%s: %v\nstderr:\n%s", p.what, p.err, p.stderr)
	}
}

// ---------------------------------------------------------------------
// Files, residency and deterministic data

// progResidency returns a file's user.tmpmount.residency ("memory" or
// "disk").
func progResidency(t *testing.T, path string) string {
	t.Helper()
	buf := make([]byte, 64)
	n, err := unix.Getxattr(path, "user.tmpmount.residency", buf)
	if err != nil {
		t.Fatalf("getxattr %s user.tmpmount.residency: %v", path, err)
	}
	return string(buf[:n])
}

// progCheckResidency fails the test unless path's residency is want.
func progCheckResidency(t *testing.T, path, want string) {
	t.Helper()
	if got := progResidency(t, path); got != want {
		var size int64 = -1
		if fi, err := os.Stat(path); err == nil {
			size = fi.Size()
		}
		t.Errorf("%s (size %d): user.tmpmount.residency = %q, want %q", path, size, got, want)
	}
}

// progBytes returns n deterministic, incompressible bytes derived from seed.
func progBytes(seed string, n int) []byte {
	sum := sha256.Sum256([]byte(seed))
	r := rand.NewChaCha8(sum)
	b := make([]byte, n)
	r.Read(b)
	return b
}

func progWriteFile(t *testing.T, path string, data []byte, mode os.FileMode) {
	t.Helper()
	if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(path, data, mode); err != nil {
		t.Fatal(err)
	}
}

func progReadFile(t *testing.T, path string) string {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}

func progSHA256(b []byte) string {
	s := sha256.Sum256(b)
	return hex.EncodeToString(s[:])
}

// progRefDir returns a directory to build reference data in: a fresh tmpfs
// when running as root (tmpfs is the reference for tmpmount), else a
// temporary directory.
func progRefDir(t *testing.T) string {
	t.Helper()
	dir := t.TempDir()
	if os.Geteuid() != 0 {
		return dir
	}
	if err := syscall.Mount("tmpfs", dir, "tmpfs", 0, "mode=755"); err != nil {
		t.Fatalf("mount tmpfs on %s: %v", dir, err)
	}
	t.Cleanup(func() {
		if err := syscall.Unmount(dir, 0); err != nil {
			t.Errorf("unmount tmpfs %s: %v", dir, err)
		}
	})
	return dir
}

// ---------------------------------------------------------------------
// A sample tree and tree comparison

// progTreeFile is a regular file of the sample tree.
type progTreeFile struct {
	path string
	size int
	mode uint32
}

// progTreeFiles are the sample tree's regular files: sizes around page
// and 64 KiB boundaries, and odd modes.
var progTreeFiles = []progTreeFile{
	{path: "data/empty", size: 0, mode: 0o644},
	{path: "data/one", size: 1, mode: 0o600},
	{path: "data/page-minus-1", size: 4095, mode: 0o640},
	{path: "data/page", size: 4096, mode: 0o444},
	{path: "data/page-plus-1", size: 4097, mode: 0o755},
	{path: "data/64k-minus-1", size: 65535, mode: 0o644},
	{path: "data/64k", size: 65536, mode: 0o604},
	{path: "data/64k-plus-1", size: 65537, mode: 0o664},
	{path: "data/big", size: 200000, mode: 0o644},
	{path: "data/hard-a", size: 70000, mode: 0o640},
	{path: "data/setuid", size: 100, mode: 0o4755},
	{path: "dirs/setgid/setgid-file", size: 10, mode: 0o2750},
	{path: "dirs/private/secret", size: 123, mode: 0o400},
	{path: "name with spaces & ünïcode", size: 42, mode: 0o644},
}

// progTreeDirs are the sample tree's directories (parents first), with
// their modes.
var progTreeDirs = []struct {
	path string
	mode uint32
}{
	{path: ".", mode: 0o755},
	{path: "data", mode: 0o755},
	{path: "dirs", mode: 0o751},
	{path: "dirs/private", mode: 0o700},
	{path: "dirs/sticky", mode: 0o1777},
	{path: "dirs/setgid", mode: 0o2775},
	{path: "empty", mode: 0o755},
	{path: "links", mode: 0o755},
	{path: "nested", mode: 0o755},
	{path: "nested/empty", mode: 0o711},
	{path: "nested/empty/deeper", mode: 0o555},
}

// progTreeSymlinks are the sample tree's symlinks: name -> target.
var progTreeSymlinks = map[string]string{
	"links/rel":      "../data/big",
	"links/dangling": "no/such/target",
	"links/abs":      "/nonexistent/absolute/target",
	"links/dir":      "../dirs",
}

// progTreeXattrs are setfattr arguments for the sample tree's user.*
// xattrs: path, name, value (setfattr syntax: 0x... is hex).
var progTreeXattrs = [][3]string{
	{"data/one", "user.comment", "hello world"},
	{"data/empty", "user.empty", ""},
	{"data/big", "user.binary", "0x00ff10"},
	{"data/hard-a", "user.shared", "seen through both names"},
	{"data/64k", "user.long", strings.Repeat("0123456789", 100)},
	{"dirs", "user.dir", "on a directory"},
	{"dirs/private", "user.a", "1"},
	{"dirs/private", "user.b", "2"},
}

// progSparseSize is the size of the sample tree's sparse file, with data
// at its start, middle and end and holes between.
const progSparseSize = 1 << 20

// progTreeMtime is the mtime the sample tree gives its i-th entry: in the
// past, distinct per entry, with a nanosecond part.
func progTreeMtime(i int) (sec, nsec int64) {
	return 978307200 + int64(i)*86401, (int64(i)*123456789 + 1) % 1e9
}

// progBuildTree creates the sample tree at root (which must not exist):
// regular files of varied sizes and modes, a sparse file, symlinks, a hard
// link pair, a FIFO, empty directories, user.* xattrs set with setfattr and
// mtimes in the past set with touch -d.
func progBuildTree(t *testing.T, root string) {
	t.Helper()
	progRequire(t, "setfattr")
	for _, d := range progTreeDirs {
		if err := os.MkdirAll(filepath.Join(root, d.path), 0o755); err != nil {
			t.Fatal(err)
		}
	}
	for _, f := range progTreeFiles {
		progWriteFile(t, filepath.Join(root, f.path), progBytes(f.path, f.size), 0o600)
	}
	sparse, err := os.Create(filepath.Join(root, "data/sparse"))
	if err != nil {
		t.Fatal(err)
	}
	for off, s := range map[int64]string{0: "head", progSparseSize / 2: "middle", progSparseSize - 4: "tail"} {
		if _, err := sparse.WriteAt([]byte(s), off); err != nil {
			t.Fatal(err)
		}
	}
	if err := sparse.Close(); err != nil {
		t.Fatal(err)
	}
	if err := os.Link(filepath.Join(root, "data/hard-a"), filepath.Join(root, "dirs/private/hard-b")); err != nil {
		t.Fatal(err)
	}
	for name, target := range progTreeSymlinks {
		if err := os.Symlink(target, filepath.Join(root, name)); err != nil {
			t.Fatal(err)
		}
	}
	if err := syscall.Mkfifo(filepath.Join(root, "fifo"), 0o600); err != nil {
		t.Fatal(err)
	}
	for _, x := range progTreeXattrs {
		progRun{dir: root, name: "setfattr", args: []string{"-n", x[1], "-v", x[2], x[0]}}.run(t)
	}
	// Modes last but before the mtimes: setuid and setgid bits go after
	// the writes (a write clears them), and umask played no part.
	chmod := func(path string, mode uint32) {
		t.Helper()
		if err := syscall.Chmod(filepath.Join(root, path), mode); err != nil {
			t.Fatalf("chmod %s %o: %v", path, mode, err)
		}
	}
	for _, f := range progTreeFiles {
		chmod(f.path, f.mode)
	}
	chmod("data/sparse", 0o644)
	chmod("fifo", 0o620)
	for _, d := range progTreeDirs {
		chmod(d.path, d.mode)
	}
	// mtimes with touch -d, children before their directory.
	var paths []string
	err = filepath.WalkDir(root, func(path string, d os.DirEntry, err error) error {
		if err != nil {
			return err
		}
		paths = append(paths, path)
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	for i := len(paths) - 1; i >= 0; i-- {
		sec, nsec := progTreeMtime(i)
		progRun{name: "touch", args: []string{"-h", "-d", fmt.Sprintf("@%d.%09d", sec, nsec), paths[i]}}.run(t)
	}
}

// progTreeEntry is what progSnapshot records of one entry of a tree.
type progTreeEntry struct {
	Type     string // "dir", "file", "symlink", "fifo", "socket", "device"
	Perm     uint32 // mode & 07777
	UID, GID uint32
	Size     int64  // files and symlinks only
	SHA256   string // content of a regular file
	Target   string // of a symlink
	Mtime    time.Time
	Nlink    uint64   // non-directories only
	Linked   []string // the other paths of the tree with the same inode
	Xattrs   map[string]string
	XattrErr string
}

// progSnapshot records every entry of the tree at root, by path relative
// to root ("." is root itself). It does not follow symlinks. Only user.*
// xattrs are recorded.
func progSnapshot(t *testing.T, root string) map[string]progTreeEntry {
	t.Helper()
	snap := map[string]progTreeEntry{}
	inodes := map[uint64][]string{}
	ino := map[string]uint64{}
	err := filepath.WalkDir(root, func(path string, d os.DirEntry, err error) error {
		if err != nil {
			return err
		}
		rel, err := filepath.Rel(root, path)
		if err != nil {
			return err
		}
		var st syscall.Stat_t
		if err := syscall.Lstat(path, &st); err != nil {
			return err
		}
		e := progTreeEntry{
			Perm:  st.Mode & 0o7777,
			UID:   st.Uid,
			GID:   st.Gid,
			Mtime: time.Unix(st.Mtim.Sec, st.Mtim.Nsec),
		}
		switch st.Mode & syscall.S_IFMT {
		case syscall.S_IFDIR:
			e.Type = "dir"
		case syscall.S_IFREG:
			e.Type = "file"
			data, err := os.ReadFile(path)
			if err != nil {
				return err
			}
			e.SHA256 = progSHA256(data)
			e.Size = st.Size
		case syscall.S_IFLNK:
			e.Type = "symlink"
			if e.Target, err = os.Readlink(path); err != nil {
				return err
			}
			e.Size = st.Size
		case syscall.S_IFIFO:
			e.Type = "fifo"
		case syscall.S_IFSOCK:
			e.Type = "socket"
		default:
			e.Type = fmt.Sprintf("device(%o)", st.Mode&syscall.S_IFMT)
		}
		if e.Type != "dir" {
			e.Nlink = uint64(st.Nlink)
			inodes[st.Ino] = append(inodes[st.Ino], rel)
			ino[rel] = st.Ino
		}
		e.Xattrs, e.XattrErr = progUserXattrs(path)
		snap[rel] = e
		return nil
	})
	if err != nil {
		t.Fatalf("snapshot %s: %v", root, err)
	}
	for rel, i := range ino {
		e := snap[rel]
		for _, other := range inodes[i] {
			if other != rel {
				e.Linked = append(e.Linked, other)
			}
		}
		sort.Strings(e.Linked)
		snap[rel] = e
	}
	return snap
}

// progUserXattrs lists path's user.* xattrs without following a symlink.
func progUserXattrs(path string) (map[string]string, string) {
	size, err := unix.Llistxattr(path, nil)
	if err != nil {
		return nil, "llistxattr: " + err.Error()
	}
	buf := make([]byte, size)
	n, err := unix.Llistxattr(path, buf)
	if err != nil {
		return nil, "llistxattr: " + err.Error()
	}
	xattrs := map[string]string{}
	for _, name := range strings.Split(string(buf[:n]), "\x00") {
		if !strings.HasPrefix(name, "user.") {
			continue
		}
		vsize, err := unix.Lgetxattr(path, name, nil)
		if err != nil {
			return xattrs, "lgetxattr " + name + ": " + err.Error()
		}
		val := make([]byte, vsize)
		vn, err := unix.Lgetxattr(path, name, val)
		if err != nil {
			return xattrs, "lgetxattr " + name + ": " + err.Error()
		}
		xattrs[name] = string(val[:vn])
	}
	return xattrs, ""
}

// progDiffTrees compares two snapshots and returns every difference, one
// line each, sorted. mtimes are compared truncated to mtimeGranularity.
func progDiffTrees(want, got map[string]progTreeEntry, mtimeGranularity time.Duration) []string {
	var diffs []string
	add := func(path, format string, args ...any) {
		diffs = append(diffs, fmt.Sprintf("%q: ", path)+fmt.Sprintf(format, args...))
	}
	for path, w := range want {
		g, ok := got[path]
		if !ok {
			add(path, "missing (want a %s)", w.Type)
			continue
		}
		if g.Type != w.Type {
			add(path, "type %s, want %s", g.Type, w.Type)
			continue
		}
		if g.Perm != w.Perm {
			add(path, "mode %04o, want %04o", g.Perm, w.Perm)
		}
		if g.UID != w.UID || g.GID != w.GID {
			add(path, "owner %d:%d, want %d:%d", g.UID, g.GID, w.UID, w.GID)
		}
		if g.Size != w.Size {
			add(path, "size %d, want %d", g.Size, w.Size)
		}
		if g.SHA256 != w.SHA256 {
			add(path, "content sha256 %s, want %s", g.SHA256, w.SHA256)
		}
		if g.Target != w.Target {
			add(path, "symlink target %q, want %q", g.Target, w.Target)
		}
		if gm, wm := g.Mtime.Truncate(mtimeGranularity), w.Mtime.Truncate(mtimeGranularity); !gm.Equal(wm) {
			add(path, "mtime %s, want %s", g.Mtime.UTC().Format(time.RFC3339Nano), w.Mtime.UTC().Format(time.RFC3339Nano))
		}
		if g.Nlink != w.Nlink {
			add(path, "nlink %d, want %d", g.Nlink, w.Nlink)
		}
		if strings.Join(g.Linked, "\x00") != strings.Join(w.Linked, "\x00") {
			add(path, "hard-linked with %q, want %q", g.Linked, w.Linked)
		}
		if g.XattrErr != w.XattrErr {
			add(path, "xattr error %q, want %q", g.XattrErr, w.XattrErr)
		}
		for name, wv := range w.Xattrs {
			if gv, ok := g.Xattrs[name]; !ok {
				add(path, "xattr %s missing, want %q", name, wv)
			} else if gv != wv {
				add(path, "xattr %s = %q, want %q", name, gv, wv)
			}
		}
		for name, gv := range g.Xattrs {
			if _, ok := w.Xattrs[name]; !ok {
				add(path, "unexpected xattr %s = %q", name, gv)
			}
		}
	}
	for path, g := range got {
		if _, ok := want[path]; !ok {
			add(path, "unexpected %s", g.Type)
		}
	}
	sort.Strings(diffs)
	return diffs
}

// progCheckTrees fails the test with every difference between the trees.
func progCheckTrees(t *testing.T, what string, want, got map[string]progTreeEntry, mtimeGranularity time.Duration) {
	t.Helper()
	if diffs := progDiffTrees(want, got, mtimeGranularity); len(diffs) > 0 {
		t.Errorf("%s: %d differences:\n  %s", what, len(diffs), strings.Join(diffs, "\n  "))
	}
}

// progCheckSampleTree checks a snapshot of the sample tree against what
// progBuildTree made, so that a comparison of two copies cannot pass
// because both lost the same thing.
func progCheckSampleTree(t *testing.T, what string, snap map[string]progTreeEntry) {
	t.Helper()
	var diffs []string
	check := func(path string, ok bool, format string, args ...any) {
		if !ok {
			diffs = append(diffs, fmt.Sprintf("%q: ", path)+fmt.Sprintf(format, args...))
		}
	}
	for _, f := range progTreeFiles {
		e := snap[f.path]
		check(f.path, e.Type == "file" && e.Perm == f.mode && e.SHA256 == progSHA256(progBytes(f.path, f.size)),
			"got %s %04o sha256 %s, want file %04o with its bytes", e.Type, e.Perm, e.SHA256, f.mode)
	}
	sparse := make([]byte, progSparseSize)
	copy(sparse, "head")
	copy(sparse[progSparseSize/2:], "middle")
	copy(sparse[progSparseSize-4:], "tail")
	check("data/sparse", snap["data/sparse"].SHA256 == progSHA256(sparse), "content is not head/middle/tail with zeros between")
	for name, target := range progTreeSymlinks {
		check(name, snap[name].Target == target, "symlink target %q, want %q", snap[name].Target, target)
	}
	check("fifo", snap["fifo"].Type == "fifo" && snap["fifo"].Perm == 0o620, "got %s %04o, want fifo 0620", snap["fifo"].Type, snap["fifo"].Perm)
	for _, d := range progTreeDirs {
		check(d.path, snap[d.path].Type == "dir" && snap[d.path].Perm == d.mode, "got %s %04o, want dir %04o", snap[d.path].Type, snap[d.path].Perm, d.mode)
	}
	check("dirs/private/hard-b", len(snap["dirs/private/hard-b"].Linked) == 1 && snap["dirs/private/hard-b"].Linked[0] == "data/hard-a",
		"hard-linked with %q, want [data/hard-a]", snap["dirs/private/hard-b"].Linked)
	for _, x := range progTreeXattrs {
		want := x[2]
		if x[2] == "0x00ff10" {
			want = "\x00\xff\x10"
		}
		got, ok := snap[x[0]].Xattrs[x[1]]
		check(x[0], ok && got == want, "xattr %s = %q (present %v), want %q", x[1], got, ok, want)
	}
	if len(diffs) > 0 {
		t.Errorf("%s is not the sample tree: %d differences:\n  %s", what, len(diffs), strings.Join(diffs, "\n  "))
	}
}

// ---------------------------------------------------------------------
// 1. Shell

// TestProgramShell runs a sh -c script in the mount: > redirection and
// truncation, >> appends from many processes in a row (crossing 64 KiB),
// here-docs, cat, wc and sort, and compares every resulting file with the
// bytes it must hold.
func TestProgramShell(t *testing.T) {
	progRequire(t, "sh")
	const script = `set -e
printf 'pear\napple\nfig\n' > fruit
echo banana >> fruit
echo old contents that are longer > truncated
echo new > truncated
for i in $(seq 10 29); do
	sh -c 'yes "line$1" | head -c 5000 >> big' sh "$i"
done
cat > heredoc <<'EOF'
quoted $HOME $(not run)
	tab-indented line
EOF
cat <<EOF >> heredoc
expanded: $((6 * 7))
EOF
cat fruit heredoc > joined
wc -l < joined > joined.lines
wc -c < big > big.bytes
sort fruit > fruit.sorted
sort big > big.sorted
cat big big > big.twice
sort -r big.twice | head -n 3 > big.top3
`
	var big strings.Builder
	for i := 10; i <= 29; i++ {
		big.WriteString(strings.Repeat(fmt.Sprintf("line%d\n", i), 1000)[:5000])
	}
	bigLines := strings.Split(big.String(), "\n")
	sort.Strings(bigLines)
	twiceLines := strings.Split(big.String()+big.String(), "\n")
	sort.Sort(sort.Reverse(sort.StringSlice(twiceLines)))
	fruit := "pear\napple\nfig\nbanana\n"
	heredoc := "quoted $HOME $(not run)\n\ttab-indented line\nexpanded: 42\n"
	want := map[string]string{
		"fruit":        fruit,
		"truncated":    "new\n",
		"big":          big.String(),
		"heredoc":      heredoc,
		"joined":       fruit + heredoc,
		"joined.lines": "7\n",
		"big.bytes":    "100000\n",
		"fruit.sorted": "apple\nbanana\nfig\npear\n",
		"big.sorted":   strings.Join(bigLines, "\n") + "\n",
		"big.twice":    big.String() + big.String(),
		"big.top3":     strings.Join(twiceLines[:3], "\n") + "\n",
	}
	for _, setting := range progSizeSettings {
		t.Run(setting.name, func(t *testing.T) {
			m := startMount(t, setting.args...)
			progRun{dir: m.Dir, name: "sh", args: []string{"-c", script}}.run(t)
			for name, w := range want {
				if got := progReadFile(t, m.Path(name)); got != w {
					t.Errorf("%s: got %d bytes, want %d; got prefix %q, want prefix %q",
						name, len(got), len(w), progPrefix(got), progPrefix(w))
				}
			}
			progCheckResidency(t, m.Path("big"), setting.bigResidency)
			progCheckResidency(t, m.Path("big.twice"), setting.bigResidency)
			progCheckResidency(t, m.Path("fruit"), "memory")
		})
	}
}

// progPrefix shortens s for a failure message.
func progPrefix(s string) string {
	if len(s) > 80 {
		return s[:80] + "..."
	}
	return s
}

// ---------------------------------------------------------------------
// 2. cp -a

// TestProgramCpArchive copies the sample tree with cp -a from a temporary
// directory into the mount and back out to another temporary directory,
// and compares all three trees: names, types, modes, owners, sizes,
// contents, symlink targets, mtimes (to the nanosecond where the source
// file system keeps them), hard links and user.* xattrs.
func TestProgramCpArchive(t *testing.T) {
	progRequire(t, "cp")
	for _, setting := range progSizeSettings {
		t.Run(setting.name, func(t *testing.T) {
			m := startMount(t, setting.args...)
			src := filepath.Join(t.TempDir(), "tree")
			progBuildTree(t, src)
			srcSnap := progSnapshot(t, src)
			progCheckSampleTree(t, "source "+src, srcSnap)

			granularity := time.Second
			if srcSnap["."].Mtime.Nanosecond() != 0 {
				granularity = time.Nanosecond // the source keeps nanoseconds
			}

			inMount := m.Path("tree")
			progRun{name: "cp", args: []string{"-a", src, inMount}}.run(t)
			mountSnap := progSnapshot(t, inMount)
			progCheckTrees(t, "cp -a into the mount", srcSnap, mountSnap, granularity)

			out := filepath.Join(t.TempDir(), "tree")
			progRun{name: "cp", args: []string{"-a", inMount, out}}.run(t)
			progCheckTrees(t, "cp -a back out of the mount", srcSnap, progSnapshot(t, out), granularity)

			for _, f := range []struct {
				path string
				want string
			}{
				{path: "data/one", want: "memory"},
				{path: "data/64k", want: "memory"}, // at the limit, not over it
				{path: "data/64k-plus-1", want: setting.bigResidency},
				{path: "data/big", want: setting.bigResidency},
				{path: "data/sparse", want: setting.bigResidency},
				{path: "dirs/private/hard-b", want: setting.bigResidency},
			} {
				progCheckResidency(t, filepath.Join(inMount, f.path), f.want)
			}
		})
	}
}

// ---------------------------------------------------------------------
// 3. tar

// progTarFlags are the flags that make a tar archive keep everything the
// sample tree has (nanosecond mtimes and user.* xattrs need the posix
// format) in a deterministic order.
var progTarFlags = []string{"--xattrs", "--xattrs-include=user.*", "--format=posix", "--sort=name"}

// TestProgramTar archives the sample tree inside the mount with tar -c
// --xattrs, extracts it into a second directory of the mount with tar -x
// --xattrs -p and compares the trees, checks tar -d finds no difference,
// and compares the archive's listing with that of an archive of the same
// tree made on a reference directory (tmpfs when root).
func TestProgramTar(t *testing.T) {
	progRequire(t, "tar")
	ref := filepath.Join(progRefDir(t), "tree")
	progBuildTree(t, ref)
	refArchive := filepath.Join(t.TempDir(), "ref.tar")
	progRun{dir: ref, name: "tar", args: append([]string{"-c", "-f", refArchive}, append(progTarFlags, ".")...)}.run(t)
	listArgs := []string{"-t", "-v", "--full-time", "--xattrs", "-f"}
	refListing := progRun{name: "tar", args: append(listArgs, refArchive)}.run(t)

	for _, setting := range progSizeSettings {
		t.Run(setting.name, func(t *testing.T) {
			m := startMount(t, setting.args...)
			tree, extracted, archive := m.Path("tree"), m.Path("extracted"), m.Path("archive.tar")
			progBuildTree(t, tree)
			treeSnap := progSnapshot(t, tree)
			progCheckSampleTree(t, "tree built in the mount", treeSnap)

			progRun{dir: tree, name: "tar", args: append([]string{"-c", "-f", archive}, append(progTarFlags, ".")...)}.run(t)
			if err := os.Mkdir(extracted, 0o755); err != nil {
				t.Fatal(err)
			}
			progRun{dir: extracted, name: "tar", args: []string{"-x", "-p", "--xattrs", "--xattrs-include=user.*", "-f", archive}}.run(t)
			progCheckTrees(t, "tree extracted by tar in the mount", treeSnap, progSnapshot(t, extracted), time.Nanosecond)

			if out, stderr, code := (progRun{dir: extracted, name: "tar", args: []string{"-d", "--xattrs", "-f", archive}}).try(t); code != 0 {
				t.Errorf("tar -d against the extracted tree: exit %d\n%s%s", code, out, stderr)
			}

			listing := progRun{name: "tar", args: append(listArgs, archive)}.run(t)
			if listing != refListing {
				t.Errorf("tar -tv of the archive made in the mount differs from one made on %s:\n%s",
					filepath.Dir(ref), progLineDiff(refListing, listing))
			}
			progCheckResidency(t, archive, setting.bigResidency)
			progCheckResidency(t, filepath.Join(extracted, "data/big"), setting.bigResidency)
		})
	}
}

// progLineDiff lists the lines only in want (-) and only in got (+).
func progLineDiff(want, got string) string {
	count := map[string]int{}
	for _, l := range strings.Split(want, "\n") {
		count[l]++
	}
	for _, l := range strings.Split(got, "\n") {
		count[l]--
	}
	var b strings.Builder
	for _, l := range strings.Split(want, "\n") {
		if count[l] > 0 {
			fmt.Fprintf(&b, "- %s\n", l)
		}
	}
	for _, l := range strings.Split(got, "\n") {
		if count[l] < 0 {
			fmt.Fprintf(&b, "+ %s\n", l)
		}
	}
	if b.Len() == 0 {
		return "(same lines in another order)\n"
	}
	return b.String()
}

// ---------------------------------------------------------------------
// 4. git

// TestProgramGit makes a repository in the mount, commits twice, checks
// status, log and contents, then gc (which packs) and fsck.
func TestProgramGit(t *testing.T) {
	progRequire(t, "git")
	home := t.TempDir()
	env := []string{
		"HOME=" + home,
		"XDG_CONFIG_HOME=" + filepath.Join(home, ".config"),
		"GIT_CONFIG_NOSYSTEM=1",
		"GIT_CONFIG_GLOBAL=" + filepath.Join(home, ".gitconfig"),
		"GIT_TERMINAL_PROMPT=0",
		"GIT_AUTHOR_DATE=2001-02-03T04:05:06Z",
		"GIT_COMMITTER_DATE=2001-02-03T04:05:06Z",
	}
	bigBlob := progBytes("git big.bin", 300000)
	for _, setting := range progSizeSettings {
		t.Run(setting.name, func(t *testing.T) {
			m := startMount(t, setting.args...)
			repo := m.Path("repo")
			git := func(args ...string) string {
				t.Helper()
				return progRun{dir: repo, env: env, name: "git", args: args}.run(t)
			}
			progRun{dir: m.Dir, env: env, name: "git", args: []string{"init", "-q", "-b", "main", "repo"}}.run(t)
			git("config", "user.name", "Tmpmount Test")
			git("config", "user.email", "test@tmpmount.invalid")
			if got := strings.TrimSpace(git("config", "core.filemode")); got != "true" {
				t.Errorf("git init probed core.filemode = %q, want true (chmod +x must be visible)", got)
			}

			progWriteFile(t, filepath.Join(repo, "README.md"), []byte("# tmpmount\n"), 0o644)
			progWriteFile(t, filepath.Join(repo, "big.bin"), bigBlob, 0o644)
			progWriteFile(t, filepath.Join(repo, "sub/dir/file.txt"), []byte("nested\n"), 0o644)
			progWriteFile(t, filepath.Join(repo, "run.sh"), []byte("#!/bin/sh\necho run\n"), 0o755)
			git("add", "-A")
			git("commit", "-q", "-m", "first")

			f, err := os.OpenFile(filepath.Join(repo, "README.md"), os.O_APPEND|os.O_WRONLY, 0)
			if err != nil {
				t.Fatal(err)
			}
			if _, err := f.WriteString("second line\n"); err != nil {
				t.Fatal(err)
			}
			if err := f.Close(); err != nil {
				t.Fatal(err)
			}
			if got, want := git("status", "--porcelain"), " M README.md\n"; got != want {
				t.Errorf("git status --porcelain after a change = %q, want %q", got, want)
			}
			git("commit", "-a", "-q", "-m", "second")
			if got := git("status", "--porcelain"); got != "" {
				t.Errorf("git status --porcelain after commit -a = %q, want empty", got)
			}

			log := strings.Split(strings.TrimSuffix(git("log", "--oneline"), "\n"), "\n")
			if len(log) != 2 || !strings.HasSuffix(log[0], " second") || !strings.HasSuffix(log[1], " first") {
				t.Errorf("git log --oneline = %q, want 2 commits: second, first", log)
			}

			git("gc", "-q")
			git("fsck", "--full", "--strict", "--no-dangling")
			counts := git("count-objects", "-v")
			for _, want := range []string{"count: 0\n", "packs: 1\n"} {
				if !strings.Contains(counts, want) {
					t.Errorf("git count-objects -v after gc lacks %q:\n%s", want, counts)
				}
			}

			for _, c := range []struct {
				rev  string
				want string
			}{
				{rev: "HEAD:README.md", want: "# tmpmount\nsecond line\n"},
				{rev: "HEAD~1:README.md", want: "# tmpmount\n"},
				{rev: "HEAD:sub/dir/file.txt", want: "nested\n"},
				{rev: "HEAD:big.bin", want: string(bigBlob)},
			} {
				if got := git("cat-file", "blob", c.rev); got != c.want {
					t.Errorf("git cat-file blob %s: got %d bytes (sha256 %s), want %d bytes (sha256 %s)",
						c.rev, len(got), progSHA256([]byte(got)), len(c.want), progSHA256([]byte(c.want)))
				}
			}
			if got := git("ls-files", "-s", "run.sh"); !strings.HasPrefix(got, "100755 ") {
				t.Errorf("git ls-files -s run.sh = %q, want mode 100755", got)
			}
			packs, err := filepath.Glob(filepath.Join(repo, ".git/objects/pack/*.pack"))
			if err != nil || len(packs) != 1 {
				t.Fatalf("packs after gc: %v, %v; want one", packs, err)
			}
			progCheckResidency(t, packs[0], setting.bigResidency)
		})
	}
}

// ---------------------------------------------------------------------
// 5. python3 + sqlite3

// progSQLiteWriter creates table t in the database argv[1] with journal
// mode argv[2] and argv[3] rows, in transactions of 500 rows, then runs
// and rolls back a transaction that must leave no trace.
const progSQLiteWriter = `
import hashlib, sqlite3, sys
path, journal, rows = sys.argv[1], sys.argv[2], int(sys.argv[3])

def row(i):
    name = "row-%d" % i
    return i, name, hashlib.sha256(name.encode()).digest() * 4

con = sqlite3.connect(path, isolation_level=None)
mode = con.execute("PRAGMA journal_mode=" + journal).fetchone()[0]
if mode != journal:
    sys.exit("journal_mode: got %r, want %r" % (mode, journal))
con.execute("CREATE TABLE t(id INTEGER PRIMARY KEY, name TEXT NOT NULL, payload BLOB NOT NULL)")
for start in range(0, rows, 500):
    con.execute("BEGIN")
    con.executemany("INSERT INTO t VALUES (?, ?, ?)", [row(i) for i in range(start, min(start + 500, rows))])
    con.execute("COMMIT")
con.execute("BEGIN")
con.executemany("INSERT INTO t VALUES (?, ?, ?)", [row(i) for i in range(rows, rows + 1000)])
con.execute("UPDATE t SET name = 'clobbered' WHERE id < 100")
con.execute("DELETE FROM t WHERE id % 3 = 0")
con.execute("ROLLBACK")
con.close()
`

// progSQLiteReader prints the row count and a checksum of table t.
const progSQLiteReader = `
import hashlib, sqlite3, sys
con = sqlite3.connect(sys.argv[1])
h, n = hashlib.sha256(), 0
for i, name, payload in con.execute("SELECT id, name, payload FROM t ORDER BY id"):
    h.update(("%d|%s|" % (i, name)).encode())
    h.update(payload)
    n += 1
print(n, h.hexdigest())
`

// TestProgramSQLite has python3 create a sqlite database in the mount
// (rollback journal and WAL), checks what a second process reads back
// against the rows the writer was given, and runs sqlite3's
// PRAGMA integrity_check on the result.
func TestProgramSQLite(t *testing.T) {
	python := progPython(t)
	sqlite := progRequire(t, "sqlite3")
	scripts := t.TempDir()
	writer, reader := filepath.Join(scripts, "writer.py"), filepath.Join(scripts, "reader.py")
	progWriteFile(t, writer, []byte(progSQLiteWriter), 0o644)
	progWriteFile(t, reader, []byte(progSQLiteReader), 0o644)

	const rows = 3000
	h := sha256.New()
	for i := 0; i < rows; i++ {
		name := fmt.Sprintf("row-%d", i)
		sum := sha256.Sum256([]byte(name))
		fmt.Fprintf(h, "%d|%s|", i, name)
		h.Write(bytes.Repeat(sum[:], 4))
	}
	wantRead := fmt.Sprintf("%d %s\n", rows, hex.EncodeToString(h.Sum(nil)))

	for _, journal := range []string{"delete", "wal"} {
		for _, setting := range progSizeSettings {
			t.Run(journal+"/"+setting.name, func(t *testing.T) {
				m := startMount(t, setting.args...)
				db := m.Path("test.db")
				progRun{dir: m.Dir, name: python, args: []string{writer, db, journal, strconv.Itoa(rows)}}.run(t)
				if got := (progRun{dir: m.Dir, name: python, args: []string{reader, db}}).run(t); got != wantRead {
					t.Errorf("rows read back (count checksum) = %q, want %q", got, wantRead)
				}
				if got := (progRun{dir: m.Dir, name: sqlite, args: []string{db, "PRAGMA integrity_check;"}}).run(t); got != "ok\n" {
					t.Errorf("sqlite3 PRAGMA integrity_check = %q, want \"ok\\n\"", got)
				}
				if got := (progRun{dir: m.Dir, name: sqlite, args: []string{db, "PRAGMA journal_mode;"}}).run(t); got != journal+"\n" {
					t.Errorf("sqlite3 PRAGMA journal_mode = %q, want %q", got, journal+"\n")
				}
				progCheckResidency(t, db, setting.bigResidency)
			})
		}
	}
}

// ---------------------------------------------------------------------
// 6. Unix socket

// progSocketServer binds a unix stream socket at argv[1] (relative to its
// working directory), says "listening", answers one client's line with
// "pong: " and the line, and exits.
const progSocketServer = `
import socket, sys
s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
s.bind(sys.argv[1])
s.listen(1)
print("listening", flush=True)
c, _ = s.accept()
data = b""
while not data.endswith(b"\n"):
    chunk = c.recv(65536)
    if not chunk:
        break
    data += chunk
c.sendall(b"pong: " + data)
c.close()
s.close()
`

// progSocketClient connects to the unix socket at argv[1], sends argv[2]
// and a newline, and prints the reply.
const progSocketClient = `
import socket, sys
s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
s.connect(sys.argv[1])
s.sendall(sys.argv[2].encode() + b"\n")
s.shutdown(socket.SHUT_WR)
reply = b""
while True:
    chunk = s.recv(65536)
    if not chunk:
        break
    reply += chunk
sys.stdout.write(reply.decode())
`

// TestProgramUnixSocket has a python3 server bind a unix socket in the
// mount and a client in another process connect to it through its path.
func TestProgramUnixSocket(t *testing.T) {
	python := progPython(t)
	m := startMount(t)
	if err := os.Mkdir(m.Path("run"), 0o755); err != nil {
		t.Fatal(err)
	}
	server := progRun{dir: m.Path("run"), name: python, args: []string{"-c", progSocketServer, "ctl.sock"}}.start(t)
	server.expectLine(t, "listening")

	fi, err := os.Lstat(m.Path("run", "ctl.sock"))
	if err != nil {
		t.Fatalf("lstat the bound socket: %v", err)
	}
	if fi.Mode().Type() != os.ModeSocket {
		t.Errorf("bound socket has type %v, want a socket", fi.Mode().Type())
	}

	msg := "ping " + strings.Repeat("x", 100000)
	got := progRun{dir: m.Dir, name: python, args: []string{"-c", progSocketClient, m.Path("run", "ctl.sock"), msg}}.run(t)
	if want := "pong: " + msg + "\n"; got != want {
		t.Errorf("client got %d bytes %q, want %d bytes %q", len(got), progPrefix(got), len(want), progPrefix(want))
	}
	server.finish(t)
}

// ---------------------------------------------------------------------
// 7. FIFO

// TestProgramFIFO makes a FIFO in the mount with mkfifo, and has a writer
// process (sh with > redirection) send a few hundred KiB through it to a
// reader process (cat).
func TestProgramFIFO(t *testing.T) {
	progRequire(t, "mkfifo")
	m := startMount(t)
	fifo := m.Path("pipe")
	progRun{dir: m.Dir, name: "mkfifo", args: []string{"-m", "0600", "pipe"}}.run(t)
	fi, err := os.Lstat(fifo)
	if err != nil {
		t.Fatal(err)
	}
	if fi.Mode().Type() != os.ModeNamedPipe || fi.Mode().Perm() != 0o600 {
		t.Fatalf("mkfifo made %v, want a named pipe with mode 0600", fi.Mode())
	}

	payload := progBytes("fifo payload", 300000) // several pipe buffers
	var got bytes.Buffer
	reader := progRun{dir: m.Dir, name: "cat", args: []string{"pipe"}}.command()
	reader.Stdout = &got
	var readerErr bytes.Buffer
	reader.Stderr = &readerErr
	if err := reader.Start(); err != nil {
		t.Fatal(err)
	}
	writer := progRun{dir: m.Dir, stdin: payload, name: "sh", args: []string{"-c", "cat > pipe"}}.command()
	var writerErr bytes.Buffer
	writer.Stderr = &writerErr
	if err := writer.Start(); err != nil {
		t.Fatal(err)
	}
	if err := progWait(t, writer, "fifo writer"); err != nil {
		t.Errorf("fifo writer: %v\n%s", err, writerErr.String())
	}
	if err := progWait(t, reader, "fifo reader"); err != nil {
		t.Errorf("fifo reader: %v\n%s", err, readerErr.String())
	}
	if !bytes.Equal(got.Bytes(), payload) {
		t.Errorf("reader got %d bytes (sha256 %s), want the %d bytes written (sha256 %s)",
			got.Len(), progSHA256(got.Bytes()), len(payload), progSHA256(payload))
	}
	if fi, err := os.Lstat(fifo); err != nil || fi.Mode().Type() != os.ModeNamedPipe || fi.Size() != 0 {
		t.Errorf("after the exchange: %v, %v; want an empty named pipe", fi, err)
	}
}

// ---------------------------------------------------------------------
// 8. python venv

// TestProgramVenv makes a venv in the mount and runs its python, which
// must report the venv as sys.prefix and import a module from the venv's
// site-packages (writing its __pycache__ there).
func TestProgramVenv(t *testing.T) {
	python := progPython(t)
	m := startMount(t)
	venv := m.Path("venv")
	// Python treats an empty variable as unset: this undoes a
	// PYTHONDONTWRITEBYTECODE=1 of the environment, so imports write
	// __pycache__ in the mount.
	env := []string{"PYTHONDONTWRITEBYTECODE=", "PYTHONPATH=", "PYTHONHOME="}
	progRun{dir: m.Dir, env: env, name: python, args: []string{"-m", "venv", "--without-pip", venv}}.run(t)
	venvPython := filepath.Join(venv, "bin", "python")

	got := progRun{dir: m.Dir, env: env, name: venvPython, args: []string{"-c",
		"import sys, sysconfig; print(sys.prefix); print(sys.prefix != sys.base_prefix); print(sysconfig.get_paths()['purelib'])"}}.run(t)
	lines := strings.Split(strings.TrimSuffix(got, "\n"), "\n")
	if len(lines) != 3 || lines[0] != venv || lines[1] != "True" || !strings.HasPrefix(lines[2], venv+"/") {
		t.Fatalf("venv python printed %q, want sys.prefix %q, True, and a purelib inside it", lines, venv)
	}

	progWriteFile(t, filepath.Join(lines[2], "probe_mod.py"), []byte("VALUE = 6 * 7\n"), 0o644)
	got = progRun{dir: m.Dir, env: env, name: venvPython, args: []string{"-c",
		"import probe_mod; print(probe_mod.VALUE, probe_mod.__file__)"}}.run(t)
	if want := fmt.Sprintf("42 %s\n", filepath.Join(lines[2], "probe_mod.py")); got != want {
		t.Errorf("import from the venv's site-packages printed %q, want %q", got, want)
	}
	if pyc, _ := filepath.Glob(filepath.Join(lines[2], "__pycache__", "probe_mod.*.pyc")); len(pyc) != 1 {
		t.Errorf("__pycache__ of the imported module: %q, want one .pyc", pyc)
	}
}

// ---------------------------------------------------------------------
// 9. Compilers

// progCSource has a 100000-byte initialised array, so that both the
// object file and the binary are over 64 KiB.
const progCSource = `#include <stdio.h>

static const unsigned char blob[100000] = {1, 2, 3, [99999] = 4};

int main(int argc, char **argv) {
	unsigned long sum = 0, blobsum = 0;
	for (unsigned long i = 1; i <= 1000; i++)
		sum += i * i;
	for (unsigned long i = 0; i < sizeof blob; i++)
		blobsum += blob[i];
	printf("hello from cc: sum=%lu blob=%lu argc=%d\n", sum, blobsum, argc);
	return 0;
}
`

// TestProgramCC compiles a C program in the mount with cc (with TMPDIR in
// the mount, so its temporary files are there too) and runs the binary
// from the mount.
func TestProgramCC(t *testing.T) {
	cc := progRequire(t, "cc")
	for _, setting := range progSizeSettings {
		t.Run(setting.name, func(t *testing.T) {
			m := startMount(t, setting.args...)
			src := m.Path("src")
			progWriteFile(t, filepath.Join(src, "hello.c"), []byte(progCSource), 0o644)
			if err := os.Mkdir(m.Path("tmp"), 0o700); err != nil {
				t.Fatal(err)
			}
			env := []string{"TMPDIR=" + m.Path("tmp")}
			// In one step (the assembler's input and the object file are
			// temporary files in TMPDIR), then compile and link apart.
			progRun{dir: src, env: env, name: cc, args: []string{"-O1", "-o", "hello-one-step", "hello.c"}}.run(t)
			progRun{dir: src, env: env, name: cc, args: []string{"-O1", "-c", "-o", "hello.o", "hello.c"}}.run(t)
			progRun{dir: src, env: env, name: cc, args: []string{"-o", "hello", "hello.o"}}.run(t)
			for _, bin := range []string{"./hello-one-step", "./hello"} {
				got := progRun{dir: src, name: bin, args: []string{"a", "b"}}.run(t)
				if want := "hello from cc: sum=333833500 blob=10 argc=3\n"; got != want {
					t.Errorf("%s printed %q, want %q", bin, got, want)
				}
			}
			if left, err := os.ReadDir(m.Path("tmp")); err != nil || len(left) != 0 {
				t.Errorf("TMPDIR after cc: %v, %v; want it empty (cc removes its temporary files)", left, err)
			}
			progCheckResidency(t, filepath.Join(src, "hello.o"), setting.bigResidency)
			progCheckResidency(t, filepath.Join(src, "hello"), setting.bigResidency)
		})
	}
}

// TestProgramGoBuild builds a tiny module with go build, with the module,
// GOCACHE and GOTMPDIR all in the mount, and runs the result. A fresh
// GOCACHE means compiling the runtime, which takes seconds, so this runs
// only with --max-size 64k, where the cache's files roll over to disk.
func TestProgramGoBuild(t *testing.T) {
	goTool := progRequire(t, "go")
	m := startMount(t, "--max-size", "64k")
	mod := m.Path("hello")
	progWriteFile(t, filepath.Join(mod, "go.mod"), []byte("module example.com/hello\n\ngo 1.21\n"), 0o644)
	progWriteFile(t, filepath.Join(mod, "main.go"), []byte("package main\n\nfunc main() {\n\tprintln(\"hello from go\", 6*7)\n}\n"), 0o644)
	for _, d := range []string{"gocache", "gotmp", "gopath"} {
		if err := os.Mkdir(m.Path(d), 0o755); err != nil {
			t.Fatal(err)
		}
	}
	env := []string{
		"HOME=" + t.TempDir(),
		"GOCACHE=" + m.Path("gocache"),
		"GOTMPDIR=" + m.Path("gotmp"),
		"GOPATH=" + m.Path("gopath"),
		"GOFLAGS=-mod=mod",
		"GOPROXY=off",
		"GOENV=off",
		"GOWORK=off",
		"GOTOOLCHAIN=local",
		"CGO_ENABLED=0",
	}
	progRun{dir: mod, env: env, name: goTool, args: []string{"build", "-o", "hello", "."}}.run(t)
	// println writes to stderr.
	stdout, stderr, code := progRun{dir: mod, name: "./hello"}.try(t)
	if code != 0 || stdout != "" || stderr != "hello from go 42\n" {
		t.Errorf("built program: exit %d, stdout %q, stderr %q; want exit 0, stderr %q", code, stdout, stderr, "hello from go 42\n")
	}
	progCheckResidency(t, filepath.Join(mod, "hello"), "disk")
	if entries, err := os.ReadDir(m.Path("gocache")); err != nil || len(entries) == 0 {
		t.Errorf("GOCACHE in the mount holds %d entries (%v), want the build's cache", len(entries), err)
	}
}

// ---------------------------------------------------------------------
// 10. Locks between processes

// TestProgramFlock has flock(1) in one process hold an exclusive lock on a
// file in the mount while flock -n in another fails with exit 1, and
// succeeds once the first has exited.
func TestProgramFlock(t *testing.T) {
	progRequire(t, "flock")
	m := startMount(t)
	progWriteFile(t, m.Path("lockfile"), nil, 0o644)

	holder := progRun{dir: m.Dir, name: "flock", args: []string{"-x", "lockfile", "-c", "echo held; read line || true"}}.start(t)
	holder.expectLine(t, "held")
	if out, stderr, code := (progRun{dir: m.Dir, name: "flock", args: []string{"-n", "lockfile", "true"}}).try(t); code != 1 {
		t.Errorf("flock -n while another process holds the lock: exit %d (%s%s), want 1", code, out, stderr)
	}
	if out, stderr, code := (progRun{dir: m.Dir, name: "flock", args: []string{"-n", "-s", "lockfile", "true"}}).try(t); code != 1 {
		t.Errorf("flock -n -s while another process holds an exclusive lock: exit %d (%s%s), want 1", code, out, stderr)
	}
	holder.finish(t)
	if out, stderr, code := (progRun{dir: m.Dir, name: "flock", args: []string{"-n", "lockfile", "true"}}).try(t); code != 0 {
		t.Errorf("flock -n after the holder exited: exit %d (%s%s), want 0", code, out, stderr)
	}
}

// progLockHolder takes a POSIX write lock on bytes [0, 100) of argv[1],
// reports "held", and keeps it until its stdin closes.
const progLockHolder = `
import fcntl, sys
f = open(sys.argv[1], "r+")
fcntl.lockf(f, fcntl.LOCK_EX, 100, 0)
print("held", flush=True)
sys.stdin.read()
`

// progLockProbe tries a non-blocking POSIX write lock on argv[3] bytes at
// argv[2] of argv[1] and prints "locked" or "busy ERRNO"; then it asks
// F_GETLK about that range and prints the pid holding it, or "unlocked".
const progLockProbe = `
import errno, fcntl, os, struct, sys
start, length = int(sys.argv[2]), int(sys.argv[3])
f = open(sys.argv[1], "r+")
query = struct.pack("hhqqixxxx", fcntl.F_WRLCK, os.SEEK_SET, start, length, 0)
ltype, _, _, _, pid = struct.unpack("hhqqixxxx", fcntl.fcntl(f, fcntl.F_GETLK, query))
try:
    fcntl.lockf(f, fcntl.LOCK_EX | fcntl.LOCK_NB, length, start)
    print("locked")
except OSError as e:
    print("busy", errno.errorcode[e.errno])
print(pid if ltype == fcntl.F_WRLCK else "unlocked")
`

// TestProgramPOSIXLocks has a python3 process hold a POSIX record lock
// (fcntl.lockf) on a range of a file in the mount while another process
// probes it: an overlapping non-blocking lock fails with EAGAIN or EACCES
// and F_GETLK names the holder, a disjoint range locks, and once the
// holder has exited the range is free.
func TestProgramPOSIXLocks(t *testing.T) {
	python := progPython(t)
	m := startMount(t)
	progWriteFile(t, m.Path("records"), make([]byte, 4096), 0o644)

	probe := func(start, length int) []string {
		t.Helper()
		out := progRun{dir: m.Dir, name: python, args: []string{"-c", progLockProbe, "records", strconv.Itoa(start), strconv.Itoa(length)}}.run(t)
		return strings.Split(strings.TrimSuffix(out, "\n"), "\n")
	}

	holder := progRun{dir: m.Dir, name: python, args: []string{"-c", progLockHolder, "records"}}.start(t)
	holder.expectLine(t, "held")
	holderPid := strconv.Itoa(holder.cmd.Process.Pid)

	got := probe(50, 10)
	if len(got) != 2 || (got[0] != "busy EAGAIN" && got[0] != "busy EACCES") || got[1] != holderPid {
		t.Errorf("probe of [50,60) while another process holds [0,100): %q, want [busy EAGAIN|EACCES, %s]", got, holderPid)
	}
	got = probe(100, 100)
	if want := []string{"locked", "unlocked"}; strings.Join(got, "|") != strings.Join(want, "|") {
		t.Errorf("probe of the disjoint range [100,200): %q, want %q", got, want)
	}

	holder.finish(t)
	got = probe(0, 100)
	if want := []string{"locked", "unlocked"}; strings.Join(got, "|") != strings.Join(want, "|") {
		t.Errorf("probe of [0,100) after the holder exited: %q, want %q", got, want)
	}
}

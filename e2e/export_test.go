package e2e

// File handles: name_to_handle_at and open_by_handle_at after the kernel
// has forgotten the inodes, on tmpmount and on tmpfs.

import (
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"golang.org/x/sys/unix"
)

// TestFileHandlesAfterForget takes handles of every kind of node, makes
// the kernel drop its dentries and inodes (drop_caches), and opens the
// handles again, on tmpfs and on tmpmount: the same nodes open, with the
// same contents, and those deleted meanwhile give ESTALE. On tmpmount the
// daemon must have been asked for the forgotten nodes by id (a LOOKUP of
// "."), or the test proves nothing.
func TestFileHandlesAfterForget(t *testing.T) {
	requireRoot(t)
	m := startMount(t, "--allow-other", "--debug")
	nsMakeReachable(t, m.Dir)
	ref := mountTmpfs(t, t.TempDir(), "mode=1777")
	nsMakeReachable(t, ref)
	want := fhExercise(t, ref, nil)
	got := fhExercise(t, m.Dir, func() uint64 { return trStat(t, m.Dir).Forgets })
	if os.Getenv("TMPMOUNT_NS_LOG") != "" {
		t.Logf("tmpfs log:\n%s", strings.Join(want, "\n"))
	}
	if !slices.Equal(want, got) {
		t.Errorf("file handles on tmpmount differ from tmpfs (- tmpfs, + tmpmount):\n%s", limDiffLines(want, got))
	}
	log := m.Stderr.String()
	if !strings.Contains(log, `"."`) {
		t.Errorf("the daemon was never asked for a node by id (LOOKUP \".\"): the kernel did not forget the inodes, so nothing was tested")
	}
	if !strings.Contains(log, `".."`) {
		t.Errorf("the daemon was never asked for a directory's parent (LOOKUP \"..\")")
	}
}

// fhExercise runs the handle steps in a fresh directory of fsRoot and
// returns a log that must match between filesystems; forgets is for
// fhDropCaches.
func fhExercise(t *testing.T, fsRoot string, forgets func() uint64) []string {
	t.Helper()
	base := filepath.Join(fsRoot, "handles")
	p := func(name string) string { return filepath.Join(base, name) }
	must := func(err error) {
		t.Helper()
		if err != nil {
			t.Fatal(err)
		}
	}
	must(os.MkdirAll(p("dir/sub"), 0o755))
	must(os.WriteFile(p("file"), []byte("file data"), 0o644))
	must(os.WriteFile(p("dir/inner"), []byte("inner data"), 0o644))
	must(os.WriteFile(p("dir/sub/deep"), []byte("deep data"), 0o600))
	must(os.WriteFile(p("deleted"), []byte("gone"), 0o644))
	must(os.WriteFile(p("linked"), []byte("two names"), 0o644))
	must(os.Link(p("linked"), p("linked2")))
	must(os.WriteFile(p("moved"), []byte("moves"), 0o644))
	must(os.Mkdir(p("rmdir"), 0o755))
	must(os.Symlink("file", p("symlink")))
	must(unix.Mkfifo(p("fifo"), 0o640))
	must(os.WriteFile(p("open-deleted"), []byte("still open"), 0o644))

	names := []string{"file", "dir", "dir/inner", "dir/sub", "dir/sub/deep", "deleted", "linked", "moved",
		"rmdir", "symlink", "fifo", "open-deleted", "."}
	handles := map[string]unix.FileHandle{}
	var out []string
	for _, name := range names {
		h, _, err := unix.NameToHandleAt(unix.AT_FDCWD, p(name), 0)
		out = append(out, fmt.Sprintf("name_to_handle_at(%s): %s", name, nsErrnoName(nsErrno(err))))
		if err == nil {
			handles[name] = h
		}
	}
	held, err := unix.Open(p("open-deleted"), unix.O_RDONLY|unix.O_CLOEXEC, 0)
	must(err)
	defer unix.Close(held)
	must(os.Remove(p("deleted")))
	must(os.Remove(p("open-deleted")))
	must(os.Remove(p("linked")))
	must(os.Rename(p("moved"), p("dir/moved-here")))
	must(os.Remove(p("rmdir")))

	mountFd, err := unix.Open(fsRoot, unix.O_RDONLY|unix.O_DIRECTORY|unix.O_CLOEXEC, 0)
	must(err)
	defer unix.Close(mountFd)
	fhDropCaches(t, forgets)

	for _, name := range names {
		h, ok := handles[name]
		if !ok {
			continue
		}
		flags := unix.O_RDONLY | unix.O_CLOEXEC
		switch name {
		case "symlink", "fifo":
			flags = unix.O_PATH | unix.O_CLOEXEC
		}
		fd, err := unix.OpenByHandleAt(mountFd, h, flags)
		line := fmt.Sprintf("open_by_handle_at(%s): %s", name, nsErrnoName(nsErrno(err)))
		if err == nil {
			line += " " + fhDescribe(fd, base)
			unix.Close(fd)
		}
		out = append(out, line)
	}
	return out
}

// fhDescribe says what an opened handle is: its type and mode, its
// contents or entries, and for a directory the path the kernel found
// for it (relative to base).
func fhDescribe(fd int, base string) string {
	var st unix.Stat_t
	if err := unix.Fstat(fd, &st); err != nil {
		return "fstat: " + nsErrnoName(nsErrno(err))
	}
	s := fmt.Sprintf("%s mode=%04o nlink=%d", nsTypeName(st.Mode), st.Mode&0o7777, st.Nlink)
	switch st.Mode & unix.S_IFMT {
	case unix.S_IFREG:
		buf := make([]byte, 100)
		n, err := unix.Pread(fd, buf, 0)
		if err != nil {
			return s + " read: " + nsErrnoName(nsErrno(err))
		}
		s += fmt.Sprintf(" %q", buf[:n])
	case unix.S_IFDIR:
		path, err := os.Readlink(fmt.Sprintf("/proc/self/fd/%d", fd))
		if err == nil {
			rel, _ := filepath.Rel(base, path)
			s += " at " + rel
		}
		des, err := nsReadAllDirents(fd, 4096)
		if err != nil {
			return s + " getdents: " + nsErrnoName(nsErrno(err))
		}
		s += " [" + strings.Join(nsDirentNames(des, true), " ") + "]"
	}
	return s
}

// fhDropCaches makes the kernel drop unused dentries and inodes, of
// every filesystem (vm.drop_caches=2): those of a FUSE mount it then
// forgets, those of tmpfs it cannot drop. forgets, for a tmpmount, counts
// the FORGETs its daemon has had: the test needs the kernel to have
// forgotten its inodes, and one drop has been seen to leave them all
// (once on a busy machine), so it drops again, a second apart, until at
// least fhMinForgets more FORGETs came, or gives up after fhDropTries.
func fhDropCaches(t *testing.T, forgets func() uint64) {
	t.Helper()
	drop := func() {
		if err := os.WriteFile("/proc/sys/vm/drop_caches", []byte("2"), 0); err != nil {
			t.Fatalf("drop caches: %v", err)
		}
	}
	if forgets == nil {
		drop()
		return
	}
	before := forgets()
	for try := 1; ; try++ {
		drop()
		deadline := time.Now().Add(time.Second)
		for time.Now().Before(deadline) {
			if forgets() >= before+fhMinForgets {
				return
			}
			time.Sleep(10 * time.Millisecond)
		}
		if try == fhDropTries {
			t.Fatalf("%d drops of the kernel's caches brought %d FORGETs, want at least %d: the kernel keeps the test's inodes",
				try, forgets()-before, fhMinForgets)
		}
	}
}

// fhMinForgets is fewer than the inodes fhExercise leaves unused before
// it drops the caches (file, dir, dir/inner, dir/sub, dir/sub/deep,
// linked2, dir/moved-here, symlink, fifo); fhDropTries bounds the drops.
const (
	fhMinForgets = 5
	fhDropTries  = 10
)

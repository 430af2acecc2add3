package e2e

// RENAME_WHITEOUT, against tmpfs (TestFeaturesAgainstTmpfs) and under a
// real overlayfs with tmpmount as its upper and work directory.

import (
	"os"
	"path/filepath"
	"slices"
	"sort"
	"strconv"
	"strings"
	"testing"

	"golang.org/x/sys/unix"
)

func ftWhiteoutScenarios() []ftScenario {
	return []ftScenario{
		{name: "rename-whiteout", phases: []ftPhase{
			{as: ftRoot, run: ftWhiteoutRoot},
			{as: ftAlice, run: ftWhiteoutUser},
		}},
		{name: "rename-whiteout-inherits", phases: []ftPhase{{as: ftRoot, umask: 0o077, run: ftWhiteoutInherits}}},
		{name: "rename-whiteout-inode-limit", args: []string{"--inodes", "4"}, tmpfsOpts: "nr_inodes=4", phases: []ftPhase{{as: ftRoot, run: ftWhiteoutInodeLimit}}},
	}
}

func ftWhiteoutRoot(e *nsEnv) {
	e.mkfile("a", "data").ok()
	e.mark(".")
	e.renameat2("a", "b", unix.RENAME_WHITEOUT).ok()
	e.changed(".")
	e.stat("a")
	e.stat("b")
	e.readFile("b")
	e.stat(".")
	e.list(".")
	// Over an existing name, with RENAME_NOREPLACE, with RENAME_EXCHANGE.
	e.mkfile("c", "c").ok()
	e.renameat2("c", "b", unix.RENAME_WHITEOUT).ok()
	e.stat("c")
	e.readFile("b")
	e.mkfile("d", "d").ok()
	e.renameat2("d", "b", unix.RENAME_WHITEOUT|unix.RENAME_NOREPLACE).want(unix.EEXIST)
	e.renameat2("d", "e", unix.RENAME_WHITEOUT|unix.RENAME_NOREPLACE).ok()
	e.stat("d")
	e.renameat2("e", "b", unix.RENAME_WHITEOUT|unix.RENAME_EXCHANGE).want(unix.EINVAL)
	e.renameat2("missing", "x", unix.RENAME_WHITEOUT).want(unix.ENOENT)
	// A whiteout is renamed over and removed as any node.
	e.renameat2("e", "a", unix.RENAME_WHITEOUT).ok()
	e.stat("a")
	e.stat("e")
	e.unlink("e").ok()
	// Directories: a whiteout takes the place of one moved away.
	e.mkdir("dir", 0o755).ok()
	e.mkfile("dir/inner", "x").ok()
	e.mkdir("sub", 0o755).ok()
	e.renameat2("dir", "sub/dir", unix.RENAME_WHITEOUT).ok()
	e.stat("dir")
	e.stat("sub")
	e.stat(".")
	e.readFile("sub/dir/inner")
	e.mkdir("empty", 0o755).ok()
	e.mkdir("full", 0o755).ok()
	e.mkfile("full/x", "x").ok()
	e.renameat2("empty", "full", unix.RENAME_WHITEOUT).want(unix.ENOTEMPTY)
	e.renameat2("full", "empty", unix.RENAME_WHITEOUT).ok()
	e.stat("full")
	e.stat("empty/x")
	e.list(".")
	e.chmod("a", 0o644).ok()
	e.chown("a", 1001, 1001).ok()
	e.stat("a")
	e.ftSetxattr("a", "trusted.overlay.x", "y", 0).ok()
	e.ftListxattr("a")
}

// ftWhiteoutUser: since Linux 5.8 anyone may leave a whiteout.
func ftWhiteoutUser(e *nsEnv) {
	e.mkfile("mine", "x").ok()
	e.renameat2("mine", "yours", unix.RENAME_WHITEOUT).ok()
	e.stat("mine")
	e.stat("yours")
}

// ftWhiteoutInherits: a whiteout is made as mknod makes a node: the
// directory's group when set-group-ID, its default ACL, not the umask.
func ftWhiteoutInherits(e *nsEnv) {
	e.mkdir("sg", 0o777).ok()
	e.chown("sg", 0, ftStaff).ok()
	e.chmod("sg", 0o2777).ok()
	e.ftTool("setfacl", "-d", "-m", "u:1002:rwx", "sg").ok()
	e.mkfile("sg/f", "x").ok()
	e.renameat2("sg/f", "sg/g", unix.RENAME_WHITEOUT).ok()
	e.stat("sg/f")
	e.ftGetfacl("sg/f")
	e.mkdir("plain", 0o777).ok()
	e.mkfile("plain/f", "x").ok()
	e.renameat2("plain/f", "plain/g", unix.RENAME_WHITEOUT).ok()
	e.stat("plain/f")
}

// ftWhiteoutInodeLimit: with no inode left for the whiteout, nothing is
// renamed. The case directory and the mount root use two of the four.
func ftWhiteoutInodeLimit(e *nsEnv) {
	e.mkfile("a", "x").ok()
	e.mkfile("b", "x").ok()
	e.renameat2("a", "c", unix.RENAME_WHITEOUT).want(unix.ENOSPC)
	e.stat("a")
	e.stat("c")
	e.unlink("b").ok()
	e.renameat2("a", "c", unix.RENAME_WHITEOUT).ok()
	e.stat("a")
	e.stat("c")
}

// TestOverlayUpperDir mounts an overlayfs whose upper and work
// directories are on tmpmount, changes the merged tree in every way that
// makes overlayfs write whiteouts, opaque directories and copies up, and
// compares the merged tree and the upper directory with the same done
// over a tmpfs upper directory.
func TestOverlayUpperDir(t *testing.T) {
	requireRoot(t)
	m := startMount(t)
	ref := mountTmpfs(t, t.TempDir(), "")
	want := ovlExercise(t, ref)
	got := ovlExercise(t, m.Dir)
	if !slices.Equal(want, got) {
		t.Errorf("overlayfs over tmpmount differs from overlayfs over tmpfs (- tmpfs, + tmpmount):\n%s", limDiffLines(want, got))
	}
}

// ovlExercise builds an overlay with a fresh lower directory and its
// upper and work directories in upperFS, runs the changes, and returns
// what the merged tree and the upper directory hold.
func ovlExercise(t *testing.T, upperFS string) []string {
	t.Helper()
	lower := t.TempDir()
	for _, d := range []string{"keep", "gone-dir/sub", "opaque"} {
		if err := os.MkdirAll(filepath.Join(lower, d), 0o755); err != nil {
			t.Fatal(err)
		}
	}
	for name, data := range map[string]string{
		"keep/a": "a", "gone": "gone", "renamed": "r", "gone-dir/sub/x": "x", "opaque/old": "old", "edited": "v1",
	} {
		if err := os.WriteFile(filepath.Join(lower, name), []byte(data), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	upper, work, merged := filepath.Join(upperFS, "upper"), filepath.Join(upperFS, "work"), t.TempDir()
	for _, d := range []string{upper, work} {
		if err := os.Mkdir(d, 0o755); err != nil {
			t.Fatal(err)
		}
	}
	opts := "lowerdir=" + lower + ",upperdir=" + upper + ",workdir=" + work
	if err := unix.Mount("overlay", merged, "overlay", 0, opts); err != nil {
		t.Fatalf("mount -t overlay -o %s: %v", opts, err)
	}
	mounted := true
	t.Cleanup(func() {
		if mounted {
			unix.Unmount(merged, unix.MNT_DETACH)
		}
	})
	p := func(name string) string { return filepath.Join(merged, name) }
	steps := []struct {
		what string
		err  error
	}{
		{"rm gone", os.Remove(p("gone"))},
		{"mv renamed moved", os.Rename(p("renamed"), p("moved"))},
		{"rm -r gone-dir", os.RemoveAll(p("gone-dir"))},
		{"rm -r opaque; mkdir opaque", func() error {
			if err := os.RemoveAll(p("opaque")); err != nil {
				return err
			}
			return os.Mkdir(p("opaque"), 0o755)
		}()},
		{"echo new > opaque/new", os.WriteFile(p("opaque/new"), []byte("new"), 0o644)},
		{"echo v2 >> edited", func() error {
			f, err := os.OpenFile(p("edited"), os.O_WRONLY|os.O_APPEND, 0)
			if err != nil {
				return err
			}
			f.WriteString("v2")
			return f.Close()
		}()},
		{"mkdir made; echo y > made/y", func() error {
			if err := os.Mkdir(p("made"), 0o700); err != nil {
				return err
			}
			return os.WriteFile(p("made/y"), []byte("y"), 0o600)
		}()},
		{"mv made keep/made", os.Rename(p("made"), p("keep/made"))},
	}
	var out []string
	for _, s := range steps {
		out = append(out, s.what+": "+nsErrnoName(nsErrno(s.err)))
	}
	out = append(out, "merged:")
	out = append(out, ovlTree(t, merged)...)
	if err := unix.Unmount(merged, 0); err != nil {
		t.Fatalf("unmount overlay: %v", err)
	}
	mounted = false
	out = append(out, "upper:")
	out = append(out, ovlTree(t, upper)...)
	// Mounted again, the overlay reads back what it wrote.
	if err := unix.Mount("overlay", merged, "overlay", 0, opts); err != nil {
		t.Fatalf("mount the overlay again: %v", err)
	}
	mounted = true
	out = append(out, "merged after a remount:")
	out = append(out, ovlTree(t, merged)...)
	return out
}

// ovlTree lists a tree: each entry's path, type, mode and content or
// device, and its trusted.overlay.* xattrs.
func ovlTree(t *testing.T, root string) []string {
	t.Helper()
	var lines []string
	err := filepath.Walk(root, func(path string, fi os.FileInfo, err error) error {
		if err != nil {
			return err
		}
		rel, _ := filepath.Rel(root, path)
		var st unix.Stat_t
		if err := unix.Lstat(path, &st); err != nil {
			return err
		}
		line := rel + " " + nsTypeName(st.Mode) + " " + strings.TrimPrefix(fi.Mode().Perm().String(), "-")
		switch st.Mode & unix.S_IFMT {
		case unix.S_IFREG:
			data, err := os.ReadFile(path)
			if err != nil {
				return err
			}
			line += " " + string(data)
		case unix.S_IFCHR:
			line += " " + strings.Join([]string{itoa(unix.Major(st.Rdev)), itoa(unix.Minor(st.Rdev))}, ":")
		}
		buf := make([]byte, 4096)
		n, _ := unix.Llistxattr(path, buf)
		var attrs []string
		for _, a := range strings.Split(string(buf[:max(n, 0)]), "\x00") {
			if strings.HasPrefix(a, "trusted.overlay.") {
				v := make([]byte, 4096)
				vn, _ := unix.Lgetxattr(path, a, v)
				if a == "trusted.overlay.origin" || a == "trusted.overlay.uuid" {
					v, vn = []byte("(file handle)"), len("(file handle)") // differs per filesystem
				}
				attrs = append(attrs, a+"="+string(v[:max(vn, 0)]))
			}
		}
		sort.Strings(attrs)
		if len(attrs) > 0 {
			line += " " + strings.Join(attrs, " ")
		}
		lines = append(lines, line)
		return nil
	})
	if err != nil {
		t.Fatalf("walk %s: %v", root, err)
	}
	return lines
}

func itoa(v uint32) string { return strconv.FormatUint(uint64(v), 10) }

package e2e

// The keep dir while the mount serves (issue 12 item 1, issue 11 item 1):
// keep files are saved each time their last writer closes them, the keep
// dir mirrors renames, links and deletes, what is there survives a
// SIGKILL of the daemon at any moment as exactly one closed version, and
// every save is made with the rights of the file's owner.
//
// A save is known to be on disk when the events log has its "keep" line
// (written after the file and its directory are synced); tests wait for
// that line, or for what the keep dir shows, with a deadline.

import (
	"bufio"
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"maps"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"golang.org/x/sys/unix"
)

// kpWithin is how long a save may take to show.
const kpWithin = 20 * time.Second

// kpVersion is a keep file as the mount showed it right after a close:
// what a copy of that version must hold.
type kpVersion struct {
	data         []byte
	mode         uint32
	uid, gid     uint32
	atime, mtime unix.Timespec
	xattrs       map[string]string // user.*
}

// kpRecord describes the file at path in the mount, which holds data.
// It reads no data: a read the daemon serves may move atime.
func kpRecord(t *testing.T, path string, data []byte) kpVersion {
	t.Helper()
	st := polStat(t, path)
	return kpVersion{data: data, mode: st.Mode, uid: st.Uid, gid: st.Gid, atime: st.Atim, mtime: st.Mtim, xattrs: polUserXattrs(t, path)}
}

// kpSeen is a file in the keep dir as a test found it.
type kpSeen struct {
	st     unix.Stat_t
	xattrs map[string]string
	data   []byte
	err    error
}

// kpLook looks at the keep dir's file at path once: it stats before it
// reads, since the read may move the copy's atime.
func kpLook(t *testing.T, path string) kpSeen {
	t.Helper()
	var s kpSeen
	if s.err = unix.Lstat(path, &s.st); s.err != nil {
		return s
	}
	s.xattrs = polUserXattrs(t, path)
	s.data, s.err = os.ReadFile(path)
	return s
}

// kpDiff says how the keep dir's file at path differs from v ("" if not).
func kpDiff(t *testing.T, path string, v kpVersion) string {
	t.Helper()
	return kpLook(t, path).diff(v)
}

// diff says how what was seen differs from v ("" if not).
func (s kpSeen) diff(v kpVersion) string {
	if s.err != nil {
		return s.err.Error()
	}
	st := s.st
	var diffs []string
	if st.Mode != v.mode {
		diffs = append(diffs, fmt.Sprintf("mode %#o, want %#o", st.Mode, v.mode))
	}
	if st.Uid != v.uid || st.Gid != v.gid {
		diffs = append(diffs, fmt.Sprintf("owner %d:%d, want %d:%d", st.Uid, st.Gid, v.uid, v.gid))
	}
	if st.Mtim != v.mtime || st.Atim != v.atime {
		diffs = append(diffs, fmt.Sprintf("atime/mtime %v/%v, want %v/%v", st.Atim, st.Mtim, v.atime, v.mtime))
	}
	if !maps.Equal(s.xattrs, v.xattrs) {
		diffs = append(diffs, fmt.Sprintf("xattrs %q, want %q", s.xattrs, v.xattrs))
	}
	if d := firstDiff(s.data, v.data); d != "" {
		diffs = append(diffs, d)
	}
	return strings.Join(diffs, "; ")
}

// kpWantVersion fails unless the keep dir's file at path is v.
func kpWantVersion(t *testing.T, path string, v kpVersion) {
	t.Helper()
	if d := kpDiff(t, path, v); d != "" {
		t.Errorf("%s: %s", path, d)
	}
}

// kpEvents is the --events file of a mount.
type kpEvents string

// kept counts the keep events for path (relative to the mount root).
func (e kpEvents) kept(t *testing.T, path string) int {
	t.Helper()
	f, err := os.Open(string(e))
	if err != nil {
		if errors.Is(err, fs.ErrNotExist) {
			return 0
		}
		t.Fatal(err)
	}
	defer f.Close()
	n := 0
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		var ev struct{ Event, Path string }
		if json.Unmarshal(sc.Bytes(), &ev) == nil && ev.Event == "keep" && ev.Path == path {
			n++
		}
	}
	return n
}

// waitKept waits until path has been saved n times in all.
func (e kpEvents) waitKept(t *testing.T, path string, n int) {
	t.Helper()
	waitFor(t, kpWithin, fmt.Sprintf("save number %d of %s", n, path), func() bool { return e.kept(t, path) >= n })
}

// kpNewSuffix ends the hidden name ".NAME.tmpmount-new" a new version of
// NAME is linked under, whole, just before it is renamed over the old one.
const kpNewSuffix = ".tmpmount-new"

// kpNoDebris fails if the keep dir holds a temporary name, and returns the
// hidden new versions a kill left (relative path -> the path of the file
// each is a version of), for the caller to check that each is whole.
func kpNoDebris(t *testing.T, keepDir string) map[string]string {
	t.Helper()
	left := map[string]string{}
	for rel := range polTree(t, keepDir) {
		dir, base := filepath.Split(rel)
		switch {
		case strings.HasPrefix(base, ".tmpmount-"):
			t.Errorf("keep dir holds a temporary file %s", rel)
		case strings.HasPrefix(base, ".") && strings.HasSuffix(base, kpNewSuffix):
			left[rel] = filepath.Join(dir, strings.TrimSuffix(strings.TrimPrefix(base, "."), kpNewSuffix))
		}
	}
	return left
}

// kpNoneLeft fails if the keep dir holds a temporary name or a hidden new
// version: with no kill, none is ever left.
func kpNoneLeft(t *testing.T, keepDir string) {
	t.Helper()
	for rel := range kpNoDebris(t, keepDir) {
		t.Errorf("keep dir holds %s with no kill to explain it", rel)
	}
}

// kpKill ends m's daemon with SIGKILL and waits until it is reaped; the
// dead mount is left to polForceStop.
func kpKill(t *testing.T, m *Mount) {
	t.Helper()
	if err := m.cmd.Process.Kill(); err != nil {
		t.Fatal(err)
	}
	waitFor(t, 10*time.Second, "the killed daemon to be reaped", func() bool { return daemonDone(m) })
}

// kpSpillEmpty fails unless the (dead) daemon's spill dir holds nothing:
// its backing files had no names, so the kernel freed them.
func kpSpillEmpty(t *testing.T, m *Mount) {
	t.Helper()
	entries, err := os.ReadDir(m.SpillParent)
	if err != nil {
		t.Fatal(err)
	}
	for _, e := range entries {
		inner, err := os.ReadDir(filepath.Join(m.SpillParent, e.Name()))
		if err != nil || len(inner) != 0 {
			t.Errorf("spill dir %s holds %d entries (%v) after the daemon died", e.Name(), len(inner), err)
		}
	}
}

// kpStart starts a daemon with a keep dir and an events log.
func kpStart(t *testing.T, mp, keepDir string, args ...string) (*Mount, kpEvents) {
	t.Helper()
	events := filepath.Join(t.TempDir(), "events.jsonl")
	m := polStartDaemon(t, mp, t.TempDir(), append([]string{"--keep-dir", keepDir, "--events", events}, args...)...)
	return m, kpEvents(events)
}

// TestKeepSavedAtClose: each last close of a writer saves the file as it
// is then (content, mode, times, xattrs), also on disk and sparse; a
// reader holding it open does not hold the save back; a chmod, touch,
// setfattr or truncate of a closed file is saved too; and after a SIGKILL
// the keep dir holds the last version.
func TestKeepSavedAtClose(t *testing.T) {
	keepDir := t.TempDir()
	m, events := kpStart(t, t.TempDir(), keepDir, "--delete", "keep", "--max-size", "64k")
	const rel = "log.txt"
	p, kept := m.Path(rel), filepath.Join(keepDir, rel)
	saves := 0
	step := func(what string, data []byte) kpVersion {
		t.Helper()
		saves++
		events.waitKept(t, rel, saves)
		v := kpRecord(t, p, data)
		kpWantVersion(t, kept, v)
		if t.Failed() {
			t.Fatalf("after %s\n%s", what, m.Stderr)
		}
		return v
	}

	data := []byte("one\n")
	polWriteFile(t, p, data)
	step("the first close", data)

	// A reader holds it open; an appender opens, writes and closes.
	reader, err := os.Open(p)
	if err != nil {
		t.Fatal(err)
	}
	defer reader.Close()
	f, err := os.OpenFile(p, os.O_WRONLY|os.O_APPEND, 0)
	if err != nil {
		t.Fatal(err)
	}
	f.WriteString("two\n")
	f.Close()
	data = append(data, "two\n"...)
	step("an append while a reader holds it", data)

	if err := os.Chmod(p, 0o600); err != nil {
		t.Fatal(err)
	}
	step("a chmod", data)
	if err := unix.Setxattr(p, "user.color", []byte("blue"), 0); err != nil {
		t.Fatal(err)
	}
	step("a setfattr", data)
	past := []unix.Timespec{{Sec: 946684799, Nsec: 5}, {Sec: 981173106, Nsec: 123456789}}
	if err := unix.UtimesNano(p, past); err != nil {
		t.Fatal(err)
	}
	step("a touch into the past", data)
	if err := os.Truncate(p, 2); err != nil {
		t.Fatal(err)
	}
	data = data[:2]
	step("a truncate", data)

	// On disk and sparse: a hole, data, a hole.
	f, err = os.OpenFile(p, os.O_WRONLY, 0)
	if err != nil {
		t.Fatal(err)
	}
	mid := seededBytes(61, 300<<10)
	if _, err := f.WriteAt(mid, 8<<20); err != nil {
		t.Fatal(err)
	}
	if err := f.Truncate(16 << 20); err != nil {
		t.Fatal(err)
	}
	f.Close()
	data = make([]byte, 16<<20)
	copy(data, "on")
	copy(data[8<<20:], mid)
	if got := readResidency(t, p); got != "disk" {
		t.Fatalf("residency %q, want disk", got)
	}
	step("a rollover", data)
	last := polStat(t, kept)
	if last.Blocks*512 > 1<<20 {
		t.Errorf("the copy of a 16 MiB file with 300 KiB of data holds %d bytes: holes filled", last.Blocks*512)
	}

	// (Reading the copy above moved its atime: the copy is checked by
	// inode from here.)
	reader.Close()
	kpKill(t, m)
	if st := polStat(t, kept); st.Ino != last.Ino || st.Mtim != last.Mtim || st.Mode != last.Mode {
		t.Errorf("after the kill, the keep dir's %s is inode %d (mtime %v), want the last save, inode %d (mtime %v)", rel, st.Ino, st.Mtim, last.Ino, last.Mtim)
	}
	polCheckBytes(t, kept, data)
	kpNoneLeft(t, keepDir) // the kill came with nothing being saved
	kpSpillEmpty(t, m)
}

// TestKeepMirror: renames, links, unlinks and policy changes in the mount
// are done in the keep dir too; directories this mount made there go when
// they are left empty, others stay.
func TestKeepMirror(t *testing.T) {
	keepDir := t.TempDir()
	if err := os.Mkdir(filepath.Join(keepDir, "before"), 0o755); err != nil {
		t.Fatal(err)
	}
	m, events := kpStart(t, t.TempDir(), keepDir, "--rule", "out/**=unmount", "--rule", "**/*.log=keep")
	k := func(rel string) string { return filepath.Join(keepDir, rel) }
	waitTree := func(what string, want map[string]string) {
		t.Helper()
		waitFor(t, kpWithin, what, func() bool {
			// A walk racing with the daemon removing a directory
			// fails: look again.
			tree, err := walkTree(keepDir)
			return err == nil && maps.Equal(tree, want)
		})
	}
	for _, d := range []string{"d", "before", "out"} {
		if err := os.Mkdir(m.Path(d), 0o755); err != nil {
			t.Fatal(err)
		}
	}
	polWriteFile(t, m.Path("d", "a.log"), []byte("a\n"))
	polWriteFile(t, m.Path("before", "b.log"), []byte("b\n"))
	polWriteFile(t, m.Path("c.txt"), []byte("not kept\n"))
	events.waitKept(t, "d/a.log", 1)
	events.waitKept(t, "before/b.log", 1)
	waitTree("the first saves", map[string]string{"d": "dir", "d/a.log": "file", "before": "dir", "before/b.log": "file"})

	// A rename within the rule, a hard link, a rename of the directory.
	if err := os.Rename(m.Path("d", "a.log"), m.Path("d", "z.log")); err != nil {
		t.Fatal(err)
	}
	if err := os.Link(m.Path("d", "z.log"), m.Path("before", "hard.log")); err != nil {
		t.Fatal(err)
	}
	if err := os.Rename(m.Path("d"), m.Path("e")); err != nil {
		t.Fatal(err)
	}
	waitTree("rename, link and directory rename", map[string]string{
		"e": "dir", "e/z.log": "file", "before": "dir", "before/b.log": "file", "before/hard.log": "file"})
	z, h := polStat(t, k("e/z.log")), polStat(t, k("before/hard.log"))
	if z.Ino != h.Ino || z.Nlink != 2 {
		t.Errorf("e/z.log and before/hard.log: inodes %d, %d, links %d; want one file with two names", z.Ino, h.Ino, z.Nlink)
	}
	polCheckBytes(t, k("e/z.log"), []byte("a\n"))

	// One name unlinked; the other renamed out of the keep rule; a file
	// renamed into it; a file's own xattr saying unmount.
	if err := os.Remove(m.Path("e", "z.log")); err != nil {
		t.Fatal(err)
	}
	if err := os.Rename(m.Path("before", "hard.log"), m.Path("out", "hard.log")); err != nil {
		t.Fatal(err)
	}
	if err := os.Rename(m.Path("c.txt"), m.Path("c.log")); err != nil {
		t.Fatal(err)
	}
	waitTree("unlink and renames out of and into the rule", map[string]string{"before": "dir", "before/b.log": "file", "c.log": "file"})
	polCheckBytes(t, k("c.log"), []byte("not kept\n"))
	if err := polSetPolicy(m.Path("before", "b.log"), "unmount", 0); err != nil {
		t.Fatal(err)
	}
	if err := os.Remove(m.Path("c.log")); err != nil {
		t.Fatal(err)
	}
	// before/ was there already: it stays, empty.
	waitTree("an xattr saying unmount, and a delete", map[string]string{"before": "dir"})

	polUnmountAndWait(t, m)
	if code := polExitCode(t, m); code != 0 {
		t.Errorf("tmpmount exited %d, want 0\n%s", code, m.Stderr)
	}
	if got := polTree(t, keepDir); !maps.Equal(got, map[string]string{"before": "dir"}) {
		t.Errorf("keep dir after unmount: %v, want only before/", got)
	}
	kpNoneLeft(t, keepDir)
}

// kpWriter writes keep files in a loop: file i gets versions 0, 1, ...,
// each written whole through a new descriptor, given a mode and an xattr
// of its own, and closed; what the mount showed just before each close
// (fstat: a close changes nothing) is recorded. It stops at the first
// error (the daemon killed).
type kpWriter struct {
	dir      string
	files    int
	versions map[string][]kpVersion // name -> versions closed, in order
}

func kpVersionData(name string, v, size int) []byte {
	head := fmt.Sprintf("%s version %d\n", name, v)
	b := seededBytes(uint64(v*7919+len(name)), int64(size))
	return append([]byte(head), b...)
}

func (w *kpWriter) run(rounds, size int, stop <-chan struct{}) {
	w.versions = map[string][]kpVersion{}
	for v := range rounds {
		for i := range w.files {
			select {
			case <-stop:
				return
			default:
			}
			name := fmt.Sprintf("f%03d", i)
			p := filepath.Join(w.dir, name)
			data := kpVersionData(name, v, size)
			f, err := os.OpenFile(p, os.O_CREATE|os.O_WRONLY|os.O_TRUNC, 0o644)
			if err != nil {
				return
			}
			_, err = f.Write(data)
			if err == nil {
				err = f.Chmod(os.FileMode(0o600 + (v%4)*0o10))
			}
			if err == nil {
				err = unix.Fsetxattr(int(f.Fd()), "user.version", []byte(fmt.Sprint(v)), 0)
			}
			var st unix.Stat_t
			if err == nil {
				err = unix.Fstat(int(f.Fd()), &st)
			}
			if err == nil {
				w.versions[name] = append(w.versions[name], kpVersion{data: data, mode: st.Mode, uid: st.Uid, gid: st.Gid,
					atime: st.Atim, mtime: st.Mtim, xattrs: map[string]string{"user.version": fmt.Sprint(v)}})
			}
			if cerr := f.Close(); err != nil || cerr != nil {
				return
			}
		}
	}
}

// check fails for a file in the keep dir that is no closed version of its
// name (a new version left under its hidden name by the kill included),
// or a file it should not hold; it returns how many files it holds.
func (w *kpWriter) check(t *testing.T, keepDir string) (saved int) {
	t.Helper()
	left := kpNoDebris(t, keepDir)
	for rel, kind := range polTree(t, keepDir) {
		name := rel
		if of, ok := left[rel]; ok {
			name = of
		} else if strings.HasPrefix(rel, ".tmpmount-") {
			continue // said by kpNoDebris
		} else {
			saved++
		}
		vs, ok := w.versions[name]
		if kind != "file" || !ok {
			t.Errorf("keep dir holds %s %s, which no close made", kind, rel)
			continue
		}
		match := -1
		var diffs []string
		seen := kpLook(t, filepath.Join(keepDir, rel))
		for i, v := range vs {
			d := seen.diff(v)
			if d == "" {
				match = i
				break
			}
			diffs = append(diffs, fmt.Sprintf("version %d: %s", i, d))
		}
		if match < 0 && len(vs) > 0 {
			t.Errorf("keep dir's %s is no closed version of %s: %s", rel, name, strings.Join(diffs, " | "))
		}
	}
	return saved
}

// TestKeepKilled kills the daemon with SIGKILL while keep files are being
// written and saved, during the save of a large file, and between a
// close and its save, and checks that the keep dir holds, for each file,
// exactly one version that was closed (bytes, mode, times, xattrs), no
// temporary file, and that the spill dir is empty.
func TestKeepKilled(t *testing.T) {
	t.Run("during writes", func(t *testing.T) {
		keepDir := t.TempDir()
		m, _ := kpStart(t, t.TempDir(), keepDir, "--delete", "keep", "--max-size", "16k")
		w := &kpWriter{dir: m.Dir, files: 40}
		stop := make(chan struct{})
		done := make(chan struct{})
		go func() {
			defer close(done)
			w.run(1000, 20<<10, stop) // on disk: over --max-size
		}()
		// Let some saves happen, then kill in the middle of it all.
		waitFor(t, kpWithin, "some files in the keep dir", func() bool { return len(polTree(t, keepDir)) >= 10 })
		kpKill(t, m)
		close(stop)
		<-done
		if saved := w.check(t, keepDir); saved < 10 {
			t.Errorf("only %d files in the keep dir after the kill, want at least the 10 seen before", saved)
		}
		kpSpillEmpty(t, m)
	})

	t.Run("during a save", func(t *testing.T) {
		keepDir := t.TempDir()
		m, events := kpStart(t, t.TempDir(), keepDir, "--delete", "keep")
		const size = 256 << 20
		p := m.Path("big")
		v0 := kpVersionData("big", 0, 4096)
		polWriteFile(t, p, v0)
		first := kpRecord(t, p, v0)
		events.waitKept(t, "big", 1)
		// A large version: killed while its copy is being written. Its
		// nameless copy shows among the daemon's descriptors.
		f, err := os.OpenFile(p, os.O_WRONLY|os.O_TRUNC, 0)
		if err != nil {
			t.Fatal(err)
		}
		big := seededBytes(62, size)
		if _, err := f.Write(big); err != nil {
			t.Fatal(err)
		}
		second := kpRecord(t, p, big)
		f.Close()
		caught := false
		deadline := time.Now().Add(kpWithin)
		for !caught && events.kept(t, "big") < 2 && time.Now().Before(deadline) {
			caught = len(spillBackingFds(t, daemonPID(m), keepDir)) > 0
		}
		kpKill(t, m)
		if !caught {
			t.Logf("the save finished before it could be caught in progress; checking what it left")
		}
		// The copy under way may have been placed between the look and
		// the kill: either version, whole.
		seen := kpLook(t, filepath.Join(keepDir, "big"))
		if d1 := seen.diff(first); d1 != "" {
			if d2 := seen.diff(second); d2 != "" {
				t.Errorf("keep dir's big after a kill during a save is neither version: %s | %s", d1, d2)
			} else if caught {
				t.Logf("the save was placed between the look and the kill")
			}
		}
		for rel := range kpNoDebris(t, keepDir) {
			// Killed between its link and its rename: whole.
			if d := kpDiff(t, filepath.Join(keepDir, rel), second); d != "" {
				t.Errorf("%s, left by the kill, is not the version being saved: %s", rel, d)
			}
		}
		kpSpillEmpty(t, m)
	})

	t.Run("between close and save", func(t *testing.T) {
		keepDir := t.TempDir()
		m, events := kpStart(t, t.TempDir(), keepDir, "--delete", "keep")
		p := m.Path("f")
		polWriteFile(t, p, []byte("first\n"))
		first := kpRecord(t, p, []byte("first\n"))
		events.waitKept(t, "f", 1)
		// The daemon stopped: the close returns (RELEASE comes after
		// close(2)), and the kill comes before the daemon can save.
		f, err := os.OpenFile(p, os.O_WRONLY|os.O_APPEND, 0)
		if err != nil {
			t.Fatal(err)
		}
		if _, err := f.WriteString("second\n"); err != nil {
			t.Fatal(err)
		}
		if err := m.cmd.Process.Signal(syscall.SIGSTOP); err != nil {
			t.Fatal(err)
		}
		if err := f.Close(); err != nil {
			t.Errorf("close with the daemon stopped: %v", err)
		}
		kpKill(t, m)
		kpWantVersion(t, filepath.Join(keepDir, "f"), first)
		kpNoneLeft(t, keepDir)
		kpSpillEmpty(t, m)
	})
}

// kpAs returns a command running sh -c script as uid (gid the same, no
// other groups).
func kpAs(uid int, script string, args ...string) *exec.Cmd {
	cmd := exec.Command("setpriv", append([]string{fmt.Sprintf("--reuid=%d", uid), fmt.Sprintf("--regid=%d", uid), "--clear-groups", "--",
		"sh", "-c", script, "sh"}, args...)...)
	cmd.Dir = "/"
	return cmd
}

// kpRunAs runs script as uid and fails the test if it fails.
func kpRunAs(t *testing.T, uid int, script string, args ...string) {
	t.Helper()
	if out, err := kpAs(uid, script, args...).CombinedOutput(); err != nil {
		t.Fatalf("as uid %d: sh -c %q: %v\n%s", uid, script, err, out)
	}
}

// TestKeepHostileUsers: a root daemon with --allow-other, users 1001
// (alice) and 1002 (bob). Bob cannot use keep saving to plant or replace
// files where he could not himself: not in alice's private directory,
// not over root's file (his goes beside it), not through a symlink, not
// by hard-linking alice's file under his own directory (alice's rights
// apply to her file); his mtime in 2100 decides nothing; he cannot make
// alice's file or directory keep. Alice's own saves go where she may
// write, as hers.
func TestKeepHostileUsers(t *testing.T) {
	requireRoot(t)
	progRequire(t, "setpriv")
	const alice, bob = 1001, 1002
	base := nobodyReachableDir(t)
	keepDir, mp, elsewhere := filepath.Join(base, "keep"), filepath.Join(base, "mnt"), filepath.Join(base, "elsewhere")
	for _, d := range []string{keepDir, mp, elsewhere} {
		if err := os.Mkdir(d, 0o755); err != nil {
			t.Fatal(err)
		}
	}
	if err := unix.Chmod(keepDir, 0o1777); err != nil { // shared, as /tmp
		t.Fatal(err)
	}
	mkOwned := func(rel string, mode uint32, uid int) {
		p := filepath.Join(keepDir, rel)
		if err := os.Mkdir(p, 0o700); err != nil {
			t.Fatal(err)
		}
		if err := os.Chown(p, uid, uid); err != nil {
			t.Fatal(err)
		}
		if err := unix.Chmod(p, mode); err != nil {
			t.Fatal(err)
		}
	}
	mkOwned("alice", 0o700, alice)
	mkOwned("bobdir", 0o755, bob)
	rootFile := filepath.Join(keepDir, "rootfile")
	if err := os.WriteFile(rootFile, []byte("root's\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	if err := os.Symlink(elsewhere, filepath.Join(keepDir, "trap")); err != nil {
		t.Fatal(err)
	}

	m, events := kpStart(t, mp, keepDir, "--allow-other")
	// Bob's, all marked keep by their own xattr, set by him.
	kpRunAs(t, bob, `set -e; cd "$1"
mkdir -m 0777 alice trap bobdir
for f in alice/notes rootfile trap/x bobdir/own; do
	echo "bob's $f" > "$f"
	setfattr -n user.tmpmount.delete -v keep "$f"
	touch -d 2100-01-01 "$f"
done
chmod 4755 alice/notes rootfile`, mp)
	// Alice's: one in the directory bob made in the mount, one she lets
	// bob link (0666; protected_hardlinks wants read and write).
	kpRunAs(t, alice, `set -e; cd "$1"
echo "alice's" > alice/mine; setfattr -n user.tmpmount.delete -v keep alice/mine
mkdir -m 0755 adir; echo "alice's shared" > adir/shared; chmod 0666 adir/shared
setfattr -n user.tmpmount.delete -v keep adir/shared
mkdir -m 0755 plain; echo x > plain/f`, mp)
	events.waitKept(t, "alice/mine", 1)
	events.waitKept(t, "bobdir/own", 1)
	events.waitKept(t, "adir/shared", 1)
	// Bob links alice's file into his own directory, and tries to make
	// alice's file and directory keep.
	kpRunAs(t, bob, `ln "$1/adir/shared" "$1/bobdir/link"`, mp)
	for _, p := range []string{m.Path("plain", "f"), m.Path("plain")} {
		if out, err := kpAs(bob, `setfattr -n user.tmpmount.delete -v keep "$1"`, p).CombinedOutput(); err == nil {
			t.Errorf("bob set user.tmpmount.delete=keep on alice's %s: %s", p, out)
		}
		if got, err := polGetxattr(p, polDeleteAttr); err == nil && got != "unmount" {
			t.Errorf("alice's %s has policy %q after bob's attempt, want unmount (or none, for a directory)", p, got)
		}
	}

	if err := unmountPath(mp); err != nil {
		t.Fatal(err)
	}
	if code := polExitCode(t, m); code != 1 {
		t.Errorf("tmpmount exited %d, want 1 (keep files refused)\n%s", code, m.Stderr)
	}

	tree := polTree(t, keepDir)
	want := map[string]string{
		"alice": "dir", "alice/mine": "file", // alice's own, nothing of bob's
		"bobdir": "dir", "bobdir/own": "file", // no link to alice's file
		"rootfile": "file", "rootfile.tmpmount-kept": "file",
		"trap": "symlink", "adir": "dir", "adir/shared": "file",
	}
	if !maps.Equal(tree, want) {
		t.Errorf("keep dir holds %v, want %v", tree, want)
	}
	polCheckBytes(t, rootFile, []byte("root's\n"))
	if st := polStat(t, rootFile); st.Uid != 0 || st.Mode&07777 != 0o644 {
		t.Errorf("root's file: owner %d mode %#o, want 0 and 0644", st.Uid, st.Mode&07777)
	}
	for rel, wantUID := range map[string]uint32{"rootfile.tmpmount-kept": bob, "alice/mine": alice, "bobdir/own": bob, "adir/shared": alice, "adir": alice} {
		if st, err := os.Lstat(filepath.Join(keepDir, rel)); err == nil && st.Sys().(*syscall.Stat_t).Uid != wantUID {
			t.Errorf("%s is owned by %d, want %d", rel, st.Sys().(*syscall.Stat_t).Uid, wantUID)
		}
	}
	// Bob's set-user-ID file is his, and may stay so, as with cp -a.
	if st := polStat(t, filepath.Join(keepDir, "rootfile.tmpmount-kept")); st.Mode&07777 != 0o4755 {
		t.Errorf("bob's file beside root's: mode %#o, want 04755", st.Mode&07777)
	}
	if entries, _ := os.ReadDir(elsewhere); len(entries) != 0 {
		t.Errorf("the symlink's target holds %d entries: it was followed", len(entries))
	}
	log := m.Stderr.String()
	for _, want := range []string{`"alice/notes"`, `"trap" in keep dir is a symlink`, `"bobdir/link"`, `"rootfile.tmpmount-kept" instead`} {
		if !strings.Contains(log, want) {
			t.Errorf("the log does not mention %s:\n%s", want, log)
		}
	}
}

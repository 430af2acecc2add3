package keepdir

import (
	"errors"
	"maps"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"

	"golang.org/x/sys/unix"
)

// Users of these tests: two ordinary ones, as the e2e tests use.
const (
	alice = 1001
	bob   = 1002
)

func asUser(uid uint32) Identity { return Identity{UID: uid, GID: uid} }

func requireRoot(t *testing.T) {
	t.Helper()
	if os.Geteuid() == 0 {
		return
	}
	if os.Getenv("CI") == "true" {
		t.Fatal("this test needs root under CI=true")
	}
	t.Skip("needs root: it acts as other users")
}

// mkdirOwned makes dir with mode and owner uid (gid the same).
func mkdirOwned(t *testing.T, dir string, mode os.FileMode, uid int) {
	t.Helper()
	if err := os.MkdirAll(dir, 0o700); err != nil {
		t.Fatal(err)
	}
	if err := unix.Chmod(dir, uint32(mode)); err != nil {
		t.Fatal(err)
	}
	if err := os.Chown(dir, uid, uid); err != nil {
		t.Fatal(err)
	}
}

// saveAs writes a new file in dir as uid, lets fill write it, and places
// it as name, as a save does.
func saveAs(d *Dir, uid uint32, dir, name string, prev FileID, fill func(*Temp) error) (used, why string, err error) {
	err = RunAs(asUser(uid), func() error {
		parent, err := d.OpenDir(dir, nil, nil)
		if err != nil {
			return err
		}
		defer unix.Close(parent)
		tmp, err := NewTemp(parent)
		if err != nil {
			return err
		}
		defer tmp.Close()
		if err := fill(tmp); err != nil {
			return err
		}
		used, why, err = Place(tmp.Fd(), parent, name, uid, prev)
		return err
	})
	return used, why, err
}

func openKeep(t *testing.T, dir string) *Dir {
	t.Helper()
	d, err := Open(dir)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { d.Close() })
	return d
}

// TestRunAsRights: an operation run as a user has that user's rights and
// no more (no CAP_DAC_OVERRIDE, no CAP_SYS_ADMIN for trusted.*), and the
// identity never leaks to the caller's thread or to other goroutines.
func TestRunAsRights(t *testing.T) {
	requireRoot(t)
	root := t.TempDir()
	unix.Chmod(root, 0o755)
	mkdirOwned(t, filepath.Join(root, "alice"), 0o700, alice)
	d := openKeep(t, root)

	err := RunAs(asUser(bob), func() error {
		_, err := d.OpenDir("alice", nil, nil)
		return err
	})
	if !errors.Is(err, unix.EACCES) {
		t.Errorf("bob opening alice's 0700 dir: %v, want EACCES", err)
	}
	_, _, err = saveAs(d, alice, "alice", "notes", FileID{}, func(tmp *Temp) error {
		if err := unix.Fsetxattr(tmp.Fd(), "trusted.x", []byte("y"), 0); !errors.Is(err, unix.EPERM) {
			t.Errorf("trusted.* xattr set as alice: %v, want EPERM", err)
		}
		return nil
	})
	if err != nil {
		t.Fatalf("alice saving into her own dir: %v", err)
	}
	var st unix.Stat_t
	if err := unix.Lstat(filepath.Join(root, "alice", "notes"), &st); err != nil {
		t.Fatal(err)
	}
	if st.Uid != alice || st.Gid != alice {
		t.Errorf("alice's saved file is owned %d:%d, want %d:%d", st.Uid, st.Gid, alice, alice)
	}

	// Acting for root from inside an operation as a user is root again.
	err = RunAs(asUser(bob), func() error {
		return RunAs(Identity{}, func() error {
			fd, err := d.OpenDir("alice", nil, nil)
			if err == nil {
				unix.Close(fd)
			}
			return err
		})
	})
	if err != nil {
		t.Errorf("root's operation inside bob's: %v, want root's rights", err)
	}

	// Root's rights stay with everything else, while saves as users run.
	secret := filepath.Join(root, "alice", "secret")
	if err := os.WriteFile(secret, []byte("s"), 0o600); err != nil {
		t.Fatal(err)
	}
	var wg sync.WaitGroup
	stop := make(chan struct{})
	for i := range 8 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for {
				select {
				case <-stop:
					return
				default:
				}
				RunAs(asUser(uint32(bob+i)), func() error { return nil })
			}
		}()
	}
	for range 2000 {
		if _, err := os.ReadFile(secret); err != nil {
			t.Fatalf("root reading a 0600 file while saves ran as other users: %v", err)
		}
	}
	close(stop)
	wg.Wait()
}

// TestPlace: what a save may replace, and where it goes otherwise.
func TestPlace(t *testing.T) {
	requireRoot(t)
	root := t.TempDir()
	unix.Chmod(root, 0o1777) // os.Chmod would drop the sticky bit
	d := openKeep(t, root)
	write := func(name string, uid int) {
		t.Helper()
		p := filepath.Join(root, name)
		if err := os.WriteFile(p, []byte("theirs "+name), 0o644); err != nil {
			t.Fatal(err)
		}
		if err := os.Lchown(p, uid, uid); err != nil {
			t.Fatal(err)
		}
	}
	write("own", bob)
	write("others", alice)
	write("both", alice)
	write("both"+BesideSuffix, alice)
	if err := os.Mkdir(filepath.Join(root, "adir"), 0o777); err != nil {
		t.Fatal(err)
	}
	if err := os.Symlink("/etc/passwd", filepath.Join(root, "link")); err != nil {
		t.Fatal(err)
	}
	write("previous", alice) // our previous copy, placed by alice before a chown

	var prev FileID
	{
		fd, err := unix.Open(filepath.Join(root, "previous"), unix.O_PATH, 0)
		if err != nil {
			t.Fatal(err)
		}
		prev, _ = Identify(fd)
		unix.Close(fd)
	}
	tests := []struct {
		name     string
		prev     FileID
		wantUsed string
		wantWhy  string // substring; "" for none
		wantErr  error
	}{
		{name: "new", wantUsed: "new"},
		{name: "own", wantUsed: "own"},
		{name: "others", wantUsed: "others" + BesideSuffix, wantWhy: "uid 1001"},
		{name: "both", wantErr: ErrTaken, wantWhy: "uid 1001"},
		{name: "adir", wantUsed: "adir" + BesideSuffix, wantWhy: "directory"},
		{name: "link", wantUsed: "link" + BesideSuffix, wantWhy: "uid 0"},
		{name: "previous", prev: prev, wantUsed: "previous" + BesideSuffix, wantWhy: "may not replace"}, // sticky: the kernel says no
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			used, why, err := saveAs(d, bob, "", tc.name, tc.prev, func(tmp *Temp) error {
				_, err := unix.Write(tmp.Fd(), []byte("ours"))
				return err
			})
			if !errors.Is(err, tc.wantErr) {
				t.Fatalf("Place: %v, want %v", err, tc.wantErr)
			}
			if used != tc.wantUsed || !strings.Contains(why, tc.wantWhy) || (tc.wantWhy == "") != (why == "") {
				t.Errorf("Place = %q (%q), want %q (%q)", used, why, tc.wantUsed, tc.wantWhy)
			}
			if used != "" {
				if b, _ := os.ReadFile(filepath.Join(root, used)); string(b) != "ours" {
					t.Errorf("%s holds %q, want ours", used, b)
				}
			}
			if used != tc.name {
				var st unix.Stat_t
				if err := unix.Lstat(filepath.Join(root, tc.name), &st); err == nil && st.Uid == bob && tc.name != "new" {
					t.Errorf("%s was replaced by bob's file", tc.name)
				}
			}
		})
	}
	entries, _ := os.ReadDir(root)
	for _, e := range entries {
		if strings.HasPrefix(e.Name(), tempPrefix) || strings.HasSuffix(e.Name(), NewSuffix) {
			t.Errorf("a temporary name is left: %s", e.Name())
		}
	}
}

// TestPlaceAfterKill: a new version a kill left under its hidden name is
// replaced by the next save of that name, or removed with it, if it is the
// owner's; another user's is left alone.
func TestPlaceAfterKill(t *testing.T) {
	requireRoot(t)
	root := t.TempDir()
	unix.Chmod(root, 0o1777)
	d := openKeep(t, root)
	plant := func(name string, uid int) {
		t.Helper()
		p := filepath.Join(root, name)
		if err := os.WriteFile(p, []byte("left by a kill"), 0o644); err != nil {
			t.Fatal(err)
		}
		if err := os.Chown(p, uid, uid); err != nil {
			t.Fatal(err)
		}
	}
	ours := func(tmp *Temp) error { _, err := unix.Write(tmp.Fd(), []byte("ours")); return err }
	for _, name := range []string{"a", "b", "c"} {
		plant(name, bob)
	}
	plant(".a"+NewSuffix, bob)   // replaced by the next save of a
	plant(".b"+NewSuffix, alice) // not bob's: left, and a random name used
	plant(".c"+NewSuffix, bob)   // removed with c
	for _, name := range []string{"a", "b"} {
		if used, _, err := saveAs(d, bob, "", name, FileID{}, ours); err != nil || used != name {
			t.Fatalf("save %s: %q, %v", name, used, err)
		}
	}
	var id FileID
	if fd, err := unix.Open(filepath.Join(root, "c"), unix.O_PATH, 0); err == nil {
		id, _ = Identify(fd)
		unix.Close(fd)
	}
	if err := RunAs(asUser(bob), func() error { _, err := d.Remove("c", id, bob); return err }); err != nil {
		t.Fatal(err)
	}
	got := map[string]bool{}
	entries, _ := os.ReadDir(root)
	for _, e := range entries {
		got[e.Name()] = true
	}
	want := map[string]bool{"a": true, "b": true, ".b" + NewSuffix: true}
	if !maps.Equal(got, want) {
		t.Errorf("keep dir holds %v, want %v", got, want)
	}
}

// TestOpenDirSymlinks: no symlink is followed on the way, and missing
// directories are made with the mode asked for, whatever the umask.
func TestOpenDirSymlinks(t *testing.T) {
	root, elsewhere := t.TempDir(), t.TempDir()
	if err := os.Symlink(elsewhere, filepath.Join(root, "trap")); err != nil {
		t.Fatal(err)
	}
	d := openKeep(t, root)
	if _, err := d.OpenDir("trap/sub", func(string) DirSpec { return DirSpec{Mode: 0o755} }, nil); err == nil || !strings.Contains(err.Error(), "is a symlink") {
		t.Errorf("OpenDir through a symlink: %v, want a refusal", err)
	}
	if entries, _ := os.ReadDir(elsewhere); len(entries) != 0 {
		t.Errorf("the symlink's target got %d entries", len(entries))
	}
	old := unix.Umask(0o077)
	defer unix.Umask(old)
	var made []string
	fd, err := d.OpenDir("a/b", func(string) DirSpec { return DirSpec{Mode: 0o2751} }, func(rel string) { made = append(made, rel) })
	if err != nil {
		t.Fatal(err)
	}
	unix.Close(fd)
	if strings.Join(made, ",") != "a,a/b" {
		t.Errorf("made %q, want a and a/b", made)
	}
	st, err := os.Stat(filepath.Join(root, "a/b"))
	if err != nil {
		t.Fatal(err)
	}
	if got := uint32(st.Mode().Perm()) | uint32(st.Mode()&os.ModeSetgid>>12); st.Mode().Perm() != 0o751 || st.Mode()&os.ModeSetgid == 0 {
		t.Errorf("a/b mode %v (%#o), want 02751", st.Mode(), got)
	}
	if !d.RemoveDir("a/b") || !d.RemoveDir("a") {
		t.Errorf("RemoveDir of empty made directories failed")
	}
}

// TestApplyAsUser: a user's save keeps what cp -a run as that user keeps.
func TestApplyAsUser(t *testing.T) {
	requireRoot(t)
	root := t.TempDir()
	unix.Chmod(root, 0o1777) // os.Chmod would drop the sticky bit
	// Files made here get group 0, which bob is not in.
	mkdirOwned(t, filepath.Join(root, "g"), 0o2777, 0)
	d := openKeep(t, root)
	var notes []string
	a := Attrs{UID: bob, GID: 0, Mode: 0o6755,
		Atime: unix.Timespec{Sec: 1000, Nsec: 1}, Mtime: unix.Timespec{Sec: 4102444800, Nsec: 2},
		Xattrs: map[string][]byte{"user.k": []byte("v"), "trusted.k": []byte("v")}}
	save := func(dir string, a Attrs) (notes []string, err error) {
		_, _, err = saveAs(d, bob, dir, "f", FileID{}, func(tmp *Temp) error {
			notes, err = tmp.Apply(a)
			return err
		})
		return notes, err
	}
	check := func(rel string, gid, mode uint32, wantNotes ...string) {
		t.Helper()
		var st unix.Stat_t
		if err := unix.Lstat(filepath.Join(root, rel), &st); err != nil {
			t.Fatal(err)
		}
		if st.Uid != bob || st.Gid != gid || st.Mode&07777 != mode {
			t.Errorf("%s saved as bob: owner %d:%d mode %#o, want %d:%d %#o", rel, st.Uid, st.Gid, st.Mode&07777, bob, gid, mode)
		}
		if st.Mtim != a.Mtime || st.Atim != a.Atime {
			t.Errorf("%s: times %v %v, want %v %v", rel, st.Atim, st.Mtim, a.Atime, a.Mtime)
		}
		if _, err := unix.Lgetxattr(filepath.Join(root, rel), "trusted.k", make([]byte, 8)); err == nil {
			t.Errorf("%s: trusted.k was saved for bob", rel)
		}
		joined := strings.Join(notes, "; ")
		for _, want := range wantNotes {
			if !strings.Contains(joined, want) {
				t.Errorf("%s: notes %q lack %q", rel, joined, want)
			}
		}
	}
	// Group 0 is not bob's: the file keeps his; set-ID bits on a file of
	// his own group stay; trusted.* goes.
	notes, err := save("", a)
	if err != nil {
		t.Fatal(err)
	}
	check("f", bob, 0o6755, "group 0 not kept", "trusted.k")
	// Made with group 0 (a set-group-ID directory): the set-group-ID bit
	// goes, as chmod by a non-member drops it.
	notes, err = save("g", a)
	if err != nil {
		t.Fatal(err)
	}
	check("g/f", 0, 0o4755, "saved as 04755", "trusted.k")
}

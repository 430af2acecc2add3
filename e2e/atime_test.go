package e2e

import (
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"golang.org/x/sys/unix"
)

// TestAtimeOptions: the atime mount options, on tmpfs mounted with them
// and on tmpmount given them (as flags and as -o options): which reads,
// readdirs and readlinks move atime. A read that the page cache serves
// never reaches tmpmount, so each read of a file here is a fresh open
// whose pages were dropped (posix_fadvise DONTNEED), except under
// strictatime, where tmpmount drops them at every open itself.
func TestAtimeOptions(t *testing.T) {
	modes := []struct {
		name     string
		tmpfs    uintptr  // tmpfs mount flags
		tmpmount []string // tmpmount arguments
	}{
		{name: "relatime", tmpmount: nil},
		{name: "strictatime", tmpfs: unix.MS_STRICTATIME, tmpmount: []string{"--atime", "strictatime"}},
		{name: "noatime", tmpfs: unix.MS_NOATIME, tmpmount: []string{"-o", "noatime", "--foreground"}},
		{name: "nodiratime", tmpfs: unix.MS_NODIRATIME, tmpmount: []string{"--no-diratime"}},
		{name: "noatime-nodiratime", tmpfs: unix.MS_NOATIME | unix.MS_NODIRATIME, tmpmount: []string{"-o", "nodiratime,noatime", "--foreground"}},
	}
	for _, md := range modes {
		t.Run(md.name, func(t *testing.T) {
			requireRoot(t)
			ref := t.TempDir()
			if err := unix.Mount("tmpfs", ref, "tmpfs", md.tmpfs, "huge=never"); err != nil {
				t.Fatalf("mount tmpfs with flags %#x: %v", md.tmpfs, err)
			}
			t.Cleanup(func() {
				if err := unix.Unmount(ref, 0); err != nil {
					t.Errorf("unmount reference tmpfs: %v", err)
				}
			})
			want := atimeScenario(t, ref, false)
			m := startMount(t, md.tmpmount...)
			got := atimeScenario(t, m.Dir, true)
			if !slices.Equal(got, want) {
				t.Errorf("which steps moved atime:\n  tmpfs:    %s\n  tmpmount: %s", strings.Join(want, "; "), strings.Join(got, "; "))
			}
			if w, g := atimeMountFlags(t, ref), atimeMountFlags(t, m.Dir); w != g {
				t.Errorf("atime options in /proc/self/mountinfo: tmpfs %q, tmpmount %q", w, g)
			}
		})
	}
}

// atimeScenario runs the steps in a fresh directory of dir and says for
// each whether it moved atime.
func atimeScenario(t *testing.T, dir string, dropPages bool) []string {
	t.Helper()
	base := filepath.Join(dir, "atime")
	if err := os.Mkdir(base, 0o755); err != nil {
		t.Fatal(err)
	}
	f, d, l := filepath.Join(base, "f"), filepath.Join(base, "d"), filepath.Join(base, "l")
	if err := os.WriteFile(f, []byte("data"), 0o644); err != nil {
		t.Fatal(err)
	}
	if err := os.Mkdir(d, 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(d, "x"), nil, 0o644); err != nil {
		t.Fatal(err)
	}
	if err := os.Symlink("f", l); err != nil {
		t.Fatal(err)
	}
	// atime before mtime and ctime: relatime updates it at the next read.
	past := []unix.Timespec{{Sec: 1000000000}, {Sec: unix.UTIME_OMIT, Nsec: unix.UTIME_OMIT}}
	for _, p := range []string{f, d, l} {
		past[1] = unix.Timespec{Nsec: unix.UTIME_OMIT}
		if err := unix.UtimesNanoAt(unix.AT_FDCWD, p, past, unix.AT_SYMLINK_NOFOLLOW); err != nil {
			t.Fatalf("utimensat %s: %v", p, err)
		}
	}
	atime := func(p string) unix.Timespec {
		var st unix.Stat_t
		if err := unix.Lstat(p, &st); err != nil {
			t.Fatal(err)
		}
		return st.Atim
	}
	read := func() {
		fd, err := unix.Open(f, unix.O_RDONLY|unix.O_CLOEXEC, 0)
		if err != nil {
			t.Fatal(err)
		}
		defer unix.Close(fd)
		if dropPages {
			unix.Fadvise(fd, 0, 0, unix.FADV_DONTNEED)
		}
		buf := make([]byte, 64)
		if _, err := unix.Read(fd, buf); err != nil {
			t.Fatal(err)
		}
	}
	list := func() {
		if _, err := os.ReadDir(d); err != nil {
			t.Fatal(err)
		}
	}
	readlink := func() {
		if _, err := os.Readlink(l); err != nil {
			t.Fatal(err)
		}
	}
	var log []string
	step := func(what, p string, do func()) {
		before := atime(p)
		mmNextTick()
		do()
		log = append(log, fmt.Sprintf("%s: %v", what, atime(p) != before))
	}
	for _, round := range []string{"first", "second"} {
		step(round+" read", f, read)
		step(round+" readdir", d, list)
		step(round+" readlink", l, readlink)
	}
	return log
}

// atimeMountFlags is the atime part of a mount's options.
func atimeMountFlags(t *testing.T, dir string) string {
	t.Helper()
	for _, m := range mountsOf(t, "/proc/self/mountinfo") {
		if m.point != dir {
			continue
		}
		var opts []string
		for _, o := range strings.Split(strings.Fields(m.line)[5], ",") {
			if strings.Contains(o, "atime") {
				opts = append(opts, o)
			}
		}
		return strings.Join(opts, ",")
	}
	t.Fatalf("%s is not mounted", dir)
	return ""
}

// TestAtimeNoatimePassthrough: under noatime a file read through
// passthrough keeps its atime too, although the backing file's moves
// (the spill filesystem has its own atime options).
func TestAtimeNoatimePassthrough(t *testing.T) {
	m := mmStart(t, mmPassthroughKinds[0], "--atime", "noatime")
	path := m.Path("big")
	mmWriteFile(t, path, mmBytes("big", 1<<20))
	mmWantResidency(t, path, "disk")
	past := []unix.Timespec{{Sec: 1000000000}, {Nsec: unix.UTIME_OMIT}}
	if err := unix.UtimesNanoAt(unix.AT_FDCWD, path, past, 0); err != nil {
		t.Fatal(err)
	}
	for i := range 2 {
		mmNextTick()
		fd := mmOpen(t, path, unix.O_RDONLY)
		mmPread(t, fd, int64(i)<<19, 4096)
		mmClose(t, fd)
		if got := mmStat(t, path).Atim; got != past[0] {
			t.Errorf("read %d through passthrough under noatime moved atime to %s", i+1, mmTs(got))
		}
	}
}

// TestAtimeRun: tmpmount run mounts with the atime options too.
func TestAtimeRun(t *testing.T) {
	requireFUSE(t)
	out := runCmd(t, "/", tmpmountBin, "run", "--atime", "noatime", "--no-diratime", "--",
		"sh", "-c", `echo "line: $(grep " $TMPMOUNT_DIR " /proc/self/mountinfo)"`)
	_, line, _ := strings.Cut(out, "line: ")
	fields := strings.Fields(line)
	if len(fields) < 6 {
		t.Fatalf("the mount's line: %q", out)
	}
	if opts := fields[5]; !strings.Contains(","+opts+",", ",noatime,") || !strings.Contains(","+opts+",", ",nodiratime,") {
		t.Errorf("tmpmount run --atime noatime --no-diratime mounted with %q, want noatime and nodiratime", opts)
	}
}

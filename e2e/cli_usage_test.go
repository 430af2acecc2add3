package e2e

// Tests of what a new user meets on the command line (issue 13: flags,
// help, messages, sizes, the spill dir, events; issue 14: the mount's
// source, dev and suid, the file size limit).

import (
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"golang.org/x/sys/unix"
)

// cuMountStats is the JSON of `tmpmount stat --json MOUNTPOINT`, the fields
// these tests read.
type cuMountStats struct {
	MaxSize   int64  `json:"max_size"`
	MemLimit  int64  `json:"mem_limit"`
	SizeLimit int64  `json:"size_limit"`
	SpillDir  string `json:"spill_dir"`
}

// cuStatJSON runs tmpmount stat --json on path, as cmd's environment
// says, and decodes it into v.
func cuStatJSON(t *testing.T, path string, v any) {
	t.Helper()
	res := runCLI(t, exec.Command(tmpmountBin, "stat", "--json", path), "")
	if res.code != 0 {
		t.Fatalf("tmpmount stat --json %s: exit %d\n%s", path, res.code, res.stderr)
	}
	if err := json.Unmarshal([]byte(res.stdout), v); err != nil {
		t.Fatalf("tmpmount stat --json %s: %v\n%s", path, err, res.stdout)
	}
}

// cuStartDaemon starts tmpmount with args (the mount point last) and the
// environment env (nil: this process's), waits until it serves, and at the
// end of the test unmounts it and checks it exited 0.
func cuStartDaemon(t *testing.T, env []string, args ...string) (mp string, stderr *syncBuffer) {
	t.Helper()
	requireFUSE(t)
	mp = args[len(args)-1]
	stderr = &syncBuffer{}
	cmd := exec.Command(tmpmountBin, args...)
	cmd.Env = env
	cmd.Stdout, cmd.Stderr = stderr, stderr
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	done := make(chan error, 1)
	go func() { done <- cmd.Wait() }()
	t.Cleanup(func() {
		if isMountPoint(mp) {
			if err := unmountPath(mp); err != nil {
				t.Errorf("unmount %s: %v", mp, err)
				unix.Unmount(mp, unix.MNT_DETACH)
			}
		}
		select {
		case err := <-done:
			if err != nil {
				t.Errorf("tmpmount exited with %v\n%s", err, stderr)
			}
		case <-time.After(20 * time.Second):
			cmd.Process.Kill()
			t.Errorf("tmpmount still running 20s after unmount\n%s", stderr)
		}
	})
	waitFor(t, 10*time.Second, "tmpmount to serve "+mp, func() bool {
		select {
		case err := <-done:
			done <- err
			t.Fatalf("tmpmount exited before serving: %v\n%s", err, stderr)
		default:
		}
		return isMountPoint(mp) && strings.Contains(stderr.String(), "tmpmount: serving ")
	})
	return mp, stderr
}

// cuEnv is this process's environment with TMPDIR set to tmpdir.
func cuEnv(tmpdir string) []string {
	var env []string
	for _, kv := range os.Environ() {
		if !strings.HasPrefix(kv, "TMPDIR=") {
			env = append(env, kv)
		}
	}
	return append(env, "TMPDIR="+tmpdir)
}

// TestCLIFlagErrorsGNUStyle checks through the binary that bad flags and
// -o options are reported in GNU style, as typed, with the closest one
// suggested: one line, exit 2, nothing mounted.
func TestCLIFlagErrorsGNUStyle(t *testing.T) {
	tests := []struct {
		args []string // {mp} is a fresh mount point
		want string
	}{
		{[]string{"--max-sise", "8M", "{mp}"}, "tmpmount: unknown flag --max-sise: did you mean --max-size? (see tmpmount --help)\n"},
		{[]string{"-max-sise", "8M", "{mp}"}, "tmpmount: unknown flag --max-sise: did you mean --max-size? (see tmpmount --help)\n"},
		{[]string{"{mp}", "-o", "max_sise=8M"}, "tmpmount: unknown -o option max_sise: did you mean max_size? (see tmpmount --help)\n"},
		{[]string{"{mp}", "-o", "max_size=8mb"}, "tmpmount: -o max_size: invalid size \"8mb\": unknown unit \"mb\": "},
		{[]string{"--mem-limit", "1.5G", "{mp}"}, "tmpmount: --mem-limit: invalid size \"1.5G\": unknown unit \".5G\": "},
		{[]string{"run", "--mem-limt", "1G", "--", "true"}, "tmpmount: unknown flag --mem-limt: did you mean --mem-limit? (see tmpmount run --help)\n"},
		{[]string{"stat", "--jsn", "/"}, "tmpmount: unknown flag --jsn: did you mean --json? (see tmpmount stat --help)\n"},
	}
	for _, tc := range tests {
		t.Run(strings.Join(tc.args, " "), func(t *testing.T) {
			mp := t.TempDir()
			args := make([]string, len(tc.args))
			for i, a := range tc.args {
				args[i] = strings.ReplaceAll(a, "{mp}", mp)
			}
			before := mountinfoAt(t, mp)
			res := runCLI(t, exec.Command(tmpmountBin, args...), mp)
			if args[0] == "run" {
				// tmpmount run's own failures are 125, as env(1)'s.
				if res.code != 125 {
					t.Errorf("exit status %d, want 125", res.code)
				}
				res.code = 2
			}
			checkSetupError(t, res, mp, before)
			if !strings.HasPrefix(res.stderr, tc.want) {
				t.Errorf("stderr %q, want it to start %q", res.stderr, tc.want)
			}
		})
	}
}

// TestCLIHelpCommands checks that run and stat have their own help, and
// that `tmpmount help [COMMAND]` prints it.
func TestCLIHelpCommands(t *testing.T) {
	tests := []struct {
		args      []string
		start     string // what stdout starts with
		mustHave  []string
		mustNotBe []string
	}{
		{[]string{"help"}, "Usage:\n  tmpmount [flags] MOUNTPOINT", []string{"--max-size SIZE", "tmpmount help [run|stat]", "Exit status"}, nil},
		{[]string{"help", "mount"}, "Usage:\n  tmpmount [flags] MOUNTPOINT", nil, nil},
		{[]string{"run", "--help"}, "Usage:\n  tmpmount run [flags] [--] CMD [ARGS...]", []string{"TMPDIR", "--max-size SIZE", "--keep-dir DIR"}, []string{"--foreground", "tmpmount stat [--json]"}},
		{[]string{"run", "-h"}, "Usage:\n  tmpmount run [flags]", nil, nil},
		{[]string{"help", "run"}, "Usage:\n  tmpmount run [flags]", nil, nil},
		{[]string{"stat", "--help"}, "Usage:\n  tmpmount stat [--json] PATH", []string{"--json", "symlink is followed"}, []string{"--max-size"}},
		{[]string{"help", "stat"}, "Usage:\n  tmpmount stat [--json] PATH", nil, nil},
		{[]string{"help", "--help"}, "Usage: tmpmount help [run|stat]", nil, nil},
	}
	for _, tc := range tests {
		t.Run(strings.Join(tc.args, " "), func(t *testing.T) {
			res := runCLI(t, exec.Command(tmpmountBin, tc.args...), "")
			if res.code != 0 || res.stderr != "" {
				t.Errorf("exit %d, stderr %q; want 0 and nothing", res.code, res.stderr)
			}
			if !strings.HasPrefix(res.stdout, tc.start) {
				t.Errorf("stdout starts %q, want %q", firstLines(res.stdout, 2), tc.start)
			}
			for _, w := range tc.mustHave {
				if !strings.Contains(res.stdout, w) {
					t.Errorf("help lacks %q:\n%s", w, res.stdout)
				}
			}
			for _, w := range tc.mustNotBe {
				if strings.Contains(res.stdout, w) {
					t.Errorf("help has %q, which is not this command's:\n%s", w, res.stdout)
				}
			}
		})
	}
	t.Run("help bogus", func(t *testing.T) {
		res := runCLI(t, exec.Command(tmpmountBin, "help", "stats"), "")
		checkSetupError(t, res, "", nil, `no command "stats"`, "did you mean stat?")
	})
}

func firstLines(s string, n int) string {
	lines := strings.SplitN(s, "\n", n+1)
	return strings.Join(lines[:min(n, len(lines))], "\n")
}

// TestCLIMemLimitZero: --mem-limit 0 means no memory budget, and the
// serving line, stat and --help say so instead of "0 B".
func TestCLIMemLimitZero(t *testing.T) {
	m := startMount(t, "--mem-limit", "0", "--max-size", "64k")
	waitServing(t, m)
	if log := m.Stderr.String(); !strings.Contains(log, "mem-limit unlimited") || strings.Contains(log, "mem-limit 0 B") {
		t.Errorf("serving line with --mem-limit 0 does not say unlimited:\n%s", log)
	}
	res := runCLI(t, exec.Command(tmpmountBin, "stat", m.Dir), "")
	if !strings.Contains(res.stdout, "mem-limit none") {
		t.Errorf("tmpmount stat with --mem-limit 0 does not say none:\n%s", res.stdout)
	}
	// No budget: many files at the threshold all stay in RAM.
	for i := range 8 {
		if err := os.WriteFile(m.Path(fmt.Sprint(i)), seededBytes(uint64(i), 64<<10), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	for i := range 8 {
		if got := readResidency(t, m.Path(fmt.Sprint(i))); got != "memory" {
			t.Errorf("file %d of 64 KiB with --mem-limit 0: %s, want memory", i, got)
		}
	}
	help := runCLI(t, exec.Command(tmpmountBin, "--help"), "")
	if !strings.Contains(help.stdout, "0 = no budget") {
		t.Errorf("--help does not say what --mem-limit 0 means:\n%s", help.stdout)
	}
}

// TestCLISizePercent mounts with --size and --mem-limit given as a
// percentage of RAM, as tmpfs's size= takes it, and compares the limits
// with a tmpfs mounted with the same spelling.
func TestCLISizePercent(t *testing.T) {
	requireRoot(t)
	tmpfsBytes := func(spelling string) int64 {
		dir := mountTmpfs(t, t.TempDir(), "size="+spelling)
		var st unix.Statfs_t
		if err := unix.Statfs(dir, &st); err != nil {
			t.Fatal(err)
		}
		return int64(st.Blocks) * st.Bsize
	}
	m := startMount(t, "--size", "50%", "--mem-limit", "25%", "--max-size", "8MB")
	var st cuMountStats
	cuStatJSON(t, m.Dir, &st)
	if want := tmpfsBytes("50%"); st.SizeLimit != want {
		t.Errorf("--size 50%%: size_limit %d, want %d (a tmpfs's size=50%%)", st.SizeLimit, want)
	}
	if want := tmpfsBytes("25%"); st.MemLimit != want {
		t.Errorf("--mem-limit 25%%: mem_limit %d, want %d (a tmpfs's size=25%%)", st.MemLimit, want)
	}
	if st.MaxSize != 8000000 {
		t.Errorf("--max-size 8MB: max_size %d, want 8000000 (as truncate -s 8MB)", st.MaxSize)
	}
}

// TestCLISpillDirOnTmpfs: a spill dir on tmpfs would keep rolled-over data
// in RAM. A $TMPDIR there is passed over for /var/tmp, saying so; a
// --spill-dir there is used, with a warning; a nested tmpmount run (whose
// $TMPDIR is the outer mount) spills to /var/tmp, not into the outer mount.
func TestCLISpillDirOnTmpfs(t *testing.T) {
	requireRoot(t)
	if inMemoryFS(t, "/var/tmp") {
		t.Skip("/var/tmp is itself on tmpfs here")
	}
	tmpfs := mountTmpfs(t, t.TempDir(), "size=16M")

	t.Run("TMPDIR on tmpfs", func(t *testing.T) {
		mp, log := cuStartDaemon(t, cuEnv(tmpfs), t.TempDir())
		var st cuMountStats
		cuStatJSON(t, mp, &st)
		if filepath.Dir(st.SpillDir) != "/var/tmp" {
			t.Errorf("spill dir %s with TMPDIR on tmpfs, want one in /var/tmp", st.SpillDir)
		}
		if !strings.Contains(log.String(), "$TMPDIR ("+tmpfs+") is on tmpfs") || !strings.Contains(log.String(), "spilling to /var/tmp instead") {
			t.Errorf("the log does not say why it spills to /var/tmp:\n%s", log)
		}
	})
	t.Run("--spill-dir on tmpfs", func(t *testing.T) {
		mp, log := cuStartDaemon(t, nil, "--spill-dir", tmpfs, t.TempDir())
		var st cuMountStats
		cuStatJSON(t, mp, &st)
		if filepath.Dir(st.SpillDir) != tmpfs {
			t.Errorf("spill dir %s, want one in --spill-dir %s (as asked)", st.SpillDir, tmpfs)
		}
		if !strings.Contains(log.String(), "warning: spill dir "+tmpfs+" (--spill-dir) is on tmpfs") {
			t.Errorf("no warning that --spill-dir is on tmpfs:\n%s", log)
		}
	})
	t.Run("nested run", func(t *testing.T) {
		res := runCLI(t, exec.Command(tmpmountBin, "run", "--spill-dir", t.TempDir(), "--",
			tmpmountBin, "run", "--", "sh", "-c", `exec "$0" stat --json "$TMPDIR"`, tmpmountBin), "")
		if res.code != 0 {
			t.Fatalf("nested tmpmount run: exit %d\n%s", res.code, res.stderr)
		}
		var st cuMountStats
		if err := json.Unmarshal([]byte(res.stdout), &st); err != nil {
			t.Fatalf("inner stat: %v\n%s", err, res.stdout)
		}
		if filepath.Dir(st.SpillDir) != "/var/tmp" {
			t.Errorf("the inner mount spills to %s, want /var/tmp (its $TMPDIR is the outer mount)\n%s", st.SpillDir, res.stderr)
		}
		if !strings.Contains(res.stderr, "is on another tmpmount mount") {
			t.Errorf("the inner tmpmount does not say why it spills to /var/tmp:\n%s", res.stderr)
		}
		if strings.Contains(res.stderr, "symbolic links") {
			t.Errorf("the inner mount's passthrough probe failed on the outer mount:\n%s", res.stderr)
		}
	})
}

// inMemoryFS reports whether path is on tmpfs or ramfs.
func inMemoryFS(t *testing.T, path string) bool {
	var st unix.Statfs_t
	if err := unix.Statfs(path, &st); err != nil {
		t.Fatal(err)
	}
	return st.Type == unix.TMPFS_MAGIC || st.Type == unix.RAMFS_MAGIC
}

// cuNobodyDirs makes what a test of an unprivileged mount needs: a copy of
// the binary nobody can run, a mount point and a spill dir nobody owns, and
// a scratch dir of root's.
func cuNobodyDirs(t *testing.T) (bin, mp, spill, scratch string) {
	t.Helper()
	base := nobodyReachableDir(t)
	bin = binaryForNobody(t, base)
	mp = nobodyOwnedDir(t, filepath.Join(base, "mnt"))
	spill = nobodyOwnedDir(t, filepath.Join(base, "spill"))
	scratch = filepath.Join(base, "scratch")
	if err := os.Mkdir(scratch, 0o700); err != nil {
		t.Fatal(err)
	}
	return bin, mp, spill, scratch
}

// cuDevFuse is sh (run as root in a private mount namespace, $1 a scratch
// dir) that puts a /dev/fuse with the given mode over the machine's, so
// that a test decides whether users may open it.
func cuDevFuse(mode string) string {
	return `mknod "$1/fuse" c 10 229 && chmod ` + mode + ` "$1/fuse" && mount --bind "$1/fuse" /dev/fuse`
}

// TestCLIFusermountFailures makes fusermount3 fail as nobody, in a private
// mount namespace: /dev/fuse closed to users, and --allow-other without
// user_allow_other. tmpmount must say in one line what to do, exit 2, and
// let nothing of fusermount3's own output through.
func TestCLIFusermountFailures(t *testing.T) {
	requireRoot(t)
	requireFUSE(t)
	if _, err := exec.LookPath("fusermount3"); err != nil {
		t.Skip("no fusermount3")
	}
	tests := []struct {
		name  string
		setup string // sh run as root in the namespace first; $1 is a scratch dir
		flags []string
		words []string
	}{
		{
			name:  "/dev/fuse 0600",
			setup: cuDevFuse("0600"),
			words: []string{"/dev/fuse", "chmod 0666 /dev/fuse", "udev"},
		},
		{
			name:  "allow_other without user_allow_other",
			setup: cuDevFuse("0666") + ` && : > "$1/fuse.conf" && mount --bind "$1/fuse.conf" /etc/fuse.conf`,
			flags: []string{"--allow-other"},
			words: []string{"user_allow_other", "/etc/fuse.conf"},
		},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			bin, mp, spill, scratch := cuNobodyDirs(t)
			argv := append([]string{bin, "--spill-dir", spill}, tc.flags...)
			argv = append(argv, mp)
			cmd := exec.Command("unshare", append([]string{"--mount", "--propagation", "private", "--",
				"sh", "-c", tc.setup + ` && shift && exec "$@"`, "sh", scratch}, asNobody(argv...).Args...)...)
			before := mountinfoAt(t, mp)
			res := runCLI(t, cmd, mp)
			checkSetupError(t, res, mp, before, tc.words...)
			if strings.Contains(res.stderr, "fusermount") && strings.Contains(res.stderr, "exited") {
				t.Errorf("fusermount3's exit status reached the user: %q", res.stderr)
			}
		})
	}
}

// TestCLIRolloverReasons checks the reason of each kind of rollover in the
// events file, and that `size` is the file's size when it moved. tmpmount
// stat follows a symlink to a file.
func TestCLIRolloverReasons(t *testing.T) {
	events := filepath.Join(t.TempDir(), "events.jsonl")
	m := startMount(t, "--max-size", "64k", "--mem-limit", "256k", "--events", events, "--no-passthrough")

	// size: one write past --max-size, from empty.
	if err := os.WriteFile(m.Path("size.bin"), seededBytes(1, 100<<10), 0o644); err != nil {
		t.Fatal(err)
	}
	// xattr: a 1000-byte file asked to spill.
	if err := os.WriteFile(m.Path("xattr.bin"), seededBytes(2, 1000), 0o644); err != nil {
		t.Fatal(err)
	}
	if err := unix.Setxattr(m.Path("xattr.bin"), "user.tmpmount.spill", nil, 0); err != nil {
		t.Fatal(err)
	}
	// mmap: a 4 KiB file written through a shared mapping.
	if err := os.WriteFile(m.Path("mmap.bin"), make([]byte, 4096), 0o644); err != nil {
		t.Fatal(err)
	}
	func() {
		f, err := os.OpenFile(m.Path("mmap.bin"), os.O_RDWR, 0)
		if err != nil {
			t.Fatal(err)
		}
		defer f.Close()
		mem, err := unix.Mmap(int(f.Fd()), 0, 4096, unix.PROT_READ|unix.PROT_WRITE, unix.MAP_SHARED)
		if err != nil {
			t.Fatal(err)
		}
		defer unix.Munmap(mem)
		copy(mem, "written through a mapping")
		if err := unix.Msync(mem, unix.MS_SYNC); err != nil {
			t.Fatal(err)
		}
	}()
	// memory: six 60 KiB files, 360 KiB, in a 256 KiB budget.
	for i := range 6 {
		if err := os.WriteFile(m.Path(fmt.Sprintf("mem%d.bin", i)), seededBytes(uint64(10+i), 60<<10), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	// tmpmount stat follows a symlink.
	if err := os.Symlink("size.bin", m.Path("link")); err != nil {
		t.Fatal(err)
	}
	res := runCLI(t, exec.Command(tmpmountBin, "stat", m.Path("link")), "")
	if res.code != 0 || !strings.Contains(res.stdout, "on disk") {
		t.Errorf("tmpmount stat SYMLINK-to-a-disk-file: exit %d, stdout %q, stderr %q; want 0 and \"on disk\"", res.code, res.stdout, res.stderr)
	}
	polUnmountAndWait(t, m)

	data, err := os.ReadFile(events)
	if err != nil {
		t.Fatal(err)
	}
	type rollover struct {
		reason string
		size   int64
	}
	got := map[string][]rollover{}
	for _, line := range strings.Split(strings.TrimSpace(string(data)), "\n") {
		var e polEvent
		if err := json.Unmarshal([]byte(line), &e); err != nil {
			t.Fatalf("events line %q: %v", line, err)
		}
		if e.Event != "rollover" {
			continue
		}
		if e.Size == nil {
			t.Errorf("rollover without size: %s", line)
			continue
		}
		got[e.Path] = append(got[e.Path], rollover{e.Reason, *e.Size})
	}
	for path, want := range map[string]rollover{
		"size.bin":  {"size", 0},
		"xattr.bin": {"xattr", 1000},
		"mmap.bin":  {"mmap", 4096},
	} {
		if r := got[path]; len(r) != 1 || r[0] != want {
			t.Errorf("%s: rollovers %+v, want [%+v]", path, r, want)
		}
	}
	memory := 0
	for i := range 6 {
		for _, r := range got[fmt.Sprintf("mem%d.bin", i)] {
			if r.reason != "memory" || (r.size != 0 && r.size != 60<<10) {
				t.Errorf("mem%d.bin: rollover %+v, want reason memory, size 0 or %d", i, r, 60<<10)
			}
			memory++
		}
	}
	if memory == 0 {
		t.Errorf("no memory rollover among six 60 KiB files in a 256 KiB budget:\n%s", data)
	}
}

// TestCLIMessages checks the messages issue 13 names: stat of a path on no
// tmpmount, stat by root of a user's mount made without --allow-other, a
// bad user.tmpmount.delete value, a missing spill or keep dir, and --log
// inside the mount point.
func TestCLIMessages(t *testing.T) {
	t.Run("stat outside any mount", func(t *testing.T) {
		res := runCLI(t, exec.Command(tmpmountBin, "stat", "/"), "")
		if res.code != 1 || !strings.Contains(res.stderr, "not on a tmpmount mount (it is on ") || strings.Contains(res.stderr, "no data available") {
			t.Errorf("exit %d, stderr %q; want 1 and \"not on a tmpmount mount (it is on FSTYPE...\" with no raw errno", res.code, res.stderr)
		}
	})
	t.Run("bad delete value", func(t *testing.T) {
		m := startMount(t)
		if err := os.WriteFile(m.Path("f"), nil, 0o644); err != nil {
			t.Fatal(err)
		}
		err := unix.Setxattr(m.Path("f"), "user.tmpmount.delete", []byte("Keep"), 0)
		if !errors.Is(err, unix.EINVAL) {
			t.Errorf("setfattr -v Keep: %v, want EINVAL", err)
		}
		waitFor(t, 5*time.Second, "a log line naming the valid values", func() bool {
			return strings.Contains(m.Stderr.String(), `refused user.tmpmount.delete="Keep": the values are close, unmount and keep`)
		})
	})
	for _, what := range []string{"spill", "keep"} {
		t.Run(what+" dir missing", func(t *testing.T) {
			mp := t.TempDir()
			missing := filepath.Join(t.TempDir(), "missing")
			args := []string{"--" + what + "-dir", missing, mp}
			if what == "keep" {
				args = append([]string{"--spill-dir", t.TempDir(), "--delete", "keep"}, args...)
			}
			before := mountinfoAt(t, mp)
			res := runCLI(t, exec.Command(tmpmountBin, args...), mp)
			checkSetupError(t, res, mp, before, what+" dir "+missing, "does not exist: create it first (mkdir -p "+missing+")")
		})
	}
	t.Run("--log inside the mount point", func(t *testing.T) {
		mp := t.TempDir()
		before := mountinfoAt(t, mp)
		res := runCLI(t, exec.Command(tmpmountBin, "--spill-dir", t.TempDir(), "--log", filepath.Join(mp, "daemon.log"), mp), mp)
		checkSetupError(t, res, mp, before, "log file", "inside the mount point")
		if _, err := os.Stat(filepath.Join(mp, "daemon.log")); err == nil {
			t.Errorf("the refused log file was made anyway")
		}
	})
	t.Run("root stats a user's mount", func(t *testing.T) {
		requireRoot(t)
		if _, err := exec.LookPath("fusermount3"); err != nil {
			t.Skip("no fusermount3")
		}
		bin, mp, spill, scratch := cuNobodyDirs(t)
		// In a private mount namespace with a /dev/fuse open to users (as
		// udev makes it), nobody mounts; root runs tmpmount stat on it.
		script := `set -u
` + cuDevFuse("0666") + ` || exit 1
setpriv --reuid=65534 --regid=65534 --clear-groups -- "$2" --spill-dir "$3" "$4" >"$1/daemon.log" 2>&1 &
i=0; until grep -q "serving" "$1/daemon.log"; do i=$((i+1)); [ $i -lt 200 ] || { cat "$1/daemon.log" >&2; kill $!; exit 1; }; sleep 0.05; done
"$2" stat "$4"; echo "status $?"
setpriv --reuid=65534 --regid=65534 --clear-groups -- fusermount3 -u "$4"; wait`
		res := runCLI(t, exec.Command("unshare", "--mount", "--propagation", "private", "--", "sh", "-c", script, "sh", scratch, bin, spill, mp), "")
		if !strings.Contains(res.stdout, "status 1") || !strings.Contains(res.stderr, "permission denied") || !strings.Contains(res.stderr, "--allow-other") {
			t.Errorf("root's tmpmount stat of nobody's mount: stdout %q, stderr %q; want status 1 with a hint about --allow-other", res.stdout, res.stderr)
		}
	})
}

// TestCLICloseDefaultWarns: a mount-wide --delete close is warned about at
// start, with what to use instead; the default is not.
func TestCLICloseDefaultWarns(t *testing.T) {
	m := startMount(t, "--delete", "close")
	if log := m.Stderr.String(); !strings.Contains(log, "warning: --delete close") || !strings.Contains(log, "--rule") || !strings.Contains(log, "user.tmpmount.delete") {
		t.Errorf("no warning about a mount-wide close policy:\n%s", log)
	}
	m2 := startMount(t, "--rule", "*.o=close")
	if log := m2.Stderr.String(); strings.Contains(log, "warning") {
		t.Errorf("a warning without --delete close:\n%s", log)
	}
}

// TestCLIMountSource: the source given to mount(8) shows in mountinfo,
// findmnt and df, as tmpfs's does; without one, it is "tmpmount".
func TestCLIMountSource(t *testing.T) {
	requireRoot(t)
	requireFUSE(t)
	requireMountHelper(t)
	ns := rtNewNamespace(t)
	mp, spill := t.TempDir(), t.TempDir()
	logFile := filepath.Join(t.TempDir(), "daemon.log")
	const source = "scratch-e2e-src"
	pid := rtMountViaMount8(t, ns, mp, logFile, "mount", "-t", "fuse.tmpmount", source, mp, "-o", "spill_dir="+spill+",log="+logFile)
	var fields []string
	for _, m := range mountsOf(t, fmt.Sprintf("/proc/%d/mountinfo", ns.pid)) {
		if m.point == mp {
			f := strings.Fields(m.line)
			for i := range f {
				if f[i] == "-" && i+2 < len(f) {
					fields = f[i+1:]
				}
			}
		}
	}
	if len(fields) < 2 || fields[1] != source {
		t.Errorf("mountinfo after the separator: %q, want source %q", fields, source)
	}
	if res := rtRun(t, ns.command("findmnt", "-n", "-o", "SOURCE", mp)); strings.TrimSpace(res.stdout) != source {
		t.Errorf("findmnt -o SOURCE %s: %q, want %q", mp, res.stdout, source)
	}
	if res := rtRun(t, ns.command("df", "--output=source", mp)); !strings.HasSuffix(strings.TrimSpace(res.stdout), "\n"+source) {
		t.Errorf("df --output=source %s: %q, want %q", mp, res.stdout, source)
	}
	// mount.fuse adds dev,suid to every mount's options: a scratch mount
	// stays nodev,nosuid all the same, unless root says allow_dev,allow_suid.
	if opts := limMountFlags(t, fmt.Sprintf("/proc/%d/mountinfo", ns.pid), mp); !slices.Contains(opts, "nodev") || !slices.Contains(opts, "nosuid") {
		t.Errorf("mount(8) with no options about devices: options %q, want nodev,nosuid", opts)
	}
	rtUmountViaMount8(t, ns, mp, spill, logFile, pid)
	pid = rtMountViaMount8(t, ns, mp, logFile, "mount", "-t", "fuse.tmpmount", source, mp, "-o", "allow_dev,allow_suid,spill_dir="+spill+",log="+logFile)
	if opts := limMountFlags(t, fmt.Sprintf("/proc/%d/mountinfo", ns.pid), mp); slices.Contains(opts, "nodev") || slices.Contains(opts, "nosuid") {
		t.Errorf("mount(8) -o allow_dev,allow_suid: options %q, want dev,suid", opts)
	}
	rtUmountViaMount8(t, ns, mp, spill, logFile, pid)

	m := startMount(t)
	for _, e := range mountsOf(t, "/proc/self/mountinfo") {
		if e.point == m.Dir && !strings.Contains(e.line, " - fuse.tmpmount tmpmount ") {
			t.Errorf("mountinfo of a mount without a source: %q, want source tmpmount", e.line)
		}
	}
}

// TestCLIDevSuid: nodev and nosuid are the default; root may ask for dev
// (device files made with mknod then work) and suid (set-user-ID programs
// run with their owner's id), as with tmpfs; a user may not.
func TestCLIDevSuid(t *testing.T) {
	requireRoot(t)
	idProg, err := exec.LookPath("id")
	if err != nil {
		t.Skip("no id(1)")
	}
	idBytes, err := os.ReadFile(idProg)
	if err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		flags             []string
		devWorks, suidRun bool
	}{
		{nil, false, false},
		{[]string{"--dev"}, true, false},
		{[]string{"--suid"}, false, true},
		{[]string{"-o", "allow_dev,allow_suid", "--foreground"}, true, true},
		{[]string{"-o", "dev,suid", "--foreground"}, false, false}, // mount.fuse's defaults: ignored
	}
	for _, tc := range tests {
		t.Run(fmt.Sprint(tc.flags), func(t *testing.T) {
			m := startMount(t, append([]string{"--allow-other"}, tc.flags...)...)
			// A device file: /dev/null's numbers.
			if err := unix.Mknod(m.Path("null"), unix.S_IFCHR|0o666, int(unix.Mkdev(1, 3))); err != nil {
				t.Fatalf("mknod: %v", err)
			}
			f, err := os.OpenFile(m.Path("null"), os.O_WRONLY, 0)
			if err == nil {
				_, err = f.WriteString("into /dev/null")
				f.Close()
			}
			switch {
			case tc.devWorks && err != nil:
				t.Errorf("write to a device file with %v: %v, want it to work", tc.flags, err)
			case !tc.devWorks && !errors.Is(err, unix.EACCES):
				t.Errorf("open of a device file on a nodev mount: %v, want EACCES", err)
			}
			// A set-user-ID root copy of id(1), run by nobody.
			if err := os.WriteFile(m.Path("id"), idBytes, 0o755); err != nil {
				t.Fatal(err)
			}
			if err := unix.Chmod(m.Path("id"), 0o4755); err != nil {
				t.Fatal(err)
			}
			out, err := asNobody(m.Path("id"), "-u").Output()
			if err != nil {
				t.Fatalf("%s -u as nobody: %v", m.Path("id"), err)
			}
			want := strconv.Itoa(nobodyUID)
			if tc.suidRun {
				want = "0"
			}
			if got := strings.TrimSpace(string(out)); got != want {
				t.Errorf("set-user-ID root id -u run by nobody with %v: %s, want %s", tc.flags, got, want)
			}
			opts := limMountFlags(t, "/proc/self/mountinfo", m.Dir)
			if slices.Contains(opts, "nodev") == tc.devWorks || slices.Contains(opts, "nosuid") == tc.suidRun {
				t.Errorf("mount options %q with %v", opts, tc.flags)
			}
		})
	}
	t.Run("not root", func(t *testing.T) {
		base := nobodyReachableDir(t)
		bin := binaryForNobody(t, base)
		mp := nobodyOwnedDir(t, filepath.Join(base, "mnt"))
		before := mountinfoAt(t, mp)
		res := runCLI(t, asNobody(bin, "--dev", mp), mp)
		checkSetupError(t, res, mp, before, "need root")
	})
}

// TestCLIFileSizeLimit checks the file size limit the README states: a
// file in RAM reaches 2^63-1 bytes, as on tmpfs; a file on disk stops
// where the spill filesystem stops (ext4: 16 TiB - 4 KiB), with EFBIG, and
// a file in RAM larger than that cannot be rolled over.
func TestCLIFileSizeLimit(t *testing.T) {
	spill := t.TempDir()
	limit := maxFileSize(t, spill)
	t.Logf("the spill filesystem's largest file: %d bytes", limit)

	m := startMount(t, "--max-size", "1M")
	disk := m.Path("disk")
	if err := os.WriteFile(disk, seededBytes(3, 2<<20), 0o644); err != nil {
		t.Fatal(err)
	}
	if got := readResidency(t, disk); got != "disk" {
		t.Fatalf("a 2 MiB file with --max-size 1M: %s", got)
	}
	if err := os.Truncate(disk, limit); err != nil {
		t.Errorf("truncate a disk file to the spill filesystem's limit %d: %v", limit, err)
	}
	if err := os.Truncate(disk, limit+1); !errors.Is(err, unix.EFBIG) {
		t.Errorf("truncate a disk file past the spill filesystem's limit: %v, want EFBIG", err)
	}

	ram := startMount(t, "--max-size", "0")
	big := ram.Path("sparse")
	if err := os.WriteFile(big, nil, 0o644); err != nil {
		t.Fatal(err)
	}
	const maxOff = 1<<63 - 1
	if err := os.Truncate(big, maxOff); err != nil {
		t.Errorf("truncate a RAM file to 2^63-1: %v, want it to work, as tmpfs", err)
	}
	f, err := os.OpenFile(big, os.O_WRONLY, 0)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := f.WriteAt([]byte("x"), maxOff-1); err != nil {
		t.Errorf("write the last byte of a 2^63-1 byte RAM file: %v", err)
	}
	f.Close()
	if err := unix.Setxattr(big, "user.tmpmount.spill", nil, 0); !errors.Is(err, unix.EFBIG) {
		t.Errorf("roll over a RAM file larger than the spill filesystem takes: %v, want EFBIG", err)
	}
	if got := readResidency(t, big); got != "memory" {
		t.Errorf("after the failed rollover the file is in %s, want memory", got)
	}
}

// maxFileSize finds the largest size a file in dir can be truncated to.
func maxFileSize(t *testing.T, dir string) int64 {
	t.Helper()
	f, err := os.CreateTemp(dir, "limit")
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	lo, hi := int64(0), int64(1<<63-1) // lo works; past hi nothing is tried
	if f.Truncate(hi) == nil {
		return hi
	}
	for lo+1 < hi {
		mid := lo + (hi-lo)/2
		if f.Truncate(mid) == nil {
			lo = mid
		} else {
			hi = mid
		}
	}
	f.Truncate(0)
	return lo
}

// TestManPage checks tmpmount(1): man -l renders it without a warning, and
// the rendered page names every flag that tmpmount --help, tmpmount run
// --help and tmpmount stat --help name, and every exit status and signal
// the help and the README promise.
func TestManPage(t *testing.T) {
	if _, err := exec.LookPath("man"); err != nil {
		if os.Getenv("CI") == "true" {
			t.Fatal("no man(1) under CI=true: install man-db")
		}
		t.Skip("no man(1)")
	}
	page, err := filepath.Abs("../cmd/tmpmount/tmpmount.1")
	if err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command("man", "--warnings", "-E", "UTF-8", "-l", page)
	cmd.Env = append(os.Environ(), "MANWIDTH=80", "MANPAGER=cat", "PAGER=cat", "LC_ALL=C.UTF-8")
	var stderr syncBuffer
	cmd.Stderr = &stderr
	out, err := cmd.Output()
	if err != nil {
		t.Fatalf("man -l %s: %v\n%s", page, err, stderr.String())
	}
	if stderr.String() != "" {
		t.Errorf("man --warnings -l %s warns:\n%s", page, stderr.String())
	}
	// Rendered, words may be hyphenated across lines or spaced out by
	// justification: join them back.
	text := strings.Join(strings.Fields(strings.ReplaceAll(string(out), "‐\n", "")), " ")
	text = strings.ReplaceAll(text, "‐", "-")

	var flags []string
	for _, args := range [][]string{{"--help"}, {"run", "--help"}, {"stat", "--help"}} {
		res := runCLI(t, exec.Command(tmpmountBin, args...), "")
		for _, line := range strings.Split(res.stdout, "\n") {
			if f, ok := strings.CutPrefix(line, "  --"); ok {
				flags = append(flags, "--"+strings.Fields(f)[0])
			}
		}
	}
	if len(flags) < 20 {
		t.Fatalf("found only %d flags in the help: %q", len(flags), flags)
	}
	for _, f := range flags {
		if !strings.Contains(text, f) {
			t.Errorf("tmpmount(1) does not name %s", f)
		}
	}
	for _, want := range []string{"EXIT STATUS", "SIGNALS", "FILES", "EXAMPLES", "MOUNT OPTIONS", "DELETE POLICIES", "EXTENDED ATTRIBUTES",
		"SIGINT", "SIGTERM", "SIGHUP", "SIGUSR1", "SIGKILL", "user.tmpmount.residency", "user.tmpmount.delete", "user.tmpmount.spill",
		"user.tmpmount.stats", "nr_inodes=", "size=", "nodev", "nosuid", "/etc/fuse.conf", "/dev/fuse", "125"} {
		if !strings.Contains(text, want) {
			t.Errorf("tmpmount(1) does not mention %q", want)
		}
	}
}

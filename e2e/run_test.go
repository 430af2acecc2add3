package e2e

// Tests of the commands around the mount (issue 6): tmpmount run, tmpmount
// stat, mount(8) and fstab, and unprivileged use through fusermount3.

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"golang.org/x/sys/unix"
)

// rtTimeout bounds every command these tests run and wait for.
const rtTimeout = 20 * time.Second

// rtProc is a started command whose output is collected.
type rtProc struct {
	cmd            *exec.Cmd
	stdout, stderr *syncBuffer
	start          time.Time
	done           chan struct{}
	err            error
}

// rtResult is how a command ended.
type rtResult struct {
	stdout, stderr string
	code           int // exit status; -1 if a signal killed it
	elapsed        time.Duration
}

// rtStart starts cmd, collecting its stdout and stderr. Its grandchildren
// cannot hold up the wait for more than a few seconds by keeping the
// output pipes open.
func rtStart(t *testing.T, cmd *exec.Cmd) *rtProc {
	t.Helper()
	p := &rtProc{cmd: cmd, stdout: &syncBuffer{}, stderr: &syncBuffer{}, done: make(chan struct{})}
	cmd.Stdout, cmd.Stderr = p.stdout, p.stderr
	cmd.WaitDelay = 3 * time.Second
	if cmd.Dir == "" {
		cmd.Dir = "/"
	}
	p.start = time.Now()
	if err := cmd.Start(); err != nil {
		t.Fatalf("start %q: %v", cmd.Args, err)
	}
	go func() {
		p.err = cmd.Wait()
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

// exited reports whether the command has exited.
func (p *rtProc) exited() bool {
	select {
	case <-p.done:
		return true
	default:
		return false
	}
}

// wait waits up to d for the command to exit; past that it kills it and
// fails the test.
func (p *rtProc) wait(t *testing.T, d time.Duration) rtResult {
	t.Helper()
	select {
	case <-p.done:
	case <-time.After(d):
		p.cmd.Process.Kill()
		<-p.done
		t.Fatalf("%q still running after %v; killed it\nstdout: %s\nstderr: %s", p.cmd.Args, d, p.stdout, p.stderr)
	}
	res := rtResult{stdout: p.stdout.String(), stderr: p.stderr.String(), elapsed: time.Since(p.start)}
	var ee *exec.ExitError
	switch {
	case p.err == nil, errors.Is(p.err, exec.ErrWaitDelay):
		res.code = p.cmd.ProcessState.ExitCode()
	case errors.As(p.err, &ee):
		res.code = ee.ExitCode()
	default:
		t.Fatalf("%q: %v", p.cmd.Args, p.err)
	}
	return res
}

// rtRun runs cmd to its end, within rtTimeout.
func rtRun(t *testing.T, cmd *exec.Cmd) rtResult {
	t.Helper()
	return rtStart(t, cmd).wait(t, rtTimeout)
}

// rtEnv is this process's environment without the variables named in
// unset, plus set ("NAME=value").
func rtEnv(unset []string, set ...string) []string {
	var env []string
	for _, kv := range os.Environ() {
		name, _, _ := strings.Cut(kv, "=")
		if !slices.Contains(unset, name) {
			env = append(env, kv)
		}
	}
	return append(env, set...)
}

// rtTmpmountsUnder lists the fuse.tmpmount mount points at or below dir.
func rtTmpmountsUnder(t *testing.T, mountinfo, dir string) []string {
	t.Helper()
	var points []string
	for _, m := range mountsOf(t, mountinfo) {
		if m.fstype == "fuse.tmpmount" && (m.point == dir || strings.HasPrefix(m.point, dir+"/")) {
			points = append(points, m.point)
		}
	}
	return points
}

// rtDetachTmpmountsUnder detaches what a failed test left mounted below
// dir, so that one failure does not leave mounts behind.
func rtDetachTmpmountsUnder(t *testing.T, dir string) {
	t.Helper()
	for _, p := range rtTmpmountsUnder(t, "/proc/self/mountinfo", dir) {
		t.Logf("detaching %s, left mounted", p)
		if os.Geteuid() == 0 {
			unix.Unmount(p, unix.MNT_DETACH)
		} else {
			exec.Command("fusermount3", "-u", "-z", p).Run()
		}
	}
}

// rtDirEntries lists the names in dir.
func rtDirEntries(t *testing.T, dir string) []string {
	t.Helper()
	entries, err := os.ReadDir(dir)
	if err != nil {
		t.Fatalf("read dir %s: %v", dir, err)
	}
	var names []string
	for _, e := range entries {
		names = append(names, e.Name())
	}
	return names
}

// rtProcGone reports whether process pid is gone: no such process, or a
// zombie that nobody has reaped yet (its parent may be a container's init
// that does not reap).
func rtProcGone(pid int) bool {
	data, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return true
	}
	fields := rtStatFields(string(data))
	return len(fields) > 0 && (fields[0] == "Z" || fields[0] == "X")
}

// rtStatFields returns the fields of /proc/PID/stat after the command
// name: state, ppid, pgrp, session, ...
func rtStatFields(stat string) []string {
	i := strings.LastIndexByte(stat, ')')
	if i < 0 {
		return nil
	}
	return strings.Fields(stat[i+1:])
}

// rtPattern returns n bytes of a repeating pattern that depends on seed.
func rtPattern(seed byte, n int) []byte {
	b := make([]byte, n)
	for i := range b {
		b[i] = byte(i*7) ^ seed
	}
	return b
}

// rtWriteFile writes data to path and fails the test if it cannot.
func rtWriteFile(t *testing.T, path string, data []byte) {
	t.Helper()
	if err := os.WriteFile(path, data, 0o644); err != nil {
		t.Fatalf("write %s: %v", path, err)
	}
}

// rtRunDirs are the directories of one tmpmount run: XDG_RUNTIME_DIR,
// where it makes its mount point, and the spill parent.
type rtRunDirs struct {
	xdg, spill string
}

func rtNewRunDirs(t *testing.T) rtRunDirs {
	t.Helper()
	requireFUSE(t)
	d := rtRunDirs{xdg: t.TempDir(), spill: t.TempDir()}
	t.Cleanup(func() { rtDetachTmpmountsUnder(t, d.xdg) })
	return d
}

// command is `tmpmount run --spill-dir SPILL ARGS...` with XDG_RUNTIME_DIR
// set to d.xdg, the temporary-directory variables unset and extraEnv
// added.
func (d rtRunDirs) command(extraEnv []string, args ...string) *exec.Cmd {
	cmd := exec.Command(tmpmountBin, append([]string{"run", "--spill-dir", d.spill}, args...)...)
	cmd.Env = rtEnv([]string{"TMPDIR", "TMP", "TEMP", "TMPMOUNT_DIR", "XDG_RUNTIME_DIR"},
		append([]string{"XDG_RUNTIME_DIR=" + d.xdg}, extraEnv...)...)
	return cmd
}

// checkCleanedUp checks what must hold once tmpmount run has exited: the
// mount point (if known) removed, nothing else left in XDG_RUNTIME_DIR,
// nothing mounted there, and the spill parent empty.
func (d rtRunDirs) checkCleanedUp(t *testing.T, mountpoint string) {
	t.Helper()
	if mountpoint != "" {
		if _, err := os.Lstat(mountpoint); !errors.Is(err, os.ErrNotExist) {
			t.Errorf("after tmpmount run exited, its mount point %s: lstat error %v, want it removed", mountpoint, err)
		}
	}
	if mounts := rtTmpmountsUnder(t, "/proc/self/mountinfo", d.xdg); len(mounts) > 0 {
		t.Errorf("after tmpmount run exited, fuse.tmpmount still mounted at %q", mounts)
	}
	if names := rtDirEntries(t, d.xdg); len(names) > 0 {
		t.Errorf("after tmpmount run exited, XDG_RUNTIME_DIR %s still holds %q, want nothing", d.xdg, names)
	}
	if names := rtDirEntries(t, d.spill); len(names) > 0 {
		t.Errorf("after tmpmount run exited, the spill parent %s still holds %q, want nothing", d.spill, names)
	}
}

// rtKeyValues collects the KEY=VALUE lines of a command's output.
func rtKeyValues(out string) map[string][]string {
	kv := map[string][]string{}
	for _, line := range strings.Split(out, "\n") {
		if k, v, ok := strings.Cut(line, "="); ok {
			kv[k] = append(kv[k], v)
		}
	}
	return kv
}

// rtOne returns the single value of key, or fails the test.
func rtOne(t *testing.T, kv map[string][]string, key, out string) string {
	t.Helper()
	if len(kv[key]) != 1 {
		t.Fatalf("the command printed %d %s= lines, want 1; its output:\n%s", len(kv[key]), key, out)
	}
	return kv[key][0]
}

// TestRunEnvironment runs a shell under tmpmount run and checks, from
// inside, the variables pointing at the mount, that the mount is a
// fuse.tmpmount one honouring the flags given, the mode of the root and
// of the private directory it is mounted on; and, after, the exit status
// and that everything is gone.
func TestRunEnvironment(t *testing.T) {
	d := rtNewRunDirs(t)
	var extraEnv []string
	if os.Geteuid() == 0 {
		// A non-recursive bind mount of XDG_RUNTIME_DIR shows the mount
		// point directory itself, under the FUSE mount.
		bind := t.TempDir()
		t.Cleanup(func() {
			if slices.ContainsFunc(mountsOf(t, "/proc/self/mountinfo"), func(m mountEntry) bool { return m.point == bind }) {
				unix.Unmount(bind, unix.MNT_DETACH)
			}
		})
		extraEnv = append(extraEnv, "RT_BIND="+bind)
	}
	script := `
echo "TMPDIR=$TMPDIR"
echo "TMP=$TMP"
echo "TEMP=$TEMP"
echo "TMPMOUNT_DIR=$TMPMOUNT_DIR"
grep -F " $TMPDIR " /proc/self/mountinfo | sed 's/^/MOUNTINFO=/'
echo hello > "$TMPDIR/small" && echo "READ=$(cat "$TMPDIR/small")"
head -c 8192 /dev/zero > "$TMPDIR/big"
echo "RESIDENCY_SMALL=$(getfattr --absolute-names --only-values -n user.tmpmount.residency "$TMPDIR/small" 2>&1)"
echo "RESIDENCY_BIG=$(getfattr --absolute-names --only-values -n user.tmpmount.residency "$TMPDIR/big" 2>&1)"
echo "ROOTMODE=$(stat -c %a "$TMPDIR")"
if [ -n "$RT_BIND" ]; then
	mount --bind "$XDG_RUNTIME_DIR" "$RT_BIND" &&
	echo "UNDERMODE=$(stat -c %a "$RT_BIND/${TMPDIR##*/}")" &&
	umount "$RT_BIND"
fi
exit 3
`
	res := rtRun(t, d.command(extraEnv, "--max-size", "4k", "--", "sh", "-c", script))
	kv := rtKeyValues(res.stdout)
	mp := rtOne(t, kv, "TMPDIR", res.stdout)
	if res.code != 3 {
		t.Errorf("CMD ended with exit 3; tmpmount run exited %d, want 3\nstderr: %s", res.code, res.stderr)
	}
	if filepath.Dir(mp) != d.xdg || !strings.HasPrefix(filepath.Base(mp), "tmpmount-run-") {
		t.Errorf("TMPDIR=%q, want a tmpmount-run-* directory in XDG_RUNTIME_DIR %s", mp, d.xdg)
	}
	for _, name := range []string{"TMP", "TEMP", "TMPMOUNT_DIR"} {
		if got := rtOne(t, kv, name, res.stdout); got != mp {
			t.Errorf("%s=%q, want the mount point %q (as TMPDIR)", name, got, mp)
		}
	}
	var atMount []string
	for _, line := range kv["MOUNTINFO"] {
		if f := strings.Fields(line); len(f) > 4 && f[4] == mp {
			atMount = append(atMount, line)
		}
	}
	if len(atMount) != 1 || !strings.Contains(atMount[0], " - fuse.tmpmount ") {
		t.Errorf("inside CMD, /proc/self/mountinfo lines for %s: %q, want one fuse.tmpmount mount", mp, atMount)
	}
	if got := rtOne(t, kv, "READ", res.stdout); got != "hello" {
		t.Errorf("a file written in TMPDIR read back as %q, want \"hello\"", got)
	}
	if got := rtOne(t, kv, "RESIDENCY_SMALL", res.stdout); got != "memory" {
		t.Errorf("residency of a 6-byte file with --max-size 4k: %q, want \"memory\"", got)
	}
	if got := rtOne(t, kv, "RESIDENCY_BIG", res.stdout); got != "disk" {
		t.Errorf("residency of an 8 KiB file with --max-size 4k: %q, want \"disk\" (the run flags reach the mount)", got)
	}
	if got := rtOne(t, kv, "ROOTMODE", res.stdout); got != "1777" {
		t.Errorf("mode of the mount's root: %s, want 1777 (the default, as tmpfs)", got)
	}
	if os.Geteuid() == 0 {
		if got := rtOne(t, kv, "UNDERMODE", res.stdout); got != "700" {
			t.Errorf("mode of the directory under the mount: %s, want 700 (a private mount point)", got)
		}
	}
	d.checkCleanedUp(t, mp)
}

// TestRunExitStatus checks that tmpmount run exits with CMD's status, or
// 128+N when signal N killed CMD, and cleans up in every case.
func TestRunExitStatus(t *testing.T) {
	// Each script first reports TMPDIR and leaves a file in RAM and one on
	// disk (--max-size 4k), so there is something to clean up.
	const prelude = `echo "TMPDIR=$TMPDIR"; echo small > "$TMPDIR/small"; head -c 8192 /dev/zero > "$TMPDIR/big" || exit 100; `
	tests := []struct {
		name       string
		command    []string
		wantCode   int
		wantStderr string // a part of what tmpmount run says, if anything
	}{
		{name: "exit 0", command: []string{"sh", "-c", prelude + "exit 0"}, wantCode: 0},
		{name: "exit 3", command: []string{"sh", "-c", prelude + "exit 3"}, wantCode: 3},
		{name: "exit 255", command: []string{"sh", "-c", prelude + "exit 255"}, wantCode: 255},
		{name: "killed by SIGTERM", command: []string{"sh", "-c", prelude + "kill -TERM $$; exit 99"}, wantCode: 128 + 15},
		{name: "killed by SIGKILL", command: []string{"sh", "-c", prelude + "kill -KILL $$; exit 99"}, wantCode: 128 + 9},
		{name: "command not found", command: []string{"/nonexistent/rt-no-such-command"}, wantCode: 127,
			wantStderr: "/nonexistent/rt-no-such-command"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			d := rtNewRunDirs(t)
			res := rtRun(t, d.command(nil, append([]string{"--max-size", "4k", "--"}, tc.command...)...))
			if res.code != tc.wantCode {
				t.Errorf("tmpmount run -- %q exited %d, want %d\nstdout: %s\nstderr: %s", tc.command, res.code, tc.wantCode, res.stdout, res.stderr)
			}
			if tc.wantStderr != "" && !strings.Contains(res.stderr, tc.wantStderr) {
				t.Errorf("stderr %q does not mention %q", res.stderr, tc.wantStderr)
			}
			mp := ""
			if vs := rtKeyValues(res.stdout)["TMPDIR"]; len(vs) == 1 {
				mp = vs[0]
			} else if tc.command[0] == "sh" {
				t.Errorf("CMD did not report its TMPDIR: stdout %q", res.stdout)
			}
			d.checkCleanedUp(t, mp)
		})
	}
}

// TestRunForwardsSignals sends SIGTERM, SIGINT and SIGHUP to tmpmount run
// while CMD runs: CMD, which traps the signal and exits with a status of
// its own, must get it, and tmpmount run must exit with that status.
func TestRunForwardsSignals(t *testing.T) {
	tests := []struct {
		sig      syscall.Signal
		trapName string
		wantCode int
	}{
		{syscall.SIGTERM, "TERM", 7},
		{syscall.SIGINT, "INT", 8},
		{syscall.SIGHUP, "HUP", 9},
	}
	for _, tc := range tests {
		t.Run(tc.trapName, func(t *testing.T) {
			d := rtNewRunDirs(t)
			// wait is interrupted by a trapped signal at once; the trap
			// ends the background sleep too.
			script := fmt.Sprintf(`trap 'kill $sp 2>/dev/null; exit %d' %s
echo "TMPDIR=$TMPDIR"
sleep 30 </dev/null >/dev/null 2>&1 & sp=$!
echo ready
wait $sp
exit 99`, tc.wantCode, tc.trapName)
			p := rtStart(t, d.command(nil, "--", "sh", "-c", script))
			waitFor(t, 10*time.Second, "CMD to say ready", func() bool {
				return strings.Contains(p.stdout.String(), "ready\n") || p.exited()
			})
			if p.exited() {
				res := p.wait(t, time.Second)
				t.Fatalf("tmpmount run exited %d before CMD said ready\nstdout: %s\nstderr: %s", res.code, res.stdout, res.stderr)
			}
			if err := p.cmd.Process.Signal(tc.sig); err != nil {
				t.Fatal(err)
			}
			res := p.wait(t, rtTimeout)
			if res.code != tc.wantCode {
				t.Errorf("after %v to tmpmount run: exit %d, want %d (CMD's trap exits %d)\nstdout: %s\nstderr: %s",
					tc.sig, res.code, tc.wantCode, tc.wantCode, res.stdout, res.stderr)
			}
			d.checkCleanedUp(t, rtOne(t, rtKeyValues(res.stdout), "TMPDIR", res.stdout))
		})
	}
}

// rtMarker returns a fresh RT_MARK=... variable: every process of a
// command run with it in its environment carries it, whatever its pid
// namespace, so that the test can find them all from outside.
func rtMarker(t *testing.T) string {
	return fmt.Sprintf("RT_MARK=%s-%d-%d", t.Name(), os.Getpid(), time.Now().UnixNano())
}

// rtMarked lists the live (not zombie) processes whose environment holds
// marker, with their command names.
func rtMarked(marker string) []string {
	var found []string
	entries, _ := os.ReadDir("/proc")
	for _, e := range entries {
		pid, err := strconv.Atoi(e.Name())
		if err != nil || pid == os.Getpid() || rtProcGone(pid) {
			continue
		}
		env, err := os.ReadFile(fmt.Sprintf("/proc/%d/environ", pid))
		if err != nil || !slices.Contains(strings.Split(string(env), "\x00"), marker) || rtProcGone(pid) {
			continue
		}
		comm, _ := os.ReadFile(fmt.Sprintf("/proc/%d/comm", pid))
		found = append(found, fmt.Sprintf("%d (%s)", pid, strings.TrimSpace(string(comm))))
	}
	return found
}

// rtKillMarked kills what a failed test left running.
func rtKillMarked(t *testing.T, marker string) {
	t.Helper()
	for _, p := range rtMarked(marker) {
		var pid int
		fmt.Sscan(p, &pid)
		t.Logf("killing %s, left running", p)
		syscall.Kill(pid, syscall.SIGKILL)
	}
}

// TestRunStragglers leaves, when CMD exits, a background process holding
// a file open on the mount and one in a session of its own that holds
// nothing there: both are processes CMD started, so tmpmount run must say
// so, end them, exit with CMD's status within a bounded time, and leave
// nothing mounted. (A run that looked for the mount's users missed the
// second, and the first when it happened to hold nothing at that instant.)
func TestRunStragglers(t *testing.T) {
	d := rtNewRunDirs(t)
	marker := rtMarker(t)
	t.Cleanup(func() { rtKillMarked(t, marker) })
	script := `sleep 300 </dev/null >"$TMPDIR/held" 2>/dev/null &
setsid sleep 300 </dev/null >/dev/null 2>&1 &
echo "TMPDIR=$TMPDIR"
exit 0`
	res := rtRun(t, d.command([]string{marker}, "--", "sh", "-c", script))
	if res.code != 0 {
		t.Errorf("tmpmount run exited %d, want 0 (CMD's status)\nstderr: %s", res.code, res.stderr)
	}
	// 5 s to leave and 2 s after SIGTERM, with room to spare on a busy
	// machine.
	if res.elapsed > 15*time.Second {
		t.Errorf("tmpmount run took %v with stragglers, want at most 15s", res.elapsed.Round(time.Millisecond))
	}
	for _, want := range []string{"2 process(es) it started still run", "(sleep)", "SIGTERM"} {
		if !strings.Contains(res.stderr, want) {
			t.Errorf("stderr does not say what happened to the stragglers (no %q):\n%s", want, res.stderr)
		}
	}
	if left := rtMarked(marker); len(left) > 0 {
		t.Errorf("processes CMD started still run after tmpmount run exited: %q", left)
	}
	d.checkCleanedUp(t, rtOne(t, rtKeyValues(res.stdout), "TMPDIR", res.stdout))
}

// TestRunKeepRule saves a file that a keep rule matches to --keep-dir when
// CMD exits, and only that file.
func TestRunKeepRule(t *testing.T) {
	d := rtNewRunDirs(t)
	keep := t.TempDir()
	res := rtRun(t, d.command(nil, "--rule", "*.log=keep", "--keep-dir", keep, "--",
		"sh", "-c", `echo "TMPDIR=$TMPDIR"; echo x > "$TMPDIR/a.log" && echo y > "$TMPDIR/b.txt"`))
	if res.code != 0 {
		t.Errorf("tmpmount run exited %d, want 0\nstderr: %s", res.code, res.stderr)
	}
	got, err := os.ReadFile(filepath.Join(keep, "a.log"))
	if err != nil || string(got) != "x\n" {
		t.Errorf("kept a.log: %q, %v; want \"x\\n\"\nstderr: %s", got, err, res.stderr)
	}
	if names := rtDirEntries(t, keep); !slices.Equal(names, []string{"a.log"}) {
		t.Errorf("keep dir holds %q, want only a.log (b.txt has the default policy, unmount)", names)
	}
	d.checkCleanedUp(t, rtOne(t, rtKeyValues(res.stdout), "TMPDIR", res.stdout))
}

// rtFileStats is the JSON of `tmpmount stat --json FILE`.
type rtFileStats struct {
	Size         *int64  `json:"size"`
	Blocks       *int64  `json:"blocks"`
	Residency    *string `json:"residency"`
	Policy       *string `json:"policy"`
	PolicySource *string `json:"policy_source"`
}

// rtMountStats is the JSON of `tmpmount stat --json DIR`.
type rtMountStats struct {
	Files     *int64  `json:"files"`
	Inodes    *int64  `json:"inodes"`
	RAMBytes  *int64  `json:"ram_bytes"`
	DiskFiles *int64  `json:"disk_files"`
	DiskBytes *int64  `json:"disk_bytes"`
	Rollovers *int64  `json:"rollovers"`
	MaxSize   *int64  `json:"max_size"`
	SpillDir  *string `json:"spill_dir"`
}

// rtDeref shows a JSON field that may be missing.
func rtDeref[T any](p *T) string {
	if p == nil {
		return "(missing)"
	}
	return fmt.Sprint(*p)
}

// TestStatCommand checks tmpmount stat on a file in RAM, a file on disk,
// the mount point and a subdirectory, in text and JSON, against stat(2),
// the residency xattr and what was written.
func TestStatCommand(t *testing.T) {
	m := startMount(t, "--max-size", "64k")
	files := []struct {
		name          string
		size          int
		wantResidency string
		wantText      string // how the text names the residency
	}{
		{name: "small", size: 1000, wantResidency: "memory", wantText: "RAM"},
		{name: "big", size: 100 << 10, wantResidency: "disk", wantText: "disk"},
	}
	blocks := map[string]int64{}
	for i, f := range files {
		rtWriteFile(t, m.Path(f.name), rtPattern(byte(i), f.size))
		var st unix.Stat_t
		if err := unix.Stat(m.Path(f.name), &st); err != nil {
			t.Fatal(err)
		}
		blocks[f.name] = st.Blocks
	}
	if err := os.Mkdir(m.Path("sub"), 0o755); err != nil {
		t.Fatal(err)
	}

	for _, f := range files {
		t.Run("file "+f.name, func(t *testing.T) {
			if got := readResidency(t, m.Path(f.name)); got != f.wantResidency {
				t.Fatalf("residency xattr of a %d-byte file with --max-size 64k: %q, want %q", f.size, got, f.wantResidency)
			}
			res := rtRun(t, exec.Command(tmpmountBin, "stat", m.Path(f.name)))
			if res.code != 0 {
				t.Fatalf("tmpmount stat %s: exit %d\nstderr: %s", f.name, res.code, res.stderr)
			}
			for _, want := range []string{m.Path(f.name), f.wantText, "policy", "unmount"} {
				if !strings.Contains(res.stdout, want) {
					t.Errorf("tmpmount stat %s does not say %q:\n%s", f.name, want, res.stdout)
				}
			}
			if f.wantResidency == "memory" && strings.Contains(res.stdout, "disk") {
				t.Errorf("tmpmount stat of a file in RAM mentions disk:\n%s", res.stdout)
			}

			res = rtRun(t, exec.Command(tmpmountBin, "stat", "--json", m.Path(f.name)))
			if res.code != 0 {
				t.Fatalf("tmpmount stat --json %s: exit %d\nstderr: %s", f.name, res.code, res.stderr)
			}
			var js rtFileStats
			if err := json.Unmarshal([]byte(res.stdout), &js); err != nil {
				t.Fatalf("tmpmount stat --json %s printed no JSON object (%v):\n%s", f.name, err, res.stdout)
			}
			if js.Size == nil || *js.Size != int64(f.size) {
				t.Errorf("JSON size %s, want %d", rtDeref(js.Size), f.size)
			}
			if js.Blocks == nil || *js.Blocks != blocks[f.name] {
				t.Errorf("JSON blocks %s, want st_blocks %d", rtDeref(js.Blocks), blocks[f.name])
			}
			if js.Residency == nil || *js.Residency != f.wantResidency {
				t.Errorf("JSON residency %s, want %q", rtDeref(js.Residency), f.wantResidency)
			}
			if js.Policy == nil || *js.Policy != "unmount" || js.PolicySource == nil || *js.PolicySource != "default" {
				t.Errorf("JSON policy %s from %s, want unmount from default", rtDeref(js.Policy), rtDeref(js.PolicySource))
			}
		})
	}

	for _, dir := range []string{m.Dir, m.Path("sub")} {
		t.Run("dir "+filepath.Base(dir), func(t *testing.T) {
			res := rtRun(t, exec.Command(tmpmountBin, "stat", "--json", dir))
			if res.code != 0 {
				t.Fatalf("tmpmount stat --json %s: exit %d\nstderr: %s", dir, res.code, res.stderr)
			}
			var js rtMountStats
			if err := json.Unmarshal([]byte(res.stdout), &js); err != nil {
				t.Fatalf("tmpmount stat --json %s printed no JSON object (%v):\n%s", dir, err, res.stdout)
			}
			wants := []struct {
				field string
				got   *int64
				want  int64
			}{
				{"files", js.Files, 2},
				{"disk_files", js.DiskFiles, 1},
				{"inodes (root, small, big, sub)", js.Inodes, 4},
				{"ram_bytes (small's st_blocks*512)", js.RAMBytes, blocks["small"] * 512},
				{"disk_bytes (big's st_blocks*512)", js.DiskBytes, blocks["big"] * 512},
				{"rollovers", js.Rollovers, 1},
				{"max_size", js.MaxSize, 64 << 10},
			}
			for _, w := range wants {
				if w.got == nil || *w.got != w.want {
					t.Errorf("JSON %s: %s, want %d\n%s", w.field, rtDeref(w.got), w.want, res.stdout)
				}
			}
			if js.SpillDir == nil || filepath.Dir(*js.SpillDir) != m.SpillParent {
				t.Errorf("JSON spill_dir %s, want a directory in --spill-dir %s", rtDeref(js.SpillDir), m.SpillParent)
			}

			res = rtRun(t, exec.Command(tmpmountBin, "stat", dir))
			if res.code != 0 {
				t.Fatalf("tmpmount stat %s: exit %d\nstderr: %s", dir, res.code, res.stderr)
			}
			if !strings.Contains(res.stdout, m.Dir) || !strings.Contains(res.stdout, "tmpmount") {
				t.Errorf("tmpmount stat %s does not name the mount %s:\n%s", dir, m.Dir, res.stdout)
			}
		})
	}

	t.Run("not on a tmpmount", func(t *testing.T) {
		outside := filepath.Join(t.TempDir(), "f")
		rtWriteFile(t, outside, []byte("x"))
		res := rtRun(t, exec.Command(tmpmountBin, "stat", outside))
		if res.code != 1 || !strings.Contains(res.stderr, "not on a tmpmount mount") || res.stdout != "" {
			t.Errorf("tmpmount stat of a file outside any mount: exit %d, stdout %q, stderr %q; want 1, nothing, \"not on a tmpmount mount\"",
				res.code, res.stdout, res.stderr)
		}
	})
	t.Run("no path", func(t *testing.T) {
		res := rtRun(t, exec.Command(tmpmountBin, "stat", "--json"))
		if res.code != 2 || res.stdout != "" || strings.Count(res.stderr, "\n") != 1 {
			t.Errorf("tmpmount stat --json with no path: exit %d, stdout %q, stderr %q; want 2, nothing, one line", res.code, res.stdout, res.stderr)
		}
	})
}

// requireMountHelper skips (or, under CI=true, fails) a test that needs
// mount(8) to find mount.fuse (fuse3), and nsenter and unshare.
func requireMountHelper(t *testing.T) {
	t.Helper()
	missing := ""
	if _, err := os.Stat("/sbin/mount.fuse"); err != nil {
		if _, err := os.Stat("/usr/sbin/mount.fuse"); err != nil {
			missing = "no mount.fuse (install fuse3)"
		}
	}
	for _, prog := range []string{"mount", "umount", "unshare", "nsenter"} {
		if _, err := exec.LookPath(prog); err != nil {
			missing = "no " + prog
		}
	}
	if missing == "" {
		return
	}
	if os.Getenv("CI") == "true" {
		t.Fatalf("mount(8) tests need fuse3 and util-linux under CI=true: %s", missing)
	}
	t.Skipf("cannot test mount(8): %s", missing)
}

// rtNamespace is a private mount namespace, held by a sleeping process, in
// which `tmpmount` names the binary under test. mount(8) drops PATH before
// it runs mount.fuse (util-linux 2.38 does), so mount.fuse's shell looks
// for tmpmount in its default PATH, /usr/local/sbin and /usr/local/bin
// first: the namespace has a directory holding the binary bound over
// those, so that the binary under test runs, not whatever is installed.
// Its mounts are seen through /proc/PID/mountinfo and /proc/PID/root.
type rtNamespace struct {
	pid    int
	binDir string // holds tmpmount -> tmpmountBin
}

func rtNewNamespace(t *testing.T) *rtNamespace {
	t.Helper()
	ns := &rtNamespace{binDir: t.TempDir()}
	if err := os.Chmod(ns.binDir, 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.Symlink(tmpmountBin, filepath.Join(ns.binDir, "tmpmount")); err != nil {
		t.Fatal(err)
	}
	var binds []string
	for _, dir := range []string{"/usr/local/sbin", "/usr/local/bin"} {
		if st, err := os.Stat(dir); err == nil && st.IsDir() {
			binds = append(binds, dir)
		}
	}
	script := `bin=$1; shift; for d; do mount --bind "$bin" "$d" || exit 1; done; echo ready; exec sleep 120`
	holder := rtStart(t, exec.Command("unshare", append([]string{"--mount", "--propagation", "private", "--",
		"sh", "-c", script, "sh", ns.binDir}, binds...)...))
	waitFor(t, 10*time.Second, "the mount namespace holder to be ready", func() bool {
		return strings.Contains(holder.stdout.String(), "ready\n") || holder.exited()
	})
	if holder.exited() {
		t.Fatalf("the mount namespace holder exited: %s", holder.stderr)
	}
	ns.pid = holder.cmd.Process.Pid
	return ns
}

// command runs argv in the namespace, with binDir first in PATH too.
func (ns *rtNamespace) command(argv ...string) *exec.Cmd {
	cmd := exec.Command("nsenter", append([]string{"-t", strconv.Itoa(ns.pid), "-m", "--"}, argv...)...)
	cmd.Env = rtEnv([]string{"PATH"}, "PATH="+ns.binDir+":"+os.Getenv("PATH"))
	return cmd
}

// path is where path inside the namespace is seen from outside.
func (ns *rtNamespace) path(p string) string {
	return fmt.Sprintf("/proc/%d/root%s", ns.pid, p)
}

// mounted reports whether a fuse.tmpmount mount sits at dir in the
// namespace.
func (ns *rtNamespace) mounted(t *testing.T, dir string) bool {
	t.Helper()
	return slices.Contains(rtTmpmountsUnder(t, fmt.Sprintf("/proc/%d/mountinfo", ns.pid), dir), dir)
}

// rtDaemonsFor finds the tmpmount processes (the binary under test) that
// serve mountpoint: their command line names it.
func rtDaemonsFor(mountpoint string) []int {
	bin, err := filepath.EvalSymlinks(tmpmountBin)
	if err != nil {
		bin = tmpmountBin
	}
	var pids []int
	entries, _ := os.ReadDir("/proc")
	for _, e := range entries {
		pid, err := strconv.Atoi(e.Name())
		if err != nil {
			continue
		}
		exe, err := os.Readlink(fmt.Sprintf("/proc/%d/exe", pid))
		if err != nil || exe != bin {
			continue
		}
		cmdline, _ := os.ReadFile(fmt.Sprintf("/proc/%d/cmdline", pid))
		if slices.Contains(strings.Split(string(cmdline), "\x00"), mountpoint) && !rtProcGone(pid) {
			pids = append(pids, pid)
		}
	}
	return pids
}

// rtMountViaMount8 runs a mount(8) command line in ns that mounts a
// tmpmount at mp, checks that it went to the background and serves, and
// returns the daemon's pid. The mount is taken down when the test ends if
// the test did not.
func rtMountViaMount8(t *testing.T, ns *rtNamespace, mp, logFile string, argv ...string) int {
	t.Helper()
	t.Cleanup(func() {
		if ns.mounted(t, mp) {
			rtRun(t, ns.command("umount", "-l", mp))
		}
		for _, pid := range rtDaemonsFor(mp) {
			syscall.Kill(pid, syscall.SIGKILL)
		}
	})
	res := rtRun(t, ns.command(argv...))
	log, _ := os.ReadFile(logFile)
	if res.code != 0 {
		t.Fatalf("%q: exit %d, want 0\nstdout: %s\nstderr: %s\ndaemon log: %s", argv, res.code, res.stdout, res.stderr, log)
	}
	if !ns.mounted(t, mp) {
		t.Fatalf("%q exited 0 but no fuse.tmpmount is mounted at %s\ndaemon log: %s", argv, mp, log)
	}
	pids := rtDaemonsFor(mp)
	if len(pids) != 1 {
		t.Fatalf("%q: %d tmpmount processes (%s) serve %s, want 1 (did mount.fuse run another tmpmount?)\ndaemon log: %s",
			argv, len(pids), tmpmountBin, mp, log)
	}
	pid := pids[0]
	// In the background: mount(8) has returned, and the daemon leads a
	// session of its own.
	stat, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		t.Fatalf("the daemon (pid %d) is gone right after mount returned: %v\ndaemon log: %s", pid, err, log)
	}
	if f := rtStatFields(string(stat)); len(f) < 4 || f[3] != strconv.Itoa(pid) {
		t.Errorf("the daemon (pid %d) is not in a session of its own (stat fields %q): not in the background", pid, f)
	}
	return pid
}

// rtUmountViaMount8 runs umount in ns and waits for the daemon to exit,
// the mount to go and the spill parent to be emptied.
func rtUmountViaMount8(t *testing.T, ns *rtNamespace, mp, spill, logFile string, pid int) {
	t.Helper()
	res := rtRun(t, ns.command("umount", mp))
	if res.code != 0 {
		t.Fatalf("umount %s: exit %d\nstderr: %s", mp, res.code, res.stderr)
	}
	waitFor(t, 10*time.Second, "the mount to go after umount", func() bool { return !ns.mounted(t, mp) })
	waitFor(t, 10*time.Second, "the background daemon to exit after umount", func() bool { return rtProcGone(pid) })
	waitFor(t, 5*time.Second, "the spill parent to be emptied", func() bool { return len(rtDirEntries(t, spill)) == 0 })
	log, _ := os.ReadFile(logFile)
	if !bytes.Contains(log, []byte("unmounted "+mp)) {
		t.Errorf("the daemon log (log=%s) does not say it unmounted %s:\n%s", logFile, mp, log)
	}
}

// TestMountCommand mounts with mount(8), both with -t and -o and from an
// fstab line, and unmounts with umount(8).
func TestMountCommand(t *testing.T) {
	requireRoot(t)
	requireFUSE(t)
	requireMountHelper(t)
	ns := rtNewNamespace(t)

	t.Run("mount -t fuse.tmpmount -o", func(t *testing.T) {
		mp, spill := t.TempDir(), t.TempDir()
		logFile := filepath.Join(t.TempDir(), "daemon.log")
		pid := rtMountViaMount8(t, ns, mp, logFile, "mount", "-t", "fuse.tmpmount", "tmpmount", mp,
			"-o", "max_size=64k,mode=0755,spill_dir="+spill+",log="+logFile)
		st, err := os.Stat(ns.path(mp))
		if err != nil {
			t.Fatal(err)
		}
		if got := st.Mode() & (os.ModePerm | os.ModeSticky | os.ModeSetuid | os.ModeSetgid); got != 0o755 {
			t.Errorf("mode of the root with -o mode=0755: %v, want -rwxr-xr-x", got)
		}
		for _, f := range []struct {
			name string
			size int
			want string
		}{
			{"at", 64 << 10, "memory"},
			{"over", 64<<10 + 1, "disk"},
		} {
			p := ns.path(filepath.Join(mp, f.name))
			rtWriteFile(t, p, rtPattern(1, f.size))
			if got := readResidency(t, p); got != f.want {
				t.Errorf("-o max_size=64k: a %d-byte file is in %q, want %q", f.size, got, f.want)
			}
		}
		if names := rtDirEntries(t, spill); len(names) != 1 {
			t.Errorf("-o spill_dir=%s holds %q, want one private spill directory", spill, names)
		}
		rtUmountViaMount8(t, ns, mp, spill, logFile, pid)
	})

	t.Run("fstab", func(t *testing.T) {
		mp, spill := t.TempDir(), t.TempDir()
		logFile := filepath.Join(t.TempDir(), "daemon.log")
		fstab := filepath.Join(t.TempDir(), "fstab")
		line := fmt.Sprintf("tmpmount %s fuse.tmpmount max_size=1M,spill_dir=%s,log=%s,noauto,nofail,x-systemd.requires=foo 0 0\n", mp, spill, logFile)
		rtWriteFile(t, fstab, []byte("# test fstab\n"+line))
		pid := rtMountViaMount8(t, ns, mp, logFile, "mount", "-T", fstab, mp)
		for _, f := range []struct {
			name string
			size int
			want string
		}{
			{"at", 1 << 20, "memory"},
			{"over", 1<<20 + 1, "disk"},
		} {
			p := ns.path(filepath.Join(mp, f.name))
			rtWriteFile(t, p, rtPattern(2, f.size))
			if got := readResidency(t, p); got != f.want {
				t.Errorf("fstab max_size=1M: a %d-byte file is in %q, want %q", f.size, got, f.want)
			}
		}
		st, err := os.Stat(ns.path(mp))
		if err != nil {
			t.Fatal(err)
		}
		if got := st.Mode() & (os.ModePerm | os.ModeSticky); got != os.ModeSticky|0o777 {
			t.Errorf("mode of the root with no mode= option: %v, want 1777 (as tmpfs)", got)
		}
		rtUmountViaMount8(t, ns, mp, spill, logFile, pid)
	})
}

// nobodyUID is the unprivileged user the non-root tests run as.

// rtAsNobody returns a command that runs argv as uid and gid 65534 with no
// supplementary groups, without XDG_RUNTIME_DIR and TMPDIR.
func rtAsNobody(argv ...string) *exec.Cmd {
	cmd := exec.Command("setpriv", append([]string{"--reuid=65534", "--regid=65534", "--clear-groups", "--"}, argv...)...)
	cmd.Env = rtEnv([]string{"XDG_RUNTIME_DIR", "TMPDIR", "TMP", "TEMP", "TMPMOUNT_DIR"})
	cmd.Dir = "/"
	return cmd
}

// rtNobodyBase makes a fresh 0755 directory in /tmp holding a copy of the
// binary that nobody can run (tmpmountBin's directory is root's, 0700),
// and returns both. Removed when the test ends.
func rtNobodyBase(t *testing.T) (base, bin string) {
	t.Helper()
	base, err := os.MkdirTemp("", "tmpmount-rt-nonroot-")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		rtDetachTmpmountsUnder(t, base)
		os.RemoveAll(base)
	})
	if err := os.Chmod(base, 0o755); err != nil {
		t.Fatal(err)
	}
	data, err := os.ReadFile(tmpmountBin)
	if err != nil {
		t.Fatal(err)
	}
	bin = filepath.Join(base, "tmpmount")
	if err := os.WriteFile(bin, data, 0o755); err != nil {
		t.Fatal(err)
	}
	return base, bin
}

// requireNonRoot skips (or, under CI=true, fails) a test that mounts as
// an unprivileged user: it needs root (to become one), FUSE, fusermount3
// and setpriv.
func requireNonRoot(t *testing.T) {
	t.Helper()
	requireRoot(t)
	requireFUSE(t)
	for _, prog := range []string{"fusermount3", "setpriv"} {
		if _, err := exec.LookPath(prog); err != nil {
			if os.Getenv("CI") == "true" {
				t.Fatalf("non-root tests need %s under CI=true", prog)
			}
			t.Skipf("no %s", prog)
		}
	}
}

// rtMountAsNobody starts bin as nobody with args (the mount point, mp,
// last) and waits until it serves mp through fusermount3.
func rtMountAsNobody(t *testing.T, bin, mp string, args ...string) *rtProc {
	t.Helper()
	daemon := rtStart(t, rtAsNobody(append([]string{bin}, append(args, mp)...)...))
	waitFor(t, 10*time.Second, "the unprivileged mount at "+mp, func() bool {
		return (isMountPoint(mp) && strings.Contains(daemon.stderr.String(), "tmpmount: serving ")) || daemon.exited()
	})
	if daemon.exited() {
		res := daemon.wait(t, time.Second)
		t.Fatalf("tmpmount as nobody exited %d before serving\nstderr: %s", res.code, res.stderr)
	}
	return daemon
}

// TestNonRoot mounts, uses, unmounts and runs as an unprivileged user,
// through fusermount3, and checks the error for a mount point the user
// may not mount on.
func TestNonRoot(t *testing.T) {
	requireNonRoot(t)

	t.Run("mount, write, fusermount3 -u", func(t *testing.T) {
		base, bin := rtNobodyBase(t)
		mp := nobodyOwnedDir(t, filepath.Join(base, "mnt"))
		spill := nobodyOwnedDir(t, filepath.Join(base, "spill"))
		daemon := rtMountAsNobody(t, bin, mp, "--max-size", "4k", "--spill-dir", spill)
		// Root cannot look into a mount without allow_other: check as nobody.
		res := rtRun(t, rtAsNobody("sh", "-c",
			`echo hi > "$1/f" && head -c 8192 /dev/zero > "$1/big" && cat "$1/f" && stat -c %u:%g "$1/f" "$1" && getfattr --absolute-names --only-values -n user.tmpmount.residency "$1/big" && echo`,
			"sh", mp))
		if want := "hi\n65534:65534\n65534:65534\ndisk\n"; res.code != 0 || res.stdout != want {
			t.Errorf("nobody's write, read, stat and getfattr on the mount: exit %d, stdout %q; want 0, %q\nstderr: %s", res.code, res.stdout, want, res.stderr)
		}
		if names := rtDirEntries(t, spill); len(names) != 1 {
			t.Errorf("spill dir %s holds %q while a file is on disk, want one private directory", spill, names)
		}
		res = rtRun(t, rtAsNobody("fusermount3", "-u", mp))
		if res.code != 0 {
			t.Errorf("fusermount3 -u %s as nobody: exit %d\nstderr: %s", mp, res.code, res.stderr)
		}
		dres := daemon.wait(t, 10*time.Second)
		if dres.code != 0 {
			t.Errorf("tmpmount as nobody exited %d after fusermount3 -u, want 0\nstderr: %s", dres.code, dres.stderr)
		}
		if isMountPoint(mp) {
			t.Errorf("%s is still mounted after fusermount3 -u and the daemon's exit", mp)
		}
		if names := rtDirEntries(t, spill); len(names) > 0 {
			t.Errorf("spill dir %s still holds %q after the daemon exited", spill, names)
		}
	})

	t.Run("run", func(t *testing.T) {
		base, bin := rtNobodyBase(t)
		spill := nobodyOwnedDir(t, filepath.Join(base, "spill"))
		res := rtRun(t, rtAsNobody(bin, "run", "--spill-dir", spill, "--",
			"sh", "-c", `echo ok > "$TMPDIR/f" && cat "$TMPDIR/f" && echo "TMPDIR=$TMPDIR"`))
		kv := rtKeyValues(res.stdout)
		if res.code != 0 || !strings.HasPrefix(res.stdout, "ok\n") || len(kv["TMPDIR"]) != 1 {
			t.Fatalf("tmpmount run as nobody: exit %d, stdout %q; want 0 and \"ok\" then TMPDIR\nstderr: %s", res.code, res.stdout, res.stderr)
		}
		mp := kv["TMPDIR"][0]
		if filepath.Dir(mp) != "/tmp" || !strings.HasPrefix(filepath.Base(mp), "tmpmount-run-") {
			t.Errorf("TMPDIR=%q without XDG_RUNTIME_DIR, want /tmp/tmpmount-run-*", mp)
		}
		if _, err := os.Lstat(mp); !errors.Is(err, os.ErrNotExist) {
			t.Errorf("the mount point %s after tmpmount run exited: lstat error %v, want it removed", mp, err)
			rtDetachTmpmountsUnder(t, mp)
		}
		if isMountPoint(mp) {
			t.Errorf("%s is still mounted after tmpmount run exited", mp)
		}
		if names := rtDirEntries(t, spill); len(names) > 0 {
			t.Errorf("spill dir %s still holds %q after tmpmount run exited", spill, names)
		}
	})

	t.Run("run killed", func(t *testing.T) {
		// Unprivileged, the mount is in everyone's namespace: when the
		// daemon is killed, the command stage ends the command and what it
		// started, unmounts and removes the mount point.
		base, bin := rtNobodyBase(t)
		spill := nobodyOwnedDir(t, filepath.Join(base, "spill"))
		marker := rtMarker(t)
		t.Cleanup(func() { rtKillMarked(t, marker) })
		cmd := rtAsNobody(bin, "run", "--max-size", "4k", "--spill-dir", spill, "--", "sh", "-c",
			`head -c 65536 /dev/zero > "$TMPDIR/big"; setsid sleep 300 </dev/null >/dev/null 2>&1 & echo "TMPDIR=$TMPDIR"; echo ready; sleep 300`)
		cmd.Env = append(cmd.Env, marker)
		p := rtStart(t, cmd)
		waitFor(t, 20*time.Second, "CMD to say ready", func() bool {
			return strings.Contains(p.stdout.String(), "ready\n") || p.exited()
		})
		if p.exited() {
			res := p.wait(t, time.Second)
			t.Fatalf("tmpmount run as nobody exited %d early\nstderr: %s", res.code, res.stderr)
		}
		mp := rtOne(t, rtKeyValues(p.stdout.String()), "TMPDIR", p.stdout.String())
		t.Cleanup(func() { rtDetachTmpmountsUnder(t, mp) })
		p.cmd.Process.Kill()
		p.wait(t, rtTimeout)
		waitFor(t, 20*time.Second, "every process CMD started to be gone", func() bool { return len(rtMarked(marker)) == 0 })
		waitFor(t, 20*time.Second, "the mount, the mount point and the spill directory to go", func() bool {
			_, err := os.Lstat(mp)
			return !isMountPoint(mp) && errors.Is(err, os.ErrNotExist) && len(rtDirEntries(t, spill)) == 0
		})
	})

	t.Run("mount point not owned", func(t *testing.T) {
		base, bin := rtNobodyBase(t)
		mp := filepath.Join(base, "roots") // root's, 0755
		if err := os.Mkdir(mp, 0o755); err != nil {
			t.Fatal(err)
		}
		spill := nobodyOwnedDir(t, filepath.Join(base, "spill"))
		res := rtRun(t, rtAsNobody(bin, "--spill-dir", spill, mp))
		if res.code != 2 {
			t.Errorf("tmpmount as nobody on root's mount point: exit %d, want 2", res.code)
		}
		if res.stdout != "" {
			t.Errorf("stdout %q, want nothing", res.stdout)
		}
		if !strings.HasPrefix(res.stderr, "tmpmount: ") || strings.Count(res.stderr, "\n") != 1 || !strings.HasSuffix(res.stderr, "\n") {
			t.Errorf("stderr %q, want one line starting with \"tmpmount: \"", res.stderr)
		}
		if !strings.Contains(res.stderr, mp) {
			t.Errorf("stderr %q does not name the mount point %s", res.stderr, mp)
		}
		if isMountPoint(mp) {
			t.Errorf("%s is mounted after a refused start", mp)
		}
		if names := rtDirEntries(t, spill); len(names) > 0 {
			t.Errorf("spill dir %s holds %q after a refused start", spill, names)
		}
	})
}

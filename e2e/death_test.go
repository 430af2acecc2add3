package e2e

// Tests that kill things (issue 12): tmpmount run killed with SIGKILL or
// SIGHUP, the debris of runs that died swept by the next, the daemon's
// SIGHUP and second signal; and the hostile-use rules around them (issue
// 11): spill directories judged by lock across PID namespaces, run's mount
// point under a $XDG_RUNTIME_DIR it must not trust, output files that are
// symlinks.

import (
	"bufio"
	"errors"
	"fmt"
	"io/fs"
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

// spillBytes is the disk space used by everything below dir.
func spillBytes(t *testing.T, dir string) int64 {
	t.Helper()
	var total int64
	filepath.WalkDir(dir, func(path string, d fs.DirEntry, err error) error {
		if err != nil {
			return nil
		}
		var st unix.Stat_t
		if unix.Lstat(path, &st) == nil && path != dir && !d.IsDir() {
			total += st.Blocks * 512
		}
		return nil
	})
	return total
}

// TestRunKilled kills tmpmount run while CMD runs, with files in RAM and
// on disk and processes CMD started in the background (one in a session
// of its own, one immune to SIGHUP). Afterwards no process of CMD is left,
// nothing is mounted in this (the host's) mount namespace, the spill
// directory holds no bytes, and the mount point is gone (at the latest
// after the next run, which says it swept it).
func TestRunKilled(t *testing.T) {
	for _, sig := range []syscall.Signal{syscall.SIGKILL, syscall.SIGHUP} {
		t.Run(sig.String(), func(t *testing.T) {
			d := rtNewRunDirs(t)
			marker := rtMarker(t)
			t.Cleanup(func() { rtKillMarked(t, marker) })
			script := `echo small > "$TMPDIR/small"; head -c 65536 /dev/zero > "$TMPDIR/big" || exit 100
setsid sleep 300 </dev/null >/dev/null 2>&1 &
nohup sleep 300 </dev/null >"$TMPDIR/nohup.out" 2>&1 &
echo "TMPDIR=$TMPDIR"
echo ready
sleep 300`
			p := rtStart(t, d.command([]string{marker}, "--max-size", "4k", "--", "sh", "-c", script))
			waitFor(t, 20*time.Second, "CMD to say ready", func() bool {
				return strings.Contains(p.stdout.String(), "ready\n") || p.exited()
			})
			if p.exited() {
				res := p.wait(t, time.Second)
				t.Fatalf("tmpmount run exited %d before CMD said ready\nstdout: %s\nstderr: %s", res.code, res.stdout, res.stderr)
			}
			mp := rtOne(t, rtKeyValues(p.stdout.String()), "TMPDIR", p.stdout.String())
			if os.Geteuid() == 0 {
				if mounts := rtTmpmountsUnder(t, "/proc/self/mountinfo", d.xdg); len(mounts) > 0 {
					t.Errorf("as root, the run's mount is visible in the host's mount namespace at %q; want it only in the command's", mounts)
				}
			}
			if err := p.cmd.Process.Signal(sig); err != nil {
				t.Fatal(err)
			}
			res := p.wait(t, rtTimeout)
			if sig == syscall.SIGHUP && res.code != 128+int(syscall.SIGHUP) {
				t.Errorf("after SIGHUP to tmpmount run: exit %d, want %d (CMD killed by the SIGHUP passed on)\nstderr: %s",
					res.code, 128+int(syscall.SIGHUP), res.stderr)
			}
			waitFor(t, 20*time.Second, "every process CMD started to be gone", func() bool { return len(rtMarked(marker)) == 0 })
			waitFor(t, 10*time.Second, "no tmpmount mounted under XDG_RUNTIME_DIR", func() bool {
				return len(rtTmpmountsUnder(t, "/proc/self/mountinfo", d.xdg)) == 0
			})
			waitFor(t, 10*time.Second, "the spill directory to hold no bytes", func() bool { return spillBytes(t, d.spill) == 0 })
			if sig == syscall.SIGKILL {
				// The stage cleans up after a killed daemon; give it the
				// moment it takes.
				waitFor(t, 10*time.Second, "the mount point and spill directory to go", func() bool {
					_, err := os.Lstat(mp)
					return errors.Is(err, os.ErrNotExist) && len(rtDirEntries(t, d.spill)) == 0
				})
			}
			// The next run starts clean and leaves everything clean.
			res = rtRun(t, d.command(nil, "--", "true"))
			if res.code != 0 {
				t.Errorf("the next tmpmount run exited %d\nstderr: %s", res.code, res.stderr)
			}
			d.checkCleanedUp(t, mp)
		})
	}
}

// TestRunSweepsDeadRuns leaves in XDG_RUNTIME_DIR what runs killed by an
// older tmpmount left: a dead tmpmount mount on a tmpmount-run-* directory
// and an empty, unlocked one; and one that a running run holds (locked).
// The next run removes the first two, says so, and leaves the third.
func TestRunSweepsDeadRuns(t *testing.T) {
	d := rtNewRunDirs(t)
	dead := filepath.Join(d.xdg, "tmpmount-run-olddead")
	empty := filepath.Join(d.xdg, "tmpmount-run-oldempty")
	held := filepath.Join(d.xdg, "tmpmount-run-inuse")
	for _, dir := range []string{dead, empty, held} {
		if err := os.Mkdir(dir, 0o700); err != nil {
			t.Fatal(err)
		}
	}
	t.Cleanup(func() { os.Remove(held) })
	lock, err := os.Open(held)
	if err != nil {
		t.Fatal(err)
	}
	defer lock.Close()
	if err := unix.Flock(int(lock.Fd()), unix.LOCK_EX); err != nil {
		t.Fatal(err)
	}
	// An older run's mount, in this namespace, whose daemon was killed.
	spill := t.TempDir()
	daemon := rtStart(t, exec.Command(tmpmountBin, "--spill-dir", spill, dead))
	waitFor(t, 10*time.Second, "the mount at "+dead, func() bool {
		return (isMountPoint(dead) && strings.Contains(daemon.stderr.String(), "serving")) || daemon.exited()
	})
	daemon.cmd.Process.Kill()
	daemon.wait(t, 10*time.Second)
	if !isMountPoint(dead) {
		t.Fatalf("no dead mount at %s after SIGKILL of its daemon", dead)
	}

	res := rtRun(t, d.command(nil, "--", "sh", "-c", `echo "TMPDIR=$TMPDIR"`))
	if res.code != 0 {
		t.Fatalf("tmpmount run exited %d\nstderr: %s", res.code, res.stderr)
	}
	for _, want := range []string{"unmounted " + dead, "removed " + dead, "removed " + empty} {
		if !strings.Contains(res.stderr, want) {
			t.Errorf("tmpmount run does not say %q:\n%s", want, res.stderr)
		}
	}
	if strings.Contains(res.stderr, held) {
		t.Errorf("tmpmount run mentions %s, which a run holds:\n%s", held, res.stderr)
	}
	if isMountPoint(dead) {
		t.Errorf("%s is still mounted after the sweep", dead)
	}
	if names := rtDirEntries(t, d.xdg); !slices.Equal(names, []string{filepath.Base(held)}) {
		t.Errorf("XDG_RUNTIME_DIR holds %q after the sweep, want only %s (locked by a run)", names, filepath.Base(held))
	}
}

// TestRunExitStatusOwn checks the statuses tmpmount run gives of its own,
// as env(1) does: 125 when it fails itself, 126 when the command cannot
// be run, 127 when it is not found; and that nothing is left then.
func TestRunExitStatusOwn(t *testing.T) {
	notExec := filepath.Join(t.TempDir(), "notexec")
	rtWriteFile(t, notExec, []byte("#!/bin/sh\nexit 0\n"))
	if err := os.Chmod(notExec, 0o644); err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		name     string
		args     []string
		spill    string // "" for the test's own
		wantCode int
		want     string
	}{
		{"bad flag", []string{"--max-sise", "1M", "--", "true"}, "", 125, "max-sise"},
		{"missing spill dir", []string{"--", "true"}, "/nonexistent/rt-spill", 125, "/nonexistent/rt-spill"},
		{"not executable", []string{"--", notExec}, "", 126, notExec},
		{"not found", []string{"--", "rt-no-such-command-anywhere"}, "", 127, "rt-no-such-command-anywhere"},
		{"command exits 125", []string{"--", "sh", "-c", "exit 125"}, "", 125, ""},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			d := rtNewRunDirs(t)
			cmd := d.command(nil, tc.args...)
			if tc.spill != "" {
				cmd.Args[3] = tc.spill // run --spill-dir SPILL ...
			}
			res := rtRun(t, cmd)
			if res.code != tc.wantCode {
				t.Errorf("tmpmount run %q exited %d, want %d\nstderr: %s", tc.args, res.code, tc.wantCode, res.stderr)
			}
			if tc.want != "" && (!strings.Contains(res.stderr, tc.want) || !strings.HasPrefix(lastLine(res.stderr), "tmpmount: ")) {
				t.Errorf("stderr %q does not end with a tmpmount line naming %q", res.stderr, tc.want)
			}
			d.checkCleanedUp(t, "")
		})
	}
}

func lastLine(s string) string {
	lines := strings.Split(strings.TrimRight(s, "\n"), "\n")
	return lines[len(lines)-1]
}

// TestRunUntrustedXDG runs as root with XDG_RUNTIME_DIR pointing at a
// directory that another user owns, or that others can write, while that
// user swaps every tmpmount-run-* entry there for a symlink to a root
// directory: run must not make its mount point there (so nothing of root's
// is hidden), and must use a root-owned XDG_RUNTIME_DIR of its own.
func TestRunUntrustedXDG(t *testing.T) {
	requireRoot(t)
	requireFUSE(t)
	victim := t.TempDir()
	rtWriteFile(t, filepath.Join(victim, "precious"), []byte("root's"))
	for _, tc := range []struct {
		name  string
		setup func(dir string) error
	}{
		{"owned by another user", func(dir string) error { return os.Chown(dir, 1001, 1001) }},
		{"writable by others", func(dir string) error { return os.Chmod(dir, 0o777) }},
	} {
		t.Run(tc.name, func(t *testing.T) {
			// In /tmp itself: the other user must reach it.
			base, err := os.MkdirTemp("", "tmpmount-rt-xdg-")
			if err != nil {
				t.Fatal(err)
			}
			t.Cleanup(func() { os.RemoveAll(base) })
			if err := os.Chmod(base, 0o755); err != nil {
				t.Fatal(err)
			}
			xdg := filepath.Join(base, "xdg")
			if err := os.Mkdir(xdg, 0o700); err != nil {
				t.Fatal(err)
			}
			if err := tc.setup(xdg); err != nil {
				t.Fatal(err)
			}
			t.Cleanup(func() { rtDetachTmpmountsUnder(t, xdg) })
			// The attacker: uid 1001 swaps any new entry for a symlink.
			swapper := rtStart(t, exec.Command("setpriv", "--reuid=1001", "--regid=1001", "--clear-groups", "--",
				"sh", "-c", `while :; do for e in "$1"/tmpmount-run-*; do [ -d "$e" ] && [ ! -L "$e" ] && mv "$e" "$e.moved" && ln -s "$2" "$e"; done; done`,
				"sh", xdg, victim))
			spill := t.TempDir()
			cmd := exec.Command(tmpmountBin, "run", "--spill-dir", spill, "--", "sh", "-c",
				`echo "TMPDIR=$TMPDIR"; ls "$1"`, "sh", victim)
			cmd.Env = rtEnv([]string{"TMPDIR", "XDG_RUNTIME_DIR"}, "XDG_RUNTIME_DIR="+xdg)
			res := rtRun(t, cmd)
			swapper.cmd.Process.Kill()
			if res.code != 0 {
				t.Fatalf("tmpmount run exited %d\nstderr: %s", res.code, res.stderr)
			}
			mp := rtOne(t, rtKeyValues(res.stdout), "TMPDIR", res.stdout)
			if strings.HasPrefix(mp, xdg+"/") {
				t.Errorf("TMPDIR=%s: tmpmount run as root used an XDG_RUNTIME_DIR that is %s", mp, tc.name)
			}
			if filepath.Dir(mp) != "/tmp" {
				t.Errorf("TMPDIR=%s, want a mount point in /tmp, the safe default", mp)
			}
			if !strings.Contains(res.stdout, "precious") {
				t.Errorf("inside the run, root's directory %s no longer shows its file: %q", victim, res.stdout)
			}
			if isMountPoint(victim) {
				t.Errorf("root's directory %s is mounted over", victim)
			}
		})
	}
	t.Run("root's own", func(t *testing.T) {
		d := rtNewRunDirs(t) // XDG_RUNTIME_DIR: root's, 0700
		res := rtRun(t, d.command(nil, "--", "sh", "-c", `echo "TMPDIR=$TMPDIR"`))
		mp := rtOne(t, rtKeyValues(res.stdout), "TMPDIR", res.stdout)
		if res.code != 0 || filepath.Dir(mp) != d.xdg {
			t.Errorf("tmpmount run with root's own XDG_RUNTIME_DIR %s: exit %d, TMPDIR=%s; want 0 and a mount point there\nstderr: %s", d.xdg, res.code, mp, res.stderr)
		}
		d.checkCleanedUp(t, mp)
	})
}

// TestDaemonSIGHUP sends SIGHUP (a closed terminal) to a daemon in the
// foreground: it unmounts as on SIGTERM, saves keep files and exits 0.
func TestDaemonSIGHUP(t *testing.T) {
	keep := t.TempDir()
	m := startMount(t, "--rule", "*.log=keep", "--keep-dir", keep)
	t.Cleanup(func() { rtDetachTmpmountsUnder(t, m.Dir) }) // a daemon that died of it left a dead mount
	rtWriteFile(t, m.Path("a.log"), []byte("kept\n"))
	if err := m.cmd.Process.Signal(syscall.SIGHUP); err != nil {
		t.Fatal(err)
	}
	m.waitExit(t, 20*time.Second)
	if m.waitErr != nil {
		t.Errorf("tmpmount exited with %v after SIGHUP, want status 0\n%s", m.waitErr, m.Stderr)
	}
	if isMountPoint(m.Dir) {
		t.Errorf("%s is still mounted after SIGHUP", m.Dir)
	}
	if got, err := os.ReadFile(filepath.Join(keep, "a.log")); err != nil || string(got) != "kept\n" {
		t.Errorf("keep file after SIGHUP: %q, %v; want \"kept\\n\"", got, err)
	}
}

// TestDaemonSecondSignal unmounts a busy mount with SIGINT (detached
// lazily), then sends SIGINT again: the second says what the daemon waits
// for (naming the process) and what to do, not a failed unmount; once that
// process ends, the daemon exits 0.
func TestDaemonSecondSignal(t *testing.T) {
	m := startMount(t)
	rtWriteFile(t, m.Path("f"), []byte("x"))
	holder := rtStart(t, exec.Command("sh", "-c", `exec 3<"$1"; echo holding; exec sleep 300 <&3`, "sh", m.Path("f")))
	waitFor(t, 10*time.Second, "the holder to open its file", func() bool { return strings.Contains(holder.stdout.String(), "holding") })
	m.cmd.Process.Signal(syscall.SIGINT)
	waitFor(t, 10*time.Second, "the lazy detach", func() bool { return strings.Contains(m.Stderr.String(), "detaching it lazily") })
	m.cmd.Process.Signal(syscall.SIGINT)
	pid := strconv.Itoa(holder.cmd.Process.Pid)
	waitFor(t, 10*time.Second, "the message of the second SIGINT", func() bool { return strings.Contains(m.Stderr.String(), "already detached") })
	var second string
	sc := bufio.NewScanner(strings.NewReader(m.Stderr.String()))
	for sc.Scan() {
		if strings.Contains(sc.Text(), "already detached") {
			second = sc.Text()
		}
	}
	for _, want := range []string{pid + " (sleep)", "kill " + pid} {
		if !strings.Contains(second, want) {
			t.Errorf("the second SIGINT's message does not say %q:\n%s", want, second)
		}
	}
	if strings.Contains(m.Stderr.String(), "failed") {
		t.Errorf("the daemon reports a failure:\n%s", m.Stderr)
	}
	holder.cmd.Process.Kill()
	holder.wait(t, 10*time.Second)
	m.waitExit(t, 20*time.Second)
	if m.waitErr != nil {
		t.Errorf("tmpmount exited with %v once the last user left, want 0\n%s", m.waitErr, m.Stderr)
	}
}

// hasCapability reports whether process pid has capability bit c in its
// effective set.
func hasCapability(t *testing.T, pid, c int) bool {
	t.Helper()
	data, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", pid))
	if err != nil {
		t.Fatal(err)
	}
	for _, line := range strings.Split(string(data), "\n") {
		if v, ok := strings.CutPrefix(line, "CapEff:"); ok {
			caps, err := strconv.ParseUint(strings.TrimSpace(v), 16, 64)
			return err == nil && caps&(1<<c) != 0
		}
	}
	return false
}

// TestOOMScore checks the daemon's oom_score_adj: lowered where it may
// lower it (CAP_SYS_RESOURCE), as it was elsewhere, without a word either
// way; and that tmpmount run's command does not inherit the daemon's.
func TestOOMScore(t *testing.T) {
	m := startMount(t)
	data, err := os.ReadFile(fmt.Sprintf("/proc/%d/oom_score_adj", m.cmd.Process.Pid))
	if err != nil {
		t.Fatal(err)
	}
	own, _ := os.ReadFile("/proc/self/oom_score_adj")
	want := strings.TrimSpace(string(own))
	if os.Geteuid() == 0 && hasCapability(t, m.cmd.Process.Pid, unix.CAP_SYS_RESOURCE) {
		want = "-900"
	}
	if got := strings.TrimSpace(string(data)); got != want {
		t.Errorf("the daemon's oom_score_adj is %s, want %s", got, want)
	}
	if strings.Contains(m.Stderr.String(), "oom") {
		t.Errorf("the daemon says something about its OOM score:\n%s", m.Stderr)
	}

	d := rtNewRunDirs(t)
	res := rtRun(t, d.command(nil, "--", "sh", "-c", `echo "TMPDIR=$TMPDIR"; echo "OOM=$(cat /proc/self/oom_score_adj)"`))
	if got := rtOne(t, rtKeyValues(res.stdout), "OOM", res.stdout); got != strings.TrimSpace(string(own)) {
		t.Errorf("the command's oom_score_adj under tmpmount run is %s, want %s (the caller's, not the daemon's)", got, strings.TrimSpace(string(own)))
	}
	d.checkCleanedUp(t, rtOne(t, rtKeyValues(res.stdout), "TMPDIR", res.stdout))
}

// TestOutputSymlinks gives --log, --events and --profile a symlink as the
// last component: tmpmount refuses it in one line (exit 2), touches
// nothing the link points to, and takes the file itself when given it.
func TestOutputSymlinks(t *testing.T) {
	requireFUSE(t)
	for _, flag := range []string{"--log", "--events", "--profile"} {
		t.Run(flag, func(t *testing.T) {
			dir := t.TempDir()
			target := filepath.Join(dir, "target")
			if flag == "--profile" {
				if err := os.Mkdir(target, 0o700); err != nil {
					t.Fatal(err)
				}
			} else {
				rtWriteFile(t, target, []byte("precious\n"))
			}
			link := filepath.Join(dir, "link")
			if err := os.Symlink(target, link); err != nil {
				t.Fatal(err)
			}
			mp, spill := t.TempDir(), t.TempDir()
			t.Cleanup(func() { rtDetachTmpmountsUnder(t, mp) })
			res := rtRun(t, exec.Command(tmpmountBin, "--spill-dir", spill, flag, link, mp))
			if res.code != 2 || strings.Count(res.stderr, "\n") != 1 || !strings.Contains(res.stderr, "symlink") || !strings.Contains(res.stderr, target) {
				t.Errorf("tmpmount %s SYMLINK: exit %d, stderr %q; want 2 and one line saying it is a symlink to %s", flag, res.code, res.stderr, target)
			}
			if isMountPoint(mp) {
				rtDetachTmpmountsUnder(t, mp)
				t.Errorf("mounted despite the refused %s", flag)
			}
			if flag == "--profile" {
				if names := rtDirEntries(t, target); len(names) > 0 {
					t.Errorf("the directory the refused link points to holds %q", names)
				}
			} else if got, _ := os.ReadFile(target); string(got) != "precious\n" {
				t.Errorf("the file the refused link points to now holds %q", got)
			}
			// The file itself is taken.
			daemon := rtStart(t, exec.Command(tmpmountBin, "--spill-dir", spill, flag, target, mp))
			waitFor(t, 10*time.Second, "the mount with "+flag+" "+target, func() bool {
				log, _ := os.ReadFile(target) // --log: the serving line goes there
				serving := strings.Contains(daemon.stderr.String(), "serving") || strings.Contains(string(log), "serving")
				return (isMountPoint(mp) && serving) || daemon.exited()
			})
			if daemon.exited() {
				res := daemon.wait(t, time.Second)
				t.Fatalf("tmpmount %s %s (the file itself): exit %d\nstderr: %s", flag, target, res.code, res.stderr)
			}
			if err := unmountPath(mp); err != nil {
				t.Fatal(err)
			}
			if res := daemon.wait(t, 20*time.Second); res.code != 0 {
				t.Errorf("tmpmount %s %s exited %d\nstderr: %s", flag, target, res.code, res.stderr)
			}
			switch got, _ := os.ReadFile(target); flag {
			case "--profile":
				if names := rtDirEntries(t, target); !slices.Contains(names, "cpu.pprof") {
					t.Errorf("--profile %s (the directory itself) holds %q, want cpu.pprof", target, names)
				}
			case "--log":
				if !strings.HasPrefix(string(got), "precious\n") || !strings.Contains(string(got), "serving") {
					t.Errorf("--log %s (the file itself) holds %q, want what it held and then the log", target, got)
				}
			default:
				if !strings.HasPrefix(string(got), "precious\n") {
					t.Errorf("%s %s (the file itself) lost what it held: %q", flag, target, got)
				}
			}
		})
	}
}

// TestSpillDirAcrossPIDNamespaces runs a tmpmount in a PID namespace of
// its own (as in a container sharing /var/tmp), with a pid that means
// nothing outside, and then a second tmpmount outside sharing its spill
// parent. The second must leave the first's spill directory alone (a
// sweep by pid removed it, and the first's rollovers then failed), and
// the first must go on rolling files over. Then the first's spill
// directory is removed by hand: the failing rollover is logged with why.
func TestSpillDirAcrossPIDNamespaces(t *testing.T) {
	requireRoot(t)
	requireFUSE(t)
	if _, err := exec.LookPath("unshare"); err != nil {
		t.Skip("no unshare")
	}
	spill, mpA := t.TempDir(), t.TempDir()
	// Inside, the daemon gets pid 400001: unused outside (checked).
	const innerPid = 400001
	if _, err := os.Stat(fmt.Sprintf("/proc/%d", innerPid)); err == nil {
		t.Skipf("pid %d is in use here", innerPid)
	}
	a := rtStart(t, exec.Command("unshare", "--pid", "--fork", "--mount-proc", "sh", "-c",
		fmt.Sprintf(`echo %d > /proc/sys/kernel/ns_last_pid && "$0" --max-size 4k --spill-dir "$1" "$2"`, innerPid-1),
		tmpmountBin, spill, mpA))
	// unshare's --mount-proc gives it a mount namespace of its own too:
	// the inner mount is seen through unshare's /proc entries.
	nsInfo := fmt.Sprintf("/proc/%d/mountinfo", a.cmd.Process.Pid)
	inA := func(name string) string { return fmt.Sprintf("/proc/%d/root%s/%s", a.cmd.Process.Pid, mpA, name) }
	waitFor(t, 20*time.Second, "the tmpmount in its own PID namespace to serve", func() bool {
		mounted := slices.Contains(rtTmpmountsUnder(t, nsInfo, mpA), mpA)
		return (mounted && strings.Contains(a.stderr.String(), "serving")) || a.exited()
	})
	if a.exited() {
		res := a.wait(t, time.Second)
		t.Fatalf("the inner tmpmount exited %d\nstderr: %s", res.code, res.stderr)
	}
	names := rtDirEntries(t, spill)
	if len(names) != 1 || !strings.HasPrefix(names[0], fmt.Sprintf("tmpmount-%d-", innerPid)) {
		t.Fatalf("spill parent holds %q, want one tmpmount-%d-* directory", names, innerPid)
	}
	rtWriteFile(t, inA("big1"), rtPattern(1, 65536))

	startMount(t, "--spill-dir", spill) // the second tmpmount, outside
	if got := rtDirEntries(t, spill); !slices.Contains(got, names[0]) {
		t.Errorf("after a second tmpmount started with the same spill parent, %s is gone (%q left): it judged a running daemon in another PID namespace dead", names[0], got)
	}
	rtWriteFile(t, inA("big2"), rtPattern(2, 65536))
	if got := readResidency(t, inA("big2")); got != "disk" {
		t.Errorf("a 64 KiB file on the inner mount (--max-size 4k) is in %q, want disk", got)
	}

	// A spill directory that vanishes: the rollover fails and says why.
	if err := os.Remove(filepath.Join(spill, names[0])); err != nil {
		t.Fatal(err)
	}
	err := os.WriteFile(inA("big3"), rtPattern(3, 65536), 0o644)
	if err == nil {
		t.Errorf("a write that needs a rollover into a removed spill directory succeeded")
	}
	waitFor(t, 10*time.Second, "the log line of the failed rollover", func() bool {
		return strings.Contains(a.stderr.String(), "rollover of \"big3\"")
	})
	for _, want := range []string{"failed", names[0], "stays in RAM"} {
		if !strings.Contains(a.stderr.String(), want) {
			t.Errorf("the failed rollover's log line does not say %q:\n%s", want, a.stderr)
		}
	}
	if res := rtRun(t, exec.Command("nsenter", "-t", strconv.Itoa(a.cmd.Process.Pid), "-m", "umount", mpA)); res.code != 0 {
		t.Fatalf("umount %s in the inner namespace: exit %d\n%s", mpA, res.code, res.stderr)
	}
	if res := a.wait(t, 20*time.Second); res.code != 0 {
		t.Logf("inner tmpmount exited %d\nstderr: %s", res.code, res.stderr)
	}
}

// TestRunSecondInterrupt sends SIGINT to tmpmount run while it waits for
// the processes CMD left to exit: it says so and ends them at once (no
// SIGTERM round), and exits with CMD's status.
func TestRunSecondInterrupt(t *testing.T) {
	d := rtNewRunDirs(t)
	marker := rtMarker(t)
	t.Cleanup(func() { rtKillMarked(t, marker) })
	p := rtStart(t, d.command([]string{marker}, "--", "sh", "-c",
		`trap '' TERM; setsid sleep 300 </dev/null >/dev/null 2>&1 & echo "TMPDIR=$TMPDIR"; exit 4`))
	waitFor(t, 20*time.Second, "tmpmount run to wait for the straggler", func() bool {
		return strings.Contains(p.stderr.String(), "still run") || p.exited()
	})
	p.cmd.Process.Signal(syscall.SIGINT)
	res := p.wait(t, rtTimeout)
	if res.code != 4 {
		t.Errorf("tmpmount run exited %d, want 4 (CMD's status)\nstderr: %s", res.code, res.stderr)
	}
	if !strings.Contains(res.stderr, "interrupt: ending the processes the command started now") || !strings.Contains(res.stderr, "SIGKILL") {
		t.Errorf("stderr does not say the interrupt ends the stragglers now, with SIGKILL:\n%s", res.stderr)
	}
	if strings.Contains(res.stderr, "SIGTERM") {
		t.Errorf("after the interrupt, tmpmount run still went through SIGTERM:\n%s", res.stderr)
	}
	if left := rtMarked(marker); len(left) > 0 {
		t.Errorf("processes CMD started still run: %q", left)
	}
	d.checkCleanedUp(t, rtOne(t, rtKeyValues(res.stdout), "TMPDIR", res.stdout))
}

package e2e

import (
	"bufio"
	"errors"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"syscall"
	"testing"
	"time"

	"golang.org/x/sys/unix"
)

// cliResult is how a tmpmount run ended.
type cliResult struct {
	stdout, stderr string
	code           int
}

// runCLI runs cmd, which runs tmpmount, and waits for it to exit. A run
// that has not exited after a while is a failure; if it mounted something
// at mountpoint meanwhile, that is unmounted.
func runCLI(t *testing.T, cmd *exec.Cmd, mountpoint string) cliResult {
	t.Helper()
	var stdout, stderr syncBuffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	if err := cmd.Start(); err != nil {
		t.Fatalf("start %v: %v", cmd.Args, err)
	}
	done := make(chan error, 1)
	go func() { done <- cmd.Wait() }()
	var err error
	select {
	case err = <-done:
	case <-time.After(15 * time.Second):
		if mountpoint != "" && isMountPoint(mountpoint) {
			syscall.Unmount(mountpoint, unix.MNT_DETACH)
		}
		cmd.Process.Kill()
		<-done
		t.Fatalf("%v still running after 15s (it should have exited at once)\nstderr: %s", cmd.Args, stderr.String())
	}
	res := cliResult{stdout: stdout.String(), stderr: stderr.String()}
	var ee *exec.ExitError
	switch {
	case err == nil:
	case errors.As(err, &ee):
		res.code = ee.ExitCode()
	default:
		t.Fatalf("%v: %v", cmd.Args, err)
	}
	return res
}

// mountinfoAt returns the lines of /proc/self/mountinfo for mounts at path.
func mountinfoAt(t *testing.T, path string) []string {
	t.Helper()
	var lines []string
	for _, m := range mountsOf(t, "/proc/self/mountinfo") {
		if m.point == path {
			lines = append(lines, m.line)
		}
	}
	return lines
}

// checkSetupError checks that a run failed as a setup error must: exit
// status 2, nothing on stdout, one line "tmpmount: ..." on stderr holding
// every one of words, and no change to what is mounted at mountpoint
// (whose mountinfo lines were mountsBefore).
func checkSetupError(t *testing.T, res cliResult, mountpoint string, mountsBefore []string, words ...string) {
	t.Helper()
	if res.code != 2 {
		t.Errorf("exit status %d, want 2 (stderr %q)", res.code, res.stderr)
	}
	if res.stdout != "" {
		t.Errorf("stdout %q, want nothing", res.stdout)
	}
	if !strings.HasPrefix(res.stderr, "tmpmount: ") || !strings.HasSuffix(res.stderr, "\n") || strings.Count(res.stderr, "\n") != 1 {
		t.Errorf("stderr %q, want one line starting with \"tmpmount: \"", res.stderr)
	}
	for _, w := range words {
		if !strings.Contains(strings.ToLower(res.stderr), strings.ToLower(w)) {
			t.Errorf("stderr %q does not name the problem: no %q", res.stderr, w)
		}
	}
	if mountpoint == "" {
		return
	}
	if after := mountinfoAt(t, mountpoint); !slices.Equal(after, mountsBefore) {
		t.Errorf("mounts at %s changed:\nbefore %q\nafter  %q", mountpoint, mountsBefore, after)
	}
}

// TestCLIBadArguments runs tmpmount with bad command lines and bad mount
// points or spill dirs: each must fail at once with status 2, one line on
// stderr that names the problem, and nothing mounted.
func TestCLIBadArguments(t *testing.T) {
	// In args, {mp} and {spill} stand for a fresh, empty mount point and
	// spill dir; setup, if any, prepares them further.
	writeFile := func(name string) func(t *testing.T, dir string) {
		return func(t *testing.T, dir string) {
			if err := os.WriteFile(filepath.Join(dir, name), nil, 0o644); err != nil {
				t.Fatal(err)
			}
		}
	}
	tests := []struct {
		name       string
		args       []string
		setupMP    func(t *testing.T, mp string)
		setupSpill func(t *testing.T, spill string)
		words      []string
	}{
		{name: "unknown flag", args: []string{"--bogus-flag", "{mp}"},
			words: []string{"unknown flag --bogus-flag"}},
		{name: "max-size 8Q", args: []string{"--max-size", "8Q", "--spill-dir", "{spill}", "{mp}"},
			words: []string{"--max-size", `invalid size "8Q"`, `unknown unit "Q"`}},
		{name: "max-size -1", args: []string{"--max-size", "-1", "--spill-dir", "{spill}", "{mp}"},
			words: []string{"--max-size", `invalid size "-1"`}},
		{name: "max-size empty", args: []string{"--max-size", "", "--spill-dir", "{spill}", "{mp}"},
			words: []string{"--max-size", `invalid size ""`}},
		{name: "mode 99", args: []string{"--mode", "99", "--spill-dir", "{spill}", "{mp}"},
			words: []string{"invalid mode", `"99"`}},
		{name: "unknown uid", args: []string{"--uid", "no-such-user-tmpmount", "--spill-dir", "{spill}", "{mp}"},
			words: []string{"uid", "unknown", "no-such-user-tmpmount"}},
		{name: "unknown gid", args: []string{"--gid", "no-such-group-tmpmount", "--spill-dir", "{spill}", "{mp}"},
			words: []string{"gid", "unknown", "no-such-group-tmpmount"}},
		{name: "no mount point", args: []string{"--spill-dir", "{spill}"},
			words: []string{"missing MOUNTPOINT"}},
		{name: "two mount points", args: []string{"--spill-dir", "{spill}", "{mp}", "{spill}"},
			words: []string{"one MOUNTPOINT expected"}},
		{name: "missing mount point", args: []string{"--spill-dir", "{spill}", "{mp}/missing"},
			words: []string{"does not exist", "/missing"}},
		{name: "mount point is a regular file", args: []string{"--spill-dir", "{spill}", "{mp}/file"},
			setupMP: writeFile("file"),
			words:   []string{"not a directory", "/file"}},
		{name: "spill dir missing", args: []string{"--spill-dir", "{spill}/missing", "{mp}"},
			words: []string{"spill dir", "/missing", "does not exist", "mkdir -p"}},
		{name: "spill dir is a file", args: []string{"--spill-dir", "{spill}/file", "{mp}"},
			setupSpill: writeFile("file"),
			words:      []string{"spill dir", "/file", "not a directory"}},
		{name: "spill dir inside the mount point", args: []string{"--spill-dir", "{mp}/spill", "{mp}"},
			words: []string{"spill dir", "inside the mount point"}},
		{name: "spill dir is the mount point", args: []string{"--spill-dir", "{mp}", "{mp}"},
			words: []string{"spill dir", "inside the mount point"}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			mp, spill := t.TempDir(), t.TempDir()
			if tc.setupMP != nil {
				tc.setupMP(t, mp)
			}
			if tc.setupSpill != nil {
				tc.setupSpill(t, spill)
			}
			args := make([]string, len(tc.args))
			for i, a := range tc.args {
				args[i] = strings.NewReplacer("{mp}", mp, "{spill}", spill).Replace(a)
			}
			before := mountinfoAt(t, mp)
			res := runCLI(t, exec.Command(tmpmountBin, args...), mp)
			checkSetupError(t, res, mp, before, tc.words...)
			entries, err := os.ReadDir(spill)
			if err != nil {
				t.Fatal(err)
			}
			for _, e := range entries {
				if strings.HasPrefix(e.Name(), "tmpmount-") {
					t.Errorf("spill parent holds %s after a failed start", e.Name())
				}
			}
		})
	}
}

// TestCLIMountPointAlreadyMounted refuses a mount point that already has
// a tmpfs or a tmpmount on it.
func TestCLIMountPointAlreadyMounted(t *testing.T) {
	t.Run("tmpfs", func(t *testing.T) {
		requireRoot(t)
		mp := t.TempDir()
		runCmd(t, "/", "mount", "-t", "tmpfs", "tmpfs", mp)
		t.Cleanup(func() {
			if err := syscall.Unmount(mp, 0); err != nil {
				t.Errorf("unmount tmpfs %s: %v", mp, err)
			}
		})
		before := mountinfoAt(t, mp)
		res := runCLI(t, exec.Command(tmpmountBin, "--spill-dir", t.TempDir(), mp), mp)
		checkSetupError(t, res, mp, before, "already mounted", "tmpfs", mp)
	})
	t.Run("tmpmount", func(t *testing.T) {
		m := startMount(t)
		before := mountinfoAt(t, m.Dir)
		if len(before) != 1 {
			t.Fatalf("mounts at %s before: %q, want one", m.Dir, before)
		}
		res := runCLI(t, exec.Command(tmpmountBin, "--spill-dir", t.TempDir(), m.Dir), m.Dir)
		checkSetupError(t, res, m.Dir, before, "already mounted", "fuse.tmpmount", m.Dir)
		if daemonDone(m) {
			t.Errorf("the first daemon exited after the refused second start")
		}
	})
}

// TestCLIUnwritableSpillDir runs tmpmount as nobody with a spill dir that
// nobody cannot write in.
func TestCLIUnwritableSpillDir(t *testing.T) {
	requireRoot(t)
	base := nobodyReachableDir(t)
	bin := binaryForNobody(t, base)
	mp := nobodyOwnedDir(t, filepath.Join(base, "mnt"))
	spill := filepath.Join(base, "spill")
	if err := os.Mkdir(spill, 0o755); err != nil { // root's, 0755
		t.Fatal(err)
	}
	before := mountinfoAt(t, mp)
	res := runCLI(t, asNobody(bin, "--spill-dir", spill, mp), mp)
	checkSetupError(t, res, mp, before, "spill dir", spill, "permission denied")
}

// TestCLINoDevFuse runs tmpmount in a private mount namespace where /dev
// is an empty tmpfs.
func TestCLINoDevFuse(t *testing.T) {
	requireRoot(t)
	mp := t.TempDir()
	before := mountinfoAt(t, mp)
	cmd := exec.Command("unshare", "--mount", "--propagation", "private", "--",
		"sh", "-c", `mount -t tmpfs tmpfs /dev && exec "$@"`, "sh",
		tmpmountBin, "--spill-dir", t.TempDir(), mp)
	res := runCLI(t, cmd, mp)
	checkSetupError(t, res, mp, before, "/dev/fuse")
}

// TestCLINonRootWithoutFusermount runs tmpmount as nobody where it cannot
// find fusermount3: hidden (an empty, non-executable file bound over it in
// a private mount namespace), so that neither $PATH nor the /bin fallback
// that go-fuse also uses finds it.
func TestCLINonRootWithoutFusermount(t *testing.T) {
	requireRoot(t)
	// Every fusermount binary tmpmount could use, by its real path.
	var helpers []string
	for _, name := range []string{"fusermount3", "fusermount"} {
		if p, err := exec.LookPath(name); err == nil {
			if real, err := filepath.EvalSymlinks(p); err == nil && !slices.Contains(helpers, real) {
				helpers = append(helpers, real)
			}
		}
	}
	if len(helpers) == 0 {
		t.Skip("no fusermount3 to hide")
	}
	tests := []struct {
		name string
		cmd  func(bin, spill, mp, empty string) *exec.Cmd
	}{
		{name: "fusermount3 hidden", cmd: func(bin, spill, mp, empty string) *exec.Cmd {
			// In a private mount namespace, bind the empty, non-executable
			// file over each helper, then run tmpmount as nobody.
			script := `empty=$1; shift; while [ "$1" != -- ]; do mount --bind "$empty" "$1" || exit 1; shift; done; shift; exec "$@"`
			args := []string{"--mount", "--propagation", "private", "--", "sh", "-c", script, "sh", empty}
			args = append(append(args, helpers...), "--")
			args = append(args, asNobody(bin, "--spill-dir", spill, mp).Args...)
			return exec.Command("unshare", args...)
		}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			base := nobodyReachableDir(t)
			bin := binaryForNobody(t, base)
			mp := nobodyOwnedDir(t, filepath.Join(base, "mnt"))
			spill := nobodyOwnedDir(t, filepath.Join(base, "spill"))
			empty := filepath.Join(nobodyOwnedDir(t, filepath.Join(base, "emptybin")), "empty")
			if err := os.WriteFile(empty, nil, 0o644); err != nil {
				t.Fatal(err)
			}
			before := mountinfoAt(t, mp)
			res := runCLI(t, tc.cmd(bin, spill, mp, empty), mp)
			checkSetupError(t, res, mp, before, "not root", "fusermount3")
			if entries, err := os.ReadDir(spill); err != nil || len(entries) != 0 {
				t.Errorf("spill dir after a failed start: %d entries (%v), want none", len(entries), err)
			}
		})
	}
}

// lineWith returns the first line of text that holds s.
func lineWith(text, s string) string {
	for _, l := range strings.Split(text, "\n") {
		if strings.Contains(l, s) {
			return l
		}
	}
	return ""
}

// nestedParens reports whether s has a parenthesis inside another.
func nestedParens(s string) bool {
	depth := 0
	for _, c := range s {
		switch c {
		case '(':
			depth++
			if depth > 1 {
				return true
			}
		case ')':
			depth = max(0, depth-1)
		}
	}
	return false
}

// TestCLIVersion checks --version.
func TestCLIVersion(t *testing.T) {
	res := runCLI(t, exec.Command(tmpmountBin, "--version"), "")
	if res.code != 0 || res.stderr != "" {
		t.Errorf("--version: exit %d, stderr %q; want 0 and nothing", res.code, res.stderr)
	}
	if !strings.HasPrefix(res.stdout, "tmpmount ") || strings.Count(res.stdout, "\n") != 1 || !strings.HasSuffix(res.stdout, "\n") {
		t.Errorf("--version printed %q, want one line starting with \"tmpmount \"", res.stdout)
	}
}

// TestCLIHelp checks that -help, --help and -h print the usage with every
// flag on stdout and exit 0.
func TestCLIHelp(t *testing.T) {
	flags := []string{"--max-size", "--mem-limit", "--size", "--inodes", "--spill-dir", "--delete", "--rule", "--keep-dir",
		"--events", "--mode", "--uid", "--gid", "--allow-other", "--no-passthrough", "--no-acl", "--debug", "--version",
		"--dev", "--suid", "--foreground", "--log"}
	for _, arg := range []string{"-help", "--help", "-h"} {
		t.Run(arg, func(t *testing.T) {
			res := runCLI(t, exec.Command(tmpmountBin, arg), "")
			if res.code != 0 {
				t.Errorf("exit %d, want 0 (stderr %q)", res.code, res.stderr)
			}
			if res.stderr != "" {
				t.Errorf("stderr %q, want nothing", res.stderr)
			}
			if !strings.HasPrefix(res.stdout, "Usage:\n  tmpmount [flags] MOUNTPOINT") {
				t.Errorf("stdout does not start with \"Usage: tmpmount\": %q", res.stdout)
			}
			for _, f := range flags {
				if !strings.Contains(res.stdout, "\n  "+f+" ") && !strings.Contains(res.stdout, "\n  "+f+"\n") {
					t.Errorf("usage does not list %s:\n%s", f, res.stdout)
				}
			}
		})
	}
}

// TestCLIMaxSizeUnits mounts with each accepted spelling of a size and
// finds where the residency flips: a file of exactly the parsed size stays
// in memory, one byte more goes to disk.
func TestCLIMaxSizeUnits(t *testing.T) {
	tests := []struct {
		flag      string
		threshold int64 // 0: never by size
	}{
		{"8M", 8 << 20},
		{"8m", 8 << 20},
		{"8MiB", 8388608},
		{"8MB", 8000000},
		{"512k", 512 << 10},
		{"4096", 4096},
		{"0", 0},
		{"8k", 8192},
		{"8kB", 8000},
	}
	for _, tc := range tests {
		t.Run(tc.flag, func(t *testing.T) {
			m := startMount(t, "--max-size", tc.flag)
			at, over := tc.threshold, tc.threshold+1
			if tc.threshold == 0 {
				at, over = 1<<30, 1<<30 // never by size: both stay in memory
			}
			want := map[string]string{"at": "memory", "over": wantResidency(over, tc.threshold)}
			sizes := map[string]int64{"at": at, "over": over}
			for _, name := range []string{"at", "over"} {
				// By ftruncate, which costs nothing whatever the size...
				path := m.Path("truncated-" + name)
				if err := os.WriteFile(path, nil, 0o644); err != nil {
					t.Fatal(err)
				}
				if err := os.Truncate(path, sizes[name]); err != nil {
					t.Fatal(err)
				}
				if got := readResidency(t, path); got != want[name] {
					t.Errorf("--max-size %s: a file truncated to %d bytes is in %q, want %q", tc.flag, sizes[name], got, want[name])
				}
				// ...and, for the small sizes, by writing the bytes.
				if sizes[name] > 1<<20 {
					continue
				}
				path = m.Path("written-" + name)
				if err := os.WriteFile(path, seededBytes(7, sizes[name]), 0o644); err != nil {
					t.Fatal(err)
				}
				if got := readResidency(t, path); got != want[name] {
					t.Errorf("--max-size %s: a file written to %d bytes is in %q, want %q", tc.flag, sizes[name], got, want[name])
				}
			}
		})
	}
}

// waitServing waits until the daemon says it is serving, which it does
// once the mount is fully set up (after go-fuse's WaitMount). The mount
// shows in mountinfo earlier than that.
func waitServing(t *testing.T, m *Mount) {
	t.Helper()
	waitFor(t, 10*time.Second, "the daemon to log \"serving\"", func() bool {
		return strings.Contains(m.Stderr.String(), "tmpmount: serving ")
	})
}

// TestCLISignalRightAfterMount sends SIGTERM as soon as the mount shows in
// mountinfo, as a service manager stopping a just-started unit would: the
// daemon must still unmount, remove its spill dir and exit 0.
func TestCLISignalRightAfterMount(t *testing.T) {
	requireRoot(t) // to recover a hung mount with MNT_FORCE
	requireFUSE(t)
	const attempts = 5
	for attempt := range attempts {
		mp, spill := t.TempDir(), t.TempDir()
		var stderr syncBuffer
		cmd := exec.Command(tmpmountBin, "--spill-dir", spill, mp)
		cmd.Stdout, cmd.Stderr = &stderr, &stderr
		if err := cmd.Start(); err != nil {
			t.Fatal(err)
		}
		done := make(chan error, 1)
		go func() { done <- cmd.Wait() }()

		// Poll tightly: the point is to signal as early as a watcher can.
		deadline := time.Now().Add(10 * time.Second)
		for !isMountPoint(mp) {
			if time.Now().After(deadline) {
				cmd.Process.Kill()
				t.Fatalf("attempt %d: no mount after 10s\n%s", attempt, stderr.String())
			}
			time.Sleep(200 * time.Microsecond)
		}
		cmd.Process.Signal(syscall.SIGTERM)

		var waitErr error
		hung := false
		select {
		case waitErr = <-done:
		case <-time.After(5 * time.Second):
			// The daemon is stuck: MNT_FORCE aborts the FUSE connection,
			// which unblocks it.
			hung = true
			syscall.Unmount(mp, unix.MNT_FORCE)
			select {
			case waitErr = <-done:
			case <-time.After(10 * time.Second):
				cmd.Process.Kill()
				waitErr = <-done
			}
		}
		leftMounted := isMountPoint(mp)
		if leftMounted {
			if err := syscall.Unmount(mp, 0); err != nil {
				syscall.Unmount(mp, unix.MNT_DETACH)
			}
		}
		entries, _ := os.ReadDir(spill)
		if hung || waitErr != nil || leftMounted || len(entries) > 0 {
			t.Errorf("attempt %d: SIGTERM right after the mount appeared: hung %v, exit %v, still mounted %v, spill dir entries %d; "+
				"want exit status 0, unmounted, no spill dir\ndaemon log:\n%s", attempt, hung, waitErr, leftMounted, len(entries), stderr.String())
			return // one failure says it; more would only cost time
		}
	}
}

// TestCLISignalsUnmount checks that SIGTERM, SIGINT and SIGHUP unmount and
// end the daemon with status 0.
func TestCLISignalsUnmount(t *testing.T) {
	for _, sig := range []syscall.Signal{syscall.SIGTERM, syscall.SIGINT, syscall.SIGHUP} {
		t.Run(sig.String(), func(t *testing.T) {
			m := startMount(t, "--max-size", "4k")
			waitServing(t, m)
			if err := os.WriteFile(m.Path("f"), seededBytes(1, 8192), 0o644); err != nil {
				t.Fatal(err)
			}
			if err := m.cmd.Process.Signal(sig); err != nil {
				t.Fatal(err)
			}
			waitFor(t, 10*time.Second, "the mount to go away after "+sig.String(), func() bool { return !isMountPoint(m.Dir) })
			waitFor(t, 10*time.Second, "the daemon to exit after "+sig.String(), func() bool { return daemonDone(m) })
			if m.waitErr != nil {
				t.Errorf("daemon exit after %v: %v, want status 0\n%s", sig, m.waitErr, m.Stderr)
			}
			if log := m.Stderr.String(); !strings.Contains(log, "unmounted") {
				t.Errorf("daemon log does not say it unmounted:\n%s", log)
			}
			// The harness's cleanup checks that the spill parent is empty.
		})
	}
}

// TestCLISigtermWhileBusy sends SIGTERM while another process holds a file
// open in the mount: the daemon detaches the mount lazily (the mount point
// is free at once), keeps serving the open file, and exits 0 once the
// process closes it.
func TestCLISigtermWhileBusy(t *testing.T) {
	m := startMount(t, "--max-size", "64k")
	waitServing(t, m)
	for name, size := range map[string]int64{"small": 1000, "big": 100 << 10} {
		if err := os.WriteFile(m.Path(name), seededBytes(uint64(size), size), 0o644); err != nil {
			t.Fatal(err)
		}
	}

	// The holder opens both files, says "ready", waits for a line on its
	// stdin, then reads both files through the descriptors it holds.
	holder := exec.Command("sh", "-c", `exec 3<"$1" 4<"$2" || exit 1; echo ready; read _; cat <&3 && cat <&4`, "sh", m.Path("small"), m.Path("big"))
	holder.Dir = "/"
	stdin, err := holder.StdinPipe()
	if err != nil {
		t.Fatal(err)
	}
	stdout, err := holder.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	holder.Stderr = os.Stderr
	if err := holder.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		holder.Process.Kill()
		holder.Wait()
	})
	out := bufio.NewReader(stdout)
	if line, err := out.ReadString('\n'); err != nil || line != "ready\n" {
		t.Fatalf("holder said %q, %v; want \"ready\"", line, err)
	}

	if err := m.cmd.Process.Signal(syscall.SIGTERM); err != nil {
		t.Fatal(err)
	}
	waitFor(t, 10*time.Second, "the busy mount to be detached after SIGTERM", func() bool { return !isMountPoint(m.Dir) })
	if daemonDone(m) {
		t.Fatalf("the daemon exited while a process still held files open in the mount: %v\n%s", m.waitErr, m.Stderr)
	}
	if log := m.Stderr.String(); !strings.Contains(log, "detaching it lazily") {
		t.Errorf("daemon log does not say it detaches lazily:\n%s", log)
	} else if line := lineWith(log, "detaching it lazily"); nestedParens(line) {
		t.Errorf("the busy-unmount line has nested parentheses: %q", line)
	}

	if _, err := io.WriteString(stdin, "go\n"); err != nil {
		t.Fatal(err)
	}
	stdin.Close()
	got, err := io.ReadAll(out)
	if err != nil {
		t.Fatal(err)
	}
	want := append(seededBytes(1000, 1000), seededBytes(100<<10, 100<<10)...)
	if d := firstDiff(got, want); d != "" {
		t.Errorf("the holder's reads after the lazy detach: %s", d)
	}
	if err := holder.Wait(); err != nil {
		t.Errorf("holder: %v", err)
	}
	waitFor(t, 10*time.Second, "the daemon to exit once the last open file was closed", func() bool { return daemonDone(m) })
	if m.waitErr != nil {
		t.Errorf("daemon exit: %v, want status 0\n%s", m.waitErr, m.Stderr)
	}
}

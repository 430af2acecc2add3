package e2e

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"sort"
	"strings"
	"syscall"
	"testing"
	"time"

	"golang.org/x/sys/unix"
)

// The README says a test runs every ```sh block of it. TestReadmeShBlocks
// is that test: it parses README.md, and for each sh block either runs it
// (with `sh -eu`, tmpmount on $PATH being the binary under test) or, for the
// few lines that cannot run inside a test, runs the equivalent check listed
// in readmeNotRun. A block that is neither is a failure, so a new block
// cannot be skipped silently.

// readmeRoot is a scratch tree the test cleans before and after each
// block. The README's blocks work in directories of their own
// (d=$(mktemp -d), in $TMPDIR), so that two users cannot collide; the test
// gives each block a fresh $TMPDIR and checks the block left it empty.
const readmeRoot = "/tmp/readme"

// readmeAllowedPaths are the absolute paths a block may name and still be
// run by the test: the scratch tree, where the Install block puts the
// binary and the man page, and the device files it reads. A block naming
// anything else (a path on the machine the test must not touch) is "not
// covered" until it is added here or to readmeNotRun.
var readmeAllowedPaths = []string{readmeRoot, readmeBinDir, readmeManDir, "/dev/zero", "/dev/urandom", "/dev/null"}

// readmeBinDir and readmeManDir are where the README installs tmpmount and
// tmpmount(1). readmeBinDir is also where mount(8)'s mount.fuse looks for
// tmpmount, in a fixed PATH. Blocks that name either, or mount with
// mount(8), run in a private mount namespace in which temporary
// directories are bind-mounted over both: an install touches nothing of
// the machine's, and mount(8) runs the binary under test.
const (
	readmeBinDir = "/usr/local/bin"
	readmeManDir = "/usr/local/share/man"
)

// readmeBlockTimeout bounds one block (each takes well under a second or
// two when tmpmount works; a mount that never comes up would otherwise spin
// in the block's `until mountpoint` loop forever).
const readmeBlockTimeout = 60 * time.Second

// readmeShBlock is one ```sh block of the README.
type readmeShBlock struct {
	index int      // 1-based, among the sh blocks
	line  int      // README line number of lines[0]
	lines []string // the block's lines, fences excluded
}

// readmeNotRunLine is a README line the test does not run, why, and what it
// checks instead.
type readmeNotRunLine struct {
	match  string // a substring that identifies the line
	reason string
	check  func(t *testing.T, env *readmeEnv, line string)
}

// readmeNotRun lists every README sh line that cannot run inside a test.
// Each entry must match exactly one line.
var readmeNotRun = []readmeNotRunLine{
	{
		match:  "go run ./cmd/tmpmount ~/t",
		reason: "serves until Ctrl-C or umount, so it never ends by itself; the same command line with the binary `go run` builds from ./cmd/tmpmount is started, must mount a fuse.tmpmount at ~/t, and must exit 0 on umount",
		check:  readmeCheckServeForever,
	},
	{
		match:  "sudo .ci/run",
		reason: "installs packages and runs the whole suite, this test included (recursion); checked: .ci/run is an executable sh script whose last command runs scripts/test.sh, which runs the e2e tests",
		check:  readmeCheckCIRun,
	},
	{
		match:  "apt-get install",
		reason: "changes the machine's packages and needs the network; checked: the packages it names are installed and the programs its comment names are on $PATH",
		check:  readmeCheckAptInstall,
	},
}

// readmeExpectWord matches a trailing comment that is an expected output: one
// word, which the command's output must equal ("nothing": no output).
var readmeExpectWord = regexp.MustCompile(`^[A-Za-z0-9._-]+$`)

// readmeAbsPath finds absolute paths at the start of a shell word.
var readmeAbsPath = regexp.MustCompile(`(?:^|[\s'"=<>|;&(])(/[A-Za-z0-9._+/-]*)`)

// readmeEnv is what a block runs with.
type readmeEnv struct {
	repo    string // the repository root: the blocks' working directory
	binDir  string // first on $PATH: tmpmount (the binary under test), sudo
	home    string // $HOME
	tmpdir  string // $TMPDIR, where tmpmount without --spill-dir spills
	runtime string // $XDG_RUNTIME_DIR, where `tmpmount run` makes its mount point
	environ []string
}

func TestReadmeShBlocks(t *testing.T) {
	requireFUSE(t)
	// Every block mounts and unmounts with umount(8), and the mount(8) block
	// runs `sudo mount`: root, as `sudo .ci/run` is.
	requireRoot(t)

	repo, err := filepath.Abs("..")
	if err != nil {
		t.Fatal(err)
	}
	data, err := os.ReadFile(filepath.Join(repo, "README.md"))
	if err != nil {
		t.Fatal(err)
	}
	blocks := readmeParseShBlocks(string(data))
	if len(blocks) == 0 {
		t.Fatal("README.md has no ```sh blocks: the parser or the README is broken")
	}

	// Every readmeNotRun entry must name exactly one README line, so that a
	// stale entry cannot hide a line.
	for _, nr := range readmeNotRun {
		n := 0
		for _, b := range blocks {
			for _, l := range b.lines {
				if strings.Contains(l, nr.match) {
					n++
				}
			}
		}
		if n != 1 {
			t.Errorf("readmeNotRun entry %q matches %d README sh lines, want 1", nr.match, n)
		}
	}

	for _, b := range blocks {
		t.Run(fmt.Sprintf("block%d_line%d", b.index, b.line), func(t *testing.T) {
			readmeRunBlock(t, repo, b)
		})
	}
}

// readmeParseShBlocks returns the ```sh blocks of a markdown text. Other
// fenced blocks are skipped whole, so their contents are never taken for
// fences.
func readmeParseShBlocks(text string) []readmeShBlock {
	var blocks []readmeShBlock
	var cur *readmeShBlock
	inFence := false
	for i, l := range strings.Split(text, "\n") {
		trimmed := strings.TrimSpace(l)
		if !strings.HasPrefix(trimmed, "```") {
			if cur != nil {
				cur.lines = append(cur.lines, l)
			}
			continue
		}
		if inFence {
			if trimmed == "```" {
				if cur != nil {
					blocks = append(blocks, *cur)
					cur = nil
				}
				inFence = false
			}
			continue
		}
		inFence = true
		if strings.TrimSpace(strings.TrimPrefix(trimmed, "```")) == "sh" {
			cur = &readmeShBlock{index: len(blocks) + 1, line: i + 2}
		}
	}
	return blocks
}

// readmeSplitComment splits a shell line into its command and its trailing
// comment: a # that starts a word outside quotes (the shell's rule).
func readmeSplitComment(line string) (cmd, comment string, ok bool) {
	var quote byte
	for i := 0; i < len(line); i++ {
		c := line[i]
		switch {
		case quote != 0:
			if c == quote {
				quote = 0
			} else if c == '\\' && quote == '"' {
				i++
			}
		case c == '\\':
			i++
		case c == '\'' || c == '"':
			quote = c
		case c == '#' && (i == 0 || line[i-1] == ' ' || line[i-1] == '\t'):
			return strings.TrimRight(line[:i], " \t"), strings.TrimSpace(line[i+1:]), true
		}
	}
	return line, "", false
}

// readmeExpectation is a README line whose trailing comment is the
// command's expected output.
type readmeExpectation struct {
	readmeLine int
	cmd        string
	want       string
}

// readmeScript turns a block into the script the test runs: lines in
// readmeNotRun are left out (and returned), and a line whose trailing
// comment is one word becomes an assertion that its command prints exactly
// that word ("nothing": prints nothing).
func readmeScript(b readmeShBlock) (script string, expects []readmeExpectation, notRun map[int]readmeNotRunLine) {
	notRun = map[int]readmeNotRunLine{}
	var sb strings.Builder
	for i, l := range b.lines {
		n := b.line + i
		skipped := false
		for _, nr := range readmeNotRun {
			if strings.Contains(l, nr.match) {
				notRun[n] = nr
				skipped = true
			}
		}
		if skipped {
			fmt.Fprintf(&sb, "# README line %d not run here (see readmeNotRun)\n", n)
			continue
		}
		continued := strings.HasSuffix(strings.TrimSpace(l), "\\") ||
			(i > 0 && strings.HasSuffix(strings.TrimSpace(b.lines[i-1]), "\\"))
		cmd, comment, ok := readmeSplitComment(l)
		cmdTrim := strings.TrimSpace(cmd)
		if !ok || continued || cmdTrim == "" || strings.HasSuffix(cmdTrim, "&") || !readmeExpectWord.MatchString(comment) {
			sb.WriteString(l + "\n")
			continue
		}
		want := comment
		if want == "nothing" {
			want = ""
		}
		expects = append(expects, readmeExpectation{readmeLine: n, cmd: cmdTrim, want: want})
		// want matches readmeExpectWord, so it is safe inside single quotes.
		fmt.Fprintf(&sb, "readme_out=$(%s)\n", cmdTrim)
		sb.WriteString(`printf '%s\n' "$readme_out"` + "\n")
		fmt.Fprintf(&sb, `[ "$readme_out" = '%s' ] || { printf 'README line %d: got "%%s", want "%%s"\n' "$readme_out" '%s' >&2; exit 1; }`+"\n", want, n, want)
	}
	return sb.String(), expects, notRun
}

// readmeUncovered says why a block cannot be run by the test, or "".
func readmeUncovered(b readmeShBlock, notRun map[int]readmeNotRunLine) string {
	for i, l := range b.lines {
		n := b.line + i
		if _, ok := notRun[n]; ok {
			continue
		}
		cmd, _, _ := readmeSplitComment(l)
		for _, m := range readmeAbsPath.FindAllStringSubmatch(cmd, -1) {
			p := m[1]
			allowed := false
			for _, a := range readmeAllowedPaths {
				if p == a || strings.HasPrefix(p, a+"/") {
					allowed = true
				}
			}
			if !allowed {
				return fmt.Sprintf("line %d names %s, outside what the test may touch (%s); add an equivalent check to readmeNotRun or allow the path",
					n, p, strings.Join(readmeAllowedPaths, ", "))
			}
		}
	}
	return ""
}

func readmeRunBlock(t *testing.T, repo string, b readmeShBlock) {
	script, expects, notRun := readmeScript(b)
	if why := readmeUncovered(b, notRun); why != "" {
		t.Fatalf("README block %d (line %d) not covered: %s\n%s", b.index, b.line, why, strings.Join(b.lines, "\n"))
	}
	runnable := false
	for _, l := range strings.Split(script, "\n") {
		if c, _, _ := readmeSplitComment(l); strings.TrimSpace(c) != "" {
			runnable = true
		}
	}
	if !runnable && len(notRun) == 0 {
		t.Fatalf("README block %d (line %d) not covered: nothing in it runs and readmeNotRun has none of its lines", b.index, b.line)
	}

	text := strings.Join(b.lines, "\n")
	usesUsrLocal := strings.Contains(text, "/usr/local/") || strings.Contains(text, "fuse.tmpmount")
	env := readmeSetup(t, repo)

	var notRunLines []int
	for n := range notRun {
		notRunLines = append(notRunLines, n)
	}
	sort.Ints(notRunLines)
	for _, n := range notRunLines {
		nr, line := notRun[n], b.lines[n-b.line]
		t.Logf("README line %d not run (%s): %s", n, nr.reason, strings.TrimSpace(line))
		nr.check(t, env, line)
	}
	for _, e := range expects {
		t.Logf("README line %d checked: output of %q must be %q", e.readmeLine, e.cmd, e.want)
	}
	if !runnable {
		return
	}

	ctx, cancel := context.WithTimeout(context.Background(), readmeBlockTimeout)
	defer cancel()
	cmd := exec.CommandContext(ctx, "sh", "-eu", "-c", script)
	var binDir, manDir string
	if usesUsrLocal {
		// /usr/local/bin holds the binary under test, for mount.fuse,
		// unless the block installs one there itself.
		binDir, manDir = t.TempDir(), t.TempDir()
		for _, d := range []string{binDir, manDir} {
			if err := os.Chmod(d, 0o755); err != nil {
				t.Fatal(err)
			}
		}
		if !strings.Contains(text, "install -m 0755 tmpmount "+readmeBinDir) {
			if err := os.Symlink(tmpmountBin, filepath.Join(binDir, "tmpmount")); err != nil {
				t.Fatal(err)
			}
		}
		cmd = exec.CommandContext(ctx, "unshare", "--mount", "--propagation", "private", "--",
			"sh", "-c", `mount --bind "$0" "$1" && mount --bind "$2" "$3" && exec sh -eu -c "$4"`,
			binDir, readmeBinDir, manDir, readmeManDir, script)
	}
	cmd.Dir = env.repo
	cmd.Env = env.environ
	var out bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &out
	// Its own process group, so that a timeout also ends the tmpmount
	// daemons the block started in the background.
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	cmd.Cancel = func() error { return syscall.Kill(-cmd.Process.Pid, syscall.SIGKILL) }
	cmd.WaitDelay = 5 * time.Second
	start := time.Now()
	err := cmd.Run()
	t.Logf("README block %d ran in %v; output:\n%s", b.index, time.Since(start).Round(time.Millisecond), out.String())
	if err != nil {
		if ctx.Err() != nil {
			err = fmt.Errorf("%w (timed out after %v)", err, readmeBlockTimeout)
		}
		// Unmount what it left, so its daemons exit, then end any still there.
		readmeUnmountAll(t, readmeRoot)
		syscall.Kill(-cmd.Process.Pid, syscall.SIGKILL)
		t.Fatalf("README block %d (line %d) failed: %v\nscript (README lines %d-%d):\n%s\noutput:\n%s",
			b.index, b.line, err, b.line, b.line+len(b.lines)-1, script, out.String())
	}
	readmeCheckNothingLeft(t, env)
	if usesUsrLocal {
		readmeCheckInstalled(t, text, binDir, manDir)
	}
}

// readmeCheckInstalled checks what a block that installs tmpmount put in
// place of /usr/local/bin and /usr/local/share/man: a binary that runs,
// and the man page that man -l renders.
func readmeCheckInstalled(t *testing.T, text, binDir, manDir string) {
	t.Helper()
	if strings.Contains(text, "install -m 0755 tmpmount "+readmeBinDir) {
		out, err := exec.Command(filepath.Join(binDir, "tmpmount"), "--version").Output()
		if err != nil || !strings.HasPrefix(string(out), "tmpmount ") {
			t.Errorf("the installed %s/tmpmount --version: %q, %v", readmeBinDir, out, err)
		}
	}
	if strings.Contains(text, "tmpmount.1") {
		got, err := os.ReadFile(filepath.Join(manDir, "man1", "tmpmount.1"))
		want, _ := os.ReadFile(filepath.Join("..", "cmd", "tmpmount", "tmpmount.1"))
		if err != nil || len(want) == 0 || !bytes.Equal(got, want) {
			t.Errorf("%s/man1/tmpmount.1 after the block: %d bytes, %v; want cmd/tmpmount/tmpmount.1 (%d bytes)", readmeManDir, len(got), err, len(want))
		}
	}
}

// readmeSetup makes a clean readmeRoot and the block's environment, and
// registers the cleanup that leaves no mount and no file behind.
func readmeSetup(t *testing.T, repo string) *readmeEnv {
	t.Helper()
	readmeUnmountAll(t, readmeRoot)
	if err := os.RemoveAll(readmeRoot); err != nil {
		t.Fatalf("remove %s: %v", readmeRoot, err)
	}
	t.Cleanup(func() {
		if mps := readmeUnmountAll(t, readmeRoot); len(mps) > 0 {
			t.Errorf("mounts left under %s after the block: %s", readmeRoot, strings.Join(mps, ", "))
		}
		if err := os.RemoveAll(readmeRoot); err != nil {
			t.Errorf("remove %s: %v", readmeRoot, err)
		}
	})

	env := &readmeEnv{
		repo:    repo,
		binDir:  t.TempDir(),
		home:    t.TempDir(),
		tmpdir:  t.TempDir(),
		runtime: t.TempDir(),
	}
	if err := os.Symlink(tmpmountBin, filepath.Join(env.binDir, "tmpmount")); err != nil {
		t.Fatal(err)
	}
	// The test runs as root, where sudo would only reset $PATH (to its
	// secure_path, losing the tmpmount under test that mount.fuse must find)
	// and may not be installed at all: a sudo that just runs its command.
	sudo := "#!/bin/sh\nexec \"$@\"\n"
	if err := os.WriteFile(filepath.Join(env.binDir, "sudo"), []byte(sudo), 0o755); err != nil {
		t.Fatal(err)
	}
	// go build into $HOME (the Install block) uses the test's build and
	// module caches, not ones under the temporary $HOME.
	override := map[string]string{
		"PATH":            env.binDir + string(os.PathListSeparator) + os.Getenv("PATH"),
		"HOME":            env.home,
		"TMPDIR":          env.tmpdir,
		"XDG_RUNTIME_DIR": env.runtime,
	}
	for _, v := range []string{"GOCACHE", "GOMODCACHE", "GOPATH"} {
		out, err := exec.Command("go", "env", v).Output()
		if err != nil {
			t.Fatalf("go env %s: %v", v, err)
		}
		override[v] = strings.TrimSpace(string(out))
	}
	for _, kv := range os.Environ() {
		k, _, _ := strings.Cut(kv, "=")
		if _, ok := override[k]; !ok {
			env.environ = append(env.environ, kv)
		}
	}
	for k, v := range override {
		env.environ = append(env.environ, k+"="+v)
	}
	// Registered after the TempDirs, so it runs before they are removed.
	t.Cleanup(func() {
		if mps := readmeUnmountAll(t, env.home); len(mps) > 0 {
			t.Errorf("mounts left under $HOME after the block: %s", strings.Join(mps, ", "))
		}
	})
	return env
}

// readmeCheckNothingLeft checks what the README promises of every block:
// nothing left behind once its mounts are gone: no spill directory (in
// readmeRoot, given as --spill-dir, or in $TMPDIR, the default), no
// `tmpmount run` mount point, no mount.
func readmeCheckNothingLeft(t *testing.T, env *readmeEnv) {
	t.Helper()
	leftovers := func() []string {
		var left []string
		if entries, err := os.ReadDir(readmeRoot); err == nil {
			for _, e := range entries {
				if strings.HasPrefix(e.Name(), "tmpmount-") {
					left = append(left, "spill directory "+filepath.Join(readmeRoot, e.Name()))
				}
			}
		}
		for _, dir := range []string{env.tmpdir, env.runtime} {
			entries, err := os.ReadDir(dir)
			if err != nil {
				left = append(left, fmt.Sprintf("unreadable %s: %v", dir, err))
			}
			for _, e := range entries {
				left = append(left, filepath.Join(dir, e.Name()))
			}
		}
		for _, root := range []string{readmeRoot, env.home, env.tmpdir} {
			for _, mp := range readmeMountsUnder(root) {
				left = append(left, "mount at "+mp)
			}
		}
		return left
	}
	// A daemon started by mount(8) is not the block's child, and `umount`
	// returns before it has removed its spill directory and exited: poll.
	deadline := time.Now().Add(10 * time.Second)
	for {
		left := leftovers()
		if len(left) == 0 {
			return
		}
		if time.Now().After(deadline) {
			t.Errorf("left behind after the block (10s after it ended):\n%s", strings.Join(left, "\n"))
			return
		}
		time.Sleep(5 * time.Millisecond)
	}
}

// readmeMountsUnder lists the mount points at or below root, deepest first.
func readmeMountsUnder(root string) []string {
	mounts, _ := readMountinfo("/proc/self/mountinfo")
	var mps []string
	for _, m := range mounts {
		if m.point == root || strings.HasPrefix(m.point, root+"/") {
			mps = append(mps, m.point)
		}
	}
	sort.Slice(mps, func(i, j int) bool { return len(mps[i]) > len(mps[j]) })
	return mps
}

// readmeUnmountAll lazily unmounts everything at or below root and returns
// what was mounted.
func readmeUnmountAll(t *testing.T, root string) []string {
	t.Helper()
	mps := readmeMountsUnder(root)
	for _, mp := range mps {
		if err := unix.Unmount(mp, unix.MNT_DETACH); err != nil && !errors.Is(err, unix.EINVAL) {
			t.Errorf("unmount %s: %v", mp, err)
		}
	}
	return mps
}

// readmeCheckServeForever runs the README's `go run ./cmd/tmpmount ~/t`
// line with the binary under test (built from the same ./cmd/tmpmount) in
// its place: it must mount a fuse.tmpmount at ~/t, say so, and end with
// status 0, saying so, at umount.
func readmeCheckServeForever(t *testing.T, env *readmeEnv, line string) {
	t.Helper()
	cmdLine, _, _ := readmeSplitComment(line)
	cmdLine = strings.Replace(cmdLine, "go run ./cmd/tmpmount", "exec tmpmount", 1)
	mnt := filepath.Join(env.home, "t")
	stderr := &syncBuffer{}
	cmd := exec.Command("sh", "-eu", "-c", cmdLine)
	cmd.Dir, cmd.Env = env.repo, env.environ
	cmd.Stdout, cmd.Stderr = stderr, stderr
	if err := cmd.Start(); err != nil {
		t.Fatalf("start %q: %v", cmdLine, err)
	}
	done := make(chan struct{})
	var waitErr error
	go func() { waitErr = cmd.Wait(); close(done) }()
	t.Cleanup(func() {
		select {
		case <-done:
		default:
			if isMountPoint(mnt) {
				unix.Unmount(mnt, unix.MNT_DETACH)
			}
			cmd.Process.Kill()
			<-done
		}
	})
	waitFor(t, 10*time.Second, "a fuse.tmpmount mount at "+mnt+" from "+cmdLine, func() bool {
		select {
		case <-done:
			t.Fatalf("%q exited before mounting: %v\n%s", cmdLine, waitErr, stderr)
		default:
		}
		return isMountPoint(mnt) && strings.Contains(stderr.String(), "tmpmount: serving "+mnt)
	})
	// It serves: a file written through it reads back.
	if err := os.WriteFile(filepath.Join(mnt, "f"), []byte("hello\n"), 0o644); err != nil {
		t.Errorf("write through the mount: %v", err)
	} else if got, err := os.ReadFile(filepath.Join(mnt, "f")); err != nil || string(got) != "hello\n" {
		t.Errorf("read back through the mount: got %q, %v; want %q", got, err, "hello\n")
	}
	if err := unix.Unmount(mnt, 0); err != nil {
		t.Fatalf("umount %s: %v", mnt, err)
	}
	select {
	case <-done:
	case <-time.After(20 * time.Second):
		t.Fatalf("%q still running 20s after umount\n%s", cmdLine, stderr)
	}
	if waitErr != nil {
		t.Errorf("%q after umount: %v, want exit status 0\n%s", cmdLine, waitErr, stderr)
	}
	if want := "tmpmount: unmounted " + mnt; !strings.Contains(stderr.String(), want) {
		t.Errorf("log of %q lacks %q:\n%s", cmdLine, want, stderr)
	}
	// Nothing left in the default spill parent ($TMPDIR).
	readmeCheckNothingLeft(t, env)
}

// readmeCheckCIRun checks what `sudo .ci/run` would run, without running it.
func readmeCheckCIRun(t *testing.T, env *readmeEnv, line string) {
	t.Helper()
	path := filepath.Join(env.repo, ".ci", "run")
	fi, err := os.Stat(path)
	if err != nil {
		t.Fatalf(".ci/run: %v", err)
	}
	if fi.Mode()&0o111 == 0 {
		t.Errorf(".ci/run mode %v, want executable (the README runs it directly)", fi.Mode())
	}
	if out, err := exec.Command("sh", "-n", path).CombinedOutput(); err != nil {
		t.Errorf("sh -n .ci/run: %v\n%s", err, out)
	}
	data, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	last := ""
	for _, l := range strings.Split(string(data), "\n") {
		if c, _, _ := readmeSplitComment(l); strings.TrimSpace(c) != "" {
			last = strings.TrimSpace(c)
		}
	}
	if !strings.Contains(last, "scripts/test.sh") {
		t.Errorf(".ci/run's last command is %q, want one running scripts/test.sh", last)
	}
	test := filepath.Join(env.repo, "scripts", "test.sh")
	if fi, err := os.Stat(test); err != nil {
		t.Errorf("scripts/test.sh: %v", err)
	} else if fi.Mode()&0o111 == 0 {
		t.Errorf("scripts/test.sh mode %v, want executable", fi.Mode())
	}
	if data, err := os.ReadFile(test); err == nil && !strings.Contains(string(data), "./e2e/") {
		t.Errorf("scripts/test.sh does not run the e2e tests (./e2e/...), this one among them")
	}
}

// readmeCheckAptInstall checks that what the apt-get line installs is
// installed, and that the programs its comment names are on $PATH.
func readmeCheckAptInstall(t *testing.T, env *readmeEnv, line string) {
	t.Helper()
	cmdLine, comment, _ := readmeSplitComment(line)
	_, args, ok := strings.Cut(cmdLine, "apt-get install")
	if !ok {
		t.Fatalf("no apt-get install in %q", line)
	}
	var pkgs []string
	for _, a := range strings.Fields(args) {
		if !strings.HasPrefix(a, "-") {
			pkgs = append(pkgs, a)
		}
	}
	if len(pkgs) == 0 {
		t.Fatalf("no package names in %q", line)
	}
	for _, p := range pkgs {
		out, err := exec.Command("dpkg-query", "-W", "-f", "${Status}", p).CombinedOutput()
		if got := strings.TrimSpace(string(out)); err != nil || got != "install ok installed" {
			t.Errorf("package %s: dpkg-query says %q (%v), want %q", p, got, err, "install ok installed")
		}
	}
	for _, prog := range []string{"fusermount3", "getfattr", "setfattr"} {
		if !strings.Contains(comment, prog) {
			t.Errorf("the apt-get line's comment no longer names %s: update this check", prog)
		}
		if _, err := exec.LookPath(prog); err != nil {
			t.Errorf("%s, which the apt-get line's packages provide: %v", prog, err)
		}
	}
}

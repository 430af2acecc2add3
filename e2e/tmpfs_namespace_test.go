package e2e

// Differential namespace tests: every scenario below runs the same system
// calls in a fresh directory of a real tmpfs and of a tmpmount mount, and
// the two logs of "step: result" lines must be equal. A log line holds the
// errno of the call and what is meaningful to compare afterwards: file
// type, permission bits, link count, owner, size, which of atime, mtime
// and ctime changed (never absolute times, except values set explicitly),
// and inode identity (inode numbers are rewritten to the order in which
// they first appear, so equal labels mean the same inode and a new label a
// new one).
//
// Scenarios that matter for permissions run again as user nobody: the test
// re-executes its own binary under setpriv, and init below runs the
// requested phase and prints its log instead of running tests.
//
// TMPMOUNT_NS_LOG=1 (with -v) shows the tmpfs log of every case.

import (
	"bytes"
	"encoding/binary"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"runtime"
	"sort"
	"strconv"
	"strings"
	"syscall"
	"testing"

	"golang.org/x/sys/unix"
)

// nsNobody is the unprivileged user (and group) of the "nobody" runs.
const nsNobody = 65534

// Environment of a child process running one phase of a case as nobody.
const (
	nsCaseEnv  = "TMPMOUNT_NS_CASE"
	nsPhaseEnv = "TMPMOUNT_NS_PHASE"
	nsDirEnv   = "TMPMOUNT_NS_DIR"
)

func init() {
	name := os.Getenv(nsCaseEnv)
	if name == "" {
		return
	}
	os.Exit(nsChildMain(nsPhaseOf, name, os.Getenv(nsPhaseEnv), os.Getenv(nsDirEnv)))
}

// nsPhaseOf finds phase i of the namespace case name.
func nsPhaseOf(name string, i int) (func(e *nsEnv), int) {
	for _, c := range nsCases() {
		if c.name == name {
			if i < 0 || i >= len(c.phases) {
				return nil, len(c.phases)
			}
			return c.phases[i].run, len(c.phases)
		}
	}
	return nil, -1
}

// nsChildMain runs phase (a number) of case name, found by lookup, in this
// (child) process and prints its log as JSON on stdout.
func nsChildMain(lookup func(name string, i int) (func(e *nsEnv), int), name, phase, dir string) int {
	i, err := strconv.Atoi(phase)
	if err != nil {
		fmt.Fprintf(os.Stderr, "bad phase number %q\n", phase)
		return 2
	}
	run, phases := lookup(name, i)
	switch {
	case phases < 0:
		fmt.Fprintf(os.Stderr, "no case %q\n", name)
		return 2
	case run == nil:
		fmt.Fprintf(os.Stderr, "case %s has no phase %d\n", name, i)
		return 2
	}
	e := newNSEnv(dir)
	run(e)
	e.finish()
	if err := json.NewEncoder(os.Stdout).Encode(nsPhaseLog{Lines: e.lines, Problems: e.problems}); err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	return 0
}

// TestNamespaceAgainstTmpfs runs every case on a real tmpfs and on
// tmpmount and compares the logs step by step.
func TestNamespaceAgainstTmpfs(t *testing.T) {
	h := newNSHarness(t)
	groups := map[string][]nsCase{}
	var order []string
	for _, c := range nsCases() {
		group, _, _ := strings.Cut(c.name, "/")
		if _, ok := groups[group]; !ok {
			order = append(order, group)
		}
		groups[group] = append(groups[group], c)
	}
	for _, group := range order {
		t.Run(group, func(t *testing.T) {
			for _, c := range groups[group] {
				_, short, _ := strings.Cut(c.name, "/")
				t.Run(short, func(t *testing.T) {
					want := h.runCase(t, h.tmpfsRoot, c)
					got := h.runCase(t, h.tmpmountRoot, c)
					if os.Getenv("TMPMOUNT_NS_LOG") != "" {
						t.Logf("tmpfs log:\n%s", strings.Join(nsNormalize(want.Lines), "\n"))
					}
					nsCompare(t, want, got, c.known)
				})
			}
		})
	}
}

// ---------------------------------------------------------------------
// Scenarios

// nsScenario is a named sequence of steps. A simple scenario has run: it
// runs as root, and with nobodyToo again as nobody in a directory nobody
// owns. A mixed scenario has phases instead, each run as its user in
// order on the same directory (owned by root, mode 0755).
//
// known, if set, says why tmpmount cannot behave as tmpfs in this
// scenario (a limit of FUSE, not of the daemon): the difference then skips
// the case, showing it, and the absence of a difference fails it, so that
// the note goes once the limit does.
type nsScenario struct {
	name      string
	run       func(e *nsEnv)
	nobodyToo bool
	phases    []nsPhase
	known     string
}

// nsKnownCachedReadAtime explains nsAtimeOfCachedRead.
const nsKnownCachedReadAtime = "FUSE marks its inodes S_NOATIME and serves reads of cached pages " +
	"without asking the daemon (tmpmount keeps pages cached across opens and writes): the daemon " +
	"never sees the read, and atime keeps its old value"

type nsPhase struct {
	nobody bool
	run    func(e *nsEnv)
}

// nsCase is one run of a scenario: "root/NAME", "nobody/NAME" or
// "mixed/NAME".
type nsCase struct {
	name       string
	nobodyBase bool // the case directory belongs to nobody
	phases     []nsPhase
	known      string // see nsScenario.known
}

func nsScenarios() []nsScenario {
	return []nsScenario{
		{name: "create-excl", run: nsCreateExcl, nobodyToo: true},
		{name: "create-modes", run: nsCreateModes, nobodyToo: true},
		{name: "unlink-rmdir-mkdir-errors", run: nsUnlinkRmdirErrors, nobodyToo: true},
		{name: "name-max", run: nsNameMax, nobodyToo: true},
		{name: "path-max", run: nsPathMax, nobodyToo: true},
		{name: "symlink", run: nsSymlink, nobodyToo: true},
		{name: "hard-links", run: nsHardLinks, nobodyToo: true},
		{name: "rename-replace", run: nsRenameReplace, nobodyToo: true},
		{name: "rename-across-dirs", run: nsRenameAcrossDirs, nobodyToo: true},
		{name: "rename-noreplace", run: nsRenameNoreplace, nobodyToo: true},
		{name: "rename-exchange", run: nsRenameExchange, nobodyToo: true},
		{name: "open-file-renamed", run: nsOpenFileRenamed, nobodyToo: true},
		{name: "unlink-while-open", run: nsUnlinkWhileOpen, nobodyToo: true},
		{name: "dir-nlink", run: nsDirNlink, nobodyToo: true},
		{name: "chmod-chown", run: nsChmodChown, nobodyToo: true},
		{name: "utimensat", run: nsUtimensat, nobodyToo: true},
		{name: "times-of-ops", run: nsTimesOfOps, nobodyToo: true},
		{name: "atime-of-cached-read", run: nsAtimeOfCachedRead, nobodyToo: true, known: nsKnownCachedReadAtime},
		{name: "mknod", run: nsMknod, nobodyToo: true},
		{name: "readdir-dots", run: nsReaddirDots, nobodyToo: true},
		{name: "readdir-while-changing", run: nsReaddirWhileChanging, nobodyToo: true},
		{name: "seekdir-telldir", run: nsSeekdir, nobodyToo: true},
		{name: "inode-numbers", run: nsInodeNumbers, nobodyToo: true},
		{name: "setgid-dir", phases: []nsPhase{{run: nsSetgidRoot}, {nobody: true, run: nsSetgidNobody}}},
		{name: "sticky-dir", phases: []nsPhase{{run: nsStickyRoot}, {nobody: true, run: nsStickyNobody}, {run: nsStickyRootAfter}}},
		{name: "permissions", phases: []nsPhase{{run: nsPermsRoot}, {nobody: true, run: nsPermsNobody}}},
		{name: "kill-suid-on-write", phases: []nsPhase{{run: nsKillSuidRoot}, {nobody: true, run: nsKillSuidNobody}, {run: nsKillSuidRootAfter}}},
	}
}

func nsCases() []nsCase {
	var cases []nsCase
	for _, s := range nsScenarios() {
		if s.run == nil {
			cases = append(cases, nsCase{name: "mixed/" + s.name, phases: s.phases, known: s.known})
			continue
		}
		cases = append(cases, nsCase{name: "root/" + s.name, phases: []nsPhase{{run: s.run}}, known: s.known})
		if s.nobodyToo {
			cases = append(cases, nsCase{name: "nobody/" + s.name, nobodyBase: true, phases: []nsPhase{{nobody: true, run: s.run}}, known: s.known})
		}
	}
	return cases
}

const (
	oCreate = unix.O_CREAT | unix.O_EXCL | unix.O_WRONLY
	oDir    = unix.O_RDONLY | unix.O_DIRECTORY
)

func nsCreateExcl(e *nsEnv) {
	e.mark(".")
	f := e.open("a", oCreate, 0o640).ok().file
	e.changed(".")
	e.stat("a")
	e.stat(".")
	e.write(f, "first").ok()
	e.close(f)
	e.open("a", oCreate, 0o600).want(unix.EEXIST)
	e.open("a", unix.O_CREAT|unix.O_EXCL|unix.O_RDONLY, 0o600).want(unix.EEXIST)
	e.mark("a")
	g := e.open("a", unix.O_CREAT|unix.O_WRONLY, 0o600).ok().file
	e.changed("a")
	e.close(g)
	e.stat("a")
	e.readFile("a")
	e.mkdir("d", 0o755).ok()
	e.open("d", oCreate, 0o644).want(unix.EEXIST)
	e.open("d", unix.O_CREAT|unix.O_WRONLY, 0o644).want(unix.EISDIR)
	e.open("d", unix.O_RDWR, 0).want(unix.EISDIR)
	e.open("a", oDir, 0).want(unix.ENOTDIR)
	e.symlink("target", "dangling").ok()
	e.open("dangling", oCreate, 0o644).want(unix.EEXIST)
	e.stat("target").want(unix.ENOENT)
	h := e.open("dangling", unix.O_CREAT|unix.O_WRONLY, 0o644).ok().file
	e.close(h)
	e.stat("target").ok()
	e.open("missing/x", unix.O_CREAT|unix.O_WRONLY, 0o644).want(unix.ENOENT)
	e.open("a/x", unix.O_CREAT|unix.O_WRONLY, 0o644).want(unix.ENOTDIR)
	e.open("nothing", unix.O_RDONLY, 0).want(unix.ENOENT)
	e.mknod("a", unix.S_IFIFO|0o644, 0).want(unix.EEXIST)
	e.symlink("x", "a").want(unix.EEXIST)
	e.mkdir("a", 0o755).want(unix.EEXIST)
	e.stat(".")
	e.list(".")
}

// nsCreateModes creates nodes with special permission bits in the mode
// given (the umask applies: it is the same on both runs).
func nsCreateModes(e *nsEnv) {
	for _, mode := range []uint32{0, 0o777, 0o1777, 0o2777, 0o4777, 0o7777} {
		dir := fmt.Sprintf("d%04o", mode)
		e.mkdir(dir, mode).ok()
		e.stat(dir)
		file := fmt.Sprintf("f%04o", mode)
		f := e.open(file, oCreate, mode).ok().file
		e.close(f)
		e.stat(file)
		fifo := fmt.Sprintf("p%04o", mode)
		e.mknod(fifo, unix.S_IFIFO|mode, 0).ok()
		e.stat(fifo)
	}
}

func nsUnlinkRmdirErrors(e *nsEnv) {
	e.mkdir("d", 0o755).ok()
	e.mkfile("d/f", "x").ok()
	e.mkfile("f", "data").ok()
	e.unlink("d").want(unix.EISDIR)
	e.unlink("d/").want(unix.EISDIR)
	e.unlink("f/").want(unix.ENOTDIR)
	e.rmdir("f").want(unix.ENOTDIR)
	e.rmdir("d").want(unix.ENOTEMPTY)
	e.rmdir(".").want(unix.EINVAL)
	e.rmdir("d/.").want(unix.EINVAL)
	e.rmdir("d/..").want(unix.ENOTEMPTY)
	e.rmdir("missing").want(unix.ENOENT)
	e.unlink("missing").want(unix.ENOENT)
	e.rmdir("f/x").want(unix.ENOTDIR)
	e.rmdir("missing/x").want(unix.ENOENT)
	e.mkdir("d", 0o755).want(unix.EEXIST)
	e.mkdir("f", 0o755).want(unix.EEXIST)
	e.mkdir("d/f", 0o755).want(unix.EEXIST)
	e.mkdir("missing/x", 0o755).want(unix.ENOENT)
	e.mkdir("f/x", 0o755).want(unix.ENOTDIR)
	e.mkdir("new/", 0o700).ok()
	e.stat("new")
	e.stat("d")
	e.stat(".")
	keep := e.open("d/f", unix.O_RDONLY, 0).ok().file
	e.mark("d")
	e.markFile(keep)
	e.unlink("d/f").ok()
	e.changed("d")
	e.changedFile(keep)
	e.fstat(keep)
	e.close(keep)
	e.stat("d")
	e.mark(".")
	e.rmdir("d").ok()
	e.changed(".")
	e.stat(".")
	e.stat("d").want(unix.ENOENT)
	e.rmdir("d").want(unix.ENOENT)
	e.rmdir("new/").ok()
	e.list(".")
}

// nsName is a name of n bytes made of c.
func nsName(c byte, n int) string { return strings.Repeat(string(c), n) }

func nsNameMax(e *nsEnv) {
	f255, f256 := nsName('f', 255), nsName('f', 256)
	e.mkfile(f255, "x").ok()
	e.stat(f255).ok()
	e.open(f256, oCreate, 0o644).want(unix.ENAMETOOLONG)
	e.open(f256, unix.O_RDONLY, 0).want(unix.ENAMETOOLONG)
	e.stat(f256).want(unix.ENAMETOOLONG)
	e.stat(f256 + "/x").want(unix.ENAMETOOLONG)
	d255 := nsName('d', 255)
	e.mkdir(d255, 0o755).ok()
	e.mkdir(nsName('d', 256), 0o755).want(unix.ENAMETOOLONG)
	e.mkfile(d255+"/"+nsName('g', 255), "deep").ok()
	e.readFile(d255 + "/" + nsName('g', 255))
	e.symlink("target", nsName('s', 255)).ok()
	e.symlink("target", nsName('s', 256)).want(unix.ENAMETOOLONG)
	e.readlink(nsName('s', 255))
	e.link(f255, nsName('l', 255)).ok()
	e.link(f255, nsName('l', 256)).want(unix.ENAMETOOLONG)
	e.stat(f255)
	e.rename(f255, nsName('r', 256)).want(unix.ENAMETOOLONG)
	e.rename(nsName('r', 256), "x").want(unix.ENAMETOOLONG)
	e.rename(f255, nsName('r', 255)).ok()
	e.stat(nsName('r', 255))
	e.unlink(nsName('u', 256)).want(unix.ENAMETOOLONG)
	e.rmdir(nsName('u', 256)).want(unix.ENAMETOOLONG)
	e.mknod(nsName('p', 255), unix.S_IFIFO|0o644, 0).ok()
	e.mknod(nsName('p', 256), unix.S_IFIFO|0o644, 0).want(unix.ENAMETOOLONG)
	// NAME_MAX counts bytes: 85 three-byte characters fit, 86 do not.
	e.mkfile(strings.Repeat("\u20ac", 85), "euro").ok()
	e.open(strings.Repeat("\u20ac", 86), oCreate, 0o644).want(unix.ENAMETOOLONG)
	e.symlink(nsName('t', 4095), "longest-target").ok()
	e.stat("longest-target")
	e.readlink("longest-target")
	e.symlink(nsName('t', 4096), "too-long-target").want(unix.ENAMETOOLONG)
	e.stat(".")
	e.list(".")
}

// nsPathMax works with paths around PATH_MAX (4096 bytes with the NUL):
// a chain of 255-byte directory names, given relative to a descriptor of
// the case directory so that both filesystems see the same lengths, and
// deeper than a path can reach, through descriptors of the dirs on the way.
func nsPathMax(e *nsEnv) {
	seg := nsName('d', 255)
	chain := func(depth int) string { return strings.TrimSuffix(strings.Repeat(seg+"/", depth), "/") }
	base := e.open(".", oDir, 0).ok().file
	at := func(step, rel string, err error) nsResult {
		return e.record(fmt.Sprintf("%s(base, %d-byte path)", step, len(rel)), err)
	}
	// 16 levels: 4095 bytes, the longest path; the 17th cannot be named.
	for depth := 1; depth <= 17; depth++ {
		rel := chain(depth)
		r := at("mkdirat", rel, unix.Mkdirat(base.fd, rel, 0o755))
		if depth <= 16 {
			r.ok()
		} else {
			r.want(unix.ENAMETOOLONG)
		}
	}
	var st unix.Stat_t
	at("fstatat", chain(16), unix.Fstatat(base.fd, chain(16), &st, unix.AT_SYMLINK_NOFOLLOW)).ok()
	at("fstatat", chain(16)+"/", unix.Fstatat(base.fd, chain(16)+"/", &st, unix.AT_SYMLINK_NOFOLLOW)).want(unix.ENAMETOOLONG)
	// A file whose path is 4095 bytes, and one byte more.
	file := chain(15) + "/" + nsName('f', 4095-len(chain(15))-1)
	fd, err := unix.Openat(base.fd, file, oCreate|unix.O_CLOEXEC, 0o644)
	at("openat(O_CREAT)", file, err).ok()
	if err == nil {
		unix.Write(fd, []byte("deep"))
		unix.Close(fd)
	}
	at("openat(O_CREAT)", file+"g", func() error {
		fd, err := unix.Openat(base.fd, file+"g", oCreate|unix.O_CLOEXEC, 0o644)
		if err == nil {
			unix.Close(fd)
		}
		return err
	}()).want(unix.ENAMETOOLONG)
	// Below the reach of a path: through a descriptor of level 16.
	d16 := e.openAt(base, chain(16), oDir, 0)
	d := d16.file
	for depth := 17; depth <= 20 && d != nil; depth++ {
		e.record(fmt.Sprintf("mkdirat(level %d, 255-byte name)", depth-1), unix.Mkdirat(d.fd, seg, 0o755)).ok()
		fd, err := unix.Openat(d.fd, seg, oDir|unix.O_CLOEXEC, 0)
		e.record(fmt.Sprintf("openat(level %d, 255-byte name, O_DIRECTORY)", depth-1), err).ok()
		if err != nil {
			break
		}
		d = e.addFile(fmt.Sprintf("level%d", depth), fd)
	}
	if d != nil {
		fd, err := unix.Openat(d.fd, "leaf", oCreate|unix.O_CLOEXEC, 0o600)
		e.record("openat(level 20, leaf, O_CREAT)", err).ok()
		if err == nil {
			unix.Write(fd, []byte("below PATH_MAX"))
			unix.Close(fd)
		}
		e.record("fstatat(level 20, leaf)", unix.Fstatat(d.fd, "leaf", &st, 0)).ok()
		e.log("leaf: %s", nsStatLine(&st))
		e.record("renameat(level 20, leaf, level 20, leaf2)", unix.Renameat(d.fd, "leaf", d.fd, "leaf2")).ok()
		e.record("unlinkat(level 20, leaf2)", unix.Unlinkat(d.fd, "leaf2", 0)).ok()
	}
	// Rename the top of the chain: every path below changes at once.
	at("renameat", seg, unix.Renameat(base.fd, seg, base.fd, "top")).ok()
	at("fstatat", "top/"+chain(15), unix.Fstatat(base.fd, "top/"+chain(15), &st, 0)).ok()
	e.list(".")
}

func nsSymlink(e *nsEnv) {
	e.mark(".")
	e.symlink("file", "l").ok()
	e.changed(".")
	e.stat("l")
	e.readlink("l")
	e.statFollow("l").want(unix.ENOENT)
	e.open("l", unix.O_RDONLY, 0).want(unix.ENOENT)
	e.mkfile("file", "hello").ok()
	e.statFollow("l").ok()
	e.readFile("l")
	e.open("l", unix.O_RDONLY|unix.O_NOFOLLOW, 0).want(unix.ELOOP)
	e.mkdir("d", 0o755).ok()
	e.symlink("../file", "d/up").ok()
	e.readFile("d/up")
	e.symlink("d", "ld").ok()
	e.statFollow("ld/up").ok()
	e.stat("ld/").ok()
	e.stat("ld")
	e.readlink("file").want(unix.EINVAL)
	e.readlink("d").want(unix.EINVAL)
	e.readlinkN("l", 2)
	e.symlink("", "empty").want(unix.ENOENT)
	e.symlink("loop2", "loop1").ok()
	e.symlink("loop1", "loop2").ok()
	e.statFollow("loop1").want(unix.ELOOP)
	e.mark("l", "file")
	e.readlink("l")
	e.changed("l", "file")
	e.unlink("l").ok()
	e.stat("file")
	e.stat(".")
	e.list(".")
}

func nsHardLinks(e *nsEnv) {
	e.mkfile("f", "data").ok()
	e.mark(".", "f")
	e.link("f", "g").ok()
	e.changed(".", "f")
	e.stat("f")
	e.stat("g")
	e.link("f", "h").ok()
	e.stat("h")
	e.link("f", "g").want(unix.EEXIST)
	e.link("missing", "x").want(unix.ENOENT)
	e.link("f", "missing/x").want(unix.ENOENT)
	e.mkdir("d", 0o755).ok()
	e.link("d", "dl").want(unix.EPERM)
	e.link("f", "d/f2").ok()
	e.stat("d/f2")
	e.stat("d")
	e.symlink("f", "sl").ok()
	e.link("sl", "sl2").ok()
	e.stat("sl2")
	e.mark("g")
	e.unlink("f").ok()
	e.changed("g")
	e.stat("g")
	e.readFile("g")
	e.unlink("g").ok()
	e.unlink("h").ok()
	e.stat("d/f2")
	e.readFile("d/f2")
	e.stat(".")
	e.list(".")
}

func nsRenameReplace(e *nsEnv) {
	e.mkfile("a", "AAA").ok()
	e.mkfile("b", "BB").ok()
	old := e.open("b", unix.O_RDONLY, 0).ok().file
	e.mark(".", "a")
	e.markFile(old)
	e.rename("a", "b").ok()
	e.changed(".")
	e.changedAs("a", "b")
	e.changedFile(old)
	e.stat("a").want(unix.ENOENT)
	e.stat("b")
	e.readFile("b")
	e.fstat(old)
	e.pread(old, 16, 0)
	e.close(old)
	e.mkdir("d", 0o755).ok()
	e.mkdir("e", 0o755).ok()
	e.mkdir("full", 0o755).ok()
	e.mkfile("full/x", "").ok()
	e.rename("b", "d").want(unix.EISDIR)
	e.rename("d", "b").want(unix.ENOTDIR)
	e.stat(".")
	e.mark(".", "d")
	e.rename("d", "e").ok()
	e.changed(".")
	e.changedAs("d", "e")
	e.stat("d").want(unix.ENOENT)
	e.stat("e")
	e.stat(".")
	e.rename("e", "full").want(unix.ENOTEMPTY)
	e.mkdir("e/sub", 0o755).ok()
	e.rename("e", "e/sub/x").want(unix.EINVAL)
	e.rename("e", "e/sub").want(unix.EINVAL)
	e.rename("e/sub", "e").want(unix.ENOTEMPTY)
	e.mark("b", "e")
	e.rename("b", "b").ok()
	e.rename("e", "e").ok()
	e.changed("b", "e")
	e.link("b", "b2").ok()
	e.rename("b", "b2").ok()
	e.stat("b")
	e.stat("b2")
	e.rename("missing", "x").want(unix.ENOENT)
	e.rename("b", "nodir/x").want(unix.ENOENT)
	e.rename("b", "b2/x").want(unix.ENOTDIR)
	e.rename("b/", "c").want(unix.ENOTDIR)
	e.rename("e/", "e2").ok()
	e.rename(".", "x").want(unix.EBUSY)
	e.stat(".")
	e.list(".")
}

func nsRenameAcrossDirs(e *nsEnv) {
	e.mkdir("a", 0o755).ok()
	e.mkdir("b", 0o755).ok()
	e.mkdir("a/sub", 0o755).ok()
	e.mkfile("a/sub/f", "x").ok()
	e.mkfile("a/file", "y").ok()
	e.stat("a")
	e.stat("b")
	e.mark("a", "b", "a/sub")
	e.rename("a/sub", "b/sub").ok()
	e.changed("a", "b")
	e.changedAs("a/sub", "b/sub")
	e.stat("a")
	e.stat("b")
	e.stat("b/sub")
	e.statFollow("b/sub/..")
	e.list("b/sub")
	e.readFile("b/sub/f")
	e.mark("a", "b", "a/file")
	e.rename("a/file", "b/file2").ok()
	e.changed("a", "b")
	e.changedAs("a/file", "b/file2")
	e.stat("a")
	e.stat("b")
	e.stat("b/file2")
	e.mkdir("a/empty", 0o755).ok()
	e.stat("a")
	e.rename("b/sub", "a/empty").ok()
	e.stat("a")
	e.stat("b")
	e.statFollow("a/empty/..")
	e.list("a/empty")
	e.rename("a/empty", "top").ok()
	e.stat(".")
	e.stat("a")
	e.statFollow("top/..")
	e.list("top")
	e.list(".")
}

func nsRenameNoreplace(e *nsEnv) {
	e.mkfile("f", "F").ok()
	e.mkfile("g", "G").ok()
	e.mkdir("d", 0o755).ok()
	e.mkdir("e", 0o755).ok()
	e.renameat2("f", "g", unix.RENAME_NOREPLACE).want(unix.EEXIST)
	e.readFile("g")
	e.mark(".", "f")
	e.renameat2("f", "h", unix.RENAME_NOREPLACE).ok()
	e.changed(".")
	e.changedAs("f", "h")
	e.stat("f").want(unix.ENOENT)
	e.readFile("h")
	e.renameat2("d", "e", unix.RENAME_NOREPLACE).want(unix.EEXIST)
	e.renameat2("d", "e/d", unix.RENAME_NOREPLACE).ok()
	e.stat(".")
	e.stat("e")
	e.renameat2("h", "h", unix.RENAME_NOREPLACE).want(unix.EEXIST)
	e.renameat2("h", "x", unix.RENAME_NOREPLACE|unix.RENAME_EXCHANGE).want(unix.EINVAL)
	e.renameat2("h", "x", 1<<5).want(unix.EINVAL)
	e.renameat2("missing", "y", unix.RENAME_NOREPLACE).want(unix.ENOENT)
	e.list(".")
}

func nsRenameExchange(e *nsEnv) {
	e.mkfile("f", "F").ok()
	e.mkfile("g", "GG").ok()
	e.stat("f")
	e.stat("g")
	e.mark(".", "f", "g")
	e.renameat2("f", "g", unix.RENAME_EXCHANGE).ok()
	e.changed(".")
	e.changedAs("f", "g")
	e.changedAs("g", "f")
	e.readFile("f")
	e.readFile("g")
	e.stat("f")
	e.stat("g")
	e.mkdir("a", 0o755).ok()
	e.mkdir("b", 0o755).ok()
	e.mkfile("a/x", "X").ok()
	e.mkdir("b/y", 0o755).ok()
	e.mkfile("b/y/in", "").ok()
	e.stat("a")
	e.stat("b")
	e.mark("a", "b", "a/x", "b/y")
	e.renameat2("a/x", "b/y", unix.RENAME_EXCHANGE).ok()
	e.changed("a", "b")
	e.changedAs("a/x", "b/y")
	e.changedAs("b/y", "a/x")
	e.stat("a")
	e.stat("b")
	e.stat("a/x")
	e.stat("b/y")
	e.statFollow("a/x/..")
	e.list("a/x")
	e.readFile("b/y")
	e.renameat2("a/x", "b/nothing", unix.RENAME_EXCHANGE).want(unix.ENOENT)
	e.renameat2("a/nothing", "b/y", unix.RENAME_EXCHANGE).want(unix.ENOENT)
	e.renameat2("a", "a/x", unix.RENAME_EXCHANGE).want(unix.EINVAL)
	e.renameat2("a/x", "a", unix.RENAME_EXCHANGE).want(unix.EINVAL)
	e.renameat2("f", "f", unix.RENAME_EXCHANGE).ok()
	e.mkdir("c", 0o755).ok()
	e.renameat2("a/x", "c", unix.RENAME_EXCHANGE).ok()
	e.stat("a")
	e.stat("c")
	e.stat("a/x")
	e.statFollow("c/..")
	e.list(".")
}

func nsOpenFileRenamed(e *nsEnv) {
	e.mkdir("d", 0o755).ok()
	f := e.open("a", unix.O_CREAT|unix.O_RDWR, 0o644).ok().file
	e.write(f, "hello").ok()
	e.rename("a", "d/b").ok()
	e.write(f, " world").ok()
	e.pread(f, 64, 0)
	e.readFile("d/b")
	e.fstat(f)
	e.stat("d/b")
	e.ftruncate(f, 5).ok()
	e.stat("d/b")
	g := e.open("d/b", unix.O_RDONLY, 0).ok().file
	e.pread(g, 64, 0)
	e.rename("d/b", "c").ok()
	e.pwrite(f, "J", 0).ok()
	e.pread(g, 64, 0)
	e.readFile("c")
	e.close(f)
	e.close(g)
	e.stat("c")
}

func nsUnlinkWhileOpen(e *nsEnv) {
	f := e.open("f", unix.O_CREAT|unix.O_RDWR, 0o644).ok().file
	e.write(f, "payload").ok()
	g := e.open("f", unix.O_RDONLY, 0).ok().file
	e.unlink("f").ok()
	e.fstat(f)
	e.fstat(g)
	e.stat("f").want(unix.ENOENT)
	e.pread(g, 64, 0)
	e.pwrite(f, "PAY", 0).ok()
	e.pread(g, 64, 0)
	e.ftruncate(f, 3).ok()
	e.fstat(g)
	e.close(f)
	e.pread(g, 64, 0)
	e.fstat(g)
	e.close(g)
	e.stat(".")
	e.list(".")
	e.mkdir("d", 0o755).ok()
	d := e.open("d", oDir, 0).ok().file
	e.rmdir("d").ok()
	e.fstat(d)
	e.getdents(d)
	e.openAt(d, "x", unix.O_CREAT|unix.O_WRONLY, 0o644).want(unix.ENOENT)
	e.mkdirAt(d, "y", 0o755).want(unix.ENOENT)
	e.close(d)
	e.mkfile("f", "new").ok()
	e.stat("f")
}

func nsDirNlink(e *nsEnv) {
	e.mkdir("p", 0o755).ok()
	e.stat("p")
	e.mkdir("p/a", 0o755).ok()
	e.stat("p")
	e.mkdir("p/b", 0o755).ok()
	e.stat("p")
	e.mkfile("p/f", "").ok()
	e.symlink("x", "p/l").ok()
	e.mknod("p/q", unix.S_IFIFO|0o644, 0).ok()
	e.stat("p")
	e.rmdir("p/a").ok()
	e.stat("p")
	e.mkdir("q", 0o755).ok()
	e.rename("p/b", "q/b").ok()
	e.stat("p")
	e.stat("q")
	e.rename("q/b", "q/c").ok()
	e.stat("q")
	e.rename("q/c", "p/f").want(unix.ENOTDIR)
	e.rename("q/c", "p/new").ok()
	e.stat("p")
	e.stat("q")
	e.unlink("p/f").ok()
	e.stat("p")
	e.stat(".")
}

func nsChmodChown(e *nsEnv) {
	e.mkfile("f", "data").ok()
	e.chmod("f", 0o644).ok()
	e.stat("f")
	e.mark("f")
	e.chmod("f", 0o600).ok()
	e.changed("f")
	e.stat("f")
	e.mark("f")
	e.chmod("f", 0o600).ok()
	e.changed("f")
	e.mark("f")
	e.chown("f", 1000, 2000)
	e.changed("f")
	e.stat("f")
	e.mark("f")
	e.chown("f", -1, -1).ok()
	e.changed("f")
	e.stat("f")
	e.chmod("f", 0o6755)
	e.stat("f")
	e.chown("f", 1001, 1001)
	e.stat("f")
	e.chmod("f", 0o2745)
	e.chown("f", 1002, -1)
	e.stat("f")
	e.chmod("f", 0o4700)
	e.chown("f", -1, -1)
	e.stat("f")
	e.chmod("f", 0o7777)
	e.stat("f")
	e.mkdir("d", 0o755).ok()
	e.chmod("d", 0o6755).ok()
	e.chown("d", 1000, 1000)
	e.stat("d")
	e.mkfile("g", "").ok()
	e.symlink("g", "l").ok()
	e.mark("l", "g")
	e.lchown("l", 1234, 5678)
	e.changed("l", "g")
	e.stat("l")
	e.stat("g")
	e.chown("l", 4321, -1)
	e.stat("l")
	e.stat("g")
	h := e.open("g", unix.O_RDWR, 0).ok().file
	e.fchmod(h, 0o640).ok()
	e.fchown(h, 3000, 3000)
	e.fstat(h)
	e.close(h)
	e.chmod("missing", 0o644).want(unix.ENOENT)
}

func nsUtimensat(e *nsEnv) {
	ts := func(sec, nsec int64) unix.Timespec { return unix.Timespec{Sec: sec, Nsec: nsec} }
	now := ts(0, unix.UTIME_NOW)
	omit := ts(0, unix.UTIME_OMIT)
	e.mkfile("f", "x").ok()
	e.utimes("f", []unix.Timespec{ts(1234567890, 123456789), ts(1500000000, 987654321)}, 0).ok()
	e.times("f")
	e.snap("f")
	e.utimes("f", []unix.Timespec{omit, ts(1600000000, 999999999)}, 0).ok()
	e.changed("f")
	e.times("f")
	e.snap("f")
	e.utimes("f", []unix.Timespec{ts(1, 1), omit}, 0).ok()
	e.changed("f")
	e.times("f")
	e.snap("f")
	e.utimes("f", []unix.Timespec{omit, omit}, 0).ok()
	e.changed("f")
	e.snap("f")
	e.utimes("f", []unix.Timespec{now, omit}, 0).ok()
	e.changed("f")
	e.snap("f")
	e.utimes("f", []unix.Timespec{omit, now}, 0).ok()
	e.changed("f")
	e.mark("f")
	e.utimes("f", []unix.Timespec{now, now}, 0).ok()
	e.changed("f")
	e.mark("f")
	e.utimes("f", nil, 0).ok()
	e.changed("f")
	e.utimes("f", []unix.Timespec{ts(-100000, 5), ts(1<<34, 0)}, 0).ok()
	e.times("f")
	e.utimes("f", []unix.Timespec{ts(0, 1_000_000_000), omit}, 0).want(unix.EINVAL)
	e.symlink("f", "l").ok()
	e.snap("f")
	e.utimes("l", []unix.Timespec{ts(1111111111, 111), ts(1222222222, 222)}, unix.AT_SYMLINK_NOFOLLOW).ok()
	e.times("l")
	e.changed("f")
	e.snap("l")
	e.utimes("l", []unix.Timespec{ts(1333333333, 333), ts(1444444444, 444)}, 0).ok()
	e.changed("l")
	e.times("f")
	e.mkdir("d", 0o755).ok()
	e.utimes("d", []unix.Timespec{ts(1700000000, 7), ts(1700000001, 8)}, 0).ok()
	e.times("d")
	e.utimes("missing", nil, 0).want(unix.ENOENT)
}

// nsTimesOfOps records which times each kind of call changes.
func nsTimesOfOps(e *nsEnv) {
	e.mkfile("f", "0123456789").ok()
	e.mark("f")
	f := e.open("f", unix.O_RDWR, 0).ok().file
	e.changed("f")
	e.mark("f")
	e.write(f, "ab").ok()
	e.changed("f")
	e.mark("f")
	e.write(f, "").ok()
	e.changed("f")
	e.mark("f")
	e.pread(f, 4, 0)
	e.changed("f")
	e.mark("f")
	e.ftruncate(f, 10).ok()
	e.changed("f")
	e.mark("f")
	e.ftruncate(f, 4).ok()
	e.changed("f")
	e.mark("f")
	e.truncate("f", 4).ok()
	e.changed("f")
	e.mark("f")
	e.truncate("f", 8).ok()
	e.changed("f")
	e.close(f)
	e.mkfile("empty", "").ok()
	e.mark("empty")
	e.truncate("empty", 0).ok()
	e.changed("empty")
	e.truncate("empty", 8192).ok()
	e.mark("empty")
	e.truncate("empty", 8192).ok()
	e.changed("empty")
	h := e.open("empty", unix.O_RDWR, 0).ok().file
	e.mark("empty")
	e.ftruncate(h, 8192).ok()
	e.changed("empty")
	e.close(h)
	e.mark("f")
	g := e.open("f", unix.O_WRONLY|unix.O_TRUNC, 0).ok().file
	e.changed("f")
	e.close(g)
	e.mark("f")
	g = e.open("f", unix.O_WRONLY|unix.O_TRUNC, 0).ok().file
	e.changed("f")
	e.close(g)
	e.stat("f")
	e.mark(".", "f")
	e.chmod("f", 0o600).ok()
	e.changed(".", "f")
	e.mark(".")
	e.list(".")
	e.changed(".")
	e.mark(".")
	e.stat(".")
	e.changed(".")
	e.mkdir("d", 0o755).ok()
	e.mark("d")
	e.mkfile("d/x", "").ok()
	e.changed("d")
	e.mark("d", "d/x")
	e.rename("d/x", "d/y").ok()
	e.changed("d")
	e.changedAs("d/x", "d/y")
	e.mark("d", "f")
	e.link("f", "d/f").ok()
	e.changed("d", "f")
	e.mark("d", "f")
	e.unlink("d/f").ok()
	e.changed("d", "f")
	e.mark("d")
	e.unlink("d/y").ok()
	e.changed("d")
	e.mark("d")
	e.mkdir("d/sub", 0o755).ok()
	e.changed("d")
	e.mark("d")
	e.rmdir("d/sub").ok()
	e.changed("d")
}

// nsAtimeOfCachedRead reads a file whose data is already cached by an
// earlier read: on tmpfs the read updates atime (relatime: atime is not
// newer than mtime).
func nsAtimeOfCachedRead(e *nsEnv) {
	e.mkfile("f", "data").ok()
	e.readFile("f")
	e.mark("f")
	e.readFile("f")
	e.changed("f")
}

func nsMknod(e *nsEnv) {
	e.mark(".")
	e.mknod("fifo", unix.S_IFIFO|0o640, 0).ok()
	e.changed(".")
	e.stat("fifo")
	e.mknod("sock", unix.S_IFSOCK|0o600, 0).ok()
	e.stat("sock")
	null := e.mknod("null", unix.S_IFCHR|0o666, int(unix.Mkdev(1, 3)))
	if e.root {
		null.ok()
	} else {
		null.want(unix.EPERM)
	}
	e.stat("null")
	e.mknod("loop", unix.S_IFBLK|0o600, int(unix.Mkdev(7, 0)))
	e.stat("loop")
	e.mknod("bigdev", unix.S_IFCHR|0o600, int(unix.Mkdev(259, 70000)))
	e.stat("bigdev")
	e.mknod("reg", unix.S_IFREG|0o640, 0).ok()
	e.stat("reg")
	e.mknod("plain", 0o644, 0).ok()
	e.stat("plain")
	e.mknod("fifo", unix.S_IFIFO|0o644, 0).want(unix.EEXIST)
	e.mknod("dir", unix.S_IFDIR|0o755, 0).want(unix.EPERM)
	p := e.open("fifo", unix.O_RDONLY|unix.O_NONBLOCK, 0).ok().file
	e.close(p)
	e.chmod("fifo", 0o600).ok()
	e.rename("fifo", "fifo2").ok()
	e.stat("fifo2")
	e.link("sock", "sock2").ok()
	e.stat("sock")
	e.stat(".")
	e.list(".")
}

func nsReaddirDots(e *nsEnv) {
	e.mkdir("d", 0o755).ok()
	e.mkdir("d/s", 0o755).ok()
	e.mkfile("d/f", "").ok()
	e.symlink("x", "d/l").ok()
	e.mknod("d/p", unix.S_IFIFO|0o644, 0).ok()
	e.mknod("d/sock", unix.S_IFSOCK|0o644, 0).ok()
	e.statFollow("..")
	e.stat(".")
	e.stat("d")
	e.stat("d/s")
	e.list(".")
	e.list("d")
	e.list("d/s")
	e.mkdir("e", 0o755).ok()
	e.rename("d/s", "e/s").ok()
	e.list("e/s")
	e.statFollow("e/s/..")
	e.mark("d")
	e.list("d")
	e.changed("d")
}

// nsReaddirWhileChanging reads a directory in small getdents calls while,
// between calls, other names in it are removed (two the stream has not
// reached yet, as long as there are some) and created (two each time). Entries nobody touches must come back exactly
// once; tmpfs also never returns an entry removed before the stream
// reached it.
func nsReaddirWhileChanging(e *nsEnv) {
	const n = 24
	e.mkdir("d", 0o755).ok()
	var keep, gone, all []string
	for i := range n {
		k, g := fmt.Sprintf("keep-%02d", i), fmt.Sprintf("gone-%02d", i)
		keep, gone = append(keep, k), append(gone, g)
		all = append(all, k, g)
	}
	e.mkfiles("d", all)
	dir := e.open("d", oDir, 0).ok().file
	seen := map[string]int{}
	removed := map[string]bool{}
	staleReturned := 0
	created := 0
	var readErr, changeErr error
	buf := make([]byte, 192)
	ended := false
	for calls := 0; calls < 1000; calls++ {
		nr, err := unix.Getdents(dir.fd, buf)
		if err != nil {
			readErr = err
			break
		}
		if nr == 0 {
			ended = true
			break
		}
		for _, de := range nsParseDirents(buf[:nr]) {
			seen[de.name]++
			if removed[de.name] {
				staleReturned++
			}
		}
		victims := 0
		for _, g := range gone {
			if victims == 2 {
				break
			}
			if seen[g] == 0 && !removed[g] {
				if err := unix.Unlink(e.p("d/" + g)); err != nil && changeErr == nil {
					changeErr = err
				}
				removed[g] = true
				victims++
			}
		}
		if victims == 0 {
			continue // nothing left to remove: stop changing the directory
		}
		for range 2 {
			created++
			fd, err := unix.Open(e.p(fmt.Sprintf("d/new-%03d", created)), oCreate|unix.O_CLOEXEC, 0o644)
			if err != nil {
				if changeErr == nil {
					changeErr = err
				}
				continue
			}
			unix.Close(fd)
		}
	}
	e.close(dir)
	e.recordx("getdents(d) in 192-byte calls", readErr, fmt.Sprintf("reached the end: %v", ended))
	e.record("unlink and create other names between the calls", changeErr)
	untouched := append([]string{".", ".."}, keep...)
	for _, g := range gone {
		if !removed[g] {
			untouched = append(untouched, g)
		}
	}
	var missing, dups []string
	for _, name := range untouched {
		if seen[name] == 0 {
			missing = append(missing, name)
		}
	}
	for name, c := range seen {
		if c > 1 {
			dups = append(dups, name)
		}
	}
	sort.Strings(dups)
	e.log("untouched entries never returned: %s", nsList(missing))
	e.log("entries returned more than once: %s", nsList(dups))
	e.expect(len(missing) == 0 && len(dups) == 0,
		"readdir while the directory changes: untouched entries missing %v, returned twice %v; want each exactly once", missing, dups)
	e.log("entries removed before the stream reached them but returned: %d", staleReturned)
}

// nsSeekdir checks that a d_off seen in an earlier getdents can be given
// to lseek to continue from that point.
func nsSeekdir(e *nsEnv) {
	e.mkdir("d", 0o755).ok()
	var names []string
	for i := range 30 {
		names = append(names, fmt.Sprintf("entry-%02d", i))
	}
	e.mkfiles("d", names)
	dir := e.open("d", oDir, 0).ok().file
	first, err := nsReadAllDirents(dir.fd, 96)
	e.recordx("getdents(d) to the end in 96-byte calls", err, fmt.Sprintf("%d entries: %s", len(first), nsList(nsDirentNames(first, true))))
	const k = 10
	if len(first) < k+5 {
		e.log("too few entries to go on")
		return
	}
	_, err = unix.Seek(dir.fd, first[k].off, unix.SEEK_SET)
	e.record("lseek(d, d_off of entry 11, SEEK_SET)", err)
	rest, err := nsReadAllDirents(dir.fd, 96)
	same := nsSameDirents(rest, first[k+1:])
	e.recordx("getdents(d) to the end", err, fmt.Sprintf("same as the first time after entry 11: %s", same))
	e.expect(same == "true", "seekdir to an earlier d_off then reading on: %s", same)
	_, err = unix.Seek(dir.fd, 0, unix.SEEK_SET)
	e.record("lseek(d, 0, SEEK_SET)", err)
	again, err := nsReadAllDirents(dir.fd, 96)
	same = nsSameDirents(again, first)
	e.recordx("getdents(d) to the end", err, fmt.Sprintf("same as the first time: %s", same))
	e.expect(same == "true", "rewinddir then reading again: %s", same)
	_, err = unix.Seek(dir.fd, 0, unix.SEEK_SET)
	e.record("lseek(d, 0, SEEK_SET)", err)
	chunk, err := nsGetdentsOnce(dir.fd, 96)
	e.recordx("getdents(d) once", err, fmt.Sprintf("%d entries", len(chunk)))
	pos, err := unix.Seek(dir.fd, 0, unix.SEEK_CUR)
	atLast := len(chunk) > 0 && pos == chunk[len(chunk)-1].off
	e.recordx("lseek(d, 0, SEEK_CUR)", err, fmt.Sprintf("is the d_off of the last entry returned: %v", atLast))
	e.expect(atLast, "telldir after a getdents is the d_off of the last entry it returned")
	removedName := first[k+3].name
	err = unix.Unlink(e.p("d/" + removedName))
	e.record("unlink(entry 14 of the first read)", err)
	_, err = unix.Seek(dir.fd, first[k].off, unix.SEEK_SET)
	e.record("lseek(d, d_off of entry 11, SEEK_SET)", err)
	rest, err = nsReadAllDirents(dir.fd, 96)
	var want []nsDirent
	for _, de := range first[k+1:] {
		if de.name != removedName {
			want = append(want, de)
		}
	}
	e.recordx("getdents(d) to the end", err, fmt.Sprintf("same as the first time after entry 11 without the removed one: %s", nsSameDirents(rest, want)))
	e.close(dir)
}

func nsInodeNumbers(e *nsEnv) {
	e.mkfile("f", "").ok()
	e.mkdir("d", 0o755).ok()
	e.symlink("f", "l").ok()
	e.mknod("p", unix.S_IFIFO|0o644, 0).ok()
	for range 2 {
		e.stat("f")
		e.stat("d")
		e.stat("l")
		e.stat("p")
	}
	e.link("f", "g").ok()
	e.stat("g")
	e.rename("f", "f2").ok()
	e.stat("f2")
	e.rename("d", "d2").ok()
	e.stat("d2")
	if e.root {
		err := os.WriteFile("/proc/sys/vm/drop_caches", []byte("2"), 0)
		e.record("drop dentry and inode caches", err)
	}
	e.stat("f2")
	e.stat("d2")
	e.stat("l")
	e.stat("p")
	e.stat("g")
	e.list(".")
	e.unlink("g").ok()
	e.unlink("f2").ok()
	e.mkfile("f", "").ok()
	e.stat("f")
	var names []string
	for i := range 10 {
		names = append(names, fmt.Sprintf("n%02d", i))
	}
	e.mkfiles(".", names)
	for _, name := range names {
		e.stat(name)
	}
}

func nsSetgidRoot(e *nsEnv) {
	e.mkdir("g", 0o755).ok()
	e.chown("g", 0, 1234).ok()
	e.chmod("g", 0o2777).ok()
	e.stat("g")
	e.mkfile("g/f", "").ok()
	e.stat("g/f")
	e.mkdir("g/s", 0o755).ok()
	e.stat("g/s")
	e.mkdir("g/s/t", 0o700).ok()
	e.stat("g/s/t")
	e.symlink("x", "g/l").ok()
	e.stat("g/l")
	e.mknod("g/p", unix.S_IFIFO|0o644, 0).ok()
	e.stat("g/p")
	x := e.open("g/sx", oCreate, 0o2755).ok().file
	e.close(x)
	e.stat("g/sx")
	e.mkdir("plain", 0o777).ok()
	e.chmod("plain", 0o777).ok()
	e.mkfile("plain/f", "").ok()
	e.stat("plain/f")
}

func nsSetgidNobody(e *nsEnv) {
	f := e.open("g/nf", oCreate, 0o2755).ok().file
	e.close(f)
	e.stat("g/nf")
	f = e.open("g/nf2", oCreate, 0o2745).ok().file
	e.close(f)
	e.stat("g/nf2")
	e.mkdir("g/nd", 0o755).ok()
	e.stat("g/nd")
	e.mkfile("plain/nf", "").ok()
	e.stat("plain/nf")
	e.chmod("g/nf", 0o2755).ok()
	e.stat("g/nf")
	e.chown("g/nf", -1, nsNobody).ok()
	e.stat("g/nf")
	e.chown("g/nf", -1, 1234).want(unix.EPERM)
	e.chmod("plain/nf", 0o2755).ok()
	e.stat("plain/nf")
}

func nsStickyRoot(e *nsEnv) {
	e.mkdir("t", 0o777).ok()
	e.chmod("t", 0o1777).ok()
	e.mkfile("t/rootfile", "r").ok()
	e.chmod("t/rootfile", 0o666).ok()
	e.mkdir("t/rootdir", 0o777).ok()
	e.chmod("t/rootdir", 0o777).ok()
	e.mkdir("open", 0o777).ok()
	e.chmod("open", 0o777).ok()
	e.mkfile("open/rootfile", "").ok()
	e.mkdir("owned", 0o777).ok()
	e.chmod("owned", 0o1777).ok()
	e.chown("owned", nsNobody, nsNobody).ok()
	e.mkfile("owned/rootfile", "").ok()
	e.stat("t")
}

func nsStickyNobody(e *nsEnv) {
	e.mkfile("t/mine", "m").ok()
	e.mkfile("t/mine3", "m").ok()
	e.unlink("t/rootfile").want(unix.EPERM)
	e.rename("t/rootfile", "t/x").want(unix.EPERM)
	e.rename("t/mine", "t/rootfile").want(unix.EPERM)
	e.renameat2("t/mine", "t/rootfile", unix.RENAME_EXCHANGE).want(unix.EPERM)
	e.rmdir("t/rootdir").want(unix.EPERM)
	e.rename("t/rootdir", "t/rd2").want(unix.EPERM)
	f := e.open("t/rootfile", unix.O_WRONLY, 0).ok().file
	e.write(f, "w").ok()
	e.close(f)
	e.open("t/rootfile", unix.O_WRONLY|unix.O_CREAT, 0o644)
	e.mkfile("t/rootdir/inside", "").ok()
	e.rename("t/mine", "t/mine2").ok()
	e.unlink("t/mine2").ok()
	e.unlink("open/rootfile").ok()
	e.unlink("owned/rootfile").ok()
	e.stat("t")
	e.list("t")
}

func nsStickyRootAfter(e *nsEnv) {
	e.unlink("t/mine3").ok()
	e.rename("t/rootfile", "t/rf").ok()
	e.unlink("t/rootdir/inside").ok()
	e.rmdir("t/rootdir").ok()
	e.readFile("t/rf")
	e.list("t")
}

func nsPermsRoot(e *nsEnv) {
	e.mkfile("secret", "s3cret").ok()
	e.chmod("secret", 0o600).ok()
	e.mkdir("closed", 0o755).ok()
	e.mkfile("other", "o").ok()
	e.chmod("other", 0o644).ok()
	e.mkfile("shared", "x").ok()
	e.chmod("shared", 0o666).ok()
	e.mkdir("noexec", 0o755).ok()
	e.mkfile("noexec/x", "").ok()
	e.chmod("noexec", 0o666).ok()
	e.mkdir("noread", 0o755).ok()
	e.mkfile("noread/x", "").ok()
	e.chmod("noread", 0o711).ok()
}

func nsPermsNobody(e *nsEnv) {
	e.open("secret", unix.O_RDONLY, 0).want(unix.EACCES)
	e.stat("secret").ok()
	e.open("closed/x", oCreate, 0o644).want(unix.EACCES)
	e.mkdir("closed/y", 0o755).want(unix.EACCES)
	e.symlink("t", "closed/l").want(unix.EACCES)
	e.mknod("closed/p", unix.S_IFIFO|0o644, 0).want(unix.EACCES)
	e.chmod("other", 0o666).want(unix.EPERM)
	e.chown("other", nsNobody, nsNobody).want(unix.EPERM)
	e.open("other", unix.O_WRONLY, 0).want(unix.EACCES)
	e.open("other", unix.O_RDONLY, 0).ok()
	e.truncate("other", 0).want(unix.EACCES)
	e.utimes("other", nil, 0).want(unix.EACCES)
	e.utimes("other", []unix.Timespec{{Sec: 1}, {Sec: 2}}, 0).want(unix.EPERM)
	e.utimes("shared", nil, 0).ok()
	e.utimes("shared", []unix.Timespec{{Sec: 1}, {Sec: 2}}, 0).want(unix.EPERM)
	e.unlink("other").want(unix.EACCES)
	e.rename("other", "x").want(unix.EACCES)
	// EPERM with fs.protected_hardlinks=1 (nobody does not own other),
	// EACCES (closed is not writable) without.
	e.link("other", "closed/x")
	e.stat("noexec/x").want(unix.EACCES)
	e.list("noexec")
	e.list("noread")
	e.stat("noread/x").ok()
	e.stat("other")
}

func nsKillSuidRoot(e *nsEnv) {
	e.mkdir("w", 0o777).ok()
	e.chmod("w", 0o777).ok()
	for _, f := range []struct {
		name string
		mode uint32
	}{
		{"w/suid", 0o6777},
		{"w/sgid-no-gx", 0o2767},
		{"w/trunc", 0o6777},
		{"w/trunc-sgid-no-gx", 0o2767},
		{"w/rootwrite", 0o6757},
	} {
		e.mkfile(f.name, "xyz").ok()
		e.chmod(f.name, f.mode).ok()
	}
	f := e.open("w/rootwrite", unix.O_WRONLY, 0).ok().file
	e.write(f, "r").ok()
	e.close(f)
	e.stat("w/rootwrite")
}

func nsKillSuidNobody(e *nsEnv) {
	for _, name := range []string{"w/suid", "w/sgid-no-gx"} {
		f := e.open(name, unix.O_WRONLY, 0).ok().file
		e.write(f, "n").ok()
		e.close(f)
		e.stat(name)
	}
	e.truncate("w/trunc", 1).ok()
	e.stat("w/trunc")
	e.truncate("w/trunc-sgid-no-gx", 1).ok()
	e.stat("w/trunc-sgid-no-gx")
}

func nsKillSuidRootAfter(e *nsEnv) {
	e.stat("w/suid")
	e.stat("w/sgid-no-gx")
	e.stat("w/trunc")
	e.stat("w/trunc-sgid-no-gx")
	e.stat("w/rootwrite")
}

// ---------------------------------------------------------------------
// The recorder

// nsEnv runs the steps of one phase in one directory and logs them.
type nsEnv struct {
	base      string
	root      bool
	lines     []string
	problems  []string // expectations of the scenario that did not hold
	marks     map[string]unix.Stat_t
	openFiles map[*nsFile]bool
	nfiles    int
}

// nsFile is an open descriptor, named in the log by the order it was
// opened in and the name it was opened by (descriptor numbers may differ
// between runs).
type nsFile struct {
	label string
	fd    int
}

func newNSEnv(base string) *nsEnv {
	return &nsEnv{base: base, root: os.Geteuid() == 0, marks: map[string]unix.Stat_t{}, openFiles: map[*nsFile]bool{}}
}

// finish closes what the steps left open.
func (e *nsEnv) finish() {
	for f := range e.openFiles {
		unix.Close(f.fd)
	}
	e.openFiles = map[*nsFile]bool{}
}

// p is the path of name in the case directory. It is not cleaned: "d/.."
// reaches the kernel as written.
func (e *nsEnv) p(name string) string {
	if strings.HasPrefix(name, "/") {
		return name
	}
	return e.base + "/" + name
}

// nsResult is a logged step, for checking the scenario's expectation.
type nsResult struct {
	e     *nsEnv
	step  string
	errno syscall.Errno
	file  *nsFile
}

// want notes a problem if the step did not end with errno (0: success).
// It does not stop the scenario: later steps show the consequences.
func (r nsResult) want(errno syscall.Errno) nsResult {
	if r.errno != errno {
		r.e.problems = append(r.e.problems, fmt.Sprintf("%s: got %s, want %s", r.step, nsErrnoName(r.errno), nsErrnoName(errno)))
	}
	return r
}

func (r nsResult) ok() nsResult { return r.want(0) }

// expect records a property the scenario requires of both filesystems,
// checked even where a known difference excuses the rest of the log.
func (e *nsEnv) expect(cond bool, format string, args ...any) {
	if !cond {
		e.problems = append(e.problems, fmt.Sprintf(format, args...))
	}
}

func (e *nsEnv) log(format string, args ...any) {
	e.lines = append(e.lines, fmt.Sprintf(format, args...))
}

func (e *nsEnv) record(step string, err error) nsResult { return e.recordx(step, err, "") }

// recordx logs "step: ERRNO" or "step: OK extra".
func (e *nsEnv) recordx(step string, err error, extra string) nsResult {
	errno := nsErrno(err)
	line := step + ": " + nsErrnoName(errno)
	if errno == 0 && extra != "" {
		line += " " + extra
	}
	e.lines = append(e.lines, line)
	return nsResult{e: e, step: step, errno: errno}
}

func nsErrno(err error) syscall.Errno {
	if err == nil {
		return 0
	}
	var errno syscall.Errno
	if errors.As(err, &errno) {
		return errno
	}
	return syscall.Errno(1 << 20) // not an errno: shows as a number
}

func nsErrnoName(errno syscall.Errno) string {
	if errno == 0 {
		return "OK"
	}
	if name := unix.ErrnoName(errno); name != "" {
		return name
	}
	return fmt.Sprintf("errno(%d)", int(errno))
}

// nsShow shortens long names for the log, keeping them distinguishable.
func nsShow(name string) string {
	if len(name) <= 40 {
		return name
	}
	return fmt.Sprintf("%s...(%d bytes)", name[:12], len(name))
}

func nsList(names []string) string {
	if len(names) == 0 {
		return "none"
	}
	shown := make([]string, len(names))
	for i, n := range names {
		shown[i] = nsShow(n)
	}
	return strings.Join(shown, " ")
}

func nsFlags(flags int) string {
	var parts []string
	switch flags & unix.O_ACCMODE {
	case unix.O_RDONLY:
		parts = append(parts, "O_RDONLY")
	case unix.O_WRONLY:
		parts = append(parts, "O_WRONLY")
	case unix.O_RDWR:
		parts = append(parts, "O_RDWR")
	}
	for _, f := range []struct {
		bit  int
		name string
	}{
		{unix.O_CREAT, "O_CREAT"}, {unix.O_EXCL, "O_EXCL"}, {unix.O_TRUNC, "O_TRUNC"},
		{unix.O_APPEND, "O_APPEND"}, {unix.O_DIRECTORY, "O_DIRECTORY"},
		{unix.O_NOFOLLOW, "O_NOFOLLOW"}, {unix.O_NONBLOCK, "O_NONBLOCK"},
	} {
		if flags&f.bit != 0 {
			parts = append(parts, f.name)
		}
	}
	return strings.Join(parts, "|")
}

func (e *nsEnv) addFile(name string, fd int) *nsFile {
	e.nfiles++
	f := &nsFile{label: fmt.Sprintf("fd%d(%s)", e.nfiles, nsShow(name)), fd: fd}
	e.openFiles[f] = true
	return f
}

func (e *nsEnv) open(name string, flags int, mode uint32) nsResult {
	fd, err := unix.Open(e.p(name), flags|unix.O_CLOEXEC, mode)
	r := e.record(fmt.Sprintf("open(%s, %s, %#o)", nsShow(name), nsFlags(flags), mode), err)
	if err == nil {
		r.file = e.addFile(name, fd)
	}
	return r
}

func (e *nsEnv) openAt(dir *nsFile, name string, flags int, mode uint32) nsResult {
	fd, err := unix.Openat(dir.fd, name, flags|unix.O_CLOEXEC, mode)
	r := e.record(fmt.Sprintf("openat(%s, %s, %s, %#o)", dir.label, nsShow(name), nsFlags(flags), mode), err)
	if err == nil {
		r.file = e.addFile(name, fd)
	}
	return r
}

func (e *nsEnv) close(f *nsFile) nsResult {
	if f == nil {
		return e.record("close(not open)", unix.EBADF)
	}
	delete(e.openFiles, f)
	return e.record("close("+f.label+")", unix.Close(f.fd))
}

// nsFd is f's descriptor, or -1 (EBADF) if the open failed.
func nsFd(f *nsFile) int {
	if f == nil {
		return -1
	}
	return f.fd
}

func nsLabel(f *nsFile) string {
	if f == nil {
		return "fd(not open)"
	}
	return f.label
}

func (e *nsEnv) write(f *nsFile, data string) nsResult {
	n, err := unix.Write(nsFd(f), []byte(data))
	return e.recordx(fmt.Sprintf("write(%s, %q)", nsLabel(f), data), err, fmt.Sprintf("wrote %d", n))
}

func (e *nsEnv) pwrite(f *nsFile, data string, off int64) nsResult {
	n, err := unix.Pwrite(nsFd(f), []byte(data), off)
	return e.recordx(fmt.Sprintf("pwrite(%s, %q, %d)", nsLabel(f), data, off), err, fmt.Sprintf("wrote %d", n))
}

func (e *nsEnv) pread(f *nsFile, size int, off int64) nsResult {
	buf := make([]byte, size)
	n, err := unix.Pread(nsFd(f), buf, off)
	if n < 0 {
		n = 0
	}
	return e.recordx(fmt.Sprintf("pread(%s, %d, %d)", nsLabel(f), size, off), err, fmt.Sprintf("%q", buf[:n]))
}

func (e *nsEnv) ftruncate(f *nsFile, size int64) nsResult {
	return e.record(fmt.Sprintf("ftruncate(%s, %d)", nsLabel(f), size), unix.Ftruncate(nsFd(f), size))
}

func (e *nsEnv) fstat(f *nsFile) nsResult {
	var st unix.Stat_t
	err := unix.Fstat(nsFd(f), &st)
	return e.recordx("fstat("+nsLabel(f)+")", err, nsStatLine(&st))
}

func (e *nsEnv) fchmod(f *nsFile, mode uint32) nsResult {
	return e.record(fmt.Sprintf("fchmod(%s, %#o)", nsLabel(f), mode), unix.Fchmod(nsFd(f), mode))
}

func (e *nsEnv) fchown(f *nsFile, uid, gid int) nsResult {
	return e.record(fmt.Sprintf("fchown(%s, %d, %d)", nsLabel(f), uid, gid), unix.Fchown(nsFd(f), uid, gid))
}

func (e *nsEnv) getdents(f *nsFile) nsResult {
	des, err := nsGetdentsOnce(nsFd(f), 4096)
	return e.recordx("getdents("+nsLabel(f)+")", err, fmt.Sprintf("%d entries", len(des)))
}

// mkfile creates name exclusively with data, as one step.
func (e *nsEnv) mkfile(name, data string) nsResult {
	err := func() error {
		fd, err := unix.Open(e.p(name), oCreate|unix.O_CLOEXEC, 0o644)
		if err != nil {
			return err
		}
		defer unix.Close(fd)
		if _, err := unix.Write(fd, []byte(data)); err != nil {
			return err
		}
		return unix.Close(fd)
	}()
	return e.record(fmt.Sprintf("mkfile(%s, %q)", nsShow(name), data), err)
}

// mkfiles creates empty files dir/name for every name, as one step.
func (e *nsEnv) mkfiles(dir string, names []string) nsResult {
	var first error
	for _, name := range names {
		fd, err := unix.Open(e.p(dir+"/"+name), oCreate|unix.O_CLOEXEC, 0o644)
		if err != nil {
			if first == nil {
				first = err
			}
			continue
		}
		unix.Close(fd)
	}
	return e.record(fmt.Sprintf("create %d files in %s", len(names), dir), first)
}

func (e *nsEnv) readFile(name string) nsResult {
	var data []byte
	err := func() error {
		fd, err := unix.Open(e.p(name), unix.O_RDONLY|unix.O_CLOEXEC, 0)
		if err != nil {
			return err
		}
		defer unix.Close(fd)
		buf := make([]byte, 4096)
		for {
			n, err := unix.Read(fd, buf)
			if err != nil {
				return err
			}
			if n == 0 {
				return nil
			}
			data = append(data, buf[:n]...)
		}
	}()
	return e.recordx("read("+nsShow(name)+")", err, fmt.Sprintf("%q", data))
}

func (e *nsEnv) mkdir(name string, mode uint32) nsResult {
	return e.record(fmt.Sprintf("mkdir(%s, %#o)", nsShow(name), mode), unix.Mkdir(e.p(name), mode))
}

func (e *nsEnv) mkdirAt(dir *nsFile, name string, mode uint32) nsResult {
	return e.record(fmt.Sprintf("mkdirat(%s, %s, %#o)", dir.label, name, mode), unix.Mkdirat(dir.fd, name, mode))
}

func (e *nsEnv) rmdir(name string) nsResult {
	return e.record("rmdir("+nsShow(name)+")", unix.Rmdir(e.p(name)))
}

func (e *nsEnv) unlink(name string) nsResult {
	return e.record("unlink("+nsShow(name)+")", unix.Unlink(e.p(name)))
}

func (e *nsEnv) rename(from, to string) nsResult {
	return e.record(fmt.Sprintf("rename(%s, %s)", nsShow(from), nsShow(to)), unix.Rename(e.p(from), e.p(to)))
}

func (e *nsEnv) renameat2(from, to string, flags uint) nsResult {
	var names []string
	if flags&unix.RENAME_NOREPLACE != 0 {
		names = append(names, "RENAME_NOREPLACE")
	}
	if flags&unix.RENAME_EXCHANGE != 0 {
		names = append(names, "RENAME_EXCHANGE")
	}
	if rest := flags &^ (unix.RENAME_NOREPLACE | unix.RENAME_EXCHANGE); rest != 0 {
		names = append(names, fmt.Sprintf("%#x", rest))
	}
	err := unix.Renameat2(unix.AT_FDCWD, e.p(from), unix.AT_FDCWD, e.p(to), flags)
	return e.record(fmt.Sprintf("renameat2(%s, %s, %s)", nsShow(from), nsShow(to), strings.Join(names, "|")), err)
}

func (e *nsEnv) link(from, to string) nsResult {
	return e.record(fmt.Sprintf("link(%s, %s)", nsShow(from), nsShow(to)), unix.Link(e.p(from), e.p(to)))
}

func (e *nsEnv) symlink(target, name string) nsResult {
	return e.record(fmt.Sprintf("symlink(%q, %s)", nsShow(target), nsShow(name)), unix.Symlink(target, e.p(name)))
}

func (e *nsEnv) readlink(name string) nsResult {
	buf := make([]byte, 8192)
	n, err := unix.Readlink(e.p(name), buf)
	if n < 0 {
		n = 0
	}
	return e.recordx("readlink("+nsShow(name)+")", err, fmt.Sprintf("%q", nsShow(string(buf[:n]))))
}

// readlinkN reads a link into a buffer of size bytes (the result is
// truncated, not an error).
func (e *nsEnv) readlinkN(name string, size int) nsResult {
	buf := make([]byte, size)
	n, err := unix.Readlink(e.p(name), buf)
	if n < 0 {
		n = 0
	}
	return e.recordx(fmt.Sprintf("readlink(%s) into %d bytes", nsShow(name), size), err, fmt.Sprintf("%q", buf[:n]))
}

func (e *nsEnv) mknod(name string, mode uint32, dev int) nsResult {
	step := fmt.Sprintf("mknod(%s, %s|%#o, %d:%d)", nsShow(name), nsTypeName(mode), mode&0o7777, unix.Major(uint64(dev)), unix.Minor(uint64(dev)))
	return e.record(step, unix.Mknod(e.p(name), mode, dev))
}

func (e *nsEnv) chmod(name string, mode uint32) nsResult {
	return e.record(fmt.Sprintf("chmod(%s, %#o)", nsShow(name), mode), unix.Chmod(e.p(name), mode))
}

func (e *nsEnv) chown(name string, uid, gid int) nsResult {
	return e.record(fmt.Sprintf("chown(%s, %d, %d)", nsShow(name), uid, gid), unix.Chown(e.p(name), uid, gid))
}

func (e *nsEnv) lchown(name string, uid, gid int) nsResult {
	return e.record(fmt.Sprintf("lchown(%s, %d, %d)", nsShow(name), uid, gid), unix.Lchown(e.p(name), uid, gid))
}

func (e *nsEnv) truncate(name string, size int64) nsResult {
	return e.record(fmt.Sprintf("truncate(%s, %d)", nsShow(name), size), unix.Truncate(e.p(name), size))
}

func nsTimeArg(ts unix.Timespec) string {
	switch ts.Nsec {
	case unix.UTIME_NOW:
		return "UTIME_NOW"
	case unix.UTIME_OMIT:
		return "UTIME_OMIT"
	}
	return fmt.Sprintf("%d.%09d", ts.Sec, ts.Nsec)
}

func (e *nsEnv) utimes(name string, ts []unix.Timespec, flags int) nsResult {
	args := "NULL"
	if ts != nil {
		args = nsTimeArg(ts[0]) + ", " + nsTimeArg(ts[1])
	}
	if flags&unix.AT_SYMLINK_NOFOLLOW != 0 {
		args += ", AT_SYMLINK_NOFOLLOW"
	}
	return e.record(fmt.Sprintf("utimensat(%s, %s)", nsShow(name), args), unix.UtimesNanoAt(unix.AT_FDCWD, e.p(name), ts, flags))
}

// stat logs lstat(name).
func (e *nsEnv) stat(name string) nsResult {
	var st unix.Stat_t
	err := unix.Lstat(e.p(name), &st)
	return e.recordx("lstat("+nsShow(name)+")", err, nsStatLine(&st))
}

// statFollow logs stat(name), following symlinks.
func (e *nsEnv) statFollow(name string) nsResult {
	var st unix.Stat_t
	err := unix.Stat(e.p(name), &st)
	return e.recordx("stat("+nsShow(name)+")", err, nsStatLine(&st))
}

// times logs the exact atime and mtime of name (not following symlinks):
// for checking values set explicitly.
func (e *nsEnv) times(name string) nsResult {
	var st unix.Stat_t
	err := unix.Lstat(e.p(name), &st)
	return e.recordx("times("+nsShow(name)+")", err, fmt.Sprintf("atime=%s mtime=%s", nsTimeArg(st.Atim), nsTimeArg(st.Mtim)))
}

// Times that mark sets before a step, so that any update by the step is
// seen, and relatime always updates atime on access (atime <= mtime).
var (
	nsMarkAtime = unix.Timespec{Sec: 1_000_000_000, Nsec: 111}
	nsMarkMtime = unix.Timespec{Sec: 1_000_000_000, Nsec: 222}
)

// mark sets the atime and mtime of each name to old values and remembers
// its times, for changed to compare after the next step.
func (e *nsEnv) mark(names ...string) {
	for _, name := range names {
		e.markPath(name, e.p(name), unix.AT_SYMLINK_NOFOLLOW)
	}
}

// markFile marks the file open as f (it may have no name left).
func (e *nsEnv) markFile(f *nsFile) {
	e.markPath(nsLabel(f), fmt.Sprintf("/proc/self/fd/%d", nsFd(f)), 0)
}

func (e *nsEnv) markPath(label, path string, flags int) {
	if err := unix.UtimesNanoAt(unix.AT_FDCWD, path, []unix.Timespec{nsMarkAtime, nsMarkMtime}, flags); err != nil {
		e.log("mark(%s): set old times: %s", nsShow(label), nsErrnoName(nsErrno(err)))
	}
	e.snapPath(label, path, flags)
}

// snap remembers the times of each name as they are.
func (e *nsEnv) snap(names ...string) {
	for _, name := range names {
		e.snapPath(name, e.p(name), unix.AT_SYMLINK_NOFOLLOW)
	}
}

func (e *nsEnv) snapPath(label, path string, flags int) {
	var st unix.Stat_t
	if err := unix.Fstatat(unix.AT_FDCWD, path, &st, flags); err != nil {
		e.log("mark(%s): stat: %s", nsShow(label), nsErrnoName(nsErrno(err)))
		delete(e.marks, label)
		return
	}
	e.marks[label] = st
	nsWaitForClockTick(st.Atim, st.Mtim, st.Ctim)
}

// nsWaitForClockTick waits until the coarse clock has passed every time
// given that is not in the future. tmpfs takes timestamps from the coarse
// clock (with fine-grained ones only when a time was queried since the last
// change, and not for every node a call touches), so without this wait a
// call made in the same clock tick as the mark can leave a time it updates
// at the marked value, and the step would look as if it did not update it.
// The wait is at most one tick (a few milliseconds).
func nsWaitForClockTick(times ...unix.Timespec) {
	var fine unix.Timespec
	if err := unix.ClockGettime(unix.CLOCK_REALTIME, &fine); err != nil {
		return
	}
	later := func(a, b unix.Timespec) bool { return a.Sec > b.Sec || (a.Sec == b.Sec && a.Nsec > b.Nsec) }
	var target unix.Timespec
	for _, ts := range times {
		if !later(ts, fine) && later(ts, target) {
			target = ts
		}
	}
	for {
		var coarse unix.Timespec
		if err := unix.ClockGettime(unix.CLOCK_REALTIME_COARSE, &coarse); err != nil || later(coarse, target) {
			return
		}
		runtime.Gosched()
	}
}

// changed logs which of the times of each name changed since its mark.
func (e *nsEnv) changed(names ...string) {
	for _, name := range names {
		e.changedPath(name, name, e.p(name), unix.AT_SYMLINK_NOFOLLOW)
	}
}

// changedAs is changed for a node marked as from and now named to.
func (e *nsEnv) changedAs(from, to string) {
	e.changedPath(from, fmt.Sprintf("%s, now %s", nsShow(from), nsShow(to)), e.p(to), unix.AT_SYMLINK_NOFOLLOW)
}

func (e *nsEnv) changedFile(f *nsFile) {
	e.changedPath(nsLabel(f), nsLabel(f), fmt.Sprintf("/proc/self/fd/%d", nsFd(f)), 0)
}

func (e *nsEnv) changedPath(label, shown, path string, flags int) {
	before, ok := e.marks[label]
	if !ok {
		e.log("changed(%s): not marked", shown)
		return
	}
	var st unix.Stat_t
	if err := unix.Fstatat(unix.AT_FDCWD, path, &st, flags); err != nil {
		e.log("changed(%s): stat: %s", shown, nsErrnoName(nsErrno(err)))
		return
	}
	word := func(a, b unix.Timespec) string {
		if a == b {
			return "same"
		}
		return "changed"
	}
	e.log("changed(%s): atime %s, mtime %s, ctime %s", shown,
		word(before.Atim, st.Atim), word(before.Mtim, st.Mtim), word(before.Ctim, st.Ctim))
}

// list reads a whole directory and logs its entries sorted by name, with
// their d_type and inode.
func (e *nsEnv) list(name string) nsResult {
	des, err := func() ([]nsDirent, error) {
		fd, err := unix.Open(e.p(name), oDir|unix.O_CLOEXEC, 0)
		if err != nil {
			return nil, err
		}
		defer unix.Close(fd)
		return nsReadAllDirents(fd, 1024)
	}()
	sort.Slice(des, func(i, j int) bool { return des[i].name < des[j].name })
	var parts []string
	for _, de := range des {
		parts = append(parts, fmt.Sprintf("%s:%s:ino#%d", nsShow(de.name), nsDtypeName(de.typ), de.ino))
	}
	return e.recordx("list("+nsShow(name)+")", err, strings.Join(parts, " "))
}

func nsTypeName(mode uint32) string {
	switch mode & unix.S_IFMT {
	case unix.S_IFREG:
		return "file"
	case unix.S_IFDIR:
		return "dir"
	case unix.S_IFLNK:
		return "symlink"
	case unix.S_IFIFO:
		return "fifo"
	case unix.S_IFSOCK:
		return "socket"
	case unix.S_IFCHR:
		return "char"
	case unix.S_IFBLK:
		return "block"
	case 0:
		return "0"
	}
	return fmt.Sprintf("type(%#o)", mode&unix.S_IFMT)
}

func nsDtypeName(t uint8) string {
	switch t {
	case unix.DT_REG:
		return "file"
	case unix.DT_DIR:
		return "dir"
	case unix.DT_LNK:
		return "symlink"
	case unix.DT_FIFO:
		return "fifo"
	case unix.DT_SOCK:
		return "socket"
	case unix.DT_CHR:
		return "char"
	case unix.DT_BLK:
		return "block"
	case unix.DT_UNKNOWN:
		return "unknown"
	}
	return fmt.Sprintf("dtype(%d)", t)
}

// nsStatLine is what stat shows that must match between tmpfs and
// tmpmount; "ino#N" is rewritten by nsNormalize.
func nsStatLine(st *unix.Stat_t) string {
	s := fmt.Sprintf("%s mode=%04o nlink=%d uid=%d gid=%d size=%d ino#%d",
		nsTypeName(st.Mode), st.Mode&0o7777, st.Nlink, st.Uid, st.Gid, st.Size, st.Ino)
	if t := st.Mode & unix.S_IFMT; t == unix.S_IFCHR || t == unix.S_IFBLK {
		s += fmt.Sprintf(" rdev=%d:%d", unix.Major(st.Rdev), unix.Minor(st.Rdev))
	}
	return s
}

// ---------------------------------------------------------------------
// getdents

type nsDirent struct {
	ino  uint64
	off  int64
	typ  uint8
	name string
}

// nsParseDirents decodes struct linux_dirent64 records.
func nsParseDirents(buf []byte) []nsDirent {
	var out []nsDirent
	for len(buf) >= 19 {
		reclen := int(binary.NativeEndian.Uint16(buf[16:18]))
		if reclen < 19 || reclen > len(buf) {
			break
		}
		name := buf[19:reclen]
		if i := bytes.IndexByte(name, 0); i >= 0 {
			name = name[:i]
		}
		out = append(out, nsDirent{
			ino:  binary.NativeEndian.Uint64(buf[0:8]),
			off:  int64(binary.NativeEndian.Uint64(buf[8:16])),
			typ:  buf[18],
			name: string(name),
		})
		buf = buf[reclen:]
	}
	return out
}

func nsGetdentsOnce(fd, bufSize int) ([]nsDirent, error) {
	buf := make([]byte, bufSize)
	n, err := unix.Getdents(fd, buf)
	if err != nil {
		return nil, err
	}
	return nsParseDirents(buf[:n]), nil
}

// nsReadAllDirents reads from the current position to the end.
func nsReadAllDirents(fd, bufSize int) ([]nsDirent, error) {
	var all []nsDirent
	for range 100000 {
		des, err := nsGetdentsOnce(fd, bufSize)
		if err != nil {
			return all, err
		}
		if len(des) == 0 {
			return all, nil
		}
		all = append(all, des...)
	}
	return all, errors.New("directory does not end")
}

func nsDirentNames(des []nsDirent, sorted bool) []string {
	names := make([]string, len(des))
	for i, de := range des {
		names[i] = de.name
	}
	if sorted {
		sort.Strings(names)
	}
	return names
}

// nsSameDirents says whether two reads returned the same entries (names
// and inodes) in the same order; if not, it lists what the second read
// (want) has that got lacks and the other way round. The d_off values are
// not compared: tmpfs may change the d_off of the entry before a removed
// one.
func nsSameDirents(got, want []nsDirent) string {
	same := len(got) == len(want)
	for i := 0; same && i < len(got); i++ {
		same = got[i].name == want[i].name && got[i].ino == want[i].ino
	}
	if same {
		return "true"
	}
	count := map[string]int{}
	for _, de := range want {
		count[de.name]++
	}
	for _, de := range got {
		count[de.name]--
	}
	var missing, extra []string
	for name, c := range count {
		for ; c > 0; c-- {
			missing = append(missing, name)
		}
		for ; c < 0; c++ {
			extra = append(extra, name)
		}
	}
	sort.Strings(missing)
	sort.Strings(extra)
	return fmt.Sprintf("false (missing: %s; extra: %s; or a different order)", nsList(missing), nsList(extra))
}

// ---------------------------------------------------------------------
// Running and comparing

type nsPhaseLog struct {
	Lines    []string
	Problems []string
}

type nsHarness struct {
	tmpfsRoot    string
	tmpmountRoot string
	childBin     string // a copy of this test binary that nobody may run
}

// newNSHarness mounts a tmpfs (mode=1777) and tmpmount (--allow-other),
// both reachable by nobody, and copies the test binary where nobody can
// run it.
func newNSHarness(t *testing.T) *nsHarness {
	t.Helper()
	requireRoot(t)
	requireFUSE(t)
	if _, err := exec.LookPath("setpriv"); err != nil {
		t.Fatalf("setpriv (util-linux) is needed to run steps as nobody: %v", err)
	}
	m := startMount(t, "--allow-other")
	pub := t.TempDir()
	nsMakeReachable(t, m.Dir)
	nsMakeReachable(t, pub)

	tmpfsDir := filepath.Join(pub, "tmpfs")
	if err := os.Mkdir(tmpfsDir, 0o755); err != nil {
		t.Fatal(err)
	}
	runCmd(t, pub, "mount", "-t", "tmpfs", "-o", "mode=1777", "tmpfs", tmpfsDir)
	t.Cleanup(func() {
		if err := unix.Unmount(tmpfsDir, 0); err != nil {
			t.Errorf("unmount tmpfs %s: %v", tmpfsDir, err)
		}
	})

	return &nsHarness{tmpfsRoot: tmpfsDir, tmpmountRoot: m.Dir, childBin: copySelf(t, pub)}
}

// nsMakeReachable makes dir's parent (the test's 0700 temporary
// directory) searchable by everyone, and checks that every directory
// above is too. dir itself is left alone: it may be a mount's root.
func nsMakeReachable(t *testing.T, dir string) {
	t.Helper()
	parent := filepath.Dir(dir)
	if err := os.Chmod(parent, 0o755); err != nil {
		t.Fatal(err)
	}
	for d := filepath.Dir(parent); ; d = filepath.Dir(d) {
		fi, err := os.Stat(d)
		if err != nil {
			t.Fatal(err)
		}
		if fi.Mode().Perm()&0o001 == 0 {
			t.Fatalf("%s is not searchable by others (mode %v): nobody cannot reach the mounts; set TMPDIR elsewhere", d, fi.Mode())
		}
		if d == "/" {
			return
		}
	}
}

// runCase runs the phases of c in a fresh directory under fsRoot and
// returns the whole log.
func (h *nsHarness) runCase(t *testing.T, fsRoot string, c nsCase) nsPhaseLog {
	t.Helper()
	base := filepath.Join(fsRoot, strings.ReplaceAll(c.name, "/", "-"))
	if err := os.Mkdir(base, 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.Chmod(base, 0o755); err != nil {
		t.Fatal(err)
	}
	if c.nobodyBase {
		if err := os.Chown(base, nsNobody, nsNobody); err != nil {
			t.Fatal(err)
		}
	}
	var out nsPhaseLog
	for i, ph := range c.phases {
		if len(c.phases) > 1 {
			who := "root"
			if ph.nobody {
				who = "nobody"
			}
			out.Lines = append(out.Lines, fmt.Sprintf("== phase %d, as %s", i+1, who))
		}
		var pl nsPhaseLog
		if ph.nobody {
			pl = h.runAsNobody(t, c.name, i, base)
		} else {
			e := newNSEnv(base)
			ph.run(e)
			e.finish()
			pl = nsPhaseLog{Lines: e.lines, Problems: e.problems}
		}
		out.Lines = append(out.Lines, pl.Lines...)
		out.Problems = append(out.Problems, pl.Problems...)
	}
	return out
}

// runAsNobody runs phase i of case name in a child process as nobody.
func (h *nsHarness) runAsNobody(t *testing.T, name string, i int, base string) nsPhaseLog {
	t.Helper()
	cmd := exec.Command("setpriv", fmt.Sprintf("--reuid=%d", nsNobody), fmt.Sprintf("--regid=%d", nsNobody), "--clear-groups", "--", h.childBin)
	cmd.Env = []string{
		"PATH=" + os.Getenv("PATH"),
		nsCaseEnv + "=" + name,
		nsPhaseEnv + "=" + strconv.Itoa(i),
		nsDirEnv + "=" + base,
	}
	cmd.Dir = "/"
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	if err := cmd.Run(); err != nil {
		t.Fatalf("phase %d of %s as nobody in %s: %v\nstderr:\n%s", i+1, name, base, err, stderr.String())
	}
	var pl nsPhaseLog
	if err := json.Unmarshal(stdout.Bytes(), &pl); err != nil {
		t.Fatalf("phase %d of %s as nobody: bad output %q: %v\nstderr:\n%s", i+1, name, stdout.String(), err, stderr.String())
	}
	return pl
}

var nsInoPattern = regexp.MustCompile(`ino#(\d+)`)

// nsNormalize rewrites inode numbers to their order of first appearance
// in the log.
func nsNormalize(lines []string) []string {
	labels := map[string]int{}
	out := make([]string, len(lines))
	for i, line := range lines {
		out[i] = nsInoPattern.ReplaceAllStringFunc(line, func(m string) string {
			num := m[len("ino#"):]
			l, ok := labels[num]
			if !ok {
				l = len(labels) + 1
				labels[num] = l
			}
			return fmt.Sprintf("ino#%d", l)
		})
	}
	return out
}

// nsCompare fails the test where the tmpmount log (got) differs from the
// tmpfs log (want), or where the tmpfs run does not meet the scenario's
// own expectations (a mistake in the scenario). With known set, a
// difference skips the test instead, and its absence fails it.
func nsCompare(t *testing.T, want, got nsPhaseLog, known string) {
	t.Helper()
	for _, p := range want.Problems {
		t.Errorf("on tmpfs, the reference, %s (the scenario's expectation is wrong)", p)
	}
	wl, gl := nsNormalize(want.Lines), nsNormalize(got.Lines)
	n := max(len(wl), len(gl))
	var diffs []string
	differs := make([]bool, n)
	for i := range n {
		var w, g string
		if i < len(wl) {
			w = wl[i]
		} else {
			w = "(no such step)"
		}
		if i < len(gl) {
			g = gl[i]
		} else {
			g = "(no such step)"
		}
		if w != g {
			differs[i] = true
			diffs = append(diffs, fmt.Sprintf("step %d:\n    tmpfs:    %s\n    tmpmount: %s", i+1, w, g))
		}
	}
	if len(diffs) == 0 {
		if known != "" {
			t.Errorf("tmpmount now behaves as tmpfs here: remove the known difference (%s)", known)
		}
		return
	}
	const maxShown = 12
	shown := diffs
	if len(shown) > maxShown {
		shown = append(shown[:maxShown:maxShown], fmt.Sprintf("... and %d more", len(diffs)-maxShown))
	}
	var full strings.Builder
	for i := range n {
		mark := " "
		if differs[i] {
			mark = "!"
		}
		line := "(no such step)"
		if i < len(gl) {
			line = gl[i]
		}
		fmt.Fprintf(&full, "  %s%3d %s\n", mark, i+1, line)
	}
	report := fmt.Sprintf("tmpmount differs from tmpfs in %d of %d steps:\n%s\ntmpmount's log (! marks the differences):\n%s",
		len(diffs), n, strings.Join(shown, "\n"), full.String())
	for _, p := range got.Problems {
		t.Errorf("on tmpmount, %s", p)
	}
	if known != "" {
		t.Skipf("known difference: %s\n%s", known, report)
	}
	t.Error(report)
}

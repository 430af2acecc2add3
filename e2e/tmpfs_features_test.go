package e2e

// Differential tests of the tmpfs features beyond the namespace: POSIX
// ACLs, RENAME_WHITEOUT, chattr flags, birth time and the xattr
// namespaces, each scenario run as several users against a real tmpfs
// and a tmpmount mount, the logs compared step by step as in
// tmpfs_namespace_test.go (whose recorder, nsEnv, the steps use).
//
// Every phase runs in a child process (this test binary, re-executed) as
// its user, with its supplementary groups and umask, so that the kernel
// sees exactly those credentials on both filesystems.

import (
	"bytes"
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"

	"golang.org/x/sys/unix"
)

// Environment of a child process running one phase of a feature case.
const (
	ftCaseEnv  = "TMPMOUNT_FT_CASE"
	ftPhaseEnv = "TMPMOUNT_FT_PHASE"
	ftDirEnv   = "TMPMOUNT_FT_DIR"
)

func init() {
	name := os.Getenv(ftCaseEnv)
	if name == "" {
		return
	}
	os.Exit(nsChildMain(ftPhaseOf, name, os.Getenv(ftPhaseEnv), os.Getenv(ftDirEnv)))
}

// ftPhaseOf finds phase i of the feature scenario name; it runs under the
// phase's umask.
func ftPhaseOf(name string, i int) (func(e *nsEnv), int) {
	for _, s := range ftScenarios() {
		if s.name == name {
			if i < 0 || i >= len(s.phases) {
				return nil, len(s.phases)
			}
			ph := s.phases[i]
			return func(e *nsEnv) {
				unix.Umask(ph.umaskValue())
				ph.run(e)
			}, len(s.phases)
		}
	}
	return nil, -1
}

// ftUser is who runs a phase: uid and gid, supplementary groups, and
// whether it keeps root's capabilities (uid 0 only).
type ftUser struct {
	uid, gid int
	groups   []int
	noAdmin  bool // root without CAP_SYS_ADMIN (dropped from the bounding set)
}

var (
	ftRoot  = ftUser{}
	ftAlice = ftUser{uid: 1001, gid: 1001}
	ftBob   = ftUser{uid: 1002, gid: 1002}
	ftCarol = ftUser{uid: 1003, gid: 1003, groups: []int{2001}} // in the "staff" group
)

// ftStaff is a group Carol is in and Alice and Bob are not.
const ftStaff = 2001

func (u ftUser) String() string {
	if u.uid == 0 && u.noAdmin {
		return "root without CAP_SYS_ADMIN"
	}
	if u.uid == 0 {
		return "root"
	}
	s := fmt.Sprintf("uid %d gid %d", u.uid, u.gid)
	if len(u.groups) > 0 {
		s += fmt.Sprintf(" groups %v", u.groups)
	}
	return s
}

type ftPhase struct {
	as    ftUser
	umask int // 0o022 unless set (use ftUmask0 for 0)
	run   func(e *nsEnv)
}

// ftUmask0 asks for a umask of 0 (0 in ftPhase.umask means the default).
const ftUmask0 = -1

type ftScenario struct {
	name      string
	args      []string // extra tmpmount flags
	tmpfsOpts string   // options of a tmpfs of the scenario's own, to match args
	phases    []ftPhase
	known     string // see nsScenario.known
}

func (ph ftPhase) umaskValue() int {
	switch ph.umask {
	case 0:
		return 0o022
	case ftUmask0:
		return 0
	}
	return ph.umask
}

// TestFeaturesAgainstTmpfs runs every scenario on a real tmpfs and on
// tmpmount and compares the logs.
func TestFeaturesAgainstTmpfs(t *testing.T) {
	requireRoot(t)
	requireFUSE(t)
	for _, tool := range []string{"setpriv", "setfacl", "getfacl", "chattr", "lsattr"} {
		if _, err := exec.LookPath(tool); err != nil {
			t.Fatalf("%s is needed (packages util-linux, acl, e2fsprogs): %v", tool, err)
		}
	}
	pub := t.TempDir()
	nsMakeReachable(t, pub)
	bin := copySelf(t, pub)
	tmpfsDir := filepath.Join(pub, "tmpfs")
	if err := os.Mkdir(tmpfsDir, 0o755); err != nil {
		t.Fatal(err)
	}
	mountTmpfs(t, tmpfsDir, "mode=1777")
	for _, s := range ftScenarios() {
		t.Run(s.name, func(t *testing.T) {
			m := startMount(t, append([]string{"--allow-other"}, s.args...)...)
			nsMakeReachable(t, m.Dir)
			reference := tmpfsDir
			if s.tmpfsOpts != "" {
				reference = mountTmpfs(t, t.TempDir(), "mode=1777,"+s.tmpfsOpts)
				nsMakeReachable(t, reference)
			}
			want := ftRunCase(t, bin, reference, s)
			got := ftRunCase(t, bin, m.Dir, s)
			if os.Getenv("TMPMOUNT_NS_LOG") != "" {
				t.Logf("tmpfs log:\n%s", strings.Join(nsNormalize(want.Lines), "\n"))
			}
			nsCompare(t, want, got, s.known)
		})
	}
}

// copySelf copies the test binary into dir, where every user may run it.
func copySelf(t *testing.T, dir string) string {
	t.Helper()
	self, err := os.Executable()
	if err != nil {
		t.Fatal(err)
	}
	data, err := os.ReadFile(self)
	if err != nil {
		t.Fatal(err)
	}
	bin := filepath.Join(dir, "e2e-child.test")
	if err := os.WriteFile(bin, data, 0o755); err != nil {
		t.Fatal(err)
	}
	return bin
}

// ftRunCase runs the phases of s in a fresh directory (mode 0777, owned
// by root) under fsRoot and returns the whole log.
func ftRunCase(t *testing.T, bin, fsRoot string, s ftScenario) nsPhaseLog {
	t.Helper()
	base := filepath.Join(fsRoot, s.name)
	if err := os.Mkdir(base, 0o777); err != nil {
		t.Fatal(err)
	}
	if err := os.Chmod(base, 0o777); err != nil {
		t.Fatal(err)
	}
	var out nsPhaseLog
	for i, ph := range s.phases {
		out.Lines = append(out.Lines, fmt.Sprintf("== phase %d, as %v, umask %#o", i+1, ph.as, ph.umaskValue()))
		var args []string
		if ph.as.noAdmin {
			args = append(args, "setpriv", "--bounding-set=-sys_admin", "--")
		}
		if ph.as.uid != 0 {
			groups := "--clear-groups"
			if len(ph.as.groups) > 0 {
				var g []string
				for _, id := range ph.as.groups {
					g = append(g, strconv.Itoa(id))
				}
				groups = "--groups=" + strings.Join(g, ",")
			}
			args = append(args, "setpriv", fmt.Sprintf("--reuid=%d", ph.as.uid), fmt.Sprintf("--regid=%d", ph.as.gid), groups, "--")
		}
		args = append(args, bin)
		cmd := exec.Command(args[0], args[1:]...)
		cmd.Env = []string{
			"PATH=" + os.Getenv("PATH"),
			"LC_ALL=C",
			ftCaseEnv + "=" + s.name,
			ftPhaseEnv + "=" + strconv.Itoa(i),
			ftDirEnv + "=" + base,
		}
		cmd.Dir = "/"
		var stdout, stderr bytes.Buffer
		cmd.Stdout, cmd.Stderr = &stdout, &stderr
		if err := cmd.Run(); err != nil {
			t.Fatalf("phase %d of %s as %v in %s: %v\nstderr:\n%s", i+1, s.name, ph.as, base, err, stderr.String())
		}
		var pl nsPhaseLog
		if err := json.Unmarshal(stdout.Bytes(), &pl); err != nil {
			t.Fatalf("phase %d of %s: bad output %q: %v\nstderr:\n%s", i+1, s.name, stdout.String(), err, stderr.String())
		}
		out.Lines = append(out.Lines, pl.Lines...)
		out.Problems = append(out.Problems, pl.Problems...)
	}
	return out
}

// ---------------------------------------------------------------------
// Steps beyond nsEnv's

// ftTool runs a program (setfacl, chattr, ...) in the case directory
// with names relative to it, and logs its exit status and output, so
// that the log is the same whichever filesystem it ran on.
func (e *nsEnv) ftTool(name string, args ...string) nsResult {
	cmd := exec.Command(name, args...)
	cmd.Dir = e.base
	out, err := cmd.CombinedOutput()
	step := name + " " + strings.Join(args, " ")
	status := "exit 0"
	var errno unix.Errno
	if err != nil {
		ee, ok := err.(*exec.ExitError)
		if !ok {
			return e.record(step, err)
		}
		status = fmt.Sprintf("exit %d", ee.ExitCode())
		errno = unix.EPERM // any failure, for want(); the log says which
	}
	text := strings.TrimRight(string(out), "\n")
	e.log("%s: %s%s", step, status, ftIndent(text))
	return nsResult{e: e, step: step, errno: errno}
}

func ftIndent(text string) string {
	if text == "" {
		return ""
	}
	return "\n    | " + strings.ReplaceAll(text, "\n", "\n    | ")
}

// ftGetfacl logs getfacl's numeric, headerless view of names.
func (e *nsEnv) ftGetfacl(names ...string) {
	e.ftTool("getfacl", append([]string{"-cn"}, names...)...)
}

// ftGetxattr logs the raw value of an xattr (not following symlinks).
func (e *nsEnv) ftGetxattr(name, attr string) nsResult {
	buf := make([]byte, 65536)
	n, err := unix.Lgetxattr(e.p(name), attr, buf)
	return e.recordx(fmt.Sprintf("lgetxattr(%s, %s)", nsShow(name), attr), err, fmt.Sprintf("%q", buf[:max(n, 0)]))
}

func (e *nsEnv) ftSetxattr(name, attr, value string, flags int) nsResult {
	err := unix.Lsetxattr(e.p(name), attr, []byte(value), flags)
	return e.record(fmt.Sprintf("lsetxattr(%s, %s, %q, %d)", nsShow(name), attr, value, flags), err)
}

func (e *nsEnv) ftRemovexattr(name, attr string) nsResult {
	return e.record(fmt.Sprintf("lremovexattr(%s, %s)", nsShow(name), attr), unix.Lremovexattr(e.p(name), attr))
}

// ftListxattr logs the names listxattr gives, in its order.
func (e *nsEnv) ftListxattr(name string) nsResult {
	buf := make([]byte, 65536)
	n, err := unix.Llistxattr(e.p(name), buf)
	var names []string
	for _, s := range strings.Split(string(buf[:max(n, 0)]), "\x00") {
		if s != "" {
			names = append(names, s)
		}
	}
	return e.recordx("llistxattr("+nsShow(name)+")", err, nsList(names))
}

// ftAccess logs what an open for reading, for writing, and (for a
// directory) a lookup and a create inside say, for the phase's user.
func (e *nsEnv) ftAccess(name string) {
	var st unix.Stat_t
	if err := unix.Lstat(e.p(name), &st); err != nil {
		e.record("access("+name+")", err)
		return
	}
	if st.Mode&unix.S_IFMT == unix.S_IFDIR {
		var dst unix.Stat_t
		r := unix.Stat(e.p(name+"/."), &dst)
		fd, errOpen := unix.Open(e.p(name), unix.O_RDONLY|unix.O_DIRECTORY|unix.O_CLOEXEC, 0)
		if errOpen == nil {
			unix.Close(fd)
		}
		errMk := unix.Mkdir(e.p(name+"/probe"), 0o700)
		if errMk == nil {
			unix.Rmdir(e.p(name + "/probe"))
		}
		e.log("access(%s): search %s, list %s, create %s", name, nsErrnoName(nsErrno(r)), nsErrnoName(nsErrno(errOpen)), nsErrnoName(nsErrno(errMk)))
		return
	}
	var res []string
	for _, m := range []struct {
		flags int
		what  string
	}{{unix.O_RDONLY, "read"}, {unix.O_WRONLY, "write"}} {
		fd, err := unix.Open(e.p(name), m.flags|unix.O_CLOEXEC|unix.O_NONBLOCK, 0)
		if err == nil {
			unix.Close(fd)
		}
		res = append(res, m.what+" "+nsErrnoName(nsErrno(err)))
	}
	e.log("access(%s): %s", name, strings.Join(res, ", "))
}

// ftTmpfile makes an O_TMPFILE file in dir with mode and links it as name.
func (e *nsEnv) ftTmpfile(dir, name string, mode uint32) nsResult {
	err := func() error {
		fd, err := unix.Open(e.p(dir), unix.O_TMPFILE|unix.O_RDWR|unix.O_CLOEXEC, mode)
		if err != nil {
			return err
		}
		defer unix.Close(fd)
		return unix.Linkat(unix.AT_FDCWD, fmt.Sprintf("/proc/self/fd/%d", fd), unix.AT_FDCWD, e.p(name), unix.AT_SYMLINK_FOLLOW)
	}()
	return e.record(fmt.Sprintf("O_TMPFILE in %s, %#o, linked as %s", dir, mode, name), err)
}

// ---------------------------------------------------------------------
// Scenarios

func ftScenarios() []ftScenario {
	var all []ftScenario
	all = append(all, ftACLScenarios()...)
	all = append(all, ftWhiteoutScenarios()...)
	all = append(all, ftFileattrScenarios()...)
	all = append(all, ftXattrScenarios()...)
	return all
}

package e2e

// The xattr namespaces as users see them: user.*, trusted.* and
// security.* set, read, listed and removed by the owner, by another user,
// by root and by root without CAP_SYS_ADMIN, against tmpfs; and
// tmpmount's own user.tmpmount.* as other users see them.

import (
	"os"
	"os/exec"
	"strings"
	"testing"

	"golang.org/x/sys/unix"
)

func ftXattrScenarios() []ftScenario {
	return []ftScenario{{name: "xattr-namespaces", phases: []ftPhase{
		{as: ftRoot, run: ftXattrSetup},
		{as: ftAlice, run: ftXattrEveryone},
		{as: ftBob, run: ftXattrEveryone},
		{as: ftUser{noAdmin: true}, run: ftXattrEveryone},
		{as: ftRoot, run: ftXattrEveryone},
	}}}
}

// ftXattrSetup: Alice's files and directories of several modes, a
// sticky directory, special files, each with one xattr of each
// namespace.
func ftXattrSetup(e *nsEnv) {
	for _, f := range []struct {
		name string
		mode uint32
	}{{"ro", 0o644}, {"rw", 0o666}, {"private", 0o600}} {
		e.mkfile(f.name, "x").ok()
		e.chmod(f.name, f.mode).ok()
	}
	e.mkdir("dir", 0o777).ok()
	e.chmod("dir", 0o777).ok()
	e.mkdir("sticky", 0o777).ok()
	e.chmod("sticky", 0o1777).ok()
	e.mknod("fifo", unix.S_IFIFO|0o666, 0).ok()
	e.symlink("rw", "link").ok()
	for _, n := range ftXattrTargets {
		e.lchown(n, 1001, 1001).ok()
		for _, ns := range []string{"user", "trusted", "security"} {
			e.ftSetxattr(n, ns+".set", "v", 0)
		}
		e.ftListxattr(n)
	}
}

var ftXattrTargets = []string{"ro", "rw", "private", "dir", "sticky", "fifo", "link"}

// ftXattrEveryone is what the phase's user may do with each namespace on
// each node.
func ftXattrEveryone(e *nsEnv) {
	for _, n := range ftXattrTargets {
		e.ftListxattr(n)
		for _, ns := range []string{"user", "trusted", "security"} {
			e.ftGetxattr(n, ns+".set")
			e.ftSetxattr(n, ns+".new", "w", 0)
			e.ftGetxattr(n, ns+".new")
			e.ftRemovexattr(n, ns+".new")
		}
	}
}

// TestOwnXattrsOtherUsers checks tmpmount's own xattrs as other users
// meet them (tmpfs has none to compare with): what the kernel's rules
// for user.* allow reaches the daemon, which then lets only the owner
// (or root) change a delete policy, lets anyone who may write a file
// spill it, refuses the read-only ones, and lists none of them.
func TestOwnXattrsOtherUsers(t *testing.T) {
	requireRoot(t)
	m := startMount(t, "--allow-other")
	nsMakeReachable(t, m.Dir)
	for name, mode := range map[string]os.FileMode{"rw": 0o666, "ro": 0o644} {
		if err := os.WriteFile(m.Path(name), []byte("alice's"), mode); err != nil {
			t.Fatal(err)
		}
		if err := os.Chmod(m.Path(name), mode); err != nil {
			t.Fatal(err)
		}
		if err := os.Chown(m.Path(name), 1001, 1001); err != nil {
			t.Fatal(err)
		}
	}
	if err := os.Mkdir(m.Path("sticky"), 0o1777); err != nil {
		t.Fatal(err)
	}
	if err := os.Chmod(m.Path("sticky"), 0o1777); err != nil {
		t.Fatal(err)
	}
	if err := os.Chown(m.Path("sticky"), 1001, 1001); err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		as, script, want string // want: the output (stdout and stderr), trimmed
	}{
		{"1002", `getfattr --only-values -n user.tmpmount.delete rw`, "unmount"},
		{"1002", `setfattr -n user.tmpmount.delete -v close rw`, "setfattr: rw: Operation not permitted"},
		{"1002", `setfattr -n user.tmpmount.delete -v close ro`, "setfattr: ro: Permission denied"},
		{"1002", `setfattr -n user.tmpmount.delete -v close sticky`, "setfattr: sticky: Operation not permitted"},
		{"1002", `setfattr -n user.tmpmount.spill rw && getfattr --only-values -n user.tmpmount.residency rw`, "disk"},
		{"1002", `setfattr -n user.tmpmount.spill ro`, "setfattr: ro: Permission denied"},
		{"1002", `setfattr -n user.tmpmount.residency -v memory rw`, "setfattr: rw: Operation not permitted"},
		{"1002", `setfattr -n user.tmpmount.stats -v x rw`, "setfattr: rw: Operation not permitted"},
		{"1002", `getfattr -d -m - rw ro sticky; echo listed`, "listed"},
		{"1001", `setfattr -n user.tmpmount.delete -v close sticky && getfattr --only-values -n user.tmpmount.delete sticky`, "close"},
		{"1001", `setfattr -n user.tmpmount.delete -v close ro && getfattr --only-values -n user.tmpmount.delete ro`, "close"},
	}
	for _, tc := range tests {
		cmd := exec.Command("setpriv", "--reuid="+tc.as, "--regid="+tc.as, "--clear-groups", "sh", "-c", tc.script)
		cmd.Dir = m.Dir
		out, _ := cmd.CombinedOutput()
		if got := strings.TrimSpace(string(out)); got != tc.want {
			t.Errorf("as %s: %s\n got: %q\nwant: %q", tc.as, tc.script, got, tc.want)
		}
	}
}

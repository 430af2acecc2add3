package e2e

// POSIX ACL scenarios for TestFeaturesAgainstTmpfs: setfacl and getfacl
// as several users, the mode and mask kept in step, enforcement, default
// ACLs inherited under different umasks, and set-group-ID directories.

import (
	"fmt"
	"os"
	"os/exec"
	"strings"
	"testing"

	"golang.org/x/sys/unix"
)

func ftACLScenarios() []ftScenario {
	return []ftScenario{
		{name: "acl-set-and-mask", phases: []ftPhase{{as: ftAlice, run: ftACLSetAndMask}}},
		{name: "acl-enforced", phases: []ftPhase{
			{as: ftAlice, run: ftACLEnforcedSetup},
			{as: ftBob, run: ftACLEnforcedCheck},
			{as: ftCarol, run: ftACLEnforcedCheck},
			{as: ftUser{uid: 1004, gid: 1004}, run: ftACLEnforcedCheck},
			{as: ftAlice, run: ftACLEnforcedTighten},
			{as: ftBob, run: ftACLEnforcedCheck},
			{as: ftCarol, run: ftACLEnforcedCheck},
		}},
		{name: "acl-who-may-set", phases: []ftPhase{
			{as: ftAlice, run: ftACLOwnerSetup},
			{as: ftBob, run: ftACLNotOwner},
			{as: ftRoot, run: ftACLRootSets},
		}},
		{name: "acl-default-umask-022", phases: []ftPhase{{as: ftAlice, run: ftACLDefaults}}},
		{name: "acl-default-umask-077", phases: []ftPhase{{as: ftAlice, umask: 0o077, run: ftACLDefaults}}},
		{name: "acl-default-umask-0", phases: []ftPhase{{as: ftAlice, umask: ftUmask0, run: ftACLDefaults}}},
		{name: "acl-default-minimal", phases: []ftPhase{{as: ftAlice, umask: 0o027, run: ftACLDefaultMinimal}}},
		{name: "acl-setgid", phases: []ftPhase{
			{as: ftRoot, run: ftACLSetgidSetup},
			{as: ftCarol, umask: 0o002, run: ftACLSetgidMember},
			{as: ftAlice, run: ftACLSetgidNonMember},
			{as: ftRoot, run: ftACLSetgidAfter},
		}},
		{name: "acl-node-types", phases: []ftPhase{{as: ftRoot, run: ftACLNodeTypes}}},
	}
}

// ftACLSetAndMask: what setfacl does to the mode and what chmod does to
// the ACL, and when no ACL is kept at all.
func ftACLSetAndMask(e *nsEnv) {
	e.mkfile("f", "data").ok()
	e.chmod("f", 0o640).ok()
	e.ftGetxattr("f", "system.posix_acl_access").want(unix.ENODATA)
	e.mark("f")
	e.ftTool("setfacl", "-m", "u:1002:rw,g:2001:r", "f").ok()
	e.changed("f")
	e.stat("f")
	e.ftGetfacl("f")
	e.ftGetxattr("f", "system.posix_acl_access").ok()
	e.ftListxattr("f")
	e.chmod("f", 0o604).ok()
	e.stat("f")
	e.ftGetfacl("f")
	e.chmod("f", 0o770).ok()
	e.ftGetfacl("f")
	e.ftTool("setfacl", "-m", "m::r", "f").ok()
	e.stat("f")
	e.ftTool("setfacl", "-x", "u:1002", "f").ok()
	e.ftGetfacl("f")
	e.ftTool("setfacl", "-x", "g:2001", "f").ok()
	e.stat("f")
	e.ftGetfacl("f")
	// An ACL of the three base entries is a mode: none is kept.
	e.ftTool("setfacl", "--set", "u::rwx,g::r-x,o::---", "f").ok()
	e.stat("f")
	e.ftGetxattr("f", "system.posix_acl_access").want(unix.ENODATA)
	e.ftTool("setfacl", "-m", "u:1002:x", "f").ok()
	e.mark("f")
	e.ftTool("setfacl", "-b", "f").ok()
	e.changed("f")
	e.stat("f")
	e.ftGetxattr("f", "system.posix_acl_access").want(unix.ENODATA)
	// Removing what is not there.
	e.ftRemovexattr("f", "system.posix_acl_access")
	e.ftRemovexattr("f", "system.posix_acl_default")
	e.ftTool("setfacl", "-m", "u:1002:r", "f").ok()
	e.ftRemovexattr("f", "system.posix_acl_access").ok()
	e.stat("f")
	// Invalid ACLs, and the raw interface.
	e.ftSetxattr("f", "system.posix_acl_access", "junk", 0)
	e.ftSetxattr("f", "system.posix_acl_access", "\x02\x00\x00\x00", 0)
	e.ftTool("setfacl", "-m", "d:u:1002:r", "f")
	e.ftSetxattr("f", "system.posix_acl_default", "\x02\x00\x00\x00\x01\x00\x06\x00\xff\xff\xff\xff\x04\x00\x04\x00\xff\xff\xff\xff\x20\x00\x04\x00\xff\xff\xff\xff", 0)
	e.ftSetxattr("f", "system.other", "x", 0)
	e.ftGetxattr("f", "system.other")
	e.mkdir("d", 0o750).ok()
	e.ftTool("setfacl", "-m", "u:1002:rwx", "d").ok()
	e.ftTool("setfacl", "-d", "-m", "u:1002:r", "d").ok()
	e.ftListxattr("d")
	e.ftGetfacl("d")
	e.stat("d")
	e.chmod("d", 0o700).ok()
	e.ftGetfacl("d")
	e.ftTool("setfacl", "-k", "d").ok()
	e.ftListxattr("d")
	e.ftSetxattr("d", "user.x", "1", 0).ok()
	e.ftSetxattr("d", "security.x", "1", 0)
	e.ftListxattr("d")
}

// ftACLEnforcedSetup: Alice's file and directory with named entries for
// Bob and the staff group.
func ftACLEnforcedSetup(e *nsEnv) {
	e.mkfile("f", "secret").ok()
	e.chmod("f", 0o600).ok()
	e.ftTool("setfacl", "-m", "u:1002:r,g:2001:rw", "f").ok()
	e.mkdir("d", 0o700).ok()
	e.mkfile("d/inner", "x").ok()
	e.ftTool("setfacl", "-m", "u:1002:rx,g:2001:rwx", "d").ok()
	e.mkdir("nobob", 0o777).ok()
	e.ftTool("setfacl", "-m", "u:1002:---", "nobob").ok()
	e.ftGetfacl("f", "d", "nobob")
}

// ftACLEnforcedCheck is what each user may do now.
func ftACLEnforcedCheck(e *nsEnv) {
	e.ftAccess("f")
	e.ftAccess("d")
	e.ftAccess("nobob")
	e.readFile("d/inner")
}

// ftACLEnforcedTighten: the mask limits the named entries.
func ftACLEnforcedTighten(e *nsEnv) {
	e.chmod("f", 0o600).ok()
	e.ftTool("setfacl", "-m", "m::r", "d").ok()
	e.ftGetfacl("f", "d")
}

func ftACLOwnerSetup(e *nsEnv) {
	e.mkfile("mine", "x").ok()
	e.chmod("mine", 0o666).ok()
	e.mkdir("mydir", 0o777).ok()
}

// ftACLNotOwner: only the owner (or CAP_FOWNER) sets ACLs, even with
// write permission.
func ftACLNotOwner(e *nsEnv) {
	e.ftTool("setfacl", "-m", "u:1002:rw", "mine")
	e.ftTool("setfacl", "-d", "-m", "u:1002:rw", "mydir")
	e.ftTool("setfacl", "-b", "mine")
	e.ftGetfacl("mine")
	e.ftGetxattr("mine", "system.posix_acl_access")
}

func ftACLRootSets(e *nsEnv) {
	e.ftTool("setfacl", "-m", "u:1002:rw", "mine").ok()
	e.ftTool("setfacl", "-d", "-m", "u:1002:rw", "mydir").ok()
	e.ftGetfacl("mine", "mydir")
	e.stat("mine")
}

// ftACLDefaults: default ACLs passed on to files, directories, FIFOs,
// O_TMPFILE files and symlinks made with several modes, under the
// phase's umask, and on down the tree.
func ftACLDefaults(e *nsEnv) {
	e.mkdir("plain", 0o777).ok()
	e.stat("plain")
	e.mkdir("d", 0o777).ok()
	e.ftTool("setfacl", "-d", "-m", "u:1002:rwx,g:2001:rx,m::rwx,o::r", "d").ok()
	e.ftGetfacl("d")
	for _, mode := range []uint32{0o777, 0o666, 0o640, 0o600, 0o000, 0o4755} {
		f := fmt.Sprintf("d/f%04o", mode)
		e.close(e.open(f, oCreate, mode).ok().file)
		e.stat(f)
		e.ftGetfacl(f)
		sub := fmt.Sprintf("d/sub%04o", mode)
		e.mkdir(sub, mode).ok()
		e.stat(sub)
		e.ftGetfacl(sub)
		e.close(e.open(fmt.Sprintf("plain/f%04o", mode), oCreate, mode).ok().file)
		e.stat(fmt.Sprintf("plain/f%04o", mode))
	}
	e.mknod("d/fifo", unix.S_IFIFO|0o666, 0).ok()
	e.stat("d/fifo")
	e.ftGetfacl("d/fifo")
	e.symlink("target", "d/link").ok()
	e.stat("d/link")
	e.ftGetxattr("d/link", "system.posix_acl_access").want(unix.EOPNOTSUPP)
	e.ftTmpfile("d", "d/tmp", 0o666).ok()
	e.stat("d/tmp")
	e.ftGetfacl("d/tmp")
	e.mkdir("d/sub0777/deeper", 0o755).ok()
	e.stat("d/sub0777/deeper")
	e.ftGetfacl("d/sub0777/deeper")
	e.mkfile("d/sub0777/deeper/file", "x").ok()
	e.stat("d/sub0777/deeper/file")
	e.ftGetfacl("d/sub0777/deeper/file")
	e.ftListxattr("d/sub0777")
}

// ftACLDefaultMinimal: a default ACL of only the base entries (no mask,
// no named entries) masks the mode but leaves no access ACL.
func ftACLDefaultMinimal(e *nsEnv) {
	e.mkdir("d", 0o755).ok()
	e.ftTool("setfacl", "-d", "--set", "u::rwx,g::r-x,o::---", "d").ok()
	e.ftGetfacl("d")
	e.close(e.open("d/f", oCreate, 0o666).ok().file)
	e.stat("d/f")
	e.ftListxattr("d/f")
	e.mkdir("d/s", 0o777).ok()
	e.stat("d/s")
	e.ftListxattr("d/s")
}

// ftACLSetgidSetup: a set-group-ID staff directory with a default ACL,
// and set-group-ID files of Alice's and Carol's in the staff group.
func ftACLSetgidSetup(e *nsEnv) {
	e.mkdir("sg", 0o777).ok()
	e.chown("sg", 0, ftStaff).ok()
	e.chmod("sg", 0o2777).ok()
	e.ftTool("setfacl", "-d", "-m", "g:2001:rwx,u:1001:rw", "sg").ok()
	for _, who := range []struct {
		name string
		uid  int
	}{{"alice-file", 1001}, {"alice-file2", 1001}, {"carol-file", 1003}} {
		e.mkfile(who.name, "x").ok()
		e.chown(who.name, who.uid, ftStaff).ok()
		e.chmod(who.name, 0o2775).ok()
	}
	e.stat("sg")
}

func ftACLSetgidMember(e *nsEnv) {
	e.mkdir("sg/dir", 0o777).ok()
	e.stat("sg/dir")
	e.ftGetfacl("sg/dir")
	e.close(e.open("sg/file", oCreate, 0o2777).ok().file)
	e.stat("sg/file")
	e.ftGetfacl("sg/file")
	e.mkdir("sg/dir/deeper", 0o700).ok()
	e.stat("sg/dir/deeper")
	// A staff member keeps the bit when setting an ACL.
	e.ftTool("setfacl", "-m", "u:1002:r", "carol-file").ok()
	e.stat("carol-file")
}

// ftACLSetgidNonMember: Alice is not in staff: setting (or removing) an
// access ACL clears the set-group-ID bit of her file, as chmod would.
func ftACLSetgidNonMember(e *nsEnv) {
	e.close(e.open("sg/alice", oCreate, 0o2777).ok().file)
	e.stat("sg/alice")
	e.ftGetfacl("sg/alice")
	e.ftTool("setfacl", "-m", "u:1002:r", "alice-file").ok()
	e.stat("alice-file")
	e.ftTool("setfacl", "-b", "alice-file").ok()
	e.stat("alice-file")
	e.ftTool("setfacl", "-b", "alice-file2").ok()
	e.stat("alice-file2")
	e.ftTool("setfacl", "-d", "-m", "u:1002:r", "sg/alice")
	e.chmod("alice-file2", 0o2755).ok()
	e.stat("alice-file2")
}

func ftACLSetgidAfter(e *nsEnv) {
	e.chmod("alice-file", 0o2775).ok()
	e.ftTool("setfacl", "-m", "u:1002:rw", "alice-file").ok()
	e.stat("alice-file")
	e.ftGetfacl("alice-file")
}

// ftACLNodeTypes: ACLs on a FIFO, a symlink (the kernel follows or
// refuses), a device-less special, and the xattr interface on each.
func ftACLNodeTypes(e *nsEnv) {
	e.mknod("fifo", unix.S_IFIFO|0o640, 0).ok()
	e.ftTool("setfacl", "-m", "u:1002:rw", "fifo").ok()
	e.stat("fifo")
	e.ftGetfacl("fifo")
	e.mkfile("target", "x").ok()
	e.symlink("target", "link").ok()
	e.ftTool("setfacl", "-m", "u:1002:r", "link").ok()
	e.ftGetfacl("target")
	e.ftTool("setfacl", "-h", "-m", "u:1002:r", "link")
	e.ftGetxattr("link", "system.posix_acl_access")
	e.ftSetxattr("link", "system.posix_acl_access", "\x02\x00\x00\x00\x01\x00\x06\x00\xff\xff\xff\xff\x04\x00\x04\x00\xff\xff\xff\xff\x20\x00\x04\x00\xff\xff\xff\xff", 0)
	e.mknod("sock", unix.S_IFSOCK|0o600, 0).ok()
	e.ftTool("setfacl", "-m", "g:2001:rw", "sock").ok()
	e.stat("sock")
	e.ftListxattr("sock")
}

// TestACLRootLookupCostAndNoACL pins a cost of ACLs the kernel imposes:
// it made the inode of a FUSE mount's root before the daemon said it
// supports ACLs, and never caches that inode's ACL, so every path lookup
// through the root by a user who does not own it asks the daemon for
// system.posix_acl_access. --no-acl spares it, and then refuses ACLs as
// a filesystem without them does (EOPNOTSUPP), instead of storing ACLs
// the kernel would not enforce.
func TestACLRootLookupCostAndNoACL(t *testing.T) {
	requireRoot(t)
	for _, noACL := range []bool{false, true} {
		t.Run(fmt.Sprintf("no-acl=%v", noACL), func(t *testing.T) {
			args := []string{"--allow-other", "--debug"}
			if noACL {
				args = append(args, "--no-acl")
			}
			m := startMount(t, args...)
			nsMakeReachable(t, m.Dir)
			if err := os.WriteFile(m.Path("f"), []byte("x"), 0o644); err != nil {
				t.Fatal(err)
			}
			before := strings.Count(m.Stderr.String(), `"system.posix_acl_access"`)
			out, err := exec.Command("setpriv", "--reuid=1001", "--regid=1001", "--clear-groups",
				"sh", "-c", `for i in 1 2 3 4 5; do stat -c %i "$1" >/dev/null || exit 1; done`, "sh", m.Path("f")).CombinedOutput()
			if err != nil {
				t.Fatalf("stat as uid 1001: %v\n%s", err, out)
			}
			asked := strings.Count(m.Stderr.String(), `"system.posix_acl_access"`) - before
			switch {
			case noACL && asked != 0:
				t.Errorf("with --no-acl the daemon was asked for the root's ACL %d times", asked)
			case !noACL && asked < 5:
				t.Errorf("the daemon was asked for the root's ACL %d times for 5 lookups by a non-owner: "+
					"the kernel caches it now; drop --no-acl's reason and this test", asked)
			}
			err = unix.Setxattr(m.Path("f"), "system.posix_acl_access", aclBaseEntries, 0)
			if noACL && err != unix.EOPNOTSUPP {
				t.Errorf("setting an ACL with --no-acl: %v, want EOPNOTSUPP", err)
			} else if !noACL && err != nil {
				t.Errorf("setting an ACL: %v", err)
			}
		})
	}
}

// aclBaseEntries is an ACL of user::rw-, group::r--, other::r--.
var aclBaseEntries = []byte("\x02\x00\x00\x00\x01\x00\x06\x00\xff\xff\xff\xff\x04\x00\x04\x00\xff\xff\xff\xff\x20\x00\x04\x00\xff\xff\xff\xff")

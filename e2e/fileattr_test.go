package e2e

// chattr flags (FS_IOC_GETFLAGS/SETFLAGS, FS_IOC_FSGETXATTR/FSSETXATTR)
// and their enforcement, and birth time (statx btime), against tmpfs.

import (
	"fmt"
	"unsafe"

	"golang.org/x/sys/unix"
)

func ftFileattrScenarios() []ftScenario {
	return []ftScenario{
		{name: "chattr-immutable", phases: []ftPhase{{as: ftRoot, run: ftImmutable}}},
		{name: "chattr-immutable-dir", phases: []ftPhase{{as: ftRoot, run: ftImmutableDir}}},
		{name: "chattr-append", phases: []ftPhase{{as: ftRoot, run: ftAppendOnly}}},
		{name: "chattr-append-dir", phases: []ftPhase{{as: ftRoot, run: ftAppendOnlyDir}}},
		{name: "chattr-who", phases: []ftPhase{
			{as: ftAlice, run: ftChattrOwner},
			{as: ftBob, run: ftChattrOther},
			{as: ftRoot, run: ftChattrRoot},
			{as: ftAlice, run: ftChattrOwnerAfter},
		}},
		{name: "chattr-inherit-and-unsupported", phases: []ftPhase{{as: ftRoot, run: ftChattrInherit}}},
		{name: "chattr-noatime", phases: []ftPhase{{as: ftRoot, run: ftChattrNoatime}}},
		{name: "btime", phases: []ftPhase{{as: ftAlice, run: ftBtimeSteps}}},
		{name: "chattr-seen-by-the-vfs", phases: []ftPhase{{as: ftRoot, run: ftChattrVFSOnly}}, known: ftKnownVFSFlags},
	}
}

// Flags as FS_IOC_GETFLAGS reports them.
const (
	fsImmutableFl = 0x10
	fsAppendFl    = 0x20
	fsNodumpFl    = 0x40
	fsNoatimeFl   = 0x80
	fsSyncFl      = 0x08
)

func (e *nsEnv) ftGetflags(name string) nsResult {
	var flags uint32
	err := e.ftIoctlOn(name, func(fd int) error {
		v, err := unix.IoctlGetUint32(fd, unix.FS_IOC_GETFLAGS)
		flags = v
		return err
	})
	return e.recordx("FS_IOC_GETFLAGS("+name+")", err, fmt.Sprintf("%#x", flags))
}

func (e *nsEnv) ftSetflags(name string, flags uint32) nsResult {
	err := e.ftIoctlOn(name, func(fd int) error {
		return unix.IoctlSetPointerInt(fd, unix.FS_IOC_SETFLAGS, int(flags))
	})
	return e.record(fmt.Sprintf("FS_IOC_SETFLAGS(%s, %#x)", name, flags), err)
}

// FS_IOC_FSGETXATTR and FS_IOC_FSSETXATTR (not in x/sys/unix).
const (
	fsIocFsgetxattr = 0x801c581f
	fsIocFssetxattr = 0x401c5820
)

// fsxattr is struct fsxattr.
type fsxattr struct {
	Xflags     uint32
	Extsize    uint32
	Nextents   uint32
	Projid     uint32
	Cowextsize uint32
	Pad        [8]byte
}

func (e *nsEnv) ftFsgetxattr(name string) nsResult {
	var fa fsxattr
	err := e.ftIoctlOn(name, func(fd int) error {
		_, _, errno := unix.Syscall(unix.SYS_IOCTL, uintptr(fd), fsIocFsgetxattr, uintptr(unsafe.Pointer(&fa)))
		if errno != 0 {
			return errno
		}
		return nil
	})
	return e.recordx("FS_IOC_FSGETXATTR("+name+")", err, fmt.Sprintf("%+v", fa))
}

func (e *nsEnv) ftFssetxattr(name string, fa fsxattr) nsResult {
	err := e.ftIoctlOn(name, func(fd int) error {
		_, _, errno := unix.Syscall(unix.SYS_IOCTL, uintptr(fd), fsIocFssetxattr, uintptr(unsafe.Pointer(&fa)))
		if errno != 0 {
			return errno
		}
		return nil
	})
	return e.record(fmt.Sprintf("FS_IOC_FSSETXATTR(%s, %+v)", name, fa), err)
}

// ftIoctlOn runs an ioctl on name opened read-only (non-blocking, for a
// FIFO), as chattr and lsattr do.
func (e *nsEnv) ftIoctlOn(name string, do func(fd int) error) error {
	fd, err := unix.Open(e.p(name), unix.O_RDONLY|unix.O_NONBLOCK|unix.O_CLOEXEC|unix.O_NOFOLLOW, 0)
	if err != nil {
		return err
	}
	defer unix.Close(fd)
	return do(fd)
}

func (e *nsEnv) ftFallocate(f *nsFile, mode uint32, off, length int64) nsResult {
	return e.record(fmt.Sprintf("fallocate(%s, %#x, %d, %d)", nsLabel(f), mode, off, length), unix.Fallocate(nsFd(f), mode, off, length))
}

// ftWriteChecks: what can be done to a file (or through a descriptor
// opened before its flags changed).
func ftWriteChecks(e *nsEnv, name string, before *nsFile) {
	e.open(name, unix.O_WRONLY, 0)
	e.open(name, unix.O_RDWR, 0)
	e.open(name, unix.O_WRONLY|unix.O_APPEND, 0)
	e.open(name, unix.O_RDONLY|unix.O_TRUNC, 0)
	e.open(name, unix.O_WRONLY|unix.O_APPEND|unix.O_TRUNC, 0)
	e.open(name, unix.O_RDONLY, 0)
	e.open(name, unix.O_CREAT|unix.O_WRONLY, 0o644)
	e.write(before, "+old fd")
	e.pwrite(before, "X", 0)
	e.ftruncate(before, 2)
	e.ftFallocate(before, 0, 0, 40)
	e.ftFallocate(before, unix.FALLOC_FL_KEEP_SIZE, 0, 8192)
	e.ftFallocate(before, unix.FALLOC_FL_PUNCH_HOLE|unix.FALLOC_FL_KEEP_SIZE, 0, 4096)
	e.truncate(name, 1)
	e.chmod(name, 0o600)
	e.chown(name, 1002, -1)
	e.chown(name, -1, -1)
	e.utimes(name, nil, 0)
	e.utimes(name, []unix.Timespec{{Sec: 5}, {Sec: 6}}, 0)
	e.ftSetxattr(name, "user.x", "1", 0)
	e.ftRemovexattr(name, "user.gone")
	e.ftTool("setfacl", "-m", "u:1002:r", name)
	e.link(name, name+".link")
	e.rename(name, name+".moved")
	e.mkfile(name+".other", "o").ok()
	e.rename(name+".other", name)
	e.renameat2(name+".other", name, unix.RENAME_EXCHANGE)
	e.unlink(name)
	e.stat(name)
	e.readFile(name)
}

func ftImmutable(e *nsEnv) {
	e.mkfile("f", "data").ok()
	e.ftSetxattr("f", "user.gone", "1", 0).ok()
	before := e.open("f", unix.O_RDWR, 0).ok().file
	e.mark("f")
	e.ftTool("chattr", "+i", "f").ok()
	e.changed("f")
	e.ftTool("lsattr", "f")
	e.ftGetflags("f")
	e.ftFsgetxattr("f")
	ftWriteChecks(e, "f", before)
	e.ftTool("chattr", "+d", "f").ok()
	e.ftTool("chattr", "-i", "f").ok()
	e.ftTool("lsattr", "f")
	e.unlink("f").ok()
}

func ftImmutableDir(e *nsEnv) {
	e.mkdir("d", 0o777).ok()
	e.mkfile("d/old", "x").ok()
	e.mkdir("d/sub", 0o755).ok()
	e.mkfile("outside", "y").ok()
	e.ftTool("chattr", "+i", "d").ok()
	e.ftTool("lsattr", "-d", "d")
	e.open("d/new", oCreate, 0o644)
	e.mkdir("d/newdir", 0o755)
	e.mknod("d/fifo", unix.S_IFIFO|0o644, 0)
	e.symlink("x", "d/link")
	e.link("outside", "d/hard")
	e.ftTmpfile("d", "d/tmp", 0o644)
	e.unlink("d/old")
	e.rmdir("d/sub")
	e.rename("d/old", "old")
	e.rename("outside", "d/outside")
	e.rename("d/old", "d/old2")
	e.renameat2("d/old", "d/new", unix.RENAME_WHITEOUT)
	e.rmdir("d")
	e.rename("d", "d2")
	e.chmod("d", 0o700)
	e.ftSetxattr("d", "user.x", "1", 0)
	e.writeInside(e.open("d/old", unix.O_WRONLY, 0).file)
	e.mkdir("d/sub/deeper", 0o755).ok()
	e.list("d")
	e.ftTool("chattr", "-i", "d").ok()
	e.unlink("d/old").ok()
}

// writeInside writes through a descriptor that may not be open.
func (e *nsEnv) writeInside(f *nsFile) {
	e.write(f, "w")
	if f != nil {
		e.close(f)
	}
}

func ftAppendOnly(e *nsEnv) {
	e.mkfile("f", "data").ok()
	e.ftSetxattr("f", "user.gone", "1", 0).ok()
	before := e.open("f", unix.O_RDWR, 0).ok().file
	e.ftTool("chattr", "+a", "f").ok()
	e.ftTool("lsattr", "f")
	e.ftGetflags("f")
	appender := e.open("f", unix.O_WRONLY|unix.O_APPEND, 0).ok().file
	e.write(appender, "+appended")
	e.pwrite(appender, "P", 0)
	ftWriteChecks(e, "f", before)
	e.ftTool("chattr", "-a", "f").ok()
	e.unlink("f").ok()
}

func ftAppendOnlyDir(e *nsEnv) {
	e.mkdir("d", 0o777).ok()
	e.mkfile("d/old", "x").ok()
	e.mkfile("d/victim", "v").ok()
	e.mkfile("outside", "y").ok()
	e.mkfile("outside2", "z").ok()
	e.ftTool("chattr", "+a", "d").ok()
	e.close(e.open("d/new", oCreate, 0o644).file)
	e.mkdir("d/newdir", 0o755)
	e.symlink("x", "d/link")
	e.link("outside", "d/hard")
	e.unlink("d/old")
	e.rename("d/old", "old")
	e.rename("outside2", "d/moved-in")
	e.rename("outside", "d/victim")
	e.rmdir("d/newdir")
	e.writeInside(e.open("d/old", unix.O_WRONLY, 0).file)
	e.list("d")
	e.ftTool("chattr", "-a", "d").ok()
}

func ftChattrOwner(e *nsEnv) {
	e.mkfile("f", "x").ok()
	e.mkdir("d", 0o777).ok()
	e.ftTool("chattr", "+d", "f").ok()
	e.ftTool("chattr", "+i", "f")
	e.ftTool("chattr", "+a", "f")
	e.ftSetflags("f", fsImmutableFl)
	e.ftSetflags("f", fsNoatimeFl|fsNodumpFl)
	e.ftTool("lsattr", "f")
	e.mkfile("g", "x").ok()
	e.chmod("g", 0o666).ok()
}

func ftChattrOther(e *nsEnv) {
	e.ftTool("lsattr", "f")
	e.ftTool("chattr", "-d", "f")
	e.ftSetflags("g", fsNodumpFl)
	e.ftGetflags("g")
}

func ftChattrRoot(e *nsEnv) {
	e.ftTool("chattr", "+i", "f").ok()
	e.ftTool("lsattr", "f")
}

func ftChattrOwnerAfter(e *nsEnv) {
	e.ftTool("chattr", "-i", "f")
	e.ftTool("chattr", "-d", "f")
	e.ftSetflags("f", fsImmutableFl)
	e.ftTool("lsattr", "f")
}

func ftChattrInherit(e *nsEnv) {
	e.mkdir("d", 0o755).ok()
	e.ftTool("chattr", "+dA", "d").ok()
	e.ftTool("lsattr", "-d", "d")
	e.mkfile("d/f", "x").ok()
	e.mkdir("d/sub", 0o755).ok()
	e.mkfile("d/sub/g", "x").ok()
	e.ftTmpfile("d", "d/tmp", 0o600).ok()
	e.ftTool("lsattr", "-d", "d/f", "d/sub", "d/sub/g", "d/tmp") // one by one: readdir order differs
	e.ftTool("chattr", "+i", "d")
	e.mkdir("e", 0o755).ok()
	e.ftTool("chattr", "+ia", "e").ok()
	e.mkfile("e2", "x").ok()
	e.ftTool("chattr", "+i", "e2").ok()
	e.close(e.open("e2", unix.O_RDONLY, 0).file)
	e.ftTool("chattr", "-i", "e2").ok()
	e.ftTool("lsattr", "-d", "e")
	// What tmpfs does not support.
	e.mkfile("f", "x").ok()
	e.ftTool("chattr", "+S", "f")
	e.ftTool("chattr", "+c", "f")
	e.ftTool("chattr", "+j", "f")
	e.ftSetflags("f", fsSyncFl)
	e.ftSetflags("f", 0x80000)
	e.ftFssetxattr("f", fsxattr{Xflags: 0x8}) // FS_XFLAG_IMMUTABLE
	e.ftGetflags("f")
	e.ftFsgetxattr("f")
	e.ftFssetxattr("f", fsxattr{Xflags: 0x8, Projid: 5})
	e.ftFssetxattr("f", fsxattr{Xflags: 0x8 | 0x1}) // FS_XFLAG_REALTIME
	e.ftFssetxattr("f", fsxattr{Xflags: 0x20})      // FS_XFLAG_SYNC
	e.ftFssetxattr("f", fsxattr{Xflags: 0x80 | 0x40})
	e.ftGetflags("f")
	e.ftFssetxattr("f", fsxattr{})
	e.mknod("fifo", unix.S_IFIFO|0o644, 0).ok()
	e.ftGetflags("fifo")
	e.ftSetflags("fifo", fsNodumpFl)
	e.symlink("f", "link").ok()
	e.ftTool("lsattr", "-d", "link")
}

func ftChattrNoatime(e *nsEnv) {
	e.mkdir("d", 0o755).ok()
	e.mkfile("d/f", "data").ok()
	e.mark("d")
	e.list("d")
	e.changed("d")
	e.ftTool("chattr", "+A", "d").ok()
	e.mark("d")
	e.list("d")
	e.changed("d")
}

// btimes remembers birth times between steps of one phase.
var btimes = map[string]unix.StatxTimestamp{}

// ftBtime logs whether statx gives a birth time, and how it relates to
// what the node's earlier steps saw (absolute times differ between runs).
func (e *nsEnv) ftBtime(name string) nsResult {
	var stx unix.Statx_t
	err := unix.Statx(unix.AT_FDCWD, e.p(name), unix.AT_SYMLINK_NOFOLLOW, unix.STATX_BASIC_STATS|unix.STATX_BTIME, &stx)
	extra := ""
	if err == nil {
		if stx.Mask&unix.STATX_BTIME == 0 {
			extra = "no btime"
		} else {
			bt := stx.Btime
			before := func(a, b unix.StatxTimestamp) bool {
				return a.Sec < b.Sec || a.Sec == b.Sec && a.Nsec <= b.Nsec
			}
			extra = fmt.Sprintf("btime<=ctime:%v btime<=mtime:%v", before(bt, stx.Ctime), before(bt, stx.Mtime))
			if old, ok := btimes[name]; ok {
				extra += fmt.Sprintf(" unchanged:%v", old == bt)
			}
			btimes[name] = bt
		}
	}
	return e.recordx("statx(btime, "+name+")", err, extra)
}

func ftBtimeSteps(e *nsEnv) {
	e.mkfile("f", "x").ok()
	e.ftBtime("f")
	e.mkdir("d", 0o755).ok()
	e.ftBtime("d")
	e.symlink("f", "l").ok()
	e.ftBtime("l")
	e.mknod("p", unix.S_IFIFO|0o600, 0).ok()
	e.ftBtime("p")
	e.ftBtime(".")
	nsWaitForClockTick()
	f := e.open("f", unix.O_WRONLY|unix.O_APPEND, 0).ok().file
	e.write(f, "more")
	e.close(f)
	e.chmod("f", 0o600).ok()
	e.utimes("f", []unix.Timespec{{Sec: 100}, {Sec: 100}}, 0).ok()
	e.ftBtime("f")
	e.rename("f", "g").ok()
	btimes["g"] = btimes["f"]
	e.ftBtime("g")
	e.mkfile("d/inner", "x").ok()
	e.ftBtime("d")
}

// ftKnownVFSFlags explains ftChattrVFSOnly.
const ftKnownVFSFlags = "the kernel reads the immutable and append-only flags from the inode (S_IMMUTABLE, " +
	"S_APPEND), which FUSE never sets: access(2) asks no daemon and says a write is allowed, and statx(2) " +
	"carries no STATX_ATTR_* flags from a FUSE daemon; every operation the daemon serves is refused as on tmpfs"

// ftChattrVFSOnly: what only the VFS can say about the flags.
func ftChattrVFSOnly(e *nsEnv) {
	e.mkfile("f", "x").ok()
	e.ftTool("chattr", "+ia", "f").ok()
	e.record("access(f, W_OK)", unix.Access(e.p("f"), unix.W_OK))
	var stx unix.Statx_t
	err := unix.Statx(unix.AT_FDCWD, e.p("f"), 0, unix.STATX_BASIC_STATS, &stx)
	const shown = unix.STATX_ATTR_IMMUTABLE | unix.STATX_ATTR_APPEND | unix.STATX_ATTR_NODUMP
	e.recordx("statx(f) attributes", err, fmt.Sprintf("%#x of %#x", stx.Attributes&shown, stx.Attributes_mask&shown))
	e.ftTool("chattr", "-ia", "f").ok()
}

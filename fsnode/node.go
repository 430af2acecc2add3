package fsnode

import (
	"context"
	"sync"
	"syscall"
	"time"

	"github.com/hanwen/go-fuse/v2/fs"
	"github.com/hanwen/go-fuse/v2/fuse"
)

const (
	fuseDirMode = syscall.S_IFDIR
	maxNameLen  = 255 // NAME_MAX, as tmpfs
	maxLinks    = 1<<32 - 1
	blockSize   = 4096 // st_blksize
)

// timespec is a time as the kernel keeps it: seconds and nanoseconds, with
// the full range of 64-bit seconds that utimensat(2) accepts.
type timespec struct {
	sec  int64
	nsec uint32
}

func nowTimespec() timespec { return toTimespec(time.Now()) }

func toTimespec(t time.Time) timespec {
	return timespec{sec: t.Unix(), nsec: uint32(t.Nanosecond())}
}

func (t timespec) before(u timespec) bool {
	return t.sec < u.sec || (t.sec == u.sec && t.nsec < u.nsec)
}

// node is what every kind of node has: its place in go-fuse and its
// attributes. The concrete types (Dir, File, Symlink, Special) embed it.
type node struct {
	fs.Inode
	root *Root

	mu    sync.Mutex // guards the fields below
	mode  uint32     // file type and permission bits
	uid   uint32
	gid   uint32
	nlink uint32 // changed only with root.tree held too
	rdev  uint32
	atime timespec
	mtime timespec
	ctime timespec
	btime timespec // birth time (btime.go)

	fsflags uint32 // chattr flags (fileattr.go)

	xattrs map[string][]byte
	// metaDropped: the node is gone and what it was charged given back
	// (metadata.go); its xattrs stay empty.
	metaDropped bool
}

// inode is implemented by every node type: it lets directories hold and
// describe children of any kind.
type inode interface {
	fs.InodeEmbedder
	base() *node
	// fillAttr writes the node's full attributes into out.
	fillAttr(out *fuse.Attr) syscall.Errno
}

func (n *node) base() *node { return n }

func (n *node) ino() uint64 { return n.StableAttr().Ino }

// fillCommonAttr writes the attributes every node type shares. n.mu must be
// held.
func (n *node) fillCommonAttrLocked(out *fuse.Attr) {
	out.Ino = n.ino()
	out.Mode = n.mode
	out.Nlink = n.nlink
	out.Owner = fuse.Owner{Uid: n.uid, Gid: n.gid}
	out.Rdev = n.rdev
	out.Blksize = blockSize
	out.Atime, out.Atimensec = uint64(n.atime.sec), n.atime.nsec
	out.Mtime, out.Mtimensec = uint64(n.mtime.sec), n.mtime.nsec
	out.Ctime, out.Ctimensec = uint64(n.ctime.sec), n.ctime.nsec
}

// initNode sets up a new node's attributes for a caller creating it in
// parent with mode (type and permissions, umask already applied by the
// kernel), following inode_init_owner: the caller owns it, and a setgid
// parent passes on its group (and, to directories, the setgid bit).
func initNode(n *node, r *Root, parent *Dir, caller *fuse.Caller, mode uint32) {
	now := nowTimespec()
	n.root = r
	n.mode = mode
	n.uid, n.gid = caller.Uid, caller.Gid
	parent.mu.Lock()
	n.fsflags = parent.fsflags & flInherited
	if parent.mode&syscall.S_ISGID != 0 {
		n.gid = parent.gid
		if mode&syscall.S_IFMT == syscall.S_IFDIR {
			n.mode |= syscall.S_ISGID
		}
	}
	parent.mu.Unlock()
	n.atime, n.mtime, n.ctime, n.btime = now, now, now, now
}

// touchChange marks a change of the node's contents: mtime and ctime.
func (n *node) touchChange() {
	now := nowTimespec()
	n.mu.Lock()
	n.mtime, n.ctime = now, now
	n.mu.Unlock()
}

// touchCtime marks a change of the node's attributes or links.
func (n *node) touchCtime() {
	now := nowTimespec()
	n.mu.Lock()
	n.ctime = now
	n.mu.Unlock()
}

// addLinks changes the link count. root.tree must be held.
func (n *node) addLinks(delta int) {
	n.mu.Lock()
	n.nlink = uint32(int64(n.nlink) + int64(delta))
	n.mu.Unlock()
}

func (n *node) links() uint32 {
	n.mu.Lock()
	defer n.mu.Unlock()
	return n.nlink
}

// applySetattr applies the attribute changes of a SETATTR request other
// than size and marks ctime as tmpfs would; stamp says a truncate marks
// mtime and ctime. Permission checks are the kernel's (default_permissions).
func (n *node) applySetattr(caller *fuse.Caller, in *fuse.SetAttrIn, stamp bool) {
	now := toTimespec(time.Now())
	n.mu.Lock()
	defer n.mu.Unlock()
	const (
		noAttrs  = fuse.FATTR_FH | fuse.FATTR_LOCKOWNER
		sizeOnly = noAttrs | fuse.FATTR_SIZE | fuse.FATTR_KILL_SUIDGID
	)
	changed := stamp || in.Valid&^sizeOnly != 0
	if mode, ok := in.GetMode(); ok {
		n.mode = n.mode&syscall.S_IFMT | mode
		n.chmodACLLocked(n.mode)
	}
	if uid, ok := in.GetUID(); ok {
		n.uid = uid
	}
	if gid, ok := in.GetGID(); ok {
		n.gid = gid
	}
	if in.Valid&fuse.FATTR_KILL_SUIDGID != 0 && n.killSuidLocked(caller) {
		changed = true
	}
	if in.Valid&^noAttrs == 0 && n.mode&syscall.S_IFMT != syscall.S_IFDIR {
		// chown(f, -1, -1) arrives as a SETATTR with nothing in it; the
		// kernel leaves its effect on a non-directory to us: clear the
		// set-ID bits, as for any chown, and mark ctime.
		n.killSuidLocked(caller)
		changed = true
	}
	if t, ok := in.GetATime(); ok {
		n.atime = toTimespec(t)
	}
	if t, ok := in.GetMTime(); ok {
		n.mtime = toTimespec(t)
	} else if stamp {
		n.mtime = now
	}
	if t, ok := in.GetCTime(); ok {
		n.ctime = toTimespec(t)
	} else if changed || in.Valid&^noAttrs == 0 {
		n.ctime = now
	}
}

// killSuidLocked clears set-user-ID, and set-group-ID where group execute
// is set or the caller is neither in the file's group nor privileged, as
// the kernel does (should_remove_suid, setattr_should_drop_sgid) when a
// file is written, truncated or chowned; FUSE_HANDLE_KILLPRIV_V2 leaves it
// to us. It reports whether the mode changed.
func (n *node) killSuidLocked(caller *fuse.Caller) bool {
	old := n.mode
	n.mode &^= syscall.S_ISUID
	if n.mode&syscall.S_ISGID != 0 &&
		(n.mode&syscall.S_IXGRP != 0 || caller.Uid != 0 && !inGroup(caller, n.gid)) {
		n.mode &^= syscall.S_ISGID
	}
	return n.mode != old
}

func (n *node) killSuid(caller *fuse.Caller) {
	n.mu.Lock()
	if n.killSuidLocked(caller) {
		n.ctime = nowTimespec()
	}
	n.mu.Unlock()
}

// callerOf returns who made the request: every request from the kernel
// carries it.
func callerOf(ctx context.Context) *fuse.Caller {
	if c, ok := fuse.FromContext(ctx); ok {
		return c
	}
	return &fuse.Caller{}
}

// mayDelete applies the sticky-bit rule to removing or replacing victim's
// entry in dir: in a sticky directory only the owner of the entry, the
// owner of the directory, or root may. The kernel checks this first; the
// daemon checks again so that the rule holds even if the kernel's view of
// the attributes were stale.
func mayDelete(dir *Dir, victim inode, caller *fuse.Caller) bool {
	if caller.Uid == 0 {
		return true
	}
	dir.mu.Lock()
	sticky, dirUID := dir.mode&syscall.S_ISVTX != 0, dir.uid
	dir.mu.Unlock()
	if !sticky || caller.Uid == dirUID {
		return true
	}
	v := victim.base()
	v.mu.Lock()
	defer v.mu.Unlock()
	return caller.Uid == v.uid
}

// Statfs reports the mount's room, so that df is honest: Used is what
// the mount's files hold (RAM pages, their backing files' blocks, and
// metadata), not what the spill disk holds for others; Avail is what one
// file can still take and Size is Used plus what can still be written, in
// all: within --size if there is one, and within what the spill disk
// (less its reserve, without --size) and the memory budget have left.
// Inodes likewise: --inodes, or a number that will not run out.
func (n *node) Statfs(ctx context.Context, out *fuse.StatfsOut) syscall.Errno {
	r := n.root
	r.reclaims.waitSettled(reclaimWaitStatfs) // files just deleted free their space
	c, err := r.store.Capacity()
	if err != nil {
		return r.errno("statfs", err)
	}
	out.Bsize = blockSize
	out.Frsize = blockSize
	out.NameLen = maxNameLen
	out.Blocks = uint64(c.Total) / blockSize
	out.Bfree = uint64(c.Free) / blockSize
	out.Bavail = uint64(c.Avail) / blockSize
	used := uint64(r.Inodes())
	if limit := r.maxInodes.Load(); limit > 0 {
		out.Files = uint64(limit)
	} else {
		out.Files = max(used, 1<<32)
	}
	out.Ffree = out.Files - min(used, out.Files)
	return 0
}

package fsnode

import (
	"context"
	"encoding/binary"
	"syscall"

	"github.com/hanwen/go-fuse/v2/fs"
	"github.com/hanwen/go-fuse/v2/fuse"
	"golang.org/x/sys/unix"
)

// The inode flags tmpfs keeps (chattr(1)): immutable, append-only,
// no-dump and no-atime, read and set with FS_IOC_GETFLAGS/SETFLAGS and
// FS_IOC_FSGETXATTR/FSSETXATTR. The kernel sends these to FUSE as
// FUSE_IOCTL on a handle it opens for the purpose (regular files and
// directories only), after checking that the caller owns the node (or
// has CAP_FOWNER) and, to change immutable or append-only, has
// CAP_LINUX_IMMUTABLE; the daemon checks again, as a process can also
// send the 32-bit ioctl numbers straight to a file it has open.
//
// On tmpfs the VFS enforces the flags through the inode's S_IMMUTABLE
// and S_APPEND, which FUSE inodes never have, so the daemon refuses what
// tmpfs refuses (the checks in rawFS below, tested request by request
// against tmpfs). Where the kernel checks permissions first, a caller
// without write permission gets the kernel's EACCES where tmpfs says
// EPERM.
const (
	flSync      = 0x00000008 // FS_SYNC_FL
	flImmutable = 0x00000010 // FS_IMMUTABLE_FL
	flAppend    = 0x00000020 // FS_APPEND_FL
	flNodump    = 0x00000040 // FS_NODUMP_FL
	flNoatime   = 0x00000080 // FS_NOATIME_FL
	flDAX       = 0x02000000 // FS_DAX_FL

	// flModifiable are the flags tmpfs lets chattr set; flInherited are
	// those a new node takes from its directory.
	flModifiable = flImmutable | flAppend | flNodump | flNoatime
	flInherited  = flNodump | flNoatime
	// flLocked are the flags that refuse changes (the kernel's
	// IS_IMMUTABLE and IS_APPEND).
	flLocked = flImmutable | flAppend
)

// The FS_IOC_* numbers the kernel sends: the 32-bit GETFLAGS/SETFLAGS
// where it has compat ioctls (as on x86_64), else the native ones.
const (
	iocGetflags32  = 0x80046601
	iocSetflags32  = 0x40046602
	iocGetflags    = unix.FS_IOC_GETFLAGS
	iocSetflags    = unix.FS_IOC_SETFLAGS
	iocFsgetxattr  = 0x801c581f
	iocFssetxattr  = 0x401c5820
	fsxattrSize    = 28 // struct fsxattr
	xflagImmutable = 0x00000008
	xflagAppend    = 0x00000010
	xflagSync      = 0x00000020
	xflagNoatime   = 0x00000040
	xflagNodump    = 0x00000080
	xflagDAX       = 0x00008000
	// xflagCommon are the xflags that are also FS_*_FL flags
	// (FS_XFLAG_COMMON); any other is refused, as on tmpfs.
	xflagCommon = xflagSync | xflagImmutable | xflagAppend | xflagNodump | xflagNoatime | xflagDAX
)

// xflagOf maps the FS_XFLAG_* bits to FS_*_FL flags and back.
var xflagOf = [...]struct{ x, fl uint32 }{
	{xflagImmutable, flImmutable}, {xflagAppend, flAppend}, {xflagSync, flSync},
	{xflagNoatime, flNoatime}, {xflagNodump, flNodump}, {xflagDAX, flDAX},
}

var _ fs.NodeIoctler = (*node)(nil)

// Ioctl serves the flag ioctls; every other is ENOTTY, as on tmpfs.
func (n *node) Ioctl(ctx context.Context, f fs.FileHandle, cmd uint32, arg uint64, input []byte, output []byte) (int32, syscall.Errno) {
	switch cmd {
	case iocGetflags32, iocGetflags:
		if len(output) < 4 {
			return 0, syscall.EINVAL
		}
		n.mu.Lock()
		binary.NativeEndian.PutUint32(output, n.fsflags)
		n.mu.Unlock()
		return 0, 0
	case iocSetflags32, iocSetflags:
		if len(input) < 4 {
			return 0, syscall.EINVAL
		}
		return 0, n.setFlags(callerOf(ctx), binary.NativeEndian.Uint32(input))
	case iocFsgetxattr:
		if len(output) < fsxattrSize {
			return 0, syscall.EINVAL
		}
		clear(output)
		n.mu.Lock()
		flags := n.fsflags
		n.mu.Unlock()
		var x uint32
		for _, m := range xflagOf {
			if flags&m.fl != 0 {
				x |= m.x
			}
		}
		binary.NativeEndian.PutUint32(output, x)
		return 0, 0
	case iocFssetxattr:
		if len(input) < fsxattrSize {
			return 0, syscall.EINVAL
		}
		x := binary.NativeEndian.Uint32(input)
		extsize, projid, cowextsize := binary.NativeEndian.Uint32(input[4:]),
			binary.NativeEndian.Uint32(input[12:]), binary.NativeEndian.Uint32(input[16:])
		if x&^xflagCommon != 0 || extsize != 0 || projid != 0 || cowextsize != 0 {
			return 0, syscall.EOPNOTSUPP // tmpfs keeps no extent sizes or projects
		}
		var flags uint32
		for _, m := range xflagOf {
			if x&m.x != 0 {
				flags |= m.fl
			}
		}
		return 0, n.setFlags(callerOf(ctx), flags)
	}
	return 0, syscall.ENOTTY
}

// setFlags sets the node's flags as tmpfs's fileattr_set, after the
// checks of vfs_fileattr_set.
func (n *node) setFlags(caller *fuse.Caller, flags uint32) syscall.Errno {
	n.mu.Lock()
	owner, old := n.uid, n.fsflags
	n.mu.Unlock()
	if caller.Uid != owner && !callerCapable(caller, unix.CAP_FOWNER) {
		return syscall.EPERM
	}
	if (flags^old)&flLocked != 0 && !callerCapable(caller, unix.CAP_LINUX_IMMUTABLE) {
		return syscall.EPERM
	}
	if flags&^flModifiable != 0 {
		return syscall.EOPNOTSUPP
	}
	n.mu.Lock()
	n.fsflags = flags
	n.ctime = nowTimespec()
	n.mu.Unlock()
	// The kernel keeps the attributes it has after a FUSE_IOCTL: tell it
	// ctime moved (a negative offset invalidates attributes, no pages).
	n.NotifyContent(-1, 0)
	if old&flLocked == 0 && flags&flLocked != 0 {
		n.root.locked.Add(1)
	} else if old&flLocked != 0 && flags&flLocked == 0 {
		n.root.locked.Add(-1)
	}
	return 0
}

func (n *node) flags() uint32 {
	n.mu.Lock()
	defer n.mu.Unlock()
	return n.fsflags
}

// Enforcement. Each check finds the nodes a request is about by id and
// name; while no node is immutable or append-only (Root.locked), none
// looks.

// lockedNode returns the flags of node ino, or 0.
func (r *Root) lockedFlags(ino uint64) uint32 {
	if n := r.nodeByIno(ino); n != nil {
		return n.base().flags() & flLocked
	}
	return 0
}

// lockedChild returns the flags of dir/name, or 0.
func (r *Root) lockedChild(dir uint64, name string) uint32 {
	d, ok := r.nodeByIno(dir).(*Dir)
	if !ok {
		return 0
	}
	r.tree.RLock()
	child := d.entries.get(name)
	r.tree.RUnlock()
	if child == nil {
		return 0
	}
	return child.base().flags() & flLocked
}

// refuseOpen: nothing is opened for writing or truncated when immutable;
// when append-only, only for appending, never truncated (may_open).
func (r *Root) refuseOpen(in *fuse.OpenIn) bool {
	if r.locked.Load() == 0 {
		return false
	}
	fl := r.lockedFlags(in.NodeId)
	writes := in.Flags&syscall.O_ACCMODE != syscall.O_RDONLY
	trunc := in.Flags&syscall.O_TRUNC != 0
	return fl&flImmutable != 0 && (writes || trunc) ||
		fl&flAppend != 0 && (writes && in.Flags&syscall.O_APPEND == 0 || trunc)
}

// refuseCreate: nothing new in an immutable directory.
func (r *Root) refuseCreate(dir uint64) bool {
	return r.locked.Load() != 0 && r.lockedFlags(dir)&flImmutable != 0
}

// refuseRemove: no name goes from an immutable or append-only directory,
// and no immutable or append-only node loses a name (may_delete).
func (r *Root) refuseRemove(dir uint64, name string) bool {
	return r.locked.Load() != 0 && (r.lockedFlags(dir) != 0 || r.lockedChild(dir, name) != 0)
}

// refuseSetattr: no owner, mode, explicit times or truncate for either
// flag; no touch of an immutable node; a descriptor's ftruncate is
// refused only append-only (tmpfs lets an immutable file's earlier
// writable descriptor truncate it, as it lets it write).
func (r *Root) refuseSetattr(in *fuse.SetAttrIn) bool {
	if r.locked.Load() == 0 {
		return false
	}
	fl := r.lockedFlags(in.NodeId)
	if fl == 0 {
		return false
	}
	v := in.Valid
	timesSet := v&fuse.FATTR_ATIME != 0 && v&fuse.FATTR_ATIME_NOW == 0 ||
		v&fuse.FATTR_MTIME != 0 && v&fuse.FATTR_MTIME_NOW == 0
	touch := v&(fuse.FATTR_ATIME|fuse.FATTR_MTIME) != 0 && !timesSet
	switch {
	case v&(fuse.FATTR_MODE|fuse.FATTR_UID|fuse.FATTR_GID) != 0 || timesSet:
		return true
	case touch:
		return fl&flImmutable != 0
	case v&fuse.FATTR_SIZE != 0:
		return v&fuse.FATTR_FH == 0 || fl&flAppend != 0
	}
	return false
}

func (r *rawFS) SetAttr(cancel <-chan struct{}, in *fuse.SetAttrIn, out *fuse.AttrOut) fuse.Status {
	if r.root.refuseSetattr(in) {
		return fuse.EPERM
	}
	return r.mendAttr(r.RawFileSystem.SetAttr(cancel, in, out), in.NodeId, out)
}

func (r *rawFS) Unlink(cancel <-chan struct{}, in *fuse.InHeader, name string) fuse.Status {
	if r.root.refuseRemove(in.NodeId, name) {
		return fuse.EPERM
	}
	return r.RawFileSystem.Unlink(cancel, in, name)
}

func (r *rawFS) Rmdir(cancel <-chan struct{}, in *fuse.InHeader, name string) fuse.Status {
	if r.root.refuseRemove(in.NodeId, name) {
		return fuse.EPERM
	}
	return r.RawFileSystem.Rmdir(cancel, in, name)
}

// Rename is refused as a removal from the old directory and, where it
// replaces (or exchanges) a name, from the new one; and as a creation in
// an immutable new directory.
func (r *rawFS) Rename(cancel <-chan struct{}, in *fuse.RenameIn, oldName, newName string) fuse.Status {
	if rt := r.root; rt.locked.Load() != 0 {
		if rt.refuseRemove(in.NodeId, oldName) || rt.refuseCreate(in.Newdir) {
			return fuse.EPERM
		}
		if d, ok := rt.nodeByIno(in.Newdir).(*Dir); ok {
			rt.tree.RLock()
			replaces := d.entries.get(newName) != nil
			rt.tree.RUnlock()
			if replaces && rt.refuseRemove(in.Newdir, newName) {
				return fuse.EPERM
			}
		}
	}
	return r.RawFileSystem.Rename(cancel, in, oldName, newName)
}

// Link: no new name in an immutable directory, none for an immutable or
// append-only node.
func (r *rawFS) Link(cancel <-chan struct{}, in *fuse.LinkIn, name string, out *fuse.EntryOut) fuse.Status {
	if r.root.refuseCreate(in.NodeId) || r.root.locked.Load() != 0 && r.root.lockedFlags(in.Oldnodeid) != 0 {
		return fuse.EPERM
	}
	return r.mendEntry(r.RawFileSystem.Link(cancel, in, name, out), out)
}

func (r *rawFS) Symlink(cancel <-chan struct{}, in *fuse.InHeader, target, name string, out *fuse.EntryOut) fuse.Status {
	if r.root.refuseCreate(in.NodeId) {
		return fuse.EPERM
	}
	return r.RawFileSystem.Symlink(cancel, in, target, name, out)
}

// Fallocate: nothing for an immutable file; only what keeps the size
// (no hole punched, no range collapsed or zeroed) for an append-only one.
func (r *rawFS) Fallocate(cancel <-chan struct{}, in *fuse.FallocateIn) fuse.Status {
	if r.root.locked.Load() != 0 {
		fl := r.root.lockedFlags(in.NodeId)
		if fl&flImmutable != 0 || fl&flAppend != 0 && in.Mode&^unix.FALLOC_FL_KEEP_SIZE != 0 {
			return fuse.EPERM
		}
	}
	return r.RawFileSystem.Fallocate(cancel, in)
}

// refuseXattrChange: no xattr (ACLs included) set or removed on either
// flag (may_write_xattr); tmpmount's own user.tmpmount.* are left to
// their own rules.
func (r *Root) refuseXattrChange(ino uint64, attr string) bool {
	return r.locked.Load() != 0 && !isOwnXattr(attr) && r.lockedFlags(ino) != 0
}

func (r *rawFS) RemoveXAttr(cancel <-chan struct{}, in *fuse.InHeader, attr string) fuse.Status {
	if r.root.refuseXattrChange(in.NodeId, attr) {
		return fuse.EPERM
	}
	return r.RawFileSystem.RemoveXAttr(cancel, in, attr)
}

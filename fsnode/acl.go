package fsnode

import (
	"context"
	"encoding/binary"
	"syscall"

	"github.com/hanwen/go-fuse/v2/fuse"
	"golang.org/x/sys/unix"
)

// POSIX ACLs, as tmpfs keeps them. With FUSE_POSIX_ACL the kernel enforces
// them (it reads system.posix_acl_access through GETXATTR for its
// permission checks, and checks who may set one and that it is valid);
// what the kernel leaves to the filesystem, and tmpfs does in the VFS
// helpers it calls (posix_acl_create, posix_acl_update_mode,
// posix_acl_chmod), the daemon does here:
//
//   - A new node takes its directory's default ACL: its mode is masked by
//     the ACL instead of the umask, it gets an access ACL where the
//     default ACL says more than a mode can, and a new directory inherits
//     the default ACL itself. With no default ACL the umask applies. The
//     kernel sends the mode unmasked and the umask beside it
//     (FUSE_DONT_MASK) so that the daemon can tell the two cases apart.
//   - Setting an access ACL sets the mode's permission bits from it, and
//     stores no ACL where the mode says it all; the kernel flags whether
//     the setter may keep the set-group-ID bit.
//   - chmod rewrites the access ACL's owner, mask (or group) and other
//     entries from the new mode.
//
// ACLs are stored as the xattr values the kernel sends (the
// posix_acl_xattr format), among the node's other xattrs, so that they
// are charged, listed and saved with them.
const (
	xattrACLAccess  = "system.posix_acl_access"
	xattrACLDefault = "system.posix_acl_default"
)

// The posix_acl_xattr format: a 4-byte version, then 8-byte entries of a
// 2-byte tag, 2-byte permissions and 4-byte id, all little-endian.
const (
	aclVersion     = 2
	aclHeaderSize  = 4
	aclEntrySize   = 8
	aclUndefinedID = 1<<32 - 1

	aclUserObj  = 0x01
	aclUser     = 0x02
	aclGroupObj = 0x04
	aclGroup    = 0x08
	aclMask     = 0x10
	aclOther    = 0x20
)

type aclEntry struct {
	tag  uint16
	perm uint16
	id   uint32
}

// acl is a parsed ACL, entries in the kernel's order (by tag, then id).
type acl []aclEntry

// parseACL reads an ACL the kernel sent, checking it as posix_acl_valid
// does: each of user_obj, group_obj and other once, named entries
// ordered and unique, a mask if there are named entries.
func parseACL(b []byte) (acl, syscall.Errno) {
	if len(b) < aclHeaderSize || (len(b)-aclHeaderSize)%aclEntrySize != 0 ||
		binary.LittleEndian.Uint32(b) != aclVersion {
		return nil, syscall.EINVAL
	}
	a := make(acl, 0, (len(b)-aclHeaderSize)/aclEntrySize)
	for off := aclHeaderSize; off < len(b); off += aclEntrySize {
		a = append(a, aclEntry{
			tag:  binary.LittleEndian.Uint16(b[off:]),
			perm: binary.LittleEndian.Uint16(b[off+2:]),
			id:   binary.LittleEndian.Uint32(b[off+4:]),
		})
	}
	if !a.valid() {
		return nil, syscall.EINVAL
	}
	return a, 0
}

func (a acl) valid() bool {
	var seen uint16
	named := false
	prev := aclEntry{}
	for i, e := range a {
		if e.perm&^7 != 0 {
			return false
		}
		switch e.tag {
		case aclUserObj, aclGroupObj, aclMask, aclOther:
			if seen&e.tag != 0 {
				return false
			}
		case aclUser, aclGroup:
			if i > 0 && prev.tag == e.tag && prev.id >= e.id {
				return false
			}
			named = true
		default:
			return false
		}
		if i > 0 && prev.tag > e.tag {
			return false
		}
		seen |= e.tag
		prev = e
	}
	const required = aclUserObj | aclGroupObj | aclOther
	return seen&required == required && (!named || seen&aclMask != 0)
}

func (a acl) bytes() []byte {
	b := make([]byte, aclHeaderSize+len(a)*aclEntrySize)
	binary.LittleEndian.PutUint32(b, aclVersion)
	off := aclHeaderSize
	for _, e := range a {
		binary.LittleEndian.PutUint16(b[off:], e.tag)
		binary.LittleEndian.PutUint16(b[off+2:], e.perm)
		binary.LittleEndian.PutUint32(b[off+4:], e.id)
		off += aclEntrySize
	}
	return b
}

// equivMode is posix_acl_equiv_mode: the mode the ACL implies (its
// permission bits replacing mode's), and whether the mode says all the
// ACL does, in which case no ACL need be kept.
func (a acl) equivMode(mode uint32) (uint32, bool) {
	perms := uint32(0)
	equiv := true
	for _, e := range a {
		p := uint32(e.perm)
		switch e.tag {
		case aclUserObj:
			perms |= p << 6
		case aclGroupObj:
			perms = perms&^0o070 | p<<3
		case aclMask:
			perms = perms&^0o070 | p<<3
			equiv = false
		case aclOther:
			perms |= p
		default:
			equiv = false
		}
	}
	// The group bits are the mask's if there is one: entries are ordered
	// group_obj before mask, so the mask's assignment wins above.
	return mode&^0o777 | perms, equiv
}

// createMasq is posix_acl_create_masq: it narrows a copy of a default
// ACL by the mode a new node is created with and the mode by the ACL, and
// reports whether the result says more than the mode (and so must be kept
// as the node's access ACL).
func (a acl) createMasq(mode uint32) (acl, uint32, bool) {
	out := append(acl(nil), a...)
	m := mode
	notEquiv := false
	groupIdx, maskIdx := -1, -1
	for i := range out {
		e := &out[i]
		switch e.tag {
		case aclUserObj:
			e.perm &= uint16(m >> 6 & 7)
			m &= uint32(e.perm)<<6 | ^uint32(0o700)
		case aclUser, aclGroup:
			notEquiv = true
		case aclGroupObj:
			groupIdx = i
		case aclOther:
			e.perm &= uint16(m & 7)
			m &= uint32(e.perm) | ^uint32(0o007)
		case aclMask:
			maskIdx = i
			notEquiv = true
		}
	}
	g := maskIdx
	if g < 0 {
		g = groupIdx
	}
	out[g].perm &= uint16(m >> 3 & 7)
	m &= uint32(out[g].perm)<<3 | ^uint32(0o070)
	return out, mode&^0o777 | m&0o777, notEquiv
}

// chmodMasq is __posix_acl_chmod: the ACL with its owner, mask (or group,
// without a mask) and other entries set from mode.
func (a acl) chmodMasq(mode uint32) acl {
	out := append(acl(nil), a...)
	groupIdx, maskIdx := -1, -1
	for i := range out {
		switch out[i].tag {
		case aclUserObj:
			out[i].perm = uint16(mode >> 6 & 7)
		case aclGroupObj:
			groupIdx = i
		case aclMask:
			maskIdx = i
		case aclOther:
			out[i].perm = uint16(mode & 7)
		}
	}
	if maskIdx >= 0 {
		out[maskIdx].perm = uint16(mode >> 3 & 7)
	} else if groupIdx >= 0 {
		out[groupIdx].perm = uint16(mode >> 3 & 7)
	}
	return out
}

func isACLXattr(name string) bool {
	return name == xattrACLAccess || name == xattrACLDefault
}

// inheritACLs gives a node just made in d (its mode set by initNode from
// the mode the kernel sent, unmasked) the mode and ACLs it takes from d,
// as posix_acl_create: with a default ACL on d, the mode is masked by it
// and the node may get an access ACL (and, a directory, d's default ACL);
// without one, the umask applies. Symlinks have neither. The node is not
// yet visible to anyone; on an error (ENOSPC: ACLs are charged as
// xattrs) it keeps nothing.
func (d *Dir) inheritACLs(ctx context.Context, n *node) syscall.Errno {
	n.mu.Lock()
	mode := n.mode
	n.mu.Unlock()
	if mode&syscall.S_IFMT == syscall.S_IFLNK {
		return 0
	}
	d.mu.Lock()
	def := d.xattrs[xattrACLDefault] // values are never changed in place
	d.mu.Unlock()
	if def == nil {
		umask := d.root.extras.of(ctx).umask
		n.mu.Lock()
		n.mode &^= umask & 0o777
		n.mu.Unlock()
		return 0
	}
	a, errno := parseACL(def)
	if errno != 0 {
		d.root.log.Printf("directory %d: stored default ACL is invalid; new node %d gets none", d.ino(), n.ino())
		return 0
	}
	access, newMode, keep := a.createMasq(mode)
	n.mu.Lock()
	n.mode = newMode
	n.mu.Unlock()
	if keep {
		if errno := n.setStoredXattr(xattrACLAccess, access.bytes(), 0); errno != 0 {
			return errno
		}
	}
	if mode&syscall.S_IFMT == syscall.S_IFDIR {
		if errno := n.setStoredXattr(xattrACLDefault, def, 0); errno != 0 {
			if keep { // the node will not be made: give back its charge
				n.removeStoredXattr(xattrACLAccess)
			}
			return errno
		}
	}
	return 0
}

// setACL stores an ACL the kernel sends with setxattr(2) (after checking
// who may set it and that it is valid). An access ACL sets the mode's
// permission bits, and is not kept where the mode says it all, as
// posix_acl_update_mode; the set-group-ID bit goes if the kernel says
// the setter may not keep it.
func (n *node) setACL(ctx context.Context, name string, data []byte, flags uint32) syscall.Errno {
	a, errno := parseACL(data)
	if errno != 0 {
		return errno
	}
	if name == xattrACLDefault {
		n.mu.Lock()
		isDir := n.mode&syscall.S_IFMT == syscall.S_IFDIR
		n.mu.Unlock()
		if !isDir {
			return syscall.EACCES
		}
		return n.setStoredXattr(name, a.bytes(), flags)
	}
	n.mu.Lock()
	mode, equiv := a.equivMode(n.mode)
	n.mu.Unlock()
	if equiv {
		if errno := n.removeStoredXattr(name); errno != 0 && errno != unix.ENODATA {
			return errno
		}
	} else if errno := n.setStoredXattr(name, a.bytes(), flags); errno != 0 {
		return errno
	}
	n.mu.Lock()
	if n.root.extras.of(ctx).setxattrFlags&fuse.SETXATTR_ACL_KILL_SGID != 0 {
		mode &^= syscall.S_ISGID
	}
	n.mode = mode
	n.ctime = nowTimespec()
	n.mu.Unlock()
	return 0
}

// chmodACLLocked rewrites the access ACL for a new mode, as tmpfs's chmod
// does through posix_acl_chmod. The new value is as long as the old, so
// nothing is charged anew. n.mu must be held.
func (n *node) chmodACLLocked(mode uint32) {
	old := n.xattrs[xattrACLAccess]
	if old == nil {
		return
	}
	a, errno := parseACL(old)
	if errno != 0 {
		return
	}
	n.xattrs[xattrACLAccess] = a.chmodMasq(mode).bytes()
}

// removeACL drops an ACL, as tmpfs's removexattr(2) does: removing one
// that is not there succeeds too, ctime moves, and removing the access
// ACL clears the set-group-ID bit unless the caller may keep it
// (posix_acl_update_mode; FUSE sends no flag for a removal, so the
// daemon asks the caller's credentials).
func (n *node) removeACL(ctx context.Context, name string) syscall.Errno {
	if errno := n.removeStoredXattr(name); errno != 0 && errno != unix.ENODATA {
		return errno
	}
	caller := callerOf(ctx)
	n.mu.Lock()
	mode, gid := n.mode, n.gid
	n.mu.Unlock()
	if name == xattrACLAccess && mode&syscall.S_ISGID != 0 &&
		!inGroup(caller, gid) && !callerCapable(caller, unix.CAP_FSETID) {
		mode &^= syscall.S_ISGID
	}
	n.mu.Lock()
	n.mode = mode
	n.ctime = nowTimespec()
	n.mu.Unlock()
	return 0
}

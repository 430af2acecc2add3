package fsnode

import (
	"context"
	"slices"
	"strings"
	"syscall"

	"golang.org/x/sys/unix"
)

// Extended attributes are stored per node as tmpfs stores them: user.*,
// trusted.* and security.* names, and the POSIX ACLs in
// system.posix_acl_access and system.posix_acl_default (acl.go); other
// system.* names are not supported. The kernel has already applied the
// namespace permission rules (trusted.* needs CAP_SYS_ADMIN, user.* only on
// regular files and directories) and the size limits (names up to 255
// bytes, values up to 64 KiB) before a request reaches us.
//
// Names under user.tmpmount. are tmpmount's own (see virtualXattrs): they
// are computed, not stored, and are not listed, so that cp -a or tar
// --xattrs do not copy them to other filesystems.

const (
	xattrPrefix = "user.tmpmount."
	// xattrSpaceMax bounds the xattr bytes (names and values) one node may
	// hold, so a client cannot grow the daemon without bound through one
	// file. Past it, setxattr fails with ENOSPC.
	xattrSpaceMax = 1 << 20

	xattrNameMax = 255     // XATTR_NAME_MAX
	xattrSizeMax = 1 << 16 // XATTR_SIZE_MAX
)

var xattrNamespaces = []string{"user.", "trusted.", "security."}

// checkXattrName says whether a name is one tmpfs stores: EINVAL for a
// bare namespace prefix ("user."), as the kernel's xattr_resolve_name,
// and EOPNOTSUPP for other namespaces.
func checkXattrName(name string) syscall.Errno {
	if isACLXattr(name) {
		return 0
	}
	for _, ns := range xattrNamespaces {
		if strings.HasPrefix(name, ns) {
			if len(name) == len(ns) {
				return syscall.EINVAL
			}
			return 0
		}
	}
	return syscall.EOPNOTSUPP
}

// isOwnXattr says whether attr is one of tmpmount's own.
func isOwnXattr(attr string) bool { return strings.HasPrefix(attr, xattrPrefix) }

// copyXattr answers a getxattr/listxattr-style request: with an empty dest
// it reports the size; with a dest too small, ERANGE.
func copyXattr(dest, value []byte) (uint32, syscall.Errno) {
	if len(dest) < len(value) {
		return uint32(len(value)), syscall.ERANGE
	}
	return uint32(copy(dest, value)), 0
}

// Getxattr returns a stored extended attribute.
func (n *node) Getxattr(ctx context.Context, attr string, dest []byte) (uint32, syscall.Errno) {
	if strings.HasPrefix(attr, xattrPrefix) {
		return 0, unix.ENODATA
	}
	if isACLXattr(attr) && n.root.noACL {
		return 0, syscall.EOPNOTSUPP
	}
	return n.getStoredXattr(attr, dest)
}

func (n *node) getStoredXattr(attr string, dest []byte) (uint32, syscall.Errno) {
	n.mu.Lock()
	defer n.mu.Unlock()
	v, ok := n.xattrs[attr]
	if !ok {
		if errno := checkXattrName(attr); errno != 0 {
			return 0, errno
		}
		return 0, unix.ENODATA
	}
	return copyXattr(dest, v)
}

// Setxattr stores an extended attribute, honouring XATTR_CREATE and
// XATTR_REPLACE.
func (n *node) Setxattr(ctx context.Context, attr string, data []byte, flags uint32) syscall.Errno {
	if strings.HasPrefix(attr, xattrPrefix) {
		return syscall.EPERM
	}
	if isACLXattr(attr) {
		if n.root.noACL {
			return syscall.EOPNOTSUPP
		}
		return n.setACL(ctx, attr, data, flags)
	}
	return n.setStoredXattr(attr, data, flags)
}

func (n *node) setStoredXattr(attr string, data []byte, flags uint32) syscall.Errno {
	if errno := checkXattrName(attr); errno != 0 {
		return errno
	}
	if len(attr) > xattrNameMax {
		return syscall.ERANGE
	}
	if len(data) > xattrSizeMax {
		return syscall.E2BIG
	}
	// Charged before the lock (making room may roll files over); what
	// it replaces is given back after.
	cost := xattrCost(attr, data)
	if errno := n.root.chargeMeta(cost, false); errno != 0 {
		return errno
	}
	freed, errno := n.storeXattr(attr, data, flags)
	if errno != 0 {
		freed = cost
	}
	n.root.releaseMeta(freed)
	return errno
}

// storeXattr stores a charged xattr and returns what the value it
// replaced was charged.
func (n *node) storeXattr(attr string, data []byte, flags uint32) (freed int64, errno syscall.Errno) {
	n.mu.Lock()
	defer n.mu.Unlock()
	if n.metaDropped {
		return 0, syscall.ENOENT
	}
	old, exists := n.xattrs[attr]
	switch {
	case flags&unix.XATTR_CREATE != 0 && exists:
		return 0, syscall.EEXIST
	case flags&unix.XATTR_REPLACE != 0 && !exists:
		return 0, unix.ENODATA
	}
	used := 0
	for k, v := range n.xattrs {
		used += len(k) + len(v)
	}
	if exists {
		used -= len(attr) + len(old)
		freed = xattrCost(attr, old)
	}
	if used+len(attr)+len(data) > xattrSpaceMax {
		return 0, syscall.ENOSPC
	}
	if n.xattrs == nil {
		n.xattrs = make(map[string][]byte)
	}
	n.xattrs[attr] = slices.Clone(data)
	n.ctime = nowTimespec()
	return freed, 0
}

// Removexattr deletes a stored extended attribute.
func (n *node) Removexattr(ctx context.Context, attr string) syscall.Errno {
	if strings.HasPrefix(attr, xattrPrefix) {
		return syscall.EPERM
	}
	if isACLXattr(attr) {
		if n.root.noACL {
			return syscall.EOPNOTSUPP
		}
		return n.removeACL(ctx, attr)
	}
	return n.removeStoredXattr(attr)
}

func (n *node) removeStoredXattr(attr string) syscall.Errno {
	if errno := checkXattrName(attr); errno != 0 {
		return errno
	}
	n.mu.Lock()
	old, ok := n.xattrs[attr]
	if !ok {
		n.mu.Unlock()
		return unix.ENODATA
	}
	delete(n.xattrs, attr)
	n.ctime = nowTimespec()
	n.mu.Unlock()
	n.root.releaseMeta(xattrCost(attr, old))
	return 0
}

// Listxattr lists the stored attribute names, NUL-terminated, in tmpfs's
// order (Linux 6.18): the ACLs first, then the rest in descending byte
// order. trusted.* names are listed only to callers with CAP_SYS_ADMIN,
// as tmpfs lists them.
func (n *node) Listxattr(ctx context.Context, dest []byte) (uint32, syscall.Errno) {
	var acls, names, trusted []string
	n.mu.Lock()
	for k := range n.xattrs {
		switch {
		case isACLXattr(k):
			acls = append(acls, k)
		case strings.HasPrefix(k, "trusted."):
			trusted = append(trusted, k)
		default:
			names = append(names, k)
		}
	}
	n.mu.Unlock()
	// The caller's capabilities cost a read of /proc: only when it matters.
	if len(trusted) > 0 && callerCapable(callerOf(ctx), unix.CAP_SYS_ADMIN) {
		names = append(names, trusted...)
	}
	slices.Sort(acls) // system.posix_acl_access, then ..._default
	slices.Sort(names)
	slices.Reverse(names)
	names = append(acls, names...)
	var list []byte
	for _, k := range names {
		list = append(list, k...)
		list = append(list, 0)
	}
	return copyXattr(dest, list)
}

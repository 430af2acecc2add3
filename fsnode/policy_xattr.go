package fsnode

import (
	"context"
	"strings"
	"syscall"

	"golang.org/x/sys/unix"

	"github.com/tmpmount/tmpmount/policy"
)

// user.tmpmount.delete is a file's or a directory's delete policy: close,
// unmount or keep. On a file, reading it gives the policy in force (from
// wherever it came); setting it gives the file its own, which beats every
// rule; removing it lets the rules decide again. On a directory it is the
// default for files made below it later. Only the owner (or root) may set
// or remove it.
const xattrDelete = xattrPrefix + "delete"

// parsePolicyValue reads a value written to user.tmpmount.delete; the
// trailing newline or NUL some tools add is forgiven.
func (r *Root) parsePolicyValue(data []byte) (policy.Policy, syscall.Errno) {
	value := strings.TrimRight(string(data), "\x00\n")
	p, err := policy.Parse(value)
	if err != nil {
		// EINVAL alone does not say what the valid values are: the log does.
		if len(value) > 64 {
			value = value[:64] + "..."
		}
		r.log.Printf("refused %s=%q: the values are close, unmount and keep (lower case)", xattrDelete, value)
		return policy.Unset, syscall.EINVAL
	}
	if p == policy.Keep && r.keepDir == "" {
		r.log.Printf("refused %s=keep: the mount has no --keep-dir to save it to", xattrDelete)
		return policy.Unset, syscall.EINVAL
	}
	return p, 0
}

// mayChangePolicy: only the owner or root.
func (n *node) mayChangePolicy(ctx context.Context) bool {
	uid := callerOf(ctx).Uid
	n.mu.Lock()
	defer n.mu.Unlock()
	return uid == 0 || uid == n.uid
}

// checkSetFlags applies XATTR_CREATE and XATTR_REPLACE to a setting that
// is there (set) or not.
func checkSetFlags(flags uint32, set bool) syscall.Errno {
	switch {
	case flags&unix.XATTR_CREATE != 0 && set:
		return syscall.EEXIST
	case flags&unix.XATTR_REPLACE != 0 && !set:
		return unix.ENODATA
	}
	return 0
}

func (f *File) setPolicy(ctx context.Context, data []byte, flags uint32) syscall.Errno {
	if !f.mayChangePolicy(ctx) {
		return syscall.EPERM
	}
	p, errno := f.root.parsePolicyValue(data)
	if errno != 0 {
		return errno
	}
	return f.changeOwnPolicy(p, flags)
}

// changeOwnPolicy sets the file's own policy (Unset removes it) and
// resolves it again at the file's path.
func (f *File) changeOwnPolicy(p policy.Policy, flags uint32) syscall.Errno {
	f.root.tree.RLock()
	defer f.root.tree.RUnlock()
	path := f.pathLocked()
	f.mu.Lock()
	defer f.mu.Unlock()
	if errno := checkSetFlags(flags, f.life.Own() != policy.Unset); errno != 0 {
		return errno
	}
	if p == policy.Unset && f.life.Own() == policy.Unset {
		return unix.ENODATA
	}
	old := f.life.Policy()
	f.life.SetOwn(f.root.resolver, p, path)
	f.keepPolicyChangedLocked(old)
	f.ctime = nowTimespec()
	return 0
}

func (d *Dir) Getxattr(ctx context.Context, attr string, dest []byte) (uint32, syscall.Errno) {
	if attr == xattrStats {
		if n, errno, ok := d.getStatsXattr(ctx, dest); ok {
			return n, errno
		}
	}
	if attr == xattrDelete {
		d.mu.Lock()
		own := d.own
		d.mu.Unlock()
		if own == policy.Unset {
			return 0, unix.ENODATA
		}
		return copyXattr(dest, []byte(own.String()))
	}
	return d.node.Getxattr(ctx, attr, dest)
}

func (d *Dir) Setxattr(ctx context.Context, attr string, data []byte, flags uint32) syscall.Errno {
	if attr != xattrDelete {
		return d.node.Setxattr(ctx, attr, data, flags)
	}
	if !d.mayChangePolicy(ctx) {
		return syscall.EPERM
	}
	p, errno := d.root.parsePolicyValue(data)
	if errno != 0 {
		return errno
	}
	return d.setOwn(p, flags)
}

func (d *Dir) Removexattr(ctx context.Context, attr string) syscall.Errno {
	if attr != xattrDelete {
		return d.node.Removexattr(ctx, attr)
	}
	if !d.mayChangePolicy(ctx) {
		return syscall.EPERM
	}
	return d.setOwn(policy.Unset, 0)
}

// setOwn sets or (with Unset) removes the directory's default for new
// children.
func (d *Dir) setOwn(p policy.Policy, flags uint32) syscall.Errno {
	d.mu.Lock()
	defer d.mu.Unlock()
	if errno := checkSetFlags(flags, d.own != policy.Unset); errno != 0 {
		return errno
	}
	if p == policy.Unset && d.own == policy.Unset {
		return unix.ENODATA
	}
	d.own = p
	d.ctime = nowTimespec()
	return 0
}

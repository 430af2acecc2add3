package fsnode

import (
	"context"
	"syscall"

	"golang.org/x/sys/unix"

	"github.com/tmpmount/tmpmount/policy"
)

// A regular file's virtual extended attributes, computed rather than
// stored, and not listed:
const (
	// user.tmpmount.residency (read-only): "memory" or "disk".
	xattrResidency = xattrPrefix + "residency"
	// user.tmpmount.spill (write-only): setting it, to any value, rolls
	// the file over to disk now; again is harmless. It is this
	// filesystem's fileno(), the moment SpooledTemporaryFile moves to a
	// real file.
	xattrSpill = xattrPrefix + "spill"
	// user.tmpmount.delete: see policy_xattr.go.
)

func (f *File) Getxattr(ctx context.Context, attr string, dest []byte) (uint32, syscall.Errno) {
	switch attr {
	case xattrResidency:
		return copyXattr(dest, []byte(f.data.Residency().String()))
	case xattrDelete:
		f.mu.Lock()
		p := f.life.Policy()
		f.mu.Unlock()
		return copyXattr(dest, []byte(p.String()))
	case xattrStats:
		st, err := f.stats()
		if err != nil {
			return 0, f.root.errno("stats", err)
		}
		return statsXattr(dest, st)
	}
	return f.node.Getxattr(ctx, attr, dest)
}

func (f *File) Setxattr(ctx context.Context, attr string, data []byte, flags uint32) syscall.Errno {
	switch attr {
	case xattrDelete:
		return f.setPolicy(ctx, data, flags)
	case xattrSpill:
		if err := f.data.Spill(); err != nil {
			return f.root.errno("spill", err)
		}
		return 0
	}
	f.keepBeforeChange()
	errno := f.node.Setxattr(ctx, attr, data, flags)
	f.keepAfterChange(errno == 0)
	return errno
}

func (f *File) Removexattr(ctx context.Context, attr string) syscall.Errno {
	switch attr {
	case xattrDelete:
		if !f.mayChangePolicy(ctx) {
			return syscall.EPERM
		}
		return f.changeOwnPolicy(policy.Unset, 0)
	case xattrSpill:
		return unix.ENODATA
	}
	f.keepBeforeChange()
	errno := f.node.Removexattr(ctx, attr)
	f.keepAfterChange(errno == 0)
	return errno
}

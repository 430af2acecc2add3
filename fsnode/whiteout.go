package fsnode

import (
	"context"
	"syscall"

	"golang.org/x/sys/unix"
)

// RENAME_WHITEOUT, as tmpfs does it: the rename leaves at the source name
// a whiteout, a character device 0:0 with mode 0, which overlayfs reads as
// "deleted in this layer" (tmpmount can then be an overlay's upper
// directory). The whiteout is made as mknod(2) would make it (the
// caller's, its directory's group if set-group-ID, its directory's
// default ACL) and counts against --inodes. Anyone may leave one (Linux
// 5.8 dropped the CAP_MKNOD check: a 0:0 device opens nothing).

// newWhiteout prepares a whiteout for d, for a rename that may leave one.
func (d *Dir) newWhiteout(ctx context.Context) *Special {
	wo := &Special{}
	initNode(&wo.node, d.root, d, callerOf(ctx), syscall.S_IFCHR)
	return wo
}

// checkWhiteoutLocked says whether wo can be placed: ENOSPC past
// --inodes, as tmpfs fails the whiteout before it renames anything.
// root.tree must be write-locked.
func (d *Dir) checkWhiteoutLocked(ctx context.Context, wo *Special) syscall.Errno {
	if d.root.inodesFull() {
		return syscall.ENOSPC
	}
	return d.inheritACLs(ctx, &wo.node)
}

// placeWhiteoutLocked enters wo at name, which the rename just freed.
// root.tree must be write-locked.
func (d *Dir) placeWhiteoutLocked(ctx context.Context, name string, wo *Special) {
	d.adopt(ctx, wo, syscall.S_IFCHR, d.root.allocIno())
	d.linkLocked(name, wo)
}

// renameFlags are the renameat2(2) flags tmpmount serves.
const renameFlags = unix.RENAME_NOREPLACE | unix.RENAME_EXCHANGE | unix.RENAME_WHITEOUT

package fsnode

import (
	"errors"
	"syscall"

	"github.com/tmpmount/tmpmount/spool"
)

// Metadata lives in the daemon's memory and, unlike file data, cannot roll
// over to disk, so it is charged to the limits before it is kept: every
// directory entry's name, every stored extended attribute (name and
// value), and every long symlink target count against --size (as tmpfs
// charges long symlinks and, through nr_inodes, xattrs) and against the
// memory budget, where file data rolls over to make room for them. Each
// node also counts nodeOverhead against the memory budget alone (it is not
// data that tmpfs would charge to size=). Past either limit the operation
// fails with ENOSPC and changes nothing; without a memory budget, metadata
// is bounded by a quarter of RAM (spool.ChargeMetadata). So no user of a
// mount can grow the daemon beyond its budget by making names, links or
// xattrs.

const (
	// nodeOverhead is what one node (or a name past a node's first, which
	// tmpfs counts as an inode too) costs the daemon beyond its name, its
	// xattrs and its symlink target: its own structures and go-fuse's.
	// Measured: 20,000 empty files with 200-byte names took ~1.5 KiB of
	// RSS each and 13,000 with 255-byte names ~1.75 KiB, the names
	// counted twice (ours and go-fuse's).
	nodeOverhead = 1536

	// shortSymlinkMax is the longest symlink target tmpfs keeps in the
	// inode itself (SHORT_SYMLINK_LEN, less the NUL); a longer one takes a
	// page, charged to size= and shown in st_blocks. tmpmount does the
	// same, so that a mount fills up with symlinks as tmpfs does.
	shortSymlinkMax = 127
)

// nodeMemory is the memory the nodes themselves hold, for the budget.
func (r *Root) nodeMemory() int64 { return r.inodes.Load() * nodeOverhead }

// chargeMeta counts bytes of metadata for an operation about to keep it;
// newNode says the operation also makes a node (or an extra name), whose
// overhead needs room in the memory budget. ENOSPC when there is no room.
func (r *Root) chargeMeta(bytes int64, newNode bool) syscall.Errno {
	headroom := int64(0)
	if newNode {
		headroom = nodeOverhead
	}
	err := r.store.ChargeMetadata(bytes, headroom)
	if errors.Is(err, syscall.ENOSPC) {
		return syscall.ENOSPC
	}
	return r.errno("charge metadata", err)
}

// releaseMeta gives back metadata charged by chargeMeta.
func (r *Root) releaseMeta(bytes int64) {
	if bytes != 0 {
		r.store.ReleaseMetadata(bytes)
	}
}

// nameCost is what a directory entry is charged.
func nameCost(name string) int64 { return int64(len(name)) }

// xattrCost is what a stored extended attribute is charged.
func xattrCost(name string, value []byte) int64 { return int64(len(name) + len(value)) }

// symlinkCost is what a symlink's target is charged: a page if tmpfs
// would give it one.
func symlinkCost(target []byte) int64 {
	if len(target) > shortSymlinkMax {
		return spool.PageSize
	}
	return 0
}

// metaCost is what a node about to be made is charged for what it holds
// (a symlink's target).
func metaCost(n inode) int64 {
	if s, ok := n.(*Symlink); ok {
		return symlinkCost(s.target)
	}
	return 0
}

// dropMeta gives back what a node that is gone was charged for its xattrs
// and symlink target, and frees them. A directory, symlink or special file
// is gone once its last name is; a regular file once its data is freed.
// Afterwards its xattrs cannot be set again (a removed directory still
// open gets ENOENT), so that nothing is kept uncharged.
func (r *Root) dropMeta(n inode) {
	b := n.base()
	b.mu.Lock()
	if b.metaDropped {
		b.mu.Unlock()
		return
	}
	b.metaDropped = true
	var bytes int64
	for k, v := range b.xattrs {
		bytes += xattrCost(k, v)
	}
	b.xattrs = nil
	b.mu.Unlock()
	if s, ok := n.(*Symlink); ok {
		bytes += symlinkCost(s.target)
	}
	r.releaseMeta(bytes)
}

package fsnode

import (
	"context"
	"syscall"

	"github.com/hanwen/go-fuse/v2/fs"
	"github.com/hanwen/go-fuse/v2/fuse"
	"golang.org/x/sys/unix"
)

// Birth time, as tmpfs keeps it (set when a node is made, never changed),
// reaches statx(2) through FUSE_STATX, which the kernel sends when a
// caller asks for STATX_BTIME and its cached attributes do not have it.
// go-fuse v2.12.1 passes it to NodeStatxer.

var _ fs.NodeStatxer = (*node)(nil)

// Statx answers with the node's full attributes (the kernel keeps them
// all, as from GETATTR) and its birth time.
func (n *node) Statx(ctx context.Context, f fs.FileHandle, flags uint32, mask uint32, out *fuse.StatxOut) syscall.Errno {
	var a fuse.Attr
	if errno := n.Operations().(inode).fillAttr(&a); errno != 0 {
		return errno
	}
	n.mu.Lock()
	btime := n.btime
	n.mu.Unlock()
	sx := &out.Statx
	sx.Mask = unix.STATX_BASIC_STATS | unix.STATX_BTIME
	sx.Blksize = a.Blksize
	sx.Nlink = a.Nlink
	sx.Uid, sx.Gid = a.Uid, a.Gid
	sx.Mode = uint16(a.Mode)
	sx.Ino = a.Ino
	sx.Size = a.Size
	sx.Blocks = a.Blocks
	sx.Atime = fuse.SxTime{Sec: a.Atime, Nsec: a.Atimensec}
	sx.Mtime = fuse.SxTime{Sec: a.Mtime, Nsec: a.Mtimensec}
	sx.Ctime = fuse.SxTime{Sec: a.Ctime, Nsec: a.Ctimensec}
	sx.Btime = fuse.SxTime{Sec: uint64(btime.sec), Nsec: btime.nsec}
	sx.RdevMajor, sx.RdevMinor = unix.Major(uint64(a.Rdev)), unix.Minor(uint64(a.Rdev))
	return 0
}

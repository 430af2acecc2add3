package fsnode

import (
	"context"
	"errors"
	"math"
	"sync/atomic"
	"syscall"

	"github.com/hanwen/go-fuse/v2/fs"
	"github.com/hanwen/go-fuse/v2/fuse"
	"golang.org/x/sys/unix"

	"github.com/tmpmount/tmpmount/policy"
	"github.com/tmpmount/tmpmount/spool"
)

// File is a regular file. Its data lives in a spool.File; the node keeps
// the attributes, its names and its lifecycle (lifecycle.go).
type File struct {
	node
	data *spool.File

	// Guarded by node.mu:
	life policy.Entry
	// The open handles by kind. The kernel refuses an inode cached and
	// passthrough opens at once, so a file opens in passthrough only once
	// it is on disk and no cached handle is left; after that, every open
	// is passthrough (a cached one could not start while any passthrough
	// one is open, and none is needed).
	cachedOpens, passthroughOpens int
	// releasing counts releases go-fuse has not finished (rawFS.Release).
	// A file does not switch from cached to passthrough opens while one
	// is in flight: go-fuse (v2.12.1) counts a cached handle's release
	// against the node's passthrough backing ID, so a passthrough open
	// slipped in between our Release and go-fuse's would see that ID
	// unregistered under it, and the next passthrough open register a
	// second one, which the kernel refuses (EBUSY, and open(2) gets EIO).
	releasing int
	// passthroughSeen: the file has had passthrough handles, so reads and
	// writes may have reached its backing file without the daemon.
	passthroughSeen bool
	// awaitingForget and orphan: counted in root.reclaims (forget.go).
	awaitingForget, orphan bool
	// kernelRefs mirrors the kernel's lookup count of the file: the
	// references it holds, plus those replies are about to hand it
	// (kernelrefs.go). Atomic, not guarded by mu.
	kernelRefs atomic.Int64
	// ownCtime is the backing file's ctime after the daemon last set its
	// times: a later one means a write the daemon did not see.
	ownCtime unix.Timespec
	// keep is the file's standing with the keeper (keep.go).
	keep keepState

	// Guarded by root.tree:
	names    []link // every (directory, name) the file has
	lastPath string // its path when it lost its last name, for the events log
}

// link is one name of a file.
type link struct {
	dir  *Dir
	name string
}

// openFlags are the FOPEN flags of every open. The daemon is the only
// writer and every change passes through the kernel, so the page cache can
// be kept across opens (and, with explicit data cache control, across
// writes): reads of recently written files then run at page-cache speed.
// NOFLUSH spares close(2) its FLUSH round trip, which the daemon has no
// use for (deletes follow RELEASE; locks are the kernel's): with the
// writeback cache off, write(2) leaves no dirty pages, and those a shared
// mapping dirties are written back at munmap or msync all the same.
// Measured: small-read 0.12 -> 0.20 x tmpfs, small-create 0.08 -> 0.08-0.09,
// mib-read 1.10 -> 1.26.
const openFlags = fuse.FOPEN_KEEP_CACHE | fuse.FOPEN_NOFLUSH

func (f *File) fillAttr(out *fuse.Attr) syscall.Errno {
	st, err := f.data.Stat()
	if err != nil {
		return f.root.errno("stat", err)
	}
	f.mu.Lock()
	f.absorbBackingTimesLocked(st)
	f.fillCommonAttrLocked(out)
	f.mu.Unlock()
	out.Size = uint64(st.Size)
	out.Blocks = uint64(st.Blocks)
	return 0
}

// absorbBackingTimesLocked takes the times of a file that has had
// passthrough handles from its backing file, which reads and writes reach
// without the daemon. Every change of times the daemon makes is copied to
// the backing file (copyTimesToBackingLocked), so its atime and mtime are
// the file's own, even set into the future or the past. Its ctime also
// moves when the daemon sets times; a change after that is news, but the
// node's ctime (chmod, link, ...) may be later still.
func (f *File) absorbBackingTimesLocked(st spool.Stat) {
	if !f.passthroughSeen || st.Residency != spool.OnDisk {
		return
	}
	if f.root.atime.Mode != Noatime {
		// The backing file's atime follows the spill filesystem's
		// options; under noatime the node's own stands.
		f.atime = timespec{sec: st.Atime.Sec, nsec: uint32(st.Atime.Nsec)}
	}
	f.mtime = timespec{sec: st.Mtime.Sec, nsec: uint32(st.Mtime.Nsec)}
	if st.Ctime != f.ownCtime {
		c := timespec{sec: st.Ctime.Sec, nsec: uint32(st.Ctime.Nsec)}
		if c.sec > f.ctime.sec || c.sec == f.ctime.sec && c.nsec > f.ctime.nsec {
			f.ctime = c
		}
	}
}

func (f *File) Getattr(ctx context.Context, fh fs.FileHandle, out *fuse.AttrOut) syscall.Errno {
	return f.fillAttr(&out.Attr)
}

func (f *File) Setattr(ctx context.Context, fh fs.FileHandle, in *fuse.SetAttrIn, out *fuse.AttrOut) syscall.Errno {
	f.keepBeforeChange()
	errno := f.setattr(ctx, in, out)
	f.keepAfterChange(errno == 0)
	return errno
}

func (f *File) setattr(ctx context.Context, in *fuse.SetAttrIn, out *fuse.AttrOut) syscall.Errno {
	stamp := false
	if size, ok := in.GetSize(); ok {
		if size > math.MaxInt64 {
			return syscall.EFBIG
		}
		st, err := f.data.Stat()
		if err != nil {
			return f.root.errno("truncate", err)
		}
		if err := f.data.Truncate(int64(size)); err != nil {
			return f.root.errno("truncate", err)
		}
		// The kernel leaves a truncate's times to us. As tmpfs:
		// ftruncate(2) always marks mtime and ctime; truncate(2) does when
		// the size changes, or when it cuts a file that holds pages.
		_, viaFd := in.GetFh()
		stamp = viaFd || st.Size != int64(size) || st.Blocks > 0
	}
	if f.isPassthroughSeen() {
		// Start from the backing file's times, which passthrough writes
		// may have moved, so that copying back loses none of them. (A
		// passthrough write between here and the copy is a race the
		// daemon cannot close; its mtime is then the setattr's.)
		if st, err := f.data.Stat(); err == nil {
			f.mu.Lock()
			f.absorbBackingTimesLocked(st)
			f.mu.Unlock()
		}
	}
	f.applySetattr(callerOf(ctx), in, stamp)
	if _, atime := in.GetATime(); atime || in.Valid&fuse.FATTR_MTIME != 0 || stamp {
		f.copyTimesToBacking()
	}
	return f.fillAttr(&out.Attr)
}

func (f *File) isPassthroughSeen() bool {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.passthroughSeen
}

// copyTimesToBacking gives the backing file of a file that has had
// passthrough handles the node's atime and mtime (see
// absorbBackingTimesLocked).
func (f *File) copyTimesToBacking() {
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.passthroughSeen {
		f.copyTimesToBackingLocked()
	}
}

func (f *File) copyTimesToBackingLocked() {
	at := unix.Timespec{Sec: f.atime.sec, Nsec: int64(f.atime.nsec)}
	mt := unix.Timespec{Sec: f.mtime.sec, Nsec: int64(f.mtime.nsec)}
	ctime, err := f.data.SetTimes(at, mt)
	if err != nil {
		f.root.log.Printf("file %d: %v", f.ino(), err)
	}
	f.ownCtime = ctime
}

func (f *File) Open(ctx context.Context, flags uint32) (fs.FileHandle, uint32, syscall.Errno) {
	pid := callerOf(ctx).Pid
	// A thread whose previous open got ESTALE is the kernel's retry (or,
	// rarely, a later open): it may have the old file (see stale.go).
	retry := f.root.staleOpens.take(pid)
	h := f.newHandle(retry || pid == 0)
	if h == nil {
		// The close policy took the file's names after the kernel looked
		// one up (the kernel's dentry cache learns a moment later), or
		// the file is gone. ESTALE makes the kernel look the name up
		// again: open(O_CREAT) then makes a new file, a plain open gets
		// ENOENT, and one that finds yet another such file opens it.
		f.root.staleOpens.mark(pid)
		return nil, 0, syscall.ESTALE
	}
	if flags&syscall.O_ACCMODE != syscall.O_RDONLY || flags&syscall.O_TRUNC != 0 {
		c := callerOf(ctx)
		f.openedForWrite(h, c.Uid, c.Gid)
	}
	if h.firstPassthrough {
		// From now on the kernel keeps none of the file's attributes
		// (rawattr.go); drop those it kept from before. Safe from a
		// handler: the kernel takes no lock of ours to do it.
		f.NotifyContent(-1, 0)
	}
	if flags&syscall.O_TRUNC != 0 {
		// With FUSE_ATOMIC_O_TRUNC the kernel leaves O_TRUNC to the
		// open, which saves a SETATTR round trip and lets us mark the
		// times as tmpfs does for every O_TRUNC open.
		if err := f.data.Truncate(0); err != nil {
			h.Release(ctx)
			return nil, 0, f.root.errno("truncate", err)
		}
		f.touchChange()
	}
	return h, h.openFlags(), 0
}

func (f *File) Read(ctx context.Context, fh fs.FileHandle, dest []byte, off int64) (fuse.ReadResult, syscall.Errno) {
	n, err := f.data.ReadAt(dest, off)
	if err != nil {
		return nil, f.root.errno("read", err)
	}
	f.touchAtime()
	return fuse.ReadResultData(dest[:n]), 0
}

func (f *File) Write(ctx context.Context, fh fs.FileHandle, data []byte, off int64) (uint32, syscall.Errno) {
	n, err := f.data.WriteAt(data, off)
	if n == 0 && errors.Is(err, syscall.ENOSPC) && f.root.reclaims.waitFreed(reclaimWaitNoSpace) {
		n, err = f.data.WriteAt(data, off)
	}
	if n == 0 && errors.Is(err, syscall.ENOSPC) {
		// As tmpfs, a write that does not fit in --size writes what
		// does and returns short; the caller's next write gets ENOSPC.
		if fit := f.root.store.CapacityRoom(off, len(data)); fit > 0 {
			n, err = f.data.WriteAt(data[:fit], off)
		}
	}
	if n > 0 {
		f.touchChange()
	}
	if err != nil && n == 0 {
		return 0, f.root.errno("write", err)
	}
	// A partial write reports what it wrote; the caller's next write gets
	// the error.
	return uint32(n), 0
}

func (f *File) Writev(ctx context.Context, fh fs.FileHandle, data [][]byte, off int64) (uint32, syscall.Errno) {
	var total uint32
	for _, d := range data {
		n, errno := f.Write(ctx, fh, d, off)
		total += n
		off += int64(n)
		if errno != 0 || int(n) < len(d) {
			if total > 0 {
				return total, 0
			}
			return 0, errno
		}
	}
	return total, 0
}

func (f *File) Allocate(ctx context.Context, fh fs.FileHandle, off uint64, size uint64, mode uint32) syscall.Errno {
	if off > math.MaxInt64 || size > math.MaxInt64 {
		return syscall.EFBIG
	}
	err := f.data.Allocate(int64(off), int64(size), mode)
	if errors.Is(err, syscall.ENOSPC) && f.root.reclaims.waitFreed(reclaimWaitNoSpace) {
		err = f.data.Allocate(int64(off), int64(size), mode)
	}
	if err != nil {
		return f.root.errno("fallocate", err)
	}
	f.touchChange()
	return 0
}

func (f *File) Lseek(ctx context.Context, fh fs.FileHandle, off uint64, whence uint32) (uint64, syscall.Errno) {
	if off > math.MaxInt64 {
		return 0, syscall.ENXIO
	}
	var pos int64
	var err error
	switch whence {
	case unixSeekData:
		pos, err = f.data.SeekData(int64(off))
	case unixSeekHole:
		pos, err = f.data.SeekHole(int64(off))
	default:
		return 0, syscall.EINVAL
	}
	if err != nil {
		return 0, f.root.errno("lseek", err)
	}
	return uint64(pos), 0
}

// Fsync succeeds: temporary data has no durability to promise, and msync(2)
// needs it to.
func (f *File) Fsync(ctx context.Context, fh fs.FileHandle, flags uint32) syscall.Errno {
	return 0
}

// handle is one open of a File.
type handle struct {
	file *File
	// passthroughFd is the backing file the kernel is to use directly
	// (FUSE passthrough), or -1 for an open served by the daemon and the
	// page cache.
	passthroughFd int
	// writable: opened for writing (or truncating); the keeper saves a
	// keep file when the last such handle goes (keep.go).
	writable bool
	// firstPassthrough: the file's first passthrough open (see rawattr.go).
	firstPassthrough bool
	released         atomic.Bool
}

var _ fs.FilePassthroughFder = (*handle)(nil)

// PassthroughFd is asked once, when go-fuse answers the open.
func (h *handle) PassthroughFd() (int, bool) {
	return h.passthroughFd, h.passthroughFd >= 0
}

// openFlags are the FOPEN flags of the handle's open. go-fuse adds
// FOPEN_PASSTHROUGH for passthrough handles.
func (h *handle) openFlags() uint32 {
	if h.passthroughFd >= 0 {
		return 0
	}
	f := h.file
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.passthroughSeen {
		// Passthrough writes bypassed the page cache: start afresh.
		return 0
	}
	if f.root.atime.Mode == Strictatime {
		// Drop the cached pages, so that this open's first read reaches
		// the daemon and updates atime (see Atime).
		return openFlags &^ fuse.FOPEN_KEEP_CACHE
	}
	return openFlags
}

// Release drops the handle's count; the kernel sends it once per open,
// after the last close(2) or munmap(2) that used it.
func (h *handle) Release(ctx context.Context) syscall.Errno {
	if h.released.Swap(true) {
		h.file.root.log.Printf("bug: file %d: handle released twice", h.file.ino())
		return 0
	}
	h.file.closeHandle(h)
	return 0
}

const (
	unixSeekData = 3 // SEEK_DATA
	unixSeekHole = 4 // SEEK_HOLE
)

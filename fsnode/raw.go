package fsnode

import (
	"github.com/hanwen/go-fuse/v2/fuse"

	"github.com/tmpmount/tmpmount/spool"
)

// rawFS sits between go-fuse's server and its fs bridge to see request
// fields the fs API drops. go-fuse dispatches WRITE to Writev first and
// falls back to Write only on ENOSYS, so both are covered.
type rawFS struct {
	fuse.RawFileSystem
	root *Root
}

func (r *rawFS) Writev(cancel <-chan struct{}, in *fuse.WriteIn, data [][]byte) (uint32, fuse.Status) {
	r.beforeWrite(in)
	return r.RawFileSystem.Writev(cancel, in, data)
}

func (r *rawFS) Write(cancel <-chan struct{}, in *fuse.WriteIn, data []byte) (uint32, fuse.Status) {
	r.beforeWrite(in)
	return r.RawFileSystem.Write(cancel, in, data)
}

// Open clears set-user-ID and set-group-ID bits when an unprivileged
// open(O_TRUNC) truncates (FUSE_ATOMIC_O_TRUNC with HANDLE_KILLPRIV_V2).
func (r *rawFS) Open(cancel <-chan struct{}, in *fuse.OpenIn, out *fuse.OpenOut) fuse.Status {
	if r.root.refuseOpen(in) { // fileattr.go
		return fuse.EPERM
	}
	st := r.RawFileSystem.Open(cancel, in, out)
	if st.Ok() && in.Mode&fuse.OPEN_KILL_SUIDGID != 0 {
		if f := r.root.fileByIno(in.NodeId); f != nil {
			f.killSuid(&in.Caller)
		}
	}
	return st
}

// Release marks the file as having a release in flight until go-fuse is
// done with it (see File.releasing): go-fuse decrements the node's
// passthrough backing-ID count at the release of every handle, cached ones
// included, after the node's own Release has run.
func (r *rawFS) Release(cancel <-chan struct{}, in *fuse.ReleaseIn) {
	f := r.root.fileByIno(in.NodeId)
	if f == nil {
		r.RawFileSystem.Release(cancel, in)
		return
	}
	f.mu.Lock()
	f.releasing++
	f.mu.Unlock()
	r.RawFileSystem.Release(cancel, in)
	f.mu.Lock()
	f.releasing--
	f.mu.Unlock()
}

// beforeWrite acts on two write flags:
//
// WRITE_CACHE marks a write of a dirty page cache page: with the writeback
// cache off, that is a page written through a shared mapping. Such a file
// rolls over to disk first, as SpooledTemporaryFile does on fileno(): from
// then on the kernel's page cache, not the daemon's RAM, holds what the
// mapping writes, and the daemon only passes it to the backing file.
//
// WRITE_KILL_SUIDGID asks to clear set-user-ID and set-group-ID bits: with
// FUSE_HANDLE_KILLPRIV_V2 the kernel flags the writes of callers without
// CAP_FSETID instead of asking for security.capability before every write.
func (r *rawFS) beforeWrite(in *fuse.WriteIn) {
	if in.WriteFlags&(fuse.WRITE_CACHE|fuse.WRITE_KILL_SUIDGID) == 0 {
		return
	}
	f := r.root.fileByIno(in.NodeId)
	if f == nil {
		return
	}
	if in.WriteFlags&fuse.WRITE_CACHE != 0 {
		if err := f.data.SpillFor(spool.ByMapping); err != nil {
			r.root.log.Printf("file %d written through a mapping stays in RAM: %v", f.ino(), err)
		}
	}
	if in.WriteFlags&fuse.WRITE_KILL_SUIDGID != 0 {
		f.killSuid(&in.Caller)
	}
}

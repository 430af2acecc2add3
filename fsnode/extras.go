package fsnode

import (
	"context"
	"sync"

	"github.com/hanwen/go-fuse/v2/fuse"
)

// requestExtras carries request fields that go-fuse's fs API drops (the
// umask of a create, the flags of a setxattr) from rawFS to the node
// method serving the same request. go-fuse gives each request in flight a
// cancel channel of its own and passes it on in the fuse.Context it hands
// the node, so that channel is the key; the entry lives only while rawFS
// waits for the request.
type requestExtras struct {
	m sync.Map // <-chan struct{} -> extra
}

type extra struct {
	umask         uint32 // CREATE, MKDIR, MKNOD, TMPFILE with FUSE_DONT_MASK
	setxattrFlags uint32 // SETXATTR with FUSE_SETXATTR_EXT
}

// with runs serve with e attached to the request whose cancel channel is
// cancel.
func (x *requestExtras) with(cancel <-chan struct{}, e extra, serve func() fuse.Status) fuse.Status {
	x.m.Store(cancel, e)
	defer x.m.Delete(cancel)
	return serve()
}

// of returns what rawFS attached to the request ctx belongs to; the zero
// extra if nothing was (a umask of 0 leaves the mode as the kernel sent
// it, which is right when the kernel applied the umask itself).
func (x *requestExtras) of(ctx context.Context) extra {
	c, ok := ctx.(*fuse.Context)
	if !ok || c.Cancel == nil {
		return extra{}
	}
	if e, ok := x.m.Load(c.Cancel); ok {
		return e.(extra)
	}
	return extra{}
}

func (r *rawFS) Mkdir(cancel <-chan struct{}, in *fuse.MkdirIn, name string, out *fuse.EntryOut) fuse.Status {
	if r.root.refuseCreate(in.NodeId) { // fileattr.go
		return fuse.EPERM
	}
	return r.root.extras.with(cancel, extra{umask: in.Umask}, func() fuse.Status {
		return r.RawFileSystem.Mkdir(cancel, in, name, out)
	})
}

func (r *rawFS) Mknod(cancel <-chan struct{}, in *fuse.MknodIn, name string, out *fuse.EntryOut) fuse.Status {
	if r.root.refuseCreate(in.NodeId) { // fileattr.go
		return fuse.EPERM
	}
	return r.root.extras.with(cancel, extra{umask: in.Umask}, func() fuse.Status {
		return r.RawFileSystem.Mknod(cancel, in, name, out)
	})
}

func (r *rawFS) Create(cancel <-chan struct{}, in *fuse.CreateIn, name string, out *fuse.CreateOut) fuse.Status {
	if r.root.refuseCreate(in.NodeId) { // fileattr.go
		return fuse.EPERM
	}
	return r.root.extras.with(cancel, extra{umask: in.Umask}, func() fuse.Status {
		return r.RawFileSystem.Create(cancel, in, name, out)
	})
}

func (r *rawFS) Tmpfile(cancel <-chan struct{}, in *fuse.CreateIn, out *fuse.CreateOut) fuse.Status {
	if r.root.refuseCreate(in.NodeId) { // fileattr.go
		return fuse.EPERM
	}
	return r.root.extras.with(cancel, extra{umask: in.Umask}, func() fuse.Status {
		return r.RawFileSystem.Tmpfile(cancel, in, out)
	})
}

func (r *rawFS) SetXAttr(cancel <-chan struct{}, in *fuse.SetXAttrIn, attr string, data []byte) fuse.Status {
	if r.root.refuseXattrChange(in.NodeId, attr) { // fileattr.go
		return fuse.EPERM
	}
	if in.SetXAttrFlags == 0 {
		return r.RawFileSystem.SetXAttr(cancel, in, attr, data)
	}
	return r.root.extras.with(cancel, extra{setxattrFlags: in.SetXAttrFlags}, func() fuse.Status {
		return r.RawFileSystem.SetXAttr(cancel, in, attr, data)
	})
}

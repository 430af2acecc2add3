package fsnode

import (
	"context"
	"syscall"

	"github.com/hanwen/go-fuse/v2/fs"
	"github.com/hanwen/go-fuse/v2/fuse"
)

// Symlink is a symbolic link; its target never changes.
type Symlink struct {
	node
	target []byte
}

func (s *Symlink) fillAttr(out *fuse.Attr) syscall.Errno {
	s.mu.Lock()
	s.fillCommonAttrLocked(out)
	s.mu.Unlock()
	out.Size = uint64(len(s.target))
	out.Blocks = uint64(symlinkCost(s.target) / 512) // a long target takes a page, as on tmpfs
	return 0
}

func (s *Symlink) Getattr(ctx context.Context, fh fs.FileHandle, out *fuse.AttrOut) syscall.Errno {
	return s.fillAttr(&out.Attr)
}

func (s *Symlink) Setattr(ctx context.Context, fh fs.FileHandle, in *fuse.SetAttrIn, out *fuse.AttrOut) syscall.Errno {
	if _, ok := in.GetSize(); ok {
		return syscall.EINVAL
	}
	s.applySetattr(callerOf(ctx), in, false)
	return s.fillAttr(&out.Attr)
}

func (s *Symlink) Readlink(ctx context.Context) ([]byte, syscall.Errno) {
	s.touchAtime()
	return s.target, 0
}

// Special is a FIFO, socket or device node. The kernel serves their I/O
// itself; the filesystem only keeps their names and attributes.
type Special struct {
	node
}

func (s *Special) fillAttr(out *fuse.Attr) syscall.Errno {
	s.mu.Lock()
	s.fillCommonAttrLocked(out)
	s.mu.Unlock()
	return 0
}

func (s *Special) Getattr(ctx context.Context, fh fs.FileHandle, out *fuse.AttrOut) syscall.Errno {
	return s.fillAttr(&out.Attr)
}

func (s *Special) Setattr(ctx context.Context, fh fs.FileHandle, in *fuse.SetAttrIn, out *fuse.AttrOut) syscall.Errno {
	if _, ok := in.GetSize(); ok {
		return syscall.EINVAL
	}
	s.applySetattr(callerOf(ctx), in, false)
	return s.fillAttr(&out.Attr)
}

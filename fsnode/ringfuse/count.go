package ringfuse

import (
	"sync/atomic"

	"github.com/hanwen/go-fuse/v2/fuse"
)

// DevCounter counts the requests go-fuse serves from /dev/fuse, so that
// the split between the transports can be seen (tmpmount stat). FORGETs
// are counted apart: they never come on a ring.
type DevCounter struct {
	fuse.RawFileSystem
	requests atomic.Uint64
	forgets  atomic.Uint64
}

// Requests is the number of requests served from /dev/fuse, FORGETs aside.
func (c *DevCounter) Requests() uint64 { return c.requests.Load() }

// Forgets is the number of FORGETs (each of a BATCH_FORGET counts).
func (c *DevCounter) Forgets() uint64 { return c.forgets.Load() }

func (c *DevCounter) Forget(nodeid, nlookup uint64) {
	c.forgets.Add(1)
	c.RawFileSystem.Forget(nodeid, nlookup)
}

func (c *DevCounter) Lookup(cancel <-chan struct{}, h *fuse.InHeader, name string, out *fuse.EntryOut) fuse.Status {
	c.requests.Add(1)
	return c.RawFileSystem.Lookup(cancel, h, name, out)
}

func (c *DevCounter) GetAttr(cancel <-chan struct{}, in *fuse.GetAttrIn, out *fuse.AttrOut) fuse.Status {
	c.requests.Add(1)
	return c.RawFileSystem.GetAttr(cancel, in, out)
}

func (c *DevCounter) SetAttr(cancel <-chan struct{}, in *fuse.SetAttrIn, out *fuse.AttrOut) fuse.Status {
	c.requests.Add(1)
	return c.RawFileSystem.SetAttr(cancel, in, out)
}

func (c *DevCounter) Mknod(cancel <-chan struct{}, in *fuse.MknodIn, name string, out *fuse.EntryOut) fuse.Status {
	c.requests.Add(1)
	return c.RawFileSystem.Mknod(cancel, in, name, out)
}

func (c *DevCounter) Mkdir(cancel <-chan struct{}, in *fuse.MkdirIn, name string, out *fuse.EntryOut) fuse.Status {
	c.requests.Add(1)
	return c.RawFileSystem.Mkdir(cancel, in, name, out)
}

func (c *DevCounter) Unlink(cancel <-chan struct{}, h *fuse.InHeader, name string) fuse.Status {
	c.requests.Add(1)
	return c.RawFileSystem.Unlink(cancel, h, name)
}

func (c *DevCounter) Rmdir(cancel <-chan struct{}, h *fuse.InHeader, name string) fuse.Status {
	c.requests.Add(1)
	return c.RawFileSystem.Rmdir(cancel, h, name)
}

func (c *DevCounter) Rename(cancel <-chan struct{}, in *fuse.RenameIn, from, to string) fuse.Status {
	c.requests.Add(1)
	return c.RawFileSystem.Rename(cancel, in, from, to)
}

func (c *DevCounter) Link(cancel <-chan struct{}, in *fuse.LinkIn, name string, out *fuse.EntryOut) fuse.Status {
	c.requests.Add(1)
	return c.RawFileSystem.Link(cancel, in, name, out)
}

func (c *DevCounter) Symlink(cancel <-chan struct{}, h *fuse.InHeader, target, name string, out *fuse.EntryOut) fuse.Status {
	c.requests.Add(1)
	return c.RawFileSystem.Symlink(cancel, h, target, name, out)
}

func (c *DevCounter) Readlink(cancel <-chan struct{}, h *fuse.InHeader) ([]byte, fuse.Status) {
	c.requests.Add(1)
	return c.RawFileSystem.Readlink(cancel, h)
}

func (c *DevCounter) Access(cancel <-chan struct{}, in *fuse.AccessIn) fuse.Status {
	c.requests.Add(1)
	return c.RawFileSystem.Access(cancel, in)
}

func (c *DevCounter) GetXAttr(cancel <-chan struct{}, h *fuse.InHeader, attr string, dest []byte) (uint32, fuse.Status) {
	c.requests.Add(1)
	return c.RawFileSystem.GetXAttr(cancel, h, attr, dest)
}

func (c *DevCounter) ListXAttr(cancel <-chan struct{}, h *fuse.InHeader, dest []byte) (uint32, fuse.Status) {
	c.requests.Add(1)
	return c.RawFileSystem.ListXAttr(cancel, h, dest)
}

func (c *DevCounter) SetXAttr(cancel <-chan struct{}, in *fuse.SetXAttrIn, attr string, data []byte) fuse.Status {
	c.requests.Add(1)
	return c.RawFileSystem.SetXAttr(cancel, in, attr, data)
}

func (c *DevCounter) RemoveXAttr(cancel <-chan struct{}, h *fuse.InHeader, attr string) fuse.Status {
	c.requests.Add(1)
	return c.RawFileSystem.RemoveXAttr(cancel, h, attr)
}

func (c *DevCounter) Create(cancel <-chan struct{}, in *fuse.CreateIn, name string, out *fuse.CreateOut) fuse.Status {
	c.requests.Add(1)
	return c.RawFileSystem.Create(cancel, in, name, out)
}

func (c *DevCounter) Tmpfile(cancel <-chan struct{}, in *fuse.CreateIn, out *fuse.CreateOut) fuse.Status {
	c.requests.Add(1)
	return c.RawFileSystem.Tmpfile(cancel, in, out)
}

func (c *DevCounter) Open(cancel <-chan struct{}, in *fuse.OpenIn, out *fuse.OpenOut) fuse.Status {
	c.requests.Add(1)
	return c.RawFileSystem.Open(cancel, in, out)
}

func (c *DevCounter) Read(cancel <-chan struct{}, in *fuse.ReadIn, buf []byte) (fuse.ReadResult, fuse.Status) {
	c.requests.Add(1)
	return c.RawFileSystem.Read(cancel, in, buf)
}

func (c *DevCounter) Lseek(cancel <-chan struct{}, in *fuse.LseekIn, out *fuse.LseekOut) fuse.Status {
	c.requests.Add(1)
	return c.RawFileSystem.Lseek(cancel, in, out)
}

func (c *DevCounter) Release(cancel <-chan struct{}, in *fuse.ReleaseIn) {
	c.requests.Add(1)
	c.RawFileSystem.Release(cancel, in)
}

func (c *DevCounter) Writev(cancel <-chan struct{}, in *fuse.WriteIn, data [][]byte) (uint32, fuse.Status) {
	c.requests.Add(1)
	return c.RawFileSystem.Writev(cancel, in, data)
}

func (c *DevCounter) CopyFileRange(cancel <-chan struct{}, in *fuse.CopyFileRangeIn) (uint32, fuse.Status) {
	c.requests.Add(1)
	return c.RawFileSystem.CopyFileRange(cancel, in)
}

func (c *DevCounter) Flush(cancel <-chan struct{}, in *fuse.FlushIn) fuse.Status {
	c.requests.Add(1)
	return c.RawFileSystem.Flush(cancel, in)
}

func (c *DevCounter) Fsync(cancel <-chan struct{}, in *fuse.FsyncIn) fuse.Status {
	c.requests.Add(1)
	return c.RawFileSystem.Fsync(cancel, in)
}

func (c *DevCounter) Fallocate(cancel <-chan struct{}, in *fuse.FallocateIn) fuse.Status {
	c.requests.Add(1)
	return c.RawFileSystem.Fallocate(cancel, in)
}

func (c *DevCounter) OpenDir(cancel <-chan struct{}, in *fuse.OpenIn, out *fuse.OpenOut) fuse.Status {
	c.requests.Add(1)
	return c.RawFileSystem.OpenDir(cancel, in, out)
}

func (c *DevCounter) ReadDir(cancel <-chan struct{}, in *fuse.ReadIn, out *fuse.DirEntryList) fuse.Status {
	c.requests.Add(1)
	return c.RawFileSystem.ReadDir(cancel, in, out)
}

func (c *DevCounter) ReadDirPlus(cancel <-chan struct{}, in *fuse.ReadIn, out *fuse.DirEntryList) fuse.Status {
	c.requests.Add(1)
	return c.RawFileSystem.ReadDirPlus(cancel, in, out)
}

func (c *DevCounter) ReleaseDir(in *fuse.ReleaseIn) {
	c.requests.Add(1)
	c.RawFileSystem.ReleaseDir(in)
}

func (c *DevCounter) FsyncDir(cancel <-chan struct{}, in *fuse.FsyncIn) fuse.Status {
	c.requests.Add(1)
	return c.RawFileSystem.FsyncDir(cancel, in)
}

func (c *DevCounter) StatFs(cancel <-chan struct{}, h *fuse.InHeader, out *fuse.StatfsOut) fuse.Status {
	c.requests.Add(1)
	return c.RawFileSystem.StatFs(cancel, h, out)
}

func (c *DevCounter) Statx(cancel <-chan struct{}, in *fuse.StatxIn, out *fuse.StatxOut) fuse.Status {
	c.requests.Add(1)
	return c.RawFileSystem.Statx(cancel, in, out)
}

package fsnode

import (
	"context"
	"sync"
	"syscall"
	"unsafe"

	"github.com/hanwen/go-fuse/v2/fs"
	"github.com/hanwen/go-fuse/v2/fuse"
)

// Directory streams. A stream lists the directory as it was when the
// stream began, as tmpfs does ("stop at the last entry that existed when
// the directory was opened"): entries are ordered by their cookie (see
// dirEntries), and a stream stops before the first cookie handed out after
// it began. A rename gives the entry a new cookie, as a create does, so a
// program that renames what it reads (fstests generic/736), or creates
// while it reads, cannot feed its own listing forever; every entry that is
// there for the whole stream is returned exactly once, and removed ones
// are skipped.
//
// The stream begins at the READDIR of offset 0: the kernel asks for it
// after opendir and again after rewinddir (which sends the daemon
// nothing), and POSIX wants a rewound stream to show the directory as it
// is then.
//
// READDIR and READDIRPLUS are served here, from the raw request wrapper,
// not by go-fuse's fs bridge: the bridge keeps its previous reply and,
// when the kernel resumes inside it (having passed only part of it to the
// caller), replays the rest from that copy, names removed since included.
// Each request carries the offset to resume after, which is a cookie, so
// serving it takes nothing but the stream's limit.

// dirStream is one open directory: the go-fuse file handle of an opendir.
type dirStream struct {
	dir *Dir

	mu    sync.Mutex
	limit uint64 // entries with this cookie or a later one came after the stream began
}

// OpendirHandle opens a stream. Its handle number is go-fuse's, known only
// once go-fuse has answered; rawFS.OpenDir files the stream under it.
func (d *Dir) OpendirHandle(ctx context.Context, flags uint32) (fs.FileHandle, uint32, syscall.Errno) {
	s := &dirStream{dir: d}
	d.root.streams.opening(d.ino(), s)
	return s, 0, 0
}

func (s *dirStream) Releasedir(ctx context.Context, flags uint32) {}

func (s *dirStream) Fsyncdir(ctx context.Context, flags uint32) syscall.Errno { return 0 }

// dirStreams finds the stream of a request by its handle number.
type dirStreams struct {
	mu sync.Mutex
	// pending: streams made by OpendirHandle whose handle number go-fuse
	// has not yet answered, by directory. Any of one directory's will do
	// for any of its opens: they are alike until their first READDIR.
	pending map[uint64][]*dirStream
	byFh    map[uint64]*dirStream
}

func (ds *dirStreams) opening(ino uint64, s *dirStream) {
	ds.mu.Lock()
	defer ds.mu.Unlock()
	if ds.pending == nil {
		ds.pending = make(map[uint64][]*dirStream)
		ds.byFh = make(map[uint64]*dirStream)
	}
	ds.pending[ino] = append(ds.pending[ino], s)
}

// opened files a stream of directory ino under the handle number fh.
func (ds *dirStreams) opened(ino, fh uint64) bool {
	ds.mu.Lock()
	defer ds.mu.Unlock()
	list := ds.pending[ino]
	if len(list) == 0 {
		return false
	}
	s := list[len(list)-1]
	if len(list) == 1 {
		delete(ds.pending, ino)
	} else {
		ds.pending[ino] = list[:len(list)-1]
	}
	ds.byFh[fh] = s
	return true
}

func (ds *dirStreams) get(fh uint64) *dirStream {
	ds.mu.Lock()
	defer ds.mu.Unlock()
	return ds.byFh[fh]
}

func (ds *dirStreams) released(fh uint64) {
	ds.mu.Lock()
	delete(ds.byFh, fh)
	ds.mu.Unlock()
}

func (r *rawFS) OpenDir(cancel <-chan struct{}, in *fuse.OpenIn, out *fuse.OpenOut) fuse.Status {
	st := r.RawFileSystem.OpenDir(cancel, in, out)
	if st.Ok() && !r.root.streams.opened(in.NodeId, out.Fh) {
		r.root.log.Printf("bug: opendir of node %d: no stream to file under handle %d", in.NodeId, out.Fh)
	}
	return st
}

func (r *rawFS) ReleaseDir(in *fuse.ReleaseIn) {
	r.root.streams.released(in.Fh)
	r.RawFileSystem.ReleaseDir(in)
}

func (r *rawFS) ReadDir(cancel <-chan struct{}, in *fuse.ReadIn, out *fuse.DirEntryList) fuse.Status {
	s := r.root.streams.get(in.Fh)
	if s == nil {
		r.root.log.Printf("bug: readdir of node %d: no stream for handle %d", in.NodeId, in.Fh)
		return fuse.EIO
	}
	for _, e := range s.entries(in.Offset, int(in.Size), false) {
		if !out.AddDirEntry(e) {
			break
		}
	}
	return fuse.OK
}

// ReadDirPlus answers each entry with a lookup, as go-fuse's bridge does:
// the lookup counts the kernel's new reference to the node (go-fuse's
// count, and File.kernelRefs). The entry goes into the reply first: an
// entry that did not fit would leave a reference the kernel never got,
// and so never forgets.
func (r *rawFS) ReadDirPlus(cancel <-chan struct{}, in *fuse.ReadIn, out *fuse.DirEntryList) fuse.Status {
	s := r.root.streams.get(in.Fh)
	if s == nil {
		r.root.log.Printf("bug: readdirplus of node %d: no stream for handle %d", in.NodeId, in.Fh)
		return fuse.EIO
	}
	header := fuse.InHeader{NodeId: in.NodeId, Caller: in.Caller}
	for _, e := range s.entries(in.Offset, int(in.Size), true) {
		entryOut := out.AddDirLookupEntry(e)
		if entryOut == nil {
			break
		}
		if e.Name == "." || e.Name == ".." {
			continue // the kernel takes nothing from their EntryOut
		}
		if st := r.Lookup(cancel, &header, e.Name, entryOut); !st.Ok() || entryOut.NodeId == 0 {
			// Removed since: listed without attributes, as a READDIR
			// entry would be.
			*entryOut = fuse.EntryOut{}
		} else if entryOut.Attr.Mode&syscall.S_IFMT != e.Mode&syscall.S_IFMT {
			out.FixMode(entryOut.Attr.Mode) // replaced since by a node of another type
		}
	}
	return fuse.OK
}

// Sizes of a READDIR entry's header and of the EntryOut that precedes
// each READDIRPLUS entry (struct fuse_dirent, struct fuse_entry_out).
const (
	fuseDirentHeader = 24
	fuseEntryOutSize = int(unsafe.Sizeof(fuse.EntryOut{}))
)

// entries returns the entries after offset off that fit in size bytes of
// reply (fewer is fine: the kernel asks again from the last one it got).
func (s *dirStream) entries(off uint64, size int, plus bool) []fuse.DirEntry {
	d := s.dir
	d.touchAtime()
	var list []fuse.DirEntry
	add := func(e fuse.DirEntry) bool {
		n := fuseDirentHeader + (len(e.Name)+7)&^7
		if plus {
			n += fuseEntryOutSize
		}
		if n > size {
			return false
		}
		size -= n
		list = append(list, e)
		return true
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	d.root.tree.RLock()
	defer d.root.tree.RUnlock()
	if off == 0 {
		s.limit = d.entries.next
	}
	if off < cookieDot && !add(fuse.DirEntry{Name: ".", Mode: syscall.S_IFDIR, Ino: d.ino(), Off: cookieDot}) {
		return list
	}
	if off < cookieDotDot {
		ino := d.ino()
		if d.parent != nil {
			ino = d.parent.ino()
		}
		if !add(fuse.DirEntry{Name: "..", Mode: syscall.S_IFDIR, Ino: ino, Off: cookieDotDot}) {
			return list
		}
	}
	d.entries.each(max(off, cookieDotDot), s.limit, func(e *dirent) bool {
		attr := e.child.EmbeddedInode().StableAttr()
		return add(fuse.DirEntry{Name: e.name, Mode: attr.Mode, Ino: attr.Ino, Off: e.cookie})
	})
	return list
}

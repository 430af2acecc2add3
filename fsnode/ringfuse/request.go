package ringfuse

import (
	"bytes"
	"unsafe"

	"github.com/hanwen/go-fuse/v2/fuse"
)

// FUSE opcodes (include/uapi/linux/fuse.h).
const (
	opLookup          = 1
	opForget          = 2
	opGetattr         = 3
	opSetattr         = 4
	opReadlink        = 5
	opSymlink         = 6
	opMknod           = 8
	opMkdir           = 9
	opUnlink          = 10
	opRmdir           = 11
	opRename          = 12
	opLink            = 13
	opOpen            = 14
	opRead            = 15
	opWrite           = 16
	opStatfs          = 17
	opRelease         = 18
	opFsync           = 20
	opSetxattr        = 21
	opGetxattr        = 22
	opListxattr       = 23
	opRemovexattr     = 24
	opFlush           = 25
	opInit            = 26
	opOpendir         = 27
	opReaddir         = 28
	opReleasedir      = 29
	opFsyncdir        = 30
	opGetlk           = 31
	opSetlk           = 32
	opSetlkw          = 33
	opAccess          = 34
	opCreate          = 35
	opInterrupt       = 36
	opBmap            = 37
	opDestroy         = 38
	opIoctl           = 39
	opPoll            = 40
	opNotifyReply     = 41
	opBatchForget     = 42
	opFallocate       = 43
	opReaddirplus     = 44
	opRename2         = 45
	opLseek           = 46
	opCopyFileRange   = 47
	opSetupmapping    = 48
	opRemovemapping   = 49
	opSyncfs          = 50
	opTmpfile         = 51
	opStatx           = 52
	opCopyFileRange64 = 53
	opCount           = 54
)

// go-fuse answers a private file of its own (see its poll.go) before the
// ring exists; should a request for it come on the ring, it gets the same
// answers.
const (
	pollHackName  = ".go-fuse-epoll-hack"
	pollHackInode = ^uint64(0)
)

// inScratch holds the request header followed by the op's argument struct,
// laid out as go-fuse's *In types expect; outScratch the reply's argument
// struct. Both are 8-byte aligned.
const (
	inScratch  = inHeaderSize + opInSize
	outScratch = 512
)

// request decodes one ring entry's request, calls the filesystem, and
// encodes the reply into the entry. Everything it needs is allocated once
// per entry.
type request struct {
	e   *entry
	fs  fuse.RawFileSystem
	in  [inScratch / 8]uint64
	out [outScratch / 8]uint64
	iov [1][]byte
	// cancel is handed to the filesystem with each request, as go-fuse
	// hands each request a channel of its own: tmpmount keys what it
	// carries from its raw wrapper to the node methods by it. An entry
	// serves one request at a time, so one channel per entry will do; it
	// is never closed (interrupts are not acted on).
	cancel chan struct{}
}

func (r *request) init(e *entry) {
	r.e = e
	r.fs = e.q.t.fs
	r.cancel = make(chan struct{})
}

func (r *request) inPtr() unsafe.Pointer  { return unsafe.Pointer(&r.in[0]) }
func (r *request) outPtr() unsafe.Pointer { return unsafe.Pointer(&r.out[0]) }
func (r *request) header() *fuse.InHeader { return (*fuse.InHeader)(r.inPtr()) }

// reply is what a handler produced: the length of its argument struct in
// r.out, or of data it wrote into the payload buffer itself (direct).
type reply struct {
	n      int
	direct bool
	st     fuse.Status
}

func (r *request) serve() {
	e := r.e
	in := unsafe.Slice((*byte)(r.inPtr()), inScratch)
	copy(in[:inHeaderSize], e.hdr[:inHeaderSize])
	h := r.header()
	ent := (*entInOut)(unsafe.Pointer(&e.hdr[inOutHeaderSize+opInSize]))
	payloadSz := int(min(ent.payloadSz, uint32(len(e.payload))))
	argSz := int(h.Length) - inHeaderSize - payloadSz
	argSz = max(0, min(argSz, opInSize))
	copy(in[inHeaderSize:inHeaderSize+argSz], e.hdr[inOutHeaderSize:inOutHeaderSize+argSz])
	clear(in[inHeaderSize+argSz:])
	payload := e.payload[:payloadSz]
	// Request extensions (security context, supplementary groups) follow
	// the payload; tmpmount negotiates none, so they are dropped.
	if ext := int(h.Padding&0xffff) * 8; ext > 0 && ext <= len(payload) {
		payload = payload[:len(payload)-ext]
	}
	clear(r.out[:])
	t := e.q.t
	if t.debug {
		t.logf("ring q%d: rx %d: %s n%d %s", e.q.qid, h.Unique, opName(h.Opcode), h.NodeId, describePayload(h.Opcode, payload))
	}
	t.order.Load()
	rep := r.dispatch(h, payload)
	t.order.Add(1)
	oh := (*fuse.OutHeader)(unsafe.Pointer(&e.hdr[0]))
	unique := h.Unique
	n := 0
	if rep.st == fuse.OK {
		n = rep.n
		if !rep.direct {
			copy(e.payload[:n], unsafe.Slice((*byte)(r.outPtr()), n))
		}
	}
	oh.Unique = unique
	oh.Status = -int32(rep.st)
	oh.Length = uint32(outHeaderSize + n)
	ent.payloadSz = uint32(n)
	if t.debug {
		t.logf("ring q%d: tx %d: %v, %d bytes", e.q.qid, unique, rep.st, n)
	}
}

// sizes of the reply structs.
const (
	entryOutSize  = int(unsafe.Sizeof(fuse.EntryOut{}))
	attrOutSize   = int(unsafe.Sizeof(fuse.AttrOut{}))
	openOutSize   = int(unsafe.Sizeof(fuse.OpenOut{}))
	createOutSize = int(unsafe.Sizeof(fuse.CreateOut{}))
	writeOutSize  = int(unsafe.Sizeof(fuse.WriteOut{}))
	statfsOutSize = int(unsafe.Sizeof(fuse.StatfsOut{}))
	xattrOutSize  = int(unsafe.Sizeof(fuse.GetXAttrOut{}))
	lseekOutSize  = int(unsafe.Sizeof(fuse.LseekOut{}))
	lkOutSize     = int(unsafe.Sizeof(fuse.LkOut{}))
	statxOutSize  = int(unsafe.Sizeof(fuse.StatxOut{}))
	ioctlOutSize  = int(unsafe.Sizeof(fuse.IoctlOut{}))
)

func fixed(n int, st fuse.Status) reply { return reply{n: n, st: st} }
func status(st fuse.Status) reply       { return reply{st: st} }

// name returns the NUL-terminated string at the start of b and what
// follows it. The string is a copy: the filesystem may keep it.
func name(b []byte) (string, []byte, bool) {
	i := bytes.IndexByte(b, 0)
	if i < 0 {
		return "", nil, false
	}
	return string(b[:i]), b[i+1:], true
}

func (r *request) dispatch(h *fuse.InHeader, payload []byte) reply {
	fs := r.fs
	in, out := r.inPtr(), r.outPtr()
	if h.NodeId == pollHackInode || (h.Opcode == opLookup && h.NodeId == fuse.FUSE_ROOT_ID && bytes.HasPrefix(payload, []byte(pollHackName+"\x00"))) {
		return r.pollHack(h)
	}
	switch h.Opcode {
	case opLookup:
		n, _, ok := name(payload)
		if !ok {
			return status(fuse.EINVAL)
		}
		return fixed(entryOutSize, fs.Lookup(r.cancel, h, n, (*fuse.EntryOut)(out)))
	case opGetattr:
		return fixed(attrOutSize, fs.GetAttr(r.cancel, (*fuse.GetAttrIn)(in), (*fuse.AttrOut)(out)))
	case opSetattr:
		return fixed(attrOutSize, fs.SetAttr(r.cancel, (*fuse.SetAttrIn)(in), (*fuse.AttrOut)(out)))
	case opOpen:
		return fixed(openOutSize, fs.Open(r.cancel, (*fuse.OpenIn)(in), (*fuse.OpenOut)(out)))
	case opCreate:
		n, _, ok := name(payload)
		if !ok {
			return status(fuse.EINVAL)
		}
		return fixed(createOutSize, fs.Create(r.cancel, (*fuse.CreateIn)(in), n, (*fuse.CreateOut)(out)))
	case opTmpfile:
		return fixed(createOutSize, fs.Tmpfile(r.cancel, (*fuse.CreateIn)(in), (*fuse.CreateOut)(out)))
	case opRelease:
		fs.Release(r.cancel, (*fuse.ReleaseIn)(in))
		return status(fuse.OK)
	case opReleasedir:
		fs.ReleaseDir((*fuse.ReleaseIn)(in))
		return status(fuse.OK)
	case opUnlink, opRmdir:
		n, _, ok := name(payload)
		if !ok {
			return status(fuse.EINVAL)
		}
		if h.Opcode == opUnlink {
			return status(fs.Unlink(r.cancel, h, n))
		}
		return status(fs.Rmdir(r.cancel, h, n))
	case opRead:
		return r.read((*fuse.ReadIn)(in))
	case opWrite:
		wi := (*fuse.WriteIn)(in)
		data := payload[:min(int(wi.Size), len(payload))]
		r.iov[0] = data
		wo := (*fuse.WriteOut)(out)
		var st fuse.Status
		wo.Size, st = fs.Writev(r.cancel, wi, r.iov[:])
		if st == fuse.ENOSYS {
			wo.Size, st = fs.Write(r.cancel, wi, data)
		}
		r.iov[0] = nil
		return fixed(writeOutSize, st)
	case opFlush:
		return status(fs.Flush(r.cancel, (*fuse.FlushIn)(in)))
	case opFsync:
		return status(fs.Fsync(r.cancel, (*fuse.FsyncIn)(in)))
	case opFsyncdir:
		return status(fs.FsyncDir(r.cancel, (*fuse.FsyncIn)(in)))
	case opOpendir:
		return fixed(openOutSize, fs.OpenDir(r.cancel, (*fuse.OpenIn)(in), (*fuse.OpenOut)(out)))
	case opReaddir, opReaddirplus:
		ri := (*fuse.ReadIn)(in)
		l := fuse.NewDirEntryList(r.e.payload[:min(int(ri.Size), len(r.e.payload))], ri.Offset)
		var st fuse.Status
		if h.Opcode == opReaddir {
			st = fs.ReadDir(r.cancel, ri, l)
		} else {
			st = fs.ReadDirPlus(r.cancel, ri, l)
		}
		return reply{n: len(l.Bytes()), direct: true, st: st}
	case opMknod, opMkdir:
		n, _, ok := name(payload)
		if !ok {
			return status(fuse.EINVAL)
		}
		if h.Opcode == opMknod {
			return fixed(entryOutSize, fs.Mknod(r.cancel, (*fuse.MknodIn)(in), n, (*fuse.EntryOut)(out)))
		}
		return fixed(entryOutSize, fs.Mkdir(r.cancel, (*fuse.MkdirIn)(in), n, (*fuse.EntryOut)(out)))
	case opSymlink:
		link, rest, ok := name(payload)
		target, _, ok2 := name(rest)
		if !ok || !ok2 {
			return status(fuse.EINVAL)
		}
		return fixed(entryOutSize, fs.Symlink(r.cancel, h, target, link, (*fuse.EntryOut)(out)))
	case opLink:
		n, _, ok := name(payload)
		if !ok {
			return status(fuse.EINVAL)
		}
		return fixed(entryOutSize, fs.Link(r.cancel, (*fuse.LinkIn)(in), n, (*fuse.EntryOut)(out)))
	case opRename, opRename2:
		from, rest, ok := name(payload)
		to, _, ok2 := name(rest)
		if !ok || !ok2 {
			return status(fuse.EINVAL)
		}
		return status(fs.Rename(r.cancel, (*fuse.RenameIn)(in), from, to))
	case opReadlink:
		data, st := fs.Readlink(r.cancel, h)
		if st != fuse.OK {
			return status(st)
		}
		return reply{n: copy(r.e.payload, data), direct: true}
	case opStatfs:
		return fixed(statfsOutSize, fs.StatFs(r.cancel, h, (*fuse.StatfsOut)(out)))
	case opGetxattr, opListxattr:
		return r.getxattr(h, payload)
	case opSetxattr:
		n, value, ok := name(payload)
		if !ok {
			return status(fuse.EINVAL)
		}
		si := (*fuse.SetXAttrIn)(in)
		value = value[:min(int(si.Size), len(value))]
		return status(fs.SetXAttr(r.cancel, si, n, value))
	case opRemovexattr:
		n, _, ok := name(payload)
		if !ok {
			return status(fuse.EINVAL)
		}
		return status(fs.RemoveXAttr(r.cancel, h, n))
	case opAccess:
		return status(fs.Access(r.cancel, (*fuse.AccessIn)(in)))
	case opFallocate:
		return status(fs.Fallocate(r.cancel, (*fuse.FallocateIn)(in)))
	case opLseek:
		return fixed(lseekOutSize, fs.Lseek(r.cancel, (*fuse.LseekIn)(in), (*fuse.LseekOut)(out)))
	case opCopyFileRange:
		wo := (*fuse.WriteOut)(out)
		var st fuse.Status
		wo.Size, st = fs.CopyFileRange(r.cancel, (*fuse.CopyFileRangeIn)(in))
		return fixed(writeOutSize, st)
	case opGetlk:
		return fixed(lkOutSize, fs.GetLk(r.cancel, (*fuse.LkIn)(in), (*fuse.LkOut)(out)))
	case opSetlk:
		return status(fs.SetLk(r.cancel, (*fuse.LkIn)(in)))
	case opSetlkw:
		return status(fs.SetLkw(r.cancel, (*fuse.LkIn)(in)))
	case opStatx:
		return fixed(statxOutSize, fs.Statx(r.cancel, (*fuse.StatxIn)(in), (*fuse.StatxOut)(out)))
	case opIoctl:
		return r.ioctl((*fuse.IoctlIn)(in), payload)
	case opDestroy:
		return status(fuse.OK)
	}
	// POLL, BMAP, SYNCFS, DAX mappings, COPY_FILE_RANGE_64, and what only
	// /dev/fuse carries (INIT, FORGET, INTERRUPT, NOTIFY_REPLY): not
	// served, as go-fuse does not serve them either.
	return status(fuse.ENOSYS)
}

func (r *request) read(ri *fuse.ReadIn) reply {
	buf := r.e.payload[:min(int(ri.Size), len(r.e.payload))]
	rr, st := r.fs.Read(r.cancel, ri, buf)
	if st != fuse.OK {
		if rr != nil {
			rr.Done()
		}
		return status(st)
	}
	if rr == nil {
		return reply{direct: true}
	}
	data, st := rr.Bytes(buf)
	n := 0
	if st == fuse.OK {
		n = len(data)
		if n > 0 && &data[0] != &buf[0] {
			n = copy(buf, data)
		}
	}
	rr.Done()
	return reply{n: n, direct: true, st: st}
}

// getxattr answers GETXATTR and LISTXATTR: with a size of 0 the reply is
// the size needed, otherwise the value itself.
func (r *request) getxattr(h *fuse.InHeader, payload []byte) reply {
	gi := (*fuse.GetXAttrIn)(r.inPtr())
	dest := r.e.payload[:min(int(gi.Size), len(r.e.payload))]
	var n uint32
	var st fuse.Status
	if h.Opcode == opGetxattr {
		attr, _, ok := name(payload)
		if !ok {
			return status(fuse.EINVAL)
		}
		n, st = r.fs.GetXAttr(r.cancel, h, attr, dest)
	} else {
		n, st = r.fs.ListXAttr(r.cancel, h, dest)
	}
	if gi.Size == 0 {
		if st == fuse.ERANGE {
			st = fuse.OK
		}
		(*fuse.GetXAttrOut)(r.outPtr()).Size = n
		return fixed(xattrOutSize, st)
	}
	return reply{n: int(min(n, uint32(len(dest)))), direct: true, st: st}
}

// ioctl is rare: its buffers are allocated per request.
func (r *request) ioctl(ii *fuse.IoctlIn, payload []byte) reply {
	inbuf := bytes.Clone(payload)
	outbuf := make([]byte, min(int(ii.OutSize), len(r.e.payload)-ioctlOutSize))
	io := (*fuse.IoctlOut)(r.outPtr())
	st := r.fs.Ioctl(r.cancel, ii, inbuf, io, outbuf)
	if st != fuse.OK {
		return status(st)
	}
	n := copy(r.e.payload, unsafe.Slice((*byte)(r.outPtr()), ioctlOutSize))
	n += copy(r.e.payload[n:], outbuf)
	return reply{n: n, direct: true}
}

func (r *request) pollHack(h *fuse.InHeader) reply {
	attr := fuse.Attr{Ino: pollHackInode, Mode: fuse.S_IFREG | 0o644, Nlink: 1}
	switch h.Opcode {
	case opLookup:
		out := (*fuse.EntryOut)(r.outPtr())
		out.NodeId = pollHackInode
		out.Attr = attr
		return fixed(entryOutSize, fuse.OK)
	case opOpen:
		(*fuse.OpenOut)(r.outPtr()).Fh = pollHackInode
		return fixed(openOutSize, fuse.OK)
	case opGetattr, opSetattr:
		(*fuse.AttrOut)(r.outPtr()).Attr = attr
		return fixed(attrOutSize, fuse.OK)
	case opGetxattr:
		return status(fuse.ENODATA)
	case opPoll:
		return status(fuse.ENOSYS)
	case opAccess, opFlush, opRelease:
		return status(fuse.OK)
	}
	return status(fuse.ERANGE)
}

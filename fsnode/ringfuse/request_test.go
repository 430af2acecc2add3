package ringfuse

import (
	"bytes"
	"encoding/binary"
	"slices"
	"testing"
	"unsafe"

	"github.com/hanwen/go-fuse/v2/fuse"
)

// fakeFS records what the ring dispatch hands the filesystem.
type fakeFS struct {
	fuse.RawFileSystem
	names   []string
	cancels []<-chan struct{}
	data    []byte
	caller  fuse.Caller
	renamed *fuse.RenameIn
}

func (f *fakeFS) Lookup(cancel <-chan struct{}, h *fuse.InHeader, name string, out *fuse.EntryOut) fuse.Status {
	f.names = append(f.names, name)
	f.cancels = append(f.cancels, cancel)
	f.caller = h.Caller
	if name == "missing" {
		return fuse.ENOENT
	}
	out.NodeId = 42
	out.Attr.Ino = 42
	out.Attr.Size = 7
	return fuse.OK
}

func (f *fakeFS) Rename(_ <-chan struct{}, in *fuse.RenameIn, from, to string) fuse.Status {
	c := *in
	f.renamed = &c
	f.names = append(f.names, from, to)
	return fuse.OK
}

func (f *fakeFS) Writev(_ <-chan struct{}, in *fuse.WriteIn, data [][]byte) (uint32, fuse.Status) {
	for _, d := range data {
		f.data = append(f.data, d...)
	}
	return uint32(len(f.data)), fuse.OK
}

func (f *fakeFS) Read(_ <-chan struct{}, in *fuse.ReadIn, buf []byte) (fuse.ReadResult, fuse.Status) {
	return fuse.ReadResultData([]byte("hello")[:min(5, int(in.Size))]), fuse.OK
}

func (f *fakeFS) GetXAttr(_ <-chan struct{}, h *fuse.InHeader, attr string, dest []byte) (uint32, fuse.Status) {
	f.names = append(f.names, attr)
	v := []byte("value")
	if len(dest) < len(v) {
		return uint32(len(v)), fuse.ERANGE
	}
	return uint32(copy(dest, v)), fuse.OK
}

// testEntry is a ring entry outside any ring, for the decoding alone.
func testEntry(fs fuse.RawFileSystem) *entry {
	t := &Transport{fs: fs}
	q := &queue{t: t}
	e := &entry{q: q, hdr: make([]byte, reqHeaderSize), payload: make([]byte, 1<<16)}
	e.req.init(e)
	return e
}

// put writes a request the way the kernel does: the header in in_out, the
// op's argument struct in op_in, the rest in the payload.
func (e *entry) put(op uint32, node uint64, arg []byte, payload []byte) {
	clear(e.hdr)
	h := fuse.InHeader{Length: uint32(inHeaderSize + len(arg) + len(payload)), Opcode: op, Unique: 99, NodeId: node}
	h.Uid, h.Gid, h.Pid = 1001, 1002, 1234
	copy(e.hdr, unsafe.Slice((*byte)(unsafe.Pointer(&h)), inHeaderSize))
	copy(e.hdr[inOutHeaderSize:], arg)
	copy(e.payload, payload)
	(*entInOut)(unsafe.Pointer(&e.hdr[inOutHeaderSize+opInSize])).payloadSz = uint32(len(payload))
}

func (e *entry) replied(t *testing.T) (fuse.OutHeader, []byte) {
	t.Helper()
	oh := *(*fuse.OutHeader)(unsafe.Pointer(&e.hdr[0]))
	n := (*entInOut)(unsafe.Pointer(&e.hdr[inOutHeaderSize+opInSize])).payloadSz
	if oh.Unique != 99 {
		t.Errorf("reply unique %d, want 99", oh.Unique)
	}
	if int(oh.Length) != outHeaderSize+int(n) {
		t.Errorf("reply length %d with %d payload bytes", oh.Length, n)
	}
	return oh, e.payload[:n]
}

func TestLookupDecodesNameAndEncodesEntry(t *testing.T) {
	fs := &fakeFS{RawFileSystem: fuse.NewDefaultRawFileSystem()}
	e := testEntry(fs)
	e.put(opLookup, 1, nil, []byte("file\x00"))
	e.req.serve()
	oh, out := e.replied(t)
	if oh.Status != 0 || len(out) != entryOutSize {
		t.Fatalf("status %d, %d bytes; want 0 and %d", oh.Status, len(out), entryOutSize)
	}
	got := (*fuse.EntryOut)(unsafe.Pointer(&out[0]))
	if got.NodeId != 42 || got.Attr.Size != 7 || fs.names[0] != "file" || fs.caller.Uid != 1001 || fs.caller.Pid != 1234 {
		t.Errorf("entry %+v, name %q, caller %+v", got, fs.names, fs.caller)
	}
	// tmpmount keys what its raw wrapper passes to node methods by the
	// request's cancel channel, as go-fuse gives each request one.
	if fs.cancels[0] == nil {
		t.Errorf("the request's cancel channel is nil")
	}
	if other := testEntry(fs); other.req.cancel == e.req.cancel {
		t.Errorf("two entries share a cancel channel")
	}

	e.put(opLookup, 1, nil, []byte("missing\x00"))
	e.req.serve()
	oh, out = e.replied(t)
	if oh.Status != -int32(fuse.ENOENT) || len(out) != 0 {
		t.Errorf("missing: status %d with %d bytes, want -ENOENT and none", oh.Status, len(out))
	}
}

func TestRenameTakesTheShortArgument(t *testing.T) {
	fs := &fakeFS{RawFileSystem: fuse.NewDefaultRawFileSystem()}
	e := testEntry(fs)
	// RENAME2's argument, left in op_in by an earlier request.
	long := make([]byte, 16)
	binary.LittleEndian.PutUint64(long, 5)
	binary.LittleEndian.PutUint32(long[8:], 0xffff)
	e.put(opRename2, 1, long, []byte("a\x00b\x00"))
	e.req.serve()
	// Plain RENAME sends fuse_rename_in, 8 bytes: no flags.
	short := make([]byte, 8)
	binary.LittleEndian.PutUint64(short, 9)
	e.put(opRename, 1, short, []byte("c\x00d\x00"))
	copy(e.hdr[inOutHeaderSize+8:], []byte{0xff, 0xff, 0xff, 0xff}) // stale bytes past the argument
	e.req.serve()
	if fs.renamed.Newdir != 9 || fs.renamed.Flags != 0 {
		t.Errorf("RENAME decoded as %+v, want newdir 9 and no flags", fs.renamed)
	}
	if want := []string{"a", "b", "c", "d"}; !slices.Equal(fs.names, want) {
		t.Errorf("names %q, want %q", fs.names, want)
	}
}

func TestWriteReadAndXattrPayloads(t *testing.T) {
	fs := &fakeFS{RawFileSystem: fuse.NewDefaultRawFileSystem()}
	e := testEntry(fs)
	wi := make([]byte, 40)
	binary.LittleEndian.PutUint32(wi[16:], 5) // size
	e.put(opWrite, 3, wi, []byte("abcde"))
	e.req.serve()
	oh, out := e.replied(t)
	if oh.Status != 0 || !bytes.Equal(fs.data, []byte("abcde")) || binary.LittleEndian.Uint32(out) != 5 {
		t.Errorf("write: status %d, data %q, reply %v", oh.Status, fs.data, out)
	}

	ri := make([]byte, 40)
	binary.LittleEndian.PutUint32(ri[16:], 4096)
	e.put(opRead, 3, ri, nil)
	e.req.serve()
	if _, out := e.replied(t); string(out) != "hello" {
		t.Errorf("read replied %q", out)
	}

	gi := make([]byte, 8) // size 0: the size needed
	e.put(opGetxattr, 3, gi, []byte("user.x\x00"))
	e.req.serve()
	if oh, out := e.replied(t); oh.Status != 0 || len(out) != xattrOutSize || binary.LittleEndian.Uint32(out) != 5 {
		t.Errorf("getxattr size: status %d, reply %v", oh.Status, out)
	}
	binary.LittleEndian.PutUint32(gi, 64)
	e.put(opGetxattr, 3, gi, []byte("user.x\x00"))
	e.req.serve()
	if _, out := e.replied(t); string(out) != "value" {
		t.Errorf("getxattr replied %q", out)
	}
}

func TestUnservedOpcodes(t *testing.T) {
	e := testEntry(&fakeFS{RawFileSystem: fuse.NewDefaultRawFileSystem()})
	for _, op := range []uint32{opPoll, opBmap, opSyncfs, opCopyFileRange64, 200} {
		e.put(op, 1, nil, nil)
		e.req.serve()
		if oh, _ := e.replied(t); oh.Status != -int32(fuse.ENOSYS) {
			t.Errorf("%s: status %d, want -ENOSYS", opName(op), oh.Status)
		}
	}
	e.put(opLookup, 1, nil, []byte("no NUL"))
	e.req.serve()
	if oh, _ := e.replied(t); oh.Status != -int32(fuse.EINVAL) {
		t.Errorf("name without NUL: status %d, want -EINVAL", oh.Status)
	}
}

func TestServeAllocatesNothing(t *testing.T) {
	fs := &fakeFS{RawFileSystem: fuse.NewDefaultRawFileSystem()}
	e := testEntry(fs)
	gi := make([]byte, 16)
	allocs := testing.AllocsPerRun(100, func() {
		e.put(opGetattr, 1, gi, nil)
		e.req.serve()
	})
	if allocs != 0 {
		t.Errorf("GETATTR allocates %.1f times per request, want 0", allocs)
	}
}

func TestParseCPUList(t *testing.T) {
	for in, want := range map[string]int{"0": 1, "0-1": 2, "0-3,5,7-8": 7} {
		got, err := parseCPUList(in)
		if err != nil || len(got) != want {
			t.Errorf("parseCPUList(%q) = %v, %v; want %d CPUs", in, got, err, want)
		}
	}
	for _, bad := range []string{"", "x", "3-1", "0-"} {
		if _, err := parseCPUList(bad); err == nil {
			t.Errorf("parseCPUList(%q) accepted", bad)
		}
	}
}

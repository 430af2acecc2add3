package fsnode

import (
	"os"
	"syscall"
	"testing"
	"time"
	"unsafe"

	"github.com/hanwen/go-fuse/v2/fs"
	"github.com/hanwen/go-fuse/v2/fuse"

	"github.com/tmpmount/tmpmount/policy"
	"github.com/tmpmount/tmpmount/spool"
)

// kernelSim serves a fresh Root through the request wrapper and go-fuse
// bridge a mount uses, with no kernel: the test sends the requests, one
// at a time, in an order of its choosing, and keeps the kernel's count of
// references itself.
type kernelSim struct {
	t   *testing.T
	r   *Root
	raw *rawFS
}

func newKernelSim(t *testing.T, def policy.Policy) *kernelSim {
	t.Helper()
	r, err := New(Config{
		Spool:    spool.Config{SpillParent: t.TempDir(), MaxSize: 64 << 10},
		Mode:     0o1777,
		Resolver: policy.Resolver{Default: def},
	})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		r.notifier.stop()
		r.Store().Close()
	})
	timeout := time.Hour
	bridge := fs.NewNodeFS(r.dir, &fs.Options{
		EntryTimeout:    &timeout,
		AttrTimeout:     &timeout,
		NegativeTimeout: &timeout,
		ExternalNodeID:  true,
		RootStableAttr:  &fs.StableAttr{Ino: rootIno},
		NullPermissions: true,
	})
	return &kernelSim{t: t, r: r, raw: &rawFS{RawFileSystem: bridge, root: r}}
}

// header is a request on node by thread pid of the test's own user.
func header(node uint64, pid uint32) fuse.InHeader {
	owner := fuse.Owner{Uid: uint32(os.Geteuid()), Gid: uint32(os.Getegid())}
	return fuse.InHeader{NodeId: node, Caller: fuse.Caller{Owner: owner, Pid: pid}}
}

// cancel is a request's own cancel channel, as go-fuse gives each.
func cancel() <-chan struct{} { return make(chan struct{}) }

func (k *kernelSim) mknod(name string) uint64 {
	k.t.Helper()
	var out fuse.EntryOut
	in := fuse.MknodIn{InHeader: header(rootIno, 1), Mode: syscall.S_IFREG | 0o644}
	if st := k.raw.Mknod(cancel(), &in, name, &out); !st.Ok() {
		k.t.Fatalf("MKNOD %s: %v", name, st)
	}
	return out.NodeId
}

func (k *kernelSim) create(name string, flags uint32, pid uint32) (node, fh uint64) {
	k.t.Helper()
	var out fuse.CreateOut
	in := fuse.CreateIn{InHeader: header(rootIno, pid), Flags: flags, Mode: 0o644}
	if st := k.raw.Create(cancel(), &in, name, &out); !st.Ok() {
		k.t.Fatalf("CREATE %s: %v", name, st)
	}
	return out.NodeId, out.Fh
}

func (k *kernelSim) lookup(dir uint64, name string) (uint64, fuse.Status) {
	var out fuse.EntryOut
	st := k.raw.Lookup(cancel(), &fuse.InHeader{NodeId: dir}, name, &out)
	return out.NodeId, st
}

func (k *kernelSim) open(node uint64, flags uint32, pid uint32) (uint64, fuse.Status) {
	var out fuse.OpenOut
	st := k.raw.Open(cancel(), &fuse.OpenIn{InHeader: header(node, pid), Flags: flags}, &out)
	return out.Fh, st
}

func (k *kernelSim) release(node, fh uint64) {
	k.raw.Release(cancel(), &fuse.ReleaseIn{InHeader: header(node, 1), Fh: fh})
}

// readdirplus lists the root directory with READDIRPLUS and returns the
// node ids of its entries (every one a reference the kernel now holds).
func (k *kernelSim) readdirplus() []uint64 {
	k.t.Helper()
	var open fuse.OpenOut
	if st := k.raw.OpenDir(cancel(), &fuse.OpenIn{InHeader: header(rootIno, 1)}, &open); !st.Ok() {
		k.t.Fatalf("OPENDIR: %v", st)
	}
	defer k.raw.ReleaseDir(&fuse.ReleaseIn{InHeader: header(rootIno, 1), Fh: open.Fh})
	buf := make([]byte, 64<<10)
	list := fuse.NewDirEntryList(buf, 0)
	in := fuse.ReadIn{InHeader: header(rootIno, 1), Fh: open.Fh, Size: uint32(len(buf))}
	if st := k.raw.ReadDirPlus(cancel(), &in, list); !st.Ok() {
		k.t.Fatalf("READDIRPLUS: %v", st)
	}
	// Each entry is a fuse_entry_out followed by a fuse_dirent; the
	// node id leads the first.
	var ids []uint64
	data := list.Bytes()
	for len(data) > 0 {
		e := (*fuse.EntryOut)(unsafe.Pointer(&data[0]))
		nameLen := int(*(*uint32)(unsafe.Pointer(&data[fuseEntryOutSize+16])))
		if e.NodeId != 0 {
			ids = append(ids, e.NodeId)
		}
		n := fuseEntryOutSize + fuseDirentHeader + (nameLen+7)&^7
		data = data[n:]
	}
	return ids
}

// freed reports whether the daemon has let go of file node's data.
func (k *kernelSim) freed(node uint64) bool { return k.r.fileByIno(node) == nil }

// TestKernelRefsCreateOfExistingName: a CREATE that finds a file at the
// name already (another CREATE of it came first) opens that file, and its
// reply hands the kernel a reference to it, as a LOOKUP's would. Once the
// close policy has taken the file's names, the kernel may open it by that
// reference: a first OPEN is sent back to look the name up again
// (stale.go), and the kernel's retry, which may find it again, must open
// it. Before the daemon counted the kernel's references, a file the
// kernel had forgotten once stayed "forgotten" through such a CREATE, was
// freed with its names, and the retry got ESTALE.
func TestKernelRefsCreateOfExistingName(t *testing.T) {
	k := newKernelSim(t, policy.Close)
	a := k.mknod("f")  // the kernel holds one reference...
	k.raw.Forget(a, 1) // ...and forgets it; the file keeps its name

	node, fh := k.create("f", syscall.O_RDWR|syscall.O_CREAT, 100)
	if node != a {
		t.Fatalf("CREATE of an existing name answered with node %d, want the existing %d", node, a)
	}
	k.release(a, fh) // the close policy takes the name
	if id, st := k.lookup(rootIno, "f"); st.Ok() && id != 0 {
		t.Fatalf("the name is still there after the last close")
	}
	if k.freed(a) {
		t.Fatalf("the file was freed with its names while the kernel held the reference the CREATE handed it")
	}

	const pid = 200
	if _, st := k.open(a, syscall.O_RDONLY, pid); st != fuse.Status(syscall.ESTALE) {
		t.Fatalf("first OPEN of the closed file: %v, want ESTALE", st)
	}
	retryFh, st := k.open(a, syscall.O_RDONLY, pid)
	if !st.Ok() {
		t.Fatalf("the retry's OPEN of a closed file the kernel still references: %v, want success", st)
	}
	k.release(a, retryFh)
	if k.freed(a) {
		t.Fatalf("freed at the last close while the kernel still held a reference")
	}
	k.raw.Forget(a, 1)
	if !k.freed(a) {
		t.Errorf("not freed once the kernel forgot its last reference")
	}
}

// TestKernelRefsCountEveryEntry: every reply that hands the kernel a file
// (MKNOD, LOOKUP, READDIRPLUS, the LOOKUP of "." that file handles send)
// counts, and a file with no name and no handle is freed only when the
// kernel has forgotten them all, however it batches its FORGETs.
func TestKernelRefsCountEveryEntry(t *testing.T) {
	k := newKernelSim(t, policy.Unmount)
	b := k.mknod("g") // 1
	for range 2 {
		if id, st := k.lookup(rootIno, "g"); !st.Ok() || id != b {
			t.Fatalf("LOOKUP g: node %d, %v; want %d", id, st, b)
		}
	} // 3
	if ids := k.readdirplus(); len(ids) != 1 || ids[0] != b {
		t.Fatalf("READDIRPLUS gave nodes %v, want [%d]", ids, b)
	} // 4
	if id, st := k.lookup(b, "."); !st.Ok() || id != b {
		t.Fatalf("LOOKUP . of node %d: node %d, %v", b, id, st)
	} // 5

	fh, st := k.open(b, syscall.O_RDONLY, 1)
	if !st.Ok() {
		t.Fatalf("OPEN: %v", st)
	}
	if st := k.raw.Unlink(cancel(), &fuse.InHeader{NodeId: rootIno}, "g"); !st.Ok() {
		t.Fatalf("UNLINK g: %v", st)
	}
	if _, st := k.lookup(b, "."); st != fuse.Status(syscall.ESTALE) {
		t.Errorf("LOOKUP . of an unlinked file: %v, want ESTALE", st)
	}
	k.release(b, fh)
	k.raw.Forget(b, 3)
	if k.freed(b) {
		t.Fatalf("freed with 2 of the kernel's 5 references left")
	}
	k.raw.Forget(b, 1)
	if k.freed(b) {
		t.Fatalf("freed with 1 of the kernel's 5 references left")
	}
	k.raw.Forget(b, 1)
	if !k.freed(b) {
		t.Errorf("not freed once the kernel forgot all 5 references")
	}
}

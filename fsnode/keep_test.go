package fsnode

import (
	"bytes"
	"os"
	"path/filepath"
	"syscall"
	"testing"

	"github.com/hanwen/go-fuse/v2/fuse"

	"github.com/tmpmount/tmpmount/policy"
	"github.com/tmpmount/tmpmount/spool"
)

// newKeepRoot makes a Root whose files are all keep, saved to a fresh
// keep dir, without mounting it.
func newKeepRoot(t *testing.T) (*Root, string) {
	t.Helper()
	keepDir := t.TempDir()
	r, err := New(Config{
		Spool:    spool.Config{SpillParent: t.TempDir(), MaxSize: 64 << 10},
		Mode:     0o1777,
		Resolver: policy.Resolver{Default: policy.Keep},
		KeepDir:  keepDir,
	})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { r.Store().Close() })
	return r, keepDir
}

// addFile enters a new regular file under name in the root directory, as
// a create by the daemon's own user would.
func addFile(r *Root, name string) *File {
	f := r.newFile(r.allocIno())
	caller := &fuse.Caller{Owner: fuse.Owner{Uid: uint32(os.Geteuid()), Gid: uint32(os.Getegid())}}
	initNode(&f.node, r, r.dir, caller, syscall.S_IFREG|0o644)
	r.tree.Lock()
	r.dir.linkLocked(name, f)
	f.startLife(name, policy.Unset)
	r.tree.Unlock()
	r.registerFile(f)
	return f
}

// TestShutdownProgressCountsData: saving a 1 TiB sparse file with 8 KiB of
// data reports bytes copied of about the data, not of its apparent size
// (issue 11: "3 B of 1.0 TiB"), and the copy has the size and the data.
func TestShutdownProgressCountsData(t *testing.T) {
	r, keepDir := newKeepRoot(t)
	f := addFile(r, "sparse")
	if err := f.data.Truncate(1 << 40); err != nil {
		t.Fatal(err)
	}
	head, tail := bytes.Repeat([]byte("h"), 4096), bytes.Repeat([]byte("t"), 4096)
	for off, p := range map[int64][]byte{0: head, 1<<40 - 4096: tail} {
		if _, err := f.data.WriteAt(p, off); err != nil {
			t.Fatal(err)
		}
	}
	var lastDone, maxTotal int64
	saved, failed := r.Shutdown(func(done, total int64) {
		lastDone, maxTotal = done, max(maxTotal, total)
	})
	if saved != 1 || failed != 0 {
		t.Fatalf("Shutdown saved %d, failed %d; want 1 and 0", saved, failed)
	}
	if lastDone != 8192 || maxTotal > 1<<20 {
		t.Errorf("progress said %d bytes of %d; want 8192 of about as much", lastDone, maxTotal)
	}
	kept := filepath.Join(keepDir, "sparse")
	st, err := os.Stat(kept)
	if err != nil {
		t.Fatal(err)
	}
	if st.Size() != 1<<40 {
		t.Errorf("copy's size %d, want 1 TiB", st.Size())
	}
	k, err := os.Open(kept)
	if err != nil {
		t.Fatal(err)
	}
	defer k.Close()
	for off, want := range map[int64][]byte{0: head, 1<<40 - 4096: tail, 1 << 30: make([]byte, 4096)} {
		got := make([]byte, len(want))
		if _, err := k.ReadAt(got, off); err != nil {
			t.Fatal(err)
		}
		if !bytes.Equal(got, want) {
			t.Errorf("copy at %d differs", off)
		}
	}
}

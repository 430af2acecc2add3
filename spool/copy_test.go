package spool

import (
	"bytes"
	"errors"
	"os"
	"path/filepath"
	"testing"

	"golang.org/x/sys/unix"
)

// TestCopyTo copies files in RAM and on disk, sparse and not, by every way
// a Copier knows, and checks the bytes, the size, that holes stay holes,
// and that what copied heard is the data, not the apparent size.
func TestCopyTo(t *testing.T) {
	const maxSize = 64 << 10
	tests := []struct {
		name   string
		size   int64 // truncated to this size first
		writes map[int64][]byte
		onDisk bool
	}{
		{name: "empty in RAM"},
		{name: "small in RAM", writes: map[int64][]byte{0: bytes.Repeat([]byte("a"), 5000)}},
		{name: "sparse in RAM", size: 60 << 10, writes: map[int64][]byte{0: []byte("head"), 40 << 10: bytes.Repeat([]byte("m"), 4096)}},
		{name: "on disk", writes: map[int64][]byte{0: bytes.Repeat([]byte("d"), 200<<10)}, onDisk: true},
		{name: "sparse on disk, 1 TiB", size: 1 << 40, writes: map[int64][]byte{1 << 30: []byte("one GiB in"), 1<<40 - 3: []byte("end")}, onDisk: true},
	}
	for _, tc := range tests {
		for _, way := range []string{"default", "copy_file_range", "read-write"} {
			t.Run(tc.name+"/"+way, func(t *testing.T) {
				s := newTestStore(t, maxSize)
				f := s.NewFile(1)
				t.Cleanup(func() { f.Release() })
				if tc.size > 0 {
					if err := f.Truncate(tc.size); err != nil {
						t.Fatal(err)
					}
				}
				var data int64
				for off, p := range tc.writes {
					mustWrite(t, f, p, off)
					data += int64(len(p))
				}
				if got := f.Residency() == OnDisk; got != tc.onDisk {
					t.Fatalf("on disk: %v, want %v", got, tc.onDisk)
				}
				var c Copier
				switch way {
				case "copy_file_range":
					c.noClone.Store(true)
				case "read-write":
					c.noClone.Store(true)
					c.noRange.Store(true)
				}
				dst, err := os.Create(filepath.Join(t.TempDir(), "copy"))
				if err != nil {
					t.Fatal(err)
				}
				defer dst.Close()
				var heard int64
				if err := f.CopyTo(int(dst.Fd()), &c, func(n int64) { heard += n }); err != nil {
					t.Fatalf("CopyTo: %v", err)
				}
				st := mustStat(t, f)
				var got unix.Stat_t
				if err := unix.Fstat(int(dst.Fd()), &got); err != nil {
					t.Fatal(err)
				}
				if got.Size != st.Size {
					t.Errorf("copy's size %d, want %d", got.Size, st.Size)
				}
				// Data is copied a page or a block at a time: at most that
				// much more than was written, and never the holes.
				if heard < data || heard > data+int64(len(tc.writes))*2*PageSize {
					t.Errorf("copied heard of %d bytes, want %d of data (and at most a page more per write)", heard, data)
				}
				if got.Blocks*512 > data+int64(len(tc.writes))*2*PageSize+PageSize {
					t.Errorf("copy holds %d bytes on disk for %d of data: holes were filled", got.Blocks*512, data)
				}
				for off, p := range tc.writes {
					buf := make([]byte, len(p))
					if _, err := dst.ReadAt(buf, off); err != nil {
						t.Fatalf("read copy at %d: %v", off, err)
					}
					if !bytes.Equal(buf, p) {
						t.Errorf("copy at %d: %q, want %q", off, buf, p)
					}
				}
				if tc.size > 0 {
					// A hole reads as zeros, and SEEK_DATA skips it.
					next, err := unix.Seek(int(dst.Fd()), 8<<10, unix.SEEK_DATA)
					if err != nil && !errors.Is(err, unix.ENXIO) {
						t.Fatal(err)
					}
					if err == nil && next == 8<<10 {
						t.Errorf("the copy has data at 8 KiB, inside a hole")
					}
				}
			})
		}
	}
}

// TestCopyToReleased: a released file has nothing to copy.
func TestCopyToReleased(t *testing.T) {
	s := newTestStore(t, 0)
	f := s.NewFile(1)
	mustWrite(t, f, []byte("x"), 0)
	f.Release()
	dst, err := os.Create(filepath.Join(t.TempDir(), "copy"))
	if err != nil {
		t.Fatal(err)
	}
	defer dst.Close()
	if err := f.CopyTo(int(dst.Fd()), &Copier{}, func(int64) {}); !errors.Is(err, ErrReleased) {
		t.Errorf("CopyTo of a released file: %v, want ErrReleased", err)
	}
}

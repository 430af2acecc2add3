package spool

import (
	"bytes"
	"errors"
	"fmt"
	"math/rand/v2"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"golang.org/x/sys/unix"
)

// wantStats fails t if the Store's counters are not want.
func wantStats(t *testing.T, s *Store, want Stats) {
	t.Helper()
	if got := s.Stats(); got != want {
		t.Errorf("Stats() = %+v, want %+v", got, want)
	}
}

// wantResidency fails t if f does not live where want says, by all of
// Residency, Stat and BackingFd.
func wantResidency(t *testing.T, f *File, want Residency) {
	t.Helper()
	if got := f.Residency(); got != want {
		t.Errorf("Residency() = %v, want %v", got, want)
	}
	st, err := f.Stat()
	if err != nil {
		t.Fatalf("Stat: %v", err)
	}
	if st.Residency != want {
		t.Errorf("Stat().Residency = %v, want %v", st.Residency, want)
	}
	if _, ok := f.BackingFd(); ok != (want == OnDisk) {
		t.Errorf("BackingFd() ok = %v, want %v", ok, want == OnDisk)
	}
}

// mustStat returns f's size, blocks and residency (the backing file's
// times, which only a file on disk has, are left out so that Stat values
// compare by what the tests set).
func mustStat(t *testing.T, f *File) Stat {
	t.Helper()
	st, err := f.Stat()
	if err != nil {
		t.Fatalf("Stat: %v", err)
	}
	return Stat{Size: st.Size, Blocks: st.Blocks, Residency: st.Residency}
}

// mustWrite writes p at off and fails t unless all of it was written.
func mustWrite(t *testing.T, f *File, p []byte, off int64) {
	t.Helper()
	if n, err := f.WriteAt(p, off); n != len(p) || err != nil {
		t.Fatalf("WriteAt(%d bytes, %d) = %d, %v; want %d, nil", len(p), off, n, err, len(p))
	}
}

// wantRead reads len(want) bytes at off and fails t unless it gets want.
func wantRead(t *testing.T, f *File, off int64, want []byte) {
	t.Helper()
	got := make([]byte, len(want))
	fillSentinel(got)
	n, err := f.ReadAt(got, off)
	if n != len(want) || err != nil {
		t.Fatalf("ReadAt(%d bytes, %d) = %d, %v; want %d, nil", len(want), off, n, err, len(want))
	}
	if i := firstDiff(got, want); i >= 0 {
		t.Errorf("ReadAt(%d bytes, %d): byte at offset %d = %#02x, want %#02x", len(want), off, off+int64(i), got[i], want[i])
	}
}

// residencyOf is the residency of a file that has rolled over or not.
func residencyOf(onDisk bool) Residency {
	if onDisk {
		return OnDisk
	}
	return InRAM
}

// TestThreshold checks that a file rolls over exactly when its size or
// allocated extent exceeds MaxSize, by writes, truncates and fallocate, and
// never by punching holes, reading or seeking. The harness checks the bytes
// and the Store's counters (one rollover, no RAM left) after each step.
func TestThreshold(t *testing.T) {
	const maxSize = 64 << 10
	tests := []struct {
		name string
		ops  []op
		want Residency
	}{
		{"write ending at MaxSize-1", []op{writeOp(0, pattern(1, maxSize-1))}, InRAM},
		{"write ending at MaxSize", []op{writeOp(0, pattern(1, maxSize))}, InRAM},
		{"write ending at MaxSize+1", []op{writeOp(0, pattern(1, maxSize+1))}, OnDisk},
		{"one byte at MaxSize-1", []op{writeOp(maxSize-1, pattern(2, 1))}, InRAM},
		{"one byte at MaxSize", []op{writeOp(maxSize, pattern(2, 1))}, OnDisk},
		{"MaxSize bytes then one more", []op{writeOp(0, pattern(3, maxSize)), writeOp(maxSize, pattern(4, 1))}, OnDisk},
		{"overwrite inside a full file", []op{writeOp(0, pattern(3, maxSize)), writeOp(100, pattern(4, maxSize-100))}, InRAM},
		{"truncate up to MaxSize-1", []op{writeOp(0, pattern(5, 1000)), truncateOp(maxSize - 1)}, InRAM},
		{"truncate up to MaxSize", []op{writeOp(0, pattern(5, 1000)), truncateOp(maxSize)}, InRAM},
		{"truncate up to MaxSize+1", []op{writeOp(0, pattern(5, 1000)), truncateOp(maxSize + 1)}, OnDisk},
		{"fallocate ending at MaxSize", []op{allocOp(PageSize, maxSize-PageSize)}, InRAM},
		{"fallocate ending at MaxSize+1", []op{allocOp(PageSize, maxSize-PageSize+1)}, OnDisk},
		{"fallocate keep size ending at MaxSize", []op{writeOp(0, pattern(6, 10)), allocKeepOp(0, maxSize)}, InRAM},
		{"fallocate keep size ending at MaxSize+1", []op{writeOp(0, pattern(6, 10)), allocKeepOp(0, maxSize+1)}, OnDisk},
		{"punch hole far past MaxSize", []op{writeOp(0, pattern(7, maxSize)), punchOp(100, 10*maxSize)}, InRAM},
		{"read and seek past MaxSize", []op{writeOp(0, pattern(8, 100)), readOp(2*maxSize, 100), seekDataOp(2 * maxSize), seekHoleOp(2 * maxSize)}, InRAM},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			h := newHarness(t, maxSize)
			h.apply(t, tc.ops...)
			wantResidency(t, h.f, tc.want)
			wantRollovers := int64(0)
			if tc.want == OnDisk {
				wantRollovers = 1
			}
			if got := h.store.Stats().Rollovers; got != wantRollovers {
				t.Errorf("Stats().Rollovers = %d, want %d", got, wantRollovers)
			}
		})
	}
}

// TestMaxSizeZeroNeverRollsOver checks that with MaxSize 0 no size makes a
// file roll over, and that sparse writes cost only the pages written.
func TestMaxSizeZeroNeverRollsOver(t *testing.T) {
	s := newTestStore(t, 0)
	f := newTestFile(t, s)
	mustWrite(t, f, pattern(1, 64<<10), 0)
	mustWrite(t, f, pattern(2, 1), 1<<40)
	if err := f.Truncate(1 << 41); err != nil {
		t.Fatalf("Truncate(1<<41): %v", err)
	}
	if err := f.Allocate(1<<42, PageSize, FallocKeepSize); err != nil {
		t.Fatalf("Allocate(1<<42, %d, FallocKeepSize): %v", PageSize, err)
	}
	if err := f.Allocate(1<<41, PageSize, 0); err != nil {
		t.Fatalf("Allocate(1<<41, %d, 0): %v", PageSize, err)
	}
	wantResidency(t, f, InRAM)
	const pages = 16 + 1 + 1 + 1
	wantStats(t, s, Stats{RAMBytes: pages * PageSize})
	if got, want := mustStat(t, f), (Stat{Size: 1<<41 + PageSize, Blocks: pages * 8, Residency: InRAM}); got != want {
		t.Errorf("Stat() = %+v, want %+v", got, want)
	}
	wantRead(t, f, 1<<40-1, append([]byte{0}, pattern(2, 1)...))
	wantRead(t, f, 0, pattern(1, 64<<10))
}

// TestRolloverKeepsRandomWrites writes at random offsets around the
// threshold until the file rolls over and for a while after; the harness
// reads the whole file back after every write.
func TestRolloverKeepsRandomWrites(t *testing.T) {
	const maxSize = 64 << 10
	for seed := range uint64(4) {
		t.Run(fmt.Sprintf("seed %d", seed), func(t *testing.T) {
			r := rand.New(rand.NewPCG(seed, 7))
			h := newHarness(t, maxSize)
			after := 0
			for i := 0; after < 20; i++ {
				if i > 1000 {
					t.Fatalf("no rollover after %d writes", i)
				}
				off := r.Int64N(maxSize + maxSize/4)
				n := 1 + r.Int64N(3*PageSize)
				h.apply(t, writeOp(off, pattern(byte(1+r.IntN(255)), int(n))))
				if h.m.onDisk {
					after++
				}
			}
			wantResidency(t, h.f, OnDisk)
			wantStats(t, h.store, Stats{DiskFiles: 1, Rollovers: 1})
		})
	}
}

// TestSparseFile checks that 4 KiB written at 1 GiB costs one page, and
// that after Spill the backing file is as sparse, with the same size,
// bytes and holes.
func TestSparseFile(t *testing.T) {
	const off = 1 << 30
	s := newTestStore(t, 0)
	f := newTestFile(t, s)
	data := pattern(9, PageSize)
	mustWrite(t, f, data, off)

	wantStats(t, s, Stats{RAMBytes: PageSize})
	if got, want := mustStat(t, f), (Stat{Size: off + PageSize, Blocks: 8, Residency: InRAM}); got != want {
		t.Errorf("before Spill: Stat() = %+v, want %+v", got, want)
	}
	type seekResult struct {
		name string
		pos  int64
		err  error
	}
	seeks := func() []seekResult {
		var res []seekResult
		for _, p := range []int64{0, off - 1, off, off + 100, off + PageSize - 1, off + PageSize} {
			pos, err := f.SeekData(p)
			res = append(res, seekResult{fmt.Sprintf("SeekData(%d)", p), pos, errnoOf(err)})
			pos, err = f.SeekHole(p)
			res = append(res, seekResult{fmt.Sprintf("SeekHole(%d)", p), pos, errnoOf(err)})
		}
		return res
	}
	want := []seekResult{
		{"SeekData(0)", off, nil}, {"SeekHole(0)", 0, nil},
		{"SeekData(1073741823)", off, nil}, {"SeekHole(1073741823)", off - 1, nil},
		{"SeekData(1073741824)", off, nil}, {"SeekHole(1073741824)", off + PageSize, nil},
		{"SeekData(1073741924)", off + 100, nil}, {"SeekHole(1073741924)", off + PageSize, nil},
		{"SeekData(1073745919)", off + PageSize - 1, nil}, {"SeekHole(1073745919)", off + PageSize, nil},
		{"SeekData(1073745920)", 0, unix.ENXIO}, {"SeekHole(1073745920)", 0, unix.ENXIO},
	}
	check := func(when string) {
		t.Helper()
		for i, got := range seeks() {
			if got != want[i] {
				t.Errorf("%s: %s = %d, %v; want %d, %v", when, got.name, got.pos, got.err, want[i].pos, want[i].err)
			}
		}
		wantRead(t, f, off-PageSize, append(make([]byte, PageSize), data...))
		wantRead(t, f, 0, make([]byte, PageSize))
		if n, err := f.ReadAt(make([]byte, 10), off+PageSize); n != 0 || err != nil {
			t.Errorf("%s: ReadAt at end of file = %d, %v; want 0, nil", when, n, err)
		}
	}
	check("before Spill")

	if err := f.Spill(); err != nil {
		t.Fatalf("Spill: %v", err)
	}
	wantResidency(t, f, OnDisk)
	wantStats(t, s, Stats{DiskFiles: 1, Rollovers: 1})
	st := mustStat(t, f)
	if st.Size != off+PageSize {
		t.Errorf("after Spill: Stat().Size = %d, want %d", st.Size, off+PageSize)
	}
	if st.Blocks < 8 || st.Blocks*512 > 256<<10 {
		t.Errorf("after Spill: Stat().Blocks = %d, want from 8 to %d: the backing file is not sparse", st.Blocks, (256<<10)/512)
	}
	check("after Spill")
}

// TestHolesKeptByRollover lays out page-aligned islands of data separated
// by holes of at least 1 MiB (made by writes and a punched hole), plus
// pages fallocated and not written (holes) inside and past end of file, and checks that SeekData
// and SeekHole give the same answers before and after Spill, and that all
// those pages are still allocated (Blocks) on disk. On disk the
// answers are computed for the backing filesystem's granularity, which is
// the page size on ext4, where they must equal those in RAM.
func TestHolesKeptByRollover(t *testing.T) {
	const mib = 1 << 20
	type island struct{ start, end int64 }
	islands := []island{ // data
		{0, PageSize},                   // written
		{4 * mib, 4*mib + 2*PageSize},   // written
		{6 * mib, 6*mib + PageSize},     // written, then most of it punched...
		{8*mib - PageSize, 8 * mib},     // ...leaving its last page
		{10 * mib, 10*mib + 3*PageSize}, // fallocated (mode 0), then written
	}
	const (
		fallocated = 2 * mib    // a page fallocated (mode 0): a hole, unwritten
		size       = 12 * mib   // the file ends in a hole
		pastEnd    = 13 * mib   // allocated with FallocKeepSize from there...
		pastPages  = chunkPages // ...for so many pages
	)

	s := newTestStore(t, 0)
	f := newTestFile(t, s)
	want := make([]byte, size)
	write := func(off int64, p []byte) {
		t.Helper()
		mustWrite(t, f, p, off)
		copy(want[off:], p)
	}
	write(0, pattern(1, PageSize))
	if err := f.Allocate(fallocated, PageSize, 0); err != nil {
		t.Fatalf("Allocate: %v", err)
	}
	write(4*mib, pattern(2, 2*PageSize))
	for off := int64(6 * mib); off < 8*mib; off += 64 << 10 {
		write(off, pattern(3, 64<<10))
	}
	if err := f.Allocate(6*mib+PageSize, 2*mib-2*PageSize, FallocPunchHole|FallocKeepSize); err != nil {
		t.Fatalf("Allocate(punch): %v", err)
	}
	clear(want[6*mib+PageSize : 8*mib-PageSize])
	if err := f.Allocate(10*mib, 3*PageSize, 0); err != nil {
		t.Fatalf("Allocate: %v", err)
	}
	write(10*mib, pattern(4, 3*PageSize))
	if err := f.Truncate(size); err != nil {
		t.Fatalf("Truncate: %v", err)
	}
	if err := f.Allocate(pastEnd, pastPages*PageSize, FallocKeepSize); err != nil {
		t.Fatalf("Allocate(keep size): %v", err)
	}

	var pages int64 = 1 + pastPages // the unwritten ones
	for _, is := range islands {
		pages += (is.end - is.start) / PageSize
	}
	wantStats(t, s, Stats{RAMBytes: pages * PageSize})
	if got, want := mustStat(t, f), (Stat{Size: size, Blocks: pages * 8, Residency: InRAM}); got != want {
		t.Errorf("in RAM: Stat() = %+v, want %+v", got, want)
	}

	// Probe every island's edges and middle, the holes' middles, and
	// around end of file.
	var probes []int64
	for _, is := range islands {
		probes = append(probes, is.start, is.start+1, (is.start+is.end)/2, is.end-1, is.end, is.end+1, is.end+mib/2)
	}
	probes = append(probes, fallocated, fallocated+1, fallocated+PageSize, size-1, size, size+1, pastEnd, pastEnd+pastPages*PageSize)

	// expected gives SeekData and SeekHole from the layout, for a
	// filesystem that allocates in units of gran bytes.
	expected := func(whence int, p, gran int64) (int64, error) {
		if p >= size {
			return 0, unix.ENXIO
		}
		for _, is := range islands {
			start, end := is.start/gran*gran, min(ceilDiv(is.end, gran)*gran, size)
			switch {
			case p >= end:
				continue
			case whence == unix.SEEK_DATA:
				return max(p, start), nil
			case p >= start:
				return end, nil
			default:
				return p, nil
			}
		}
		if whence == unix.SEEK_DATA {
			return 0, unix.ENXIO
		}
		return p, nil
	}
	type answer struct {
		pos int64
		err error
	}
	answers := func(when string, gran int64) map[string]answer {
		t.Helper()
		got := make(map[string]answer)
		for _, p := range probes {
			for _, sk := range []struct {
				name   string
				whence int
				seek   func(int64) (int64, error)
			}{{"SeekData", unix.SEEK_DATA, f.SeekData}, {"SeekHole", unix.SEEK_HOLE, f.SeekHole}} {
				pos, err := sk.seek(p)
				wantPos, wantErr := expected(sk.whence, p, gran)
				if pos != wantPos || !sameErr(err, wantErr) {
					t.Errorf("%s: %s(%d) = %d, %v; want %d, %v", when, sk.name, p, pos, errnoOf(err), wantPos, wantErr)
				}
				got[fmt.Sprintf("%s(%d)", sk.name, p)] = answer{pos, errnoOf(err)}
			}
		}
		return got
	}
	inRAM := answers("in RAM", PageSize)
	wantRead(t, f, 0, want)

	if err := f.Spill(); err != nil {
		t.Fatalf("Spill: %v", err)
	}
	wantResidency(t, f, OnDisk)
	wantStats(t, s, Stats{DiskFiles: 1, Rollovers: 1})
	fd, _ := f.BackingFd()
	var fst unix.Stat_t
	if err := unix.Fstat(fd, &fst); err != nil {
		t.Fatalf("fstat backing file: %v", err)
	}
	gran := max(PageSize, int64(fst.Blksize))
	if gran > mib/4 {
		t.Skipf("backing filesystem allocates in units of %d bytes: too coarse for this layout", gran)
	}
	onDisk := answers("on disk", gran)
	wantRead(t, f, 0, want)
	st := mustStat(t, f)
	if st.Size != size || st.Blocks < pages*8 || st.Blocks*512 > pages*gran+256<<10 {
		t.Errorf("on disk: Stat() = %+v, want size %d and from %d to %d blocks", st, size, pages*8, (pages*gran+256<<10)/512)
	}
	if gran == PageSize {
		for k, a := range inRAM {
			if onDisk[k] != a {
				t.Errorf("%s = %d, %v in RAM but %d, %v on disk", k, a.pos, a.err, onDisk[k].pos, onDisk[k].err)
			}
		}
	}
	// Growing the file over the pages allocated past end of file shows
	// zeros there (on disk they may be data or, as an unwritten extent on
	// ext4, a hole), and they stay allocated.
	if err := f.Truncate(pastEnd + pastPages*PageSize); err != nil {
		t.Fatalf("Truncate: %v", err)
	}
	wantRead(t, f, size, make([]byte, pastEnd+pastPages*PageSize-size))
	if got := mustStat(t, f).Blocks; got < pages*8 {
		t.Errorf("on disk, grown over the pages allocated past end of file: Stat().Blocks = %d, want at least %d", got, pages*8)
	}
}

// TestSpillDir checks the private spill directory: 0700, inside
// SpillParent, named for this process, empty while files are spilled
// (their backing files have no names), with or without O_TMPFILE; and
// that files spilled stay usable after Close has removed it.
func TestSpillDir(t *testing.T) {
	for _, tmpfile := range []bool{true, false} {
		t.Run(fmt.Sprintf("O_TMPFILE %v", tmpfile), func(t *testing.T) {
			parent := t.TempDir()
			s := newTestStoreIn(t, parent, 4096)
			if !tmpfile {
				s.tmpfile = false // as on a filesystem without O_TMPFILE
			}
			dir := s.Dir()
			fi, err := os.Lstat(dir)
			if err != nil {
				t.Fatalf("Lstat(spill dir): %v", err)
			}
			if !fi.IsDir() || fi.Mode().Perm() != 0o700 {
				t.Errorf("spill dir mode = %v, want a directory with mode 0700", fi.Mode())
			}
			if prefix := fmt.Sprintf("%s%d-", dirPrefix, os.Getpid()); !strings.HasPrefix(fi.Name(), prefix) {
				t.Errorf("spill dir name %q, want prefix %q", fi.Name(), prefix)
			}
			if got, want := dir, filepath.Join(parent, fi.Name()); got != want {
				t.Errorf("Dir() = %q, want %q", got, want)
			}

			byWrite, bySpill, byTruncate, inRAM := newTestFile(t, s), newTestFile(t, s), newTestFile(t, s), newTestFile(t, s)
			mustWrite(t, byWrite, pattern(1, 5000), 0)
			mustWrite(t, bySpill, pattern(2, 100), 0)
			if err := bySpill.Spill(); err != nil {
				t.Fatalf("Spill: %v", err)
			}
			if err := byTruncate.Truncate(5000); err != nil {
				t.Fatalf("Truncate: %v", err)
			}
			mustWrite(t, inRAM, pattern(3, 100), 0)
			for _, f := range []*File{byWrite, bySpill, byTruncate} {
				wantResidency(t, f, OnDisk)
			}
			wantResidency(t, inRAM, InRAM)
			wantStats(t, s, Stats{RAMBytes: PageSize, DiskFiles: 3, Rollovers: 3})
			entries, err := os.ReadDir(dir)
			if err != nil || len(entries) != 0 {
				t.Errorf("ReadDir(spill dir) with 3 files spilled = [%s], %v; want empty", entryNames(entries), err)
			}

			if err := s.Close(); err != nil {
				t.Fatalf("Close: %v", err)
			}
			if _, err := os.Lstat(dir); !errors.Is(err, os.ErrNotExist) {
				t.Errorf("after Close, Lstat(spill dir) error = %v, want ErrNotExist", err)
			}
			if err := s.Close(); err != nil {
				t.Errorf("second Close: %v", err)
			}
			mustWrite(t, byWrite, pattern(4, 10), 6000)
			wantRead(t, byWrite, 0, pattern(1, 5000))
			wantRead(t, byWrite, 5000, append(make([]byte, 1000), pattern(4, 10)...))
			wantRead(t, bySpill, 0, pattern(2, 100))
		})
	}
}

// TestSpillIdempotent checks that a second Spill, or a write past the
// threshold after Spill, does not roll the file over again.
func TestSpillIdempotent(t *testing.T) {
	s := newTestStore(t, 8192)
	f := newTestFile(t, s)
	mustWrite(t, f, pattern(1, 100), 0)
	if err := f.Spill(); err != nil {
		t.Fatalf("Spill: %v", err)
	}
	fd, _ := f.BackingFd()
	if err := f.Spill(); err != nil {
		t.Fatalf("second Spill: %v", err)
	}
	mustWrite(t, f, pattern(2, 10000), 100)
	if fd2, ok := f.BackingFd(); fd2 != fd || !ok {
		t.Errorf("BackingFd() after second Spill and a write = %d, %v; want %d, true", fd2, ok, fd)
	}
	wantStats(t, s, Stats{DiskFiles: 1, Rollovers: 1})
	wantRead(t, f, 0, append(append([]byte{}, pattern(1, 100)...), pattern(2, 10000)...))
}

// newFileIn returns a new file of s that is in RAM, or on disk if onDisk.
func newFileIn(t *testing.T, s *Store, onDisk bool) *File {
	t.Helper()
	f := newTestFile(t, s)
	if onDisk {
		if err := f.Spill(); err != nil {
			t.Fatalf("Spill: %v", err)
		}
	}
	return f
}

// TestInvalidArguments checks the errors of bad modes, negative offsets
// and offsets too large, in RAM and on disk, and that none of them changes
// the file or allocates anything.
func TestInvalidArguments(t *testing.T) {
	p := pattern(1, PageSize)
	tests := []struct {
		name string
		do   func(f *File) error
		want error
	}{
		{"Allocate mode PunchHole without KeepSize", func(f *File) error { return f.Allocate(0, PageSize, FallocPunchHole) }, unix.EOPNOTSUPP},
		{"Allocate mode ZeroRange", func(f *File) error { return f.Allocate(0, PageSize, unix.FALLOC_FL_ZERO_RANGE) }, unix.EOPNOTSUPP},
		{"Allocate mode ZeroRange|KeepSize", func(f *File) error {
			return f.Allocate(0, PageSize, unix.FALLOC_FL_ZERO_RANGE|FallocKeepSize)
		}, unix.EOPNOTSUPP},
		{"Allocate mode CollapseRange", func(f *File) error { return f.Allocate(0, PageSize, unix.FALLOC_FL_COLLAPSE_RANGE) }, unix.EOPNOTSUPP},
		{"Allocate mode InsertRange", func(f *File) error { return f.Allocate(0, PageSize, unix.FALLOC_FL_INSERT_RANGE) }, unix.EOPNOTSUPP},
		{"Allocate mode UnshareRange", func(f *File) error { return f.Allocate(0, PageSize, unix.FALLOC_FL_UNSHARE_RANGE) }, unix.EOPNOTSUPP},
		{"Allocate mode 1<<31", func(f *File) error { return f.Allocate(0, PageSize, 1<<31) }, unix.EOPNOTSUPP},
		{"Allocate bad mode and negative offset", func(f *File) error { return f.Allocate(-1, PageSize, 0xff) }, unix.EOPNOTSUPP},
		{"Allocate negative offset", func(f *File) error { return f.Allocate(-1, PageSize, 0) }, unix.EINVAL},
		{"Allocate zero length", func(f *File) error { return f.Allocate(0, 0, FallocKeepSize) }, unix.EINVAL},
		{"Allocate negative length", func(f *File) error { return f.Allocate(0, -PageSize, FallocPunchHole|FallocKeepSize) }, unix.EINVAL},
		{"WriteAt negative offset", func(f *File) error { _, err := f.WriteAt(p, -1); return err }, unix.EINVAL},
		{"ReadAt negative offset", func(f *File) error { _, err := f.ReadAt(p, -1); return err }, unix.EINVAL},
		{"Truncate negative size", func(f *File) error { return f.Truncate(-1) }, unix.EINVAL},
		{"SeekData negative offset", func(f *File) error { _, err := f.SeekData(-1); return err }, unix.ENXIO},
		{"SeekHole negative offset", func(f *File) error { _, err := f.SeekHole(-1); return err }, unix.ENXIO},
		{"WriteAt one byte at 2^63-1", func(f *File) error { _, err := f.WriteAt(p[:1], maxOffset); return err }, unix.EFBIG},
		{"WriteAt a page ending past 2^63-1", func(f *File) error { _, err := f.WriteAt(p, maxOffset-PageSize+1); return err }, unix.EFBIG},
		{"WriteAt whose end overflows", func(f *File) error { _, err := f.WriteAt(p, maxOffset-10); return err }, unix.EFBIG},
		{"Allocate at 2^63-1", func(f *File) error { return f.Allocate(maxOffset, 1, 0) }, unix.EFBIG},
		{"Allocate keep size ending past 2^63-1", func(f *File) error { return f.Allocate(maxOffset-PageSize+1, PageSize, FallocKeepSize) }, unix.EFBIG},
		{"Allocate whose end overflows", func(f *File) error { return f.Allocate(1<<62, 1<<62, 0) }, unix.EFBIG},
		{"punch hole whose end overflows", func(f *File) error { return f.Allocate(1, maxOffset, FallocPunchHole|FallocKeepSize) }, unix.EFBIG},
	}
	for _, onDisk := range []bool{false, true} {
		for _, tc := range tests {
			t.Run(fmt.Sprintf("%v/%s", residencyOf(onDisk), tc.name), func(t *testing.T) {
				s := newTestStore(t, 0)
				f := newFileIn(t, s, onDisk)
				if err := tc.do(f); !sameErr(err, tc.want) {
					t.Errorf("got error %v, want %v", errnoOf(err), tc.want)
				}
				if got, want := mustStat(t, f), (Stat{Residency: residencyOf(onDisk)}); got != want {
					t.Errorf("then Stat() = %+v, want %+v", got, want)
				}
				wantStats(t, s, Stats{DiskFiles: b2i(onDisk), Rollovers: b2i(onDisk)})
			})
		}
	}
}

func b2i(b bool) int64 {
	if b {
		return 1
	}
	return 0
}

// TestSeekAtEndOfFile checks lseek's rules at the end: ENXIO at and past
// end of file for both, end of file as the hole that ends the last data,
// and ENXIO for SeekData in a hole that runs to end of file.
func TestSeekAtEndOfFile(t *testing.T) {
	tests := []struct {
		name     string
		size     int64 // by Truncate, after writing data
		data     int64 // bytes written at 0
		off      int64
		wantData int64 // -1 for ENXIO
		wantHole int64 // -1 for ENXIO
	}{
		{name: "empty file", off: 0, wantData: -1, wantHole: -1},
		{name: "data: at start", data: 10, size: 10, off: 0, wantData: 0, wantHole: 10},
		{name: "data: last byte", data: 10, size: 10, off: 9, wantData: 9, wantHole: 10},
		{name: "data: at end", data: 10, size: 10, off: 10, wantData: -1, wantHole: -1},
		{name: "data: past end", data: 10, size: 10, off: 11, wantData: -1, wantHole: -1},
		{name: "data: far past end", data: 10, size: 10, off: 1 << 40, wantData: -1, wantHole: -1},
		{name: "hole to end: at start", size: 3 * PageSize, off: 0, wantData: -1, wantHole: 0},
		{name: "hole to end: last byte", size: 3 * PageSize, off: 3*PageSize - 1, wantData: -1, wantHole: 3*PageSize - 1},
		{name: "data then hole: in data", data: PageSize, size: 3 * PageSize, off: 1, wantData: 1, wantHole: PageSize},
		{name: "data then hole: in hole", data: PageSize, size: 3 * PageSize, off: PageSize, wantData: -1, wantHole: PageSize},
	}
	for _, onDisk := range []bool{false, true} {
		for _, tc := range tests {
			t.Run(fmt.Sprintf("%v/%s", residencyOf(onDisk), tc.name), func(t *testing.T) {
				s := newTestStore(t, 0)
				f := newTestFile(t, s)
				if tc.data > 0 {
					mustWrite(t, f, pattern(1, int(tc.data)), 0)
				}
				if err := f.Truncate(tc.size); err != nil {
					t.Fatalf("Truncate(%d): %v", tc.size, err)
				}
				if onDisk {
					if err := f.Spill(); err != nil {
						t.Fatalf("Spill: %v", err)
					}
				}
				for _, sk := range []struct {
					name string
					seek func(int64) (int64, error)
					want int64
				}{{"SeekData", f.SeekData, tc.wantData}, {"SeekHole", f.SeekHole, tc.wantHole}} {
					got, err := sk.seek(tc.off)
					if sk.want < 0 {
						if !sameErr(err, unix.ENXIO) {
							t.Errorf("%s(%d) = %d, %v; want ENXIO", sk.name, tc.off, got, errnoOf(err))
						}
						continue
					}
					if got != sk.want || err != nil {
						t.Errorf("%s(%d) = %d, %v; want %d, nil", sk.name, tc.off, got, errnoOf(err), sk.want)
					}
				}
			})
		}
	}
}

// TestReleased checks that every operation after Release fails with
// ErrReleased, that Release gives back the file's RAM or backing file and
// may be called again, and that Stat then reports an empty file.
func TestReleased(t *testing.T) {
	ops := []struct {
		name string
		do   func(f *File) error
	}{
		{"ReadAt", func(f *File) error { _, err := f.ReadAt(make([]byte, 10), 0); return err }},
		{"WriteAt", func(f *File) error { _, err := f.WriteAt(pattern(1, 10), 0); return err }},
		{"WriteAt past threshold", func(f *File) error { _, err := f.WriteAt(pattern(1, 10), 1<<20); return err }},
		{"Truncate", func(f *File) error { return f.Truncate(10) }},
		{"Allocate", func(f *File) error { return f.Allocate(0, 10, 0) }},
		{"Allocate keep size", func(f *File) error { return f.Allocate(0, 10, FallocKeepSize) }},
		{"punch hole", func(f *File) error { return f.Allocate(0, 10, FallocPunchHole|FallocKeepSize) }},
		{"SeekData", func(f *File) error { _, err := f.SeekData(0); return err }},
		{"SeekHole", func(f *File) error { _, err := f.SeekHole(0); return err }},
		{"Spill", func(f *File) error { return f.Spill() }},
	}
	for _, onDisk := range []bool{false, true} {
		t.Run(residencyOf(onDisk).String(), func(t *testing.T) {
			s := newTestStore(t, 64<<10)
			f := newFileIn(t, s, onDisk)
			mustWrite(t, f, pattern(1, 3*PageSize), 0)
			if err := f.Release(); err != nil {
				t.Fatalf("Release: %v", err)
			}
			wantStats(t, s, Stats{Rollovers: b2i(onDisk)})
			for _, o := range ops {
				if err := o.do(f); !errors.Is(err, ErrReleased) {
					t.Errorf("%s after Release: error = %v, want ErrReleased", o.name, err)
				}
			}
			if err := f.Release(); err != nil {
				t.Errorf("second Release: %v", err)
			}
			if st, err := f.Stat(); st != (Stat{}) || err != nil {
				t.Errorf("Stat() after Release = %+v, %v; want %+v, nil", st, err, Stat{})
			}
			if fd, ok := f.BackingFd(); ok {
				t.Errorf("BackingFd() after Release = %d, true; want ok false", fd)
			}
			wantStats(t, s, Stats{Rollovers: b2i(onDisk)})
		})
	}
}

// TestRolloverFailureLeavesFileInRAM checks that when a rollover fails,
// the operation that needed it fails, nothing is written, and the file
// stays in RAM as it was, with the Store's counters unchanged.
func TestRolloverFailureLeavesFileInRAM(t *testing.T) {
	const maxSize = 64 << 10
	data := pattern(1, 3*PageSize+5)
	tests := []struct {
		name string
		do   func(f *File) error
	}{
		{"WriteAt past threshold", func(f *File) error {
			n, err := f.WriteAt(pattern(2, maxSize), 10)
			if n != 0 {
				return fmt.Errorf("WriteAt wrote %d bytes, want 0 (err %v)", n, err)
			}
			return err
		}},
		{"Truncate past threshold", func(f *File) error { return f.Truncate(maxSize + 1) }},
		{"Allocate past threshold", func(f *File) error { return f.Allocate(0, maxSize+1, 0) }},
		{"Allocate keep size past threshold", func(f *File) error { return f.Allocate(maxSize, 1, FallocKeepSize) }},
		{"Spill", func(f *File) error { return f.Spill() }},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			s := newTestStore(t, maxSize)
			f := newTestFile(t, s)
			mustWrite(t, f, data, 0)
			// With the Store closed, no backing file can be made.
			if err := s.Close(); err != nil {
				t.Fatalf("Close: %v", err)
			}
			if err := tc.do(f); err == nil {
				t.Fatalf("got no error, want the rollover to fail")
			}
			wantResidency(t, f, InRAM)
			if got, want := mustStat(t, f), (Stat{Size: int64(len(data)), Blocks: 4 * 8, Residency: InRAM}); got != want {
				t.Errorf("Stat() = %+v, want %+v", got, want)
			}
			wantStats(t, s, Stats{RAMBytes: 4 * PageSize})
			wantRead(t, f, 0, data)
		})
	}

	// A page the backing filesystem cannot hold (ext4 stops at 16 TiB).
	t.Run("page past the backing filesystem's limit", func(t *testing.T) {
		s := newTestStore(t, 0)
		f := newTestFile(t, s)
		mustWrite(t, f, data, 0)
		mustWrite(t, f, []byte{7}, maxOffset-1)
		if err := f.Spill(); err == nil {
			t.Skip("the backing filesystem holds offsets up to 2^63: cannot make the copy fail this way")
		}
		wantResidency(t, f, InRAM)
		if got, want := mustStat(t, f), (Stat{Size: maxOffset, Blocks: 5 * 8, Residency: InRAM}); got != want {
			t.Errorf("Stat() = %+v, want %+v", got, want)
		}
		wantStats(t, s, Stats{RAMBytes: 5 * PageSize})
		wantRead(t, f, 0, data)
		wantRead(t, f, maxOffset-2, []byte{0, 7})
	})
}

// TestZeroLengthWrite checks that writing nothing changes nothing, as
// pwrite(2) with count 0 on a regular file: not the size, and not where
// the file lives.
func TestZeroLengthWrite(t *testing.T) {
	tests := []struct {
		name    string
		maxSize int64
		onDisk  bool
		off     int64
	}{
		{"in RAM, inside the file", 0, false, 10},
		{"in RAM, past end of file", 0, false, 100},
		{"in RAM, past the threshold", 4096, false, 10000},
		{"on disk, past end of file", 0, true, 100},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			s := newTestStore(t, tc.maxSize)
			f := newFileIn(t, s, tc.onDisk)
			mustWrite(t, f, pattern(1, 20), 0)
			if n, err := f.WriteAt(nil, tc.off); n != 0 || err != nil {
				t.Errorf("WriteAt(nil, %d) = %d, %v; want 0, nil", tc.off, n, err)
			}
			if got := mustStat(t, f).Size; got != 20 {
				t.Errorf("after WriteAt(nil, %d): size %d, want 20", tc.off, got)
			}
			if got := f.Residency(); got != residencyOf(tc.onDisk) {
				t.Errorf("after WriteAt(nil, %d): Residency() = %v, want %v", tc.off, got, residencyOf(tc.onDisk))
			}
			wantRead(t, f, 0, pattern(1, 20))
		})
	}
}

// TestNearMaxOffset works in RAM at the top of the offset range, where
// page arithmetic such as rounding an offset up to a page boundary can
// overflow int64. None of these needs more than two pages of RAM.
func TestNearMaxOffset(t *testing.T) {
	hello := []byte("hello")
	lastPage := maxOffset &^ (PageSize - 1) // 2^63 - 4096
	tests := []struct {
		name string
		do   func(t *testing.T, f *File)
		want Stats // with the file still open
	}{
		{
			name: "write the last byte",
			do: func(t *testing.T, f *File) {
				mustWrite(t, f, []byte{9}, maxOffset-1)
				wantRead(t, f, maxOffset-2, []byte{0, 9})
				if got := mustStat(t, f); got.Size != maxOffset || got.Blocks != 8 {
					t.Errorf("Stat() = %+v, want size %d and 8 blocks", got, maxOffset)
				}
			},
			want: Stats{RAMBytes: PageSize},
		},
		{
			name: "punch a hole near 2^63 keeps the data at 0",
			do: func(t *testing.T, f *File) {
				mustWrite(t, f, hello, 0)
				if err := f.Allocate(maxOffset-100, 10, FallocPunchHole|FallocKeepSize); err != nil {
					t.Fatalf("Allocate(2^63-101, 10, punch): %v", err)
				}
				wantRead(t, f, 0, hello)
			},
			want: Stats{RAMBytes: PageSize},
		},
		{
			name: "truncate down near 2^63 keeps the data at 0",
			do: func(t *testing.T, f *File) {
				if err := f.Truncate(maxOffset); err != nil {
					t.Fatalf("Truncate(2^63-1): %v", err)
				}
				mustWrite(t, f, hello, 0)
				if err := f.Truncate(maxOffset - 1); err != nil {
					t.Fatalf("Truncate(2^63-2): %v", err)
				}
				wantRead(t, f, 0, hello)
			},
			want: Stats{RAMBytes: PageSize},
		},
		{
			name: "seek hole in the last page",
			do: func(t *testing.T, f *File) {
				mustWrite(t, f, pattern(1, PageSize-1), lastPage)
				if got, err := f.SeekHole(lastPage); got != maxOffset || err != nil {
					t.Errorf("SeekHole(2^63-4096) with data to end of file = %d, %v; want %d (end of file), nil", got, err, maxOffset)
				}
				if got, err := f.SeekData(0); got != lastPage || err != nil {
					t.Errorf("SeekData(0) = %d, %v; want %d, nil", got, err, lastPage)
				}
			},
			want: Stats{RAMBytes: PageSize},
		},
		{
			name: "fallocate the last page",
			do: func(t *testing.T, f *File) {
				if err := f.Allocate(lastPage, PageSize-1, 0); err != nil {
					t.Fatalf("Allocate(2^63-4096, 4095, 0): %v", err)
				}
				if got := mustStat(t, f); got.Size != maxOffset || got.Blocks != 8 {
					t.Errorf("Stat() = %+v, want size %d and 8 blocks", got, maxOffset)
				}
				mustWrite(t, f, []byte{1}, lastPage)
				if got, err := f.SeekData(0); got != lastPage || err != nil {
					t.Errorf("SeekData(0) after a write to it = %d, %v; want %d, nil", got, errnoOf(err), lastPage)
				}
			},
			want: Stats{RAMBytes: PageSize},
		},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			s := newTestStore(t, 0)
			f := newTestFile(t, s)
			tc.do(t, f)
			wantResidency(t, f, InRAM)
			wantStats(t, s, tc.want)
		})
	}
}

// TestPunchHoleEdges punches holes with every alignment against page
// edges in a file of data, in RAM, checking pages freed and bytes zeroed
// through the harness.
func TestPunchHoleEdges(t *testing.T) {
	edges := []int64{0, 1, PageSize - 1, PageSize, PageSize + 1, 2*PageSize - 1, 2 * PageSize, 3*PageSize + 1, 4 * PageSize}
	for _, off := range edges {
		for _, end := range edges {
			if end <= off {
				continue
			}
			t.Run(fmt.Sprintf("[%d,%d)", off, end), func(t *testing.T) {
				h := newHarness(t, 0)
				h.apply(t,
					writeOp(0, pattern(1, 4*PageSize+10)),
					punchOp(off, end-off),
					seekDataOp(off), seekHoleOp(off), seekHoleOp(0),
				)
				if bytes.Count(h.m.data, []byte{0}) != int(end-off) {
					t.Errorf("model: %d zero bytes, want %d", bytes.Count(h.m.data, []byte{0}), end-off)
				}
			})
		}
	}
}

// TestSpillLongRuns spills files whose pages make runs around the
// 1024-vector limit of one pwritev, and reads them back.
func TestSpillLongRuns(t *testing.T) {
	tests := []struct {
		name  string
		runs  [][2]int64 // [first page, end page) written
		extra int64      // bytes written after the last run
	}{
		{"1023 pages", [][2]int64{{0, 1023}}, 0},
		{"1024 pages", [][2]int64{{0, 1024}}, 0},
		{"1025 pages", [][2]int64{{0, 1025}}, 0},
		{"2049 pages and a partial one", [][2]int64{{0, 2049}}, 100},
		{"runs of 1024 and 1025 around a hole", [][2]int64{{1, 1025}, {1026, 2051}}, 0},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			s := newTestStore(t, 0)
			f := newTestFile(t, s)
			last := tc.runs[len(tc.runs)-1][1]
			want := make([]byte, last*PageSize+tc.extra)
			for i, run := range tc.runs {
				for p := run[0]; p < run[1]; p += 64 {
					end := min(p+64, run[1])
					data := pattern(byte(1+i+int(p%200)), int(end-p)*PageSize)
					mustWrite(t, f, data, p*PageSize)
					copy(want[p*PageSize:], data)
				}
			}
			if tc.extra > 0 {
				mustWrite(t, f, pattern(3, int(tc.extra)), last*PageSize)
				copy(want[last*PageSize:], pattern(3, int(tc.extra)))
			}
			if err := f.Spill(); err != nil {
				t.Fatalf("Spill: %v", err)
			}
			wantResidency(t, f, OnDisk)
			if got := mustStat(t, f).Size; got != int64(len(want)) {
				t.Errorf("size %d, want %d", got, len(want))
			}
			wantRead(t, f, 0, want)
		})
	}
}

// TestTruncateFreesPagesPastEnd checks that a truncate that does not grow
// the file frees the pages fallocated past its end, even to the size the
// file already has, and that one that grows it keeps them: as ftruncate(2)
// on tmpfs and on ext4 (so also on a spilled file's backing file).
func TestTruncateFreesPagesPastEnd(t *testing.T) {
	tests := []struct {
		name       string
		size       int64 // truncate to this
		wantBlocks int64
	}{
		{"to a smaller size", 50, 8},
		{"to the same size", 100, 8},
		{"to a larger size in the same page", 200, 4 * 8},
		{"to a larger size over the pages", 3 * PageSize, 4 * 8},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			s := newTestStore(t, 0)
			f := newTestFile(t, s)
			mustWrite(t, f, pattern(1, 100), 0)
			if err := f.Allocate(PageSize, 3*PageSize, FallocKeepSize); err != nil {
				t.Fatalf("Allocate: %v", err)
			}
			if err := f.Truncate(tc.size); err != nil {
				t.Fatalf("Truncate(%d): %v", tc.size, err)
			}
			if got, want := mustStat(t, f), (Stat{Size: tc.size, Blocks: tc.wantBlocks, Residency: InRAM}); got != want {
				t.Errorf("Stat() = %+v, want %+v", got, want)
			}
			wantStats(t, s, Stats{RAMBytes: tc.wantBlocks * 512})
		})
	}
}

// TestOnRollover checks that OnRollover hears of each rollover once, with
// the file's id, the size it rolled over at and why, and with no lock of
// the file held (the callback stats the file, which would deadlock
// otherwise).
func TestOnRollover(t *testing.T) {
	type call struct {
		id   uint64
		size int64
		why  Reason
	}
	var calls []call
	var files map[uint64]*File
	s, err := Open(Config{SpillParent: t.TempDir(), MaxSize: 8192, OnRollover: func(id uint64, size int64, why Reason) {
		if _, err := files[id].Stat(); err != nil {
			t.Errorf("Stat in OnRollover: %v", err)
		}
		calls = append(calls, call{id, size, why})
	}})
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	files = map[uint64]*File{7: s.NewFile(7), 8: s.NewFile(8), 9: s.NewFile(9), 10: s.NewFile(10), 11: s.NewFile(11)}
	for _, f := range files {
		defer f.Release()
	}
	if _, err := files[7].WriteAt(make([]byte, 8193), 0); err != nil {
		t.Fatal(err)
	}
	if _, err := files[7].WriteAt([]byte("x"), 20000); err != nil { // on disk already
		t.Fatal(err)
	}
	if err := files[8].Truncate(100000); err != nil {
		t.Fatal(err)
	}
	if _, err := files[9].WriteAt([]byte("abc"), 0); err != nil {
		t.Fatal(err)
	}
	if err := files[9].Spill(); err != nil {
		t.Fatal(err)
	}
	if err := files[9].Spill(); err != nil { // idempotent: no second report
		t.Fatal(err)
	}
	if err := files[10].Allocate(0, 9000, 0); err != nil {
		t.Fatal(err)
	}
	if _, err := files[11].WriteAt([]byte("mapped"), 0); err != nil {
		t.Fatal(err)
	}
	if err := files[11].SpillFor(ByMapping); err != nil {
		t.Fatal(err)
	}
	want := []call{{7, 0, BySize}, {8, 0, BySize}, {9, 3, OnRequest}, {10, 0, BySize}, {11, 6, ByMapping}}
	if !slices.Equal(calls, want) {
		t.Errorf("OnRollover calls = %v, want %v", calls, want)
	}
}

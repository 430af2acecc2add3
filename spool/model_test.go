package spool

import (
	"bytes"
	"errors"
	"fmt"
	"io/fs"
	"math/rand/v2"
	"os"
	"strings"
	"testing"

	"golang.org/x/sys/unix"
)

// This file holds the helpers every test of the package shares: a Store and
// File with cleanups that check nothing is left behind, and a reference
// model of a File that the model, fuzz and concurrency tests compare spool
// against, one operation at a time.
//
// The model is a plain []byte (the file's bytes; its length is the size), a
// map of the page indexes that hold a page in RAM, and whether the file has
// rolled over. The page map mirrors what spool documents for a file in RAM:
// a page is present once written or allocated (fallocate modes 0 and
// FallocKeepSize, even past end of file), until a truncate below it or a hole
// punched over all of it frees it; and, as on tmpfs, a page that fallocate
// allocated is "unwritten", a hole to SeekData and SeekHole, until a write
// touches it. For a file in RAM the model is exact: SeekData and SeekHole
// must give the model's answer to the byte (data is the written pages),
// Stat's Blocks must be 8 per page present, and the Store's RAMBytes 4096
// per page. For a file on disk the backing filesystem decides what is data
// (its granularity may be coarser), so only what holds on any filesystem
// is checked: a SeekData answer has only zeros before it, a SeekHole answer
// is a zero byte or end of file, and both are ENXIO exactly at and after
// end of file.

// newTestStore opens a Store in a fresh temporary directory. Its cleanup,
// which runs after those of the files made with newTestFile, checks that
// releasing every file gave back all RAM, that the spill directory holds
// no named entries, and that Close removes it.
func newTestStore(tb testing.TB, maxSize int64) *Store {
	tb.Helper()
	return newTestStoreIn(tb, tb.TempDir(), maxSize)
}

func newTestStoreIn(tb testing.TB, parent string, maxSize int64) *Store {
	tb.Helper()
	s, err := Open(Config{SpillParent: parent, MaxSize: maxSize})
	if err != nil {
		tb.Fatalf("Open(SpillParent %s, MaxSize %d): %v", parent, maxSize, err)
	}
	tb.Cleanup(func() {
		dir := s.Dir()
		if got := s.Stats(); got.RAMBytes != 0 || got.DiskFiles != 0 {
			tb.Errorf("with every file released, Stats() = %+v, want RAMBytes 0 and DiskFiles 0", got)
		}
		// A test may have closed the Store already, removing the directory.
		if entries, err := os.ReadDir(dir); err == nil && len(entries) != 0 {
			tb.Errorf("spill dir %s holds %s, want no entries", dir, entryNames(entries))
		}
		if err := s.Close(); err != nil {
			tb.Errorf("Close: %v", err)
		}
		if _, err := os.Lstat(dir); !errors.Is(err, fs.ErrNotExist) {
			tb.Errorf("after Close, Lstat(spill dir %s) error = %v, want ErrNotExist", dir, err)
		}
	})
	return s
}

// newTestFile returns a new File of s that is released at cleanup.
func newTestFile(tb testing.TB, s *Store) *File {
	tb.Helper()
	f := s.NewFile(uint64(len(tb.Name())))
	tb.Cleanup(func() {
		if err := f.Release(); err != nil {
			tb.Errorf("Release: %v", err)
		}
	})
	return f
}

func entryNames(entries []os.DirEntry) string {
	names := make([]string, len(entries))
	for i, e := range entries {
		names[i] = e.Name()
	}
	return strings.Join(names, ", ")
}

// errnoOf reduces an error to its errno, if it wraps one, for messages.
func errnoOf(err error) error {
	var e unix.Errno
	if errors.As(err, &e) {
		return e
	}
	return err
}

// sameErr reports whether got is want or wraps it.
func sameErr(got, want error) bool {
	if want == nil {
		return got == nil
	}
	return errors.Is(got, want)
}

// patternBytes is a fixed pseudo-random pattern without zero bytes: data
// taken from it is told apart from holes and from other data.
var patternBytes = func() []byte {
	b := make([]byte, 640<<10)
	r := rand.New(rand.NewPCG(1, 2))
	for i := range b {
		b[i] = byte(1 + r.IntN(255))
	}
	return b
}()

// pattern returns n bytes of data named by seed: zeros for seed 0, else a
// slice of patternBytes that no caller may modify. n may be up to 384 KiB.
func pattern(seed byte, n int) []byte {
	if seed == 0 {
		return make([]byte, n)
	}
	start := int(seed) * 1021
	return patternBytes[start : start+n : start+n]
}

var (
	zeroBlock     [64 << 10]byte
	sentinelBlock = bytes.Repeat([]byte{0xEE}, 64<<10)
)

// allZero reports whether b holds only zeros (without a byte loop, which
// the race detector makes slow).
func allZero(b []byte) bool {
	for len(b) > 0 {
		n := min(len(b), len(zeroBlock))
		if !bytes.Equal(b[:n], zeroBlock[:n]) {
			return false
		}
		b = b[n:]
	}
	return true
}

// fillSentinel fills b with 0xEE, so that bytes a read fails to set show.
func fillSentinel(b []byte) {
	for i := 0; i < len(b); i += len(sentinelBlock) {
		copy(b[i:], sentinelBlock)
	}
}

// firstDiff returns the first index where a and b differ, or -1 if they
// are equal.
func firstDiff(a, b []byte) int {
	if bytes.Equal(a, b) {
		return -1
	}
	for i := range min(len(a), len(b)) {
		if a[i] != b[i] {
			return i
		}
	}
	return min(len(a), len(b))
}

// opKind names an operation of the model.
type opKind uint8

const (
	opWrite     opKind = iota // WriteAt(data, off)
	opRead                    // ReadAt(n bytes, off)
	opTruncate                // Truncate(off)
	opPunch                   // Allocate(off, n, FallocPunchHole|FallocKeepSize)
	opAlloc                   // Allocate(off, n, 0)
	opAllocKeep               // Allocate(off, n, FallocKeepSize)
	opSpill                   // Spill()
	opSeekData                // SeekData(off)
	opSeekHole                // SeekHole(off)
	numOpKinds
)

// op is one operation on a File and the model.
type op struct {
	kind opKind
	off  int64  // offset; the new size for opTruncate
	n    int64  // length for opRead, opPunch, opAlloc, opAllocKeep
	data []byte // for opWrite
}

func writeOp(off int64, data []byte) op { return op{kind: opWrite, off: off, data: data} }
func readOp(off, n int64) op            { return op{kind: opRead, off: off, n: n} }
func truncateOp(size int64) op          { return op{kind: opTruncate, off: size} }
func punchOp(off, n int64) op           { return op{kind: opPunch, off: off, n: n} }
func allocOp(off, n int64) op           { return op{kind: opAlloc, off: off, n: n} }
func allocKeepOp(off, n int64) op       { return op{kind: opAllocKeep, off: off, n: n} }
func spillOp() op                       { return op{kind: opSpill} }
func seekDataOp(off int64) op           { return op{kind: opSeekData, off: off} }
func seekHoleOp(off int64) op           { return op{kind: opSeekHole, off: off} }

// allocMode is the fallocate mode of opPunch, opAlloc and opAllocKeep.
func (o op) allocMode() uint32 {
	switch o.kind {
	case opPunch:
		return FallocPunchHole | FallocKeepSize
	case opAllocKeep:
		return FallocKeepSize
	}
	return 0
}

func (o op) String() string {
	switch o.kind {
	case opWrite:
		first := "-"
		if len(o.data) > 0 {
			first = fmt.Sprintf("%#02x", o.data[0])
		}
		return fmt.Sprintf("WriteAt(%d bytes from %s, off %d) [end %d]", len(o.data), first, o.off, o.off+int64(len(o.data)))
	case opRead:
		return fmt.Sprintf("ReadAt(%d bytes, off %d)", o.n, o.off)
	case opTruncate:
		return fmt.Sprintf("Truncate(%d)", o.off)
	case opPunch:
		return fmt.Sprintf("Allocate(%d, %d, PunchHole|KeepSize) [end %d]", o.off, o.n, o.off+o.n)
	case opAlloc:
		return fmt.Sprintf("Allocate(%d, %d, 0) [end %d]", o.off, o.n, o.off+o.n)
	case opAllocKeep:
		return fmt.Sprintf("Allocate(%d, %d, KeepSize) [end %d]", o.off, o.n, o.off+o.n)
	case opSpill:
		return "Spill()"
	case opSeekData:
		return fmt.Sprintf("SeekData(%d)", o.off)
	case opSeekHole:
		return fmt.Sprintf("SeekHole(%d)", o.off)
	}
	return fmt.Sprintf("op(kind %d)", o.kind)
}

// model is what a File should hold: see the comment at the top.
type model struct {
	maxSize int64
	data    []byte
	pages   map[int64]bool // pages present while in RAM: true if written
	onDisk  bool
}

func newModel(maxSize int64) *model {
	return &model{maxSize: maxSize, pages: make(map[int64]bool)}
}

func (m *model) size() int64 { return int64(len(m.data)) }

// reach notes that the file's size or allocated extent reaches end: past
// the threshold, a file in RAM rolls over.
func (m *model) reach(end int64) {
	if m.maxSize > 0 && end > m.maxSize {
		m.spill()
	}
}

func (m *model) spill() {
	m.onDisk = true
	clear(m.pages)
}

func (m *model) grow(size int64) {
	if size > m.size() {
		m.data = append(m.data, make([]byte, size-m.size())...)
	}
}

// allocPages marks the pages overlapping [off, end) present and, by a
// write, written; fallocate leaves the pages present already as they are.
func (m *model) allocPages(off, end int64, write bool) {
	if m.onDisk {
		return
	}
	for idx := off / PageSize; idx < ceilDiv(end, PageSize); idx++ {
		if _, ok := m.pages[idx]; write || !ok {
			m.pages[idx] = write
		}
	}
}

// freePages drops the pages with index in [from, to).
func (m *model) freePages(from, to int64) {
	for idx := range m.pages {
		if idx >= from && idx < to {
			delete(m.pages, idx)
		}
	}
}

func ceilDiv(n, d int64) int64 { return (n + d - 1) / d }

func (m *model) write(p []byte, off int64) (int, error) {
	if off < 0 {
		return 0, unix.EINVAL
	}
	if int64(len(p)) > maxOffset-off {
		return 0, unix.EFBIG
	}
	if len(p) == 0 {
		return 0, nil // as pwrite(2): nothing changes
	}
	end := off + int64(len(p))
	m.reach(end)
	m.grow(end)
	copy(m.data[off:], p)
	m.allocPages(off, end, true)
	return len(p), nil
}

func (m *model) read(off, n int64) ([]byte, error) {
	if off < 0 {
		return nil, unix.EINVAL
	}
	if off >= m.size() {
		return nil, nil
	}
	return m.data[off:min(off+n, m.size())], nil
}

func (m *model) truncate(size int64) error {
	if size < 0 {
		return unix.EINVAL
	}
	m.reach(size)
	// As tmpfs, a truncate that does not grow the file frees the pages
	// fallocated past its end.
	if size <= m.size() {
		m.freePages(ceilDiv(size, PageSize), maxPageIndex)
		m.data = m.data[:size]
		return nil
	}
	m.grow(size)
	return nil
}

func (m *model) allocate(off, length int64, mode uint32) error {
	switch mode {
	case 0, FallocKeepSize, FallocPunchHole | FallocKeepSize:
	default:
		return unix.EOPNOTSUPP
	}
	if off < 0 || length <= 0 {
		return unix.EINVAL
	}
	if length > maxOffset-off {
		return unix.EFBIG
	}
	end := off + length
	if mode&FallocPunchHole != 0 {
		if off < m.size() {
			clear(m.data[off:min(end, m.size())])
		}
		m.freePages(ceilDiv(off, PageSize), end/PageSize)
		return nil
	}
	m.reach(end)
	m.allocPages(off, end, false)
	if mode&FallocKeepSize == 0 {
		m.grow(end)
	}
	return nil
}

// seekInRAM is the exact answer of SeekData or SeekHole for a file in RAM.
func (m *model) seekInRAM(kind opKind, off int64) (int64, error) {
	size := m.size()
	if off < 0 || off >= size {
		return 0, unix.ENXIO
	}
	for idx := off / PageSize; ; idx++ {
		pos := max(off, idx*PageSize)
		switch {
		case pos >= size:
			if kind == opSeekHole {
				return size, nil
			}
			return 0, unix.ENXIO
		case m.pages[idx] == (kind == opSeekData): // data: written
			return pos, nil
		}
	}
}

// checkSeek checks a SeekData or SeekHole answer: exactly for a file in
// RAM, and for what any filesystem must give for a file on disk.
func (m *model) checkSeek(kind opKind, off, got int64, gotErr error) error {
	size := m.size()
	if off < 0 || off >= size {
		if !sameErr(gotErr, unix.ENXIO) {
			return fmt.Errorf("got %d, %v; want ENXIO at or past end of file (size %d)", got, errnoOf(gotErr), size)
		}
		return nil
	}
	if !m.onDisk {
		want, wantErr := m.seekInRAM(kind, off)
		if got != want || !sameErr(gotErr, wantErr) {
			return fmt.Errorf("got %d, %v; want %d, %v (in RAM, size %d)", got, errnoOf(gotErr), want, wantErr, size)
		}
	}
	switch {
	case kind == opSeekData && sameErr(gotErr, unix.ENXIO):
		if !allZero(m.data[off:]) {
			return fmt.Errorf("got ENXIO, but byte %d before end of file (size %d) is not zero", off+int64(firstDiff(m.data[off:], make([]byte, size-off))), size)
		}
	case gotErr != nil:
		return fmt.Errorf("got error %v, want an offset in [%d, %d]", gotErr, off, size)
	case got < off || got > size || (kind == opSeekData && got == size):
		return fmt.Errorf("got %d, outside [%d, %d]", got, off, size)
	case kind == opSeekData && !allZero(m.data[off:got]):
		return fmt.Errorf("got %d, but [%d, %d) skipped as a hole holds a nonzero byte", got, off, got)
	case kind == opSeekHole && got < size && m.data[got] != 0:
		return fmt.Errorf("got %d, but the byte there, said to be in a hole, is %#02x", got, m.data[got])
	}
	return nil
}

// harness runs operations on a File and the model side by side.
type harness struct {
	store *Store
	f     *File
	m     *model
	// sole says f is the only file of the Store in use, so that the
	// Store's counters must match the model too, from base: what they
	// were when the file was made.
	sole bool
	base Stats
	buf  []byte
	done []op // operations so far, for failure messages
}

// newHarness makes a harness around a new Store of its own.
func newHarness(tb testing.TB, maxSize int64) *harness {
	tb.Helper()
	return newHarnessIn(tb, newTestStore(tb, maxSize))
}

// newHarnessIn makes a harness around a new file of s, which must have no
// other file in use until tb's cleanup, which checks that releasing the
// file gives back what it held.
func newHarnessIn(tb testing.TB, s *Store) *harness {
	tb.Helper()
	base := s.Stats()
	tb.Cleanup(func() { // after the file's release
		got := s.Stats()
		if want := (Stats{RAMBytes: base.RAMBytes, DiskFiles: base.DiskFiles, Rollovers: got.Rollovers}); got != want {
			tb.Errorf("with the file released, Stats() = %+v, want %+v", got, want)
		}
	})
	h := &harness{store: s, f: newTestFile(tb, s), m: newModel(s.MaxSize()), sole: true, base: base}
	if err := h.check(); err != nil {
		tb.Fatalf("new file: %v", err)
	}
	return h
}

// apply runs o on the File and the model and fails tb at the first
// difference, listing the operations that led to it.
func (h *harness) apply(tb testing.TB, ops ...op) {
	tb.Helper()
	for _, o := range ops {
		if err := h.step(o); err != nil {
			tb.Fatalf("%v: %v\noperations (MaxSize %d):\n%s", o, err, h.m.maxSize, h.history())
		}
	}
}

func (h *harness) history() string {
	var b strings.Builder
	for i, o := range h.done {
		fmt.Fprintf(&b, "\t%3d: %v\n", i, o)
	}
	return b.String()
}

// step runs o on the File and the model and returns how they differ: in
// what o returned, or in the state (size, contents, residency, space) after.
func (h *harness) step(o op) error {
	h.done = append(h.done, o)
	f, m := h.f, h.m
	switch o.kind {
	case opWrite:
		n, err := f.WriteAt(o.data, o.off)
		wantN, wantErr := m.write(o.data, o.off)
		if n != wantN || !sameErr(err, wantErr) {
			return fmt.Errorf("got %d, %v; want %d, %v", n, errnoOf(err), wantN, wantErr)
		}
	case opRead:
		got := make([]byte, o.n)
		fillSentinel(got)
		n, err := f.ReadAt(got, o.off)
		want, wantErr := m.read(o.off, o.n)
		if n != len(want) || !sameErr(err, wantErr) {
			return fmt.Errorf("got %d, %v; want %d, %v", n, errnoOf(err), len(want), wantErr)
		}
		if i := firstDiff(got[:n], want); i >= 0 {
			return fmt.Errorf("byte at offset %d = %#02x, want %#02x", o.off+int64(i), got[i], want[i])
		}
	case opTruncate:
		err := f.Truncate(o.off)
		if wantErr := m.truncate(o.off); !sameErr(err, wantErr) {
			return fmt.Errorf("got %v, want %v", errnoOf(err), wantErr)
		}
	case opPunch, opAlloc, opAllocKeep:
		err := f.Allocate(o.off, o.n, o.allocMode())
		if wantErr := m.allocate(o.off, o.n, o.allocMode()); !sameErr(err, wantErr) {
			return fmt.Errorf("got %v, want %v", errnoOf(err), wantErr)
		}
	case opSpill:
		if err := f.Spill(); err != nil {
			return fmt.Errorf("got %v, want nil", err)
		}
		m.spill()
	case opSeekData, opSeekHole:
		seek := f.SeekData
		if o.kind == opSeekHole {
			seek = f.SeekHole
		}
		got, err := seek(o.off)
		if err := m.checkSeek(o.kind, o.off, got, err); err != nil {
			return err
		}
	default:
		return fmt.Errorf("unknown operation")
	}
	return h.check()
}

// check compares the File's state with the model's: size, residency,
// space held (exactly while in RAM), the Store's counters when the file is
// its only one, and every byte.
func (h *harness) check() error {
	f, m := h.f, h.m
	size := m.size()
	wantRes := InRAM
	if m.onDisk {
		wantRes = OnDisk
	}
	st, err := f.Stat()
	if err != nil {
		return fmt.Errorf("Stat: %v", err)
	}
	if st.Size != size || st.Residency != wantRes {
		return fmt.Errorf("then Stat() = size %d, %v; want size %d, %v", st.Size, st.Residency, size, wantRes)
	}
	if got := f.Residency(); got != wantRes {
		return fmt.Errorf("then Residency() = %v, want %v", got, wantRes)
	}
	if fd, ok := f.BackingFd(); ok != m.onDisk || (ok && fd < 0) {
		return fmt.Errorf("then BackingFd() = %d, %v; want ok %v", fd, ok, m.onDisk)
	}
	pages := int64(len(m.pages))
	if !m.onDisk && st.Blocks != pages*(PageSize/512) {
		return fmt.Errorf("then Stat().Blocks = %d, want %d (%d pages)", st.Blocks, pages*(PageSize/512), pages)
	}
	if h.sole {
		want := h.base
		if m.onDisk {
			want.DiskFiles++
			want.Rollovers++
		} else {
			want.RAMBytes += pages * PageSize
		}
		if got := h.store.Stats(); got != want {
			return fmt.Errorf("then Store.Stats() = %+v, want %+v", got, want)
		}
	}

	// Read one byte more than the size, into a buffer of non-zero bytes.
	if int64(cap(h.buf)) < size+1 {
		h.buf = make([]byte, size+1+size/2)
	}
	buf := h.buf[:size+1]
	fillSentinel(buf)
	n, err := f.ReadAt(buf, 0)
	if int64(n) != size || err != nil {
		return fmt.Errorf("then ReadAt(%d bytes, 0) = %d, %v; want %d, nil", len(buf), n, err, size)
	}
	if i := firstDiff(buf[:n], m.data); i >= 0 {
		return fmt.Errorf("then byte at offset %d = %#02x, want %#02x", i, buf[i], m.data[i])
	}
	return nil
}

// randomOp returns an operation with offsets and lengths below span, with
// writes weighted up so that files grow.
func randomOp(r *rand.Rand, span int64) op {
	off := r.Int64N(span)
	if r.IntN(4) == 0 { // often page aligned, or next to a page edge
		off = off&^(PageSize-1) + int64(r.IntN(3)) - 1
		off = max(off, 0)
	}
	n := 1 + r.Int64N(min(span-off, 3*PageSize))
	switch k := r.IntN(20); {
	case k < 8:
		return writeOp(off, pattern(byte(1+r.IntN(255)), int(n)))
	case k < 10:
		return readOp(off, n)
	case k < 12:
		return truncateOp(off)
	case k < 14:
		return punchOp(off, n)
	case k < 15:
		return allocOp(off, n)
	case k < 16:
		return allocKeepOp(off, n)
	case k < 18:
		return seekDataOp(off)
	default:
		return seekHoleOp(off)
	}
}

// TestModelSequences runs hand-written sequences through the harness: the
// basic behaviours the model asserts, one sequence each.
func TestModelSequences(t *testing.T) {
	const maxSize = 64 << 10
	tests := []struct {
		name    string
		maxSize int64
		ops     []op
	}{
		{
			name: "write and read back across page edges",
			ops: []op{
				writeOp(PageSize-3, pattern(1, 10)),
				readOp(0, 2*PageSize),
				readOp(PageSize-3, 10),
				readOp(PageSize+7, 100), // at end of file: nothing
			},
		},
		{
			name: "write past end leaves a hole of zeros",
			ops: []op{
				writeOp(0, pattern(1, 100)),
				writeOp(5*PageSize+17, pattern(2, 100)),
				seekDataOp(100), seekHoleOp(0), seekHoleOp(PageSize), seekDataOp(5 * PageSize),
			},
		},
		{
			name: "truncate down then up reads zeros",
			ops: []op{
				writeOp(0, pattern(3, 3*PageSize)),
				truncateOp(PageSize + 5),
				truncateOp(3 * PageSize),
				readOp(PageSize, PageSize),
				truncateOp(0),
				truncateOp(10),
			},
		},
		{
			name: "punch hole across page edges",
			ops: []op{
				writeOp(0, pattern(4, 5*PageSize)),
				punchOp(PageSize-1, 2*PageSize+2), // frees page 1 only, zeros the edges
				seekHoleOp(0), seekDataOp(PageSize + 1), seekHoleOp(3 * PageSize),
				punchOp(3*PageSize+10, 20),       // inside one page
				punchOp(4*PageSize, 10*PageSize), // past end of file
			},
		},
		{
			name: "fallocate keep size past end then truncate up",
			ops: []op{
				writeOp(0, pattern(5, 100)),
				allocKeepOp(2*PageSize, 3*PageSize),
				seekDataOp(200), seekHoleOp(0),
				truncateOp(6 * PageSize),
				seekDataOp(PageSize), seekHoleOp(2 * PageSize),
			},
		},
		{
			name: "data search skips pages allocated past end of file",
			ops: []op{
				writeOp(0, pattern(5, 100)),
				allocKeepOp(2*PageSize, PageSize),
				truncateOp(PageSize + 500),
				seekDataOp(PageSize), seekDataOp(PageSize + 499), seekHoleOp(PageSize),
				allocKeepOp(PageSize+500, 10), // page 1, inside the file
				seekDataOp(PageSize + 499),
			},
		},
		{
			name: "full chunks of pages",
			ops: []op{
				writeOp(0, pattern(10, chunkPages*PageSize)),
				writeOp(chunkPages*PageSize+100, pattern(11, 2*PageSize)),
				writeOp(3*chunkPages*PageSize, pattern(12, 10)),
				seekHoleOp(0), seekHoleOp(PageSize + 1), seekHoleOp(chunkPages*PageSize + 1),
				seekDataOp(chunkPages*PageSize + 3*PageSize),
				allocOp(chunkPages*PageSize+3*PageSize, (chunkPages-3)*PageSize), // fills chunk 1
				seekHoleOp(0), seekHoleOp(chunkPages*PageSize - 1), seekDataOp(2 * chunkPages * PageSize),
				punchOp(chunkPages*PageSize-PageSize, 2*PageSize),
				seekHoleOp(0), seekDataOp(chunkPages*PageSize - PageSize),
				truncateOp(chunkPages*PageSize + 1),
				seekHoleOp(0), seekHoleOp(chunkPages * PageSize),
			},
		},
		{
			name: "fallocated pages are holes until written",
			ops: []op{
				allocOp(0, 3*PageSize),
				seekDataOp(0), seekHoleOp(0), seekHoleOp(PageSize + 5),
				writeOp(PageSize+10, pattern(13, 1)), // page 1 becomes data
				seekDataOp(0), seekHoleOp(PageSize), seekDataOp(2 * PageSize),
				allocOp(0, 4*PageSize), // leaves page 1 written
				seekDataOp(0), seekHoleOp(PageSize),
				punchOp(PageSize, 100), // written page stays data
				seekDataOp(0),
				writeOp(3*PageSize+4000, pattern(14, 200)), // page 3 written, page 4 new
				seekDataOp(2 * PageSize), seekHoleOp(3 * PageSize),
				truncateOp(PageSize + 1), // page 1 stays, written
				allocKeepOp(0, 5*PageSize),
				truncateOp(5 * PageSize),
				seekDataOp(0), seekHoleOp(PageSize), seekDataOp(2 * PageSize),
				spillOp(),
				seekDataOp(0), seekHoleOp(PageSize), seekDataOp(2 * PageSize),
			},
		},
		{
			name: "fallocate grows the file with zeros",
			ops: []op{
				allocOp(100, 2*PageSize),
				seekDataOp(0), seekHoleOp(0),
				writeOp(PageSize, pattern(6, 10)),
			},
		},
		{
			name:    "rollover in the middle, then everything on disk",
			maxSize: maxSize,
			ops: []op{
				writeOp(0, pattern(7, PageSize)),
				allocKeepOp(8*PageSize, PageSize),
				punchOp(100, 200),
				writeOp(maxSize-10, pattern(8, 11)), // rolls over
				readOp(maxSize-20, 40),
				truncateOp(PageSize + 1),
				truncateOp(maxSize * 2),
				punchOp(10, PageSize),
				seekDataOp(0), seekHoleOp(0), seekDataOp(PageSize + 2),
				allocOp(maxSize*3, 100),
			},
		},
		{
			name:    "explicit spill keeps bytes, holes and size",
			maxSize: 0,
			ops: []op{
				writeOp(3*PageSize, pattern(9, 10)),
				allocKeepOp(10*PageSize, PageSize),
				spillOp(),
				spillOp(),
				truncateOp(12 * PageSize),
				seekDataOp(0), seekHoleOp(3 * PageSize),
			},
		},
		{
			name: "errors",
			ops: []op{
				writeOp(-1, pattern(1, 1)),
				writeOp(maxOffset, pattern(1, 1)),
				readOp(-1, 1),
				truncateOp(-1),
				punchOp(0, 0),
				allocOp(-1, 10),
				allocKeepOp(10, maxOffset),
				seekDataOp(-1), seekHoleOp(-1), seekDataOp(0), seekHoleOp(0),
			},
		},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			h := newHarness(t, tc.maxSize)
			h.apply(t, tc.ops...)
		})
	}
}

// TestModelRandom runs random sequences, a few of them with a threshold
// they cross, through the harness.
func TestModelRandom(t *testing.T) {
	tests := []struct {
		name    string
		maxSize int64
		span    int64
		seed    uint64
	}{
		{"no threshold", 0, 64 << 10, 1},
		{"threshold 16 KiB", 16 << 10, 32 << 10, 2},
		{"threshold 10000", 10000, 24 << 10, 3},
		{"threshold 64 KiB", 64 << 10, 96 << 10, 4},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			r := rand.New(rand.NewPCG(tc.seed, 99))
			h := newHarness(t, tc.maxSize)
			for range 300 {
				h.apply(t, randomOp(r, tc.span))
			}
			if tc.maxSize > 0 && !h.m.onDisk {
				t.Errorf("after 300 operations up to %d, the file never crossed MaxSize %d: test does not test rollover", tc.span, tc.maxSize)
			}
		})
	}
}

package spool

import (
	"errors"
	"fmt"
	"math/rand/v2"
	"os"
	"runtime"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"golang.org/x/sys/unix"
)

// Tests of the memory budget (Config.MemLimit) and the capacity
// (Config.SizeLimit): see budget.go.

// rolloverLog records the calls of OnRollover.
type rolloverLog struct {
	mu      sync.Mutex
	sizes   map[uint64][]int64  // the sizes reported for each id, in order
	reasons map[uint64][]Reason // and the reasons
	total   atomic.Int64
}

func (l *rolloverLog) record(id uint64, size int64, why Reason) {
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.sizes == nil {
		l.sizes = make(map[uint64][]int64)
		l.reasons = make(map[uint64][]Reason)
	}
	l.sizes[id] = append(l.sizes[id], size)
	l.reasons[id] = append(l.reasons[id], why)
	l.total.Add(1)
}

// reasonsOf returns the reasons reported for id.
func (l *rolloverLog) reasonsOf(id uint64) []Reason {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.reasons[id]
}

// of returns the sizes reported for id.
func (l *rolloverLog) of(id uint64) []int64 {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.sizes[id]
}

// openBudgetStore opens a Store with cfg (in a fresh spill parent unless
// cfg names one) and, at the end of the test, once the files are released
// (their cleanups run first), checks that the Store holds nothing, that
// its directory is empty, and closes it.
func openBudgetStore(tb testing.TB, cfg Config) *Store {
	tb.Helper()
	if cfg.SpillParent == "" {
		cfg.SpillParent = tb.TempDir()
	}
	s, err := Open(cfg)
	if err != nil {
		tb.Fatalf("Open(%+v): %v", cfg, err)
	}
	tb.Cleanup(func() {
		if got := s.Stats(); got.RAMBytes != 0 || got.DiskBytes != 0 || got.DiskFiles != 0 {
			tb.Errorf("with every file released, Stats() = %+v, want RAMBytes, DiskBytes and DiskFiles 0", got)
		}
		// A test may have closed the Store already, removing the directory.
		if entries, err := os.ReadDir(s.Dir()); err == nil && len(entries) != 0 {
			tb.Errorf("spill dir %s holds %s, want no entries", s.Dir(), entryNames(entries))
		}
		if err := s.Close(); err != nil {
			tb.Errorf("Close: %v", err)
		}
	})
	return s
}

// newBudgetFile returns a new file of s named id, released at the end of
// the test.
func newBudgetFile(tb testing.TB, s *Store, id uint64) *File {
	tb.Helper()
	f := s.NewFile(id)
	tb.Cleanup(func() {
		if err := f.Release(); err != nil {
			tb.Errorf("file %d: Release: %v", id, err)
		}
	})
	return f
}

// randomBytes returns n pseudo-random bytes named by seed.
func randomBytes(seed uint64, n int) []byte {
	var key [32]byte
	key[0], key[1] = byte(seed), byte(seed>>8)
	b := make([]byte, n)
	rand.NewChaCha8(key).Read(b)
	return b
}

// diskUseSlack is how far Stats().DiskBytes may differ from the backing
// files' st_blocks, per file on disk: the Store reads st_blocks after each
// operation, but the filesystem may still allocate metadata (an extent
// block, say) when it writes the data back later.
const diskUseSlack = 4 * PageSize

// wantCountersMatchFiles checks, with no operation in progress, that the
// Store's counters are what the files hold: RAMBytes the pages of the files
// in RAM (so every reservation was given back), DiskFiles the files on
// disk, and DiskBytes (counted only with a capacity) about the backing
// files' disk use. Released files count for nothing.
func wantCountersMatchFiles(t *testing.T, s *Store, files []*File) {
	t.Helper()
	var ram, disk, diskFiles int64
	for i, f := range files {
		st, err := f.Stat()
		if err != nil {
			t.Fatalf("file %d: Stat: %v", i, err)
		}
		if st.Residency == OnDisk {
			disk += st.Blocks * 512
			diskFiles++
		} else {
			ram += st.Blocks * 512
		}
	}
	got := s.Stats()
	if got.RAMBytes != ram {
		t.Errorf("Stats().RAMBytes = %d (%d pages), want %d (%d pages), the pages the files in RAM hold",
			got.RAMBytes, got.RAMBytes/PageSize, ram, ram/PageSize)
	}
	if got.DiskFiles != diskFiles {
		t.Errorf("Stats().DiskFiles = %d, want %d", got.DiskFiles, diskFiles)
	}
	_, sizeLimit := s.Limits()
	switch {
	case sizeLimit == 0 && got.DiskBytes != 0:
		t.Errorf("Stats().DiskBytes = %d without a SizeLimit, want 0", got.DiskBytes)
	case sizeLimit > 0 && (got.DiskBytes < disk-diskFiles*diskUseSlack || got.DiskBytes > disk+diskFiles*diskUseSlack):
		t.Errorf("Stats().DiskBytes = %d, want %d (the backing files' st_blocks*512) within %d per file on disk",
			got.DiskBytes, disk, diskUseSlack)
	}
}

// wantContent checks that f holds exactly want: its size and every byte.
func wantContent(t *testing.T, f *File, want []byte) {
	t.Helper()
	st, err := f.Stat()
	if err != nil {
		t.Fatalf("Stat: %v", err)
	}
	if st.Size != int64(len(want)) {
		t.Errorf("Stat().Size = %d, want %d", st.Size, len(want))
	}
	got := make([]byte, len(want)+1)
	fillSentinel(got)
	n, err := f.ReadAt(got, 0)
	if err != nil || n != len(want) {
		t.Errorf("ReadAt(%d bytes, 0) = %d, %v; want %d, nil", len(got), n, err, len(want))
	}
	if i := firstDiff(got[:n], want); i >= 0 {
		t.Errorf("byte at offset %d differs from what was written (file holds %d bytes, want %d)", i, n, len(want))
	}
}

// contentModel is what a file should hold.
type contentModel struct{ data []byte }

func (m *contentModel) write(p []byte, off int64) {
	if end := off + int64(len(p)); end > int64(len(m.data)) {
		m.truncate(end)
	}
	copy(m.data[off:], p)
}

func (m *contentModel) truncate(size int64) {
	if size <= int64(len(m.data)) {
		m.data = m.data[:size]
		return
	}
	m.data = append(m.data, make([]byte, size-int64(len(m.data)))...)
}

// punch zeros [off, end) within the file.
func (m *contentModel) punch(off, end int64) {
	if end > int64(len(m.data)) {
		end = int64(len(m.data))
	}
	if off < end {
		clear(m.data[off:end])
	}
}

// TestMemLimitConcurrentWriters has many goroutines write at once, with
// random sizes (1 B to 256 KiB) at random offsets, to files of their own
// and to regions of their own in shared files, under a memory budget far
// smaller than the data, while a monitor samples RAMBytes (which includes
// the reservations of writes in progress) in a tight loop: it must never
// exceed MemLimit. Each goroutine mirrors its files in a model and reads
// back what it wrote after every write (while other files are being rolled
// over). At the end every file reads back byte-identical, the files that
// OnRollover named (each at most once) are on disk and only they, Rollovers
// equals the OnRollover calls, and the counters match the files. Meant for
// -race.
func TestMemLimitConcurrentWriters(t *testing.T) {
	const (
		memLimit         = 2 << 20
		maxWrite         = 256 << 10
		ownWriters       = 8
		filesPerWriter   = 3
		writesPerFile    = 8
		ownSpan          = 768 << 10 // writes to own files end within it
		sharedFiles      = 2
		writersPerShared = 2
		sharedRegion     = 640 << 10 // each shared writer owns one of these
		sharedWrites     = 16
	)
	tests := []struct {
		name    string
		maxSize int64
	}{
		{"MaxSize 0", 0},
		{"MaxSize 1 MiB: shared files roll over by size", 1 << 20},
	}
	for ti, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			var log rolloverLog
			s := openBudgetStore(t, Config{MaxSize: tc.maxSize, MemLimit: memLimit, OnRollover: log.record})
			var files []*File // id i+1
			newFile := func() *File {
				f := newBudgetFile(t, s, uint64(len(files)+1))
				files = append(files, f)
				return f
			}
			own := make([][]*File, ownWriters)
			ownModels := make([][]contentModel, ownWriters)
			for w := range own {
				for range filesPerWriter {
					own[w] = append(own[w], newFile())
				}
				ownModels[w] = make([]contentModel, filesPerWriter)
			}
			shared := make([]*File, sharedFiles)
			for i := range shared {
				shared[i] = newFile()
			}
			// sharedModels[k][w] is region w of shared file k, as long as
			// its writer has written into it (the file may be longer).
			sharedModels := make([][]contentModel, sharedFiles)
			for k := range sharedModels {
				sharedModels[k] = make([]contentModel, writersPerShared)
			}

			var (
				failed  atomic.Bool
				stop    atomic.Bool
				maxSeen atomic.Int64
				samples atomic.Int64
				monitor sync.WaitGroup
				writers sync.WaitGroup
			)
			fail := func(format string, args ...any) {
				failed.Store(true)
				t.Errorf(format, args...)
			}
			monitor.Go(func() {
				var n, highest int64
				for !stop.Load() {
					ram := s.Stats().RAMBytes
					n++
					highest = max(highest, ram)
					if ram > memLimit || ram < 0 {
						fail("sample %d: Stats().RAMBytes = %d, want it in [0, MemLimit %d]", n, ram, memLimit)
						break
					}
				}
				maxSeen.Store(highest)
				samples.Store(n)
			})

			// writeAndCheck writes p at off to f, mirrors it in m (whose
			// offset 0 is base in f) and reads it back.
			writeAndCheck := func(what string, f *File, m *contentModel, base int64, p []byte, off int64) bool {
				if n, err := f.WriteAt(p, base+off); n != len(p) || err != nil {
					fail("%s: WriteAt(%d bytes, %d) = %d, %v; want %d, nil", what, len(p), base+off, n, err, len(p))
					return false
				}
				m.write(p, off)
				got := make([]byte, len(p))
				if n, err := f.ReadAt(got, base+off); n != len(p) || err != nil {
					fail("%s: ReadAt(%d bytes, %d) after writing there = %d, %v", what, len(p), base+off, n, err)
					return false
				}
				if i := firstDiff(got, p); i >= 0 {
					fail("%s: byte at offset %d read back right after the write differs", what, base+off+int64(i))
					return false
				}
				return true
			}
			for w := range ownWriters {
				writers.Go(func() {
					r := rand.New(rand.NewPCG(uint64(ti), uint64(w)))
					for k, f := range own[w] {
						for range writesPerFile {
							n := 1 + r.IntN(maxWrite)
							off := r.Int64N(ownSpan - int64(n) + 1)
							p := pattern(byte(1+r.IntN(255)), n)
							what := fmt.Sprintf("writer %d, own file %d", w, k)
							if failed.Load() || !writeAndCheck(what, f, &ownModels[w][k], 0, p, off) {
								return
							}
						}
					}
				})
			}
			for k := range sharedFiles {
				for w := range writersPerShared {
					writers.Go(func() {
						r := rand.New(rand.NewPCG(uint64(ti), uint64(100+k*writersPerShared+w)))
						base := int64(w) * sharedRegion
						for range sharedWrites {
							n := 1 + r.IntN(maxWrite)
							off := r.Int64N(sharedRegion - int64(n) + 1)
							p := pattern(byte(1+r.IntN(255)), n)
							what := fmt.Sprintf("shared file %d, region %d", k, w)
							if failed.Load() || !writeAndCheck(what, shared[k], &sharedModels[k][w], base, p, off) {
								return
							}
						}
					})
				}
			}
			writers.Wait()
			stop.Store(true)
			monitor.Wait()
			t.Logf("RAMBytes: highest of %d samples %d (MemLimit %d); %d rollovers of %d files",
				samples.Load(), maxSeen.Load(), memLimit, s.Stats().Rollovers, len(files))
			if failed.Load() {
				return
			}

			for w := range own {
				for k, f := range own[w] {
					t.Run(fmt.Sprintf("writer %d own file %d", w, k), func(t *testing.T) {
						wantContent(t, f, ownModels[w][k].data)
					})
				}
			}
			for k, f := range shared {
				var want contentModel
				for w := range writersPerShared {
					if m := sharedModels[k][w]; len(m.data) > 0 {
						want.write(m.data, int64(w)*sharedRegion)
					}
				}
				t.Run(fmt.Sprintf("shared file %d", k), func(t *testing.T) { wantContent(t, f, want.data) })
			}
			for i, f := range files {
				reported := log.of(uint64(i + 1))
				if len(reported) > 1 {
					t.Errorf("file %d: OnRollover called %d times (sizes %v), want at most once", i+1, len(reported), reported)
				}
				if got, want := f.Residency(), residencyOf(len(reported) > 0); got != want {
					t.Errorf("file %d: Residency() = %v, want %v (OnRollover calls: %v)", i+1, got, want, reported)
				}
			}
			st := s.Stats()
			if st.Rollovers != log.total.Load() {
				t.Errorf("Stats().Rollovers = %d, want %d, the calls of OnRollover", st.Rollovers, log.total.Load())
			}
			if st.Rollovers < int64(len(files)/2) {
				t.Errorf("Stats() = %+v with %d files: want at least half of them rolled over to make room", st, len(files))
			}
			if st.RAMBytes > memLimit {
				t.Errorf("at the end, Stats().RAMBytes = %d, want at most MemLimit %d", st.RAMBytes, memLimit)
			}
			wantCountersMatchFiles(t, s, files)
		})
	}
}

// TestMemLimitOneFileRollsItselfOver checks that a file that alone grows
// past the memory budget (MaxSize 0: never by size) rolls itself over and
// the operation succeeds on disk, RAM never holding more than MemLimit.
func TestMemLimitOneFileRollsItselfOver(t *testing.T) {
	const (
		memLimit = 1 << 20
		total    = 4 << 20
	)
	data := randomBytes(41, total)
	tests := []struct {
		name string
		// do makes the file total bytes long; want is what it then holds
		do   func(t *testing.T, s *Store, f *File)
		want []byte
		// rolledAt is the size OnRollover must report
		rolledAt int64
	}{
		{
			name: "one 4 MiB write",
			do:   func(t *testing.T, s *Store, f *File) { mustWrite(t, f, data, 0) },
			want: data, rolledAt: 0,
		},
		{
			name: "64 KiB writes up to 4 MiB",
			do: func(t *testing.T, s *Store, f *File) {
				const step = 64 << 10
				for off := int64(0); off < total; off += step {
					mustWrite(t, f, data[off:off+step], off)
					// The budget is full at exactly MemLimit: only the
					// write past it moves the file.
					if got, want := f.Residency(), residencyOf(off+step > memLimit); got != want {
						t.Fatalf("after writing [0, %d): Residency() = %v, want %v", off+step, got, want)
					}
					if got := s.Stats().RAMBytes; got > memLimit {
						t.Fatalf("after writing [0, %d): Stats().RAMBytes = %d, want at most %d", off+step, got, memLimit)
					}
				}
			},
			want: data, rolledAt: memLimit,
		},
		{
			name: "fallocate 4 MiB",
			do: func(t *testing.T, s *Store, f *File) {
				if err := f.Allocate(0, total, 0); err != nil {
					t.Fatalf("Allocate(0, %d, 0): %v", total, err)
				}
			},
			want: make([]byte, total), rolledAt: 0,
		},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			var log rolloverLog
			s := openBudgetStore(t, Config{MemLimit: memLimit, OnRollover: log.record})
			f := newBudgetFile(t, s, 1)
			tc.do(t, s, f)
			wantResidency(t, f, OnDisk)
			wantContent(t, f, tc.want)
			if got := log.of(1); len(got) != 1 || got[0] != tc.rolledAt {
				t.Errorf("OnRollover sizes = %v, want [%d]", got, tc.rolledAt)
			}
			if got := log.reasonsOf(1); len(got) != 1 || got[0] != ForMemory {
				t.Errorf("OnRollover reasons = %v, want [memory]", got)
			}
			wantStats(t, s, Stats{DiskFiles: 1, Rollovers: 1})
		})
	}
}

// TestMemLimitWriteLargerThanBudget checks that a write larger than the
// whole memory budget, which no rollover of other files can make room for,
// goes to disk without rolling the other files over.
func TestMemLimitWriteLargerThanBudget(t *testing.T) {
	const memLimit = 64 * PageSize
	var log rolloverLog
	s := openBudgetStore(t, Config{MemLimit: memLimit, OnRollover: log.record})
	x, y, big := newBudgetFile(t, s, 1), newBudgetFile(t, s, 2), newBudgetFile(t, s, 3)
	mustWrite(t, x, pattern(1, 16*PageSize), 0)
	mustWrite(t, y, pattern(2, 16*PageSize), 0)
	data := randomBytes(3, memLimit+PageSize)
	mustWrite(t, big, data, 0)
	wantResidency(t, big, OnDisk)
	wantContent(t, big, data)
	for _, f := range []*File{x, y} {
		if got := f.Residency(); got != InRAM {
			t.Errorf("file %d: Residency() = %v, want %v: the write of %d bytes could never fit in MemLimit %d",
				f.id, got, InRAM, len(data), memLimit)
		}
	}
	if got := log.total.Load(); got != 1 {
		t.Errorf("OnRollover called %d times, want once (for the written file)", got)
	}
}

// ageFile makes f look idle since ago, for pickVictim.
func ageFile(f *File, ago time.Duration) { f.lastUse.Store(time.Now().Add(-ago).UnixNano()) }

// waitClockPast spins until time.Now is past the UnixNano t, so that a
// touch made now is strictly later than t.
func waitClockPast(t int64) {
	for time.Now().UnixNano() <= t {
		runtime.Gosched()
	}
}

// TestPickVictim checks which file the memory budget rolls over to make
// room: the one with the most pages times idle time.
func TestPickVictim(t *testing.T) {
	t.Run("big idle file before small busy one and the writer's own", func(t *testing.T) {
		var log rolloverLog
		s := openBudgetStore(t, Config{MemLimit: 64 * PageSize, OnRollover: log.record})
		big, small, own := newBudgetFile(t, s, 1), newBudgetFile(t, s, 2), newBudgetFile(t, s, 3)
		mustWrite(t, big, pattern(1, 40*PageSize), 0)
		mustWrite(t, small, pattern(2, 8*PageSize), 0)
		mustWrite(t, own, pattern(3, 8*PageSize), 0)
		wantRead(t, small, 0, pattern(2, 8*PageSize)) // small is busy
		if got := s.pickVictim(); got != big {
			t.Errorf("pickVictim() = file %v, want the big idle file 1", fileID(got))
		}
		// 56 pages held, 16 more needed: over 64.
		mustWrite(t, own, pattern(4, 16*PageSize), 8*PageSize)
		if got := log.of(1); len(got) != 1 || got[0] != 40*PageSize {
			t.Errorf("OnRollover sizes of the big file = %v, want [%d]", got, 40*PageSize)
		}
		wantResidency(t, big, OnDisk)
		wantResidency(t, small, InRAM)
		wantResidency(t, own, InRAM)
		wantStats(t, s, Stats{RAMBytes: (8 + 24) * PageSize, DiskFiles: 1, Rollovers: 1})
		wantRead(t, big, 0, pattern(1, 40*PageSize))
		wantRead(t, own, 8*PageSize, pattern(4, 16*PageSize))
	})

	// Two files of 16 pages, written one after the other; then one is
	// read. The other, idle longer, must go, whichever was written first.
	for _, readFirst := range []bool{true, false} {
		t.Run(fmt.Sprintf("a file just read goes after an equal idle one (read the first written: %v)", readFirst), func(t *testing.T) {
			var log rolloverLog
			s := openBudgetStore(t, Config{MemLimit: 40 * PageSize, OnRollover: log.record})
			first, second, writer := newBudgetFile(t, s, 1), newBudgetFile(t, s, 2), newBudgetFile(t, s, 3)
			mustWrite(t, first, pattern(1, 16*PageSize), 0)
			mustWrite(t, second, pattern(2, 16*PageSize), 0)
			read, idle := first, second
			if !readFirst {
				read, idle = second, first
			}
			waitClockPast(max(first.lastUse.Load(), second.lastUse.Load()))
			wantRead(t, read, 0, pattern(byte(read.id), PageSize))
			if got := s.pickVictim(); got != idle {
				t.Errorf("pickVictim() = file %v, want the idle file %d", fileID(got), fileID(idle))
			}
			// 32 pages held, 16 more needed: over 40.
			mustWrite(t, writer, pattern(3, 16*PageSize), 0)
			wantResidency(t, idle, OnDisk)
			wantResidency(t, read, InRAM)
			wantResidency(t, writer, InRAM)
			if got := log.total.Load(); got != 1 {
				t.Errorf("OnRollover called %d times, want once", got)
			}
			wantStats(t, s, Stats{RAMBytes: 32 * PageSize, DiskFiles: 1, Rollovers: 1})
		})
	}

	t.Run("the writer's own file when it is the best choice", func(t *testing.T) {
		var log rolloverLog
		s := openBudgetStore(t, Config{MemLimit: 200 * PageSize, OnRollover: log.record})
		own, other := newBudgetFile(t, s, 1), newBudgetFile(t, s, 2)
		ownData := randomBytes(5, 208*PageSize)
		mustWrite(t, own, ownData[:192*PageSize], 0)
		mustWrite(t, other, pattern(2, PageSize), 0)
		// other is busy too: it would need to be idle for 192 times as
		// long as own (which the write touches) to outweigh own's pages.
		wantRead(t, other, 0, pattern(2, PageSize))
		// 193 pages held, 16 more needed: over 200.
		mustWrite(t, own, ownData[192*PageSize:], 192*PageSize)
		if got := log.of(1); len(got) != 1 || got[0] != 192*PageSize {
			t.Errorf("OnRollover sizes of the writer's file = %v, want [%d]", got, 192*PageSize)
		}
		wantResidency(t, own, OnDisk)
		wantResidency(t, other, InRAM)
		wantStats(t, s, Stats{RAMBytes: PageSize, DiskFiles: 1, Rollovers: 1})
		wantContent(t, own, ownData)
	})

	t.Run("files without pages are never chosen", func(t *testing.T) {
		s := openBudgetStore(t, Config{MemLimit: 16 * PageSize})
		empty, sparse, busy := newBudgetFile(t, s, 1), newBudgetFile(t, s, 2), newBudgetFile(t, s, 3)
		if err := sparse.Truncate(1 << 30); err != nil {
			t.Fatal(err)
		}
		mustWrite(t, busy, pattern(3, PageSize), 0)
		ageFile(empty, time.Hour)
		ageFile(sparse, time.Hour)
		if got := s.pickVictim(); got != busy {
			t.Errorf("pickVictim() = file %v, want file 3, the only one holding pages", fileID(got))
		}
		if err := busy.Spill(); err != nil {
			t.Fatal(err)
		}
		if got := s.pickVictim(); got != nil {
			t.Errorf("pickVictim() with no file holding pages = file %v, want none", fileID(got))
		}
	})
}

// fileID names f in messages: its id, or "none".
func fileID(f *File) any {
	if f == nil {
		return "none"
	}
	return f.id
}

// TestMemLimitOverwriteNeedsNoRoom checks that overwriting pages a file in
// RAM already holds, with the budget full, moves nothing: the write needs
// no new pages.
func TestMemLimitOverwriteNeedsNoRoom(t *testing.T) {
	const pages = 64
	s := openBudgetStore(t, Config{MemLimit: pages * PageSize})
	f := newBudgetFile(t, s, 1)
	data := randomBytes(7, pages*PageSize)
	mustWrite(t, f, data, 0) // the budget is full
	mustWrite(t, f, pattern(1, 100), 5000)
	copy(data[5000:], pattern(1, 100))
	if got := f.Residency(); got != InRAM {
		t.Errorf("after overwriting 100 bytes of a file in RAM with the budget full: Residency() = %v, want %v (Stats %+v)",
			got, InRAM, s.Stats())
	}
	wantContent(t, f, data)
}

// TestEvictionVictimReleased checks that a write that makes room by
// rolling another file over succeeds when that file is released at the
// same moment (which makes the room as well).
//
// The interleaving is forced: the test holds the victim's read lock, so
// that Release waits for it, then starts the write, which picks the victim
// (still listed) and waits for its lock behind Release. When the test lets
// go, Release runs first, then the write's Spill of the victim.
func TestEvictionVictimReleased(t *testing.T) {
	s := openBudgetStore(t, Config{MemLimit: 32 * PageSize})
	victim := s.NewFile(1) // released by the test
	writer := newBudgetFile(t, s, 2)
	mustWrite(t, victim, pattern(1, 16*PageSize), 0)

	victim.mu.RLock()
	released := make(chan error, 1)
	go func() { released <- victim.Release() }()
	waitUntil(t, "Release to wait for the victim's lock", func() bool {
		if victim.mu.TryRLock() { // no writer waiting yet
			victim.mu.RUnlock()
			return false
		}
		return true
	})
	type result struct {
		n   int
		err error
	}
	wrote := make(chan result, 1)
	data := pattern(2, 24*PageSize) // 16 + 24 pages: over 32
	go func() {
		n, err := writer.WriteAt(data, 0)
		wrote <- result{n, err}
	}()
	waitUntil(t, "the write to roll the victim over", func() bool {
		return goroutineIn("spool.(*File).SpillFor(", "spool.(*Store).reserveRAM(")
	})
	victim.mu.RUnlock()

	if err := <-released; err != nil {
		t.Errorf("Release of the victim: %v", err)
	}
	if got := <-wrote; got.n != len(data) || got.err != nil {
		t.Errorf("WriteAt(%d bytes, 0) while the file it rolls over is released = %d, %v; want %d, nil",
			len(data), got.n, got.err, len(data))
	}
	wantCountersMatchFiles(t, s, []*File{victim, writer})
}

// waitUntil polls cond until it holds, failing t after 10 seconds.
func waitUntil(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		runtime.Gosched()
	}
}

// goroutineIn reports whether some goroutine's stack has all of frames.
func goroutineIn(frames ...string) bool {
	buf := make([]byte, 1<<20)
	buf = buf[:runtime.Stack(buf, true)]
	for _, g := range strings.Split(string(buf), "\n\n") {
		all := true
		for _, fr := range frames {
			all = all && strings.Contains(g, fr)
		}
		if all {
			return true
		}
	}
	return false
}

// TestReservationsRefunded checks that RAMBytes is exactly the pages the
// files hold once an operation has ended, whether it succeeded or failed,
// so that the reservation it made is given back on every path, and that a
// failed operation changed nothing.
//
// Every case starts with file a (5 pages) and file b (3 pages) in RAM.
func TestReservationsRefunded(t *testing.T) {
	const (
		aLen = 5*PageSize - 100
		bLen = 3 * PageSize
	)
	tests := []struct {
		name string
		cfg  Config
		// do runs the operation on a and b; it may spill, release and
		// close first.
		do      func(t *testing.T, s *Store, a, b *File) error
		wantErr error // nil: success; errAny: some error
	}{
		{
			name: "write past the largest offset: EFBIG",
			cfg:  Config{MemLimit: 16 * PageSize},
			do: func(t *testing.T, s *Store, a, b *File) error {
				_, err := a.WriteAt(pattern(9, 100), maxOffset-10)
				return err
			},
			wantErr: unix.EFBIG,
		},
		{
			name: "write over the capacity: ENOSPC",
			cfg:  Config{SizeLimit: 16 * PageSize},
			do: func(t *testing.T, s *Store, a, b *File) error {
				_, err := a.WriteAt(pattern(9, 9*PageSize), 5*PageSize)
				return err
			},
			wantErr: unix.ENOSPC,
		},
		{
			name: "fallocate over the capacity: ENOSPC",
			cfg:  Config{SizeLimit: 16 * PageSize, MemLimit: 12 * PageSize},
			do: func(t *testing.T, s *Store, a, b *File) error {
				return a.Allocate(1<<20, 9*PageSize, 0)
			},
			wantErr: unix.ENOSPC,
		},
		{
			name: "fallocate keep size over the capacity: ENOSPC",
			cfg:  Config{SizeLimit: 16 * PageSize},
			do: func(t *testing.T, s *Store, a, b *File) error {
				return b.Allocate(0, 20*PageSize, FallocKeepSize)
			},
			wantErr: unix.ENOSPC,
		},
		{
			name: "write to a file on disk over the capacity: ENOSPC",
			cfg:  Config{SizeLimit: 16 * PageSize},
			do: func(t *testing.T, s *Store, a, b *File) error {
				if err := b.Spill(); err != nil {
					t.Fatal(err)
				}
				_, err := b.WriteAt(pattern(9, 9*PageSize), bLen)
				return err
			},
			wantErr: unix.ENOSPC,
		},
		{
			name: "write to a released file",
			cfg:  Config{MemLimit: 16 * PageSize},
			do: func(t *testing.T, s *Store, a, b *File) error {
				if err := b.Release(); err != nil {
					t.Fatal(err)
				}
				_, err := b.WriteAt(pattern(9, 4*PageSize), 0)
				return err
			},
			wantErr: ErrReleased,
		},
		{
			name: "fallocate of a released file",
			cfg:  Config{MemLimit: 16 * PageSize},
			do: func(t *testing.T, s *Store, a, b *File) error {
				if err := b.Release(); err != nil {
					t.Fatal(err)
				}
				return b.Allocate(0, 4*PageSize, 0)
			},
			wantErr: ErrReleased,
		},
		{
			name: "rollover by MaxSize fails",
			cfg:  Config{MaxSize: 8 * PageSize, MemLimit: 16 * PageSize},
			do: func(t *testing.T, s *Store, a, b *File) error {
				closeStore(t, s) // no backing file can be made
				_, err := a.WriteAt(pattern(9, 8*PageSize), 4*PageSize)
				return err
			},
			wantErr: errAny,
		},
		{
			name: "rollover to make room fails",
			cfg:  Config{MemLimit: 10 * PageSize},
			do: func(t *testing.T, s *Store, a, b *File) error {
				closeStore(t, s)
				_, err := a.WriteAt(pattern(9, 4*PageSize), 5*PageSize) // 8 + 4 pages: over 10
				return err
			},
			wantErr: errAny,
		},
		{
			name: "the writer's own rollover to make room fails",
			cfg:  Config{MemLimit: 10 * PageSize},
			do: func(t *testing.T, s *Store, a, b *File) error {
				if err := b.Release(); err != nil {
					t.Fatal(err)
				}
				closeStore(t, s)
				_, err := a.WriteAt(pattern(9, 8*PageSize), 5*PageSize) // 5 + 8 pages: over 10
				return err
			},
			wantErr: errAny,
		},
		{
			name: "fallocate whose rollover to make room fails",
			cfg:  Config{MemLimit: 10 * PageSize},
			do: func(t *testing.T, s *Store, a, b *File) error {
				closeStore(t, s)
				return a.Allocate(0, 12*PageSize, 0)
			},
			wantErr: errAny,
		},
		{
			// The range spans 2^51 pages, whose byte count, 2^63,
			// overflows int64: the reservation must be bounded, not
			// wrap negative and pass both limits.
			name: "fallocate of the whole offset range",
			cfg:  Config{MaxSize: 8 * PageSize, MemLimit: 16 * PageSize},
			do: func(t *testing.T, s *Store, a, b *File) error {
				return a.Allocate(0, maxOffset, 0)
			},
			wantErr: errAny, // the backing filesystem's EFBIG, say
		},
		{
			// As above, with a capacity: its check must not overflow.
			name: "fallocate of the whole offset range over the capacity: ENOSPC",
			cfg:  Config{MaxSize: 8 * PageSize, SizeLimit: 32 * PageSize},
			do: func(t *testing.T, s *Store, a, b *File) error {
				return a.Allocate(0, maxOffset, FallocKeepSize)
			},
			wantErr: unix.ENOSPC,
		},
		{
			name: "overwrite needing no new page",
			cfg:  Config{MemLimit: 16 * PageSize},
			do: func(t *testing.T, s *Store, a, b *File) error {
				_, err := a.WriteAt(pattern(9, aLen-10), 5)
				return err
			},
		},
		{
			name: "write partly over present pages",
			cfg:  Config{MemLimit: 16 * PageSize, SizeLimit: 32 * PageSize},
			do: func(t *testing.T, s *Store, a, b *File) error {
				_, err := b.WriteAt(pattern(9, 3*PageSize), 2*PageSize+7)
				return err
			},
		},
		{
			name: "fallocate over present pages",
			cfg:  Config{MemLimit: 16 * PageSize},
			do: func(t *testing.T, s *Store, a, b *File) error {
				return a.Allocate(0, 7*PageSize, 0)
			},
		},
		{
			name: "punch hole",
			cfg:  Config{MemLimit: 8 * PageSize},
			do: func(t *testing.T, s *Store, a, b *File) error {
				return a.Allocate(PageSize, 2*PageSize, FallocPunchHole|FallocKeepSize)
			},
		},
		{
			name: "write that makes room",
			cfg:  Config{MemLimit: 10 * PageSize},
			do: func(t *testing.T, s *Store, a, b *File) error {
				_, err := a.WriteAt(pattern(9, 4*PageSize), 5*PageSize)
				return err
			},
		},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			s := openBudgetStore(t, tc.cfg)
			a, b := newBudgetFile(t, s, 1), newBudgetFile(t, s, 2)
			mustWrite(t, a, pattern(1, aLen), 0)
			mustWrite(t, b, pattern(2, bLen), 0)
			before := map[*File]Stat{a: mustStat(t, a), b: mustStat(t, b)}
			err := tc.do(t, s, a, b)
			switch {
			case tc.wantErr == errAny && err == nil:
				t.Errorf("got no error, want one")
			case tc.wantErr != errAny && !sameErr(err, tc.wantErr):
				t.Errorf("got error %v, want %v", err, tc.wantErr)
			}
			wantCountersMatchFiles(t, s, []*File{a, b})
			if err == nil {
				return
			}
			// A failed operation changed nothing (but what do did first).
			for f, data := range map[*File][]byte{a: pattern(1, aLen), b: pattern(2, bLen)} {
				if st := mustStat(t, f); st.Size == 0 {
					continue // released
				} else if st.Size != before[f].Size || st.Blocks != before[f].Blocks {
					t.Errorf("file %d: after the failure Stat() = %+v, want size %d and %d blocks as before",
						f.id, st, before[f].Size, before[f].Blocks)
				}
				wantRead(t, f, 0, data)
			}
		})
	}
}

// errAny in a test table stands for any error.
var errAny = errors.New("any error")

// closeStore closes s, so that no backing file can be made: rollovers fail.
func closeStore(t *testing.T, s *Store) {
	t.Helper()
	if err := s.Close(); err != nil {
		t.Fatalf("Close: %v", err)
	}
}

// TestReservationsRandom runs random operations on a few files under a
// memory budget, a capacity and a threshold, and checks after every one
// that the Store's counters match what the files hold (RAMBytes the pages
// of the files in RAM exactly, DiskBytes about the backing files' use) and
// that the file holds what its model says: an operation that fails with
// ENOSPC (the only error allowed) changes nothing.
func TestReservationsRandom(t *testing.T) {
	const (
		files   = 4
		ops     = 300
		span    = 256 << 10
		maxSize = 128 << 10
	)
	var log rolloverLog
	s := openBudgetStore(t, Config{MaxSize: maxSize, MemLimit: 192 << 10, SizeLimit: 512 << 10, OnRollover: log.record})
	fs := make([]*File, files)
	models := make([]contentModel, files)
	nextID := uint64(1)
	for i := range fs {
		fs[i] = newBudgetFile(t, s, nextID)
		nextID++
	}
	r := rand.New(rand.NewPCG(3, 4))
	var nospc, released int
	for k := range ops {
		i := r.IntN(files)
		f, m := fs[i], &models[i]
		off := r.Int64N(span)
		length := 1 + r.Int64N(64<<10)
		var (
			what string
			err  error
		)
		switch c := r.IntN(20); {
		case c < 10:
			p := pattern(byte(1+k%255), int(length))
			what = fmt.Sprintf("WriteAt(%d bytes, %d)", length, off)
			var n int
			n, err = f.WriteAt(p, off)
			if err == nil && n != len(p) {
				t.Fatalf("op %d, file %d: %s = %d, nil; want %d", k, i, what, n, len(p))
			}
			if err != nil && n != 0 {
				t.Errorf("op %d, file %d: %s = %d, %v; want 0 bytes written on error", k, i, what, n, err)
			}
			if err == nil {
				m.write(p, off)
			}
		case c < 13:
			what = fmt.Sprintf("Truncate(%d)", off)
			if err = f.Truncate(off); err == nil {
				m.truncate(off)
			}
		case c < 15:
			what = fmt.Sprintf("Allocate(%d, %d, 0)", off, length)
			if err = f.Allocate(off, length, 0); err == nil && off+length > int64(len(m.data)) {
				m.truncate(off + length)
			}
		case c < 16:
			what = fmt.Sprintf("Allocate(%d, %d, FallocKeepSize)", off, length)
			err = f.Allocate(off, length, FallocKeepSize)
		case c < 18:
			what = fmt.Sprintf("Allocate(%d, %d, punch hole)", off, length)
			if err = f.Allocate(off, length, FallocPunchHole|FallocKeepSize); err == nil {
				m.punch(off, off+length)
			}
		case c < 19:
			what = "Spill()"
			err = f.Spill()
		default:
			what = "Release() and a new file"
			if err = f.Release(); err == nil {
				released++
				fs[i] = newBudgetFile(t, s, nextID)
				nextID++
				models[i] = contentModel{}
			}
		}
		switch {
		case errors.Is(err, unix.ENOSPC):
			nospc++ // the model is unchanged: so must the file be
		case err != nil:
			t.Fatalf("op %d, file %d: %s: %v, want success or ENOSPC", k, i, what, err)
		}
		wantCountersMatchFiles(t, s, fs)
		wantContent(t, fs[i], models[i].data)
		if t.Failed() {
			t.Fatalf("after op %d, file %d: %s (error %v); Stats %+v", k, i, what, err, s.Stats())
		}
	}
	st := s.Stats()
	t.Logf("%d ops: %d ENOSPC, %d releases, %d rollovers", ops, nospc, released, st.Rollovers)
	if nospc == 0 || st.Rollovers == 0 {
		t.Errorf("%d ENOSPC and %d rollovers: want the test to reach the capacity and the budget", nospc, st.Rollovers)
	}
	if st.Rollovers != log.total.Load() {
		t.Errorf("Stats().Rollovers = %d, want %d, the calls of OnRollover", st.Rollovers, log.total.Load())
	}
}

// TestSizeLimit checks the capacity: RAM pages plus backing files' disk use
// stay within SizeLimit; past it writes and fallocate fail with ENOSPC and
// change nothing, and freeing space (truncate, punch, release) lets later
// writes succeed.
func TestSizeLimit(t *testing.T) {
	const limit = 256 * PageSize // 1 MiB

	write := func(f *File, p []byte, off int64) func() error {
		return func() error {
			n, err := f.WriteAt(p, off)
			if err != nil && n != 0 {
				return fmt.Errorf("short write of %d bytes then %w", n, err)
			}
			return err
		}
	}

	t.Run("files in RAM", func(t *testing.T) {
		s := openBudgetStore(t, Config{SizeLimit: limit})
		st := &capacitySteps{t: t, s: s, limit: limit}
		add := st.add
		a, am := add()
		b, bm := add()
		c, cm := add()
		aData, bData, cData := randomBytes(1, 192*PageSize), randomBytes(2, 64*PageSize), randomBytes(3, 128*PageSize)
		st.step("a: write 192 pages", nil, write(a, aData, 0), func() { am.write(aData, 0) })
		st.step("b: write 16 pages", nil, write(b, bData[:16*PageSize], 0), func() { bm.write(bData[:16*PageSize], 0) })
		// 208 pages used: 48 left.
		for _, tc := range []struct {
			what string
			op   func() error
		}{
			{"b: write 49 pages at its end", write(b, bData[:49*PageSize], 16*PageSize)},
			{"b: write 49 pages far past its end", write(b, bData[:49*PageSize], 10<<20)},
			{"b: unaligned write over its last page and 49 more", write(b, bData[:48*PageSize+2], 16*PageSize-1)},
			{"c: write 49 pages into an empty file", write(c, bData[:49*PageSize], 0)},
			{"a: fallocate 49 pages at its end", func() error { return a.Allocate(192*PageSize, 49*PageSize, 0) }},
			{"a: fallocate keep size 49 pages past its end", func() error { return a.Allocate(1<<20, 49*PageSize, FallocKeepSize) }},
			{"c: fallocate 100 pages", func() error { return c.Allocate(0, 100*PageSize, 0) }},
		} {
			st.step(tc.what, unix.ENOSPC, tc.op, nil)
		}
		st.step("b: write the last 48 pages", nil, write(b, bData[16*PageSize:], 16*PageSize),
			func() { bm.write(bData[16*PageSize:], 16*PageSize) })
		st.step("c: write 1 byte when full", unix.ENOSPC, write(c, []byte{1}, 0), nil)
		st.step("c: grow by truncate past the capacity when full (sparse, as tmpfs)", nil, func() error { return c.Truncate(4 << 20) },
			func() { cm.truncate(4 << 20) })
		st.step("c: truncate back to 0", nil, func() error { return c.Truncate(0) }, func() { cm.truncate(0) })
		st.step("a: truncate to 64 pages, freeing 128", nil, func() error { return a.Truncate(64 * PageSize) },
			func() { am.truncate(64 * PageSize) })
		st.step("c: write 128 pages", nil, write(c, cData, 0), func() { cm.write(cData, 0) })
		st.step("c: write 1 byte past its end when full", unix.ENOSPC, write(c, []byte{1}, 128*PageSize), nil)
		st.step("a: punch 32 pages", nil, func() error { return a.Allocate(0, 32*PageSize, FallocPunchHole|FallocKeepSize) },
			func() { am.punch(0, 32*PageSize) })
		st.step("b: write 32 pages at its end", nil, write(b, cData[:32*PageSize], 64*PageSize),
			func() { bm.write(cData[:32*PageSize], 64*PageSize) })
		st.step("b: write 1 more page when full", unix.ENOSPC, write(b, []byte{1}, 96*PageSize), nil)
		st.step("release c", nil, c.Release, func() { st.remove(c) })
		st.step("b: write 128 pages at its end", nil, write(b, cData, 96*PageSize), func() { bm.write(cData, 96*PageSize) })
		wantStats(t, s, Stats{RAMBytes: limit})
	})

	t.Run("files on disk", func(t *testing.T) {
		s := openBudgetStore(t, Config{MaxSize: 32 * PageSize, SizeLimit: limit})
		st := &capacitySteps{t: t, s: s, limit: limit}
		add := st.add
		a, am := add()
		b, bm := add()
		c, cm := add()
		aData, bData := randomBytes(11, 256*PageSize), randomBytes(12, 64*PageSize)
		st.step("a: write 128 pages (rolls over)", nil, write(a, aData[:128*PageSize], 0),
			func() { am.write(aData[:128*PageSize], 0) })
		wantResidency(t, a, OnDisk)
		st.step("b: write 16 pages (in RAM)", nil, write(b, bData[:16*PageSize], 0), func() { bm.write(bData[:16*PageSize], 0) })
		// About 144 pages used: at most 112 left.
		st.step("a: write 128 pages at its end", unix.ENOSPC, write(a, aData[128*PageSize:256*PageSize], 128*PageSize), nil)
		st.step("a: fallocate 128 pages at its end", unix.ENOSPC, func() error { return a.Allocate(128*PageSize, 128*PageSize, 0) }, nil)
		st.step("a: fallocate keep size 128 pages past its end", unix.ENOSPC,
			func() error { return a.Allocate(1<<30, 128*PageSize, FallocKeepSize) }, nil)
		room := (limit - s.Stats().RAMBytes - s.Stats().DiskBytes) / PageSize
		t.Logf("%d pages left", room)
		st.step("a: write what is left at its end", nil, write(a, aData[128*PageSize:(128+room)*PageSize], 128*PageSize),
			func() { am.write(aData[128*PageSize:(128+room)*PageSize], 128*PageSize) })
		st.step("b: write 1 byte on a new page when full", unix.ENOSPC, write(b, []byte{1}, 16*PageSize), nil)
		st.step("a: write 1 page past its end when full", unix.ENOSPC, write(a, bData[:PageSize], (128+room)*PageSize), nil)
		st.step("a: truncate to 64 pages", nil, func() error { return a.Truncate(64 * PageSize) },
			func() { am.truncate(64 * PageSize) })
		st.step("b: write 32 pages at its end (rolls over)", nil, write(b, bData[16*PageSize:48*PageSize], 16*PageSize),
			func() { bm.write(bData[16*PageSize:48*PageSize], 16*PageSize) })
		wantResidency(t, b, OnDisk)
		st.step("c: write 160 pages (rolls over)", unix.ENOSPC, write(c, aData[:160*PageSize], 0), nil)
		st.step("release a", nil, a.Release, func() { st.remove(a) })
		st.step("c: write 160 pages (rolls over)", nil, write(c, aData[:160*PageSize], 0), func() { cm.write(aData[:160*PageSize], 0) })
		wantResidency(t, c, OnDisk)
	})
}

// capacitySteps runs operations on files under a capacity, one step at a
// time, each followed by checks.
type capacitySteps struct {
	t      *testing.T
	s      *Store
	limit  int64
	files  []*File
	models []*contentModel
}

func (st *capacitySteps) add() (*File, *contentModel) {
	f, m := newBudgetFile(st.t, st.s, uint64(len(st.files)+1)), &contentModel{}
	st.files, st.models = append(st.files, f), append(st.models, m)
	return f, m
}

// remove forgets f (released).
func (st *capacitySteps) remove(f *File) {
	for i := range st.files {
		if st.files[i] == f {
			st.files = append(st.files[:i], st.files[i+1:]...)
			st.models = append(st.models[:i], st.models[i+1:]...)
			return
		}
	}
}

// step runs op, which must fail with wantErr (nil: succeed, and then apply
// updates the models). A failed op must leave every file and the Store's
// RAM as before. Then every file must hold what its model says, the
// counters match the files, and RAM plus disk be within the capacity.
func (st *capacitySteps) step(what string, wantErr error, op func() error, apply func()) {
	t := st.t
	t.Helper()
	var before []Stat
	for _, f := range st.files {
		before = append(before, mustStat(t, f))
	}
	statsBefore := st.s.Stats()
	err := op()
	if !sameErr(err, wantErr) {
		t.Fatalf("%s: error %v, want %v (Stats before %+v, after %+v)", what, err, wantErr, statsBefore, st.s.Stats())
	}
	if err == nil {
		if apply != nil {
			apply()
		}
	} else {
		for i, f := range st.files {
			if got := mustStat(t, f); got != before[i] {
				t.Errorf("%s failed but changed file %d: Stat() = %+v, want %+v", what, f.id, got, before[i])
			}
		}
		if got := st.s.Stats(); got.RAMBytes != statsBefore.RAMBytes || got.DiskFiles != statsBefore.DiskFiles {
			t.Errorf("%s failed but changed the Store: Stats() = %+v, want %+v", what, got, statsBefore)
		}
	}
	for i, f := range st.files {
		wantContent(t, f, st.models[i].data)
	}
	wantCountersMatchFiles(t, st.s, st.files)
	if got := st.s.Stats(); got.RAMBytes+got.DiskBytes > st.limit {
		t.Errorf("after %s: Stats() = %+v: RAM and disk %d, over SizeLimit %d", what, got, got.RAMBytes+got.DiskBytes, st.limit)
	}
	if t.Failed() {
		t.FailNow()
	}
}

// TestSizeLimitDuringRollover checks that a file moving from RAM to disk
// keeps counting against the capacity while it moves: with the capacity
// full, a write to another file must fail with ENOSPC at every moment of
// the rollover, and RAM plus disk stay within the capacity after it.
//
// The moment is forced: the test holds the Store's filesMu, which the
// rollover takes (to take the file off the RAM list) after it has freed the
// file's pages and before it charges the backing file's disk use.
func TestSizeLimitDuringRollover(t *testing.T) {
	const limit = 64 * PageSize
	s := openBudgetStore(t, Config{SizeLimit: limit})
	moving, other := newBudgetFile(t, s, 1), newBudgetFile(t, s, 2)
	mustWrite(t, moving, pattern(1, 32*PageSize), 0)
	mustWrite(t, other, pattern(2, 32*PageSize), 0) // full

	s.filesMu.Lock()
	locked := true
	defer func() {
		if locked {
			s.filesMu.Unlock()
		}
	}()
	spilled := make(chan error, 1)
	go func() { spilled <- moving.Spill() }()
	waitUntil(t, "the rollover to free the moving file's pages", func() bool {
		return s.Stats().RAMBytes == 32*PageSize
	})
	n, err := other.WriteAt(pattern(3, PageSize), 32*PageSize)
	s.filesMu.Unlock()
	locked = false
	if err := <-spilled; err != nil {
		t.Fatalf("Spill: %v", err)
	}
	if !errors.Is(err, unix.ENOSPC) {
		t.Errorf("WriteAt of a new page during another file's rollover with the capacity full = %d, %v; want ENOSPC", n, err)
	}
	if st := s.Stats(); st.RAMBytes+st.DiskBytes > limit {
		t.Errorf("after the rollover: Stats() = %+v: RAM and disk %d, over SizeLimit %d", st, st.RAMBytes+st.DiskBytes, limit)
	}
	wantCountersMatchFiles(t, s, []*File{moving, other})
}

// TestSizeLimitOverwriteWhenFull checks that with the capacity used up,
// what needs no more space still works, as on a full tmpfs: overwriting
// data inside a file, fallocate over space already allocated, punching
// holes; and that growing still fails.
func TestSizeLimitOverwriteWhenFull(t *testing.T) {
	const pages = 64
	for _, onDisk := range []bool{false, true} {
		t.Run(residencyOf(onDisk).String(), func(t *testing.T) {
			cfg := Config{SizeLimit: pages * PageSize}
			if onDisk {
				cfg.MaxSize = 16 * PageSize
			}
			s := openBudgetStore(t, cfg)
			f := newBudgetFile(t, s, 1)
			m := &contentModel{}
			data := randomBytes(21, pages*PageSize)
			mustWrite(t, f, data, 0)
			m.write(data, 0)
			wantResidency(t, f, residencyOf(onDisk))
			if used := s.Stats().RAMBytes + s.Stats().DiskBytes; used < pages*PageSize {
				t.Fatalf("Stats() = %+v: %d bytes used, want the capacity %d full", s.Stats(), used, pages*PageSize)
			}
			for _, tc := range []struct {
				what    string
				op      func() error
				apply   func()
				wantErr error
			}{
				{what: "overwrite 16 pages", op: func() error {
					_, err := f.WriteAt(pattern(1, 16*PageSize), 8*PageSize)
					return err
				}, apply: func() { m.write(pattern(1, 16*PageSize), 8*PageSize) }},
				{what: "overwrite 100 bytes across a page boundary", op: func() error {
					_, err := f.WriteAt(pattern(2, 100), 3*PageSize-50)
					return err
				}, apply: func() { m.write(pattern(2, 100), 3*PageSize-50) }},
				{what: "overwrite the last byte", op: func() error {
					_, err := f.WriteAt([]byte{7}, pages*PageSize-1)
					return err
				}, apply: func() { m.write([]byte{7}, pages*PageSize-1) }},
				{what: "fallocate over the whole file", op: func() error { return f.Allocate(0, pages*PageSize, 0) }},
				{what: "fallocate keep size over 4 pages", op: func() error { return f.Allocate(PageSize, 4*PageSize, FallocKeepSize) }},
				{what: "write 1 byte past the end", op: func() error {
					_, err := f.WriteAt([]byte{1}, pages*PageSize)
					return err
				}, wantErr: unix.ENOSPC},
				{what: "punch 8 pages", op: func() error { return f.Allocate(40*PageSize, 8*PageSize, FallocPunchHole|FallocKeepSize) },
					apply: func() { m.punch(40*PageSize, 48*PageSize) }},
				{what: "write 8 pages into the hole punched", op: func() error {
					_, err := f.WriteAt(pattern(3, 8*PageSize), 40*PageSize)
					return err
				}, apply: func() { m.write(pattern(3, 8*PageSize), 40*PageSize) }},
			} {
				err := tc.op()
				if !sameErr(err, tc.wantErr) {
					t.Errorf("%s with the capacity full: error %v, want %v (Stats %+v)", tc.what, err, tc.wantErr, s.Stats())
				} else if err == nil && tc.apply != nil {
					tc.apply()
				}
				wantContent(t, f, m.data)
				wantCountersMatchFiles(t, s, []*File{f})
			}
		})
	}
}

// Filling a hole inside a file on disk is charged before the write, as a
// write past the end is: it fails with ENOSPC when the capacity has no
// room for it, and the file and the counters are as they were. Punching
// the hole again gives the room back.
func TestSizeLimitHoleFilling(t *testing.T) {
	const limit = 256 * PageSize
	s := openBudgetStore(t, Config{MaxSize: 16 * PageSize, SizeLimit: limit})
	f, other := newBudgetFile(t, s, 1), newBudgetFile(t, s, 2)
	var m contentModel
	if err := f.Truncate(2 << 20); err != nil { // rolls over, sparse
		t.Fatal(err)
	}
	m.truncate(2 << 20)
	wantResidency(t, f, OnDisk)
	first, second := randomBytes(31, 192*PageSize), randomBytes(32, 128*PageSize)
	mustWrite(t, f, first, 0)
	m.write(first, 0)
	wantCountersMatchFiles(t, s, []*File{f, other})
	// 192 pages used, 128 more into the hole would pass the 256.
	if n, err := f.WriteAt(second, 1<<20); n != 0 || !errors.Is(err, unix.ENOSPC) {
		t.Errorf("WriteAt(%d bytes) into a hole past the capacity = %d, %v; want 0, ENOSPC", len(second), n, err)
	}
	wantContent(t, f, m.data)
	wantCountersMatchFiles(t, s, []*File{f, other})
	// What fits does.
	fits := second[:32*PageSize]
	mustWrite(t, f, fits, 1<<20)
	m.write(fits, 1<<20)
	wantCountersMatchFiles(t, s, []*File{f, other})
	if used := s.Stats().DiskBytes; used > limit {
		t.Errorf("after filling part of a hole: Stats().DiskBytes = %d, want within the capacity %d", used, limit)
	}
	// Overwriting data needs no room, even with the capacity full.
	mustWrite(t, f, second[:PageSize], 0)
	m.write(second[:PageSize], 0)
	if err := f.Allocate(1<<20, 32*PageSize, FallocPunchHole|FallocKeepSize); err != nil {
		t.Fatalf("punching the filled part again: %v", err)
	}
	m.punch(1<<20, 1<<20+32*PageSize)
	if _, err := other.WriteAt(pattern(3, 32*PageSize), 0); err != nil {
		t.Errorf("WriteAt of another file into the room given back: %v", err)
	} else {
		m2 := pattern(3, 32*PageSize)
		wantContent(t, other, m2)
	}
	wantContent(t, f, m.data)
	wantCountersMatchFiles(t, s, []*File{f, other})
}

// Benchmarks of writes into RAM pages, without a memory budget and with
// one that keeps rolling files over (files found on disk are released and
// replaced by new ones, so that there is always something to roll over).
// Run with go test -bench WriteRAM ./spool; add -cpuprofile to profile.

// benchFiles is a ring of files for the benchmarks.
type benchFiles struct {
	s     *Store
	files []*File
	next  uint64
}

func newBenchFiles(b *testing.B, cfg Config, n int) *benchFiles {
	b.Helper()
	cfg.SpillParent = b.TempDir()
	s, err := Open(cfg)
	if err != nil {
		b.Fatal(err)
	}
	bf := &benchFiles{s: s}
	for range n {
		bf.files = append(bf.files, bf.newFile())
	}
	b.Cleanup(func() {
		for _, f := range bf.files {
			f.Release()
		}
		s.Close()
	})
	return bf
}

func (bf *benchFiles) newFile() *File {
	bf.next++
	return bf.s.NewFile(bf.next)
}

// file returns file i, replaced by a new one if it has rolled over.
func (bf *benchFiles) file(b *testing.B, i int) *File {
	f := bf.files[i]
	if f.Residency() == OnDisk {
		if err := f.Release(); err != nil {
			b.Fatal(err)
		}
		f = bf.newFile()
		bf.files[i] = f
	}
	return f
}

// benchWriteConfigs are the stores the write benchmarks run with: 8 files
// of up to 8 MiB each hold up to 64 MiB, eight times the budget when there
// is one.
var benchWriteConfigs = []struct {
	name     string
	memLimit int64
}{
	{"no MemLimit", 0},
	{"MemLimit 8 MiB evicting", 8 << 20},
}

const (
	benchFilesN    = 8
	benchFileBytes = 8 << 20
)

// BenchmarkWriteRAMSequential1MiB writes 1 MiB at a time, in turn to each
// file, sequentially within each (wrapping at 8 MiB).
func BenchmarkWriteRAMSequential1MiB(b *testing.B) {
	const size = 1 << 20
	p := randomBytes(1, size)
	for _, cfg := range benchWriteConfigs {
		b.Run(cfg.name, func(b *testing.B) {
			bf := newBenchFiles(b, Config{MemLimit: cfg.memLimit}, benchFilesN)
			b.SetBytes(size)
			i := 0
			for ; b.Loop(); i++ {
				f := bf.file(b, i%benchFilesN)
				off := int64(i/benchFilesN) * size % benchFileBytes
				if _, err := f.WriteAt(p, off); err != nil {
					b.Fatal(err)
				}
			}
			b.ReportMetric(float64(bf.s.Stats().Rollovers)/float64(i), "rollovers/op")
		})
	}
}

// BenchmarkWriteRAMRandom4KiB writes 4 KiB pages at random page offsets of
// random files.
func BenchmarkWriteRAMRandom4KiB(b *testing.B) {
	const size = PageSize
	p := randomBytes(2, size)
	for _, cfg := range benchWriteConfigs {
		b.Run(cfg.name, func(b *testing.B) {
			bf := newBenchFiles(b, Config{MemLimit: cfg.memLimit}, benchFilesN)
			r := rand.New(rand.NewPCG(1, 2))
			b.SetBytes(size)
			n := 0
			for ; b.Loop(); n++ {
				f := bf.file(b, r.IntN(benchFilesN))
				off := r.Int64N(benchFileBytes/size) * size
				if _, err := f.WriteAt(p, off); err != nil {
					b.Fatal(err)
				}
			}
			b.ReportMetric(float64(bf.s.Stats().Rollovers)/float64(n), "rollovers/op")
		})
	}
}

// TestCapacityRoom checks the retry a caller makes after ENOSPC to write
// what fits, as tmpfs does: the prefix it names is written in full and
// fills the capacity exactly when the write's pages are all new.
func TestCapacityRoom(t *testing.T) {
	const limit = 16 * PageSize
	s := openBudgetStore(t, Config{SizeLimit: limit})
	f := newBudgetFile(t, s, 1)
	data := randomBytes(41, 10*PageSize+100)
	mustWrite(t, f, data, 0)
	more := randomBytes(42, 10*PageSize)
	off := int64(len(data))
	if _, err := f.WriteAt(more, off); !errors.Is(err, unix.ENOSPC) {
		t.Fatalf("WriteAt(%d bytes) past the capacity: %v, want ENOSPC", len(more), err)
	}
	// The write's first page is present (the file ends inside it), but
	// the room counts it as new: 5 pages from its start fit, one short
	// of what could. The next retry, from there, takes that page.
	for _, want := range []int{
		(10+5)*PageSize - int(off),
		PageSize,
	} {
		fit := s.CapacityRoom(off, len(more))
		if fit != want {
			t.Fatalf("CapacityRoom(%d, %d) = %d, want %d", off, len(more), fit, want)
		}
		mustWrite(t, f, more[:fit], off)
		data = append(data, more[:fit]...)
		off += int64(fit)
		more = more[fit:]
	}
	wantContent(t, f, data)
	if got := s.Stats().RAMBytes; got != limit {
		t.Errorf("after the short writes: RAMBytes = %d, want the capacity %d", got, limit)
	}
	if got := s.CapacityRoom(off, len(more)); got != 0 {
		t.Errorf("CapacityRoom with the capacity full = %d, want 0", got)
	}
	unlimited := openBudgetStore(t, Config{})
	if got := unlimited.CapacityRoom(0, 1<<20); got != 0 {
		t.Errorf("CapacityRoom without a capacity = %d, want 0", got)
	}
}

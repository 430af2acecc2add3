package spool

import (
	"bytes"
	"errors"
	"math/rand/v2"
	"runtime"
	"slices"
	"sync"
	"sync/atomic"
	"testing"

	"golang.org/x/sys/unix"
)

// TestConcurrentFile has writers, readers, truncaters and a spiller work
// on one File at once. It is meant to run with -race.
//
// Each writer owns a region of the file (regions are not page aligned, so
// neighbours share pages) and writes it over and over, one generation at a
// time, every generation in a byte of its own, in up to three WriteAt
// calls in random order. Truncaters work only past the regions: they move
// the end of file around there, fallocate and punch holes. So the final
// content is well defined: every region holds its writer's last
// generation, and zeros follow. Meanwhile readers check that every byte
// they read of a region is of a generation between the last one finished
// before the read began and the last one begun when it ended (never
// garbage, never older than a finished write), that past the regions they
// read only zeros, and that seeking gives no nonsense. The spiller calls
// Spill once the writers have written a random number of generations, then
// reads.
func TestConcurrentFile(t *testing.T) {
	const (
		writers = 8
		gens    = 30 // writers*gens <= 255: one byte value each
		region  = 3*PageSize + 123
		base    = writers * region // the regions end here
		tail    = 16 * PageSize    // truncaters keep the size in [base, base+tail]
		readers = 3
	)
	tests := []struct {
		name        string
		maxSize     int64
		preTruncate bool // size the file to base before starting
		truncaters  int
	}{
		{"explicit Spill", 0, true, 2},
		{"rollover by Truncate", base + tail/2, true, 2},
		{"rollover by WriteAt or Spill", base / 2, false, 0},
	}
	// tag is the byte of generation g of writer w; generation 0 is the
	// zeros before the first write.
	tag := func(w, g int) byte {
		if g == 0 {
			return 0
		}
		return byte(1 + w*gens + g - 1)
	}
	genOf := func(w int, b byte) int { // -1 if b is no generation of w
		if b == 0 {
			return 0
		}
		if x := int(b) - 1; x/gens == w {
			return x%gens + 1
		}
		return -1
	}

	for i, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			s := newTestStore(t, tc.maxSize)
			f := newTestFile(t, s)
			if tc.preTruncate {
				if err := f.Truncate(base); err != nil {
					t.Fatalf("Truncate(%d): %v", base, err)
				}
			}
			var (
				started, finished [writers]atomic.Int64
				writersDone       atomic.Bool
				failed            atomic.Bool
				// Spill is called once the writers have written
				// spillAt generations between them.
				written    atomic.Int64
				spillAt    = 1 + rand.New(rand.NewPCG(uint64(i), 200)).Int64N(writers*gens-writers)
				spillNow   = make(chan struct{})
				startSpill = sync.OnceFunc(func() { close(spillNow) })
			)
			fail := func(format string, args ...any) {
				failed.Store(true)
				t.Errorf(format, args...)
			}

			// readRegion reads writer w's region, or the tail past all
			// regions when w == writers, and checks what it got.
			readRegion := func(w int, buf []byte) {
				if w == writers {
					buf = buf[:tail]
					n, err := f.ReadAt(buf, base)
					if err != nil || !allZero(buf[:n]) {
						fail("ReadAt(%d bytes, %d) past the regions = %d, %v, with nonzero bytes %v", tail, base, n, err, !allZero(buf[:n]))
					}
					return
				}
				buf = buf[:region]
				lo := int(finished[w].Load())
				fillSentinel(buf)
				n, err := f.ReadAt(buf, int64(w)*region)
				hi := int(started[w].Load())
				if err != nil || (lo > 0 && n != region) {
					fail("ReadAt of region %d (generations %d to %d) = %d, %v; want %d, nil", w, lo, hi, n, err, region)
					return
				}
				data := buf[:n]
				for off := 0; off < len(data); { // one run of equal bytes at a time
					b := data[off]
					run := len(data[off:]) - len(bytes.TrimLeft(data[off:], string([]byte{b})))
					if g := genOf(w, b); g < lo || g > hi {
						fail("region %d: %d bytes at offset %d are %#02x (generation %d), want a generation from %d to %d",
							w, run, int64(w)*region+int64(off), b, g, lo, hi)
						return
					}
					off += run
				}
			}
			// reader reads random regions until the writers are done,
			// at least minReads times.
			reader := func(r *rand.Rand, minReads int) {
				buf := make([]byte, max(region, tail))
				for reads := 0; (reads < minReads || !writersDone.Load()) && !failed.Load(); reads++ {
					readRegion(r.IntN(writers+1), buf)
					// Seek somewhere: the answer is racy, but never
					// before the offset, nor an error but ENXIO.
					off := r.Int64N(base + tail)
					seek, name := f.SeekData, "SeekData"
					if r.IntN(2) == 0 {
						seek, name = f.SeekHole, "SeekHole"
					}
					if pos, err := seek(off); (err != nil && !errors.Is(err, unix.ENXIO)) || (err == nil && pos < off) {
						fail("%s(%d) = %d, %v; want an offset from %d, or ENXIO", name, off, pos, err, off)
					}
				}
			}

			var writing, others sync.WaitGroup
			for w := range writers {
				writing.Go(func() {
					r := rand.New(rand.NewPCG(uint64(i), uint64(w)))
					start := int64(w) * region
					for g := 1; g <= gens && !failed.Load(); g++ {
						started[w].Store(int64(g))
						cuts := []int{0, region}
						for range r.IntN(3) {
							cuts = append(cuts, 1+r.IntN(region-1))
						}
						slices.Sort(cuts)
						order := r.Perm(len(cuts) - 1)
						for _, k := range order {
							from, to := cuts[k], cuts[k+1]
							if from == to {
								continue
							}
							p := bytes.Repeat([]byte{tag(w, g)}, to-from)
							if n, err := f.WriteAt(p, start+int64(from)); n != len(p) || err != nil {
								fail("writer %d: WriteAt(%d bytes, %d) = %d, %v; want %d, nil", w, len(p), start+int64(from), n, err, len(p))
								return
							}
						}
						finished[w].Store(int64(g))
						if written.Add(1) == spillAt {
							startSpill()
						}
					}
				})
			}
			for k := range readers {
				others.Go(func() { reader(rand.New(rand.NewPCG(uint64(i), 100+uint64(k))), 20) })
			}
			others.Go(func() {
				<-spillNow
				progress := written.Load()
				if err := f.Spill(); err != nil {
					fail("Spill: %v", err)
				}
				t.Logf("Spill called with %d of %d generations written", progress, writers*gens)
				reader(rand.New(rand.NewPCG(uint64(i), 200)), 20)
			})
			for k := range tc.truncaters {
				others.Go(func() {
					r := rand.New(rand.NewPCG(uint64(i), 300+uint64(k)))
					for !writersDone.Load() && !failed.Load() {
						// Truncate, fallocate and punch holes in the tail
						// past the regions, keeping the size in it.
						off := base + r.Int64N(tail)
						length := 1 + r.Int64N(base+tail-off)
						var err error
						switch k := r.IntN(4); k {
						case 0:
							err = f.Allocate(off, length, 0)
						case 1:
							err = f.Allocate(off, length, FallocKeepSize)
						case 2:
							err = f.Allocate(off, length, FallocPunchHole|FallocKeepSize)
						default:
							err = f.Truncate(off)
						}
						if err != nil {
							fail("in the tail at %d, %d bytes: %v", off, length, err)
							return
						}
						if st, err := f.Stat(); err != nil || st.Size < base {
							fail("Stat() = %+v, %v; want size at least %d", st, err, base)
							return
						}
						runtime.Gosched()
					}
				})
			}
			writing.Wait()
			startSpill() // if a writer failed before spillAt
			writersDone.Store(true)
			others.Wait()
			if failed.Load() {
				return
			}

			if err := f.Truncate(base); err != nil {
				t.Fatalf("Truncate(%d): %v", base, err)
			}
			want := make([]byte, base)
			for w := range writers {
				copy(want[w*region:(w+1)*region], bytes.Repeat([]byte{tag(w, gens)}, region))
			}
			wantRead(t, f, 0, want)
			if got, want := mustStat(t, f).Size, int64(base); got != want {
				t.Errorf("final size %d, want %d", got, want)
			}
			wantResidency(t, f, OnDisk)
			wantStats(t, s, Stats{DiskFiles: 1, Rollovers: 1})
		})
	}
}

// TestConcurrentRAMAccounting has one goroutine per file run random
// operations (checked against a model each), with some files rolling over
// by size or by Spill, while another goroutine watches the Store's
// counters. RAMBytes must stay a whole number of pages within bounds and
// end exactly equal to the pages the files in RAM hold.
func TestConcurrentRAMAccounting(t *testing.T) {
	const (
		files   = 8
		ops     = 120
		maxSize = 128 << 10
	)
	s := newTestStore(t, maxSize)
	hs := make([]*harness, files)
	for i := range hs {
		hs[i] = &harness{store: s, f: newTestFile(t, s), m: newModel(maxSize)}
	}
	var (
		done, failed atomic.Bool
		wg           sync.WaitGroup
		monitor      sync.WaitGroup
	)
	monitor.Go(func() {
		for !done.Load() {
			st := s.Stats()
			if st.RAMBytes < 0 || st.RAMBytes%PageSize != 0 || st.RAMBytes > files*maxSize {
				t.Errorf("Stats() = %+v, want RAMBytes a multiple of %d in [0, %d]", st, PageSize, files*maxSize)
				return
			}
			if st.DiskFiles < 0 || st.DiskFiles > files {
				t.Errorf("Stats() = %+v, want DiskFiles in [0, %d]", st, files)
				return
			}
			runtime.Gosched()
		}
	})
	for i, h := range hs {
		wg.Go(func() {
			r := rand.New(rand.NewPCG(uint64(i), 5))
			// Even files stay below the threshold; odd ones may cross it;
			// every fourth one spills at a random point.
			span := int64(maxSize)
			if i%2 == 1 {
				span = maxSize + maxSize/2
			}
			spillAt := -1
			if i%4 == 0 {
				spillAt = r.IntN(ops)
			}
			for k := range ops {
				o := randomOp(r, span)
				if k == spillAt {
					o = spillOp()
				}
				if err := h.step(o); err != nil {
					failed.Store(true)
					t.Errorf("file %d: %v: %v\noperations:\n%s", i, o, err, h.history())
					return
				}
			}
		})
	}
	wg.Wait()
	done.Store(true)
	monitor.Wait()
	if failed.Load() {
		return
	}

	check := func(when string) {
		t.Helper()
		var want Stats
		for _, h := range hs {
			st := mustStat(t, h.f)
			if st.Residency == InRAM {
				want.RAMBytes += st.Blocks * 512
			} else {
				want.DiskFiles++
			}
		}
		want.Rollovers = s.Stats().Rollovers
		if got := s.Stats(); got != want {
			t.Errorf("%s: Stats() = %+v, want %+v from the files' Stat", when, got, want)
		}
	}
	check("all files open")
	var rolled int64
	for _, h := range hs {
		if h.m.onDisk {
			rolled++
		}
	}
	if got := s.Stats().Rollovers; got != rolled {
		t.Errorf("Stats().Rollovers = %d, want %d, the files the models say rolled over", got, rolled)
	}
	if rolled == 0 || rolled == files {
		t.Errorf("%d of %d files rolled over: want some in RAM and some on disk", rolled, files)
	}
	for i, h := range hs[:files/2] {
		if err := h.f.Release(); err != nil {
			t.Errorf("file %d: Release: %v", i, err)
		}
	}
	check("half the files released")
}

package spool

import (
	"maps"
	"math/rand/v2"
	"slices"
	"testing"
)

// checkPageTable compares t with the set of page indexes want (and the
// unwritten ones among them), and checks the table's own bookkeeping:
// counts, masks, sorted chunk keys, no empty chunk.
func checkPageTable(tb testing.TB, t *pageTable, want map[int64]*page, unwritten map[int64]bool) {
	tb.Helper()
	if t.count != int64(len(want)) {
		tb.Fatalf("count = %d, want %d", t.count, len(want))
	}
	keys := slices.Sorted(maps.Keys(t.chunks))
	if !slices.Equal(t.keys, keys) {
		tb.Fatalf("keys = %v, want the chunks' indexes in order, %v", t.keys, keys)
	}
	for ci, c := range t.chunks {
		n := 0
		for i, p := range c.pages {
			idx := ci<<chunkShift + int64(i)
			if (p != nil) != (c.present&(1<<i) != 0) {
				tb.Fatalf("page %d: present bit %v but page %p", idx, c.present&(1<<i) != 0, p)
			}
			if c.unwritten&(1<<i) != 0 != unwritten[idx] {
				tb.Fatalf("page %d: unwritten bit %v, want %v", idx, c.unwritten&(1<<i) != 0, unwritten[idx])
			}
			if p == nil {
				continue
			}
			n++
			if want[idx] != p {
				tb.Fatalf("page %d present, want %p", idx, want[idx])
			}
		}
		if n == 0 {
			tb.Fatalf("chunk %d holds no pages; want it removed", ci)
		}
	}
	for idx, p := range want {
		if got := t.get(idx); got != p {
			tb.Fatalf("get(%d) = %p, want %p", idx, got, p)
		}
	}
}

// TestPageTable runs random sets, removals and searches on a pageTable and
// on a map, in a range of a few chunks plus some indexes far away.
func TestPageTable(t *testing.T) {
	r := rand.New(rand.NewPCG(3, 4))
	var pt pageTable
	want := make(map[int64]*page)
	unwritten := make(map[int64]bool)
	index := func() int64 {
		if r.IntN(10) == 0 {
			return maxPageIndex - 1 - r.Int64N(3*chunkPages)
		}
		return r.Int64N(5 * chunkPages)
	}
	// wantFirst finds the first page at or after from that holds written
	// data (data true) or is a hole: absent, or allocated but unwritten.
	wantFirst := func(from int64, data bool) int64 {
		present := data
		for idx := from; idx < maxPageIndex; idx++ {
			if (want[idx] != nil && !unwritten[idx]) == data {
				return idx
			}
			if present && idx > 5*chunkPages && idx < maxPageIndex-4*chunkPages {
				idx = maxPageIndex - 4*chunkPages // skip the empty middle
			}
		}
		if present {
			return -1
		}
		return maxPageIndex
	}
	for i := range 3000 {
		switch k := r.IntN(10); {
		case k < 5: // set, or fill a whole chunk
			if k == 0 {
				base := r.Int64N(5) << chunkShift
				for idx := base; idx < base+chunkPages; idx++ {
					if pt.get(idx) == nil {
						p := new(page)
						pt.set(idx, p, false)
						want[idx] = p
					}
				}
				break
			}
			idx := index()
			if pt.get(idx) == nil {
				p := new(page)
				u := k == 1 // some pages come from fallocate
				pt.set(idx, p, u)
				want[idx] = p
				if u {
					unwritten[idx] = true
				}
			} else if k == 2 {
				pt.markWritten(idx)
				delete(unwritten, idx)
			}
		case k < 7:
			idx := index()
			_, had := want[idx]
			if got := pt.remove(idx); got != had {
				t.Fatalf("op %d: remove(%d) = %v, want %v", i, idx, got, had)
			}
			delete(want, idx)
			delete(unwritten, idx)
		case k < 8:
			from := index()
			to := from + r.Int64N(2*chunkPages)
			var n int64
			var wantPages []*page
			for _, idx := range slices.Sorted(maps.Keys(want)) {
				if idx >= from && idx < to {
					wantPages = append(wantPages, want[idx])
					delete(want, idx)
					delete(unwritten, idx)
					n++
				}
			}
			if got := pt.removeRange(from, to); int64(len(got)) != n || !slices.Equal(got, wantPages) {
				t.Fatalf("op %d: removeRange(%d, %d) removed %d pages, want %d, in index order", i, from, to, len(got), n)
			}
		default:
			from := index()
			if got, w := pt.firstData(from), wantFirst(from, true); got != w {
				t.Fatalf("op %d: firstData(%d) = %d, want %d", i, from, got, w)
			}
			if got, w := pt.firstHole(from), wantFirst(from, false); got != w {
				t.Fatalf("op %d: firstHole(%d) = %d, want %d", i, from, got, w)
			}
			to := from + r.Int64N(3*chunkPages)
			var got []int64
			pt.each(from, to, func(idx int64, p *page, u bool) bool {
				if u != unwritten[idx] {
					t.Fatalf("op %d: each gives page %d unwritten=%v, want %v", i, idx, u, unwritten[idx])
				}
				got = append(got, idx)
				return len(got) < 50
			})
			var w []int64
			for _, idx := range slices.Sorted(maps.Keys(want)) {
				if idx >= from && idx < to && len(w) < 50 {
					w = append(w, idx)
				}
			}
			if !slices.Equal(got, w) {
				t.Fatalf("op %d: each(%d, %d) visits %v, want %v", i, from, to, got, w)
			}
		}
		checkPageTable(t, &pt, want, unwritten)
	}
	pt.removeRange(0, maxPageIndex)
	checkPageTable(t, &pt, nil, nil)
	if len(pt.chunks) != 0 || len(pt.keys) != 0 {
		t.Errorf("with every page removed, %d chunks and keys %v remain", len(pt.chunks), pt.keys)
	}
}

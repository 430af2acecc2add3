package spool

import (
	"math/bits"
	"math/rand/v2"
	"slices"
)

// PageSize is the unit in which RAM is allocated to a file, and the
// granularity of holes, as on tmpfs.
const PageSize = 4096

type page [PageSize]byte

// chunkPages pages make one chunk: the page table's second level. 64 pages
// (256 KiB) keep the table of a small file small while a 1 GiB file needs
// only 4096 chunks, and let a chunk describe its pages in 64-bit masks.
const (
	chunkShift = 6
	chunkPages = 1 << chunkShift
)

type chunk struct {
	pages   [chunkPages]*page
	present uint64 // bit i: pages[i] != nil
	// unwritten marks pages that fallocate allocated and nothing has
	// written since: allocated space, but holes to SEEK_DATA and
	// SEEK_HOLE, as on tmpfs. A subset of present.
	unwritten uint64
}

// pageTable maps page indexes to pages. Pages are allocated on demand, so a
// sparse file costs only the pages that were written. Chunk indexes are also
// kept sorted, so hole seeking and rollover walk the file in order without
// sorting on every call.
type pageTable struct {
	chunks map[int64]*chunk
	keys   []int64 // sorted chunk indexes present in chunks
	count  int64   // pages present
}

func bit(idx int64) uint64 { return 1 << (idx & (chunkPages - 1)) }

func (t *pageTable) get(idx int64) *page {
	c := t.chunks[idx>>chunkShift]
	if c == nil {
		return nil
	}
	return c.pages[idx&(chunkPages-1)]
}

// set stores p at idx, where no page is present; unwritten says it was
// allocated by fallocate rather than written.
func (t *pageTable) set(idx int64, p *page, unwritten bool) {
	ci := idx >> chunkShift
	c := t.chunks[ci]
	if c == nil {
		if t.chunks == nil {
			t.chunks = make(map[int64]*chunk)
		}
		c = &chunk{}
		t.chunks[ci] = c
		pos, _ := slices.BinarySearch(t.keys, ci)
		t.keys = slices.Insert(t.keys, pos, ci)
	}
	c.pages[idx&(chunkPages-1)] = p
	c.present |= bit(idx)
	if unwritten {
		c.unwritten |= bit(idx)
	}
	t.count++
}

// markWritten records that the page at idx now holds written data.
func (t *pageTable) markWritten(idx int64) {
	if c := t.chunks[idx>>chunkShift]; c != nil {
		c.unwritten &^= bit(idx)
	}
}

func (t *pageTable) isUnwritten(idx int64) bool {
	c := t.chunks[idx>>chunkShift]
	return c != nil && c.unwritten&bit(idx) != 0
}

// remove drops the page at idx, if any, and reports whether there was one.
func (t *pageTable) remove(idx int64) bool {
	ci := idx >> chunkShift
	c := t.chunks[ci]
	if c == nil || c.present&bit(idx) == 0 {
		return false
	}
	c.pages[idx&(chunkPages-1)] = nil
	c.present &^= bit(idx)
	c.unwritten &^= bit(idx)
	t.count--
	if c.present == 0 {
		delete(t.chunks, ci)
		pos, _ := slices.BinarySearch(t.keys, ci)
		t.keys = slices.Delete(t.keys, pos, pos+1)
	}
	return true
}

// removeRange drops every page with index in [from, to) and returns them.
func (t *pageTable) removeRange(from, to int64) []*page {
	var doomed []int64
	var pages []*page
	t.each(from, to, func(idx int64, p *page, _ bool) bool {
		doomed = append(doomed, idx)
		pages = append(pages, p)
		return true
	})
	for _, idx := range doomed {
		t.remove(idx)
	}
	return pages
}

// each calls fn for every present page with index in [from, to), in order,
// until fn returns false. fn must not add or remove pages.
func (t *pageTable) each(from, to int64, fn func(idx int64, p *page, unwritten bool) bool) {
	if from >= to {
		return
	}
	start, _ := slices.BinarySearch(t.keys, from>>chunkShift)
	for _, ci := range t.keys[start:] {
		base := ci << chunkShift
		if base >= to {
			return
		}
		c := t.chunks[ci]
		mask := c.present
		if from > base {
			mask &^= bit(from) - 1 // pages below from
		}
		for mask != 0 {
			i := int64(bits.TrailingZeros64(mask))
			mask &= mask - 1
			idx := base + i
			if idx >= to {
				return
			}
			if !fn(idx, c.pages[i], c.unwritten&(1<<i) != 0) {
				return
			}
		}
	}
}

// missing counts the page indexes in [from, to) that have no page.
func (t *pageTable) missing(from, to int64) int64 {
	n := to - from
	t.each(from, to, func(int64, *page, bool) bool {
		n--
		return true
	})
	return n
}

// firstData returns the smallest index >= from holding written data, or -1.
func (t *pageTable) firstData(from int64) int64 {
	start, _ := slices.BinarySearch(t.keys, from>>chunkShift)
	for _, ci := range t.keys[start:] {
		base := ci << chunkShift
		c := t.chunks[ci]
		mask := c.present &^ c.unwritten
		if from > base {
			mask &^= bit(from) - 1
		}
		if mask != 0 {
			return base + int64(bits.TrailingZeros64(mask))
		}
	}
	return -1
}

// firstHole returns the smallest index >= from without written data.
func (t *pageTable) firstHole(from int64) int64 {
	idx := from
	for idx < maxPageIndex {
		base := idx &^ (chunkPages - 1)
		c := t.chunks[idx>>chunkShift]
		if c == nil {
			return idx
		}
		holes := ^(c.present &^ c.unwritten) &^ (bit(idx) - 1)
		if holes != 0 {
			return base + int64(bits.TrailingZeros64(holes))
		}
		idx = base + chunkPages
	}
	return maxPageIndex
}

// maxPageIndex bounds page indexes: offsets are below 2^63.
const maxPageIndex = int64(1) << (63 - 12)

func randomUint64() uint64 { return rand.Uint64() }

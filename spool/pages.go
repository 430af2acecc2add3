package spool

import (
	"math/rand/v2"
	"slices"
)

// PageSize is the unit in which RAM is allocated to a file, and the
// granularity of holes, as on tmpfs.
const PageSize = 4096

type page [PageSize]byte

// chunkPages pages make one chunk: the page table's second level. 64 pages
// (256 KiB) keep the table of a small file small while a 1 GiB file needs
// only 4096 chunks.
const (
	chunkShift = 6
	chunkPages = 1 << chunkShift
)

type chunk struct {
	pages [chunkPages]*page
	count int // pages present
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

func (t *pageTable) get(idx int64) *page {
	c := t.chunks[idx>>chunkShift]
	if c == nil {
		return nil
	}
	return c.pages[idx&(chunkPages-1)]
}

// set stores p at idx, where no page is present.
func (t *pageTable) set(idx int64, p *page) {
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
	c.count++
	t.count++
}

// remove drops the page at idx, if any, and reports whether there was one.
func (t *pageTable) remove(idx int64) bool {
	ci := idx >> chunkShift
	c := t.chunks[ci]
	if c == nil || c.pages[idx&(chunkPages-1)] == nil {
		return false
	}
	c.pages[idx&(chunkPages-1)] = nil
	c.count--
	t.count--
	if c.count == 0 {
		delete(t.chunks, ci)
		pos, _ := slices.BinarySearch(t.keys, ci)
		t.keys = slices.Delete(t.keys, pos, pos+1)
	}
	return true
}

// removeRange drops every page with index in [from, to) and returns how
// many it dropped.
func (t *pageTable) removeRange(from, to int64) int64 {
	var n int64
	t.each(from, to, func(idx int64, _ *page) bool {
		if t.remove(idx) {
			n++
		}
		return true
	})
	return n
}

// each calls fn for every present page with index in [from, to), in order,
// until fn returns false. fn may remove the page it is given.
func (t *pageTable) each(from, to int64, fn func(idx int64, p *page) bool) {
	if from >= to {
		return
	}
	start, _ := slices.BinarySearch(t.keys, from>>chunkShift)
	// Copy the keys to visit: fn may remove chunks and so edit t.keys.
	keys := slices.Clone(t.keys[start:])
	for _, ci := range keys {
		base := ci << chunkShift
		if base >= to {
			return
		}
		c := t.chunks[ci]
		if c == nil {
			continue
		}
		for i := range chunkPages {
			idx := base + int64(i)
			if idx < from || c.pages[i] == nil {
				continue
			}
			if idx >= to {
				return
			}
			if !fn(idx, c.pages[i]) {
				return
			}
		}
	}
}

// firstPresent returns the smallest index >= from with a page, or -1.
func (t *pageTable) firstPresent(from int64) int64 {
	found := int64(-1)
	t.each(from, maxPageIndex, func(idx int64, _ *page) bool {
		found = idx
		return false
	})
	return found
}

// firstAbsent returns the smallest index >= from without a page.
func (t *pageTable) firstAbsent(from int64) int64 {
	idx := from
	for {
		c := t.chunks[idx>>chunkShift]
		switch {
		case c == nil, c.pages[idx&(chunkPages-1)] == nil:
			return idx
		case c.count == chunkPages:
			idx = (idx>>chunkShift + 1) << chunkShift // skip a full chunk
		default:
			idx++
		}
	}
}

// maxPageIndex bounds page indexes: offsets are below 2^63.
const maxPageIndex = int64(1) << (63 - 12)

func randomUint64() uint64 { return rand.Uint64() }

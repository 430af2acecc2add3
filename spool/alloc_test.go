package spool

import (
	"bufio"
	"bytes"
	"errors"
	"fmt"
	"os"
	"strconv"
	"strings"
	"testing"
	"unsafe"

	"golang.org/x/sys/unix"
)

// Tests of the page allocator (alloc.go) and of what Store.Close does with
// its memory.

// allocN allocates n pages from a.
func allocN(t *testing.T, a *pageAllocator, n int) []*page {
	t.Helper()
	pages := make([]*page, n)
	for i := range pages {
		p, err := a.alloc()
		if err != nil {
			t.Fatalf("alloc (page %d of %d): %v", i, n, err)
		}
		pages[i] = p
	}
	return pages
}

// scribble fills every page with nonzero bytes.
func scribble(pages []*page) {
	garbage := bytes.Repeat([]byte{0xA5}, PageSize)
	for _, p := range pages {
		copy(p[:], garbage)
	}
}

// residency returns, for each 4 KiB page of mem, whether it is resident
// (mincore(2)), or ENOMEM if mem is not mapped.
func residency(mem []byte) ([]bool, error) {
	if os.Getpagesize() != PageSize {
		return nil, fmt.Errorf("kernel page size %d, not %d", os.Getpagesize(), PageSize)
	}
	vec := make([]byte, (len(mem)+PageSize-1)/PageSize)
	_, _, errno := unix.Syscall(unix.SYS_MINCORE, uintptr(unsafe.Pointer(unsafe.SliceData(mem))), uintptr(len(mem)), uintptr(unsafe.Pointer(&vec[0])))
	if errno != 0 {
		return nil, errno
	}
	resident := make([]bool, len(vec))
	for i, v := range vec {
		resident[i] = v&1 != 0
	}
	return resident, nil
}

// pageIndex is p's index in arena, or -1 if p is not in it.
func pageIndex(arena []byte, p *page) int {
	base := uintptr(unsafe.Pointer(unsafe.SliceData(arena)))
	addr := uintptr(unsafe.Pointer(p))
	if addr < base || addr >= base+uintptr(len(arena)) {
		return -1
	}
	return int((addr - base) / PageSize)
}

// processRSS returns the process's resident memory in bytes, from
// /proc/self/smaps_rollup (or /proc/self/status where there is none).
func processRSS(t *testing.T) int64 {
	t.Helper()
	for _, src := range []struct{ path, field string }{
		{"/proc/self/smaps_rollup", "Rss:"},
		{"/proc/self/status", "VmRSS:"},
	} {
		f, err := os.Open(src.path)
		if err != nil {
			continue
		}
		defer f.Close()
		sc := bufio.NewScanner(f)
		for sc.Scan() {
			fields := strings.Fields(sc.Text())
			if len(fields) == 3 && fields[0] == src.field && fields[2] == "kB" {
				kb, err := strconv.ParseInt(fields[1], 10, 64)
				if err != nil {
					t.Fatalf("%s: %q: %v", src.path, sc.Text(), err)
				}
				return kb << 10
			}
		}
	}
	t.Skip("cannot read the process's RSS from /proc")
	return 0
}

// TestPageAllocZeroesReusedPages checks that alloc hands out zeroed pages
// when it reuses freed ones, from the pool kept with their memory (zeroed
// by alloc) and from the pool returned to the kernel (zero when touched
// again), and that it reuses them rather than taking fresh memory.
func TestPageAllocZeroesReusedPages(t *testing.T) {
	tests := []struct {
		name      string
		pages     int
		wantDirty int // kept with their memory
	}{
		{"fewer than dirtyMax", 8, 8},
		{"dirtyMax", dirtyMax, dirtyMax},
		{"more than dirtyMax", dirtyMax + 64, dirtyMax},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			var a pageAllocator
			t.Cleanup(func() {
				if err := a.release(); err != nil {
					t.Errorf("release: %v", err)
				}
			})
			pages := allocN(t, &a, tc.pages)
			for i, p := range pages {
				if !allZero(p[:]) {
					t.Fatalf("new page %d is not zero", i)
				}
			}
			scribble(pages)
			freed := make(map[*page]bool)
			for _, p := range pages {
				freed[p] = true
			}
			unused := len(a.unused)
			a.free(pages)
			if len(a.dirty) != tc.wantDirty || len(a.clean) != tc.pages-tc.wantDirty {
				t.Errorf("after freeing %d pages: %d kept with their memory and %d returned, want %d and %d",
					tc.pages, len(a.dirty), len(a.clean), tc.wantDirty, tc.pages-tc.wantDirty)
			}
			for i, p := range allocN(t, &a, tc.pages) {
				if !freed[p] {
					t.Fatalf("page %d allocated again is not one of those freed", i)
				}
				delete(freed, p)
				if !allZero(p[:]) {
					t.Fatalf("page %d allocated again (reused) is not zero", i)
				}
			}
			if len(a.unused) != unused {
				t.Errorf("allocating again took %d fresh pages, want none (the freed ones reused)", (unused-len(a.unused))/PageSize)
			}
		})
	}
}

// TestPageAllocReturnsMemory frees 64 MiB of written pages and checks that
// all but dirtyMax of them go back to the kernel: by mincore, exactly the
// pages returned are no longer resident, and the process's RSS drops by at
// least half of what was returned (the Go runtime moves it too). Then
// release must unmap the arena, and alloc still work.
func TestPageAllocReturnsMemory(t *testing.T) {
	const n = arenaSize / PageSize // one whole arena
	var a pageAllocator
	t.Cleanup(func() {
		if err := a.release(); err != nil {
			t.Errorf("release: %v", err)
		}
	})
	pages := allocN(t, &a, n)
	if len(a.arenas) != 1 {
		t.Fatalf("%d pages took %d arenas, want 1", n, len(a.arenas))
	}
	arena := a.arenas[0]
	scribble(pages)
	resident, err := residency(arena)
	if err != nil {
		t.Skipf("mincore: %v", err)
	}
	if got := countTrue(resident); got != n {
		t.Skipf("%d of %d written pages resident: swapped out? cannot measure", got, n)
	}

	rssBefore := processRSS(t)
	a.free(pages)
	rssAfter := processRSS(t)

	resident, err = residency(arena)
	if err != nil {
		t.Fatalf("mincore after free: %v", err)
	}
	kept := make(map[*page]bool)
	for _, p := range a.dirty {
		kept[p] = true
	}
	if len(kept) != dirtyMax {
		t.Errorf("%d pages kept with their memory, want dirtyMax = %d", len(kept), dirtyMax)
	}
	var wrong int
	for i, p := range pages {
		idx := pageIndex(arena, p)
		if idx < 0 {
			t.Fatalf("page %d is not in the arena", i)
		}
		if resident[idx] != kept[p] {
			if wrong++; wrong <= 5 {
				t.Errorf("page %d: resident %v, want %v (kept for reuse: %v)", i, resident[idx], kept[p], kept[p])
			}
		}
	}
	if wrong > 5 {
		t.Errorf("... %d pages in all resident when they should not be, or the reverse", wrong)
	}
	returned := int64(n-dirtyMax) * PageSize
	drop := rssBefore - rssAfter
	t.Logf("RSS %d MiB before free, %d MiB after: dropped %d KiB; %d KiB returned", rssBefore>>20, rssAfter>>20, drop>>10, returned>>10)
	if drop < returned/2 {
		t.Errorf("RSS dropped by %d KiB when %d KiB were freed beyond dirtyMax, want at least half of that", drop>>10, returned>>10)
	}

	if err := a.release(); err != nil {
		t.Fatalf("release: %v", err)
	}
	if _, err := residency(arena); !errors.Is(err, unix.ENOMEM) {
		t.Errorf("after release, mincore of the arena: error %v, want ENOMEM (unmapped)", err)
	}
	if a.arenas != nil || a.unused != nil || a.dirty != nil || a.clean != nil {
		t.Errorf("after release: %d arenas, %d unused bytes, %d dirty and %d clean pages kept, want none",
			len(a.arenas), len(a.unused), len(a.dirty), len(a.clean))
	}
	p := allocN(t, &a, 1)[0]
	if !allZero(p[:]) || len(a.arenas) != 1 || pageIndex(a.arenas[0], p) != 0 {
		t.Errorf("alloc after release: zero %v, %d arenas, want a zero page at the start of one new arena", allZero(p[:]), len(a.arenas))
	}
}

func countTrue(bs []bool) int {
	n := 0
	for _, b := range bs {
		if b {
			n++
		}
	}
	return n
}

// TestCloseAndPageMemory checks what Store.Close does with the memory of
// RAM pages: it unmaps it only if no file holds pages (RAMBytes == 0).
// With pages held, it leaves them mapped, and files in RAM keep working
// after Close: reads return their data, writes take pages; the memory is
// unmapped by a later Close once they are released (only then: a Store
// closed with pages held keeps its arenas until Close is called again).
func TestCloseAndPageMemory(t *testing.T) {
	t.Run("files hold pages", func(t *testing.T) {
		s := openBudgetStore(t, Config{})
		f := newBudgetFile(t, s, 1)
		data := pattern(1, 3*PageSize+10)
		mustWrite(t, f, data, 0)
		arena := s.pages.arenas[0]
		closeStore(t, s)
		if len(s.pages.arenas) != 1 {
			t.Errorf("after Close with RAMBytes %d: %d arenas, want the 1 kept", s.Stats().RAMBytes, len(s.pages.arenas))
		}
		if _, err := residency(arena); err != nil {
			t.Errorf("after Close with pages held, mincore of the arena: %v, want it mapped", err)
		}
		wantRead(t, f, 0, data)
		mustWrite(t, f, pattern(2, PageSize), 8*PageSize)
		wantRead(t, f, 8*PageSize, pattern(2, PageSize))
		wantStats(t, s, Stats{RAMBytes: 5 * PageSize})

		if err := f.Release(); err != nil {
			t.Fatal(err)
		}
		if _, err := residency(arena); err != nil {
			t.Errorf("after the files are released, before Close again: mincore of the arena: %v, want it still mapped", err)
		}
		closeStore(t, s)
		if _, err := residency(arena); !errors.Is(err, unix.ENOMEM) {
			t.Errorf("after Close again with RAMBytes 0, mincore of the arena: error %v, want ENOMEM (unmapped)", err)
		}
	})

	t.Run("files in RAM hold no pages", func(t *testing.T) {
		s := openBudgetStore(t, Config{})
		f := newBudgetFile(t, s, 1)
		mustWrite(t, f, pattern(1, 3*PageSize), 0)
		arena := s.pages.arenas[0]
		if err := f.Truncate(0); err != nil { // frees the pages, keeps the file
			t.Fatal(err)
		}
		closeStore(t, s)
		if _, err := residency(arena); !errors.Is(err, unix.ENOMEM) {
			t.Errorf("after Close with RAMBytes 0, mincore of the arena: error %v, want ENOMEM (unmapped)", err)
		}
		// The file, still in RAM, takes pages from a new mapping.
		mustWrite(t, f, pattern(2, 2*PageSize), 0)
		wantContent(t, f, pattern(2, 2*PageSize))
		wantStats(t, s, Stats{RAMBytes: 2 * PageSize})
	})
}

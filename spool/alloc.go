package spool

import (
	"cmp"
	"fmt"
	"slices"
	"sync"
	"unsafe"

	"golang.org/x/sys/unix"
)

// pageAllocator hands out zeroed pages from large anonymous mappings, outside
// the Go heap. File data then costs the daemon what the files hold: a freed
// page goes back to the kernel (madvise MADV_DONTNEED) instead of waiting
// for the garbage collector, which would let the heap, and the RSS, grow to
// twice the live data between collections. It also spares the collector
// from pacing itself on gigabytes of data it never needs to scan.
//
// Up to dirtyMax freed pages are kept for reuse without a system call
// (they are zeroed when handed out again); the rest are returned at once.
type pageAllocator struct {
	mu     sync.Mutex
	arenas [][]byte
	unused []byte  // the tail of the newest arena, never handed out: zero
	clean  []*page // returned to the kernel: read as zero when touched again
	dirty  []*page // freed but still holding data, at most dirtyMax
}

const (
	arenaSize = 64 << 20
	// dirtyMax bounds the freed pages kept with their memory: 4 MiB is part
	// of the margin by which the daemon's RSS may exceed the pages that
	// files hold.
	dirtyMax = (4 << 20) / PageSize
	// populateChunk is how much of an arena is faulted in at once,
	// counted from the arena's start; it divides arenaSize.
	populateChunk = 1 << 20
)

// alloc returns a zeroed page.
func (a *pageAllocator) alloc() (*page, error) {
	a.mu.Lock()
	if n := len(a.dirty); n > 0 {
		p := a.dirty[n-1]
		a.dirty = a.dirty[:n-1]
		a.mu.Unlock()
		clear(p[:])
		return p, nil
	}
	defer a.mu.Unlock()
	if n := len(a.clean); n > 0 {
		p := a.clean[n-1]
		a.clean = a.clean[:n-1]
		return p, nil
	}
	if len(a.unused) == 0 {
		mem, err := unix.Mmap(-1, 0, arenaSize, unix.PROT_READ|unix.PROT_WRITE, unix.MAP_PRIVATE|unix.MAP_ANONYMOUS|unix.MAP_NORESERVE)
		if err != nil {
			return nil, fmt.Errorf("spool: map %d MiB for file data: %w", arenaSize>>20, err)
		}
		a.arenas = append(a.arenas, mem)
		a.unused = mem
	}
	if len(a.unused)%populateChunk == 0 {
		// Fault in the next chunk in one call rather than a page at a
		// time: writes of new data ran at 400 MB/s with a fault per page
		// and 650 MB/s this way. It costs at most one chunk of RSS ahead
		// of the data. A kernel before 5.14 says EINVAL, and the pages
		// fault in one by one as before; ENOMEM likewise.
		unix.Madvise(a.unused[:populateChunk], unix.MADV_POPULATE_WRITE)
	}
	p := (*page)(unsafe.Pointer(&a.unused[0]))
	a.unused = a.unused[PageSize:]
	return p, nil
}

// free takes pages back. Beyond dirtyMax kept for reuse, their memory is
// returned to the kernel.
func (a *pageAllocator) free(pages []*page) {
	a.mu.Lock()
	keep := min(len(pages), dirtyMax-len(a.dirty))
	a.dirty = append(a.dirty, pages[:keep]...)
	a.mu.Unlock()
	rest := pages[keep:]
	if len(rest) == 0 {
		return
	}
	returnToKernel(rest)
	a.mu.Lock()
	a.clean = append(a.clean, rest...)
	a.mu.Unlock()
}

// returnToKernel gives the memory of pages back to the kernel, one
// madvise for each run of adjacent pages: a file written in order holds
// long runs, and a call per page made freeing a 1 GiB file cost 262,144
// system calls. It sorts pages.
func returnToKernel(pages []*page) {
	slices.SortFunc(pages, func(a, b *page) int {
		return cmp.Compare(uintptr(unsafe.Pointer(a)), uintptr(unsafe.Pointer(b)))
	})
	for len(pages) > 0 {
		run := 1
		for run < len(pages) && uintptr(unsafe.Pointer(pages[run])) == uintptr(unsafe.Pointer(pages[0]))+uintptr(run)*PageSize {
			run++
		}
		// A run may span two arenas the kernel mapped side by side:
		// madvise takes a range across adjacent mappings.
		mem := unsafe.Slice((*byte)(unsafe.Pointer(pages[0])), run*PageSize)
		// Cannot fail for our own private anonymous mappings.
		unix.Madvise(mem, unix.MADV_DONTNEED)
		pages = pages[run:]
	}
}

// release unmaps every arena. Only for a store whose files are all
// released: their pages would become invalid.
func (a *pageAllocator) release() error {
	a.mu.Lock()
	defer a.mu.Unlock()
	var first error
	for _, mem := range a.arenas {
		if err := unix.Munmap(mem); err != nil && first == nil {
			first = fmt.Errorf("spool: unmap file data: %w", err)
		}
	}
	a.arenas, a.unused, a.clean, a.dirty = nil, nil, nil, nil
	return first
}

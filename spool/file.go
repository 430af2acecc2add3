package spool

import (
	"errors"
	"fmt"
	"io"
	"sync"
	"sync/atomic"
	"unsafe"

	"golang.org/x/sys/unix"
)

// Residency says where a File's data lives.
type Residency int

const (
	InRAM  Residency = iota // in pages in the daemon's memory
	OnDisk                  // in a nameless backing file in the spill directory
)

// String gives the word the residency xattr shows: "memory" or "disk".
func (r Residency) String() string {
	if r == OnDisk {
		return "disk"
	}
	return "memory"
}

// Fallocate modes a File accepts: the ones tmpfs accepts.
const (
	FallocKeepSize  = unix.FALLOC_FL_KEEP_SIZE
	FallocPunchHole = unix.FALLOC_FL_PUNCH_HOLE
)

// ErrReleased is returned by operations on a File after Release.
var ErrReleased = errors.New("spool: file released")

// maxOffset is one past the largest byte offset a file may hold, as the
// kernel's MAX_LFS_FILESIZE.
const maxOffset = int64(1<<63 - 1)

// File is the data of one file. Its zero value is not usable; get one from
// Store.NewFile. All methods are safe for concurrent use.
//
// While in RAM, mu guards the page table and size: reads share it, writes
// hold it exclusively. Rollover happens under the exclusive lock, so no read,
// write or truncate sees a half-moved file. Once on disk, the backing file is
// the only record of size and data, and reads and writes share mu (the
// kernel orders concurrent pread/pwrite on the backing file); only Release
// takes it exclusively again.
type File struct {
	store *Store
	id    uint64 // the caller's name for the file, given to OnRollover

	mu       sync.RWMutex
	size     int64     // in RAM only
	pages    pageTable // in RAM only
	fd       int       // backing file once rolled over, else -1
	released bool

	// For the memory budget and the capacity (budget.go):
	lastUse  atomic.Int64 // UnixNano of the last read or write
	ramPages atomic.Int64 // pages held: pages.count, readable without mu
	diskUse  atomic.Int64 // the backing file's disk use, as last charged
}

// NewFile returns an empty file held in RAM; id names it to OnRollover.
func (s *Store) NewFile(id uint64) *File {
	f := &File{store: s, id: id, fd: -1}
	f.touch()
	s.addRAMFile(f)
	return f
}

// Stat is a File's size and use.
type Stat struct {
	Size      int64
	Blocks    int64 // 512-byte units actually held, in RAM or on disk
	Residency Residency

	// The backing file's times, for a file on disk (zero in RAM). Reads
	// and writes that bypass the caller (FUSE passthrough) move them.
	Atime, Mtime, Ctime unix.Timespec
}

// Stat returns the file's size, the space it holds, and where it lives.
func (f *File) Stat() (Stat, error) {
	f.mu.RLock()
	defer f.mu.RUnlock()
	if f.released {
		return Stat{}, nil
	}
	if f.fd >= 0 {
		var st unix.Stat_t
		if err := unix.Fstat(f.fd, &st); err != nil {
			return Stat{}, fmt.Errorf("spool: stat backing file: %w", err)
		}
		return Stat{Size: st.Size, Blocks: st.Blocks, Residency: OnDisk,
			Atime: st.Atim, Mtime: st.Mtim, Ctime: st.Ctim}, nil
	}
	return Stat{Size: f.size, Blocks: f.pages.count * (PageSize / 512), Residency: InRAM}, nil
}

// Residency reports where the data lives now.
func (f *File) Residency() Residency {
	f.mu.RLock()
	defer f.mu.RUnlock()
	if f.fd >= 0 {
		return OnDisk
	}
	return InRAM
}

// ReadAt reads into p from off and returns how many bytes it read: fewer
// than len(p) only at end of file. Holes read as zeros.
func (f *File) ReadAt(p []byte, off int64) (int, error) {
	if off < 0 {
		return 0, unix.EINVAL
	}
	f.touch()
	f.mu.RLock()
	defer f.mu.RUnlock()
	if f.released {
		return 0, ErrReleased
	}
	if f.fd >= 0 {
		return preadFull(f.fd, p, off)
	}
	if off >= f.size {
		return 0, nil
	}
	n := int(min(int64(len(p)), f.size-off))
	for done := 0; done < n; {
		pos := off + int64(done)
		idx, in := pos/PageSize, int(pos%PageSize)
		step := min(PageSize-in, n-done)
		if pg := f.pages.get(idx); pg != nil {
			copy(p[done:done+step], pg[in:])
		} else {
			clear(p[done : done+step])
		}
		done += step
	}
	return n, nil
}

// WriteAt writes p at off, growing the file as needed. A write that takes
// the file past the threshold rolls it over first, so the write lands on
// disk and the RAM copy is never larger than the threshold; so does one that
// the memory budget has no room for (see budget.go). If the rollover fails,
// nothing is written and the file stays as it was.
func (f *File) WriteAt(p []byte, off int64) (int, error) {
	if off < 0 {
		return 0, unix.EINVAL
	}
	if int64(len(p)) > maxOffset-off {
		return 0, unix.EFBIG
	}
	if len(p) == 0 {
		return 0, nil // as pwrite(2): no change, not even to the size
	}
	end := off + int64(len(p))
	f.touch()
	for {
		n, missing, inRAM, err := f.writeOnDisk(p, off, end)
		if !inRAM {
			return n, err
		}
		res, toDisk, err := f.store.reserveRAM(f, missing)
		if err != nil {
			return 0, err
		}
		if toDisk {
			if err := f.SpillFor(ForMemory); err != nil {
				return 0, err
			}
			continue
		}
		n, again, err := f.writeInRAM(p, off, end, &res)
		res.refund()
		if !again {
			return n, err
		}
	}
}

// writeOnDisk writes to the backing file under the shared lock. If the
// file is in RAM it does nothing, says so (inRAM), and counts the pages the
// write would add (missing).
func (f *File) writeOnDisk(p []byte, off, end int64) (n int, missing int64, inRAM bool, err error) {
	f.mu.RLock()
	defer f.mu.RUnlock()
	if f.released {
		return 0, 0, false, ErrReleased
	}
	if f.fd < 0 {
		return 0, f.pages.missing(off/PageSize, ceilPages(end)), true, nil
	}
	grow, err := f.chargeDiskGrowth(off, end)
	if err != nil {
		return 0, 0, false, err
	}
	n, err = pwriteFull(f.fd, p, off)
	f.syncDiskUse(grow)
	return n, 0, false, err
}

// writeInRAM writes into pages, taking new ones from res. again says the
// write is still to be made: the file is on disk now (it rolled over
// meanwhile, or for this write), or more pages are missing than res holds
// (another writer freed some since they were counted).
func (f *File) writeInRAM(p []byte, off, end int64, res *reservation) (n int, again bool, err error) {
	var rolled rollover
	defer rolled.report(f) // after the unlock below
	f.mu.Lock()
	defer f.mu.Unlock()
	switch {
	case f.released:
		return 0, false, ErrReleased
	case f.fd >= 0:
		return 0, true, nil
	case f.exceedsThreshold(end):
		if err := f.spillLocked(&rolled, BySize); err != nil {
			return 0, false, err
		}
		return 0, true, nil
	case f.pages.missing(off/PageSize, ceilPages(end))*PageSize > res.left:
		return 0, true, nil
	}
	for done := 0; done < len(p); {
		pos := off + int64(done)
		idx, in := pos/PageSize, int(pos%PageSize)
		step := min(PageSize-in, len(p)-done)
		pg, err := f.pageForWrite(idx, res)
		if err != nil {
			// What was written stays written: report it, as a short write.
			f.size = max(f.size, pos)
			return done, false, err
		}
		copy(pg[in:], p[done:done+step])
		f.pages.markWritten(idx)
		done += step
	}
	f.size = max(f.size, end)
	return len(p), false, nil
}

// Truncate sets the file's size. Bytes past a shrunk size are gone: growing
// it again reads zeros there.
func (f *File) Truncate(size int64) error {
	if size < 0 {
		return unix.EINVAL
	}
	var rolled rollover
	defer rolled.report(f)
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.released {
		return ErrReleased
	}
	if f.fd < 0 && f.exceedsThreshold(size) {
		if err := f.spillLocked(&rolled, BySize); err != nil {
			return err
		}
	}
	if f.fd >= 0 {
		if err := unix.Ftruncate(f.fd, size); err != nil {
			return fmt.Errorf("spool: truncate backing file: %w", err)
		}
		f.syncDiskUse(0)
		return nil
	}
	if size <= f.size {
		// As tmpfs, a truncate that does not grow the file also drops
		// pages fallocated past the end.
		f.freePages(ceilPages(size), maxPageIndex)
		if in := int(size % PageSize); in != 0 {
			if pg := f.pages.get(size / PageSize); pg != nil {
				clear(pg[in:])
			}
		}
	}
	f.size = size
	return nil
}

// Allocate does what fallocate(2) does with the modes tmpfs supports:
// 0 (allocate, growing the file), FallocKeepSize (allocate without growing)
// and FallocPunchHole|FallocKeepSize (free the range, which then reads as
// zeros). Others give EOPNOTSUPP.
func (f *File) Allocate(off, length int64, mode uint32) error {
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
	f.touch()
	for {
		done, missing, undo, err := f.allocateOnDisk(off, length, mode)
		if undo != nil {
			f.undoAllocation(undo)
		}
		if done {
			return err
		}
		var res reservation
		if mode&FallocPunchHole == 0 {
			var toDisk bool
			if res, toDisk, err = f.store.reserveRAM(f, missing); err != nil {
				return err
			}
			if toDisk {
				if err := f.SpillFor(ForMemory); err != nil {
					return err
				}
				continue
			}
		}
		again, err := f.allocateInRAM(off, end, mode, &res)
		res.refund()
		if !again {
			return err
		}
	}
}

// allocateOnDisk does Allocate on the backing file. If the file is in RAM
// it does nothing (done is false) and counts the pages the allocation
// would add (missing). If the backing file's fallocate failed, undo lists
// the ranges that were holes before it, for undoAllocation.
func (f *File) allocateOnDisk(off, length int64, mode uint32) (done bool, missing int64, undo []byteRange, err error) {
	f.mu.RLock()
	defer f.mu.RUnlock()
	if f.released {
		return true, 0, nil, ErrReleased
	}
	if f.fd < 0 {
		if mode&FallocPunchHole != 0 {
			return false, 0, nil, nil
		}
		return false, f.pages.missing(off/PageSize, ceilPages(off+length)), nil, nil
	}
	if mode&FallocPunchHole != 0 {
		err = unix.Fallocate(f.fd, mode, off, length)
		f.syncDiskUse(0)
		if err != nil {
			return true, 0, nil, fmt.Errorf("spool: punch hole in backing file: %w", err)
		}
		return true, 0, nil, nil
	}
	grow, err := f.chargeDiskGrowth(off, off+length)
	if err != nil {
		return true, 0, nil, err
	}
	holes := f.holes(off, off+length)
	err = f.allocateBacking(off, off+length, mode)
	f.syncDiskUse(grow)
	if err != nil {
		return true, 0, holes, err
	}
	return true, 0, nil, nil
}

// allocateBacking allocates [off, end) of the backing file, growing it
// unless mode has FallocKeepSize. The size moves only once everything is
// allocated, as on tmpfs (ext4 moves it as it goes).
func (f *File) allocateBacking(off, end int64, mode uint32) error {
	var st unix.Stat_t
	if err := unix.Fstat(f.fd, &st); err != nil {
		return fmt.Errorf("spool: stat backing file: %w", err)
	}
	err := unix.Fallocate(f.fd, mode|FallocKeepSize, off, end-off)
	if err == nil && mode&FallocKeepSize == 0 && end > st.Size {
		err = unix.Ftruncate(f.fd, end)
	}
	if err != nil {
		return fmt.Errorf("spool: fallocate backing file: %w", err)
	}
	return nil
}

// undoAllocation gives back what a failed fallocate of the backing file
// had been given before it failed: ext4 keeps those blocks, and a full
// spill disk would stay full. As on tmpfs, a failed fallocate then takes
// no space. Within the file, it frees what were holes before and still
// hold no data (a write since may have filled some); past its end, it
// truncates to the size the file has, which drops blocks allocated
// beyond it (ext4 punches no hole there). Blocks allocated but never
// written before the fallocate, which SEEK_HOLE shows as holes too, are
// freed with them; they read as zeros either way. It takes the lock
// exclusively, so that no write races with the truncate.
func (f *File) undoAllocation(wereHoles []byteRange) {
	f.mu.Lock()
	defer f.mu.Unlock()
	var st unix.Stat_t
	if f.fd < 0 || f.released || unix.Fstat(f.fd, &st) != nil {
		return
	}
	block := max(int64(st.Blksize), 1)
	for _, was := range wereHoles {
		for _, h := range f.holes(was.start, min(was.end, st.Size)) {
			// Holes are whole blocks but where a range cuts them.
			start, end := h.start/block*block, min(divRoundUp(h.end, block)*block, maxOffset)
			unix.Fallocate(f.fd, FallocPunchHole|FallocKeepSize, start, end-start)
		}
	}
	unix.Ftruncate(f.fd, st.Size)
	f.syncDiskUse(0)
}

// allocateInRAM does Allocate in pages, taking new ones from res. again
// says it is still to be done: the file is on disk now, or more pages are
// missing than res holds.
func (f *File) allocateInRAM(off, end int64, mode uint32, res *reservation) (again bool, err error) {
	var rolled rollover
	defer rolled.report(f)
	f.mu.Lock()
	defer f.mu.Unlock()
	switch {
	case f.released:
		return false, ErrReleased
	case f.fd >= 0:
		return true, nil
	case mode&FallocPunchHole != 0:
		f.punchLocked(off, end)
		return false, nil
	case f.exceedsThreshold(end):
		if err := f.spillLocked(&rolled, BySize); err != nil {
			return false, err
		}
		return true, nil
	case f.pages.missing(off/PageSize, ceilPages(end))*PageSize > res.left:
		return true, nil
	}
	for idx := off / PageSize; idx < ceilPages(end); idx++ {
		if f.pages.get(idx) == nil {
			if _, err := f.allocPage(idx, true, res); err != nil {
				return false, err
			}
		}
	}
	if mode&FallocKeepSize == 0 {
		f.size = max(f.size, end)
	}
	return false, nil
}

// punchLocked frees the pages wholly inside [off, end) and zeros the parts
// of the pages at either edge.
func (f *File) punchLocked(off, end int64) {
	first, last := ceilPages(off), end/PageSize // whole pages: [first, last)
	if first < last {
		f.freePages(first, last)
	}
	zero := func(from, to int64) { // within one page
		if from >= to {
			return
		}
		if pg := f.pages.get(from / PageSize); pg != nil {
			clear(pg[from%PageSize : (to-1)%PageSize+1])
		}
	}
	if first > last { // the range lies inside one page
		zero(off, end)
		return
	}
	zero(off, first*PageSize)
	zero(last*PageSize, end)
}

// SeekData returns the first offset at or after off that holds data, as
// lseek(2) with SEEK_DATA: ENXIO when there is none before end of file.
func (f *File) SeekData(off int64) (int64, error) {
	return f.seek(off, unix.SEEK_DATA)
}

// SeekHole returns the first offset at or after off in a hole, as lseek(2)
// with SEEK_HOLE: end of file counts as a hole; ENXIO past it.
func (f *File) SeekHole(off int64) (int64, error) {
	return f.seek(off, unix.SEEK_HOLE)
}

func (f *File) seek(off int64, whence int) (int64, error) {
	if off < 0 {
		return 0, unix.ENXIO
	}
	f.mu.RLock()
	defer f.mu.RUnlock()
	if f.released {
		return 0, ErrReleased
	}
	if f.fd >= 0 {
		pos, err := unix.Seek(f.fd, off, whence)
		if err != nil {
			return 0, fmt.Errorf("spool: seek backing file: %w", err)
		}
		return pos, nil
	}
	if off >= f.size {
		return 0, unix.ENXIO
	}
	if whence == unix.SEEK_HOLE {
		pos := max(off, pageOffset(f.pages.firstHole(off/PageSize)))
		return min(pos, f.size), nil
	}
	idx := f.pages.firstData(off / PageSize)
	if idx < 0 {
		return 0, unix.ENXIO
	}
	pos := max(off, pageOffset(idx))
	if pos >= f.size {
		return 0, unix.ENXIO
	}
	return pos, nil
}

// Spill rolls the file over to disk now, if it is not there already: the
// fileno() of this filesystem. It is idempotent.
func (f *File) Spill() error { return f.SpillFor(OnRequest) }

// SpillFor is Spill, reporting why to OnRollover.
func (f *File) SpillFor(why Reason) error {
	var rolled rollover
	defer rolled.report(f)
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.released {
		return ErrReleased
	}
	if f.fd >= 0 {
		return nil
	}
	return f.spillLocked(&rolled, why)
}

// SetTimes sets the backing file's access and modification times, for a
// file on disk (it does nothing in RAM), so that they can be compared with
// what later reads and writes that bypass the caller make of them. It
// returns the backing file's change time after that (setting times changes
// it), so that the caller can tell a later change from its own.
func (f *File) SetTimes(atime, mtime unix.Timespec) (ctime unix.Timespec, err error) {
	f.mu.RLock()
	defer f.mu.RUnlock()
	if f.fd < 0 || f.released {
		return ctime, nil
	}
	ts := [2]unix.Timespec{atime, mtime}
	// utimensat(fd, NULL, ...) is futimens(3), which x/sys/unix lacks.
	_, _, errno := unix.Syscall6(unix.SYS_UTIMENSAT, uintptr(f.fd), 0, uintptr(unsafe.Pointer(&ts[0])), 0, 0, 0)
	if errno != 0 {
		return ctime, fmt.Errorf("spool: set times of backing file: %w", errno)
	}
	var st unix.Stat_t
	if err := unix.Fstat(f.fd, &st); err != nil {
		return ctime, fmt.Errorf("spool: stat backing file: %w", err)
	}
	return st.Ctim, nil
}

// BackingFd returns the backing file's descriptor once the file has rolled
// over. It stays valid until Release.
func (f *File) BackingFd() (int, bool) {
	f.mu.RLock()
	defer f.mu.RUnlock()
	return f.fd, f.fd >= 0 && !f.released
}

// Release frees the file's RAM or closes its backing file. Later calls fail
// with ErrReleased; Stat reports an empty file.
func (f *File) Release() error {
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.released {
		return nil
	}
	f.released = true
	f.freePages(0, maxPageIndex)
	f.size = 0
	f.store.forget(f)
	f.store.diskBytes.Add(-f.diskUse.Swap(0))
	if f.fd >= 0 {
		fd := f.fd
		f.fd = -1
		f.store.onDiskCount.Add(-1)
		if err := unix.Close(fd); err != nil {
			return fmt.Errorf("spool: close backing file: %w", err)
		}
	}
	return nil
}

// exceedsThreshold reports whether a RAM file reaching end must roll over.
func (f *File) exceedsThreshold(end int64) bool {
	maxSize := f.store.maxSize.Load()
	return maxSize > 0 && end > maxSize
}

// pageForWrite returns the page at idx, allocating a zeroed one from res
// if absent.
func (f *File) pageForWrite(idx int64, res *reservation) (*page, error) {
	if pg := f.pages.get(idx); pg != nil {
		return pg, nil
	}
	return f.allocPage(idx, false, res)
}

// allocPage puts a new zeroed page at idx, where there is none, taking its
// RAM from res.
func (f *File) allocPage(idx int64, unwritten bool, res *reservation) (*page, error) {
	pg, err := f.store.pages.alloc()
	if err != nil {
		return nil, err
	}
	if !res.take() {
		// A reservation covers every page an operation can add; this is
		// a bug, so count the page rather than lose track of it.
		f.store.ramBytes.Add(PageSize)
	}
	f.pages.set(idx, pg, unwritten)
	f.ramPages.Add(1)
	return pg, nil
}

// freePages drops the pages with index in [from, to) and gives them back.
func (f *File) freePages(from, to int64) {
	if freed := f.pages.removeRange(from, to); len(freed) > 0 {
		f.store.pages.free(freed)
		f.store.ramBytes.Add(-int64(len(freed)) * PageSize)
		f.ramPages.Add(-int64(len(freed)))
	}
}

// rollover records a rollover made under a File's lock, to be reported
// to the Store's OnRollover once the lock is released.
type rollover struct {
	happened bool
	size     int64
	why      Reason
	err      error // why a rollover that was tried failed
}

func (r *rollover) report(f *File) {
	if r.happened && f.store.onRollover != nil {
		f.store.onRollover(f.id, r.size, r.why)
	}
	if r.err != nil && f.store.onRolloverError != nil {
		f.store.onRolloverError(f.id, r.err)
	}
}

// spillLocked copies the file's pages into a new backing file and switches
// the file to it. Holes stay holes. On error the file is left in RAM,
// unchanged, and the partial backing file is closed (it has no name, so
// closing frees it).
func (f *File) spillLocked(rolled *rollover, why Reason) error {
	if room, bounded, err := f.store.spillRoom(); err != nil {
		return err
	} else if bounded && f.pages.count*PageSize > room {
		return fmt.Errorf("spool: roll over to %s: %w", f.store.dir, unix.ENOSPC)
	}
	fd, err := f.store.createBacking()
	if err != nil {
		rolled.err = err
		return err
	}
	if err := f.copyPagesTo(fd); err != nil {
		unix.Close(fd)
		rolled.err = fmt.Errorf("spool: roll over to %s: %w", f.store.dir, err)
		return rolled.err
	}
	*rolled = rollover{happened: true, size: f.size, why: why}
	// Charge the disk before freeing the RAM, so that the capacity never
	// sees the file's bytes counted nowhere.
	f.fd = fd
	f.syncDiskUse(0)
	f.freePages(0, maxPageIndex)
	f.pages = pageTable{}
	f.size = 0
	f.store.movedToDisk(f)
	f.store.onDiskCount.Add(1)
	f.store.rollovers.Add(1)
	return nil
}

// maxIovecs bounds one pwritev call (the kernel's IOV_MAX).
const maxIovecs = 1024

// copyPagesTo writes the file's pages to fd at their offsets, batching runs
// of adjacent pages into one pwritev, and sets fd's size. Pages past the end
// of file (from fallocate with FallocKeepSize) and pages never written since
// fallocate are allocated on disk rather than written, so they stay
// allocated and stay holes to SEEK_DATA.
func (f *File) copyPagesTo(fd int) error {
	var (
		run      [][]byte
		runStart int64
		err      error
		allocate []pageRange // coalesced runs of pages to allocate
	)
	flush := func() {
		if len(run) > 0 && err == nil {
			err = pwritevFull(fd, run, runStart)
		}
		run = run[:0]
	}
	f.pages.each(0, maxPageIndex, func(idx int64, pg *page, unwritten bool) bool {
		pos := idx * PageSize
		if pos >= f.size || unwritten {
			if n := len(allocate); n > 0 && allocate[n-1].end == idx {
				allocate[n-1].end++
			} else {
				allocate = append(allocate, pageRange{idx, idx + 1})
			}
			return true
		}
		if len(run) == maxIovecs || (len(run) > 0 && runStart+int64(len(run))*PageSize != pos) {
			flush()
		}
		if len(run) == 0 {
			runStart = pos
		}
		run = append(run, pg[:min(PageSize, f.size-pos)])
		return err == nil
	})
	flush()
	if err != nil {
		return err
	}
	if err := unix.Ftruncate(fd, f.size); err != nil {
		return fmt.Errorf("truncate backing file: %w", err)
	}
	for _, r := range allocate {
		if err := unix.Fallocate(fd, FallocKeepSize, pageOffset(r.start), pageOffset(r.end)-pageOffset(r.start)); err != nil {
			return fmt.Errorf("fallocate backing file: %w", err)
		}
	}
	return nil
}

// pageRange is the page indexes [start, end).
type pageRange struct{ start, end int64 }

// ceilPages is the number of pages that n bytes span, without overflowing
// near 2^63.
func ceilPages(n int64) int64 { return divRoundUp(n, PageSize) }

// divRoundUp is n/d rounded up, for n >= 0 and d > 0, without overflowing.
func divRoundUp(n, d int64) int64 {
	q := n / d
	if n%d != 0 {
		q++
	}
	return q
}

// pageOffset is the byte offset of page idx, saturating at the largest
// offset a file may have (the page at 2^63 - 4096 ends there).
func pageOffset(idx int64) int64 {
	if idx >= maxPageIndex {
		return maxOffset
	}
	return idx * PageSize
}

func preadFull(fd int, p []byte, off int64) (int, error) {
	done := 0
	for done < len(p) {
		n, err := unix.Pread(fd, p[done:], off+int64(done))
		if err == unix.EINTR {
			continue
		}
		if err != nil {
			return done, fmt.Errorf("spool: read backing file: %w", err)
		}
		if n == 0 {
			break
		}
		done += n
	}
	return done, nil
}

func pwriteFull(fd int, p []byte, off int64) (int, error) {
	done := 0
	for done < len(p) {
		n, err := unix.Pwrite(fd, p[done:], off+int64(done))
		if err == unix.EINTR {
			continue
		}
		if err != nil {
			return done, fmt.Errorf("spool: write backing file: %w", err)
		}
		if n == 0 {
			return done, fmt.Errorf("spool: write backing file: %w", io.ErrShortWrite)
		}
		done += n
	}
	return done, nil
}

func pwritevFull(fd int, iovs [][]byte, off int64) error {
	for len(iovs) > 0 {
		n, err := unix.Pwritev(fd, iovs, off)
		if err == unix.EINTR {
			continue
		}
		if err != nil {
			return fmt.Errorf("write backing file: %w", err)
		}
		off += int64(n)
		for n > 0 {
			if n >= len(iovs[0]) {
				n -= len(iovs[0])
				iovs = iovs[1:]
			} else {
				iovs[0] = iovs[0][n:]
				n = 0
			}
		}
	}
	return nil
}

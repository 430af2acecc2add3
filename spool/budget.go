package spool

import (
	"errors"
	"time"

	"golang.org/x/sys/unix"
)

// Two limits bound what files may hold (Config.MemLimit, Config.SizeLimit):
//
// The memory budget bounds the RAM pages of all files together, plus the
// metadata the caller keeps in memory for them (ChargeMetadata and
// Config.NodeMemory). A write that needs pages reserves them before it
// takes its file's lock; if the budget has no room, the store first rolls
// other files over to disk (the file whose pages have been idle longest,
// weighted by how many it holds), one rollover at a time, and if the
// writer's own file is the best choice, or the only one, the write goes to
// disk instead. Pages are never taken beyond the budget, so the RAM that
// file data holds stays within it; the reservation that a write does not
// use is given back when it ends. Metadata cannot roll over: past the
// budget it fails with ENOSPC, once no file's pages are left to move out.
//
// The capacity (like tmpfs's size=) bounds RAM pages plus the space the
// backing files hold on disk plus the metadata charged to it; past it a
// write fails with ENOSPC. A file on disk is charged, before a write, for
// the holes it fills and the bytes it adds past its end (found with
// SEEK_HOLE), and corrected with the backing file's real use afterwards
// (the file system may allocate in larger blocks than a page).
//
// Without a capacity, the spill filesystem itself bounds what goes to
// disk, less a reserve (Config.SpillReserve) kept free for everyone else:
// a write, allocation or rollover that would eat into it fails with
// ENOSPC, so a runaway writer cannot fill the disk the host runs on.

type chargeResult int

const (
	charged chargeResult = iota
	overMemory
	overCapacity
)

// tryChargeRAM counts n bytes of RAM pages if both limits allow.
func (s *Store) tryChargeRAM(n int64) chargeResult {
	s.chargeMu.Lock()
	defer s.chargeMu.Unlock()
	ram, meta := s.ramBytes.Load(), s.metaBytes.Load()
	if size := s.sizeLimit.Load(); size > 0 && n > size-ram-s.diskBytes.Load()-meta {
		return overCapacity
	}
	if mem := s.memLimit.Load(); mem > 0 && n > mem-ram-meta-s.nodeMemory() {
		return overMemory
	}
	s.ramBytes.Add(n)
	return charged
}

// tryChargeMeta counts bytes of metadata if the capacity and the memory
// budget allow them and headroom more bytes of memory (which the caller
// accounts for in Config.NodeMemory once it has made its node).
func (s *Store) tryChargeMeta(bytes, headroom int64) chargeResult {
	s.chargeMu.Lock()
	defer s.chargeMu.Unlock()
	ram, meta := s.ramBytes.Load(), s.metaBytes.Load()
	if size := s.sizeLimit.Load(); size > 0 && bytes > size-ram-s.diskBytes.Load()-meta {
		return overCapacity
	}
	bound, evictable := s.memLimit.Load(), ram
	if bound == 0 {
		// No memory budget: metadata alone still has a bound, for file
		// data can go to disk but metadata cannot.
		bound, evictable = s.metaBound, 0
	}
	switch need := bytes + headroom; {
	case need > bound-meta-s.nodeMemory():
		return overCapacity // rolling every file over would not make room
	case need > bound-meta-s.nodeMemory()-evictable:
		return overMemory
	}
	s.metaBytes.Add(bytes)
	return charged
}

// tryChargeDisk counts n more bytes of backing files if the capacity allows.
// Adding nothing is always allowed: an operation that frees space or
// overwrites must work even when use has passed the capacity.
func (s *Store) tryChargeDisk(n int64) bool {
	if s.sizeLimit.Load() == 0 || n <= 0 {
		return true
	}
	s.chargeMu.Lock()
	defer s.chargeMu.Unlock()
	// (Compared so that n near the largest offset cannot overflow.)
	if n > s.sizeLimit.Load()-s.ramBytes.Load()-s.diskBytes.Load()-s.metaBytes.Load() {
		return false
	}
	s.diskBytes.Add(n)
	return true
}

// nodeMemory is what the caller's own records of the files hold, for the
// memory budget.
func (s *Store) nodeMemory() int64 {
	if s.nodeMem == nil {
		return 0
	}
	return s.nodeMem()
}

// ChargeMetadata counts bytes of metadata (names, extended attributes,
// symbolic link targets: what the caller keeps in memory and tmpfs would
// charge to its size) against the capacity and the memory budget, if both
// have room for them and for headroom more bytes of memory, rolling files
// over to make room in RAM if it must. It fails with ENOSPC when there is
// no room. ReleaseMetadata gives the bytes back.
func (s *Store) ChargeMetadata(bytes, headroom int64) error {
	if bytes < 0 || headroom < 0 {
		return unix.EINVAL
	}
	noRoom, err := s.chargeEvicting(nil, func() chargeResult { return s.tryChargeMeta(bytes, headroom) })
	if err == nil && noRoom {
		err = unix.ENOSPC // no file holds pages to roll over
	}
	return err
}

// ReleaseMetadata gives back bytes of metadata charged by ChargeMetadata.
func (s *Store) ReleaseMetadata(bytes int64) { s.metaBytes.Add(-bytes) }

// chargeEvicting runs try until it charges, rolling other files than self
// over to disk while it says the memory budget has no room. evictSelf says
// that no such file holds pages: self (if any) is the best to roll over, or
// nothing is left to move. A charge over the capacity is ENOSPC.
func (s *Store) chargeEvicting(self *File, try func() chargeResult) (evictSelf bool, err error) {
	for {
		switch try() {
		case charged:
			return false, nil
		case overCapacity:
			return false, unix.ENOSPC
		}
		s.evictMu.Lock()
		switch try() {
		case charged:
			s.evictMu.Unlock()
			return false, nil
		case overCapacity:
			s.evictMu.Unlock()
			return false, unix.ENOSPC
		}
		victim := s.pickVictim()
		if victim == nil || victim == self {
			s.evictMu.Unlock()
			return true, nil
		}
		err := victim.SpillFor(ForMemory)
		s.evictMu.Unlock()
		if err != nil && !errors.Is(err, ErrReleased) {
			// (A victim released meanwhile made room all the same.)
			return false, err
		}
	}
}

// reservation is RAM set aside for one operation on a file before it takes
// the file's lock. Pages taken from it cost nothing more; what is left is
// given back by refund.
type reservation struct {
	store *Store
	left  int64
}

func (r *reservation) take() bool {
	if r.left < PageSize {
		return false
	}
	r.left -= PageSize
	return true
}

func (r *reservation) refund() {
	if r.left > 0 {
		r.store.ramBytes.Add(-r.left)
		r.left = 0
	}
}

// maxReservePages bounds one reservation: with a memory budget, the whole
// budget (rolling others over could never make more room); without, 1 TiB,
// so that a reservation stays far from overflowing.
func (s *Store) maxReservePages() int64 {
	if mem := s.memLimit.Load(); mem > 0 {
		return mem / PageSize
	}
	return 1 << 28
}

// reserveRAM sets aside RAM for the given number of new pages for an
// operation on self, making room by rolling other files over if the
// memory budget needs it. toDisk says that self itself should roll over
// (it was the best choice, no other file held RAM, or the operation needs
// more than the whole budget) and the operation go to disk.
func (s *Store) reserveRAM(self *File, pages int64) (res reservation, toDisk bool, err error) {
	if pages <= 0 {
		return reservation{store: s}, false, nil
	}
	if pages > s.maxReservePages() {
		return reservation{}, true, nil
	}
	n := pages * PageSize
	toDisk, err = s.chargeEvicting(self, func() chargeResult { return s.tryChargeRAM(n) })
	if err != nil || toDisk {
		return reservation{}, toDisk, err
	}
	return reservation{store: s, left: n}, false, nil
}

// pickVictim chooses the file to roll over to make room in RAM: the one
// with the most page-seconds idle (pages held times time since last use),
// so that a large file nobody touches goes before a small busy one, and a
// busy file only when it is much larger.
func (s *Store) pickVictim() *File {
	now := time.Now().UnixNano()
	s.filesMu.Lock()
	defer s.filesMu.Unlock()
	var best *File
	var bestScore float64
	for f := range s.ramFiles {
		pages := f.ramPages.Load()
		if pages == 0 {
			continue
		}
		idle := float64(now-f.lastUse.Load()) + float64(time.Millisecond)
		if score := float64(pages) * idle; best == nil || score > bestScore {
			best, bestScore = f, score
		}
	}
	return best
}

func (s *Store) addRAMFile(f *File) {
	s.filesMu.Lock()
	s.ramFiles[f] = struct{}{}
	s.filesMu.Unlock()
}

// movedToDisk moves f from the files in RAM to those on disk.
func (s *Store) movedToDisk(f *File) {
	s.filesMu.Lock()
	delete(s.ramFiles, f)
	s.diskFiles[f] = struct{}{}
	s.filesMu.Unlock()
}

// forget drops f from the Store's sets of files.
func (s *Store) forget(f *File) {
	s.filesMu.Lock()
	delete(s.ramFiles, f)
	delete(s.diskFiles, f)
	s.filesMu.Unlock()
}

// onDisk returns the files rolled over and not released.
func (s *Store) onDisk() []*File {
	s.filesMu.Lock()
	defer s.filesMu.Unlock()
	files := make([]*File, 0, len(s.diskFiles))
	for f := range s.diskFiles {
		files = append(files, f)
	}
	return files
}

// touch records a use of the file, for pickVictim.
func (f *File) touch() { f.lastUse.Store(time.Now().UnixNano()) }

// syncDiskUse charges the store for what the backing file holds now, given
// that charged bytes were charged for the operation beforehand. It is
// needed only with a capacity to keep; f.mu must be held (shared will do).
func (f *File) syncDiskUse(charged int64) {
	s := f.store
	if s.sizeLimit.Load() == 0 {
		s.diskBytes.Add(-charged)
		return
	}
	f.refreshDiskUse(charged)
}

// refreshDiskUse makes the backing file's disk use as last counted what it
// holds now, less charged bytes counted for the operation beforehand.
// f.mu must be held (shared will do).
func (f *File) refreshDiskUse(charged int64) {
	s := f.store
	var st unix.Stat_t
	if f.fd < 0 || unix.Fstat(f.fd, &st) != nil {
		s.diskBytes.Add(-charged)
		return
	}
	use := st.Blocks * 512
	delta := use - f.diskUse.Swap(use)
	s.diskBytes.Add(delta - charged)
}

// chargeDiskGrowth checks, before writing or allocating [off, end) of the
// backing file, that what it adds fits: with a capacity, it charges the
// growth (to be given to syncDiskUse afterwards); without, it checks that
// the spill filesystem keeps its reserve. f.mu must be held (shared).
func (f *File) chargeDiskGrowth(off, end int64) (charged int64, err error) {
	s := f.store
	if s.sizeLimit.Load() > 0 {
		grow := f.diskGrowth(off, end)
		if !s.tryChargeDisk(grow) {
			return 0, unix.ENOSPC
		}
		return grow, nil
	}
	room, bounded, err := s.spillRoom()
	switch {
	case err != nil:
		return 0, err
	case !bounded || end-off <= room:
		return 0, nil
	case f.diskGrowth(off, end) <= max(room, 0):
		return 0, nil // (growing by nothing always fits)
	}
	return 0, unix.ENOSPC
}

// diskGrowth is what writing or allocating [off, end) adds to a file on
// disk: its holes in that range and what lies past its end, in pages.
func (f *File) diskGrowth(off, end int64) int64 {
	var grow int64
	for _, h := range f.holes(off, end) {
		grow += h.end - h.start
	}
	return min(ceilPages(grow), maxPageIndex) * PageSize
}

// byteRange is the bytes [start, end).
type byteRange struct{ start, end int64 }

// holes lists the parts of [off, end) of the backing file that hold no
// data: holes, by SEEK_HOLE, and what lies past the end of file. (Blocks
// allocated but never written, by fallocate, count as holes too on most
// filesystems.) f.mu must be held.
func (f *File) holes(off, end int64) []byteRange {
	var st unix.Stat_t
	if unix.Fstat(f.fd, &st) != nil {
		return nil
	}
	var holes []byteRange
	var past *byteRange
	if end > st.Size {
		past = &byteRange{max(off, st.Size), end}
		end = st.Size
	}
	for pos := off; pos < end; {
		hole, err := unix.Seek(f.fd, pos, unix.SEEK_HOLE)
		if err != nil || hole >= end {
			break
		}
		data, err := unix.Seek(f.fd, hole, unix.SEEK_DATA)
		if err != nil {
			data = end // ENXIO: a hole to the end of file
		}
		holes = append(holes, byteRange{hole, min(data, end)})
		pos = data
	}
	if past != nil {
		holes = append(holes, *past)
	}
	return holes
}

// CapacityRoom is how many of n bytes written at off fit in what the
// capacity has left, counting every page they touch as new: 0 when there
// is no capacity or the room is less than the write's first page, and
// less than n otherwise. A write that failed with ENOSPC can be retried
// with that many bytes, to write what fits as tmpfs does.
func (s *Store) CapacityRoom(off int64, n int) int {
	size := s.sizeLimit.Load()
	if size == 0 {
		return 0
	}
	room := size - s.ramBytes.Load() - s.diskBytes.Load() - s.metaBytes.Load()
	if room <= 0 {
		return 0
	}
	fit := (off/PageSize+room/PageSize)*PageSize - off
	return int(min(max(fit, 0), int64(n)-1))
}

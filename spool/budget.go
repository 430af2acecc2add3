package spool

import (
	"errors"
	"time"

	"golang.org/x/sys/unix"
)

// Two limits bound what files may hold (Config.MemLimit, Config.SizeLimit):
//
// The memory budget bounds the RAM pages of all files together. A write
// that needs pages reserves them before it takes its file's lock; if the
// budget has no room, the store first rolls other files over to disk (the
// file whose pages have been idle longest, weighted by how many it holds),
// one rollover at a time, and if the writer's own file is the best choice,
// or the only one, the write goes to disk instead. Pages are never taken
// beyond the budget, so the RAM that file data holds stays within it; the
// reservation that a write does not use is given back when it ends.
//
// The capacity (like tmpfs's size=) bounds RAM pages plus the space the
// backing files hold on disk; past it a write fails with ENOSPC. A file on
// disk is charged, before a write, for the holes it fills and the bytes it
// adds past its end (found with SEEK_HOLE), and corrected with the backing
// file's real use afterwards (the file system may allocate in larger
// blocks than a page).

type chargeResult int

const (
	charged chargeResult = iota
	overMemory
	overCapacity
)

// tryChargeRAM counts n bytes of RAM pages if both limits allow.
func (s *Store) tryChargeRAM(n int64) chargeResult {
	if s.memLimit == 0 && s.sizeLimit == 0 {
		s.ramBytes.Add(n)
		return charged
	}
	s.chargeMu.Lock()
	defer s.chargeMu.Unlock()
	ram := s.ramBytes.Load()
	if s.sizeLimit > 0 && n > s.sizeLimit-ram-s.diskBytes.Load() {
		return overCapacity
	}
	if s.memLimit > 0 && n > s.memLimit-ram {
		return overMemory
	}
	s.ramBytes.Add(n)
	return charged
}

// tryChargeDisk counts n more bytes of backing files if the capacity allows.
// Adding nothing is always allowed: an operation that frees space or
// overwrites must work even when use has passed the capacity.
func (s *Store) tryChargeDisk(n int64) bool {
	if s.sizeLimit == 0 || n <= 0 {
		return true
	}
	s.chargeMu.Lock()
	defer s.chargeMu.Unlock()
	// (Compared so that n near the largest offset cannot overflow.)
	if n > s.sizeLimit-s.ramBytes.Load()-s.diskBytes.Load() {
		return false
	}
	s.diskBytes.Add(n)
	return true
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
	if s.memLimit > 0 {
		return s.memLimit / PageSize
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
	for {
		switch s.tryChargeRAM(n) {
		case charged:
			return reservation{store: s, left: n}, false, nil
		case overCapacity:
			return reservation{}, false, unix.ENOSPC
		}
		s.evictMu.Lock()
		switch s.tryChargeRAM(n) {
		case charged:
			s.evictMu.Unlock()
			return reservation{store: s, left: n}, false, nil
		case overCapacity:
			s.evictMu.Unlock()
			return reservation{}, false, unix.ENOSPC
		}
		victim := s.pickVictim()
		if victim == nil || victim == self {
			s.evictMu.Unlock()
			return reservation{}, true, nil
		}
		err := victim.Spill()
		s.evictMu.Unlock()
		if err != nil && !errors.Is(err, ErrReleased) {
			// (A victim released meanwhile made room all the same.)
			return reservation{}, false, err
		}
	}
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

func (s *Store) removeRAMFile(f *File) {
	s.filesMu.Lock()
	delete(s.ramFiles, f)
	s.filesMu.Unlock()
}

// touch records a use of the file, for pickVictim.
func (f *File) touch() { f.lastUse.Store(time.Now().UnixNano()) }

// syncDiskUse charges the store for what the backing file holds now, given
// that charged bytes were charged for the operation beforehand. It is
// needed only with a capacity to keep.
func (f *File) syncDiskUse(charged int64) {
	s := f.store
	if s.sizeLimit == 0 {
		return
	}
	var st unix.Stat_t
	if unix.Fstat(f.fd, &st) != nil {
		s.diskBytes.Add(-charged)
		return
	}
	use := st.Blocks * 512
	delta := use - f.diskUse.Swap(use)
	s.diskBytes.Add(delta - charged)
}

// diskGrowth is what writing or allocating [off, end) adds to a file on
// disk: its holes in that range and what lies past its end, in pages. With
// no capacity to keep it is not needed and is 0.
func (f *File) diskGrowth(off, end int64) int64 {
	if f.store.sizeLimit == 0 {
		return 0
	}
	var st unix.Stat_t
	if unix.Fstat(f.fd, &st) != nil {
		return 0
	}
	var grow int64
	if end > st.Size {
		grow += end - max(off, st.Size)
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
		grow += min(data, end) - hole
		pos = data
	}
	return min(ceilPages(grow), maxPageIndex) * PageSize
}

// CapacityRoom is how many of n bytes written at off fit in what the
// capacity has left, counting every page they touch as new: 0 when there
// is no capacity or the room is less than the write's first page, and
// less than n otherwise. A write that failed with ENOSPC can be retried
// with that many bytes, to write what fits as tmpfs does.
func (s *Store) CapacityRoom(off int64, n int) int {
	if s.sizeLimit == 0 {
		return 0
	}
	room := s.sizeLimit - s.ramBytes.Load() - s.diskBytes.Load()
	if room <= 0 {
		return 0
	}
	fit := (off/PageSize+room/PageSize)*PageSize - off
	return int(min(max(fit, 0), int64(n)-1))
}

package spool

import (
	"errors"
	"fmt"

	"golang.org/x/sys/unix"
)

// What the limits leave room for, and changing them on a live Store.

// DefaultSpillReserve, as Config.SpillReserve, keeps spillReservePercent
// of the spill filesystem's size free, as ext4 reserves 5% of its blocks
// for root: the daemon often runs as root, and the spill filesystem is
// often the one the host runs on.
const (
	DefaultSpillReserve = -1
	spillReservePercent = 5
)

// reserveFor turns Config.SpillReserve into bytes.
func (s *Store) reserveFor(asked int64) (int64, error) {
	if asked != DefaultSpillReserve {
		return max(asked, 0), nil
	}
	st, err := s.Statfs()
	if err != nil {
		return 0, err
	}
	return int64(st.Blocks) * fsBlock(st) / 100 * spillReservePercent, nil
}

// SpillReserve is how much of the spill filesystem is kept free while
// there is no capacity (0: none).
func (s *Store) SpillReserve() int64 { return s.reserve }

// fsBlock is the unit of a statfs's block counts.
func fsBlock(st unix.Statfs_t) int64 {
	if st.Frsize > 0 {
		return st.Frsize
	}
	return st.Bsize
}

// spillRoom is how much more the backing files may take from the spill
// filesystem before they eat into its reserve (negative once they have);
// bounded is false when no reserve applies: there is a capacity, which
// bounds them instead, or no reserve was asked for.
func (s *Store) spillRoom() (room int64, bounded bool, err error) {
	if s.reserve <= 0 || s.sizeLimit.Load() > 0 {
		return 0, false, nil
	}
	st, err := s.Statfs()
	if err != nil {
		return 0, false, err
	}
	return int64(st.Bavail)*fsBlock(st) - s.reserve, true, nil
}

// SpillRoomAbove reports whether the spill filesystem has more than n
// bytes of room above its reserve (always, when no reserve applies). A
// caller that lets writes bypass the Store (FUSE passthrough) can stop
// doing so when room runs short, so that the reserve holds for them.
func (s *Store) SpillRoomAbove(n int64) bool {
	room, bounded, err := s.spillRoom()
	return err == nil && (!bounded || room > n)
}

// metadataBound bounds metadata when there is no memory budget: a quarter
// of physical RAM, as the default budget.
func metadataBound() int64 {
	var si unix.Sysinfo_t
	if err := unix.Sysinfo(&si); err != nil {
		return 1 << 30
	}
	return int64(si.Totalram) * int64(si.Unit) / 4
}

// DiskUse is what the backing files hold on disk now, from each one's
// st_blocks (including what reached them without the Store, by FUSE
// passthrough).
func (s *Store) DiskUse() int64 {
	var total int64
	for _, f := range s.onDisk() {
		f.mu.RLock()
		if f.fd >= 0 && !f.released {
			var st unix.Stat_t
			if unix.Fstat(f.fd, &st) == nil {
				total += st.Blocks * 512
			}
		}
		f.mu.RUnlock()
	}
	return total
}

// refreshAllDiskUse brings the counted disk use of every backing file up
// to date, for a capacity about to be kept.
func (s *Store) refreshAllDiskUse() {
	for _, f := range s.onDisk() {
		f.mu.RLock()
		if !f.released {
			f.refreshDiskUse(0)
		}
		f.mu.RUnlock()
	}
}

// Capacity is what statfs reports, in bytes.
type Capacity struct {
	Used  int64 // RAM pages, the backing files' disk use, and metadata
	Free  int64 // what can still be written, in all
	Avail int64 // what one file can still take: at most Free
	Total int64 // Used plus Free
}

// Capacity says what the files use and what can still be written: within
// the capacity if there is one, and within what the spill filesystem
// (less its reserve, without a capacity) and the memory budget have left.
// A file larger than the per-file threshold lives on disk only, so what
// one file can take is what the disk has left, or what RAM has left up to
// the threshold if that is more.
func (s *Store) Capacity() (Capacity, error) {
	st, err := s.Statfs()
	if err != nil {
		return Capacity{}, err
	}
	size, mem, maxSize := s.sizeLimit.Load(), s.memLimit.Load(), s.maxSize.Load()
	ram, meta := s.ramBytes.Load(), s.metaBytes.Load()
	disk := s.diskBytes.Load()
	diskFree := int64(st.Bavail) * fsBlock(st)
	if size == 0 {
		disk = s.DiskUse()
		diskFree -= s.reserve
	}
	diskFree = max(diskFree, 0)
	var ramFree int64
	if mem > 0 {
		ramFree = max(mem-ram-meta-s.nodeMemory(), 0)
	}
	oneFile := ramFree
	if maxSize > 0 {
		oneFile = min(oneFile, maxSize)
	}
	c := Capacity{Used: ram + disk + meta, Free: diskFree + ramFree, Avail: max(diskFree, oneFile)}
	if size > 0 {
		room := max(size-c.Used, 0)
		c.Free, c.Avail = min(c.Free, room), min(c.Avail, room)
	}
	c.Total = c.Used + c.Free
	return c, nil
}

// Limits are the limits a Store keeps (see Config); 0 is no limit.
type Limits struct {
	MaxSize   int64
	MemLimit  int64
	SizeLimit int64
}

// ErrInUse is the error of a SetLimits that asks for less than the files
// already use.
var ErrInUse = errors.New("less than what is in use")

// SetLimits changes the limits of a live Store, as a remount changes
// tmpfs's size=. A capacity below what the files use, or a memory budget
// below what metadata uses (it cannot roll over), fails with ErrInUse and
// changes nothing. A memory budget below what RAM pages use rolls files
// over until they fit. A new threshold applies to the next write, truncate
// or allocation past it.
func (s *Store) SetLimits(l Limits) error {
	if l.MaxSize < 0 || l.MemLimit < 0 || l.SizeLimit < 0 {
		return unix.EINVAL
	}
	s.evictMu.Lock() // no rollover to make room meanwhile
	defer s.evictMu.Unlock()
	tracking := s.sizeLimit.Load() > 0
	if l.SizeLimit > 0 && !tracking {
		s.refreshAllDiskUse()
	}
	s.chargeMu.Lock()
	ram, meta, nodes := s.ramBytes.Load(), s.metaBytes.Load(), s.nodeMemory()
	if used := ram + s.diskBytes.Load() + meta; l.SizeLimit > 0 && used > l.SizeLimit {
		s.chargeMu.Unlock()
		return fmt.Errorf("size %d: %w (%d bytes)", l.SizeLimit, ErrInUse, used)
	}
	if l.MemLimit > 0 && meta+nodes > l.MemLimit {
		s.chargeMu.Unlock()
		return fmt.Errorf("memory budget %d: %w by metadata (%d bytes)", l.MemLimit, ErrInUse, meta+nodes)
	}
	s.maxSize.Store(l.MaxSize)
	s.memLimit.Store(l.MemLimit)
	s.sizeLimit.Store(l.SizeLimit)
	s.chargeMu.Unlock()
	if l.SizeLimit > 0 && !tracking {
		// Writes that began before the capacity was published did not
		// count their growth.
		s.refreshAllDiskUse()
	}
	for l.MemLimit > 0 && s.ramBytes.Load()+s.metaBytes.Load()+s.nodeMemory() > l.MemLimit {
		victim := s.pickVictim()
		if victim == nil {
			break // what is left is reserved for writes under way
		}
		if err := victim.Spill(); err != nil && !errors.Is(err, ErrReleased) {
			return fmt.Errorf("memory budget %d set, but the files in RAM could not all roll over to fit it: %w", l.MemLimit, err)
		}
	}
	return nil
}

package spool

import (
	"errors"
	"testing"

	"golang.org/x/sys/unix"
)

// Tests of metadata charges, the spill reserve, Capacity and SetLimits:
// see limits.go and budget.go.

// TestChargeMetadataCapacity checks that metadata counts against the
// capacity with the files' pages: past it ChargeMetadata fails with ENOSPC
// and changes nothing, and pages cannot take what metadata holds.
func TestChargeMetadataCapacity(t *testing.T) {
	const limit = 16 * PageSize
	s := openBudgetStore(t, Config{SizeLimit: limit})
	f := newBudgetFile(t, s, 1)
	if _, err := f.WriteAt(randomBytes(1, 8*PageSize), 0); err != nil {
		t.Fatal(err)
	}
	if err := s.ChargeMetadata(8*PageSize+1, 0); !errors.Is(err, unix.ENOSPC) {
		t.Errorf("ChargeMetadata past the capacity: %v, want ENOSPC", err)
	}
	if got := s.Stats().MetaBytes; got != 0 {
		t.Errorf("after a refused charge, MetaBytes = %d, want 0", got)
	}
	if err := s.ChargeMetadata(6*PageSize, 0); err != nil {
		t.Fatalf("ChargeMetadata within the capacity: %v", err)
	}
	if _, err := f.WriteAt(randomBytes(2, 3*PageSize), 8*PageSize); !errors.Is(err, unix.ENOSPC) {
		t.Errorf("writing 3 pages with 2 left beside the metadata: %v, want ENOSPC", err)
	}
	c, err := s.Capacity()
	if err != nil {
		t.Fatal(err)
	}
	if want := (Capacity{Used: 14 * PageSize, Free: 2 * PageSize, Avail: 2 * PageSize, Total: limit}); c != want {
		t.Errorf("Capacity() = %+v, want %+v", c, want)
	}
	s.ReleaseMetadata(6 * PageSize)
	if _, err := f.WriteAt(randomBytes(2, 3*PageSize), 8*PageSize); err != nil {
		t.Errorf("writing 3 pages once the metadata is given back: %v", err)
	}
	if got := s.Stats().MetaBytes; got != 0 {
		t.Errorf("MetaBytes = %d after everything was given back", got)
	}
}

// TestChargeMetadataRollsFilesOver checks that metadata, which cannot
// leave RAM, makes room in the memory budget by rolling files over, counts
// NodeMemory and headroom, and fails with ENOSPC once no file's pages are
// left to move.
func TestChargeMetadataRollsFilesOver(t *testing.T) {
	const budget = 32 * PageSize
	nodes := int64(4 * PageSize)
	s := openBudgetStore(t, Config{MemLimit: budget, NodeMemory: func() int64 { return nodes }})
	f := newBudgetFile(t, s, 1)
	data := randomBytes(3, 20*PageSize)
	if _, err := f.WriteAt(data, 0); err != nil {
		t.Fatal(err)
	}
	if f.Residency() != InRAM {
		t.Fatal("the file is not in RAM to begin with")
	}
	// 20 pages of data, 4 of nodes: 8 pages fit, 10 need the file out.
	if err := s.ChargeMetadata(6*PageSize, 2*PageSize); err != nil {
		t.Fatalf("charging 6 pages with 2 of headroom: %v", err)
	}
	if f.Residency() != InRAM {
		t.Errorf("a charge that fit rolled the file over")
	}
	if err := s.ChargeMetadata(4*PageSize, 0); err != nil {
		t.Fatalf("charging 4 pages more, past the budget with the file: %v", err)
	}
	if f.Residency() != OnDisk {
		t.Errorf("the file stayed in RAM though metadata needed the room")
	}
	wantContent(t, f, data)
	if err := s.ChargeMetadata(PageSize, 18*PageSize+1); !errors.Is(err, unix.ENOSPC) {
		t.Errorf("charging past the budget with no file in RAM: %v, want ENOSPC", err)
	}
	nodes = 0
	if err := s.ChargeMetadata(22*PageSize, 0); err != nil {
		t.Errorf("charging what NodeMemory gave back: %v", err)
	}
	s.ReleaseMetadata(32 * PageSize)
}

// TestMetadataBoundWithoutBudget checks that without a memory budget
// metadata is still bounded (by a quarter of RAM).
func TestMetadataBoundWithoutBudget(t *testing.T) {
	s := openBudgetStore(t, Config{})
	if err := s.ChargeMetadata(metadataBound()+1, 0); !errors.Is(err, unix.ENOSPC) {
		t.Errorf("charging more than a quarter of RAM without a budget: %v, want ENOSPC", err)
	}
	if err := s.ChargeMetadata(PageSize, 0); err != nil {
		t.Errorf("charging a page without a budget: %v", err)
	}
	s.ReleaseMetadata(PageSize)
}

// TestSpillReserve checks the guard without a capacity: with a reserve
// larger than what the spill filesystem has free, nothing can grow on
// disk (writes past the end, holes filled, allocations, rollovers fail
// with ENOSPC and change nothing), while overwriting and freeing work;
// with a capacity, the reserve does not apply.
func TestSpillReserve(t *testing.T) {
	probe := openBudgetStore(t, Config{})
	st, err := probe.Statfs()
	if err != nil {
		t.Fatal(err)
	}
	reserve := int64(st.Blocks) * fsBlock(st) // more than can ever be free
	s := openBudgetStore(t, Config{MaxSize: 4 * PageSize, SpillReserve: reserve, SizeLimit: 1 << 40})
	if got := s.SpillReserve(); got != reserve {
		t.Fatalf("SpillReserve() = %d, want %d", got, reserve)
	}
	disk := newBudgetFile(t, s, 1)
	data := randomBytes(4, 8*PageSize)
	if _, err := disk.WriteAt(data, 0); err != nil {
		t.Fatalf("writing with a capacity, which overrides the reserve: %v", err)
	}
	ram := newBudgetFile(t, s, 2)
	small := randomBytes(5, 2*PageSize)
	if _, err := ram.WriteAt(small, 0); err != nil {
		t.Fatal(err)
	}
	if err := s.SetLimits(Limits{MaxSize: 4 * PageSize}); err != nil {
		t.Fatalf("SetLimits without a capacity: %v", err)
	}
	if _, err := disk.WriteAt(randomBytes(6, PageSize), 8*PageSize); !errors.Is(err, unix.ENOSPC) {
		t.Errorf("growing a file on disk into the reserve: %v, want ENOSPC", err)
	}
	if err := disk.Allocate(16*PageSize, PageSize, FallocKeepSize); !errors.Is(err, unix.ENOSPC) {
		t.Errorf("allocating on disk into the reserve: %v, want ENOSPC", err)
	}
	if err := ram.Spill(); !errors.Is(err, unix.ENOSPC) || ram.Residency() != InRAM {
		t.Errorf("rolling a file over into the reserve: %v, residency %v; want ENOSPC and RAM", err, ram.Residency())
	}
	over := randomBytes(7, PageSize)
	if _, err := disk.WriteAt(over, PageSize); err != nil {
		t.Errorf("overwriting a file on disk: %v", err)
	}
	copy(data[PageSize:], over)
	wantContent(t, disk, data)
	wantContent(t, ram, small)
	if s.SpillRoomAbove(0) {
		t.Errorf("SpillRoomAbove(0) with the reserve larger than the free space")
	}
	if c, err := s.Capacity(); err != nil || c.Avail > 4*PageSize {
		t.Errorf("Capacity() = %+v, %v; want Avail no more than a file in RAM can take", c, err)
	}
}

// TestSetLimits checks changes of a live Store's limits: a capacity below
// what the files and metadata use, or a budget below what metadata uses,
// is refused with ErrInUse and changes nothing; a capacity set on a Store
// that had none counts what the files already hold on disk; a smaller
// budget rolls files over to fit; a new threshold applies to the next
// write.
func TestSetLimits(t *testing.T) {
	s := openBudgetStore(t, Config{MaxSize: 16 * PageSize, MemLimit: 64 * PageSize})
	disk := newBudgetFile(t, s, 1)
	if _, err := disk.WriteAt(randomBytes(1, 20*PageSize), 0); err != nil {
		t.Fatal(err)
	}
	var ram []*File
	for i := range 3 {
		f := newBudgetFile(t, s, uint64(10+i))
		if _, err := f.WriteAt(randomBytes(uint64(10+i), 8*PageSize), 0); err != nil {
			t.Fatal(err)
		}
		ram = append(ram, f)
	}
	if err := s.ChargeMetadata(4*PageSize, 0); err != nil {
		t.Fatal(err)
	}
	defer s.ReleaseMetadata(4 * PageSize)
	used := 20*PageSize + 24*PageSize + 4*PageSize // on disk, in RAM, metadata
	for _, l := range []Limits{
		{MaxSize: 16 * PageSize, MemLimit: 64 * PageSize, SizeLimit: int64(used) - PageSize},
		{MaxSize: 16 * PageSize, MemLimit: 3 * PageSize},
	} {
		if err := s.SetLimits(l); !errors.Is(err, ErrInUse) {
			t.Errorf("SetLimits(%+v): %v, want ErrInUse", l, err)
		}
		if mem, size := s.Limits(); mem != 64*PageSize || size != 0 {
			t.Errorf("after a refused SetLimits(%+v), Limits() = %d, %d", l, mem, size)
		}
	}
	if err := s.SetLimits(Limits{MaxSize: 16 * PageSize, MemLimit: 64 * PageSize, SizeLimit: int64(used) + PageSize}); err != nil {
		t.Fatalf("SetLimits with a capacity above what is used: %v", err)
	}
	if got := s.Stats().DiskBytes; got < 20*PageSize {
		t.Errorf("after a capacity was set, DiskBytes = %d, want the file on disk's %d counted", got, 20*PageSize)
	}
	if _, err := ram[0].WriteAt(randomBytes(2, 2*PageSize), 8*PageSize); !errors.Is(err, unix.ENOSPC) {
		t.Errorf("writing 2 pages with 1 left: %v, want ENOSPC", err)
	}
	if err := s.SetLimits(Limits{MaxSize: 4 * PageSize, MemLimit: 12 * PageSize}); err != nil {
		t.Fatalf("SetLimits with a smaller budget: %v", err)
	}
	if ram := s.Stats().RAMBytes; ram+4*PageSize > 12*PageSize {
		t.Errorf("after the budget shrank to 12 pages, RAMBytes = %d pages beside 4 of metadata", ram/PageSize)
	}
	f := newBudgetFile(t, s, 20)
	if _, err := f.WriteAt(randomBytes(3, 5*PageSize), 0); err != nil {
		t.Fatal(err)
	}
	if f.Residency() != OnDisk {
		t.Errorf("a 5-page file after MaxSize became 4 pages is in RAM")
	}
	if err := s.SetLimits(Limits{MaxSize: -1}); !errors.Is(err, unix.EINVAL) {
		t.Errorf("SetLimits with a negative limit: %v, want EINVAL", err)
	}
}

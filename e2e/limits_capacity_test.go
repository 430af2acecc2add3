package e2e

// What df says of a mount, and what it keeps of a small spill disk: Used
// is the mount's own data, Avail what one file can still take, a failed
// fallocate gives back what the spill filesystem gave it, and without
// --size a reserve of the spill disk stays free.

import (
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"golang.org/x/sys/unix"
)

// limMountExt4 makes an ext4 filesystem of mib MiB (4 KiB blocks, 5%
// reserved for root, as mkfs.ext4 does by default) in a file and mounts
// it on a fresh directory: a small spill disk like the one a host runs
// on. It is unmounted when the test ends.
func limMountExt4(t *testing.T, mib int64) string {
	t.Helper()
	requireRoot(t)
	if _, err := exec.LookPath("mkfs.ext4"); err != nil {
		if os.Getenv("CI") == "true" {
			t.Fatalf("mkfs.ext4 (e2fsprogs) is needed under CI=true: %v", err)
		}
		t.Skipf("no mkfs.ext4: %v", err)
	}
	img := filepath.Join(t.TempDir(), "spill.img")
	if err := os.WriteFile(img, nil, 0o600); err != nil {
		t.Fatal(err)
	}
	if err := os.Truncate(img, mib*limMiB); err != nil {
		t.Fatal(err)
	}
	runCmd(t, "/", "mkfs.ext4", "-q", "-F", "-b", "4096", "-m", "5", img)
	dir := t.TempDir()
	runCmd(t, "/", "mount", "-o", "loop", img, dir)
	t.Cleanup(func() {
		if err := unix.Unmount(dir, 0); err != nil {
			t.Errorf("unmount the ext4 spill disk %s: %v", dir, err)
			unix.Unmount(dir, unix.MNT_DETACH)
		}
	})
	return dir
}

// limAvail is what statfs says unprivileged users can still write on dir,
// in bytes.
func limAvail(t *testing.T, dir string) int64 {
	t.Helper()
	st, err := limStatfs(dir)
	if err != nil {
		t.Fatal(err)
	}
	return int64(st.bavail) * 4096
}

// limSize is what statfs says dir's filesystem holds in all, in bytes.
func limSize(t *testing.T, dir string) int64 {
	t.Helper()
	st, err := limStatfs(dir)
	if err != nil {
		t.Fatal(err)
	}
	return int64(st.blocks) * 4096
}

// limFallocate runs fallocate(2) with mode on a new file at path and
// returns its error, the file's size and st_blocks after.
func limFallocate(path string, mode uint32, length int64) (err error, size, blocks int64) {
	fd, err := unix.Open(path, unix.O_CREAT|unix.O_RDWR|unix.O_CLOEXEC, 0o644)
	if err != nil {
		return err, 0, 0
	}
	defer unix.Close(fd)
	err = unix.Fallocate(fd, mode, 0, length)
	var st unix.Stat_t
	unix.Fstat(fd, &st)
	return err, st.Size, st.Blocks
}

// limWriteUntilFull appends chunk-sized writes to path through one
// descriptor until one fails, and returns the bytes acknowledged and the
// failure (nil if it wrote max bytes).
func limWriteUntilFull(path string, chunk, max int64) (int64, error) {
	fd, err := unix.Open(path, unix.O_CREAT|unix.O_WRONLY|unix.O_CLOEXEC, 0o644)
	if err != nil {
		return 0, err
	}
	defer unix.Close(fd)
	data := limContent(42, chunk)
	var done int64
	for done < max {
		n, err := unix.Pwrite(fd, data, done)
		if n > 0 {
			done += int64(n)
		}
		if err != nil {
			return done, err
		}
	}
	return done, nil
}

// limFileBytes sums st_blocks*512 of the files in dir.
func limFileBytes(t *testing.T, dir string) int64 {
	t.Helper()
	entries, err := os.ReadDir(dir)
	if err != nil {
		t.Fatal(err)
	}
	var total int64
	for _, e := range entries {
		var st unix.Stat_t
		if err := unix.Lstat(filepath.Join(dir, e.Name()), &st); err != nil {
			t.Fatal(err)
		}
		total += st.Blocks * 512
	}
	return total
}

// TestLimitsDfIsTheMounts checks what df says of a mount without --size
// whose spill disk (a 64 MiB ext4) also holds 24 MiB of someone else's:
// Used is what the mount's files hold (RAM pages, their spill files'
// blocks, their names), not the spill disk's use; Avail is what one file
// can still take, the spill disk's free space less its reserve, so that a
// fallocate of Avail less 512 KiB succeeds and one past it fails without
// taking space; Size is Used plus what can still be written, in RAM too.
func TestLimitsDfIsTheMounts(t *testing.T) {
	spill := limMountExt4(t, 64)
	if err := os.WriteFile(filepath.Join(spill, "someone-elses"), limContent(9, 24*limMiB), 0o600); err != nil {
		t.Fatal(err)
	}
	m := startMount(t, "--spill-dir", spill, "--max-size", "1M", "--mem-limit", "16M")
	for i := range 3 {
		if err := os.WriteFile(m.Path(fmt.Sprintf("r%d", i)), limContent(uint64(i), 300*limKiB), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	for i := range 2 {
		if err := os.WriteFile(m.Path(fmt.Sprintf("d%d", i)), limContent(uint64(10+i), 3*limMiB), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	st := limStatsOf(t, m.Dir)
	files := limFileBytes(t, m.Dir)
	used := limUsedBytes(t, m.Dir)
	t.Logf("the files hold %s (stats: %s in RAM, %s on disk, %d bytes of names); df: size %s, used %s, avail %s; the spill disk: size %s, avail %s, reserve %s",
		limMiBf(files), limMiBf(st.RAMBytes), limMiBf(st.DiskBytes), st.MetaBytes, limMiBf(limSize(t, m.Dir)), limMiBf(used),
		limMiBf(limAvail(t, m.Dir)), limMiBf(limSize(t, spill)), limMiBf(limAvail(t, spill)), limMiBf(st.SpillReserve))
	if want := files + st.MetaBytes; used < want-4096 || used > want+4096 {
		t.Errorf("df says %s used; the mount's files hold %s and their names %d bytes (the spill disk holds %s of others')",
			limMiBf(used), limMiBf(files), st.MetaBytes, limMiBf(24*limMiB))
	}
	if want := limSize(t, spill) * 5 / 100; st.SpillReserve < want-4096 || st.SpillReserve > want+4096 {
		t.Errorf("stats spill_reserve %d, want 5%% of the spill disk's %d", st.SpillReserve, limSize(t, spill))
	}
	diskRoom := limAvail(t, spill) - st.SpillReserve
	avail := limAvail(t, m.Dir)
	if avail < diskRoom-64*limKiB || avail > diskRoom+64*limKiB {
		t.Errorf("df says %s available; the spill disk has %s less its reserve of %s", limMiBf(avail), limMiBf(limAvail(t, spill)), limMiBf(st.SpillReserve))
	}
	if size := limSize(t, m.Dir); size < used+avail {
		t.Errorf("df says size %s, used %s, available %s: size is less than used plus available", limMiBf(size), limMiBf(used), limMiBf(avail))
	}

	// What df says can be written into one file can be.
	before := limAvail(t, spill)
	err, size, _ := limFallocate(m.Path("one"), 0, avail-512*limKiB)
	if err != nil || size != avail-512*limKiB {
		t.Errorf("fallocate -l (Avail - 512K) = %d: %s, size %d; want it to succeed", avail-512*limKiB, limErrnoName(err), size)
	}
	if err := os.Remove(m.Path("one")); err != nil {
		t.Fatal(err)
	}
	waitFor(t, 10*time.Second, "the spill disk to get the fallocated file's space back", func() bool {
		return limAvail(t, spill) >= before-64*limKiB
	})
	err, size, blocks := limFallocate(m.Path("more"), 0, avail+limMiB)
	if !errors.Is(err, unix.ENOSPC) || size != 0 || blocks != 0 {
		t.Errorf("fallocate -l (Avail + 1M): %s, size %d, blocks %d; want ENOSPC, 0 and 0", limErrnoName(err), size, blocks)
	}
	if now := limAvail(t, spill); now < before-64*limKiB {
		t.Errorf("after the fallocate that failed, the spill disk has %s available, %s before: it kept space", limMiBf(now), limMiBf(before))
	}
}

// TestLimitsFallocateUndo checks that a fallocate the spill filesystem
// cannot complete leaves nothing allocated, as on tmpfs: with --size 1G
// over a 64 MiB ext4 spill disk, df says what the disk can take (not
// 1 GiB), a fallocate of more than that fails with ENOSPC, the file keeps
// its size and data and holds no new blocks, the disk has its space back,
// and other files can still be written.
func TestLimitsFallocateUndo(t *testing.T) {
	spill := limMountExt4(t, 64)
	m := startMount(t, "--spill-dir", spill, "--max-size", "1M", "--size", "1G")
	avail := limAvail(t, m.Dir)
	t.Logf("df: size %s, available %s; the spill disk: available %s", limMiBf(limSize(t, m.Dir)), limMiBf(avail), limMiBf(limAvail(t, spill)))
	if avail > limAvail(t, spill)+64*limKiB {
		t.Errorf("df says %s available with --size 1G on a spill disk with %s: want what the disk can take", limMiBf(avail), limMiBf(limAvail(t, spill)))
	}
	head := limContent(5, 2*limMiB)
	for _, c := range []struct {
		name string
		mode uint32
		keep []byte // data the file holds before
	}{
		{"new", 0, nil},
		{"keep-size", unix.FALLOC_FL_KEEP_SIZE, nil},
		{"with-data", 0, head},
	} {
		path := m.Path(c.name)
		if err := os.WriteFile(path, c.keep, 0o644); err != nil {
			t.Fatal(err)
		}
		before := limAvail(t, spill)
		var st0 unix.Stat_t
		if err := unix.Stat(path, &st0); err != nil {
			t.Fatal(err)
		}
		err, size, blocks := limFallocate(path, c.mode, before+8*limMiB)
		after := limAvail(t, spill)
		t.Logf("%s: fallocate of %s: %s; size %d, blocks %d (before %d, %d); spill disk available %s before, %s after",
			c.name, limMiBf(before+8*limMiB), limErrnoName(err), size, blocks, st0.Size, st0.Blocks, limMiBf(before), limMiBf(after))
		if !errors.Is(err, unix.ENOSPC) {
			t.Errorf("%s: fallocate past the spill disk: %s, want ENOSPC", c.name, limErrnoName(err))
		}
		if size != st0.Size || blocks != st0.Blocks {
			t.Errorf("%s: after the failed fallocate, size %d and %d blocks; want %d and %d, as before", c.name, size, blocks, st0.Size, st0.Blocks)
		}
		if after < before-64*limKiB {
			t.Errorf("%s: the failed fallocate kept %s of the spill disk", c.name, limMiBf(before-after))
		}
		limCheckFile(t, path, c.keep)
	}
	if n, err := limWriteUntilFull(m.Path("after"), limMiB, 16*limMiB); err != nil {
		t.Errorf("writing 16 MiB after the failed fallocates: %d bytes, then %v", n, err)
	}
}

// TestLimitsSpillReserve checks the guard that keeps a runaway job from
// filling the host's disk: without --size, writing a file until it fails
// stops with ENOSPC while the spill disk still has its reserve (5% of its
// size) available to others; the serving line and tmpmount stat say so;
// the file holds what was acknowledged; reopening it and writing fails
// again; a fallocate of all the disk's free space fails and takes
// nothing; removing the file makes room. With --size, which overrides the
// reserve, the same writer fills the disk.
func TestLimitsSpillReserve(t *testing.T) {
	spill := limMountExt4(t, 64)
	reserve := limSize(t, spill) * 5 / 100
	m := startMount(t, "--spill-dir", spill, "--max-size", "1M")
	st := limStatsOf(t, m.Dir)
	if st.SpillReserve < reserve-4096 || st.SpillReserve > reserve+4096 {
		t.Errorf("stats spill_reserve %d, want 5%% of the spill disk: %d", st.SpillReserve, reserve)
	}
	if line := m.Stderr.String(); !strings.Contains(line, "size none (the spill disk keeps ") {
		t.Errorf("the serving line does not say what is kept free of the spill disk:\n%s", line)
	}
	out := runCmd(t, "/", tmpmountBin, "stat", m.Dir)
	if !strings.Contains(out, "the spill disk keeps") {
		t.Errorf("tmpmount stat does not say what is kept free of the spill disk:\n%s", out)
	}

	acked, err := limWriteUntilFull(m.Path("runaway"), limMiB, 128*limMiB)
	left := limAvail(t, spill)
	t.Logf("the runaway writer wrote %s, then %s; the spill disk has %s available (reserve %s); df of the mount: available %s",
		limMiBf(acked), limErrnoName(err), limMiBf(left), limMiBf(reserve), limMiBf(limAvail(t, m.Dir)))
	if !errors.Is(err, unix.ENOSPC) {
		t.Fatalf("writing 128 MiB to a 64 MiB spill disk: %s after %s, want ENOSPC", limErrnoName(err), limMiBf(acked))
	}
	if left < reserve-256*limKiB || left > reserve+2*limMiB {
		t.Errorf("the writer stopped with %s of the spill disk available; want its reserve, %s", limMiBf(left), limMiBf(reserve))
	}
	var fst unix.Stat_t
	if err := unix.Stat(m.Path("runaway"), &fst); err != nil || fst.Size != acked {
		t.Errorf("the runaway file has size %d (%v), want the %d bytes acknowledged", fst.Size, err, acked)
	}
	if n, err := limPwriteChunksAt(m.Path("runaway"), acked, limMiB); !errors.Is(err, unix.ENOSPC) || n != 0 {
		t.Errorf("reopening the file and writing 1 MiB more: %d bytes, %s; want 0, ENOSPC", n, limErrnoName(err))
	}
	before := limAvail(t, spill)
	if err, size, blocks := limFallocate(m.Path("all"), 0, before); !errors.Is(err, unix.ENOSPC) || size != 0 || blocks != 0 {
		t.Errorf("fallocate of all the spill disk's free space: %s, size %d, blocks %d; want ENOSPC, 0, 0", limErrnoName(err), size, blocks)
	}
	if now := limAvail(t, spill); now < before-64*limKiB {
		t.Errorf("the fallocate that failed took %s of the spill disk", limMiBf(before-now))
	}
	for _, name := range []string{"runaway", "all"} {
		if err := os.Remove(m.Path(name)); err != nil {
			t.Fatal(err)
		}
	}
	waitFor(t, 10*time.Second, "the spill disk's space back", func() bool { return limAvail(t, spill) > reserve+32*limMiB })
	if n, err := limWriteUntilFull(m.Path("again"), limMiB, 8*limMiB); err != nil {
		t.Errorf("writing 8 MiB after removing the file: %d bytes, then %v", n, err)
	}
	if err := os.Remove(m.Path("again")); err != nil {
		t.Fatal(err)
	}

	// --size overrides the reserve.
	sized := startMount(t, "--spill-dir", spill, "--max-size", "1M", "--size", "1G")
	waitFor(t, 10*time.Second, "the spill disk's space back", func() bool { return limAvail(t, spill) > reserve+32*limMiB })
	acked, err = limWriteUntilFull(sized.Path("runaway"), limMiB, 128*limMiB)
	left = limAvail(t, spill)
	t.Logf("with --size 1G the writer wrote %s, then %s; the spill disk has %s available", limMiBf(acked), limErrnoName(err), limMiBf(left))
	if !errors.Is(err, unix.ENOSPC) || left > reserve/2 {
		t.Errorf("with --size 1G, writing until full: %s with %s of the spill disk left; want ENOSPC with the reserve used too", limErrnoName(err), limMiBf(left))
	}
}

// limPwriteChunksAt opens path anew and writes n bytes at off.
func limPwriteChunksAt(path string, off, n int64) (int64, error) {
	fd, err := unix.Open(path, unix.O_WRONLY|unix.O_CLOEXEC, 0)
	if err != nil {
		return 0, err
	}
	defer unix.Close(fd)
	return limPwriteChunks(fd, limContent(43, n), off, int(n))
}

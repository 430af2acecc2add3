package e2e

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"math/rand/v2"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"golang.org/x/sys/unix"
)

// residencyAttr is the virtual xattr that says where a file's data lives.
const residencyAttr = "user.tmpmount.residency"

// nobodyUID is the unprivileged user the permission tests run as.
const nobodyUID = 65534

// readResidency returns path's residency xattr: "memory" or "disk".
func readResidency(t *testing.T, path string) string {
	t.Helper()
	buf := make([]byte, 64)
	n, err := unix.Getxattr(path, residencyAttr, buf)
	if err != nil {
		t.Fatalf("getxattr(%s, %s): %v", path, residencyAttr, err)
	}
	return string(buf[:n])
}

// wantResidency is the residency a file of size bytes must have when
// max-size is maxSize and the file never exceeded it before.
func wantResidency(size, maxSize int64) string {
	if maxSize > 0 && size > maxSize {
		return "disk"
	}
	return "memory"
}

// seededBytes returns n pseudo-random bytes from seed.
func seededBytes(seed uint64, n int64) []byte {
	var key [32]byte
	key[0], key[1] = byte(seed), byte(seed>>8)
	b := make([]byte, n)
	rand.NewChaCha8(key).Read(b)
	return b
}

// openDirect opens path for reading with O_DIRECT, so that reads go to the
// daemon rather than the kernel's page cache.
func openDirect(t *testing.T, path string) *os.File {
	t.Helper()
	f, err := os.OpenFile(path, os.O_RDONLY|syscall.O_DIRECT, 0)
	if err != nil {
		t.Fatalf("open %s O_DIRECT: %v", path, err)
	}
	t.Cleanup(func() { f.Close() })
	return f
}

// preadAll reads size bytes of f from offset 0 and fails on a short read.
func preadAll(t *testing.T, f *os.File, size int64) []byte {
	t.Helper()
	buf := make([]byte, size+1) // one more: a longer file shows up
	n, err := f.ReadAt(buf, 0)
	if err != nil && !errors.Is(err, io.EOF) {
		t.Fatalf("pread %s: %v", f.Name(), err)
	}
	if int64(n) != size {
		t.Fatalf("pread %s: got %d bytes, want %d", f.Name(), n, size)
	}
	return buf[:n]
}

// firstDiff describes where got and want first differ, or "" if equal.
func firstDiff(got, want []byte) string {
	if bytes.Equal(got, want) {
		return ""
	}
	for i := range min(len(got), len(want)) {
		if got[i] != want[i] {
			return fmt.Sprintf("first difference at byte %d: got %#02x, want %#02x (lengths %d and %d)", i, got[i], want[i], len(got), len(want))
		}
	}
	return fmt.Sprintf("lengths differ: got %d bytes, want %d", len(got), len(want))
}

// checkContent reads path twice, through the page cache and with O_DIRECT
// (which asks the daemon), and compares both with want.
func checkContent(t *testing.T, path string, want []byte) {
	t.Helper()
	f, err := os.Open(path)
	if err != nil {
		t.Fatalf("open %s: %v", path, err)
	}
	defer f.Close()
	if d := firstDiff(preadAll(t, f, int64(len(want))), want); d != "" {
		t.Errorf("%s read back through the page cache: %s", path, d)
	}
	df := openDirect(t, path)
	if d := firstDiff(preadAll(t, df, int64(len(want))), want); d != "" {
		t.Errorf("%s read back with O_DIRECT: %s", path, d)
	}
}

// daemonPID is the process id of m's daemon.
func daemonPID(m *Mount) int { return m.cmd.Process.Pid }

// daemonDone reports whether m's daemon has exited.
func daemonDone(m *Mount) bool {
	select {
	case <-m.done:
		return true
	default:
		return false
	}
}

// procStatusField returns a field of /proc/pid/status, such as "VmRSS" or
// "Uid", without its name.
func procStatusField(t *testing.T, pid int, name string) string {
	t.Helper()
	data, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", pid))
	if err != nil {
		t.Fatalf("read status of pid %d: %v", pid, err)
	}
	for _, line := range strings.Split(string(data), "\n") {
		if v, ok := strings.CutPrefix(line, name+":"); ok {
			return strings.TrimSpace(v)
		}
	}
	t.Fatalf("no %s in /proc/%d/status", name, pid)
	return ""
}

// vmRSSKiB returns the resident set size of pid in KiB.
func vmRSSKiB(t *testing.T, pid int) int64 {
	t.Helper()
	v := procStatusField(t, pid, "VmRSS")
	kib, err := strconv.ParseInt(strings.TrimSuffix(v, " kB"), 10, 64)
	if err != nil {
		t.Fatalf("VmRSS of pid %d: %q: %v", pid, v, err)
	}
	return kib
}

// effectiveUID returns the effective uid of pid.
func effectiveUID(t *testing.T, pid int) uint32 {
	t.Helper()
	f := strings.Fields(procStatusField(t, pid, "Uid"))
	if len(f) < 2 {
		t.Fatalf("Uid of pid %d: %q", pid, f)
	}
	uid, err := strconv.ParseUint(f[1], 10, 32)
	if err != nil {
		t.Fatalf("Uid of pid %d: %v", pid, err)
	}
	return uint32(uid)
}

// privateSpillDirIn returns the private spill directory the daemon made in
// parent, failing unless there is exactly one entry there.
func privateSpillDirIn(t *testing.T, parent string) string {
	t.Helper()
	entries, err := os.ReadDir(parent)
	if err != nil {
		t.Fatalf("read spill parent: %v", err)
	}
	if len(entries) != 1 {
		var names []string
		for _, e := range entries {
			names = append(names, e.Name())
		}
		t.Fatalf("spill parent %s holds %q, want exactly one private spill dir", parent, names)
	}
	return filepath.Join(parent, entries[0].Name())
}

// spillBackingFds returns the descriptors of pid that are nameless backing
// files inside spillDir, as fd number -> link target. O_TMPFILE files show
// as "spillDir/#NNN (deleted)", named-then-unlinked ones as
// "spillDir/NAME (deleted)".
func spillBackingFds(t *testing.T, pid int, spillDir string) map[string]string {
	t.Helper()
	fdDir := fmt.Sprintf("/proc/%d/fd", pid)
	entries, err := os.ReadDir(fdDir)
	if err != nil {
		t.Fatalf("read %s: %v", fdDir, err)
	}
	fds := map[string]string{}
	for _, e := range entries {
		target, err := os.Readlink(filepath.Join(fdDir, e.Name()))
		if err != nil {
			continue // closed meanwhile
		}
		rest, ok := strings.CutPrefix(target, spillDir+"/")
		if ok && (strings.HasSuffix(rest, " (deleted)") || strings.HasPrefix(rest, "#")) {
			fds[e.Name()] = target
		}
	}
	return fds
}

// makeTraversable gives dir mode 0755, so that nobody can reach what is
// below it (t.TempDir's directories are 0700).
func makeTraversable(t *testing.T, dir string) {
	t.Helper()
	if err := os.Chmod(dir, 0o755); err != nil {
		t.Fatalf("chmod %s: %v", dir, err)
	}
}

// nobodyReachableDir returns a fresh 0755 directory that nobody can reach,
// removed when the test ends.
func nobodyReachableDir(t *testing.T) string {
	t.Helper()
	dir, err := os.MkdirTemp("", "tmpmount-e2e-nobody-")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.RemoveAll(dir) })
	makeTraversable(t, dir)
	return dir
}

// nobodyOwnedDir makes dir owned by nobody.
func nobodyOwnedDir(t *testing.T, dir string) string {
	t.Helper()
	if err := os.MkdirAll(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.Chown(dir, nobodyUID, nobodyUID); err != nil {
		t.Fatal(err)
	}
	return dir
}

// binaryForNobody copies the binary under test into dir (tmpmountBin
// lives in a 0700 directory) and returns the copy's path.
func binaryForNobody(t *testing.T, dir string) string {
	t.Helper()
	data, err := os.ReadFile(tmpmountBin)
	if err != nil {
		t.Fatal(err)
	}
	bin := filepath.Join(dir, "tmpmount")
	if err := os.WriteFile(bin, data, 0o755); err != nil {
		t.Fatal(err)
	}
	return bin
}

// asNobody returns a command that runs argv as uid and gid 65534 with no
// supplementary groups.
func asNobody(argv ...string) *exec.Cmd {
	args := append([]string{"--reuid=65534", "--regid=65534", "--clear-groups", "--"}, argv...)
	cmd := exec.Command("setpriv", args...)
	cmd.Dir = "/"
	return cmd
}

// nobodyShell runs sh -c script as nobody with args as $1... and returns
// its combined output and exit status.
func nobodyShell(t *testing.T, script string, args ...string) (string, int) {
	t.Helper()
	cmd := asNobody(append([]string{"sh", "-c", script, "sh"}, args...)...)
	out, err := cmd.CombinedOutput()
	var ee *exec.ExitError
	switch {
	case err == nil:
		return string(out), 0
	case errors.As(err, &ee):
		return string(out), ee.ExitCode()
	default:
		t.Fatalf("run as nobody: %v", err)
		return "", -1
	}
}

// mountReferenceTmpfs mounts a tmpfs with opts on a fresh directory that
// nobody can reach.
func mountReferenceTmpfs(t *testing.T, opts string) string {
	t.Helper()
	dir := filepath.Join(nobodyReachableDir(t), "tmpfs")
	if err := os.Mkdir(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	return mountTmpfs(t, dir, opts)
}

// TestRolloverThresholdBoundary checks that a file of exactly max-size
// bytes stays in memory and one byte more goes to disk, whether the file
// grows by one write(2), by many small writes, or by ftruncate(2), and
// that the data reads back unchanged either way.
func TestRolloverThresholdBoundary(t *testing.T) {
	const maxSize = 64 << 10
	m := startMount(t, "--max-size", "64k")
	prefix := seededBytes(1, 1000)

	tests := []struct {
		name string
		size int64
		grow string // "write": one write(2); "write4k": 4 KiB writes; "ftruncate": 1000 bytes then ftruncate(2)
	}{
		{"write-64KiB-1", maxSize - 1, "write"},
		{"write-64KiB", maxSize, "write"},
		{"write-64KiB+1", maxSize + 1, "write"},
		{"write4k-64KiB-1", maxSize - 1, "write4k"},
		{"write4k-64KiB", maxSize, "write4k"},
		{"write4k-64KiB+1", maxSize + 1, "write4k"},
		{"ftruncate-64KiB-1", maxSize - 1, "ftruncate"},
		{"ftruncate-64KiB", maxSize, "ftruncate"},
		{"ftruncate-64KiB+1", maxSize + 1, "ftruncate"},
	}
	for i, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			path := m.Path(tc.name)
			f, err := os.OpenFile(path, os.O_RDWR|os.O_CREATE|os.O_EXCL, 0o644)
			if err != nil {
				t.Fatal(err)
			}
			defer f.Close()
			var want []byte
			switch tc.grow {
			case "write":
				want = seededBytes(uint64(100+i), tc.size)
				n, err := unix.Write(int(f.Fd()), want)
				if err != nil || n != len(want) {
					t.Fatalf("write(%d bytes) = %d, %v", len(want), n, err)
				}
			case "write4k":
				want = seededBytes(uint64(100+i), tc.size)
				for off := 0; off < len(want); off += 4096 {
					chunk := want[off:min(off+4096, len(want))]
					n, err := unix.Write(int(f.Fd()), chunk)
					if err != nil || n != len(chunk) {
						t.Fatalf("write(%d bytes) at %d = %d, %v", len(chunk), off, n, err)
					}
					if got := readResidency(t, path); off+len(chunk) <= maxSize && got != "memory" {
						t.Fatalf("after writing up to %d bytes: residency %q, want \"memory\"", off+len(chunk), got)
					}
				}
			case "ftruncate":
				if _, err := f.Write(prefix); err != nil {
					t.Fatal(err)
				}
				if got := readResidency(t, path); got != "memory" {
					t.Fatalf("after writing %d bytes: residency %q, want \"memory\"", len(prefix), got)
				}
				if err := f.Truncate(tc.size); err != nil {
					t.Fatalf("ftruncate(%d): %v", tc.size, err)
				}
				want = append(slices.Clone(prefix), make([]byte, tc.size-int64(len(prefix)))...)
			}
			st, err := f.Stat()
			if err != nil {
				t.Fatal(err)
			}
			if st.Size() != tc.size {
				t.Errorf("size %d, want %d", st.Size(), tc.size)
			}
			if got, want := readResidency(t, path), wantResidency(tc.size, maxSize); got != want {
				t.Errorf("residency of a %d-byte file with --max-size 64k: got %q, want %q", tc.size, got, want)
			}
			checkContent(t, path, want)
		})
	}
}

// TestRolloverRandomWrites pwrites random lengths at random offsets below
// 3×max-size into one file, mirrored in a model, and checks after every
// write that the residency flips to disk exactly when the size first
// exceeds max-size, and that the data matches the model around the flip
// and at the end.
func TestRolloverRandomWrites(t *testing.T) {
	tests := []struct {
		name    string
		flag    string
		maxSize int64
		writes  int
		seed    uint64
	}{
		{name: "64k", flag: "64k", maxSize: 64 << 10, writes: 400, seed: 64},
		{name: "1M", flag: "1M", maxSize: 1 << 20, writes: 200, seed: 1024},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			m := startMount(t, "--max-size", tc.flag)
			path := m.Path("random")
			f, err := os.OpenFile(path, os.O_RDWR|os.O_CREATE|os.O_EXCL, 0o644)
			if err != nil {
				t.Fatal(err)
			}
			defer f.Close()
			direct := openDirect(t, path)

			rng := rand.New(rand.NewPCG(tc.seed, 0x5eed))
			var model []byte
			limit := 3 * tc.maxSize
			flippedAt := -1
			pwrite := func(step string, off int64, data []byte) {
				t.Helper()
				before := int64(len(model))
				if _, err := f.WriteAt(data, off); err != nil {
					t.Fatalf("%s: pwrite(%d bytes at %d): %v", step, len(data), off, err)
				}
				if end := off + int64(len(data)); end > int64(len(model)) {
					model = append(model, make([]byte, end-int64(len(model)))...)
				}
				copy(model[off:], data)
				size := int64(len(model))
				want := wantResidency(size, tc.maxSize)
				if got := readResidency(t, path); got != want {
					t.Fatalf("%s: after pwrite(%d bytes at %d), size %d -> %d, max-size %d: residency %q, want %q (seed %d)",
						step, len(data), off, before, size, tc.maxSize, got, want, tc.seed)
				}
				if st, err := f.Stat(); err != nil {
					t.Fatalf("%s: fstat after pwrite: %v", step, err)
				} else if st.Size() != size {
					t.Fatalf("%s: fstat after pwrite: size %d, want %d", step, st.Size(), size)
				}
				got := make([]byte, len(data))
				if n, err := direct.ReadAt(got, off); n != len(data) {
					t.Fatalf("%s: O_DIRECT read back of %d bytes at %d: got %d bytes, %v", step, len(data), off, n, err)
				}
				if d := firstDiff(got, data); d != "" {
					t.Fatalf("%s: O_DIRECT read back of %d bytes at %d: %s", step, len(data), off, d)
				}
			}
			for i := range tc.writes {
				// Offsets are drawn from a window that grows with the file,
				// so that many writes land below the threshold before one
				// crosses it.
				window := min(limit, int64(len(model))+tc.maxSize/8)
				off := rng.Int64N(window)
				n := 1 + rng.Int64N(min(tc.maxSize/8, limit-off))
				data := make([]byte, n)
				for j := range data {
					data[j] = byte(rng.Uint32())
				}
				crosses := int64(len(model)) <= tc.maxSize && off+n > tc.maxSize
				if crosses {
					// Fill up to exactly max-size first: still memory.
					edge := seededBytes(uint64(i), min(1000, tc.maxSize))
					pwrite(fmt.Sprintf("write %d (to the edge)", i), tc.maxSize-int64(len(edge)), edge)
					checkContent(t, path, model)
					flippedAt = i
				}
				pwrite(fmt.Sprintf("write %d", i), off, data)
				if crosses {
					checkContent(t, path, model)
				}
			}
			if flippedAt < 0 {
				t.Fatalf("the file never grew past max-size %d (final size %d): the test is not testing rollover", tc.maxSize, len(model))
			}
			t.Logf("rolled over at write %d of %d; final size %d", flippedAt, tc.writes, len(model))
			checkContent(t, path, model)
		})
	}
}

// TestRolloverConcurrentIO has goroutines write disjoint regions of one
// file in small chunks, in random order, while the file crosses the
// threshold, and two readers (one through the page cache, one with
// O_DIRECT) read it all the while: every byte they see must be zero or its
// final value, and at the end the file must hold exactly the final bytes.
func TestRolloverConcurrentIO(t *testing.T) {
	const (
		maxSize    = 256 << 10
		regions    = 8
		regionSize = 128 << 10
		chunk      = 1 << 10
		fileSize   = regions * regionSize
		lowRegions = maxSize / regionSize // regions wholly at or below max-size
		rounds     = 3
	)
	m := startMount(t, "--max-size", "256k")
	final := make([]byte, fileSize)
	for i := range final {
		final[i] = byte(1 + (i*7+i>>12)%255) // never zero
	}

	for round := range rounds {
		path := m.Path(fmt.Sprintf("concurrent-%d", round))
		wf, err := os.OpenFile(path, os.O_RDWR|os.O_CREATE|os.O_EXCL, 0o644)
		if err != nil {
			t.Fatal(err)
		}
		cached, err := os.Open(path)
		if err != nil {
			t.Fatal(err)
		}
		direct := openDirect(t, path)

		// The writers of the regions above max-size start once the low
		// writers are halfway, so the rollover happens in the middle of
		// their writes.
		lowHalfway := make(chan struct{})
		var closeHalfway sync.Once
		var lowWritten atomic.Int64
		const lowChunks = lowRegions * regionSize / chunk

		var writers sync.WaitGroup
		for r := range regions {
			writers.Add(1)
			go func() {
				defer writers.Done()
				low := r < lowRegions
				if low {
					defer closeHalfway.Do(func() { close(lowHalfway) })
				} else {
					<-lowHalfway
				}
				rng := rand.New(rand.NewPCG(uint64(round), uint64(r)))
				for _, c := range rng.Perm(regionSize / chunk) {
					off := r*regionSize + c*chunk
					if _, err := wf.WriteAt(final[off:off+chunk], int64(off)); err != nil {
						t.Errorf("round %d writer %d: pwrite at %d: %v", round, r, off, err)
						return
					}
					if low && lowWritten.Add(1) == lowChunks/2 {
						closeHalfway.Do(func() { close(lowHalfway) })
					}
				}
			}()
		}

		stop := make(chan struct{})
		var readers sync.WaitGroup
		for _, rf := range []*os.File{cached, direct} {
			readers.Add(1)
			go func() {
				defer readers.Done()
				buf := make([]byte, fileSize)
				for {
					n, err := rf.ReadAt(buf, 0)
					if err != nil && !errors.Is(err, io.EOF) {
						t.Errorf("round %d: reader %s: %v", round, rf.Name(), err)
						return
					}
					for i, b := range buf[:n] {
						if b != 0 && b != final[i] {
							t.Errorf("round %d: reader %s saw byte %d = %#02x, want 0 or its final value %#02x", round, rf.Name(), i, b, final[i])
							return
						}
					}
					select {
					case <-stop:
						return
					default:
					}
				}
			}()
		}
		writers.Wait()
		close(stop)
		readers.Wait()
		if t.Failed() {
			t.FailNow()
		}
		if got := readResidency(t, path); got != "disk" {
			t.Errorf("round %d: residency of a %d-byte file with --max-size 256k: %q, want \"disk\"", round, fileSize, got)
		}
		checkContent(t, path, final)
		wf.Close()
		cached.Close()
	}
}

// TestRolloverSpillDir checks the private spill directory while files are
// rolled over: one 0700 "tmpmount-*" directory owned by the daemon's user,
// with no names in it, and one nameless backing file per rolled-over file,
// held open only by the daemon.
func TestRolloverSpillDir(t *testing.T) {
	const maxSize = 64 << 10
	m := startMount(t, "--max-size", "64k")
	pid := daemonPID(m)
	spill := privateSpillDirIn(t, m.SpillParent)

	if name := filepath.Base(spill); !strings.HasPrefix(name, "tmpmount-") {
		t.Errorf("private spill dir is named %q, want a \"tmpmount-\" prefix", name)
	}
	var st unix.Stat_t
	if err := unix.Lstat(spill, &st); err != nil {
		t.Fatal(err)
	}
	if st.Mode&unix.S_IFMT != unix.S_IFDIR {
		t.Errorf("private spill dir mode %#o is not a directory", st.Mode)
	}
	if perm := st.Mode & 0o7777; perm != 0o700 {
		t.Errorf("private spill dir permissions %#o, want 0700", perm)
	}
	if uid := effectiveUID(t, pid); st.Uid != uid {
		t.Errorf("private spill dir owned by uid %d, want the daemon's uid %d", st.Uid, uid)
	}

	checkSpill := func(when string, wantSizes []int64) {
		t.Helper()
		if entries, err := os.ReadDir(spill); err != nil {
			t.Fatalf("%s: read private spill dir: %v", when, err)
		} else if len(entries) != 0 {
			var names []string
			for _, e := range entries {
				names = append(names, e.Name())
			}
			t.Errorf("%s: private spill dir holds names %q, want none", when, names)
		}
		fds := spillBackingFds(t, pid, spill)
		var sizes []int64
		for fd, target := range fds {
			var bst unix.Stat_t
			if err := unix.Stat(fmt.Sprintf("/proc/%d/fd/%s", pid, fd), &bst); err != nil {
				t.Errorf("%s: stat backing fd %s (%s): %v", when, fd, target, err)
				continue
			}
			if bst.Nlink != 0 {
				t.Errorf("%s: backing file %s has %d links, want 0", when, target, bst.Nlink)
			}
			if perm := bst.Mode & 0o7777; perm != 0o600 {
				t.Errorf("%s: backing file %s has permissions %#o, want 0600", when, target, perm)
			}
			sizes = append(sizes, bst.Size)
		}
		slices.Sort(sizes)
		if !slices.Equal(sizes, wantSizes) {
			t.Errorf("%s: backing files held by the daemon have sizes %v, want %v (fds %v)", when, sizes, wantSizes, fds)
		}
	}

	checkSpill("before any file", nil)
	if err := os.WriteFile(m.Path("small"), seededBytes(1, maxSize), 0o644); err != nil {
		t.Fatal(err)
	}
	checkSpill("after a file of exactly max-size", nil)

	var wantSizes []int64
	for i, size := range []int64{maxSize + 1, 100 << 10, 1 << 20} {
		if err := os.WriteFile(m.Path(fmt.Sprintf("big%d", i)), seededBytes(uint64(i), size), 0o644); err != nil {
			t.Fatal(err)
		}
		wantSizes = append(wantSizes, size)
		slices.Sort(wantSizes)
		checkSpill(fmt.Sprintf("after writing %d rolled-over files", i+1), wantSizes)
	}
	if err := os.Truncate(m.Path("small"), 2<<20); err != nil {
		t.Fatal(err)
	}
	wantSizes = append(wantSizes, 2<<20)
	slices.Sort(wantSizes)
	checkSpill("after growing the small file by truncate", wantSizes)
}

// TestRolloverSpaceAccounting compares st_blocks and du with a tmpfs for a
// dense 10 MiB file and a 1 GiB sparse file held in RAM, and checks that
// the sparse file costs the daemon little memory.
func TestRolloverSpaceAccounting(t *testing.T) {
	m := startMount(t, "--max-size", "0")
	ref := mountReferenceTmpfs(t, "")
	pid := daemonPID(m)

	t.Run("dense 10MiB", func(t *testing.T) {
		const size = 10 << 20
		data := seededBytes(10, size)
		for _, dir := range []string{ref, m.Dir} {
			path := filepath.Join(dir, "dense")
			if err := os.WriteFile(path, data, 0o644); err != nil {
				t.Fatal(err)
			}
			var st unix.Stat_t
			if err := unix.Stat(path, &st); err != nil {
				t.Fatal(err)
			}
			if st.Blocks != size/512 {
				t.Errorf("%s: st_blocks %d, want %d", path, st.Blocks, size/512)
			}
			du := strings.Fields(runCmd(t, "/", "du", "-k", path))
			if len(du) == 0 || du[0] != strconv.Itoa(size/1024) {
				t.Errorf("du -k %s: %q, want %d KiB", path, du, size/1024)
			}
		}
		if got := readResidency(t, m.Path("dense")); got != "memory" {
			t.Errorf("residency with --max-size 0: %q, want \"memory\"", got)
		}
	})

	t.Run("sparse 1GiB", func(t *testing.T) {
		const (
			size    = 1 << 30
			dataOff = 512 << 20
		)
		data := seededBytes(11, 4096)
		rssBefore := vmRSSKiB(t, pid)
		type layout struct{ blocks, dataAt, holeAt int64 }
		var layouts []layout
		for _, dir := range []string{ref, m.Dir} {
			path := filepath.Join(dir, "sparse")
			f, err := os.OpenFile(path, os.O_RDWR|os.O_CREATE|os.O_EXCL, 0o644)
			if err != nil {
				t.Fatal(err)
			}
			defer f.Close()
			if err := f.Truncate(size); err != nil {
				t.Fatal(err)
			}
			if _, err := f.WriteAt(data, dataOff); err != nil {
				t.Fatal(err)
			}
			var st unix.Stat_t
			if err := unix.Fstat(int(f.Fd()), &st); err != nil {
				t.Fatal(err)
			}
			if st.Size != size || st.Blocks != 8 {
				t.Errorf("%s: size %d, st_blocks %d; want %d and 8", path, st.Size, st.Blocks, size)
			}
			dataAt, err := unix.Seek(int(f.Fd()), 0, unix.SEEK_DATA)
			if err != nil {
				t.Errorf("%s: SEEK_DATA from 0: %v", path, err)
			}
			holeAt, err := unix.Seek(int(f.Fd()), dataOff, unix.SEEK_HOLE)
			if err != nil {
				t.Errorf("%s: SEEK_HOLE from %d: %v", path, dataOff, err)
			}
			layouts = append(layouts, layout{st.Blocks, dataAt, holeAt})
			got := make([]byte, 3*4096)
			if _, err := f.ReadAt(got, dataOff-4096); err != nil {
				t.Fatal(err)
			}
			want := append(append(make([]byte, 4096), data...), make([]byte, 4096)...)
			if d := firstDiff(got, want); d != "" {
				t.Errorf("%s: the 12 KiB around the data at %d: %s", path, dataOff-4096, d)
			}
		}
		if layouts[0] != layouts[1] {
			t.Errorf("tmpfs has {blocks, SEEK_DATA, SEEK_HOLE} %+v, tmpmount %+v", layouts[0], layouts[1])
		}
		if got := readResidency(t, m.Path("sparse")); got != "memory" {
			t.Errorf("residency with --max-size 0: %q, want \"memory\"", got)
		}
		growth := vmRSSKiB(t, pid) - rssBefore
		if growth > 64<<10 {
			t.Errorf("daemon RSS grew by %d KiB for a 1 GiB file holding 4 KiB, want < 64 MiB", growth)
		}
		t.Logf("daemon RSS grew by %d KiB", growth)
	})
}

// TestRolloverDeleteFrees checks that deleting files frees what they held:
// RAM files' inodes (statfs f_ffree comes back) and rolled-over files'
// backing files (the daemon closes their descriptors once the last name
// and the last open file are gone).
func TestRolloverDeleteFrees(t *testing.T) {
	t.Run("memory", func(t *testing.T) {
		m := startMount(t, "--max-size", "0")
		ffree := func() uint64 {
			t.Helper()
			var st unix.Statfs_t
			if err := unix.Statfs(m.Dir, &st); err != nil {
				t.Fatal(err)
			}
			return st.Ffree
		}
		before := ffree()
		const files, size = 5, 10 << 20
		for i := range files {
			path := m.Path(fmt.Sprintf("f%d", i))
			if err := os.WriteFile(path, seededBytes(uint64(i), size), 0o644); err != nil {
				t.Fatal(err)
			}
			var st unix.Stat_t
			if err := unix.Stat(path, &st); err != nil {
				t.Fatal(err)
			}
			if st.Blocks != size/512 {
				t.Errorf("%s: st_blocks %d, want %d", path, st.Blocks, size/512)
			}
		}
		if got := ffree(); got != before-files {
			t.Errorf("statfs f_ffree with %d files: %d, want %d", files, got, before-files)
		}
		for i := range files {
			if err := os.Remove(m.Path(fmt.Sprintf("f%d", i))); err != nil {
				t.Fatal(err)
			}
		}
		for i := range files {
			if _, err := os.Stat(m.Path(fmt.Sprintf("f%d", i))); !errors.Is(err, os.ErrNotExist) {
				t.Errorf("stat f%d after rm: %v, want ENOENT", i, err)
			}
		}
		if entries, err := os.ReadDir(m.Dir); err != nil || len(entries) != 0 {
			t.Errorf("mount root after rm: %d entries, %v; want none", len(entries), err)
		}
		waitFor(t, 5*time.Second, "statfs f_ffree to come back after rm", func() bool { return ffree() == before })
	})

	t.Run("rolled over", func(t *testing.T) {
		m := startMount(t, "--max-size", "64k")
		pid := daemonPID(m)
		spill := privateSpillDirIn(t, m.SpillParent)
		const files, size = 4, 100 << 10
		for i := range files {
			if err := os.WriteFile(m.Path(fmt.Sprintf("f%d", i)), seededBytes(uint64(i), size), 0o644); err != nil {
				t.Fatal(err)
			}
		}
		if got := len(spillBackingFds(t, pid, spill)); got != files {
			t.Fatalf("backing fds with %d rolled-over files: %d, want %d", files, got, files)
		}
		held, err := os.Open(m.Path("f0"))
		if err != nil {
			t.Fatal(err)
		}
		defer held.Close()
		for i := range files {
			if err := os.Remove(m.Path(fmt.Sprintf("f%d", i))); err != nil {
				t.Fatal(err)
			}
		}
		waitFor(t, 5*time.Second, "the daemon to close the backing files of the unlinked, closed files", func() bool {
			return len(spillBackingFds(t, pid, spill)) == 1
		})
		// The open, unlinked file still reads back (O_DIRECT: from the daemon).
		direct, err := os.OpenFile(fmt.Sprintf("/proc/self/fd/%d", held.Fd()), os.O_RDONLY|syscall.O_DIRECT, 0)
		if err != nil {
			t.Fatal(err)
		}
		if d := firstDiff(preadAll(t, direct, size), seededBytes(0, size)); d != "" {
			t.Errorf("open unlinked file read back with O_DIRECT: %s", d)
		}
		direct.Close()
		if d := firstDiff(preadAll(t, held, size), seededBytes(0, size)); d != "" {
			t.Errorf("open unlinked file read back: %s", d)
		}
		held.Close()
		waitFor(t, 5*time.Second, "the daemon to close the last backing file after the last close", func() bool {
			return len(spillBackingFds(t, pid, spill)) == 0
		})
	})
}

// TestAllowOtherPermissions runs the same steps as nobody on a tmpfs
// (mode=1777, owned by root) and on a tmpmount started by root with
// --allow-other, and checks that each step succeeds or fails as it must,
// and as on tmpfs.
func TestAllowOtherPermissions(t *testing.T) {
	requireRoot(t)
	m := startMount(t, "--allow-other")
	makeTraversable(t, filepath.Dir(m.Dir))
	ref := mountReferenceTmpfs(t, "mode=1777")

	type step struct {
		name     string
		script   string // run as nobody with $1 = the mount
		wantOK   bool
		wantOut  string // a word the output must hold
		check    func(t *testing.T, dir string)
		asRootOp func(t *testing.T, dir string)
	}
	exists := func(name string, want bool) func(t *testing.T, dir string) {
		return func(t *testing.T, dir string) {
			t.Helper()
			_, err := os.Lstat(filepath.Join(dir, name))
			if got := err == nil; got != want {
				t.Errorf("%s exists: %v, want %v (%v)", name, got, want, err)
			}
		}
	}
	steps := []step{
		{name: "read root's 0600 file", script: `cat "$1/secret"`, wantOut: "Permission denied"},
		{name: "read root's 0644 file", script: `cat "$1/public"`, wantOK: true, wantOut: "public data"},
		{name: "append to root's 0644 file", script: `echo more >> "$1/public"`, wantOut: "Permission denied"},
		{name: "create own file in the sticky root", script: `echo mine > "$1/mine" && cat "$1/mine"`, wantOK: true, wantOut: "mine",
			check: func(t *testing.T, dir string) {
				var st unix.Stat_t
				if err := unix.Stat(filepath.Join(dir, "mine"), &st); err != nil {
					t.Fatal(err)
				}
				if st.Uid != nobodyUID || st.Gid != nobodyUID {
					t.Errorf("nobody's new file owned by %d:%d, want %d:%d", st.Uid, st.Gid, nobodyUID, nobodyUID)
				}
			}},
		{name: "delete root's file in the sticky root", script: `rm -f "$1/public"`, wantOut: "Operation not permitted", check: exists("public", true)},
		{name: "rename root's file in the sticky root", script: `mv "$1/public" "$1/moved"`, wantOut: "Operation not permitted",
			check: func(t *testing.T, dir string) { exists("public", true)(t, dir); exists("moved", false)(t, dir) }},
		{name: "delete own file", script: `rm "$1/mine"`, wantOK: true, check: exists("mine", false)},
		{name: "create a file for root to delete", script: `echo x > "$1/nobodys"`, wantOK: true,
			asRootOp: func(t *testing.T, dir string) {
				if err := os.Remove(filepath.Join(dir, "nobodys")); err != nil {
					t.Errorf("root deleting nobody's file: %v", err)
				}
			},
			check: exists("nobodys", false)},
	}

	type outcome struct {
		code int
		out  string
	}
	for _, dir := range []string{ref, m.Dir} {
		if err := os.WriteFile(filepath.Join(dir, "secret"), []byte("secret data\n"), 0o600); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(filepath.Join(dir, "public"), []byte("public data\n"), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	for _, s := range steps {
		t.Run(s.name, func(t *testing.T) {
			var outcomes []outcome
			for _, dir := range []string{ref, m.Dir} {
				out, code := nobodyShell(t, s.script, dir)
				if got := code == 0; got != s.wantOK {
					t.Errorf("%s: as nobody, %s: exit %d (%q), want success %v", dir, s.script, code, out, s.wantOK)
				}
				if !strings.Contains(out, s.wantOut) {
					t.Errorf("%s: as nobody, %s: output %q does not contain %q", dir, s.script, out, s.wantOut)
				}
				if s.asRootOp != nil {
					s.asRootOp(t, dir)
				}
				if s.check != nil {
					s.check(t, dir)
				}
				outcomes = append(outcomes, outcome{code, strings.ReplaceAll(out, dir, "MNT")})
			}
			if outcomes[0] != outcomes[1] {
				t.Errorf("tmpfs gave %+v, tmpmount %+v", outcomes[0], outcomes[1])
			}
		})
	}
}

// TestWithoutAllowOtherDeniesOthers checks that, without --allow-other,
// another user cannot even stat the mount root.
func TestWithoutAllowOtherDeniesOthers(t *testing.T) {
	requireRoot(t)
	m := startMount(t)
	makeTraversable(t, filepath.Dir(m.Dir))
	if out, code := nobodyShell(t, `stat "$1"`, m.Dir); code == 0 || !strings.Contains(out, "Permission denied") {
		t.Errorf("as nobody, stat of a mount without --allow-other: exit %d, %q; want Permission denied", code, out)
	}
	// The same path is fine for nobody once nothing is mounted there: the
	// denial above comes from the mount.
	if out, code := nobodyShell(t, `stat "$1"`, filepath.Dir(m.Dir)); code != 0 {
		t.Errorf("as nobody, stat of the mount's parent: exit %d, %q", code, out)
	}
}

// requireNobodyCanOpenFUSE skips (or, under CI=true, fails) a test that
// needs an unprivileged user to open /dev/fuse, as fusermount3 does on its
// behalf. /dev/fuse is 0666 on a normal system; some containers make it
// 0600.
func requireNobodyCanOpenFUSE(t *testing.T) {
	t.Helper()
	out, code := nobodyShell(t, `test -r /dev/fuse && test -w /dev/fuse || { ls -l /dev/fuse; exit 1; }`)
	if code == 0 {
		return
	}
	msg := "nobody cannot open /dev/fuse here: " + strings.TrimSpace(out)
	if os.Getenv("CI") == "true" {
		t.Fatal(msg)
	}
	t.Skip(msg)
}

// TestNonRootDaemon runs tmpmount as nobody, mounting through fusermount3,
// uses the mount as nobody, and unmounts it with fusermount3 -u.
func TestNonRootDaemon(t *testing.T) {
	requireRoot(t)
	requireFUSE(t)
	if _, err := exec.LookPath("fusermount3"); err != nil {
		t.Skip("no fusermount3")
	}
	requireNobodyCanOpenFUSE(t)
	base := nobodyReachableDir(t)
	bin := binaryForNobody(t, base)
	mnt := nobodyOwnedDir(t, filepath.Join(base, "mnt"))
	spill := nobodyOwnedDir(t, filepath.Join(base, "spill"))

	stderr := &syncBuffer{}
	cmd := asNobody(bin, "--max-size", "4k", "--spill-dir", spill, mnt)
	cmd.Stdout, cmd.Stderr = stderr, stderr
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	done := make(chan struct{})
	var waitErr error
	go func() {
		waitErr = cmd.Wait()
		close(done)
	}()
	exited := func() bool {
		select {
		case <-done:
			return true
		default:
			return false
		}
	}
	t.Cleanup(func() {
		if isMountPoint(mnt) {
			syscall.Unmount(mnt, unix.MNT_DETACH)
		}
		select {
		case <-done:
		case <-time.After(10 * time.Second):
			cmd.Process.Kill()
			<-done
		}
	})
	waitFor(t, 10*time.Second, "nobody's mount at "+mnt, func() bool {
		if exited() {
			t.Fatalf("tmpmount as nobody exited before mounting: %v\n%s", waitErr, stderr)
		}
		return isMountPoint(mnt)
	})
	pid := cmd.Process.Pid
	if uid := effectiveUID(t, pid); uid != nobodyUID {
		t.Errorf("daemon runs as uid %d, want %d", uid, nobodyUID)
	}

	out, code := nobodyShell(t, `printf hello > "$1/small" && head -c 8192 /dev/zero > "$1/big" && cat "$1/small" && echo && cd "$1" && getfattr --only-values -n user.tmpmount.residency big`, mnt)
	if code != 0 || out != "hello\ndisk" {
		t.Errorf("as nobody, write and read back: exit %d, %q; want 0, %q", code, out, "hello\ndisk")
	}

	private := privateSpillDirIn(t, spill)
	var st unix.Stat_t
	if err := unix.Lstat(private, &st); err != nil {
		t.Fatal(err)
	}
	if st.Uid != nobodyUID || st.Mode&0o7777 != 0o700 {
		t.Errorf("private spill dir: owner %d, mode %#o; want %d and 0700", st.Uid, st.Mode&0o7777, nobodyUID)
	}
	if got := len(spillBackingFds(t, pid, private)); got != 1 {
		t.Errorf("backing fds with one rolled-over file: %d, want 1", got)
	}

	if out, code := nobodyShell(t, `fusermount3 -u "$1"`, mnt); code != 0 {
		t.Fatalf("as nobody, fusermount3 -u: exit %d, %q", code, out)
	}
	waitFor(t, 10*time.Second, "the daemon to exit after fusermount3 -u", exited)
	if waitErr != nil {
		t.Errorf("daemon exit after fusermount3 -u: %v, want status 0\n%s", waitErr, stderr)
	}
	if isMountPoint(mnt) {
		t.Errorf("%s still mounted after fusermount3 -u", mnt)
	}
	if entries, err := os.ReadDir(spill); err != nil || len(entries) != 0 {
		t.Errorf("spill dir after exit: %d entries (%v), want none", len(entries), err)
	}
}

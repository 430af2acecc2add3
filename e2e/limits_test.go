package e2e

// Limits: the memory budget (--mem-limit), the capacity (--size), the
// inode limit (--inodes), a spill disk that fills up, recovery from a
// daemon killed with SIGKILL, hostile input, and a stress test. Where
// tmpfs has the same limit, the same steps run on a tmpfs mounted with the
// matching option and the two transcripts are compared line by line.

import (
	"bytes"
	"context"
	"encoding/binary"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"math/rand/v2"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"sort"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"golang.org/x/sys/unix"
)

const (
	limKiB = 1 << 10
	limMiB = 1 << 20

	limStatsAttr = "user.tmpmount.stats"

	// limChildEnv turns the test binary into a writer process for
	// TestLimitsMemoryBudget (see limWriterMain).
	limChildEnv = "TMPMOUNT_E2E_LIM_CHILD"

	// limRSSMargin is how far the daemon's RSS may exceed the memory
	// budget plus its idle RSS: go-fuse's request buffers (up to 1 MiB
	// per request in flight), the freed pages the allocator keeps for
	// reuse (up to 4 MiB, not counted in ram_bytes) and Go heap slack.
	// Measured on 2 cores: the excess over budget+idle peaked at a few
	// MiB (see the log of TestLimitsMemoryBudget).
	limRSSMargin = 16 * limMiB
)

func init() {
	if os.Getenv(limChildEnv) == "writer" {
		os.Exit(limWriterMain(os.Args[1:]))
	}
}

// limWriterMain is a writer process: each argument is SEED:SIZE:PATH, and
// the file at PATH gets limContent(SEED, SIZE), written with write(2) in
// 64 KiB chunks.
func limWriterMain(specs []string) int {
	for _, spec := range specs {
		parts := strings.SplitN(spec, ":", 3)
		if len(parts) != 3 {
			fmt.Fprintf(os.Stderr, "bad spec %q\n", spec)
			return 2
		}
		seed, err1 := strconv.ParseUint(parts[0], 10, 64)
		size, err2 := strconv.ParseInt(parts[1], 10, 64)
		if err1 != nil || err2 != nil {
			fmt.Fprintf(os.Stderr, "bad spec %q\n", spec)
			return 2
		}
		data := limContent(seed, size)
		fd, err := unix.Open(parts[2], unix.O_CREAT|unix.O_TRUNC|unix.O_WRONLY|unix.O_CLOEXEC, 0o644)
		if err != nil {
			fmt.Fprintf(os.Stderr, "open %s: %v\n", parts[2], err)
			return 1
		}
		for off := 0; off < len(data); {
			end := min(off+64*limKiB, len(data))
			n, err := unix.Write(fd, data[off:end])
			if err == unix.EINTR {
				continue
			}
			if err != nil || n == 0 {
				fmt.Fprintf(os.Stderr, "write %s at %d: n=%d err=%v\n", parts[2], off, n, err)
				return 1
			}
			off += n
		}
		if err := unix.Close(fd); err != nil {
			fmt.Fprintf(os.Stderr, "close %s: %v\n", parts[2], err)
			return 1
		}
	}
	return 0
}

// limContent returns n deterministic pseudo-random bytes for seed.
func limContent(seed uint64, n int64) []byte {
	var key [32]byte
	binary.LittleEndian.PutUint64(key[:], seed)
	copy(key[8:], "tmpmount-limits")
	b := make([]byte, n)
	rand.NewChaCha8(key).Read(b)
	return b
}

// limMountStats is the part of user.tmpmount.stats on the mount root that
// these tests use.
type limMountStats struct {
	Files       int64  `json:"files"`
	Inodes      int64  `json:"inodes"`
	RAMBytes    int64  `json:"ram_bytes"`
	DiskFiles   int64  `json:"disk_files"`
	DiskBytes   int64  `json:"disk_bytes"`
	Rollovers   int64  `json:"rollovers"`
	MaxSize     int64  `json:"max_size"`
	MemLimit    int64  `json:"mem_limit"`
	SizeLimit   int64  `json:"size_limit"`
	MaxInodes   int64  `json:"max_inodes"`
	Passthrough string `json:"passthrough"`
	SpillDir    string `json:"spill_dir"`

	MetaBytes    int64 `json:"meta_bytes"`    // names, xattrs, symlink targets
	MetaMemory   int64 `json:"meta_memory"`   // those and the nodes, in the memory budget
	SpillReserve int64 `json:"spill_reserve"` // kept free on the spill disk without --size
}

// limReadStats reads and decodes the user.tmpmount.stats xattr of path.
func limReadStats(path string, v any) error {
	buf := make([]byte, 64*limKiB)
	n, err := unix.Getxattr(path, limStatsAttr, buf)
	if err != nil {
		return fmt.Errorf("getxattr(%s, %s): %w", path, limStatsAttr, err)
	}
	if err := json.Unmarshal(buf[:n], v); err != nil {
		return fmt.Errorf("%s of %s: %v: %q", limStatsAttr, path, err, buf[:n])
	}
	return nil
}

func limStatsOf(t *testing.T, root string) limMountStats {
	t.Helper()
	var st limMountStats
	if err := limReadStats(root, &st); err != nil {
		t.Fatal(err)
	}
	return st
}

// limRSS returns the resident set size of pid in bytes.
func limRSS(pid int) (int64, error) {
	data, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", pid))
	if err != nil {
		return 0, err
	}
	for _, line := range strings.Split(string(data), "\n") {
		if v, ok := strings.CutPrefix(line, "VmRSS:"); ok {
			kib, err := strconv.ParseInt(strings.TrimSuffix(strings.TrimSpace(v), " kB"), 10, 64)
			if err != nil {
				return 0, fmt.Errorf("VmRSS of %d: %q: %v", pid, v, err)
			}
			return kib * limKiB, nil
		}
	}
	return 0, fmt.Errorf("no VmRSS in /proc/%d/status", pid)
}

func limRSSOf(t *testing.T, pid int) int64 {
	t.Helper()
	rss, err := limRSS(pid)
	if err != nil {
		t.Fatal(err)
	}
	return rss
}

func limMiBf(n int64) string { return fmt.Sprintf("%.1f MiB", float64(n)/limMiB) }

// limSampler reads ram_bytes from the root's stats xattr and the daemon's
// RSS every few milliseconds until finish, keeping the maxima.
type limSampler struct {
	stop, done      chan struct{}
	maxRAM, maxRSS  int64
	samples, errors int
	firstErr        error
}

func limStartSampler(root string, pid int, every time.Duration) *limSampler {
	s := &limSampler{stop: make(chan struct{}), done: make(chan struct{})}
	go func() {
		defer close(s.done)
		tick := time.NewTicker(every)
		defer tick.Stop()
		for {
			var st limMountStats
			err := limReadStats(root, &st)
			rss, rssErr := int64(0), error(nil)
			if pid > 0 {
				rss, rssErr = limRSS(pid)
			}
			if err == nil {
				err = rssErr
			}
			if err != nil {
				s.errors++
				if s.firstErr == nil {
					s.firstErr = err
				}
			} else {
				s.samples++
				s.maxRAM = max(s.maxRAM, st.RAMBytes)
				s.maxRSS = max(s.maxRSS, rss)
			}
			select {
			case <-s.stop:
				return
			case <-tick.C:
			}
		}
	}()
	return s
}

// finish stops the sampler and waits for it.
func (s *limSampler) finish() {
	close(s.stop)
	<-s.done
}

// limReadDirect reads a whole file with O_DIRECT into page-aligned memory,
// so that the bytes come from the daemon (or, for a passthrough open, the
// backing file) and not from the kernel's page cache of the mount.
func limReadDirect(path string) ([]byte, error) {
	fd, err := unix.Open(path, unix.O_RDONLY|unix.O_DIRECT|unix.O_CLOEXEC, 0)
	if err != nil {
		return nil, fmt.Errorf("open %s O_DIRECT: %w", path, err)
	}
	defer unix.Close(fd)
	const chunk = limMiB
	buf, err := unix.Mmap(-1, 0, chunk, unix.PROT_READ|unix.PROT_WRITE, unix.MAP_PRIVATE|unix.MAP_ANONYMOUS)
	if err != nil {
		return nil, err
	}
	defer unix.Munmap(buf)
	var out []byte
	for off := int64(0); ; {
		n, err := unix.Pread(fd, buf, off)
		if err == unix.EINTR {
			continue
		}
		if err != nil {
			return out, fmt.Errorf("pread %s O_DIRECT at %d: %w", path, off, err)
		}
		if n == 0 {
			return out, nil
		}
		out = append(out, buf[:n]...)
		off += int64(n)
	}
}

// limCheckFile compares path with want, read through the page cache and
// with O_DIRECT.
func limCheckFile(t *testing.T, path string, want []byte) {
	t.Helper()
	got, err := os.ReadFile(path)
	if err != nil {
		t.Errorf("read %s: %v", path, err)
	} else if d := firstDiff(got, want); d != "" {
		t.Errorf("%s read back (page cache): %s", path, d)
	}
	got, err = limReadDirect(path)
	if err != nil {
		t.Errorf("read %s: %v", path, err)
	} else if d := firstDiff(got, want); d != "" {
		t.Errorf("%s read back (O_DIRECT): %s", path, d)
	}
}

// limPwriteChunks writes data at off with pwrite(2) in chunks of chunk
// bytes, stopping at the first failure; it returns the bytes the calls
// acknowledged and the failure.
func limPwriteChunks(fd int, data []byte, off int64, chunk int) (int64, error) {
	var done int64
	for done < int64(len(data)) {
		end := min(done+int64(chunk), int64(len(data)))
		n, err := unix.Pwrite(fd, data[done:end], off+done)
		if err == unix.EINTR {
			continue
		}
		if n > 0 {
			done += int64(n)
		}
		if err != nil {
			return done, err
		}
		if n == 0 {
			return done, io.ErrShortWrite
		}
	}
	return done, nil
}

// limErrnoName names an error's errno ("ok" for nil), for transcripts.
func limErrnoName(err error) string {
	if err == nil {
		return "ok"
	}
	var e syscall.Errno
	if errors.As(err, &e) {
		if name := unix.ErrnoName(e); name != "" {
			return name
		}
		return fmt.Sprintf("errno %d", int(e))
	}
	return err.Error()
}

func limErrno(err error) syscall.Errno {
	var e syscall.Errno
	if errors.As(err, &e) {
		return e
	}
	return 0
}

// limMountTmpfs mounts a reference tmpfs with opts on a fresh directory.
func limMountTmpfs(t *testing.T, opts string) string {
	t.Helper()
	return mountTmpfs(t, t.TempDir(), opts)
}

// limFsStat is what statfs says, with block counts in 4 KiB units.
type limFsStat struct {
	blocks, bfree, bavail uint64
	files, ffree          uint64
}

func limStatfs(dir string) (limFsStat, error) {
	var st unix.Statfs_t
	if err := unix.Statfs(dir, &st); err != nil {
		return limFsStat{}, fmt.Errorf("statfs %s: %w", dir, err)
	}
	scale := func(v uint64) uint64 { return v * uint64(st.Bsize) / 4096 }
	return limFsStat{scale(st.Blocks), scale(st.Bfree), scale(st.Bavail), st.Files, st.Ffree}, nil
}

// limRecorder runs steps on one filesystem and keeps a transcript of their
// outcomes, to compare with the same steps on tmpfs.
type limRecorder struct {
	dir   string
	lines []string
	data  map[string][]byte // what each regular file must hold
	// namePages: the capacity holds that many pages more than the
	// steps' data may take, for the names tmpmount charges to it and
	// tmpfs keeps outside size=; statfs lines leave them out.
	namePages uint64
}

func newLimRecorder(dir string) *limRecorder {
	return &limRecorder{dir: dir, data: map[string][]byte{}}
}

func (r *limRecorder) p(name string) string { return filepath.Join(r.dir, name) }

func (r *limRecorder) logf(format string, args ...any) {
	r.lines = append(r.lines, fmt.Sprintf(format, args...))
}

// statfs records the capacity, what is free, and whether the used blocks
// equal what the files hold (st_blocks summed over the directory).
func (r *limRecorder) statfs(label string) limFsStat {
	st, err := limStatfs(r.dir)
	if err != nil {
		r.logf("%s: %v", label, err)
		return st
	}
	// (Before any name is made the names' page is free too.)
	blocks := st.blocks - r.namePages
	free, avail := min(st.bfree, blocks), min(st.bavail, blocks)
	r.logf("%s: statfs blocks=%d free=%d avail=%d used=%d file-blocks=%d", label,
		blocks, free, avail, blocks-free, r.fileBlocks())
	return st
}

// fileBlocks sums st_blocks (in 4 KiB units) of the regular files.
func (r *limRecorder) fileBlocks() uint64 {
	entries, err := os.ReadDir(r.dir)
	if err != nil {
		return 0
	}
	var total uint64
	for _, e := range entries {
		var st unix.Stat_t
		if unix.Lstat(r.p(e.Name()), &st) == nil && st.Mode&unix.S_IFMT == unix.S_IFREG {
			total += uint64(st.Blocks) * 512 / 4096
		}
	}
	return total
}

// write writes data to name at off in chunks and records what was
// acknowledged; the file's expected content follows what was.
func (r *limRecorder) write(name string, data []byte, off int64, chunk int) (int64, error) {
	fd, err := unix.Open(r.p(name), unix.O_CREAT|unix.O_WRONLY|unix.O_CLOEXEC, 0o644)
	if err != nil {
		r.logf("open %s: %s", name, limErrnoName(err))
		return 0, err
	}
	defer unix.Close(fd)
	acked, werr := limPwriteChunks(fd, data, off, chunk)
	old := r.data[name]
	want := slices.Clone(old)
	if end := off + acked; acked > 0 && int64(len(want)) < end {
		want = append(want, make([]byte, end-int64(len(want)))...)
	}
	copy(want[off:], data[:acked])
	r.data[name] = want
	r.logf("write %s [%d, +%d) in %d-byte chunks: acked %d, %s", name, off, len(data), chunk, acked, limErrnoName(werr))
	return acked, werr
}

func (r *limRecorder) fallocate(name string, mode uint32, off, length int64) error {
	fd, err := unix.Open(r.p(name), unix.O_CREAT|unix.O_WRONLY|unix.O_CLOEXEC, 0o644)
	if err != nil {
		r.logf("open %s: %s", name, limErrnoName(err))
		return err
	}
	defer unix.Close(fd)
	err = unix.Fallocate(fd, mode, off, length)
	var st unix.Stat_t
	unix.Fstat(fd, &st)
	if _, ok := r.data[name]; !ok {
		r.data[name] = nil
	}
	if mode&unix.FALLOC_FL_KEEP_SIZE == 0 && err == nil && int64(len(r.data[name])) < off+length {
		r.data[name] = append(r.data[name], make([]byte, off+length-int64(len(r.data[name])))...)
	}
	r.logf("fallocate %s mode %d [%d, +%d): %s; size %d, blocks %d", name, mode, off, length, limErrnoName(err), st.Size, st.Blocks*512/4096)
	return err
}

func (r *limRecorder) truncate(name string, size int64) {
	err := unix.Truncate(r.p(name), size)
	if err == nil {
		d := r.data[name]
		if int64(len(d)) > size {
			d = d[:size]
		} else {
			d = append(d, make([]byte, size-int64(len(d)))...)
		}
		r.data[name] = d
	}
	r.logf("truncate %s to %d: %s", name, size, limErrnoName(err))
}

func (r *limRecorder) remove(name string) {
	err := unix.Unlink(r.p(name))
	if err == nil {
		delete(r.data, name)
	}
	r.logf("unlink %s: %s", name, limErrnoName(err))
}

// verify records, for every file, whether it holds what it must.
func (r *limRecorder) verify(label string) {
	names := make([]string, 0, len(r.data))
	for name := range r.data {
		names = append(names, name)
	}
	sort.Strings(names)
	var bad []string
	for _, name := range names {
		got, err := os.ReadFile(r.p(name))
		if err != nil {
			bad = append(bad, fmt.Sprintf("%s: %v", name, err))
		} else if d := firstDiff(got, r.data[name]); d != "" {
			bad = append(bad, name+": "+d)
		}
	}
	if len(bad) == 0 {
		r.logf("%s: all %d files intact", label, len(names))
		return
	}
	r.logf("%s: files NOT intact: %s", label, strings.Join(bad, "; "))
}

// limCompareTranscripts fails the test if tmpmount's transcript differs
// from tmpfs's, showing a line diff: "-" only on tmpfs, "+" only on
// tmpmount.
func limCompareTranscripts(t *testing.T, what string, tmpfs, tmpmount []string) {
	t.Helper()
	if slices.Equal(tmpfs, tmpmount) {
		return
	}
	t.Errorf("%s: tmpmount differs from tmpfs (- tmpfs only, + tmpmount only):\n%s", what, limDiffLines(tmpfs, tmpmount))
}

// limDiffLines is a longest-common-subsequence line diff of a and b.
func limDiffLines(a, b []string) string {
	// lcs[i][j]: length of the LCS of a[i:] and b[j:].
	lcs := make([][]int, len(a)+1)
	for i := range lcs {
		lcs[i] = make([]int, len(b)+1)
	}
	for i := len(a) - 1; i >= 0; i-- {
		for j := len(b) - 1; j >= 0; j-- {
			if a[i] == b[j] {
				lcs[i][j] = lcs[i+1][j+1] + 1
			} else {
				lcs[i][j] = max(lcs[i+1][j], lcs[i][j+1])
			}
		}
	}
	var out strings.Builder
	i, j := 0, 0
	for i < len(a) || j < len(b) {
		switch {
		case i < len(a) && j < len(b) && a[i] == b[j]:
			fmt.Fprintf(&out, "    %s\n", a[i])
			i, j = i+1, j+1
		case j < len(b) && (i == len(a) || lcs[i][j+1] >= lcs[i+1][j]):
			fmt.Fprintf(&out, "  + %s\n", b[j])
			j++
		default:
			fmt.Fprintf(&out, "  - %s\n", a[i])
			i++
		}
	}
	return out.String()
}

// limCheckServing fails the test unless m's daemon is alive and a file can
// be made, read and removed at the root.
func limCheckServing(t *testing.T, m *Mount, after string) {
	t.Helper()
	select {
	case <-m.done:
		t.Fatalf("after %s: the daemon exited: %v\n%s", after, m.waitErr, m.Stderr)
	default:
	}
	probe := m.Path("lim-probe")
	want := []byte("probe " + after)
	if err := os.WriteFile(probe, want, 0o644); err != nil {
		t.Fatalf("after %s: the mount does not serve: write: %v", after, err)
	}
	got, err := os.ReadFile(probe)
	if err != nil || !bytes.Equal(got, want) {
		t.Fatalf("after %s: the mount does not serve: read %q, %v", after, got, err)
	}
	if err := os.Remove(probe); err != nil {
		t.Fatalf("after %s: the mount does not serve: unlink: %v", after, err)
	}
}

// TestLimitsMemoryBudget writes 240 MiB through 4 processes at once into a
// mount with a 64 MiB memory budget and checks, sampling all along, that
// the RAM file data holds (ram_bytes) never exceeds the budget and that
// the daemon's RSS stays within the budget plus its idle RSS plus
// limRSSMargin; that every file reads back as written; and that files were
// rolled over to disk to make room.
func TestLimitsMemoryBudget(t *testing.T) {
	const (
		memLimit       = 64 * limMiB
		writers        = 4
		filesPerWriter = 10
		fileSize       = 6 * limMiB
	)
	m := startMount(t, "--mem-limit", "64M", "--max-size", "8M")
	pid := daemonPID(m)
	if st := limStatsOf(t, m.Dir); st.MemLimit != memLimit {
		t.Fatalf("stats mem_limit = %d, want %d", st.MemLimit, memLimit)
	}
	idleRSS := limRSSOf(t, pid)
	exe, err := os.Executable()
	if err != nil {
		t.Fatal(err)
	}

	sampler := limStartSampler(m.Dir, pid, 2*time.Millisecond)
	started := time.Now()
	type writer struct {
		cmd    *exec.Cmd
		stderr bytes.Buffer
	}
	var ws []*writer
	seedOf := func(w, f int) uint64 { return uint64(1000 + w*100 + f) }
	nameOf := func(w, f int) string { return fmt.Sprintf("w%d-f%02d", w, f) }
	for w := range writers {
		var specs []string
		for f := range filesPerWriter {
			specs = append(specs, fmt.Sprintf("%d:%d:%s", seedOf(w, f), fileSize, m.Path(nameOf(w, f))))
		}
		wr := &writer{cmd: exec.Command(exe, specs...)}
		wr.cmd.Env = append(os.Environ(), limChildEnv+"=writer")
		wr.cmd.Stderr = &wr.stderr
		if err := wr.cmd.Start(); err != nil {
			sampler.finish()
			t.Fatalf("start writer %d: %v", w, err)
		}
		ws = append(ws, wr)
	}
	for i, wr := range ws {
		if err := wr.cmd.Wait(); err != nil {
			t.Errorf("writer %d: %v\n%s", i, err, wr.stderr.String())
		}
	}
	elapsed := time.Since(started)
	sampler.finish()
	if sampler.errors > 0 {
		t.Errorf("%d of %d samples failed; first: %v", sampler.errors, sampler.samples+sampler.errors, sampler.firstErr)
	}
	if sampler.samples < 10 {
		t.Fatalf("only %d samples taken while writing: the measurement says nothing", sampler.samples)
	}
	rssLimit := memLimit + idleRSS + limRSSMargin
	t.Logf("%d processes wrote %d x %s in %v; %d samples: max ram_bytes %s (budget %s); idle RSS %s, max RSS %s (limit %s = budget + idle + margin %s; excess over budget+idle %s)",
		writers, writers*filesPerWriter, limMiBf(fileSize), elapsed.Round(time.Millisecond), sampler.samples,
		limMiBf(sampler.maxRAM), limMiBf(memLimit), limMiBf(idleRSS), limMiBf(sampler.maxRSS), limMiBf(rssLimit),
		limMiBf(limRSSMargin), limMiBf(sampler.maxRSS-memLimit-idleRSS))
	if sampler.maxRAM > memLimit {
		t.Errorf("ram_bytes reached %d (%s), over the --mem-limit of %d", sampler.maxRAM, limMiBf(sampler.maxRAM), memLimit)
	}
	if raceBuild() {
		t.Logf("RSS not checked: the daemon is a race-detector build")
	} else if sampler.maxRSS > rssLimit {
		t.Errorf("daemon RSS reached %s, over budget %s + idle RSS %s + margin %s", limMiBf(sampler.maxRSS), limMiBf(memLimit), limMiBf(idleRSS), limMiBf(limRSSMargin))
	}

	onDisk, inRAM := 0, 0
	for w := range writers {
		for f := range filesPerWriter {
			path := m.Path(nameOf(w, f))
			want := limContent(seedOf(w, f), fileSize)
			got, err := limReadDirect(path)
			if err != nil {
				t.Errorf("%v", err)
			} else if d := firstDiff(got, want); d != "" {
				t.Errorf("%s (O_DIRECT): %s", path, d)
			}
			switch res := readResidency(t, path); res {
			case "disk":
				onDisk++
			case "memory":
				inRAM++
			default:
				t.Errorf("%s: residency %q", path, res)
			}
		}
	}
	st := limStatsOf(t, m.Dir)
	t.Logf("after: %d files in memory, %d on disk; stats: ram_bytes %s, disk_files %d, rollovers %d",
		inRAM, onDisk, limMiBf(st.RAMBytes), st.DiskFiles, st.Rollovers)
	// 40 files of 6 MiB cannot all fit in 64 MiB: at most 10 stay in RAM.
	if maxInRAM := memLimit / fileSize; inRAM > maxInRAM {
		t.Errorf("%d files of %s are in memory, but a budget of %s holds at most %d", inRAM, limMiBf(fileSize), limMiBf(memLimit), maxInRAM)
	}
	if onDisk == 0 || st.DiskFiles == 0 {
		t.Errorf("no file was rolled over to disk (residency: %d on disk; stats disk_files %d)", onDisk, st.DiskFiles)
	}
	if st.Rollovers == 0 {
		t.Errorf("stats rollovers = 0 after writing %s through a %s budget", limMiBf(writers*filesPerWriter*fileSize), limMiBf(memLimit))
	}
	if st.RAMBytes > memLimit {
		t.Errorf("stats ram_bytes = %d after the writes, over the budget %d", st.RAMBytes, memLimit)
	}
}

// limSizeSteps fills a filesystem of 10 MiB capacity with files of
// fileSize bytes until ENOSPC and then probes it: writes and overwrites
// when full, fallocate past and within the room left, deleting to make
// room. Every outcome, and statfs after each step, goes into r.
func limSizeSteps(r *limRecorder, fileSize int64) {
	const chunk = 64 * limKiB
	r.statfs("empty")
	seed := uint64(1)
	next := func() uint64 { seed++; return seed }
	filled := 0
	for i := range 20 {
		name := fmt.Sprintf("fill%02d", i)
		_, err := r.write(name, limContent(next(), fileSize), 0, chunk)
		r.statfs("after " + name)
		filled = i + 1
		if err != nil {
			break
		}
	}
	last := fmt.Sprintf("fill%02d", filled-1)
	r.write(last, []byte{'x'}, int64(len(r.data[last])), chunk)
	// Rewriting bytes a file already holds needs no new space.
	r.write("fill01", limContent(next(), chunk), 0, chunk)
	r.fallocate("fill01", 0, 0, chunk)
	r.statfs("full")
	r.verify("when full")

	r.remove("fill00")
	r.statfs("after unlink fill00")
	r.write("after-unlink", limContent(next(), limMiB/4), 0, chunk)
	r.write(last, limContent(next(), limMiB/4), int64(len(r.data[last])), chunk)
	r.statfs("after writing again")

	r.fallocate("falloc", 0, 0, 8*limMiB)
	room := r.statfs("after fallocate past the room")
	roomBytes := int64(room.bfree) * 4096
	r.fallocate("falloc", 0, 0, roomBytes+4096)
	r.fallocate("falloc", 0, 0, roomBytes)
	r.statfs("after fallocate of the room")
	r.write("nothing-left", limContent(next(), chunk), 0, chunk)
	r.truncate("falloc", 0)
	room = r.statfs("after truncating falloc")

	// One write larger than the room: tmpfs writes what fits (a short
	// write) and fails the next.
	roomBytes = int64(room.bfree) * 4096
	r.write("straddle", limContent(next(), roomBytes+50000), 0, int(roomBytes+50000))
	r.statfs("after the straddling write")
	r.verify("at the end")
}

// TestLimitsSize checks --size against tmpfs's size= with the same steps
// (limSizeSteps) on both: files fill to ENOSPC with the data written before
// intact, statfs reports the capacity and the space used, deleting frees
// room, and fallocate past the room fails. It runs once with files that
// stay in RAM and once with files that roll over (--max-size 64k), whose
// disk use counts against the capacity. tmpmount charges names to the
// capacity, which tmpfs does not: its mount gets one page more, which the
// steps' names take, and the transcript leaves that page out.
func TestLimitsSize(t *testing.T) {
	requireRoot(t)
	cases := []struct {
		name     string
		args     []string
		fileSize int64
		wantRes  string // residency of the fill files on tmpmount
	}{
		{name: "in RAM", args: []string{"--size", "10244K"}, fileSize: 4 * limMiB, wantRes: "memory"},
		{name: "rolled over", args: []string{"--size", "10244K", "--max-size", "64k"}, fileSize: limMiB, wantRes: "disk"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			ref := newLimRecorder(limMountTmpfs(t, "size=10M"))
			limSizeSteps(ref, c.fileSize)

			m := startMount(t, c.args...)
			got := newLimRecorder(m.Path())
			got.namePages = 1
			limSizeSteps(got, c.fileSize)
			limCompareTranscripts(t, "--size 10M (and a page for names) vs tmpfs size=10M", ref.lines, got.lines)

			// What tmpmount says of itself, whatever tmpfs does.
			if !slices.ContainsFunc(got.lines, func(l string) bool {
				return strings.HasPrefix(l, "write fill") && strings.HasSuffix(l, ", ENOSPC")
			}) {
				t.Errorf("filling the mount never failed with ENOSPC:\n%s", strings.Join(got.lines, "\n"))
			}
			st, err := limStatfs(m.Dir)
			if err != nil {
				t.Fatal(err)
			}
			if st.blocks*4096 != 10*limMiB+4096 || st.bfree != st.bavail {
				t.Errorf("statfs: %d blocks of 4 KiB, %d free, %d available; want 2561 (10 MiB and a page) and free == available", st.blocks, st.bfree, st.bavail)
			}
			stats := limStatsOf(t, m.Dir)
			if used := st.blocks - st.bfree; stats.MetaBytes == 0 || used != got.fileBlocks()+1 {
				t.Errorf("statfs says %d blocks used, the files hold %d and their names %d bytes", used, got.fileBlocks(), stats.MetaBytes)
			}
			if stats.SizeLimit != 10*limMiB+4096 || !strings.HasPrefix(stats.Passthrough, "off") {
				t.Errorf("stats size_limit %d passthrough %q; want %d and off", stats.SizeLimit, stats.Passthrough, 10*limMiB+4096)
			}
			for name, want := range got.data {
				path := got.p(name)
				limCheckFile(t, path, want)
				if strings.HasPrefix(name, "fill") && int64(len(want)) == c.fileSize {
					if res := readResidency(t, path); res != c.wantRes {
						t.Errorf("%s (%d bytes): residency %q, want %q", name, len(want), res, c.wantRes)
					}
				}
			}
		})
	}
}

// limInodeSteps makes 5 files, then for each kind of node (file, directory,
// symlink, FIFO, hard link, O_TMPFILE) makes nodes until ENOSPC, records
// statfs's f_files and f_ffree after each, checks the first files are
// intact, and removes what it made.
func limInodeSteps(t *testing.T, r *limRecorder) {
	t.Helper()
	ffree := func() string {
		st, err := limStatfs(r.dir)
		if err != nil {
			return err.Error()
		}
		return fmt.Sprintf("files=%d ffree=%d", st.files, st.ffree)
	}
	// settle waits up to 5 s for done: on tmpmount a removed node's inode
	// goes when the daemon sees the last release or the kernel's FORGET,
	// which come after the system call returns. A timeout shows in the
	// transcript.
	settle := func(done func() bool) {
		deadline := time.Now().Add(5 * time.Second)
		for !done() && time.Now().Before(deadline) {
			time.Sleep(5 * time.Millisecond)
		}
	}
	r.logf("empty: %s", ffree())
	for i := range 5 {
		name := fmt.Sprintf("base%d", i)
		r.write(name, limContent(uint64(100+i), 1000+int64(i)), 0, 4096)
		r.logf("  %s", ffree())
	}
	var tmpFds []int
	kinds := []struct {
		name   string
		make   func(path string) error
		remove func(path string) error
	}{
		{"file", func(p string) error {
			fd, err := unix.Open(p, unix.O_CREAT|unix.O_EXCL|unix.O_WRONLY|unix.O_CLOEXEC, 0o644)
			if err == nil {
				unix.Close(fd)
			}
			return err
		}, unix.Unlink},
		{"dir", func(p string) error { return unix.Mkdir(p, 0o755) }, unix.Rmdir},
		{"symlink", func(p string) error { return unix.Symlink("base0", p) }, unix.Unlink},
		{"fifo", func(p string) error { return unix.Mknod(p, unix.S_IFIFO|0o644, 0) }, unix.Unlink},
		{"hardlink", func(p string) error { return unix.Link(r.p("base0"), p) }, unix.Unlink},
		{"tmpfile", func(p string) error {
			fd, err := unix.Open(r.dir, unix.O_TMPFILE|unix.O_RDWR|unix.O_CLOEXEC, 0o600)
			if err == nil {
				tmpFds = append(tmpFds, fd)
			}
			return err
		}, func(string) error {
			if len(tmpFds) == 0 {
				return nil
			}
			err := unix.Close(tmpFds[len(tmpFds)-1])
			tmpFds = tmpFds[:len(tmpFds)-1]
			return err
		}},
	}
	const maxTries = 40
	for _, k := range kinds {
		before := ffree()
		made := 0
		var lastErr error
		for i := range maxTries {
			if lastErr = k.make(r.p(fmt.Sprintf("%s%02d", k.name, i))); lastErr != nil {
				break
			}
			made++
			r.logf("  %s %d: %s", k.name, i, ffree())
		}
		if lastErr == nil {
			r.logf("%s: %d made, no ENOSPC after %d", k.name, made, maxTries)
		} else {
			r.logf("%s: %d made, then %s", k.name, made, limErrnoName(lastErr))
		}
		r.verify("  with the " + k.name + "s")
		for i := range made {
			if err := k.remove(r.p(fmt.Sprintf("%s%02d", k.name, i))); err != nil {
				r.logf("  remove %s %d: %s", k.name, i, limErrnoName(err))
			}
		}
		settle(func() bool { return ffree() == before })
		r.logf("after removing the %ss: %s", k.name, ffree())
	}
	st0, err := limStatfs(r.dir)
	if err != nil {
		t.Fatalf("statfs: %v", err)
	}
	r.remove("base0")
	r.remove("base1")
	settle(func() bool {
		st, err := limStatfs(r.dir)
		return err != nil || st.ffree >= st0.ffree+2
	})
	r.logf("after removing 2 base files: %s", ffree())
	r.verify("at the end")
}

// TestLimitsInodes checks --inodes 20 against tmpfs's nr_inodes=20: the
// root counts as one; files, directories, symlinks, FIFOs, hard links and
// O_TMPFILE files each fail with ENOSPC once the 20 are used; statfs
// reports f_files 20 and f_ffree counting down; removing nodes frees them.
func TestLimitsInodes(t *testing.T) {
	requireRoot(t)
	ref := newLimRecorder(limMountTmpfs(t, "nr_inodes=20"))
	limInodeSteps(t, ref)

	m := startMount(t, "--inodes", "20")
	got := newLimRecorder(m.Path())
	if st, err := limStatfs(m.Dir); err != nil || st.files != 20 || st.ffree != 19 {
		t.Errorf("statfs of the fresh mount: %+v, %v; want f_files 20, f_ffree 19 (the root is one)", st, err)
	}
	if st := limStatsOf(t, m.Dir); st.MaxInodes != 20 || st.Inodes != 1 {
		t.Errorf("stats max_inodes %d inodes %d, want 20 and 1", st.MaxInodes, st.Inodes)
	}
	limInodeSteps(t, got)
	limCompareTranscripts(t, "--inodes 20 vs tmpfs nr_inodes=20", ref.lines, got.lines)
	for _, kind := range []string{"file", "dir", "symlink", "fifo", "hardlink", "tmpfile"} {
		if !slices.ContainsFunc(got.lines, func(l string) bool {
			return strings.HasPrefix(l, kind+": ") && strings.HasSuffix(l, "then ENOSPC")
		}) {
			t.Errorf("making %ss never failed with ENOSPC on tmpmount", kind)
		}
	}
}

// TestLimitsSpillDiskFull puts the spill directory on a 16 MiB tmpfs and
// writes a 40 MiB file: the write that finds no room fails with ENOSPC,
// the file holds exactly the bytes acknowledged before, a RAM file and a
// rolled-over file written earlier are untouched, writes that need a
// rollover or land on disk fail while the disk is full, and once a file is
// deleted writing works again.
func TestLimitsSpillDiskFull(t *testing.T) {
	requireRoot(t)
	spill := limMountTmpfs(t, "size=16m")
	// Registered before the mount's: runs after the daemon has exited.
	t.Cleanup(func() {
		entries, _ := os.ReadDir(spill)
		for _, e := range entries {
			t.Errorf("spill tmpfs still holds %s after unmount", e.Name())
		}
	})
	m := startMount(t, "--max-size", "1M", "--spill-dir", spill)
	// Writes of 100,000 bytes do not line up with pages or with the
	// room left, so the last one that fits may be short.
	const chunk = 100000
	write := func(name string, data []byte, off int64) (int64, error) {
		t.Helper()
		fd, err := unix.Open(m.Path(name), unix.O_CREAT|unix.O_WRONLY|unix.O_CLOEXEC, 0o644)
		if err != nil {
			t.Fatalf("open %s: %v", name, err)
		}
		defer unix.Close(fd)
		return limPwriteChunks(fd, data, off, chunk)
	}
	mustWrite := func(name string, data []byte) {
		t.Helper()
		if n, err := write(name, data, 0); err != nil {
			t.Fatalf("write %s: %d bytes, %v", name, n, err)
		}
	}
	small := limContent(1, 200*limKiB)
	rolled1, rolled2 := limContent(2, 3*limMiB), limContent(3, 3*limMiB)
	mustWrite("small", small)
	mustWrite("rolled1", rolled1)
	mustWrite("rolled2", rolled2)
	for name, want := range map[string]string{"small": "memory", "rolled1": "disk", "rolled2": "disk"} {
		if res := readResidency(t, m.Path(name)); res != want {
			t.Fatalf("%s: residency %q, want %q", name, res, want)
		}
	}

	big := limContent(4, 40*limMiB)
	acked, err := write("big", big, 0)
	t.Logf("big: %d bytes (%s) acknowledged, then %v; residency %s", acked, limMiBf(acked), err, readResidency(t, m.Path("big")))
	if limErrno(err) != unix.ENOSPC {
		t.Fatalf("writing 40 MiB with a 16 MiB spill disk: got %v after %d bytes, want ENOSPC", err, acked)
	}
	if acked <= limMiB || acked >= 16*limMiB {
		t.Errorf("acknowledged %d bytes: want more than --max-size (1 MiB) and less than the 16 MiB disk", acked)
	}
	checkAll := func(when string, bigLen int64) {
		t.Helper()
		var st unix.Stat_t
		if err := unix.Stat(m.Path("big"), &st); err != nil || st.Size != bigLen {
			t.Errorf("%s: big has size %d (%v), want the %d bytes acknowledged", when, st.Size, err, bigLen)
		}
		limCheckFile(t, m.Path("big"), big[:bigLen])
		limCheckFile(t, m.Path("small"), small)
		limCheckFile(t, m.Path("rolled2"), rolled2)
	}
	checkAll("when the disk is full", acked)
	limCheckFile(t, m.Path("rolled1"), rolled1)

	// While the disk is full: more of big, more of a file on disk, and
	// growing a RAM file past --max-size (it needs a rollover) all fail
	// with ENOSPC, and leave the files as they were.
	if n, err := write("big", big[acked:acked+chunk], acked); limErrno(err) != unix.ENOSPC || n != 0 {
		t.Errorf("writing more of big with the disk full: %d bytes, %v; want 0, ENOSPC", n, err)
	}
	if n, err := write("rolled2", limContent(5, chunk), int64(len(rolled2))); limErrno(err) != unix.ENOSPC {
		t.Errorf("appending to rolled2 (on disk) with the disk full: %d bytes, %v; want ENOSPC", n, err)
	} else if n > 0 {
		rolled2 = append(rolled2, limContent(5, chunk)[:n]...)
	}
	grow := limContent(6, 2*limMiB)
	n, err := write("small", grow[len(small):], int64(len(small)))
	if limErrno(err) != unix.ENOSPC {
		t.Errorf("growing small past --max-size with the disk full: %d bytes, %v; want ENOSPC", n, err)
	}
	small = append(small, grow[len(small):int64(len(small))+n]...)
	t.Logf("small grew by %d bytes before ENOSPC; residency %s", n, readResidency(t, m.Path("small")))
	if int64(len(small)) > limMiB {
		t.Errorf("small holds %d bytes, more than --max-size, with no disk to roll over to", len(small))
	}
	checkAll("after the writes that failed", acked)

	// Room again: deleting rolled1 frees 3 MiB of the spill disk. The
	// daemon frees it when the kernel forgets the file, a moment after
	// unlink(2) returns; a write the daemon serves waits for that, but
	// big is open in passthrough, whose writes never reach the daemon,
	// so wait until the spill disk shows the room.
	var before unix.Statfs_t
	if err := unix.Statfs(spill, &before); err != nil {
		t.Fatal(err)
	}
	if err := os.Remove(m.Path("rolled1")); err != nil {
		t.Fatal(err)
	}
	waitFor(t, 10*time.Second, "the spill disk to get rolled1's 3 MiB back", func() bool {
		var st unix.Statfs_t
		return unix.Statfs(spill, &st) == nil && (st.Bavail-before.Bavail)*uint64(st.Bsize) >= 3*limMiB
	})
	more := min(2*limMiB, int64(len(big))-acked)
	if n, err := write("big", big[acked:acked+more], acked); err != nil || n != more {
		t.Fatalf("writing %d more bytes of big after freeing space: %d, %v", more, n, err)
	}
	checkAll("after freeing space and writing again", acked+more)
	limCheckServing(t, m, "the spill disk filled up")
}

// limDaemon is a tmpmount started outside the harness, for tests that kill
// it or start it on a mount point left dead.
type limDaemon struct {
	dir    string
	cmd    *exec.Cmd
	stderr *syncBuffer
	done   chan struct{}
	err    error
}

// limStartDaemon starts tmpmount with args (the mount point last) and
// waits until it serves dir.
func limStartDaemon(t *testing.T, dir string, args ...string) *limDaemon {
	t.Helper()
	d := &limDaemon{dir: dir, stderr: &syncBuffer{}, done: make(chan struct{})}
	d.cmd = exec.Command(tmpmountBin, append(args, dir)...)
	d.cmd.Stderr, d.cmd.Stdout = d.stderr, d.stderr
	if err := d.cmd.Start(); err != nil {
		t.Fatalf("start tmpmount: %v", err)
	}
	go func() {
		d.err = d.cmd.Wait()
		close(d.done)
	}()
	t.Cleanup(func() {
		select {
		case <-d.done:
		default:
			d.cmd.Process.Kill()
			<-d.done
		}
	})
	waitFor(t, 10*time.Second, "tmpmount serving "+dir, func() bool {
		select {
		case <-d.done:
			t.Fatalf("tmpmount exited before serving: %v\n%s", d.err, d.stderr)
		default:
		}
		return isMountPoint(dir) && strings.Contains(d.stderr.String(), "tmpmount: serving ")
	})
	return d
}

// limMountsAt counts the mounts stacked at dir, per /proc/self/mountinfo,
// and returns their filesystem types.
func limMountsAt(t *testing.T, dir string) []string {
	t.Helper()
	var types []string
	for _, m := range mountsOf(t, "/proc/self/mountinfo") {
		if m.point == dir {
			types = append(types, m.fstype)
		}
	}
	return types
}

// limDetachAll unmounts whatever is mounted at dir.
func limDetachAll(dir string) {
	for range 10 {
		if unix.Unmount(dir, unix.MNT_DETACH) != nil {
			return
		}
	}
}

// TestLimitsSigkillRecovery kills the daemon with SIGKILL while it holds a
// RAM file and a rolled-over one: the mount point then gives ENOTCONN, and
// the spill parent holds only the dead daemon's private directory, empty
// (backing files have no names). Starting tmpmount again on the same
// mount point unmounts the dead mount (and says so), serves a fresh mount,
// and removes the dead daemon's empty spill directory.
func TestLimitsSigkillRecovery(t *testing.T) {
	requireFUSE(t)
	requireRoot(t)
	mnt, spill := t.TempDir(), t.TempDir()
	t.Cleanup(func() { limDetachAll(mnt) })

	d1 := limStartDaemon(t, mnt, "--max-size", "64k", "--spill-dir", spill)
	if err := os.WriteFile(filepath.Join(mnt, "ram"), limContent(1, 1000), 0o644); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(mnt, "rolled"), limContent(2, limMiB), 0o644); err != nil {
		t.Fatal(err)
	}
	if res := readResidency(t, filepath.Join(mnt, "rolled")); res != "disk" {
		t.Fatalf("rolled: residency %q, want disk", res)
	}
	entries, err := os.ReadDir(spill)
	if err != nil || len(entries) != 1 {
		t.Fatalf("spill parent before the kill: %v, %v; want one private directory", entries, err)
	}
	deadDir := entries[0].Name()
	if want := fmt.Sprintf("tmpmount-%d-", d1.cmd.Process.Pid); !strings.HasPrefix(deadDir, want) {
		t.Errorf("private spill dir %q does not start with %q", deadDir, want)
	}

	if err := d1.cmd.Process.Kill(); err != nil {
		t.Fatal(err)
	}
	<-d1.done
	// statfs always asks the daemon (stat may be answered from the
	// kernel's attribute cache, which outlives the connection).
	awaitDeadMount(t, mnt)
	var sfs unix.Statfs_t
	if err := unix.Statfs(mnt, &sfs); !errors.Is(err, unix.ENOTCONN) {
		t.Fatalf("statfs of the mount point after SIGKILL: %v, want ENOTCONN", err)
	}
	entries, err = os.ReadDir(spill)
	if err != nil || len(entries) != 1 || entries[0].Name() != deadDir {
		t.Fatalf("spill parent after the kill: %v, %v; want only %s", entries, err, deadDir)
	}
	if left, err := os.ReadDir(filepath.Join(spill, deadDir)); err != nil || len(left) != 0 {
		t.Errorf("the dead daemon's spill dir holds %v (%v); want nothing: backing files have no names", left, err)
	}

	d2 := limStartDaemon(t, mnt, "--spill-dir", spill)
	log := d2.stderr.String()
	if !strings.Contains(log, "dead tmpmount mount") || !strings.Contains(log, mnt) {
		t.Errorf("the new daemon's log does not say it unmounted the dead mount at %s:\n%s", mnt, log)
	}
	if types := limMountsAt(t, mnt); !slices.Equal(types, []string{"fuse.tmpmount"}) {
		t.Errorf("mounts at %s: %q, want one fuse.tmpmount (the dead one gone)", mnt, types)
	}
	if names, err := os.ReadDir(mnt); err != nil || len(names) != 0 {
		t.Errorf("the fresh mount holds %v (%v), want nothing", names, err)
	}
	want := limContent(3, 100*limKiB)
	if err := os.WriteFile(filepath.Join(mnt, "new"), want, 0o644); err != nil {
		t.Fatalf("write to the new mount: %v", err)
	}
	limCheckFile(t, filepath.Join(mnt, "new"), want)
	entries, _ = os.ReadDir(spill)
	var names []string
	for _, e := range entries {
		names = append(names, e.Name())
	}
	if want := fmt.Sprintf("tmpmount-%d-", d2.cmd.Process.Pid); len(names) != 1 || !strings.HasPrefix(names[0], want) {
		t.Errorf("spill parent with the new daemon: %q, want only its own %s* (the dead one's removed)", names, want)
	}

	if err := unix.Unmount(mnt, 0); err != nil {
		t.Fatalf("unmount: %v", err)
	}
	select {
	case <-d2.done:
	case <-time.After(20 * time.Second):
		t.Fatalf("the new daemon did not exit after unmount")
	}
	if d2.err != nil {
		t.Errorf("the new daemon exited with %v\n%s", d2.err, d2.stderr)
	}
	if left, _ := os.ReadDir(spill); len(left) != 0 {
		t.Errorf("spill parent after unmount holds %v", left)
	}
}

// TestLimitsForeignDeadMount makes a dead FUSE mount of another kind (a
// raw mount of /dev/fuse whose descriptor is then closed, which aborts the
// connection): tmpmount must not unmount it, and fails with exit status 2
// saying what it is.
func TestLimitsForeignDeadMount(t *testing.T) {
	requireFUSE(t)
	requireRoot(t)
	mnt := t.TempDir()
	fd, err := unix.Open("/dev/fuse", unix.O_RDWR|unix.O_CLOEXEC, 0)
	if err != nil {
		t.Fatal(err)
	}
	opts := fmt.Sprintf("fd=%d,rootmode=40000,user_id=0,group_id=0", fd)
	if err := unix.Mount("limforeign", mnt, "fuse.limforeign", unix.MS_NOSUID|unix.MS_NODEV, opts); err != nil {
		unix.Close(fd)
		t.Skipf("cannot make a raw FUSE mount: %v", err)
	}
	t.Cleanup(func() { limDetachAll(mnt) })
	unix.Close(fd)
	var st unix.Stat_t
	if err := unix.Stat(mnt, &st); !errors.Is(err, unix.ENOTCONN) {
		t.Fatalf("stat of the foreign mount after closing its descriptor: %v, want ENOTCONN", err)
	}

	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	cmd := exec.CommandContext(ctx, tmpmountBin, "--spill-dir", t.TempDir(), mnt)
	out, err := cmd.CombinedOutput()
	var ee *exec.ExitError
	if !errors.As(err, &ee) || ee.ExitCode() != 2 {
		limDetachAll(mnt)
		t.Fatalf("tmpmount on a foreign dead FUSE mount: %v, want exit status 2\n%s", err, out)
	}
	if !strings.Contains(string(out), "dead FUSE mount") || !strings.Contains(string(out), "fuse.limforeign") {
		t.Errorf("tmpmount's message does not say it is a dead FUSE mount of type fuse.limforeign:\n%s", out)
	}
	if types := limMountsAt(t, mnt); !slices.Equal(types, []string{"fuse.limforeign"}) {
		t.Errorf("mounts at %s after tmpmount refused: %q, want the foreign one left alone", mnt, types)
	}
}

// limHostileCase is one hostile operation, run in a fresh directory on
// tmpfs and on tmpmount.
type limHostileCase struct {
	name string
	// op returns a description of what it saw (compared between the two)
	// and the failure.
	op      func(dir string) (string, error)
	want    syscall.Errno // 0: success
	asTmpfs bool          // no fixed expectation: whatever tmpfs gives
	// onDisk: the file rolls over (its size or extent passes --max-size),
	// so where the spill file system's largest file is smaller than
	// tmpfs's (ext4: 16 TiB, tmpfs: 2^63-1), tmpmount must do what that
	// file system does in a plain directory instead.
	onDisk bool
}

// limOpenRW creates and opens a file for the offset tests.
func limOpenRW(dir, name string) (int, error) {
	return unix.Open(filepath.Join(dir, name), unix.O_CREAT|unix.O_RDWR|unix.O_CLOEXEC, 0o644)
}

// limFdState describes a file's size and allocated 4 KiB blocks.
func limFdState(fd int) string {
	var st unix.Stat_t
	if err := unix.Fstat(fd, &st); err != nil {
		return "fstat: " + limErrnoName(err)
	}
	return fmt.Sprintf("size %d blocks %d", st.Size, st.Blocks*512/4096)
}

func limHostileCases() []limHostileCase {
	name255, name256 := strings.Repeat("n", 255), strings.Repeat("n", 256)
	const top = int64(1<<63 - 1) // MAX_LFS_FILESIZE
	p := filepath.Join
	withFile := func(dir string) error { return os.WriteFile(p(dir, "src"), []byte("source"), 0o644) }
	create := func(name string) func(string) (string, error) {
		return func(dir string) (string, error) {
			fd, err := unix.Open(p(dir, name), unix.O_CREAT|unix.O_EXCL|unix.O_WRONLY|unix.O_CLOEXEC, 0o644)
			if err == nil {
				unix.Close(fd)
			}
			return "", err
		}
	}
	mkdir := func(name string) func(string) (string, error) {
		return func(dir string) (string, error) { return "", unix.Mkdir(p(dir, name), 0o755) }
	}
	rename := func(name string) func(string) (string, error) {
		return func(dir string) (string, error) {
			if err := withFile(dir); err != nil {
				return "", err
			}
			return "", unix.Rename(p(dir, "src"), p(dir, name))
		}
	}
	symlinkNamed := func(name string) func(string) (string, error) {
		return func(dir string) (string, error) { return "", unix.Symlink("target", p(dir, name)) }
	}
	link := func(name string) func(string) (string, error) {
		return func(dir string) (string, error) {
			if err := withFile(dir); err != nil {
				return "", err
			}
			return "", unix.Link(p(dir, "src"), p(dir, name))
		}
	}
	symlinkTo := func(n int) func(string) (string, error) {
		return func(dir string) (string, error) {
			target := strings.Repeat("t", n)
			if err := unix.Symlink(target, p(dir, "s")); err != nil {
				return "", err
			}
			buf := make([]byte, 8192)
			got, err := unix.Readlink(p(dir, "s"), buf)
			if err != nil {
				return "readlink: " + limErrnoName(err), nil
			}
			return fmt.Sprintf("readlink gives %d bytes, equal: %v", got, string(buf[:got]) == target), nil
		}
	}
	setxattr := func(name string, size int) func(string) (string, error) {
		return func(dir string) (string, error) {
			if err := withFile(dir); err != nil {
				return "", err
			}
			value := bytes.Repeat([]byte{'v'}, size)
			if err := unix.Setxattr(p(dir, "src"), name, value, 0); err != nil {
				return "", err
			}
			buf := make([]byte, 128*limKiB)
			n, err := unix.Getxattr(p(dir, "src"), name, buf)
			return fmt.Sprintf("getxattr: %d bytes, %s, equal: %v", n, limErrnoName(err), bytes.Equal(buf[:max(n, 0)], value)), nil
		}
	}
	pwriteAt := func(off int64) func(string) (string, error) {
		return func(dir string) (string, error) {
			fd, err := limOpenRW(dir, "f")
			if err != nil {
				return "", err
			}
			defer unix.Close(fd)
			_, werr := unix.Pwrite(fd, []byte{'z'}, off)
			got := make([]byte, 1)
			n, rerr := unix.Pread(fd, got, off)
			return fmt.Sprintf("%s; pread 1 at the offset: %d %q %s", limFdState(fd), n, got[:max(n, 0)], limErrnoName(rerr)), werr
		}
	}
	ftruncate := func(size int64) func(string) (string, error) {
		return func(dir string) (string, error) {
			fd, err := limOpenRW(dir, "f")
			if err != nil {
				return "", err
			}
			defer unix.Close(fd)
			err = unix.Ftruncate(fd, size)
			return limFdState(fd), err
		}
	}
	fallocate := func(mode uint32, off, length int64) func(string) (string, error) {
		return func(dir string) (string, error) {
			fd, err := limOpenRW(dir, "f")
			if err != nil {
				return "", err
			}
			defer unix.Close(fd)
			err = unix.Fallocate(fd, mode, off, length)
			return limFdState(fd), err
		}
	}
	// seeks makes a file of size 2^63-1 with one byte of data at its end
	// (by ftruncate and pwrite, each as the fs allows) and seeks near 2^63.
	seeks := func(dir string) (string, error) {
		fd, err := limOpenRW(dir, "f")
		if err != nil {
			return "", err
		}
		defer unix.Close(fd)
		tErr := unix.Ftruncate(fd, top)
		_, wErr := unix.Pwrite(fd, []byte{'z'}, top-1)
		var b strings.Builder
		fmt.Fprintf(&b, "ftruncate %s, pwrite %s, %s;", limErrnoName(tErr), limErrnoName(wErr), limFdState(fd))
		for _, s := range []struct {
			name   string
			off    int64
			whence int
		}{
			{"DATA 0", 0, unix.SEEK_DATA},
			{"DATA 2^63-2^20", top - limMiB, unix.SEEK_DATA},
			{"HOLE 2^63-8193", top - 8192, unix.SEEK_HOLE},
			{"DATA 2^63-2", top - 1, unix.SEEK_DATA},
			{"HOLE 2^63-2", top - 1, unix.SEEK_HOLE},
		} {
			pos, err := unix.Seek(fd, s.off, s.whence)
			fmt.Fprintf(&b, " SEEK_%s: %d %s;", s.name, pos, limErrnoName(err))
		}
		return b.String(), nil
	}
	longPath := func(dir string) (string, error) {
		path := dir + "/" + strings.Repeat("./", 2100) + "x"
		fd, err := unix.Open(path, unix.O_CREAT|unix.O_WRONLY|unix.O_CLOEXEC, 0o644)
		if err == nil {
			unix.Close(fd)
		}
		return "", err
	}
	return []limHostileCase{
		{name: "create 255-byte name", op: create(name255)},
		{name: "create 256-byte name", op: create(name256), want: unix.ENAMETOOLONG},
		{name: "stat 256-byte name", op: func(dir string) (string, error) {
			var st unix.Stat_t
			return "", unix.Lstat(p(dir, name256), &st)
		}, want: unix.ENAMETOOLONG},
		{name: "mkdir 255-byte name", op: mkdir(name255)},
		{name: "mkdir 256-byte name", op: mkdir(name256), want: unix.ENAMETOOLONG},
		{name: "rename to 255-byte name", op: rename(name255)},
		{name: "rename to 256-byte name", op: rename(name256), want: unix.ENAMETOOLONG},
		{name: "symlink named 255 bytes", op: symlinkNamed(name255)},
		{name: "symlink named 256 bytes", op: symlinkNamed(name256), want: unix.ENAMETOOLONG},
		{name: "link named 255 bytes", op: link(name255)},
		{name: "link named 256 bytes", op: link(name256), want: unix.ENAMETOOLONG},
		{name: "mkfifo named 256 bytes", op: func(dir string) (string, error) {
			return "", unix.Mknod(p(dir, name256), unix.S_IFIFO|0o644, 0)
		}, want: unix.ENAMETOOLONG},
		{name: "symlink target 4095 bytes", op: symlinkTo(4095)},
		{name: "symlink target 4096 bytes", op: symlinkTo(4096), want: unix.ENAMETOOLONG},
		{name: "open a path longer than PATH_MAX", op: longPath, want: unix.ENAMETOOLONG},
		{name: "xattr value 64 KiB", op: setxattr("user.big", 64*limKiB)},
		{name: "xattr value 64 KiB + 1", op: setxattr("user.big", 64*limKiB+1), want: unix.E2BIG},
		{name: "xattr name 256 bytes", op: setxattr("user."+strings.Repeat("x", 251), 1), want: unix.ERANGE},
		{name: "pwrite 1 byte at 2^63-2", op: pwriteAt(top - 1), asTmpfs: true, onDisk: true},
		{name: "pwrite 1 byte at 2^63-1", op: pwriteAt(top), asTmpfs: true, onDisk: true},
		{name: "ftruncate to 2^63-1", op: ftruncate(top), asTmpfs: true, onDisk: true},
		{name: "fallocate 4 KiB at 2^63-8192", op: fallocate(0, top-8191, 4096), asTmpfs: true, onDisk: true},
		{name: "fallocate 4 KiB at 2^63-4096", op: fallocate(0, top-4095, 4096), asTmpfs: true, onDisk: true},
		{name: "fallocate KEEP_SIZE 4 KiB at 2^63-8192", op: fallocate(unix.FALLOC_FL_KEEP_SIZE, top-8191, 4096), asTmpfs: true, onDisk: true},
		{name: "punch hole at 2^63-8192", op: fallocate(unix.FALLOC_FL_KEEP_SIZE|unix.FALLOC_FL_PUNCH_HOLE, top-8191, 8191), asTmpfs: true, onDisk: true},
		{name: "lseek SEEK_DATA/SEEK_HOLE near 2^63", op: seeks, asTmpfs: true, onDisk: true},
	}
}

// TestLimitsHostileInput runs each hostile operation on tmpfs and on
// tmpmount, expects the errno of the table (or tmpfs's where the table
// leaves it open) and tmpmount to match tmpfs, and checks after each that
// the daemon still serves. Subtests: a directory chain 2000 deep, the
// per-node xattr cap, names with a newline and escape sequences in the
// --debug log, and the RSS that 20,000 files cost.
func TestLimitsHostileInput(t *testing.T) {
	requireRoot(t)
	ref := limMountTmpfs(t, "")
	m := startMount(t)
	for i, c := range limHostileCases() {
		t.Run(c.name, func(t *testing.T) {
			dirName := fmt.Sprintf("case%02d", i)
			refDir, gotDir := filepath.Join(ref, dirName), m.Path(dirName)
			for _, d := range []string{refDir, gotDir} {
				if err := os.Mkdir(d, 0o755); err != nil {
					t.Fatal(err)
				}
			}
			refOut, refErr := c.op(refDir)
			gotOut, gotErr := c.op(gotDir)
			limCheckServing(t, m, c.name)
			if !c.asTmpfs && limErrno(refErr) != c.want {
				t.Errorf("the table is wrong: tmpfs gives %s, the table wants %s", limErrnoName(refErr), limErrnoName(c.want))
			}
			if c.onDisk && (gotOut != refOut || limErrno(gotErr) != limErrno(refErr)) {
				diskDir := filepath.Join(t.TempDir(), dirName)
				if err := os.Mkdir(diskDir, 0o755); err != nil {
					t.Fatal(err)
				}
				diskOut, diskErr := c.op(diskDir)
				if limErrno(diskErr) != limErrno(refErr) || diskOut != refOut {
					t.Logf("the spill file system differs from tmpfs here (%s, saw %s); tmpmount must do as it does", limErrnoName(diskErr), diskOut)
					refOut, refErr = diskOut, diskErr
				}
			}
			if limErrno(gotErr) != limErrno(refErr) || (gotErr == nil) != (refErr == nil) {
				t.Errorf("tmpmount: %s, tmpfs: %s", limErrnoName(gotErr), limErrnoName(refErr))
			}
			if gotOut != refOut {
				t.Errorf("tmpmount saw:\n  %s\ntmpfs saw:\n  %s", gotOut, refOut)
			}
		})
	}

	t.Run("directory chain 2000 deep", func(t *testing.T) {
		const depth = 2000
		top := m.Path("deep")
		if err := os.Mkdir(top, 0o755); err != nil {
			t.Fatal(err)
		}
		fd, err := unix.Open(top, unix.O_DIRECTORY|unix.O_RDONLY|unix.O_CLOEXEC, 0)
		if err != nil {
			t.Fatal(err)
		}
		name := "level-" + strings.Repeat("d", 20) // 2000 x 27 bytes: a path of 54,000 bytes
		for i := range depth {
			if err := unix.Mkdirat(fd, name, 0o755); err != nil {
				unix.Close(fd)
				t.Fatalf("mkdirat at depth %d: %v", i, err)
			}
			next, err := unix.Openat(fd, name, unix.O_DIRECTORY|unix.O_RDONLY|unix.O_CLOEXEC, 0)
			unix.Close(fd)
			if err != nil {
				t.Fatalf("openat at depth %d: %v", i, err)
			}
			fd = next
		}
		leaf, err := unix.Openat(fd, "leaf", unix.O_CREAT|unix.O_RDWR|unix.O_CLOEXEC, 0o644)
		if err != nil {
			unix.Close(fd)
			t.Fatalf("create the leaf: %v", err)
		}
		want := []byte("at the bottom")
		if _, err := unix.Pwrite(leaf, want, 0); err != nil {
			t.Errorf("write the leaf: %v", err)
		}
		unix.Close(leaf)
		// The whole path is beyond PATH_MAX: the kernel refuses it.
		full := top + strings.Repeat("/"+name, depth) + "/leaf"
		if _, err := os.Stat(full); !errors.Is(err, unix.ENAMETOOLONG) {
			t.Errorf("stat of the %d-byte path: %v, want ENAMETOOLONG", len(full), err)
		}
		unix.Close(fd)
		limCheckServing(t, m, "a 2000-deep chain")
		// Walk down again from the top and read the leaf.
		fd, err = unix.Open(top, unix.O_DIRECTORY|unix.O_RDONLY|unix.O_CLOEXEC, 0)
		if err != nil {
			t.Fatal(err)
		}
		for i := range depth {
			next, err := unix.Openat(fd, name, unix.O_DIRECTORY|unix.O_RDONLY|unix.O_CLOEXEC, 0)
			unix.Close(fd)
			if err != nil {
				t.Fatalf("walking down again, openat at depth %d: %v", i, err)
			}
			fd = next
		}
		leaf, err = unix.Openat(fd, "leaf", unix.O_RDONLY|unix.O_CLOEXEC, 0)
		unix.Close(fd)
		if err != nil {
			t.Fatalf("open the leaf: %v", err)
		}
		got := make([]byte, 64)
		n, _ := unix.Pread(leaf, got, 0)
		unix.Close(leaf)
		if !bytes.Equal(got[:n], want) {
			t.Errorf("the leaf reads %q, want %q", got[:n], want)
		}
		if err := os.RemoveAll(top); err != nil {
			t.Errorf("remove the chain: %v", err)
		}
		limCheckServing(t, m, "removing a 2000-deep chain")
	})

	t.Run("xattr cap per node", func(t *testing.T) {
		// fsnode/xattr.go: a node holds at most 1 MiB of xattr names and
		// values; past it setxattr fails with ENOSPC.
		const capBytes = limMiB
		path := m.Path("xattrs")
		if err := os.WriteFile(path, nil, 0o644); err != nil {
			t.Fatal(err)
		}
		value := func(i int) []byte { return limContent(uint64(500+i), 64*limKiB) }
		stored, total := 0, 0
		var lastErr error
		for i := range 40 {
			name := fmt.Sprintf("user.x%02d", i)
			if lastErr = unix.Setxattr(path, name, value(i), 0); lastErr != nil {
				break
			}
			stored++
			total += len(name) + 64*limKiB
		}
		t.Logf("%d xattrs of 64 KiB stored (%d bytes with names), then %v", stored, total, lastErr)
		if !errors.Is(lastErr, unix.ENOSPC) {
			t.Fatalf("setting 64 KiB xattrs: %d stored, then %v; want ENOSPC at the 1 MiB cap", stored, lastErr)
		}
		if total > capBytes || total+len("user.x00")+64*limKiB <= capBytes {
			t.Errorf("ENOSPC with %d bytes stored; the cap is %d", total, capBytes)
		}
		buf := make([]byte, 64*limKiB)
		for i := range stored {
			n, err := unix.Getxattr(path, fmt.Sprintf("user.x%02d", i), buf)
			if err != nil || !bytes.Equal(buf[:n], value(i)) {
				t.Errorf("user.x%02d after the cap was hit: %d bytes, %v; want its 64 KiB intact", i, n, err)
			}
		}
		if err := unix.Removexattr(path, "user.x00"); err != nil {
			t.Fatal(err)
		}
		if err := unix.Setxattr(path, fmt.Sprintf("user.x%02d", stored), value(stored), 0); err != nil {
			t.Errorf("setxattr after removing one: %v, want room again", err)
		}
		limCheckServing(t, m, "the xattr cap")
	})

	t.Run("escapes in the debug log", func(t *testing.T) {
		dm := startMount(t, "--debug")
		name := "lim\nnewline \x1b[31mred\x1b[0m \x1b]0;title\x07 end"
		path := dm.Path(name)
		if err := os.WriteFile(path, []byte("x"), 0o644); err != nil {
			t.Fatal(err)
		}
		if _, err := os.ReadDir(dm.Dir); err != nil {
			t.Fatal(err)
		}
		if err := unix.Setxattr(path, "user.\n\x1b[1m", []byte("v\n\x1b[0m"), 0); err != nil {
			t.Errorf("setxattr with a hostile name: %v", err)
		}
		if err := os.Symlink(name, dm.Path("link\n\x1b[2J")); err != nil {
			t.Fatal(err)
		}
		if _, err := os.Readlink(dm.Path("link\n\x1b[2J")); err != nil {
			t.Fatal(err)
		}
		if err := os.Rename(path, path+"\x1b[K"); err != nil {
			t.Fatal(err)
		}
		if err := os.Remove(path + "\x1b[K"); err != nil {
			t.Fatal(err)
		}
		limCheckServing(t, dm, "hostile names")
		// The daemon's stderr reaches the buffer through a pipe: wait
		// for the name to arrive, or fail at the deadline.
		quoted := strconv.Quote(name)
		waitFor(t, 10*time.Second, "the log to show the name escaped as "+quoted, func() bool {
			return strings.Contains(dm.Stderr.String(), quoted[1:len(quoted)-1])
		})
		log := dm.Stderr.String()
		if strings.Contains(log, "\x1b") {
			t.Errorf("the daemon's log holds raw ESC bytes")
		}
		for i, line := range strings.Split(strings.TrimSuffix(log, "\n"), "\n") {
			if !strings.HasPrefix(line, "tmpmount: ") {
				t.Errorf("log line %d does not start with %q: %q", i+1, "tmpmount: ", line)
			}
		}
	})

	t.Run("RSS of 20000 files", func(t *testing.T) {
		if raceBuild() {
			t.Skip("the daemon is a race-detector build, whose RSS is not the product's; scripts/test.sh runs this on a normal build")
		}
		const files = 20000
		pid := daemonPID(m)
		dir := m.Path("many")
		if err := os.Mkdir(dir, 0o755); err != nil {
			t.Fatal(err)
		}
		before := limRSSOf(t, pid)
		pad := strings.Repeat("n", 200-6)
		start := time.Now()
		for i := range files {
			if err := unix.Mknod(filepath.Join(dir, fmt.Sprintf("%05d-%s", i, pad)), unix.S_IFREG|0o644, 0); err != nil {
				t.Fatalf("mknod file %d: %v", i, err)
			}
		}
		after := limRSSOf(t, pid)
		growth := after - before
		t.Logf("%d files with 200-byte names in %v: RSS %s -> %s, +%s, %d bytes per file",
			files, time.Since(start).Round(time.Millisecond), limMiBf(before), limMiBf(after), limMiBf(growth), growth/files)
		if growth > 64*limMiB {
			t.Errorf("RSS grew by %s for %d empty files, over 64 MiB", limMiBf(growth), files)
		}
		if err := os.RemoveAll(dir); err != nil {
			t.Errorf("remove the files: %v", err)
		}
		limCheckServing(t, m, "20000 files")
	})
}

// limStressDuration is how long TestLimitsStress runs: 10 s, 60 s under
// CI=true, or TMPMOUNT_STRESS_SECONDS.
func limStressDuration(t *testing.T) time.Duration {
	t.Helper()
	if v := os.Getenv("TMPMOUNT_STRESS_SECONDS"); v != "" {
		s, err := strconv.ParseFloat(v, 64)
		if err != nil || s <= 0 {
			t.Fatalf("TMPMOUNT_STRESS_SECONDS=%q: want a positive number of seconds", v)
		}
		return time.Duration(s * float64(time.Second))
	}
	if os.Getenv("CI") == "true" {
		return 60 * time.Second
	}
	return 10 * time.Second
}

// limWorker is one stress worker: it owns a directory and knows what each
// of its files must hold.
type limWorker struct {
	id      int
	dir     string
	rng     *rand.Rand
	files   map[string][]byte
	next    int
	ops     map[string]int
	history []string // the last operations, for a failure report
	err     error
}

const limWorkerMaxFiles = 8

func (w *limWorker) p(name string) string { return filepath.Join(w.dir, name) }

func (w *limWorker) fail(format string, args ...any) {
	if w.err == nil {
		w.err = fmt.Errorf("worker %d: %s\nlast operations:\n  %s", w.id, fmt.Sprintf(format, args...), strings.Join(w.history, "\n  "))
	}
}

func (w *limWorker) note(format string, args ...any) {
	w.history = append(w.history, fmt.Sprintf(format, args...))
	if len(w.history) > 20 {
		w.history = w.history[1:]
	}
}

// size picks a file size: mostly small, some past --max-size (2M).
func (w *limWorker) size() int64 {
	switch r := w.rng.IntN(100); {
	case r < 70:
		return w.rng.Int64N(256 * limKiB)
	case r < 93:
		return 256*limKiB + w.rng.Int64N(7*limMiB/4)
	default:
		return 2*limMiB + w.rng.Int64N(limMiB)
	}
}

func (w *limWorker) bytes(n int64) []byte {
	b := make([]byte, n)
	for i := range b {
		b[i] = byte(w.rng.Uint32())
	}
	return b
}

func (w *limWorker) pick() (string, bool) {
	if len(w.files) == 0 {
		return "", false
	}
	names := make([]string, 0, len(w.files))
	for n := range w.files {
		names = append(names, n)
	}
	sort.Strings(names)
	return names[w.rng.IntN(len(names))], true
}

func (w *limWorker) setLen(name string, n int64) {
	d := w.files[name]
	if int64(len(d)) > n {
		d = d[:n]
	} else {
		d = append(d, make([]byte, n-int64(len(d)))...)
	}
	w.files[name] = d
}

// step does one random operation and checks what it can at once.
func (w *limWorker) step() {
	name, ok := w.pick()
	op := w.rng.IntN(100)
	if !ok || (op < 15 && len(w.files) < limWorkerMaxFiles) {
		name = fmt.Sprintf("f%04d", w.next)
		w.next++
		data := w.bytes(w.size())
		w.note("create %s with %d bytes", name, len(data))
		if err := os.WriteFile(w.p(name), data, 0o644); err != nil {
			w.fail("create %s: %v", name, err)
			return
		}
		w.files[name] = data
		w.ops["create"]++
		return
	}
	cur := w.files[name]
	switch {
	case op < 30: // pwrite
		off := w.rng.Int64N(int64(len(cur)) + 64*limKiB)
		data := w.bytes(1 + w.rng.Int64N(128*limKiB))
		w.note("pwrite %s [%d, +%d)", name, off, len(data))
		f, err := os.OpenFile(w.p(name), os.O_WRONLY, 0)
		if err == nil {
			_, err = f.WriteAt(data, off)
			f.Close()
		}
		if err != nil {
			w.fail("pwrite %s: %v", name, err)
			return
		}
		if end := off + int64(len(data)); end > int64(len(cur)) {
			w.setLen(name, end)
		}
		copy(w.files[name][off:], data)
		w.ops["pwrite"]++
	case op < 40: // append
		data := w.bytes(1 + w.rng.Int64N(128*limKiB))
		w.note("append %d bytes to %s", len(data), name)
		f, err := os.OpenFile(w.p(name), os.O_WRONLY|os.O_APPEND, 0)
		if err == nil {
			_, err = f.Write(data)
			f.Close()
		}
		if err != nil {
			w.fail("append to %s: %v", name, err)
			return
		}
		w.files[name] = append(cur, data...)
		w.ops["append"]++
	case op < 48: // rename, to a new name or over another file
		dst, _ := w.pick()
		if dst == name || w.rng.IntN(2) == 0 {
			dst = fmt.Sprintf("f%04d", w.next)
			w.next++
		}
		w.note("rename %s to %s", name, dst)
		if err := os.Rename(w.p(name), w.p(dst)); err != nil {
			w.fail("rename %s to %s: %v", name, dst, err)
			return
		}
		delete(w.files, name)
		w.files[dst] = cur
		w.ops["rename"]++
	case op < 55: // unlink
		w.note("unlink %s", name)
		if err := os.Remove(w.p(name)); err != nil {
			w.fail("unlink %s: %v", name, err)
			return
		}
		delete(w.files, name)
		w.ops["unlink"]++
	case op < 63: // truncate
		n := w.size()
		w.note("truncate %s from %d to %d", name, len(cur), n)
		if err := os.Truncate(w.p(name), n); err != nil {
			w.fail("truncate %s: %v", name, err)
			return
		}
		w.setLen(name, n)
		w.ops["truncate"]++
	case op < 73: // write through a shared mapping
		if len(cur) == 0 {
			return
		}
		off := w.rng.IntN(len(cur))
		data := w.bytes(1 + w.rng.Int64N(min(int64(len(cur)-off), 64*limKiB)))
		w.note("mmap write %s [%d, +%d)", name, off, len(data))
		if err := limMmapWrite(w.p(name), len(cur), off, data); err != nil {
			w.fail("mmap write %s: %v", name, err)
			return
		}
		copy(cur[off:], data)
		w.ops["mmap"]++
	default: // read back, through the page cache or with O_DIRECT
		direct := w.rng.IntN(3) == 0
		w.note("read %s (O_DIRECT %v)", name, direct)
		var got []byte
		var err error
		if direct {
			got, err = limReadDirect(w.p(name))
		} else {
			got, err = os.ReadFile(w.p(name))
		}
		if err != nil {
			w.fail("read %s: %v", name, err)
			return
		}
		if d := firstDiff(got, cur); d != "" {
			w.fail("read %s (O_DIRECT %v): %s", name, direct, d)
			return
		}
		w.ops["read"]++
	}
}

// limMmapWrite writes data at off through a shared mapping of a file of
// size bytes, and msyncs it.
func limMmapWrite(path string, size, off int, data []byte) error {
	fd, err := unix.Open(path, unix.O_RDWR|unix.O_CLOEXEC, 0)
	if err != nil {
		return err
	}
	defer unix.Close(fd)
	mem, err := unix.Mmap(fd, 0, size, unix.PROT_READ|unix.PROT_WRITE, unix.MAP_SHARED)
	if err != nil {
		return fmt.Errorf("mmap: %w", err)
	}
	copy(mem[off:], data)
	err = unix.Msync(mem, unix.MS_SYNC)
	if uerr := unix.Munmap(mem); err == nil {
		err = uerr
	}
	return err
}

// verify checks the directory holds exactly the files the worker knows,
// with their contents.
func (w *limWorker) verify(t *testing.T) {
	t.Helper()
	entries, err := os.ReadDir(w.dir)
	if err != nil {
		t.Errorf("worker %d: %v", w.id, err)
		return
	}
	var got, want []string
	for _, e := range entries {
		got = append(got, e.Name())
	}
	for n := range w.files {
		want = append(want, n)
	}
	sort.Strings(want)
	if !slices.Equal(got, want) {
		t.Errorf("worker %d: directory holds %q, want %q", w.id, got, want)
	}
	for name, data := range w.files {
		limCheckFile(t, w.p(name), data)
	}
}

// TestLimitsStress runs workers doing creates, writes, appends, renames,
// unlinks, truncates, writes through shared mappings and reads, each in its
// own directory with a model of its files, on a mount with a 16 MiB budget
// and 2 MiB files rolling over; reads are checked as they happen and every
// file at the end. ram_bytes is sampled throughout and must stay within
// the budget; the harness checks the daemon exits cleanly.
func TestLimitsStress(t *testing.T) {
	const (
		workers  = 4
		memLimit = 16 * limMiB
	)
	d := limStressDuration(t)
	m := startMount(t, "--mem-limit", "16M", "--max-size", "2M")
	sampler := limStartSampler(m.Dir, daemonPID(m), 5*time.Millisecond)
	seed := uint64(time.Now().UnixNano())
	t.Logf("seed %d, %v, %d workers", seed, d, workers)
	deadline := time.Now().Add(d)
	ws := make([]*limWorker, workers)
	var wg sync.WaitGroup
	for i := range ws {
		w := &limWorker{id: i, dir: m.Path(fmt.Sprintf("worker%d", i)), rng: rand.New(rand.NewPCG(seed, uint64(i))),
			files: map[string][]byte{}, ops: map[string]int{}}
		if err := os.Mkdir(w.dir, 0o755); err != nil {
			t.Fatal(err)
		}
		ws[i] = w
		wg.Add(1)
		go func() {
			defer wg.Done()
			for w.err == nil && time.Now().Before(deadline) {
				w.step()
			}
		}()
	}
	wg.Wait()
	sampler.finish()
	total := map[string]int{}
	for _, w := range ws {
		if w.err != nil {
			t.Error(w.err)
		}
		for k, v := range w.ops {
			total[k] += v
		}
	}
	st := limStatsOf(t, m.Dir)
	t.Logf("operations: %v; %d samples, max ram_bytes %s (budget %s), max RSS %s; rollovers %d, disk_files %d",
		total, sampler.samples, limMiBf(sampler.maxRAM), limMiBf(memLimit), limMiBf(sampler.maxRSS), st.Rollovers, st.DiskFiles)
	if sampler.maxRAM > memLimit {
		t.Errorf("ram_bytes reached %d, over the --mem-limit of %d", sampler.maxRAM, memLimit)
	}
	if sampler.errors > 0 {
		t.Errorf("%d samples failed; first: %v", sampler.errors, sampler.firstErr)
	}
	for _, w := range ws {
		w.verify(t)
	}
	limCheckServing(t, m, "the stress run")
}

// TestLimitsWriterStallDuringRollover measures how long a writer of one
// file in RAM is held up while another, large file rolls over (its data
// copied to the spill disk under that file's own lock). The rollover of
// one file must not stop the others: the longest write of the small file
// must be well under the rollover's own duration.
func TestLimitsWriterStallDuringRollover(t *testing.T) {
	const bigSize = 256 * limMiB
	m := startMount(t, "--max-size", "512M")
	big := m.Path("big")
	if err := os.WriteFile(big, limContent(7, bigSize), 0o644); err != nil {
		t.Fatal(err)
	}
	if res := readResidency(t, big); res != "memory" {
		t.Fatalf("big: residency %q before the rollover, want memory", res)
	}
	small, err := os.OpenFile(m.Path("small"), os.O_CREATE|os.O_RDWR, 0o644)
	if err != nil {
		t.Fatal(err)
	}
	defer small.Close()
	chunk := limContent(8, 4*limKiB)
	stop := make(chan struct{})
	type result struct {
		writes  int
		longest time.Duration
		err     error
	}
	done := make(chan result)
	started := make(chan struct{})
	go func() {
		var r result
		for i := 0; ; i++ {
			select {
			case <-stop:
				done <- r
				return
			default:
			}
			t0 := time.Now()
			if _, err := small.WriteAt(chunk, int64(i%256)*4*limKiB); err != nil {
				r.err = err
				done <- r
				return
			}
			r.longest = max(r.longest, time.Since(t0))
			if r.writes++; r.writes == 100 {
				close(started)
			}
		}
	}()
	<-started
	t0 := time.Now()
	if err := unix.Setxattr(big, "user.tmpmount.spill", nil, 0); err != nil {
		t.Fatalf("setxattr user.tmpmount.spill: %v", err)
	}
	rollover := time.Since(t0)
	close(stop)
	r := <-done
	if r.err != nil {
		t.Fatalf("small-file writer: %v", r.err)
	}
	if res := readResidency(t, big); res != "disk" {
		t.Fatalf("big: residency %q after the rollover, want disk", res)
	}
	t.Logf("rollover of %s took %v; meanwhile %d 4 KiB writes of another file, the longest %v",
		limMiBf(bigSize), rollover.Round(time.Millisecond), r.writes, r.longest.Round(time.Microsecond))
	if rollover > 100*time.Millisecond && r.longest > rollover/2 {
		t.Errorf("a write of another file waited %v during a %v rollover: the rollover held it up", r.longest, rollover)
	}
	limCheckFile(t, big, limContent(7, bigSize))
}

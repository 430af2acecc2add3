package main

import (
	"bytes"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"math/rand/v2"
	"os"
	"path/filepath"
	"runtime"
	"strings"
	"time"

	"golang.org/x/sys/unix"
)

// Units. Every workload reports a throughput, so higher is always better.
const (
	unitMBps = "MB/s" // 10^6 bytes per second
	unitOps  = "ops/s"
)

const smallSize = 4096 // bytes of each small-* file

// measure is what one workload yields. Elapsed covers only the operations
// being measured: making directories and names, dropping caches, and
// removing files afterwards are not in it.
type measure struct {
	Elapsed   time.Duration
	Bytes     int64  // data moved, for MB/s workloads
	Ops       int64  // operations done, for ops/s workloads
	Residency string // tmpmount's user.tmpmount.residency of the files; "" elsewhere
}

func (m measure) value(unit string) float64 {
	s := m.Elapsed.Seconds()
	if s <= 0 {
		return 0
	}
	if unit == unitMBps {
		return float64(m.Bytes) / 1e6 / s
	}
	return float64(m.Ops) / s
}

// workload is one measurement. run gets the directory to work in.
type workload struct {
	name  string
	unit  string
	reads bool   // reads data an earlier workload wrote: caches may be dropped first
	timed string // what Elapsed covers, for the header
	run   func(w *workCtx, dir string) (measure, error)
}

// workloads run in this order on every target instance; later ones use
// what earlier ones left (seq-read reads seq-write's file, and so on).
//
// To add one: write a func(w *workCtx, dir string) (measure, error) that
// does its setup untimed, times only the operations, checks what it read
// when w.cfg.verify is set, and removes (untimed) what no later workload
// needs; then list it here. Planned:
//   - untar: extract a source tree from a tarball held in RAM; files/s.
//   - compile: build that tree with its caches inside dir; builds/s.
//   - rand-4k: 4 KiB random read(2)/write(2) on a file below and one above
//     --max-size, and the same through mmap; ops/s.
//   - run-true: `tmpmount run -- true`, once that subcommand exists; runs/s.
//   - rss: the daemon's VmRSS (w.pid) idle and with 100,000 empty files.
//     That one is lower-is-better: give workload a direction and make
//     summarize invert its ratios, so that every ratio stays "> 1 is better".
var workloads = []workload{
	{name: "seq-write", unit: unitMBps, timed: "write(2)s of 1 MiB + close(2), no fsync", run: seqWrite},
	{name: "seq-read", unit: unitMBps, reads: true, timed: "read(2)s of 1 MiB to EOF + close(2)", run: seqRead},
	{name: "small-create", unit: unitOps, timed: "per file: open(O_CREAT|O_WRONLY) + one 4 KiB write + close", run: smallCreate},
	{name: "small-stat", unit: unitOps, reads: true, timed: "per file: stat(2)", run: smallStat},
	{name: "small-read", unit: unitOps, reads: true, timed: "per file: open + one read + close", run: smallRead},
	{name: "small-unlink", unit: unitOps, timed: "per file: unlink(2)", run: smallUnlink},
	{name: "mib-write", unit: unitMBps, timed: "per file: open(O_CREAT) + one 1 MiB write + close", run: mibWrite},
	{name: "mib-read", unit: unitMBps, reads: true, timed: "per file: open + 1 MiB read + close", run: mibRead},
}

// workCtx is what a workload knows about where it runs.
type workCtx struct {
	cfg    *config
	target *target
	pid    int // the daemon of a tmpmount target, else 0
	pat    *pattern
}

// runWorkloads runs every workload on one instance and reports each.
func runWorkloads(cfg *config, in *instance, run, pos int, stderr io.Writer) ([]result, error) {
	w := &workCtx{cfg: cfg, target: in.target, pid: in.pid, pat: dataPattern}
	var out []result
	for _, wl := range workloads {
		if err := checkInterrupted(); err != nil {
			return out, err
		}
		dropped, err := prepare(cfg, in.target, wl)
		if err != nil {
			return out, err
		}
		m, err := wl.run(w, in.dir)
		if err != nil {
			return out, fmt.Errorf("%s on %s: %w", wl.name, in.target.name, err)
		}
		r := result{
			Run: run + 1, Position: pos + 1, Target: in.target.name, Kind: in.target.kind,
			Workload: wl.name, Unit: wl.unit, Value: m.value(wl.unit),
			ElapsedNS: m.Elapsed.Nanoseconds(), Bytes: m.Bytes, Ops: m.Ops,
			Residency: m.Residency, CachesDropped: dropped, Mount: in.mount,
		}
		out = append(out, r)
		fmt.Fprintln(stderr, strings.TrimRight(fmt.Sprintf("  %-13s %10.1f %-5s %s", wl.name, r.Value, wl.unit, m.Residency), " "))
	}
	return out, nil
}

// prepare runs before every workload, untimed: sync(2), so that dirty data
// of the previous workload is not written back during this one; before a
// read workload where the policy says so, `echo 3 > drop_caches`, so that
// disk reads come from the disk; and a GC, so that the collector is idle.
func prepare(cfg *config, t *target, wl workload) (dropped bool, err error) {
	unix.Sync()
	if wl.reads && (cfg.dropCaches == dropAll || cfg.dropCaches == dropDisk && t.kind == kindDisk) {
		if err := os.WriteFile("/proc/sys/vm/drop_caches", []byte("3"), 0); err != nil {
			return false, fmt.Errorf("drop caches: %w", err)
		}
		dropped = true
	}
	runtime.GC()
	return dropped, nil
}

const seqName = "seq"

// seqWrite writes one file of -seq-size with 1 MiB write(2)s.
func seqWrite(w *workCtx, dir string) (measure, error) {
	path := filepath.Join(dir, seqName)
	buf := w.pat.block()
	blocks := w.cfg.seqSize / mib
	fd, err := unix.Open(path, unix.O_CREAT|unix.O_WRONLY|unix.O_TRUNC|unix.O_CLOEXEC, 0o644)
	if err != nil {
		return measure{}, fmt.Errorf("create %s: %w", path, err)
	}
	start := time.Now()
	for i := int64(0); i < blocks; i++ {
		if err := checkInterrupted(); err != nil {
			unix.Close(fd)
			return measure{}, err
		}
		stamp(buf, 0, i)
		if err := writeFull(fd, buf); err != nil {
			unix.Close(fd)
			return measure{}, fmt.Errorf("write %s at %d MiB: %w", path, i, err)
		}
	}
	if err := unix.Close(fd); err != nil {
		return measure{}, fmt.Errorf("close %s: %w", path, err)
	}
	m := measure{Elapsed: time.Since(start), Bytes: blocks * mib}
	m.Residency, err = w.residency(path)
	return m, err
}

// seqRead reads seq-write's file back with 1 MiB reads, then removes it.
func seqRead(w *workCtx, dir string) (measure, error) {
	path := filepath.Join(dir, seqName)
	buf, want := make([]byte, mib), make([]byte, mib)
	fd, err := unix.Open(path, unix.O_RDONLY|unix.O_CLOEXEC, 0)
	if err != nil {
		return measure{}, fmt.Errorf("open %s: %w", path, err)
	}
	var total int64
	start := time.Now()
	for block := int64(0); ; block++ {
		if err := checkInterrupted(); err != nil {
			unix.Close(fd)
			return measure{}, err
		}
		n, err := readFull(fd, buf)
		if err != nil {
			unix.Close(fd)
			return measure{}, fmt.Errorf("read %s at %d MiB: %w", path, block, err)
		}
		if n == 0 {
			break
		}
		if w.cfg.verify {
			if err := w.pat.check(buf[:n], want, 0, block); err != nil {
				unix.Close(fd)
				return measure{}, fmt.Errorf("%s: %w", path, err)
			}
		}
		total += int64(n)
	}
	if err := unix.Close(fd); err != nil {
		return measure{}, fmt.Errorf("close %s: %w", path, err)
	}
	m := measure{Elapsed: time.Since(start), Bytes: total}
	if total != w.cfg.seqSize {
		return m, fmt.Errorf("read %d bytes back from %s, wrote %d", total, path, w.cfg.seqSize)
	}
	if m.Residency, err = w.residency(path); err != nil {
		return m, err
	}
	return m, os.Remove(path)
}

// smallNames names the small-* files, in their own directory.
func smallNames(w *workCtx, dir string) []string {
	names := make([]string, w.cfg.smallCount)
	for i := range names {
		names[i] = filepath.Join(dir, "small", fmt.Sprintf("f%06d", i))
	}
	return names
}

func smallCreate(w *workCtx, dir string) (measure, error) {
	if err := os.Mkdir(filepath.Join(dir, "small"), 0o755); err != nil {
		return measure{}, err
	}
	names := smallNames(w, dir)
	buf := w.pat.block()[:smallSize]
	start := time.Now()
	for i, name := range names {
		if err := checkInterrupted(); err != nil {
			return measure{}, err
		}
		stamp(buf, int64(i), 0)
		if err := writeFile(name, buf); err != nil {
			return measure{}, err
		}
	}
	m := measure{Elapsed: time.Since(start), Ops: int64(len(names))}
	var err error
	m.Residency, err = w.residency(names[0])
	return m, err
}

func smallStat(w *workCtx, dir string) (measure, error) {
	names := smallNames(w, dir)
	var st unix.Stat_t
	start := time.Now()
	for _, name := range names {
		if err := checkInterrupted(); err != nil {
			return measure{}, err
		}
		if err := unix.Stat(name, &st); err != nil {
			return measure{}, fmt.Errorf("stat %s: %w", name, err)
		}
		if st.Size != smallSize || st.Mode&unix.S_IFMT != unix.S_IFREG {
			return measure{}, fmt.Errorf("stat %s: size %d mode %#o, want a regular file of %d bytes", name, st.Size, st.Mode, smallSize)
		}
	}
	return measure{Elapsed: time.Since(start), Ops: int64(len(names))}, nil
}

// smallRead reads each file with one read(2) into a buffer twice its size:
// the count returned checks the size without a second read.
func smallRead(w *workCtx, dir string) (measure, error) {
	names := smallNames(w, dir)
	buf, want := make([]byte, 2*smallSize), make([]byte, smallSize)
	start := time.Now()
	for i, name := range names {
		if err := checkInterrupted(); err != nil {
			return measure{}, err
		}
		n, err := readFileOnce(name, buf)
		if err != nil {
			return measure{}, err
		}
		if n != smallSize {
			return measure{}, fmt.Errorf("read %s: got %d bytes, want %d", name, n, smallSize)
		}
		if w.cfg.verify {
			if err := w.pat.check(buf[:n], want, int64(i), 0); err != nil {
				return measure{}, fmt.Errorf("%s: %w", name, err)
			}
		}
	}
	return measure{Elapsed: time.Since(start), Ops: int64(len(names))}, nil
}

func smallUnlink(w *workCtx, dir string) (measure, error) {
	names := smallNames(w, dir)
	start := time.Now()
	for _, name := range names {
		if err := checkInterrupted(); err != nil {
			return measure{}, err
		}
		if err := unix.Unlink(name); err != nil {
			return measure{}, fmt.Errorf("unlink %s: %w", name, err)
		}
	}
	m := measure{Elapsed: time.Since(start), Ops: int64(len(names))}
	// rmdir fails unless every file is gone.
	if err := unix.Rmdir(filepath.Join(dir, "small")); err != nil {
		return m, fmt.Errorf("rmdir %s after unlinking every file: %w", filepath.Join(dir, "small"), err)
	}
	return m, nil
}

// mibNames names the mib-* files, in their own directory.
func mibNames(w *workCtx, dir string) []string {
	names := make([]string, w.cfg.mibCount)
	for i := range names {
		names[i] = filepath.Join(dir, "mib", fmt.Sprintf("f%04d", i))
	}
	return names
}

func mibWrite(w *workCtx, dir string) (measure, error) {
	if err := os.Mkdir(filepath.Join(dir, "mib"), 0o755); err != nil {
		return measure{}, err
	}
	names := mibNames(w, dir)
	buf := w.pat.block()
	start := time.Now()
	for i, name := range names {
		if err := checkInterrupted(); err != nil {
			return measure{}, err
		}
		stamp(buf, int64(i), 0)
		if err := writeFile(name, buf); err != nil {
			return measure{}, err
		}
	}
	m := measure{Elapsed: time.Since(start), Bytes: int64(len(names)) * mib}
	var err error
	m.Residency, err = w.residency(names[0])
	return m, err
}

// mibRead reads each file with a 1 MiB read; with -verify it also checks
// the content and, with one more read, that the file ends there.
func mibRead(w *workCtx, dir string) (measure, error) {
	names := mibNames(w, dir)
	buf, want := make([]byte, mib), make([]byte, mib)
	size := mib
	if w.cfg.verify {
		buf = make([]byte, mib+1)
		size = mib + 1
	}
	start := time.Now()
	for i, name := range names {
		if err := checkInterrupted(); err != nil {
			return measure{}, err
		}
		n, err := readFileFull(name, buf[:size])
		if err != nil {
			return measure{}, err
		}
		if n != mib {
			return measure{}, fmt.Errorf("read %s: got %d bytes, want %d", name, n, mib)
		}
		if w.cfg.verify {
			if err := w.pat.check(buf[:n], want, int64(i), 0); err != nil {
				return measure{}, fmt.Errorf("%s: %w", name, err)
			}
		}
	}
	m := measure{Elapsed: time.Since(start), Bytes: int64(len(names)) * mib}
	var err error
	if m.Residency, err = w.residency(names[0]); err != nil {
		return m, err
	}
	return m, os.RemoveAll(filepath.Join(dir, "mib"))
}

// residency reads tmpmount's virtual xattr, which says whether a file's
// data is in RAM or rolled over to the spill disk.
func (w *workCtx) residency(path string) (string, error) {
	if w.target.kind != kindTmpmount {
		return "", nil
	}
	buf := make([]byte, 64)
	n, err := unix.Getxattr(path, "user.tmpmount.residency", buf)
	if err != nil {
		return "", fmt.Errorf("getxattr %s user.tmpmount.residency: %w", path, err)
	}
	return string(buf[:n]), nil
}

// writeFile creates name and writes buf with one write(2) (looping only on
// a short write).
func writeFile(name string, buf []byte) error {
	fd, err := unix.Open(name, unix.O_CREAT|unix.O_WRONLY|unix.O_CLOEXEC, 0o644)
	if err != nil {
		return fmt.Errorf("create %s: %w", name, err)
	}
	if err := writeFull(fd, buf); err != nil {
		unix.Close(fd)
		return fmt.Errorf("write %s: %w", name, err)
	}
	if err := unix.Close(fd); err != nil {
		return fmt.Errorf("close %s: %w", name, err)
	}
	return nil
}

// readFileOnce opens name, does a single read(2) into buf, and closes.
func readFileOnce(name string, buf []byte) (int, error) {
	fd, err := unix.Open(name, unix.O_RDONLY|unix.O_CLOEXEC, 0)
	if err != nil {
		return 0, fmt.Errorf("open %s: %w", name, err)
	}
	n, err := ignoringEINTR(func() (int, error) { return unix.Read(fd, buf) })
	cerr := unix.Close(fd)
	if err != nil {
		return n, fmt.Errorf("read %s: %w", name, err)
	}
	if cerr != nil {
		return n, fmt.Errorf("close %s: %w", name, cerr)
	}
	return n, nil
}

// readFileFull opens name, reads until buf is full or EOF, and closes.
func readFileFull(name string, buf []byte) (int, error) {
	fd, err := unix.Open(name, unix.O_RDONLY|unix.O_CLOEXEC, 0)
	if err != nil {
		return 0, fmt.Errorf("open %s: %w", name, err)
	}
	n, err := readFull(fd, buf)
	cerr := unix.Close(fd)
	if err != nil {
		return n, fmt.Errorf("read %s: %w", name, err)
	}
	if cerr != nil {
		return n, fmt.Errorf("close %s: %w", name, cerr)
	}
	return n, nil
}

// writeFull writes all of p, retrying short writes and EINTR (a FUSE
// request can be interrupted by a signal).
func writeFull(fd int, p []byte) error {
	for len(p) > 0 {
		n, err := ignoringEINTR(func() (int, error) { return unix.Write(fd, p) })
		if err != nil {
			return err
		}
		if n == 0 {
			return io.ErrShortWrite
		}
		p = p[n:]
	}
	return nil
}

// readFull reads until p is full or EOF and returns the count.
func readFull(fd int, p []byte) (int, error) {
	total := 0
	for total < len(p) {
		n, err := ignoringEINTR(func() (int, error) { return unix.Read(fd, p[total:]) })
		if err != nil {
			return total, err
		}
		if n == 0 {
			break
		}
		total += n
	}
	return total, nil
}

func ignoringEINTR(f func() (int, error)) (int, error) {
	for {
		n, err := f()
		if !errors.Is(err, unix.EINTR) {
			return n, err
		}
	}
}

// pattern is the data every workload writes: 1 MiB of pseudo-random bytes
// (so that nothing compresses or dedups it), stamped per block with a file
// and block number so that a block read from the wrong place is caught.
type pattern struct{ data []byte }

var dataPattern = newPattern()

func newPattern() *pattern {
	p := &pattern{data: make([]byte, mib)}
	rand.NewChaCha8([32]byte{'t', 'm', 'p', 'm', 'o', 'u', 'n', 't'}).Read(p.data)
	return p
}

// block returns a fresh copy of the pattern to write from.
func (p *pattern) block() []byte { return bytes.Clone(p.data) }

// stamp writes file and block numbers into buf's first 16 bytes.
func stamp(buf []byte, file, block int64) {
	binary.LittleEndian.PutUint64(buf[0:], uint64(file))
	binary.LittleEndian.PutUint64(buf[8:], uint64(block))
}

// check compares got with what was written for (file, block), using
// scratch to build the expected bytes.
func (p *pattern) check(got, scratch []byte, file, block int64) error {
	want := scratch[:len(got)]
	copy(want, p.data)
	stamp(want, file, block)
	if bytes.Equal(got, want) {
		return nil
	}
	i := 0
	for got[i] == want[i] {
		i++
	}
	return fmt.Errorf("data read back differs from what was written at byte %d of block %d: got %#02x, want %#02x", i, block, got[i], want[i])
}

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
	"strconv"
	"strings"
	"time"

	"golang.org/x/sys/unix"
)

// Units. Throughputs (MB/s, ops/s) are higher-is-better; times (s) and
// memory (MiB, B/file) are lower-is-better. Ratios are always median /
// reference median in the row's unit: for a time, × the reference's time.
const (
	unitMBps    = "MB/s" // 10^6 bytes per second
	unitOps     = "ops/s"
	unitSec     = "s"      // wall-clock seconds of the timed part
	unitMiB     = "MiB"    // 2^20 bytes (rss-*)
	unitPerFile = "B/file" // bytes per file (rss-per-file)
)

// lowerIsBetter says whether a smaller value of unit is the better one.
func lowerIsBetter(unit string) bool {
	return unit == unitSec || unit == unitMiB || unit == unitPerFile || unit == unitNs
}

const smallSize = 4096 // bytes of each small-* file

// measure is what one workload yields. Elapsed covers only the operations
// being measured: making directories and names, dropping caches, and
// removing files afterwards are not in it.
type measure struct {
	Elapsed   time.Duration
	Bytes     int64  // data moved, for MB/s workloads
	Ops       int64  // operations done, for ops/s workloads
	Residency string // tmpmount's user.tmpmount.residency of the files; "" elsewhere
	// Value is the figure of workloads that measure no rate or time
	// (MiB, B/file): see value.
	Value float64
	// CountedOps is the operations the daemon's request and CPU counters
	// cover (Ops plus untimed warm-up ones); 0 means Ops.
	CountedOps int64
}

func (m measure) value(unit string) float64 {
	s := m.Elapsed.Seconds()
	switch unit {
	case unitMiB, unitPerFile:
		return m.Value
	case unitSec:
		return s
	case unitNs:
		if m.Ops <= 0 {
			return 0
		}
		return float64(m.Elapsed.Nanoseconds()) / float64(m.Ops)
	}
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
	reads bool // reads data an earlier workload wrote: caches may be dropped first (-drop-caches)
	// dropEvery: caches are dropped before it on every target, whatever
	// -drop-caches says (unless it says none).
	dropEvery bool
	// after names the workload whose files this one uses: -only runs it too.
	after string
	// spillGoal, if set, is the least ratio to the disk target that the
	// issue asks of tmpmount for this workload: the report shows ×disk
	// for every target and flags rows below it.
	spillGoal float64
	timed     string // what Elapsed covers, for the header
	// tmpmountOnly: it measures tmpmount itself (its run subcommand, its
	// daemon's memory), so tmpfs and disk have no row for it.
	tmpmountOnly bool
	// ownMount: it starts tmpmount processes of its own rather than using
	// the instance's mount, whose daemon I/O is then not reported.
	ownMount bool
	run      func(w *workCtx, dir string) (measure, error)
}

// workloads run in this order on every target instance; later ones use
// what earlier ones left (seq-read reads seq-write's file, and so on).
//
// To add one: write a func(w *workCtx, dir string) (measure, error) that
// does its setup untimed, times only the operations, checks what it read
// when w.cfg.verify is set, and removes (untimed) what no later workload
// needs; then list it here. Planned:
//   - rand-4k on a file below --max-size (big-* covers one above it).
var workloads = []workload{
	{name: "seq-write", unit: unitMBps, timed: "write(2)s of 1 MiB + close(2), no fsync", run: seqWrite},
	{name: "seq-read", unit: unitMBps, reads: true, after: "seq-write", timed: "read(2)s of 1 MiB to EOF + close(2)", run: seqRead},
	{name: "small-create", unit: unitOps, timed: "per file: open(O_CREAT|O_WRONLY) + one 4 KiB write + close", run: smallCreate},
	{name: "small-stat", unit: unitOps, reads: true, after: "small-create", timed: "per file: stat(2)", run: smallStat},
	{name: "small-read", unit: unitOps, reads: true, after: "small-create", timed: "per file: open + one read + close", run: smallRead},
	{name: "small-unlink", unit: unitOps, after: "small-create", timed: "per file: unlink(2)", run: smallUnlink},
	{name: "mib-write", unit: unitMBps, timed: "per file: open(O_CREAT) + one 1 MiB write + close", run: mibWrite},
	{name: "mib-read", unit: unitMBps, reads: true, after: "mib-write", timed: "per file: open + 1 MiB read + close", run: mibRead},
	// latency.go
	latencyWorkloads[0], latencyWorkloads[1], latencyWorkloads[2], latencyWorkloads[3], latencyWorkloads[4],
	// big.go
	{name: "big-seq-write", unit: unitMBps, spillGoal: bigGoal, timed: "create, write(2)s of 1 MiB + close(2), no fsync (on tmpmount the file is in RAM when created, so this open is served by the daemon, passthrough or not)", run: bigSeqWrite},
	{name: "big-seq-read", unit: unitMBps, dropEvery: true, after: "big-seq-write", spillGoal: bigGoal, timed: "after a fresh open(O_RDONLY) (a passthrough one on tmpmount where passthrough is on): read(2)s of 1 MiB to EOF + close(2)", run: bigSeqRead},
	{name: "big-rand-read", unit: unitOps, after: "big-seq-write", spillGoal: bigGoal, timed: "after a fresh open (untimed): 4 KiB pread(2)s at random 4 KiB-aligned offsets (fixed seed), -big-ops of them or until -big-time", run: bigRandRead},
	{name: "big-rand-write", unit: unitOps, after: "big-seq-write", spillGoal: bigGoal, timed: "after a fresh open (untimed): 4 KiB pwrite(2)s at random 4 KiB-aligned offsets (fixed seed), -big-ops of them or until -big-time; no fsync; close untimed", run: bigRandWrite},
	{name: "big-mmap-seq-read", unit: unitMBps, dropEvery: true, after: "big-seq-write", spillGoal: bigGoal, timed: "after a fresh open: mmap(2) of the whole file, MAP_SHARED, PROT_READ + one load per page in order (page faults and readahead: with a warm cache it would time page-table fills only); munmap untimed", run: bigMmapSeqRead},
	{name: "big-mmap-rand-rw", unit: unitOps, after: "big-seq-write", spillGoal: bigGoal, timed: "after a fresh open(O_RDWR): mmap(2) of the whole file, MAP_SHARED, read-write + 4 KiB copies out of or into random 4 KiB-aligned offsets (half each, fixed seed), -big-ops of them or until -big-time + msync(MS_SYNC); munmap untimed", run: bigMmapRandRW},
	// real.go
	{name: "tree-extract", unit: unitSec, timed: "`tar -xf TREE.tar -C DIR` (the tar program) of Go's own source tree ($(go env GOROOT)/src; -quick: src/fmt and src/strconv), the tarball made once per bench in the work dir (untimed; warm in the page cache after the first run); lower is better", run: treeExtract},
	{name: "tree-remove", unit: unitSec, after: "tree-extract", timed: "`rm -rf DIR` of what tree-extract extracted; lower is better", run: treeRemove},
	{name: "compile", unit: unitSec, timed: "`go build -o OUT .` (CGO_ENABLED=0, GOTOOLCHAIN=local) of a small module the bench writes (a main importing net/http, encoding/json, text/template; -quick: importing nothing, so only the runtime), copied in untimed, with GOCACHE (fresh and empty every run), GOTMPDIR, TMPDIR and OUT in the target: the standard library is compiled too; lower is better", run: compile},
	{name: "run-true", unit: unitSec, tmpmountOnly: true, ownMount: true, timed: "`tmpmount run --spill-dir DIR [variant flags] -- true`, start to exit (mount, run, unmount, clean up): the median of several runs in each bench run; DIR a fresh dir in the work dir; tmpmount targets only; lower is better", run: runTrue},
	{name: "rss-idle", unit: unitMiB, tmpmountOnly: true, ownMount: true, timed: "not a time: VmRSS (/proc/PID/status) of a fresh tmpmount daemon (the variant's flags) once it has printed its \"serving\" line; tmpmount targets only; lower is better", run: rssIdle},
	{name: "rss-100k", unit: unitMiB, tmpmountOnly: true, ownMount: true, after: "rss-idle", timed: "not a time: VmRSS of rss-idle's daemon after -rss-files empty files were created (open O_CREAT + close) in one directory of its mount and are still there; lower is better", run: rss100k},
	{name: "rss-per-file", unit: unitPerFile, tmpmountOnly: true, ownMount: true, after: "rss-100k", timed: "not a time: (rss-100k − rss-idle) / -rss-files, in bytes: the daemon's memory per empty file; lower is better", run: rssPerFile},
}

// selectWorkloads returns the workloads whose names start with one of
// the prefixes (all if there are none), with those whose files they use,
// in run order.
func selectWorkloads(prefixes []string) ([]workload, error) {
	if len(prefixes) == 0 {
		return workloads, nil
	}
	want := map[string]bool{}
	for _, p := range prefixes {
		matched := false
		for _, wl := range workloads {
			if p != "" && strings.HasPrefix(wl.name, p) {
				want[wl.name] = true
				matched = true
			}
		}
		if !matched {
			var names []string
			for _, wl := range workloads {
				names = append(names, wl.name)
			}
			return nil, fmt.Errorf("-only %q: no workload name starts with it (workloads: %s)", p, strings.Join(names, ", "))
		}
	}
	// Dependencies come earlier in the list: one pass from the end
	// brings in a whole chain.
	for i := len(workloads) - 1; i >= 0; i-- {
		if wl := workloads[i]; want[wl.name] && wl.after != "" {
			want[wl.after] = true
		}
	}
	var out []workload
	for _, wl := range workloads {
		if want[wl.name] {
			out = append(out, wl)
		}
	}
	return out, nil
}

// workCtx is what a workload knows about where it runs.
type workCtx struct {
	cfg    *config
	cl     *cleaner // for workloads that start tmpmount processes of their own
	work   string   // the bench's work dir
	label  string   // the run's label, for the names of what they make
	target *target
	pid    int // the daemon of a tmpmount target, else 0
	pat    *pattern
	big    *bigFile  // what the big-* file holds; set by big-seq-write
	rss    *rssMount // rss-*'s own fresh mount; set by rss-idle
}

// runWorkloads runs every workload on one instance and reports each.
func runWorkloads(cfg *config, in *instance, run, pos int, stderr io.Writer) (out []result, err error) {
	w := &workCtx{cfg: cfg, cl: in.cl, work: in.work, label: in.label, target: in.target, pid: in.pid, pat: dataPattern}
	defer func() {
		if serr := w.stopRSSMount(); serr != nil && err == nil {
			err = serr
		}
	}()
	for _, wl := range cfg.workloads {
		if err := checkInterrupted(); err != nil {
			return out, err
		}
		if wl.tmpmountOnly && in.target.kind != kindTmpmount {
			fmt.Fprintf(stderr, "  %-17s %10s\n", wl.name, "n/a (tmpmount only)")
			continue
		}
		dropped, err := prepare(cfg, in.target, wl)
		if err != nil {
			return out, err
		}
		pid := in.pid
		if wl.ownMount {
			pid = 0
		}
		io0 := daemonIO(pid)
		c0, counted := daemonCounters{}, false
		if pid != 0 {
			c0, counted = readDaemonCounters(in.dir, pid)
		}
		m, err := wl.run(w, in.dir)
		if err != nil {
			return out, fmt.Errorf("%s on %s: %w", wl.name, in.target.name, err)
		}
		var c1 daemonCounters
		if counted {
			c1, counted = readDaemonCounters(in.dir, pid)
		}
		r := result{
			Run: run + 1, Position: pos + 1, Target: in.target.name, Kind: in.target.kind,
			Workload: wl.name, Unit: wl.unit, Value: m.value(wl.unit),
			ElapsedNS: m.Elapsed.Nanoseconds(), Bytes: m.Bytes, Ops: m.Ops,
			Residency: m.Residency, CachesDropped: dropped, Mount: in.mount,
			Passthrough: in.passthrough,
		}
		if io1 := daemonIO(pid); io0 >= 0 && io1 >= 0 {
			moved := io1 - io0
			r.DaemonIO = &moved
		}
		if counted {
			// Less the GETXATTR that read the counters.
			reqs, cpu := c1.requests-c0.requests-1, c1.cpuNS-c0.cpuNS
			r.Requests, r.DaemonCPUNS = &reqs, &cpu
			r.CountedOps = m.CountedOps
			if r.CountedOps == 0 {
				r.CountedOps = m.Ops
			}
		}
		out = append(out, r)
		note := m.Residency
		if r.DaemonIO != nil {
			note += fmt.Sprintf(" (daemon I/O %s)", formatMB(float64(*r.DaemonIO)))
		}
		if r.Requests != nil && r.CountedOps > 0 && *r.Requests > 0 {
			note += fmt.Sprintf(" (%.1f requests/op, daemon CPU %.2f µs/request)", float64(*r.Requests)/float64(r.CountedOps), float64(*r.DaemonCPUNS)/1e3/float64(*r.Requests))
		}
		fmt.Fprintln(stderr, strings.TrimRight(fmt.Sprintf("  %-17s %10s %-6s %s", wl.name, formatValue(r.Value), wl.unit, note), " "))
	}
	return out, nil
}

// prepare runs before every workload, untimed: sync(2), so that dirty data
// of the previous workload is not written back during this one; before a
// read workload where the policy says so, `echo 3 > drop_caches`, so that
// disk reads come from the disk; and a GC, so that the collector is idle.
func prepare(cfg *config, t *target, wl workload) (dropped bool, err error) {
	unix.Sync()
	drop := wl.reads && (cfg.dropCaches == dropAll || cfg.dropCaches == dropDisk && t.kind == kindDisk)
	if wl.dropEvery && cfg.dropCaches != dropNone {
		drop = true
	}
	if drop {
		if err := os.WriteFile("/proc/sys/vm/drop_caches", []byte("3"), 0); err != nil {
			return false, fmt.Errorf("drop caches: %w", err)
		}
		dropped = true
	}
	runtime.GC()
	return dropped, nil
}

// daemonIO returns the bytes a tmpmount daemon has moved with read(2)
// and write(2)-like calls (rchar + wchar of /proc/PID/io: /dev/fuse and
// its spill files alike), or -1 if there is no daemon or no such file. A
// read or write served by FUSE passthrough, or from the page cache, adds
// (next to) nothing to it.
func daemonIO(pid int) int64 {
	if pid == 0 {
		return -1
	}
	data, err := os.ReadFile(fmt.Sprintf("/proc/%d/io", pid))
	if err != nil {
		return -1
	}
	var total int64
	found := 0
	for _, line := range strings.Split(string(data), "\n") {
		k, v, _ := strings.Cut(line, ":")
		if k == "rchar" || k == "wchar" {
			n, err := strconv.ParseInt(strings.TrimSpace(v), 10, 64)
			if err != nil {
				return -1
			}
			total += n
			found++
		}
	}
	if found != 2 {
		return -1
	}
	return total
}

const seqName = "seq"

// seqWrite writes one file of -seq-size with 1 MiB write(2)s.
func seqWrite(w *workCtx, dir string) (measure, error) {
	return writeSequential(w, filepath.Join(dir, seqName), w.cfg.seqSize, 0)
}

// writeSequential creates path and writes size bytes of the pattern with
// 1 MiB write(2)s, each MiB stamped with (file, its number).
func writeSequential(w *workCtx, path string, size, file int64) (measure, error) {
	buf := w.pat.block()
	blocks := size / mib
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
		stamp(buf, file, i)
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
	want := make([]byte, mib)
	m, err := readSequential(w, path, w.cfg.seqSize, func(got []byte, off int64) error {
		return w.pat.check(got, want, 0, off/mib)
	})
	if err != nil {
		return m, err
	}
	return m, os.Remove(path)
}

// readSequential opens path and reads it to EOF with 1 MiB read(2)s,
// checking each MiB with check(data, its offset) if -verify is on, and
// that size bytes were read.
func readSequential(w *workCtx, path string, size int64, check func(got []byte, off int64) error) (measure, error) {
	buf := make([]byte, mib)
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
			if err := check(buf[:n], total); err != nil {
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
	if total != size {
		return m, fmt.Errorf("read %d bytes back from %s, wrote %d", total, path, size)
	}
	m.Residency, err = w.residency(path)
	return m, err
}

// smallNames names the small-* files, in their own directory.
func smallNames(w *workCtx, dir string) []string {
	return numberedNames(filepath.Join(dir, "small"), "f%06d", w.cfg.smallCount)
}

// numberedNames names n files in dir after format and their number.
func numberedNames(dir, format string, n int) []string {
	names := make([]string, n)
	for i := range names {
		names[i] = filepath.Join(dir, fmt.Sprintf(format, i))
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
	return numberedNames(filepath.Join(dir, "mib"), "f%04d", w.cfg.mibCount)
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

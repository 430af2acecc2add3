package e2e

// Differential tests of file data against a real tmpfs.
//
// Each scenario is a func(*tdEnv) that performs system calls (through
// golang.org/x/sys/unix, no shell) on files in a fresh directory. Every step
// goes through the recorder, which logs one "step: result" line per call
// together with what the call did to the file: st_size, st_blocks and
// whether mtime, ctime and atime changed relative to just before the call.
// A scenario runs once on a tmpfs mounted by the test and once on a
// tmpmount mount, and the two logs must match line for line, except:
//
//   - st_blocks of a file tmpmount has rolled over to disk is compared
//     loosely (tdBlocksMatch): it is the spill filesystem's allocation;
//   - atime is not compared where FUSE keeps the daemon from seeing the
//     access at all (reads at end of file, mmap): see tdAtimeEOF and
//     tdAtimeMmap.
//
// Every scenario runs against two tmpmount configurations: --max-size 8M,
// where the files of the scenarios stay in RAM (unless they pass 8 MiB),
// and --max-size 16k, where most of them roll over to the spill directory
// partway through. Set TMPMOUNT_E2E_LOGS=1 to see both logs of every
// scenario.
//
// Identifiers of this file start with "td" (tmpfs data) so that they do
// not collide with the other test files of the package.

import (
	"bytes"
	"cmp"
	"crypto/sha256"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"golang.org/x/sys/unix"
)

const (
	tdPage      = 4096
	tdMiB       = 1 << 20
	tdGiB       = 1 << 30
	tdResidency = "user.tmpmount.residency"

	// tdRollsOverAt is the smaller --max-size: scenarios marked rollsOver
	// grow a file past it.
	tdRollsOverAt = 16 << 10

	// tdDiskBlocksSlack is how many 512-byte sectors a rolled-over file may
	// hold beyond its pages: the spill filesystem (ext4, xfs, ...) may
	// charge an extent-tree block or round an allocation up.
	tdDiskBlocksSlack = 16
)

// tdConfig is one way of starting tmpmount.
type tdConfig struct {
	name    string
	args    []string
	maxSize int64 // what --max-size means in bytes
}

var tdConfigs = []tdConfig{
	{name: "max-size=8M", args: []string{"--max-size", "8M"}, maxSize: 8 << 20},
	{name: "max-size=16k", args: []string{"--max-size", "16k"}, maxSize: tdRollsOverAt},
}

// tdScenario is a named sequence of steps.
type tdScenario struct {
	name string
	// tmpmountOnly scenarios test what tmpfs does not have (the residency
	// xattr): they run on tmpmount only and assert with e.expectf.
	tmpmountOnly bool
	// rollsOver says that some file of the scenario grows past
	// tdRollsOverAt, so that with --max-size 16k the scenario must see a
	// file on disk.
	rollsOver bool
	// knownDifference, when set, says why tmpmount cannot match tmpfs in
	// this scenario (the README lists it); the scenario is skipped.
	knownDifference string
	run             func(e *tdEnv)
}

// TestTmpfsData runs every scenario on tmpfs and on tmpmount (in both
// configurations) and compares the logs.
func TestTmpfsData(t *testing.T) {
	requireRoot(t)
	requireFUSE(t)
	tmpfsDir := tdMountTmpfs(t)
	for _, cfg := range tdConfigs {
		t.Run(cfg.name, func(t *testing.T) {
			m := startMount(t, cfg.args...)
			for _, sc := range tdScenarios() {
				t.Run(sc.name, func(t *testing.T) {
					if sc.knownDifference != "" {
						t.Skip(sc.knownDifference)
					}
					dirName := cfg.name + "-" + sc.name
					got := tdRun(t, "tmpmount", filepath.Join(m.Dir, dirName), cfg.maxSize, sc)
					if sc.tmpmountOnly {
						if t.Failed() {
							t.Logf("tmpmount log:\n%s", got.logText())
						}
						return
					}
					if sc.rollsOver && cfg.maxSize <= tdRollsOverAt && !got.sawDisk() {
						t.Errorf("with --max-size %d no file of the scenario was ever on disk (%s), want a rollover", cfg.maxSize, tdResidency)
					}
					ref := tdRun(t, "tmpfs", filepath.Join(tmpfsDir, dirName), 0, sc)
					if os.Getenv("TMPMOUNT_E2E_LOGS") != "" {
						t.Logf("tmpfs log:\n%s\ntmpmount log:\n%s", ref.logText(), got.logText())
					}
					tdCompare(t, ref, got)
				})
			}
		})
	}
}

// tdMountTmpfs mounts the reference tmpfs, as `mount -t tmpfs tmpfs DIR`
// would (so relatime, the default), on a fresh directory.
func tdMountTmpfs(t *testing.T) string {
	t.Helper()
	return mountTmpfs(t, t.TempDir(), "")
}

// tdRun runs one scenario in a fresh directory dir and returns its log.
func tdRun(t *testing.T, kind, dir string, maxSize int64, sc tdScenario) *tdEnv {
	t.Helper()
	if err := os.Mkdir(dir, 0o755); err != nil {
		t.Fatalf("%s: mkdir: %v", kind, err)
	}
	e := &tdEnv{t: t, kind: kind, dir: dir, tmpmount: kind == "tmpmount", maxSize: maxSize,
		labels: map[int]string{}}
	defer e.cleanup()
	sc.run(e)
	return e
}

// tdCompare reports the steps whose records differ between the tmpfs and
// the tmpmount log: the first few side by side, then the whole tmpmount log
// for context.
func tdCompare(t *testing.T, ref, got *tdEnv) {
	t.Helper()
	const maxShown = 12
	var shown []string
	differ := 0
	n := max(len(ref.records), len(got.records))
	for i := range n {
		var r, g *tdRecord
		if i < len(ref.records) {
			r = &ref.records[i]
		}
		if i < len(got.records) {
			g = &got.records[i]
		}
		if r != nil && g != nil && tdRecordsMatch(*r, *g) {
			continue
		}
		differ++
		if len(shown) < maxShown {
			shown = append(shown, fmt.Sprintf("step %d:\n    tmpfs:    %s\n    tmpmount: %s", i+1, r, g))
		}
	}
	if differ == 0 {
		return
	}
	t.Errorf("%d of %d steps differ from tmpfs (st_blocks of files on disk compared loosely, see tdBlocksMatch):\n%s\n\nfull tmpmount log:\n%s",
		differ, n, strings.Join(shown, "\n"), got.logText())
}

// tdRecordsMatch compares two records: the text exactly, atime unless
// either side says it cannot be compared, st_blocks by tdBlocksMatch.
func tdRecordsMatch(ref, got tdRecord) bool {
	if ref.line != got.line || !tdBlocksMatch(ref, got) {
		return false
	}
	return ref.atime == got.atime || ref.atimeSkip != "" || got.atimeSkip != ""
}

// tdBlocksMatch compares st_blocks. A file tmpmount holds in RAM must show
// exactly what tmpfs shows (4 KiB pages, 8 sectors each). A file that has
// rolled over shows what the spill filesystem allocated, which is its own
// business (block size, preallocation, extent-tree blocks): there we check
// only that it is zero exactly when tmpfs's is, and that it is not more
// than the pages the file's size spans (ceil(size/4096)*8 sectors) or, for
// space fallocated past the end of file, what tmpfs holds, plus a small
// slack.
func tdBlocksMatch(ref, got tdRecord) bool {
	if ref.hasBlocks != got.hasBlocks {
		return false
	}
	if !ref.hasBlocks {
		return true
	}
	if !got.onDisk {
		return ref.blocks == got.blocks
	}
	if (ref.blocks == 0) != (got.blocks == 0) {
		return false
	}
	limit := max((got.size+tdPage-1)/tdPage*8, ref.blocks) + tdDiskBlocksSlack
	return got.blocks <= limit
}

// tdRecord is one logged step.
type tdRecord struct {
	line      string // compared exactly
	atime     string // "atime=same" or "atime=changed", or "" when not stat'ed
	atimeSkip string // why atime is not compared for this step, if it is not
	hasBlocks bool   // a regular file was stat'ed after the step
	blocks    int64  // its st_blocks
	size      int64  // its st_size
	onDisk    bool   // tmpmount only: user.tmpmount.residency was "disk"
}

func (r *tdRecord) String() string {
	if r == nil {
		return "(no such step)"
	}
	s := r.line
	if r.atime != "" {
		s += " " + r.atime
		if r.atimeSkip != "" {
			s += " (not compared: " + r.atimeSkip + ")"
		}
	}
	if r.hasBlocks {
		s += " blocks=" + strconv.FormatInt(r.blocks, 10)
		if r.onDisk {
			s += " (on disk)"
		}
	}
	return s
}

// tdEnv is one run of a scenario: the directory it works in and the log.
type tdEnv struct {
	t        *testing.T
	kind     string // "tmpfs" or "tmpmount"
	dir      string
	tmpmount bool
	maxSize  int64 // tmpmount's --max-size in bytes; 0 on tmpfs

	records []tdRecord
	// atimeSkip, when set, exempts the atime of every later step from the
	// comparison; atimeSkipStep does so for the step being recorded.
	atimeSkip     string
	atimeSkipStep string
	timesSkip     bool           // compare no time at all (the scenario says why)
	labels        map[int]string // open descriptors and the names they log under
	opens         int
	maps          [][]byte // live mappings
}

func (e *tdEnv) cleanup() {
	for _, m := range e.maps {
		unix.Munmap(m)
	}
	for fd := range e.labels {
		unix.Close(fd)
	}
}

// sawDisk reports whether any step found its file on disk.
func (e *tdEnv) sawDisk() bool {
	return slices.ContainsFunc(e.records, func(r tdRecord) bool { return r.onDisk })
}

func (e *tdEnv) logText() string {
	var b strings.Builder
	for i := range e.records {
		fmt.Fprintf(&b, "  %3d %s\n", i+1, e.records[i].String())
	}
	return b.String()
}

// expectf fails the test unless cond holds: for model checks that must
// hold on tmpfs and tmpmount alike (a failure on tmpfs is a test bug).
func (e *tdEnv) expectf(cond bool, format string, args ...any) {
	e.t.Helper()
	if !cond {
		e.t.Errorf("%s: %s", e.kind, fmt.Sprintf(format, args...))
	}
}

func (e *tdEnv) path(name string) string { return filepath.Join(e.dir, name) }

// note logs a line that is not a system call (a value computed by the
// scenario), so that it is compared too.
func (e *tdEnv) note(line string) {
	e.records = append(e.records, tdRecord{line: line})
}

// expectResidency checks, on tmpmount only, where the target's data is.
func (e *tdEnv) expectResidency(tg tdTarget, want string) {
	e.t.Helper()
	if !e.tmpmount {
		return
	}
	got, err := e.residency(tg)
	if err != nil || got != want {
		e.expectf(false, "%s of %s = %q, %v; want %q", tdResidency, e.tgName(tg), got, err, want)
	}
}

// tdTarget is the file whose attributes a step observes.
type tdTarget struct {
	byFD     bool
	fd       int
	path     string
	nofollow bool // lstat, and no residency query
}

func tdFD(fd int) tdTarget               { return tdTarget{byFD: true, fd: fd} }
func (e *tdEnv) at(name string) tdTarget { return tdTarget{path: e.path(name)} }
func (e *tdEnv) atLink(name string) tdTarget {
	return tdTarget{path: e.path(name), nofollow: true}
}

func (e *tdEnv) stat(tg tdTarget) (unix.Stat_t, error) {
	var st unix.Stat_t
	var err error
	switch {
	case tg.byFD:
		err = unix.Fstat(tg.fd, &st)
	case tg.nofollow:
		err = unix.Lstat(tg.path, &st)
	default:
		err = unix.Stat(tg.path, &st)
	}
	return st, err
}

// residency reads user.tmpmount.residency of the target on tmpmount.
func (e *tdEnv) residency(tg tdTarget) (string, error) {
	buf := make([]byte, 64)
	var n int
	var err error
	switch {
	case tg.byFD:
		n, err = unix.Fgetxattr(tg.fd, tdResidency, buf)
	case tg.nofollow:
		return "", unix.ENODATA
	default:
		n, err = unix.Getxattr(tg.path, tdResidency, buf)
	}
	if err != nil {
		return "", err
	}
	return string(buf[:n]), nil
}

// step runs op, which makes one system call and describes its result, and
// logs "desc: result | what the call did to tg".
//
// Before the call it waits for the kernel's coarse clock to tick. tmpfs
// stamps atime (and, on kernels without multigrain timestamps, mtime and
// ctime) from that clock, so without the wait a change made within the
// same tick as the previous stamp would look like no change, and whether
// relatime updates atime on a second read would depend on the timing.
func (e *tdEnv) step(tg tdTarget, desc string, op func() string) {
	e.t.Helper()
	e.record(tg, desc, true, op)
}

// query is step for calls that change no timestamp on tmpfs (lseek,
// getxattr, listxattr, stat): it skips the wait for the clock, since a
// timestamp tmpmount changed by mistake shows anyway (the daemon stamps
// times to the nanosecond).
func (e *tdEnv) query(tg tdTarget, desc string, op func() string) {
	e.t.Helper()
	e.record(tg, desc, false, op)
}

func (e *tdEnv) record(tg tdTarget, desc string, tick bool, op func() string) {
	e.t.Helper()
	before, errBefore := e.stat(tg)
	if tick {
		tdNextTick()
	}
	result := op()
	after, errAfter := e.stat(tg)
	rec := tdRecord{line: desc + ": " + result}
	switch {
	case errAfter != nil:
		rec.line += " | stat: " + tdErr(errAfter)
	case after.Mode&unix.S_IFMT == unix.S_IFREG:
		rec.line += fmt.Sprintf(" | size=%d", after.Size)
		rec.hasBlocks, rec.blocks, rec.size = true, after.Blocks, after.Size
		if e.tmpmount {
			res, err := e.residency(tg)
			rec.onDisk = err == nil && res == "disk"
		}
	default:
		rec.line += " | " + nsTypeName(after.Mode)
	}
	if e.timesSkip {
		rec.line += " | times not compared"
	} else if errBefore == nil && errAfter == nil {
		rec.line += " | " + tdTimes(before, after)
		rec.atime = "atime=" + tdChanged(before.Atim, after.Atim)
		rec.atimeSkip = cmp.Or(e.atimeSkipStep, e.atimeSkip)
	}
	e.atimeSkipStep = ""
	e.records = append(e.records, rec)
}

// Reasons for not comparing atime. tmpmount's atime is the daemon's (FUSE
// marks its inodes S_NOATIME, so the kernel never touches atime itself),
// and the daemon learns of a read only when the read misses the kernel's
// page cache; tmpfs applies relatime to every read(2) and mmap(2).
const (
	tdAtimeEOF  = "FUSE: a read at or past EOF never reaches the daemon"
	tdAtimeMmap = "FUSE: mmap(2) does not reach the daemon, and page faults reach it as reads"
	// tmpmount keeps a file's pages cached across writes, so most reads
	// never reach the daemon and leave atime alone; tdAtimeDaemonReads
	// checks relatime on the reads that do reach it.
	tdAtimeCached = "tmpmount keeps pages cached across writes: reads served from the page cache leave atime alone"
)

// skipAtimeOfRead exempts the current step's atime: a read returned
// nothing (the kernel answered it from the size it knows), or data that
// may have come from the page cache.
func (e *tdEnv) skipAtimeOfRead(n int) {
	if n == 0 {
		e.atimeSkipStep = tdAtimeEOF
	} else {
		e.atimeSkipStep = tdAtimeCached
	}
}

// tdNextTick waits until CLOCK_REALTIME_COARSE moves on (at most one
// scheduler tick, a few milliseconds).
func tdNextTick() {
	var start, now unix.Timespec
	unix.ClockGettime(unix.CLOCK_REALTIME_COARSE, &start)
	for {
		time.Sleep(200 * time.Microsecond)
		unix.ClockGettime(unix.CLOCK_REALTIME_COARSE, &now)
		if now != start {
			return
		}
	}
}

// tdTimes says whether mtime and ctime changed (atime is recorded apart).
func tdTimes(before, after unix.Stat_t) string {
	return fmt.Sprintf("mtime=%s ctime=%s", tdChanged(before.Mtim, after.Mtim), tdChanged(before.Ctim, after.Ctim))
}

func tdChanged(before, after unix.Timespec) string {
	if before == after {
		return "same"
	}
	return "changed"
}

func tdErr(err error) string {
	if errno, ok := err.(unix.Errno); ok {
		if name := unix.ErrnoName(errno); name != "" {
			return "err=" + name
		}
	}
	return "err=" + err.Error()
}

func tdN(n int, err error) string {
	if err != nil {
		return tdErr(err)
	}
	return "n=" + strconv.Itoa(n)
}

func tdOK(err error) string {
	if err != nil {
		return tdErr(err)
	}
	return "ok"
}

// tdDescribe renders bytes compactly: runs of 8 or more equal bytes as
// byte*count, other bytes as quoted text; a buffer that would need many
// pieces is shown by length and hash.
func tdDescribe(b []byte) string {
	if len(b) == 0 {
		return "[]"
	}
	var parts []string
	var lit []byte
	flush := func() {
		if len(lit) > 0 {
			parts = append(parts, strconv.Quote(string(lit)))
			lit = lit[:0]
		}
	}
	for i := 0; i < len(b); {
		j := i + 1
		for j < len(b) && b[j] == b[i] {
			j++
		}
		if j-i >= 8 {
			flush()
			parts = append(parts, fmt.Sprintf("%q*%d", b[i], j-i))
		} else {
			lit = append(lit, b[i:j]...)
		}
		i = j
		if len(parts) > 16 || len(lit) > 64 {
			sum := sha256.Sum256(b)
			return fmt.Sprintf("[%d bytes sha256:%x]", len(b), sum[:8])
		}
	}
	flush()
	return "[" + strings.Join(parts, " ") + "]"
}

func tdFill(c byte, n int) []byte { return bytes.Repeat([]byte{c}, n) }

// tdPattern is n bytes that differ from page to page and within a page.
func tdPattern(n int, seed byte) []byte {
	b := make([]byte, n)
	for i := range b {
		b[i] = byte(i*31+i/tdPage) + seed
	}
	return b
}

func tdFirstDiff(a, b []byte) int {
	for i := range min(len(a), len(b)) {
		if a[i] != b[i] {
			return i
		}
	}
	if len(a) != len(b) {
		return min(len(a), len(b))
	}
	return -1
}

var tdOpenFlagNames = []struct {
	flag int
	name string
}{
	{unix.O_CREAT, "O_CREAT"}, {unix.O_EXCL, "O_EXCL"}, {unix.O_TRUNC, "O_TRUNC"},
	{unix.O_APPEND, "O_APPEND"}, {unix.O_TMPFILE, "O_TMPFILE"},
}

func tdOpenFlags(flags int) string {
	var names []string
	switch flags & unix.O_ACCMODE {
	case unix.O_RDONLY:
		names = append(names, "O_RDONLY")
	case unix.O_WRONLY:
		names = append(names, "O_WRONLY")
	default:
		names = append(names, "O_RDWR")
	}
	for _, f := range tdOpenFlagNames {
		if flags&f.flag == f.flag {
			names = append(names, f.name)
		}
	}
	return strings.Join(names, "|")
}

var tdFallocNames = []struct {
	mode uint32
	name string
}{
	{unix.FALLOC_FL_KEEP_SIZE, "KEEP_SIZE"}, {unix.FALLOC_FL_PUNCH_HOLE, "PUNCH_HOLE"},
	{unix.FALLOC_FL_ZERO_RANGE, "ZERO_RANGE"}, {unix.FALLOC_FL_COLLAPSE_RANGE, "COLLAPSE_RANGE"},
	{unix.FALLOC_FL_INSERT_RANGE, "INSERT_RANGE"},
}

func tdFallocMode(mode uint32) string {
	var names []string
	for _, f := range tdFallocNames {
		if mode&f.mode != 0 {
			names = append(names, f.name)
		}
	}
	if len(names) == 0 {
		return "0"
	}
	return strings.Join(names, "|")
}

func tdWhence(whence int) string {
	switch whence {
	case unix.SEEK_SET:
		return "SEEK_SET"
	case unix.SEEK_CUR:
		return "SEEK_CUR"
	case unix.SEEK_END:
		return "SEEK_END"
	case unix.SEEK_DATA:
		return "SEEK_DATA"
	case unix.SEEK_HOLE:
		return "SEEK_HOLE"
	}
	return strconv.Itoa(whence)
}

// tdXattrName shortens long names for the log.
func tdXattrName(name string) string {
	if len(name) <= 40 {
		return name
	}
	return fmt.Sprintf("%s...(%d bytes)", name[:16], len(name))
}

// ---- steps ----

func (e *tdEnv) label(fd int) string {
	if l, ok := e.labels[fd]; ok {
		return l
	}
	return "fd?"
}

// open opens name (relative to the scenario's directory) and returns the
// descriptor, or -1. The log calls the descriptor "name#k".
func (e *tdEnv) open(name string, flags int) int {
	e.t.Helper()
	fd := -1
	e.opens++
	lbl := fmt.Sprintf("%s#%d", name, e.opens)
	e.step(e.at(name), fmt.Sprintf("open(%s, %s) as %s", name, tdOpenFlags(flags), lbl), func() string {
		var err error
		fd, err = unix.Open(e.path(name), flags|unix.O_CLOEXEC, 0o644)
		if err != nil {
			fd = -1
			return tdErr(err)
		}
		e.labels[fd] = lbl
		return "ok"
	})
	return fd
}

func (e *tdEnv) create(name string) int {
	e.t.Helper()
	return e.open(name, unix.O_RDWR|unix.O_CREAT|unix.O_EXCL)
}

// openTmpfile opens a nameless file in the scenario's directory.
func (e *tdEnv) openTmpfile(flags int) int {
	e.t.Helper()
	e.opens++
	lbl := fmt.Sprintf("tmpfile#%d", e.opens)
	desc := fmt.Sprintf("open(., %s) as %s", tdOpenFlags(flags|unix.O_TMPFILE), lbl)
	fd, err := unix.Open(e.dir, flags|unix.O_TMPFILE|unix.O_CLOEXEC, 0o600)
	if err != nil {
		e.note(desc + ": " + tdErr(err))
		return -1
	}
	e.labels[fd] = lbl
	// The file did not exist before the call: log its state after it.
	e.step(tdFD(fd), desc, func() string { return "ok" })
	return fd
}

func (e *tdEnv) close(fd int) {
	e.t.Helper()
	lbl := e.label(fd)
	err := unix.Close(fd)
	delete(e.labels, fd)
	e.note(fmt.Sprintf("close(%s): %s", lbl, tdOK(err)))
}

func (e *tdEnv) pwrite(fd int, off int64, data []byte) {
	e.t.Helper()
	e.step(tdFD(fd), fmt.Sprintf("pwrite(%s, off=%d, %s)", e.label(fd), off, tdDescribe(data)), func() string {
		return tdN(unix.Pwrite(fd, data, off))
	})
}

func (e *tdEnv) write(fd int, data []byte) {
	e.t.Helper()
	e.step(tdFD(fd), fmt.Sprintf("write(%s, %s)", e.label(fd), tdDescribe(data)), func() string {
		return tdN(unix.Write(fd, data))
	})
}

func (e *tdEnv) pread(fd int, off int64, n int) []byte {
	e.t.Helper()
	buf := make([]byte, n)
	got := 0
	e.step(tdFD(fd), fmt.Sprintf("pread(%s, off=%d, len=%d)", e.label(fd), off, n), func() string {
		m, err := unix.Pread(fd, buf, off)
		if err != nil {
			return tdErr(err)
		}
		got = m
		e.skipAtimeOfRead(m)
		return fmt.Sprintf("n=%d %s", m, tdDescribe(buf[:m]))
	})
	return buf[:got]
}

func (e *tdEnv) read(fd int, n int) []byte {
	e.t.Helper()
	buf := make([]byte, n)
	got := 0
	e.step(tdFD(fd), fmt.Sprintf("read(%s, len=%d)", e.label(fd), n), func() string {
		m, err := unix.Read(fd, buf)
		if err != nil {
			return tdErr(err)
		}
		got = m
		e.skipAtimeOfRead(m)
		return fmt.Sprintf("n=%d %s", m, tdDescribe(buf[:m]))
	})
	return buf[:got]
}

// readAll reads the whole file with pread from offset 0 until end of file,
// logs it, and checks it against want (if want is not nil).
func (e *tdEnv) readAll(fd int, want []byte) []byte {
	e.t.Helper()
	var data []byte
	e.step(tdFD(fd), fmt.Sprintf("pread-all(%s)", e.label(fd)), func() string {
		buf := make([]byte, 256<<10)
		for {
			m, err := unix.Pread(fd, buf, int64(len(data)))
			if err != nil {
				return fmt.Sprintf("after %d bytes: %s", len(data), tdErr(err))
			}
			if m == 0 {
				e.skipAtimeOfRead(len(data))
				return fmt.Sprintf("n=%d %s", len(data), tdDescribe(data))
			}
			data = append(data, buf[:m]...)
		}
	})
	if want != nil {
		if i := tdFirstDiff(data, want); i >= 0 {
			e.expectf(false, "read back %d bytes of %s, want the %d bytes written; first difference at offset %d",
				len(data), e.label(fd), len(want), i)
		}
	}
	return data
}

func (e *tdEnv) ftruncate(fd int, size int64) {
	e.t.Helper()
	e.step(tdFD(fd), fmt.Sprintf("ftruncate(%s, %d)", e.label(fd), size), func() string {
		return tdOK(unix.Ftruncate(fd, size))
	})
}

func (e *tdEnv) truncate(name string, size int64) {
	e.t.Helper()
	e.step(e.at(name), fmt.Sprintf("truncate(%s, %d)", name, size), func() string {
		return tdOK(unix.Truncate(e.path(name), size))
	})
}

func (e *tdEnv) fallocate(fd int, mode uint32, off, length int64) {
	e.t.Helper()
	e.step(tdFD(fd), fmt.Sprintf("fallocate(%s, %s, off=%d, len=%d)", e.label(fd), tdFallocMode(mode), off, length),
		func() string { return tdOK(unix.Fallocate(fd, mode, off, length)) })
}

func (e *tdEnv) punch(fd int, off, length int64) {
	e.t.Helper()
	e.fallocate(fd, unix.FALLOC_FL_PUNCH_HOLE|unix.FALLOC_FL_KEEP_SIZE, off, length)
}

func (e *tdEnv) lseek(fd int, off int64, whence int) int64 {
	e.t.Helper()
	pos := int64(-1)
	e.query(tdFD(fd), fmt.Sprintf("lseek(%s, %d, %s)", e.label(fd), off, tdWhence(whence)), func() string {
		p, err := unix.Seek(fd, off, whence)
		if err != nil {
			return tdErr(err)
		}
		pos = p
		return "pos=" + strconv.FormatInt(p, 10)
	})
	return pos
}

// fstat logs the attributes not logged by every step.
func (e *tdEnv) fstat(fd int) unix.Stat_t {
	e.t.Helper()
	var st unix.Stat_t
	e.query(tdFD(fd), fmt.Sprintf("fstat(%s)", e.label(fd)), func() string {
		if err := unix.Fstat(fd, &st); err != nil {
			return tdErr(err)
		}
		return fmt.Sprintf("nlink=%d mode=%o blksize=%d", st.Nlink, st.Mode, st.Blksize)
	})
	return st
}

func (e *tdEnv) statName(name string) {
	e.t.Helper()
	e.query(e.at(name), fmt.Sprintf("stat(%s)", name), func() string {
		var st unix.Stat_t
		if err := unix.Stat(e.path(name), &st); err != nil {
			return tdErr(err)
		}
		return fmt.Sprintf("nlink=%d mode=%o", st.Nlink, st.Mode)
	})
}

// linkProc gives the file open as fd the name newName, as linkat(2) with
// AT_SYMLINK_FOLLOW on /proc/self/fd/N does.
func (e *tdEnv) linkProc(fd int, newName string) {
	e.t.Helper()
	e.step(tdFD(fd), fmt.Sprintf("linkat(/proc/self/fd/<%s>, %s, AT_SYMLINK_FOLLOW)", e.label(fd), newName), func() string {
		return tdOK(unix.Linkat(unix.AT_FDCWD, fmt.Sprintf("/proc/self/fd/%d", fd),
			unix.AT_FDCWD, e.path(newName), unix.AT_SYMLINK_FOLLOW))
	})
}

// linkEmptyPath is linkat(fd, "", AT_EMPTY_PATH) (needs CAP_DAC_READ_SEARCH).
func (e *tdEnv) linkEmptyPath(fd int, newName string) {
	e.t.Helper()
	e.step(tdFD(fd), fmt.Sprintf("linkat(%s, \"\", %s, AT_EMPTY_PATH)", e.label(fd), newName), func() string {
		return tdOK(unix.Linkat(fd, "", unix.AT_FDCWD, e.path(newName), unix.AT_EMPTY_PATH))
	})
}

func (e *tdEnv) mmap(fd int, length int, prot, flags int) []byte {
	e.t.Helper()
	var mem []byte
	kind := "MAP_SHARED"
	if flags&unix.MAP_PRIVATE != 0 {
		kind = "MAP_PRIVATE"
	}
	e.step(tdFD(fd), fmt.Sprintf("mmap(%s, len=%d, %s)", e.label(fd), length, kind), func() string {
		m, err := unix.Mmap(fd, 0, length, prot, flags)
		if err != nil {
			return tdErr(err)
		}
		mem = m
		e.maps = append(e.maps, m)
		return "ok"
	})
	return mem
}

// store writes into a mapping of the file open as fd (a memory store, not
// a system call; the step still logs what it did to the file).
func (e *tdEnv) store(fd int, mem []byte, what string, off int, data []byte) {
	e.t.Helper()
	e.step(tdFD(fd), fmt.Sprintf("store(%s mapping, off=%d, %s)", what, off, tdDescribe(data)), func() string {
		if mem == nil {
			return "no mapping"
		}
		copy(mem[off:], data)
		return "ok"
	})
}

func (e *tdEnv) load(fd int, mem []byte, what string, off, n int) {
	e.t.Helper()
	e.step(tdFD(fd), fmt.Sprintf("load(%s mapping, off=%d, len=%d)", what, off, n), func() string {
		if mem == nil {
			return "no mapping"
		}
		return tdDescribe(slices.Clone(mem[off : off+n]))
	})
}

func (e *tdEnv) msync(fd int, mem []byte, what string) {
	e.t.Helper()
	e.step(tdFD(fd), fmt.Sprintf("msync(%s mapping, MS_SYNC)", what), func() string {
		if mem == nil {
			return "no mapping"
		}
		return tdOK(unix.Msync(mem, unix.MS_SYNC))
	})
}

func (e *tdEnv) munmap(fd int, mem []byte, what string) {
	e.t.Helper()
	e.step(tdFD(fd), fmt.Sprintf("munmap(%s mapping)", what), func() string {
		if mem == nil {
			return "no mapping"
		}
		e.maps = slices.DeleteFunc(e.maps, func(m []byte) bool { return &m[0] == &mem[0] })
		return tdOK(unix.Munmap(mem))
	})
}

// tgName describes a target for the log.
func (e *tdEnv) tgName(tg tdTarget) string {
	if tg.byFD {
		return e.label(tg.fd)
	}
	return strings.TrimPrefix(tg.path, e.dir+"/")
}

func tdXattrFlags(flags int) string {
	switch flags {
	case 0:
		return "0"
	case unix.XATTR_CREATE:
		return "XATTR_CREATE"
	case unix.XATTR_REPLACE:
		return "XATTR_REPLACE"
	case unix.XATTR_CREATE | unix.XATTR_REPLACE:
		return "XATTR_CREATE|XATTR_REPLACE"
	}
	return strconv.Itoa(flags)
}

func (e *tdEnv) setxattr(tg tdTarget, name string, value []byte, flags int) {
	e.t.Helper()
	desc := fmt.Sprintf("setxattr(%s, %s, %s, %s)", e.tgName(tg), tdXattrName(name), tdDescribe(value), tdXattrFlags(flags))
	e.step(tg, desc, func() string {
		switch {
		case tg.byFD:
			return tdOK(unix.Fsetxattr(tg.fd, name, value, flags))
		case tg.nofollow:
			return tdOK(unix.Lsetxattr(tg.path, name, value, flags))
		}
		return tdOK(unix.Setxattr(tg.path, name, value, flags))
	})
}

// getxattr reads name with a buffer of size bytes (0: ask for the size).
func (e *tdEnv) getxattr(tg tdTarget, name string, size int) {
	e.t.Helper()
	desc := fmt.Sprintf("getxattr(%s, %s, size=%d)", e.tgName(tg), tdXattrName(name), size)
	e.query(tg, desc, func() string {
		buf := make([]byte, size)
		var n int
		var err error
		switch {
		case tg.byFD:
			n, err = unix.Fgetxattr(tg.fd, name, buf)
		case tg.nofollow:
			n, err = unix.Lgetxattr(tg.path, name, buf)
		default:
			n, err = unix.Getxattr(tg.path, name, buf)
		}
		if err != nil {
			return tdErr(err)
		}
		if size == 0 {
			return fmt.Sprintf("n=%d", n)
		}
		return fmt.Sprintf("n=%d %s", n, tdDescribe(buf[:n]))
	})
}

// listxattr lists names with a buffer of size bytes (0: ask for the size).
// The names are logged sorted: the order of listxattr(2) is unspecified.
func (e *tdEnv) listxattr(tg tdTarget, size int) []string {
	e.t.Helper()
	var names []string
	e.query(tg, fmt.Sprintf("listxattr(%s, size=%d)", e.tgName(tg), size), func() string {
		buf := make([]byte, size)
		var n int
		var err error
		switch {
		case tg.byFD:
			n, err = unix.Flistxattr(tg.fd, buf)
		case tg.nofollow:
			n, err = unix.Llistxattr(tg.path, buf)
		default:
			n, err = unix.Listxattr(tg.path, buf)
		}
		if err != nil {
			return tdErr(err)
		}
		if size == 0 {
			return fmt.Sprintf("n=%d", n)
		}
		for _, s := range strings.Split(string(buf[:n]), "\x00") {
			if s != "" {
				names = append(names, tdXattrName(s))
			}
		}
		slices.Sort(names)
		return fmt.Sprintf("n=%d names=[%s]", n, strings.Join(names, " "))
	})
	return names
}

func (e *tdEnv) removexattr(tg tdTarget, name string) {
	e.t.Helper()
	e.step(tg, fmt.Sprintf("removexattr(%s, %s)", e.tgName(tg), tdXattrName(name)), func() string {
		switch {
		case tg.byFD:
			return tdOK(unix.Fremovexattr(tg.fd, name))
		case tg.nofollow:
			return tdOK(unix.Lremovexattr(tg.path, name))
		}
		return tdOK(unix.Removexattr(tg.path, name))
	})
}

// ---- scenarios ----

func tdScenarios() []tdScenario {
	return []tdScenario{
		{name: "write-read-offsets", rollsOver: true, run: tdWriteReadOffsets},
		{name: "pwrite-past-eof-hole", rollsOver: true, run: tdPwriteHole},
		{name: "append-two-fds", rollsOver: true, run: tdAppendTwoFDs},
		{name: "truncate-up-down", rollsOver: true, run: tdTruncateUpDown},
		{name: "truncate-times", rollsOver: true, run: tdTruncateTimes},
		{name: "fallocate", rollsOver: true, run: tdFallocate},
		{name: "seek-fallocated", rollsOver: true, run: tdSeekFallocated},
		{name: "punch-hole", rollsOver: true, run: tdPunchHole},
		{name: "seek-data-hole", rollsOver: true, run: tdSeekDataHole},
		{name: "sparse-blocks", rollsOver: true, run: tdSparseBlocks},
		{name: "sizes", rollsOver: true, run: tdSizes},
		{name: "tmpfile", rollsOver: true, run: tdTmpfile},
		{name: "mmap", run: tdMmap},
		{name: "mmap-write-times", run: tdMmapWriteTimes},
		{name: "xattr-file", rollsOver: true, run: tdXattrFile},
		{name: "xattr-limits", run: tdXattrLimits},
		{name: "xattr-prefix-only-name", run: tdXattrPrefixOnly},
		{name: "xattr-special-files", run: tdXattrSpecial},
		{name: "statfs", run: tdStatfs},
		{name: "atime-daemon-reads", tmpmountOnly: true, run: tdAtimeDaemonReads},
		{name: "residency-xattr", tmpmountOnly: true, run: tdResidencyXattr},
	}
}

// tdWriteReadOffsets writes and reads at offsets, overlapping, across page
// boundaries, through the file position and at and past end of file.
func tdWriteReadOffsets(e *tdEnv) {
	f := e.create("f")
	e.pwrite(f, 0, []byte("hello, world"))
	e.pwrite(f, 7, []byte("WORLD!!"))
	e.pread(f, 0, 64)
	e.pread(f, 5, 4)
	e.pwrite(f, 4000, tdFill('b', 200)) // across the first page boundary
	e.pread(f, 3990, 300)
	e.lseek(f, 0, unix.SEEK_SET)
	e.write(f, []byte("seq1"))
	e.write(f, []byte("seq2"))
	e.lseek(f, 0, unix.SEEK_CUR)
	e.read(f, 10)
	e.lseek(f, 0, unix.SEEK_END)
	e.read(f, 10) // at end of file
	e.pread(f, 4200, 10)
	e.pread(f, 100000, 10)
	e.pwrite(f, 3*tdPage-1, []byte("xy")) // across a later boundary, leaving a hole
	e.pwrite(f, 5*tdPage-3, tdPattern(3*tdPage+6, 'p'))
	e.pread(f, 3*tdPage-4, 8)
	want := make([]byte, 8*tdPage+3)
	copy(want, "seq1seq2ORLD!!")
	copy(want[4000:], tdFill('b', 200))
	copy(want[3*tdPage-1:], "xy")
	copy(want[5*tdPage-3:], tdPattern(3*tdPage+6, 'p'))
	e.readAll(f, want)
	e.fstat(f)
	e.close(f)
}

// tdPwriteHole writes past end of file: the gap reads as zeros and holds
// no pages.
func tdPwriteHole(e *tdEnv) {
	f := e.create("f")
	e.pwrite(f, 10000, []byte("x"))
	e.pread(f, 0, 10001)
	e.pread(f, 4090, 20)
	e.fstat(f)
	e.pwrite(f, 100000, []byte("end")) // with --max-size 16k: rolls over
	e.pread(f, 9990, 20)
	e.pread(f, 50000, 100)
	want := make([]byte, 100003)
	want[10000] = 'x'
	copy(want[100000:], "end")
	e.readAll(f, want)
	e.pwrite(f, 20*tdPage, tdFill('z', tdPage)) // a whole page, far past EOF
	e.pread(f, 20*tdPage-5, 10)
	e.fstat(f)
	e.close(f)
}

// tdAppendTwoFDs appends through two O_APPEND descriptors (and pwrite on
// one, which Linux appends too) while a third writes at offset 0.
func tdAppendTwoFDs(e *tdEnv) {
	rw := e.create("f")
	e.write(rw, []byte("base"))
	a := e.open("f", unix.O_WRONLY|unix.O_APPEND)
	b := e.open("f", unix.O_WRONLY|unix.O_APPEND)
	e.write(a, []byte("AAA"))
	e.write(b, []byte("BBBB"))
	e.write(a, []byte("aa"))
	e.lseek(a, 0, unix.SEEK_CUR)
	e.pwrite(b, 0, []byte("P")) // Linux appends even at an offset
	e.pwrite(rw, 0, []byte("zz"))
	e.write(b, tdFill('L', 20000)) // with --max-size 16k: rolls over
	e.write(a, []byte("tail"))
	e.lseek(b, 0, unix.SEEK_CUR)
	want := append([]byte("zzseAAABBBBaaP"), tdFill('L', 20000)...)
	want = append(want, "tail"...)
	e.readAll(rw, want)
	e.close(a)
	e.close(b)
	e.close(rw)
}

// tdTruncateUpDown grows and shrinks files: growth reads as zeros, and
// data cut off is gone, including the tail of the last partial page.
func tdTruncateUpDown(e *tdEnv) {
	f := e.create("f")
	e.pwrite(f, 0, tdFill('a', 10000))
	e.ftruncate(f, 20000) // up: zeros; with --max-size 16k: rolls over
	e.pread(f, 9990, 100)
	e.ftruncate(f, 5000) // down: data gone
	e.pread(f, 0, 10000)
	e.ftruncate(f, 9000) // up again: zeros, inside the last partial page too
	e.pread(f, 4090, 5000)
	want := append(tdFill('a', 5000), make([]byte, 4000)...)
	e.readAll(f, want)
	e.truncate("f", 3*tdPage)
	e.truncate("f", 0)
	e.ftruncate(f, tdPage)
	e.readAll(f, make([]byte, tdPage))
	e.ftruncate(f, -1)
	e.truncate("f", -1)

	// A file that stays small: the partial last page is cleared on the
	// way down and reads zeros on the way up.
	g := e.create("g")
	e.pwrite(g, 0, tdFill('c', 3000))
	e.ftruncate(g, 100)
	e.ftruncate(g, 3000)
	e.readAll(g, append(tdFill('c', 100), make([]byte, 2900)...))
	e.pwrite(g, 2*tdPage+10, tdFill('d', 10))
	e.ftruncate(g, tdPage+1) // drops the third page, keeps a byte of the second
	e.fstat(g)
	e.truncate("g", 3*tdPage)
	e.readAll(g, append(tdFill('c', 100), make([]byte, 3*tdPage-100)...))

	r := e.open("g", unix.O_RDONLY)
	e.ftruncate(r, 10) // not open for writing
	e.close(r)
	e.close(f)
	e.close(g)
}

// tdTruncateTimes compares which truncations change mtime and ctime.
// tmpfs: ftruncate(2) and open(O_TRUNC) always change both (the VFS passes
// ATTR_MTIME|ATTR_CTIME); truncate(2) changes both when the size changes or
// when it is not raised and the file holds pages (shmem_truncate_range
// stamps them), and neither on a same-size truncate of a file with no page.
func tdTruncateTimes(e *tdEnv) {
	f := e.create("f")
	e.pwrite(f, 0, tdFill('a', 5000))
	e.ftruncate(f, 5000)
	e.truncate("f", 5000)
	e.ftruncate(f, 5001)
	e.truncate("f", 5000)
	e.ftruncate(f, 0)
	e.ftruncate(f, 0)
	e.truncate("f", 0)
	e.ftruncate(f, 2*tdPage) // sparse: no page
	e.truncate("f", 2*tdPage)
	e.ftruncate(f, 2*tdPage)
	e.pwrite(f, 0, tdFill('b', 30000)) // with --max-size 16k: rolls over
	e.ftruncate(f, 30000)
	e.truncate("f", 30000)
	e.close(f)
	g := e.open("f", unix.O_RDWR|unix.O_TRUNC) // non-empty
	e.fstat(g)
	h := e.open("f", unix.O_RDWR|unix.O_TRUNC) // already empty
	e.readAll(h, []byte{})
	e.close(g)
	e.close(h)
}

// tdFallocate compares fallocate: mode 0 inside and past EOF (size grows),
// KEEP_SIZE past EOF (size stays, st_blocks grows), and the errors of a
// zero length, a negative offset, the modes tmpfs does not support and a
// descriptor not open for writing.
func tdFallocate(e *tdEnv) {
	f := e.create("f")
	e.pwrite(f, 0, tdFill('a', 5000))
	e.fallocate(f, 0, 100, 1000)   // inside EOF, on data
	e.fallocate(f, 0, 0, 3*tdPage) // partly past EOF: size grows
	e.pread(f, 4990, 100)
	e.fallocate(f, unix.FALLOC_FL_KEEP_SIZE, 3*tdPage, 4*tdPage) // past EOF; --max-size 16k: rolls over
	e.pread(f, 3*tdPage, 10)
	e.fallocate(f, unix.FALLOC_FL_KEEP_SIZE, 100, 200) // inside EOF
	e.ftruncate(f, 40000)                              // over the preallocated pages
	e.pread(f, 3*tdPage-5, 20)
	e.fallocate(f, 0, 50000, tdPage) // past EOF: size grows, hole before it
	e.pread(f, 40000, 20)
	e.readAll(f, append(tdFill('a', 5000), make([]byte, 50000+tdPage-5000)...))

	e.fallocate(f, 0, 0, 0)
	e.fallocate(f, unix.FALLOC_FL_KEEP_SIZE, 100, 0)
	e.fallocate(f, 0, -1, 10)
	e.fallocate(f, unix.FALLOC_FL_PUNCH_HOLE, 0, tdPage) // without KEEP_SIZE
	e.fallocate(f, unix.FALLOC_FL_ZERO_RANGE, 0, tdPage)
	e.fallocate(f, unix.FALLOC_FL_ZERO_RANGE|unix.FALLOC_FL_KEEP_SIZE, 0, tdPage)
	e.fallocate(f, unix.FALLOC_FL_COLLAPSE_RANGE, 0, tdPage)
	e.fallocate(f, unix.FALLOC_FL_INSERT_RANGE, 0, tdPage)
	e.readAll(f, append(tdFill('a', 5000), make([]byte, 50000+tdPage-5000)...))

	r := e.open("f", unix.O_RDONLY)
	e.fallocate(r, 0, 0, tdPage) // not open for writing
	e.close(r)

	// A small file that stays in RAM with either --max-size.
	g := e.create("g")
	e.fallocate(g, unix.FALLOC_FL_KEEP_SIZE, 0, 2*tdPage)
	e.pread(g, 0, 10)
	e.fallocate(g, 0, tdPage+10, 100)
	e.readAll(g, make([]byte, tdPage+110))
	e.pwrite(g, 0, []byte("data"))
	e.readAll(g, append([]byte("data"), make([]byte, tdPage+106)...))
	e.close(f)
	e.close(g)
}

// tdSeekFallocated asks SEEK_DATA and SEEK_HOLE about pages that fallocate
// allocated but nothing wrote: tmpfs counts them as holes (its folios are
// not uptodate until written). Every file here stays under 16 KiB, so in
// RAM, until its last step, which grows it past 16 KiB (on disk with
// --max-size 16k) and asks again.
func tdSeekFallocated(e *tdEnv) {
	seek := func(fd int, offs ...int64) {
		for _, off := range offs {
			e.lseek(fd, off, unix.SEEK_DATA)
			e.lseek(fd, off, unix.SEEK_HOLE)
		}
	}
	grow := func(fd int) {
		e.fallocate(fd, 0, 3*tdPage, 3*tdPage) // to 24 KiB
		seek(fd, 0, 3*tdPage, 5*tdPage)
	}

	// Written page 0 and part of page 1, then allocated up to 3 pages.
	a := e.create("written-then-allocated")
	e.pwrite(a, 0, tdFill('a', 5000))
	e.fallocate(a, 0, 0, 3*tdPage)
	seek(a, 0, 5000, 2*tdPage)
	e.readAll(a, nil) // reading the allocated page does not write it
	seek(a, 2*tdPage)
	grow(a)
	e.close(a)

	// Allocated first, then one page written in the middle.
	b := e.create("allocated-then-written")
	e.fallocate(b, 0, 0, 3*tdPage)
	seek(b, 0, tdPage)
	e.pwrite(b, tdPage+100, []byte("mid"))
	seek(b, 0, tdPage, 2*tdPage)
	grow(b)
	e.close(b)

	// Allocated past EOF with KEEP_SIZE, then the size raised over it.
	c := e.create("keep-size-then-truncated")
	e.fallocate(c, unix.FALLOC_FL_KEEP_SIZE, 0, 2*tdPage)
	seek(c, 0)
	e.ftruncate(c, 3*tdPage)
	seek(c, 0, 2*tdPage)
	grow(c)
	e.close(c)
}

// tdPunchHole punches holes in a file of 3 pages (stays in RAM with either
// --max-size) and in one of 6 pages (on disk with --max-size 16k).
func tdPunchHole(e *tdEnv) {
	for _, pages := range []int{3, 6} {
		name := fmt.Sprintf("pages%d", pages)
		size := pages * tdPage
		f := e.create(name)
		want := make([]byte, 0, size)
		for p := range pages {
			want = append(want, tdFill(byte('A'+p), tdPage)...)
		}
		e.pwrite(f, 0, want)
		e.fstat(f)
		// From inside page 0 to inside page 2: page 1 freed, the edges zeroed.
		e.punch(f, 1000, 2*tdPage)
		clear(want[1000 : 1000+2*tdPage])
		e.readAll(f, want)
		e.punch(f, 100, 100) // inside one page
		clear(want[100:200])
		e.pread(f, 90, 120)
		e.punch(f, int64(size-tdPage), tdPage) // the last page, whole
		clear(want[size-tdPage:])
		e.punch(f, int64(size-10), 100000) // across EOF: size stays
		e.readAll(f, want)
		e.lseek(f, 0, unix.SEEK_DATA)
		e.lseek(f, 0, unix.SEEK_HOLE)
		e.lseek(f, 2*tdPage, unix.SEEK_DATA)
		e.punch(f, int64(size+tdPage), tdPage) // wholly past EOF
		e.punch(f, 0, tdMiB)                   // everything
		e.readAll(f, make([]byte, size))
		e.lseek(f, 0, unix.SEEK_DATA)
		e.pwrite(f, int64(tdPage+5), []byte("again"))
		e.pread(f, tdPage, 16)
		e.close(f)
	}
}

// tdSeekDataHole compares SEEK_DATA and SEEK_HOLE offsets on sparse files,
// at and past end of file, and on an empty and a full file.
func tdSeekDataHole(e *tdEnv) {
	// Islands in pages 2, 3 and 7 of a 10-page file.
	f := e.create("islands")
	e.ftruncate(f, 10*tdPage) // with --max-size 16k: rolls over
	e.pwrite(f, 2*tdPage+100, []byte("island"))
	e.pwrite(f, 3*tdPage, tdFill('3', tdPage))
	e.pwrite(f, 7*tdPage+4000, []byte("x"))
	size := int64(10 * tdPage)
	offsets := []int64{0, 1, tdPage, 2 * tdPage, 2*tdPage + 50, 3*tdPage + 5, 4 * tdPage, 5*tdPage + 7,
		7 * tdPage, 7*tdPage + 4095, 8 * tdPage, size - 1, size, size + 1, 1 << 40, -1}
	for _, off := range offsets {
		e.lseek(f, off, unix.SEEK_DATA)
		e.lseek(f, off, unix.SEEK_HOLE)
	}
	// Data up to EOF: the only hole is EOF.
	e.pwrite(f, size-10, []byte("tail"))
	e.ftruncate(f, size-6)
	for _, off := range []int64{8 * tdPage, 9 * tdPage, size - 7, size - 6} {
		e.lseek(f, off, unix.SEEK_DATA)
		e.lseek(f, off, unix.SEEK_HOLE)
	}
	// The same islands in a file small enough to stay in RAM.
	s := e.create("small")
	e.ftruncate(s, 3*tdPage+100)
	e.pwrite(s, tdPage+10, []byte("mid"))
	for _, off := range []int64{0, tdPage, 2 * tdPage, 3 * tdPage, 3*tdPage + 99, 3*tdPage + 100} {
		e.lseek(s, off, unix.SEEK_DATA)
		e.lseek(s, off, unix.SEEK_HOLE)
	}
	// An empty file has neither.
	z := e.create("empty")
	e.lseek(z, 0, unix.SEEK_DATA)
	e.lseek(z, 0, unix.SEEK_HOLE)
	e.lseek(z, 1, unix.SEEK_HOLE)
	// A fully written file: data everywhere, hole at EOF.
	w := e.create("full")
	e.pwrite(w, 0, tdFill('w', 3*tdPage+1))
	e.lseek(w, 0, unix.SEEK_HOLE)
	e.lseek(w, 100, unix.SEEK_DATA)
	e.lseek(w, 3*tdPage, unix.SEEK_HOLE)
	e.close(f)
	e.close(s)
	e.close(z)
	e.close(w)
}

// tdSparseBlocks compares st_blocks of sparse and fully written files: 4
// KiB at 1 GiB holds one page, a 1 GiB truncate none.
func tdSparseBlocks(e *tdEnv) {
	g := e.create("gig")
	e.pwrite(g, tdGiB, tdFill('g', tdPage))
	e.fstat(g)
	e.pread(g, tdGiB-10, 20)
	e.pread(g, 512*tdMiB, 16)
	e.lseek(g, 0, unix.SEEK_DATA)
	e.lseek(g, tdGiB+10, unix.SEEK_HOLE)
	e.close(g)

	tr := e.create("truncated")
	e.ftruncate(tr, tdGiB)
	e.fstat(tr)
	e.pread(tr, tdGiB/2, 16)
	e.lseek(tr, 0, unix.SEEK_DATA)
	e.lseek(tr, 0, unix.SEEK_HOLE)
	e.close(tr)

	for _, n := range []int{12000, 16 * tdPage} { // RAM with 16k, then disk
		name := fmt.Sprintf("full%d", n)
		f := e.create(name)
		e.pwrite(f, 0, tdPattern(n, 'f'))
		e.fstat(f)
		e.close(f)
		e.statName(name)
	}
}

// tdSizes writes files of sizes around a page and past 1 MiB (a FUSE
// request's largest) and reads them back exactly.
func tdSizes(e *tdEnv) {
	for i, n := range []int{0, 1, tdPage - 1, tdPage, tdPage + 1, tdMiB + 1} {
		name := fmt.Sprintf("size%d", n)
		data := tdPattern(n, byte(i))
		w := e.create(name)
		e.write(w, data)
		e.fstat(w)
		e.close(w)
		r := e.open(name, unix.O_RDONLY)
		e.readAll(r, data)
		e.read(r, 1<<16) // sequential read(2) from the start
		e.close(r)
	}
}

// tdTmpfile makes O_TMPFILE files, gives them names with linkat(2), and
// checks that O_TMPFILE|O_EXCL files cannot get one.
func tdTmpfile(e *tdEnv) {
	fd := e.openTmpfile(unix.O_RDWR)
	if fd < 0 {
		return // the errno was logged and is compared with tmpfs's
	}
	e.write(fd, []byte("tmpfile data"))
	e.fstat(fd)
	e.linkProc(fd, "named")
	e.fstat(fd)
	e.statName("named")
	r := e.open("named", unix.O_RDONLY)
	e.readAll(r, []byte("tmpfile data"))
	e.linkProc(fd, "named2") // a second name
	e.statName("named2")
	big := tdPattern(20000, 't') // with --max-size 16k: rolls over
	e.pwrite(fd, 0, big)
	e.readAll(r, big)
	e.close(r)
	e.close(fd)

	// A nameless file that rolls over before it gets a name.
	n := e.openTmpfile(unix.O_RDWR)
	e.pwrite(n, 0, big)
	e.fstat(n)
	e.linkProc(n, "late")
	e.statName("late")
	e.close(n)

	// O_EXCL: it can never get a name.
	x := e.openTmpfile(unix.O_RDWR | unix.O_EXCL)
	e.write(x, []byte("x"))
	e.linkProc(x, "excl")
	e.linkEmptyPath(x, "excl2")
	e.statName("excl")
	e.fstat(x)
	e.close(x)

	// O_TMPFILE needs write access.
	e.openTmpfile(unix.O_RDONLY)
}

// tdMmap checks basic coherence between mappings and read/write. Times
// are not compared here (tdMmapWriteTimes does mtime and ctime): under
// FUSE, mmap(2) does not reach the daemon and page faults reach it as
// reads, so atime cannot follow tmpfs.
func tdMmap(e *tdEnv) {
	e.timesSkip = true
	f := e.create("f")
	e.pwrite(f, 0, tdFill('a', 2*tdPage))
	e.expectResidency(tdFD(f), "memory")
	shared := e.mmap(f, 2*tdPage, unix.PROT_READ|unix.PROT_WRITE, unix.MAP_SHARED)
	e.load(f, shared, "shared", 0, 16)
	e.store(f, shared, "shared", 100, []byte("SHARED"))
	e.store(f, shared, "shared", tdPage+5, []byte("page2"))
	e.msync(f, shared, "shared")
	e.pread(f, 90, 20)
	e.pread(f, tdPage, 16)

	private := e.mmap(f, 2*tdPage, unix.PROT_READ|unix.PROT_WRITE, unix.MAP_PRIVATE)
	e.load(f, private, "private", 90, 20)
	e.store(f, private, "private", 0, []byte("private"))
	e.load(f, private, "private", 0, 10)
	e.pread(f, 0, 10)
	e.load(f, shared, "shared", 0, 10)

	e.pwrite(f, 200, []byte("written"))
	e.load(f, shared, "shared", 195, 16)
	e.munmap(f, private, "private")
	e.munmap(f, shared, "shared")
	want := tdFill('a', 2*tdPage)
	copy(want[100:], "SHARED")
	copy(want[tdPage+5:], "page2")
	copy(want[200:], "written")
	e.readAll(f, want)
	e.close(f)
}

// tdMmapWriteTimes checks whether stores through a shared mapping, once
// msync'ed, change mtime and ctime. They do on both when the store is the
// first touch of the page (tmpfs stamps the times at the write fault,
// tmpmount when the dirty page is written back). Not tested, because a
// FUSE daemon cannot follow it: on tmpfs, a store to a page that a read
// had already mapped changes neither time (tmpfs has no page_mkwrite, so
// the page was mapped writable at the read fault and the store does not
// fault), while tmpmount still stamps them at writeback.
func tdMmapWriteTimes(e *tdEnv) {
	e.atimeSkip = tdAtimeMmap
	f := e.create("f")
	e.pwrite(f, 0, tdFill('a', 2*tdPage))
	shared := e.mmap(f, 2*tdPage, unix.PROT_READ|unix.PROT_WRITE, unix.MAP_SHARED)
	e.step(tdFD(f), "store(shared mapping, off=100, \"SHARED\") and msync(MS_SYNC)", func() string {
		if shared == nil {
			return "no mapping"
		}
		copy(shared[100:], "SHARED")
		return tdOK(unix.Msync(shared, unix.MS_SYNC))
	})
	e.munmap(f, shared, "shared")
	e.pread(f, 95, 16)
	e.close(f)
}

// tdXattrFile exercises the xattr calls and their flags on a regular file,
// by path and by descriptor, and on a directory.
func tdXattrFile(e *tdEnv) {
	f := e.create("f")
	e.close(f)
	t := e.at("f") // by path
	e.setxattr(t, "user.a", []byte("alpha"), 0)
	e.getxattr(t, "user.a", 64)
	e.setxattr(t, "trusted.t", []byte("trust"), 0)
	e.setxattr(t, "security.s", []byte("sec"), 0)
	e.getxattr(t, "trusted.t", 64)
	e.getxattr(t, "security.s", 64)
	e.listxattr(t, 1024)
	e.listxattr(t, 0)
	e.listxattr(t, 10) // too small
	e.setxattr(t, "user.a", []byte("again"), unix.XATTR_CREATE)
	e.setxattr(t, "user.missing", []byte("v"), unix.XATTR_REPLACE)
	e.setxattr(t, "user.a", []byte("replaced"), unix.XATTR_REPLACE)
	e.setxattr(t, "user.new", []byte("created"), unix.XATTR_CREATE)
	e.setxattr(t, "user.a", []byte("x"), unix.XATTR_CREATE|unix.XATTR_REPLACE)
	e.getxattr(t, "user.a", 64)
	e.getxattr(t, "user.missing", 64)
	e.getxattr(t, "user.missing", 0)
	e.getxattr(t, "user.a", 0) // the size
	e.getxattr(t, "user.a", 3) // too small
	e.setxattr(t, "user.empty", nil, 0)
	e.getxattr(t, "user.empty", 0)
	e.getxattr(t, "user.empty", 16)
	e.setxattr(t, "user.a", []byte("short"), 0) // shrink
	e.getxattr(t, "user.a", 64)
	e.listxattr(t, 1024)
	e.removexattr(t, "user.a")
	e.removexattr(t, "user.a")
	e.removexattr(t, "trusted.t")
	e.removexattr(t, "security.s")
	e.getxattr(t, "user.a", 64)
	e.listxattr(t, 1024)

	// The same through a descriptor, on a file that rolls over between
	// the calls with --max-size 16k.
	g := e.create("g")
	tg := tdFD(g)
	e.setxattr(tg, "user.fd", []byte("by fd"), 0)
	e.pwrite(g, 0, tdFill('g', 20000))
	e.getxattr(tg, "user.fd", 64)
	e.listxattr(tg, 1024)
	e.removexattr(tg, "user.fd")
	e.close(g)

	// A directory takes user.* too.
	if err := unix.Mkdir(e.path("d"), 0o755); err != nil {
		e.expectf(false, "mkdir d: %v", err)
	}
	d := e.at("d")
	e.setxattr(d, "user.dir", []byte("on a dir"), 0)
	e.getxattr(d, "user.dir", 64)
	e.listxattr(d, 1024)
	e.removexattr(d, "user.dir")
}

// tdXattrLimits tries the size limits of values and names, and names
// outside the supported namespaces.
func tdXattrLimits(e *tdEnv) {
	f := e.create("f")
	e.close(f)
	t := e.at("f")
	big := tdPattern(65536, 'v')
	e.setxattr(t, "user.big", big, 0)
	e.getxattr(t, "user.big", 0)
	e.getxattr(t, "user.big", 65536)
	e.getxattr(t, "user.big", 65535)
	e.setxattr(t, "user.toobig", tdPattern(65537, 'v'), 0)
	e.getxattr(t, "user.toobig", 0)
	e.removexattr(t, "user.big")

	for _, prefix := range []string{"user.", "trusted.", "security."} {
		name255 := prefix + strings.Repeat("n", 255-len(prefix))
		name256 := prefix + strings.Repeat("n", 256-len(prefix))
		suffix255 := prefix + strings.Repeat("s", 255) // 255 bytes after the prefix
		e.setxattr(t, name255, []byte("long name"), 0)
		e.getxattr(t, name255, 64)
		e.listxattr(t, 1024)
		e.removexattr(t, name255)
		e.setxattr(t, name256, []byte("too long"), 0)
		e.getxattr(t, name256, 64)
		e.removexattr(t, name256)
		e.setxattr(t, suffix255, []byte("too long"), 0)
		e.getxattr(t, suffix255, 64)
	}
	for _, name := range []string{"foo.bar", "system.foo", "user", "userx.a", ""} {
		e.setxattr(t, name, []byte("v"), 0)
		e.getxattr(t, name, 64)
		e.removexattr(t, name)
	}
	e.listxattr(t, 1024)
}

// tdXattrPrefixOnly uses names that are a namespace prefix and nothing
// more.
func tdXattrPrefixOnly(e *tdEnv) {
	f := e.create("f")
	e.close(f)
	t := e.at("f")
	for _, name := range []string{"user.", "trusted.", "security."} {
		e.setxattr(t, name, []byte("no name"), 0)
		e.getxattr(t, name, 64)
		e.removexattr(t, name)
	}
	e.listxattr(t, 1024)
}

// tdXattrSpecial uses xattrs on a symlink and a FIFO, where user.* is not
// allowed (EPERM to set, ENODATA to get) and trusted.* is.
func tdXattrSpecial(e *tdEnv) {
	if err := unix.Symlink("target", e.path("link")); err != nil {
		e.expectf(false, "symlink: %v", err)
	}
	if err := unix.Mkfifo(e.path("fifo"), 0o644); err != nil {
		e.expectf(false, "mkfifo: %v", err)
	}
	l := e.atLink("link")
	e.setxattr(l, "user.x", []byte("v"), 0)
	e.getxattr(l, "user.x", 64)
	e.removexattr(l, "user.x")
	e.setxattr(l, "trusted.x", []byte("on a link"), 0)
	e.getxattr(l, "trusted.x", 64)
	e.listxattr(l, 1024)
	e.removexattr(l, "trusted.x")

	p := e.at("fifo")
	e.setxattr(p, "user.x", []byte("v"), 0)
	e.getxattr(p, "user.x", 64)
	e.removexattr(p, "user.x")
	e.setxattr(p, "trusted.x", []byte("on a fifo"), 0)
	e.getxattr(p, "trusted.x", 64)
	e.listxattr(p, 1024)
	e.removexattr(p, "trusted.x")
}

// tdStatfs compares what statfs(2) must say on both: the block size and
// name length, and consistent block and inode counts.
func tdStatfs(e *tdEnv) {
	var st unix.Statfs_t
	err := unix.Statfs(e.dir, &st)
	if err != nil {
		e.note("statfs: " + tdErr(err))
		return
	}
	e.note(fmt.Sprintf("statfs: bsize=%d frsize=%d namelen=%d", st.Bsize, st.Frsize, st.Namelen))
	e.note(fmt.Sprintf("statfs: blocks>0=%t bfree<=blocks=%t bavail<=bfree=%t files>0=%t ffree<=files=%t",
		st.Blocks > 0, st.Bfree <= st.Blocks, st.Bavail <= st.Bfree, st.Files > 0, st.Ffree <= st.Files))
	e.expectf(st.Bsize == 4096 && st.Namelen == 255 && st.Blocks > 0 && st.Bfree <= st.Blocks,
		"statfs = %+v, want f_bsize 4096, f_namelen 255, f_blocks > 0, f_bfree <= f_blocks", st)
	var fst unix.Statfs_t
	f := e.create("f")
	if err := unix.Fstatfs(f, &fst); err != nil {
		e.note("fstatfs: " + tdErr(err))
	} else {
		e.note(fmt.Sprintf("fstatfs: bsize=%d namelen=%d", fst.Bsize, fst.Namelen))
	}
	e.close(f)
}

// tdAtimeDaemonReads checks tmpmount's atime rule: relatime, applied to
// the reads that reach the daemon. Dropping the file's cached pages
// (POSIX_FADV_DONTNEED) makes the next read one of those; a read served
// from the page cache leaves atime alone.
func tdAtimeDaemonReads(e *tdEnv) {
	atime := func(what string) unix.Timespec {
		e.t.Helper()
		var st unix.Stat_t
		if err := unix.Stat(e.path("f"), &st); err != nil {
			e.expectf(false, "stat f %s: %v", what, err)
		}
		return st.Atim
	}
	uncachedRead := func(fd int) {
		e.t.Helper()
		tdNextTick()
		if err := unix.Fadvise(fd, 0, 0, unix.FADV_DONTNEED); err != nil {
			e.expectf(false, "fadvise DONTNEED: %v", err)
		}
		e.pread(fd, 0, 10)
	}
	f := e.create("f")
	e.pwrite(f, 0, tdFill('a', 2*tdPage))
	a0 := atime("after writing")
	tdNextTick()
	e.pread(f, 0, 10)
	e.expectf(atime("after a cached read") == a0, "a read served from the page cache changed atime")
	uncachedRead(f)
	a1 := atime("after a read the daemon served")
	e.expectf(a1 != a0, "atime did not change at the first read after a write that reached the daemon")
	uncachedRead(f)
	e.expectf(atime("after a second uncached read") == a1, "atime changed at a second read; relatime keeps it")
	e.step(tdFD(f), "fchmod(f, 0600)", func() string { return tdOK(unix.Fchmod(f, 0o600)) })
	uncachedRead(f)
	a2 := atime("after chmod and an uncached read")
	e.expectf(a2 != a1, "atime did not change at a read after a ctime change")
	e.pwrite(f, 0, []byte("b"))
	uncachedRead(f)
	e.expectf(atime("after a write and an uncached read") != a2, "atime did not change at a read after a write")
	e.close(f)
}

// tdResidencyXattr checks user.tmpmount.residency: "memory" up to exactly
// --max-size bytes, "disk" from one byte more, by write and by truncate;
// it is read-only and not listed.
func tdResidencyXattr(e *tdEnv) {
	maxSize := e.maxSize
	get := func(tg tdTarget, what string) string {
		e.t.Helper()
		res, err := e.residency(tg)
		e.note(fmt.Sprintf("residency %s: %q %v", what, res, err))
		if err != nil {
			e.expectf(false, "getxattr %s of %s: %v", tdResidency, what, err)
		}
		return res
	}
	want := func(tg tdTarget, what, wantRes string) {
		e.t.Helper()
		if got := get(tg, what); got != wantRes {
			e.expectf(false, "%s of %s (--max-size %d) = %q, want %q", tdResidency, what, maxSize, got, wantRes)
		}
	}

	// By pwrite: one byte at max-size-1 leaves the file at max-size.
	w := e.create("by-pwrite")
	want(tdFD(w), "an empty file", "memory")
	e.pwrite(w, 0, []byte("small"))
	want(tdFD(w), "a 5-byte file", "memory")
	e.pwrite(w, maxSize-1, []byte("x"))
	want(tdFD(w), "a file of --max-size bytes (pwrite)", "memory")
	e.pwrite(w, maxSize, []byte("y"))
	want(tdFD(w), "a file of --max-size+1 bytes (pwrite)", "disk")
	e.readAll(w, nil)
	got := e.pread(w, maxSize-1, 4)
	e.expectf(string(got) == "xy", "after rolling over, the last 2 bytes read %q, want \"xy\"", got)
	e.close(w)

	// By write(2) of the whole file, then one more byte.
	s := e.create("by-write")
	data := tdPattern(int(maxSize), 'w')
	e.write(s, data)
	want(tdFD(s), "a file of --max-size bytes (write)", "memory")
	e.write(s, []byte("+"))
	want(tdFD(s), "a file of --max-size+1 bytes (write)", "disk")
	e.readAll(s, append(data, '+'))
	e.close(s)

	// By ftruncate and truncate.
	tf := e.create("by-ftruncate")
	e.ftruncate(tf, maxSize)
	want(tdFD(tf), "a file truncated to --max-size", "memory")
	e.ftruncate(tf, maxSize+1)
	want(tdFD(tf), "a file truncated to --max-size+1", "disk")
	e.close(tf)
	tp := e.create("by-truncate")
	e.close(tp)
	e.truncate("by-truncate", maxSize)
	want(e.at("by-truncate"), "a file truncated by path to --max-size", "memory")
	e.truncate("by-truncate", maxSize+1)
	want(e.at("by-truncate"), "a file truncated by path to --max-size+1", "disk")

	// By fallocate growing the size.
	fa := e.create("by-fallocate")
	e.fallocate(fa, 0, 0, maxSize)
	want(tdFD(fa), "a file fallocated to --max-size", "memory")
	e.fallocate(fa, 0, 0, maxSize+1)
	want(tdFD(fa), "a file fallocated to --max-size+1", "disk")
	e.close(fa)

	// Read-only, not listed, sized like any xattr.
	for _, name := range []string{"by-pwrite", "by-truncate"} {
		tg := e.at(name)
		e.setxattr(tg, "user.other", []byte("v"), 0)
		names := e.listxattr(tg, 1024)
		e.expectf(slices.Equal(names, []string{"user.other"}),
			"listxattr(%s) = %q, want only [user.other] (the residency xattr is not listed)", name, names)
		for _, flags := range []int{0, unix.XATTR_CREATE, unix.XATTR_REPLACE} {
			err := unix.Setxattr(e.path(name), tdResidency, []byte("memory"), flags)
			e.note(fmt.Sprintf("setxattr(%s, %s, flags=%s): %s", name, tdResidency, tdXattrFlags(flags), tdOK(err)))
			e.expectf(err == unix.EPERM, "setxattr(%s, %s, flags=%s) = %v, want EPERM", name, tdResidency, tdXattrFlags(flags), err)
		}
		err := unix.Removexattr(e.path(name), tdResidency)
		e.note(fmt.Sprintf("removexattr(%s, %s): %s", name, tdResidency, tdOK(err)))
		e.expectf(err == unix.EPERM, "removexattr(%s, %s) = %v, want EPERM", name, tdResidency, err)
		n, err := unix.Getxattr(e.path(name), tdResidency, nil)
		e.note(fmt.Sprintf("getxattr(%s, %s, size=0): n=%d %s", name, tdResidency, n, tdOK(err)))
		e.expectf(err == nil && n == len("disk"), "getxattr(%s, %s, size=0) = %d, %v; want 4 (len \"disk\")", name, tdResidency, n, err)
		buf := make([]byte, 3)
		_, err = unix.Getxattr(e.path(name), tdResidency, buf)
		e.expectf(err == unix.ERANGE, "getxattr(%s, %s) with a 3-byte buffer: %v, want ERANGE", name, tdResidency, err)
		want(tg, name+" after the xattr calls", "disk")
	}
	small := e.create("small")
	e.close(small)
	n, err := unix.Getxattr(e.path("small"), tdResidency, nil)
	e.expectf(err == nil && n == len("memory"), "getxattr(small, %s, size=0) = %d, %v; want 6 (len \"memory\")", tdResidency, n, err)
	names := e.listxattr(e.at("small"), 1024)
	e.expectf(len(names) == 0, "listxattr of a file without xattrs = %q, want none", names)
	n, err = unix.Listxattr(e.path("small"), nil)
	e.expectf(err == nil && n == 0, "listxattr(small, size=0) = %d, %v; want 0", n, err)
}

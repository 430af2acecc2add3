package main

// The big-* workloads: one large file (-big-size) that has rolled over to
// the spill disk on tmpmount, used the ways an application uses one:
// 1 MiB read(2)/write(2) in order, 4 KiB pread(2)/pwrite(2) at random
// offsets, and a shared mapping. As root on Linux 6.9+, tmpmount serves
// the opens of a rolled-over file by FUSE passthrough (the kernel reads,
// writes and maps the backing file itself) once no daemon-served handle
// is left; with --no-passthrough the daemon serves them. The issue asks
// for at least bigGoal of the spill filesystem (the disk target: spill
// dirs are made under -disk-dir) for sequential and mmap I/O.

import (
	"bytes"
	"encoding/binary"
	"fmt"
	"math/rand/v2"
	"os"
	"path/filepath"
	"runtime/debug"
	"time"

	"golang.org/x/sys/unix"
)

const (
	bigName   = "big"
	bigChunk  = 4096  // bytes of each random operation, at multiples of it
	bigFileNo = 0xb16 // the file number stamped into the big file's MiBs
	bigSeed   = 0x746d706d6f756e74
	bigGoal   = 0.9 // least ratio to the disk target the issue asks for

	// Defaults of -big-ops and -big-time: see the report for the choice.
	defaultBigOps  = 50000
	defaultBigTime = 10 * time.Second
)

// bigFile is what the big file should hold: big-seq-write's pattern, with
// the 4 KiB chunks that random writes replaced. It belongs to one target
// instance (workCtx), so every run starts afresh.
type bigFile struct {
	path    string
	size    int64
	pat     *pattern
	written map[int64]uint64 // chunk number → tag of its last write
	lastTag uint64           // tags are 1, 2, 3... in write order
}

// bigFile returns the file big-seq-write made in this instance.
func (w *workCtx) bigFile() (*bigFile, error) {
	if w.big == nil {
		return nil, fmt.Errorf("no big file: big-seq-write did not run on this target")
	}
	return w.big, nil
}

func (b *bigFile) chunks() int64 { return b.size / bigChunk }

// fillWritten puts in dst (bigChunk bytes) what a random write with tag
// writes to chunk c: the pattern from the other half of its MiB, so that
// nearly every byte differs from what big-seq-write put there, stamped
// with the tag and the chunk number, so that every write differs from
// the previous one and a chunk in the wrong place is caught.
func (b *bigFile) fillWritten(dst []byte, c int64, tag uint64) {
	in := (c*bigChunk + mib/2) % mib
	copy(dst, b.pat.data[in:in+bigChunk])
	binary.LittleEndian.PutUint64(dst[0:], tag)
	binary.LittleEndian.PutUint64(dst[8:], uint64(c))
}

// expect puts in dst (bigChunk bytes) what chunk c should hold.
func (b *bigFile) expect(dst []byte, c int64) {
	if tag, ok := b.written[c]; ok {
		b.fillWritten(dst, c, tag)
		return
	}
	off := c * bigChunk
	in := off % mib
	copy(dst, b.pat.data[in:in+bigChunk])
	if in == 0 {
		stamp(dst, bigFileNo, off/mib)
	}
}

// check compares got, read at offset off (a multiple of bigChunk), with
// what the file should hold there; scratch holds at least bigChunk bytes.
func (b *bigFile) check(got, scratch []byte, off int64) error {
	want := scratch[:bigChunk]
	for i := 0; i < len(got); i += bigChunk {
		g := got[i:min(i+bigChunk, len(got))]
		c := (off + int64(i)) / bigChunk
		b.expect(want, c)
		if bytes.Equal(g, want[:len(g)]) {
			continue
		}
		j := 0
		for g[j] == want[j] {
			j++
		}
		what := "as big-seq-write wrote it"
		if tag, ok := b.written[c]; ok {
			what = fmt.Sprintf("as random write #%d left it", tag)
		}
		return fmt.Errorf("data read back differs at offset %d (4 KiB chunk %d, %s): got %#02x, want %#02x", off+int64(i+j), c, what, g[j], want[j])
	}
	return nil
}

// bigOp is one random operation: read or write a chunk.
type bigOp struct {
	chunk int64
	write bool
}

// Kinds of random operation lists.
const (
	opsRead  = iota // all reads
	opsWrite        // all writes
	opsMixed        // each a read or a write, half and half
)

// bigOps draws -big-ops operations of a kind from the fixed seed (salted
// with the kind): every target and run does the same ones.
func bigOps(w *workCtx, b *bigFile, kind int) []bigOp {
	rng := rand.New(rand.NewPCG(bigSeed, uint64(kind)))
	ops := make([]bigOp, w.cfg.bigOps)
	for i := range ops {
		ops[i].chunk = rng.Int64N(b.chunks())
		switch kind {
		case opsWrite:
			ops[i].write = true
		case opsMixed:
			ops[i].write = rng.IntN(2) == 1
		}
	}
	return ops
}

// stopAt says whether a random workload stops before operation i: when
// the time budget is spent (-big-time) or the run is interrupted. It
// looks at the clock every 64 operations.
func stopAt(w *workCtx, i int, start time.Time) (bool, error) {
	if i%64 != 0 {
		return false, nil
	}
	if err := checkInterrupted(); err != nil {
		return true, err
	}
	return time.Since(start) > w.cfg.bigTime, nil
}

// bigSeqWrite creates the big file with 1 MiB write(2)s. On tmpmount the
// file is in RAM when created and rolls over to the spill disk past
// --max-size, on the same (daemon-served) handle.
func bigSeqWrite(w *workCtx, dir string) (measure, error) {
	path := filepath.Join(dir, bigName)
	w.big = &bigFile{path: path, size: w.cfg.bigSize, pat: w.pat, written: map[int64]uint64{}}
	return writeSequential(w, path, w.cfg.bigSize, bigFileNo)
}

// bigSeqRead reads the big file with 1 MiB read(2)s on a fresh open,
// caches dropped: on tmpmount with passthrough on, the kernel reads the
// backing file itself.
func bigSeqRead(w *workCtx, dir string) (measure, error) {
	b, err := w.bigFile()
	if err != nil {
		return measure{}, err
	}
	scratch := make([]byte, bigChunk)
	return readSequential(w, b.path, b.size, func(got []byte, off int64) error {
		return b.check(got, scratch, off)
	})
}

// bigRandRead does 4 KiB pread(2)s at random offsets.
func bigRandRead(w *workCtx, dir string) (measure, error) {
	b, err := w.bigFile()
	if err != nil {
		return measure{}, err
	}
	ops := bigOps(w, b, opsRead)
	buf, scratch := make([]byte, bigChunk), make([]byte, bigChunk)
	fd, err := unix.Open(b.path, unix.O_RDONLY|unix.O_CLOEXEC, 0)
	if err != nil {
		return measure{}, fmt.Errorf("open %s: %w", b.path, err)
	}
	start := time.Now()
	done := 0
	for ; done < len(ops); done++ {
		if stop, err := stopAt(w, done, start); stop {
			if err != nil {
				unix.Close(fd)
				return measure{}, err
			}
			break
		}
		off := ops[done].chunk * bigChunk
		n, err := pread(fd, buf, off)
		if err != nil || n != bigChunk {
			unix.Close(fd)
			return measure{}, fmt.Errorf("pread %s at %d: got %d bytes of %d: %v", b.path, off, n, bigChunk, err)
		}
		if w.cfg.verify {
			if err := b.check(buf, scratch, off); err != nil {
				unix.Close(fd)
				return measure{}, fmt.Errorf("%s: %w", b.path, err)
			}
		}
	}
	m := measure{Elapsed: time.Since(start), Ops: int64(done)}
	if err := unix.Close(fd); err != nil {
		return m, fmt.Errorf("close %s: %w", b.path, err)
	}
	m.Residency, err = w.residency(b.path)
	return m, err
}

// bigRandWrite does 4 KiB pwrite(2)s at random offsets; with -verify it
// then reads every chunk it wrote back on a fresh open.
func bigRandWrite(w *workCtx, dir string) (measure, error) {
	b, err := w.bigFile()
	if err != nil {
		return measure{}, err
	}
	ops := bigOps(w, b, opsWrite)
	buf := make([]byte, bigChunk)
	fd, err := unix.Open(b.path, unix.O_WRONLY|unix.O_CLOEXEC, 0)
	if err != nil {
		return measure{}, fmt.Errorf("open %s: %w", b.path, err)
	}
	start := time.Now()
	done := 0
	for ; done < len(ops); done++ {
		if stop, err := stopAt(w, done, start); stop {
			if err != nil {
				unix.Close(fd)
				return measure{}, err
			}
			break
		}
		c := ops[done].chunk
		b.fillWritten(buf, c, b.lastTag+uint64(done)+1)
		n, err := pwrite(fd, buf, c*bigChunk)
		if err != nil || n != bigChunk {
			unix.Close(fd)
			return measure{}, fmt.Errorf("pwrite %s at %d: wrote %d bytes of %d: %v", b.path, c*bigChunk, n, bigChunk, err)
		}
	}
	m := measure{Elapsed: time.Since(start), Ops: int64(done)}
	if err := unix.Close(fd); err != nil {
		return m, fmt.Errorf("close %s: %w", b.path, err)
	}
	b.record(ops[:done])
	if w.cfg.verify {
		if err := b.readBackChunks(ops[:done]); err != nil {
			return m, err
		}
	}
	m.Residency, err = w.residency(b.path)
	return m, err
}

// record notes the writes among ops, done in order: operation i (read or
// write) had tag lastTag+i+1.
func (b *bigFile) record(ops []bigOp) {
	for i, op := range ops {
		if op.write {
			b.written[op.chunk] = b.lastTag + uint64(i) + 1
		}
	}
	b.lastTag += uint64(len(ops))
}

// readBackChunks reads the chunks of ops back with pread(2) on a fresh
// open and checks them.
func (b *bigFile) readBackChunks(ops []bigOp) error {
	fd, err := unix.Open(b.path, unix.O_RDONLY|unix.O_CLOEXEC, 0)
	if err != nil {
		return fmt.Errorf("open %s to check the writes: %w", b.path, err)
	}
	defer unix.Close(fd)
	buf, scratch := make([]byte, bigChunk), make([]byte, bigChunk)
	for _, op := range ops {
		if !op.write {
			continue
		}
		off := op.chunk * bigChunk
		n, err := pread(fd, buf, off)
		if err != nil || n != bigChunk {
			return fmt.Errorf("pread %s at %d to check the writes: got %d bytes of %d: %v", b.path, off, n, bigChunk, err)
		}
		if err := b.check(buf, scratch, off); err != nil {
			return fmt.Errorf("%s after the writes: %w", b.path, err)
		}
	}
	return nil
}

// bigSink keeps the loads of big-mmap-seq-read from being optimised away.
var bigSink byte

// bigMmapSeqRead maps the whole file shared and read-only and loads one
// byte of every page in order (with -verify, compares every byte).
func bigMmapSeqRead(w *workCtx, dir string) (measure, error) {
	b, err := w.bigFile()
	if err != nil {
		return measure{}, err
	}
	fd, err := unix.Open(b.path, unix.O_RDONLY|unix.O_CLOEXEC, 0)
	if err != nil {
		return measure{}, fmt.Errorf("open %s: %w", b.path, err)
	}
	page := os.Getpagesize()
	scratch := make([]byte, bigChunk)
	var mem []byte
	start := time.Now()
	err = faultSafe(func() error {
		var err error
		if mem, err = unix.Mmap(fd, 0, int(b.size), unix.PROT_READ, unix.MAP_SHARED); err != nil {
			return fmt.Errorf("mmap %s: %w", b.path, err)
		}
		if w.cfg.verify {
			for off := 0; off < len(mem); off += mib {
				if err := checkInterrupted(); err != nil {
					return err
				}
				if err := b.check(mem[off:min(off+mib, len(mem))], scratch, int64(off)); err != nil {
					return fmt.Errorf("%s through the mapping: %w", b.path, err)
				}
			}
			return nil
		}
		var sum byte
		for off := 0; off < len(mem); off += page {
			if off%(1024*page) == 0 {
				if err := checkInterrupted(); err != nil {
					return err
				}
			}
			sum += mem[off]
		}
		bigSink = sum
		return nil
	})
	m := measure{Elapsed: time.Since(start), Bytes: b.size}
	if err := unmapAndClose(b.path, mem, fd, err); err != nil {
		return m, err
	}
	m.Residency, err = w.residency(b.path)
	return m, err
}

// unmapAndClose unmaps mem (if mapped) and closes fd, and returns the
// first of err and their errors.
func unmapAndClose(path string, mem []byte, fd int, err error) error {
	if mem != nil {
		if uerr := unix.Munmap(mem); uerr != nil && err == nil {
			err = fmt.Errorf("munmap %s: %w", path, uerr)
		}
	}
	if cerr := unix.Close(fd); cerr != nil && err == nil {
		err = fmt.Errorf("close %s: %w", path, cerr)
	}
	return err
}

// bigMmapRandRW maps the whole file shared and read-write, copies 4 KiB
// out of or into random chunks, and msyncs; with -verify it checks the
// reads as it goes and then the whole file with read(2) on a fresh open.
// It removes the file: no later workload uses it.
func bigMmapRandRW(w *workCtx, dir string) (measure, error) {
	b, err := w.bigFile()
	if err != nil {
		return measure{}, err
	}
	ops := bigOps(w, b, opsMixed)
	fd, err := unix.Open(b.path, unix.O_RDWR|unix.O_CLOEXEC, 0)
	if err != nil {
		return measure{}, fmt.Errorf("open %s: %w", b.path, err)
	}
	buf, scratch := make([]byte, bigChunk), make([]byte, bigChunk)
	var mem []byte
	done := 0
	start := time.Now()
	err = faultSafe(func() error {
		var err error
		if mem, err = unix.Mmap(fd, 0, int(b.size), unix.PROT_READ|unix.PROT_WRITE, unix.MAP_SHARED); err != nil {
			return fmt.Errorf("mmap %s: %w", b.path, err)
		}
		for ; done < len(ops); done++ {
			if stop, err := stopAt(w, done, start); stop {
				if err != nil {
					return err
				}
				break
			}
			op := ops[done]
			off := op.chunk * bigChunk
			chunk := mem[off : off+bigChunk]
			if op.write {
				tag := b.lastTag + uint64(done) + 1
				b.fillWritten(chunk, op.chunk, tag)
				if w.cfg.verify {
					b.written[op.chunk] = tag // for the reads that follow
				}
				continue
			}
			copy(buf, chunk)
			if w.cfg.verify {
				if err := b.check(buf, scratch, off); err != nil {
					return fmt.Errorf("%s through the mapping: %w", b.path, err)
				}
			}
		}
		if err := unix.Msync(mem, unix.MS_SYNC); err != nil {
			return fmt.Errorf("msync %s: %w", b.path, err)
		}
		return nil
	})
	m := measure{Elapsed: time.Since(start), Ops: int64(done)}
	if err := unmapAndClose(b.path, mem, fd, err); err != nil {
		return m, err
	}
	b.record(ops[:done])
	if w.cfg.verify {
		// A fresh open: what the mapping wrote must be in the file.
		check := func(got []byte, off int64) error { return b.check(got, scratch, off) }
		if _, err := readSequential(w, b.path, b.size, check); err != nil {
			return m, fmt.Errorf("after the mapping's writes: %w", err)
		}
	}
	if m.Residency, err = w.residency(b.path); err != nil {
		return m, err
	}
	w.big = nil
	return m, os.Remove(b.path)
}

// faultSafe runs f, turning a fault on a mapping (SIGBUS: the file shrank
// under it, or the filesystem failed to page it in) into an error rather
// than a crash of the bench with mounts left behind.
func faultSafe(f func() error) (err error) {
	old := debug.SetPanicOnFault(true)
	defer func() {
		debug.SetPanicOnFault(old)
		if r := recover(); r != nil {
			fault, ok := r.(interface{ Addr() uintptr })
			if !ok {
				panic(r)
			}
			err = fmt.Errorf("memory fault at %#x in the mapping: %v", fault.Addr(), r)
		}
	}()
	return f()
}

func pread(fd int, p []byte, off int64) (int, error) {
	for {
		n, err := unix.Pread(fd, p, off)
		if err != unix.EINTR {
			return n, err
		}
	}
}

func pwrite(fd int, p []byte, off int64) (int, error) {
	for {
		n, err := unix.Pwrite(fd, p, off)
		if err != unix.EINTR {
			return n, err
		}
	}
}

package spool

import (
	"errors"
	"fmt"
	"sync/atomic"

	"golang.org/x/sys/unix"
)

// Copier remembers which ways of copying a backing file the filesystems
// involved have refused, so that each is tried once rather than at every
// copy. Its zero value tries everything. It is safe for concurrent use.
type Copier struct {
	noClone, noRange atomic.Bool
}

// copyChunk bounds one copy_file_range call, so that progress is heard
// during a large file and a call does not hold the kernel for long.
const copyChunk = 64 << 20

// CopyTo writes the file's data into dst, an empty regular file, at the
// same offsets and leaves holes as holes, then gives dst the file's size.
// copied hears of each run of bytes copied (the data, not the holes). The
// file's lock is held for reading throughout, so it neither rolls over nor
// is released meanwhile; the caller keeps writers away if it needs the
// copy to be of one moment.
//
// A file on disk is copied by the kernel, never through the daemon's
// memory: cloned (FICLONE) where dst is on the spill filesystem and it
// shares extents, else with copy_file_range for each run of data, else (dst
// on another filesystem) read and written. A file in RAM is written from
// its pages.
func (f *File) CopyTo(dst int, c *Copier, copied func(int64)) error {
	f.mu.RLock()
	defer f.mu.RUnlock()
	if f.released {
		return ErrReleased
	}
	if f.fd < 0 {
		return f.copyPagesOut(dst, copied)
	}
	var st unix.Stat_t
	if err := unix.Fstat(f.fd, &st); err != nil {
		return fmt.Errorf("spool: stat backing file: %w", err)
	}
	if !c.noClone.Load() {
		err := unix.IoctlFileClone(dst, f.fd)
		if err == nil {
			copied(min(st.Blocks*512, st.Size))
			return nil
		}
		if !refused(err) {
			return fmt.Errorf("spool: clone backing file: %w", err)
		}
		c.noClone.Store(true)
	}
	for off := int64(0); off < st.Size; {
		start, err := unix.Seek(f.fd, off, unix.SEEK_DATA)
		if errors.Is(err, unix.ENXIO) {
			break
		}
		if err != nil {
			return fmt.Errorf("spool: seek backing file: %w", err)
		}
		end, err := unix.Seek(f.fd, start, unix.SEEK_HOLE)
		if err != nil {
			return fmt.Errorf("spool: seek backing file: %w", err)
		}
		if err := c.copyRange(f.fd, dst, start, end, copied); err != nil {
			return err
		}
		off = end
	}
	if err := unix.Ftruncate(dst, st.Size); err != nil {
		return fmt.Errorf("spool: set size of copy: %w", err)
	}
	return nil
}

// copyRange copies the bytes [start, end) of src to the same offsets of
// dst: with copy_file_range while the kernel takes it, else read and
// written through a buffer.
func (c *Copier) copyRange(src, dst int, start, end int64, copied func(int64)) error {
	for pos := start; pos < end; {
		if !c.noRange.Load() {
			in, out := pos, pos
			n, err := unix.CopyFileRange(src, &in, dst, &out, int(min(end-pos, copyChunk)), 0)
			if err == nil && n > 0 {
				pos += int64(n)
				copied(int64(n))
				continue
			}
			if err == unix.EINTR {
				continue
			}
			if err != nil && !refused(err) {
				return fmt.Errorf("spool: copy backing file: %w", err)
			}
			if n == 0 && err == nil {
				return fmt.Errorf("spool: copy backing file: source ended at %d, before %d", pos, end)
			}
			c.noRange.Store(true)
		}
		buf := make([]byte, min(end-pos, 1<<20))
		for pos < end {
			n, err := preadFull(src, buf[:min(int64(len(buf)), end-pos)], pos)
			if err != nil {
				return err
			}
			if n == 0 {
				return fmt.Errorf("spool: copy backing file: source ended at %d, before %d", pos, end)
			}
			if _, err := pwriteFull(dst, buf[:n], pos); err != nil {
				return fmt.Errorf("spool: write copy: %w", err)
			}
			pos += int64(n)
			copied(int64(n))
		}
	}
	return nil
}

// refused reports an error that says a way of copying does not work
// between these files (another filesystem, or one without the feature),
// rather than that the copy failed.
func refused(err error) bool {
	return errors.Is(err, unix.EXDEV) || errors.Is(err, unix.EOPNOTSUPP) || errors.Is(err, unix.ENOTTY) ||
		errors.Is(err, unix.EINVAL) || errors.Is(err, unix.ENOSYS)
}

// copyPagesOut writes a RAM file's written pages to dst and sets its size.
// f.mu must be held.
func (f *File) copyPagesOut(dst int, copied func(int64)) error {
	var (
		run      [][]byte
		runStart int64
		runBytes int64
		err      error
	)
	flush := func() {
		if len(run) > 0 && err == nil {
			if err = pwritevFull(dst, run, runStart); err == nil {
				copied(runBytes)
			}
		}
		run, runBytes = run[:0], 0
	}
	f.pages.each(0, maxPageIndex, func(idx int64, pg *page, unwritten bool) bool {
		pos := idx * PageSize
		if pos >= f.size || unwritten {
			return true // reads as zeros: a hole in the copy
		}
		if len(run) == maxIovecs || (len(run) > 0 && runStart+int64(len(run))*PageSize != pos) {
			flush()
		}
		if len(run) == 0 {
			runStart = pos
		}
		b := pg[:min(PageSize, f.size-pos)]
		run = append(run, b)
		runBytes += int64(len(b))
		return err == nil
	})
	flush()
	if err != nil {
		return fmt.Errorf("spool: write copy: %w", err)
	}
	if err := unix.Ftruncate(dst, f.size); err != nil {
		return fmt.Errorf("spool: set size of copy: %w", err)
	}
	return nil
}

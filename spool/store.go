// Package spool keeps the data of tmpmount's files: in RAM, in fixed-size
// pages allocated on demand, until a file grows past the per-file threshold
// (or is asked to), and from then on in a backing file on disk that has no
// name, so that nothing is left behind however the daemon ends.
//
// spool knows nothing about FUSE: a File offers ReadAt, WriteAt, Truncate,
// Allocate and hole seeking in io terms, and a Store owns the private spill
// directory and the byte counters shared by all files.
package spool

import (
	"bytes"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"

	"golang.org/x/sys/unix"
)

// Config is what a Store needs to know.
type Config struct {
	// SpillParent is the directory inside which the Store makes its
	// private 0700 spill directory.
	SpillParent string

	// MaxSize is the per-file RAM threshold in bytes: a file whose size
	// (or allocated extent) exceeds it rolls over to disk. 0 means never
	// by size.
	MaxSize int64

	// MemLimit bounds the RAM pages of all files together (0: no bound).
	// Past it, files roll over to disk to make room (see budget.go).
	MemLimit int64

	// SizeLimit bounds RAM pages plus backing files' disk use plus
	// metadata (0: no bound), as tmpfs's size=; past it writes fail with
	// ENOSPC.
	SizeLimit int64

	// SpillReserve is how much of the spill filesystem (its space
	// available to unprivileged users) is kept free for everyone else
	// while there is no SizeLimit: what would eat into it fails with
	// ENOSPC. DefaultSpillReserve asks for spillReservePercent of the
	// spill filesystem's size; 0 keeps none.
	SpillReserve int64

	// NodeMemory, if set, returns the memory the caller's own records of
	// its files hold beyond the metadata it charges (ChargeMetadata): it
	// counts against the memory budget too. It is called often, with a
	// lock of the Store held, so it must be cheap and take no lock.
	NodeMemory func() int64

	// OnRollover, if set, is called after a file has rolled over, with the
	// id it was made with, the size it had when it moved (before the
	// write or truncate that made it move) and why it moved. It runs with
	// no lock of the file held, in the goroutine that caused the rollover.
	OnRollover func(id uint64, size int64, why Reason)

	// OnRolloverError, if set, is called when a rollover was tried and
	// failed (no room on the spill disk, the spill directory gone, an I/O
	// error), with the file's id and why; the file stays in RAM. It runs
	// as OnRollover does.
	OnRolloverError func(id uint64, err error)
}

// Store owns the private spill directory and the counters shared by every
// File it hands out. It is safe for concurrent use.
type Store struct {
	// The limits: fixed until SetLimits changes them.
	maxSize   atomic.Int64
	memLimit  atomic.Int64
	sizeLimit atomic.Int64

	reserve    int64 // of the spill filesystem, applied without a sizeLimit
	metaBound  int64 // bounds metadata when there is no memLimit
	nodeMem    func() int64
	onRollover func(id uint64, size int64, why Reason)

	onRolloverError func(id uint64, err error)

	// dir is the private spill directory; dirFd is held open so that
	// backing files are created relative to it and never through a path
	// someone could swap for a symlink.
	dir   string
	dirFd int

	// tmpfile records whether O_TMPFILE works in dir; when it does not,
	// backing files are created under a random name and unlinked at once.
	tmpfile bool

	pages pageAllocator // where files' RAM pages come from

	chargeMu  sync.Mutex // makes a limit check and its charge one step
	evictMu   sync.Mutex // one rollover to make room at a time
	filesMu   sync.Mutex // guards ramFiles and diskFiles
	ramFiles  map[*File]struct{}
	diskFiles map[*File]struct{}

	ramBytes    atomic.Int64 // bytes of pages held in RAM by all files, and reserved for writes
	diskBytes   atomic.Int64 // backing files' disk use, tracked only with a SizeLimit
	metaBytes   atomic.Int64 // metadata charged by ChargeMetadata
	onDiskCount atomic.Int64 // files currently rolled over
	rollovers   atomic.Int64 // rollovers since the Store was opened
}

// Reason is why a file rolled over to disk.
type Reason uint8

const (
	// BySize: a write, truncate or allocation took it past the threshold.
	BySize Reason = iota
	// ForMemory: the memory budget needed its RAM, or had too little for
	// the write being made to it.
	ForMemory
	// ByMapping: the caller saw it written through a shared mapping.
	ByMapping
	// OnRequest: the caller asked (Spill).
	OnRequest
)

func (r Reason) String() string {
	switch r {
	case BySize:
		return "size"
	case ForMemory:
		return "memory"
	case ByMapping:
		return "mmap"
	}
	return "request"
}

// Stats is a snapshot of a Store's counters.
type Stats struct {
	RAMBytes  int64 // bytes of pages held in RAM (and set aside for writes in progress)
	DiskBytes int64 // disk use of the backing files, counted only with a SizeLimit (see DiskUse)
	DiskFiles int64 // files currently backed by disk
	Rollovers int64 // rollovers so far
	MetaBytes int64 // metadata charged (ChargeMetadata)
}

// spillNamePrefix names backing files made under a name (where O_TMPFILE
// does not work) for the moment before they are unlinked.
const spillNamePrefix = ".spill-"

// dirPrefix names the private spill directories: "tmpmount-<pid>-<random>".
// The pid lets a later start remove directories left by a daemon that died.
const dirPrefix = "tmpmount-"

// Open makes a private spill directory inside cfg.SpillParent and returns a
// Store that creates its backing files there.
func Open(cfg Config) (*Store, error) {
	if cfg.MaxSize < 0 || cfg.MemLimit < 0 || cfg.SizeLimit < 0 {
		return nil, fmt.Errorf("spool: negative limit in %+v", cfg)
	}
	parent, err := filepath.Abs(cfg.SpillParent)
	if err != nil {
		return nil, fmt.Errorf("spill dir %q: %w", cfg.SpillParent, err)
	}
	st, err := os.Stat(parent)
	if err != nil {
		return nil, fmt.Errorf("spill dir: %w", err)
	}
	if !st.IsDir() {
		return nil, fmt.Errorf("spill dir %s: %w", parent, unix.ENOTDIR)
	}
	removeStaleDirs(parent)

	dir, fd, err := makeLockedDir(parent)
	if err != nil {
		return nil, err
	}
	s := &Store{
		metaBound: metadataBound(), nodeMem: cfg.NodeMemory,
		onRollover: cfg.OnRollover, onRolloverError: cfg.OnRolloverError, dir: dir, dirFd: fd,
		ramFiles: make(map[*File]struct{}), diskFiles: make(map[*File]struct{}),
	}
	s.maxSize.Store(cfg.MaxSize)
	s.memLimit.Store(cfg.MemLimit)
	s.sizeLimit.Store(cfg.SizeLimit)
	if err := s.probe(); err != nil {
		s.Close()
		return nil, err
	}
	if s.reserve, err = s.reserveFor(cfg.SpillReserve); err != nil {
		s.Close()
		return nil, err
	}
	return s, nil
}

// probe checks that backing files can be made and written in the spill
// directory now, so that an unusable directory is reported at start rather
// than at the first rollover.
func (s *Store) probe() error {
	fd, err := unix.Openat(s.dirFd, ".", unix.O_TMPFILE|unix.O_RDWR|unix.O_EXCL|unix.O_CLOEXEC, 0o600)
	if err == nil {
		s.tmpfile = true
	} else {
		fd, err = s.createNamed()
		if err != nil {
			return fmt.Errorf("spill dir %s: cannot create files there: %w", filepath.Dir(s.dir), err)
		}
	}
	defer unix.Close(fd)
	if _, err := unix.Pwrite(fd, make([]byte, PageSize), 0); err != nil {
		return fmt.Errorf("spill dir %s: cannot write there: %w", filepath.Dir(s.dir), err)
	}
	return nil
}

// createBacking returns a new, empty, nameless backing file opened for
// reading and writing.
func (s *Store) createBacking() (int, error) {
	if s.tmpfile {
		fd, err := unix.Openat(s.dirFd, ".", unix.O_TMPFILE|unix.O_RDWR|unix.O_EXCL|unix.O_CLOEXEC, 0o600)
		if err != nil {
			return -1, fmt.Errorf("spool: create backing file in %s: %w", s.dir, err)
		}
		return fd, nil
	}
	return s.createNamed()
}

// createNamed makes a backing file under a random name and unlinks it at
// once, for filesystems without O_TMPFILE. O_EXCL|O_NOFOLLOW refuse any
// name someone else prepared.
func (s *Store) createNamed() (int, error) {
	for range 16 {
		name := fmt.Sprintf("%s%x", spillNamePrefix, randomUint64())
		fd, err := unix.Openat(s.dirFd, name, unix.O_CREAT|unix.O_EXCL|unix.O_NOFOLLOW|unix.O_RDWR|unix.O_CLOEXEC, 0o600)
		if errors.Is(err, unix.EEXIST) {
			continue
		}
		if err != nil {
			return -1, fmt.Errorf("spool: create backing file in %s: %w", s.dir, err)
		}
		if err := unix.Unlinkat(s.dirFd, name, 0); err != nil {
			unix.Close(fd)
			return -1, fmt.Errorf("spool: unlink backing file in %s: %w", s.dir, err)
		}
		return fd, nil
	}
	return -1, fmt.Errorf("spool: create backing file in %s: %w", s.dir, unix.EEXIST)
}

// ProbeFd returns a new, empty, nameless file in the spill directory, for
// a caller to check what can be done with backing files (register them for
// FUSE passthrough, say). The caller closes it.
func (s *Store) ProbeFd() (int, error) { return s.createBacking() }

// Dir is the private spill directory.
func (s *Store) Dir() string { return s.dir }

// MaxSize is the per-file RAM threshold (0: never by size).
func (s *Store) MaxSize() int64 { return s.maxSize.Load() }

// Limits returns the memory budget and the capacity (0: none).
func (s *Store) Limits() (memLimit, sizeLimit int64) {
	return s.memLimit.Load(), s.sizeLimit.Load()
}

// Stats returns the Store's counters.
func (s *Store) Stats() Stats {
	return Stats{
		RAMBytes:  s.ramBytes.Load(),
		DiskBytes: s.diskBytes.Load(),
		DiskFiles: s.onDiskCount.Load(),
		Rollovers: s.rollovers.Load(),
		MetaBytes: s.metaBytes.Load(),
	}
}

// Statfs reports the filesystem that holds the spill directory.
func (s *Store) Statfs() (unix.Statfs_t, error) {
	var st unix.Statfs_t
	if err := unix.Fstatfs(s.dirFd, &st); err != nil {
		return st, fmt.Errorf("spool: statfs %s: %w", s.dir, err)
	}
	return st, nil
}

// Close removes the private spill directory. Backing files still open stay
// usable (they have no name), and the kernel frees them when they are closed.
// The memory of RAM pages is unmapped once no file holds any.
func (s *Store) Close() error {
	var errs []error
	if s.ramBytes.Load() == 0 {
		if err := s.pages.release(); err != nil {
			errs = append(errs, err)
		}
	}
	if s.dirFd >= 0 {
		if err := unix.Close(s.dirFd); err != nil {
			errs = append(errs, fmt.Errorf("spool: close spill dir: %w", err))
		}
		s.dirFd = -1
	}
	if err := os.Remove(s.dir); err != nil && !errors.Is(err, os.ErrNotExist) {
		errs = append(errs, fmt.Errorf("spool: remove spill dir: %w", err))
	}
	return errors.Join(errs...)
}

// makeLockedDir makes the private spill directory in parent and returns it
// open, with an exclusive flock on it held for as long as the descriptor is
// open: the daemon's life. The lock is how other tmpmounts tell that the
// directory is in use, whichever PID namespace they run in.
func makeLockedDir(parent string) (string, int, error) {
	for range 16 {
		// MkdirTemp creates the directory with mode 0700 under a random
		// name with O_EXCL semantics, so nobody can have prepared it for us.
		dir, err := os.MkdirTemp(parent, dirPrefix+strconv.Itoa(os.Getpid())+"-*")
		if err != nil {
			return "", -1, fmt.Errorf("spill dir %s: cannot make a private directory there: %w", parent, errors.Unwrap(err))
		}
		fd, err := unix.Open(dir, unix.O_DIRECTORY|unix.O_NOFOLLOW|unix.O_RDONLY|unix.O_CLOEXEC, 0)
		if err != nil {
			os.Remove(dir)
			return "", -1, fmt.Errorf("spill dir %s: open %s: %w", parent, dir, err)
		}
		if err := unix.Flock(fd, unix.LOCK_EX); err != nil {
			unix.Close(fd)
			os.Remove(dir)
			return "", -1, fmt.Errorf("spill dir %s: lock %s: %w", parent, dir, err)
		}
		// Another tmpmount's sweep may have judged the directory stale in
		// the moment before the lock was taken, and removed it.
		var held, named unix.Stat_t
		if unix.Fstat(fd, &held) == nil && unix.Lstat(dir, &named) == nil && held.Dev == named.Dev && held.Ino == named.Ino {
			return dir, fd, nil
		}
		unix.Close(fd)
	}
	return "", -1, fmt.Errorf("spill dir %s: the private directory made there kept disappearing", parent)
}

// removeStaleDirs removes the spill directories in parent that belong to
// daemons no longer running (killed with SIGKILL, say). A running daemon
// holds a lock on its directory; a directory nobody locks is stale, unless
// it was made by an older tmpmount (which took no lock) whose process still
// runs here. Backing files have no names, so a stale directory is empty but
// for a backing file that a daemon killed between creating and unlinking it
// left (on filesystems without O_TMPFILE); that goes too. A directory
// holding anything else is not ours to judge and stays.
func removeStaleDirs(parent string) {
	entries, err := os.ReadDir(parent)
	if err != nil {
		return
	}
	uid := uint32(os.Getuid())
	for _, e := range entries {
		name := e.Name()
		if !e.IsDir() || !strings.HasPrefix(name, dirPrefix) {
			continue
		}
		pidText, _, ok := strings.Cut(strings.TrimPrefix(name, dirPrefix), "-")
		pid, err := strconv.Atoi(pidText)
		if !ok || err != nil || pid <= 0 {
			continue
		}
		removeIfStale(filepath.Join(parent, name), pid, uid)
	}
}

// removeIfStale removes the spill directory path, made by process pid, if
// nobody holds its lock and it belongs to uid.
func removeIfStale(path string, pid int, uid uint32) {
	fd, err := unix.Open(path, unix.O_DIRECTORY|unix.O_NOFOLLOW|unix.O_RDONLY|unix.O_CLOEXEC, 0)
	if err != nil {
		return
	}
	defer unix.Close(fd)
	var st unix.Stat_t
	if unix.Fstat(fd, &st) != nil || st.Uid != uid {
		return
	}
	if unix.Flock(fd, unix.LOCK_EX|unix.LOCK_NB) != nil {
		return // its daemon runs, here or in another PID namespace
	}
	if processAlive(pid) {
		return // an older tmpmount, which took no lock, may still run
	}
	entries, _ := os.ReadDir(path)
	for _, e := range entries {
		if strings.HasPrefix(e.Name(), spillNamePrefix) {
			unix.Unlinkat(fd, e.Name(), 0) // relative to the locked directory
		}
	}
	unix.Rmdir(path) // fails, harmlessly, unless empty
}

// processAlive reports whether process pid runs in this PID namespace: it
// exists and is not a zombie (whose files, and locks, are already gone).
func processAlive(pid int) bool {
	if err := unix.Kill(pid, 0); err != nil && !errors.Is(err, unix.EPERM) {
		return false
	}
	stat, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return true // no /proc to tell: assume the worst
	}
	i := bytes.LastIndexByte(stat, ')')
	state := bytes.Fields(stat[i+1:])
	return i < 0 || len(state) == 0 || (string(state[0]) != "Z" && string(state[0]) != "X")
}

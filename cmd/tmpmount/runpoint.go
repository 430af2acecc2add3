package main

import (
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"log"
	"os"
	"path/filepath"
	"strings"

	"golang.org/x/sys/unix"
)

// runPointPrefix names the mount points of tmpmount run.
const runPointPrefix = "tmpmount-run-"

// defaultRunBase is where run makes its mount point when $XDG_RUNTIME_DIR
// cannot be trusted: sticky and root's, so that nobody else can rename or
// replace what we make in it.
const defaultRunBase = "/tmp"

// runBase picks the directory in which tmpmount run makes its mount point:
// $XDG_RUNTIME_DIR if the caller owns it, nobody else can write to it, and
// nobody but root and the caller can change the path to it (after `su`
// without `-`, root's XDG_RUNTIME_DIR can be a user's); else /tmp.
func runBase() (string, error) {
	uid := os.Geteuid()
	if xdg := os.Getenv("XDG_RUNTIME_DIR"); xdg != "" && filepath.IsAbs(xdg) {
		if real, err := filepath.EvalSymlinks(xdg); err == nil && checkRunBase(real, uid, true) == nil {
			return real, nil
		}
	}
	if err := checkRunBase(defaultRunBase, uid, false); err != nil {
		return "", fmt.Errorf("no safe place for the mount point: %v; set XDG_RUNTIME_DIR to a directory of yours that only you can write", err)
	}
	return defaultRunBase, nil
}

// checkRunBase says why dir (absolute, without symlinks) is not a safe
// place for uid's mount point: each directory on the way must belong to
// root or uid and be writable by no one else unless sticky; with own, dir
// itself must be uid's and writable by no one else.
func checkRunBase(dir string, uid int, own bool) error {
	for p := dir; ; p = filepath.Dir(p) {
		var st unix.Stat_t
		if err := unix.Lstat(p, &st); err != nil {
			return fmt.Errorf("%s: %v", p, err)
		}
		switch {
		case st.Mode&unix.S_IFMT != unix.S_IFDIR:
			return fmt.Errorf("%s is not a directory", p)
		case st.Uid != 0 && int(st.Uid) != uid:
			return fmt.Errorf("%s belongs to uid %d", p, st.Uid)
		case st.Mode&0o022 != 0 && st.Mode&unix.S_ISVTX == 0:
			return fmt.Errorf("%s is writable by others", p)
		case own && p == dir && (int(st.Uid) != uid || st.Mode&0o022 != 0):
			return fmt.Errorf("%s is not yours alone", p)
		}
		if p == "/" {
			return nil
		}
	}
}

// runPoint is the private directory tmpmount run mounts on. It is made
// and held through descriptors, so that nobody can swap it for a symlink
// between its making and the mount, and locked for the run's life, so
// that the sweep of another run can tell it is in use.
type runPoint struct {
	path   string // base/name
	name   string
	baseFd int // O_PATH descriptor of the base directory
	fd     int // the directory itself, flock'ed
}

// makeRunPoint makes a fresh 0700 directory in base and locks it.
func makeRunPoint(base string) (*runPoint, error) {
	baseFd, err := unix.Open(base, unix.O_PATH|unix.O_DIRECTORY|unix.O_NOFOLLOW|unix.O_CLOEXEC, 0)
	if err != nil {
		return nil, fmt.Errorf("make a mount point in %s: %v", base, err)
	}
	for range 16 {
		var random [6]byte
		rand.Read(random[:])
		name := runPointPrefix + hex.EncodeToString(random[:])
		if err := unix.Mkdirat(baseFd, name, 0o700); errors.Is(err, unix.EEXIST) {
			continue
		} else if err != nil {
			unix.Close(baseFd)
			return nil, fmt.Errorf("make a mount point in %s: %v", base, err)
		}
		fd, err := unix.Openat(baseFd, name, unix.O_RDONLY|unix.O_DIRECTORY|unix.O_NOFOLLOW|unix.O_CLOEXEC, 0)
		if err != nil {
			continue // removed or replaced at once: try another name
		}
		p := &runPoint{path: filepath.Join(base, name), name: name, baseFd: baseFd, fd: fd}
		if err := p.claim(); err != nil {
			unix.Close(fd)
			continue
		}
		return p, nil
	}
	unix.Close(baseFd)
	return nil, fmt.Errorf("make a mount point in %s: the directories made there kept disappearing", base)
}

// claim checks that the directory opened is the one made, private and
// still under its name (another run's sweep may have taken it for a dead
// run's before the lock), and locks it.
func (p *runPoint) claim() error {
	if err := unix.Fchmod(p.fd, 0o700); err != nil { // whatever the umask
		return err
	}
	if err := unix.Flock(p.fd, unix.LOCK_EX); err != nil {
		return err
	}
	var held, named unix.Stat_t
	if err := unix.Fstat(p.fd, &held); err != nil {
		return err
	}
	if err := unix.Fstatat(p.baseFd, p.name, &named, unix.AT_SYMLINK_NOFOLLOW); err != nil {
		return err
	}
	if held.Dev != named.Dev || held.Ino != named.Ino || int(held.Uid) != os.Geteuid() {
		return errors.New("not the directory made")
	}
	return nil
}

// remove removes the mount point (once nothing is mounted on it) and lets
// go of it.
func (p *runPoint) remove() error {
	err := unix.Unlinkat(p.baseFd, p.name, unix.AT_REMOVEDIR)
	if errors.Is(err, unix.ENOENT) {
		err = nil
	}
	unix.Close(p.fd)
	unix.Close(p.baseFd)
	if err != nil {
		return fmt.Errorf("remove the mount point %s: %v", p.path, err)
	}
	return nil
}

// sweepRunPoints removes what runs that died (SIGKILL, a crash; or an
// older tmpmount, which left its mount in this namespace) left in base:
// dead tmpmount mounts of this user on tmpmount-run-* directories, and
// such directories nobody holds locked. It says what it removed.
func sweepRunPoints(base string, logger *log.Logger) {
	entries, err := os.ReadDir(base)
	if err != nil {
		return
	}
	table, _ := mountTable("/proc/self/mountinfo")
	uid := os.Geteuid()
	for _, e := range entries {
		if !strings.HasPrefix(e.Name(), runPointPrefix) || !e.IsDir() {
			continue
		}
		path := filepath.Join(base, e.Name())
		if m, mounted := topMountAt(table, path); mounted {
			if m.fstype != "fuse.tmpmount" || m.fuseUserID() != uid || !isDeadMount(path) {
				continue // alive, or not ours
			}
			if err := recoverDeadMount(path); err != nil {
				logger.Print(err)
				continue
			}
			logger.Printf("unmounted %s, the dead mount of a tmpmount run that was killed", path)
		}
		if removeUnlockedRunPoint(path, uid) {
			logger.Printf("removed %s, the mount point of a tmpmount run that died", path)
		}
	}
}

// removeUnlockedRunPoint removes the directory path if it is uid's and no
// run holds its lock. It reports whether it did.
func removeUnlockedRunPoint(path string, uid int) bool {
	fd, err := unix.Open(path, unix.O_RDONLY|unix.O_DIRECTORY|unix.O_NOFOLLOW|unix.O_CLOEXEC, 0)
	if err != nil {
		return false
	}
	defer unix.Close(fd)
	var st unix.Stat_t
	if unix.Fstat(fd, &st) != nil || int(st.Uid) != uid {
		return false
	}
	if unix.Flock(fd, unix.LOCK_EX|unix.LOCK_NB) != nil {
		return false // a run uses it (its mount may be in a namespace of its own)
	}
	return unix.Rmdir(path) == nil // not if a straggler of an older run wrote into it
}

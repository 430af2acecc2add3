// Package keepdir writes files into a keep directory on a user's behalf.
// The directory is held open from the start and never looked up by path
// again; every path below it is resolved beneath it without following a
// symlink (openat2 RESOLVE_BENEATH|RESOLVE_NO_SYMLINKS), and, through
// RunAs, every operation runs with the rights of the user it is done for.
// A file appears under its final name only whole: it is written under no
// name (O_TMPFILE) or a hidden one, synced, then linked or renamed into
// place. It imports no FUSE.
package keepdir

import (
	"errors"
	"fmt"
	"math/rand/v2"
	"path"
	"strings"
	"unsafe"

	"golang.org/x/sys/unix"
)

// Dir is an open keep directory. Paths given to its methods are relative
// to it, with "/" between names.
type Dir struct {
	fd   int
	path string
}

// Open opens the keep directory at path, for the life of the mount.
func Open(path string) (*Dir, error) {
	fd, err := unix.Open(path, unix.O_DIRECTORY|unix.O_RDONLY|unix.O_CLOEXEC, 0)
	if err != nil {
		return nil, fmt.Errorf("open keep dir %s: %w", path, err)
	}
	return &Dir{fd: fd, path: path}, nil
}

// Path is the keep directory's path, for messages.
func (d *Dir) Path() string { return d.path }

// Close closes the directory.
func (d *Dir) Close() error { return unix.Close(d.fd) }

// BesideSuffix is added to a name whose place in the keep dir is taken by
// something the user may not replace.
const BesideSuffix = ".tmpmount-kept"

// tempPrefix starts the hidden names files are written under where
// O_TMPFILE does not work, and linked under when their own is too long.
const tempPrefix = ".tmpmount-"

// NewSuffix ends the hidden name ".NAME.tmpmount-new" that a new version
// of NAME is linked under, whole and synced, before it is renamed over the
// old one. A kill between the two steps leaves it there; the next save or
// removal of NAME takes it away.
const NewSuffix = ".tmpmount-new"

// newName is the hidden name a new version of name is linked under.
func newName(name string) string {
	if n := "." + name + NewSuffix; len(n) <= 255 {
		return n
	}
	return tempName()
}

var beneath = unix.OpenHow{
	Flags:   unix.O_DIRECTORY | unix.O_RDONLY | unix.O_CLOEXEC,
	Resolve: unix.RESOLVE_BENEATH | unix.RESOLVE_NO_SYMLINKS | unix.RESOLVE_NO_MAGICLINKS,
}

// DirSpec is how to make a missing directory: its mode, and (Chown) its
// owner.
type DirSpec struct {
	Mode     uint32
	Chown    bool
	UID, GID uint32
}

// OpenDir opens the directory rel ("" for the keep dir itself). With a
// spec, missing directories are made as spec says for each (its path
// relative to the keep dir) and made hears of each; without, a missing
// one is ENOENT. The caller closes the descriptor.
func (d *Dir) OpenDir(rel string, spec func(rel string) DirSpec, made func(rel string)) (int, error) {
	fd, err := unix.Openat2(d.fd, ".", &beneath)
	if err != nil {
		return -1, fmt.Errorf("open keep dir %s: %w", d.path, err)
	}
	if rel == "" {
		return fd, nil
	}
	walked := ""
	for _, name := range strings.Split(rel, "/") {
		walked = path.Join(walked, name)
		next, err := unix.Openat2(fd, name, &beneath)
		if errors.Is(err, unix.ENOENT) && spec != nil {
			next, err = makeDir(fd, name, spec(walked))
			if err == nil && made != nil {
				made(walked)
			}
		}
		unix.Close(fd)
		if err != nil {
			if errors.Is(err, unix.ELOOP) || errors.Is(err, unix.EXDEV) {
				return -1, fmt.Errorf("%q in keep dir is a symlink: refusing to follow it", walked)
			}
			return -1, fmt.Errorf("open %q in keep dir: %w", walked, err)
		}
		fd = next
	}
	return fd, nil
}

// makeDir makes name in parent as spec says and opens it. Someone else
// making it first is fine: it is opened as it is.
func makeDir(parent int, name string, spec DirSpec) (int, error) {
	err := unix.Mkdirat(parent, name, 0o700)
	if errors.Is(err, unix.EEXIST) {
		return unix.Openat2(parent, name, &beneath)
	}
	if err != nil {
		return -1, err
	}
	fd, err := unix.Openat2(parent, name, &beneath)
	if err != nil {
		return -1, err
	}
	// The mode the umask did not cut, and the owner asked for.
	if spec.Chown {
		unix.Fchown(fd, int(spec.UID), int(spec.GID))
	}
	unix.Fchmod(fd, spec.Mode&07777)
	return fd, nil
}

// SetDirMode gives the directory rel spec's mode, and owner if it says so.
func (d *Dir) SetDirMode(rel string, spec DirSpec) error {
	fd, err := d.OpenDir(rel, nil, nil)
	if err != nil {
		return err
	}
	defer unix.Close(fd)
	if spec.Chown {
		if err := unix.Fchown(fd, int(spec.UID), int(spec.GID)); err != nil {
			return fmt.Errorf("chown: %w", err)
		}
	}
	if err := unix.Fchmod(fd, spec.Mode&07777); err != nil {
		return fmt.Errorf("chmod: %w", err)
	}
	return nil
}

// RemoveDir removes the directory rel if it is empty, and reports whether
// it did.
func (d *Dir) RemoveDir(rel string) bool {
	dir, base := path.Split(rel)
	parent, err := d.OpenDir(strings.TrimSuffix(dir, "/"), nil, nil)
	if err != nil {
		return false
	}
	defer unix.Close(parent)
	if unix.Unlinkat(parent, base, unix.AT_REMOVEDIR) != nil {
		return false
	}
	unix.Fsync(parent)
	return true
}

// FileID names a file for as long as it exists: device and inode number.
type FileID struct{ Dev, Ino uint64 }

// IsZero reports the ID of no file.
func (id FileID) IsZero() bool { return id == FileID{} }

// Identify returns the ID of the file open as fd.
func Identify(fd int) (FileID, error) {
	var st unix.Stat_t
	if err := unix.Fstat(fd, &st); err != nil {
		return FileID{}, err
	}
	return FileID{Dev: st.Dev, Ino: st.Ino}, nil
}

// Temp is a new file being written in a directory of the keep dir, with
// no name (O_TMPFILE) where the filesystem allows, else under a hidden
// one, until Place gives it its names.
type Temp struct {
	fd     int
	parent int    // a descriptor of its directory, for the hidden name
	name   string // the hidden name; "" with O_TMPFILE
}

// NewTemp makes a file in the directory open as parent.
func NewTemp(parent int) (*Temp, error) {
	fd, err := unix.Openat(parent, ".", unix.O_TMPFILE|unix.O_RDWR|unix.O_CLOEXEC, 0o600)
	if err == nil {
		return &Temp{fd: fd, parent: -1}, nil
	}
	if !errors.Is(err, unix.EOPNOTSUPP) && !errors.Is(err, unix.EISDIR) && !errors.Is(err, unix.EINVAL) {
		return nil, fmt.Errorf("create in keep dir: %w", err)
	}
	name := tempName()
	fd, err = unix.Openat(parent, name, unix.O_CREAT|unix.O_EXCL|unix.O_NOFOLLOW|unix.O_RDWR|unix.O_CLOEXEC, 0o600)
	if err != nil {
		return nil, fmt.Errorf("create in keep dir: %w", err)
	}
	dup, err := unix.Dup(parent)
	if err != nil {
		unix.Unlinkat(parent, name, 0)
		unix.Close(fd)
		return nil, err
	}
	return &Temp{fd: fd, parent: dup, name: name}, nil
}

// Fd is the file's descriptor, open for reading and writing.
func (t *Temp) Fd() int { return t.fd }

// Close closes the file; one written under a hidden name loses that name
// (its real names, if Place gave it any, stay).
func (t *Temp) Close() {
	if t.name != "" {
		unix.Unlinkat(t.parent, t.name, 0)
		unix.Close(t.parent)
	}
	unix.Close(t.fd)
}

// syncfsFrom is how many files of one filesystem SyncAll syncs with one
// syncfs(2) rather than one fsync(2) each: on ext4 every fsync of a file
// just written is a journal commit of its own, and a burst of small keep
// files would wait for hundreds of them.
const syncfsFrom = 4

// SyncAll makes the files and directories open as fds durable: those on
// a filesystem holding syncfsFrom or more of them with one syncfs(2), the
// others with fsync(2). It returns the descriptors that failed and why.
func SyncAll(fds []int) map[int]error {
	byDev := map[uint64][]int{}
	for _, fd := range fds {
		var st unix.Stat_t
		if unix.Fstat(fd, &st) != nil {
			st.Dev = ^uint64(0) // unknown: fsync alone
		}
		byDev[st.Dev] = append(byDev[st.Dev], fd)
	}
	failed := map[int]error{}
	for dev, group := range byDev {
		if len(group) >= syncfsFrom && dev != ^uint64(0) {
			if err := unix.Syncfs(group[0]); err == nil {
				continue
			}
		}
		for _, fd := range group {
			if err := unix.Fsync(fd); err != nil {
				failed[fd] = fmt.Errorf("sync: %w", err)
			}
		}
	}
	return failed
}

// Attrs are the attributes a saved file gets.
type Attrs struct {
	UID, GID     uint32
	Mode         uint32 // permission bits, set-ID and sticky bits
	Atime, Mtime unix.Timespec
	Xattrs       map[string][]byte
}

// Apply gives the file a's attributes, as far as the identity in force may
// (a user can give the group only to one they are in, a set-group-ID bit
// only with that group, user.* xattrs only): what it could not give is
// returned as notes, not as an error, and the save goes on, as cp -a goes
// on when it cannot keep an owner. Owner first, since a chown clears
// set-ID bits, times last, since the others change ctime only.
func (t *Temp) Apply(a Attrs) (notes []string, err error) {
	var st unix.Stat_t
	if err := unix.Fstat(t.fd, &st); err != nil {
		return nil, fmt.Errorf("stat: %w", err)
	}
	if st.Uid != a.UID || st.Gid != a.GID {
		if err := unix.Fchown(t.fd, int(a.UID), int(a.GID)); err != nil {
			// Not root: keep the owner, and try the group alone.
			if err := unix.Fchown(t.fd, -1, int(a.GID)); err != nil && st.Gid != a.GID {
				notes = append(notes, fmt.Sprintf("group %d not kept (%v)", a.GID, err))
			}
			if st.Uid != a.UID {
				notes = append(notes, fmt.Sprintf("owner %d not kept (the daemon is not root)", a.UID))
			}
		}
	}
	if err := unix.Fchmod(t.fd, a.Mode&07777); err != nil {
		return notes, fmt.Errorf("chmod: %w", err)
	}
	if err := unix.Fstat(t.fd, &st); err == nil && st.Mode&07777 != a.Mode&07777 {
		notes = append(notes, fmt.Sprintf("mode %#o saved as %#o (set-group-ID needs the group)", a.Mode&07777, st.Mode&07777))
	}
	for name, value := range a.Xattrs {
		if err := unix.Fsetxattr(t.fd, name, value, 0); err != nil {
			notes = append(notes, fmt.Sprintf("xattr %q not kept (%v)", name, err))
		}
	}
	ts := [2]unix.Timespec{a.Atime, a.Mtime}
	// utimensat(fd, NULL, ...) is futimens(3), which x/sys/unix lacks.
	if _, _, e := unix.Syscall6(unix.SYS_UTIMENSAT, uintptr(t.fd), 0, uintptr(unsafe.Pointer(&ts[0])), 0, 0, 0); e != 0 {
		return notes, fmt.Errorf("set times: %w", e)
	}
	return notes, nil
}

// ErrTaken is returned by Place when neither a name nor the name beside it
// could be used without replacing what the owner may not replace.
var ErrTaken = errors.New("the place is taken")

// Place gives the file open as src (a Temp's descriptor, or one from
// Reopen) the name name in the directory open as parent. What is there
// already is replaced only if it is prev (this file's previous copy) or a
// non-directory owned by owner, the user the save is for; anything else
// stays, and the file goes beside it, as name+BesideSuffix, under the same
// rule. It returns the name used and, if that is not name, why. A new
// name appears whole: linked directly where nothing is, else linked under
// a hidden name and renamed over the old one.
func Place(src, parent int, name string, owner uint32, prev FileID) (used, why string, err error) {
	self, err := Identify(src)
	if err != nil {
		return "", "", err
	}
	// A hidden name left by a refused rename holds the file meanwhile: a
	// file made with O_TMPFILE that lost its only name cannot be linked
	// again.
	var hold string
	defer func() {
		if hold != "" {
			unix.Unlinkat(parent, hold, 0)
		}
	}()
	for _, cand := range []string{name, name + BesideSuffix} {
		for attempt := 0; attempt < 3; attempt++ {
			v, reason, err := judge(parent, cand, owner, prev, self)
			switch {
			case err != nil:
				return "", "", err
			case v == placed:
				return cand, why, nil
			case v == taken:
				if why == "" {
					why = reason
				}
			case v == free:
				err = unix.Linkat(unix.AT_FDCWD, fdPath(src), parent, cand, unix.AT_SYMLINK_FOLLOW)
				if errors.Is(err, unix.EEXIST) {
					continue // made meanwhile: judge it again
				}
				if err != nil {
					return "", "", err
				}
				removeStale(parent, newName(cand), owner) // a kill's leftover
				return cand, why, nil
			case v == replaceable:
				tmp, err := replace(src, parent, cand, owner)
				if tmp != "" && hold == "" {
					hold = tmp
				} else if tmp != "" {
					unix.Unlinkat(parent, tmp, 0)
				}
				if errors.Is(err, unix.EPERM) || errors.Is(err, unix.EACCES) {
					// A sticky directory's rule, say: the kernel's word.
					if why == "" {
						why = fmt.Sprintf("may not replace what is there (%v)", err)
					}
					break
				}
				if err != nil {
					return "", "", err
				}
				return cand, why, nil
			}
			break
		}
	}
	return "", why, fmt.Errorf("%w: %s", ErrTaken, why)
}

// verdict is what judge finds at a name.
type verdict int

const (
	free        verdict = iota // nothing
	placed                     // the file being placed itself
	replaceable                // the owner's, or the file's previous copy
	taken                      // anything else
)

// judge says what name in parent is to a file self being placed for
// owner, whose previous copy was prev, and if taken, why.
func judge(parent int, name string, owner uint32, prev, self FileID) (verdict, string, error) {
	var st unix.Stat_t
	err := unix.Fstatat(parent, name, &st, unix.AT_SYMLINK_NOFOLLOW)
	id := FileID{Dev: st.Dev, Ino: st.Ino}
	switch {
	case errors.Is(err, unix.ENOENT):
		return free, "", nil
	case err != nil:
		return taken, "", fmt.Errorf("stat: %w", err)
	case id == self:
		return placed, "", nil
	case st.Mode&unix.S_IFMT == unix.S_IFDIR:
		return taken, "a directory is there", nil
	case !prev.IsZero() && id == prev:
		return replaceable, "", nil
	case st.Uid != owner:
		return taken, fmt.Sprintf("a file of uid %d is there", st.Uid), nil
	}
	return replaceable, "", nil
}

// removeStale removes name from parent if it is a regular file of owner
// (a new version a kill left under its hidden name), and reports whether
// name is free now.
func removeStale(parent int, name string, owner uint32) bool {
	var st unix.Stat_t
	if err := unix.Fstatat(parent, name, &st, unix.AT_SYMLINK_NOFOLLOW); err != nil {
		return errors.Is(err, unix.ENOENT)
	}
	if st.Mode&unix.S_IFMT != unix.S_IFREG || st.Uid != owner {
		return false
	}
	return unix.Unlinkat(parent, name, 0) == nil
}

// replace puts src in place of name in parent: linked under its hidden
// new name (one left by a kill is replaced, if owner's), then renamed over
// it. If the rename fails, the hidden name is returned, still linked, for
// the caller to remove.
func replace(src, parent int, name string, owner uint32) (left string, err error) {
	tmp := newName(name)
	err = unix.Linkat(unix.AT_FDCWD, fdPath(src), parent, tmp, unix.AT_SYMLINK_FOLLOW)
	if errors.Is(err, unix.EEXIST) {
		if !removeStale(parent, tmp, owner) {
			tmp = tempName() // someone else's: not ours to remove
		}
		err = unix.Linkat(unix.AT_FDCWD, fdPath(src), parent, tmp, unix.AT_SYMLINK_FOLLOW)
	}
	if err != nil {
		return "", err
	}
	if err := unix.Renameat(parent, tmp, parent, name); err != nil {
		return tmp, err
	}
	return "", nil
}

// Reopen opens rel (without following a symlink) if it is still the file
// id, for Place to give it more names. It returns -1 and no error if it
// is gone or another file.
func (d *Dir) Reopen(rel string, id FileID) (int, error) {
	dir, base := path.Split(rel)
	parent, err := d.OpenDir(strings.TrimSuffix(dir, "/"), nil, nil)
	if errors.Is(err, unix.ENOENT) {
		return -1, nil
	}
	if err != nil {
		return -1, err
	}
	defer unix.Close(parent)
	fd, err := unix.Openat(parent, base, unix.O_PATH|unix.O_NOFOLLOW|unix.O_CLOEXEC, 0)
	if errors.Is(err, unix.ENOENT) || errors.Is(err, unix.ELOOP) {
		return -1, nil
	}
	if err != nil {
		return -1, err
	}
	if got, err := Identify(fd); err != nil || got != id {
		unix.Close(fd)
		return -1, err
	}
	return fd, nil
}

// Remove unlinks rel if it is still the file id, and a new version of it
// a kill left under its hidden name if that is owner's, syncs its
// directory, and reports whether it removed rel.
func (d *Dir) Remove(rel string, id FileID, owner uint32) (bool, error) {
	dir, base := path.Split(rel)
	parent, err := d.OpenDir(strings.TrimSuffix(dir, "/"), nil, nil)
	if errors.Is(err, unix.ENOENT) {
		return false, nil
	}
	if err != nil {
		return false, err
	}
	defer unix.Close(parent)
	var st unix.Stat_t
	if err := unix.Fstatat(parent, base, &st, unix.AT_SYMLINK_NOFOLLOW); err != nil {
		if errors.Is(err, unix.ENOENT) {
			return false, nil
		}
		return false, err
	}
	if (FileID{Dev: st.Dev, Ino: st.Ino}) != id {
		return false, nil // someone else's now: not ours to remove
	}
	if err := unix.Unlinkat(parent, base, 0); err != nil {
		return false, err
	}
	removeStale(parent, newName(base), owner)
	return true, unix.Fsync(parent)
}

func tempName() string { return fmt.Sprintf("%s%016x", tempPrefix, rand.Uint64()) }

func fdPath(fd int) string { return fmt.Sprintf("/proc/self/fd/%d", fd) }

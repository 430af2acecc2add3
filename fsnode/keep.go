package fsnode

import (
	"errors"
	"fmt"
	"io"
	"math/rand/v2"
	"path"
	"slices"
	"strings"

	"golang.org/x/sys/unix"

	"github.com/tmpmount/tmpmount/policy"
	"github.com/tmpmount/tmpmount/spool"
)

// Shutdown ends the mount's files once the kernel has let go of the mount:
// keep-policy files are saved into the keep directory, every other file is
// deleted (reason unmount), and all file data is freed. progress, if not
// nil, hears how many bytes of the keep files are saved of how many, as it
// goes. It returns how many files were saved and how many could not be.
func (r *Root) Shutdown(progress func(done, total int64)) (saved, failed int) {
	r.notifier.stop()
	r.filesMu.Lock()
	files := make([]*File, 0, len(r.files))
	for _, f := range r.files {
		files = append(files, f)
	}
	r.filesMu.Unlock()

	type named struct {
		f     *File
		paths []string
	}
	var keep []named
	r.tree.RLock()
	for _, f := range files {
		f.mu.Lock()
		p := f.life.Policy()
		f.mu.Unlock()
		if p != policy.Keep || len(f.names) == 0 {
			continue
		}
		var paths []string
		for _, l := range f.names {
			paths = append(paths, l.dir.pathLocked(l.name))
		}
		slices.Sort(paths)
		keep = append(keep, named{f, paths})
	}
	r.tree.RUnlock()
	slices.SortFunc(keep, func(a, b named) int { return strings.Compare(a.paths[0], b.paths[0]) })

	kept := make(map[*File]bool)
	if len(keep) > 0 {
		k, err := r.openKeeper()
		if err != nil {
			r.log.Printf("cannot save %d keep files: %v", len(keep), err)
			failed = len(keep)
		} else {
			for _, n := range keep {
				if st, err := n.f.data.Stat(); err == nil {
					k.total += st.Size
				}
			}
			k.progress = progress
			for _, n := range keep {
				if err := k.save(n.f, n.paths); err != nil {
					r.log.Printf("keep %q: %v", n.paths[0], err)
					failed++
					continue
				}
				kept[n.f] = true
				saved++
			}
			if err := k.close(); err != nil {
				r.log.Print(err)
			}
		}
	}

	for _, f := range files {
		if !kept[f] {
			r.tree.RLock()
			path := f.pathLocked()
			r.tree.RUnlock()
			r.events.deleted(f, path, policy.ByUnmount)
			r.deletes[policy.ByUnmount].Add(1)
		}
		f.data.Release()
	}
	return saved, failed
}

// keeper writes files into the keep directory. Every path is resolved
// beneath the directory without following symlinks (openat2 with
// RESOLVE_BENEATH|RESOLVE_NO_SYMLINKS), so a symlink planted there cannot
// send data elsewhere. Each file is written under a temporary identity
// (O_TMPFILE, or a hidden name) and renamed into place once complete.
type keeper struct {
	root  *Root
	dir   string
	dirFd int
	// first records where each hard-linked file was saved first, so its
	// other names become links to it.
	first map[*File]string

	done, total int64 // bytes of data saved, of all to save
	progress    func(done, total int64)
}

// copied counts n bytes saved and tells progress.
func (k *keeper) copied(n int64) {
	k.done += n
	if k.progress != nil {
		k.progress(k.done, k.total)
	}
}

func (r *Root) openKeeper() (*keeper, error) {
	fd, err := unix.Open(r.keepDir, unix.O_DIRECTORY|unix.O_RDONLY|unix.O_CLOEXEC, 0)
	if err != nil {
		return nil, fmt.Errorf("open keep dir %s: %w", r.keepDir, err)
	}
	return &keeper{root: r, dir: r.keepDir, dirFd: fd, first: make(map[*File]string)}, nil
}

// close flushes what was written (one syncfs for all files: each file is
// in place whole, and the data reaches the disk before tmpmount exits) and
// closes the keep directory.
func (k *keeper) close() error {
	errs := []error{}
	if err := unix.Syncfs(k.dirFd); err != nil {
		errs = append(errs, fmt.Errorf("sync keep dir %s: %w", k.dir, err))
	}
	if err := unix.Close(k.dirFd); err != nil {
		errs = append(errs, err)
	}
	return errors.Join(errs...)
}

var resolveBeneath = unix.OpenHow{
	Flags:   unix.O_DIRECTORY | unix.O_RDONLY | unix.O_CLOEXEC,
	Resolve: unix.RESOLVE_BENEATH | unix.RESOLVE_NO_SYMLINKS,
}

// save writes f under each of its paths (relative to the mount root, and
// so to the keep directory).
func (k *keeper) save(f *File, paths []string) error {
	for _, p := range paths {
		dest, err := k.saveOne(f, p)
		if err != nil {
			return err
		}
		k.root.events.kept(f, p, path.Join(k.dir, dest))
	}
	return nil
}

// saveOne writes one name of f and returns where it went, relative to the
// keep directory.
func (k *keeper) saveOne(f *File, rel string) (string, error) {
	dirRel, base := path.Split(rel)
	parent, err := k.openParent(strings.TrimSuffix(dirRel, "/"))
	if err != nil {
		return "", err
	}
	defer unix.Close(parent)

	st := k.root.statForKeep(f)
	dest := base
	var old unix.Stat_t
	switch err := unix.Fstatat(parent, base, &old, unix.AT_SYMLINK_NOFOLLOW); {
	case errors.Is(err, unix.ENOENT):
	case err != nil:
		return "", fmt.Errorf("stat %q in keep dir: %w", rel, err)
	case old.Mode&unix.S_IFMT == unix.S_IFDIR:
		return "", fmt.Errorf("keep dir has a directory at %q", rel)
	case timespecAfter(old.Mtim, st.mtime):
		// Something newer is there: keep it, and save ours beside it.
		dest = base + ".tmpmount-kept"
		k.root.log.Printf("keep %q: the keep dir has a newer file there; saving as %q instead", rel, path.Join(dirRel, dest))
	}

	if first, ok := k.first[f]; ok {
		if err := k.linkTo(first, parent, dest); err == nil {
			return path.Join(dirRel, dest), nil
		}
		// A link can fail (another filesystem below the keep dir, say):
		// then this name gets a copy of its own.
	}
	if err := k.writeFile(f, st, parent, dest); err != nil {
		return "", fmt.Errorf("write %q: %w", rel, err)
	}
	k.first[f] = path.Join(dirRel, dest)
	return path.Join(dirRel, dest), nil
}

// openParent opens dir (relative to the keep directory), making the
// directories that are missing with the modes of their counterparts in
// the mount.
func (k *keeper) openParent(dir string) (int, error) {
	fd, err := unix.Openat2(k.dirFd, ".", &resolveBeneath)
	if err != nil {
		return -1, err
	}
	if dir == "" {
		return fd, nil
	}
	walked := ""
	for _, name := range strings.Split(dir, "/") {
		walked = path.Join(walked, name)
		next, err := unix.Openat2(fd, name, &resolveBeneath)
		if errors.Is(err, unix.ENOENT) {
			owner := k.root.dirOwnerForKeep(walked)
			if err := unix.Mkdirat(fd, name, 0o700); err != nil && !errors.Is(err, unix.EEXIST) {
				unix.Close(fd)
				return -1, fmt.Errorf("make %q in keep dir: %w", walked, err)
			}
			next, err = unix.Openat2(fd, name, &resolveBeneath)
			if err == nil {
				// The mode the umask did not cut, and (as root) the
				// owner of the directory in the mount.
				if unix.Geteuid() == 0 {
					unix.Fchown(next, int(owner.uid), int(owner.gid))
				}
				unix.Fchmod(next, owner.mode)
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

// linkTo makes dest in parent a hard link to the file saved at first,
// replacing what is at dest.
func (k *keeper) linkTo(first string, parent int, dest string) error {
	firstDir, firstBase := path.Split(first)
	src, err := k.openParent(strings.TrimSuffix(firstDir, "/"))
	if err != nil {
		return err
	}
	defer unix.Close(src)
	tmp := tempName()
	if err := unix.Linkat(src, firstBase, parent, tmp, 0); err != nil {
		return err
	}
	if err := unix.Renameat(parent, tmp, parent, dest); err != nil {
		unix.Unlinkat(parent, tmp, 0)
		return err
	}
	return nil
}

// keepStat is what keep copies of a file's attributes.
type keepStat struct {
	uid, gid     uint32
	mode         uint32
	atime, mtime unix.Timespec
	xattrs       map[string][]byte
}

func (r *Root) statForKeep(f *File) keepStat {
	f.mu.Lock()
	defer f.mu.Unlock()
	st := keepStat{
		uid: f.uid, gid: f.gid, mode: f.mode & 07777,
		atime:  unix.Timespec{Sec: f.atime.sec, Nsec: int64(f.atime.nsec)},
		mtime:  unix.Timespec{Sec: f.mtime.sec, Nsec: int64(f.mtime.nsec)},
		xattrs: make(map[string][]byte, len(f.xattrs)),
	}
	for k, v := range f.xattrs {
		st.xattrs[k] = v // values are never changed in place
	}
	return st
}

// dirOwner is a directory's mode bits and owner.
type dirOwner struct {
	mode     uint32
	uid, gid uint32
}

// dirOwnerForKeep is the mode and owner of the mount's directory at rel,
// for making its counterpart in the keep directory (0755 and the daemon's
// user if it is gone).
func (r *Root) dirOwnerForKeep(rel string) dirOwner {
	r.tree.RLock()
	defer r.tree.RUnlock()
	d := r.dir
	for _, name := range strings.Split(rel, "/") {
		sub, ok := d.entries.get(name).(*Dir)
		if !ok {
			return dirOwner{mode: 0o755, uid: uint32(unix.Geteuid()), gid: uint32(unix.Getegid())}
		}
		d = sub
	}
	d.mu.Lock()
	defer d.mu.Unlock()
	return dirOwner{mode: d.mode & 07777, uid: d.uid, gid: d.gid}
}

// writeFile writes f's data and attributes to a new file and renames it to
// dest in parent.
func (k *keeper) writeFile(f *File, st keepStat, parent int, dest string) (err error) {
	fd, tmp, err := createTemp(parent)
	if err != nil {
		return err
	}
	defer func() {
		unix.Close(fd)
		if err != nil && tmp != "" {
			unix.Unlinkat(parent, tmp, 0)
		}
	}()
	if err := copyData(fd, f.data, k.copied); err != nil {
		return err
	}
	if unix.Geteuid() == 0 {
		if err := unix.Fchown(fd, int(st.uid), int(st.gid)); err != nil {
			return fmt.Errorf("chown: %w", err)
		}
	}
	if err := unix.Fchmod(fd, st.mode); err != nil {
		return fmt.Errorf("chmod: %w", err)
	}
	for name, value := range st.xattrs {
		if err := unix.Fsetxattr(fd, name, value, 0); err != nil {
			// trusted.* needs privileges the daemon may lack, and some
			// filesystems store no xattrs: say so, and keep the data.
			k.root.log.Printf("keep: xattr %q not saved: %v", name, err)
		}
	}
	if err := unix.UtimesNanoAt(unix.AT_FDCWD, fdPath(fd), []unix.Timespec{st.atime, st.mtime}, 0); err != nil {
		return fmt.Errorf("set times: %w", err)
	}
	if tmp == "" {
		// O_TMPFILE: give it a name, then move it into place.
		tmp = tempName()
		if err := unix.Linkat(unix.AT_FDCWD, fdPath(fd), parent, tmp, unix.AT_SYMLINK_FOLLOW); err != nil {
			tmp = ""
			return fmt.Errorf("link into keep dir: %w", err)
		}
	}
	if err := unix.Renameat(parent, tmp, parent, dest); err != nil {
		return fmt.Errorf("rename into place: %w", err)
	}
	tmp = ""
	return nil
}

// createTemp makes a file in parent to write a kept file into: nameless
// (O_TMPFILE) where the filesystem allows, else under a hidden random
// name, which it returns.
func createTemp(parent int) (fd int, tmp string, err error) {
	fd, err = unix.Openat(parent, ".", unix.O_TMPFILE|unix.O_WRONLY|unix.O_CLOEXEC, 0o600)
	if err == nil {
		return fd, "", nil
	}
	tmp = tempName()
	fd, err = unix.Openat(parent, tmp, unix.O_CREAT|unix.O_EXCL|unix.O_NOFOLLOW|unix.O_WRONLY|unix.O_CLOEXEC, 0o600)
	if err != nil {
		return -1, "", fmt.Errorf("create in keep dir: %w", err)
	}
	return fd, tmp, nil
}

func tempName() string { return fmt.Sprintf(".tmpmount-%016x", rand.Uint64()) }

func fdPath(fd int) string { return fmt.Sprintf("/proc/self/fd/%d", fd) }

// copyData copies a file's data, skipping its holes so that a sparse file
// stays sparse, and sets the size. copied hears of each chunk.
func copyData(fd int, data *spool.File, copied func(int64)) error {
	st, err := data.Stat()
	if err != nil {
		return err
	}
	buf := make([]byte, 1<<20)
	for off := int64(0); off < st.Size; {
		start, err := data.SeekData(off)
		if errors.Is(err, unix.ENXIO) {
			break
		}
		if err != nil {
			return err
		}
		end, err := data.SeekHole(start)
		if err != nil {
			return err
		}
		for pos := start; pos < end; {
			n, err := data.ReadAt(buf[:min(int64(len(buf)), end-pos)], pos)
			if err != nil {
				return err
			}
			if n == 0 {
				return io.ErrUnexpectedEOF
			}
			if err := pwriteAll(fd, buf[:n], pos); err != nil {
				return err
			}
			pos += int64(n)
			copied(int64(n))
		}
		off = end
	}
	return unix.Ftruncate(fd, st.Size)
}

func timespecAfter(a unix.Timespec, b unix.Timespec) bool {
	return a.Sec > b.Sec || (a.Sec == b.Sec && a.Nsec > b.Nsec)
}

func pwriteAll(fd int, p []byte, off int64) error {
	for len(p) > 0 {
		n, err := unix.Pwrite(fd, p, off)
		if err == unix.EINTR {
			continue
		}
		if err != nil {
			return err
		}
		if n == 0 {
			return io.ErrShortWrite
		}
		p, off = p[n:], off+int64(n)
	}
	return nil
}

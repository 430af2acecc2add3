package fsnode

import (
	"context"
	"syscall"

	"github.com/hanwen/go-fuse/v2/fs"
	"github.com/hanwen/go-fuse/v2/fuse"
	"golang.org/x/sys/unix"

	"github.com/tmpmount/tmpmount/policy"
)

// Dir is a directory. Its entries and parent are guarded by Root.tree.
type Dir struct {
	node

	// Guarded by root.tree:
	parent  *Dir   // nil for the root, and once removed
	name    string // its name in parent
	entries dirEntries

	own policy.Policy // its user.tmpmount.delete, for new children; guarded by node.mu
}

// bogoDirentSize is what tmpfs counts per entry in a directory's st_size.
const bogoDirentSize = 20

func (d *Dir) fillAttr(out *fuse.Attr) syscall.Errno {
	d.root.tree.RLock()
	n := d.entries.len()
	d.root.tree.RUnlock()
	d.mu.Lock()
	d.fillCommonAttrLocked(out)
	d.mu.Unlock()
	out.Size = uint64(n+2) * bogoDirentSize
	return 0
}

func (d *Dir) Getattr(ctx context.Context, fh fs.FileHandle, out *fuse.AttrOut) syscall.Errno {
	return d.fillAttr(&out.Attr)
}

func (d *Dir) Setattr(ctx context.Context, fh fs.FileHandle, in *fuse.SetAttrIn, out *fuse.AttrOut) syscall.Errno {
	if _, ok := in.GetSize(); ok {
		return syscall.EISDIR
	}
	d.applySetattr(callerOf(ctx), in, false)
	return d.fillAttr(&out.Attr)
}

func (d *Dir) Lookup(ctx context.Context, name string, out *fuse.EntryOut) (*fs.Inode, syscall.Errno) {
	if len(name) > maxNameLen {
		return nil, syscall.ENAMETOOLONG
	}
	d.root.tree.RLock()
	child := d.entries.get(name)
	f, isFile := child.(*File)
	if isFile {
		f.addKernelRef() // the reply hands the kernel one (kernelrefs.go)
	}
	d.root.tree.RUnlock()
	if child == nil {
		return nil, syscall.ENOENT
	}
	if errno := child.fillAttr(&out.Attr); errno != 0 {
		if isFile {
			f.dropKernelRefs(1)
		}
		return nil, errno
	}
	return child.EmbeddedInode(), 0
}

// adopt registers a new node with go-fuse under inode number ino.
func (d *Dir) adopt(ctx context.Context, child inode, fileType uint32, ino uint64) {
	d.NewInode(ctx, child, fs.StableAttr{Mode: fileType, Ino: ino})
	d.root.inodes.Add(1)
	d.root.exports.adopted(child)
}

// linkLocked adds child under name and marks the directory changed.
// root.tree must be write-locked.
func (d *Dir) linkLocked(name string, child inode) {
	d.entries.add(name, child)
	child.base().addLinks(1)
	switch c := child.(type) {
	case *File:
		c.names = append(c.names, link{dir: d, name: name})
		c.updateOrphan()
	case *Dir:
		c.name = name
	}
	d.touchChange()
}

// newChild enters a new node of the given type under name, with inode
// number ino, after checking the name is valid and free. A new regular
// file also gets its policy, from its path and its directories.
func (d *Dir) newChild(ctx context.Context, name string, mode uint32, child inode, ino uint64) syscall.Errno {
	if len(name) > maxNameLen {
		return syscall.ENAMETOOLONG
	}
	initNode(child.base(), d.root, d, callerOf(ctx), mode)
	d.root.awaitInodeRoom()
	cost := nameCost(name) + metaCost(child)
	if errno := d.root.chargeMeta(cost, true); errno != 0 {
		return errno
	}
	fail := func(errno syscall.Errno) syscall.Errno {
		d.root.tree.Unlock()
		d.root.releaseMeta(cost)
		return errno
	}
	d.root.tree.Lock()
	if d.entries.get(name) != nil {
		return fail(syscall.EEXIST)
	}
	if d.parent == nil && d != d.root.dir {
		return fail(syscall.ENOENT) // removed while we were here
	}
	if d.root.inodesFull() {
		return fail(syscall.ENOSPC)
	}
	if errno := d.inheritACLs(ctx, child.base()); errno != 0 {
		return fail(errno)
	}
	d.adopt(ctx, child, mode&syscall.S_IFMT, ino)
	d.linkLocked(name, child)
	f, isFile := child.(*File)
	path := ""
	if isFile {
		path = d.pathLocked(name)
		f.startLife(path, d.inheritedPolicyLocked())
	}
	d.root.tree.Unlock()
	if isFile {
		d.root.registerFile(f)
		d.root.events.created(f, path)
	}
	return 0
}

func (d *Dir) Mkdir(ctx context.Context, name string, mode uint32, out *fuse.EntryOut) (*fs.Inode, syscall.Errno) {
	sub := &Dir{}
	sub.entries.init()
	sub.parent = d
	if errno := d.newChild(ctx, name, syscall.S_IFDIR|mode&07777, sub, d.root.allocIno()); errno != 0 {
		return nil, errno
	}
	// A directory's own "." link, and the parent's link from "..".
	d.root.tree.Lock()
	sub.addLinks(1)
	d.addLinks(1)
	d.root.tree.Unlock()
	sub.fillAttr(&out.Attr)
	return sub.EmbeddedInode(), 0
}

func (d *Dir) Mknod(ctx context.Context, name string, mode uint32, dev uint32, out *fuse.EntryOut) (*fs.Inode, syscall.Errno) {
	var child inode
	ino := d.root.allocIno()
	switch mode & syscall.S_IFMT {
	case syscall.S_IFREG:
		child = d.root.newFile(ino)
	case syscall.S_IFIFO, syscall.S_IFSOCK, syscall.S_IFCHR, syscall.S_IFBLK:
		s := &Special{}
		s.rdev = dev
		child = s
	default:
		return nil, syscall.EINVAL
	}
	if errno := d.newChild(ctx, name, mode, child, ino); errno != 0 {
		return nil, errno
	}
	if f, ok := child.(*File); ok {
		f.keepMade()
	}
	child.fillAttr(&out.Attr)
	return child.EmbeddedInode(), 0
}

func (d *Dir) Symlink(ctx context.Context, target, name string, out *fuse.EntryOut) (*fs.Inode, syscall.Errno) {
	if len(target) >= syscall.PathMax {
		return nil, syscall.ENAMETOOLONG
	}
	s := &Symlink{target: []byte(target)}
	if errno := d.newChild(ctx, name, syscall.S_IFLNK|0o777, s, d.root.allocIno()); errno != 0 {
		return nil, errno
	}
	s.fillAttr(&out.Attr)
	return s.EmbeddedInode(), 0
}

func (d *Dir) Create(ctx context.Context, name string, flags uint32, mode uint32, out *fuse.EntryOut) (*fs.Inode, fs.FileHandle, uint32, syscall.Errno) {
	ino := d.root.allocIno()
	f := d.root.newFile(ino)
	errno := d.newChild(ctx, name, syscall.S_IFREG|mode&07777, f, ino)
	for try := 0; errno == syscall.EEXIST && flags&syscall.O_EXCL == 0; try++ {
		// The kernel sends CREATE only for names it believes absent; if
		// one appeared in between, open it as open(2) without O_EXCL would.
		// If that one went in turn (a close-policy file closed meanwhile),
		// make the file after all.
		inode, fh, fuseFlags, openErrno := d.openExisting(ctx, name, flags, out)
		if openErrno != syscall.ENOENT || try == maxCreateTries {
			f.data.Release()
			return inode, fh, fuseFlags, openErrno
		}
		errno = d.newChild(ctx, name, syscall.S_IFREG|mode&07777, f, ino)
	}
	if errno != 0 {
		f.data.Release()
		return nil, nil, 0, errno
	}
	h := f.newHandle(false) // a new file
	c := callerOf(ctx)
	f.openedForWrite(h, c.Uid, c.Gid)
	f.fillAttr(&out.Attr)
	return f.EmbeddedInode(), h, openFlags, 0
}

// maxCreateTries bounds how often a CREATE races with names that come and
// go before it gives up.
const maxCreateTries = 100

// openExisting opens the file that is at name after all; ENOENT if there
// is none any more.
func (d *Dir) openExisting(ctx context.Context, name string, flags uint32, out *fuse.EntryOut) (*fs.Inode, fs.FileHandle, uint32, syscall.Errno) {
	d.root.tree.RLock()
	child := d.entries.get(name)
	f, ok := child.(*File)
	if ok {
		f.addKernelRef() // the reply hands the kernel one (kernelrefs.go)
	}
	d.root.tree.RUnlock()
	if child == nil {
		return nil, nil, 0, syscall.ENOENT
	}
	if !ok {
		return nil, nil, 0, syscall.EEXIST
	}
	fh, fuseFlags, errno := f.Open(ctx, flags)
	if errno != 0 {
		f.dropKernelRefs(1) // no entry in an error reply
	}
	if errno == syscall.ESTALE {
		// The close policy took the name between the lookup above and
		// the open: the name is free again. ESTALE is for a kernel that
		// opens a name it looked up itself; here it would reach the
		// caller when this CREATE is already the kernel's retry.
		d.root.staleOpens.take(callerOf(ctx).Pid)
		return nil, nil, 0, syscall.ENOENT
	}
	if errno != 0 {
		return nil, nil, 0, errno
	}
	f.fillAttr(&out.Attr)
	return f.EmbeddedInode(), fh, fuseFlags, 0
}

// Tmpfile makes a file with no name, as open(2) with O_TMPFILE: it lives
// while open, and can be given a name with linkat(2).
func (d *Dir) Tmpfile(ctx context.Context, flags uint32, mode uint32, out *fuse.EntryOut) (*fs.Inode, fs.FileHandle, uint32, syscall.Errno) {
	ino := d.root.allocIno()
	f := d.root.newFile(ino)
	initNode(&f.node, d.root, d, callerOf(ctx), syscall.S_IFREG|mode&07777)
	d.root.awaitInodeRoom()
	if errno := d.root.chargeMeta(0, true); errno != 0 {
		f.data.Release()
		return nil, nil, 0, errno
	}
	d.root.tree.Lock()
	if d.root.inodesFull() {
		d.root.tree.Unlock()
		f.data.Release()
		return nil, nil, 0, syscall.ENOSPC
	}
	if errno := d.inheritACLs(ctx, &f.node); errno != 0 {
		d.root.tree.Unlock()
		f.data.Release()
		return nil, nil, 0, errno
	}
	d.adopt(ctx, f, syscall.S_IFREG, ino)
	f.startLife("", d.inheritedPolicyLocked())
	f.updateOrphan()
	d.root.tree.Unlock()
	d.root.registerFile(f)
	d.root.events.created(f, "")
	h := f.newHandle(false) // a new file
	c := callerOf(ctx)
	f.openedForWrite(h, c.Uid, c.Gid)
	f.fillAttr(&out.Attr)
	return f.EmbeddedInode(), h, openFlags, 0
}

func (d *Dir) Link(ctx context.Context, target fs.InodeEmbedder, name string, out *fuse.EntryOut) (*fs.Inode, syscall.Errno) {
	if len(name) > maxNameLen {
		return nil, syscall.ENAMETOOLONG
	}
	child, ok := target.(inode)
	if !ok {
		return nil, syscall.EXDEV
	}
	if _, isDir := child.(*Dir); isDir {
		return nil, syscall.EPERM
	}
	d.root.awaitInodeRoom()
	cost := nameCost(name)
	if errno := d.root.chargeMeta(cost, true); errno != 0 {
		return nil, errno
	}
	fail := func(errno syscall.Errno) (*fs.Inode, syscall.Errno) {
		d.root.tree.Unlock()
		d.root.releaseMeta(cost)
		return nil, errno
	}
	d.root.tree.Lock()
	if d.entries.get(name) != nil {
		return fail(syscall.EEXIST)
	}
	if child.base().links() >= maxLinks {
		return fail(syscall.EMLINK)
	}
	if d.root.inodesFull() {
		// tmpfs charges a link against nr_inodes too.
		return fail(syscall.ENOSPC)
	}
	f, isFile := child.(*File)
	if isFile && !f.linkable() {
		return fail(syscall.ENOENT)
	}
	if child.base().links() > 0 {
		// As tmpfs, every name past a node's first costs an inode
		// (unlinkLocked gives it back); an O_TMPFILE file's first name
		// does not.
		d.root.inodes.Add(1)
	}
	d.linkLocked(name, child)
	if isFile {
		f.addKernelRef() // the reply hands the kernel one (kernelrefs.go)
	}
	if isFile && len(f.names) == 1 {
		// A file's first name (an O_TMPFILE file linked into place) is
		// like a rename into a new path: the rules apply to it.
		f.reresolveLocked()
	}
	if isFile {
		f.keepNamesChanged()
	}
	d.root.tree.Unlock()
	child.base().touchCtime()
	child.fillAttr(&out.Attr)
	return child.EmbeddedInode(), 0
}

func (d *Dir) Unlink(ctx context.Context, name string) syscall.Errno {
	d.root.tree.Lock()
	child := d.entries.get(name)
	switch {
	case child == nil:
		closed := d.entries.closedChild(name)
		errno := syscall.ENOENT
		if closed != nil && mayDelete(d, closed, callerOf(ctx)) {
			// The close policy removed the name a moment ago, and the
			// kernel still had it: the unlink came before it learnt
			// (as in create, write, close, unlink: Python's tempfile
			// probe). It may as well have come before the close's
			// RELEASE, which the kernel sends after close(2) returns:
			// take it so.
			d.entries.forgetClosed(name, closed)
			errno = 0
		}
		d.root.tree.Unlock()
		return errno
	case isDir(child):
		d.root.tree.Unlock()
		return syscall.EISDIR
	case !mayDelete(d, child, callerOf(ctx)):
		d.root.tree.Unlock()
		return syscall.EPERM
	}
	d.unlinkLocked(name, child)
	d.root.tree.Unlock()
	d.root.afterUnlink(child)
	return 0
}

// unlinkLocked removes a non-directory's entry. root.tree must be
// write-locked.
func (d *Dir) unlinkLocked(name string, child inode) {
	if f, ok := child.(*File); ok {
		f.dropNameLocked(d, name)
	}
	d.entries.remove(name)
	d.root.releaseMeta(nameCost(name))
	child.base().addLinks(-1)
	if child.base().links() > 0 {
		d.root.inodes.Add(-1) // an extra name's inode (see Link)
	}
	if f, ok := child.(*File); ok {
		f.updateOrphan()
	}
	child.base().touchCtime()
	d.touchChange()
}

func (d *Dir) Rmdir(ctx context.Context, name string) syscall.Errno {
	d.root.tree.Lock()
	defer d.root.tree.Unlock()
	child := d.entries.get(name)
	sub, ok := child.(*Dir)
	switch {
	case child == nil:
		return syscall.ENOENT
	case !ok:
		return syscall.ENOTDIR
	case sub.entries.len() > 0:
		return syscall.ENOTEMPTY
	case !mayDelete(d, child, callerOf(ctx)):
		return syscall.EPERM
	}
	d.rmdirLocked(name, sub)
	return 0
}

// rmdirLocked removes an empty subdirectory's entry. root.tree must be
// write-locked.
func (d *Dir) rmdirLocked(name string, sub *Dir) {
	d.entries.remove(name)
	d.root.releaseMeta(nameCost(name))
	d.root.dropMeta(sub)
	sub.parent = nil
	d.root.exports.gone(sub)
	sub.mu.Lock()
	sub.nlink = 0
	sub.ctime = nowTimespec()
	sub.mu.Unlock()
	d.addLinks(-1)
	d.touchChange()
	d.root.inodes.Add(-1)
}

func (d *Dir) Rename(ctx context.Context, name string, newParent fs.InodeEmbedder, newName string, flags uint32) syscall.Errno {
	np, ok := newParent.(*Dir)
	if !ok {
		return syscall.EXDEV
	}
	if len(newName) > maxNameLen {
		return syscall.ENAMETOOLONG
	}
	if flags&^renameFlags != 0 || flags&unix.RENAME_EXCHANGE != 0 && flags != unix.RENAME_EXCHANGE {
		return syscall.EINVAL
	}
	caller := callerOf(ctx)
	var whiteout *Special // whiteout.go
	if flags&unix.RENAME_WHITEOUT != 0 {
		whiteout = d.newWhiteout(ctx)
		d.root.awaitInodeRoom()
	}
	// The new name is charged before the lock; a move then gives back
	// the old one (unless a whiteout keeps it), and anything else the
	// new one.
	cost := nameCost(newName)
	if errno := d.root.chargeMeta(cost, whiteout != nil); errno != 0 {
		return errno
	}

	d.root.tree.Lock()
	src := d.entries.get(name)
	dst := np.entries.get(newName)
	errno := d.checkRename(src, np, dst, flags, caller)
	if errno == 0 && whiteout != nil && src != dst {
		errno = d.checkWhiteoutLocked(ctx, whiteout)
	}
	if errno != 0 || src == dst {
		d.root.tree.Unlock()
		d.root.releaseMeta(cost)
		return errno
	}
	var replaced inode
	if flags&unix.RENAME_EXCHANGE != 0 {
		d.exchangeLocked(name, src, np, newName, dst)
	} else {
		replaced = d.moveLocked(name, src, np, newName, dst)
		cost = nameCost(name)
	}
	if whiteout != nil {
		d.placeWhiteoutLocked(ctx, name, whiteout)
		cost = 0 // the whiteout has the old name
	}
	d.root.tree.Unlock()
	d.root.releaseMeta(cost)
	if replaced != nil {
		d.root.afterUnlink(replaced)
	}
	return 0
}

// checkRename applies rename(2)'s rules. root.tree must be held.
func (d *Dir) checkRename(src inode, np *Dir, dst inode, flags uint32, caller *fuse.Caller) syscall.Errno {
	if src == nil {
		return syscall.ENOENT
	}
	if !mayDelete(d, src, caller) {
		return syscall.EPERM
	}
	if dst != nil && !mayDelete(np, dst, caller) {
		return syscall.EPERM
	}
	switch {
	case flags&unix.RENAME_EXCHANGE != 0:
		if dst == nil {
			return syscall.ENOENT
		}
		if isDir(dst) && d.isWithin(dst.(*Dir)) {
			return syscall.EINVAL
		}
	case flags&unix.RENAME_NOREPLACE != 0 && dst != nil:
		return syscall.EEXIST
	case dst != nil && src != dst:
		srcDir, dstDir := isDir(src), isDir(dst)
		if srcDir && !dstDir {
			return syscall.ENOTDIR
		}
		if !srcDir && dstDir {
			return syscall.EISDIR
		}
		if dstDir && dst.(*Dir).entries.len() > 0 {
			return syscall.ENOTEMPTY
		}
	}
	if isDir(src) && np.isWithin(src.(*Dir)) {
		return syscall.EINVAL // a directory cannot move below itself
	}
	return 0
}

// isWithin reports whether d is dir or lies below it. root.tree must be
// held.
func (d *Dir) isWithin(dir *Dir) bool {
	for p := d; p != nil; p = p.parent {
		if p == dir {
			return true
		}
	}
	return false
}

// moveLocked moves src from d/name to np/newName, replacing dst if there is
// one, and returns the replaced node for freeing. root.tree must be
// write-locked.
func (d *Dir) moveLocked(name string, src inode, np *Dir, newName string, dst inode) inode {
	if dst != nil {
		if sub, ok := dst.(*Dir); ok {
			np.rmdirLocked(newName, sub)
		} else {
			np.unlinkLocked(newName, dst)
		}
	}
	d.entries.remove(name)
	np.entries.add(newName, src)
	if isDir(src) && d != np {
		d.addLinks(-1)
		np.addLinks(1)
	}
	d.root.renamedLocked(src, d, name, np, newName)
	src.base().touchCtime()
	d.touchChange()
	np.touchChange()
	return dst
}

// exchangeLocked swaps the nodes at d/name and np/newName. root.tree must
// be write-locked.
func (d *Dir) exchangeLocked(name string, src inode, np *Dir, newName string, dst inode) {
	d.entries.remove(name)
	np.entries.remove(newName)
	d.entries.add(name, dst)
	np.entries.add(newName, src)
	d.root.renamedLocked(src, d, name, np, newName)
	d.root.renamedLocked(dst, np, newName, d, name)
	if d != np {
		_, srcIsDir := src.(*Dir)
		_, dstIsDir := dst.(*Dir)
		if srcIsDir != dstIsDir {
			delta := 1
			if dstIsDir {
				delta = -1
			}
			d.addLinks(-delta)
			np.addLinks(delta)
		}
	}
	src.base().touchCtime()
	dst.base().touchCtime()
	d.touchChange()
	np.touchChange()
}

func isDir(n inode) bool {
	_, ok := n.(*Dir)
	return ok
}

// Fsync on a directory has nothing to make durable.
func (d *Dir) Fsync(ctx context.Context, fh fs.FileHandle, flags uint32) syscall.Errno {
	return 0
}

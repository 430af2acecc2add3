package fsnode

import (
	"slices"
	"strings"

	"github.com/tmpmount/tmpmount/policy"
)

// A regular file's life: it gets its policy when made (policy.Entry, kept
// in File.life under node.mu), counts its handles, and is deleted when the
// Entry says so: its data freed once it has neither names nor handles nor
// a kernel reference (File.kernelRefs). Under the close policy every name
// goes when the last handle does; the data, as an unlinked file's, at the
// kernel's last FORGET.

// newFile makes a file for a CREATE, MKNOD or TMPFILE, whose reply hands
// the kernel its first reference.
func (r *Root) newFile(ino uint64) *File {
	f := &File{data: r.store.NewFile(ino)}
	f.keep.dirty = true // the keep dir has none of it yet
	f.kernelRefs.Store(1)
	return f
}

// startLife gives a new file its policy: from its path (empty for a file
// made with O_TMPFILE, which matches no rule) and the setting it inherits
// from its directories. root.tree must be held.
func (f *File) startLife(path string, inherited policy.Policy) {
	f.mu.Lock()
	f.life = policy.NewEntry(f.root.resolver, path, inherited)
	f.mu.Unlock()
}

// reresolveLocked picks the file's policy again for the path it has now.
// root.tree must be held.
func (f *File) reresolveLocked() {
	path := f.pathLocked()
	f.mu.Lock()
	old := f.life.Policy()
	f.life.Reresolve(f.root.resolver, path)
	f.keepPolicyChangedLocked(old)
	f.mu.Unlock()
}

// pathLocked is the file's first path, or "" if it has no name. root.tree
// must be held.
func (f *File) pathLocked() string {
	if len(f.names) == 0 {
		return ""
	}
	return f.names[0].dir.pathLocked(f.names[0].name)
}

// pathLocked is the path of name in d, relative to the mount root.
// root.tree must be held.
func (d *Dir) pathLocked(name string) string {
	parts := []string{name}
	for p := d; p.parent != nil; p = p.parent {
		parts = append(parts, p.name)
	}
	slices.Reverse(parts)
	return strings.Join(parts, "/")
}

// inheritedPolicyLocked is the user.tmpmount.delete setting of the nearest
// directory from d up that has one, or Unset. root.tree must be held.
func (d *Dir) inheritedPolicyLocked() policy.Policy {
	for p := d; p != nil; p = p.parent {
		p.mu.Lock()
		own := p.own
		p.mu.Unlock()
		if own != policy.Unset {
			return own
		}
	}
	return policy.Unset
}

// newHandle counts a new open handle, or returns nil if the file has been
// deleted, or if the close policy took its names and reopenClosed is
// false. It picks the handle's kind (see File.cachedOpens).
func (f *File) newHandle(reopenClosed bool) *handle {
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.nlink == 0 && f.life.ClosedByPolicy() && !reopenClosed {
		return nil
	}
	if f.life.Open() != nil {
		return nil
	}
	if f.awaitingForget {
		// Opened by an open that raced with its unlink: a handle keeps it
		// now, and statfs need not wait for it.
		f.awaitingForget = false
		f.root.reclaims.removeAwaiting()
	}
	h := &handle{file: f, passthroughFd: -1}
	// A close-policy file opens in passthrough only while it already has
	// passthrough handles (its policy changed since; the kernel refuses
	// to mix the kinds): the kernel maps a passthrough file by swapping in
	// the backing file, so the FUSE file is released at close(2) while the
	// mapping lives on, and the file would go by name while still mapped.
	// A cached open keeps the FUSE file, and the release comes at munmap.
	// A file with passthrough opens keeps getting them, even once a
	// remount has turned passthrough off for the others. A new one also
	// waits while the spill disk is short of room (see passthroughRoom).
	keepPassthrough := f.passthroughOpens > 0
	startPassthrough := f.root.passthrough.Load() &&
		f.cachedOpens == 0 && f.releasing == 0 && f.life.Policy() != policy.Close
	if keepPassthrough || startPassthrough {
		if fd, ok := f.data.BackingFd(); ok && (keepPassthrough || f.root.passthroughRoom()) {
			if !f.passthroughSeen {
				f.copyTimesToBackingLocked()
				f.passthroughSeen = true
				h.firstPassthrough = true
			}
			h.passthroughFd = fd
			f.passthroughOpens++
			return h
		}
	}
	f.cachedOpens++
	return h
}

// noteAwaitingForgetLocked counts the file in root.reclaims once only the
// kernel's reference keeps it. f.mu must be held.
func (f *File) noteAwaitingForgetLocked() {
	if !f.awaitingForget && f.life.AwaitingForget(int(f.nlink), f.referenced()) {
		f.awaitingForget = true
		f.root.reclaims.addAwaiting()
	}
}

// linkable reports whether the file may get a new name: not once deleted
// (an O_TMPFILE file, with no name yet, may while it is open).
func (f *File) linkable() bool {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.life.CanLink()
}

// closeHandle counts a released handle and carries out what the file's
// policy decides.
func (f *File) closeHandle(h *handle) {
	f.mu.Lock()
	if h.passthroughFd >= 0 {
		f.passthroughOpens--
	} else {
		f.cachedOpens--
	}
	action, reason, err := f.life.Close(int(f.nlink), f.referenced())
	f.noteAwaitingForgetLocked()
	f.writerClosedLocked(h)
	f.mu.Unlock()
	if err != nil {
		f.root.log.Printf("bug: file %d: %v", f.ino(), err)
		return
	}
	switch action {
	case policy.Free:
		f.free(reason, f.lastKnownPath())
	case policy.RemoveNames:
		path := f.root.removeNames(f)
		f.updateOrphan()
		f.mu.Lock()
		action, reason = f.life.NamesRemoved(f.referenced())
		f.noteAwaitingForgetLocked()
		f.mu.Unlock()
		if action == policy.Free {
			f.free(reason, path)
		}
	}
}

// unmountDeletion is why and where a file the unmount deletes goes: one
// that lost its names already (an unlinked file, or one the close policy
// took, that the kernel had not forgotten yet) was deleted by that.
func (f *File) unmountDeletion() (policy.Reason, string) {
	f.root.tree.RLock()
	named, hadName := len(f.names) > 0, f.lastPath != ""
	f.root.tree.RUnlock()
	if named || !hadName {
		return policy.ByUnmount, f.lastKnownPath()
	}
	f.mu.Lock()
	reason := policy.ByUnlink
	if f.life.ClosedByPolicy() {
		reason = policy.ByClose
	}
	f.mu.Unlock()
	return reason, f.lastKnownPath()
}

// lastKnownPath is where the file was last seen by name.
func (f *File) lastKnownPath() string {
	f.root.tree.RLock()
	defer f.root.tree.RUnlock()
	if p := f.pathLocked(); p != "" {
		return p
	}
	return f.lastPath
}

// dropNameLocked removes (d, name) from the file's names. root.tree must be
// write-locked.
func (f *File) dropNameLocked(d *Dir, name string) {
	i := slices.Index(f.names, link{dir: d, name: name})
	if i < 0 {
		return
	}
	if len(f.names) == 1 {
		f.lastPath = d.pathLocked(name)
	}
	f.names = slices.Delete(f.names, i, i+1)
}

// afterUnlink acts on a node that lost a name (by unlink, or replaced by a
// rename).
func (r *Root) afterUnlink(n inode) {
	f, ok := n.(*File)
	if !ok {
		if n.base().links() == 0 {
			r.inodes.Add(-1)
			r.dropMeta(n)
			r.exports.gone(n)
		}
		return
	}
	f.mu.Lock()
	action, reason := f.life.Unlinked(int(f.nlink), f.referenced())
	f.noteAwaitingForgetLocked()
	f.mu.Unlock()
	f.keepNamesChanged()
	if action == policy.Free {
		f.free(reason, f.lastKnownPath())
	}
}

// free releases a deleted file's data; the policy has decided, so this runs
// once per file.
func (f *File) free(reason policy.Reason, path string) {
	f.root.unregisterFile(f)
	f.root.inodes.Add(-1)
	f.root.events.deleted(f, path, reason)
	f.root.deletes[reason].Add(1)
	f.root.dropMeta(f)
	if err := f.data.Release(); err != nil {
		f.root.log.Printf("free file %d: %v", f.ino(), err)
	}
	f.updateOrphan()
	f.root.reclaims.fileFreed()
	f.keepNamesChanged()
}

// updateOrphan keeps root.reclaims' count of files that have no name and
// are not freed yet: an unlinked file still open or awaiting its forget,
// or an O_TMPFILE file.
func (f *File) updateOrphan() {
	f.mu.Lock()
	defer f.mu.Unlock()
	orphan := f.nlink == 0 && !f.life.Gone()
	if orphan != f.orphan {
		f.orphan = orphan
		f.root.reclaims.setOrphan(orphan)
	}
}

// removeNames takes every name of a close-policy file whose last handle is
// gone, tells the kernel, and returns the file's path. Lookups see the
// names or none: an open that found the file before opens it still (it
// has a kernel reference, so the data stays), one after gets ENOENT.
func (r *Root) removeNames(f *File) string {
	r.tree.Lock()
	names := f.names
	path := f.pathLocked()
	f.names = nil
	f.lastPath = path
	for _, l := range names {
		if l.dir.entries.get(l.name) == inode(f) {
			l.dir.entries.removeClosed(l.name)
			r.releaseMeta(nameCost(l.name))
			l.dir.touchChange()
		}
	}
	f.mu.Lock()
	if f.nlink > 1 {
		r.inodes.Add(-int64(f.nlink - 1)) // the extra names' inodes (see Dir.Link)
	}
	f.nlink = 0
	f.ctime = nowTimespec()
	f.mu.Unlock()
	r.tree.Unlock()
	for _, l := range names {
		r.notifier.deleted(l.dir, l.name, f)
	}
	return path
}

// renamedLocked updates a node that a rename moved from d/name to
// np/newName: a directory's parent and name, a file's names, and, when
// there are rules, the policies of the files whose paths changed.
// root.tree must be write-locked.
func (r *Root) renamedLocked(n inode, d *Dir, name string, np *Dir, newName string) {
	switch x := n.(type) {
	case *Dir:
		x.parent, x.name = np, newName
		if len(r.resolver.Rules) > 0 {
			x.reresolveBelowLocked()
		}
		x.keepNamesBelowChangedLocked()
	case *File:
		if i := slices.Index(x.names, link{dir: d, name: name}); i >= 0 {
			x.names[i] = link{dir: np, name: newName}
		}
		if len(r.resolver.Rules) > 0 {
			x.reresolveLocked()
		}
		x.keepNamesChanged()
	}
}

// reresolveBelowLocked picks again the policy of every file below d, whose
// paths a rename of d changed. root.tree must be write-locked.
func (d *Dir) reresolveBelowLocked() {
	d.eachFileBelowLocked((*File).reresolveLocked)
}

// eachFileBelowLocked calls fn for every regular file below d, at any
// depth. root.tree must be held.
func (d *Dir) eachFileBelowLocked(fn func(*File)) {
	for e := d.entries.after(0); e != nil; e = d.entries.after(e.cookie) {
		switch c := e.child.(type) {
		case *File:
			fn(c)
		case *Dir:
			c.eachFileBelowLocked(fn)
		}
	}
}

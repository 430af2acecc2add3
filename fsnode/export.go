package fsnode

import (
	"context"
	"sync"
	"syscall"

	"github.com/hanwen/go-fuse/v2/fs"
	"github.com/hanwen/go-fuse/v2/fuse"
)

// File handles (name_to_handle_at, open_by_handle_at, NFS export). A
// FUSE handle is the node id, which here is the inode number, never
// reused within a mount. While the kernel still has the inode it needs
// nothing from the daemon; once it has forgotten it, it asks with a
// LOOKUP of "." in the node (FUSE_EXPORT_SUPPORT), and for a directory
// whose place it must find again, a LOOKUP of "..". go-fuse answers those
// from its own table while the node is in it; for a node it has
// forgotten, it asks the root (LookupNode) and the node (LookupParent),
// and tmpmount answers from its own tree. A node that no longer has a
// name is gone: ESTALE, as tmpfs gives for a deleted file. (A deleted
// file still open is still the kernel's, which opens it without asking,
// as tmpfs does.)

// exportTable finds the directories, symlinks and special files by inode
// number (regular files are in Root.files) while they have a name.
type exportTable struct {
	mu    sync.Mutex
	nodes map[uint64]inode
}

// adopted records a new node (Dir.adopt).
func (t *exportTable) adopted(n inode) {
	if _, isFile := n.(*File); isFile {
		return
	}
	t.mu.Lock()
	if t.nodes == nil {
		t.nodes = make(map[uint64]inode)
	}
	t.nodes[n.base().ino()] = n
	t.mu.Unlock()
}

// gone forgets a node that lost its last name.
func (t *exportTable) gone(n inode) {
	t.mu.Lock()
	delete(t.nodes, n.base().ino())
	t.mu.Unlock()
}

func (t *exportTable) lookup(ino uint64) inode {
	t.mu.Lock()
	defer t.mu.Unlock()
	return t.nodes[ino]
}

// nodeByIno returns the node with inode number ino while it has a name
// or (a regular file) its data, or nil.
func (r *Root) nodeByIno(ino uint64) inode {
	if ino == rootIno {
		return r.dir
	}
	if f := r.fileByIno(ino); f != nil {
		return f
	}
	return r.exports.lookup(ino)
}

var (
	_ fs.NodeLookupNoder    = (*Dir)(nil)
	_ fs.NodeLookupParenter = (*Dir)(nil)
)

// LookupNode answers the kernel's LOOKUP of "." in a node go-fuse has
// forgotten: go-fuse asks the root, with the node id.
func (d *Dir) LookupNode(ctx context.Context, ino uint64, out *fuse.EntryOut) (*fs.Inode, syscall.Errno) {
	r := d.root
	n := r.nodeByIno(ino)
	if n == nil {
		return nil, syscall.ESTALE
	}
	// A file's reference is counted by rawFS.lookupSelf, which go-fuse
	// does not always pass through here.
	r.tree.RLock()
	named := n.base().links() > 0
	r.tree.RUnlock()
	if !named {
		return nil, syscall.ESTALE
	}
	if errno := n.fillAttr(&out.Attr); errno != 0 {
		return nil, errno
	}
	return n.EmbeddedInode(), 0
}

// LookupParent answers the kernel's LOOKUP of ".." in a directory, made
// when it reconnects a directory it found by handle.
func (d *Dir) LookupParent(ctx context.Context, out *fuse.EntryOut) (*fs.Inode, string, syscall.Errno) {
	d.root.tree.RLock()
	parent, name := d.parent, d.name
	d.root.tree.RUnlock()
	if parent == nil {
		// The root has none (the kernel never asks); a removed
		// directory is gone.
		return nil, "", syscall.ESTALE
	}
	if errno := parent.fillAttr(&out.Attr); errno != 0 {
		return nil, "", errno
	}
	return parent.EmbeddedInode(), name, 0
}

// lookupSelf serves the LOOKUP of "." in a node. For a file it counts the
// reference the reply hands the kernel (kernelrefs.go) while the file has
// a name; go-fuse answers from its own table for a node it still knows,
// without asking LookupNode. A file without a name is gone, as above.
func (r *rawFS) lookupSelf(cancel <-chan struct{}, header *fuse.InHeader, out *fuse.EntryOut) fuse.Status {
	f := r.root.fileByIno(header.NodeId)
	if f == nil {
		return r.RawFileSystem.Lookup(cancel, header, ".", out)
	}
	r.root.tree.RLock()
	named := len(f.names) > 0
	if named {
		f.addKernelRef()
	}
	r.root.tree.RUnlock()
	if !named {
		return fuse.Status(syscall.ESTALE)
	}
	st := r.RawFileSystem.Lookup(cancel, header, ".", out)
	if !st.Ok() || out.NodeId == 0 {
		f.dropKernelRefs(1)
	}
	return st
}

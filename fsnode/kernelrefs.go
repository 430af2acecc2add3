package fsnode

import (
	"math"

	"github.com/tmpmount/tmpmount/policy"
)

// The kernel's references to a file. A file with no name and no handle
// keeps its data while the kernel holds a reference to it: the kernel may
// still open it (an open racing with an unlink, with a rename over it, or
// with the close policy taking its names), and on tmpfs that open
// succeeds. The kernel counts the references it holds per node (its
// lookup count): one more for every reply that hands it the node's entry
// (LOOKUP, CREATE, MKNOD, LINK, TMPFILE, each READDIRPLUS entry), and it
// gives back any number at once with FORGET (or BATCH_FORGET, which
// go-fuse and the io_uring transport's /dev/fuse loop split into
// rawFS.Forget calls). File.kernelRefs mirrors that count exactly.
//
// A reference is counted when the daemon finds the file for such a reply,
// under root.tree and while the file has a name (Dir.Lookup,
// Dir.openExisting, Dir.Link, rawFS.lookupSelf), or when it makes the file
// (newFile): not once the reply is built, as go-fuse counts. In between,
// the close policy could take the names, find the file unreferenced and
// free it, and the kernel would then open a file that is gone (ESTALE).
// A reply that ends in an error after all gives the reference back. So
// the count is never below the kernel's, and once it is zero the kernel
// holds none and no reply is about to hand it one: only a name could
// bring the file back, and a file without a name is freed for good.
//
// go-fuse's own count is no substitute: its OnForget runs after it
// dropped its lock, so a LOOKUP served meanwhile could leave a file
// marked forgotten while the kernel held it again; and go-fuse answers
// the LOOKUP of "." of a node it knows without asking the node.

// referenced reports whether the kernel holds (or is being handed) a
// reference to the file.
func (f *File) referenced() bool { return f.kernelRefs.Load() > 0 }

// addKernelRef counts a reference that a reply is about to hand the
// kernel. Call it with root.tree held and the file found by name (or made
// for the reply), so that the count cannot reach the decisions of a
// file that has lost its last name too late.
func (f *File) addKernelRef() { f.kernelRefs.Add(1) }

// dropKernelRefs gives back n references: the kernel's FORGET, or a reply
// that did not hand out the one addKernelRef counted. A file left with no
// reference, name or handle is freed.
func (f *File) dropKernelRefs(n uint64) {
	left := f.kernelRefs.Add(-int64(min(n, math.MaxInt64)))
	if left > 0 {
		return
	}
	if left < 0 {
		f.root.log.Printf("bug: file %d: the kernel forgot %d references more than it was handed", f.ino(), -left)
		f.kernelRefs.CompareAndSwap(left, 0)
	}
	f.mu.Lock()
	// Checked again under the lock: a LOOKUP may have handed out a new
	// reference since (the file then had a name).
	referenced := f.referenced()
	action, reason := f.life.Forgotten(int(f.nlink), referenced)
	awaited := f.awaitingForget && !f.life.AwaitingForget(int(f.nlink), referenced)
	if awaited {
		f.awaitingForget = false
	}
	f.mu.Unlock()
	if awaited {
		defer f.root.reclaims.removeAwaiting() // once the space is free
	}
	if action == policy.Free {
		f.free(reason, f.lastKnownPath())
	}
}

// Forget passes the kernel's FORGET on to go-fuse, which keeps its own
// count, and to the file.
func (r *rawFS) Forget(nodeid, nlookup uint64) {
	r.RawFileSystem.Forget(nodeid, nlookup)
	if f := r.root.fileByIno(nodeid); f != nil {
		f.dropKernelRefs(nlookup)
	}
}

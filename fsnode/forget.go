package fsnode

import (
	"sync"
	"time"
)

// A file with no name and no handle left is freed when the kernel forgets
// it (File.dropKernelRefs), not at the unlink or close itself, and the kernel
// sends RELEASE in the background, so even the last handle of a file that
// a program closed before unlinking it may be counted a moment after the
// unlink. The daemon serves requests concurrently, so a statfs or a write
// the same program sends next can arrive first and find the space still in
// use, where tmpfs would have freed it. Those requests wait a moment for
// the files on their way out (reclaims) before they report space.

// How long requests wait. The bound matters for a file the kernel keeps
// without a name for longer (an unlinked file still open, or held by an
// O_PATH descriptor). statfs only reports, so it waits briefly, and only
// for files with no handle left; a write or create that found no room
// would fail, so it waits for the next file freed, long enough for a
// daemon under load (a race-detector build running the whole test suite
// took over 20 ms).
const (
	reclaimWaitStatfs  = 20 * time.Millisecond
	reclaimWaitNoSpace = time.Second
)

// reclaims counts the files on their way out and tells waiters when one
// is freed.
type reclaims struct {
	mu sync.Mutex
	// awaiting: files with no name and no handle, freed at the kernel's
	// FORGET (File.awaitingForget).
	awaiting int
	// orphans: files with no name that are not freed yet, open or not
	// (File.orphan).
	orphans int
	// settled is closed when awaiting drops to 0, freed when a file is
	// freed; nil while nobody waits.
	settled, freed chan struct{}
}

func (r *reclaims) addAwaiting() {
	r.mu.Lock()
	r.awaiting++
	r.mu.Unlock()
}

func (r *reclaims) removeAwaiting() {
	r.mu.Lock()
	r.awaiting--
	if r.awaiting == 0 && r.settled != nil {
		close(r.settled)
		r.settled = nil
	}
	r.mu.Unlock()
}

// setOrphan counts a file that lost its last name (true) or got a name or
// was freed (false).
func (r *reclaims) setOrphan(orphan bool) {
	r.mu.Lock()
	if orphan {
		r.orphans++
	} else {
		r.orphans--
	}
	r.mu.Unlock()
}

// fileFreed wakes the requests waiting for room.
func (r *reclaims) fileFreed() {
	r.mu.Lock()
	if r.freed != nil {
		close(r.freed)
		r.freed = nil
	}
	r.mu.Unlock()
}

// waitSettled returns once no file awaits its forget, or after d. It
// reports whether any did.
func (r *reclaims) waitSettled(d time.Duration) bool {
	r.mu.Lock()
	if r.awaiting == 0 {
		r.mu.Unlock()
		return false
	}
	if r.settled == nil {
		r.settled = make(chan struct{})
	}
	ch := r.settled
	r.mu.Unlock()
	return waitChan(ch, d)
}

// waitFreed returns once a file is freed, or after d, if any file without
// a name is on its way out; it reports whether it waited (so that what
// found no room is worth retrying).
func (r *reclaims) waitFreed(d time.Duration) bool {
	r.mu.Lock()
	if r.orphans == 0 && r.awaiting == 0 {
		r.mu.Unlock()
		return false
	}
	if r.freed == nil {
		r.freed = make(chan struct{})
	}
	ch := r.freed
	r.mu.Unlock()
	waitChan(ch, d)
	return true
}

// waitChan waits for ch to be closed, or d; it reports true either way.
func waitChan(ch <-chan struct{}, d time.Duration) bool {
	timer := time.NewTimer(d)
	defer timer.Stop()
	select {
	case <-ch:
	case <-timer.C:
	}
	return true
}

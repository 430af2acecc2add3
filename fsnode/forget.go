package fsnode

import (
	"sync"
	"time"
)

// A file with no name and no handle left is freed when the kernel forgets
// it (File.OnForget), not at the unlink or close itself. The kernel queues
// that FORGET before the unlink(2) or close(2) returns, but the daemon
// serves requests concurrently, so a statfs or a write the same program
// sends next can arrive first and find the space still in use, where tmpfs
// would have freed it. Those requests wait a moment for the pending
// forgets (forgetWait) before they report space.

// forgetWait is how long statfs and a write or create short of space wait
// for pending forgets. It bounds the wait for a file the kernel keeps
// referenced without an open handle (an O_PATH descriptor, say).
const forgetWait = 20 * time.Millisecond

// pendingForgets counts files waiting to be forgotten by the kernel.
type pendingForgets struct {
	mu    sync.Mutex
	count int
	done  chan struct{} // closed when count drops to 0; nil if nobody waits
}

func (p *pendingForgets) add() {
	p.mu.Lock()
	p.count++
	p.mu.Unlock()
}

func (p *pendingForgets) remove() {
	p.mu.Lock()
	p.count--
	if p.count == 0 && p.done != nil {
		close(p.done)
		p.done = nil
	}
	p.mu.Unlock()
}

// wait returns once no file is pending, or after d. It reports whether any
// was pending (so that what found no room is worth retrying).
func (p *pendingForgets) wait(d time.Duration) bool {
	p.mu.Lock()
	if p.count == 0 {
		p.mu.Unlock()
		return false
	}
	if p.done == nil {
		p.done = make(chan struct{})
	}
	done := p.done
	p.mu.Unlock()
	timer := time.NewTimer(d)
	defer timer.Stop()
	select {
	case <-done:
	case <-timer.C:
	}
	return true
}

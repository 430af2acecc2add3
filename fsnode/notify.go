package fsnode

import (
	"sync"
)

// notifier tells the kernel about names the daemon removed on its own (the
// close policy), so they vanish from its dentry cache for every process.
//
// A notification waits in the kernel for the directory's lock, and the
// process holding that lock may be waiting for a reply to a request of its
// own: so notifications are sent from one goroutine of their own, never
// from a request handler, and queueing one never blocks.
type notifier struct {
	mu      sync.Mutex
	queue   []notice
	wake    chan struct{} // has room for one pending wake-up
	stopped bool
	done    chan struct{}
}

type notice struct {
	dir   *Dir
	name  string
	child *File
}

func newNotifier() *notifier {
	n := &notifier{wake: make(chan struct{}, 1), done: make(chan struct{})}
	go n.run()
	return n
}

// deleted queues the removal of dir/name, which held child.
func (n *notifier) deleted(dir *Dir, name string, child *File) {
	n.mu.Lock()
	if !n.stopped {
		n.queue = append(n.queue, notice{dir, name, child})
	}
	n.mu.Unlock()
	select {
	case n.wake <- struct{}{}:
	default:
	}
}

func (n *notifier) run() {
	defer close(n.done)
	for range n.wake {
		n.mu.Lock()
		batch := n.queue
		n.queue = nil
		stopped := n.stopped
		n.mu.Unlock()
		for _, no := range batch {
			// ENOENT (the kernel had no such dentry cached) is fine, and
			// after unmount there is nobody to tell.
			no.dir.NotifyDelete(no.name, no.child.EmbeddedInode())
		}
		if stopped {
			return
		}
	}
}

// stop drops what is still queued and ends the goroutine.
func (n *notifier) stop() {
	n.mu.Lock()
	n.stopped = true
	n.queue = nil
	n.mu.Unlock()
	select {
	case n.wake <- struct{}{}:
	default:
	}
	<-n.done
}

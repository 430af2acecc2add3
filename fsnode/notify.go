package fsnode

import (
	"sync"
	"time"
)

// notifier tells the kernel about names the daemon removed on its own (the
// close policy), so they vanish from its dentry cache for every process.
//
// It tells it closeNoticeDelay after the removal, not at once: a program
// that closes a file and at once unlinks it (Python's tempfile probe:
// create, write, close, unlink) then finds the name still in the kernel,
// whose UNLINK the daemon takes as having come first (Dir.Unlink). At
// once, the daemon's RELEASE work, woken on the program's CPU, often
// finished before the program got to its unlink: measured on the 2-core
// VM at load 10, 9% of tempfile.gettempdir() probes failed (and Python
// silently picked another directory); with 1 ms, 0.3%; with 2 ms, 0.15%
// (0.7% with four more busy loops).
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
	due   time.Time // when to tell the kernel
}

// closeNoticeDelay is how long after the close policy removed a name the
// kernel is told.
const closeNoticeDelay = 2 * time.Millisecond

func newNotifier() *notifier {
	n := &notifier{wake: make(chan struct{}, 1), done: make(chan struct{})}
	go n.run()
	return n
}

// deleted queues the removal of dir/name, which held child.
func (n *notifier) deleted(dir *Dir, name string, child *File) {
	n.mu.Lock()
	if !n.stopped {
		n.queue = append(n.queue, notice{dir, name, child, time.Now().Add(closeNoticeDelay)})
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
			time.Sleep(time.Until(no.due))
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

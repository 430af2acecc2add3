// Package ringfuse serves a FUSE mount over io_uring (Linux 6.14+,
// CONFIG_FUSE_IO_URING, /sys/module/fuse/parameters/enable_uring=Y): one
// ring queue per CPU, each served by a goroutine locked to an OS thread
// pinned to that CPU, so that a request is answered on the CPU that made it
// instead of waking a daemon thread on another.
//
// go-fuse mounts, negotiates INIT (with fuse.CAP_OVER_IO_URING among the
// extra capabilities) and keeps serving /dev/fuse for what the kernel still
// sends there: requests from before the rings are ready, FORGET, INTERRUPT,
// and the replies to notifications. Everything else arrives on the rings,
// is decoded here onto go-fuse's wire structs and handed to the same
// fuse.RawFileSystem that go-fuse serves.
package ringfuse

import (
	"errors"
	"fmt"
	"log"
	"os"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"

	"golang.org/x/sys/unix"

	"github.com/hanwen/go-fuse/v2/fuse"
)

// Config says what to serve and how.
type Config struct {
	FS          fuse.RawFileSystem // the filesystem go-fuse serves too
	DevFd       int                // the mount's /dev/fuse descriptor; Start dups it
	PayloadSize int                // at least the mount's max_write and max_pages
	Workers     int                // threads per CPU queue
	Entries     int                // ring entries per thread
	Debug       bool               // log every request
	Logger      *log.Logger
}

// Transport is the set of ring queues of one mount.
type Transport struct {
	fs     fuse.RawFileSystem
	devFd  int
	debug  bool
	logger *log.Logger
	queues []*queue // every worker of every CPU queue
	ncpu   int

	stopping atomic.Bool

	// order is the kernel's ordering of requests, made visible to Go: the
	// kernel sends a request only after the replies it depends on (a
	// RELEASEDIR after the READDIR's reply), but those were handled on
	// other threads, with nothing between them that Go's memory model (or
	// its race detector) sees. Every request loads order as it starts and
	// adds to it as it ends, as go-fuse's loop locks a mutex at both ends.
	order   atomic.Uint64
	wg      sync.WaitGroup
	regMu   sync.Mutex
	regLeft int
	regErr  error
	regDone chan struct{}
	closeMu sync.Mutex
}

// Each CPU's ring queue is served by Workers threads, each pinned to that
// CPU with Entries ring entries of its own. The kernel hands a request to a
// free entry of the caller's CPU's queue; an entry is free only while its
// thread waits, so a request that takes long (a rollover copying a large
// file to disk, a write waiting for room) holds up one thread and not the
// other callers on that CPU.
const (
	DefaultWorkers = 3
	DefaultEntries = 1
)

// Prepare makes a ring queue, with its buffers, for every CPU the kernel
// counts (nr_cpu_ids: the possible CPUs, online or not). It is called
// before mounting: once INIT has negotiated FUSE over io_uring the kernel
// holds every request until all queues are registered, so whatever can
// fail is tried first.
func Prepare(cfg Config) (*Transport, error) {
	ncpu, err := possibleCPUs()
	if err != nil {
		return nil, err
	}
	if cfg.Entries <= 0 {
		cfg.Entries = DefaultEntries
	}
	if cfg.Workers <= 0 {
		cfg.Workers = DefaultWorkers
	}
	t := &Transport{fs: cfg.FS, devFd: -1, debug: cfg.Debug, logger: cfg.Logger, ncpu: ncpu,
		regLeft: ncpu * cfg.Workers, regDone: make(chan struct{})}
	for qid := range ncpu {
		for range cfg.Workers {
			q, err := newQueue(t, qid, cfg.Entries, cfg.PayloadSize)
			if err != nil {
				t.Close()
				return nil, fmt.Errorf("ring queue %d: %w", qid, err)
			}
			t.queues = append(t.queues, q)
		}
	}
	return t, nil
}

// Close frees a transport that was prepared but not started.
func (t *Transport) Close() {
	for _, q := range t.queues {
		q.close()
		q.closeWake()
	}
	t.queues = nil
}

// Start registers every queue's entries on the mount's /dev/fuse
// descriptor devFd (which it dups) and serves the rings. It returns once
// every queue is registered, after which the kernel sends requests over the
// rings. On error nothing is left serving the rings, and the kernel keeps
// holding requests: the mount must be given up.
func (t *Transport) Start(devFd int) error {
	fd, err := unix.FcntlInt(uintptr(devFd), unix.F_DUPFD_CLOEXEC, 3)
	if err != nil {
		t.Close()
		return fmt.Errorf("dup /dev/fuse: %w", err)
	}
	t.devFd = fd
	online := onlineCPUs()
	t.wg.Add(len(t.queues))
	for _, q := range t.queues {
		go q.serve(online[q.qid])
	}
	<-t.regDone
	if t.regErr != nil {
		t.Stop()
		return t.regErr
	}
	return nil
}

// registered records that q registered its entries (err nil) or could not.
func (t *Transport) registered(q *queue, err error) {
	t.regMu.Lock()
	defer t.regMu.Unlock()
	if err != nil && t.regErr == nil {
		t.regErr = fmt.Errorf("ring queue %d: %w", q.qid, err)
		// The queues already registered end once woken.
		t.stopping.Store(true)
		t.wakeQueues()
	}
	t.regLeft--
	if t.regLeft == 0 || err != nil {
		select {
		case <-t.regDone:
		default:
			close(t.regDone)
		}
	}
}

func (t *Transport) queueDone(q *queue) {
	q.close()
	t.wg.Done()
}

// Queues is the number of ring queues: one per CPU.
func (t *Transport) Queues() int { return t.ncpu }

// Served is the number of requests the rings have served, per CPU queue.
func (t *Transport) Served() []uint64 {
	n := make([]uint64, t.ncpu)
	for _, q := range t.queues {
		n[q.qid] += q.served.Load()
	}
	return n
}

// Stop waits for the queues to end. The kernel ends them when the
// connection goes (unmount, abort); a queue whose entries the kernel still
// holds a second after Stop closes its ring, which cancels them.
func (t *Transport) Stop() {
	t.stopping.Store(true)
	t.wakeQueues()
	t.wg.Wait()
	for _, q := range t.queues {
		q.closeWake()
	}
	t.closeMu.Lock()
	if t.devFd >= 0 {
		unix.Close(t.devFd)
		t.devFd = -1
	}
	t.closeMu.Unlock()
}

// wakeQueues wakes every queue's thread; each sees stopping from then on.
// The eventfds stay open until Stop has waited for the threads.
func (t *Transport) wakeQueues() {
	for _, q := range t.queues {
		q.wake()
	}
}

func (t *Transport) logf(format string, args ...any) {
	if t.logger != nil {
		t.logger.Printf(format, args...)
	}
}

// possibleCPUs is the kernel's nr_cpu_ids: one more than the highest
// possible CPU. The kernel makes one ring queue for each.
func possibleCPUs() (int, error) {
	b, err := os.ReadFile("/sys/devices/system/cpu/possible")
	if err != nil {
		return 0, fmt.Errorf("count CPUs: %w", err)
	}
	cpus, err := parseCPUList(strings.TrimSpace(string(b)))
	if err != nil || len(cpus) == 0 {
		return 0, fmt.Errorf("count CPUs: cannot read %q", strings.TrimSpace(string(b)))
	}
	highest := 0
	for c := range cpus {
		highest = max(highest, c)
	}
	return highest + 1, nil
}

// onlineCPUs says which CPUs a queue thread can be pinned to.
func onlineCPUs() map[int]bool {
	b, err := os.ReadFile("/sys/devices/system/cpu/online")
	if err != nil {
		return nil
	}
	cpus, _ := parseCPUList(strings.TrimSpace(string(b)))
	return cpus
}

// parseCPUList reads the kernel's CPU list format: "0-3,5,7-8".
func parseCPUList(s string) (map[int]bool, error) {
	cpus := map[int]bool{}
	for _, part := range strings.Split(s, ",") {
		lo, hi, isRange := strings.Cut(part, "-")
		a, err := strconv.Atoi(lo)
		if err != nil {
			return nil, err
		}
		b := a
		if isRange {
			if b, err = strconv.Atoi(hi); err != nil {
				return nil, err
			}
		}
		if b < a || b-a > 1<<16 {
			return nil, errors.New("bad CPU range " + part)
		}
		for c := a; c <= b; c++ {
			cpus[c] = true
		}
	}
	return cpus, nil
}

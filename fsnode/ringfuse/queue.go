package ringfuse

import (
	"errors"
	"fmt"
	"runtime"
	"sync/atomic"
	"time"
	"unsafe"

	"golang.org/x/sys/unix"
)

// The FUSE-over-io_uring ABI (include/uapi/linux/fuse.h, protocol 7.42).
const (
	cmdRegister       = 1
	cmdCommitAndFetch = 2

	inOutHeaderSize = 128 // fuse_uring_req_header.in_out
	opInSize        = 128 // fuse_uring_req_header.op_in
	// reqHeaderSize is sizeof(struct fuse_uring_req_header): in_out,
	// op_in, then fuse_uring_ent_in_out.
	reqHeaderSize = inOutHeaderSize + opInSize + 32

	inHeaderSize  = 40 // fuse_in_header
	outHeaderSize = 16 // fuse_out_header
)

// entInOut is struct fuse_uring_ent_in_out, at offset 256 of an entry's
// header.
type entInOut struct {
	flags     uint64
	commitID  uint64
	payloadSz uint32
	padding   uint32
	reserved  uint64
}

// cmdReq is struct fuse_uring_cmd_req, in the SQE's command area.
type cmdReq struct {
	flags    uint64
	commitID uint64
	qid      uint16
	_        [6]byte
}

// stopWait bounds how long a stopping queue waits in the kernel for its
// entries to end, before it closes its ring, which cancels them.
const stopWait = time.Second

// wakeData is the user_data of a queue's read of its wake eventfd; entries
// use their index.
const wakeData = 1 << 63

// queue serves the kernel's ring queue for one CPU.
type queue struct {
	t       *Transport
	qid     int
	ring    *ring
	entries []*entry
	mem     []byte // the entries' headers and payload buffers
	live    int    // entries the kernel still holds or we are answering

	// wakeFd is an eventfd the queue keeps a read pending on, so that
	// Stop can wake a queue that sleeps in the kernel without a bound.
	// Closed by the Transport once the queue's thread is done.
	wakeFd  int
	wakeBuf []byte // 8 bytes in mem: where the kernel puts what it reads

	// requests served; written only by this queue's goroutine.
	served atomic.Uint64
	_      [64]byte // keep other queues' counters off this cache line
}

// entry is one ring entry: a request header area and a payload buffer the
// kernel copies requests into and replies out of.
type entry struct {
	q       *queue
	idx     int
	hdr     []byte // reqHeaderSize bytes, in q.mem
	payload []byte // in q.mem
	iov     *[2]unix.Iovec
	req     request
}

func newQueue(t *Transport, qid, nent, payloadSize int) (*queue, error) {
	// Room for every entry twice, and the wake read.
	r, err := newRing(uint32(2*nent + 2))
	if err != nil {
		return nil, err
	}
	q := &queue{t: t, qid: qid, ring: r, wakeFd: -1}
	if q.wakeFd, err = unix.Eventfd(0, unix.EFD_CLOEXEC|unix.EFD_NONBLOCK); err != nil {
		r.close()
		return nil, fmt.Errorf("wake eventfd: %w", err)
	}
	page := unix.Getpagesize()
	// Per entry: one page for the header and the iovec, then the payload.
	payloadSize = (payloadSize + page - 1) / page * page
	stride := page + payloadSize
	q.mem, err = unix.Mmap(-1, 0, nent*stride, unix.PROT_READ|unix.PROT_WRITE, unix.MAP_PRIVATE|unix.MAP_ANONYMOUS)
	if err != nil {
		r.close()
		q.closeWake()
		return nil, fmt.Errorf("ring buffers: %w", err)
	}
	// The first header page has room after the header and its iovecs.
	q.wakeBuf = q.mem[page-8 : page : page]
	for i := range nent {
		base := i * stride
		e := &entry{q: q, idx: i, hdr: q.mem[base : base+reqHeaderSize : base+reqHeaderSize],
			payload: q.mem[base+page : base+stride : base+stride]}
		e.iov = (*[2]unix.Iovec)(unsafe.Pointer(&q.mem[base+reqHeaderSize+8]))
		e.iov[0].Base = &e.hdr[0]
		e.iov[0].SetLen(reqHeaderSize)
		e.iov[1].Base = &e.payload[0]
		e.iov[1].SetLen(len(e.payload))
		e.req.init(e)
		q.entries = append(q.entries, e)
	}
	return q, nil
}

// prep queues a FUSE ring command for e: REGISTER, or COMMIT_AND_FETCH of
// the reply in e's header.
func (q *queue) prep(e *entry, cmd uint32, commitID uint64) error {
	sqe := q.ring.nextSQE()
	if sqe == nil {
		return errors.New("submission queue full")
	}
	fillSQE(sqe, opURingCmd, q.t.devFd, unsafe.Pointer(e.iov), 2, uint64(e.idx)) // the two iovecs
	*(*uint32)(unsafe.Pointer(&sqe[8])) = cmd                                    // cmd_op
	c := (*cmdReq)(unsafe.Pointer(&sqe[48]))
	c.commitID = commitID
	c.qid = uint16(q.qid)
	return nil
}

// register hands every entry to the kernel. The kernel starts using the
// rings once every queue has an entry.
func (q *queue) register() error {
	if err := q.ring.enable(); err != nil {
		return err
	}
	for _, e := range q.entries {
		if err := q.prep(e, cmdRegister, 0); err != nil {
			return err
		}
	}
	q.live = len(q.entries)
	if err := q.prepWake(); err != nil {
		return err
	}
	// Submit without waiting for a completion: none comes until a request.
	toSubmit := q.ring.tail - atomic.LoadUint32(q.ring.sqTail)
	atomic.StoreUint32(q.ring.sqTail, q.ring.tail)
	n, _, errno := unix.Syscall6(unix.SYS_IO_URING_ENTER, uintptr(q.ring.fd), uintptr(toSubmit), 0, 0, 0, 0)
	if errno != 0 {
		return fmt.Errorf("io_uring_enter: %w", errno)
	}
	if uint32(n) != toSubmit {
		return fmt.Errorf("io_uring_enter submitted %d of %d registrations", n, toSubmit)
	}
	// A registration the kernel refuses completes at once with an error.
	var failed error
	q.ring.completions(func(ud uint64, res int32) {
		if ud == wakeData {
			// Done already: refused, or Stop wrote (the queue then waits
			// with a bound, as stopping says).
			if res < 0 && failed == nil {
				failed = fmt.Errorf("wake read: %w", unix.Errno(-res))
			}
			return
		}
		if res < 0 && failed == nil {
			failed = fmt.Errorf("register: %w", unix.Errno(-res))
		}
		q.live--
	})
	return failed
}

// serve runs on the queue's own OS thread, pinned to its CPU where the
// CPU is online.
func (q *queue) serve(pin bool) {
	runtime.LockOSThread()
	// The thread is left locked when serve returns: its CPU affinity
	// dies with it rather than leak to other goroutines.
	if pin {
		var set unix.CPUSet
		set.Set(q.qid)
		if err := unix.SchedSetaffinity(0, &set); err != nil {
			q.t.logf("ring queue %d: cannot pin to CPU %d (%v); it runs unpinned", q.qid, q.qid, err)
		}
	}
	defer q.t.queueDone(q)
	if err := q.register(); err != nil {
		q.t.registered(q, err)
		return
	}
	q.t.registered(q, nil)
	for q.live > 0 {
		// Stop writes the wake eventfd after it sets stopping, and the
		// read of it stays pending until then: an unbounded wait ends.
		var bound time.Duration
		if q.t.stopping.Load() {
			bound = stopWait
		}
		err := q.ring.submitAndWait(bound)
		switch {
		case err == nil || errors.Is(err, unix.ETIME) || errors.Is(err, unix.EINTR):
		default:
			q.t.logf("ring queue %d: io_uring_enter: %v", q.qid, err)
			return
		}
		q.ring.completions(q.complete)
		if q.t.stopping.Load() && q.live > 0 && errors.Is(err, unix.ETIME) {
			// The connection is gone but the kernel still holds entries:
			// closing the ring cancels them.
			return
		}
	}
}

// complete handles the completion of one entry's command: a request to
// serve, or the end of the entry.
func (q *queue) complete(ud uint64, res int32) {
	if ud == wakeData {
		// Woken by Stop (the queue now waits with a bound), or the read
		// failed: either way, serve on and re-arm only while not stopping.
		if !q.t.stopping.Load() {
			if res < 0 && res != -int32(unix.EINTR) && res != -int32(unix.EAGAIN) {
				q.t.logf("ring queue %d: wake read: %v", q.qid, unix.Errno(-res))
			}
			if err := q.prepWake(); err != nil {
				q.t.logf("ring queue %d: %v", q.qid, err)
			}
		}
		return
	}
	if ud >= uint64(len(q.entries)) {
		return
	}
	e := q.entries[ud]
	if res < 0 {
		// ENOTCONN, ECANCELED, ENODEV: the connection is being torn down.
		q.live--
		if res != -int32(unix.ENOTCONN) && res != -int32(unix.ECANCELED) && res != -int32(unix.ENODEV) && !q.t.stopping.Load() {
			q.t.logf("ring queue %d: entry %d ended: %v", q.qid, e.idx, unix.Errno(-res))
		}
		return
	}
	q.served.Add(1)
	commit := (*entInOut)(unsafe.Pointer(&e.hdr[inOutHeaderSize+opInSize])).commitID
	e.req.serve()
	if err := q.prep(e, cmdCommitAndFetch, commit); err != nil {
		// Cannot happen: the SQ ring has room for every entry twice.
		q.t.logf("ring queue %d: %v", q.qid, err)
		q.live--
	}
}

// prepWake queues a read of the wake eventfd.
func (q *queue) prepWake() error {
	sqe := q.ring.nextSQE()
	if sqe == nil {
		return errors.New("submission queue full")
	}
	fillSQE(sqe, iouringOpRead, q.wakeFd, unsafe.Pointer(&q.wakeBuf[0]), uint32(len(q.wakeBuf)), wakeData)
	*(*uint64)(unsafe.Pointer(&sqe[8])) = ^uint64(0) // off: -1, the file position (an eventfd has none)
	return nil
}

// wake ends the queue's unbounded wait in the kernel.
func (q *queue) wake() {
	if q.wakeFd >= 0 {
		var one [8]byte
		one[0] = 1
		unix.Write(q.wakeFd, one[:])
	}
}

func (q *queue) closeWake() {
	if q.wakeFd >= 0 {
		unix.Close(q.wakeFd)
		q.wakeFd = -1
	}
}

func (q *queue) close() {
	if q.ring != nil {
		q.ring.close()
		unix.Munmap(q.mem)
		q.ring, q.mem = nil, nil
	}
}

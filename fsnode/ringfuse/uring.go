package ringfuse

import (
	"errors"
	"fmt"
	"sync/atomic"
	"time"
	"unsafe"

	"golang.org/x/sys/unix"
)

// The io_uring ABI (include/uapi/linux/io_uring.h), written out: x/sys has
// the system call numbers but not the structures.
const (
	setupRDisabled    = 1 << 6
	setupCoopTaskrun  = 1 << 8
	setupSQE128       = 1 << 10
	setupSingleIssuer = 1 << 12

	featSingleMmap = 1 << 0
	featExtArg     = 1 << 8

	offSQRing = 0
	offCQRing = 0x8000000
	offSQEs   = 0x10000000

	enterGetEvents = 1 << 0
	enterExtArg    = 1 << 3

	opURingCmd    = 46
	iouringOpRead = 22 // IORING_OP_READ

	registerEnableRings = 12

	sqeSize = 128 // SQE128: FUSE's command does not fit a 64-byte SQE
	cqeSize = 16
)

// ringParams is struct io_uring_params.
type ringParams struct {
	sqEntries, cqEntries, flags, sqThreadCPU, sqThreadIdle, features, wqFd uint32
	resv                                                                   [3]uint32
	sqOff                                                                  struct {
		head, tail, ringMask, ringEntries, flags, dropped, array, resv1 uint32
		userAddr                                                        uint64
	}
	cqOff struct {
		head, tail, ringMask, ringEntries, overflow, cqes, flags, resv1 uint32
		userAddr                                                        uint64
	}
}

// getEventsArg is struct io_uring_getevents_arg.
type getEventsArg struct {
	sigmask   uint64
	sigmaskSz uint32
	minWait   uint32
	ts        uint64
}

// ring is one io_uring instance, used by one thread only (SINGLE_ISSUER).
type ring struct {
	fd      int
	sqMem   []byte
	cqMem   []byte // == sqMem with IORING_FEAT_SINGLE_MMAP
	sqeMem  []byte
	sqHead  *uint32
	sqTail  *uint32
	sqMask  uint32
	cqHead  *uint32
	cqTail  *uint32
	cqMask  uint32
	cqes    unsafe.Pointer
	tail    uint32 // our copy of the SQ tail: SQEs prepared, maybe not yet published
	pending uint32 // SQEs published but not yet submitted

	wait    getEventsArg
	timeout unix.Timespec
}

func newRing(entries uint32) (*ring, error) {
	var p ringParams
	// Made disabled: the thread that enables it (enable) becomes its only
	// submitter.
	p.flags = setupSQE128 | setupCoopTaskrun | setupSingleIssuer | setupRDisabled
	fd, _, errno := unix.Syscall(unix.SYS_IO_URING_SETUP, uintptr(entries), uintptr(unsafe.Pointer(&p)), 0)
	if errno != 0 {
		return nil, fmt.Errorf("io_uring_setup: %w", errno)
	}
	r := &ring{fd: int(fd)}
	if p.features&featSingleMmap == 0 || p.features&featExtArg == 0 {
		unix.Close(r.fd)
		return nil, errors.New("io_uring lacks single mmap or timed waits (kernel too old)")
	}
	sqSize := int(p.sqOff.array + p.sqEntries*4)
	cqSize := int(p.cqOff.cqes + p.cqEntries*cqeSize)
	size := max(sqSize, cqSize)
	var err error
	if r.sqMem, err = unix.Mmap(r.fd, offSQRing, size, unix.PROT_READ|unix.PROT_WRITE, unix.MAP_SHARED|unix.MAP_POPULATE); err != nil {
		unix.Close(r.fd)
		return nil, fmt.Errorf("mmap io_uring rings: %w", err)
	}
	r.cqMem = r.sqMem
	if r.sqeMem, err = unix.Mmap(r.fd, offSQEs, int(p.sqEntries)*sqeSize, unix.PROT_READ|unix.PROT_WRITE, unix.MAP_SHARED|unix.MAP_POPULATE); err != nil {
		unix.Munmap(r.sqMem)
		unix.Close(r.fd)
		return nil, fmt.Errorf("mmap io_uring SQEs: %w", err)
	}
	base := unsafe.Pointer(&r.sqMem[0])
	r.sqHead = (*uint32)(unsafe.Add(base, p.sqOff.head))
	r.sqTail = (*uint32)(unsafe.Add(base, p.sqOff.tail))
	r.sqMask = *(*uint32)(unsafe.Add(base, p.sqOff.ringMask))
	r.cqHead = (*uint32)(unsafe.Add(base, p.cqOff.head))
	r.cqTail = (*uint32)(unsafe.Add(base, p.cqOff.tail))
	r.cqMask = *(*uint32)(unsafe.Add(base, p.cqOff.ringMask))
	r.cqes = unsafe.Add(base, p.cqOff.cqes)
	// Slot i of the SQ ring always names SQE i.
	array := unsafe.Slice((*uint32)(unsafe.Add(base, p.sqOff.array)), p.sqEntries)
	for i := range array {
		array[i] = uint32(i)
	}
	r.tail = atomic.LoadUint32(r.sqTail)
	r.wait.sigmaskSz = 8
	r.wait.ts = uint64(uintptr(unsafe.Pointer(&r.timeout)))
	return r, nil
}

// enable makes the calling thread the ring's submitter.
func (r *ring) enable() error {
	_, _, errno := unix.Syscall6(unix.SYS_IO_URING_REGISTER, uintptr(r.fd), registerEnableRings, 0, 0, 0, 0)
	if errno != 0 {
		return fmt.Errorf("enable io_uring: %w", errno)
	}
	return nil
}

// nextSQE returns the next free SQE, zeroed, or nil when the SQ ring is full.
func (r *ring) nextSQE() []byte {
	if r.tail-atomic.LoadUint32(r.sqHead) > r.sqMask {
		return nil
	}
	off := int(r.tail&r.sqMask) * sqeSize
	sqe := r.sqeMem[off : off+sqeSize : off+sqeSize]
	clear(sqe)
	r.tail++
	return sqe
}

// fillSQE sets the fields every SQE of ours uses; nextSQE zeroed the rest.
func fillSQE(sqe []byte, op uint8, fd int, addr unsafe.Pointer, length uint32, userData uint64) {
	sqe[0] = op
	*(*int32)(unsafe.Pointer(&sqe[4])) = int32(fd)
	*(*uint64)(unsafe.Pointer(&sqe[16])) = uint64(uintptr(addr))
	*(*uint32)(unsafe.Pointer(&sqe[24])) = length
	*(*uint64)(unsafe.Pointer(&sqe[32])) = userData
}

// submitAndWait publishes the prepared SQEs, submits them and waits for at
// least one completion: up to timeout, or without a bound if timeout is 0.
// It returns unix.ETIME on timeout.
//
// The unbounded wait is the common one: a timed wait arms a timer in the
// kernel on every call, which measurably slows each request.
func (r *ring) submitAndWait(timeout time.Duration) error {
	toSubmit := r.tail - atomic.LoadUint32(r.sqTail) + r.pending
	atomic.StoreUint32(r.sqTail, r.tail)
	flags, arg, argSize := uintptr(enterGetEvents), uintptr(0), uintptr(0)
	if timeout > 0 {
		r.timeout = unix.NsecToTimespec(int64(timeout))
		flags |= enterExtArg
		arg, argSize = uintptr(unsafe.Pointer(&r.wait)), unsafe.Sizeof(r.wait)
	}
	n, _, errno := unix.Syscall6(unix.SYS_IO_URING_ENTER, uintptr(r.fd), uintptr(toSubmit), 1, flags, arg, argSize)
	if errno != 0 {
		if errno == unix.ETIME || errno == unix.EINTR {
			// The SQEs were submitted all the same.
			r.pending = 0
			return errno
		}
		r.pending = toSubmit
		return errno
	}
	r.pending = toSubmit - uint32(n)
	return nil
}

// cqe is struct io_uring_cqe.
type cqe struct {
	userData uint64
	res      int32
	flags    uint32
}

// completions calls f for each completion queued, then frees them.
func (r *ring) completions(f func(userData uint64, res int32)) int {
	head := *r.cqHead
	tail := atomic.LoadUint32(r.cqTail)
	n := 0
	for ; head != tail; head++ {
		c := (*cqe)(unsafe.Add(r.cqes, uintptr(head&r.cqMask)*cqeSize))
		f(c.userData, c.res)
		n++
	}
	atomic.StoreUint32(r.cqHead, head)
	return n
}

func (r *ring) close() {
	unix.Munmap(r.sqeMem)
	unix.Munmap(r.sqMem)
	unix.Close(r.fd)
}

package ringfuse

import (
	"errors"
	"time"
	"unsafe"

	"golang.org/x/sys/unix"

	"github.com/hanwen/go-fuse/v2/fuse"
)

// Once the rings serve, /dev/fuse carries only FORGET, BATCH_FORGET,
// INTERRUPT and NOTIFY_REPLY. go-fuse's serve loop costs ~6 µs of daemon
// CPU per FORGET (a read wake-up, a goroutine, a fresh 1 MiB buffer after
// every GC), one per file deleted, so while the rings serve, ServeDev reads
// /dev/fuse instead, and go-fuse's loop is started only once the connection
// is gone (to end the fuse.Server as usual).

// forgetPause is how long ServeDev lets FORGETs gather after reading a
// lone one: the kernel hands over all that are queued in one BATCH_FORGET,
// so a stream of deletes costs a few reads per millisecond instead of one
// per file. The file is freed that much later; space waits (statfs,
// ENOSPC) allow for it.
const forgetPause = 200 * time.Microsecond

type forgetIn struct{ nlookup uint64 }

type batchForgetIn struct{ count, _ uint32 }

type forgetOne struct{ nodeid, nlookup uint64 }

// ServeDev serves /dev/fuse for fs (FORGETs go to fs.Forget) until the
// connection ends.
func (t *Transport) ServeDev(fs fuse.RawFileSystem, payloadSize int) {
	// The kernel refuses reads into buffers smaller than max_write plus a
	// page; the buffer is mapped, and only its first pages are ever used.
	size := payloadSize + 2*unix.Getpagesize()
	buf, err := unix.Mmap(-1, 0, size, unix.PROT_READ|unix.PROT_WRITE, unix.MAP_PRIVATE|unix.MAP_ANONYMOUS)
	if err != nil {
		t.logf("/dev/fuse reader: %v", err)
		return
	}
	defer unix.Munmap(buf)
	for {
		n, err := unix.Read(t.devFd, buf)
		switch {
		case err == nil:
		case errors.Is(err, unix.EINTR), errors.Is(err, unix.EAGAIN), errors.Is(err, unix.ENOENT):
			continue
		case errors.Is(err, unix.ENODEV):
			return // unmounted or aborted
		default:
			t.logf("/dev/fuse reader: %v", err)
			return
		}
		if n < inHeaderSize {
			continue
		}
		h := (*fuse.InHeader)(unsafe.Pointer(&buf[0]))
		arg := buf[inHeaderSize:n]
		t.order.Load()
		switch h.Opcode {
		case opForget:
			if len(arg) >= int(unsafe.Sizeof(forgetIn{})) && h.NodeId != pollHackInode {
				if t.debug {
					t.logf("/dev/fuse: FORGET n%d", h.NodeId)
				}
				fs.Forget(h.NodeId, (*forgetIn)(unsafe.Pointer(&arg[0])).nlookup)
			}
			time.Sleep(forgetPause)
		case opBatchForget:
			t.batchForget(fs, arg)
		case opInterrupt, opNotifyReply:
			// Interrupts are not acted on: handlers do not block on the
			// caller. tmpmount never asks the kernel for cached data.
		default:
			// Not sent once the rings are ready; answer rather than leave
			// a caller waiting.
			t.logf("/dev/fuse: unexpected %s while the rings serve; answered ENOSYS", opName(h.Opcode))
			t.replyDev(h.Unique, fuse.ENOSYS)
		}
		t.order.Add(1)
	}
}

func (t *Transport) batchForget(fs fuse.RawFileSystem, arg []byte) {
	hdr := int(unsafe.Sizeof(batchForgetIn{}))
	if len(arg) < hdr {
		return
	}
	count := int((*batchForgetIn)(unsafe.Pointer(&arg[0])).count)
	one := int(unsafe.Sizeof(forgetOne{}))
	count = min(count, (len(arg)-hdr)/one)
	if count == 0 {
		return
	}
	if t.debug {
		t.logf("/dev/fuse: BATCH_FORGET of %d", count)
	}
	for _, f := range unsafe.Slice((*forgetOne)(unsafe.Pointer(&arg[hdr])), count) {
		if f.nodeid != pollHackInode {
			fs.Forget(f.nodeid, f.nlookup)
		}
	}
}

func (t *Transport) replyDev(unique uint64, st fuse.Status) {
	oh := fuse.OutHeader{Length: outHeaderSize, Status: -int32(st), Unique: unique}
	unix.Write(t.devFd, unsafe.Slice((*byte)(unsafe.Pointer(&oh)), outHeaderSize))
}

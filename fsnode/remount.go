package fsnode

import (
	"context"
	"errors"
	"fmt"
	"os"
	"strconv"
	"strings"
	"syscall"

	"github.com/dustin/go-humanize"
	"github.com/hanwen/go-fuse/v2/fs"

	"github.com/tmpmount/tmpmount/spool"
)

// Limits change on a live mount (tmpmount -o remount, which mount(8) runs
// for `mount -o remount,...`) through an ioctl on the mount's root
// directory. The request reaches the daemon through the kernel, which
// stamps it with the caller's uid, so the daemon can tell who asks: only
// root and the user who mounted (the daemon's own user) may change limits.
// An ioctl, rather than a setxattr, works on a read-only mount too, and
// needs no socket to find, secure and clean up: whoever can reach the
// mount can ask, and the daemon decides.

// RemountIoctl is the ioctl's number: _IOW(0xE7, 1, [RemountArgSize]byte).
// Its argument is Limits.Encode, NUL-padded.
const (
	RemountArgSize = 256
	RemountIoctl   = 1<<30 | RemountArgSize<<16 | 0xE7<<8 | 1
)

// Limits are the limits a remount can change; 0 is no limit.
type Limits struct {
	MaxSize   int64 // --max-size
	MemLimit  int64 // --mem-limit
	SizeLimit int64 // --size
	MaxInodes int64 // --inodes
}

// Encode gives the ioctl's argument.
func (l Limits) Encode() []byte {
	buf := make([]byte, RemountArgSize)
	copy(buf, fmt.Sprintf("max_size=%d,mem_limit=%d,size=%d,nr_inodes=%d", l.MaxSize, l.MemLimit, l.SizeLimit, l.MaxInodes))
	return buf
}

// decodeLimits reads Encode's text: all four limits, nothing else.
func decodeLimits(arg []byte) (Limits, error) {
	text, _, _ := strings.Cut(string(arg), "\x00")
	var l Limits
	fields := map[string]*int64{"max_size": &l.MaxSize, "mem_limit": &l.MemLimit, "size": &l.SizeLimit, "nr_inodes": &l.MaxInodes}
	seen := 0
	for _, kv := range strings.Split(text, ",") {
		k, v, _ := strings.Cut(kv, "=")
		p, ok := fields[k]
		n, err := strconv.ParseInt(v, 10, 64)
		if !ok || err != nil || n < 0 {
			return Limits{}, fmt.Errorf("bad limit %q", kv)
		}
		*p = n
		seen++
	}
	if seen != len(fields) {
		return Limits{}, fmt.Errorf("want the %d limits, got %q", len(fields), text)
	}
	return l, nil
}

var _ fs.NodeIoctler = (*Dir)(nil)

// Ioctl answers RemountIoctl on the mount's root directory, and every
// other ioctl as any node does (the chattr flags, fileattr.go).
func (d *Dir) Ioctl(ctx context.Context, f fs.FileHandle, cmd uint32, arg uint64, input []byte, output []byte) (int32, syscall.Errno) {
	if cmd != RemountIoctl || d != d.root.dir {
		return d.node.Ioctl(ctx, f, cmd, arg, input, output)
	}
	uid := callerOf(ctx).Uid
	if uid != 0 && int(uid) != os.Geteuid() {
		d.root.log.Printf("refused a change of limits by uid %d: only root and the user who mounted (uid %d) may", uid, os.Geteuid())
		return 0, syscall.EPERM
	}
	l, err := decodeLimits(input)
	if err != nil {
		d.root.log.Printf("refused a change of limits by uid %d: %v", uid, err)
		return 0, syscall.EINVAL
	}
	return 0, d.root.setLimits(uid, l)
}

// setLimits changes the mount's limits: EBUSY if a capacity or inode
// limit is below what is in use, and nothing changes then.
func (r *Root) setLimits(uid uint32, l Limits) syscall.Errno {
	r.limitsMu.Lock()
	defer r.limitsMu.Unlock()
	old := r.Limits()
	if l.MaxInodes > 0 && r.inodes.Load() > l.MaxInodes {
		r.log.Printf("refused nr_inodes %d (uid %d): %d inodes are in use", l.MaxInodes, uid, r.inodes.Load())
		return syscall.EBUSY
	}
	err := r.store.SetLimits(spool.Limits{MaxSize: l.MaxSize, MemLimit: l.MemLimit, SizeLimit: l.SizeLimit})
	if errors.Is(err, spool.ErrInUse) {
		r.log.Printf("refused limits (uid %d): %v", uid, err)
		return syscall.EBUSY
	}
	r.maxInodes.Store(l.MaxInodes)
	r.updatePassthrough()
	r.log.Printf("limits changed by uid %d: %s", uid, describeChange(old, r.Limits()))
	if err != nil {
		return r.errno("remount", err)
	}
	return 0
}

// Limits returns the mount's limits now.
func (r *Root) Limits() Limits {
	mem, size := r.store.Limits()
	return Limits{MaxSize: r.store.MaxSize(), MemLimit: mem, SizeLimit: size, MaxInodes: r.maxInodes.Load()}
}

// describeChange says what changed, for the log.
func describeChange(old, now Limits) string {
	bytes := func(n int64) string {
		if n == 0 {
			return "none"
		}
		return humanize.IBytes(uint64(n))
	}
	var parts []string
	add := func(name string, a, b int64, show func(int64) string) {
		if a != b {
			parts = append(parts, fmt.Sprintf("%s %s -> %s", name, show(a), show(b)))
		}
	}
	add("max-size", old.MaxSize, now.MaxSize, bytes)
	add("mem-limit", old.MemLimit, now.MemLimit, bytes)
	add("size", old.SizeLimit, now.SizeLimit, bytes)
	add("inodes", old.MaxInodes, now.MaxInodes, func(n int64) string {
		if n == 0 {
			return "none"
		}
		return strconv.FormatInt(n, 10)
	})
	if len(parts) == 0 {
		return "nothing"
	}
	return strings.Join(parts, ", ")
}

// initPassthrough records why passthrough cannot be used ("" if it can)
// and turns it on or off.
func (r *Root) initPassthrough(whyNot string) {
	r.passthroughMu.Lock()
	r.passthroughWhyNot = whyNot
	r.passthroughMu.Unlock()
	r.updatePassthrough()
}

// updatePassthrough turns passthrough on or off for new opens: on where
// the kernel takes it (passthroughWhyNot is empty) and no capacity is
// kept, which passthrough writes would bypass. Files that already have
// passthrough opens keep getting them (the kernel refuses to mix kinds);
// writes through those bypass a capacity set by a remount until they
// close.
func (r *Root) updatePassthrough() {
	_, size := r.store.Limits()
	r.passthroughMu.Lock()
	defer r.passthroughMu.Unlock()
	switch {
	case r.passthroughWhyNot != "":
		r.passthroughNote = "off (" + r.passthroughWhyNot + ")"
		r.passthrough.Store(false)
	case size > 0:
		// Passthrough writes never reach the daemon, which could then
		// not hold the mount to its capacity.
		r.passthroughNote = "off (--size is kept by the daemon)"
		r.passthrough.Store(false)
	default:
		r.passthroughNote = "on"
		r.passthrough.Store(true)
	}
}

// passthroughRoom says whether the spill disk has room enough for a new
// passthrough open: more than its reserve above the reserve. Passthrough
// writes never reach the daemon, so they bypass the check that keeps the
// reserve free; while room is short, opens are served by the daemon,
// which keeps it, and a writer that got ENOSPC gets it again when it
// reopens the file.
func (r *Root) passthroughRoom() bool {
	return r.store.SpillRoomAbove(r.store.SpillReserve())
}

// Passthrough says whether rolled-over files are served by FUSE
// passthrough, and if not, why.
func (r *Root) Passthrough() string {
	r.passthroughMu.Lock()
	defer r.passthroughMu.Unlock()
	return r.passthroughNote
}

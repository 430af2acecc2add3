package keepdir

import (
	"fmt"
	"os"
	"os/user"
	"runtime"
	"strconv"
	"sync"
	"time"
	"unsafe"

	"golang.org/x/sys/unix"
)

// Identity is the user a keep-dir operation is done for.
type Identity struct {
	UID, GID uint32
	Groups   []uint32 // supplementary groups
}

func (id Identity) String() string { return fmt.Sprintf("uid %d gid %d", id.UID, id.GID) }

// overflowGID is the kernel's nogroup: the group of a user who has none
// we know of.
const overflowGID = 65534

// RunAs runs fn with id's rights in the filesystem, and returns its error.
//
// A root daemon acting for another user runs fn on a new OS thread whose
// filesystem user and group, supplementary groups and capabilities are the
// user's (setgroups, setfsgid and setfsuid act on the calling thread only,
// when made as raw system calls; setfsuid away from root drops
// CAP_DAC_OVERRIDE and the other filesystem capabilities, and the rest of
// the effective set is dropped too). The kernel then checks every path,
// create, rename, chown, chmod and xattr as it would for that user. The
// thread is never handed back: the goroutine ends without unlocking it, so
// the runtime ends the thread rather than reuse it with a changed identity
// (and the runtime never clones a new thread from a locked one).
//
// A daemon that is not root acts with its own rights (it has no others to
// give up), and acting for root needs no switch: fn then runs on a
// goroutine of its own all the same, which no locked thread runs, so that
// RunAs is the daemon's rights again even when called from inside another
// RunAs.
func RunAs(id Identity, fn func() error) error {
	errc := make(chan error, 1)
	if os.Geteuid() != 0 || id.UID == 0 {
		go func() { errc <- fn() }()
		return <-errc
	}
	go func() {
		runtime.LockOSThread() // never unlocked: see above
		defer func() {
			if p := recover(); p != nil {
				errc <- fmt.Errorf("keep dir operation as %v panicked: %v", id, p)
			}
		}()
		if err := become(id); err != nil {
			errc <- err
			return
		}
		errc <- fn()
	}()
	return <-errc
}

// become gives the calling thread id's filesystem identity and drops its
// effective capabilities. The thread must be locked and never reused.
func become(id Identity) error {
	groups := make([]uint32, 0, len(id.Groups))
	groups = append(groups, id.Groups...)
	var list uintptr
	if len(groups) > 0 {
		list = uintptr(unsafe.Pointer(&groups[0]))
	}
	// Raw system calls: the C library's wrappers and syscall.Setgroups
	// change every thread of the process.
	if _, _, e := unix.RawSyscall(unix.SYS_SETGROUPS, uintptr(len(groups)), list, 0); e != 0 {
		return fmt.Errorf("setgroups for %v: %w", id, e)
	}
	unix.RawSyscall(unix.SYS_SETFSGID, uintptr(id.GID), 0, 0)
	unix.RawSyscall(unix.SYS_SETFSUID, uintptr(id.UID), 0, 0)
	// setfsuid and setfsgid report no errors; an invalid ID (-1) changes
	// nothing and returns the one in force, which says whether it took.
	if got, _, _ := unix.RawSyscall(unix.SYS_SETFSGID, ^uintptr(0), 0, 0); uint32(got) != id.GID {
		return fmt.Errorf("setfsgid %d: still %d", id.GID, got)
	}
	if got, _, _ := unix.RawSyscall(unix.SYS_SETFSUID, ^uintptr(0), 0, 0); uint32(got) != id.UID {
		return fmt.Errorf("setfsuid %d: still %d", id.UID, got)
	}
	hdr := unix.CapUserHeader{Version: unix.LINUX_CAPABILITY_VERSION_3}
	var caps [2]unix.CapUserData
	if err := unix.Capget(&hdr, &caps[0]); err != nil {
		return fmt.Errorf("capget: %w", err)
	}
	caps[0].Effective, caps[1].Effective = 0, 0
	if err := unix.Capset(&hdr, &caps[0]); err != nil {
		return fmt.Errorf("drop capabilities: %w", err)
	}
	return nil
}

// Users finds the identity to act for a user with, from the user
// database, and remembers it for a while. It is safe for concurrent use.
type Users struct {
	mu    sync.Mutex
	known map[uint32]userEntry
}

type userEntry struct {
	found  bool
	gid    uint32
	groups []uint32
	at     time.Time
}

// usersTTL is how long a user's groups are remembered: a change to the
// user database reaches saves within it.
const usersTTL = 30 * time.Second

// Identity returns the identity to act for uid with. gid is the group the
// user's own processes were last seen using (a FUSE request carries it),
// if seen; else the user's primary group from the user database, else
// nogroup. The supplementary groups are the database's (none for a user
// it does not know).
func (u *Users) Identity(uid, gid uint32, seen bool) Identity {
	e := u.lookup(uid)
	id := Identity{UID: uid, GID: gid, Groups: e.groups}
	if !seen {
		id.GID = overflowGID
		if e.found {
			id.GID = e.gid
		}
	}
	return id
}

func (u *Users) lookup(uid uint32) userEntry {
	u.mu.Lock()
	e, ok := u.known[uid]
	u.mu.Unlock()
	if ok && time.Since(e.at) < usersTTL {
		return e
	}
	e = userEntry{at: time.Now()}
	if usr, err := user.LookupId(strconv.FormatUint(uint64(uid), 10)); err == nil {
		if g, err := strconv.ParseUint(usr.Gid, 10, 32); err == nil {
			e.found, e.gid = true, uint32(g)
		}
		if ids, err := usr.GroupIds(); err == nil {
			for _, s := range ids {
				if g, err := strconv.ParseUint(s, 10, 32); err == nil {
					e.groups = append(e.groups, uint32(g))
				}
			}
		}
	}
	u.mu.Lock()
	if u.known == nil {
		u.known = make(map[uint32]userEntry)
	}
	u.known[uid] = e
	u.mu.Unlock()
	return e
}

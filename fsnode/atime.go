package fsnode

import (
	"fmt"
	"syscall"
)

// AtimeMode says when reads update atime, as the mount options of the
// same names do on tmpfs.
type AtimeMode uint8

const (
	// Relatime (the default): when atime is not after mtime or ctime, or
	// is a day old.
	Relatime AtimeMode = iota
	// Strictatime: at every read.
	Strictatime
	// Noatime: never (utimensat still sets it).
	Noatime
)

func (m AtimeMode) String() string {
	switch m {
	case Strictatime:
		return "strictatime"
	case Noatime:
		return "noatime"
	}
	return "relatime"
}

// ParseAtimeMode reads relatime, strictatime or noatime.
func ParseAtimeMode(s string) (AtimeMode, error) {
	for _, m := range []AtimeMode{Relatime, Strictatime, Noatime} {
		if s == m.String() {
			return m, nil
		}
	}
	return Relatime, fmt.Errorf("%q is not an atime mode: use relatime, strictatime or noatime", s)
}

// Atime is a mount's atime settings. The kernel never updates a FUSE
// inode's atime itself (its inodes are S_NOATIME): the daemon does, for
// the reads, readdirs and readlinks it serves (touchAtime). Reads served
// from the kernel's page cache never reach it; under strictatime every
// open drops the file's cached pages (no FOPEN_KEEP_CACHE), so that the
// first read of each open does.
type Atime struct {
	Mode       AtimeMode
	NoDiratime bool // directories' atime never moves (nodiratime)
}

// mountFlags and mountOptions are the settings as mount(2) flags and as
// fusermount3 options, so that /proc/mounts shows them as for tmpfs (the
// kernel never acts on them for FUSE). fusermount3 knows noatime only,
// and would pass strictatime and nodiratime to FUSE, which refuses them.
func (a Atime) mountFlags() uintptr {
	var f uintptr
	switch a.Mode {
	case Strictatime:
		f |= syscall.MS_STRICTATIME
	case Noatime:
		f |= syscall.MS_NOATIME
	}
	if a.NoDiratime {
		f |= syscall.MS_NODIRATIME
	}
	return f
}

func (a Atime) mountOptions() []string {
	if a.Mode == Noatime {
		return []string{"noatime"}
	}
	return nil
}

// touchAtime updates atime for a read the daemon serves, as the mount's
// atime settings say.
func (n *node) touchAtime() {
	a := n.root.atime
	if a.Mode == Noatime {
		return
	}
	now := nowTimespec()
	n.mu.Lock()
	defer n.mu.Unlock()
	if n.fsflags&flNoatime != 0 || a.NoDiratime && n.mode&syscall.S_IFMT == syscall.S_IFDIR {
		return // chattr +A, or nodiratime
	}
	if a.Mode == Strictatime || !n.mtime.before(n.atime) || !n.ctime.before(n.atime) || now.sec-n.atime.sec >= 24*60*60 {
		n.atime = now
	}
}

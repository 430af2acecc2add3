package ringfuse

import (
	"errors"
	"os"
	"strconv"

	"golang.org/x/sys/unix"
)

// go-fuse keeps the mount's /dev/fuse descriptor to itself; the rings are
// set up on the same open file, found among the process's descriptors.

// fuseDevice is /dev/fuse's device number (misc, minor 229).
var fuseDevice = unix.Mkdev(10, 229)

// FuseFds lists the descriptors of this process open on /dev/fuse.
func FuseFds() map[int]bool {
	fds := map[int]bool{}
	entries, err := os.ReadDir("/proc/self/fd")
	if err != nil {
		return fds
	}
	for _, e := range entries {
		fd, err := strconv.Atoi(e.Name())
		if err != nil {
			continue
		}
		var st unix.Stat_t
		if unix.Fstat(fd, &st) == nil && st.Mode&unix.S_IFMT == unix.S_IFCHR && st.Rdev == fuseDevice {
			fds[fd] = true
		}
	}
	return fds
}

// NewFuseFd finds the one /dev/fuse descriptor opened since before was
// taken: the mount's.
func NewFuseFd(before map[int]bool) (int, error) {
	found := -1
	for fd := range FuseFds() {
		if before[fd] {
			continue
		}
		if found >= 0 {
			return -1, errors.New("more than one new /dev/fuse descriptor: cannot tell the mount's")
		}
		found = fd
	}
	if found < 0 {
		return -1, errors.New("the mount's /dev/fuse descriptor is not found")
	}
	return found, nil
}

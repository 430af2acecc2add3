package fsnode

import (
	"bufio"
	"fmt"
	"os"
	"strconv"
	"strings"

	"github.com/hanwen/go-fuse/v2/fuse"
)

// FUSE requests carry only the caller's fsuid, fsgid and pid; the rest of
// its credentials (supplementary groups, capabilities) come from
// /proc/PID/status, read only in the rare cases where they are at stake.
// The caller is blocked in its system call meanwhile, so the pid is its.

// procStatusField returns the value of one "Name:" line of the caller's
// /proc status, or "" if it cannot be read.
func procStatusField(caller *fuse.Caller, name string) string {
	if caller.Pid == 0 {
		return ""
	}
	f, err := os.Open(fmt.Sprintf("/proc/%d/status", caller.Pid))
	if err != nil {
		return ""
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		if v, ok := strings.CutPrefix(sc.Text(), name+":"); ok {
			return strings.TrimSpace(v)
		}
	}
	return ""
}

// inGroup reports whether the caller is in group gid: its own group, or
// one of the supplementary groups of its process.
func inGroup(caller *fuse.Caller, gid uint32) bool {
	if caller.Gid == gid {
		return true
	}
	for _, g := range strings.Fields(procStatusField(caller, "Groups")) {
		if v, err := strconv.ParseUint(g, 10, 32); err == nil && uint32(v) == gid {
			return true
		}
	}
	return false
}

// callerCapable reports whether the caller holds capability cap as the
// kernel's capable() means it: in its effective set, in the daemon's user
// namespace (a process that is root in a user namespace of its own has
// every capability there, and none here). Where the caller's process
// cannot be seen, only root is; where its namespace cannot be (a daemon
// not running as root), a capable uid 0, which a user namespace not made
// by root cannot map.
func callerCapable(caller *fuse.Caller, cp uintptr) bool {
	capEff := procStatusField(caller, "CapEff")
	if capEff == "" {
		return caller.Uid == 0
	}
	bits, err := strconv.ParseUint(capEff, 16, 64)
	if err != nil || bits&(1<<cp) == 0 {
		return false
	}
	self, err1 := os.Readlink("/proc/self/ns/user")
	theirs, err2 := os.Readlink(fmt.Sprintf("/proc/%d/ns/user", caller.Pid))
	if err1 != nil || err2 != nil {
		return caller.Uid == 0
	}
	return self == theirs
}

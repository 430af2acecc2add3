package fsnode

import (
	"bufio"
	"fmt"
	"os"
	"strconv"
	"strings"

	"github.com/hanwen/go-fuse/v2/fuse"
)

// inGroup reports whether the caller is in group gid: its own group, or
// one of the supplementary groups of its process. FUSE requests carry
// only the fsgid, so the rest comes from /proc; this is needed only in
// the rare cases where a set-group-ID bit is at stake.
func inGroup(caller *fuse.Caller, gid uint32) bool {
	if caller.Gid == gid {
		return true
	}
	if caller.Pid == 0 {
		return false
	}
	f, err := os.Open(fmt.Sprintf("/proc/%d/status", caller.Pid))
	if err != nil {
		return false
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		groups, ok := strings.CutPrefix(sc.Text(), "Groups:")
		if !ok {
			continue
		}
		for _, g := range strings.Fields(groups) {
			if v, err := strconv.ParseUint(g, 10, 32); err == nil && uint32(v) == gid {
				return true
			}
		}
		return false
	}
	return false
}

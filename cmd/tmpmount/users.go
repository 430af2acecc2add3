package main

import (
	"bytes"
	"fmt"
	"os"
	"strconv"
	"strings"

	"golang.org/x/sys/unix"
)

// process is a process that tmpmount reports on.
type process struct {
	pid  int
	name string
}

func (p process) String() string { return fmt.Sprintf("%d (%s)", p.pid, p.name) }

// procStat is what /proc/PID/stat says about a process that matters here.
type procStat struct {
	ppid   int
	zombie bool // exited, not yet reaped: nothing left to end
}

// readProcStat reads /proc/PID/stat; ok is false if the process is gone.
func readProcStat(pid int) (st procStat, ok bool) {
	data, err := os.ReadFile("/proc/" + strconv.Itoa(pid) + "/stat")
	if err != nil {
		return st, false
	}
	// The command name, in parentheses, may hold anything: the fields
	// that follow start after its last ')'.
	i := bytes.LastIndexByte(data, ')')
	if i < 0 {
		return st, false
	}
	fields := strings.Fields(string(data[i+1:]))
	if len(fields) < 2 {
		return st, false
	}
	st.zombie = fields[0] == "Z" || fields[0] == "X"
	st.ppid, _ = strconv.Atoi(fields[1])
	return st, true
}

func processName(pid int) string {
	name, _ := os.ReadFile("/proc/" + strconv.Itoa(pid) + "/comm")
	return strings.TrimSpace(string(name))
}

// descendants lists the live (not zombie) processes below pid in the
// process tree, as /proc shows it now.
func descendants(pid int) []process {
	children := map[int][]int{}
	entries, _ := os.ReadDir("/proc")
	for _, e := range entries {
		p, err := strconv.Atoi(e.Name())
		if err != nil {
			continue
		}
		if st, ok := readProcStat(p); ok && !st.zombie {
			children[st.ppid] = append(children[st.ppid], p)
		}
	}
	var found []process
	queue := children[pid]
	for len(queue) > 0 {
		p := queue[0]
		queue = queue[1:]
		found = append(found, process{p, processName(p)})
		queue = append(queue, children[p]...)
	}
	return found
}

// usersOfDev lists the processes that hold something on the filesystem
// with device number dev: their working or root directory, an open file,
// or a mapped one (what fuser -m does). It never sends the filesystem a
// request: it works on a mount that is detached or whose daemon is busy.
func usersOfDev(dev uint64) []process {
	self := os.Getpid()
	var users []process
	entries, _ := os.ReadDir("/proc")
	for _, e := range entries {
		pid, err := strconv.Atoi(e.Name())
		if err != nil || pid == self {
			continue
		}
		if holdsDev("/proc/"+e.Name(), dev) {
			users = append(users, process{pid, processName(pid)})
		}
	}
	return users
}

func holdsDev(procDir string, dev uint64) bool {
	on := func(link string) bool {
		// No attributes asked for, and none synced: the kernel answers
		// with the device from its own records, FUSE included.
		var stx unix.Statx_t
		err := unix.Statx(unix.AT_FDCWD, link, unix.AT_STATX_DONT_SYNC, 0, &stx)
		return err == nil && unix.Mkdev(stx.Dev_major, stx.Dev_minor) == dev
	}
	if on(procDir+"/cwd") || on(procDir+"/root") {
		return true
	}
	fds, _ := os.ReadDir(procDir + "/fd")
	for _, fd := range fds {
		if on(procDir + "/fd/" + fd.Name()) {
			return true
		}
	}
	// ADDRESS PERMS OFFSET MAJOR:MINOR INODE PATH, in hex.
	want := fmt.Sprintf("%02x:%02x", unix.Major(dev), unix.Minor(dev))
	maps, _ := os.ReadFile(procDir + "/maps")
	for _, line := range strings.Split(string(maps), "\n") {
		if f := strings.Fields(line); len(f) >= 5 && f[3] == want && f[4] != "0" {
			return true
		}
	}
	return false
}

// pidList is "1 2 3", for a kill command line.
func pidList(ps []process) string {
	var b strings.Builder
	for i, p := range ps {
		if i > 0 {
			b.WriteByte(' ')
		}
		b.WriteString(strconv.Itoa(p.pid))
	}
	return b.String()
}

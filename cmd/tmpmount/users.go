package main

import (
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
)

// process is a process that uses a mount.
type process struct {
	pid  int
	name string
}

func (p process) String() string { return fmt.Sprintf("%d (%s)", p.pid, p.name) }

// usersOf lists the processes that hold something inside mountpoint: their
// working or root directory, an open file, or a mapped one. (What fuser -m
// does, without needing it installed.)
func usersOf(mountpoint string) []process {
	self := os.Getpid()
	inside := func(p string) bool {
		p = strings.TrimSuffix(p, " (deleted)")
		return within(p, mountpoint)
	}
	var users []process
	entries, _ := os.ReadDir("/proc")
	for _, e := range entries {
		pid, err := strconv.Atoi(e.Name())
		if err != nil || pid == self {
			continue
		}
		dir := filepath.Join("/proc", e.Name())
		if usesMount(dir, inside) {
			name, _ := os.ReadFile(filepath.Join(dir, "comm"))
			users = append(users, process{pid, strings.TrimSpace(string(name))})
		}
	}
	return users
}

func usesMount(procDir string, inside func(string) bool) bool {
	for _, link := range []string{"cwd", "root"} {
		if target, err := os.Readlink(filepath.Join(procDir, link)); err == nil && inside(target) {
			return true
		}
	}
	fds, _ := os.ReadDir(filepath.Join(procDir, "fd"))
	for _, fd := range fds {
		if target, err := os.Readlink(filepath.Join(procDir, "fd", fd.Name())); err == nil && inside(target) {
			return true
		}
	}
	maps, _ := os.ReadFile(filepath.Join(procDir, "maps"))
	for _, line := range strings.Split(string(maps), "\n") {
		if i := strings.Index(line, "/"); i >= 0 && inside(line[i:]) {
			return true
		}
	}
	return false
}

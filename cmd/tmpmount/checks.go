package main

import (
	"bufio"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"

	"golang.org/x/sys/unix"
)

// checkMountpoint returns the absolute mount point, or says in one line
// what is wrong with it and what to do.
func checkMountpoint(path string) (string, error) {
	abs, err := filepath.Abs(path)
	if err != nil {
		return "", fmt.Errorf("mount point %s: %v", path, err)
	}
	st, err := os.Stat(abs)
	switch {
	case errors.Is(err, os.ErrNotExist):
		return "", fmt.Errorf("mount point %s does not exist: create it first (mkdir -p %s)", abs, abs)
	case errors.Is(err, unix.ENOTCONN):
		return "", fmt.Errorf("mount point %s is a dead FUSE mount (its daemon is gone): unmount it first (umount %s, or fusermount3 -u %s)", abs, abs, abs)
	case err != nil:
		return "", fmt.Errorf("mount point %s: %v", abs, err)
	case !st.IsDir():
		return "", fmt.Errorf("mount point %s is not a directory", abs)
	}
	if real, err := filepath.EvalSymlinks(abs); err == nil {
		abs = real
	}
	fstype, mounted, err := mountedAt(abs)
	if err != nil {
		return "", err
	}
	if mounted {
		return "", fmt.Errorf("mount point %s is already mounted (%s): unmount it first or choose another directory", abs, fstype)
	}
	return abs, nil
}

// mountedAt reports whether something is mounted at path, per
// /proc/self/mountinfo, and its filesystem type.
func mountedAt(path string) (fstype string, mounted bool, err error) {
	f, err := os.Open("/proc/self/mountinfo")
	if err != nil {
		return "", false, fmt.Errorf("read mount table: %v", err)
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	sc.Buffer(make([]byte, 64<<10), 1<<20)
	for sc.Scan() {
		// ID PARENT MAJ:MIN ROOT MOUNTPOINT OPTIONS [OPTIONAL...] - FSTYPE SOURCE SUPER
		fields := strings.Fields(sc.Text())
		if len(fields) < 5 || unescapeMountinfo(fields[4]) != path {
			continue
		}
		for i, f := range fields {
			if f == "-" && i+1 < len(fields) {
				fstype = fields[i+1]
			}
		}
		mounted = true
	}
	return fstype, mounted, sc.Err()
}

// unescapeMountinfo undoes the octal escapes (\040 for space, ...) that
// mountinfo uses for white space and backslashes in paths.
func unescapeMountinfo(s string) string {
	if !strings.Contains(s, `\`) {
		return s
	}
	var b strings.Builder
	for i := 0; i < len(s); i++ {
		if s[i] == '\\' && i+4 <= len(s) {
			var v byte
			ok := true
			for _, c := range []byte(s[i+1 : i+4]) {
				if c < '0' || c > '7' {
					ok = false
					break
				}
				v = v*8 + c - '0'
			}
			if ok {
				b.WriteByte(v)
				i += 3
				continue
			}
		}
		b.WriteByte(s[i])
	}
	return b.String()
}

// checkFUSE says what is missing when this process cannot mount.
func checkFUSE() error {
	if _, err := os.Stat("/dev/fuse"); err != nil {
		return errors.New("no /dev/fuse: load the FUSE module (modprobe fuse); in a container, start it with --device /dev/fuse --cap-add SYS_ADMIN")
	}
	if os.Geteuid() == 0 {
		return nil
	}
	if _, err := fusermountPath(); err != nil {
		return errors.New("not root and no fusermount3 to mount with: install it (apt install fuse3) or run as root")
	}
	return nil
}

// fusermountPath finds the helper that unprivileged mounts go through, as
// go-fuse does: fusermount3, then fusermount, in $PATH and then in /bin.
func fusermountPath() (string, error) {
	for _, name := range []string{"fusermount3", "fusermount"} {
		if p, err := exec.LookPath(name); err == nil {
			return p, nil
		}
		if p, err := exec.LookPath(filepath.Join("/bin", name)); err == nil {
			return p, nil
		}
	}
	return "", errors.New("no fusermount3 or fusermount found")
}

// spillParent picks the directory for the private spill directory and
// refuses one inside the mount, where spilled data would feed on itself.
func spillParent(flagValue, mountpoint string) (string, error) {
	dir, source := flagValue, "--spill-dir"
	if dir == "" {
		dir, source = os.Getenv("TMPDIR"), "$TMPDIR"
	}
	if dir == "" {
		dir, source = "/var/tmp", "the default"
	}
	abs, err := filepath.Abs(dir)
	if err != nil {
		return "", fmt.Errorf("spill dir %s (%s): %v", dir, source, err)
	}
	if real, err := filepath.EvalSymlinks(abs); err == nil {
		abs = real
	}
	if abs == mountpoint || strings.HasPrefix(abs, mountpoint+"/") {
		return "", fmt.Errorf("spill dir %s (%s) is inside the mount point %s: choose another with --spill-dir", abs, source, mountpoint)
	}
	return abs, nil
}

package main

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"runtime"

	"golang.org/x/sys/unix"
)

// openOutput opens a file that tmpmount writes at the user's choice
// (--log, --events, --profile's files) for writing, creating it 0600. It
// does not follow a symlink as the last component: a user who means the
// file a link points to names that file. Started by root on another
// user's behalf (real uid not root, as a setuid helper would be), it opens
// the file with that user's rights, not root's. what names the file in
// errors ("log file").
func openOutput(what, path string, flags int) (*os.File, error) {
	flags |= unix.O_WRONLY | unix.O_CREAT | unix.O_NOFOLLOW | unix.O_CLOEXEC | unix.O_NONBLOCK
	var fd int
	err := asRealUser(func() (err error) {
		fd, err = unix.Open(path, flags, 0o600)
		return err
	})
	if errors.Is(err, unix.ELOOP) {
		if target, evalErr := filepath.EvalSymlinks(path); evalErr == nil {
			return nil, fmt.Errorf("%s %s is a symlink, which tmpmount does not follow: give the file itself (%s) if you mean it", what, path, target)
		}
		return nil, fmt.Errorf("%s %s is a symlink, which tmpmount does not follow: give the file itself", what, path)
	}
	if err != nil {
		return nil, fmt.Errorf("%s %s: %v", what, path, err)
	}
	// O_NONBLOCK only kept open(2) from hanging on a FIFO; writes block.
	if err := clearNonblock(fd); err != nil {
		unix.Close(fd)
		return nil, fmt.Errorf("%s %s: %v", what, path, err)
	}
	return os.NewFile(uintptr(fd), path), nil
}

func clearNonblock(fd int) error {
	flags, err := unix.FcntlInt(uintptr(fd), unix.F_GETFL, 0)
	if err != nil {
		return err
	}
	_, err = unix.FcntlInt(uintptr(fd), unix.F_SETFL, flags&^unix.O_NONBLOCK)
	return err
}

// asRealUser runs open with the real user's file-system rights when this
// process runs as root for someone else (euid 0, real uid not 0). The
// file-system uid and gid are per thread in Linux, so the thread is locked
// for the call and given back as it was.
func asRealUser(open func() error) error {
	uid, gid := os.Getuid(), os.Getgid()
	if os.Geteuid() != 0 || uid == 0 {
		return open()
	}
	runtime.LockOSThread()
	defer runtime.UnlockOSThread()
	unix.Setfsgid(gid)
	unix.Setfsuid(uid)
	defer func() {
		unix.Setfsuid(0)
		unix.Setfsgid(os.Getegid())
	}()
	return open()
}

package fsnode

import (
	"errors"
	"syscall"
)

// errno turns an error from spool (or anything below) into the errno the
// caller gets. Errors that carry an errno keep it; anything else is a bug
// or an I/O failure, which is logged and reported as EIO, as is an EIO
// from the backing file.
func (r *Root) errno(op string, err error) syscall.Errno {
	if err == nil {
		return 0
	}
	var e syscall.Errno
	if errors.As(err, &e) && e != syscall.EIO {
		return e
	}
	r.log.Printf("%s: %v", op, err)
	return syscall.EIO
}

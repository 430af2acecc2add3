package main

import (
	"encoding/json"
	"errors"
	"fmt"
	"log"
	"path/filepath"
	"slices"
	"strings"
	"unsafe"

	"golang.org/x/sys/unix"

	"github.com/tmpmount/tmpmount/fsnode"
)

// tmpmount -o remount,OPTS MOUNTPOINT changes a live mount's limits (size,
// nr_inodes, mem_limit, max_size) and makes it read-only or writable
// again, as a remount of tmpfs does. mount(8) runs it too: `mount -o
// remount,size=2G /mnt/t` makes mount.fuse run `tmpmount tmpmount /mnt/t
// -o rw,nosuid,...,remount,size=2G`, the options the mount has now
// merged with the new ones (and an fstab line's, if there is one).
//
// The limits go to the daemon by an ioctl on the mount's root directory,
// which the daemon grants to root and to the user who mounted only (see
// fsnode/remount.go). Read-only and writable are the kernel's, for root
// only: a remount of the FUSE mount itself. Other options stay as they
// are (tmpfs too ignores mode= on a remount); unknown ones are refused.

// remountRequest is what a remount asks to change; nil is "as it is".
type remountRequest struct {
	mountpoint string
	maxSize    *int64
	memLimit   *int64
	size       *int64
	inodes     *int64
	readOnly   *bool
}

// isRemount reports whether args are a remount: "remount" among the -o
// options.
func isRemount(args []string) bool {
	for i, a := range args {
		list, ok := "", false
		switch {
		case a == "--":
			return false
		case a == "-o" && i+1 < len(args):
			list, ok = args[i+1], true
		case strings.HasPrefix(a, "-o") && !strings.HasPrefix(a, "--"):
			list, ok = a[2:], true
		}
		if ok && (list == "remount" || strings.HasPrefix(list, "remount,") ||
			strings.HasSuffix(list, ",remount") || strings.Contains(list, ",remount,")) {
			return true
		}
	}
	return false
}

// remountCommand carries out a remount: exit status 0 when done, 2 when
// it is refused or fails, with one line saying why. The limits change
// before ro/rw, and when they are refused nothing changes.
func remountCommand(args []string, logger *log.Logger) int {
	req, err := parseRemount(args)
	if err != nil {
		logger.Printf("remount: %v", err)
		return exitUsage
	}
	mnt, opts, err := remountTarget(req.mountpoint)
	if err != nil {
		logger.Printf("remount %s: %v", req.mountpoint, err)
		return exitUsage
	}
	if err := changeLimits(mnt, req); err != nil {
		logger.Printf("remount %s: %v", mnt, err)
		return exitUsage
	}
	if req.readOnly != nil {
		if err := remountReadOnly(mnt, opts, *req.readOnly); err != nil {
			logger.Printf("remount %s: %v", mnt, err)
			return exitUsage
		}
	}
	return exitOK
}

// remountIgnored are the options a remount leaves as they are: mount(8)'s
// and fstab's own, the mount flags the mount has (mount(8) passes them
// all again), and what the kernel shows of a FUSE mount. The value, if
// any, does not matter.
var remountIgnored = map[string]bool{
	"remount": true, "defaults": true, "auto": true, "noauto": true, "user": true, "users": true,
	"nouser": true, "owner": true, "group": true, "_netdev": true, "nofail": true, "comment": true,
	"nosuid": true, "suid": true, "nodev": true, "dev": true, "noexec": true, "exec": true,
	"async": true, "sync": true, "dirsync": true, "relatime": true, "norelatime": true, "noatime": true,
	"atime": true, "strictatime": true, "nostrictatime": true, "nodiratime": true, "diratime": true,
	"lazytime": true, "nolazytime": true, "silent": true, "loud": true, "mand": true, "nomand": true,
	"user_id": true, "group_id": true, "default_permissions": true, "allow_other": true,
	"max_read": true, "blksize": true, "rootmode": true, "fd": true, "fsname": true, "subtype": true,
}

// parseRemount reads `[SOURCE] MOUNTPOINT -o remount,OPTS`.
func parseRemount(args []string) (remountRequest, error) {
	var req remountRequest
	var positional, opts []string
	for i := 0; i < len(args); i++ {
		switch a := args[i]; {
		case a == "-o" && i+1 < len(args):
			i++
			opts = append(opts, strings.Split(args[i], ",")...)
		case strings.HasPrefix(a, "-o") && !strings.HasPrefix(a, "--"):
			opts = append(opts, strings.Split(a[2:], ",")...)
		case strings.HasPrefix(a, "-") && a != "-":
			return req, fmt.Errorf("give what to change as -o options (-o remount,size=2G), not %s", a)
		default:
			positional = append(positional, a)
		}
	}
	switch len(positional) {
	case 1, 2: // mount.fuse passes the source first
		req.mountpoint = positional[len(positional)-1]
	default:
		return req, fmt.Errorf("give one MOUNTPOINT: tmpmount -o remount,OPTS MOUNTPOINT")
	}
	for _, opt := range opts {
		if err := req.set(opt); err != nil {
			return req, err
		}
	}
	return req, nil
}

// set reads one -o option of a remount.
func (req *remountRequest) set(opt string) error {
	name, value, hasValue := strings.Cut(opt, "=")
	key := strings.ReplaceAll(name, "-", "_")
	size := func(dst **int64, percentOK bool) error {
		if !hasValue {
			return fmt.Errorf("%s needs a value (%s=SIZE)", name, name)
		}
		n, err := parseSize(value, percentOK)
		if err != nil {
			return fmt.Errorf("%s: %v", name, err)
		}
		*dst = &n
		return nil
	}
	yes, no := true, false
	switch {
	case opt == "":
		return nil
	case key == "size":
		return size(&req.size, true)
	case key == "nr_inodes" || key == "inodes":
		return size(&req.inodes, false)
	case key == "mem_limit":
		return size(&req.memLimit, true)
	case key == "max_size":
		return size(&req.maxSize, false)
	case key == "ro" || key == "read_only":
		req.readOnly = &yes
	case key == "rw":
		req.readOnly = &no
	case remountIgnored[key] || strings.HasPrefix(key, "x_") || knownMountOption(opt):
		// Stays as it is.
	default:
		return fmt.Errorf("unknown option %s (see tmpmount --help)", name)
	}
	return nil
}

// knownMountOption reports whether opt is an option a mount takes, which
// a remount cannot change (mode=, spill_dir=, delete=, ...): an fstab
// line brings them all to a remount of its mount point.
func knownMountOption(opt string) bool {
	flagText, used := mountOptionFlag(opt)
	if !used {
		return true // one the mount itself ignores
	}
	name, _, _ := strings.Cut(strings.TrimPrefix(flagText, "--"), "=")
	return newFlagSet(&options{}).Lookup(name) != nil
}

// remountTarget resolves the mount point, checks that a tmpmount mount is
// there, and returns its per-mount options (from the mount table: statfs
// would ask the daemon, which root cannot reach on a user's mount).
func remountTarget(path string) (string, []string, error) {
	abs, err := filepath.Abs(path)
	if err != nil {
		return "", nil, err
	}
	if real, err := filepath.EvalSymlinks(abs); err == nil {
		abs = real
	}
	table, err := mountTable("/proc/self/mountinfo")
	if err != nil {
		return "", nil, err
	}
	var top *mountEntry
	for i := range table {
		if table[i].point == abs {
			top = &table[i]
		}
	}
	if top == nil || top.fstype != "fuse.tmpmount" {
		return "", nil, fmt.Errorf("not a tmpmount mount point: give the directory a tmpmount is mounted on")
	}
	return abs, top.opts, nil
}

// changeLimits asks the daemon for the limits req changes, if it changes
// any.
func changeLimits(mnt string, req remountRequest) error {
	if req.maxSize == nil && req.memLimit == nil && req.size == nil && req.inodes == nil {
		return nil
	}
	before, err := readMountStats(mnt)
	if err != nil {
		return err
	}
	now := fsnode.Limits{MaxSize: before.MaxSize, MemLimit: before.MemLimit, SizeLimit: before.SizeLimit, MaxInodes: before.MaxInodes}
	want := now
	for _, c := range []struct {
		v   *int64
		dst *int64
	}{{req.maxSize, &want.MaxSize}, {req.memLimit, &want.MemLimit}, {req.size, &want.SizeLimit}, {req.inodes, &want.MaxInodes}} {
		if c.v != nil {
			*c.dst = *c.v
		}
	}
	if want == now {
		return nil // as mount(8) passes it when it only changes ro/rw
	}
	err = sendLimits(mnt, want)
	switch {
	case err == nil:
		return nil
	case errors.Is(err, unix.EBUSY):
		return explainInUse(mnt, want)
	case errors.Is(err, unix.EPERM):
		return errors.New("only root and the user who mounted it may change its limits")
	case errors.Is(err, unix.EACCES):
		return errors.New("permission denied: it was mounted without --allow-other, so only the user who mounted it can reach it")
	case errors.Is(err, unix.ENOTTY):
		return errors.New("its daemon cannot change limits while mounted (an older tmpmount): unmount and mount it again")
	}
	return fmt.Errorf("changing its limits: %v", err)
}

// readMountStats reads the daemon's totals and limits.
func readMountStats(mnt string) (fsnode.MountStats, error) {
	var ms fsnode.MountStats
	data, err := getXattr(mnt, "user.tmpmount.stats")
	if errors.Is(err, unix.EACCES) {
		return ms, errors.New("permission denied: it was mounted without --allow-other, so only the user who mounted it can reach it")
	}
	if err != nil {
		return ms, fmt.Errorf("reading its limits: %v", err)
	}
	if err := json.Unmarshal(data, &ms); err != nil {
		return ms, fmt.Errorf("reading its limits: %v", err)
	}
	return ms, nil
}

// sendLimits sends the remount ioctl to the mount's root directory.
func sendLimits(mnt string, l fsnode.Limits) error {
	fd, err := unix.Open(mnt, unix.O_RDONLY|unix.O_DIRECTORY|unix.O_CLOEXEC, 0)
	if err != nil {
		return err
	}
	defer unix.Close(fd)
	arg := l.Encode()
	_, _, errno := unix.Syscall(unix.SYS_IOCTL, uintptr(fd), fsnode.RemountIoctl, uintptr(unsafe.Pointer(&arg[0])))
	if errno != 0 {
		return errno
	}
	return nil
}

// explainInUse says which limit is below what the mount uses.
func explainInUse(mnt string, want fsnode.Limits) error {
	ms, err := readMountStats(mnt)
	if err != nil {
		return errors.New("a limit is below what the mount uses")
	}
	used := ms.RAMBytes + ms.DiskBytes + ms.MetaBytes
	switch {
	case want.SizeLimit > 0 && used > want.SizeLimit:
		return fmt.Errorf("size %s is less than the %s the mount holds: delete files first, or choose a larger size",
			formatSize(want.SizeLimit), formatSize(used))
	case want.MaxInodes > 0 && ms.Inodes > want.MaxInodes:
		return fmt.Errorf("nr_inodes %d is less than the %d inodes in use: delete files first, or choose a larger number",
			want.MaxInodes, ms.Inodes)
	}
	return fmt.Errorf("mem_limit %s is less than the %s the mount's names, xattrs and nodes need in RAM: delete files first, or choose a larger budget",
		formatSize(want.MemLimit), formatSize(ms.MetaMemory))
}

// remountReadOnly makes the mount read-only or writable again, if it is
// not already: a remount of the FUSE mount by the kernel, which keeps its
// other flags (opts: nosuid, nodev, noexec, atime) as they are.
func remountReadOnly(mnt string, opts []string, readOnly bool) error {
	if slices.Contains(opts, "ro") == readOnly {
		return nil
	}
	what := "writable"
	if readOnly {
		what = "read-only"
	}
	if unix.Geteuid() != 0 {
		return fmt.Errorf("making it %s needs root (the kernel remounts a FUSE mount only for root)", what)
	}
	flags := uintptr(unix.MS_REMOUNT)
	if readOnly {
		flags |= unix.MS_RDONLY
	}
	for opt, ms := range map[string]uintptr{
		"nosuid": unix.MS_NOSUID, "nodev": unix.MS_NODEV, "noexec": unix.MS_NOEXEC,
		"noatime": unix.MS_NOATIME, "nodiratime": unix.MS_NODIRATIME, "relatime": unix.MS_RELATIME,
	} {
		if slices.Contains(opts, opt) {
			flags |= ms
		}
	}
	if !slices.Contains(opts, "noatime") && !slices.Contains(opts, "relatime") {
		flags |= unix.MS_STRICTATIME
	}
	err := unix.Mount("", mnt, "", flags, "")
	if errors.Is(err, unix.EBUSY) && readOnly {
		return errors.New("cannot make it read-only: files on it are open for writing")
	}
	if err != nil {
		return fmt.Errorf("making it %s: %v", what, err)
	}
	return nil
}

// describeSize says what bounds the mount's capacity, for the serving
// line and tmpmount stat: --size, or else the spill disk, less the
// reserve kept free on it.
func describeSize(size, spillReserve int64) string {
	switch {
	case size > 0:
		return formatSize(size)
	case spillReserve > 0:
		return fmt.Sprintf("none (the spill disk keeps %s free)", formatSize(spillReserve))
	}
	return "none"
}

package main

import (
	"bufio"
	"errors"
	"fmt"
	"io"
	"log"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"time"

	"golang.org/x/sys/unix"

	"github.com/tmpmount/tmpmount/policy"
)

// checkMountpoint returns the absolute mount point, or says in one line
// what is wrong with it and what to do. A tmpmount mount left dead by a
// daemon that was killed is unmounted, and said so.
func checkMountpoint(path string, logger *log.Logger) (string, error) {
	abs, err := filepath.Abs(path)
	if err != nil {
		return "", fmt.Errorf("mount point %s: %v", path, err)
	}
	st, err := os.Stat(abs)
	if dyingMount(err) {
		err = settleDeadMount(abs)
	}
	if errors.Is(err, unix.ENOTCONN) {
		if err := recoverDeadMount(abs); err != nil {
			return "", err
		}
		logger.Printf("%s was a dead tmpmount mount (its daemon had died); unmounted it", abs)
		st, err = os.Stat(abs)
	}
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
	if mounted && fstype == "fuse.tmpmount" && isDeadMount(abs) {
		// stat(2) above may have been answered from the kernel's cache;
		// statfs(2) always asks the daemon.
		if err := recoverDeadMount(abs); err != nil {
			return "", err
		}
		logger.Printf("%s was a dead tmpmount mount (its daemon had died); unmounted it", abs)
		fstype, mounted, err = mountedAt(abs)
		if err != nil {
			return "", err
		}
	}
	if mounted {
		return "", fmt.Errorf("mount point %s is already mounted (%s): unmount it first or choose another directory", abs, fstype)
	}
	if os.Geteuid() != 0 {
		// fusermount3's own checks, made here so that the user reads one
		// line that says what to do instead of fusermount3's message and
		// an exit code.
		if unix.Access(abs, unix.W_OK) != nil {
			return "", explainMountError(errors.New("no write access to mountpoint"), "", abs)
		}
		if sys, ok := st.Sys().(*syscall.Stat_t); ok && st.Mode()&os.ModeSticky != 0 && int(sys.Uid) != os.Getuid() {
			return "", explainMountError(errors.New("sticky directory"), "", abs)
		}
	}
	return abs, nil
}

// isDeadMount reports whether the FUSE mount at path has lost its daemon.
func isDeadMount(path string) bool {
	var st unix.Statfs_t
	err := unix.Statfs(path, &st)
	if dyingMount(err) {
		err = settleDeadMount(path)
	}
	return errors.Is(err, unix.ENOTCONN)
}

// dyingMount reports an error of a FUSE mount whose daemon has just died
// while it served over io_uring: until the kernel has torn the rings down
// (asynchronously, some milliseconds after the process is gone), requests
// fail with ECANCELED or ECONNABORTED; then with ENOTCONN, as any dead
// FUSE mount.
func dyingMount(err error) bool {
	return errors.Is(err, unix.ECANCELED) || errors.Is(err, unix.ECONNABORTED)
}

// settleDeadMount waits (up to 5 s) for a dying mount to answer ENOTCONN,
// and returns what statfs(2) says then.
func settleDeadMount(path string) error {
	deadline := time.Now().Add(5 * time.Second)
	for {
		var st unix.Statfs_t
		err := unix.Statfs(path, &st)
		if !dyingMount(err) || time.Now().After(deadline) {
			return err
		}
		time.Sleep(5 * time.Millisecond)
	}
}

// recoverDeadMount unmounts the dead FUSE mount at path if it is a
// tmpmount one: its daemon is gone (SIGKILL, a crash), so nothing can be
// lost, and the kernel freed its nameless backing files. Another kind of
// dead mount is not ours to remove: the error says how.
func recoverDeadMount(path string) error {
	fstype, mounted, err := mountedAt(path)
	if err != nil {
		return err
	}
	howTo := fmt.Sprintf("unmount it first (umount %s, or fusermount3 -u %s)", path, path)
	if !mounted || fstype != "fuse.tmpmount" {
		return fmt.Errorf("mount point %s is a dead FUSE mount (%s) whose daemon is gone: %s", path, fstype, howTo)
	}
	if os.Geteuid() == 0 {
		err = unix.Unmount(path, 0)
	} else if bin, lookErr := fusermountPath(); lookErr != nil {
		err = lookErr
	} else if out, runErr := exec.Command(bin, "-u", path).CombinedOutput(); runErr != nil {
		err = fmt.Errorf("%v: %s", runErr, strings.TrimSpace(string(out)))
	}
	if err != nil {
		return fmt.Errorf("mount point %s is a dead tmpmount mount and unmounting it failed (%v): %s", path, err, howTo)
	}
	return nil
}

// mountEntry is one line of a mountinfo file.
type mountEntry struct {
	point  string
	fstype string
	super  string   // the superblock's options (FUSE's user_id=, ...)
	dev    uint64   // the device number of its filesystem
	opts   []string // the per-mount options: rw or ro, nosuid, ...
}

// fuseUserID is the user_id= of a FUSE mount: who mounted it; -1 if none.
func (e mountEntry) fuseUserID() int {
	for _, opt := range strings.Split(e.super, ",") {
		if v, ok := strings.CutPrefix(opt, "user_id="); ok {
			if id, err := strconv.Atoi(v); err == nil {
				return id
			}
		}
	}
	return -1
}

// mountTable reads a mountinfo file: /proc/self/mountinfo, or another
// process's (whose mount namespace may differ).
func mountTable(file string) ([]mountEntry, error) {
	f, err := os.Open(file)
	if err != nil {
		return nil, fmt.Errorf("read mount table: %v", err)
	}
	defer f.Close()
	var table []mountEntry
	sc := bufio.NewScanner(f)
	sc.Buffer(make([]byte, 64<<10), 1<<20)
	for sc.Scan() {
		// ID PARENT MAJ:MIN ROOT MOUNTPOINT OPTIONS [OPTIONAL...] - FSTYPE SOURCE SUPER
		fields := strings.Fields(sc.Text())
		if len(fields) < 6 {
			continue
		}
		e := mountEntry{point: unescapeMountinfo(fields[4]), opts: strings.Split(fields[5], ",")}
		if major, minor, ok := strings.Cut(fields[2], ":"); ok {
			ma, _ := strconv.ParseUint(major, 10, 32)
			mi, _ := strconv.ParseUint(minor, 10, 32)
			e.dev = unix.Mkdev(uint32(ma), uint32(mi))
		}
		for i, f := range fields {
			if f == "-" && i+1 < len(fields) {
				e.fstype = fields[i+1]
				if i+3 < len(fields) {
					e.super = fields[i+3]
				}
			}
		}
		table = append(table, e)
	}
	return table, sc.Err()
}

// topMountAt returns what is mounted on top at path, if anything.
func topMountAt(table []mountEntry, path string) (top mountEntry, mounted bool) {
	for _, e := range table {
		if e.point == path {
			top, mounted = e, true
		}
	}
	return top, mounted
}

// mountedAt reports whether something is mounted at path, and the type of
// what is on top.
func mountedAt(path string) (fstype string, mounted bool, err error) {
	table, err := mountTable("/proc/self/mountinfo")
	top, mounted := topMountAt(table, path)
	return top.fstype, mounted, err
}

// mountHolding returns the mount that path (absolute, symlinks resolved)
// lies on: the last-mounted of the deepest mount points above it.
func mountHolding(path string) (mountEntry, error) {
	table, err := mountTable("/proc/self/mountinfo")
	var best mountEntry
	for _, e := range table {
		if (within(path, e.point) || e.point == "/") && len(e.point) >= len(best.point) {
			best = e
		}
	}
	return best, err
}

// mountsOfType lists the mount points with filesystem type fstype.
func mountsOfType(fstype string) ([]string, error) {
	table, err := mountTable("/proc/self/mountinfo")
	var points []string
	for _, e := range table {
		if e.fstype == fstype {
			points = append(points, e.point)
		}
	}
	return points, err
}

// explainMountError turns a failed mount, and what fusermount3 said
// about it, into one line that says what to do.
func explainMountError(err error, said, mountpoint string) error {
	msg := err.Error() + " " + said
	switch {
	case strings.Contains(msg, "user_allow_other"):
		return errors.New("--allow-other needs 'user_allow_other' in /etc/fuse.conf: as root, add that line, or mount without --allow-other")
	case strings.Contains(msg, "sticky directory"):
		return fmt.Errorf("%s is a sticky directory you do not own (as /tmp is): mount on a directory of your own, e.g. mkdir %s/mine", mountpoint, mountpoint)
	case strings.Contains(msg, "no write access to mountpoint") || strings.Contains(msg, "not owned"):
		return fmt.Errorf("you cannot write to the mount point %s: mount on a directory you own (mkdir ~/t)", mountpoint)
	case strings.Contains(msg, "/dev/fuse") && strings.Contains(msg, "ermission denied"):
		return errors.New(`/dev/fuse is not open to you: as root, chmod 0666 /dev/fuse, and to keep it so, add the udev rule KERNEL=="fuse", MODE="0666" (e.g. in /etc/udev/rules.d/99-fuse.rules), as Debian's udev does`)
	case strings.Contains(msg, "mount_max"):
		return errors.New("too many FUSE mounts for users: unmount some, or, as root, raise mount_max in /etc/fuse.conf")
	case strings.TrimSpace(said) != "":
		return fmt.Errorf("mount %s failed: %s", mountpoint, oneLineText(strings.TrimPrefix(strings.TrimSpace(said), "fusermount3: ")))
	}
	return err
}

// withFusermountOutput runs mount with the stderr of the fusermount3 that
// go-fuse starts for an unprivileged mount (it hands fusermount3 os.Stderr)
// captured, and returns what fusermount3 said: the user then reads one
// line saying what to do instead of fusermount3's message and a wait
// status. Nothing else runs in the daemon while it mounts.
func withFusermountOutput(mount func() error) (said string, err error) {
	if os.Geteuid() == 0 {
		return "", mount() // a direct mount(2): no fusermount3
	}
	r, w, pipeErr := os.Pipe()
	if pipeErr != nil {
		return "", mount()
	}
	output := make(chan []byte, 1)
	go func() {
		out, _ := io.ReadAll(r)
		r.Close()
		output <- out
	}()
	saved := os.Stderr
	os.Stderr = w
	err = mount()
	os.Stderr = saved
	w.Close()
	return string(<-output), err
}

// oneLineText puts a multi-line text on one line.
func oneLineText(s string) string {
	return strings.Join(strings.Fields(s), " ")
}

// describeUnmountError says why an unmount failed without the wrapping
// go-fuse adds ("(code exit status 1)") or fusermount3's name.
func describeUnmountError(err error) string {
	msg := oneLineText(err.Error())
	if i := strings.LastIndex(msg, " (code "); i >= 0 && strings.HasSuffix(msg, ")") {
		msg = msg[:i]
	}
	return strings.TrimPrefix(msg, "fusermount3: ")
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

// spillParent picks the directory for the private spill directory: the
// --spill-dir, else $TMPDIR, else /var/tmp. One inside the mount, where
// spilled data would feed on itself, is refused. Spilling onto tmpfs (or
// into another tmpmount) would keep "rolled-over" data in RAM: a
// --spill-dir there is used as asked, with a warning; a $TMPDIR there is
// passed over for /var/tmp if that is a real disk, and the log says so.
func spillParent(flagValue, mountpoint string, logger *log.Logger) (string, error) {
	dir, source := flagValue, "--spill-dir"
	if dir == "" {
		dir, source = os.Getenv("TMPDIR"), "$TMPDIR"
	}
	if dir == "" {
		dir, source = defaultSpillParent, "the default"
	}
	abs, err := usableSpillDir(dir, source, mountpoint)
	if err != nil {
		return "", err
	}
	memory := inMemory(abs)
	if memory == "" {
		return abs, nil
	}
	if source == "$TMPDIR" {
		if fallback, err := usableSpillDir(defaultSpillParent, "the default", mountpoint); err == nil && inMemory(fallback) == "" {
			logger.Printf("$TMPDIR (%s) is on %s, where rolled-over data would stay in RAM: spilling to %s instead (choose with --spill-dir)", abs, memory, fallback)
			return fallback, nil
		}
	}
	logger.Printf("warning: spill dir %s (%s) is on %s: rolled-over data stays in RAM; give --spill-dir a directory on a disk", abs, source, memory)
	return abs, nil
}

// defaultSpillParent is where data spills when neither --spill-dir nor
// $TMPDIR says: as /var/tmp is meant for, on a disk.
const defaultSpillParent = "/var/tmp"

// usableSpillDir resolves a spill parent and checks it.
func usableSpillDir(dir, source, mountpoint string) (string, error) {
	abs, err := resolvePath(dir)
	if err != nil {
		return "", fmt.Errorf("spill dir %s (%s): %v", dir, source, err)
	}
	what := fmt.Sprintf("spill dir %s (%s)", abs, source)
	if err := outsideMount(what, abs, mountpoint); err != nil {
		return "", err
	}
	if err := checkWritableDir(what, abs); err != nil {
		return "", err
	}
	return abs, nil
}

// inMemory says what keeps data under path in RAM ("tmpfs (mounted at
// /x)", "another tmpmount mount (/x)"), or "" for a disk.
func inMemory(path string) string {
	m, err := mountHolding(path)
	if err != nil {
		return ""
	}
	switch m.fstype {
	case "tmpfs", "ramfs":
		return fmt.Sprintf("%s (mounted at %s)", m.fstype, m.point)
	case "fuse.tmpmount":
		return fmt.Sprintf("another tmpmount mount (%s)", m.point)
	}
	return ""
}

// checkWritableDir checks that what (a description of the directory abs,
// for messages) exists, is a directory, and that this user can make files
// in it.
func checkWritableDir(what, abs string) error {
	st, err := os.Stat(abs)
	switch {
	case errors.Is(err, os.ErrNotExist):
		return fmt.Errorf("%s does not exist: create it first (mkdir -p %s)", what, abs)
	case err != nil:
		return fmt.Errorf("%s: %v", what, err)
	case !st.IsDir():
		return fmt.Errorf("%s is not a directory", what)
	}
	if err := unix.Access(abs, unix.W_OK|unix.X_OK); err != nil {
		return fmt.Errorf("%s is not writable by this user (uid %d): %v; choose another or change its permissions", what, os.Geteuid(), err)
	}
	return nil
}

// outsideMount refuses abs, a resolved path the daemon writes to, inside
// the mount point: what the daemon wrote there would land in its own mount
// (and make events or log lines of its own), and go with it at unmount.
// what names it in the message ("log file").
func outsideMount(what, abs, mountpoint string) error {
	if within(abs, mountpoint) {
		return fmt.Errorf("%s is inside the mount point %s: choose one outside it", what, mountpoint)
	}
	return nil
}

// resolvePath makes path absolute and resolves its symlinks where it
// exists, so that it can be compared with the mount point.
func resolvePath(path string) (string, error) {
	abs, err := filepath.Abs(path)
	if err != nil {
		return "", err
	}
	if real, err := filepath.EvalSymlinks(abs); err == nil {
		return real, nil
	}
	if real, err := filepath.EvalSymlinks(filepath.Dir(abs)); err == nil {
		return filepath.Join(real, filepath.Base(abs)), nil
	}
	return abs, nil
}

// resolveDir makes path absolute and resolves the symlinks of the
// directory it is in, not of its last component: that is opened with
// O_NOFOLLOW.
func resolveDir(path string) (string, error) {
	abs, err := filepath.Abs(path)
	if err != nil {
		return "", err
	}
	if real, err := filepath.EvalSymlinks(filepath.Dir(abs)); err == nil {
		return filepath.Join(real, filepath.Base(abs)), nil
	}
	return abs, nil
}

// within reports whether path is dir or lies below it.
func within(path, dir string) bool {
	return path == dir || strings.HasPrefix(path, dir+"/")
}

// checkKeepDir returns the keep directory, absolute, after checking that
// files can be made in it and that it is outside the mount.
func checkKeepDir(dir, mountpoint string) (string, error) {
	abs, err := resolvePath(dir)
	if err != nil {
		return "", fmt.Errorf("keep dir %s: %v", dir, err)
	}
	what := "keep dir " + abs
	if err := outsideMount(what, abs, mountpoint); err != nil {
		return "", err
	}
	if err := checkWritableDir(what, abs); err != nil {
		return "", err
	}
	return abs, nil
}

// openEvents opens the events file for appending, refusing one inside the
// mount (writing it would make events of its own).
func openEvents(path, mountpoint string) (*os.File, error) {
	return openOutside("events file", path, mountpoint)
}

// openLog opens --log's file for appending, refusing one inside the mount,
// as the events file. mountpoint is as the user gave it.
func openLog(path, mountpoint string) (*os.File, error) {
	mp, err := resolvePath(mountpoint)
	if err != nil {
		return nil, fmt.Errorf("mount point %s: %v", mountpoint, err)
	}
	return openOutside("log file", path, mp)
}

// openOutside opens a file the daemon appends to (openOutput), outside the
// mount.
func openOutside(what, path, mountpoint string) (*os.File, error) {
	abs, err := resolveDir(path)
	if err != nil {
		return nil, fmt.Errorf("%s %s: %v", what, path, err)
	}
	if err := outsideMount(what+" "+abs, abs, mountpoint); err != nil {
		return nil, err
	}
	return openOutput(what, abs, unix.O_APPEND)
}

// adviseOnOptions warns of flag choices that surprise: a mount-wide close
// policy, device files and set-user-ID programs that take effect, and RAM
// that nothing bounds.
func adviseOnOptions(o *options, logger *log.Logger) {
	if o.deleteDef.p == policy.Close {
		logger.Print("warning: --delete close deletes every file at its last close, which breaks programs that close a temporary file and open it again " +
			"(cc, sort, mktemp then cat); for the files that should go at close, use --rule 'GLOB=close' " +
			"or setfattr -n user.tmpmount.delete -v close on them or their directory")
	}
	if o.dev || o.suid {
		var on []string
		if o.dev {
			on = append(on, "dev")
		}
		if o.suid {
			on = append(on, "suid")
		}
		logger.Printf("mounting %s: device files or set-user-ID programs on it take effect, as asked (a scratch mount wants nodev,nosuid)",
			strings.Join(on, ","))
	}
	if o.memLimit.bytes == 0 && o.maxSize.bytes == 0 && o.size.bytes == 0 {
		logger.Print("warning: with --max-size 0, --mem-limit 0 and no --size, nothing bounds the RAM that files hold")
	}
}

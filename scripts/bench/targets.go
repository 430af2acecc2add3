package main

import (
	"bufio"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"time"

	"golang.org/x/sys/unix"
)

// Target kinds.
const (
	kindTmpfs    = "tmpfs"    // the reference: a fresh tmpfs, default options
	kindDisk     = "disk"     // a directory under -disk-dir
	kindTmpmount = "tmpmount" // a tmpmount variant
)

// mountDeadline bounds the wait for a daemon's mount, and exitDeadline
// the wait for it to exit once unmounted.
const (
	mountDeadline = 10 * time.Second
	exitDeadline  = 30 * time.Second
)

// target is something to measure; each run gets a fresh instance of it.
type target struct {
	name    string
	kind    string
	variant *variant    // tmpmount targets only
	probed  *mountEntry // what the probe mount looked like (disk: the fs holding it)
	cmdline string      // tmpmount targets: how the probe daemon was started
	// passthrough is tmpmount's FUSE passthrough state as the probe
	// daemon's "serving" line gave it: "on" or "off (reason)".
	passthrough string
	transport   string // the same line's request path: io_uring (N queues) or /dev/fuse (why)
}

func makeTargets(cfg *config) []*target {
	targets := []*target{
		{name: "tmpfs", kind: kindTmpfs},
		{name: "disk", kind: kindDisk},
	}
	for _, v := range cfg.variants {
		targets = append(targets, &target{name: v.name, kind: kindTmpmount, variant: v})
	}
	return targets
}

// instance is one fresh mount (or directory) of a target.
type instance struct {
	target      *target
	dir         string      // where the workloads run
	mount       *mountEntry // nil for the disk target
	pid         int         // the daemon, for tmpmount targets
	passthrough string      // tmpmount targets: as this daemon's "serving" line says
	transport   string      // tmpmount targets: io_uring or /dev/fuse, as the serving line says
	work        string      // the bench's work dir, where the instance was made
	label       string      // the run's label: run1, probe...
	cl          *cleaner
	steps       []*cleanStep // what teardown undoes, newest last
}

// add registers an undo step both globally (for Ctrl-C and errors) and
// with the instance (for its own teardown).
func (in *instance) add(desc string, fn func(force bool) error) {
	in.steps = append(in.steps, in.cl.push(desc, fn))
}

// teardown undoes the instance, newest first, and reports every failure.
func (in *instance) teardown() error {
	var errs []error
	for i := len(in.steps) - 1; i >= 0; i-- {
		errs = append(errs, in.cl.run(in.steps[i], false))
	}
	in.steps = nil
	return errors.Join(errs...)
}

// setup makes a fresh instance of t under work.
func setup(cl *cleaner, work string, t *target, label string) (*instance, error) {
	in := &instance{target: t, cl: cl, work: work, label: label}
	var err error
	switch t.kind {
	case kindTmpfs:
		err = in.mountTmpfs(work, label)
	case kindDisk:
		err = in.makeDiskDir(work, label)
	case kindTmpmount:
		err = in.mountTmpmount(work, label)
	}
	if err != nil {
		return nil, errors.Join(err, in.teardown())
	}
	return in, nil
}

// probe mounts t once, to fail fast and to learn its mount options.
func probe(cl *cleaner, work string, t *target) error {
	in, err := setup(cl, work, t, "probe")
	if err != nil {
		return fmt.Errorf("%s: %w", t.name, err)
	}
	t.probed = in.mount
	t.passthrough = in.passthrough
	t.transport = in.transport
	if t.kind == kindDisk {
		if t.probed, err = mountContaining(in.dir); err != nil {
			return errors.Join(err, in.teardown())
		}
	}
	return in.teardown()
}

func (in *instance) mountTmpfs(work, label string) error {
	mp, err := in.mkdir(work, "tmpfs-"+label+"-")
	if err != nil {
		return err
	}
	if err := unix.Mount("tmpfs", mp, "tmpfs", 0, ""); err != nil {
		return fmt.Errorf("mount -t tmpfs tmpfs %s: %w", mp, err)
	}
	in.add("unmount tmpfs "+mp, func(force bool) error { return unmountIfMounted(mp, "tmpfs", force) })
	in.dir = mp
	in.mount, err = mountAt(mp)
	return err
}

func (in *instance) makeDiskDir(work, label string) error {
	dir, err := in.mkdir(work, "disk-"+label+"-")
	in.dir = dir
	return err
}

func (in *instance) mountTmpmount(work, label string) error {
	prefix := in.target.name + "-" + label
	mp, err := in.mkdir(work, prefix+"-mnt-")
	if err != nil {
		return err
	}
	spill, err := in.mkdir(work, prefix+"-spill-")
	if err != nil {
		return err
	}
	d, err := startDaemon(in.target.variant, mp, spill)
	if err != nil {
		return err
	}
	// Registered before the wait: a daemon that never mounts is stopped too.
	in.add("stop tmpmount "+in.target.name+" at "+mp, d.stop)
	if in.target.cmdline == "" {
		in.target.cmdline = strings.Join(d.cmd.Args, " ")
	}
	in.pid = d.cmd.Process.Pid
	in.dir = mp
	if in.mount, err = d.waitMounted(mountDeadline); err != nil {
		return err
	}
	// The daemon decides on passthrough after the mount appears and says
	// so in its "serving" line: a file opened before that line would not
	// be a passthrough one, so every instance waits for it.
	in.passthrough, in.transport, err = d.waitServing(mountDeadline)
	return err
}

// mkdir makes a fresh directory under work and registers its removal.
func (in *instance) mkdir(work, prefix string) (string, error) {
	dir, err := os.MkdirTemp(work, prefix)
	if err != nil {
		return "", err
	}
	in.add("remove "+dir, func(bool) error { return safeRemoveAll(dir) })
	return dir, nil
}

// unmountIfMounted unmounts a filesystem of type fstype at mp if it is
// there. A busy mount is detached lazily (and reported): a mount must
// never outlive the bench.
func unmountIfMounted(mp, fstype string, force bool) error {
	m, err := mountAt(mp)
	if err != nil || m == nil || m.FSType != fstype {
		return err
	}
	if force {
		return unix.Unmount(mp, unix.MNT_DETACH)
	}
	err = unix.Unmount(mp, 0)
	if errors.Is(err, unix.EBUSY) {
		if derr := unix.Unmount(mp, unix.MNT_DETACH); derr != nil {
			return fmt.Errorf("umount %s: %v; lazy umount: %v", mp, err, derr)
		}
		return fmt.Errorf("umount %s: busy (is a shell or program still inside?): detached it lazily", mp)
	}
	if err != nil {
		return fmt.Errorf("umount %s: %w", mp, err)
	}
	return nil
}

// daemon is a running tmpmount process.
type daemon struct {
	cmd     *exec.Cmd
	mp      string
	spill   string
	log     *os.File      // its stdout and stderr: a nameless file
	done    chan struct{} // closed when the process has exited
	waitErr error
	told    bool // waitMounted already reported the exit
}

func startDaemon(v *variant, mp, spill string) (*daemon, error) {
	// The daemon writes to a file, not a pipe: if the bench dies, a pipe
	// would have no reader, and the daemon's next log line (the one
	// saying it got SIGTERM) would kill it with SIGPIPE before it could
	// unmount. Unlinked at once, the file cannot be left behind.
	log, err := os.CreateTemp(filepath.Dir(mp), "daemon-log-")
	if err != nil {
		return nil, err
	}
	os.Remove(log.Name())
	args := append([]string{"--spill-dir", spill}, v.args...)
	args = append(args, mp)
	d := &daemon{cmd: exec.Command(v.bin, args...), mp: mp, spill: spill, log: log, done: make(chan struct{})}
	d.cmd.Stdout, d.cmd.Stderr = log, log
	d.cmd.SysProcAttr = &syscall.SysProcAttr{
		// Its own process group: a Ctrl-C in the terminal reaches only
		// the bench, which unmounts in order instead of racing the
		// daemon's own SIGINT handling.
		Setpgid: true,
		// If the bench dies without cleaning up, the daemon unmounts
		// itself (see init in main.go).
		Pdeathsig: syscall.SIGTERM,
	}
	if err := d.cmd.Start(); err != nil {
		log.Close()
		return nil, fmt.Errorf("start %s: %w", v.bin, err)
	}
	go func() {
		d.waitErr = d.cmd.Wait()
		close(d.done)
	}()
	return d, nil
}

// waitMounted polls /proc/self/mountinfo until the daemon's mount is there.
func (d *daemon) waitMounted(deadline time.Duration) (*mountEntry, error) {
	end := time.Now().Add(deadline)
	for {
		select {
		case <-d.done:
			d.told = true
			return nil, fmt.Errorf("%s exited before mounting: %v\n%s", strings.Join(d.cmd.Args, " "), d.waitErr, d.logTail(20))
		default:
		}
		m, err := mountAt(d.mp)
		if err != nil {
			return nil, err
		}
		if m != nil && m.FSType == "fuse.tmpmount" {
			return m, nil
		}
		if time.Now().After(end) {
			return nil, fmt.Errorf("no fuse.tmpmount at %s after %v\n%s", d.mp, deadline, d.logTail(20))
		}
		time.Sleep(5 * time.Millisecond)
	}
}

// waitServing waits for the daemon's "serving ..." line and returns its
// passthrough state: "on", or "off (reason)".
func (d *daemon) waitServing(deadline time.Duration) (passthrough, transport string, err error) {
	end := time.Now().Add(deadline)
	for {
		if line, ok := d.servingLine(); ok {
			passthrough, transport = servingField(line, "passthrough"), servingField(line, "transport")
			return passthrough, transport, nil
		}
		select {
		case <-d.done:
			d.told = true
			return "", "", fmt.Errorf("%s exited after mounting: %v\n%s", strings.Join(d.cmd.Args, " "), d.waitErr, d.logTail(20))
		default:
		}
		if time.Now().After(end) {
			return "", "", fmt.Errorf("tmpmount at %s printed no \"serving\" line within %v\n%s", d.mp, deadline, d.logTail(20))
		}
		time.Sleep(5 * time.Millisecond)
	}
}

// servingField returns what the serving line says after ", NAME ", up to
// the next field or the ")" that closes "(max-size ...".
func servingField(line, name string) string {
	_, rest, found := strings.Cut(line, ", "+name+" ")
	if !found {
		return "unknown (the serving line does not say: an older tmpmount?)"
	}
	for _, next := range []string{", passthrough ", ", transport "} {
		if i := strings.Index(rest, next); i >= 0 {
			rest = rest[:i]
		}
	}
	return strings.TrimSuffix(strings.TrimSpace(rest), ")")
}

// servingLine returns the daemon's "serving ..." log line, if it has
// printed it.
func (d *daemon) servingLine() (string, bool) {
	st, err := d.log.Stat()
	if err != nil {
		return "", false
	}
	buf := make([]byte, min(st.Size(), 1<<20))
	n, _ := d.log.ReadAt(buf, 0)
	for _, line := range strings.Split(string(buf[:n]), "\n") {
		if line = strings.TrimPrefix(line, "tmpmount: "); strings.HasPrefix(line, "serving ") {
			return line, true
		}
	}
	return "", false
}

// stop unmounts with umount(2), waits for the daemon to exit, and checks
// that it exited with 0 and left its spill parent empty, as it promises.
func (d *daemon) stop(force bool) error {
	var errs []error
	if err := unmountIfMounted(d.mp, "fuse.tmpmount", force); err != nil {
		errs = append(errs, err)
	}
	wait := exitDeadline
	if force {
		wait = 3 * time.Second
	}
	select {
	case <-d.done:
		if d.waitErr != nil && !d.told {
			errs = append(errs, fmt.Errorf("tmpmount exited with %v\n%s", d.waitErr, d.logTail(20)))
		}
	case <-time.After(wait):
		d.cmd.Process.Kill()
		<-d.done
		errs = append(errs, fmt.Errorf("tmpmount did not exit within %v of the unmount; killed it\n%s", wait, d.logTail(20)))
	}
	entries, err := os.ReadDir(d.spill)
	if err != nil && !errors.Is(err, os.ErrNotExist) {
		errs = append(errs, err)
	}
	for _, e := range entries {
		errs = append(errs, fmt.Errorf("spill parent %s still holds %s after tmpmount exited", d.spill, e.Name()))
	}
	d.log.Close()
	return errors.Join(errs...)
}

// logTail returns the daemon's last n lines of output, indented, for
// error messages.
func (d *daemon) logTail(n int) string {
	const maxTail = 64 << 10
	st, err := d.log.Stat()
	if err != nil {
		return "  (tmpmount's output is gone)"
	}
	off := max(st.Size()-maxTail, 0)
	buf := make([]byte, st.Size()-off)
	k, _ := d.log.ReadAt(buf, off)
	s := strings.TrimRight(string(buf[:k]), "\n")
	if s == "" {
		return "  (tmpmount printed nothing)"
	}
	lines := strings.Split(s, "\n")
	if len(lines) > n {
		lines = lines[len(lines)-n:]
	}
	return "  | " + strings.Join(lines, "\n  | ")
}

// preflight checks what the bench needs before anything is made, and says
// what to do about what is missing.
func preflight(cfg *config) error {
	if os.Geteuid() != 0 {
		return errors.New("needs root to mount tmpfs and drop caches: run it as root (e.g. sudo env \"PATH=$PATH\" go run ./scripts/bench)")
	}
	if _, err := os.Stat("/dev/fuse"); err != nil {
		return errors.New("no /dev/fuse: load the FUSE module (modprobe fuse); in a container, start it with --device /dev/fuse --cap-add SYS_ADMIN")
	}
	if cfg.dropCaches != dropNone {
		f, err := os.OpenFile("/proc/sys/vm/drop_caches", os.O_WRONLY, 0)
		if err != nil {
			return fmt.Errorf("cannot drop caches (%v): run where /proc/sys is writable, or pass -drop-caches=none", err)
		}
		f.Close()
	}
	dir, err := filepath.Abs(cfg.diskDir)
	if err == nil {
		dir, err = filepath.EvalSymlinks(dir)
	}
	if err != nil {
		return fmt.Errorf("-disk-dir %s: %v: create it or choose another", cfg.diskDir, err)
	}
	if st, err := os.Stat(dir); err != nil || !st.IsDir() {
		return fmt.Errorf("-disk-dir %s is not a directory", cfg.diskDir)
	}
	cfg.diskDir = dir
	if err := findAssets(cfg); err != nil {
		return err
	}
	return checkSpace(cfg)
}

// checkSpace makes sure one target's data fits on the disk and in RAM:
// only one target holds data at a time. It counts the files of every
// selected workload as if they were there at once.
func checkSpace(cfg *config) error {
	var need int64
	for _, wl := range cfg.workloads {
		switch wl.name {
		case "seq-write":
			need += cfg.seqSize
		case "small-create":
			need += int64(cfg.smallCount) * smallSize
		case "mib-write":
			need += int64(cfg.mibCount) * mib
		case "big-seq-write":
			need += cfg.bigSize
		case "tree-extract":
			// The tarball (on the disk) and the tree, with a block per file.
			need += 2*cfg.assets.treeBytes + int64(cfg.assets.treeFiles)*4096
		case "compile":
			need += 256 * mib // the cache (about 50 MiB) and the binary
		}
	}
	need += need/10 + 64*mib
	var st unix.Statfs_t
	if err := unix.Statfs(cfg.diskDir, &st); err != nil {
		return fmt.Errorf("statfs %s: %w", cfg.diskDir, err)
	}
	if avail := int64(st.Bavail) * st.Bsize; avail < need {
		return fmt.Errorf("-disk-dir %s has %s free; the workloads need about %s: free some space, choose another -disk-dir, or lower -seq-size / -mib-count / -big-size", cfg.diskDir, human(avail), human(need))
	}
	mem := meminfo()
	if total := mem["MemTotal"]; total > 0 && need > total/2 {
		return fmt.Errorf("a default tmpfs holds half the RAM (%s), less than the %s the workloads write: lower -seq-size, -mib-count or -big-size", human(total/2), human(need))
	}
	if avail := mem["MemAvailable"]; avail > 0 && need > avail {
		return fmt.Errorf("only %s of memory is available; the RAM targets need about %s: lower -seq-size, -mib-count or -big-size", human(avail), human(need))
	}
	return nil
}

// meminfo returns /proc/meminfo in bytes.
func meminfo() map[string]int64 {
	out := map[string]int64{}
	f, err := os.Open("/proc/meminfo")
	if err != nil {
		return out
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		key, rest, ok := strings.Cut(sc.Text(), ":")
		fields := strings.Fields(rest)
		if !ok || len(fields) == 0 {
			continue
		}
		n, err := strconv.ParseInt(fields[0], 10, 64)
		if err == nil && len(fields) > 1 && fields[1] == "kB" {
			n *= 1024
		}
		out[key] = n
	}
	return out
}

// makeWorkDir makes the bench's own directory under -disk-dir: it holds
// the built binary, the mount points, the spill dirs and the disk target.
func makeWorkDir(cfg *config, cl *cleaner, stderr io.Writer) (string, error) {
	warnStale(cfg.diskDir, stderr)
	work, err := os.MkdirTemp(cfg.diskDir, "tmpmount-bench-")
	if err != nil {
		return "", fmt.Errorf("make a work dir in -disk-dir: %w", err)
	}
	cl.push("remove "+work, func(bool) error { return safeRemoveAll(work) })
	return work, nil
}

// warnStale points at work dirs that a bench killed outright (SIGKILL, a
// crash) could not remove, and at any mount still in them. It removes
// nothing: another bench may be running.
func warnStale(diskDir string, stderr io.Writer) {
	stale, _ := filepath.Glob(filepath.Join(diskDir, "tmpmount-bench-*"))
	if len(stale) == 0 {
		return
	}
	fmt.Fprintf(stderr, "note: left by an earlier bench that was killed (remove when no bench runs): rm -rf %s\n", strings.Join(stale, " "))
	mounts, _ := readMounts()
	for _, m := range mounts {
		for _, dir := range stale {
			if isUnder(m.Point, dir) {
				fmt.Fprintf(stderr, "note: still mounted there, unmount it first: umount %s\n", m.Point)
			}
		}
	}
}

// resolveBinaries gives every variant its binary, building tmpmount if a
// variant needs the default one and -bin is not set.
func resolveBinaries(cfg *config, work string, stderr io.Writer) error {
	if cfg.repo == "" {
		cfg.repo = findRepo()
	}
	def := cfg.bin
	for _, v := range cfg.variants {
		if v.path == "" && def == "" {
			bin, err := buildTmpmount(cfg.repo, work, stderr)
			if err != nil {
				return err
			}
			def = bin
		}
	}
	for _, v := range cfg.variants {
		bin := v.path
		if bin == "" {
			bin = def
		}
		abs, err := filepath.Abs(bin)
		if err != nil {
			return err
		}
		if st, err := os.Stat(abs); err != nil || st.IsDir() || st.Mode()&0o111 == 0 {
			return fmt.Errorf("variant %s: %s is not an executable file", v.name, bin)
		}
		v.bin = abs
	}
	return nil
}

// findRepo walks up from the working directory to tmpmount's go.mod.
func findRepo() string {
	dir, err := os.Getwd()
	if err != nil {
		return ""
	}
	for {
		data, err := os.ReadFile(filepath.Join(dir, "go.mod"))
		if err == nil && strings.Contains(string(data), "module github.com/tmpmount/tmpmount\n") {
			return dir
		}
		parent := filepath.Dir(dir)
		if parent == dir {
			return ""
		}
		dir = parent
	}
}

func buildTmpmount(repo, work string, stderr io.Writer) (string, error) {
	if repo == "" {
		return "", errors.New("cannot find the tmpmount repository from the working directory: run from inside it, or pass -repo DIR or -bin PATH")
	}
	goBin, err := exec.LookPath("go")
	if err != nil {
		return "", errors.New("no go in PATH to build tmpmount with: keep PATH under sudo (sudo env \"PATH=$PATH\" ...) or pass -bin PATH")
	}
	out := filepath.Join(work, "tmpmount")
	fmt.Fprintf(stderr, "building: (cd %s && go build -o %s ./cmd/tmpmount)\n", repo, out)
	cmd := exec.Command(goBin, "build", "-o", out, "./cmd/tmpmount")
	cmd.Dir = repo
	if msg, err := cmd.CombinedOutput(); err != nil {
		return "", fmt.Errorf("go build ./cmd/tmpmount in %s: %v\n%s", repo, err, msg)
	}
	return out, nil
}

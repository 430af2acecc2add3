package main

import (
	"bufio"
	"errors"
	"fmt"
	"io"
	"log"
	"os"
	"os/exec"
	"os/signal"
	"runtime"
	"strings"
	"syscall"
	"time"

	"golang.org/x/sys/unix"
)

// runCommandStage is the command stage of tmpmount run (see run.go): it
// makes the mount in its namespaces as root, waits for the daemon to serve
// it, runs the command, passes on signals, reaps what is left to it, ends
// the processes the command left behind, and exits with the command's
// status. args is "-- CMD [ARGS...]".
func runCommandStage(args []string, logger *log.Logger) int {
	// The command's parent-death signal follows the thread that forks it.
	runtime.LockOSThread()
	for _, fd := range []int{stageStatusFd, stageGoFd, stagePointFd, stageFuseFd} {
		unix.CloseOnExec(fd) // the command inherits none of them (harmless on the runtime's own)
	}
	argv := args
	if len(argv) > 0 && argv[0] == "--" {
		argv = argv[1:]
	}
	st := &commandStage{
		logger:  logger,
		self:    os.Getpid(),
		dir:     os.Getenv(runDirEnv),
		mounted: os.Getenv(runMountEnv) != "",
		signals: make(chan os.Signal, 16),
		gone:    make(chan struct{}),
	}
	signal.Notify(st.signals, syscall.SIGINT, syscall.SIGTERM, syscall.SIGHUP, syscall.SIGQUIT, syscall.SIGCHLD)
	// Whatever the command leaves behind becomes this process's child,
	// so that it can be found and ended (in a PID namespace of its own,
	// being its init, it is so anyway).
	unix.Prctl(unix.PR_SET_CHILD_SUBREAPER, 1, 0, 0, 0)

	status := os.NewFile(stageStatusFd, "status")
	if err := st.mount(); err != nil {
		fmt.Fprintln(status, err)
		return exitRunFailed
	}
	if st.mounted {
		unix.Close(stageFuseFd) // the daemon serves it; a copy here would keep the mount alive without it
	}
	fmt.Fprintln(status, "mounted")
	status.Close()

	goPipe := bufio.NewReader(os.NewFile(stageGoFd, "go"))
	if line, _ := goPipe.ReadString('\n'); line != "go\n" {
		return exitRunFailed // the daemon failed, and said why
	}
	go func() {
		io.Copy(io.Discard, goPipe)
		close(st.gone) // the daemon holds the other end for its whole life
	}()
	if adj := os.Getenv(runOOMEnv); adj != "" {
		os.WriteFile(oomScoreAdjFile, []byte(adj), 0) // the daemon's lowered score is not the command's
	}
	env := os.Environ()[:0:0]
	for _, kv := range os.Environ() {
		if !strings.HasPrefix(kv, "TMPMOUNT_RUN_") {
			env = append(env, kv)
		}
	}
	pid, code := startCommand(argv, env, logger)
	if pid == 0 {
		return code
	}
	st.cmdPid = pid
	return st.superviseCommand()
}

// commandStage is the state of the command stage.
type commandStage struct {
	logger  *log.Logger
	self    int
	dir     string // the mount point
	mounted bool   // the mount is this stage's, in its mount namespace
	signals chan os.Signal
	gone    chan struct{} // closed when the daemon is gone

	cmdPid    int
	cmdStatus int // once reaped
	cmdDone   bool
}

// mount makes the stage's /proc (in a PID namespace of its own) and the
// FUSE mount on the mount point directory, through its descriptor (which
// nobody can swap), as runMountEnv says. Errors are the status line.
func (st *commandStage) mount() error {
	if !st.mounted {
		return nil
	}
	// Mounts made here stay here; unmounts on the host reach here too
	// (where the host's mounts are shared, as systemd makes them).
	if err := unix.Mount("", "/", "", unix.MS_REC|unix.MS_SLAVE, ""); err != nil {
		return fmt.Errorf("error: make the command's mount namespace: %v", err)
	}
	if os.Getenv(runProcEnv) == "1" {
		if err := unix.Mount("proc", "/proc", "proc", unix.MS_NOSUID|unix.MS_NODEV|unix.MS_NOEXEC, ""); err != nil {
			return fmt.Errorf("noproc: mount /proc for the command's PID namespace: %v", err)
		}
	}
	flags, data, err := parseMountSpec(os.Getenv(runMountEnv))
	if err != nil {
		return fmt.Errorf("error: %v", err)
	}
	// The daemon's descriptor of the directory belongs to its mount
	// namespace, where this one may not mount: open the directory again
	// here, check that it is the same one, and mount through the new
	// descriptor, which nobody can swap.
	fd, err := reopenSameDir(stagePointFd, st.dir)
	if err != nil {
		return fmt.Errorf("error: %v", err)
	}
	defer unix.Close(fd)
	if err := unix.Mount("tmpmount", fmt.Sprintf("/proc/self/fd/%d", fd), "fuse.tmpmount", flags, data); err != nil {
		return fmt.Errorf("error: mount %s: %v", st.dir, err)
	}
	return nil
}

// reopenSameDir opens path, a directory, without following a symlink as
// its last component, and checks that it is the directory open as fd.
func reopenSameDir(fd int, path string) (int, error) {
	again, err := unix.Open(path, unix.O_RDONLY|unix.O_DIRECTORY|unix.O_NOFOLLOW|unix.O_CLOEXEC, 0)
	if err != nil {
		return -1, fmt.Errorf("open the mount point %s: %v", path, err)
	}
	var made, found unix.Stat_t
	if err := unix.Fstat(fd, &made); err == nil {
		err = unix.Fstat(again, &found)
	}
	if err != nil || made.Dev != found.Dev || made.Ino != found.Ino {
		unix.Close(again)
		return -1, fmt.Errorf("the mount point %s was replaced before it could be mounted on", path)
	}
	return again, nil
}

// startCommand starts the command and returns its pid, or 0 and the exit
// status if it could not be started (127: not found, 126: not runnable),
// having said why.
func startCommand(argv, env []string, logger *log.Logger) (pid, code int) {
	path, err := exec.LookPath(argv[0])
	if err == nil {
		pid, err = syscall.ForkExec(path, argv, &syscall.ProcAttr{
			Env:   env,
			Files: []uintptr{0, 1, 2},
			// If the stage is killed, the command goes with it.
			Sys: &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL},
		})
	}
	switch {
	case err == nil:
		return pid, 0
	case errors.Is(err, exec.ErrNotFound), errors.Is(err, unix.ENOENT):
		logger.Printf("cannot run %s: %v", argv[0], notFoundReason(err))
		return 0, exitNotFound
	default:
		logger.Printf("cannot run %s: %v", argv[0], unwrapExecError(err))
		return 0, exitCannotRun
	}
}

func notFoundReason(err error) string {
	if errors.Is(err, exec.ErrNotFound) {
		return "not found in $PATH"
	}
	return unwrapExecError(err).Error()
}

// unwrapExecError drops exec's "exec: NAME:" prefix: the caller names it.
func unwrapExecError(err error) error {
	var ee *exec.Error
	if errors.As(err, &ee) {
		return ee.Err
	}
	return err
}

// superviseCommand passes signals on to the command until it exits, then
// ends what it left behind, and returns its status.
func (st *commandStage) superviseCommand() int {
	fromTerminal := isTerminal(0)
	for !st.cmdDone {
		select {
		case sig := <-st.signals:
			switch {
			case sig == syscall.SIGCHLD:
				st.reap()
			case (sig == syscall.SIGINT || sig == syscall.SIGQUIT) && fromTerminal:
				// From the terminal, which sent it to the command too.
			default:
				unix.Kill(st.cmdPid, sig.(syscall.Signal))
			}
		case <-st.gone:
			st.daemonGone()
		case <-time.After(time.Second):
			st.reap() // in case a SIGCHLD was merged with another
		}
	}
	st.endStragglers()
	return st.cmdStatus
}

// reap collects every child that has exited, the command included.
func (st *commandStage) reap() {
	for {
		var ws unix.WaitStatus
		pid, err := unix.Wait4(-1, &ws, unix.WNOHANG, nil)
		if pid <= 0 || err != nil {
			return
		}
		if pid == st.cmdPid {
			st.cmdStatus, st.cmdDone = shellStatus(syscall.WaitStatus(ws)), true
		}
	}
}

// endStragglers ends the processes the command started and left running:
// they get leaveGrace to exit by themselves, then SIGTERM and termGrace,
// then SIGKILL; each step is said. A signal to tmpmount run meanwhile (a
// second Ctrl-C) ends them at once.
func (st *commandStage) endStragglers() {
	left := descendants(st.self)
	if len(left) == 0 {
		return
	}
	st.logger.Printf("the command has exited, but %d process(es) it started still run: %s; waiting up to %v for them to exit (Ctrl-C ends them now)",
		len(left), joinProcesses(left), leaveGrace)
	gone, hurried := st.awaitNone(leaveGrace)
	if gone {
		return
	}
	if left = descendants(st.self); len(left) > 0 && !hurried {
		st.logger.Printf("sending SIGTERM to %d process(es) the command started: %s; waiting up to %v", len(left), joinProcesses(left), termGrace)
		signalAll(left, unix.SIGTERM)
		if gone, _ := st.awaitNone(termGrace); gone {
			return
		}
	}
	st.killAll()
}

// awaitNone waits up to grace for the command's processes to be gone. It
// returns early, hurried, after saying so, if a signal says to hurry.
func (st *commandStage) awaitNone(grace time.Duration) (gone, hurried bool) {
	deadline := time.After(grace)
	tick := time.NewTicker(100 * time.Millisecond)
	defer tick.Stop()
	for {
		st.reap()
		if len(descendants(st.self)) == 0 {
			return true, false
		}
		select {
		case sig := <-st.signals:
			if sig == syscall.SIGCHLD {
				continue
			}
			st.logger.Printf("%v: ending the processes the command started now", sig)
			return false, true
		case <-st.gone:
			st.daemonGone()
		case <-deadline:
			return false, false
		case <-tick.C:
		}
	}
}

// killAll sends SIGKILL to the command's processes until none is left
// (one may fork while it is being killed).
func (st *commandStage) killAll() {
	left := descendants(st.self)
	if len(left) == 0 {
		return
	}
	// Said before it is done: in a PID namespace one kill ends them all,
	// and there would be nothing left to name afterwards.
	st.logger.Printf("sending SIGKILL to %d process(es) the command started: %s", len(left), joinProcesses(left))
	if st.self == 1 {
		unix.Kill(-1, unix.SIGKILL) // the init of a PID namespace: everyone else in it, at once
	}
	for deadline := time.Now().Add(10 * time.Second); len(left) > 0 && time.Now().Before(deadline); {
		signalAll(left, unix.SIGKILL)
		time.Sleep(20 * time.Millisecond)
		st.reap()
		left = descendants(st.self)
	}
	if len(left) > 0 {
		st.logger.Printf("%d process(es) the command started could not be ended: %s", len(left), joinProcesses(left))
	}
}

func signalAll(ps []process, sig unix.Signal) {
	for _, p := range ps {
		unix.Kill(p.pid, sig)
	}
}

// daemonGone cleans up after a daemon that died (SIGKILL, the OOM killer):
// the command and everything it started are killed, the dead mount goes,
// the mount point and the daemon's (now empty) spill directory are
// removed, and the stage exits.
func (st *commandStage) daemonGone() {
	st.logger.Printf("the tmpmount daemon serving %s is gone; ending the command and everything it started", st.dir)
	st.killAll()
	if st.mounted {
		unix.Unmount(st.dir, unix.MNT_DETACH) // in this namespace only: nobody else sees it
	} else if bin, err := fusermountPath(); err == nil {
		exec.Command(bin, "-u", "-z", st.dir).Run()
	}
	if err := unix.Rmdir(st.dir); err != nil && !errors.Is(err, unix.ENOENT) {
		st.logger.Printf("remove the mount point %s: %v", st.dir, err)
	}
	if spill := os.Getenv(runSpillEnv); spill != "" {
		unix.Rmdir(spill) // empty: its files had no names
	}
	os.Exit(exitRunFailed)
}

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
	"strconv"
	"strings"
	"syscall"
	"time"

	"golang.org/x/sys/unix"

	"github.com/tmpmount/tmpmount/fsnode"
)

// Exit statuses of tmpmount run of its own, as env(1), timeout(1) and
// nice(1) use them; otherwise it exits with the command's status.
const (
	exitRunFailed = 125 // tmpmount run itself failed (nothing ran, or keep files were lost)
	exitCannotRun = 126 // the command was found but could not be run
	exitNotFound  = 127 // the command was not found
)

// tmpmount run is two processes. The daemon serves the mount; the command
// stage, a copy of tmpmount started by the daemon, runs the command and
// ends with it. The stage is a subreaper: whatever the command starts and
// leaves behind (double forks, setsid) becomes its child, so that the
// processes the command started, and only those, are found and ended when
// it exits. As root, the stage also has a mount namespace of its own,
// in which it mounts the scratch directory (so that the kernel removes the
// mount with the last process that can see it, whatever kills whom), and
// a PID namespace of its own, of which it is the init (so that when it
// ends, however, the kernel ends every process the command started).
// The stage learns that the daemon died from the end of a pipe the daemon
// holds, ends everything and removes the mount point.

// The command stage's environment and descriptors.
const (
	runStageEnv = "TMPMOUNT_RUN_STAGE" // "command": this process is the command stage
	runDirEnv   = "TMPMOUNT_RUN_DIR"   // the mount point
	runMountEnv = "TMPMOUNT_RUN_MOUNT" // FLAGS:DATA: mount the /dev/fuse descriptor there (root)
	runProcEnv  = "TMPMOUNT_RUN_PROC"  // "1": in a new PID namespace: mount its /proc
	runSpillEnv = "TMPMOUNT_RUN_SPILL" // the daemon's spill directory, removed if the daemon dies
	runOOMEnv   = "TMPMOUNT_RUN_OOM"   // oom_score_adj to give the command back

	stageStatusFd = 3 // stage to daemon: "mounted", or "error: WHY", or "noproc: WHY"
	stageGoFd     = 4 // daemon to stage: "go"; its end (EOF) means the daemon is gone
	stagePointFd  = 5 // the mount point directory
	stageFuseFd   = 6 // /dev/fuse, as root
)

// runCommand is `tmpmount run [flags] -- CMD [ARGS...]`: a private mount
// point, a mount on it, CMD run with TMPDIR (and TMP, TEMP) pointing there
// and the mount point in TMPMOUNT_DIR; when CMD exits, the processes it
// left are given a moment, then ended, keep files are saved, the mount
// goes, the mount point is removed, and tmpmount exits with CMD's status
// (128+N if a signal N killed it).
func runCommand(args []string, stdout, stderr io.Writer, logger *log.Logger) int {
	if os.Getenv(runStageEnv) == "command" {
		return runCommandStage(args, logger)
	}
	o, err := parseRunArgs(args, stdout)
	if code, done := afterParse(err, o, stdout, logger); done {
		if code == exitUsage {
			return exitRunFailed
		}
		return code
	}
	signals := make(chan os.Signal, 4)
	signal.Notify(signals, syscall.SIGINT, syscall.SIGTERM, syscall.SIGHUP)
	defer signal.Stop(signals)
	oomScoreAdj := readOOMScoreAdj()

	base, err := runBase()
	if err != nil {
		logger.Print(err)
		return exitRunFailed
	}
	sweepRunPoints(base, logger)
	point, err := makeRunPoint(base)
	if err != nil {
		logger.Print(err)
		return exitRunFailed
	}
	stopOutputs, err := startOutputs(o, point.path, logger)
	if err != nil {
		logger.Print(err)
		point.remove()
		return exitRunFailed
	}
	defer stopOutputs()
	s, err := prepareSession(o, point.path, logger)
	if err != nil {
		logger.Print(err)
		point.remove()
		return exitRunFailed
	}
	st, err := startStage(s, point, oomScoreAdj)
	if err != nil {
		logger.Print(err)
		point.remove()
		return exitRunFailed
	}
	status := st.run(signals)
	if st.namespaces {
		// The mount lives in the stage's namespace, gone with it; only a
		// process outside the command that holds a file of the mount (one
		// passed to it over a socket, say) can keep it.
		s.waitServed(leaveGrace)
	} else {
		s.unmountAfterRun()
	}
	code := s.finish(progressPrinter(logger))
	if err := point.remove(); err != nil {
		logger.Print(err)
	}
	if status == 0 && code != exitOK {
		return exitRunFailed // keep files were lost: say so in the status too
	}
	return status
}

// stage is the running command stage, seen from the daemon.
type stage struct {
	cmd        *exec.Cmd
	status     *bufio.Reader // what the stage reports before the command runs
	statusFile *os.File
	goPipe     *os.File // held open for the daemon's life
	namespaces bool     // the stage has a mount namespace of its own (root)
}

// startStage starts the command stage and has the mount made: as root, by
// the stage in its own mount namespace (and, where the kernel allows, in a
// PID namespace of its own, with its own /proc); otherwise by the daemon,
// through fusermount3, where everyone sees it. On error nothing is mounted
// and the session is freed.
func startStage(s *session, point *runPoint, oomScoreAdj string) (*stage, error) {
	if os.Geteuid() == 0 {
		st, tried, err := startStageInNamespaces(s, point, oomScoreAdj)
		if tried {
			return st, err
		}
		// No namespaces here (a container's seccomp filter, say): as an
		// unprivileged user does, in everyone's namespace.
	}
	if err := s.mount(0); err != nil {
		return nil, err
	}
	st, err := spawnStage(s, point, oomScoreAdj, -1, false)
	if err == nil {
		_, err = st.awaitMounted()
	}
	if err != nil {
		s.unmount()
		s.finish(nil)
		return nil, err
	}
	return st, nil
}

// startStageInNamespaces starts the stage in a mount namespace of its own
// and, where it can mount a /proc there, a PID namespace of its own, and
// has it mount there. tried is false if the kernel refused the namespaces:
// then nothing is mounted and the session is still prepared.
func startStageInNamespaces(s *session, point *runPoint, oomScoreAdj string) (st *stage, tried bool, err error) {
	for _, pidNS := range []bool{true, false} {
		fuseFd, err := unix.Open("/dev/fuse", unix.O_RDWR|unix.O_CLOEXEC, 0)
		if err != nil {
			s.abandon()
			return nil, true, fmt.Errorf("open /dev/fuse: %v", err)
		}
		st, err := spawnStage(s, point, oomScoreAdj, fuseFd, pidNS)
		if err != nil {
			unix.Close(fuseFd)
			if errors.Is(err, unix.EPERM) || errors.Is(err, unix.EINVAL) || errors.Is(err, unix.ENOSPC) || errors.Is(err, unix.EUSERS) {
				continue // this kind of namespace is not to be had here
			}
			s.abandon()
			return nil, true, err
		}
		noProc, err := st.awaitMounted()
		if err != nil {
			unix.Close(fuseFd)
			st.stop()
			if noProc && pidNS {
				continue // no /proc of its own here (a container's masked /proc): no PID namespace
			}
			s.abandon()
			return nil, true, err
		}
		s.dev = st.mountDev(point.path)
		if err := s.mount(fuseFd); err != nil {
			st.stop()
			return nil, true, err
		}
		return st, true, nil
	}
	return nil, false, nil
}

// spawnStage starts the command stage. fuseFd, if not -1, is the /dev/fuse
// descriptor the stage mounts in a mount namespace of its own (and a PID
// namespace of its own with pidNS).
func spawnStage(s *session, point *runPoint, oomScoreAdj string, fuseFd int, pidNS bool) (*stage, error) {
	exe, err := os.Executable()
	if err != nil {
		exe = "/proc/self/exe"
	}
	statusR, statusW, err := os.Pipe()
	if err != nil {
		return nil, fmt.Errorf("start the command: %v", err)
	}
	goR, goW, err := os.Pipe()
	if err != nil {
		statusR.Close()
		statusW.Close()
		return nil, fmt.Errorf("start the command: %v", err)
	}
	defer statusW.Close()
	defer goR.Close()
	// The stage gets copies of the descriptors: those of the point, and
	// the /dev/fuse one that go-fuse is to serve, stay the daemon's.
	pointFile, err := dupFile(point.fd, point.path)
	if err != nil {
		statusR.Close()
		goW.Close()
		return nil, fmt.Errorf("start the command: %v", err)
	}
	defer pointFile.Close()

	cmd := exec.Command(exe, append([]string{"run", "--"}, s.o.command...)...)
	cmd.Args[0] = "tmpmount"
	cmd.Stdin, cmd.Stdout, cmd.Stderr = os.Stdin, os.Stdout, os.Stderr
	cmd.Env = append(commandEnv(point.path),
		runStageEnv+"=command", runDirEnv+"="+point.path, runOOMEnv+"="+oomScoreAdj,
		runSpillEnv+"="+s.root.Store().Dir())
	cmd.ExtraFiles = []*os.File{statusW, goR, pointFile}
	st := &stage{cmd: cmd, status: bufio.NewReader(statusR), statusFile: statusR, goPipe: goW}
	if fuseFd >= 0 {
		fuseFile, err := dupFile(fuseFd, "/dev/fuse")
		if err != nil {
			statusR.Close()
			goW.Close()
			return nil, fmt.Errorf("start the command: %v", err)
		}
		defer fuseFile.Close()
		cmd.ExtraFiles = append(cmd.ExtraFiles, fuseFile)
		_, fstype, flags, data := fsnode.KernelMountArgs(s.mountConfig(), stageFuseFd)
		if fstype != "fuse.tmpmount" {
			panic("unexpected filesystem type " + fstype)
		}
		cmd.Env = append(cmd.Env, fmt.Sprintf("%s=%d:%s", runMountEnv, flags, data))
		// Not Unshareflags, which makes every mount private: the stage
		// makes them slaves, so that what the host unmounts goes in the
		// stage's namespace too.
		cmd.SysProcAttr = &syscall.SysProcAttr{Cloneflags: syscall.CLONE_NEWNS}
		if pidNS {
			cmd.SysProcAttr.Cloneflags |= syscall.CLONE_NEWPID
			cmd.Env = append(cmd.Env, runProcEnv+"=1")
		}
		st.namespaces = true
	}
	if err := cmd.Start(); err != nil {
		statusR.Close()
		goW.Close()
		return nil, fmt.Errorf("start the command: %w", err)
	}
	return st, nil
}

// dupFile is a copy of descriptor fd, as an *os.File of its own.
func dupFile(fd int, name string) (*os.File, error) {
	dup, err := unix.FcntlInt(uintptr(fd), unix.F_DUPFD_CLOEXEC, 0)
	if err != nil {
		return nil, err
	}
	return os.NewFile(uintptr(dup), name), nil
}

// commandEnv is the environment of the command: this one, with the
// temporary directory variables pointing at the mount.
func commandEnv(mountpoint string) []string {
	set := map[string]bool{"TMPDIR": true, "TMP": true, "TEMP": true, "TMPMOUNT_DIR": true}
	var env []string
	for _, kv := range os.Environ() {
		name, _, _ := strings.Cut(kv, "=")
		if !set[name] && !strings.HasPrefix(name, "TMPMOUNT_RUN_") {
			env = append(env, kv)
		}
	}
	return append(env, "TMPDIR="+mountpoint, "TMP="+mountpoint, "TEMP="+mountpoint, "TMPMOUNT_DIR="+mountpoint)
}

// awaitMounted waits for the stage to say the mount is made (or that no
// mount was its to make). noProc tells a failure to mount its own /proc.
func (st *stage) awaitMounted() (noProc bool, err error) {
	line, readErr := st.status.ReadString('\n')
	st.statusFile.Close()
	line = strings.TrimSuffix(line, "\n")
	switch {
	case line == "mounted":
		return false, nil
	case strings.HasPrefix(line, "noproc: "):
		return true, errors.New(strings.TrimPrefix(line, "noproc: "))
	case strings.HasPrefix(line, "error: "):
		return false, errors.New(strings.TrimPrefix(line, "error: "))
	}
	return false, fmt.Errorf("the command stage ended before mounting (%v)", readErr)
}

// mountDev finds the device number of the mount the stage made at path, in
// its mount namespace, so that processes outside it that hold files of the
// mount can be named.
func (st *stage) mountDev(path string) uint64 {
	table, _ := mountTable(fmt.Sprintf("/proc/%d/mountinfo", st.cmd.Process.Pid))
	if m, ok := topMountAt(table, path); ok && m.fstype == "fuse.tmpmount" {
		return m.dev
	}
	return 0
}

// stop ends a stage that has not been told to run the command.
func (st *stage) stop() {
	st.goPipe.Close()
	st.cmd.Wait()
}

// run lets the stage run the command, passes on SIGINT, SIGTERM and
// SIGHUP, and returns the stage's exit status: the command's, as a shell
// reports it, or 126 or 127 if it could not be run.
func (st *stage) run(signals <-chan os.Signal) int {
	defer st.goPipe.Close()
	if _, err := st.goPipe.WriteString("go\n"); err != nil {
		st.cmd.Wait()
		return exitRunFailed
	}
	// A Ctrl-C at a terminal reaches the whole foreground process group,
	// the stage and the command included: passing it on would deliver it
	// twice.
	fromTerminal := isTerminal(0)
	done := make(chan struct{})
	go func() {
		st.cmd.Wait()
		close(done)
	}()
	for {
		select {
		case sig := <-signals:
			if sig == syscall.SIGINT && fromTerminal {
				continue
			}
			st.cmd.Process.Signal(sig)
		case <-done:
			return shellStatus(st.cmd.ProcessState.Sys().(syscall.WaitStatus))
		}
	}
}

// shellStatus is a wait status as a shell reports it.
func shellStatus(ws syscall.WaitStatus) int {
	if ws.Signaled() {
		return 128 + int(ws.Signal())
	}
	return ws.ExitStatus()
}

func isTerminal(fd int) bool {
	_, err := unix.IoctlGetTermios(fd, unix.TCGETS)
	return err == nil
}

// Graces given, at the end of tmpmount run, to processes that the command
// started and left running: to exit by themselves, then after SIGTERM.
const (
	leaveGrace = 5 * time.Second
	termGrace  = 2 * time.Second
)

// unmountAfterRun unmounts the mount made in everyone's namespace once the
// command and what it started have ended. Processes it did not start may
// still use it (a shell that cd'ed there): they are named, and the mount
// is detached lazily, to go when they leave.
func (s *session) unmountAfterRun() {
	err := s.server.Unmount()
	if err == nil {
		return
	}
	users := usersOfDev(s.dev)
	s.logger.Printf("%d process(es) that the command did not start still use %s (%s); detaching it lazily: it goes away, and tmpmount exits, when they leave",
		len(users), s.mountpoint, joinProcesses(users))
	if err := lazyUnmount(s.mountpoint); err != nil {
		s.logger.Printf("lazy unmount of %s failed: %v; unmount it yourself (umount -l %s)", s.mountpoint, oneLine(err), s.mountpoint)
	}
}

// waitServed waits for the kernel to end the mount, saying after grace
// which processes keep it.
func (s *session) waitServed(grace time.Duration) {
	done := make(chan struct{})
	go func() {
		s.server.Wait()
		close(done)
	}()
	select {
	case <-done:
		return
	case <-time.After(grace):
	}
	users := usersOfDev(s.dev)
	s.logger.Printf("the command has ended, but %d process(es) outside it hold files of its mount (%s); tmpmount waits until they close them (kill %s to end them)",
		len(users), joinProcesses(users), pidList(users))
	<-done
}

// parseMountSpec reads FLAGS:DATA (runMountEnv).
func parseMountSpec(spec string) (flags uintptr, data string, err error) {
	flagText, data, ok := strings.Cut(spec, ":")
	f, convErr := strconv.ParseUint(flagText, 10, 64)
	if !ok || convErr != nil {
		return 0, "", fmt.Errorf("bad %s %q", runMountEnv, spec)
	}
	return uintptr(f), data, nil
}

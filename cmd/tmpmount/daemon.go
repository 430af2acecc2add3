package main

import (
	"io"
	"log"
	"log/syslog"
	"os"
	"os/exec"
	"strconv"
	"strings"
	"syscall"
)

// Started by mount(8) (options given with -o), tmpmount goes to the
// background as other FUSE filesystems do: mount(8) waits for the command
// to exit, so the command starts itself again in a new session, waits until
// that copy has mounted (or failed, and why), and exits with the status
// mount(8) should report. The copy logs to syslog (or --log FILE).

// readyFdEnv names the descriptor on which the background copy reports
// "ok" or the error that stopped it.
const readyFdEnv = "TMPMOUNT_READY_FD"

func isDaemonChild() bool { return os.Getenv(readyFdEnv) != "" }

func daemonize(args []string, logger *log.Logger) int {
	exe, err := os.Executable()
	if err != nil {
		logger.Printf("cannot go to the background: %v", err)
		return exitUsage
	}
	r, w, err := os.Pipe()
	if err != nil {
		logger.Printf("cannot go to the background: %v", err)
		return exitUsage
	}
	devnull, err := os.OpenFile(os.DevNull, os.O_RDWR, 0)
	if err != nil {
		logger.Printf("cannot go to the background: %v", err)
		return exitUsage
	}
	defer devnull.Close()
	cmd := exec.Command(exe, args...)
	cmd.Env = append(os.Environ(), readyFdEnv+"=3")
	cmd.ExtraFiles = []*os.File{w}
	cmd.Stdin, cmd.Stdout, cmd.Stderr = devnull, devnull, devnull
	cmd.SysProcAttr = &syscall.SysProcAttr{Setsid: true}
	if err := cmd.Start(); err != nil {
		logger.Printf("cannot go to the background: %v", err)
		return exitUsage
	}
	w.Close()
	msg, _ := io.ReadAll(r)
	r.Close()
	if string(msg) == "ok\n" {
		cmd.Process.Release()
		return exitOK
	}
	cmd.Wait()
	if len(msg) == 0 {
		logger.Print("the background tmpmount exited before mounting")
	} else {
		logger.Print(strings.TrimSpace(string(msg)))
	}
	return exitUsage
}

// notifyParent tells the waiting foreground copy, if any, that the mount is
// up (err nil) or why it is not.
func notifyParent(err error) {
	fdText := os.Getenv(readyFdEnv)
	if fdText == "" {
		return
	}
	os.Unsetenv(readyFdEnv)
	fd, convErr := strconv.Atoi(fdText)
	if convErr != nil {
		return
	}
	f := os.NewFile(uintptr(fd), "ready")
	if err == nil {
		f.WriteString("ok\n")
	} else {
		f.WriteString(err.Error() + "\n")
	}
	f.Close()
}

// backgroundLog is where the background copy logs when not told a file:
// syslog, or nowhere if there is none (containers often have none).
func backgroundLog() io.Writer {
	w, err := syslog.New(syslog.LOG_DAEMON|syslog.LOG_INFO, "tmpmount")
	if err != nil {
		return io.Discard
	}
	return w
}

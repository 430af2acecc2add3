// Command tmpmount mounts a temporary FUSE filesystem whose files live in
// RAM and roll over to disk past a per-file size.
package main

import (
	"errors"
	"fmt"
	"io"
	"log"
	"os"
	"os/signal"
	"runtime/debug"
	"syscall"
	"time"
)

// Exit codes.
const (
	exitOK      = 0
	exitFailure = 1 // a failure while serving
	exitUsage   = 2 // bad command line or setup: nothing was mounted
)

func main() {
	os.Exit(run(os.Args[1:], os.Stdout, os.Stderr))
}

// run dispatches: tmpmount run, tmpmount stat, tmpmount help, or a mount.
// (A mount point named "run", "stat" or "help" is given as ./run.)
func run(args []string, stdout, stderr io.Writer) int {
	// Logging to a pipe whose reader went away must not kill the daemon
	// (and leave its mount dead): the write fails instead.
	signal.Ignore(syscall.SIGPIPE)
	logger := log.New(stderr, "tmpmount: ", 0)
	if len(args) > 0 {
		switch args[0] {
		case "run":
			return runCommand(args[1:], stdout, stderr, logger)
		case "stat":
			return statCommand(args[1:], stdout, logger)
		case "help":
			return helpCommand(args[1:], stdout, logger)
		}
	}
	if isRemount(args) {
		return remountCommand(args, logger)
	}
	return mountCommand(args, stdout, stderr, logger)
}

// afterParse ends a command whose flags asked for help or the version, or
// were bad (done is true, with the exit status).
func afterParse(err error, o *options, stdout io.Writer, logger *log.Logger) (code int, done bool) {
	switch {
	case errors.Is(err, errHelp):
		return exitOK, true
	case err != nil:
		logger.Print(err)
		return exitUsage, true
	case o.version:
		fmt.Fprintln(stdout, versionString())
		return exitOK, true
	}
	return 0, false
}

// mountCommand mounts and serves until the mount is gone.
func mountCommand(args []string, stdout, stderr io.Writer, logger *log.Logger) int {
	o, err := parseArgs(args, stdout)
	if code, done := afterParse(err, o, stdout, logger); done {
		return code
	}
	if o.viaMount && !o.foreground && !isDaemonChild() {
		// Started by mount(8): go to the background once mounted.
		return daemonize(args, logger)
	}
	if o.logFile == "" && isDaemonChild() {
		logger.SetOutput(backgroundLog())
		logger.SetPrefix("")
	}
	stopOutputs, err := startOutputs(o, o.mountpoint, logger)
	if err != nil {
		logger.Print(err)
		notifyParent(err)
		return exitUsage
	}
	defer stopOutputs()

	// Take SIGINT, SIGTERM and SIGHUP (a closed terminal) from before the mount exists: one that
	// arrived while mounting would otherwise kill the daemon with its mount
	// half made. It is acted on once the mount is up.
	signals := make(chan os.Signal, 1)
	signal.Notify(signals, syscall.SIGINT, syscall.SIGTERM, syscall.SIGHUP)
	defer signal.Stop(signals)

	mountpoint, err := checkMountpoint(o.mountpoint, logger)
	if err != nil {
		logger.Print(err)
		notifyParent(err)
		return exitUsage
	}
	s, err := startSession(o, mountpoint, logger)
	if err != nil {
		logger.Print(err)
		notifyParent(err)
		return exitUsage
	}
	notifyParent(nil)
	go s.serveSignals(signals)
	return s.finish(progressPrinter(logger))
}

// startOutputs sends log lines to --log's file (refusing one inside the
// mount point) and starts --profile's profiles; stop ends both, at exit.
func startOutputs(o *options, mountpoint string, logger *log.Logger) (stop func(), err error) {
	var logFile *os.File
	if o.logFile != "" {
		if logFile, err = openLog(o.logFile, mountpoint); err != nil {
			return nil, err
		}
		logger.SetOutput(logFile)
	}
	stopProfiles := func(*log.Logger) {}
	if o.profileDir != "" {
		if stopProfiles, err = startProfiles(o.profileDir); err != nil {
			if logFile != nil {
				logFile.Close()
			}
			return nil, err
		}
	} else {
		signal.Ignore(syscall.SIGUSR1) // heap profiles only with --profile
	}
	return func() {
		stopProfiles(logger)
		if logFile != nil {
			logFile.Close()
		}
	}, nil
}

// helpCommand is `tmpmount help [COMMAND]`.
func helpCommand(args []string, stdout io.Writer, logger *log.Logger) int {
	topic := ""
	if len(args) > 0 {
		topic = args[0]
	}
	switch {
	case len(args) > 1:
		logger.Print("help takes one command at most: tmpmount help [run|stat]")
		return exitUsage
	case topic == "" || topic == "mount":
		printMountHelp(stdout)
	case topic == "run":
		printRunHelp(stdout)
	case topic == "stat":
		printStatHelp(stdout)
	case topic == "help" || topic == "-h" || topic == "--help":
		fmt.Fprintln(stdout, "Usage: tmpmount help [run|stat]: the help of tmpmount, or of one of its commands")
	default:
		msg := fmt.Sprintf("help: no command %q", topic)
		if c := closest(topic, []string{"run", "stat", "help", "mount"}); c != "" {
			msg += fmt.Sprintf(": did you mean %s?", c)
		}
		logger.Printf("%s (commands: run, stat; see tmpmount --help)", msg)
		return exitUsage
	}
	return exitOK
}

// describeLimit names a limit for the serving line: 0 is none.
func describeLimit(n int64) string {
	if n == 0 {
		return "unlimited"
	}
	return formatSize(n)
}

func describeMaxSize(n int64) string {
	if n == 0 {
		return "0, never by size"
	}
	return formatSize(n)
}

// version is set at link time (-ldflags "-X main.version=...") for
// releases; otherwise the module version is used.
var version = ""

func versionString() string {
	v := version
	if v == "" {
		v = "(devel)"
		if bi, ok := debug.ReadBuildInfo(); ok && bi.Main.Version != "" {
			v = bi.Main.Version
		}
	}
	fuseVersion := ""
	if bi, ok := debug.ReadBuildInfo(); ok {
		for _, dep := range bi.Deps {
			if dep.Path == "github.com/hanwen/go-fuse/v2" {
				fuseVersion = ", go-fuse " + dep.Version
			}
		}
	}
	return fmt.Sprintf("tmpmount %s%s", v, fuseVersion)
}

// progressPrinter reports the saving of keep files when it takes longer
// than a second: bytes done of the total, about once a second.
func progressPrinter(logger *log.Logger) func(done, total int64) {
	start := time.Now()
	var last time.Time
	return func(done, total int64) {
		now := time.Now()
		if now.Sub(start) < time.Second || (now.Sub(last) < time.Second && done < total) {
			return
		}
		last = now
		logger.Printf("saving keep files: %s of %s", formatSize(done), formatSize(total))
	}
}

// Command closelatency measures how soon after close(2) returns a file of
// the close policy is gone by name. FUSE sends RELEASE after close(2)
// returns, not inside it, so the name lingers for a moment: this says how
// long. It mounts tmpmount with --delete close on a temporary directory,
// then, n times: creates a file, writes to it, closes it, and polls stat(2)
// in a tight loop until ENOENT, timing from the return of close(2). It
// prints the percentiles, how many names were already gone at the first
// stat, and any file that was never deleted within -timeout (a bug).
//
//	go run ./scripts/closelatency                 # builds tmpmount from this repository
//	go run ./scripts/closelatency -bin ./tmpmount -n 10000 -size 100
//
// It needs root or fusermount3, as tmpmount does.
package main

import (
	"bufio"
	"errors"
	"flag"
	"fmt"
	"os"
	"os/exec"
	"os/signal"
	"path/filepath"
	"runtime"
	"slices"
	"strings"
	"syscall"
	"time"

	"golang.org/x/sys/unix"
)

// init keeps the main goroutine on the main thread, which starts the
// daemon with Pdeathsig: the signal fires when that thread ends, so the
// daemon unmounts itself if this program dies.
func init() { runtime.LockOSThread() }

func main() {
	os.Exit(run())
}

func run() int {
	bin := flag.String("bin", "", "tmpmount binary (default: go build ./cmd/tmpmount of the repository holding this program)")
	n := flag.Int("n", 10000, "files to create, close and wait for")
	size := flag.Int("size", 100, "bytes written to each file")
	timeout := flag.Duration("timeout", 10*time.Second, "how long a file may take to vanish before it counts as never deleted")
	extra := flag.String("args", "", "extra tmpmount flags, space separated (e.g. \"--max-size 0\")")
	flag.Parse()

	work, err := os.MkdirTemp("", "closelatency-")
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	defer os.RemoveAll(work)
	if *bin == "" {
		*bin = filepath.Join(work, "tmpmount")
		build := exec.Command("go", "build", "-o", *bin, "./cmd/tmpmount")
		build.Dir = repoRoot()
		build.Stdout, build.Stderr = os.Stderr, os.Stderr
		if err := build.Run(); err != nil {
			fmt.Fprintln(os.Stderr, "building tmpmount:", err)
			return 1
		}
	}
	mnt, spill := filepath.Join(work, "mnt"), filepath.Join(work, "spill")
	for _, d := range []string{mnt, spill} {
		if err := os.Mkdir(d, 0o700); err != nil {
			fmt.Fprintln(os.Stderr, err)
			return 1
		}
	}

	args := []string{"--delete", "close", "--spill-dir", spill}
	if *extra != "" {
		args = append(args, strings.Fields(*extra)...)
	}
	args = append(args, mnt)
	daemon := exec.Command(*bin, args...)
	daemon.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGTERM}
	stderr, err := daemon.StderrPipe()
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	if err := daemon.Start(); err != nil {
		fmt.Fprintln(os.Stderr, "start tmpmount:", err)
		return 1
	}
	serving := make(chan struct{})
	go func() {
		sc := bufio.NewScanner(stderr)
		said := false
		for sc.Scan() {
			line := sc.Text()
			if !said && strings.Contains(line, "tmpmount: serving ") {
				said = true
				close(serving)
				continue
			}
			fmt.Fprintln(os.Stderr, "daemon:", line)
		}
	}()
	exited := make(chan error, 1)
	go func() { exited <- daemon.Wait() }()
	select {
	case <-serving:
	case err := <-exited:
		fmt.Fprintln(os.Stderr, "tmpmount exited before serving:", err)
		return 1
	case <-time.After(10 * time.Second):
		daemon.Process.Kill()
		fmt.Fprintln(os.Stderr, "tmpmount did not serve within 10s")
		return 1
	}
	interrupted := make(chan os.Signal, 1)
	signal.Notify(interrupted, os.Interrupt, syscall.SIGTERM)

	res, err := measure(mnt, *n, *size, *timeout, interrupted)
	code := 0
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		code = 1
	}
	report(res, *n, *size)
	if len(res.never) > 0 {
		code = 1
	}

	daemon.Process.Signal(syscall.SIGTERM)
	select {
	case err := <-exited:
		if err != nil {
			fmt.Fprintln(os.Stderr, "tmpmount exited with", err)
			code = 1
		}
	case <-time.After(20 * time.Second):
		daemon.Process.Kill()
		syscall.Unmount(mnt, unix.MNT_DETACH)
		fmt.Fprintln(os.Stderr, "tmpmount did not exit within 20s of SIGTERM")
		code = 1
	}
	return code
}

// results of a run.
type results struct {
	latencies []time.Duration // close(2) returned -> stat(2) said ENOENT, for files that went
	immediate int             // gone at the first stat after close(2)
	polls     int64           // stat calls made in all
	never     []string        // files still there after the timeout
}

func measure(mnt string, n, size int, timeout time.Duration, stop <-chan os.Signal) (results, error) {
	var res results
	data := make([]byte, size)
	for i := range data {
		data[i] = byte('a' + i%26)
	}
	var st unix.Stat_t
	for i := range n {
		select {
		case <-stop:
			return res, errors.New("interrupted")
		default:
		}
		path := filepath.Join(mnt, fmt.Sprintf("f%06d", i))
		fd, err := unix.Open(path, unix.O_CREAT|unix.O_EXCL|unix.O_WRONLY|unix.O_CLOEXEC, 0o600)
		if err != nil {
			return res, fmt.Errorf("create %s: %w", path, err)
		}
		if _, err := unix.Write(fd, data); err != nil {
			unix.Close(fd)
			return res, fmt.Errorf("write %s: %w", path, err)
		}
		if err := unix.Close(fd); err != nil {
			return res, fmt.Errorf("close %s: %w", path, err)
		}
		closed := time.Now()
		for first := true; ; first = false {
			err := unix.Stat(path, &st)
			res.polls++
			if errors.Is(err, unix.ENOENT) {
				if first {
					res.immediate++
				}
				res.latencies = append(res.latencies, time.Since(closed))
				break
			}
			if err != nil {
				return res, fmt.Errorf("stat %s: %w", path, err)
			}
			if time.Since(closed) > timeout {
				res.never = append(res.never, path)
				fmt.Fprintf(os.Stderr, "BUG: %s still exists %v after close(2)\n", path, timeout)
				break
			}
		}
	}
	return res, nil
}

func report(res results, n, size int) {
	lat := slices.Clone(res.latencies)
	slices.Sort(lat)
	pct := func(p float64) time.Duration {
		if len(lat) == 0 {
			return 0
		}
		i := int(p*float64(len(lat))+0.5) - 1
		return lat[min(max(i, 0), len(lat)-1)]
	}
	var sum time.Duration
	for _, d := range lat {
		sum += d
	}
	mean := time.Duration(0)
	if len(lat) > 0 {
		mean = sum / time.Duration(len(lat))
	}
	fmt.Printf("close(2) -> name gone (ENOENT), --delete close, %d files of %d bytes\n", n, size)
	fmt.Printf("  measured: %d  gone at the first stat: %d (%.1f%%)  never gone: %d  stat calls: %d\n",
		len(lat), res.immediate, 100*float64(res.immediate)/float64(max(len(lat), 1)), len(res.never), res.polls)
	fmt.Printf("  p50 %v  p90 %v  p99 %v  max %v  mean %v\n", pct(0.50), pct(0.90), pct(0.99), pct(1), mean)
	for _, p := range res.never {
		fmt.Printf("  never deleted: %s\n", p)
	}
}

// repoRoot is the module root holding this program (the working directory
// when run with go run from the repository, else found from go env GOMOD).
func repoRoot() string {
	out, err := exec.Command("go", "env", "GOMOD").Output()
	if err == nil {
		if mod := strings.TrimSpace(string(out)); mod != "" && mod != os.DevNull {
			return filepath.Dir(mod)
		}
	}
	wd, _ := os.Getwd()
	return wd
}

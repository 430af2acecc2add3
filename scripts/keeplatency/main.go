// Command keeplatency measures the saving of keep files while the mount
// serves (README, "Delete policies"):
//
//   - latency: how long after close(2) returns a keep file is saved (its
//     "keep" line in the events log, written once the copy and its
//     directory are synced), for 1 KiB files and 100 MiB files;
//
//   - close: how long close(2) takes for a keep file and for an unmount
//     file, interleaved in one mount, and the create-write-close rate of
//     each;
//
//   - kill: what a SIGKILL at a random moment of a 10,000-file keep
//     workload leaves in the keep dir, over -runs runs: files saved whole,
//     files closed but not yet saved, and anything that must never be
//     there (a file that is no version written, a temporary name, bytes in
//     the spill dir).
//
//     go run ./scripts/keeplatency                       # all three; builds tmpmount
//     go run ./scripts/keeplatency -only kill -runs 20
//
// The keep dir and the spill dir are made under -dir (default /var/tmp,
// the spill disk), so a file on disk is copied by the kernel. It needs root
// or fusermount3, as tmpmount does.
package main

import (
	"bufio"
	"bytes"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"math/rand/v2"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"slices"
	"strings"
	"sync"
	"syscall"
	"time"

	"golang.org/x/sys/unix"
)

// init keeps the main goroutine on the main thread, which starts daemons
// with Pdeathsig: they unmount themselves if this program dies.
func init() { runtime.LockOSThread() }

func main() { os.Exit(run()) }

type config struct {
	bin, dir  string
	small     int // 1 KiB files measured
	large     int // 100 MiB files measured
	closes    int // files of each policy for the close(2) times
	runs      int // kill runs
	killFiles int
}

func run() int {
	var c config
	flag.StringVar(&c.bin, "bin", "", "tmpmount binary (default: go build ./cmd/tmpmount, run from the repository root)")
	flag.StringVar(&c.dir, "dir", "/var/tmp", "where the mount point, keep dir and spill dir are made")
	flag.IntVar(&c.small, "small", 1000, "1 KiB keep files whose save latency is measured")
	flag.IntVar(&c.large, "large", 20, "100 MiB keep files whose save latency is measured")
	flag.IntVar(&c.closes, "closes", 5000, "files of each policy whose close(2) is timed")
	flag.IntVar(&c.runs, "runs", 20, "kill runs")
	flag.IntVar(&c.killFiles, "kill-files", 10000, "files written in each kill run")
	only := flag.String("only", "latency,close,kill", "which measurements, comma separated")
	flag.Parse()

	work, err := os.MkdirTemp(c.dir, "keeplatency-")
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	defer os.RemoveAll(work)
	if c.bin == "" {
		c.bin = filepath.Join(work, "tmpmount")
		build := exec.Command("go", "build", "-o", c.bin, "./cmd/tmpmount") // from the repository root, as go run ./scripts/keeplatency is
		build.Stdout, build.Stderr = os.Stderr, os.Stderr
		if err := build.Run(); err != nil {
			fmt.Fprintln(os.Stderr, "building tmpmount:", err)
			return 1
		}
	}
	fmt.Printf("keeplatency: %s, %d CPUs, keep and spill dirs in %s (%s)\n", time.Now().Format("2006-01-02"), runtime.NumCPU(), c.dir, fsType(c.dir))
	for _, what := range strings.Split(*only, ",") {
		var err error
		switch what {
		case "latency":
			err = measureLatency(c, work)
		case "close":
			err = measureClose(c, work)
		case "kill":
			err = measureKills(c, work)
		default:
			err = fmt.Errorf("unknown measurement %q: use latency, close or kill", what)
		}
		if err != nil {
			fmt.Fprintln(os.Stderr, "keeplatency:", err)
			return 1
		}
	}
	return 0
}

// daemon is a tmpmount serving a mount point for a measurement.
type daemon struct {
	cmd            *exec.Cmd
	mnt, keep, dir string
	events         string
	exited         chan error
}

// start mounts tmpmount in a fresh directory under work with a keep dir,
// an events log and args.
func start(c config, work, name string, args ...string) (*daemon, error) {
	d := &daemon{dir: filepath.Join(work, name), exited: make(chan error, 1)}
	d.mnt, d.keep = filepath.Join(d.dir, "mnt"), filepath.Join(d.dir, "keep")
	d.events = filepath.Join(d.dir, "events.jsonl")
	spill := filepath.Join(d.dir, "spill")
	for _, p := range []string{d.dir, d.mnt, d.keep, spill} {
		if err := os.Mkdir(p, 0o700); err != nil {
			return nil, err
		}
	}
	all := append([]string{"--spill-dir", spill, "--keep-dir", d.keep, "--events", d.events}, args...)
	d.cmd = exec.Command(c.bin, append(all, d.mnt)...)
	d.cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGTERM}
	stderr, err := d.cmd.StderrPipe()
	if err != nil {
		return nil, err
	}
	if err := d.cmd.Start(); err != nil {
		return nil, fmt.Errorf("start tmpmount: %w", err)
	}
	serving := make(chan struct{})
	go func() {
		sc := bufio.NewScanner(stderr)
		said := false
		for sc.Scan() {
			if line := sc.Text(); !said && strings.Contains(line, "tmpmount: serving ") {
				said = true
				close(serving)
			} else if !strings.Contains(line, "saving keep files") {
				fmt.Fprintln(os.Stderr, "  daemon:", line)
			}
		}
	}()
	go func() { d.exited <- d.cmd.Wait() }()
	select {
	case <-serving:
		return d, nil
	case err := <-d.exited:
		return nil, fmt.Errorf("tmpmount exited before serving: %v", err)
	case <-time.After(10 * time.Second):
		d.cmd.Process.Kill()
		return nil, errors.New("tmpmount did not serve within 10s")
	}
}

// stop unmounts and waits for the daemon (which saves what is left).
func (d *daemon) stop() error {
	d.cmd.Process.Signal(syscall.SIGTERM)
	select {
	case err := <-d.exited:
		return err
	case <-time.After(10 * time.Minute):
		d.cmd.Process.Kill()
		syscall.Unmount(d.mnt, unix.MNT_DETACH)
		return errors.New("tmpmount did not exit within 10 minutes of SIGTERM")
	}
}

// kill ends the daemon with SIGKILL and removes the dead mount.
func (d *daemon) kill() {
	d.cmd.Process.Kill()
	<-d.exited
	if err := syscall.Unmount(d.mnt, unix.MNT_DETACH); err != nil {
		exec.Command("fusermount3", "-uz", d.mnt).Run()
	}
}

// savedTail follows the events log and reports when each path's "keep"
// line appears.
type savedTail struct {
	mu    sync.Mutex
	cond  *sync.Cond
	saved map[string]time.Time
	stop  chan struct{}
}

func tailSaved(events string) *savedTail {
	s := &savedTail{saved: map[string]time.Time{}, stop: make(chan struct{})}
	s.cond = sync.NewCond(&s.mu)
	go func() {
		var f *os.File
		for f == nil {
			f, _ = os.Open(events)
			if f == nil {
				time.Sleep(time.Millisecond)
			}
		}
		defer f.Close()
		r := bufio.NewReader(f)
		var partial []byte
		for {
			line, err := r.ReadBytes('\n')
			partial = append(partial, line...)
			if err == io.EOF {
				select {
				case <-s.stop:
					return
				default:
				}
				time.Sleep(100 * time.Microsecond)
				continue
			}
			now := time.Now()
			var ev struct{ Event, Path string }
			if json.Unmarshal(partial, &ev) == nil && ev.Event == "keep" {
				s.mu.Lock()
				s.saved[ev.Path] = now
				s.cond.Broadcast()
				s.mu.Unlock()
			}
			partial = partial[:0]
		}
	}()
	return s
}

// wait returns when path was seen saved.
func (s *savedTail) wait(path string) time.Time {
	s.mu.Lock()
	defer s.mu.Unlock()
	for {
		if t, ok := s.saved[path]; ok {
			delete(s.saved, path)
			return t
		}
		s.cond.Wait()
	}
}

func writeFile(path string, data []byte, mode uint32) (closed time.Time, err error) {
	fd, err := unix.Open(path, unix.O_CREAT|unix.O_WRONLY|unix.O_TRUNC|unix.O_CLOEXEC, mode)
	if err != nil {
		return time.Time{}, err
	}
	for p := data; len(p) > 0; {
		n, err := unix.Write(fd, p[:min(len(p), 1<<20)])
		if err != nil {
			unix.Close(fd)
			return time.Time{}, err
		}
		p = p[n:]
	}
	if err := unix.Close(fd); err != nil {
		return time.Time{}, err
	}
	return time.Now(), nil
}

func measureLatency(c config, work string) error {
	d, err := start(c, work, "latency", "--delete", "keep")
	if err != nil {
		return err
	}
	tail := tailSaved(d.events)
	defer close(tail.stop)
	fmt.Println("close(2) returned -> saved (its keep line in the events log, after the syncs), one file at a time")
	for _, size := range []struct {
		name  string
		bytes int
		n     int
	}{{"1 KiB", 1 << 10, c.small}, {"100 MiB", 100 << 20, c.large}} {
		data := make([]byte, size.bytes)
		rand.NewChaCha8([32]byte{1}).Read(data)
		var lat []time.Duration
		for i := range size.n {
			name := fmt.Sprintf("f-%d-%d", size.bytes, i)
			p := filepath.Join(d.mnt, name)
			closed, err := writeFile(p, data, 0o644)
			if err != nil {
				return err
			}
			lat = append(lat, tail.wait(name).Sub(closed))
			if size.bytes > 1<<20 {
				os.Remove(p) // and so its copy: the disk is shared
			}
		}
		fmt.Printf("  %-8s n=%-5d %s\n", size.name, size.n, percentiles(lat))
	}
	return d.stop()
}

func measureClose(c config, work string) error {
	d, err := start(c, work, "close", "--rule", "k/**=keep")
	if err != nil {
		return err
	}
	for _, sub := range []string{"k", "u"} {
		if err := os.Mkdir(filepath.Join(d.mnt, sub), 0o755); err != nil {
			return err
		}
	}
	data := bytes.Repeat([]byte("x"), 1<<10)
	times := map[string][]time.Duration{}
	loops := map[string]time.Duration{}
	for i := range c.closes {
		for _, sub := range []string{"k", "u"} {
			start := time.Now()
			fd, err := unix.Open(filepath.Join(d.mnt, sub, fmt.Sprint(i)), unix.O_CREAT|unix.O_WRONLY|unix.O_CLOEXEC, 0o644)
			if err != nil {
				return err
			}
			if _, err := unix.Write(fd, data); err != nil {
				return err
			}
			t0 := time.Now()
			if err := unix.Close(fd); err != nil {
				return err
			}
			t1 := time.Now()
			times[sub] = append(times[sub], t1.Sub(t0))
			loops[sub] += t1.Sub(start)
		}
	}
	fmt.Printf("close(2) of a 1 KiB file just written, %d files of each policy, interleaved in one mount\n", c.closes)
	for _, sub := range []string{"k", "u"} {
		label := map[string]string{"k": "keep", "u": "unmount"}[sub]
		fmt.Printf("  %-8s %s; create+write+close %.0f files/s\n", label, percentiles(times[sub]), float64(c.closes)/loops[sub].Seconds())
	}
	return d.stop()
}

// killRun is what one SIGKILL left.
type killRun struct {
	closed, saved, lost, wrong, debris, spillLeft int
	after                                         time.Duration // from the start of the workload to the kill
}

func measureKills(c config, work string) error {
	fmt.Printf("SIGKILL at a random moment of a keep workload: %d files of 1 KiB, each created, written and closed; %d runs\n", c.killFiles, c.runs)
	var runs []killRun
	for r := range c.runs {
		k, err := killOnce(c, work, r)
		if err != nil {
			return err
		}
		runs = append(runs, k)
		fmt.Printf("  run %2d: killed after %4d ms and %5d closes: %5d saved whole, %4d closed but not yet saved, %d wrong, %d temporary names, %d spill entries\n",
			r+1, k.after.Milliseconds(), k.closed, k.saved, k.lost, k.wrong, k.debris, k.spillLeft)
	}
	var lost []int
	bad := 0
	for _, k := range runs {
		lost = append(lost, k.lost)
		bad += k.wrong + k.debris + k.spillLeft
	}
	slices.Sort(lost)
	fmt.Printf("  closed but not saved at the kill: median %d, max %d files; wrong files, temporary names and spill entries in all runs: %d\n",
		lost[len(lost)/2], lost[len(lost)-1], bad)
	return nil
}

func killOnce(c config, work string, r int) (killRun, error) {
	var k killRun
	d, err := start(c, work, fmt.Sprintf("kill-%d", r), "--delete", "keep")
	if err != nil {
		return k, err
	}
	defer os.RemoveAll(d.dir)
	at := rand.IntN(c.killFiles) // kill after this many closes
	content := func(i int) []byte {
		return append([]byte(fmt.Sprintf("file %d\n", i)), bytes.Repeat([]byte{byte('a' + i%26)}, 1<<10-16)...)
	}
	begin := time.Now()
	for i := range c.killFiles {
		if i == at {
			k.after = time.Since(begin)
			d.kill()
			break
		}
		if _, err := writeFile(filepath.Join(d.mnt, fmt.Sprintf("f%05d", i)), content(i), 0o644); err != nil {
			d.kill()
			return k, err
		}
		k.closed++
	}
	if k.closed == c.killFiles {
		d.kill()
	}
	entries, err := os.ReadDir(d.keep)
	if err != nil {
		return k, err
	}
	present := map[string]bool{}
	for _, e := range entries {
		var i int
		if _, err := fmt.Sscanf(e.Name(), "f%05d", &i); err != nil || !e.Type().IsRegular() {
			k.debris++
			continue
		}
		present[e.Name()] = true
		got, err := os.ReadFile(filepath.Join(d.keep, e.Name()))
		if err != nil || !bytes.Equal(got, content(i)) || i >= k.closed {
			k.wrong++
			continue
		}
		k.saved++
	}
	k.lost = k.closed - k.saved
	spills, _ := os.ReadDir(filepath.Join(d.dir, "spill"))
	for _, s := range spills {
		inner, _ := os.ReadDir(filepath.Join(d.dir, "spill", s.Name()))
		k.spillLeft += len(inner)
	}
	return k, nil
}

func percentiles(d []time.Duration) string {
	s := slices.Clone(d)
	slices.Sort(s)
	if len(s) == 0 {
		return "no samples"
	}
	pct := func(p float64) time.Duration { return s[min(max(int(p*float64(len(s))+0.5)-1, 0), len(s)-1)] }
	round := func(x time.Duration) time.Duration { return x.Round(time.Microsecond) }
	return fmt.Sprintf("p50 %v  p90 %v  p99 %v  max %v", round(pct(0.5)), round(pct(0.9)), round(pct(0.99)), round(s[len(s)-1]))
}

func fsType(dir string) string {
	out, err := exec.Command("stat", "-f", "-c", "%T", dir).Output()
	if err != nil {
		return "?"
	}
	return strings.TrimSpace(string(out))
}

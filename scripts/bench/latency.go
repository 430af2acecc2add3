package main

import (
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"time"

	"golang.org/x/sys/unix"
)

// The lat-* workloads time one system call pattern at a time, as the
// fuse-floor kit does, so that a change in the request path shows as
// nanoseconds and round trips per operation. The client runs unpinned.

const unitNs = "ns/op" // wall-clock nanoseconds per operation: lower is better

const defaultLatOps = 20000

var latencyWorkloads = []workload{
	{name: "lat-open", unit: unitNs, timed: "per op: open(O_RDONLY) + close of one existing file (OPEN + RELEASE on tmpmount)", run: latOpen},
	{name: "lat-creat", unit: unitNs, timed: "per op: open(O_CREAT|O_EXCL|O_WRONLY) + close + unlink of a new name", run: latCreat},
	{name: "lat-chmod", unit: unitNs, timed: "per op: chmod(2) of one file, alternating 0644 and 0600", run: latChmod},
	{name: "lat-stat-after-write", unit: unitNs, timed: "per op: a 1-byte pwrite(2) through an open descriptor, then stat(2) of the file by name (the write makes the kernel drop the cached attributes: WRITE + GETATTR on tmpmount)", run: latStatAfterWrite},
	{name: "lat-rename", unit: unitNs, timed: "per op: rename(2) of a file to a new name in the same directory (and back on the next op)", run: latRename},
}

// latLoop times n calls of op (after n/20 untimed warm-up calls).
func latLoop(w *workCtx, op func(i int) error) (measure, error) {
	n := w.cfg.latOps
	warm := max(n/20, 10)
	for i := range warm {
		if err := op(-1 - i); err != nil {
			return measure{}, err
		}
	}
	start := time.Now()
	for i := range n {
		if i%1024 == 0 {
			if err := checkInterrupted(); err != nil {
				return measure{}, err
			}
		}
		if err := op(i); err != nil {
			return measure{}, err
		}
	}
	return measure{Elapsed: time.Since(start), Ops: int64(n), CountedOps: int64(n + warm)}, nil
}

func latFile(dir string) (string, error) {
	p := filepath.Join(dir, "lat-f")
	return p, os.WriteFile(p, []byte("x"), 0o644)
}

func latOpen(w *workCtx, dir string) (measure, error) {
	p, err := latFile(dir)
	if err != nil {
		return measure{}, err
	}
	m, err := latLoop(w, func(int) error {
		fd, err := unix.Open(p, unix.O_RDONLY|unix.O_CLOEXEC, 0)
		if err != nil {
			return fmt.Errorf("open %s: %w", p, err)
		}
		return unix.Close(fd)
	})
	return m, errors.Join(err, os.Remove(p))
}

func latCreat(w *workCtx, dir string) (measure, error) {
	return latLoop(w, func(i int) error {
		p := filepath.Join(dir, "lat-c"+strconv.Itoa(i))
		fd, err := unix.Open(p, unix.O_CREAT|unix.O_EXCL|unix.O_WRONLY|unix.O_CLOEXEC, 0o644)
		if err != nil {
			return fmt.Errorf("create %s: %w", p, err)
		}
		if err := unix.Close(fd); err != nil {
			return err
		}
		return unix.Unlink(p)
	})
}

func latChmod(w *workCtx, dir string) (measure, error) {
	p, err := latFile(dir)
	if err != nil {
		return measure{}, err
	}
	m, err := latLoop(w, func(i int) error {
		mode := uint32(0o644)
		if i%2 != 0 {
			mode = 0o600
		}
		return unix.Chmod(p, mode)
	})
	return m, errors.Join(err, os.Remove(p))
}

func latStatAfterWrite(w *workCtx, dir string) (measure, error) {
	p, err := latFile(dir)
	if err != nil {
		return measure{}, err
	}
	fd, err := unix.Open(p, unix.O_WRONLY|unix.O_CLOEXEC, 0)
	if err != nil {
		return measure{}, err
	}
	b := []byte{'y'}
	var st unix.Stat_t
	m, err := latLoop(w, func(int) error {
		if _, err := unix.Pwrite(fd, b, 0); err != nil {
			return fmt.Errorf("pwrite %s: %w", p, err)
		}
		return unix.Stat(p, &st)
	})
	return m, errors.Join(err, unix.Close(fd), os.Remove(p))
}

func latRename(w *workCtx, dir string) (measure, error) {
	a, err := latFile(dir)
	if err != nil {
		return measure{}, err
	}
	b := filepath.Join(dir, "lat-g")
	cur := a
	m, err := latLoop(w, func(int) error {
		next := b
		if cur == b {
			next = a
		}
		if err := unix.Rename(cur, next); err != nil {
			return fmt.Errorf("rename %s: %w", cur, err)
		}
		cur = next
		return nil
	})
	return m, errors.Join(err, os.Remove(cur))
}

// daemonCounters is what a tmpmount daemon has done so far: requests
// served (every transport, FORGETs included) and CPU time.
type daemonCounters struct {
	requests int64
	cpuNS    int64
}

// readDaemonCounters reads the request counts from the mount's
// user.tmpmount.stats and the CPU time of every thread of pid from
// /proc/PID/task/*/schedstat (nanoseconds, unlike /proc/PID/stat's
// 10 ms ticks). ok is false where either is missing (an older tmpmount).
func readDaemonCounters(mountRoot string, pid int) (daemonCounters, bool) {
	var c daemonCounters
	buf := make([]byte, 64<<10)
	n, err := unix.Getxattr(mountRoot, "user.tmpmount.stats", buf)
	if err != nil {
		return c, false
	}
	var st struct {
		Requests *struct {
			Ring    []int64 `json:"ring"`
			DevFuse int64   `json:"dev_fuse"`
			Forgets int64   `json:"forgets"`
		} `json:"requests"`
	}
	if json.Unmarshal(buf[:n], &st) != nil || st.Requests == nil {
		return c, false
	}
	c.requests = st.Requests.DevFuse + st.Requests.Forgets
	for _, q := range st.Requests.Ring {
		c.requests += q
	}
	tasks, err := os.ReadDir(fmt.Sprintf("/proc/%d/task", pid))
	if err != nil {
		return c, false
	}
	for _, task := range tasks {
		data, err := os.ReadFile(fmt.Sprintf("/proc/%d/task/%s/schedstat", pid, task.Name()))
		if err != nil {
			continue // the thread just ended
		}
		f := strings.Fields(string(data))
		if len(f) == 0 {
			return c, false
		}
		ns, err := strconv.ParseInt(f[0], 10, 64)
		if err != nil {
			return c, false
		}
		c.cpuNS += ns
	}
	return c, true
}

// enableURing turns the kernel's FUSE over io_uring on for the bench's
// mounts (the transport variants compare it with /dev/fuse) and registers
// putting it back. It says what it did, for the header.
func enableURing(cl *cleaner) string {
	const param = "/sys/module/fuse/parameters/enable_uring"
	old, err := os.ReadFile(param)
	if err != nil {
		return "not in this kernel (needs Linux 6.14+ with CONFIG_FUSE_IO_URING): every variant uses /dev/fuse"
	}
	was := strings.TrimSpace(string(old))
	if was == "Y" {
		return "enable_uring was Y already"
	}
	if err := os.WriteFile(param, []byte("Y"), 0); err != nil {
		return fmt.Sprintf("cannot set enable_uring (%v): every variant uses /dev/fuse", err)
	}
	cl.push("put enable_uring back to "+was, func(bool) error { return os.WriteFile(param, []byte(was), 0) })
	return "enable_uring set to Y for the bench (was " + was + "; put back at the end)"
}

// printDaemonTable shows, for each tmpmount target and each workload with
// an operation count, the requests per operation and the daemon's CPU per
// request (medians over the runs): what the request path costs, apart
// from the wait for a round trip.
func printDaemonTable(w io.Writer, targets []*target, wls []workload, results []result) {
	table := [][]string{{"workload", "target", "requests/op", "daemon CPU µs/request", "daemon CPU µs/op"}}
	for _, wl := range wls {
		for _, t := range targets {
			if t.kind != kindTmpmount {
				continue
			}
			var reqs, perReq, perOp []float64
			for _, r := range results {
				if r.Workload != wl.name || r.Target != t.name || r.Requests == nil || r.CountedOps <= 0 || *r.Requests <= 0 {
					continue
				}
				reqs = append(reqs, float64(*r.Requests)/float64(r.CountedOps))
				perReq = append(perReq, float64(*r.DaemonCPUNS)/1e3/float64(*r.Requests))
				perOp = append(perOp, float64(*r.DaemonCPUNS)/1e3/float64(r.CountedOps))
			}
			if len(reqs) == 0 {
				continue
			}
			table = append(table, []string{wl.name, t.name, fmt.Sprintf("%.2f", median(reqs)),
				fmt.Sprintf("%.2f", median(perReq)), fmt.Sprintf("%.1f", median(perOp))})
		}
	}
	if len(table) == 1 {
		return
	}
	fmt.Fprintln(w, "daemon per operation (tmpmount targets; requests from its user.tmpmount.stats, every transport and FORGETs included; CPU of all its threads from /proc/PID/task/*/schedstat; medians):")
	writeAligned(w, table, []bool{false, false, true, true, true})
	fmt.Fprintln(w)
}

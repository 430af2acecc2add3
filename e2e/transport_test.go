package e2e

// Tests of the request path itself: FUSE over io_uring serves the mount
// when the kernel offers it (one queue per CPU, requests counted per
// transport), /dev/fuse when it does not or when told not to, and every
// way a mount can end while requests are in flight leaves no stuck caller,
// no kernel warning and, after SIGKILL, a dead mount the next tmpmount
// recovers.

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"runtime"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"golang.org/x/sys/unix"
)

// trRequests is the "requests" object of `tmpmount stat --json DIR`.
type trRequests struct {
	Transport string   `json:"transport"`
	Queues    int      `json:"queues"`
	Ring      []uint64 `json:"ring"`
	DevFuse   uint64   `json:"dev_fuse"`
	Forgets   uint64   `json:"forgets"`
}

func (r trRequests) ringTotal() uint64 {
	var n uint64
	for _, q := range r.Ring {
		n += q
	}
	return n
}

func trStat(t *testing.T, dir string) trRequests {
	t.Helper()
	out, err := exec.Command(tmpmountBin, "stat", "--json", dir).Output()
	if err != nil {
		t.Fatalf("tmpmount stat --json %s: %v", dir, err)
	}
	var js struct {
		Requests *trRequests `json:"requests"`
	}
	if err := json.Unmarshal(out, &js); err != nil || js.Requests == nil {
		t.Fatalf("tmpmount stat --json %s: no requests object (%v):\n%s", dir, err, out)
	}
	return *js.Requests
}

// forcedURing, when set by setEnableURing, overrides what the run's
// TMPMOUNT_E2E_TRANSPORT makes startMount check.
var forcedURing string

// setEnableURing sets the kernel's enable_uring for mounts made during the
// test, and puts back what was there when the test ends. The kernel reads
// it at INIT, so mounts already made keep their transport.
func setEnableURing(t *testing.T, v string) {
	t.Helper()
	requireRoot(t)
	old, err := os.ReadFile(enableURingPath)
	if err != nil {
		if os.Getenv("CI") == "true" {
			t.Fatalf("no FUSE over io_uring in this kernel (%v): CI's kernel must have it", err)
		}
		t.Skipf("no FUSE over io_uring in this kernel: %v", err)
	}
	if err := os.WriteFile(enableURingPath, []byte(v), 0); err != nil {
		t.Fatalf("write %s: %v", enableURingPath, err)
	}
	forcedURing = v
	t.Cleanup(func() {
		forcedURing = ""
		if err := os.WriteFile(enableURingPath, bytes.TrimSpace(old), 0); err != nil {
			t.Errorf("restore %s: %v", enableURingPath, err)
		}
	})
}

// possibleCPUs is the kernel's nr_cpu_ids, the number of ring queues.
func possibleCPUs(t *testing.T) int {
	t.Helper()
	b, err := os.ReadFile("/sys/devices/system/cpu/possible")
	if err != nil {
		t.Fatal(err)
	}
	s := strings.TrimSpace(string(b))
	last := s[strings.LastIndexAny(s, ",-")+1:]
	var n int
	if _, err := fmt.Sscan(last, &n); err != nil {
		t.Fatalf("cannot read CPU list %q", s)
	}
	return n + 1
}

// onCPU runs f on a thread pinned to cpu, so that the requests f's system
// calls make go to that CPU's ring queue.
func onCPU(cpu int, f func() error) error {
	errc := make(chan error, 1)
	go func() {
		runtime.LockOSThread() // never unlocked: the thread dies with its affinity
		var set unix.CPUSet
		set.Set(cpu)
		if err := unix.SchedSetaffinity(0, &set); err != nil {
			errc <- fmt.Errorf("pin to CPU %d: %w", cpu, err)
			return
		}
		errc <- f()
	}()
	return <-errc
}

// churn creates, writes, reads back and unlinks n files in dir.
func churn(dir string, n int) error {
	for i := range n {
		p := filepath.Join(dir, fmt.Sprintf("f%d", i))
		want := []byte(fmt.Sprintf("file %d of %s\n", i, dir))
		if err := os.WriteFile(p, want, 0o644); err != nil {
			return err
		}
		got, err := os.ReadFile(p)
		if err != nil {
			return err
		}
		if !bytes.Equal(got, want) {
			return fmt.Errorf("%s holds %q, want %q", p, got, want)
		}
		if err := os.Remove(p); err != nil {
			return err
		}
	}
	return nil
}

func TestTransportServesOverURing(t *testing.T) {
	setEnableURing(t, "Y")
	m := startMount(t)
	queues := possibleCPUs(t)
	want := fmt.Sprintf("transport io_uring (%d queues)", queues)
	if !strings.Contains(m.Stderr.String(), want) {
		t.Fatalf("serving line does not say %q:\n%s", want, m.Stderr)
	}
	before := trStat(t, m.Dir)
	if before.Transport != fmt.Sprintf("io_uring (%d queues)", queues) || before.Queues != queues || len(before.Ring) != queues {
		t.Fatalf("stat says %+v, want io_uring with %d queues", before, queues)
	}
	const files = 200
	if err := churn(m.Dir, files); err != nil {
		t.Fatal(err)
	}
	after := trStat(t, m.Dir)
	// Each file: LOOKUP, CREATE, WRITE, RELEASE, OPEN, READ, RELEASE,
	// UNLINK at least; every one on a ring.
	if got := after.ringTotal() - before.ringTotal(); got < 8*files {
		t.Errorf("the rings served %d requests for %d files, want at least %d", got, files, 8*files)
	}
	if after.DevFuse != 0 {
		t.Errorf("/dev/fuse served %d requests besides FORGETs; with the rings up it should serve none", after.DevFuse)
	}
	// Deleted files are forgotten over /dev/fuse, a moment after the unlink.
	waitFor(t, 10*time.Second, "FORGETs of the deleted files", func() bool {
		return trStat(t, m.Dir).Forgets >= files
	})
	text, err := exec.Command(tmpmountBin, "stat", m.Dir).Output()
	if err != nil {
		t.Fatal(err)
	}
	if !regexp.MustCompile(`(?m)^  transport:  io_uring \(\d+ queues\)$`).Match(text) ||
		!regexp.MustCompile(`(?m)^  requests:   \d+ on io_uring \(per queue [\d ]+\), 0 on /dev/fuse, \d+ forgets$`).Match(text) {
		t.Errorf("tmpmount stat does not show the transport and its requests:\n%s", text)
	}
}

func TestTransportDebugSaysRing(t *testing.T) {
	setEnableURing(t, "Y")
	m := startMount(t, "--debug")
	if err := os.WriteFile(m.Path("dbg"), []byte("x"), 0o644); err != nil {
		t.Fatal(err)
	}
	waitFor(t, 10*time.Second, "a logged CREATE on a ring queue", func() bool {
		return regexp.MustCompile(`ring q\d+: rx \d+: CREATE n1 "dbg"`).MatchString(m.Stderr.String())
	})
}

func TestTransportCPUsServeTheirOwnQueues(t *testing.T) {
	setEnableURing(t, "Y")
	m := startMount(t)
	online, err := os.ReadFile("/sys/devices/system/cpu/online")
	if err != nil {
		t.Fatal(err)
	}
	cpus := []int{0}
	if strings.TrimSpace(string(online)) != "0" {
		cpus = append(cpus, 1)
	}
	before := trStat(t, m.Dir)
	var wg sync.WaitGroup
	errs := make([]error, 2*len(cpus))
	for i := range errs {
		cpu := cpus[i%len(cpus)]
		dir := m.Path(fmt.Sprintf("c%d", i))
		if err := os.Mkdir(dir, 0o755); err != nil {
			t.Fatal(err)
		}
		wg.Add(1)
		go func() {
			defer wg.Done()
			errs[i] = onCPU(cpu, func() error { return churn(dir, 300) })
		}()
	}
	wg.Wait()
	for i, err := range errs {
		if err != nil {
			t.Errorf("client %d on CPU %d: %v", i, cpus[i%len(cpus)], err)
		}
	}
	after := trStat(t, m.Dir)
	for _, cpu := range cpus {
		// Two clients made at least 8 requests per file on this CPU; a
		// client may be moved off its CPU only by CPU hotplug.
		if got := after.Ring[cpu] - before.Ring[cpu]; got < 2*300*8 {
			t.Errorf("queue %d served %d requests, want at least %d from the clients pinned to CPU %d (per queue before %v, after %v)",
				cpu, got, 2*300*8, cpu, before.Ring, after.Ring)
		}
	}
}

func TestTransportFallsBackToDevFuse(t *testing.T) {
	t.Run("enable_uring off", func(t *testing.T) {
		setEnableURing(t, "N")
		m := startMount(t)
		want := "transport /dev/fuse (io_uring not offered: enable_uring is off; as root: echo Y > " + enableURingPath + ")"
		if !strings.Contains(m.Stderr.String(), want) {
			t.Fatalf("serving line does not say %q:\n%s", want, m.Stderr)
		}
		if err := churn(m.Dir, 20); err != nil {
			t.Fatal(err)
		}
		st := trStat(t, m.Dir)
		if st.Queues != 0 || len(st.Ring) != 0 || st.DevFuse < 20*8 {
			t.Errorf("stat says %+v, want no queues and every request on /dev/fuse", st)
		}
	})
	for _, flag := range [][]string{{"--no-uring"}, {"-o", "no_uring,foreground"}} {
		t.Run(strings.Join(flag, " "), func(t *testing.T) {
			setEnableURing(t, "Y")
			m := startMount(t, flag...)
			if want := "transport /dev/fuse (io_uring off: --no-uring)"; !strings.Contains(m.Stderr.String(), want) {
				t.Fatalf("serving line does not say %q:\n%s", want, m.Stderr)
			}
			if err := churn(m.Dir, 20); err != nil {
				t.Fatal(err)
			}
			if st := trStat(t, m.Dir); st.Queues != 0 || st.DevFuse < 20*8 {
				t.Errorf("stat says %+v, want every request on /dev/fuse", st)
			}
		})
	}
}

// trFileOps creates, writes, closes and unlinks p.
func trFileOps(p string) error {
	fd, err := unix.Open(p, unix.O_CREAT|unix.O_WRONLY|unix.O_EXCL, 0o644)
	if err != nil {
		return err
	}
	unix.Write(fd, []byte("data"))
	unix.Close(fd)
	return unix.Unlink(p)
}

// trDirOps makes, renames and removes a directory p.
func trDirOps(p string) error {
	if err := unix.Mkdir(p, 0o755); err != nil {
		return err
	}
	if err := unix.Rename(p, p+".r"); err != nil {
		return err
	}
	return unix.Rmdir(p + ".r")
}

// awaitDeadMount waits until the mount at dir, whose daemon was just
// killed, answers as a dead FUSE mount does (ENOTCONN). Over io_uring the
// kernel tears the daemon's rings down asynchronously, some milliseconds
// after the process is gone: until then requests fail with ECANCELED or
// ECONNABORTED. Over /dev/fuse it returns at once.
func awaitDeadMount(t *testing.T, dir string) {
	t.Helper()
	waitFor(t, 5*time.Second, "the killed daemon's rings to be torn down", func() bool {
		var st unix.Statfs_t
		err := unix.Statfs(dir, &st)
		return !errors.Is(err, unix.ECANCELED) && !errors.Is(err, unix.ECONNABORTED)
	})
}

// kernelTrouble matches kernel log lines that say something went wrong.
var kernelTrouble = regexp.MustCompile(`WARNING|BUG|Oops|blocked for more than|general protection|refcount_t|list_del corruption`)

// hungTask matches the hung-task detector's report, which names the task.
var hungTask = regexp.MustCompile(`task (\S+):(\d+) blocked for more than`)

// kmsgLines returns the kernel log, one line per element.
func kmsgLines(t *testing.T) []string {
	t.Helper()
	out, err := exec.Command("dmesg").Output()
	if err != nil {
		t.Fatalf("dmesg: %v", err)
	}
	return strings.Split(strings.TrimRight(string(out), "\n"), "\n")
}

// newTrouble fails the test on kernel warnings logged since before. The
// machine is shared: a hung task counts only if it is the daemon (pid) or
// one of this test's threads.
func newTrouble(t *testing.T, before []string, pid int) {
	t.Helper()
	after := kmsgLines(t)
	start := len(before)
	if start > len(after) { // the ring buffer wrapped: look at it all
		start = 0
	}
	ours := map[string]bool{fmt.Sprint(pid): true}
	if tasks, err := os.ReadDir("/proc/self/task"); err == nil {
		for _, task := range tasks {
			ours[task.Name()] = true
		}
	}
	var bad []string
	for _, l := range after[start:] {
		if !kernelTrouble.MatchString(l) {
			continue
		}
		if m := hungTask.FindStringSubmatch(l); m != nil && !ours[m[2]] {
			t.Logf("not ours (another process on this machine): %s", l)
			continue
		}
		bad = append(bad, l)
	}
	if len(bad) > 0 {
		t.Errorf("the kernel logged trouble:\n%s", strings.Join(bad, "\n"))
	}
}

// abortConnection aborts the FUSE connection of the mount at dir through
// fusectl, the way out of a mount whose daemon cannot serve.
func abortConnection(t *testing.T, dir string, dev uint64) {
	t.Helper()
	p := fmt.Sprintf("/sys/fs/fuse/connections/%d/abort", unix.Minor(dev))
	if err := os.WriteFile(p, []byte("1"), 0); err != nil {
		t.Errorf("abort FUSE connection of %s (%s): %v", dir, p, err)
	}
}

// TestTransportEndsCleanly ends a mount served over io_uring in every way
// while clients on every CPU are in the middle of requests, and checks that
// each client's system calls return, the daemon exits, and the kernel logs
// no warning.
func TestTransportEndsCleanly(t *testing.T) {
	requireFUSE(t)
	for _, how := range []string{"umount", "umount -l", "SIGTERM", "SIGKILL"} {
		t.Run(how, func(t *testing.T) {
			setEnableURing(t, "Y")
			before := kmsgLines(t)
			mnt, spill := t.TempDir(), t.TempDir()
			t.Cleanup(func() { limDetachAll(mnt) })
			d := limStartDaemon(t, mnt, "--spill-dir", spill)
			if !strings.Contains(d.stderr.String(), "transport io_uring (") {
				t.Fatalf("not served over io_uring:\n%s", d.stderr)
			}
			var st unix.Stat_t
			if err := unix.Stat(mnt, &st); err != nil {
				t.Fatal(err)
			}
			var ops atomic.Int64
			var stop atomic.Bool
			var wg sync.WaitGroup
			for i := range 4 {
				wg.Add(1)
				go func() {
					defer wg.Done()
					// Errors are expected once the mount is gone.
					onCPU(i%runtime.NumCPU(), func() error {
						for n := 0; !stop.Load(); n++ {
							var err error
							if n%2 == 0 {
								err = trFileOps(filepath.Join(mnt, fmt.Sprintf("c%d-%d", i, n)))
							} else {
								err = trDirOps(filepath.Join(mnt, fmt.Sprintf("d%d-%d", i, n)))
							}
							if err != nil {
								return err
							}
							ops.Add(1)
						}
						return nil
					})
				}()
			}
			waitFor(t, 20*time.Second, "clients under way", func() bool { return ops.Load() >= 2000 })
			switch how {
			case "umount":
				// A plain unmount fails (EBUSY) while any system call is
				// under way on the mount: the clients stop first, and the
				// unmount comes while the kernel still has their background
				// requests (RELEASE) and FORGETs in flight.
				stop.Store(true)
				wg.Wait()
				waitFor(t, 20*time.Second, "a successful umount", func() bool {
					err := unix.Unmount(mnt, 0)
					if err != nil && !errors.Is(err, unix.EBUSY) {
						t.Fatalf("umount: %v", err)
					}
					return err == nil
				})
			case "umount -l":
				if err := unix.Unmount(mnt, unix.MNT_DETACH); err != nil {
					t.Fatalf("umount -l: %v", err)
				}
			case "SIGTERM":
				d.cmd.Process.Signal(syscall.SIGTERM)
			case "SIGKILL":
				d.cmd.Process.Kill()
			}
			// Past the end the clients' paths name the directory under the
			// mount, or the dead mount: they fail, or carry on there.
			stop.Store(true)
			clientsDone := make(chan struct{})
			go func() { wg.Wait(); close(clientsDone) }()
			select {
			case <-clientsDone:
			case <-time.After(30 * time.Second):
				t.Errorf("clients still stuck in system calls 30 s after %s; aborting the connection", how)
				abortConnection(t, mnt, st.Dev)
				<-clientsDone
			}
			select {
			case <-d.done:
			case <-time.After(30 * time.Second):
				t.Errorf("the daemon has not exited 30 s after %s; aborting the connection", how)
				abortConnection(t, mnt, st.Dev)
				<-d.done
			}
			if how == "SIGKILL" {
				awaitDeadMount(t, mnt)
				var fs unix.Statfs_t
				if err := unix.Statfs(mnt, &fs); !errors.Is(err, unix.ENOTCONN) {
					t.Errorf("statfs of the mount after SIGKILL: %v, want ENOTCONN (a dead mount)", err)
				}
				d2 := limStartDaemon(t, mnt, "--spill-dir", spill)
				if !strings.Contains(d2.stderr.String(), "was a dead tmpmount mount") {
					t.Errorf("the next tmpmount did not say it recovered the dead mount:\n%s", d2.stderr)
				}
				if err := churn(mnt, 10); err != nil {
					t.Errorf("the recovered mount: %v", err)
				}
				if err := unix.Unmount(mnt, 0); err != nil {
					t.Errorf("unmount the recovered mount: %v", err)
				}
				<-d2.done
			} else if d.err != nil {
				t.Errorf("the daemon exited with %v after %s\n%s", d.err, how, d.stderr)
			}
			newTrouble(t, before, d.cmd.Process.Pid)
		})
	}
}

package e2e

// Directory streams while the directory changes under them, on a real
// tmpfs and on tmpmount: a stream ends; every entry that is there for the
// whole stream is returned exactly once; entries removed before the
// stream reaches them are not returned; rm -rf-style loops end.

import (
	"fmt"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"sync"
	"testing"

	"golang.org/x/sys/unix"
)

// rdTarget is a directory on tmpfs or on tmpmount, fresh for one subtest.
type rdTarget struct {
	name string
	dir  func(t *testing.T) string
}

func rdTargets() []rdTarget {
	return []rdTarget{
		{name: "tmpfs", dir: func(t *testing.T) string { return mountTmpfs(t, t.TempDir(), "") }},
		{name: "tmpmount", dir: func(t *testing.T) string { return startMount(t).Dir }},
	}
}

// rdFilledDir makes directory name in base, with empty files named by names.
func rdFilledDir(t *testing.T, base, name string, names []string) string {
	t.Helper()
	dir := filepath.Join(base, name)
	if err := os.Mkdir(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	rdMakeFiles(t, dir, names)
	return dir
}

// rdMakeFiles creates empty files named by names in dir.
func rdMakeFiles(t *testing.T, dir string, names []string) {
	t.Helper()
	for _, n := range names {
		fd, err := unix.Open(filepath.Join(dir, n), unix.O_CREAT|unix.O_EXCL|unix.O_WRONLY|unix.O_CLOEXEC, 0o644)
		if err != nil {
			t.Fatalf("create %s: %v", n, err)
		}
		unix.Close(fd)
	}
}

func rdNames(prefix string, n int) []string {
	names := make([]string, n)
	for i := range names {
		names[i] = fmt.Sprintf("%s%05d", prefix, i)
	}
	return names
}

func rdOpenDir(t *testing.T, dir string) int {
	t.Helper()
	fd, err := unix.Open(dir, unix.O_RDONLY|unix.O_DIRECTORY|unix.O_CLOEXEC, 0)
	if err != nil {
		t.Fatalf("open %s: %v", dir, err)
	}
	return fd
}

// rdRepeated lists the names counted more than once.
func rdRepeated(seen map[string]int) []string {
	var dups []string
	for name, c := range seen {
		if c > 1 {
			dups = append(dups, fmt.Sprintf("%s×%d", name, c))
		}
	}
	sort.Strings(dups)
	return rdShort(dups)
}

// rdShort keeps a list readable in a failure message.
func rdShort(list []string) []string {
	if len(list) > 10 {
		return append(list[:10:10], fmt.Sprintf("... %d more", len(list)-10))
	}
	return list
}

// TestReaddirWhileRenaming is fstests generic/736 at issue 14's size: one
// stream reads a 15,000-entry directory as readdir(3) does (32 KiB
// getdents), and renames each entry it gets to a temporary name and back.
// A renamed entry is a new entry of the directory; the stream must not
// return it again, or it never ends.
func TestReaddirWhileRenaming(t *testing.T) {
	const n = 15000
	for _, tg := range rdTargets() {
		t.Run(tg.name, func(t *testing.T) {
			dir := rdFilledDir(t, tg.dir(t), "d", rdNames("f", n))
			fd := rdOpenDir(t, dir)
			defer unix.Close(fd)
			seen := map[string]int{}
			count, ended := 0, false
			for count <= 3*n {
				des, err := nsGetdentsOnce(fd, 32<<10)
				if err != nil {
					t.Fatalf("getdents after %d entries: %v", count, err)
				}
				if len(des) == 0 {
					ended = true
					break
				}
				for _, de := range des {
					count++
					seen[de.name]++
					if de.name == "." || de.name == ".." {
						continue
					}
					p, tmp := filepath.Join(dir, de.name), filepath.Join(dir, "TEMPFILE")
					if err := os.Rename(p, tmp); err != nil {
						t.Fatal(err)
					}
					if err := os.Rename(tmp, p); err != nil {
						t.Fatal(err)
					}
				}
			}
			if !ended {
				t.Fatalf("the stream returned %d entries (%d names) and went on: it does not end while its entries are renamed", count, len(seen))
			}
			if dups := rdRepeated(seen); count != n+2 || len(seen) != n+2 || len(dups) > 0 {
				t.Errorf("the stream returned %d entries, %d distinct, repeated %v; want each of the %d entries and the dots exactly once", count, len(seen), dups, n)
			}
		})
	}
}

// TestReaddirDuringMassDeletion reads a directory in small getdents calls
// while, between the calls, it removes what it read (as rm -rf does) and
// a batch of names the stream has not reached yet, and creates new ones.
// The stream must end, return every entry that was never removed exactly
// once, and none that was removed before the stream reached it.
func TestReaddirDuringMassDeletion(t *testing.T) {
	const n = 6000
	for _, tg := range rdTargets() {
		t.Run(tg.name, func(t *testing.T) {
			all := rdNames("f", n)
			dir := rdFilledDir(t, tg.dir(t), "d", all)
			fd := rdOpenDir(t, dir)
			defer unix.Close(fd)
			seen := map[string]int{}
			removedEarly := map[string]bool{}
			var staleReturned []string
			created, ended := 0, false
			for calls := 0; calls < 10*n; calls++ {
				des, err := nsGetdentsOnce(fd, 1024)
				if err != nil {
					t.Fatalf("getdents: %v", err)
				}
				if len(des) == 0 {
					ended = true
					break
				}
				for _, de := range des {
					seen[de.name]++
					if removedEarly[de.name] {
						staleReturned = append(staleReturned, de.name)
					}
					if de.name != "." && de.name != ".." && !strings.HasPrefix(de.name, "new") {
						if err := unix.Unlink(filepath.Join(dir, de.name)); err != nil {
							t.Fatalf("unlink %s, just read: %v", de.name, err)
						}
					}
				}
				// Five names the stream has not returned yet, from the end
				// of the name order (which the stream's order need not be).
				removed := 0
				for i := len(all) - 1; i >= 0 && removed < 5; i-- {
					name := all[i]
					if seen[name] > 0 || removedEarly[name] {
						continue
					}
					if err := unix.Unlink(filepath.Join(dir, name)); err != nil {
						t.Fatalf("unlink %s, not read yet: %v", name, err)
					}
					removedEarly[name] = true
					removed++
				}
				created++
				rdMakeFiles(t, dir, []string{fmt.Sprintf("new%05d", created)})
			}
			if !ended {
				t.Fatalf("the stream did not end")
			}
			var missing []string
			for _, name := range append([]string{".", ".."}, all...) {
				if !removedEarly[name] && seen[name] == 0 {
					missing = append(missing, name)
				}
			}
			if len(missing) > 0 || len(staleReturned) > 0 {
				t.Errorf("entries never removed but not returned: %v; removed before the stream reached them but returned: %v",
					rdShort(missing), rdShort(staleReturned))
			}
			if dups := rdRepeated(seen); len(dups) > 0 {
				t.Errorf("returned more than once: %v", dups)
			}
			t.Logf("%d entries returned, %d removed before the stream reached them, %d created during the stream (%d of them returned)",
				len(seen), len(removedEarly), created, countPrefix(seen, "new"))
		})
	}
}

func countPrefix(seen map[string]int, prefix string) int {
	n := 0
	for name := range seen {
		if strings.HasPrefix(name, prefix) {
			n++
		}
	}
	return n
}

// TestReaddirRemoveLoops runs loops that read a directory and remove what
// they read until it is empty: each must end, with nothing left. One
// reopens the directory for every batch, one reads on and rewinds at the
// end, and one is rm -rf itself; a second process removes other entries
// all the while.
func TestReaddirRemoveLoops(t *testing.T) {
	const n = 5000
	loops := []struct {
		name string
		run  func(t *testing.T, dir string) int // returns the passes made
	}{
		{name: "reopen-per-batch", run: func(t *testing.T, dir string) int {
			for pass := 1; pass <= n; pass++ {
				fd := rdOpenDir(t, dir)
				des, err := nsGetdentsOnce(fd, 2048)
				unix.Close(fd)
				if err != nil {
					t.Fatalf("getdents: %v", err)
				}
				if rdUnlinkAll(t, dir, des) == 0 {
					return pass
				}
			}
			t.Fatalf("still not empty after %d passes", n)
			return 0
		}},
		{name: "read-on-then-rewind", run: func(t *testing.T, dir string) int {
			fd := rdOpenDir(t, dir)
			defer unix.Close(fd)
			for pass := 1; pass <= n; pass++ {
				removed := 0
				for range 10 * n {
					des, err := nsGetdentsOnce(fd, 2048)
					if err != nil {
						t.Fatalf("getdents: %v", err)
					}
					if len(des) == 0 {
						break
					}
					removed += rdUnlinkAll(t, dir, des)
				}
				if removed == 0 {
					return pass
				}
				if _, err := unix.Seek(fd, 0, 0); err != nil {
					t.Fatalf("rewinddir: %v", err)
				}
			}
			t.Fatalf("still not empty after %d passes", n)
			return 0
		}},
		{name: "rm-rf", run: func(t *testing.T, dir string) int {
			runCmd(t, "/", "rm", "-rf", dir)
			if err := os.Mkdir(dir, 0o755); err != nil {
				t.Fatal(err)
			}
			return 1
		}},
	}
	for _, tg := range rdTargets() {
		t.Run(tg.name, func(t *testing.T) {
			base := tg.dir(t)
			for _, l := range loops {
				t.Run(l.name, func(t *testing.T) {
					dir := rdFilledDir(t, base, l.name, append(rdNames("a", n), rdNames("b", n)...))
					// The other remover takes the b names in reverse order;
					// the loop takes whatever it reads.
					var wg sync.WaitGroup
					wg.Add(1)
					go func() {
						defer wg.Done()
						for i := n - 1; i >= 0; i-- {
							unix.Unlink(filepath.Join(dir, fmt.Sprintf("b%05d", i))) // ENOENT when the loop got there first
						}
					}()
					passes := l.run(t, dir)
					wg.Wait()
					left, err := os.ReadDir(dir)
					if err != nil {
						t.Fatal(err)
					}
					if len(left) > 0 {
						t.Errorf("%d entries left after the loop ended, e.g. %s", len(left), left[0].Name())
					}
					t.Logf("empty after %d passes", passes)
				})
			}
		})
	}
}

// rdUnlinkAll removes the entries read (except the dots) and returns how
// many there were; one another process removed first is not an error.
func rdUnlinkAll(t *testing.T, dir string, des []nsDirent) int {
	t.Helper()
	n := 0
	for _, de := range des {
		if de.name == "." || de.name == ".." {
			continue
		}
		n++
		if err := unix.Unlink(filepath.Join(dir, de.name)); err != nil && err != unix.ENOENT {
			t.Fatalf("unlink %s: %v", de.name, err)
		}
	}
	return n
}

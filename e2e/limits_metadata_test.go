package e2e

// Metadata charged to the limits: xattrs, symlink targets and names made
// by an unprivileged user fill a mount's --size, or its memory budget, to
// ENOSPC, df shows them, and the root daemon's RSS stays bounded.

import (
	"bytes"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"golang.org/x/sys/unix"
)

// limMetaChild is the value of limChildEnv that makes the test binary a
// metadata attacker (limMetaMain).
const limMetaChild = "meta"

// limMetaUID is the unprivileged user the attacks run as.
const limMetaUID = 1001

func init() {
	if os.Getenv(limChildEnv) == limMetaChild {
		os.Exit(limMetaMain(os.Args[1:]))
	}
}

// limMetaMain makes metadata in DIR until it fails, as the issue's
// reproducers do, and prints "made N ERRNO" (ok if nothing failed):
//
//	xattrs DIR:   300 files, each with fifteen 64 KiB user.* xattrs
//	symlinks DIR: 20,000 symlinks with 4,000-byte targets
//	names DIR N:  up to N empty files with 255-byte names
func limMetaMain(args []string) int {
	if len(args) < 2 {
		fmt.Fprintln(os.Stderr, "usage: xattrs|symlinks|names DIR [N]")
		return 2
	}
	kind, dir := args[0], args[1]
	made := 0
	var err error
	switch kind {
	case "xattrs":
		value := bytes.Repeat([]byte("x"), 64*limKiB)
	files:
		for i := range 300 {
			path := filepath.Join(dir, fmt.Sprintf("f%03d", i))
			if err = os.WriteFile(path, nil, 0o644); err != nil {
				break
			}
			for j := range 15 {
				if err = unix.Setxattr(path, fmt.Sprintf("user.x%02d", j), value, 0); err != nil {
					break files
				}
				made++
			}
		}
	case "symlinks":
		target := strings.Repeat("t", 4000)
		for i := range 20000 {
			if err = os.Symlink(target, filepath.Join(dir, fmt.Sprintf("l%05d", i))); err != nil {
				break
			}
			made++
		}
	case "names":
		n, _ := strconv.Atoi(args[2])
		for i := range n {
			name := fmt.Sprintf("%06d", i) + strings.Repeat("n", 255-6)
			if err = unix.Mknod(filepath.Join(dir, name), unix.S_IFREG|0o644, 0); err != nil {
				break
			}
			made++
		}
	default:
		fmt.Fprintf(os.Stderr, "unknown kind %q\n", kind)
		return 2
	}
	fmt.Printf("made %d %s\n", made, limErrnoName(err))
	return 0
}

// limMetaAttack runs limMetaMain as limMetaUID in dir and returns how many
// it made and the errno that stopped it ("ok" if none).
func limMetaAttack(t *testing.T, child, dir string, args ...string) (int, string) {
	t.Helper()
	cmd := exec.Command(child, append(args[:1:1], append([]string{dir}, args[1:]...)...)...)
	cmd.Env = append(os.Environ(), limChildEnv+"="+limMetaChild)
	cmd.SysProcAttr = &syscall.SysProcAttr{Credential: &syscall.Credential{Uid: limMetaUID, Gid: limMetaUID}}
	cmd.Dir = "/"
	out, err := cmd.CombinedOutput()
	var made int
	var errno string
	if _, serr := fmt.Sscanf(string(out), "made %d %s", &made, &errno); err != nil || serr != nil {
		t.Fatalf("the %s attack as uid %d: %v\n%s", args[0], limMetaUID, err, out)
	}
	return made, errno
}

// limChildForOthers copies the test binary where other users can run it.
func limChildForOthers(t *testing.T) string {
	t.Helper()
	dir := t.TempDir()
	nsMakeReachable(t, dir)
	return copySelf(t, dir)
}

// limUsedBytes is what statfs says the mount uses: (f_blocks - f_bfree)
// blocks of 4 KiB.
func limUsedBytes(t *testing.T, dir string) int64 {
	t.Helper()
	st, err := limStatfs(dir)
	if err != nil {
		t.Fatal(err)
	}
	return int64(st.blocks-st.bfree) * 4096
}

// TestLimitsMetadata runs the three reproducers as an unprivileged
// user against a --size mount and against a memory budget without
// --size: each must stop with ENOSPC at the bound, with what the metadata
// took shown by df and tmpmount stat, the daemon's RSS within twice the
// bound plus a margin, files' data intact (rolled over to make room when
// the budget is short), and everything given back once the files go.
// Symlinks fill a --size mount as they fill a tmpfs of that size=.
func TestLimitsMetadata(t *testing.T) {
	requireRoot(t)
	child := limChildForOthers(t)
	cases := []struct {
		name   string
		args   []string
		attack []string
		bound  int64 // --size, or --mem-limit without --size
		size   bool  // the bound is --size
		unit   int64 // what one more item charges, at most: ENOSPC comes within it of the bound
	}{
		{"xattrs/size", []string{"--size", "16M"}, []string{"xattrs"}, 16 * limMiB, true, 64*limKiB + 8 + 4},
		{"xattrs/mem-limit", []string{"--mem-limit", "32M"}, []string{"xattrs"}, 32 * limMiB, false, 64*limKiB + 8 + 4 + 1536},
		{"symlinks/size", []string{"--size", "1M"}, []string{"symlinks"}, limMiB, true, 4096 + 6},
		{"symlinks/mem-limit", []string{"--mem-limit", "16M"}, []string{"symlinks"}, 16 * limMiB, false, 4096 + 6 + 1536},
		{"names/size", []string{"--size", "1M"}, []string{"names", "100000"}, limMiB, true, 255},
		{"names/mem-limit", []string{"--mem-limit", "16M"}, []string{"names", "100000"}, 16 * limMiB, false, 255 + 1536},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			m := startMount(t, append([]string{"--allow-other", "--max-size", "8M"}, c.args...)...)
			nsMakeReachable(t, m.Dir)
			pid := daemonPID(m)
			// With a memory budget, files' data holds most of it first:
			// metadata must roll it over to disk to make room.
			var data [][]byte
			if !c.size {
				for i := range 2 {
					d := limContent(uint64(700+i), c.bound/4)
					if err := os.WriteFile(m.Path(fmt.Sprintf("data%d", i)), d, 0o644); err != nil {
						t.Fatal(err)
					}
					data = append(data, d)
				}
			}
			before := limStatsOf(t, m.Dir)
			rssBefore := limRSSOf(t, pid)
			made, errno := limMetaAttack(t, child, m.Dir, c.attack...)
			rssAfter := limRSSOf(t, pid)
			st := limStatsOf(t, m.Dir)
			used := limUsedBytes(t, m.Dir)
			t.Logf("uid %d made %d, then %s; meta_bytes %s, meta_memory %s, df used %s; data %s in RAM, %d files on disk; RSS %s -> %s",
				limMetaUID, made, errno, limMiBf(st.MetaBytes), limMiBf(st.MetaMemory), limMiBf(used),
				limMiBf(st.RAMBytes), st.DiskFiles, limMiBf(rssBefore), limMiBf(rssAfter))
			if errno != "ENOSPC" {
				t.Fatalf("the attack made %d and stopped with %s, want ENOSPC at the bound of %s", made, errno, limMiBf(c.bound))
			}
			charged := st.MetaMemory
			if c.size {
				charged = st.RAMBytes + st.DiskBytes + st.MetaBytes
			}
			if charged > c.bound || charged < c.bound-2*c.unit {
				t.Errorf("ENOSPC with %d bytes charged against the bound of %d: want within %d below it", charged, c.bound, 2*c.unit)
			}
			if used < st.MetaBytes || used > st.RAMBytes+st.DiskBytes+st.MetaBytes+4096 {
				t.Errorf("df says %d bytes used; the mount holds %d of data and %d of metadata", used, st.RAMBytes+st.DiskBytes, st.MetaBytes)
			}
			if raceBuild() {
				t.Logf("RSS not checked: the daemon is a race-detector build")
			} else if limit := 2*c.bound + 16*limMiB; rssAfter-rssBefore > limit {
				t.Errorf("the daemon's RSS grew by %s, over twice the bound plus 16 MiB (%s)", limMiBf(rssAfter-rssBefore), limMiBf(limit))
			}
			for i, d := range data {
				limCheckFile(t, m.Path(fmt.Sprintf("data%d", i)), d)
			}
			if !c.size && st.DiskFiles == before.DiskFiles {
				t.Errorf("no file rolled over to make room for metadata (disk files %d before and after)", st.DiskFiles)
			}

			// Everything is given back with the files.
			entries, err := os.ReadDir(m.Dir)
			if err != nil {
				t.Fatal(err)
			}
			for _, e := range entries {
				if err := os.Remove(m.Path(e.Name())); err != nil {
					t.Fatal(err)
				}
			}
			waitFor(t, 10*time.Second, "metadata given back once the files are gone", func() bool {
				return limStatsOf(t, m.Dir).MetaBytes == 0 && limUsedBytes(t, m.Dir) == 0
			})
			limCheckServing(t, m, "the attack and removing what it made")
		})
	}
}

// TestLimitsLongSymlinks checks that a symlink's target costs what it
// costs on tmpfs: nothing for one of up to 127 bytes (kept in the inode),
// a page (st_blocks 8, charged to size=) for a longer one, and that a
// 1 MiB mount holds as many long symlinks as a 1 MiB tmpfs, within one
// (tmpmount also charges the names).
func TestLimitsLongSymlinks(t *testing.T) {
	requireRoot(t)
	ref := limMountTmpfs(t, "size=1M")
	m := startMount(t, "--size", "1M")
	fill := func(dir string) (int, error) {
		target := strings.Repeat("t", 4000)
		for i := range 2000 {
			if err := os.Symlink(target, filepath.Join(dir, fmt.Sprintf("l%05d", i))); err != nil {
				return i, err
			}
		}
		return 2000, nil
	}
	for _, dir := range []string{ref, m.Dir} {
		for _, n := range []int{127, 128, 4095} {
			path := filepath.Join(dir, fmt.Sprintf("s%d", n))
			if err := os.Symlink(strings.Repeat("s", n), path); err != nil {
				t.Fatal(err)
			}
			var st unix.Stat_t
			if err := unix.Lstat(path, &st); err != nil {
				t.Fatal(err)
			}
			want := int64(8)
			if n <= 127 {
				want = 0
			}
			if st.Size != int64(n) || st.Blocks != want {
				t.Errorf("%s: a symlink to %d bytes has size %d, st_blocks %d; want %d and %d (as tmpfs)", dir, n, st.Size, st.Blocks, n, want)
			}
			if err := os.Remove(path); err != nil {
				t.Fatal(err)
			}
		}
	}
	waitFor(t, 10*time.Second, "the test symlinks' space back", func() bool { return limUsedBytes(t, m.Dir) == 0 })
	refMade, refErr := fill(ref)
	made, err := fill(m.Dir)
	t.Logf("1 MiB: tmpfs took %d symlinks to 4,000 bytes (then %s), tmpmount %d (then %s)", refMade, limErrnoName(refErr), made, limErrnoName(err))
	if !errors.Is(err, unix.ENOSPC) || !errors.Is(refErr, unix.ENOSPC) {
		t.Fatalf("filling with symlinks: tmpmount %s, tmpfs %s; want ENOSPC on both", limErrnoName(err), limErrnoName(refErr))
	}
	if made > refMade || made < refMade-1 {
		t.Errorf("tmpmount took %d long symlinks, tmpfs %d: want the same, or one fewer (tmpmount charges the names too)", made, refMade)
	}
}

package e2e

// Remount: tmpmount -o remount,OPTS and mount -o remount,OPTS change a live
// mount's limits (size, nr_inodes, mem_limit, max_size) and make it
// read-only or writable, as for tmpfs; only root and the user who mounted
// may change limits; a limit below what is in use is refused.

import (
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"golang.org/x/sys/unix"
)

// limRemount runs `tmpmount -o OPTS MOUNTPOINT` (OPTS begins with
// "remount,") and returns its exit status and stderr; it must print
// nothing to stdout.
func limRemount(t *testing.T, cmd *exec.Cmd) (int, string) {
	t.Helper()
	res := rtRun(t, cmd)
	if res.stdout != "" {
		t.Errorf("%q printed to stdout: %q", cmd.Args, res.stdout)
	}
	return res.code, res.stderr
}

// limWantRefused checks that a remount was refused with exit status 2 and
// one line of stderr containing each of want.
func limWantRefused(t *testing.T, what string, code int, stderr string, want ...string) {
	t.Helper()
	if code != 2 || strings.Count(stderr, "\n") != 1 {
		t.Errorf("%s: exit %d, stderr %q; want exit 2 and one line", what, code, stderr)
	}
	for _, w := range want {
		if !strings.Contains(stderr, w) {
			t.Errorf("%s: stderr %q does not say %q", what, stderr, w)
		}
	}
}

// limMountFlags returns the mount options mountinfo shows for dir (the
// per-mount ones: rw/ro, nosuid, nodev, relatime, ...).
func limMountFlags(t *testing.T, mountinfo, dir string) []string {
	t.Helper()
	for _, e := range mountsOf(t, mountinfo) {
		if e.point == dir && e.fstype == "fuse.tmpmount" {
			return strings.Split(strings.Fields(e.line)[5], ",")
		}
	}
	t.Fatalf("no fuse.tmpmount at %s in %s", dir, mountinfo)
	return nil
}

// limLimits is what a remount changes, as tmpmount stat --json says.
func limLimits(st limMountStats) string {
	return fmt.Sprintf("max_size %d, mem_limit %d, size %d, nr_inodes %d", st.MaxSize, st.MemLimit, st.SizeLimit, st.MaxInodes)
}

// TestLimitsRemount changes the limits of a live mount with tmpmount -o
// remount: tmpmount stat and df show the new ones and writes are held to
// them; a size or nr_inodes below what is in use is refused in one line,
// exit 2, changing nothing; a smaller mem_limit rolls files over to fit;
// ro makes the mount read-only (limits still change) and rw writable
// again, keeping nosuid and nodev; another user may not change limits;
// unknown options are refused.
func TestLimitsRemount(t *testing.T) {
	requireRoot(t)
	m := startMount(t, "--allow-other", "--size", "10M", "--inodes", "100", "--mem-limit", "64M", "--max-size", "1M")
	remount := func(opts string) (int, string) {
		t.Helper()
		return limRemount(t, exec.Command(tmpmountBin, "-o", opts, m.Dir))
	}
	for i := range 4 {
		if err := os.WriteFile(m.Path(fmt.Sprintf("f%d", i)), limContent(uint64(i), limMiB), 0o644); err != nil {
			t.Fatal(err)
		}
	}

	t.Run("limits", func(t *testing.T) {
		if code, stderr := remount("remount,size=20M,nr_inodes=200,mem_limit=32M,max_size=2M"); code != 0 {
			t.Fatalf("remount: exit %d, stderr %q; want 0", code, stderr)
		}
		st := limStatsOf(t, m.Dir)
		if got, want := limLimits(st), limLimits(limMountStats{MaxSize: 2 * limMiB, MemLimit: 32 * limMiB, SizeLimit: 20 * limMiB, MaxInodes: 200}); got != want {
			t.Errorf("after the remount, stats say %s; want %s", got, want)
		}
		out := runCmd(t, "/", tmpmountBin, "stat", m.Dir)
		if !strings.Contains(out, "limits:     max-size 2.0 MiB, mem-limit 32 MiB, size 20 MiB, inodes 200") {
			t.Errorf("tmpmount stat after the remount:\n%s", out)
		}
		fs, err := limStatfs(m.Dir)
		if err != nil {
			t.Fatal(err)
		}
		if fs.blocks*4096 != 20*limMiB || fs.files != 200 {
			t.Errorf("df after the remount: %d blocks, %d inodes; want 20 MiB and 200", fs.blocks, fs.files)
		}
		// A 1.5 MiB file now stays in RAM (max_size 2M), and the mount
		// fills at 20 MiB.
		if err := os.WriteFile(m.Path("mid"), limContent(9, 3*limMiB/2), 0o644); err != nil {
			t.Fatal(err)
		}
		if res := readResidency(t, m.Path("mid")); res != "memory" {
			t.Errorf("a 1.5 MiB file after max_size=2M: residency %q, want memory", res)
		}
		acked, err := limWriteUntilFull(m.Path("fill"), 256*limKiB, 64*limMiB)
		used := limUsedBytes(t, m.Dir)
		if !errors.Is(err, unix.ENOSPC) || used > 20*limMiB || used < 20*limMiB-256*limKiB {
			t.Errorf("filling after size=20M: %s written, then %s, df used %s; want ENOSPC at 20 MiB", limMiBf(acked), limErrnoName(err), limMiBf(used))
		}
		for _, name := range []string{"fill", "mid"} {
			if err := os.Remove(m.Path(name)); err != nil {
				t.Fatal(err)
			}
		}
	})

	t.Run("below what is in use", func(t *testing.T) {
		waitFor(t, 10*time.Second, "the removed files' inodes back", func() bool { return limStatsOf(t, m.Dir).Inodes == 5 })
		before := limLimits(limStatsOf(t, m.Dir))
		code, stderr := remount("remount,size=1M")
		limWantRefused(t, "size=1M with 4 MiB of files", code, stderr, "size 1.0 MiB is less than", "the mount holds")
		code, stderr = remount("remount,nr_inodes=3")
		limWantRefused(t, "nr_inodes=3 with 5 in use", code, stderr, "nr_inodes 3 is less than the 5 inodes in use")
		if after := limLimits(limStatsOf(t, m.Dir)); after != before {
			t.Errorf("a refused remount changed the limits: %s, before %s", after, before)
		}
	})

	t.Run("smaller mem_limit rolls files over", func(t *testing.T) {
		if code, stderr := remount("remount,mem_limit=2M"); code != 0 {
			t.Fatalf("remount,mem_limit=2M: exit %d, stderr %q", code, stderr)
		}
		st := limStatsOf(t, m.Dir)
		if st.RAMBytes+st.MetaMemory > 2*limMiB || st.DiskFiles < 2 {
			t.Errorf("after mem_limit=2M: %s in RAM and %s of metadata, %d files on disk; want within 2 MiB, the rest rolled over",
				limMiBf(st.RAMBytes), limMiBf(st.MetaMemory), st.DiskFiles)
		}
		for i := range 4 {
			limCheckFile(t, m.Path(fmt.Sprintf("f%d", i)), limContent(uint64(i), limMiB))
		}
		if code, stderr := remount("remount,mem_limit=64M"); code != 0 {
			t.Fatalf("remount,mem_limit=64M: exit %d, stderr %q", code, stderr)
		}
	})

	t.Run("ro and rw", func(t *testing.T) {
		if code, stderr := remount("remount,ro"); code != 0 {
			t.Fatalf("remount,ro: exit %d, stderr %q", code, stderr)
		}
		flags := limMountFlags(t, "/proc/self/mountinfo", m.Dir)
		if !slices.Contains(flags, "ro") || !slices.Contains(flags, "nosuid") || !slices.Contains(flags, "nodev") {
			t.Errorf("mount flags after remount,ro: %q; want ro, nosuid, nodev", flags)
		}
		if err := os.WriteFile(m.Path("ro"), nil, 0o644); !errors.Is(err, unix.EROFS) {
			t.Errorf("creating a file on the read-only mount: %v, want EROFS", err)
		}
		limCheckFile(t, m.Path("f0"), limContent(0, limMiB))
		// Limits change on a read-only mount too.
		if code, stderr := remount("remount,size=30M"); code != 0 {
			t.Errorf("remount,size=30M on the read-only mount: exit %d, stderr %q", code, stderr)
		}
		if st := limStatsOf(t, m.Dir); st.SizeLimit != 30*limMiB {
			t.Errorf("size_limit after remount,size=30M on the read-only mount: %d", st.SizeLimit)
		}
		if code, stderr := remount("remount,rw"); code != 0 {
			t.Fatalf("remount,rw: exit %d, stderr %q", code, stderr)
		}
		flags = limMountFlags(t, "/proc/self/mountinfo", m.Dir)
		if !slices.Contains(flags, "rw") || !slices.Contains(flags, "nosuid") || !slices.Contains(flags, "nodev") {
			t.Errorf("mount flags after remount,rw: %q; want rw, nosuid, nodev", flags)
		}
		limCheckServing(t, m, "remount,rw")
	})

	t.Run("not by another user", func(t *testing.T) {
		nsMakeReachable(t, m.Dir)
		bin := binaryForNobody(t, t.TempDir())
		nsMakeReachable(t, filepath.Dir(bin))
		before := limLimits(limStatsOf(t, m.Dir))
		cmd := exec.Command("setpriv", "--reuid=1001", "--regid=1001", "--clear-groups", "--", bin, "-o", "remount,size=1G", m.Dir)
		code, stderr := limRemount(t, cmd)
		limWantRefused(t, "uid 1001 changing root's mount", code, stderr, "only root and the user who mounted it may change its limits")
		if after := limLimits(limStatsOf(t, m.Dir)); after != before {
			t.Errorf("another user's remount changed the limits: %s, before %s", after, before)
		}
		if !strings.Contains(m.Stderr.String(), "refused a change of limits by uid 1001") {
			t.Errorf("the daemon's log does not say it refused uid 1001:\n%s", m.Stderr)
		}
	})

	t.Run("bad options", func(t *testing.T) {
		code, stderr := remount("remount,bogus=1")
		limWantRefused(t, "remount,bogus=1", code, stderr, "unknown option bogus")
		code, stderr = remount("remount,size=lots")
		limWantRefused(t, "remount,size=lots", code, stderr, `invalid size "lots"`)
		code, stderr = limRemount(t, exec.Command(tmpmountBin, "-o", "remount,size=1G", t.TempDir()))
		limWantRefused(t, "remount of a directory that is no mount", code, stderr, "not a tmpmount mount point")
		// What fstab and mount(8) bring along is left as it is.
		if code, stderr := remount("remount,mode=0700,spill_dir=/nowhere,delete=close,user_id=0,max_read=4096,nofail,x-foo=1"); code != 0 {
			t.Errorf("remount with options that cannot change live: exit %d, stderr %q; want 0 (ignored, as tmpfs ignores mode=)", code, stderr)
		}
	})
}

// TestLimitsRemountPassthrough gives a size to a mount that serves files on
// disk by passthrough (root, no --size): new opens are then served by the
// daemon, which holds them to the size, and the stats say passthrough is
// off; removing the size turns it back on.
func TestLimitsRemountPassthrough(t *testing.T) {
	requireRoot(t)
	m := startMount(t, "--max-size", "64k")
	if st := limStatsOf(t, m.Dir); st.Passthrough != "on" {
		t.Skipf("passthrough is %q here", st.Passthrough)
	}
	if err := os.WriteFile(m.Path("big"), limContent(1, 4*limMiB), 0o644); err != nil {
		t.Fatal(err)
	}
	code, stderr := limRemount(t, exec.Command(tmpmountBin, "-o", "remount,size=8M", m.Dir))
	if code != 0 {
		t.Fatalf("remount,size=8M: exit %d, stderr %q", code, stderr)
	}
	if st := limStatsOf(t, m.Dir); !strings.HasPrefix(st.Passthrough, "off") {
		t.Errorf("passthrough after a size was set: %q, want off", st.Passthrough)
	}
	n, err := limPwriteChunksAt(m.Path("big"), 4*limMiB, 8*limMiB)
	if !errors.Is(err, unix.ENOSPC) || n > 4*limMiB+256*limKiB {
		t.Errorf("growing a 4 MiB file by 8 MiB after size=8M: %s written, then %s; want ENOSPC near 8 MiB in all", limMiBf(n), limErrnoName(err))
	}
	code, stderr = limRemount(t, exec.Command(tmpmountBin, "-o", "remount,size=0", m.Dir))
	if code != 0 {
		t.Fatalf("remount,size=0: exit %d, stderr %q", code, stderr)
	}
	if st := limStatsOf(t, m.Dir); st.Passthrough != "on" || st.SizeLimit != 0 {
		t.Errorf("after size=0: passthrough %q, size_limit %d; want on and 0", st.Passthrough, st.SizeLimit)
	}
}

// TestLimitsRemountViaMount8 remounts with mount(8), which runs mount.fuse,
// which runs tmpmount with the options the mount has merged with the new
// ones: limits change, ro and rw work, a refusal reaches the user, and with
// an fstab line its options are applied too.
func TestLimitsRemountViaMount8(t *testing.T) {
	requireRoot(t)
	requireFUSE(t)
	requireMountHelper(t)
	ns := rtNewNamespace(t)
	mp, spill := t.TempDir(), t.TempDir()
	logFile := filepath.Join(t.TempDir(), "daemon.log")
	fstab := filepath.Join(t.TempDir(), "fstab")
	line := fmt.Sprintf("tmpmount %s fuse.tmpmount max_size=2M,mem_limit=64M,mode=1777,spill_dir=%s,log=%s,nofail 0 0\n", mp, spill, logFile)
	rtWriteFile(t, fstab, []byte(line))
	pid := rtMountViaMount8(t, ns, mp, logFile, "mount", "-t", "fuse.tmpmount", "tmpmount", mp,
		"-o", "max_size=1M,size=8M,nodev,nosuid,spill_dir="+spill+",log="+logFile)
	root := ns.path(mp)
	stats := func() limMountStats { return limStatsOf(t, root) }
	mount8 := func(args ...string) rtResult {
		t.Helper()
		return rtRun(t, ns.command(append([]string{"mount"}, args...)...))
	}

	if res := mount8("-o", "remount,size=16M", mp); res.code != 0 {
		t.Fatalf("mount -o remount,size=16M: exit %d, stderr %q", res.code, res.stderr)
	}
	if st := stats(); st.SizeLimit != 16*limMiB || st.MaxSize != limMiB {
		t.Errorf("after mount -o remount,size=16M: %s; want size 16 MiB, max_size 1 MiB as before", limLimits(st))
	}
	mountinfo := fmt.Sprintf("/proc/%d/mountinfo", ns.pid)
	if res := mount8("-o", "remount,ro", mp); res.code != 0 {
		t.Fatalf("mount -o remount,ro: exit %d, stderr %q", res.code, res.stderr)
	}
	if flags := limMountFlags(t, mountinfo, mp); !slices.Contains(flags, "ro") || !slices.Contains(flags, "nosuid") {
		t.Errorf("mount flags after mount -o remount,ro: %q", flags)
	}
	if err := os.WriteFile(filepath.Join(root, "x"), nil, 0o644); !errors.Is(err, unix.EROFS) {
		t.Errorf("creating a file after mount -o remount,ro: %v, want EROFS", err)
	}
	if res := mount8("-o", "remount,rw", mp); res.code != 0 {
		t.Fatalf("mount -o remount,rw: exit %d, stderr %q", res.code, res.stderr)
	}
	rtWriteFile(t, filepath.Join(root, "f"), limContent(1, 3*limMiB))
	res := mount8("-o", "remount,size=1M", mp)
	if res.code == 0 || !strings.Contains(res.stderr, "size 1.0 MiB is less than the") {
		t.Errorf("mount -o remount,size=1M with 3 MiB of files: exit %d, stderr %q; want a failure that says why", res.code, res.stderr)
	}
	// From fstab: its options come along with the new one.
	if res := mount8("-T", fstab, "-o", "remount,size=24M", mp); res.code != 0 {
		t.Fatalf("mount -T fstab -o remount,size=24M: exit %d, stderr %q", res.code, res.stderr)
	}
	if st := stats(); st.SizeLimit != 24*limMiB || st.MaxSize != 2*limMiB || st.MemLimit != 64*limMiB {
		t.Errorf("after a remount with an fstab line max_size=2M,mem_limit=64M and size=24M: %s", limLimits(st))
	}
	log, _ := os.ReadFile(logFile)
	if !strings.Contains(string(log), "limits changed by uid 0: size 8.0 MiB -> 16 MiB") {
		t.Errorf("the daemon's log does not say what the remount changed:\n%s", log)
	}
	rtUmountViaMount8(t, ns, mp, spill, logFile, pid)
}

// TestLimitsRemountUnprivileged checks a mount made by an unprivileged user
// through fusermount3: that user changes its limits, but not ro/rw (the
// kernel remounts for root only), and says so; root can make it read-only.
func TestLimitsRemountUnprivileged(t *testing.T) {
	requireNonRoot(t)
	base, bin := rtNobodyBase(t)
	mp := nobodyOwnedDir(t, filepath.Join(base, "mnt"))
	spill := nobodyOwnedDir(t, filepath.Join(base, "spill"))
	daemon := rtMountAsNobody(t, bin, mp, "--size", "8M", "--spill-dir", spill)
	t.Cleanup(func() {
		rtRun(t, rtAsNobody("fusermount3", "-u", mp))
		daemon.wait(t, 10*time.Second)
	})
	if code, stderr := limRemount(t, rtAsNobody(bin, "-o", "remount,size=16M", mp)); code != 0 {
		t.Errorf("the owner's remount,size=16M: exit %d, stderr %q", code, stderr)
	}
	res := rtRun(t, rtAsNobody(bin, "stat", "--json", mp))
	if !strings.Contains(res.stdout, fmt.Sprintf(`"size_limit":%d`, 16*limMiB)) {
		t.Errorf("stats after the owner's remount: %s %s", res.stdout, res.stderr)
	}
	code, stderr := limRemount(t, rtAsNobody(bin, "-o", "remount,ro", mp))
	limWantRefused(t, "the owner's remount,ro", code, stderr, "needs root")
	// Root cannot reach a mount made without --allow-other, but the
	// kernel remounts it read-only for root.
	code, stderr = limRemount(t, exec.Command(tmpmountBin, "-o", "remount,size=1G", mp))
	limWantRefused(t, "root's remount,size=1G of a user's mount without --allow-other", code, stderr, "without --allow-other")
	if code, stderr := limRemount(t, exec.Command(tmpmountBin, "-o", "remount,ro", mp)); code != 0 {
		t.Errorf("root's remount,ro of the user's mount: exit %d, stderr %q", code, stderr)
	}
	res = rtRun(t, rtAsNobody("sh", "-c", `echo x > "$1/f"`, "sh", mp))
	if res.code == 0 || !strings.Contains(res.stderr, "Read-only file system") {
		t.Errorf("writing after root's remount,ro: exit %d, stderr %q; want EROFS", res.code, res.stderr)
	}
	if code, stderr := limRemount(t, exec.Command(tmpmountBin, "-o", "remount,rw", mp)); code != 0 {
		t.Errorf("root's remount,rw of the user's mount: exit %d, stderr %q", code, stderr)
	}
}

package main

import (
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"

	"golang.org/x/sys/unix"
)

// sizeSpellings are the spellings the size tests read, with tmpfs's size=
// and coreutils' truncate -s.
var sizeSpellings = []string{
	"0", "1", "4096", "9223372036854775807", "9223372036854775808", "18446744073709551616",
	"8k", "8K", "8kB", "8KB", "8kiB", "8KiB", "8m", "8M", "8MB", "8MiB", "8mB", "8MD", "8miB",
	"8g", "8G", "8GB", "8GiB", "8t", "8T", "8TB", "8TiB", "8p", "8P", "8PB", "8PiB", "8pB", "8piB",
	"7e", "7E", "7EB", "7EiB", "8e", "8E", "1Z", "1Y", "1R", "1Q",
	"8mb", "8Mb", "8 MB", "8 ", " 8", "1.5M", "8B", "8b", "8c", "8w", "8iB", "8kk", "8MiBB", "M", "",
	"00", "010", "08", "0x10",
	"1%", "50%", "100%", "200%", "8k%", "%",
}

// sizeRefusals are spellings that tmpfs or truncate takes but tmpmount
// refuses, as the README and tmpmount(1) say: the two read them
// differently, or the value does not fit in 63 bits.
var sizeRefusals = map[string]string{
	"010":                  "octal to tmpfs, decimal to truncate",
	"08":                   "a leading zero: octal to tmpfs (which refuses the 8)",
	"00":                   "a leading zero",
	"0x10":                 "hex to tmpfs, refused by truncate",
	" 8":                   "leading white space: skipped by truncate, refused by tmpfs",
	"8k%":                  "a percentage of a unit: tmpfs reads it as 8192%",
	"8e":                   "2^63 does not fit",
	"8E":                   "2^63 does not fit",
	"9223372036854775808":  "2^63 does not fit",
	"18446744073709551616": "2^64 does not fit (tmpfs wraps it to 0: no limit)",
	"M":                    "no number: 1M to truncate, 0 (no limit) to tmpfs",
	"%":                    "no number: 0 (no limit) to tmpfs",
}

// TestParseSizeMatchesTmpfsAndTruncate reads every spelling with
// parseSize, with truncate -s (on a tmpfs, which takes any file size up to
// 2^63-1) and with a tmpfs's size=, and checks the rule the documentation
// states: what both accept means the same to tmpmount (unless they read it
// differently, which tmpmount refuses); what one accepts, tmpmount accepts
// with that meaning, except the documented refusals; what both refuse,
// tmpmount refuses. tmpfs rounds its size up to pages; so is tmpmount's
// value compared.
func TestParseSizeMatchesTmpfsAndTruncate(t *testing.T) {
	if os.Geteuid() != 0 {
		if os.Getenv("CI") == "true" {
			t.Fatal("needs root (to mount tmpfs) under CI=true")
		}
		t.Skip("needs root to mount tmpfs")
	}
	if _, err := exec.LookPath("truncate"); err != nil {
		t.Skip("no truncate")
	}
	dir := t.TempDir()
	mnt := filepath.Join(dir, "tmpfs")
	files := filepath.Join(dir, "files")
	for _, d := range []string{mnt, files} {
		if err := os.Mkdir(d, 0o700); err != nil {
			t.Fatal(err)
		}
	}
	if err := unix.Mount("tmpfs", files, "tmpfs", 0, "size=1M"); err != nil {
		t.Fatalf("mount a tmpfs for truncate's files: %v", err)
	}
	t.Cleanup(func() { unix.Unmount(files, unix.MNT_DETACH) })
	const page = 4096

	for i, s := range sizeSpellings {
		// truncate -s, on a file of its own
		f := filepath.Join(files, strconv.Itoa(i))
		var trOK bool
		var trVal uint64
		if exec.Command("truncate", "-s", s, f).Run() == nil {
			var st unix.Stat_t
			if err := unix.Stat(f, &st); err != nil {
				t.Fatal(err)
			}
			trOK, trVal = true, uint64(st.Size)
			os.Truncate(f, 0) // gives the (sparse) space back
		}
		// tmpfs size=, which cannot hold a comma
		var tfOK bool
		var tfVal uint64
		if !strings.Contains(s, ",") && unix.Mount("tmpfs", mnt, "tmpfs", 0, "size="+s) == nil {
			var st unix.Statfs_t
			err := unix.Statfs(mnt, &st)
			unix.Unmount(mnt, 0)
			if err != nil {
				t.Fatal(err)
			}
			tfOK, tfVal = true, st.Blocks*uint64(st.Bsize)
		}
		ours, err := parseSize(s, true)
		ourOK := err == nil
		roundUp := func(v int64) uint64 { return (uint64(v) + page - 1) / page * page }
		describe := func() string {
			return fmt.Sprintf("%q: truncate %v (%d), tmpfs %v (%d), tmpmount %d, %v", s, trOK, trVal, tfOK, tfVal, ours, err)
		}

		why, refused := sizeRefusals[s]
		switch {
		case refused:
			if ourOK {
				t.Errorf("%s; want refused (%s)", describe(), why)
			}
			if !trOK && !tfOK {
				t.Errorf("%s: both refuse it; drop it from sizeRefusals", describe())
			}
		case trOK && tfOK && roundUp(int64(trVal)) != tfVal:
			t.Errorf("%s: read differently; tmpmount must refuse it, and sizeRefusals list it", describe())
		case trOK:
			if !ourOK || uint64(ours) != trVal {
				t.Errorf("%s; want %d, as truncate", describe(), trVal)
			}
		case tfOK:
			if !ourOK || roundUp(ours) != tfVal {
				t.Errorf("%s; want %d rounded up to a page, as tmpfs", describe(), tfVal)
			}
		case ourOK:
			t.Errorf("%s; want refused, as both refuse it", describe())
		}
	}
}

// TestParseSizePercentOnlyWhereAllowed checks that N% is refused where it
// is not taken (--max-size).
func TestParseSizePercentOnlyWhereAllowed(t *testing.T) {
	if _, err := parseSize("50%", false); err == nil {
		t.Error("parseSize(50%, percent not allowed) accepted it")
	}
	half, err := parseSize("50%", true)
	if err != nil {
		t.Fatal(err)
	}
	var si unix.Sysinfo_t
	if err := unix.Sysinfo(&si); err != nil {
		t.Fatal(err)
	}
	ram := int64(si.Totalram) * int64(si.Unit)
	if half < ram/2 || half > ram/2+4096 {
		t.Errorf("50%% of %d bytes of RAM = %d", ram, half)
	}
}

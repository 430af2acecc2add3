package main

import (
	"bufio"
	"crypto/sha256"
	"debug/buildinfo"
	"encoding/hex"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strings"
	"time"

	"golang.org/x/sys/unix"
)

const goFuseModule = "github.com/hanwen/go-fuse/v2"

// header describes the machine, the software and the method, so that a
// table can be read (and compared) later.
type header struct {
	Date        string        `json:"date"`
	Kernel      string        `json:"kernel"`
	CPUModel    string        `json:"cpu_model"`
	CPUs        int           `json:"cpus"` // usable by this process
	Memory      string        `json:"memory"`
	LoadStart   string        `json:"load_start"` // /proc/loadavg: other work skews the numbers
	LoadEnd     string        `json:"load_end"`
	GoVersion   string        `json:"go_version"`
	GoFuseGoMod string        `json:"go_fuse_go_mod"`
	DiskDir     string        `json:"disk_dir"`
	DiskMount   *mountEntry   `json:"disk_mount"`
	TmpfsMount  *mountEntry   `json:"tmpfs_mount"`
	Variants    []variantInfo `json:"variants"`
	Runs        int           `json:"runs"`
	SeqSize     int64         `json:"seq_size"`
	SmallCount  int           `json:"small_count"`
	MibCount    int           `json:"mib_count"`
	Verify      bool          `json:"verify"`
	DropCaches  string        `json:"drop_caches"`
	Method      []string      `json:"method"`
}

type variantInfo struct {
	Name    string      `json:"name"`
	Binary  string      `json:"binary"`
	SHA256  string      `json:"sha256"`
	Flags   []string    `json:"flags"`
	Command string      `json:"command"` // as the probe started it
	Version string      `json:"version"` // tmpmount --version
	Build   string      `json:"build"`   // from the binary's build info
	Mount   *mountEntry `json:"mount"`   // as /proc/self/mountinfo showed the probe mount
}

func collectHeader(cfg *config, work string, targets []*target) *header {
	h := &header{
		Date:        time.Now().Format(time.RFC3339),
		Kernel:      kernelRelease(),
		CPUModel:    cpuModel(),
		CPUs:        runtime.NumCPU(),
		Memory:      human(meminfo()["MemTotal"]),
		LoadStart:   loadAvg(),
		GoVersion:   runtime.Version() + " " + runtime.GOOS + "/" + runtime.GOARCH,
		GoFuseGoMod: goFuseFromGoMod(cfg.repo),
		DiskDir:     cfg.diskDir,
		Runs:        cfg.runs,
		SeqSize:     cfg.seqSize,
		SmallCount:  cfg.smallCount,
		MibCount:    cfg.mibCount,
		Verify:      cfg.verify,
		DropCaches:  cfg.dropCaches,
		Method:      method(cfg),
	}
	for _, t := range targets {
		switch t.kind {
		case kindTmpfs:
			h.TmpfsMount = t.probed
		case kindDisk:
			h.DiskMount = t.probed
		case kindTmpmount:
			h.Variants = append(h.Variants, describeVariant(t, work))
		}
	}
	return h
}

func describeVariant(t *target, work string) variantInfo {
	v := t.variant
	vi := variantInfo{
		Name: v.name, Binary: v.bin, Flags: v.args, Mount: t.probed,
		// The probe's paths stand for the fresh ones of every run.
		Command: strings.ReplaceAll(t.cmdline, work+"/", "WORK/"),
		SHA256:  fileSHA256(v.bin),
	}
	out, err := exec.Command(v.bin, "--version").CombinedOutput()
	vi.Version = strings.TrimSpace(string(out))
	if err != nil {
		vi.Version = fmt.Sprintf("(--version failed: %v) %s", err, vi.Version)
	}
	if bi, err := buildinfo.ReadFile(v.bin); err == nil {
		vi.Build = bi.GoVersion
		for _, d := range bi.Deps {
			if d.Path == goFuseModule {
				vi.Build += ", go-fuse " + d.Version
			}
		}
		for _, s := range bi.Settings {
			if s.Key == "vcs.revision" || s.Key == "vcs.modified" {
				vi.Build += ", " + s.Key + "=" + s.Value
			}
		}
	}
	return vi
}

// method says how the numbers were taken, in the header and the JSON.
func method(cfg *config) []string {
	m := []string{
		fmt.Sprintf("%d run(s), interleaved: each run visits every target once, the order rotated by one each run; every visit gets a fresh tmpfs, directory, or tmpmount mount and spill dir", cfg.runs),
		"every value is a throughput: MB/s (10^6 bytes/s) or ops/s; higher is better",
		"untimed before every workload: sync(2) and a Go GC",
	}
	switch cfg.dropCaches {
	case dropDisk:
		m = append(m, "untimed before seq-read, small-stat, small-read, mib-read on disk: sync; echo 3 > /proc/sys/vm/drop_caches (cold reads from the disk); not on tmpfs or tmpmount, whose reads may come from the page cache")
	case dropAll:
		m = append(m, "untimed before seq-read, small-stat, small-read, mib-read on every target: sync; echo 3 > /proc/sys/vm/drop_caches (tmpmount reads go to the daemon)")
	case dropNone:
		m = append(m, "page caches never dropped: disk reads may come from RAM")
	}
	m = append(m, "writes are not fsync'd: disk write numbers are page-cache numbers until the dirty limits (vm.dirty_ratio "+readTrim("/proc/sys/vm/dirty_ratio")+"%) are reached")
	for _, wl := range workloads {
		m = append(m, fmt.Sprintf("%s: %s", wl.name, wl.timed))
	}
	if cfg.verify {
		m = append(m, "verify: every byte read is compared with the pattern written (stamped per file and MiB); sizes and EOF checked")
	} else {
		m = append(m, "verify: off (sizes are still checked; -verify or -quick compares the data)")
	}
	return m
}

func printHeader(w io.Writer, h *header) {
	p := func(k, f string, a ...any) { fmt.Fprintf(w, "%-10s %s\n", k, fmt.Sprintf(f, a...)) }
	fmt.Fprintln(w, "tmpmount bench")
	p("date", "%s", h.Date)
	p("kernel", "%s", h.Kernel)
	p("cpu", "%s, %d CPUs", h.CPUModel, h.CPUs)
	p("memory", "%s", h.Memory)
	p("load", "%s (1, 5, 15 min averages before the runs: anything else running skews the numbers)", h.LoadStart)
	p("go", "%s", h.GoVersion)
	p("go-fuse", "%s (go.mod)", h.GoFuseGoMod)
	p("sizes", "seq %s; small %d × 4 KiB; mib %d × 1 MiB", human(h.SeqSize), h.SmallCount, h.MibCount)
	fmt.Fprintln(w, "targets:")
	width := len("tmpfs")
	for _, v := range h.Variants {
		width = max(width, len(v.Name))
	}
	t := func(name, f string, a ...any) { fmt.Fprintf(w, "  %-*s  %s\n", width, name, fmt.Sprintf(f, a...)) }
	t("tmpfs", "mount -t tmpfs tmpfs DIR, seen as %s", h.TmpfsMount)
	t("disk", "a directory in %s, on %s", h.DiskDir, h.DiskMount)
	for _, v := range h.Variants {
		t(v.Name, "%s", v.Command)
		t("", "%s; built with %s; sha256 %s", v.Version, v.Build, v.SHA256)
		t("", "seen as %s", v.Mount)
	}
	fmt.Fprintln(w, "method:")
	for _, line := range h.Method {
		fmt.Fprintf(w, "  - %s\n", line)
	}
}

func kernelRelease() string {
	var u unix.Utsname
	if err := unix.Uname(&u); err != nil {
		return "unknown"
	}
	return unix.ByteSliceToString(u.Release[:])
}

func cpuModel() string {
	f, err := os.Open("/proc/cpuinfo")
	if err != nil {
		return "unknown"
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		if k, v, ok := strings.Cut(sc.Text(), ":"); ok && strings.TrimSpace(k) == "model name" {
			return strings.TrimSpace(v)
		}
	}
	return "unknown"
}

// goFuseFromGoMod reads the go-fuse requirement from the repository's go.mod.
func goFuseFromGoMod(repo string) string {
	if repo == "" {
		return "unknown (no repository found)"
	}
	data, err := os.ReadFile(filepath.Join(repo, "go.mod"))
	if err != nil {
		return "unknown (" + err.Error() + ")"
	}
	for _, line := range strings.Split(string(data), "\n") {
		f := strings.Fields(line)
		for i := 0; i+1 < len(f); i++ {
			if f[i] == goFuseModule {
				return f[i+1]
			}
		}
	}
	return "not in go.mod"
}

func fileSHA256(path string) string {
	f, err := os.Open(path)
	if err != nil {
		return "unknown"
	}
	defer f.Close()
	h := sha256.New()
	if _, err := io.Copy(h, f); err != nil {
		return "unknown"
	}
	return hex.EncodeToString(h.Sum(nil))[:16]
}

// loadAvg returns the three load averages of /proc/loadavg.
func loadAvg() string {
	f := strings.Fields(readTrim("/proc/loadavg"))
	if len(f) < 3 {
		return "unknown"
	}
	return strings.Join(f[:3], " ")
}

func readTrim(path string) string {
	data, err := os.ReadFile(path)
	if err != nil {
		return "?"
	}
	return strings.TrimSpace(string(data))
}

// human formats a byte count in binary units.
func human(n int64) string {
	switch {
	case n >= 1<<30:
		return fmt.Sprintf("%.1f GiB", float64(n)/(1<<30))
	case n >= 1<<20:
		return fmt.Sprintf("%.0f MiB", float64(n)/(1<<20))
	case n >= 1<<10:
		return fmt.Sprintf("%.0f KiB", float64(n)/(1<<10))
	}
	return fmt.Sprintf("%d B", n)
}

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
	BigSize     int64         `json:"big_size"`
	BigOps      int           `json:"big_ops"`
	BigTime     string        `json:"big_time"`
	Tree        string        `json:"tree,omitempty"`    // what tree-* extract
	Compile     string        `json:"compile,omitempty"` // what compile builds
	RunTrueRuns int           `json:"run_true_runs,omitempty"`
	RSSFiles    int           `json:"rss_files,omitempty"`
	Workloads   []string      `json:"workloads"` // those run (-only)
	Verify      bool          `json:"verify"`
	DropCaches  string        `json:"drop_caches"`
	Method      []string      `json:"method"`
	URing       string        `json:"uring"` // what the bench did with enable_uring
	LatOps      int           `json:"lat_ops,omitempty"`
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
	// Passthrough as the probe daemon's "serving" line gave it: "on", or
	// "off (reason)".
	Passthrough string `json:"passthrough"`
	Transport   string `json:"transport"` // likewise: io_uring (N queues) or /dev/fuse (why)
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
		LatOps:      cfg.latOps,
		SeqSize:     cfg.seqSize,
		SmallCount:  cfg.smallCount,
		MibCount:    cfg.mibCount,
		BigSize:     cfg.bigSize,
		BigOps:      cfg.bigOps,
		BigTime:     cfg.bigTime.String(),
		Verify:      cfg.verify,
		DropCaches:  cfg.dropCaches,
		Method:      method(cfg),
	}
	a := cfg.assets
	for _, wl := range cfg.workloads {
		h.Workloads = append(h.Workloads, wl.name)
		switch {
		case strings.HasPrefix(wl.name, "tree-"):
			var dirs []string
			for _, d := range a.treeDirs {
				dirs = append(dirs, filepath.Join(a.goroot, d))
			}
			h.Tree = fmt.Sprintf("%s: %d files, %s (largest %s)", strings.Join(dirs, " "), a.treeFiles, human(a.treeBytes), a.treeLargest)
		case wl.name == "compile":
			imports := strings.Join(a.modImport, " ")
			if imports == "" {
				imports = "nothing (the runtime only)"
			}
			h.Compile = "a main package importing " + imports
		case wl.name == "run-true":
			h.RunTrueRuns = a.runTrueRuns
		case strings.HasPrefix(wl.name, "rss-"):
			h.RSSFiles = cfg.rssFiles
		}
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
		Name: v.name, Binary: v.bin, Flags: v.args, Mount: t.probed, Passthrough: t.passthrough, Transport: t.transport,
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
		"throughputs, MB/s (10^6 bytes/s) and ops/s: higher is better; times, s, and memory, MiB (2^20 bytes) and B/file: lower is better",
		"untimed before every workload: sync(2) and a Go GC",
	}
	var reads, every, warm []string
	big := false
	for _, wl := range cfg.workloads {
		if wl.reads {
			reads = append(reads, wl.name)
		}
		if wl.dropEvery {
			every = append(every, wl.name)
		}
		if wl.spillGoal > 0 {
			big = true
			if !wl.dropEvery && wl.after != "" {
				warm = append(warm, wl.name)
			}
		}
	}
	switch {
	case cfg.dropCaches == dropNone:
		m = append(m, "page caches never dropped (-drop-caches=none): disk reads may come from RAM")
	case len(reads) > 0 && cfg.dropCaches == dropDisk:
		m = append(m, "untimed before "+strings.Join(reads, ", ")+" on disk: sync; echo 3 > /proc/sys/vm/drop_caches (cold reads from the disk); not on tmpfs or tmpmount, whose reads may come from the page cache")
	case len(reads) > 0 && cfg.dropCaches == dropAll:
		m = append(m, "untimed before "+strings.Join(reads, ", ")+" on every target: sync; echo 3 > /proc/sys/vm/drop_caches (tmpmount reads go to the daemon)")
	}
	if len(every) > 0 && cfg.dropCaches != dropNone {
		m = append(m, "untimed before "+strings.Join(every, ", ")+" on EVERY target (whatever -drop-caches says): sync; echo 3 > /proc/sys/vm/drop_caches, so that disk, passthrough and daemon reads all start cold")
	}
	m = append(m, "writes are not fsync'd: disk write numbers are page-cache numbers until the dirty limits (vm.dirty_ratio "+readTrim("/proc/sys/vm/dirty_ratio")+"%) are reached")
	if big {
		m = append(m,
			fmt.Sprintf("big-*: one file of %s, above tmpmount's default --max-size (8 MiB), so it rolls over to the spill disk while big-seq-write writes it (\"tmpmount data in\" shows where it was); every big-* workload opens it afresh, so that on tmpmount with passthrough on the kernel serves it from the backing file; the disk target is the spill filesystem (spill dirs are made in %s)", human(cfg.bigSize), cfg.diskDir),
			fmt.Sprintf("big-* random workloads: %d operations of 4 KiB each, or as many as fit in %v, at random 4 KiB-aligned offsets from a fixed seed (the same on every target and run); reported as operations per second", cfg.bigOps, cfg.bigTime),
		)
		if len(warm) > 0 {
			m = append(m, strings.Join(warm, ", ")+": caches not dropped: the file's pages are warm (from the workloads before) on every target")
		}
	}
	for _, wl := range cfg.workloads {
		m = append(m, fmt.Sprintf("%s: %s", wl.name, wl.timed))
	}
	if cfg.verify {
		m = append(m, "verify: every byte read is compared with what was written (the pattern stamped per file and MiB; big-*: and the random writes, each stamped with its number and place; after big-rand-write the chunks it wrote, after big-mmap-rand-rw the whole file, are read back on a fresh open); sizes and EOF checked")
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
	p("sizes", "seq %s; small %d × 4 KiB; mib %d × 1 MiB; big %s, random: %d × 4 KiB or %s", human(h.SeqSize), h.SmallCount, h.MibCount, human(h.BigSize), h.BigOps, h.BigTime)
	if h.Tree != "" {
		p("tree", "%s", h.Tree)
	}
	if h.Compile != "" {
		p("compile", "%s", h.Compile)
	}
	if h.RunTrueRuns > 0 {
		p("run-true", "median of %d runs per bench run", h.RunTrueRuns)
	}
	if h.RSSFiles > 0 {
		p("rss", "%d empty files", h.RSSFiles)
	}
	if h.URing != "" {
		p("io_uring", "%s", h.URing)
	}
	p("workloads", "%s", strings.Join(h.Workloads, ", "))
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
		t("", "passthrough %s, transport %s (its \"serving\" line)", v.Passthrough, v.Transport)
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

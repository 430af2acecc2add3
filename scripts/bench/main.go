// Command bench measures tmpmount beside a fresh tmpfs and a directory on
// the spill disk, in one run, interleaved run by run, and prints medians
// and ratios. It needs root (to mount tmpfs and drop the page cache):
//
//	go run ./scripts/bench [flags]
//	go run ./scripts/bench -quick          # tiny sizes, 1 run, data checked
//	go run ./scripts/bench -variant a=/tmp/a -variant ram=/tmp/a,--max-size=0
//	go run ./scripts/bench -only big-        # only the big-file workloads
//
// Throughputs (MB/s, ops/s) are higher-is-better; times (s) and memory
// (MiB, B/file) lower-is-better. A ratio is median / reference median in
// the row's unit: above 1 is faster for a throughput, slower for a time.
package main

import (
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"runtime"
	"strconv"
	"strings"
	"time"
)

// init keeps the main goroutine on the main thread. The daemons are started
// from it with Pdeathsig, which fires when the thread that started them
// ends, not the process: locking makes the two the same, so a daemon gets
// SIGTERM (and unmounts itself) if the bench is killed outright.
func init() { runtime.LockOSThread() }

const mib = 1 << 20

// config is everything the command line says, after -quick has filled in
// what was not given explicitly.
type config struct {
	repo       string     // repository root, to build tmpmount and read go.mod
	bin        string     // tmpmount binary for variants that name none
	diskDir    string     // where the disk target, spill dirs and mount points go
	variants   []*variant // the tmpmount variants, in command-line order
	runs       int
	quick      bool
	seqSize    int64         // bytes of the seq-write/seq-read file
	smallCount int           // files of small-*
	mibCount   int           // files of mib-*
	bigSize    int64         // bytes of the big-* file
	bigOps     int           // operations of each random big-* workload ...
	bigTime    time.Duration // ... unless this time runs out first
	rssFiles   int           // empty files of rss-100k
	latOps     int           // operations of each lat-* workload
	assets     *assets       // what tree-*, compile and run-true use (real.go)
	only       []string      // workload name prefixes to run; nil: all
	workloads  []workload    // what -only selects, in run order
	verify     bool          // check the data read back
	dropCaches string
	jsonPath   string
}

// Drop-cache policies.
const (
	dropDisk = "disk" // before read workloads on the disk target only
	dropAll  = "all"  // before read workloads on every target
	dropNone = "none"
)

func main() {
	os.Exit(realMain(os.Args[1:], os.Stdout, os.Stderr))
}

func realMain(args []string, stdout, stderr io.Writer) int {
	cfg, err := parseFlags(args, stderr)
	if errors.Is(err, flag.ErrHelp) {
		return 0
	}
	if err != nil {
		fmt.Fprintln(stderr, "bench:", err)
		return 2
	}
	cl := &cleaner{}
	stopSignals := handleSignals(cl, stderr)
	err = run(cfg, cl, stdout, stderr)
	cleanErrs := cl.runAll(false)
	stopSignals()
	for _, e := range cleanErrs {
		fmt.Fprintln(stderr, "bench: cleanup:", e)
	}
	switch {
	case errors.Is(err, errInterrupted):
		fmt.Fprintln(stderr, "bench: interrupted; everything was unmounted and removed")
		return 130
	case err != nil:
		fmt.Fprintln(stderr, "bench:", err)
		return 1
	case len(cleanErrs) > 0:
		return 1
	}
	return 0
}

func parseFlags(args []string, stderr io.Writer) (*config, error) {
	cfg := &config{assets: &assets{treeDirs: treeDirsFull, modImport: compileImports, runTrueRuns: 5}}
	var variants variantsFlag
	seqSize := sizeFlag(1 << 30)
	bigSize := sizeFlag(2 << 30)
	var only string
	fs := flag.NewFlagSet("bench", flag.ContinueOnError)
	// Errors are printed once, by realMain; only -help prints the usage.
	fs.SetOutput(io.Discard)
	fs.StringVar(&cfg.repo, "repo", "", "tmpmount repository root (default: found from the working directory)")
	fs.StringVar(&cfg.bin, "bin", "", "tmpmount binary to use instead of building one")
	fs.Var(&variants, "variant", "tmpmount variant `name=PATH[,flag,flag...]`, repeatable; an empty PATH means the built (or -bin) binary\n(default: tmpmount= (FUSE over io_uring where the kernel has it), tmpmount-dev=,--no-uring (/dev/fuse), tmpmount-nopt=,--no-passthrough and tmpmount-ram=,--max-size=0)")
	fs.StringVar(&cfg.diskDir, "disk-dir", "/var/tmp", "directory on the disk to compare with; spill dirs and mount points go there too")
	fs.IntVar(&cfg.runs, "runs", 3, "repetitions, interleaved across targets")
	fs.BoolVar(&cfg.quick, "quick", false, "smoke run: seq 64 MiB, 500 small files, 20 MiB files, big 64 MiB and 2000 ops, tree src/fmt+src/strconv, compile of an import-free main, run-true 2 times, rss 20000 files, 1 run, data verified; no timing asserted")
	fs.Var(&seqSize, "seq-size", "`SIZE` of the seq-write file, a multiple of 1 MiB (e.g. 1G, 64M)")
	fs.IntVar(&cfg.smallCount, "small-count", 10000, "number of 4 KiB files for small-*")
	fs.IntVar(&cfg.mibCount, "mib-count", 500, "number of 1 MiB files for mib-*")
	fs.Var(&bigSize, "big-size", "`SIZE` of the big-* file, a multiple of 1 MiB; above tmpmount's --max-size, so that it rolls over to the spill disk")
	fs.IntVar(&cfg.bigOps, "big-ops", defaultBigOps, "4 KiB operations of each random big-* workload (big-rand-read, big-rand-write, big-mmap-rand-rw) ...")
	fs.DurationVar(&cfg.bigTime, "big-time", defaultBigTime, "... unless this time budget runs out first (the rate is of the operations done)")
	fs.IntVar(&cfg.rssFiles, "rss-files", 100000, "number of empty files rss-100k creates")
	fs.IntVar(&cfg.latOps, "lat-ops", defaultLatOps, "operations timed by each lat-* workload")
	fs.StringVar(&only, "only", "", "run only the workloads whose names start with one of these comma-separated `PREFIXES` (e.g. big-), and those whose files they read")
	fs.BoolVar(&cfg.verify, "verify", false, "check every byte read back against what was written (on with -quick)")
	fs.StringVar(&cfg.dropCaches, "drop-caches", dropDisk, "before read workloads, sync and drop the page cache on: disk, all (every target), none")
	fs.StringVar(&cfg.jsonPath, "json", "", "write the raw results to `FILE` as JSON")
	if err := fs.Parse(args); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			fs.SetOutput(stderr)
			fmt.Fprintln(stderr, "Usage: go run ./scripts/bench [flags]   (as root, from the tmpmount repository)")
			fs.PrintDefaults()
			return nil, err
		}
		return nil, fmt.Errorf("%v (see -help)", err)
	}
	if fs.NArg() > 0 {
		return nil, fmt.Errorf("unexpected arguments %q (see -help)", fs.Args())
	}
	set := map[string]bool{}
	fs.Visit(func(f *flag.Flag) { set[f.Name] = true })
	cfg.seqSize = int64(seqSize)
	cfg.bigSize = int64(bigSize)
	if only != "" {
		cfg.only = strings.Split(only, ",")
	}
	if cfg.quick {
		applyQuick(cfg, set)
	}
	cfg.variants = variants
	if len(cfg.variants) == 0 {
		cfg.variants = []*variant{
			{name: "tmpmount"},
			{name: "tmpmount-dev", args: []string{"--no-uring"}},
			{name: "tmpmount-nopt", args: []string{"--no-passthrough"}},
			{name: "tmpmount-ram", args: []string{"--max-size=0"}},
		}
	}
	if err := checkConfig(cfg); err != nil {
		return nil, err
	}
	var err error
	cfg.workloads, err = selectWorkloads(cfg.only)
	return cfg, err
}

// applyQuick shrinks what the command line did not set explicitly.
func applyQuick(cfg *config, set map[string]bool) {
	if !set["seq-size"] {
		cfg.seqSize = 64 * mib
	}
	if !set["small-count"] {
		cfg.smallCount = 500
	}
	if !set["mib-count"] {
		cfg.mibCount = 20
	}
	if !set["big-size"] {
		cfg.bigSize = 64 * mib
	}
	if !set["big-ops"] {
		cfg.bigOps = 2000
	}
	if !set["rss-files"] {
		cfg.rssFiles = 20000
	}
	if !set["lat-ops"] {
		cfg.latOps = 500
	}
	cfg.assets.treeDirs = treeDirsQuick
	cfg.assets.modImport = compileImportsQuick
	cfg.assets.runTrueRuns = 2
	if !set["runs"] {
		cfg.runs = 1
	}
	if !set["verify"] {
		cfg.verify = true
	}
}

func checkConfig(cfg *config) error {
	switch {
	case cfg.runs < 1:
		return fmt.Errorf("-runs %d: need at least 1", cfg.runs)
	case cfg.seqSize < mib || cfg.seqSize%mib != 0:
		return fmt.Errorf("-seq-size %d: must be a positive multiple of 1 MiB (the write size)", cfg.seqSize)
	case cfg.smallCount < 1 || cfg.mibCount < 1 || cfg.rssFiles < 1 || cfg.latOps < 1:
		return fmt.Errorf("-small-count, -mib-count, -rss-files and -lat-ops must be at least 1")
	case cfg.bigSize < mib || cfg.bigSize%mib != 0:
		return fmt.Errorf("-big-size %d: must be a positive multiple of 1 MiB (the write size)", cfg.bigSize)
	case cfg.bigOps < 1 || cfg.bigTime <= 0:
		return fmt.Errorf("-big-ops and -big-time must be positive")
	}
	switch cfg.dropCaches {
	case dropDisk, dropAll, dropNone:
	default:
		return fmt.Errorf("-drop-caches %q: want disk, all or none", cfg.dropCaches)
	}
	seen := map[string]bool{"tmpfs": true, "disk": true}
	for _, v := range cfg.variants {
		if seen[v.name] {
			return fmt.Errorf("-variant %s: the name is taken (tmpfs and disk are the reference targets; variant names must differ)", v.name)
		}
		seen[v.name] = true
	}
	return nil
}

// variant is one tmpmount configuration to measure.
type variant struct {
	name string
	path string   // as given; "" means the default binary
	bin  string   // resolved binary
	args []string // extra flags, before the mount point
}

// variantsFlag parses repeated -variant name=PATH[,flag,flag...].
type variantsFlag []*variant

func (f *variantsFlag) String() string {
	var parts []string
	for _, v := range *f {
		parts = append(parts, v.name+"="+strings.Join(append([]string{v.path}, v.args...), ","))
	}
	return strings.Join(parts, " ")
}

func (f *variantsFlag) Set(s string) error {
	name, rest, ok := strings.Cut(s, "=")
	if !ok || name == "" {
		return fmt.Errorf("want name=PATH[,flag,flag...], got %q", s)
	}
	for _, r := range name {
		if !(r >= 'a' && r <= 'z' || r >= 'A' && r <= 'Z' || r >= '0' && r <= '9' || strings.ContainsRune("._-", r)) {
			return fmt.Errorf("variant name %q: use letters, digits, '.', '_' and '-'", name)
		}
	}
	parts := strings.Split(rest, ",")
	v := &variant{name: name, path: parts[0]}
	for _, a := range parts[1:] {
		if a == "" {
			continue
		}
		// The bench gives each mount a fresh spill dir and checks that it
		// is empty after the unmount; a variant must not move it.
		if strings.HasPrefix(strings.TrimLeft(a, "-"), "spill-dir") {
			return fmt.Errorf("variant %s: --spill-dir is set by the bench (a fresh one per mount under -disk-dir)", name)
		}
		v.args = append(v.args, a)
	}
	*f = append(*f, v)
	return nil
}

// sizeFlag is a byte count with an optional binary suffix: 64M, 1G, 1GiB.
type sizeFlag int64

func (s *sizeFlag) String() string {
	n := int64(*s)
	switch {
	case n > 0 && n%(1<<30) == 0:
		return strconv.FormatInt(n>>30, 10) + "G"
	case n > 0 && n%(1<<20) == 0:
		return strconv.FormatInt(n>>20, 10) + "M"
	}
	return strconv.FormatInt(n, 10)
}

func (s *sizeFlag) Set(v string) error {
	t := strings.TrimSuffix(strings.TrimSuffix(strings.ToUpper(v), "B"), "I")
	mult := int64(1)
	if n := len(t); n > 0 {
		switch t[n-1] {
		case 'K':
			mult = 1 << 10
		case 'M':
			mult = 1 << 20
		case 'G':
			mult = 1 << 30
		case 'T':
			mult = 1 << 40
		}
		if mult > 1 {
			t = t[:n-1]
		}
	}
	n, err := strconv.ParseInt(t, 10, 64)
	if err != nil || n < 0 {
		return fmt.Errorf("size %q: want a number with an optional K, M, G or T suffix", v)
	}
	*s = sizeFlag(n * mult)
	return nil
}

// run does the whole benchmark: checks, build, a probe mount of every
// target, the interleaved runs, and the report.
func run(cfg *config, cl *cleaner, stdout, stderr io.Writer) error {
	started := time.Now()
	if err := preflight(cfg); err != nil {
		return err
	}
	work, err := makeWorkDir(cfg, cl, stderr)
	if err != nil {
		return err
	}
	uringNote := enableURing(cl)
	if err := resolveBinaries(cfg, work, stderr); err != nil {
		return err
	}
	if err := prepareAssets(cfg, work, stderr); err != nil {
		return err
	}
	targets := makeTargets(cfg)
	// The probe mounts every target once before any timing: a broken
	// variant fails in seconds, and the header can show the mount options.
	for _, t := range targets {
		if err := probe(cl, work, t); err != nil {
			return err
		}
	}
	hdr := collectHeader(cfg, work, targets)
	hdr.URing = uringNote
	printHeader(stdout, hdr)

	var results []result
	for r := 0; r < cfg.runs; r++ {
		order := rotate(targets, r)
		for pos, t := range order {
			fmt.Fprintf(stderr, "run %d/%d, %d/%d: %s\n", r+1, cfg.runs, pos+1, len(order), t.name)
			got, err := runTarget(cfg, cl, work, t, r, pos, stderr)
			results = append(results, got...)
			if err != nil {
				return err
			}
		}
	}
	rows := summarize(targets, cfg.workloads, results)
	printTable(stdout, rows, cfg)
	fmt.Fprintln(stdout)
	printDaemonTable(stdout, targets, cfg.workloads, results)
	checkMounts(stdout, targets, results)
	hdr.LoadEnd = loadAvg()
	fmt.Fprintf(stdout, "load averages at the end: %s\n", hdr.LoadEnd)
	fmt.Fprintf(stdout, "total bench time %v\n", time.Since(started).Round(time.Second))
	if cfg.jsonPath != "" {
		if err := writeJSON(cfg.jsonPath, hdr, results, rows); err != nil {
			return err
		}
		fmt.Fprintf(stderr, "raw results written to %s\n", cfg.jsonPath)
	}
	return nil
}

// rotate returns targets starting at index r mod len: each run starts with
// a different target, so that no target always runs first (cold) or last.
func rotate(targets []*target, r int) []*target {
	k := r % len(targets)
	out := append([]*target{}, targets[k:]...)
	return append(out, targets[:k]...)
}

// runTarget sets up a fresh instance of t, runs every workload on it, and
// tears it down (also on error).
func runTarget(cfg *config, cl *cleaner, work string, t *target, run, pos int, stderr io.Writer) ([]result, error) {
	label := fmt.Sprintf("run%d", run+1)
	in, err := setup(cl, work, t, label)
	if err != nil {
		return nil, err
	}
	results, runErr := runWorkloads(cfg, in, run, pos, stderr)
	if err := in.teardown(); err != nil && runErr == nil {
		runErr = err
	}
	return results, runErr
}

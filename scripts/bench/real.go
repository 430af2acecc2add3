package main

// The real-work workloads: what a temp directory is used for rather than
// single system calls. tree-extract and tree-remove unpack and delete a
// real source tree (Go's own) with the tar and rm programs; compile runs
// go build with its cache and temp dirs in the target; run-true times
// `tmpmount run -- true`; rss-* read the daemon's memory, idle and with
// many files. Everything but the timed command is untimed.

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"time"
)

// assets is what the real-work workloads share across targets and runs,
// made once per bench (untimed) in the work dir.
type assets struct {
	goBin  string
	goroot string
	// tree-*: the tarball of treeDirs (relative to goroot), and what it
	// holds.
	treeDirs    []string
	treeTar     string
	treeFiles   int    // regular files
	treeBytes   int64  // their bytes
	treeLargest string // the largest file, relative: its residency is shown
	// compile: the module to copy into the target.
	moduleDir string
	modImport []string
	// tmpmount run -- true: how many times per bench run.
	runTrueRuns int
}

// Go source trees to extract, relative to GOROOT.
var (
	treeDirsFull  = []string{"src"}
	treeDirsQuick = []string{"src/fmt", "src/strconv"}
)

// The compile workload's imports; -quick imports nothing (the runtime
// alone takes seconds to compile with an empty cache).
var (
	compileImports      = []string{"encoding/json", "net/http", "os", "text/template"}
	compileImportsQuick = []string{}
)

// compileOutput is what the compiled program prints; -verify runs it.
const compileOutput = "tmpmount bench: 200 OK\n"

func compileSource(imports []string) string {
	if len(imports) == 0 {
		return "package main\n\nfunc main() { print(\"tmpmount bench: 200 OK\\n\") }\n"
	}
	return `package main

import (
	"encoding/json"
	"net/http"
	"os"
	"text/template"
)

func main() {
	var v struct{ Code int }
	if err := json.Unmarshal([]byte(` + "`" + `{"Code": 200}` + "`" + `), &v); err != nil {
		panic(err)
	}
	t := template.Must(template.New("out").Parse("tmpmount bench: {{.Code}} {{.Text}}\n"))
	if err := t.Execute(os.Stdout, map[string]any{"Code": v.Code, "Text": http.StatusText(v.Code)}); err != nil {
		panic(err)
	}
}
`
}

// needsAssets says which real-work workloads are selected.
func needsAssets(cfg *config) (tree, compile bool) {
	for _, wl := range cfg.workloads {
		switch {
		case strings.HasPrefix(wl.name, "tree-"):
			tree = true
		case wl.name == "compile":
			compile = true
		}
	}
	return tree, compile
}

// findGo finds the go command and its GOROOT, for tree-* and compile.
func findGo() (goBin, goroot string, err error) {
	goBin, err = exec.LookPath("go")
	if err != nil {
		return "", "", errors.New("no go in PATH (tree-* and compile need it): keep PATH under sudo (sudo env \"PATH=$PATH\" ...), or leave them out with -only")
	}
	out, err := exec.Command(goBin, "env", "GOROOT").Output()
	if err != nil {
		return "", "", fmt.Errorf("go env GOROOT: %v", err)
	}
	goroot = strings.TrimSpace(string(out))
	if st, err := os.Stat(filepath.Join(goroot, "src")); err != nil || !st.IsDir() {
		return "", "", fmt.Errorf("go env GOROOT says %q, which has no src directory", goroot)
	}
	return goBin, goroot, nil
}

// treeSize counts the regular files of dirs under root and their bytes,
// and finds the largest.
func treeSize(root string, dirs []string) (files int, bytes int64, largest string, err error) {
	var most int64 = -1
	for _, d := range dirs {
		err = filepath.WalkDir(filepath.Join(root, d), func(path string, e fs.DirEntry, err error) error {
			if err != nil || !e.Type().IsRegular() {
				return err
			}
			info, err := e.Info()
			if err != nil {
				return err
			}
			files++
			bytes += info.Size()
			if info.Size() > most {
				most = info.Size()
				largest, _ = filepath.Rel(root, path)
			}
			return nil
		})
		if err != nil {
			return 0, 0, "", err
		}
	}
	return files, bytes, largest, nil
}

// findAssets finds what the selected real-work workloads need (go, its
// GOROOT, tar) and sizes the tree, before anything is made.
func findAssets(cfg *config) error {
	a := cfg.assets
	tree, comp := needsAssets(cfg)
	if !tree && !comp {
		return nil
	}
	var err error
	if a.goBin, a.goroot, err = findGo(); err != nil {
		return err
	}
	if tree {
		for _, prog := range []string{"tar", "rm"} {
			if _, err := exec.LookPath(prog); err != nil {
				return fmt.Errorf("no %s in PATH: tree-* run it", prog)
			}
		}
		if a.treeFiles, a.treeBytes, a.treeLargest, err = treeSize(a.goroot, a.treeDirs); err != nil {
			return fmt.Errorf("the tree-* source: %w", err)
		}
		if a.treeFiles == 0 {
			return fmt.Errorf("the tree-* source %s has no files", filepath.Join(a.goroot, a.treeDirs[0]))
		}
	}
	return nil
}

// prepareAssets makes, untimed and once, the tarball and the module the
// selected real-work workloads use.
func prepareAssets(cfg *config, work string, stderr io.Writer) error {
	a := cfg.assets
	tree, comp := needsAssets(cfg)
	if tree {
		a.treeTar = filepath.Join(work, "tree.tar")
		args := append([]string{"-cf", a.treeTar, "-C", a.goroot}, a.treeDirs...)
		fmt.Fprintf(stderr, "making the tree-* tarball: tar %s\n", strings.Join(args, " "))
		if out, err := exec.Command("tar", args...).CombinedOutput(); err != nil {
			return fmt.Errorf("tar %s: %v\n%s", strings.Join(args, " "), err, out)
		}
	}
	if comp {
		a.moduleDir = filepath.Join(work, "compile-module")
		if err := os.Mkdir(a.moduleDir, 0o755); err != nil {
			return err
		}
		files := map[string]string{
			"go.mod":  "module tmpmountbench/compile\n\ngo 1.22\n",
			"main.go": compileSource(a.modImport),
		}
		for name, text := range files {
			if err := os.WriteFile(filepath.Join(a.moduleDir, name), []byte(text), 0o644); err != nil {
				return err
			}
		}
	}
	return nil
}

const treeName = "tree"

// treeExtract runs tar -xf on the tarball into a fresh directory.
func treeExtract(w *workCtx, dir string) (measure, error) {
	a := w.cfg.assets
	dest := filepath.Join(dir, treeName)
	if err := os.Mkdir(dest, 0o755); err != nil {
		return measure{}, err
	}
	cmd := exec.Command("tar", "-xf", a.treeTar, "-C", dest)
	start := time.Now()
	out, err := cmd.CombinedOutput()
	m := measure{Elapsed: time.Since(start), Ops: int64(a.treeFiles), Bytes: a.treeBytes}
	if err != nil {
		return m, fmt.Errorf("tar -xf %s -C %s: %v\n%s", a.treeTar, dest, err, out)
	}
	if w.cfg.verify {
		if err := compareTrees(a.goroot, dest, a.treeDirs); err != nil {
			return m, fmt.Errorf("extracted tree: %w", err)
		}
	} else if files, _, _, err := treeSize(dest, a.treeDirs); err != nil || files != a.treeFiles {
		return m, fmt.Errorf("extracted tree in %s has %d regular files, the source %d (%v)", dest, files, a.treeFiles, err)
	}
	m.Residency, err = w.residency(filepath.Join(dest, a.treeLargest))
	return m, err
}

// compareTrees checks that every entry of dirs under src is in dst with
// the same type, mode bits, size, content and link target.
func compareTrees(src, dst string, dirs []string) error {
	for _, d := range dirs {
		err := filepath.WalkDir(filepath.Join(src, d), func(path string, e fs.DirEntry, err error) error {
			if err != nil {
				return err
			}
			rel, _ := filepath.Rel(src, path)
			other := filepath.Join(dst, rel)
			si, err := os.Lstat(path)
			if err != nil {
				return err
			}
			di, err := os.Lstat(other)
			if err != nil {
				return err
			}
			if si.Mode() != di.Mode() {
				return fmt.Errorf("%s: mode %v, the source's %v", rel, di.Mode(), si.Mode())
			}
			switch {
			case si.Mode().IsRegular():
				sd, err := os.ReadFile(path)
				if err != nil {
					return err
				}
				dd, err := os.ReadFile(other)
				if err != nil {
					return err
				}
				if !bytes.Equal(sd, dd) {
					return fmt.Errorf("%s: %d bytes differ from the source's %d", rel, len(dd), len(sd))
				}
			case si.Mode()&fs.ModeSymlink != 0:
				st, _ := os.Readlink(path)
				dt, err := os.Readlink(other)
				if err != nil || st != dt {
					return fmt.Errorf("%s: link to %q, the source's to %q (%v)", rel, dt, st, err)
				}
			}
			return nil
		})
		if err != nil {
			return err
		}
	}
	return nil
}

// treeRemove runs rm -rf on what tree-extract extracted.
func treeRemove(w *workCtx, dir string) (measure, error) {
	a := w.cfg.assets
	dest := filepath.Join(dir, treeName)
	if _, err := os.Stat(filepath.Join(dest, a.treeDirs[0])); err != nil {
		return measure{}, fmt.Errorf("nothing to remove (did tree-extract run?): %w", err)
	}
	cmd := exec.Command("rm", "-rf", dest)
	start := time.Now()
	out, err := cmd.CombinedOutput()
	m := measure{Elapsed: time.Since(start), Ops: int64(a.treeFiles)}
	if err != nil {
		return m, fmt.Errorf("rm -rf %s: %v\n%s", dest, err, out)
	}
	if _, err := os.Lstat(dest); !errors.Is(err, os.ErrNotExist) {
		return m, fmt.Errorf("rm -rf %s exited 0 but it is still there (%v)", dest, err)
	}
	return m, nil
}

// compile copies the module in, then times go build with its cache, temp
// dirs and output in the target.
func compile(w *workCtx, dir string) (measure, error) {
	a := w.cfg.assets
	base := filepath.Join(dir, "compile")
	src, cache, tmp := filepath.Join(base, "src"), filepath.Join(base, "gocache"), filepath.Join(base, "tmp")
	for _, d := range []string{base, src, cache, tmp} {
		if err := os.Mkdir(d, 0o755); err != nil {
			return measure{}, err
		}
	}
	for _, name := range []string{"go.mod", "main.go"} {
		data, err := os.ReadFile(filepath.Join(a.moduleDir, name))
		if err != nil {
			return measure{}, err
		}
		if err := os.WriteFile(filepath.Join(src, name), data, 0o644); err != nil {
			return measure{}, err
		}
	}
	out := filepath.Join(base, "out")
	cmd := exec.Command(a.goBin, "build", "-o", out, ".")
	cmd.Dir = src
	// Later entries win: these override the caller's environment.
	cmd.Env = append(os.Environ(),
		"GOCACHE="+cache, "GOTMPDIR="+tmp, "TMPDIR="+tmp, "GOMODCACHE="+filepath.Join(base, "gomodcache"),
		"CGO_ENABLED=0", "GOFLAGS=", "GOTOOLCHAIN=local", "GOPROXY=off", "GOENV=off", "GOWORK=off")
	start := time.Now()
	msg, err := cmd.CombinedOutput()
	m := measure{Elapsed: time.Since(start), Ops: 1}
	if err != nil {
		return m, fmt.Errorf("go build in %s: %v\n%s", src, err, msg)
	}
	if w.cfg.verify {
		got, err := exec.Command(out).CombinedOutput()
		if err != nil || string(got) != compileOutput {
			return m, fmt.Errorf("the compiled program %s printed %q, want %q (%v)", out, got, compileOutput, err)
		}
	}
	if m.Residency, err = w.residency(out); err != nil {
		return m, err
	}
	return m, os.RemoveAll(base)
}

// runTrue times `tmpmount run -- true` with the variant's flags, several
// times, and reports the median.
func runTrue(w *workCtx, dir string) (measure, error) {
	v := w.target.variant
	spill, err := os.MkdirTemp(w.work, w.target.name+"-"+w.label+"-run-spill-")
	if err != nil {
		return measure{}, err
	}
	step := w.cl.push("remove "+spill, func(bool) error { return safeRemoveAll(spill) })
	defer w.cl.run(step, false)
	run := func(command ...string) (time.Duration, string, error) {
		args := append([]string{"run", "--spill-dir", spill}, v.args...)
		args = append(append(args, "--"), command...)
		cmd := exec.Command(v.bin, args...)
		var stdout, stderr bytes.Buffer
		cmd.Stdout, cmd.Stderr = &stdout, &stderr
		// Like the daemons (see startDaemon): its own process group, and
		// SIGTERM (it then unmounts) if the bench dies.
		cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true, Pdeathsig: syscall.SIGTERM}
		start := time.Now()
		err := cmd.Run()
		d := time.Since(start)
		if err != nil {
			return d, "", fmt.Errorf("%s: %v\n%s", strings.Join(cmd.Args, " "), err, stderr.String())
		}
		entries, err := os.ReadDir(spill)
		if err != nil {
			return d, "", err
		}
		if len(entries) > 0 {
			return d, "", fmt.Errorf("%s left %s in its spill dir %s", strings.Join(cmd.Args, " "), entries[0].Name(), spill)
		}
		return d, stdout.String(), nil
	}
	if w.cfg.verify {
		// Untimed: the command does run on a fresh tmpmount mount.
		_, out, err := run("sh", "-c", `echo "$TMPMOUNT_DIR"; echo "$TMPDIR"; cat /proc/self/mountinfo`)
		if err != nil {
			return measure{}, err
		}
		if err := checkRunMount(out); err != nil {
			return measure{}, err
		}
	}
	var times []float64
	for i := 0; i < w.cfg.assets.runTrueRuns; i++ {
		if err := checkInterrupted(); err != nil {
			return measure{}, err
		}
		d, _, err := run("true")
		if err != nil {
			return measure{}, err
		}
		times = append(times, d.Seconds())
	}
	secs := median(times)
	return measure{Elapsed: time.Duration(secs * float64(time.Second)), Ops: int64(len(times))}, nil
}

// checkRunMount checks what `sh -c 'echo $TMPMOUNT_DIR; echo $TMPDIR;
// cat /proc/self/mountinfo'` printed under tmpmount run: TMPDIR is the
// mount point, and a fuse.tmpmount is mounted there.
func checkRunMount(out string) error {
	lines := strings.Split(out, "\n")
	if len(lines) < 3 || lines[0] == "" || lines[0] != lines[1] {
		return fmt.Errorf("under tmpmount run, TMPMOUNT_DIR and TMPDIR are not one directory: %q", lines[:min(2, len(lines))])
	}
	for _, line := range lines[2:] {
		f := strings.Fields(line)
		sep := slices.Index(f, "-")
		if sep >= 6 && len(f) > sep+1 && unescapeMountinfo(f[4]) == lines[0] && f[sep+1] == "fuse.tmpmount" {
			return nil
		}
	}
	return fmt.Errorf("under tmpmount run, no fuse.tmpmount is mounted at TMPMOUNT_DIR %s", lines[0])
}

// rssMount is the fresh mount the rss-* workloads measure.
type rssMount struct {
	in        *instance
	idle, all int64 // VmRSS in bytes: after the mount, and with the files
}

// stopRSSMount unmounts rss-idle's mount, if there is one.
func (w *workCtx) stopRSSMount() error {
	if w.rss == nil {
		return nil
	}
	err := w.rss.in.teardown()
	w.rss = nil
	return err
}

// vmRSS reads a process's resident set size, in bytes.
func vmRSS(pid int) (int64, error) {
	data, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", pid))
	if err != nil {
		return 0, err
	}
	for _, line := range strings.Split(string(data), "\n") {
		if rest, ok := strings.CutPrefix(line, "VmRSS:"); ok {
			f := strings.Fields(rest)
			if len(f) == 2 && f[1] == "kB" {
				n, err := strconv.ParseInt(f[0], 10, 64)
				return n * 1024, err
			}
		}
	}
	return 0, fmt.Errorf("no VmRSS in kB in /proc/%d/status", pid)
}

// rssIdle mounts a fresh instance of the variant (not the one the other
// workloads used) and reads its daemon's VmRSS.
func rssIdle(w *workCtx, dir string) (measure, error) {
	if err := w.stopRSSMount(); err != nil {
		return measure{}, err
	}
	start := time.Now()
	in, err := setup(w.cl, w.work, w.target, w.label+"-rss")
	if err != nil {
		return measure{}, err
	}
	w.rss = &rssMount{in: in}
	if w.rss.idle, err = vmRSS(in.pid); err != nil {
		return measure{}, err
	}
	return measure{Elapsed: time.Since(start), Value: float64(w.rss.idle) / mib}, nil
}

// rss100k creates -rss-files empty files on rss-idle's mount and reads
// the daemon's VmRSS with them there.
func rss100k(w *workCtx, dir string) (measure, error) {
	if w.rss == nil {
		return measure{}, errors.New("no rss mount: rss-idle did not run on this target")
	}
	in := w.rss.in
	sub := filepath.Join(in.dir, "rss")
	if err := os.Mkdir(sub, 0o755); err != nil {
		return measure{}, err
	}
	start := time.Now()
	for i := 0; i < w.cfg.rssFiles; i++ {
		if i%1024 == 0 {
			if err := checkInterrupted(); err != nil {
				return measure{}, err
			}
		}
		if err := writeFile(filepath.Join(sub, fmt.Sprintf("f%06d", i)), nil); err != nil {
			return measure{}, err
		}
	}
	m := measure{Elapsed: time.Since(start), Ops: int64(w.cfg.rssFiles)}
	entries, err := os.ReadDir(sub)
	if err != nil {
		return m, err
	}
	if len(entries) != w.cfg.rssFiles {
		return m, fmt.Errorf("%s holds %d entries after creating %d files", sub, len(entries), w.cfg.rssFiles)
	}
	if w.rss.all, err = vmRSS(in.pid); err != nil {
		return m, err
	}
	m.Value = float64(w.rss.all) / mib
	return m, nil
}

// rssPerFile is (rss-100k − rss-idle) / -rss-files; it unmounts.
func rssPerFile(w *workCtx, dir string) (measure, error) {
	if w.rss == nil || w.rss.all == 0 {
		return measure{}, errors.New("no rss-100k figure on this target")
	}
	m := measure{Ops: int64(w.cfg.rssFiles), Value: float64(w.rss.all-w.rss.idle) / float64(w.cfg.rssFiles)}
	return m, w.stopRSSMount()
}

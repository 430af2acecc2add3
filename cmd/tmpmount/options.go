package main

import (
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"os/user"
	"strconv"
	"strings"

	"golang.org/x/sys/unix"

	"github.com/tmpmount/tmpmount/fsnode"
	"github.com/tmpmount/tmpmount/policy"
)

// options is everything the command line says.
type options struct {
	maxSize       sizeFlag
	memLimit      sizeFlag
	size          sizeFlag
	inodes        int64
	spillDir      string
	deleteDef     policyFlag
	rules         rulesFlag
	keepDir       string
	events        string
	mode          uint32
	uid, gid      uint32
	allowOther    bool
	noPassthrough bool
	noACL         bool
	noURing       bool
	readOnly      bool
	noExec        bool
	dev, suid     bool
	atime         atimeFlag
	noDiratime    bool
	debug         bool
	version       bool
	mountpoint    string
	source        string // shown as the mount's source (mount(8)'s SRC)

	// The mount(8) calling convention (options given with -o): tmpmount
	// goes to the background once mounted and logs to syslog or logFile,
	// unless foreground.
	viaMount   bool
	foreground bool
	logFile    string
	profileDir string

	command []string // tmpmount run: the command to run
}

const defaultMaxSize = 8 << 20

// defaultSource is the mount's source when none is given.
const defaultSource = "tmpmount"

const usageHead = `Usage:
  tmpmount [flags] MOUNTPOINT             mount, and serve until unmounted
  tmpmount run [flags] -- CMD [ARGS...]   run CMD with TMPDIR on a fresh mount
  tmpmount stat [--json] PATH             residency and policy of a file, or totals of a mount
  tmpmount help [run|stat]                this help, or a command's
  mount -t fuse.tmpmount SRC MOUNTPOINT -o max_size=8M,...

A file's data stays in RAM until the file grows past --max-size, then
moves to a nameless file in a private directory inside --spill-dir.
tmpmount serves until unmounted (umount, fusermount3 -u) or sent SIGINT,
SIGTERM or SIGHUP. Every flag is also a -o option (max_size=8M or max-size=8M).

Flags:
`

const usageTail = `
Exit status: 0 once unmounted; 1 if keep files could not be saved or
serving failed; 2 for a bad command line or setup (nothing mounted).
More in tmpmount(1): man tmpmount.
`

const runUsageHead = `Usage:
  tmpmount run [flags] [--] CMD [ARGS...]

Makes a private mount point, mounts it, and runs CMD with TMPDIR, TMP and
TEMP (and TMPMOUNT_DIR) pointing there, passing on SIGINT, SIGTERM and
SIGHUP. When CMD exits it saves keep files, unmounts, removes the mount
point, and exits with CMD's status (128+N if signal N killed it); with 125
if tmpmount run itself failed, 126 if CMD could not be run, 127 if CMD was
not found.

Flags (as for tmpmount MOUNTPOINT):
`

const runUsageTail = `
More in tmpmount(1): man tmpmount.
`

// newFlagSet declares the flags into o: the one place a flag is added.
func newFlagSet(o *options) *flag.FlagSet {
	fs := flag.NewFlagSet("tmpmount", flag.ContinueOnError)
	fs.SetOutput(io.Discard)
	o.maxSize.bytes = defaultMaxSize
	o.mode = 0o1777
	o.uid, o.gid = uint32(os.Getuid()), uint32(os.Getgid())
	o.source = defaultSource
	fs.Var(&o.maxSize, "max-size", "per-file RAM threshold: a file larger than `SIZE` rolls over to disk; 0 = never by size (default 8M)")
	o.memLimit.bytes = defaultMemLimit()
	o.memLimit.percentOK = true
	fs.Var(&o.memLimit, "mem-limit", "RAM for the data of all files together (`SIZE`, or N% of RAM); past it, files roll over to disk to make room; 0 = no budget (default: a quarter of physical RAM, here "+formatSize(o.memLimit.bytes)+")")
	o.size.percentOK = true
	fs.Var(&o.size, "size", "capacity, RAM plus disk (`SIZE`, or N% of RAM), as tmpfs's size=; past it writes fail with ENOSPC (default: none, bounded by the spill disk)")
	fs.Int64Var(&o.inodes, "inodes", 0, "at most `N` files, directories, links and other nodes, as tmpfs's nr_inodes= (default 0: no limit)")
	fs.StringVar(&o.spillDir, "spill-dir", "", "`DIR` in which to make the private spill directory (default $TMPDIR, else /var/tmp; never inside the mount; one on tmpfs is passed over for /var/tmp)")
	o.deleteDef.p = policy.Unmount
	fs.Var(&o.deleteDef, "delete", "default delete `POLICY`: close (when the last handle is released), unmount (when the mount ends; the default) or keep (saved to --keep-dir at each last close of a writer)")
	fs.Var(&o.rules, "rule", "`GLOB=POLICY` for files whose path (relative to the mount root) matches GLOB; * stays within a name, ** spans directories; repeatable, first match wins")
	fs.StringVar(&o.keepDir, "keep-dir", "", "`DIR` where keep files are saved, at each last close of a writer and at unmount; required when a keep policy is in force")
	fs.StringVar(&o.events, "events", "", "append one JSON line per create, rollover, delete and keep to `FILE` (outside the mount)")
	fs.Var(octalFlag{&o.mode}, "mode", "permission bits of the root directory, in octal (`MODE`), as tmpfs's mode= (default 1777)")
	fs.Var(idFlag{&o.uid, lookupUser, "user"}, "uid", "owner of the root directory: a `USER` name or number (default: you)")
	fs.Var(idFlag{&o.gid, lookupGroup, "group"}, "gid", "group of the root directory: a `GROUP` name or number (default: yours)")
	fs.BoolVar(&o.allowOther, "allow-other", false, "let other users use the mount (needs root, or user_allow_other in /etc/fuse.conf)")
	fs.BoolVar(&o.noPassthrough, "no-passthrough", false, "serve rolled-over files through the daemon, never by FUSE passthrough (used as root on Linux 6.9+)")
	fs.BoolVar(&o.noACL, "no-acl", false, "offer no POSIX ACLs (as ext4's noacl): spares users who do not own the mount's root directory a round trip to the daemon at every path lookup through it")
	fs.BoolVar(&o.noURing, "no-uring", false, "serve every request through /dev/fuse, even where the kernel offers FUSE over io_uring (enable_uring=Y)")
	fs.BoolVar(&o.readOnly, "read-only", false, "mount read-only (-o ro): an empty filesystem that nothing can write")
	fs.BoolVar(&o.noExec, "no-exec", false, "forbid running programs from the mount (-o noexec)")
	fs.BoolVar(&o.dev, "dev", false, "let device files made with mknod work (-o allow_dev; root only; default nodev)")
	fs.BoolVar(&o.suid, "suid", false, "honour set-user-ID and set-group-ID bits (-o allow_suid; root only; default nosuid)")
	fs.Var(&o.atime, "atime", "when reads update atime: relatime (when atime is not after mtime or ctime, or a day old; the default), strictatime (every read) or noatime (never), as tmpfs's mount options (-o noatime, ...); reads from the page cache never do (`MODE`)")
	fs.BoolVar(&o.noDiratime, "no-diratime", false, "never update directories' atime (-o nodiratime)")
	fs.BoolVar(&o.foreground, "foreground", false, "with -o options (the mount(8) way), stay in the foreground instead of going to the background once mounted")
	fs.StringVar(&o.logFile, "log", "", "append log lines to `FILE` instead of stderr (in the background: instead of syslog); outside the mount")
	fs.BoolVar(&o.debug, "debug", false, "log every FUSE request to stderr")
	fs.StringVar(&o.profileDir, "profile", "", "write pprof profiles of the daemon to `DIR`: cpu.pprof for the whole mount, allocs.pprof at unmount, heap.pprof at each SIGUSR1")
	fs.BoolVar(&o.version, "version", false, "print the version and exit")
	return fs
}

// runRejects are the flags tmpmount run does not take, and why.
var runRejects = map[string]string{
	"foreground": "is for the mount(8) form (-o options); tmpmount run always stays in the foreground",
}

// printFlags lists the flags as the README writes them (--name VALUE),
// each usage line saying its own default; rejected flags are left out.
func printFlags(w io.Writer, fs *flag.FlagSet, rejected map[string]string) {
	fs.VisitAll(func(f *flag.Flag) {
		if _, ok := rejected[f.Name]; ok {
			return
		}
		name, usage := flag.UnquoteUsage(f)
		if name != "" {
			name = " " + name
		}
		fmt.Fprintf(w, "  --%s%s\n    \t%s\n", f.Name, name, strings.ReplaceAll(usage, "\n", "\n    \t"))
	})
	fmt.Fprintf(w, "  -h, --help\n    \tprint this help and exit\n")
}

// printMountHelp prints tmpmount's help (tmpmount --help, tmpmount help).
func printMountHelp(w io.Writer) {
	io.WriteString(w, usageHead)
	printFlags(w, newFlagSet(&options{}), nil)
	io.WriteString(w, "\nSIZE is "+sizeHelp+".\n")
	io.WriteString(w, usageTail)
}

// printRunHelp prints tmpmount run's help.
func printRunHelp(w io.Writer) {
	io.WriteString(w, runUsageHead)
	printFlags(w, newFlagSet(&options{}), runRejects)
	io.WriteString(w, runUsageTail)
}

// parseArgs reads the command line of a mount. Flags may come before or
// after the mount point, and as -o options; with -o, the mount(8) form
// "SOURCE MOUNTPOINT" is accepted too, and SOURCE is shown as the mount's
// source. Errors are one line; -h gives errHelp after
// printing the help to stdout.
func parseArgs(args []string, stdout io.Writer) (*options, error) {
	o := &options{}
	cl := commandLine{name: "tmpmount", fs: newFlagSet(o), interleaved: true, mountOptions: true}
	p, err := cl.parse(args)
	if errors.Is(err, errHelp) {
		printMountHelp(stdout)
		return nil, err
	}
	if err != nil || o.version {
		return o, err
	}
	o.viaMount = p.viaMount
	positional := p.positional
	if o.viaMount && len(positional) == 2 {
		o.source, positional = positional[0], positional[1:]
	}
	switch len(positional) {
	case 0:
		return nil, cl.usageError("missing MOUNTPOINT: tmpmount [flags] MOUNTPOINT")
	case 1:
		o.mountpoint = positional[0]
	default:
		return nil, cl.usageError("one MOUNTPOINT expected, got %q", positional)
	}
	return o, checkOptions(o, cl)
}

// parseRunArgs reads `tmpmount run [flags] [--] CMD [ARGS...]`: the flags
// end at the first argument that is not one, or at "--".
func parseRunArgs(args []string, stdout io.Writer) (*options, error) {
	o := &options{}
	cl := commandLine{name: "tmpmount run", fs: newFlagSet(o), rejected: runRejects}
	p, err := cl.parse(args)
	if errors.Is(err, errHelp) {
		printRunHelp(stdout)
		return nil, err
	}
	if err != nil || o.version {
		return o, err
	}
	if len(p.positional) == 0 {
		return nil, cl.usageError("missing the command to run: tmpmount run [flags] -- CMD [ARGS...]")
	}
	o.command = p.positional
	return o, checkOptions(o, cl)
}

// checkOptions checks what the flags say together.
func checkOptions(o *options, cl commandLine) error {
	if o.inodes < 0 {
		return cl.usageError("--inodes %d: give a number of nodes, or 0 for no limit", o.inodes)
	}
	if (o.dev || o.suid) && os.Geteuid() != 0 {
		return cl.usageError("--dev and --suid (-o allow_dev, allow_suid) need root: fusermount3 mounts every user's mount nodev,nosuid")
	}
	return nil
}

// defaultMemLimit is a quarter of physical RAM, as tmpfs's default size is
// half of it: the daemon should not be what makes a machine swap.
func defaultMemLimit() int64 {
	var si unix.Sysinfo_t
	if err := unix.Sysinfo(&si); err != nil {
		return 1 << 30
	}
	return int64(si.Totalram) * int64(si.Unit) / 4
}

// policyFlag is a delete policy.
type policyFlag struct{ p policy.Policy }

func (f *policyFlag) String() string {
	if f == nil {
		return ""
	}
	return f.p.String()
}

func (f *policyFlag) Set(s string) error {
	p, err := policy.Parse(s)
	f.p = p
	return err
}

// rulesFlag collects --rule flags in order.
type rulesFlag struct{ rules []policy.Rule }

func (f *rulesFlag) String() string {
	if f == nil {
		return ""
	}
	var parts []string
	for _, r := range f.rules {
		parts = append(parts, r.String())
	}
	return strings.Join(parts, " ")
}

func (f *rulesFlag) Set(s string) error {
	r, err := policy.ParseRule(s)
	if err != nil {
		return err
	}
	f.rules = append(f.rules, r)
	return nil
}

// atimeSettings are --atime and --no-diratime.
func (o *options) atimeSettings() fsnode.Atime {
	return fsnode.Atime{Mode: o.atime.m, NoDiratime: o.noDiratime}
}

// atimeFlag is an fsnode.AtimeMode.
type atimeFlag struct{ m fsnode.AtimeMode }

func (f *atimeFlag) String() string {
	if f == nil {
		return ""
	}
	return f.m.String()
}

func (f *atimeFlag) Set(s string) error {
	m, err := fsnode.ParseAtimeMode(s)
	f.m = m
	return err
}

// octalFlag is a mode in octal.
type octalFlag struct{ v *uint32 }

func (f octalFlag) String() string {
	if f.v == nil {
		return ""
	}
	return fmt.Sprintf("%04o", *f.v)
}

func (f octalFlag) Set(s string) error {
	v, err := strconv.ParseUint(s, 8, 32)
	if err != nil || v > 0o7777 {
		return fmt.Errorf("invalid mode %q: give octal permission bits such as 1777 or 0700", s)
	}
	*f.v = uint32(v)
	return nil
}

// idFlag is a user or group id, given as a number or a name.
type idFlag struct {
	v      *uint32
	lookup func(string) (string, error)
	kind   string // "user" or "group": for messages
}

func (f idFlag) String() string {
	if f.v == nil {
		return ""
	}
	return strconv.FormatUint(uint64(*f.v), 10)
}

func (f idFlag) Set(s string) error {
	text := s
	if strings.TrimLeft(s, "0123456789") != "" {
		id, err := f.lookup(s)
		if err != nil {
			return fmt.Errorf("unknown %s %q: give a %s name or number", f.kind, s, f.kind)
		}
		text = id
	}
	v, err := strconv.ParseUint(text, 10, 32)
	if err != nil || v == 1<<32-1 {
		return fmt.Errorf("invalid %s id %q: give a number below 4294967295", f.kind, s)
	}
	*f.v = uint32(v)
	return nil
}

func lookupUser(name string) (string, error) {
	u, err := user.Lookup(name)
	if err != nil {
		return "", err
	}
	return u.Uid, nil
}

func lookupGroup(name string) (string, error) {
	g, err := user.LookupGroup(name)
	if err != nil {
		return "", err
	}
	return g.Gid, nil
}

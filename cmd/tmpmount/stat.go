package main

import (
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"log"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/dustin/go-humanize"
	"golang.org/x/sys/unix"

	"github.com/tmpmount/tmpmount/fsnode"
)

const statUsage = `Usage:
  tmpmount stat [--json] PATH

For a file (a symlink is followed): its size, where its data is (RAM or
disk) and its delete policy. For a directory: the totals and limits of the
tmpmount mount it is on. It reads the xattr user.tmpmount.stats through
the mount.

Flags:
`

// printStatHelp prints tmpmount stat's help.
func printStatHelp(w io.Writer) {
	io.WriteString(w, statUsage)
	var asJSON bool
	printFlags(w, statFlagSet(&asJSON), nil)
}

func statFlagSet(asJSON *bool) *flag.FlagSet {
	fs := flag.NewFlagSet("tmpmount stat", flag.ContinueOnError)
	fs.SetOutput(io.Discard)
	fs.BoolVar(asJSON, "json", false, "print the stats as the JSON object the xattr holds, for scripts")
	return fs
}

// statCommand is `tmpmount stat [--json] PATH`: for a file, its size,
// where its data lives and its delete policy; for a directory, the totals
// of the mount it is on. It reads the read-only user.tmpmount.stats xattr
// through the mount itself.
func statCommand(args []string, stdout io.Writer, logger *log.Logger) int {
	var asJSON bool
	cl := commandLine{name: "tmpmount stat", fs: statFlagSet(&asJSON), interleaved: true}
	p, err := cl.parse(args)
	switch {
	case errors.Is(err, errHelp):
		printStatHelp(stdout)
		return exitOK
	case err != nil:
		logger.Print(err)
		return exitUsage
	case len(p.positional) != 1:
		logger.Print(cl.usageError("give one PATH: tmpmount stat [--json] PATH"))
		return exitUsage
	}
	path := p.positional[0]
	var st unix.Stat_t
	if err := unix.Stat(path, &st); err != nil {
		logger.Printf("stat %s: %s", path, explainStatError(path, err))
		return exitFailure
	}
	isDir := st.Mode&unix.S_IFMT == unix.S_IFDIR
	target := path
	if isDir {
		root, err := mountRootOf(path)
		if err != nil {
			logger.Printf("stat %s: %s", path, explainStatError(path, err))
			return exitFailure
		}
		target = root
	} else if st.Mode&unix.S_IFMT != unix.S_IFREG {
		logger.Printf("stat %s: not a regular file or a directory: tmpmount stat shows files and mounts", path)
		return exitFailure
	}
	data, err := getXattr(target, "user.tmpmount.stats")
	if err != nil {
		logger.Printf("stat %s: %s", path, explainStatError(path, err))
		return exitFailure
	}
	if asJSON {
		fmt.Fprintln(stdout, string(data))
		return exitOK
	}
	if isDir {
		var ms fsnode.MountStats
		if err := json.Unmarshal(data, &ms); err != nil {
			logger.Printf("stat %s: %v", path, err)
			return exitFailure
		}
		printMountStats(stdout, target, ms)
		return exitOK
	}
	var fstats fsnode.FileStats
	if err := json.Unmarshal(data, &fstats); err != nil {
		logger.Printf("stat %s: %v", path, err)
		return exitFailure
	}
	printFileStats(stdout, path, fstats)
	return exitOK
}

// explainStatError says why tmpmount stat could not read path: not on a
// tmpmount mount, another user's mount, or the system's error.
func explainStatError(path string, err error) string {
	abs, rerr := resolvePath(path)
	if rerr != nil {
		return err.Error()
	}
	m, _ := mountHolding(abs)
	if m.fstype != "fuse.tmpmount" {
		if errors.Is(err, os.ErrNotExist) || errors.Is(err, unix.ENOENT) {
			return err.Error()
		}
		fstype := m.fstype
		if fstype == "" {
			fstype = "unknown"
		}
		return fmt.Sprintf("not on a tmpmount mount (it is on %s, mounted at %s): give a path inside one", fstype, m.point)
	}
	if errors.Is(err, unix.EACCES) && !strings.Contains(","+m.super+",", ",allow_other,") {
		return fmt.Sprintf("permission denied: the tmpmount at %s was mounted without --allow-other, so only the user who mounted it can look inside, root included; "+
			"mount it with --allow-other to let others in", m.point)
	}
	return err.Error()
}

func printFileStats(w io.Writer, path string, s fsnode.FileStats) {
	where := "in RAM"
	if s.Residency == "disk" {
		where = "on disk (rolled over)"
		if s.Passthrough {
			where += ", served by passthrough"
		}
	}
	fmt.Fprintf(w, "%s\n", path)
	fmt.Fprintf(w, "  size:    %s (%s held)\n", humanize.IBytes(uint64(s.Size)), humanize.IBytes(uint64(s.Blocks)*512))
	fmt.Fprintf(w, "  data:    %s\n", where)
	fmt.Fprintf(w, "  policy:  %s (from %s)\n", s.Policy, describeSource(s.PolicySource))
	fmt.Fprintf(w, "  opens:   %d\n", s.Opens)
}

func describeSource(src string) string {
	switch src {
	case "xattr":
		return "its user.tmpmount.delete xattr"
	case "rule":
		return "a --rule"
	case "inherited":
		return "a directory's user.tmpmount.delete"
	}
	return "the --delete default"
}

func printMountStats(w io.Writer, root string, s fsnode.MountStats) {
	limit := func(n int64) string {
		if n == 0 {
			return "none"
		}
		return humanize.IBytes(uint64(n))
	}
	inodes := "none"
	if s.MaxInodes > 0 {
		inodes = fmt.Sprint(s.MaxInodes)
	}
	fmt.Fprintf(w, "%s (tmpmount)\n", root)
	fmt.Fprintf(w, "  files:      %d (%d on disk), %d inodes in use\n", s.Files, s.DiskFiles, s.Inodes)
	fmt.Fprintf(w, "  data:       %s in RAM, %s on disk, %s of names, xattrs and symlinks\n",
		humanize.IBytes(uint64(s.RAMBytes)), humanize.IBytes(uint64(s.DiskBytes)), humanize.IBytes(uint64(s.MetaBytes)))
	fmt.Fprintf(w, "  limits:     max-size %s, mem-limit %s, size %s, inodes %s\n", limit(s.MaxSize), limit(s.MemLimit), describeSize(s.SizeLimit, s.SpillReserve), inodes)
	fmt.Fprintf(w, "  rollovers:  %d\n", s.Rollovers)
	fmt.Fprintf(w, "  deletes:    %d on close, %d by unlink, %d at unmount\n", s.Deletes.Close, s.Deletes.Unlink, s.Deletes.Unmount)
	policy := "delete " + s.DefaultPolicy
	if len(s.Rules) > 0 {
		policy += ", rules " + strings.Join(s.Rules, " ")
	}
	fmt.Fprintf(w, "  policy:     %s\n", policy)
	fmt.Fprintf(w, "  spill dir:  %s (passthrough %s)\n", s.SpillDir, s.Passthrough)
	if s.KeepDir != "" {
		fmt.Fprintf(w, "  keep dir:   %s\n", s.KeepDir)
	}
	fmt.Fprintf(w, "  transport:  %s\n", s.Requests.Transport)
	fmt.Fprintf(w, "  requests:   %s\n", describeRequests(s.Requests))
	fmt.Fprintf(w, "  uptime:     %s\n", time.Duration(s.UptimeSeconds*float64(time.Second)).Round(time.Second))
}

// mountRootOf finds the root of the tmpmount mount that holds path: the
// longest fuse.tmpmount mount point in the mount table above it.
func mountRootOf(path string) (string, error) {
	abs, err := resolvePath(path)
	if err != nil {
		return "", err
	}
	points, err := mountsOfType("fuse.tmpmount")
	if err != nil {
		return "", err
	}
	best := ""
	for _, p := range points {
		if within(abs, p) && len(p) > len(best) {
			best = p
		}
	}
	if best == "" {
		return "", fmt.Errorf("not on a tmpmount mount")
	}
	return filepath.Clean(best), nil
}

func getXattr(path, name string) ([]byte, error) {
	buf := make([]byte, 4096)
	for {
		n, err := unix.Getxattr(path, name, buf)
		if errors.Is(err, unix.ERANGE) {
			buf = make([]byte, 2*len(buf))
			continue
		}
		if err != nil {
			return nil, err
		}
		return buf[:n], nil
	}
}

// describeRequests counts requests by transport: per io_uring queue, and
// /dev/fuse's (FORGETs apart: they never come on a ring).
func describeRequests(r fsnode.TransportStats) string {
	var parts []string
	if len(r.Ring) > 0 {
		var total uint64
		per := make([]string, len(r.Ring))
		for i, n := range r.Ring {
			total += n
			per[i] = fmt.Sprint(n)
		}
		parts = append(parts, fmt.Sprintf("%d on io_uring (per queue %s)", total, strings.Join(per, " ")))
	}
	parts = append(parts, fmt.Sprintf("%d on /dev/fuse, %d forgets", r.DevFuse, r.Forgets))
	return strings.Join(parts, ", ")
}

package main

import (
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"log"
	"path/filepath"
	"strings"
	"time"

	"github.com/dustin/go-humanize"
	"golang.org/x/sys/unix"

	"github.com/tmpmount/tmpmount/fsnode"
)

// statCommand is `tmpmount stat [--json] PATH`: for a file, its size,
// where its data lives and its delete policy; for a directory, the totals
// of the mount it is on. It reads the read-only user.tmpmount.stats xattr
// through the mount itself.
func statCommand(args []string, stdout io.Writer, logger *log.Logger) int {
	fs := flag.NewFlagSet("tmpmount stat", flag.ContinueOnError)
	fs.SetOutput(io.Discard)
	asJSON := fs.Bool("json", false, "print JSON")
	if err := fs.Parse(args); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			fmt.Fprintln(stdout, "Usage: tmpmount stat [--json] PATH\n\nFor a file: its size, residency (memory or disk) and delete policy.\nFor a directory: the totals and limits of the tmpmount mount it is on.")
			return exitOK
		}
		logger.Printf("stat: %v (usage: tmpmount stat [--json] PATH)", err)
		return exitUsage
	}
	if fs.NArg() != 1 {
		logger.Print("stat: give one PATH (usage: tmpmount stat [--json] PATH)")
		return exitUsage
	}
	path := fs.Arg(0)
	var st unix.Stat_t
	if err := unix.Lstat(path, &st); err != nil {
		logger.Printf("stat %s: %v", path, err)
		return exitFailure
	}
	target := path
	if st.Mode&unix.S_IFMT == unix.S_IFDIR {
		root, err := mountRootOf(path)
		if err != nil {
			logger.Printf("stat %s: %v", path, err)
			return exitFailure
		}
		target = root
	} else if st.Mode&unix.S_IFMT != unix.S_IFREG {
		logger.Printf("stat %s: not a regular file or a directory", path)
		return exitFailure
	}
	data, err := getXattr(target, "user.tmpmount.stats")
	if err != nil {
		logger.Printf("stat %s: not on a tmpmount mount (%v)", path, err)
		return exitFailure
	}
	if *asJSON {
		fmt.Fprintln(stdout, string(data))
		return exitOK
	}
	if target != path || st.Mode&unix.S_IFMT == unix.S_IFDIR {
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

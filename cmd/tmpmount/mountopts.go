package main

import (
	"fmt"
	"strings"
)

// The mount(8) calling convention: `mount -t fuse.tmpmount SRC /mnt/t
// -o max_size=8M,mode=1777` (and an /etc/fstab line) makes mount.fuse run
// `tmpmount SRC /mnt/t -o OPTIONS`. Every long flag is also a -o option,
// with dashes or underscores; tmpfs's spellings (size=, nr_inodes=, mode=,
// uid=, gid=, ro, rw, noexec, exec, nodev, nosuid) mean what they mean
// there; options that mount(8) and fstab use for themselves are ignored.
// SRC is shown as the mount's source, as tmpfs shows its own.
//
// mount.fuse adds dev,suid to every helper's options unless they say
// nodev,nosuid, so an explicit -o dev cannot be told from its default.
// A scratch mount stays nodev,nosuid (the choice, and fusermount3's
// for users): -o dev and -o suid are ignored, and root opts in with
// -o allow_dev, -o allow_suid (the --dev, --suid flags).

// mountOptionFlags maps -o names (underscores already turned to dashes)
// to the flag they set where the names differ: value, if not "", is the
// value the option stands for (ro is --read-only=true).
var mountOptionFlags = map[string]struct{ flag, value string }{
	"nr-inodes":  {"inodes", ""},
	"ro":         {"read-only", "true"},
	"rw":         {"read-only", "false"},
	"noexec":     {"no-exec", "true"},
	"exec":       {"no-exec", "false"},
	"allow-dev":  {"dev", "true"},
	"nodev":      {"dev", "false"},
	"allow-suid": {"suid", "true"},
	"nosuid":     {"suid", "false"},
	// atime, as tmpfs; as with mount(8), the last of relatime,
	// strictatime, noatime and atime wins.
	"relatime":      {"atime", "relatime"},
	"strictatime":   {"atime", "strictatime"},
	"noatime":       {"atime", "noatime"},
	"atime":         {"atime", "relatime"},
	"norelatime":    {"atime", "strictatime"},
	"nostrictatime": {"atime", "relatime"},
	"nodiratime":    {"no-diratime", "true"},
	"diratime":      {"no-diratime", "false"},
}

// ignoredMountOptions are mount(8) and fstab options that say nothing to
// tmpmount: default_permissions is always on, lazytime changes nothing for
// data that is never written back, and dev, suid are mount.fuse's defaults
// (see above).
var ignoredMountOptions = map[string]bool{
	"defaults": true, "auto": true, "noauto": true, "user": true, "users": true,
	"nouser": true, "owner": true, "group": true, "-netdev": true, "nofail": true,
	"async": true, "sync": true, "default-permissions": true, "lazytime": true,
	"nolazytime": true, "comment": true, "dev": true, "suid": true,
}

// mountOption is what one -o option means.
type mountOption struct {
	typed    string // the option's name as typed (max_size)
	flag     string // the flag it sets (max-size)
	value    string
	hasValue bool
	ignored  bool // mount(8)'s own, or for another program: nothing to set
}

// parseMountOption reads one -o option ("max_size=8M", "ro"). It does not
// check that the flag exists.
func parseMountOption(opt string) (mountOption, error) {
	typed, value, hasValue := strings.Cut(opt, "=")
	m := mountOption{typed: typed, flag: strings.ReplaceAll(typed, "_", "-"), value: value, hasValue: hasValue}
	if ignoredMountOption(m.flag) {
		m.ignored = true
		return m, nil
	}
	if alias, ok := mountOptionFlags[m.flag]; ok {
		m.flag = alias.flag
		if alias.value != "" {
			if hasValue {
				return m, fmt.Errorf("-o %s takes no value", opt)
			}
			m.value, m.hasValue = alias.value, true
		}
	}
	return m, nil
}

// mountOptionFlag turns one -o option into the flag it sets
// ("--max-size=8M"), or reports that it is to be ignored.
func mountOptionFlag(opt string) (string, bool) {
	m, err := parseMountOption(opt)
	switch {
	case m.ignored:
		return "", false
	case err != nil || !m.hasValue:
		return "--" + m.flag, true
	}
	return "--" + m.flag + "=" + m.value, true
}

// ignoredMountOption reports whether the -o option name (dashed) is one
// to ignore: mount(8)'s own, or an x-* option for other programs.
func ignoredMountOption(name string) bool {
	return strings.HasPrefix(name, "x-") || ignoredMountOptions[name]
}

package main

import (
	"fmt"
	"strings"
)

// The mount(8) calling convention: `mount -t fuse.tmpmount tmpmount /mnt/t
// -o max_size=8M,mode=1777` (and an /etc/fstab line) makes mount.fuse run
// `tmpmount tmpmount /mnt/t -o OPTIONS`. Every long flag is also a -o
// option, with dashes or underscores; tmpfs's spellings (size=,
// nr_inodes=, mode=, uid=, gid=) mean what they mean there; options that
// mount(8) and fstab use for themselves are ignored; ro and noexec become
// mount flags.

// mountOptionAliases maps -o names (underscores already turned to dashes)
// to flag names where they differ.
var mountOptionAliases = map[string]string{
	"nr-inodes": "inodes",
}

// ignoredMountOptions are mount(8) and fstab options that say nothing to
// tmpmount: FUSE mounts are always nosuid and nodev, default_permissions
// is always on, and atime policy is the daemon's.
var ignoredMountOptions = map[string]bool{
	"rw": true, "defaults": true, "auto": true, "noauto": true, "user": true, "users": true,
	"nouser": true, "owner": true, "group": true, "_netdev": true, "nofail": true, "nosuid": true,
	"nodev": true, "suid": true, "dev": true, "exec": true, "async": true, "sync": true,
	"default-permissions": true, "relatime": true, "noatime": true, "strictatime": true,
	"atime": true, "nodiratime": true, "diratime": true, "lazytime": true,
}

// expandMountOptions turns every "-o a,b=c" (also "-oa,b=c") in args into
// flags ("--a", "--b=c"). It reports whether there was any -o, which means
// tmpmount was started by mount(8) or in its style.
func expandMountOptions(args []string) (out []string, viaMount bool, err error) {
	for i := 0; i < len(args); i++ {
		a := args[i]
		var list string
		switch {
		case a == "-o":
			if i+1 >= len(args) {
				return nil, false, fmt.Errorf("-o needs a list of options")
			}
			i++
			list = args[i]
		case strings.HasPrefix(a, "-o") && !strings.HasPrefix(a, "--"):
			list = a[2:]
		case a == "--":
			return append(out, args[i:]...), viaMount, nil
		default:
			out = append(out, a)
			continue
		}
		viaMount = true
		for _, opt := range strings.Split(list, ",") {
			if opt == "" {
				continue
			}
			flag, ok := mountOptionFlag(opt)
			if ok {
				out = append(out, flag)
			}
		}
	}
	return out, viaMount, nil
}

// mountOptionFlag turns one -o option into a flag, or reports that it is
// to be ignored.
func mountOptionFlag(opt string) (string, bool) {
	name, value, hasValue := strings.Cut(opt, "=")
	name = strings.ReplaceAll(name, "_", "-")
	if strings.HasPrefix(name, "x-") || name == "comment" || ignoredMountOptions[name] {
		return "", false
	}
	if alias, ok := mountOptionAliases[name]; ok {
		name = alias
	}
	switch name {
	case "ro":
		name = "read-only"
	case "noexec":
		name = "no-exec"
	}
	if hasValue {
		return "--" + name + "=" + value, true
	}
	return "--" + name, true
}

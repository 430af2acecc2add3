package main

import (
	"bytes"
	"errors"
	"os"
	"slices"
	"strings"
	"testing"
)

// TestParseArgs checks what the mount command line sets, in every form
// GNU-style parsing and mount(8) give it.
func TestParseArgs(t *testing.T) {
	tests := []struct {
		name  string
		args  []string
		check func(o *options) bool
	}{
		{"--name value", []string{"--max-size", "1M", "mp"}, func(o *options) bool { return o.maxSize.bytes == 1<<20 }},
		{"--name=value", []string{"--max-size=1M", "mp"}, func(o *options) bool { return o.maxSize.bytes == 1<<20 }},
		{"-name value (Go style)", []string{"-max-size", "1M", "mp"}, func(o *options) bool { return o.maxSize.bytes == 1<<20 }},
		{"flags after the mount point", []string{"mp", "--allow-other"}, func(o *options) bool { return o.allowOther && o.mountpoint == "mp" }},
		{"--bool=false", []string{"--allow-other=false", "mp"}, func(o *options) bool { return !o.allowOther }},
		{"-- ends flags", []string{"--", "--odd-name"}, func(o *options) bool { return o.mountpoint == "--odd-name" }},
		{"-o underscores", []string{"-o", "max_size=64k,mem_limit=1M", "mp"}, func(o *options) bool {
			return o.maxSize.bytes == 64<<10 && o.memLimit.bytes == 1<<20 && o.viaMount
		}},
		{"-oLIST", []string{"-omax-size=64k", "mp"}, func(o *options) bool { return o.maxSize.bytes == 64<<10 }},
		{"-o tmpfs spellings", []string{"src", "mp", "-o", "size=1M,nr_inodes=7,mode=0700,ro,noexec"}, func(o *options) bool {
			return o.size.bytes == 1<<20 && o.inodes == 7 && o.mode == 0o700 && o.readOnly && o.noExec && o.source == "src" && o.mountpoint == "mp"
		}},
		{"-o rw after ro", []string{"-o", "ro,rw", "mp"}, func(o *options) bool { return !o.readOnly }},
		{"-o allow_dev,allow_suid", []string{"-o", "allow_dev,allow_suid", "mp"}, func(o *options) bool { return o.dev && o.suid }},
		{"-o dev,suid: mount.fuse's defaults", []string{"-o", "dev,suid", "mp"}, func(o *options) bool { return !o.dev && !o.suid }},
		{"-o nodev,nosuid", []string{"-o", "allow_dev,allow_suid,nodev,nosuid", "mp"}, func(o *options) bool { return !o.dev && !o.suid }},
		{"-o mount(8)'s own, ignored", []string{"-o", "defaults,noauto,nofail,_netdev,x-systemd.requires=a,comment=b,rw,default_permissions", "mp"}, func(o *options) bool {
			return o.mountpoint == "mp"
		}},
		{"source defaults to tmpmount", []string{"mp"}, func(o *options) bool { return o.source == "tmpmount" }},
		{"--mem-limit 0", []string{"--mem-limit", "0", "mp"}, func(o *options) bool { return o.memLimit.bytes == 0 }},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			if tc.name == "-o allow_dev,allow_suid" && !isRoot() {
				t.Skip("--dev needs root")
			}
			o, err := parseArgs(tc.args, &bytes.Buffer{})
			if err != nil {
				t.Fatalf("parseArgs(%q): %v", tc.args, err)
			}
			if !tc.check(o) {
				t.Errorf("parseArgs(%q) = %+v: not what the arguments say", tc.args, *o)
			}
		})
	}
}

// TestParseArgsErrors checks the one-line errors: GNU spelling, the
// closest flag, -o options as typed, and where the help is.
func TestParseArgsErrors(t *testing.T) {
	tests := []struct {
		args []string
		want string // the whole message
	}{
		{[]string{"--max-sise", "8M", "mp"}, "unknown flag --max-sise: did you mean --max-size? (see tmpmount --help)"},
		{[]string{"-max-sise", "8M", "mp"}, "unknown flag --max-sise: did you mean --max-size? (see tmpmount --help)"},
		{[]string{"--maxsize=8M", "mp"}, "unknown flag --maxsize: did you mean --max-size? (see tmpmount --help)"},
		{[]string{"--allow", "mp"}, "unknown flag --allow: did you mean --allow-other? (see tmpmount --help)"},
		{[]string{"--bogus-flag", "mp"}, "unknown flag --bogus-flag (see tmpmount --help)"},
		{[]string{"-o", "max_sise=8M", "mp"}, "unknown -o option max_sise: did you mean max_size? (see tmpmount --help)"},
		{[]string{"-o", "max-sise=8M", "mp"}, "unknown -o option max-sise: did you mean max-size? (see tmpmount --help)"},
		{[]string{"-o", "nr_inode=5", "mp"}, "unknown -o option nr_inode: did you mean nr_inodes? (see tmpmount --help)"},
		{[]string{"-o", "max_size=8Q", "mp"}, `-o max_size: invalid size "8Q": unknown unit "Q": ` + sizeHelp + " (see tmpmount --help)"},
		{[]string{"-o", "max_size", "mp"}, "-o max_size needs a value: max_size=SIZE (see tmpmount --help)"},
		{[]string{"-o", "ro=1", "mp"}, "-o ro=1 takes no value (see tmpmount --help)"},
		{[]string{"--max-size", "8Q", "mp"}, `--max-size: invalid size "8Q": unknown unit "Q": ` + sizeHelp + " (see tmpmount --help)"},
		{[]string{"mp", "--max-size"}, "--max-size needs a value: --max-size SIZE (see tmpmount --help)"},
		{[]string{"--allow-other=maybe", "mp"}, "--allow-other=maybe: give true or false, or just --allow-other (see tmpmount --help)"},
		{[]string{"--mode", "99", "mp"}, `--mode: invalid mode "99": give octal permission bits such as 1777 or 0700 (see tmpmount --help)`},
		{[]string{"--uid", "no-such-user-tmpmount", "mp"}, `--uid: unknown user "no-such-user-tmpmount": give a user name or number (see tmpmount --help)`},
		{[]string{"--max-size", "50%", "mp"}, `--max-size: invalid size "50%": a percentage of RAM is taken by --size and --mem-limit only: give bytes (see tmpmount --help)`},
		{[]string{"--inodes", "-1", "mp"}, "--inodes -1: give a number of nodes, or 0 for no limit (see tmpmount --help)"},
		{nil, "missing MOUNTPOINT: tmpmount [flags] MOUNTPOINT (see tmpmount --help)"},
		{[]string{"a", "b"}, `one MOUNTPOINT expected, got ["a" "b"] (see tmpmount --help)`},
		{[]string{"-o"}, "-o needs a list of options, e.g. -o max_size=8M,mode=1777 (see tmpmount --help)"},
	}
	for _, tc := range tests {
		t.Run(strings.Join(tc.args, " "), func(t *testing.T) {
			_, err := parseArgs(tc.args, &bytes.Buffer{})
			if err == nil || err.Error() != tc.want {
				t.Errorf("parseArgs(%q) error:\n got %v\nwant %s", tc.args, err, tc.want)
			}
		})
	}
}

// TestParseRunArgs checks run's command line: flags end at CMD or "--",
// and flags for the mount(8) form are refused.
func TestParseRunArgs(t *testing.T) {
	o, err := parseRunArgs([]string{"--max-size", "1M", "sh", "-c", "--max-size"}, &bytes.Buffer{})
	if err != nil {
		t.Fatal(err)
	}
	if want := []string{"sh", "-c", "--max-size"}; !slices.Equal(o.command, want) || o.maxSize.bytes != 1<<20 {
		t.Errorf("command %q, max-size %d; want %q, 1 MiB", o.command, o.maxSize.bytes, want)
	}
	for _, tc := range []struct {
		args []string
		want string
	}{
		{[]string{"--foreground", "--", "true"}, "--foreground is for the mount(8) form (-o options); tmpmount run always stays in the foreground (see tmpmount run --help)"},
		{[]string{"--max-siz", "1", "--", "true"}, "unknown flag --max-siz: did you mean --max-size? (see tmpmount run --help)"},
		{[]string{"-o", "max_size=1M", "--", "true"}, "-o options are for mount(8) and tmpmount MOUNTPOINT; give tmpmount run its flags as --name=value (see tmpmount run --help)"},
		{[]string{"--max-size", "1M"}, "missing the command to run: tmpmount run [flags] -- CMD [ARGS...] (see tmpmount run --help)"},
	} {
		if _, err := parseRunArgs(tc.args, &bytes.Buffer{}); err == nil || err.Error() != tc.want {
			t.Errorf("parseRunArgs(%q) error:\n got %v\nwant %s", tc.args, err, tc.want)
		}
	}
}

// TestHelpOutputs checks that each command's --help prints its own usage.
func TestHelpOutputs(t *testing.T) {
	var mount, run bytes.Buffer
	if _, err := parseArgs([]string{"mp", "--help"}, &mount); !errors.Is(err, errHelp) {
		t.Fatalf("parseArgs --help: %v, want errHelp", err)
	}
	if _, err := parseRunArgs([]string{"-h"}, &run); !errors.Is(err, errHelp) {
		t.Fatalf("parseRunArgs -h: %v, want errHelp", err)
	}
	if !strings.HasPrefix(mount.String(), "Usage:\n  tmpmount [flags] MOUNTPOINT") {
		t.Errorf("tmpmount --help starts %q", firstLine(mount.String()))
	}
	if !strings.HasPrefix(run.String(), "Usage:\n  tmpmount run [flags]") || strings.Contains(run.String(), "--foreground") {
		t.Errorf("tmpmount run --help is not run's own (or lists --foreground):\n%s", run.String())
	}
}

func TestClosest(t *testing.T) {
	names := []string{"max-size", "mem-limit", "size", "inodes", "allow-other", "json"}
	for typed, want := range map[string]string{
		"max-sise": "max-size", "maxsize": "max-size", "mem-limt": "mem-limit", "siez": "size",
		"allow": "allow-other", "jsno": "json", "x": "", "quux-frob": "",
	} {
		if got := closest(typed, names); got != want {
			t.Errorf("closest(%q) = %q, want %q", typed, got, want)
		}
	}
}

func isRoot() bool { return os.Geteuid() == 0 }

func firstLine(s string) string {
	line, _, _ := strings.Cut(s, "\n")
	return line
}

package main

import (
	"bytes"
	"errors"
	"log"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"golang.org/x/sys/unix"
)

// TestCheckRunBase checks which directories run trusts to hold its mount
// point: the caller's alone, on a path nobody else can change.
func TestCheckRunBase(t *testing.T) {
	if os.Geteuid() != 0 {
		t.Skip("needs root to give directories to other users")
	}
	top := t.TempDir()
	mk := func(rel string, mode os.FileMode, uid int) string {
		p := filepath.Join(top, rel)
		if err := os.Mkdir(p, 0o700); err != nil {
			t.Fatal(err)
		}
		if err := os.Chmod(p, mode); err != nil {
			t.Fatal(err)
		}
		if err := os.Chown(p, uid, uid); err != nil {
			t.Fatal(err)
		}
		return p
	}
	mine := mk("mine", 0o700, 0)
	groupw := mk("groupw", 0o770, 0)
	others := mk("others", 0o700, 1001)
	open := mk("open", 0o777, 0)
	under := mk("open/under", 0o700, 0)
	sticky := mk("sticky", 0o777|os.ModeSticky, 0)
	inSticky := mk("sticky/mine", 0o700, 0)
	hisSticky := mk("sticky/his", 0o700, 1001)
	tests := []struct {
		dir  string
		own  bool
		want string // part of the error; "" for none
	}{
		{mine, true, ""},
		{groupw, true, "writable by others"},
		{others, true, "belongs to uid 1001"},
		{open, true, "writable by others"},
		{under, true, "writable by others"}, // a parent anyone can rename it in
		{sticky, false, ""},                 // as /tmp: only for the default
		{sticky, true, "not yours alone"},
		{inSticky, true, ""},
		{hisSticky, true, "belongs to uid 1001"},
	}
	for _, tc := range tests {
		err := checkRunBase(tc.dir, 0, tc.own)
		switch {
		case tc.want == "" && err != nil:
			t.Errorf("checkRunBase(%s, own=%v) = %v, want nil", tc.dir, tc.own, err)
		case tc.want != "" && (err == nil || !strings.Contains(err.Error(), tc.want)):
			t.Errorf("checkRunBase(%s, own=%v) = %v, want an error saying %q", tc.dir, tc.own, err, tc.want)
		}
	}
}

// TestRunPoint checks that a mount point is private, locked while held,
// skipped by a sweep then, swept once let go of, and that a directory
// swapped in at its name is not taken for it.
func TestRunPoint(t *testing.T) {
	base := t.TempDir()
	p, err := makeRunPoint(base)
	if err != nil {
		t.Fatal(err)
	}
	st, err := os.Lstat(p.path)
	if err != nil || !st.IsDir() || st.Mode().Perm() != 0o700 || !strings.HasPrefix(filepath.Base(p.path), runPointPrefix) {
		t.Fatalf("mount point %s: %v, %v; want a 0700 tmpmount-run-* directory", p.path, st, err)
	}
	var logged bytes.Buffer
	sweepRunPoints(base, log.New(&logged, "", 0))
	if _, err := os.Lstat(p.path); err != nil || logged.Len() > 0 {
		t.Errorf("a sweep removed or reported a held mount point: %v, %q", err, logged.String())
	}

	// The stage reopens the directory by name in its namespace: a
	// directory, or a symlink, swapped in at the name is refused.
	if err := os.Rename(p.path, p.path+".moved"); err != nil {
		t.Fatal(err)
	}
	if err := os.Mkdir(p.path, 0o700); err != nil {
		t.Fatal(err)
	}
	if fd, err := reopenSameDir(p.fd, p.path); err == nil {
		unix.Close(fd)
		t.Errorf("reopenSameDir took a directory swapped in at %s for the mount point", p.path)
	}
	os.Remove(p.path)
	if err := os.Symlink(p.path+".moved", p.path); err != nil {
		t.Fatal(err)
	}
	if fd, err := reopenSameDir(p.fd, p.path); err == nil {
		unix.Close(fd)
		t.Errorf("reopenSameDir followed a symlink swapped in at %s", p.path)
	}
	os.Remove(p.path)
	if err := os.Rename(p.path+".moved", p.path); err != nil {
		t.Fatal(err)
	}
	fd, err := reopenSameDir(p.fd, p.path)
	if err != nil {
		t.Errorf("reopenSameDir of the mount point itself: %v", err)
	} else {
		unix.Close(fd)
	}

	// Let go of without removing (as a killed run): the next sweep takes it.
	unix.Close(p.fd)
	unix.Close(p.baseFd)
	sweepRunPoints(base, log.New(&logged, "", 0))
	if _, err := os.Lstat(p.path); !errors.Is(err, os.ErrNotExist) || !strings.Contains(logged.String(), "removed "+p.path) {
		t.Errorf("after the run let go, the sweep: Lstat error %v, log %q; want it removed and said", err, logged.String())
	}
}

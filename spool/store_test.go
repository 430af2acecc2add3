package spool

import (
	"bytes"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"golang.org/x/sys/unix"
)

// TestOpenErrors checks that Open refuses a negative MaxSize and a spill
// parent that is missing or not a directory, and leaves nothing behind.
func TestOpenErrors(t *testing.T) {
	parent := t.TempDir()
	file := filepath.Join(parent, "file")
	if err := os.WriteFile(file, nil, 0o600); err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		name string
		cfg  Config
	}{
		{"negative MaxSize", Config{SpillParent: parent, MaxSize: -1}},
		{"missing parent", Config{SpillParent: filepath.Join(parent, "missing")}},
		{"parent is a file", Config{SpillParent: file}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			s, err := Open(tc.cfg)
			if err == nil {
				s.Close()
				t.Fatalf("Open(%+v) = nil error, want an error", tc.cfg)
			}
			entries, err := os.ReadDir(parent)
			if err != nil || len(entries) != 1 {
				t.Errorf("after the failed Open, parent holds [%s], %v; want only %q", entryNames(entries), err, "file")
			}
		})
	}
}

// TestOpen checks what a new Store reports.
func TestOpen(t *testing.T) {
	parent := t.TempDir()
	s := newTestStoreIn(t, parent, 12345)
	if got := s.MaxSize(); got != 12345 {
		t.Errorf("MaxSize() = %d, want 12345", got)
	}
	if got := filepath.Dir(s.Dir()); got != parent {
		t.Errorf("Dir() = %q, want a directory in %q", s.Dir(), parent)
	}
	if got := s.Stats(); got != (Stats{}) {
		t.Errorf("Stats() = %+v, want zero", got)
	}
	st, err := s.Statfs()
	if err != nil || st.Bsize <= 0 || st.Blocks == 0 {
		t.Errorf("Statfs() = Bsize %d, Blocks %d, %v; want a filesystem", st.Bsize, st.Blocks, err)
	}
	// Two Stores in one parent get directories of their own.
	s2 := newTestStoreIn(t, parent, 0)
	if s2.Dir() == s.Dir() {
		t.Errorf("two Stores share the spill dir %s", s.Dir())
	}
}

// TestOpenRemovesStaleDirs checks that Open removes the spill directories
// of processes no longer running, and nothing else: a directory whose lock
// is held (its daemon runs, maybe in another PID namespace, where its pid
// means nothing here) stays, and a zombie counts as dead.
func TestOpenRemovesStaleDirs(t *testing.T) {
	const deadPid = 1<<30 - 1 // above any pid_max: never a live process
	zombie := exec.Command("true")
	if err := zombie.Start(); err != nil {
		t.Fatal(err)
	}
	defer zombie.Wait()
	zpid := zombie.Process.Pid
	for deadline := time.Now().Add(10 * time.Second); ; {
		stat, _ := os.ReadFile(fmt.Sprintf("/proc/%d/stat", zpid))
		if fields := strings.Fields(string(stat[bytes.LastIndexByte(stat, ')')+1:])); len(fields) > 0 && fields[0] == "Z" {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("process %d did not become a zombie", zpid)
		}
		time.Sleep(10 * time.Millisecond)
	}
	tests := []struct {
		name     string
		dir      bool   // else a regular file
		content  string // a file the directory holds
		locked   bool   // someone holds its lock
		wantKept bool
	}{
		{name: fmt.Sprintf("tmpmount-%d-abc", deadPid), dir: true},
		{name: fmt.Sprintf("tmpmount-%d-full", deadPid), dir: true, content: "x", wantKept: true},
		{name: fmt.Sprintf("tmpmount-%d-spill", deadPid), dir: true, content: spillNamePrefix + "1234"},
		{name: fmt.Sprintf("tmpmount-%d-locked", deadPid), dir: true, locked: true, wantKept: true},
		{name: fmt.Sprintf("tmpmount-%d-zombie", zpid), dir: true},
		{name: fmt.Sprintf("tmpmount-%d-file", deadPid), wantKept: true},
		{name: fmt.Sprintf("tmpmount-%d-live", os.Getpid()), dir: true, wantKept: true}, // an older version's, unlocked
		{name: "tmpmount-0-zero", dir: true, wantKept: true},
		{name: "tmpmount-x-notapid", dir: true, wantKept: true},
		{name: fmt.Sprintf("tmpmount-%d", deadPid), dir: true, wantKept: true}, // no random part
		{name: fmt.Sprintf("other-%d-abc", deadPid), dir: true, wantKept: true},
	}
	parent := t.TempDir()
	for _, tc := range tests {
		path := filepath.Join(parent, tc.name)
		if !tc.dir {
			if err := os.WriteFile(path, nil, 0o600); err != nil {
				t.Fatal(err)
			}
			continue
		}
		if err := os.Mkdir(path, 0o700); err != nil {
			t.Fatal(err)
		}
		if tc.content != "" {
			if err := os.WriteFile(filepath.Join(path, tc.content), []byte("data"), 0o600); err != nil {
				t.Fatal(err)
			}
		}
		if tc.locked {
			// A lock on another open file description, as a daemon in
			// another PID namespace holds it.
			f, err := os.Open(path)
			if err != nil {
				t.Fatal(err)
			}
			defer f.Close()
			if err := unix.Flock(int(f.Fd()), unix.LOCK_EX); err != nil {
				t.Fatal(err)
			}
		}
	}
	s := newTestStoreIn(t, parent, 0)
	for _, tc := range tests {
		_, err := os.Lstat(filepath.Join(parent, tc.name))
		if kept := err == nil; kept != tc.wantKept {
			t.Errorf("%s: kept = %v (Lstat error %v), want %v", tc.name, kept, err, tc.wantKept)
		}
	}
	// The new Store's own directory is locked for its life.
	f, err := os.Open(s.Dir())
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	if err := unix.Flock(int(f.Fd()), unix.LOCK_EX|unix.LOCK_NB); !errors.Is(err, unix.EWOULDBLOCK) {
		t.Errorf("flock of a live Store's spill dir: %v, want EWOULDBLOCK (the Store holds its lock)", err)
	}
}

// TestCloseWithFilesInRAM checks that Close with files still in RAM
// removes the directory, and that those files keep working in RAM.
func TestCloseWithFilesInRAM(t *testing.T) {
	s := newTestStore(t, 0)
	f := newTestFile(t, s)
	mustWrite(t, f, pattern(1, 100), 0)
	dir := s.Dir()
	if err := s.Close(); err != nil {
		t.Fatalf("Close: %v", err)
	}
	if _, err := os.Lstat(dir); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("after Close, Lstat(spill dir) error = %v, want ErrNotExist", err)
	}
	mustWrite(t, f, pattern(2, 100), 100)
	wantRead(t, f, 0, append(append([]byte{}, pattern(1, 100)...), pattern(2, 100)...))
	wantStats(t, s, Stats{RAMBytes: PageSize})
}

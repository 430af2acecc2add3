package e2e

import (
	"encoding/hex"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"
)

// TestEventsNamesLossless: the events log names every file so that its
// bytes can be had back (Python: os.fsencode(json.loads(line)["path"])),
// so that two files whose names differ only in bytes that are not UTF-8
// cannot be confused. "bad\xff\xfe" and "bad\xef\xbf\xbd" (U+FFFD) were
// both logged as "bad\ufffd\ufffd"-like text before.
func TestEventsNamesLossless(t *testing.T) {
	py := progPython(t)
	events := filepath.Join(t.TempDir(), "events.jsonl")
	m := startMount(t, "--events", events)
	dir := "d\xe9\x80" // a directory whose name is not UTF-8 either
	if err := os.Mkdir(m.Path(dir), 0o755); err != nil {
		t.Fatal(err)
	}
	names := []string{"bad\xff\xfe", "bad\xef\xbf\xbd", "q\"uo\\te\nnl", "caf\xc3\xa9", "\xed\xa0\x80"}
	var want []string
	for _, n := range names {
		p := filepath.Join(dir, n)
		if err := os.WriteFile(m.Path(p), []byte("x"), 0o644); err != nil {
			t.Fatalf("create %q: %v", p, err)
		}
		if err := os.Remove(m.Path(p)); err != nil {
			t.Fatal(err)
		}
		want = append(want, "create "+hex.EncodeToString([]byte(p)), "delete "+hex.EncodeToString([]byte(p)))
	}
	slices.Sort(want)
	decode := `
import json, os, sys
for line in open(sys.argv[1], encoding="utf-8"):
    e = json.loads(line)
    print(e["event"], os.fsencode(e["path"]).hex())
`
	var got []string
	waitFor(t, 10*time.Second, "a create and a delete line per file", func() bool {
		out := runCmd(t, "/", py, "-c", decode, events)
		got = strings.Split(strings.TrimSpace(out), "\n")
		return len(got) >= len(want)
	})
	slices.Sort(got)
	if !slices.Equal(got, want) {
		t.Errorf("events decoded with Python's surrogateescape:\n  got  %q\n  want %q", got, want)
	}
}

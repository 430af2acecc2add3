package e2e

import (
	"sort"
	"testing"

	"github.com/hanwen/go-fuse/v2/posixtest"
)

// knownPosixFailures are posixtest tests that fail on tmpfs too, with why.
var knownPosixFailures = map[string]string{
	"FcntlFlockLocksFile": "it expects a second descriptor of the same process to conflict with the " +
		"first one's POSIX lock, but POSIX record locks belong to the process (tmpfs fails it too); " +
		"TestProgramPOSIXLocks checks locks between processes instead",
}

// TestPosix runs every test of go-fuse's posixtest suite, each on a fresh
// mount. Tests that cannot pass on tmpmount are listed in knownPosixFailures
// with the reason, and the README's known limitations repeat them.
func TestPosix(t *testing.T) {
	names := make([]string, 0, len(posixtest.All))
	for name := range posixtest.All {
		names = append(names, name)
	}
	sort.Strings(names)
	for _, name := range names {
		fn := posixtest.All[name]
		t.Run(name, func(t *testing.T) {
			if why, ok := knownPosixFailures[name]; ok {
				t.Skip(why)
			}
			m := startMount(t)
			fn(t, m.Dir)
		})
	}
}

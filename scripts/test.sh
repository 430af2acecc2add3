#!/bin/sh
# The whole test suite: vet, unit tests (race detector on), and the e2e
# tests, which mount the real binary (needs root, or fusermount3).
# Usage: scripts/test.sh [extra go test flags]
set -eu
cd "$(dirname "$0")/.."

# Mounts of tmpmount that exist before the run (another user's, another
# test run's on a shared machine) are not this run's to answer for: the
# check at the end looks only at mounts made since (mount IDs are not
# reused while a mount lives).
#
# tmpmount_mounts prints the mountinfo lines of tmpmount mounts (the
# filesystem type follows the "-" that ends the optional fields).
tmpmount_mounts() {
	awk '{ for (i = 7; i <= NF; i++) if ($i == "-") { if ($(i + 1) == "fuse.tmpmount") print; break } }' /proc/self/mountinfo
}
mounts_before=$(tmpmount_mounts | awk '{ print $1 }')

echo "== go vet"
go vet ./...

unformatted=$(gofmt -l $(git ls-files '*.go' 2>/dev/null || find . -name '*.go'))
if [ -n "$unformatted" ]; then
	echo "gofmt would change: $unformatted" >&2
	exit 1
fi

echo "== unit tests (race detector on)"
go test -race -count=1 -timeout 10m "$@" ./spool/... ./policy/... ./keepdir/... ./fsnode/... ./cmd/...

# The e2e suite runs on both request paths: /dev/fuse, and FUSE over
# io_uring, which the kernel offers only while its enable_uring switch is
# on. The switch is machine-wide: it is set for the io_uring run and put
# back as it was when this script ends, however it ends.
uring_param=/sys/module/fuse/parameters/enable_uring
uring_was=""
if [ -w "$uring_param" ]; then
	uring_was=$(cat "$uring_param")
	trap 'echo "$uring_was" > "$uring_param"' EXIT
	trap 'exit 130' INT TERM
fi

if [ -n "$uring_was" ]; then
	echo N > "$uring_param"
fi
echo "== e2e tests on /dev/fuse (daemon built with the race detector)"
# TestTransport* set the switch themselves: they run once, in the io_uring run.
if [ -n "$uring_was" ]; then
	TMPMOUNT_E2E_TRANSPORT=dev E2E_RACE=1 go test -count=1 -timeout 20m -skip '^TestTransport' "$@" ./e2e/...
else
	E2E_RACE=1 go test -count=1 -timeout 20m "$@" ./e2e/...
fi

if [ -n "$uring_was" ]; then
	echo Y > "$uring_param"
	echo "== e2e tests on FUSE over io_uring (daemon built with the race detector)"
	TMPMOUNT_E2E_TRANSPORT=uring E2E_RACE=1 go test -count=1 -timeout 20m "$@" ./e2e/...
	echo "$uring_was" > "$uring_param"
elif [ "${CI:-}" = "true" ]; then
	echo "cannot run the e2e tests over io_uring: $uring_param is missing or not writable (needs root and Linux 6.14+ with CONFIG_FUSE_IO_URING)" >&2
	exit 1
else
	echo "== e2e tests on FUSE over io_uring: skipped ($uring_param missing or not writable: needs root and Linux 6.14+)"
fi

echo "== e2e memory tests (daemon built without the race detector, whose RSS they measure)"
go test -count=1 -timeout 10m -run 'TestLimitsMemoryBudget|TestLimitsHostileInput/RSS|TestLimitsMetadata' "$@" ./e2e/...

echo "== benchmark smoke run (scripts/bench -quick: checks that it works and the data, times nothing)"
bench_out=$(mktemp)
if ! go run ./scripts/bench -quick >"$bench_out" 2>&1; then
	cat "$bench_out" >&2
	rm -f "$bench_out"
	exit 1
fi
tail -n 3 "$bench_out"
rm -f "$bench_out"

# A test that leaves a mount behind would break the next run.
left=$(tmpmount_mounts | awk -v before="$mounts_before" '
	BEGIN { n = split(before, ids, "\n"); for (i = 1; i <= n; i++) had[ids[i]] = 1 }
	!($1 in had)')
if [ -n "$left" ]; then
	echo "a tmpmount mount was left behind:" >&2
	echo "$left" >&2
	exit 1
fi
echo "== all tests passed"

#!/bin/sh
# The whole test suite: vet, unit tests (race detector on), and the e2e
# tests, which mount the real binary (needs root, or fusermount3).
# Usage: scripts/test.sh [extra go test flags]
set -eu
cd "$(dirname "$0")/.."

echo "== go vet"
go vet ./...

unformatted=$(gofmt -l $(git ls-files '*.go' 2>/dev/null || find . -name '*.go'))
if [ -n "$unformatted" ]; then
	echo "gofmt would change: $unformatted" >&2
	exit 1
fi

echo "== unit tests (race detector on)"
go test -race -count=1 -timeout 10m "$@" ./spool/... ./policy/... ./keepdir/... ./fsnode/... ./cmd/...

echo "== e2e tests (daemon built with the race detector)"
E2E_RACE=1 go test -count=1 -timeout 20m "$@" ./e2e/...

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
if grep -q ' fuse.tmpmount ' /proc/self/mountinfo; then
	echo "a tmpmount mount was left behind:" >&2
	grep ' fuse.tmpmount ' /proc/self/mountinfo >&2
	exit 1
fi
echo "== all tests passed"

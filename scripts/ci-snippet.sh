#!/bin/sh
# A CI step that gives one job a fast scratch TMPDIR: small files stay in
# RAM, big ones go to the runner's disk. Needs fuse3 (apt-get install -y
# fuse3) and tmpmount on PATH; as a non-root runner user, /dev/fuse must be
# usable (it is where udev runs; in containers: --device /dev/fuse).
#
# What is left afterwards: nothing, when the job ends or tmpmount run is
# killed. If the runner kills the job's whole process tree with SIGKILL,
# then as root the kernel ends every process of the job and removes the
# mount (they live in namespaces of their own); an empty mount point and
# spill directory stay until the next tmpmount run removes them. As a
# non-root user, processes the job started in sessions of their own can
# survive such a kill, and the dead mount stays until the next run.
#
#   - run: scripts/ci-snippet.sh make test
set -eu
exec tmpmount run --max-size 8M --mem-limit 2G --spill-dir "${RUNNER_TEMP:-/var/tmp}" -- "$@"

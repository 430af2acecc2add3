#!/bin/sh
# A CI step that gives one job a fast scratch TMPDIR: small files stay in
# RAM, big ones go to the runner's disk, and nothing is left afterwards,
# even if the job is killed. Needs fuse3 (apt-get install -y fuse3) and
# tmpmount on PATH; as a non-root runner user, /dev/fuse must be usable
# (it is where udev runs; in containers: --device /dev/fuse).
#
#   - run: scripts/ci-snippet.sh make test
set -eu
exec tmpmount run --max-size 8M --mem-limit 2G --spill-dir "${RUNNER_TEMP:-/var/tmp}" -- "$@"

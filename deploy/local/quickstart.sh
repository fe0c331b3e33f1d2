#!/usr/bin/env bash
# `npm run quickstart`: install what is missing, build, start a local stack (nats-server + shard),
# run the default scenario against it, stop everything. Extra args go to the launcher, e.g.
#   npm run quickstart -- --keep-running      npm run quickstart -- --help
# Exit code: the scenario runner's (0 pass, 99 threshold failed), 130 on Ctrl-C.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/../.."
# shellcheck source=deploy/local/ensure-deps.sh
source deploy/local/ensure-deps.sh
# exec: the launcher receives Ctrl-C directly and stops its children itself.
exec node dist/deploy/local/stack.js loadgen/examples/quickstart.yaml "$@"

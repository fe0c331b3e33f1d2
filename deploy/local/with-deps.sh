#!/usr/bin/env bash
# Run a command after making sure all dependencies are present and dist/ is built:
#   bash deploy/local/with-deps.sh node dist/loadgen/bench/attest.js --flag
# Runs from the repo root; NATS_SERVER (and PROMTOOL when present) are exported to the command.
set -euo pipefail
if [[ $# -eq 0 ]]; then
  echo "usage: bash deploy/local/with-deps.sh <command> [args...]" >&2
  exit 2
fi
cd "$(dirname "${BASH_SOURCE[0]}")/../.."
# shellcheck source=deploy/local/ensure-deps.sh
source deploy/local/ensure-deps.sh
exec "$@"

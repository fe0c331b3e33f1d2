#!/usr/bin/env bash
# `npm test`: install what is missing, build dist/, run vitest (exit code = vitest's).
# Extra args go to vitest, e.g. `npm test -- test/integration/local` or `npm test -- -t 'orphans'`.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
# shellcheck source=deploy/local/ensure-deps.sh
source deploy/local/ensure-deps.sh
# proto/gen must be what buf + ts-proto generate from proto/ (fails listing stale files).
node deploy/tools/check-proto.mjs
# Tests and sources type-check together (vitest itself strips types without checking them),
# and lint and formatting hold (typescript-eslint with type information; prettier).
node_modules/.bin/tsc --noEmit -p tsconfig.test.json
node_modules/.bin/eslint .
node_modules/.bin/prettier --check --log-level warn .
exec node_modules/.bin/vitest run "$@"

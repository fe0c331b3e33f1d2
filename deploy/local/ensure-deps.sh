#!/usr/bin/env bash
# Make sure everything sphere-fleet needs is present; idempotent and quiet when it is.
#
#   bash deploy/local/ensure-deps.sh          # check/install, exit non-zero on failure
#   source deploy/local/ensure-deps.sh        # same, and NATS_SERVER / PROMTOOL stay exported
#
# Steps:
#   1. node >= 20.17
#   2. node_modules: `npm ci --no-audit --no-fund` when missing or older than package-lock.json
#   3. nats-server: $NATS_SERVER (authoritative when set), $PATH, /usr/sbin, /usr/bin,
#      /usr/local/bin; otherwise `apt-get update && apt-get install -y nats-server prometheus`
#      when root on an apt system; otherwise print how to install it and fail.
#   4. promtool (optional for now): reported, never fatal.
#   5. dist/: `tsc -p tsconfig.json` when any input is newer than dist/.build-stamp.
#      Type errors are fatal unless SPHERE_ALLOW_TSC_ERRORS=1 (then: warning, JS is still emitted).
#
# Environment: NATS_SERVER=/path (use that binary), SPHERE_FORCE_BUILD=1 (always rebuild),
#   SPHERE_NATS_SEARCH_DIRS="dirs" (override the fixed search dirs; used to simulate a machine
#   without nats-server), SPHERE_SKIP_APT=1 (never call apt-get; print instructions instead).

_sf_say() { printf '%s\n' "$*"; }
_sf_err() { printf 'ensure-deps: %s\n' "$*" >&2; }

_sf_nats_help() {
  local arch rel=v2.10.22 tb
  case "$(uname -m)" in aarch64 | arm64) arch=arm64 ;; *) arch=amd64 ;; esac
  tb="nats-server-${rel}-linux-${arch}"
  cat >&2 <<EOF
Install it with ONE of:
  1. Debian/Ubuntu:  sudo apt-get update && sudo apt-get install -y nats-server prometheus
  2. Release tarball: curl -fsSL https://github.com/nats-io/nats-server/releases/download/${rel}/${tb}.tar.gz | tar -xz -C /tmp \\
                       && sudo install -m 0755 /tmp/${tb}/nats-server /usr/local/bin/nats-server
  3. Point at an existing binary:  export NATS_SERVER=/path/to/nats-server
(\`npm test\` and \`npm run quickstart\` do option 1 automatically when run as root on an apt-based system.)
EOF
}

# Prints the path of nats-server, or nothing. Return 2 when $NATS_SERVER is set but unusable.
_sf_find_nats() {
  if [[ -n "${NATS_SERVER:-}" ]]; then
    if [[ -f "$NATS_SERVER" && -x "$NATS_SERVER" ]]; then printf '%s\n' "$NATS_SERVER"; return 0; fi
    return 2
  fi
  local p d
  if p="$(command -v nats-server 2>/dev/null)" && [[ -x "$p" ]]; then printf '%s\n' "$p"; return 0; fi
  for d in ${SPHERE_NATS_SEARCH_DIRS-/usr/sbin /usr/bin /usr/local/bin}; do
    if [[ -f "$d/nats-server" && -x "$d/nats-server" ]]; then printf '%s\n' "$d/nats-server"; return 0; fi
  done
  if command -v dpkg >/dev/null 2>&1 && [[ -z "${SPHERE_NATS_SEARCH_DIRS+x}" ]]; then
    p="$(dpkg -L nats-server 2>/dev/null | grep -E '/s?bin/nats-server$' | head -n1)"
    if [[ -n "$p" && -x "$p" ]]; then printf '%s\n' "$p"; return 0; fi
  fi
  return 1
}

_sf_apt_install() {
  _sf_say "… installing nats-server and prometheus (promtool) with apt-get"
  export DEBIAN_FRONTEND=noninteractive
  if ! apt-get update -qq; then _sf_err "apt-get update failed"; return 1; fi
  if ! apt-get install -y -qq --no-install-recommends nats-server prometheus >/tmp/sphere-apt-install.log 2>&1; then
    _sf_err "apt-get install -y nats-server prometheus failed; last lines of /tmp/sphere-apt-install.log:"
    tail -n 20 /tmp/sphere-apt-install.log >&2
    return 1
  fi
}

_sf_ensure_deps() {
  local root
  root="$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)" || return 1

  # 1. node
  if ! command -v node >/dev/null 2>&1; then
    _sf_err "node not found; install Node.js 20.17 or newer (https://nodejs.org/)"; return 1
  fi
  local nodev
  nodev="$(node -p 'process.versions.node')"
  if ! node -e 'const [a,b]=process.versions.node.split(".").map(Number); process.exit(a>20||(a===20&&b>=17)?0:1)'; then
    _sf_err "node $nodev is too old; sphere-fleet needs Node.js 20.17 or newer"; return 1
  fi

  # Many sockets per process under load: raise the soft open-file limit to the hard limit
  # (never above it; when sourced this applies to the caller and its children).
  ulimit -n "$(ulimit -Hn)" 2>/dev/null || true

  # 2. node_modules
  if [[ ! -d "$root/node_modules" || ! -f "$root/node_modules/.package-lock.json" \
        || "$root/package-lock.json" -nt "$root/node_modules/.package-lock.json" ]]; then
    _sf_say "… npm ci (node_modules missing or older than package-lock.json)"
    local npmlog
    npmlog="$(mktemp)"
    if ! (cd "$root" && npm ci --no-audit --no-fund >"$npmlog" 2>&1); then
      if grep -q 'Missing: .* from lock file' "$npmlog"; then
        # npm 11 writes lock files without other platforms' optional packages and then `npm ci`
        # refuses them (npm/cli#9846). `npm install --no-save` installs the locked versions
        # without rewriting package-lock.json.
        _sf_say "  npm ci refused the lock file (npm bug npm/cli#9846, optional platform packages);"
        _sf_say "  installing the locked versions with 'npm install --no-save' instead"
        if ! (cd "$root" && npm install --no-save --no-audit --no-fund); then _sf_err "npm install failed"; rm -f "$npmlog"; return 1; fi
      else
        cat "$npmlog" >&2
        rm -f "$npmlog"
        _sf_err "npm ci failed (output above)"
        return 1
      fi
    else
      tail -n 3 "$npmlog"
    fi
    rm -f "$npmlog"
    touch "$root/node_modules/.package-lock.json"
  else
    _sf_say "✓ node_modules up to date (node $nodev)"
  fi

  # 3. nats-server
  local nats rc=0
  nats="$(_sf_find_nats)" || rc=$?
  if [[ $rc -eq 2 ]]; then
    _sf_err "nats-server not found: NATS_SERVER=$NATS_SERVER is not an executable file."
    _sf_nats_help; return 1
  fi
  if [[ -z "$nats" ]]; then
    if [[ "$(id -u)" -eq 0 && -z "${SPHERE_SKIP_APT:-}" ]] && command -v apt-get >/dev/null 2>&1; then
      _sf_apt_install || { _sf_nats_help; return 1; }
      nats="$(_sf_find_nats)" || true
    fi
    if [[ -z "$nats" ]]; then
      _sf_err "nats-server not found (looked in \$PATH and ${SPHERE_NATS_SEARCH_DIRS-/usr/sbin /usr/bin /usr/local/bin})."
      _sf_nats_help; return 1
    fi
  fi
  export NATS_SERVER="$nats"
  _sf_say "✓ nats-server $("$nats" --version 2>/dev/null | sed 's/^nats-server: //') at $nats"

  # 4. promtool (optional)
  local prom
  if prom="$(command -v promtool 2>/dev/null)"; then
    export PROMTOOL="$prom"
    _sf_say "✓ promtool $("$prom" --version 2>&1 | head -n1 | awk '{print $3}') at $prom"
  else
    _sf_say "- promtool not found (optional for now; apt-get install -y prometheus)"
  fi

  # 5. dist/ (serialised with flock so concurrent `npm test` runs don't interleave tsc output)
  mkdir -p "$root/dist" || return 1
  if command -v flock >/dev/null 2>&1; then
    ( flock -w 600 9 || true; _sf_build "$root" ) 9>"$root/dist/.build.lock"
  else
    _sf_build "$root"
  fi
}

_sf_build() {
  local root="$1" stamp="$1/dist/.build-stamp" newer=""
  if [[ -z "${SPHERE_FORCE_BUILD:-}" && -f "$stamp" ]]; then
    newer="$(cd "$root" && find actors services loadgen deploy proto/gen tsconfig.json package-lock.json \
      \( -name '*.ts' -o -name '*.mts' -o -name '*.json' \) -newer "$stamp" -print -quit 2>/dev/null)"
    if [[ -z "$newer" ]]; then
      _sf_say "✓ dist up to date"
      return 0
    fi
  fi
  _sf_say "… building dist (tsc -p tsconfig.json)"
  local t0 t1 out tsc_rc=0 stamp_new="$root/dist/.build-stamp.new"
  t0="$(date +%s%N)"
  touch "$stamp_new"
  out="$(cd "$root" && node node_modules/typescript/bin/tsc -p tsconfig.json 2>&1)" || tsc_rc=$?
  t1="$(date +%s%N)"
  if [[ $tsc_rc -ne 0 ]]; then
    printf '%s\n' "$out" >&2
    rm -f "$stamp_new"
    if [[ -n "${SPHERE_ALLOW_TSC_ERRORS:-}" ]]; then
      _sf_err "tsc reported type errors (ignored because SPHERE_ALLOW_TSC_ERRORS is set; JS was emitted)"
      return 0
    fi
    _sf_err "tsc -p tsconfig.json failed (SPHERE_ALLOW_TSC_ERRORS=1 continues with the emitted JS)"
    return 1
  fi
  # The stamp gets the time the build *started*, so edits made during the build trigger a rebuild.
  mv -f "$stamp_new" "$stamp"
  _sf_say "✓ dist built in $(( (t1 - t0) / 1000000 )) ms"
}

if [[ "${BASH_SOURCE[0]}" == "$0" ]]; then
  _sf_ensure_deps "$@"
  exit $?
else
  _sf_ensure_deps "$@" || return $?
fi

#!/usr/bin/env bash
# Installs what the browser interop tests need: Debian's chromium (never a downloaded browser) and
# playwright-core from npm at the version pinned in package-lock.json, into tests/interop/node_modules.
# Idempotent and quick on a second run (a stamp records the lock file it installed).
set -euo pipefail

usage() {
  cat <<EOF
Usage: $0 [--help]

Installs Debian's chromium (apt-get, needs root) if missing, then 'npm ci' in tests/interop/ when
node_modules does not match package-lock.json. Called by subprojects/setup.sh (so by tests/run.sh).

Environment (defaults):
  CHROMIUM_BIN  the browser the tests launch   (/usr/bin/chromium)
EOF
}
[[ "${1:-}" == "--help" || "${1:-}" == "-h" ]] && { usage; exit 0; }
[[ $# -eq 0 ]] || { usage >&2; exit 2; }

here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
CHROMIUM_BIN="${CHROMIUM_BIN:-/usr/bin/chromium}"
echo "interop setup: CHROMIUM_BIN=$CHROMIUM_BIN" >&2

if [[ ! -x "$CHROMIUM_BIN" ]]; then
  if [[ $(id -u) -ne 0 ]]; then
    echo "interop setup: $CHROMIUM_BIN missing; installing Debian's chromium needs root" >&2
    exit 1
  fi
  echo "interop setup: installing chromium" >&2
  apt-get update -qq
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends chromium >&2
fi

if ! command -v npm >/dev/null; then
  echo "interop setup: npm not found (subprojects/setup.sh installs it)" >&2
  exit 1
fi

stamp="$here/node_modules/.interop-setup-stamp"
want="$(sha256sum "$here/package-lock.json" | cut -d' ' -f1)"
if [[ -f "$stamp" && "$(cat "$stamp")" == "$want" && -f "$here/node_modules/playwright-core/package.json" ]]; then
  echo "interop setup: playwright-core present" >&2
  exit 0
fi
echo "interop setup: npm ci (playwright-core, no browser download)" >&2
# playwright-core has no install scripts; --ignore-scripts and the skip variable make sure nothing
# ever fetches a browser.
(cd "$here" && PLAYWRIGHT_SKIP_BROWSER_DOWNLOAD=1 npm ci --ignore-scripts --no-audit --no-fund --loglevel=error >&2)
echo "$want" >"$stamp"

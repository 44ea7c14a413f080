#!/usr/bin/env bash
# gst-mediamtx: set up if needed, build, and run every test (unit, element, integration against a
# real MediaMTX in private network namespaces). Ends with "N passed, N failed"; exits non-zero on
# any failure.
set -euo pipefail

usage() {
  cat <<EOF
Usage: $0 [--help] [MESON_TEST_ARGS...]

Runs subprojects/setup.sh (Debian packages, MediaMTX build, cached), packaging/cross-setup.sh
(the arm64 cross tool chain, qemu-user and the arm64 -dev packages) and
tests/coexist/build-rs-webrtchttp.sh (gst-plugins-rs' webrtchttp from crates.io, cached outside
the repository, for coexist/registry), configures and builds with
warnings as errors, then 'meson test' with any extra arguments (e.g. a suite: --suite whepsrc).
The arm64 test (arm64/cross) fails rather than skips without the cross tools (ARM64_REQUIRED=1).
Needs root (network namespaces, apt-get).

Environment (defaults):
  BUILD_DIR     build directory                          (build)
  SKIP_SETUP    1: do not run subprojects/setup.sh        (0)
  MEDIAMTX_BIN  MediaMTX binary to test against          (built and cached by setup)
  MESON_ARGS    extra 'meson setup' arguments             (none)
EOF
}
[[ "${1:-}" == "--help" || "${1:-}" == "-h" ]] && { usage; exit 0; }

root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$root"
BUILD_DIR="${BUILD_DIR:-build}"
SKIP_SETUP="${SKIP_SETUP:-0}"
MESON_ARGS="${MESON_ARGS:-}"
echo "run.sh: BUILD_DIR=$BUILD_DIR SKIP_SETUP=$SKIP_SETUP MESON_ARGS=$MESON_ARGS" >&2

if [[ $(id -u) -ne 0 ]]; then
  echo "run.sh: the tests make network namespaces and need root" >&2
  exit 1
fi

mkdir -p "$BUILD_DIR"
if [[ "$SKIP_SETUP" != "1" ]]; then
  setup_start=$SECONDS
  subprojects/setup.sh --no-mediamtx >&2
  echo "run.sh: Debian packages and npm (subprojects/setup.sh) took $((SECONDS - setup_start)) s" >&2
  # The Debian 13 lane's root file system (network and disk bound, ~10 min the first time) is made
  # while this machine sets up and builds; trixie/suites waits for it (tests/trixie/run.sh locks it).
  if (($# == 0)); then
    tests/trixie/run.sh rootfs >"$BUILD_DIR/trixie-rootfs.log" 2>&1 &
  fi
  # CPU-bound builds (MediaMTX from the Go module proxy; gst-plugins-rs' webrtchttp for
  # coexist/registry, from crates.io) run while apt adds the arm64 cross tools (network and disk).
  # On failure of the rs build, coexist/registry builds again and reports why.
  setup_start=$SECONDS
  (
    PATH="$PATH:/usr/local/go/bin" subprojects/build-mediamtx.sh >"$BUILD_DIR/mediamtx-build.log" 2>&1
    echo "run.sh: MediaMTX (subprojects/build-mediamtx.sh) took $((SECONDS - setup_start)) s" >&2
    tests/coexist/build-rs-webrtchttp.sh >"$BUILD_DIR/rs-webrtchttp-build.log" 2>&1 ||
      echo "run.sh: tests/coexist/build-rs-webrtchttp.sh failed or skipped: coexist/registry says why" >&2
    echo "run.sh: MediaMTX and gst-plugins-rs webrtchttp built in $((SECONDS - setup_start)) s" >&2
  ) &
  builds=$!
  packaging/cross-setup.sh >/dev/null
  echo "run.sh: arm64 cross setup (packaging/cross-setup.sh) took $((SECONDS - setup_start)) s" >&2
  wait "$builds" || true
  MEDIAMTX_BIN="${MEDIAMTX_BIN:-$(tail -n 1 "$BUILD_DIR/mediamtx-build.log")}"
  [[ -x "$MEDIAMTX_BIN" ]] || { cat "$BUILD_DIR/mediamtx-build.log" >&2; echo "run.sh: no MediaMTX" >&2; exit 1; }
else
  MEDIAMTX_BIN="${MEDIAMTX_BIN:-$(subprojects/build-mediamtx.sh | tail -n 1)}"
fi
export MEDIAMTX_BIN
# Every run checks the Pi build: arm64/cross fails, never skips, when the cross tools are missing.
export ARM64_REQUIRED=1
echo "run.sh: MEDIAMTX_BIN=$MEDIAMTX_BIN" >&2


# shellcheck disable=SC2086
if [[ -f "$BUILD_DIR/build.ninja" ]]; then
  meson configure "$BUILD_DIR" -Dwerror=true -Dmediamtx="$MEDIAMTX_BIN" $MESON_ARGS >/dev/null
else
  meson setup "$BUILD_DIR" -Dwerror=true -Dmediamtx="$MEDIAMTX_BIN" $MESON_ARGS >/dev/null
fi
ninja -C "$BUILD_DIR"

status=0
meson test -C "$BUILD_DIR" --print-errorlogs --num-processes 2 "$@" || status=$?

# Count individual checks (gst-check prints "Checks: N, Failures: F, Errors: E"; script tests
# may print "N passed, N failed"); a program that died before its summary counts as one failure.
python3 tests/testbed/count-results.py "$BUILD_DIR/meson-logs/testlog.json" || status=1
wait
exit "$status"

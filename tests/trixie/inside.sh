#!/usr/bin/env bash
# The trixie lane's work inside the Debian 13 root file system (tests/trixie/run.sh chroots into it
# with the source tree at /src and MediaMTX at /usr/local/bin/mediamtx). Last line:
# "N passed, N failed".
set -euo pipefail

usage() {
  cat <<EOF
Usage: $0 [--help] [STAGE...]   (inside the trixie root only: run tests/trixie/run.sh)

Stages (default: all): amd64 arm64 deb.
Environment (defaults):
  TRIXIE_BUILD_DIR  build directory in /src                (build-trixie)
  TRIXIE_SUITES     meson suites                           (whepsrc mediamtxsink reconnectbin integration)
  TRIXIE_JOBS       meson test --num-processes             (2)
  ARM64_DEV         the unpacked arm64 -dev libdir         (/opt/arm64-dev/usr/lib/aarch64-linux-gnu)
EOF
}
[[ "${1:-}" == "--help" || "${1:-}" == "-h" ]] && { usage; exit 0; }

cd /src
TRIXIE_BUILD_DIR="${TRIXIE_BUILD_DIR:-build-trixie}"
TRIXIE_SUITES="${TRIXIE_SUITES:-whepsrc mediamtxsink reconnectbin integration}"
TRIXIE_JOBS="${TRIXIE_JOBS:-2}"
ARM64_DEV="${ARM64_DEV:-/opt/arm64-dev/usr/lib/aarch64-linux-gnu}"
stages="${*:-amd64 arm64 deb}"
# shellcheck disable=SC1091
. /etc/os-release
echo "trixie inside: $PRETTY_NAME, GStreamer $(pkg-config --modversion gstreamer-1.0)," \
  "$(gcc --version | head -n 1), libnice $(dpkg-query -W -f='${Version}' libnice10:amd64)"
echo "trixie inside: TRIXIE_BUILD_DIR=$TRIXIE_BUILD_DIR TRIXIE_SUITES=$TRIXIE_SUITES TRIXIE_JOBS=$TRIXIE_JOBS ARM64_DEV=$ARM64_DEV"

passed=0 failed=0
ok() { echo "ok: $1"; passed=$((passed + 1)); }
bad() { echo "FAILED: $1"; failed=$((failed + 1)); }
check() { # name, command...
  local name="$1"; shift
  if "$@"; then ok "$name"; else bad "$name"; fi
}
add_summary() { # a "N passed, N failed" line; a missing one counts as a failure
  local p f
  if read -r p _ f _ < <(grep -E '^[0-9]+ passed, [0-9]+ failed' "$1" | tail -n 1) && [[ -n "$p" ]]; then
    passed=$((passed + p)) failed=$((failed + f))
  else
    failed=$((failed + 1))
  fi
}
log="$(mktemp)"
failures="$(mktemp)"

if [[ " $stages " == *" amd64 "* ]]; then
  t=$SECONDS
  b="$TRIXIE_BUILD_DIR"
  if [[ -f "$b/build.ninja" ]]; then
    setup=(meson configure "$b" -Dwerror=true -Dmediamtx=/usr/local/bin/mediamtx)
  else
    setup=(meson setup "$b" -Dwerror=true -Dmediamtx=/usr/local/bin/mediamtx)
  fi
  if "${setup[@]}" >"$log" 2>&1 && ninja -C "$b" >>"$log" 2>&1; then
    ok "amd64 build, warnings as errors, GStreamer $(pkg-config --modversion gstreamer-1.0) ($((SECONDS - t)) s)"
    t=$SECONDS
    suite_args=()
    for s in $TRIXIE_SUITES; do suite_args+=(--suite "$s"); done
    meson test -C "$b" --no-rebuild --print-errorlogs --num-processes "$TRIXIE_JOBS" "${suite_args[@]}" || true
    python3 tests/testbed/count-results.py "$b/meson-logs/testlog.json" | tee "$log" || true
    grep -E '^(FAILED: |  )' "$log" >>"$failures" || true
    add_summary "$log"
    echo "trixie inside: suites $TRIXIE_SUITES took $((SECONDS - t)) s"
    # docs/gen-reference.py with PyGObject 3.50: every enum default has its nick
    ref="$(mktemp -d)"
    if GST_PLUGIN_PATH="$b/plugins" GST_REGISTRY="$b/tests/registry.bin" REFERENCE_DIR="$ref" \
      python3 docs/gen-reference.py >"$log" 2>&1 &&
      grep -q '^| `' "$ref"/*.md && ! grep -n '"?"' "$ref"/*.md; then
      ok "docs/gen-reference.py with PyGObject $(python3 -c 'import gi; print(gi.__version__)'): enum values named"
    else
      cat "$log"; bad "docs/gen-reference.py with PyGObject 3.50"
    fi
    rm -rf "$ref"
  else
    tail -n 60 "$log"
    bad "amd64 build, warnings as errors"
  fi
fi

if [[ " $stages " == *" arm64 "* ]]; then
  # tests/arm64/check-cross.sh as for Debian 12, with the unpacked arm64 -dev files of this root.
  status=0
  ARM64_BUILD_DIR="$TRIXIE_BUILD_DIR-arm64" CROSS_EXTRA_DIR="$ARM64_DEV" tests/arm64/check-cross.sh | tee "$log" || status=$?
  add_summary "$log"
  ((status == 0)) || grep -Eq '^[0-9]+ passed, [1-9]' "$log" || bad "arm64/cross exited $status"
fi

if [[ " $stages " == *" deb "* ]]; then
  t=$SECONDS
  if deb="$(BUILD_DIR="$TRIXIE_BUILD_DIR-deb" packaging/build-deb.sh 2>"$log" | tail -n 1)" &&
    [[ "$(dpkg-deb -f "$deb" Architecture)" == amd64 ]]; then
    ok "amd64 package $deb ($((SECONDS - t)) s)"
    # As a user would: apt installs it with its dependencies, then the registry has the plugin.
    if DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "./$deb" >"$log" 2>&1 &&
      env -u GST_PLUGIN_PATH gst-inspect-1.0 mediamtx >"$log" 2>&1 &&
      grep -q 'whepsrc' "$log" && grep -q 'mediamtxsink' "$log" && grep -q 'reconnectbin' "$log"; then
      ok "apt install ./$(basename "$deb") && gst-inspect-1.0 mediamtx ($(grep -m1 -E '^ +Version' "$log" | tr -s ' '))"
    else
      cat "$log"; bad "apt install ./$(basename "$deb") && gst-inspect-1.0 mediamtx"
    fi
  else
    tail -n 40 "$log"; bad "amd64 package"
  fi
  t=$SECONDS
  if deb="$(BUILD_DIR="$TRIXIE_BUILD_DIR-arm64-deb" CROSS=1 CROSS_PKG_PATH="$ARM64_DEV/pkgconfig" \
    packaging/build-deb.sh 2>"$log" | tail -n 1)" &&
    [[ "$(dpkg-deb -f "$deb" Architecture)" == arm64 ]] &&
    dpkg-deb -c "$deb" | grep "/usr/lib/aarch64-linux-gnu/gstreamer-1.0/libgstmediamtx.so$" >/dev/null; then
    ok "arm64 package $deb ($((SECONDS - t)) s)"
  else
    tail -n 40 "$log"; bad "arm64 package"
  fi
fi
rm -f "$log"
# what failed again at the end: the last lines of a long log are often all a reader gets
[[ -s "$failures" ]] && cat "$failures"
rm -f "$failures"
echo "$passed passed, $failed failed"
((failed == 0))

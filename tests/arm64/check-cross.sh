#!/usr/bin/env bash
# arm64/cross: cross-builds gst-mediamtx for arm64 (packaging/aarch64-linux-gnu.ini) and runs the
# unit tests that need no network namespace under qemu-user (the cross file's exe_wrapper,
# qemu-aarch64-static; the arm64 loader and libraries come from multiarch). Never installs
# anything: without the cross tools it prints why and is skipped (run tests/arm64/run.sh, or
# packaging/cross-setup.sh, first). Last line: "N passed, N failed".
set -euo pipefail

usage() {
  cat <<EOF
Usage: $0 [--help]

Environment (defaults):
  ARM64_BUILD_DIR  cross build directory                       (build-arm64)
  ARM64_TESTS      meson tests run under qemu     (unit/gstmtx mediamtxsink/encoder_selection reconnectbin/element)
  CROSS_EXTRA_DIR  pkg-config files of the unpacked arm64 -dev packages
                   (\$HOME/.cache/gst-mediamtx/arm64-extra, made by packaging/cross-setup.sh)
EOF
}
[[ "${1:-}" == "--help" || "${1:-}" == "-h" ]] && { usage; exit 0; }

root="$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)"
cd "$root"
ARM64_BUILD_DIR="${ARM64_BUILD_DIR:-build-arm64}"
ARM64_TESTS="${ARM64_TESTS:-unit/gstmtx mediamtxsink/encoder_selection reconnectbin/element}"
CROSS_EXTRA_DIR="${CROSS_EXTRA_DIR:-$HOME/.cache/gst-mediamtx/arm64-extra}"
echo "arm64/cross: ARM64_BUILD_DIR=$ARM64_BUILD_DIR ARM64_TESTS=$ARM64_TESTS CROSS_EXTRA_DIR=$CROSS_EXTRA_DIR"

skip() {
  echo "arm64/cross: SKIPPED: $1 (install with packaging/cross-setup.sh, or run tests/arm64/run.sh)"
  echo "0 passed, 0 failed"
  exit 77
}
command -v aarch64-linux-gnu-g++ >/dev/null || skip "no aarch64-linux-gnu-g++ (g++-aarch64-linux-gnu)"
command -v qemu-aarch64-static >/dev/null || skip "no qemu-aarch64-static (qemu-user-static)"
[[ -f /usr/lib/aarch64-linux-gnu/pkgconfig/gstreamer-1.0.pc ]] || skip "no arm64 GStreamer (libgstreamer1.0-dev:arm64)"
[[ -f "$CROSS_EXTRA_DIR/pkgconfig/gstreamer-webrtc-1.0.pc" ]] || skip "no arm64 pkg-config files in $CROSS_EXTRA_DIR"

passed=0 failed=0
check() { # name, command...
  local name="$1"; shift
  if "$@"; then echo "ok: $name"; passed=$((passed + 1)); else echo "FAILED: $name"; failed=$((failed + 1)); fi
}

start=$SECONDS
if [[ ! -f "$ARM64_BUILD_DIR/build.ninja" ]]; then
  check "configure $ARM64_BUILD_DIR with packaging/aarch64-linux-gnu.ini" \
    meson setup "$ARM64_BUILD_DIR" --cross-file packaging/aarch64-linux-gnu.ini \
      -Dpkg_config_path="$CROSS_EXTRA_DIR/pkgconfig" -Dwerror=true >/dev/null
fi
check "cross build (warnings as errors)" ninja -C "$ARM64_BUILD_DIR"
echo "arm64/cross: build took $((SECONDS - start)) s"
plugin="$ARM64_BUILD_DIR/plugins/libgstmediamtx.so"
check "plugin is an aarch64 ELF" bash -c "file -b '$plugin' | grep -q 'ARM aarch64'"

# Under qemu-user without binfmt_misc GStreamer cannot exec the arm64 gst-plugin-scanner: scan
# plugins in-process instead. mediamtxsink/encoder_selection loads the arm64 plugin (mediamtxsink's
# pad takes the libcamerasrc caps) and probes arm64 x264enc for real.
export GST_REGISTRY_FORK=no
# shellcheck disable=SC2086
check "unit tests under qemu-aarch64: $ARM64_TESTS" \
  meson test -C "$ARM64_BUILD_DIR" --no-rebuild --print-errorlogs $ARM64_TESTS
echo "arm64/cross: element tests against MediaMTX under qemu: SKIPPED: they run in a network" \
  "namespace through tests/testbed/netns-run.sh, which execs the test directly (it needs qemu registered" \
  "in binfmt_misc, which this machine does not mount), and rtspclientsink (gstreamer1.0-rtsp:arm64) is not" \
  "co-installable with the amd64 one on Debian 12"
echo "arm64/cross: took $((SECONDS - start)) s"
echo "$passed passed, $failed failed"
((failed == 0))

#!/usr/bin/env bash
# arm64/cross: cross-builds gst-mediamtx for arm64 / Raspberry Pi OS 12 (packaging/aarch64-linux-gnu.ini,
# prefix /usr, release, as packaged), runs the unit tests that need no network namespace under
# qemu-user (the cross file's exe_wrapper, qemu-aarch64-static; the arm64 loader and libraries come
# from multiarch); with --deb (as the meson test arm64/cross runs it) it then packs the arm64 .deb
# from the same build and checks it (tests/arm64/check-deb.sh DEB_ARCH=arm64). Only the plugin and
# the tests run here are compiled.
# Never installs anything: tests/run.sh installs the cross tools (packaging/cross-setup.sh) and sets
# ARM64_REQUIRED=1, so that missing tools fail the test; run alone without them it is skipped with
# the reason. Last line: "N passed, N failed".
set -euo pipefail

usage() {
  cat <<EOF
Usage: $0 [--help] [--deb]

  --deb   also pack the arm64 .deb from ARM64_BUILD_DIR and check it (check-deb.sh DEB_ARCH=arm64)

Environment (defaults):
  ARM64_BUILD_DIR  cross build directory                       (build-arm64)
  ARM64_TESTS      meson tests run under qemu     (unit/gstmtx mediamtxsink/encoder_selection reconnectbin/element)
  ARM64_REQUIRED   1: fail (not skip) without the cross tools; tests/run.sh sets it  (0)
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
ARM64_REQUIRED="${ARM64_REQUIRED:-0}"
with_deb=0
for arg in "$@"; do
  case "$arg" in
    --deb) with_deb=1 ;;
    *) echo "arm64/cross: unknown argument $arg (see --help)" >&2; exit 2 ;;
  esac
done
echo "arm64/cross: ARM64_BUILD_DIR=$ARM64_BUILD_DIR ARM64_TESTS=$ARM64_TESTS CROSS_EXTRA_DIR=$CROSS_EXTRA_DIR" \
  "ARM64_REQUIRED=$ARM64_REQUIRED deb=$with_deb"

skip() {
  if [[ "$ARM64_REQUIRED" == "1" ]]; then
    echo "arm64/cross: FAILED: $1, though tests/run.sh ran packaging/cross-setup.sh (ARM64_REQUIRED=1)"
    echo "0 passed, 1 failed"
    exit 1
  fi
  echo "arm64/cross: SKIPPED: $1 (install with packaging/cross-setup.sh, or run tests/arm64/run.sh)"
  echo "0 passed, 0 failed"
  exit 77
}
command -v aarch64-linux-gnu-g++ >/dev/null || skip "no aarch64-linux-gnu-g++ (g++-aarch64-linux-gnu)"
command -v qemu-aarch64-static >/dev/null || skip "no qemu-aarch64-static (qemu-user-static)"
[[ -f /usr/lib/aarch64-linux-gnu/pkgconfig/gstreamer-1.0.pc ]] || skip "no arm64 GStreamer (libgstreamer1.0-dev:arm64)"
[[ -f "$CROSS_EXTRA_DIR/pkgconfig/gstreamer-webrtc-1.0.pc" ]] || skip "no arm64 pkg-config files in $CROSS_EXTRA_DIR"
if ((with_deb)); then
  [[ -x "$CROSS_EXTRA_DIR/bin/gst-inspect-1.0" ]] || skip "no arm64 gst-inspect-1.0 in $CROSS_EXTRA_DIR/bin"
fi

passed=0 failed=0
check() { # name, command...
  local name="$1"; shift
  if "$@"; then echo "ok: $name"; passed=$((passed + 1)); else echo "FAILED: $name"; failed=$((failed + 1)); fi
}

start=$SECONDS
# Configured as packaging/build-deb.sh would (prefix /usr, release) but with the tests, so that the
# package holds the very plugin tested here.
if [[ ! -f "$ARM64_BUILD_DIR/build.ninja" ]]; then
  check "configure $ARM64_BUILD_DIR with packaging/aarch64-linux-gnu.ini" \
    meson setup "$ARM64_BUILD_DIR" --cross-file packaging/aarch64-linux-gnu.ini --prefix=/usr \
      --buildtype=release -Dpkg_config_path="$CROSS_EXTRA_DIR/pkgconfig" -Dwerror=true >/dev/null
else  # a build directory made before the package came from it: same settings now
  check "reconfigure $ARM64_BUILD_DIR (prefix /usr, release)" \
    meson configure "$ARM64_BUILD_DIR" --prefix=/usr --buildtype=release -Dwerror=true >/dev/null
fi
# The plugin and the programs of ARM64_TESTS, not every test program of the tree.
plugin_target=plugins/libgstmediamtx.so
mapfile -t test_targets < <(meson introspect --tests "$ARM64_BUILD_DIR" | /usr/bin/python3 -c '
import json, os, sys
wanted = set(sys.argv[2].split())
for t in json.load(sys.stdin):
    if t["name"] in wanted and t["cmd"][0].startswith(sys.argv[1]):
        print(os.path.relpath(t["cmd"][0], sys.argv[1]))' "$(realpath "$ARM64_BUILD_DIR")" "$ARM64_TESTS")
echo "arm64/cross: building $plugin_target ${test_targets[*]}"
check "cross build of the plugin and ${#test_targets[@]} test programs (warnings as errors)" nice \
  ninja -C "$ARM64_BUILD_DIR" "$plugin_target" "${test_targets[@]}"
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
echo "arm64/cross: note: the element tests against MediaMTX are not run under qemu: they run in a network" \
  "namespace through tests/testbed/netns-run.sh, which execs the test directly (it needs qemu registered" \
  "in binfmt_misc, which this machine does not mount), and rtspclientsink (gstreamer1.0-rtsp:arm64) is not" \
  "co-installable with the amd64 one on Debian 12"

if ((with_deb)); then
  t=$SECONDS
  deb_out="$(mktemp)"
  trap 'rm -f "$deb_out"' EXIT
  status=0
  DEB_ARCH=arm64 DEB_BUILD_DIR="$ARM64_BUILD_DIR" BUILD_TARGETS="$plugin_target" CROSS_EXTRA_DIR="$CROSS_EXTRA_DIR" \
    tests/arm64/check-deb.sh | tee "$deb_out" || status=$?
  read -r p _ f _ < <(tail -n 1 "$deb_out")
  passed=$((passed + p)) failed=$((failed + f))
  ((status == 0 || f > 0)) || failed=$((failed + 1))
  echo "arm64/cross: arm64 package built and checked in $((SECONDS - t)) s"
fi
echo "arm64/cross: took $((SECONDS - start)) s"
echo "$passed passed, $failed failed"
((failed == 0))

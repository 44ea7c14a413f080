#!/usr/bin/env bash
# The whole arm64 job, outside tests/run.sh (its first run installs packages and cross-builds
# everything): cross setup (packaging/cross-setup.sh), cross build and unit tests under qemu-user
# (tests/arm64/check-cross.sh), then the arm64 .deb (packaging/build-deb.sh CROSS=1), inspected.
# Afterwards tests/run.sh's arm64/cross test reuses the build and runs in seconds.
# Last line: "N passed, N failed".
set -euo pipefail

usage() {
  cat <<EOF
Usage: $0 [--help]

Needs root the first time (apt-get). Environment (defaults):
  ARM64_BUILD_DIR      cross build directory with tests                  (build-arm64)
  ARM64_DEB_BUILD_DIR  cross build directory of the package (prefix /usr) (build-arm64-deb)
  ARM64_TESTS          meson tests run under qemu   (unit/gstmtx mediamtxsink/encoder_selection reconnectbin/element)
EOF
}
[[ "${1:-}" == "--help" || "${1:-}" == "-h" ]] && { usage; exit 0; }

root="$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)"
cd "$root"
ARM64_BUILD_DIR="${ARM64_BUILD_DIR:-build-arm64}"
ARM64_DEB_BUILD_DIR="${ARM64_DEB_BUILD_DIR:-build-arm64-deb}"
export ARM64_BUILD_DIR
echo "arm64/run: ARM64_BUILD_DIR=$ARM64_BUILD_DIR ARM64_DEB_BUILD_DIR=$ARM64_DEB_BUILD_DIR"

start=$SECONDS
pkg_path="$(packaging/cross-setup.sh | tail -n 1)"
echo "arm64/run: setup took $((SECONDS - start)) s"

passed=0 failed=0
cross_out="$(mktemp)"
trap 'rm -f "$cross_out"' EXIT
status=0
tests/arm64/check-cross.sh | tee "$cross_out" || status=$?
read -r p _ f _ < <(tail -n 1 "$cross_out")
passed=$((passed + p)) failed=$((failed + f))
((status == 0 || f > 0)) || failed=$((failed + 1))

t=$SECONDS
if deb="$(BUILD_DIR="$ARM64_DEB_BUILD_DIR" CROSS=1 CROSS_PKG_PATH="$pkg_path" packaging/build-deb.sh | tail -n 1)" &&
  [[ "$(dpkg-deb -f "$deb" Architecture)" == arm64 ]] &&
  dpkg-deb -c "$deb" | grep "/usr/lib/aarch64-linux-gnu/gstreamer-1.0/libgstmediamtx.so$" >/dev/null; then
  echo "ok: arm64 package $deb ($((SECONDS - t)) s)"
  dpkg-deb -f "$deb" Depends
  passed=$((passed + 1))
else
  echo "FAILED: arm64 package"
  failed=$((failed + 1))
fi
echo "arm64/run: took $((SECONDS - start)) s"
echo "$passed passed, $failed failed"
((failed == 0))

#!/usr/bin/env bash
# The whole arm64 job on its own, outside tests/run.sh (which runs the same on every run): cross
# setup (packaging/cross-setup.sh), then tests/arm64/check-cross.sh — cross build, unit tests under
# qemu-user, the arm64 .deb packed from that build and checked. Last line: "N passed, N failed".
set -euo pipefail

usage() {
  cat <<EOF
Usage: $0 [--help]

Needs root the first time (apt-get). Environment (defaults):
  ARM64_BUILD_DIR      cross build directory (prefix /usr, with tests)  (build-arm64)
  ARM64_TESTS          meson tests run under qemu   (unit/gstmtx mediamtxsink/encoder_selection reconnectbin/element)
EOF
}
[[ "${1:-}" == "--help" || "${1:-}" == "-h" ]] && { usage; exit 0; }

root="$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)"
cd "$root"
ARM64_BUILD_DIR="${ARM64_BUILD_DIR:-build-arm64}"
export ARM64_BUILD_DIR
echo "arm64/run: ARM64_BUILD_DIR=$ARM64_BUILD_DIR"

start=$SECONDS
packaging/cross-setup.sh >/dev/null
echo "arm64/run: setup took $((SECONDS - start)) s"
ARM64_REQUIRED=1 tests/arm64/check-cross.sh --deb

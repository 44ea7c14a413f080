#!/usr/bin/env bash
# Installs what gst-mediamtx needs on Debian 12 or 13 (or Raspberry Pi OS 12 or 13) and builds the pinned
# MediaMTX used by the tests and the demo. Idempotent: a second run installs nothing and reuses the
# cached MediaMTX. Prints the MediaMTX binary path as its last line.
set -euo pipefail

usage() {
  cat <<EOF
Usage: $0 [--help] [--no-mediamtx]

Installs the Debian packages to build, test and run gst-mediamtx (needs root for apt-get) and the
browser interop tests' npm packages (tests/interop/setup.sh), then builds MediaMTX
(subprojects/build-mediamtx.sh) unless --no-mediamtx.

Environment (defaults):
  SETUP_EXTRA_PACKAGES  more Debian packages to install   (none)
  MEDIAMTX_VERSION      MediaMTX tag to build              (see build-mediamtx.sh)
EOF
}
build_mediamtx=1
for arg in "$@"; do
  case "$arg" in
    --help|-h) usage; exit 0 ;;
    --no-mediamtx) build_mediamtx=0 ;;
    *) echo "unknown argument: $arg" >&2; usage >&2; exit 2 ;;
  esac
done

here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"

# Package names that differ between releases: the clang with libFuzzer (Debian 13 has no clang-14).
# shellcheck disable=SC1091
release="$(. /etc/os-release && echo "${VERSION_ID:-12}")"
case "$release" in
  12) clang_version=14 ;;
  *) clang_version=19 ;;
esac
echo "setup: Debian release $release (clang-$clang_version)" >&2

packages=(
  # build
  build-essential pkg-config meson ninja-build
  libglib2.0-dev libsoup-3.0-dev libjson-glib-dev
  # tests: OpenSSL headers (tests/testbed/openssl_exit.cpp)
  libssl-dev
  libgstreamer1.0-dev libgstreamer-plugins-base1.0-dev libgstreamer-plugins-bad1.0-dev
  # runtime: webrtcbin (bad) + libnice, rtspclientsink (gstreamer1.0-rtsp), encoders and decoders
  gstreamer1.0-tools gstreamer1.0-plugins-base gstreamer1.0-plugins-good gstreamer1.0-plugins-bad
  gstreamer1.0-plugins-ugly gstreamer1.0-libav gstreamer1.0-nice gstreamer1.0-rtsp
  # textoverlay (pango): whepsrc's placeholder slate, wall.sh's labels, view.sh OVERLAY=1
  gstreamer1.0-x
  # tests: namespaces and fault injection, memory checks, script and YAML checks, Python embedding
  iproute2 iptables nftables curl ca-certificates openssl procps psmisc valgrind shellcheck
  libnetfilter-queue-dev  # tests/faults/nfq_delay.cpp: delay and jitter (no tc netem in the test kernel)
  systemd  # systemd-analyze: tests/pipelines/check_systemd.py verifies the units (a container may lack it)
  # fuzzing (tests/fuzz): clang with libFuzzer and the sanitizer runtimes
  "clang-$clang_version" "libclang-rt-$clang_version-dev"
  # tests/trixie: the Debian 13 root file system
  debootstrap
  python3-yaml python3-gi gir1.2-gstreamer-1.0 gir1.2-gst-plugins-bad-1.0
  # pipelines/gst-mediamtx-run.py's time code (demo latency): GstVideo, GdkPixbuf for gdkpixbufoverlay
  gir1.2-gst-plugins-base-1.0 gir1.2-gdkpixbuf-2.0
  # browser interop tests (tests/interop/): Debian's Chromium, driven by playwright-core from npm
  chromium
)
# shellcheck disable=SC2206
packages+=(${SETUP_EXTRA_PACKAGES:-})
# MediaMTX's build takes hls.js from npm; Node may come from elsewhere than Debian.
command -v npm >/dev/null || packages+=(npm)
command -v go >/dev/null || [[ -x /usr/local/go/bin/go ]] || packages+=(golang-go)

missing=()
# Installed for this machine's architecture (or arch-independent): an arm64 copy of a -dev package,
# as a multiarch cross setup may leave, does not count and is replaced.
native=$(dpkg --print-architecture)
for p in "${packages[@]}"; do
  dpkg-query -W -f='${Status} ${Architecture}\n' "$p" 2>/dev/null |
    grep -Eq "^install ok installed ($native|all)$" || missing+=("$p:$native")
done
if ((${#missing[@]})); then
  echo "setup: installing ${missing[*]}" >&2
  if [[ $(id -u) -ne 0 ]]; then
    echo "setup: needs root to install packages (run with sudo)" >&2
    exit 1
  fi
  apt-get update -qq
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "${missing[@]}" >&2
else
  echo "setup: Debian packages present" >&2
fi

# playwright-core for the browser interop tests (npm ci, pinned; never downloads a browser)
"$here/../tests/interop/setup.sh"

if ((build_mediamtx)); then
  PATH="$PATH:/usr/local/go/bin" "$here/build-mediamtx.sh"
fi

#!/usr/bin/env bash
# Installs what the arm64 cross build needs on Debian 12 amd64 (idempotent, needs root for apt-get):
# arm64 multiarch, Debian's aarch64 cross toolchain, qemu-user-static, the arm64 -dev packages and
# the arm64 GStreamer plugins the tests load under qemu, and unpacks the arm64 gst-inspect-1.0 into
# CROSS_EXTRA_DIR/bin. tests/run.sh runs it on every run (a second run installs nothing). Prints the extra pkg-config directory to
# pass as -Dpkg_config_path= as its last line (see libsoup below).
set -euo pipefail

usage() {
  cat <<EOF
Usage: $0 [--help]

Environment (defaults):
  CROSS_EXTRA_DIR  where the arm64 libsoup-3.0 pkg-config file goes
                   (\$HOME/.cache/gst-mediamtx/arm64-extra)
EOF
}
[[ "${1:-}" == "--help" || "${1:-}" == "-h" ]] && { usage; exit 0; }
CROSS_EXTRA_DIR="${CROSS_EXTRA_DIR:-$HOME/.cache/gst-mediamtx/arm64-extra}"
echo "cross-setup: CROSS_EXTRA_DIR=$CROSS_EXTRA_DIR" >&2

packages=(
  g++-aarch64-linux-gnu qemu-user-static
  libglib2.0-dev:arm64 libjson-glib-dev:arm64 libssl-dev:arm64 libgstreamer1.0-dev:arm64
  # runtimes of the -dev packages unpacked below, and the -dev packages their .pc files name
  libsoup-3.0-0:arm64 libgstreamer-plugins-base1.0-0:arm64 libgstreamer-plugins-bad1.0-0:arm64
  libbrotli-dev:arm64 libnghttp2-dev:arm64 libpsl-dev:arm64 libsqlite3-dev:arm64 zlib1g-dev:arm64
  liborc-0.4-dev:arm64
  # what the tests load under qemu (rtspclientsink's gstreamer1.0-rtsp:arm64 is not co-installable)
  gstreamer1.0-plugins-base:arm64 gstreamer1.0-plugins-good:arm64 gstreamer1.0-plugins-bad:arm64
  gstreamer1.0-plugins-ugly:arm64 gstreamer1.0-nice:arm64
)
# Not co-installable with their amd64 twins on Debian 12 (installing them makes apt REMOVE the
# amd64 -dev packages: their gir1.2-* dependencies, or gobject-introspection:arm64, are not
# Multi-Arch: same). Never apt-get install these: their .pc files are unpacked into
# CROSS_EXTRA_DIR instead, pointing at the host's identical headers and the arm64 runtimes.
unpacked=(libsoup-3.0-dev libgstreamer-plugins-base1.0-dev libgstreamer-plugins-bad1.0-dev)
if ! dpkg --print-foreign-architectures | grep -qx arm64; then
  [[ $(id -u) -eq 0 ]] || { echo "cross-setup: needs root to add the arm64 architecture" >&2; exit 1; }
  dpkg --add-architecture arm64
  apt-get -o DPkg::Lock::Timeout=600 update -qq
fi
missing=()
for p in "${packages[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
if ((${#missing[@]})); then
  [[ $(id -u) -eq 0 ]] || { echo "cross-setup: needs root to install ${missing[*]}" >&2; exit 1; }
  echo "cross-setup: installing ${missing[*]}" >&2
  apt-get -o DPkg::Lock::Timeout=600 update -qq
  # Never let apt trade an amd64 package for an arm64 one: refuse when the plan removes anything.
  if apt-get install -s --no-install-recommends "${missing[@]}" 2>&1 | grep -q '^Remv '; then
    echo "cross-setup: installing ${missing[*]} would remove packages; not installing:" >&2
    apt-get install -s --no-install-recommends "${missing[@]}" 2>&1 | grep '^Remv ' >&2
    exit 1
  fi
  DEBIAN_FRONTEND=noninteractive apt-get -o DPkg::Lock::Timeout=600 install -y -qq --no-install-recommends "${missing[@]}" >&2
fi

# The .pc files of the unpacked packages: libdir is a folder of .so links to the installed arm64
# runtimes, includedir stays /usr/include (Multi-Arch: same packages, identical headers), and
# Requires.private goes (only static linking needs it).
pcdir="$CROSS_EXTRA_DIR/pkgconfig"
stamp="$CROSS_EXTRA_DIR/unpacked.list"
if [[ "$(cat "$stamp" 2>/dev/null)" != "${unpacked[*]} gstreamer1.0-tools" ]]; then
  tmp="$(mktemp -d)"
  chown _apt "$tmp" 2>/dev/null || true  # apt-get download runs as _apt
  trap 'rm -rf "$tmp"' EXIT
  rm -rf "$pcdir" "${CROSS_EXTRA_DIR:?}/lib" "${CROSS_EXTRA_DIR:?}/bin"
  mkdir -p "$pcdir" "$CROSS_EXTRA_DIR/lib"
  for p in "${unpacked[@]}"; do
    (cd "$tmp" && apt-get download -qq "$p:arm64" >&2)
    dpkg-deb -x "$tmp/${p}"_*_arm64.deb "$tmp/root"
  done
  libdir="$tmp/root/usr/lib/aarch64-linux-gnu"
  for link in "$libdir"/*.so; do
    ln -sf "/usr/lib/aarch64-linux-gnu/$(readlink "$link")" "$CROSS_EXTRA_DIR/lib/$(basename "$link")"
  done
  for pc in "$libdir"/pkgconfig/*.pc; do
    sed -e "s|^libdir=.*|libdir=$CROSS_EXTRA_DIR/lib|" -e '/^Requires.private:/d' "$pc" > "$pcdir/$(basename "$pc")"
  done
  # The arm64 gst-inspect-1.0 (gstreamer1.0-tools:arm64 is not co-installable either), to inspect
  # the arm64 package's plugin under qemu (tests/arm64/check-deb.sh DEB_ARCH=arm64).
  (cd "$tmp" && apt-get download -qq gstreamer1.0-tools:arm64 >&2)
  dpkg-deb -x "$tmp"/gstreamer1.0-tools_*_arm64.deb "$tmp/tools"
  install -D -m 0755 "$tmp/tools/usr/bin/gst-inspect-1.0" "$CROSS_EXTRA_DIR/bin/gst-inspect-1.0"
  echo "${unpacked[*]} gstreamer1.0-tools" > "$stamp"
fi
echo "$pcdir"

#!/usr/bin/env bash
# The Debian 13 "trixie" lane: GStreamer 1.26, GCC 14, libnice 0.1.22, PyGObject 3.50 (what
# Raspberry Pi OS 13 ships). Makes a trixie root file system with debootstrap from the Debian
# archive this machine's apt uses (cached outside the repository, rebuilt only when its package
# list changes), then, inside it (chroot, the source tree bind-mounted, the cache kept pristine
# under a throw-away overlay):
#   amd64  build with warnings as errors and the element suites against a real MediaMTX
#          (whepsrc, mediamtxsink, reconnectbin, integration), the docs generator's enum values
#   arm64  cross build with warnings as errors, the unit tests under qemu-user
#          (tests/arm64/check-cross.sh)
#   .deb   amd64 and arm64 packages (packaging/build-deb.sh); the amd64 one installed with apt and
#          checked with gst-inspect-1.0 mediamtx
# Last line: "N passed, N failed"; exits non-zero on any failure.
set -euo pipefail

usage() {
  cat <<EOF
Usage: $0 [--help] [STAGE...]

Stages (default: all): amd64 arm64 deb; "rootfs" alone only makes (or checks) the cached root
file system. Needs root (debootstrap, chroot, mounts, namespaces).

Environment (defaults):
  TRIXIE_ROOT        cached root file system        (\$HOME/.cache/gst-mediamtx/trixie-amd64)
  TRIXIE_MIRROR      Debian archive                 (the one in this machine's apt sources)
  TRIXIE_BUILD_DIR   build directory in the tree    (build-trixie; -arm64, -deb, -arm64-deb beside it)
  TRIXIE_SUITES      meson suites run inside        (whepsrc mediamtxsink reconnectbin integration)
  TRIXIE_JOBS        meson test --num-processes     (2)
  MEDIAMTX_BIN       MediaMTX binary (static Go)    (subprojects/build-mediamtx.sh's cache)
EOF
}
[[ "${1:-}" == "--help" || "${1:-}" == "-h" ]] && { usage; exit 0; }

src="$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)"
cd "$src"

# The mirror apt uses here for Debian itself (deb822 URIs: or one-line deb entries), not security.
default_mirror() {
  local m
  m="$(cat /etc/apt/sources.list /etc/apt/sources.list.d/*.list /etc/apt/sources.list.d/*.sources 2>/dev/null |
    grep -oE 'https?://[^ ]+/debian/?( |$)' | grep -v security | head -n 1 | tr -d ' ' || true)"
  echo "${m:-http://deb.debian.org/debian}"
}
TRIXIE_ROOT="${TRIXIE_ROOT:-$HOME/.cache/gst-mediamtx/trixie-amd64}"
TRIXIE_MIRROR="${TRIXIE_MIRROR:-$(default_mirror)}"
TRIXIE_BUILD_DIR="${TRIXIE_BUILD_DIR:-build-trixie}"
TRIXIE_SUITES="${TRIXIE_SUITES:-whepsrc mediamtxsink reconnectbin integration}"
TRIXIE_JOBS="${TRIXIE_JOBS:-2}"
stages="${*:-amd64 arm64 deb}"
# only the stages that run MediaMTX need it ("rootfs" alone runs beside tests/run.sh's own build)
if [[ "$stages" != rootfs ]]; then
  MEDIAMTX_BIN="${MEDIAMTX_BIN:-$(subprojects/build-mediamtx.sh | tail -n 1)}"
fi
MEDIAMTX_BIN="${MEDIAMTX_BIN:-}"
echo "trixie: TRIXIE_ROOT=$TRIXIE_ROOT TRIXIE_MIRROR=$TRIXIE_MIRROR TRIXIE_BUILD_DIR=$TRIXIE_BUILD_DIR"
echo "trixie: TRIXIE_SUITES=$TRIXIE_SUITES TRIXIE_JOBS=$TRIXIE_JOBS MEDIAMTX_BIN=$MEDIAMTX_BIN stages: $stages"

if [[ $(id -u) -ne 0 ]]; then
  echo "trixie: needs root (debootstrap, chroot, network namespaces)" >&2
  exit 1
fi
start=$SECONDS

# ---- the root file system (cached; rebuilt when this list or the mirror changes) ----
packages=(
  # build and tests (as subprojects/setup.sh, without the browser, fuzzing and valgrind)
  build-essential pkg-config meson ninja-build file git
  libglib2.0-dev libsoup-3.0-dev libjson-glib-dev libssl-dev
  libgstreamer1.0-dev libgstreamer-plugins-base1.0-dev libgstreamer-plugins-bad1.0-dev
  gstreamer1.0-tools gstreamer1.0-plugins-base gstreamer1.0-plugins-good gstreamer1.0-plugins-bad
  gstreamer1.0-plugins-ugly gstreamer1.0-libav gstreamer1.0-nice gstreamer1.0-rtsp gstreamer1.0-x
  iproute2 iptables nftables curl ca-certificates openssl procps psmisc libnetfilter-queue-dev
  # docs/gen-reference.py (PyGObject 3.50); the .deb's Depends and Recommends, so that installing
  # it needs no download
  python3 python3-gi gir1.2-gstreamer-1.0 gir1.2-gst-plugins-base-1.0 gir1.2-gst-plugins-bad-1.0
  gir1.2-gdkpixbuf-2.0 systemd
  # arm64 cross build and qemu-user
  g++-aarch64-linux-gnu qemu-user-static
  libglib2.0-dev:arm64 libjson-glib-dev:arm64 libssl-dev:arm64
  libgstreamer1.0-0:arm64 libgstreamer-plugins-base1.0-0:arm64 libgstreamer-plugins-bad1.0-0:arm64
  libsoup-3.0-0:arm64 liborc-0.4-dev:arm64
  gstreamer1.0-plugins-base:arm64 gstreamer1.0-plugins-good:arm64 gstreamer1.0-plugins-bad:arm64
  gstreamer1.0-plugins-ugly:arm64 gstreamer1.0-nice:arm64
)
# Their amd64 twins conflict with these on Debian 13 (libgstreamer1.0-dev:arm64 Conflicts
# libgstreamer1.0-dev; plugins-bad's arm64 -dev wants libopencv-dev:arm64): unpacked, not
# installed, into $arm64_dev, .pc files pointing at the installed arm64 runtimes.
# A run that finds another one making the root waits for it (flock on $TRIXIE_ROOT.lock).
unpacked=(libgstreamer1.0-dev libgstreamer-plugins-base1.0-dev libgstreamer-plugins-bad1.0-dev libsoup-3.0-dev)
arm64_dev=/opt/arm64-dev
stamp_text="mirror=$TRIXIE_MIRROR packages=${packages[*]} unpacked=${unpacked[*]} v3"
stamp="$TRIXIE_ROOT/.gst-mediamtx-stamp"

make_rootfs() {
  command -v debootstrap >/dev/null || {
    echo "trixie: installing debootstrap"
    apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends debootstrap
  }
  local new="$TRIXIE_ROOT.new"
  rm -rf "$new" "$TRIXIE_ROOT"
  mkdir -p "$(dirname "$TRIXIE_ROOT")"
  local t=$SECONDS
  debootstrap --variant=minbase trixie "$new" "$TRIXIE_MIRROR" > "$new.log" 2>&1 || {
    tail -n 30 "$new.log"; echo "trixie: debootstrap failed (log: $new.log)" >&2; return 1; }
  echo "trixie: debootstrap took $((SECONDS - t)) s"
  mkdir -p "$new/etc/dpkg/dpkg.cfg.d"
  local security="${TRIXIE_MIRROR%/debian*}/debian-security"
  cat > "$new/etc/apt/sources.list" <<EOF
deb $TRIXIE_MIRROR trixie main
deb $TRIXIE_MIRROR trixie-updates main
deb $security trixie-security main
EOF
  printf 'APT::Install-Recommends "false";\nAPT::Install-Suggests "false";\n' > "$new/etc/apt/apt.conf.d/90gst-mediamtx"
  # a throw-away root: no fsync per file while unpacking ~1000 packages
  echo force-unsafe-io > "$new/etc/dpkg/dpkg.cfg.d/90gst-mediamtx-unsafe-io"
  printf '#!/bin/sh\nexit 101\n' > "$new/usr/sbin/policy-rc.d" # start no services
  chmod 0755 "$new/usr/sbin/policy-rc.d"
  t=$SECONDS
  # One apt transaction; /proc and /dev for the maintainer scripts, in a mount namespace of its own.
  # shellcheck disable=SC2016
  unshare --mount --propagation private -- bash -euo pipefail -c '
    r="$1"; shift
    mount -t proc proc "$r/proc"; mount --rbind /dev "$r/dev"; mount -t sysfs sysfs "$r/sys"
    chroot "$r" dpkg --add-architecture arm64
    chroot "$r" apt-get update -qq
    DEBIAN_FRONTEND=noninteractive chroot "$r" apt-get install -y -qq -o Dpkg::Use-Pty=0 "$@" >"$r.log" 2>&1 ||
      { tail -n 40 "$r.log"; exit 1; }
    chroot "$r" apt-get clean' _ "$new" "${packages[@]}"
  echo "trixie: packages took $((SECONDS - t)) s"
  # The unpacked arm64 -dev packages: headers as shipped (gstconfig.h is per architecture), .so
  # links to the installed runtimes, .pc files with the new prefix and no Requires.private.
  # shellcheck disable=SC2016
  chroot "$new" bash -euo pipefail -c '
    d="$1"; shift
    mkdir -p /tmp/dl "$d"
    cd /tmp/dl
    for p in "$@"; do apt-get download -qq -o APT::Sandbox::User=root "$p:arm64"; dpkg-deb -x "${p}"_*_arm64.deb "$d"; done
    lib="$d/usr/lib/aarch64-linux-gnu"
    for link in "$lib"/*.so; do ln -sf "/usr/lib/aarch64-linux-gnu/$(readlink "$link")" "$link"; done
    # headers and link-time libraries from here; the plugin directory stays the system one
    sed -i -e "s|^includedir=.*|includedir=$d/usr/include|" -e "s|^libdir=.*|libdir=$lib|" \
      -e "s|^pluginsdir=.*|pluginsdir=/usr/lib/aarch64-linux-gnu/gstreamer-1.0|" \
      -e "/^Requires.private:/d" "$lib"/pkgconfig/*.pc
    # where the -dev packages would put them, so pkg-config finds them as on Debian 12
    cp "$lib"/pkgconfig/*.pc /usr/lib/aarch64-linux-gnu/pkgconfig/
    cd / && rm -rf /tmp/dl' _ "$arm64_dev" "${unpacked[@]}"
  echo "$stamp_text" > "$new/.gst-mediamtx-stamp"
  mv "$new" "$TRIXIE_ROOT"
  rm -f "$new.log"
}

mkdir -p "$(dirname "$TRIXIE_ROOT")"
exec 9>"$TRIXIE_ROOT.lock"
flock 9
if [[ "$(cat "$stamp" 2>/dev/null)" != "$stamp_text" ]]; then
  echo "trixie: making the root file system in $TRIXIE_ROOT (Debian 13 from $TRIXIE_MIRROR)"
  make_rootfs
else
  echo "trixie: reusing $TRIXIE_ROOT"
fi
flock -u 9
echo "trixie: root file system ready after $((SECONDS - start)) s"
[[ "$stages" == rootfs ]] && exit 0

# ---- inside: an overlay on the cached root (thrown away), the tree at /src ----
work="$(mktemp -d)"
trap 'rm -rf "$work"' EXIT
install -m 0755 "$MEDIAMTX_BIN" "$work/mediamtx"
read -r -a stage_args <<<"$stages"
export TRIXIE_BUILD_DIR TRIXIE_SUITES TRIXIE_JOBS
status=0
# shellcheck disable=SC2016
unshare --mount --propagation private -- bash -euo pipefail -c '
  lower="$1" src="$2" work="$3"; shift 3
  mkdir "$work/mnt"
  mount -t tmpfs tmpfs "$work/mnt"
  mkdir "$work/mnt/upper" "$work/mnt/work" "$work/mnt/root"
  r="$work/mnt/root"
  mount -t overlay overlay -o "lowerdir=$lower,upperdir=$work/mnt/upper,workdir=$work/mnt/work" "$r"
  mount -t proc proc "$r/proc"; mount --rbind /dev "$r/dev"; mount -t sysfs sysfs "$r/sys"
  mount -t tmpfs tmpfs "$r/tmp"
  mkdir -p "$r/src"; mount --bind "$src" "$r/src"
  install -m 0755 "$work/mediamtx" "$r/usr/local/bin/mediamtx"
  exec chroot "$r" /usr/bin/env -i PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin \
    HOME=/root LANG=C.UTF-8 TRIXIE_BUILD_DIR="$TRIXIE_BUILD_DIR" TRIXIE_SUITES="$TRIXIE_SUITES" \
    TRIXIE_JOBS="$TRIXIE_JOBS" ARM64_DEV=/opt/arm64-dev/usr/lib/aarch64-linux-gnu \
    /src/tests/trixie/inside.sh "$@"' _ "$TRIXIE_ROOT" "$src" "$work" "${stage_args[@]}" || status=$?
echo "trixie: took $((SECONDS - start)) s"
exit "$status"

#!/usr/bin/env bash
# Builds the gst-mediamtx Debian package (plugin, pipeline scripts, systemd units, deployment files)
# with standard Debian tooling: `meson install --destdir` into a staging tree, dpkg-shlibdeps for
# the library dependencies, dpkg-deb --root-owner-group --build. Prints the .deb path as its last line.
#
#   packaging/build-deb.sh                                   # amd64, from a /usr build in build-deb
#   BUILD_DIR=build-arm64 CROSS=1 packaging/build-deb.sh     # arm64, cross (packaging/aarch64-linux-gnu.ini)
set -euo pipefail

usage() {
  cat <<EOF
Usage: $0 [--help]

Configures (prefix /usr, release, no tests) and builds BUILD_DIR if needed, installs it into a
staging tree and packs gst-mediamtx_<version>_<arch>.deb into OUT_DIR.

Environment (defaults):
  BUILD_DIR        meson build directory, configured here with --prefix=/usr  (build-deb)
  CROSS            1: cross build for arm64 with packaging/aarch64-linux-gnu.ini (0)
  CROSS_PKG_PATH   extra pkg-config dir for the cross build (packaging/cross-setup.sh prints it)
  OUT_DIR          where the .deb is written                                  (BUILD_DIR/deb)
  BUILD_TARGETS    ninja targets to build in BUILD_DIR, e.g. plugins/libgstmediamtx.so
                   when BUILD_DIR is a test build already built                (all)
  MAINTAINER       Maintainer field        (gst-mediamtx maintainers <gst-mediamtx@localhost>)
EOF
}
[[ "${1:-}" == "--help" || "${1:-}" == "-h" ]] && { usage; exit 0; }

root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$root"
BUILD_DIR="${BUILD_DIR:-build-deb}"
CROSS="${CROSS:-0}"
CROSS_PKG_PATH="${CROSS_PKG_PATH:-}"
OUT_DIR="${OUT_DIR:-$BUILD_DIR/deb}"
BUILD_TARGETS="${BUILD_TARGETS:-}"
MAINTAINER="${MAINTAINER:-gst-mediamtx maintainers <gst-mediamtx@localhost>}"
echo "build-deb: BUILD_DIR=$BUILD_DIR CROSS=$CROSS CROSS_PKG_PATH=$CROSS_PKG_PATH OUT_DIR=$OUT_DIR" \
  "BUILD_TARGETS=${BUILD_TARGETS:-<all>}" >&2

if [[ "$CROSS" == "1" ]]; then
  arch=arm64
  setup_args=(--cross-file packaging/aarch64-linux-gnu.ini)
  [[ -n "$CROSS_PKG_PATH" ]] && setup_args+=(-Dpkg_config_path="$CROSS_PKG_PATH")
else
  arch="$(dpkg --print-architecture)"
  setup_args=()
fi
if [[ ! -f "$BUILD_DIR/build.ninja" ]]; then
  meson setup "$BUILD_DIR" "${setup_args[@]}" --prefix=/usr --buildtype=release -Dtests=disabled \
    -Dwerror=true >&2
fi
# shellcheck disable=SC2086
ninja -C "$BUILD_DIR" $BUILD_TARGETS >&2

version="$(meson introspect --projectinfo "$BUILD_DIR" | python3 -c 'import json,sys; print(json.load(sys.stdin)["version"])')"
stage="$(mktemp -d)"
trap 'rm -rf "$stage"' EXIT
pkg="$stage/pkg"
DESTDIR="$pkg" meson install -C "$BUILD_DIR" --no-rebuild --quiet >&2

multiarch="$(dpkg-architecture -a"$arch" -qDEB_HOST_MULTIARCH 2>/dev/null)"
plugin="$pkg/usr/lib/$multiarch/gstreamer-1.0/libgstmediamtx.so"
[[ -f "$plugin" ]] || { echo "build-deb: $plugin was not installed (prefix /usr?)" >&2; exit 1; }
strip_tool="strip"
[[ "$CROSS" == "1" ]] && strip_tool=aarch64-linux-gnu-strip
"$strip_tool" --strip-unneeded --remove-section=.comment --remove-section=.note "$plugin"

# Settings the units read, as conffiles: the examples, to be edited before `systemctl enable --now`.
install -d "$pkg/etc/gst-mediamtx"
for role in publisher viewer wall recorder; do
  install -m 0644 "pipelines/deploy/systemd/$role.env.example" "$pkg/etc/gst-mediamtx/$role.env"
done
install -d "$pkg/usr/share/doc/gst-mediamtx"
cat > "$pkg/usr/share/doc/gst-mediamtx/copyright" <<EOF
Format: https://www.debian.org/doc/packaging-manuals/copyright-format/1.0/
Upstream-Name: gst-mediamtx

Files: *
Copyright: gst-mediamtx contributors
License: LGPL-2.1-or-later
 On Debian systems the full text is in /usr/share/common-licenses/LGPL-2.1.
EOF
# Debian policy: a changelog in every package (a native package: changelog.gz).
cat > "$stage/changelog" <<EOF
gst-mediamtx ($version) unstable; urgency=medium

  * Built from the gst-mediamtx source tree by packaging/build-deb.sh.

 -- $MAINTAINER  $(date -R -d "@${SOURCE_DATE_EPOCH:-$(git log -1 --format=%ct 2>/dev/null || date +%s)}")
EOF
gzip -9n < "$stage/changelog" > "$pkg/usr/share/doc/gst-mediamtx/changelog.gz"
[[ -f docs/raspberry-pi.md ]] && install -m 0644 docs/raspberry-pi.md "$pkg/usr/share/doc/gst-mediamtx/"

# Library dependencies of the plugin, from the shlibs/symbols files of the installed packages.
install -d "$pkg/DEBIAN" "$stage/debian"
printf 'Source: gst-mediamtx\n\nPackage: gst-mediamtx\nArchitecture: %s\n' "$arch" > "$stage/debian/control"
shlibs="$(cd "$stage" && DEB_HOST_ARCH="$arch" dpkg-shlibdeps -O -e"${plugin#"$stage"/}" 2>/dev/null |
  sed -n 's/^shlibs:Depends=//p')"
[[ -n "$shlibs" ]] || { echo "build-deb: dpkg-shlibdeps found no dependencies" >&2; exit 1; }

# Elements the plugin and the scripts create at run time (not linked, so not in shlibs):
# webrtcbin, h264parse (bad), rtspclientsink (rtsp), rtp/rtsp elements (good), videoconvert and
# friends (base), libnice (nice), gst-launch-1.0 (tools). Every script runs pipelines/gst-mediamtx-run.py
# (PyGObject + the Gst typelib); its TIME_CODE=1 draws and reads with GstVideo and GdkPixbuf (Recommends).
# textoverlay (gstreamer1.0-x, pango): whepsrc's placeholder slate, wall.sh's labels.
runtime="gstreamer1.0-plugins-base (>= 1.22), gstreamer1.0-plugins-good (>= 1.22), gstreamer1.0-plugins-bad (>= 1.22), gstreamer1.0-nice, gstreamer1.0-rtsp (>= 1.22), gstreamer1.0-tools (>= 1.22), gstreamer1.0-x (>= 1.22), python3, python3-gi, gir1.2-gstreamer-1.0"
installed_size="$(du -sk --exclude=DEBIAN "$pkg" | cut -f1)"
cat > "$pkg/DEBIAN/control" <<EOF
Package: gst-mediamtx
Version: $version
Architecture: $arch
Maintainer: $MAINTAINER
Installed-Size: $installed_size
Depends: $shlibs, $runtime, systemd
Recommends: gstreamer1.0-plugins-ugly, gstreamer1.0-libav, gir1.2-gst-plugins-base-1.0, gir1.2-gdkpixbuf-2.0
Suggests: gstreamer1.0-libcamera
Section: video
Priority: optional
Homepage: https://github.com/bluenviron/mediamtx
Description: GStreamer elements and services for low-latency streaming through MediaMTX
 Plugin "mediamtx": whepsrc (WHEP viewer), mediamtxsink (RTSP/WHIP publisher
 that picks and tunes the H.264 encoder: v4l2h264enc on a Raspberry Pi 4,
 x264enc elsewhere) and reconnectbin; plus the pipeline scripts and the
 systemd units that run a camera publisher, a viewer, a camera wall or a recorder.
EOF
(cd "$pkg" && find etc -type f | sed 's|^|/|') > "$pkg/DEBIAN/conffiles"

cat > "$pkg/DEBIAN/postinst" <<'EOF'
#!/bin/sh
# gst-mediamtx: create the service account, make systemd see the units. Nothing is enabled:
# edit /etc/gst-mediamtx/publisher.env, then systemctl enable --now gst-mediamtx-publisher.
set -e
if [ "$1" = configure ]; then
  if command -v systemd-sysusers >/dev/null 2>&1; then
    systemd-sysusers gst-mediamtx.conf || true
  fi
  if [ -d /run/systemd/system ]; then
    systemctl daemon-reload || true
  fi
fi
exit 0
EOF
cat > "$pkg/DEBIAN/prerm" <<'EOF'
#!/bin/sh
# gst-mediamtx: stop the services before their files go.
set -e
if [ "$1" = remove ] && [ -d /run/systemd/system ]; then
  systemctl stop gst-mediamtx-publisher.service 'gst-mediamtx-publisher@*.service' \
    gst-mediamtx-viewer.service gst-mediamtx-wall.service gst-mediamtx-recorder.service >/dev/null 2>&1 || true
fi
exit 0
EOF
cat > "$pkg/DEBIAN/postrm" <<'EOF'
#!/bin/sh
# gst-mediamtx: forget the units once their files are gone.
set -e
if [ -d /run/systemd/system ]; then
  systemctl daemon-reload >/dev/null 2>&1 || true
fi
exit 0
EOF
chmod 0755 "$pkg/DEBIAN/postinst" "$pkg/DEBIAN/prerm" "$pkg/DEBIAN/postrm"

mkdir -p "$OUT_DIR"
deb="$OUT_DIR/gst-mediamtx_${version}_${arch}.deb"
dpkg-deb --root-owner-group -Zxz --build "$pkg" "$deb" >&2
echo "$deb"

#!/usr/bin/env bash
# arm64/deb: builds the amd64 gst-mediamtx .deb with packaging/build-deb.sh and checks it: files in
# the right places (plugin in the GStreamer plugin dir of the multiarch triplet, scripts, units,
# sysusers, conffiles), Depends on the runtime packages, dpkg accepts it (dpkg --dry-run -i), and
# the plugin unpacked from it registers the three elements. With DEB_ARCH=arm64 (called so by
# tests/arm64/check-cross.sh) the same checks on the arm64 package cross-built from DEB_BUILD_DIR:
# dpkg's dry run ignores the dependencies (the arm64 runtime is not installable here) and the
# plugin is inspected by the arm64 gst-inspect-1.0 under qemu-aarch64-static
# (packaging/cross-setup.sh unpacks it). Last line: "N passed, N failed".
set -euo pipefail

usage() {
  cat <<EOF
Usage: $0 [--help]

Environment (defaults):
  DEB_ARCH       amd64 (this machine's) or arm64 (cross)                   (this machine's)
  DEB_BUILD_DIR  build directory for the package (prefix /usr, no tests)   (build-deb)
  BUILD_TARGETS  ninja targets build-deb.sh builds                         (all)
  CROSS_EXTRA_DIR  arm64 only: packaging/cross-setup.sh's folder   (\$HOME/.cache/gst-mediamtx/arm64-extra)
EOF
}
[[ "${1:-}" == "--help" || "${1:-}" == "-h" ]] && { usage; exit 0; }

root="$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)"
cd "$root"
DEB_ARCH="${DEB_ARCH:-$(dpkg --print-architecture)}"
DEB_BUILD_DIR="${DEB_BUILD_DIR:-build-deb}"
BUILD_TARGETS="${BUILD_TARGETS:-}"
CROSS_EXTRA_DIR="${CROSS_EXTRA_DIR:-$HOME/.cache/gst-mediamtx/arm64-extra}"
echo "arm64/deb: DEB_ARCH=$DEB_ARCH DEB_BUILD_DIR=$DEB_BUILD_DIR BUILD_TARGETS=${BUILD_TARGETS:-<all>}" \
  "CROSS_EXTRA_DIR=$CROSS_EXTRA_DIR"
cross=()
if [[ "$DEB_ARCH" != "$(dpkg --print-architecture)" ]]; then
  [[ "$DEB_ARCH" == arm64 ]] || { echo "arm64/deb: DEB_ARCH must be $(dpkg --print-architecture) or arm64" >&2; exit 2; }
  cross=(CROSS=1 CROSS_PKG_PATH="$CROSS_EXTRA_DIR/pkgconfig")
fi
for tool in dpkg-deb dpkg-shlibdeps gst-inspect-1.0; do
  if ! command -v "$tool" >/dev/null; then
    echo "arm64/deb: SKIPPED: no $tool (dpkg-dev, gstreamer1.0-tools)"
    echo "0 passed, 0 failed"
    exit 77
  fi
done

passed=0 failed=0
check() { # name, command...
  local name="$1"; shift
  if "$@"; then echo "ok: $name"; passed=$((passed + 1)); else echo "FAILED: $name"; failed=$((failed + 1)); fi
}

start=$SECONDS
log="$(mktemp)"
scratch="$(mktemp -d)"
# --one-file-system: never into a mount left behind below scratch (the install overlay binds /dev)
trap 'rm -rf --one-file-system "$log" "$scratch"' EXIT
if deb="$(env BUILD_DIR="$DEB_BUILD_DIR" BUILD_TARGETS="$BUILD_TARGETS" "${cross[@]}" packaging/build-deb.sh 2>"$log" |
  tail -n 1)" && [[ -f "$deb" ]]; then
  echo "ok: packaging/build-deb.sh built $deb in $((SECONDS - start)) s"
  passed=$((passed + 1))
else
  cat "$log"
  echo "FAILED: packaging/build-deb.sh"
  echo "$passed passed, $((failed + 1)) failed"
  exit 1
fi

deb="$(realpath "$deb")"
arch="$DEB_ARCH"
triplet="$(dpkg-architecture -a"$arch" -qDEB_HOST_MULTIARCH 2>/dev/null)"
contents="$(dpkg-deb -c "$deb" | awk '{print $6}')"
has_file() { grep -qx "./$1" <<<"$contents"; }
check "name gst-mediamtx_<version>_$arch.deb" bash -c "[[ '$(basename "$deb")' == gst-mediamtx_*_$arch.deb ]]"
check "plugin in /usr/lib/$triplet/gstreamer-1.0/" has_file "usr/lib/$triplet/gstreamer-1.0/libgstmediamtx.so"
for unit in publisher viewer recorder; do
  check "unit gst-mediamtx-$unit.service" has_file "usr/lib/systemd/system/gst-mediamtx-$unit.service"
  check "conffile /etc/gst-mediamtx/$unit.env" bash -c "dpkg-deb -f '$deb' >/dev/null && dpkg-deb --ctrl-tarfile '$deb' | tar -xO ./conffiles | grep -qx /etc/gst-mediamtx/$unit.env"
done
check "template unit gst-mediamtx-publisher@.service (one per camera)" \
  has_file "usr/lib/systemd/system/gst-mediamtx-publisher@.service"
check "sysusers.d/gst-mediamtx.conf" has_file "usr/lib/sysusers.d/gst-mediamtx.conf"
check "pipeline scripts in /usr/share/gst-mediamtx/pipelines/" has_file "usr/share/gst-mediamtx/pipelines/demo.sh"
check "mediamtx.yml" has_file "usr/share/gst-mediamtx/deploy/mediamtx.yml"
check "copyright" has_file "usr/share/doc/gst-mediamtx/copyright"

depends="$(dpkg-deb -f "$deb" Depends)"
echo "arm64/deb: Depends: $depends"
for dep in libgstreamer1.0-0 libgstreamer-plugins-base1.0-0 libgstreamer-plugins-bad1.0-0 libsoup-3.0-0 libjson-glib-1.0-0 \
  libglib2.0-0 libstdc++6 gstreamer1.0-plugins-base gstreamer1.0-plugins-good gstreamer1.0-plugins-bad \
  gstreamer1.0-nice gstreamer1.0-rtsp gstreamer1.0-tools python3 python3-gi gir1.2-gstreamer-1.0 systemd; do
  check "Depends: $dep" bash -c "grep -Eq '(^|, )${dep//+/\\+}( |,|$)' <<<'$depends'"
done
check "Architecture: $arch" bash -c "[[ '$(dpkg-deb -f "$deb" Architecture)' == '$arch' ]]"
check "maintainer scripts are sh -n clean" bash -c \
  "cd '$scratch' && dpkg-deb -e '$deb' ctrl && for s in ctrl/postinst ctrl/prerm ctrl/postrm; do sh -n \$s || exit 1; done"
if ((${#cross[@]})); then
  check "dpkg --dry-run -i accepts it (dependencies aside: the arm64 runtime is not installable here)" \
    dpkg --dry-run --force-depends -i "$deb"
else
  check "dpkg --dry-run -i accepts it here" dpkg --dry-run -i "$deb"
fi

# The tree as installed: units point at files that exist in it, and the plugin loads from it.
dpkg-deb -x "$deb" "$scratch/root"
check "publisher unit runs a script from /usr/share/gst-mediamtx/pipelines/" \
  grep -qx "ExecStart=/usr/share/gst-mediamtx/pipelines/publish-camera.sh" \
  "$scratch/root/usr/lib/systemd/system/gst-mediamtx-publisher.service"
if [[ ! -f pipelines/publish-camera.sh ]]; then
  echo "arm64/deb: note: pipelines/publish-camera.sh is not in this tree yet (another branch): the package" \
    "ships it as soon as it exists (pipelines/meson.build installs it)"
fi
inspect_cmd=(gst-inspect-1.0)
if ((${#cross[@]})); then
  # No binfmt_misc here: qemu runs the arm64 gst-inspect-1.0, which scans in-process (no forked
  # arm64 gst-plugin-scanner) and only the package's plugin folder.
  inspect_cmd=(env GST_REGISTRY_FORK=no GST_PLUGIN_SYSTEM_PATH_1_0="$scratch/none"
    qemu-aarch64-static "$CROSS_EXTRA_DIR/bin/gst-inspect-1.0")
  mkdir -p "$scratch/none"
fi
inspect="$(GST_PLUGIN_PATH="$scratch/root/usr/lib/$triplet/gstreamer-1.0" GST_REGISTRY="$scratch/registry.bin" \
  "${inspect_cmd[@]}" mediamtx 2>&1 || true)"
for element in whepsrc mediamtxsink reconnectbin; do
  check "unpacked plugin registers $element" grep -q "$element" <<<"$inspect"
done

# Installed for real into this machine's release (Debian 12 here; the trixie lane does the same in
# its Debian 13 root): apt installs the package into a throw-away overlay of this root file system,
# so the maintainer scripts run and the dependencies resolve, and the system's own gst-inspect-1.0
# finds the plugin where GStreamer looks for it. The machine itself is left untouched.
install_into_overlay() {
  local top="$scratch/overlay"
  mkdir -p "$top/upper" "$top/work" "$top/merged"
  cp "$deb" "$top/upper/"
  # A private mount namespace: every mount below ends with it, whatever happens.
  # shellcheck disable=SC2016 # expanded by the inner shell
  if ! unshare -m --propagation private bash -euo pipefail -c '
      top=$1 deb=$2
      mount -t overlay overlay -o "lowerdir=/,upperdir=$top/upper,workdir=$top/work" "$top/merged"
      mount -t proc proc "$top/merged/proc"
      mount --rbind /dev "$top/merged/dev"
      mount -t tmpfs tmpfs "$top/merged/tmp"
      # every dependency is installed here already (the tests need them too): nothing to fetch
      chroot "$top/merged" env -C / DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "/$deb"
      chroot "$top/merged" env -u GST_PLUGIN_PATH GST_REGISTRY=/tmp/registry.bin gst-inspect-1.0 mediamtx \
        >"$top/inspect.txt" 2>&1
    ' install "$top" "$(basename "$deb")" >"$scratch/apt.log" 2>&1; then
    tail -n 20 "$scratch/apt.log" "$top/inspect.txt" 2>/dev/null
    return 1
  fi
  for element in whepsrc mediamtxsink reconnectbin; do
    grep -q "$element" "$top/inspect.txt" || { echo "no $element in:"; cat "$top/inspect.txt"; return 1; }
  done
}
if ((${#cross[@]} == 0)); then
  if [[ $(id -u) -eq 0 ]]; then
    check "apt installs it into this release (a throw-away overlay of /), gst-inspect-1.0 mediamtx lists the three elements" \
      install_into_overlay
  else
    echo "arm64/deb: SKIPPED: installing the package needs root (mount, chroot)"
  fi
fi
echo "arm64/deb: took $((SECONDS - start)) s"
echo "$passed passed, $failed failed"
((failed == 0))

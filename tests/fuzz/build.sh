#!/usr/bin/env bash
# gst-mediamtx: builds one libFuzzer binary per fuzz target (tests/fuzz/fuzz_targets.h) with clang,
# AddressSanitizer and UndefinedBehaviorSanitizer, straight from the gst/ sources (no Meson build
# needed). Prints the output directory as its last line.
set -euo pipefail

usage() {
  cat <<EOF2
Usage: $0 [--help]

Compiles gst/*.cpp and tests/fuzz/fuzz_targets.cpp once with -fsanitize=fuzzer-no-link,address,undefined,
then links fuzz-<target> for every target. Needs clang++ (subprojects/setup.sh installs clang-N and
libclang-rt-N-dev: 14 on Debian 12, 19 on Debian 13) and the -dev packages of GStreamer, libsoup 3 and GLib.

Environment (defaults):
  FUZZ_CXX        clang++ to use                 (clang++, else the newest clang++-N)
  FUZZ_BUILD_DIR  output directory               (build-fuzz)
  FUZZ_SANITIZE   sanitizers besides fuzzer      (address,undefined)
  FUZZ_JOBS       parallel compile jobs          (nproc)
EOF2
}
[[ "${1:-}" == "--help" || "${1:-}" == "-h" ]] && { usage; exit 0; }

root="$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)"
# clang++, else the newest versioned one (Debian 12: clang++-14, Debian 13: clang++-19)
default_cxx=clang++
if ! command -v clang++ >/dev/null; then
  newest="$(compgen -c clang++- | grep -E '^clang\+\+-[0-9]+$' | sort -t- -k2 -n | tail -n 1 || true)"
  default_cxx="${newest:-clang++-14}"
fi
FUZZ_CXX="${FUZZ_CXX:-$default_cxx}"
FUZZ_BUILD_DIR="${FUZZ_BUILD_DIR:-$root/build-fuzz}"
FUZZ_SANITIZE="${FUZZ_SANITIZE:-address,undefined}"
FUZZ_JOBS="${FUZZ_JOBS:-$(nproc)}"
echo "fuzz build: FUZZ_CXX=$FUZZ_CXX FUZZ_BUILD_DIR=$FUZZ_BUILD_DIR FUZZ_SANITIZE=$FUZZ_SANITIZE FUZZ_JOBS=$FUZZ_JOBS" >&2

if ! command -v "$FUZZ_CXX" >/dev/null; then
  echo "fuzz build: $FUZZ_CXX not found (install clang and libclang-rt-N-dev, or run subprojects/setup.sh)" >&2
  exit 1
fi

mkdir -p "$FUZZ_BUILD_DIR/obj"
pkgs=(gstreamer-1.0 gstreamer-video-1.0 gstreamer-sdp-1.0 gstreamer-webrtc-1.0 gstreamer-rtp-1.0 libsoup-3.0 json-glib-1.0 gio-2.0)
read -r -a pkg_cflags <<<"$(pkg-config --cflags "${pkgs[@]}")"
read -r -a pkg_libs <<<"$(pkg-config --libs "${pkgs[@]}")"
common=(-std=c++17 -g -O1 -fno-omit-frame-pointer -fno-sanitize-recover=undefined
        -DGST_USE_UNSTABLE_API '-DPACKAGE_VERSION="fuzz"' -I"$root/gst")

# Objects, rebuilt when their source is newer; compiled FUZZ_JOBS at a time.
sources=("$root"/gst/*.cpp "$root/tests/fuzz/fuzz_targets.cpp")
objects=()
pids=()
for src in "${sources[@]}"; do
  obj="$FUZZ_BUILD_DIR/obj/$(basename "${src%.cpp}").o"
  objects+=("$obj")
  if [[ ! -f "$obj" || "$src" -nt "$obj" || "$root/tests/fuzz/fuzz_targets.h" -nt "$obj" ]]; then
    "$FUZZ_CXX" "${common[@]}" -fsanitize=fuzzer-no-link,"$FUZZ_SANITIZE" "${pkg_cflags[@]}" -c "$src" -o "$obj" &
    pids+=($!)
    if ((${#pids[@]} >= FUZZ_JOBS)); then
      wait "${pids[0]}"
      pids=("${pids[@]:1}")
    fi
  fi
done
for pid in "${pids[@]}"; do wait "$pid"; done

targets=$(sed -n 's/^ *{"\([a-z_]*\)", [a-z_]*},$/\1/p' "$root/tests/fuzz/fuzz_targets.cpp")
for target in $targets; do
  "$FUZZ_CXX" "${common[@]}" -fsanitize=fuzzer,"$FUZZ_SANITIZE" -DFUZZ_TARGET="$target" \
    "$root/tests/fuzz/fuzz_main.cpp" "${pkg_cflags[@]}" "${objects[@]}" "${pkg_libs[@]}" -o "$FUZZ_BUILD_DIR/fuzz-$target"
done
echo "fuzz build: built $(echo "$targets" | wc -w) targets" >&2
echo "$FUZZ_BUILD_DIR"

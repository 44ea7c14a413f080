#!/usr/bin/env bash
# Builds the reference publisher of the bandwidth-adaptation benchmark (tests/bench/adapt.sh):
# gst-plugins-rs' whipclientsink (crate gst-plugin-webrtc, plugin rswebrtc) and its GCC congestion
# controller rtpgccbwe (crate gst-plugin-rtp, plugin rsrtp), from their crates.io releases with
# cargo. Nothing of them enters this repository: each crate is unpacked and built in a cache folder
# outside it, and a later run reuses the .so files. Prints the folder holding them as its last line.
# Exits 77 (with the reason) when cargo is missing or cannot reach crates.io.
#
# Version choice: the 0.15 releases ask for GStreamer 1.22 at most at build time (gstreamer-rs 0.25
# with the v1_22 feature for gst-plugin-webrtc, v1_20 for gst-plugin-rtp), so they build against
# Debian 12's GStreamer 1.22 unchanged.
set -euo pipefail

usage() {
  cat <<EOF
Usage: $0 [--help] [--cached-only]

--cached-only: print the folder if the plugins are cached, else exit 77 without building.

Environment (defaults):
  RS_REFERENCE_VERSION  version of both crates (gst-plugin-webrtc, gst-plugin-rtp)   (0.15.4)
  RS_CACHE_DIR          cache folder (the .so files are in RS_CACHE_DIR/lib)
                        (\$HOME/.cache/gst-mediamtx/rs-reference-<version>)
  CARGO                 cargo program                  (cargo on PATH, else \$HOME/.cargo/bin/cargo)
  CARGO_PROFILE         cargo profile: dev or release (the reference runs optimised)  (release)
  CARGO_BUILD_JOBS      parallel compile jobs                                         (2)
EOF
}
[[ "${1:-}" == "--help" || "${1:-}" == "-h" ]] && { usage; exit 0; }
cached_only=0
[[ "${1:-}" == "--cached-only" ]] && cached_only=1

RS_REFERENCE_VERSION="${RS_REFERENCE_VERSION:-0.15.4}"
RS_CACHE_DIR="${RS_CACHE_DIR:-$HOME/.cache/gst-mediamtx/rs-reference-$RS_REFERENCE_VERSION}"
CARGO="${CARGO:-$(command -v cargo || echo "$HOME/.cargo/bin/cargo")}"
CARGO_PROFILE="${CARGO_PROFILE:-release}"
export CARGO_BUILD_JOBS="${CARGO_BUILD_JOBS:-2}"
echo "build-rs-reference: RS_REFERENCE_VERSION=$RS_REFERENCE_VERSION RS_CACHE_DIR=$RS_CACHE_DIR" \
  "CARGO=$CARGO CARGO_PROFILE=$CARGO_PROFILE CARGO_BUILD_JOBS=$CARGO_BUILD_JOBS" >&2

# Optimised, but without the crates' own LTO / single codegen unit (they double the build time).
export CARGO_PROFILE_RELEASE_LTO=off CARGO_PROFILE_RELEASE_CODEGEN_UNITS=16
export CARGO_PROFILE_RELEASE_DEBUG=0 CARGO_PROFILE_DEV_DEBUG=0 CARGO_INCREMENTAL=0

lib="$RS_CACHE_DIR/lib"
if [[ -f "$lib/libgstrswebrtc.so" && -f "$lib/libgstrsrtp.so" ]]; then
  echo "build-rs-reference: cached $lib" >&2
  echo "$lib"
  exit 0
fi
if [[ "$cached_only" == 1 ]]; then
  echo "build-rs-reference: not cached in $lib" >&2
  exit 77
fi
# The crates' files as published (with their Cargo.lock).
start=$SECONDS
work="$RS_CACHE_DIR/work"
export CARGO
"$(dirname "${BASH_SOURCE[0]}")/../testbed/fetch-crates.sh" "$work" "gst-plugin-rtp=$RS_REFERENCE_VERSION" \
  "gst-plugin-webrtc=$RS_REFERENCE_VERSION" || exit $?
profile_dir=debug
[[ "$CARGO_PROFILE" == release ]] && profile_dir=release
mkdir -p "$lib"

# build CRATE FEATURES LIBNAME: one crate, its pinned Cargo.lock (--locked), one shared target dir.
build() {
  local crate="$1" features="$2" so="$3"
  echo "build-rs-reference: building $crate ($((SECONDS - start)) s so far)" >&2
  (cd "$work/$crate" && CARGO_TARGET_DIR="$work/target" nice -n 10 "$CARGO" build --locked \
    --profile "$CARGO_PROFILE" --lib --no-default-features ${features:+--features "$features"}) >&2
  cp "$work/target/$profile_dir/$so" "$lib/$so.tmp"
  mv "$lib/$so.tmp" "$lib/$so"
}
# rtpgccbwe first (smaller); whipclientsink: the whip signaller only, ring rather than aws-lc-rs
# (no cmake, builds faster).
build gst-plugin-rtp "" libgstrsrtp.so
build gst-plugin-webrtc "whip,rustls-ring" libgstrswebrtc.so
rm -rf "$work"
echo "build-rs-reference: built $lib in $((SECONDS - start)) s" >&2
echo "$lib"

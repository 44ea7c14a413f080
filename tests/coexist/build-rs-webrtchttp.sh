#!/usr/bin/env bash
# Builds gst-plugins-rs' webrtchttp plugin (libgstwebrtchttp.so: whepsrc, whipclientsink ...) from
# its crates.io release with cargo, for the coexistence test (tests/coexist/check-registry.sh).
# Nothing of it enters this repository: the crate is unpacked and built in a cache folder outside
# it, and a later run reuses the .so. Prints the folder holding the .so as its last line.
# Exits 77 (with the reason) when cargo is missing or cannot reach crates.io.
set -euo pipefail

usage() {
  cat <<EOF
Usage: $0 [--help]

Environment (defaults):
  RS_WEBRTCHTTP_VERSION  crate version (built with its v1_24 feature off, so that it runs on
                         GStreamer 1.22 too)                                 (0.15.4)
  RS_CACHE_DIR           cache folder (the .so is RS_CACHE_DIR/lib)
                         (\$HOME/.cache/gst-mediamtx/rs-webrtchttp-<version>)
  CARGO                  cargo program                  (cargo on PATH, else \$HOME/.cargo/bin/cargo)
  CARGO_PROFILE          cargo profile: dev or release                        (dev)
  CARGO_PROFILE_DEV_DEBUG  debug info of the dev profile: 0 compiles in about 10 % less CPU
                         time and makes a 20 MB .so instead of 95 MB        (0)
EOF
}
[[ "${1:-}" == "--help" || "${1:-}" == "-h" ]] && { usage; exit 0; }

RS_WEBRTCHTTP_VERSION="${RS_WEBRTCHTTP_VERSION:-0.15.4}"
RS_CACHE_DIR="${RS_CACHE_DIR:-$HOME/.cache/gst-mediamtx/rs-webrtchttp-$RS_WEBRTCHTTP_VERSION}"
CARGO="${CARGO:-$(command -v cargo || echo "$HOME/.cargo/bin/cargo")}"
CARGO_PROFILE="${CARGO_PROFILE:-dev}"
export CARGO_PROFILE_DEV_DEBUG="${CARGO_PROFILE_DEV_DEBUG:-0}"
echo "build-rs-webrtchttp: RS_WEBRTCHTTP_VERSION=$RS_WEBRTCHTTP_VERSION RS_CACHE_DIR=$RS_CACHE_DIR" \
  "CARGO=$CARGO CARGO_PROFILE=$CARGO_PROFILE CARGO_PROFILE_DEV_DEBUG=$CARGO_PROFILE_DEV_DEBUG" >&2

so="$RS_CACHE_DIR/lib/libgstwebrtchttp.so"
if [[ -f "$so" ]]; then
  echo "build-rs-webrtchttp: cached $so" >&2
  echo "$RS_CACHE_DIR/lib"
  exit 0
fi
# The crate's files as published (with its Cargo.lock).
start=$SECONDS
work="$RS_CACHE_DIR/work"
export CARGO
"$(dirname "${BASH_SOURCE[0]}")/../testbed/fetch-crates.sh" "$work" \
  "gst-plugin-webrtchttp=$RS_WEBRTCHTTP_VERSION" || exit $?

# Without v1_24 (this machine has GStreamer 1.22); ring rather than aws-lc-rs (no cmake, builds
# faster). The crate's Cargo.lock pins what upstream released; --locked keeps it so.
echo "build-rs-webrtchttp: building (fetch took $((SECONDS - start)) s)" >&2
profile_dir=debug
[[ "$CARGO_PROFILE" == release ]] && profile_dir=release
(cd "$work/gst-plugin-webrtchttp" && CARGO_TARGET_DIR="$work/target" CARGO_INCREMENTAL=0 nice "$CARGO" build --locked \
  --profile "$CARGO_PROFILE" --lib --no-default-features --features rustls-ring) >&2
mkdir -p "$RS_CACHE_DIR/lib"
cp "$work/target/$profile_dir/libgstwebrtchttp.so" "$so.tmp"
mv "$so.tmp" "$so"
rm -rf "$work"
echo "build-rs-webrtchttp: built $so in $((SECONDS - start)) s" >&2
echo "$RS_CACHE_DIR/lib"

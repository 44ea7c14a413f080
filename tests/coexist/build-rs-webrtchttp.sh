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
if [[ ! -x "$CARGO" ]]; then
  echo "build-rs-webrtchttp: SKIPPED: no cargo ($CARGO)" >&2
  exit 77
fi

# The crate's files as published (with its Cargo.lock): fetched through a throw-away package that
# depends on it, then copied out of cargo's registry.
start=$SECONDS
work="$RS_CACHE_DIR/work"
mkdir -p "$work/fetch/src"
cat > "$work/fetch/Cargo.toml" <<TOML
[package]
name = "fetch-webrtchttp"
version = "0.0.0"
edition = "2021"
publish = false
[dependencies]
gst-plugin-webrtchttp = { version = "=$RS_WEBRTCHTTP_VERSION", default-features = false }
TOML
: > "$work/fetch/src/lib.rs"
if ! (cd "$work/fetch" && "$CARGO" fetch --quiet) >&2; then
  echo "build-rs-webrtchttp: SKIPPED: cargo cannot fetch gst-plugin-webrtchttp $RS_WEBRTCHTTP_VERSION from crates.io" >&2
  exit 77
fi
cargo_home="${CARGO_HOME:-$HOME/.cargo}"
crate_src="$(find "$cargo_home/registry/src" -maxdepth 2 -type d -name "gst-plugin-webrtchttp-$RS_WEBRTCHTTP_VERSION" | head -n 1)"
[[ -n "$crate_src" ]] || { echo "build-rs-webrtchttp: the crate is not in $cargo_home/registry/src" >&2; exit 1; }
rm -rf "$work/crate"
cp -r "$crate_src" "$work/crate"

# Without v1_24 (this machine has GStreamer 1.22); ring rather than aws-lc-rs (no cmake, builds
# faster). The crate's Cargo.lock pins what upstream released; --locked keeps it so.
echo "build-rs-webrtchttp: building (fetch took $((SECONDS - start)) s)" >&2
profile_dir=debug
[[ "$CARGO_PROFILE" == release ]] && profile_dir=release
(cd "$work/crate" && CARGO_TARGET_DIR="$work/target" CARGO_INCREMENTAL=0 nice "$CARGO" build --locked \
  --profile "$CARGO_PROFILE" --lib --no-default-features --features rustls-ring) >&2
mkdir -p "$RS_CACHE_DIR/lib"
cp "$work/target/$profile_dir/libgstwebrtchttp.so" "$so.tmp"
mv "$so.tmp" "$so"
rm -rf "$work"
echo "build-rs-webrtchttp: built $so in $((SECONDS - start)) s" >&2
echo "$RS_CACHE_DIR/lib"

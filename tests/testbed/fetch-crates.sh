#!/usr/bin/env bash
# Copies crates as published on crates.io (sources with their Cargo.lock) into a work folder, for
# the scripts that build gst-plugins-rs elements outside the repository
# (tests/coexist/build-rs-webrtchttp.sh, tests/bench/build-rs-reference.sh). The crates are fetched
# with cargo through a throw-away package that depends on them, then copied out of cargo's
# registry to WORK/<crate>. Exits 77 (with the reason) when cargo is missing or cannot fetch.
set -euo pipefail

usage() {
  cat <<EOF
Usage: $0 WORK CRATE=VERSION...

Environment (defaults):
  CARGO       cargo program                  (cargo on PATH, else \$HOME/.cargo/bin/cargo)
  CARGO_HOME  cargo's home, where its registry is                               (\$HOME/.cargo)
EOF
}
[[ "${1:-}" == "--help" || "${1:-}" == "-h" ]] && { usage; exit 0; }
[[ $# -ge 2 ]] || { usage >&2; exit 2; }

work="$1"
shift
CARGO="${CARGO:-$(command -v cargo || echo "$HOME/.cargo/bin/cargo")}"
cargo_home="${CARGO_HOME:-$HOME/.cargo}"
echo "fetch-crates: WORK=$work CARGO=$CARGO CARGO_HOME=$cargo_home crates: $*" >&2
if [[ ! -x "$CARGO" ]]; then
  echo "fetch-crates: SKIPPED: no cargo ($CARGO)" >&2
  exit 77
fi

mkdir -p "$work/fetch/src"
{
  printf '[package]\nname = "fetch-crates"\nversion = "0.0.0"\nedition = "2021"\npublish = false\n'
  printf '[dependencies]\n'
  for spec in "$@"; do
    printf '%s = { version = "=%s", default-features = false }\n' "${spec%%=*}" "${spec#*=}"
  done
} >"$work/fetch/Cargo.toml"
: >"$work/fetch/src/lib.rs"
if ! (cd "$work/fetch" && "$CARGO" fetch --quiet) >&2; then
  echo "fetch-crates: SKIPPED: cargo cannot fetch $* from crates.io" >&2
  exit 77
fi
for spec in "$@"; do
  crate="${spec%%=*}" version="${spec#*=}"
  src="$(find "$cargo_home/registry/src" -maxdepth 2 -type d -name "$crate-$version" | head -n 1)"
  [[ -n "$src" ]] || { echo "fetch-crates: $crate $version is not in $cargo_home/registry/src" >&2; exit 1; }
  rm -rf "${work:?}/$crate"
  cp -r "$src" "$work/$crate"
done

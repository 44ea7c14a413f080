#!/usr/bin/env bash
# gst-mediamtx: the start-up benchmark behind docs/benchmarks.md "Time to first frame of a fresh
# viewer process": the DTLS certificate cost of a fresh process (stock vs ours), then a fresh
# whepsrc process per start at keyframe intervals 1, 2 and 4 s with the publisher's
# keyframe-on-join off and on, and MediaMTX's reader page in Debian's Chromium in the same run as
# the reference. Not part of tests/run.sh (bench/smoke checks that the modes work).
set -euo pipefail

usage() {
  cat <<USAGE
Usage: $0 [--help]

About 15 minutes at the defaults. Needs root (network namespace), a build (ninja -C \$BUILD_DIR),
node with tests/interop's playwright-core (tests/interop/setup.sh) and Debian's chromium, and
/usr/bin/python3 with python3-matplotlib for the plot.

Environment (defaults):
  BUILD_DIR        build directory                                  (build)
  MEDIAMTX_BIN     MediaMTX binary      (\$HOME/.cache/gst-mediamtx/mediamtx-v1.20.1)
  OUT              results directory                                (\$BUILD_DIR/bench-ttff)
  PLOTS            where the PNG plot goes                          (docs/bench)
  KEYINTS          publisher keyframe intervals (s)                 (1,2,4)
  JOIN             mediamtxsink keyframe-on-join values             (false,true)
  STARTS           fresh whepsrc processes per configuration        (20)
  CHROMIUM_STARTS  fresh Chromium reader pages per configuration    (10; 0: no browser)
  CERT_RUNS        fresh processes per certificate variant          (20)
USAGE
}
[[ "${1:-}" == "--help" || "${1:-}" == "-h" ]] && { usage; exit 0; }

root="$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)"
cd "$root"
BUILD_DIR="${BUILD_DIR:-build}"
MEDIAMTX_BIN="${MEDIAMTX_BIN:-$HOME/.cache/gst-mediamtx/mediamtx-v1.20.1}"
OUT="${OUT:-$BUILD_DIR/bench-ttff}"
PLOTS="${PLOTS:-docs/bench}"
KEYINTS="${KEYINTS:-1,2,4}"
JOIN="${JOIN:-false,true}"
STARTS="${STARTS:-20}"
CHROMIUM_STARTS="${CHROMIUM_STARTS:-10}"
CERT_RUNS="${CERT_RUNS:-20}"
echo "bench/ttff.sh: BUILD_DIR=$BUILD_DIR OUT=$OUT PLOTS=$PLOTS KEYINTS=$KEYINTS JOIN=$JOIN STARTS=$STARTS" \
  "CHROMIUM_STARTS=$CHROMIUM_STARTS CERT_RUNS=$CERT_RUNS MEDIAMTX_BIN=$MEDIAMTX_BIN" >&2

export MEDIAMTX_BIN
export GST_PLUGIN_PATH="$root/$BUILD_DIR/plugins"
export GST_REGISTRY="$root/$BUILD_DIR/bench-registry.bin"
bench="$root/$BUILD_DIR/tests/bench/mtx-bench"
netns="$root/tests/testbed/netns-run.sh"
[[ -x "$bench" ]] || { echo "bench/ttff.sh: $bench missing: ninja -C $BUILD_DIR" >&2; exit 1; }
chromium=()
if [[ "$CHROMIUM_STARTS" != 0 ]]; then
  [[ -d "$root/tests/interop/node_modules/playwright-core" ]] ||
    { echo "bench/ttff.sh: playwright-core missing: run tests/interop/setup.sh" >&2; exit 1; }
  chromium=(--chromium-script="$root/tests/bench/chromium_ttff.js" --chromium-starts="$CHROMIUM_STARTS")
fi

rm -rf "$OUT"
mkdir -p "$OUT"
# shellcheck source=tests/bench/machine.sh
source "$root/tests/bench/machine.sh"
{
  describe_machine
  echo "chromium: $(/usr/bin/chromium --version 2>/dev/null || echo none)"
  echo "load at start: $(cat /proc/loadavg)"
} >"$OUT/machine.txt"

"$bench" cert --runs="$CERT_RUNS" --out="$OUT" | tee -a "$OUT/results.txt"
"$netns" "$bench" ttff-fresh --keyints="$KEYINTS" --keyframe-on-join="$JOIN" --starts="$STARTS" \
  "${chromium[@]}" --out="$OUT" | tee -a "$OUT/results.txt" | grep '^RESULT' >&2 || true
echo "load at end: $(cat /proc/loadavg)" >>"$OUT/machine.txt"

mkdir -p "$PLOTS"
/usr/bin/python3 "$root/tests/bench/plot.py" "$OUT" "$PLOTS" >"$OUT/tables.md"
echo "bench/ttff.sh: results in $OUT (tables.md, ttff_fresh.csv, cert.csv, machine.txt), plot $PLOTS/ttff-fresh.png" >&2

#!/usr/bin/env bash
# gst-mediamtx: the full benchmark run behind docs/benchmarks.md. Runs build/tests/bench/mtx-bench
# inside a private network namespace against a real MediaMTX, writes raw samples (CSV), the
# RESULT lines, a machine/load description, Markdown tables and PNG plots.
set -euo pipefail

usage() {
  cat <<EOF
Usage: $0 [--help]

Full benchmark run (about 16 minutes at the defaults). Needs root (network namespace), a build
(ninja -C \$BUILD_DIR) and /usr/bin/python3 with python3-matplotlib for the plots.

Environment (defaults):
  BUILD_DIR        build directory                                  (build)
  MEDIAMTX_BIN     MediaMTX binary      ($HOME/.cache/gst-mediamtx/mediamtx-v1.20.1)
  OUT              results directory                                (\$BUILD_DIR/bench-results)
  PLOTS            where the PNG plots go                           (docs/bench)
  FRAMES           frames per latency configuration                 (1000)
  LATENCIES        whepsrc / rtspsrc latency sweep (ms)             (0 20 50 200)
  HEIGHTS_EXTRA    extra picture heights at latency 50 (e.g. 1080)  (1080)
  STARTS           starts per time-to-first-frame configuration     (30)
  KEYINTS          publisher keyframe intervals (s)                 (0.5 1 2)
  RUNS             server restarts for recovery                     (10)
  VIEWERS          concurrent decode=false viewer counts            (1,4,8,16,32,48)
  DECODED_VIEWERS  concurrent decoded viewer counts                 (1,4,8,16)
EOF
}
[[ "${1:-}" == "--help" || "${1:-}" == "-h" ]] && { usage; exit 0; }

root="$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)"
cd "$root"
BUILD_DIR="${BUILD_DIR:-build}"
MEDIAMTX_BIN="${MEDIAMTX_BIN:-$HOME/.cache/gst-mediamtx/mediamtx-v1.20.1}"
OUT="${OUT:-$BUILD_DIR/bench-results}"
PLOTS="${PLOTS:-docs/bench}"
FRAMES="${FRAMES:-1000}"
LATENCIES="${LATENCIES:-0 20 50 200}"
HEIGHTS_EXTRA="${HEIGHTS_EXTRA:-1080}"
STARTS="${STARTS:-30}"
KEYINTS="${KEYINTS:-0.5 1 2}"
RUNS="${RUNS:-10}"
VIEWERS="${VIEWERS:-1,4,8,16,32,48}"
DECODED_VIEWERS="${DECODED_VIEWERS:-1,4,8,16}"
echo "bench/run.sh: BUILD_DIR=$BUILD_DIR OUT=$OUT PLOTS=$PLOTS FRAMES=$FRAMES LATENCIES='$LATENCIES'" \
  "HEIGHTS_EXTRA='$HEIGHTS_EXTRA' STARTS=$STARTS KEYINTS='$KEYINTS' RUNS=$RUNS VIEWERS=$VIEWERS" \
  "DECODED_VIEWERS=$DECODED_VIEWERS MEDIAMTX_BIN=$MEDIAMTX_BIN" >&2

export MEDIAMTX_BIN
export GST_PLUGIN_PATH="$root/$BUILD_DIR/plugins"
export GST_REGISTRY="$root/$BUILD_DIR/bench-registry.bin"
bench="$root/$BUILD_DIR/tests/bench/mtx-bench"
netns="$root/tests/testbed/netns-run.sh"
[[ -x "$bench" ]] || { echo "bench/run.sh: $bench missing: ninja -C $BUILD_DIR" >&2; exit 1; }

rm -rf "$OUT"
mkdir -p "$OUT"
results="$OUT/results.txt"

# shellcheck source=tests/bench/machine.sh
source "$root/tests/bench/machine.sh"
describe_machine >"$OUT/machine.txt"
echo "load at start: $(cat /proc/loadavg)" >>"$OUT/machine.txt"

bench_run() {
  echo "+ mtx-bench $*" >&2
  "$netns" "$bench" "$@" --out="$OUT" | tee -a "$results" | grep '^RESULT' >&2 || true
}

# 1. glass-to-glass latency
for lat in $LATENCIES; do
  bench_run latency --publisher=rtsp --viewer=whepsrc --latency="$lat" --frames="$FRAMES"
  bench_run latency --publisher=whip --viewer=whepsrc --latency="$lat" --frames="$FRAMES"
  bench_run latency --publisher=rtsp --viewer=rtspsrc --latency="$lat" --frames="$FRAMES"
done
for h in $HEIGHTS_EXTRA; do
  bench_run latency --publisher=rtsp --viewer=whepsrc --latency=50 --frames="$FRAMES" --height="$h" --bitrate=4000
  bench_run latency --publisher=rtsp --viewer=rtspsrc --latency=50 --frames="$FRAMES" --height="$h" --bitrate=4000
done
echo "load after latency: $(cat /proc/loadavg)" >>"$OUT/machine.txt"

# 2. time to first frame
for k in $KEYINTS; do
  bench_run ttff --viewer=whepsrc --keyint-s="$k" --starts="$STARTS"
done
bench_run ttff --viewer=rtspsrc --keyint-s=1 --starts="$STARTS"

# 3. recovery after a server restart
bench_run recovery --runs="$RUNS" --outage-ms=1000 --retry-delay=500 --viewer-timeout=1000

# 4. cost
bench_run cost --viewers="$VIEWERS" --decoded-viewers="$DECODED_VIEWERS"
echo "load at end: $(cat /proc/loadavg)" >>"$OUT/machine.txt"

mkdir -p "$PLOTS"
/usr/bin/python3 "$root/tests/bench/plot.py" "$OUT" "$PLOTS" >"$OUT/tables.md"
echo "bench/run.sh: results in $OUT (tables.md, *.csv, results.txt, machine.txt), plots in $PLOTS" >&2

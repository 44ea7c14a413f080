#!/usr/bin/env bash
# gst-mediamtx: the bandwidth-adaptation benchmark behind docs/benchmarks.md ("Bandwidth
# adaptation"). Runs `mtx-bench adapt` inside a private network namespace: MediaMTX there, the
# publisher and the viewer each on a host of their own (veth), the publisher's uplink stepping
# through STEPS with tc tbf. Writes raw samples (CSV), the RESULT lines, the machine and its load,
# a Markdown table and a PNG plot. Not part of tests/run.sh (about 8 minutes at the defaults).
set -euo pipefail

usage() {
  cat <<EOF
Usage: $0 [--help]

Needs root (network namespaces, tc), a build (ninja -C \$BUILD_DIR), and /usr/bin/python3 with
python3-matplotlib for the plot. The whipclientsink reference needs gst-plugins-rs' rswebrtc and
rsrtp plugins: tests/bench/build-rs-reference.sh builds them (long: 20-40 minutes of 2 cores) and
caches them; without them that configuration is reported as skipped.

Environment (defaults):
  BUILD_DIR        build directory                                              (build)
  MEDIAMTX_BIN     MediaMTX binary          (\$HOME/.cache/gst-mediamtx/mediamtx-v1.20.1)
  OUT              results directory                                (\$BUILD_DIR/adapt-results)
  PLOTS            where the PNG plot goes                                      (docs/bench)
  DATA             where the CSVs, RESULT lines, machine.txt and tables.md are copied
                   (empty: not copied)                               (docs/bench/data/adapt)
  CONFIGS          configurations (rtsp-off, rtsp-on, whip-off, whip-on, whipclientsink;
                   whip-on-nortx: whip-on with retransmission=false)
                                               (rtsp-off,rtsp-on,whip-off,whip-on,whipclientsink)
  STEPS            uplink limits in kbit/s, one step each                  (4000,1000,500,4000)
  STEP_S           seconds per step                                             (15)
  LAST_STEP_S      seconds of the last step (the limit lifted: room for the recovery)  (20)
  SETTLE_S         the "settled" window of a step starts this late (s)          (5)
  BITRATE          publisher bitrate, kbit/s                                    (2500)
  MIN_BITRATE      min-bitrate of the adaptive publishers, kbit/s; 0: their default  (0)
  LATENCY          viewer (whepsrc) jitter-buffer latency, ms                   (50)
  TBF_BURST        tc tbf burst                                                 (20kb)
  TBF_LATENCY_MS   tc tbf queue, ms (how long a packet may wait at the bottleneck)  (200)
  PUBLISHER_EXTRA  more mediamtxsink properties, e.g. "keyframe-interval=60" (not whipclientsink's) ()
  LOSS             random loss on the publisher's uplink, percent, the whole run (a Wi-Fi's;
                   iptables statistic on the server host's input from it)       (0)
  BUILD_REFERENCE  1: run build-rs-reference.sh when the reference is not cached (0)
  RS_REFERENCE_PLUGIN_DIR  folder with libgstrswebrtc.so and libgstrsrtp.so
                   (the cached output of build-rs-reference.sh when present)
EOF
}
[[ "${1:-}" == "--help" || "${1:-}" == "-h" ]] && { usage; exit 0; }

root="$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)"
cd "$root"
BUILD_DIR="${BUILD_DIR:-build}"
MEDIAMTX_BIN="${MEDIAMTX_BIN:-$HOME/.cache/gst-mediamtx/mediamtx-v1.20.1}"
OUT="${OUT:-$BUILD_DIR/adapt-results}"
PLOTS="${PLOTS:-docs/bench}"
DATA="${DATA-docs/bench/data/adapt}"
CONFIGS="${CONFIGS:-rtsp-off,rtsp-on,whip-off,whip-on,whipclientsink}"
STEPS="${STEPS:-4000,1000,500,4000}"
STEP_S="${STEP_S:-15}"
LAST_STEP_S="${LAST_STEP_S:-20}"
SETTLE_S="${SETTLE_S:-5}"
BITRATE="${BITRATE:-2500}"
MIN_BITRATE="${MIN_BITRATE:-0}"
LATENCY="${LATENCY:-50}"
TBF_BURST="${TBF_BURST:-20kb}"
TBF_LATENCY_MS="${TBF_LATENCY_MS:-200}"
LOSS="${LOSS:-0}"
PUBLISHER_EXTRA="${PUBLISHER_EXTRA:-}"
BUILD_REFERENCE="${BUILD_REFERENCE:-0}"
if [[ -z "${RS_REFERENCE_PLUGIN_DIR:-}" ]]; then
  # the cached build, if any (the script only prints the folder when the .so files are there)
  if [[ "$BUILD_REFERENCE" == 1 ]]; then
    RS_REFERENCE_PLUGIN_DIR="$("$root/tests/bench/build-rs-reference.sh" | tail -n 1)" || RS_REFERENCE_PLUGIN_DIR=""
  else
    RS_REFERENCE_PLUGIN_DIR="$(RS_CACHE_DIR="${RS_CACHE_DIR:-}" "$root/tests/bench/build-rs-reference.sh" --cached-only \
      2>/dev/null | tail -n 1)" || RS_REFERENCE_PLUGIN_DIR=""
  fi
fi
echo "bench/adapt.sh: BUILD_DIR=$BUILD_DIR OUT=$OUT PLOTS=$PLOTS DATA=$DATA CONFIGS=$CONFIGS STEPS=$STEPS STEP_S=$STEP_S" \
  "LAST_STEP_S=$LAST_STEP_S SETTLE_S=$SETTLE_S BITRATE=$BITRATE MIN_BITRATE=$MIN_BITRATE LATENCY=$LATENCY TBF_BURST=$TBF_BURST" \
  "TBF_LATENCY_MS=$TBF_LATENCY_MS LOSS=$LOSS BUILD_REFERENCE=$BUILD_REFERENCE" \
  "RS_REFERENCE_PLUGIN_DIR=${RS_REFERENCE_PLUGIN_DIR:-(none)} MEDIAMTX_BIN=$MEDIAMTX_BIN" >&2

export MEDIAMTX_BIN RS_REFERENCE_PLUGIN_DIR
export GST_PLUGIN_PATH="$root/$BUILD_DIR/plugins"
export GST_REGISTRY="$root/$BUILD_DIR/adapt-registry.bin"
bench="$root/$BUILD_DIR/tests/bench/mtx-bench"
[[ -x "$bench" ]] || { echo "bench/adapt.sh: $bench missing: ninja -C $BUILD_DIR" >&2; exit 1; }
command -v tc >/dev/null || { echo "bench/adapt.sh: tc (iproute2) missing" >&2; exit 1; }

rm -rf "$OUT"
mkdir -p "$OUT"
# shellcheck source=tests/bench/machine.sh
source "$root/tests/bench/machine.sh"
{
  describe_machine
  echo "settings: STEPS=$STEPS STEP_S=$STEP_S LAST_STEP_S=$LAST_STEP_S BITRATE=$BITRATE MIN_BITRATE=$MIN_BITRATE LATENCY=$LATENCY" \
    "TBF_BURST=$TBF_BURST TBF_LATENCY_MS=$TBF_LATENCY_MS LOSS=$LOSS PUBLISHER_EXTRA=$PUBLISHER_EXTRA"
  echo "load at start: $(cat /proc/loadavg)"
} >"$OUT/machine.txt"

status=0
IFS=',' read -r -a configs <<<"$CONFIGS"
for c in "${configs[@]}"; do
  echo "+ mtx-bench adapt --configs=$c" >&2
  echo "load before $c: $(cat /proc/loadavg)" >>"$OUT/machine.txt"
  "$root/tests/testbed/netns-run.sh" "$bench" adapt --configs="$c" --steps="$STEPS" --step-s="$STEP_S" \
    --last-step-s="$LAST_STEP_S" --settle-s="$SETTLE_S" --bitrate="$BITRATE" --min-bitrate="$MIN_BITRATE" \
    --latency="$LATENCY" \
    --tbf-burst="$TBF_BURST" --tbf-latency-ms="$TBF_LATENCY_MS" --loss="$LOSS" \
    --publisher-extra="$PUBLISHER_EXTRA" --out="$OUT" | tee -a "$OUT/results.txt" \
    | grep -E '^RESULT adapt(-recovery)? ' | grep -v 'window=settled' >&2 || status=1
done
echo "load at end: $(cat /proc/loadavg)" >>"$OUT/machine.txt"

mkdir -p "$PLOTS"
/usr/bin/python3 "$root/tests/bench/plot.py" "$OUT" "$PLOTS" >"$OUT/tables.md"
if [[ -n "$DATA" ]]; then
  mkdir -p "$DATA"
  cp "$OUT"/adapt_steps.csv "$OUT"/adapt_series.csv "$OUT"/adapt_recovery.csv "$OUT"/results.txt \
    "$OUT"/machine.txt "$OUT"/tables.md "$DATA"/
  gzip -9 -c "$OUT/adapt_frames.csv" >"$DATA/adapt_frames.csv.gz"
fi
echo "bench/adapt.sh: results in $OUT (tables.md, adapt_*.csv, results.txt, machine.txt), plot in $PLOTS" >&2
exit "$status"

#!/usr/bin/env bash
# gst-mediamtx main job: set up if needed, build, start a local MediaMTX (unless MEDIAMTX_URL is
# given), publish a test camera, view it, print one status line a second, stop on Ctrl-C or after
# DURATION seconds.
set -euo pipefail

usage() {
  cat <<EOF
Usage: $0 [--help]

Environment (defaults):
  MEDIAMTX_URL   use this MediaMTX (e.g. http://host:8889) instead of starting a local one  (local)
  STREAM_PATH    MediaMTX path to publish on                                                (demo)
  DURATION       seconds to run, 0 = until Ctrl-C                                           (20)
  BUILD_DIR      build directory                                                            (build)
  SKIP_SETUP     1: skip subprojects/setup.sh                                               (0)
EOF
}
[[ "${1:-}" == "--help" || "${1:-}" == "-h" ]] && { usage; exit 0; }

root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
MEDIAMTX_URL="${MEDIAMTX_URL:-}"
STREAM_PATH="${STREAM_PATH:-demo}"
DURATION="${DURATION:-20}"
BUILD_DIR="${BUILD_DIR:-$root/build}"
SKIP_SETUP="${SKIP_SETUP:-0}"
echo "demo: MEDIAMTX_URL=${MEDIAMTX_URL:-<local>} STREAM_PATH=$STREAM_PATH DURATION=$DURATION BUILD_DIR=$BUILD_DIR"

if [[ "$SKIP_SETUP" != "1" ]]; then
  mediamtx_bin=$("$root/subprojects/setup.sh" | tail -n 1)
else
  mediamtx_bin=$("$root/subprojects/build-mediamtx.sh" | tail -n 1)
fi
[[ -f "$BUILD_DIR/build.ninja" ]] || meson setup "$BUILD_DIR" "$root" >/dev/null
ninja -C "$BUILD_DIR" >/dev/null
export GST_PLUGIN_PATH="$BUILD_DIR/plugins"

pids=()
tmp=$(mktemp -d)
cleanup() {
  for pid in "${pids[@]}"; do kill -INT "$pid" 2>/dev/null || true; done
  sleep 1
  for pid in "${pids[@]}"; do kill "$pid" 2>/dev/null || true; done
  rm -rf "$tmp"
}
trap cleanup EXIT
trap 'exit 0' INT TERM

host=127.0.0.1
rtsp_port=8554
if [[ -z "$MEDIAMTX_URL" ]]; then
  cat > "$tmp/mediamtx.yml" <<EOF
logLevel: warn
rtspAddress: 127.0.0.1:$rtsp_port
rtmp: false
srt: false
moq: false
hls: false
webrtcAddress: 127.0.0.1:8889
api: true
apiAddress: 127.0.0.1:9997
paths:
  all_others:
EOF
  "$mediamtx_bin" "$tmp/mediamtx.yml" > "$tmp/mediamtx.log" 2>&1 &
  pids+=($!)
  for _ in $(seq 50); do curl -sf http://127.0.0.1:9997/v3/paths/list >/dev/null && break; sleep 0.1; done
  echo "demo: local MediaMTX $("$mediamtx_bin" --version) on rtsp://$host:$rtsp_port"
else
  host=$(sed -E 's#^[a-z]+://##; s#[:/].*$##' <<<"$MEDIAMTX_URL")
fi

gst-launch-1.0 -q videotestsrc is-live=true pattern=ball ! video/x-raw,width=1280,height=720,framerate=30/1 ! \
  x264enc tune=zerolatency speed-preset=ultrafast key-int-max=30 bitrate=2000 ! \
  rtspclientsink protocols=tcp location="rtsp://$host:$rtsp_port/$STREAM_PATH" > "$tmp/publish.log" 2>&1 &
pids+=($!)

gst-launch-1.0 -q rtspsrc latency=0 user-agent=gst-mediamtx-demo location="rtsp://$host:$rtsp_port/$STREAM_PATH" ! \
  rtph264depay ! avdec_h264 ! fpsdisplaysink video-sink=fakesink text-overlay=false signal-fps-measurements=true \
  -v 2>&1 | grep --line-buffered -o 'last-message = rendered: [0-9]*, dropped: [0-9]*, current: [0-9.]*' &
pids+=($!)

start=$(date +%s)
while :; do
  sleep 1
  now=$(date +%s)
  if [[ "$DURATION" != "0" ]] && ((now - start >= DURATION)); then break; fi
done

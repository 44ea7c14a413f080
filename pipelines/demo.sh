#!/usr/bin/env bash
# gst-mediamtx main job: set up if needed, build, start a local MediaMTX (unless MEDIAMTX_URL is
# given), publish a test camera with mediamtxsink, view it with whepsrc, print one status line a
# second, write a snapshot of what the viewer shows (its status drawn on the picture), and stop
# cleanly on Ctrl-C or after DURATION seconds.
set -euo pipefail

usage() {
  cat <<USAGE
Usage: $0 [--help]

Runs publish-camera.sh (CAMERA=test: videotestsrc -> mediamtxsink, RTSP) and view.sh (whepsrc ->
SINK) against a MediaMTX started here and prints a status line a second. The viewer draws what its
stats line says (state, fps, measured latency, reconnects) on the picture over the moving test
pattern (view.sh OVERLAY=1), and writes that picture to SNAPSHOT once it has delivered for two
seconds: the snapshot shows the product working, figures included.

WebRTC needs a non-loopback address (libnice gathers no loopback candidates). As root the demo
runs in a private network namespace with a veth pair (10.77.0.1 <-> 10.77.0.2): nothing can leave
the machine. Otherwise (or with DEMO_NETNS=0) the local MediaMTX listens on this machine's own
first non-loopback IPv4 address only, and the traffic stays on this machine.

Status line fields: viewer state, fps and kbit/s received (whepsrc stats), frames, reconnects,
end-to-end latency, whepsrc's time from connecting to the first decoded frame, publisher state and
encoder (the moving-ball test pattern compresses far below VIDEO_BITRATE_KBPS, a ceiling for the
encoder, so a few hundred kbit/s is normal).

"latency" is measured on every frame: the publisher draws its capture time (this machine's
monotonic clock) into the top-left corner of the picture as black and white blocks (view.sh and
publish-camera.sh TIME_CODE=1), and the viewer reads it back as the decoded frame goes to SINK at the
time a display shows it (whepsrc's jitter buffer LATENCY_MS included; frames are paced like a
display even for fakesink); the line shows the median over the last second: capture to display,
less the sink's own drawing. "latency=n/a" when under half of the frames carried a readable code
(another publisher on STREAM_PATH, or no frames yet).

Environment (defaults):
  MEDIAMTX_URL   use this MediaMTX (rtsp://host:8554 or http://host:8889) instead of a local one (local)
  STREAM_PATH    MediaMTX path to publish on                                (demo)
  DURATION       seconds to run, 0 = until Ctrl-C                           (20)
  SNAPSHOT       PNG of the viewer's picture, with its status drawn on it   (BUILD_DIR/demo-snapshot.png)
  SINK           viewer's video sink (autovideosink to see the picture)     (fakesink)
  VIDEO_WIDTH, VIDEO_HEIGHT, VIDEO_FRAMERATE, VIDEO_BITRATE_KBPS
                 the test camera                                            (1280, 720, 30, 2000)
  LATENCY_MS     whepsrc jitter buffer in milliseconds                      (50)
  DEMO_NETNS     1: run in a private network namespace (needs root)  (1 as root, else 0)
  BUILD_DIR      build directory                                            (build)
  SKIP_SETUP     1: skip subprojects/setup.sh (Debian packages)             (0)
  SKIP_BUILD     1: use BUILD_DIR as it is (no meson/ninja)                 (0)
  MEDIAMTX_BIN   MediaMTX binary (default: the one setup builds and caches) (cached)
USAGE
}
[[ "${1:-}" == "--help" || "${1:-}" == "-h" ]] && { usage; exit 0; }

root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
here="$root/pipelines"
MEDIAMTX_URL="${MEDIAMTX_URL:-}"
STREAM_PATH="${STREAM_PATH:-demo}"
DURATION="${DURATION:-20}"
BUILD_DIR="${BUILD_DIR:-$root/build}"
SNAPSHOT="${SNAPSHOT:-$BUILD_DIR/demo-snapshot.png}"
SINK="${SINK:-fakesink}"
VIDEO_WIDTH="${VIDEO_WIDTH:-1280}"
VIDEO_HEIGHT="${VIDEO_HEIGHT:-720}"
VIDEO_FRAMERATE="${VIDEO_FRAMERATE:-30}"
VIDEO_BITRATE_KBPS="${VIDEO_BITRATE_KBPS:-2000}"
LATENCY_MS="${LATENCY_MS:-50}"
if [[ $EUID -eq 0 && -z "$MEDIAMTX_URL" && "${TESTBED_NETNS:-}" != "1" ]]; then
  DEMO_NETNS="${DEMO_NETNS:-1}"
else
  DEMO_NETNS="${DEMO_NETNS:-0}"
fi
SKIP_SETUP="${SKIP_SETUP:-0}"
SKIP_BUILD="${SKIP_BUILD:-0}"
MEDIAMTX_BIN="${MEDIAMTX_BIN:-}"

if [[ "${_DEMO_IN_NETNS:-}" != "1" ]]; then
  echo "demo: MEDIAMTX_URL=${MEDIAMTX_URL:-<local>} STREAM_PATH=$STREAM_PATH DURATION=$DURATION SNAPSHOT=$SNAPSHOT" \
    "SINK=$SINK VIDEO=${VIDEO_WIDTH}x${VIDEO_HEIGHT}@$VIDEO_FRAMERATE ${VIDEO_BITRATE_KBPS}kbit/s" \
    "LATENCY_MS=$LATENCY_MS DEMO_NETNS=$DEMO_NETNS BUILD_DIR=$BUILD_DIR SKIP_SETUP=$SKIP_SETUP SKIP_BUILD=$SKIP_BUILD"

  # 1. Set up and build (network access for Debian packages and the MediaMTX build happens here,
  #    before entering the namespace).
  if [[ "$SKIP_SETUP" != "1" ]]; then
    echo "demo: setting up (subprojects/setup.sh; fast when already done)"
    mediamtx_built=$("$root/subprojects/setup.sh" | tail -n 1)
  elif [[ -z "$MEDIAMTX_BIN" && -z "$MEDIAMTX_URL" ]]; then
    mediamtx_built=$("$root/subprojects/build-mediamtx.sh" | tail -n 1)
  fi
  MEDIAMTX_BIN="${MEDIAMTX_BIN:-${mediamtx_built:-}}"
  if [[ "$SKIP_BUILD" != "1" ]]; then
    if [[ ! -f "$BUILD_DIR/build.ninja" ]]; then
      echo "demo: configuring $BUILD_DIR"
      meson setup "$BUILD_DIR" "$root" >/dev/null
    fi
    echo "demo: building"
    ninja -C "$BUILD_DIR" >/dev/null
  fi
  export MEDIAMTX_BIN

  # 2. Into a private network namespace, if asked.
  if [[ "$DEMO_NETNS" == "1" ]]; then
    if [[ $EUID -ne 0 ]]; then
      echo "demo: DEMO_NETNS=1 needs root (unshare --net); run with DEMO_NETNS=0" >&2
      exit 2
    fi
    echo "demo: entering a private network namespace (veth 10.77.0.1 <-> 10.77.0.2)"
    export _DEMO_IN_NETNS=1 MEDIAMTX_URL STREAM_PATH DURATION BUILD_DIR SNAPSHOT SINK VIDEO_WIDTH VIDEO_HEIGHT \
      VIDEO_FRAMERATE VIDEO_BITRATE_KBPS LATENCY_MS DEMO_NETNS SKIP_SETUP SKIP_BUILD
    exec unshare --net -- "$0" "$@"
  fi
else
  ip link set lo up
  ip link add va type veth peer name vb
  ip addr add 10.77.0.1/24 dev va
  ip addr add 10.77.0.2/24 dev vb
  ip link set va up
  ip link set vb up
fi

export GST_PLUGIN_PATH="$BUILD_DIR/plugins${GST_PLUGIN_PATH:+:$GST_PLUGIN_PATH}"

tmp=$(mktemp -d /tmp/gst-mediamtx-demo-XXXXXX)
pids=()
stopping=0
# shellcheck disable=SC2317  # run by the EXIT trap
cleanup() {
  trap - EXIT INT TERM
  local pid
  for pid in "${pids[@]}"; do kill -INT "$pid" 2>/dev/null || true; done
  for _ in $(seq 50); do
    local alive=0
    for pid in "${pids[@]}"; do kill -0 "$pid" 2>/dev/null && alive=1; done
    ((alive)) || break
    sleep 0.2
  done
  for pid in "${pids[@]}"; do kill -KILL "$pid" 2>/dev/null || true; done
  wait 2>/dev/null || true
  rm -rf "$tmp"
}
trap cleanup EXIT
trap 'stopping=1' INT TERM

# 3. The server.
if [[ -z "$MEDIAMTX_URL" ]]; then
  if [[ "${_DEMO_IN_NETNS:-}" == "1" ]]; then
    host=10.77.0.1
  elif [[ -n "${TESTBED_SERVER_ADDR:-}" ]]; then
    host=$TESTBED_SERVER_ADDR
  else
    host=$(ip -4 -o addr show scope global | awk '{ sub(/\/.*/, "", $4); print $4; exit }')
    if [[ -z "$host" ]]; then
      echo "demo: this machine has no non-loopback IPv4 address, which WebRTC (libnice) needs;" \
        "run as root (the demo then uses a private network namespace)" >&2
      exit 2
    fi
  fi
  if [[ -z "$MEDIAMTX_BIN" || ! -x "$MEDIAMTX_BIN" ]]; then
    echo "demo: no MediaMTX binary (MEDIAMTX_BIN=${MEDIAMTX_BIN:-<unset>})" >&2
    exit 2
  fi
  cat > "$tmp/mediamtx.yml" <<YML
logLevel: info
api: true
apiAddress: 127.0.0.1:9997
metrics: false
pprof: false
playback: false
rtmp: false
srt: false
moq: false
hls: false
rtsp: true
rtspTransports: [tcp]
rtspAddress: $host:8554
webrtc: true
webrtcAddress: $host:8889
webrtcLocalUDPAddress: $host:8189
webrtcLocalTCPAddress: ""
paths:
  all_others:
YML
  "$MEDIAMTX_BIN" "$tmp/mediamtx.yml" > "$tmp/mediamtx.log" 2>&1 &
  pids+=($!)
  ready=0
  for _ in $(seq 100); do
    if curl -sf http://127.0.0.1:9997/v3/paths/list >/dev/null 2>&1; then ready=1; break; fi
    kill -0 "${pids[-1]}" 2>/dev/null || break
    sleep 0.2
  done
  if ((ready == 0)); then
    echo "demo: MediaMTX did not start (ports 8554, 8889, 8189, 9997 in use?); its log:" >&2
    cat "$tmp/mediamtx.log" >&2
    exit 1
  fi
  publish_url="rtsp://$host:8554"
  whep_url="http://$host:8889/$STREAM_PATH/whep"
  echo "demo: local MediaMTX $("$MEDIAMTX_BIN" --version 2>/dev/null || true) on $host (RTSP 8554, WebRTC 8889)"
else
  publish_url="${MEDIAMTX_URL%/}"
  server_host=$(sed -E 's#^[a-z]+://##; s#[/].*$##; s#:[0-9]+$##' <<<"$publish_url")
  case "$publish_url" in
    http://*|https://*) whep_url="$publish_url/$STREAM_PATH/whep" ;;
    *) whep_url="http://$server_host:8889/$STREAM_PATH/whep" ;;
  esac
fi

# 4. Publisher and viewer.
MEDIAMTX_URL="$publish_url" STREAM_PATH="$STREAM_PATH" CAMERA=test TEST_PATTERN=ball VIDEO_WIDTH="$VIDEO_WIDTH" \
  VIDEO_HEIGHT="$VIDEO_HEIGHT" VIDEO_FRAMERATE="$VIDEO_FRAMERATE" VIDEO_BITRATE_KBPS="$VIDEO_BITRATE_KBPS" \
  TIME_CODE=1 STATUS_INTERVAL=1 DURATION=0 "$here/publish-camera.sh" > "$tmp/publish.log" 2>&1 &
pids+=($!)
echo "demo: publishing a test camera to $publish_url/$STREAM_PATH"
# SNAPSHOT_AFTER: only once it delivers (or when it stops): a picture of the working product.
WHEP_URL="$whep_url" SINK="$SINK" LATENCY_MS="$LATENCY_MS" TIME_CODE=1 STATUS_INTERVAL=1 DURATION=0 OVERLAY=1 \
  SNAPSHOT="$SNAPSHOT" SNAPSHOT_AFTER=3600 "$here/view.sh" > "$tmp/view.log" 2>&1 &
pids+=($!)
echo "demo: viewing $whep_url with whepsrc"

# 5. One status line a second, from the last stats lines of both.
field() { sed -nE "s/.* $1=([^ ]*).*/\\1/p" <<<"$2"; }
start=$(date +%s)
snapshot_state="pending"
max_frames=0
# No errexit in the loop: Ctrl-C also reaches the loop's own commands (sleep, grep), which then fail.
set +e
while ((stopping == 0)); do
  sleep 1
  ((stopping == 0)) || break   # Ctrl-C: the terminal interrupted the children too
  now=$(date +%s)
  elapsed=$((now - start))
  view_line=$(grep '^view: stats' "$tmp/view.log" | tail -n 1 || true)
  publish_line=$(grep '^publish-camera: stats' "$tmp/publish.log" | tail -n 1 || true)
  frames=$(field frames "$view_line"); frames=${frames:-0}
  ((frames > max_frames)) && max_frames=$frames
  ttff=$(field ttff-ms "$view_line")
  [[ -z "$ttff" || "$ttff" == "-1" ]] && ttff="-" || ttff="$(printf '%.0f' "$ttff") ms"
  latency=$(field latency-ms "$view_line")
  [[ "$latency" =~ ^[0-9]+$ ]] && latency="$latency ms" || latency="n/a"
  printf 'demo: %3ds viewer %-12s %5s fps %5s kbit/s frames=%-6s reconnects=%s latency=%-7s first-frame=%s | publisher %s %s | snapshot %s\n' \
    "$elapsed" "$(field state "$view_line")" "$(field fps "$view_line")" "$(field kbps "$view_line")" "$frames" \
    "$(field reconnects "$view_line")" "$latency" "$ttff" "$(field state "$publish_line")" \
    "$(field encoder "$publish_line")" "$snapshot_state"
  if [[ "$snapshot_state" == "pending" ]]; then
    snapshot_line=$(grep -E '^view: snapshot (written|failed)' "$tmp/view.log" | tail -n 1 || true)
    if [[ -n "$snapshot_line" ]]; then
      snapshot_state="failed"
      [[ "$snapshot_line" == "view: snapshot written"* ]] && snapshot_state="written"
      echo "demo: snapshot $snapshot_state: $snapshot_line"
    fi
  fi
  for pid in "${pids[@]:0:3}"; do
    if ! kill -0 "$pid" 2>/dev/null; then
      echo "demo: a process ended early; last lines:" >&2
      tail -n 5 "$tmp"/*.log >&2
      stopping=2
    fi
  done
  if [[ "$DURATION" != "0" ]] && ((elapsed >= DURATION)); then break; fi
done

set -e

# 6. Stop: EOS to publisher and viewer (they print their last lines), then the server.
echo "demo: stopping"
status=0
if ((max_frames == 0)); then echo "demo: FAILED: the viewer received no frame" >&2; status=1; fi
# Ctrl-C before the snapshot was taken is not a failure; the end of DURATION without one is.
if [[ "$snapshot_state" != "written" ]]; then
  echo "demo: no snapshot written ($snapshot_state)" >&2
  ((stopping == 1)) || status=1
fi
if ((stopping == 2)); then status=1; fi
if [[ "$snapshot_state" == "written" ]]; then snapshot_state="$SNAPSHOT"; fi
echo "demo: done: viewer received $max_frames frames, snapshot $snapshot_state"
exit "$status"

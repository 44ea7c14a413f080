#!/usr/bin/env bash
# gst-mediamtx: a camera wall: several MediaMTX paths received over WebRTC (one whepsrc each) in one
# picture, as a grid of labelled tiles; a camera that is down shows a status slate in its tile and
# never holds up the others.
set -euo pipefail

usage() {
  cat <<USAGE
Usage: $0 [--help]

Shows each path of CAMERAS on MEDIAMTX_URL in its own tile of a grid (compositor), labelled with the
path name. Each tile is its own whepsrc with placeholder=status: until its camera delivers, and
whenever it stops, the tile shows a slate saying why (connecting, waiting for the camera to publish,
reconnecting...), and goes back to the camera's picture by itself. A tile that gets no frame is
never waited for: the wall goes on at FRAMERATE with the others.

Prints one stats line per camera every STATUS_INTERVAL seconds, named by its path:
  wall: stats raspberry-01 state=connected fps=30.0 kbps=812 frames=301 shown-fps=30.0 ...
(fps: frames the camera delivered; shown-fps: frames that reached its tile, live or slate; while a
slate shows, slate="what it says"), one for the composed picture:
  wall: stats screen fps=30.0 frames=301
and a line per status change. SINK=fakesink is a headless wall that only reports.

Environment (defaults):
  CAMERAS          comma-separated MediaMTX paths               (raspberry-01,raspberry-02)
  MEDIAMTX_URL     the server's WebRTC address, http(s)://host:8889 (an rtsp://host:8554 URL is
                   taken as http://host:8889)                   (http://localhost:8889)
  MEDIAMTX_USER    user name, if the server asks for one        (none)
  MEDIAMTX_PASS    its password (never printed)                 (none)
  MEDIAMTX_TOKEN   bearer token instead (never printed)         (none)
  GRID_COLUMNS     tiles a row, 0 = from the count (the smallest square grid: 2 for 2-4, 3 for
                   5-9); COLUMNS counts too when it is at most the number of
                   cameras (a shell's COLUMNS is the terminal's width: ignored)     (0)
  TILE_WIDTH       tile width in pixels                         (640)
  TILE_HEIGHT      tile height in pixels                        (360)
  FRAMERATE        frames a second of the wall                  (30)
  SINK             video sink element (with properties)         (autovideosink)
  LATENCY_MS       each whepsrc's jitter buffer in milliseconds (50)
  STATUS_INTERVAL  seconds between stats lines, 0 = none        (1 with fakesink, else 10)
  DURATION         stop after this many seconds, 0 = never      (0)
  SNAPSHOT         PNG file of the wall, written once every camera has delivered for two stats
                   lines, SNAPSHOT_AFTER seconds after the start at the latest, or at the stop
                   if that comes first                          (none)
  SNAPSHOT_AFTER   see SNAPSHOT                                 (10)
USAGE
}
[[ "${1:-}" == "--help" || "${1:-}" == "-h" ]] && { usage; exit 0; }

here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
CAMERAS="${CAMERAS:-raspberry-01,raspberry-02}"
MEDIAMTX_URL="${MEDIAMTX_URL:-http://localhost:8889}"
MEDIAMTX_USER="${MEDIAMTX_USER:-}"
MEDIAMTX_PASS="${MEDIAMTX_PASS:-}"
MEDIAMTX_TOKEN="${MEDIAMTX_TOKEN:-}"
GRID_COLUMNS="${GRID_COLUMNS:-0}"
TILE_WIDTH="${TILE_WIDTH:-640}"
TILE_HEIGHT="${TILE_HEIGHT:-360}"
FRAMERATE="${FRAMERATE:-30}"
SINK="${SINK:-autovideosink}"
LATENCY_MS="${LATENCY_MS:-50}"
if [[ "$SINK" == fakesink* ]]; then STATUS_INTERVAL="${STATUS_INTERVAL:-1}"; else STATUS_INTERVAL="${STATUS_INTERVAL:-10}"; fi
DURATION="${DURATION:-0}"
SNAPSHOT="${SNAPSHOT:-}"
SNAPSHOT_AFTER="${SNAPSHOT_AFTER:-10}"
echo "wall: CAMERAS=$CAMERAS MEDIAMTX_URL=$MEDIAMTX_URL MEDIAMTX_USER=${MEDIAMTX_USER:-<none>}" \
  "MEDIAMTX_PASS=$([[ -n "$MEDIAMTX_PASS" ]] && echo '<set>' || echo '<none>')" \
  "MEDIAMTX_TOKEN=$([[ -n "$MEDIAMTX_TOKEN" ]] && echo '<set>' || echo '<none>') GRID_COLUMNS=$GRID_COLUMNS" \
  "TILE_WIDTH=$TILE_WIDTH TILE_HEIGHT=$TILE_HEIGHT FRAMERATE=$FRAMERATE SINK=$SINK LATENCY_MS=$LATENCY_MS" \
  "STATUS_INTERVAL=$STATUS_INTERVAL DURATION=$DURATION SNAPSHOT=${SNAPSHOT:-<none>} SNAPSHOT_AFTER=$SNAPSHOT_AFTER"

fail() { echo "wall: $*" >&2; exit 2; }
for var in GRID_COLUMNS TILE_WIDTH TILE_HEIGHT FRAMERATE LATENCY_MS; do
  [[ "${!var}" =~ ^[0-9]+$ ]] || fail "$var must be a whole number, not '${!var}'"
done
((TILE_WIDTH >= 16 && TILE_HEIGHT >= 16 && FRAMERATE >= 1)) || fail "TILE_WIDTH and TILE_HEIGHT must be 16 or more, FRAMERATE 1 or more"
[[ "$SNAPSHOT_AFTER" =~ ^[0-9]+([.][0-9]+)?$ ]] || fail "SNAPSHOT_AFTER must be a number of seconds, not '$SNAPSHOT_AFTER'"

IFS=',' read -r -a cameras <<<"$CAMERAS"
count=${#cameras[@]}
((count > 0)) || fail "CAMERAS is empty"
declare -A seen=()
for camera in "${cameras[@]}"; do
  # MediaMTX's path characters; each path also names its whepsrc (the stats lines' name).
  [[ "$camera" =~ ^[A-Za-z0-9._~/-]+$ && "$camera" != */ && "$camera" != /* ]] ||
    fail "'$camera' in CAMERAS is not a MediaMTX path name (letters, digits, . _ ~ - /)"
  [[ -z "${seen[$camera]:-}" ]] || fail "'$camera' is twice in CAMERAS"
  seen[$camera]=1
done

base="${MEDIAMTX_URL%/}"
case "$base" in
  http://*|https://*) ;;
  rtsp://*|rtsps://*)
    host=$(sed -E 's#^[a-z]+://##; s#[/].*$##; s#:[0-9]+$##' <<<"$base")
    base="http://$host:8889" ;;
  *) fail "MEDIAMTX_URL must be http(s)://host:8889 (or rtsp://host:8554), not '$MEDIAMTX_URL'" ;;
esac

columns=$GRID_COLUMNS
# COLUMNS, the issue's and many users' name for it, counts too when it can be a tile count (at most
# the number of cameras): an interactive shell's COLUMNS is the terminal's width, far larger.
if ((columns == 0)) && [[ "${COLUMNS:-}" =~ ^[1-9][0-9]*$ ]] && ((COLUMNS <= count)); then
  columns=$COLUMNS
fi
if ((columns == 0)); then
  columns=1
  while ((columns * columns < count)); do columns=$((columns + 1)); done
fi
((columns > count)) && columns=$count
rows=$(((count + columns - 1) / columns))

if [[ -z "${GST_PLUGIN_PATH:-}" && -d "$here/../build/plugins" ]]; then
  export GST_PLUGIN_PATH="$here/../build/plugins"
fi

# The wall: compositor in live mode (its inputs are live: each whepsrc's slate is a live source), so
# it composes on the clock and waits for no input past its latency; ignore-inactive-pads: a tile
# that has not produced yet is not waited for at all. min-upstream-latency covers a whepsrc's
# jitter buffer and decoder from the start, so a camera that connects later does not arrive late for
# its tile. Not force-live: that makes compositor a source of the pipeline, and the EOS that ends
# the wall would then be pushed into one of its input pads from the application thread, which
# deadlocks with that tile's thread waiting inside compositor.
tile_caps="width=$TILE_WIDTH,height=$TILE_HEIGHT"
pipeline=(compositor name=wall background=black ignore-inactive-pads=true
  min-upstream-latency="$(((LATENCY_MS + 100) * 1000000))")
runner_options=(--count screen)
# The label's size follows the tile's height (textoverlay would scale it with the width instead).
font_size=$((TILE_HEIGHT / 15 > 6 ? TILE_HEIGHT / 15 : 6))
for i in "${!cameras[@]}"; do
  row=$((i / columns))
  pipeline+=("sink_$i::xpos=$((i % columns * TILE_WIDTH))" "sink_$i::ypos=$((row * TILE_HEIGHT))")
done
read -r -a sink <<<"$SINK"
pipeline+=('!' "video/x-raw,width=$((columns * TILE_WIDTH)),height=$((rows * TILE_HEIGHT)),framerate=$FRAMERATE/1"
  '!' queue max-size-buffers=3 max-size-bytes=0 max-size-time=0 leaky=downstream
  '!' videoconvert name=screen '!' "${sink[@]}")
for i in "${!cameras[@]}"; do
  camera=${cameras[$i]}
  # Each tile: its own whepsrc (a status slate of the tile's size while the camera does not deliver),
  # a leaky queue (its own thread: a slow or stalled tile never blocks a whepsrc), scaled to the tile
  # keeping the aspect ratio, and the path name on top.
  pipeline+=(mtxwhepsrc name="$camera" location="$base/$camera/whep" audio=false latency="$LATENCY_MS"
    placeholder=status placeholder-caps="video/x-raw,$tile_caps,framerate=$FRAMERATE/1"
    '!' queue max-size-buffers=0 max-size-bytes=0 max-size-time=$(((LATENCY_MS + 250) * 1000000)) leaky=downstream
    '!' videoscale '!' videoconvert '!' "video/x-raw,$tile_caps,pixel-aspect-ratio=1/1"
    '!' textoverlay name="label_$i" text="$camera" valignment=top halignment=left shaded-background=true
    auto-resize=false font-desc="'Sans Bold $font_size'" '!' "wall.sink_$i")
  runner_options+=(--tile "$camera=label_$i")
done
if [[ -n "$SNAPSHOT" ]]; then
  runner_options+=(--snapshot "$SNAPSHOT" --snapshot-at screen --snapshot-after "$SNAPSHOT_AFTER")
fi
echo "wall: $count cameras in $columns x $rows tiles of ${TILE_WIDTH}x$TILE_HEIGHT: $((columns * TILE_WIDTH))x$((rows * TILE_HEIGHT))"

export MEDIAMTX_USER MEDIAMTX_PASS MEDIAMTX_TOKEN
exec /usr/bin/python3 "$here/gst-mediamtx-run.py" --label wall --stats-interval "$STATUS_INTERVAL" \
  --duration "$DURATION" "${runner_options[@]}" -- "${pipeline[@]}"

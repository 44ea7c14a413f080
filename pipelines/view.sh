#!/usr/bin/env bash
# gst-mediamtx: show a MediaMTX stream received over WebRTC (whepsrc), and keep showing it across
# server and publisher restarts.
set -euo pipefail

usage() {
  cat <<USAGE
Usage: $0 [--help]

Plays WHEP_URL with whepsrc into SINK; prints whepsrc's status changes and, every STATUS_INTERVAL
seconds, a stats line (state, fps, kbit/s, frames, reconnects, time to first frame, RTT).
SINK=fakesink is a headless viewer that only reports (one line a second by default).

Environment (defaults):
  WHEP_URL          http(s)://host:8889/PATH/whep or whep://host/PATH  (whep://localhost/raspberry-01)
  MEDIAMTX_USER     user name, if the server asks for one              (none)
  MEDIAMTX_PASS     its password (never printed)                       (none)
  MEDIAMTX_TOKEN    bearer token instead (never printed)               (none)
  SINK              video sink element (with properties)                (autovideosink)
  AUDIO             1: play the audio too (autoaudiosink)               (0)
  LATENCY_MS        whepsrc jitter buffer in milliseconds               (50)
  PLACEHOLDER       status: while no live picture arrives, show a slate saying what is
                    going on (connecting, waiting for the camera, reconnecting, error);
                    none: nothing (a frozen last frame)                 (status)
  TIME_CODE         1: read the capture time a publisher on this machine drew into the
                    frames (publish-camera.sh TIME_CODE=1) as each frame goes to the sink,
                    paced like a display, and add latency-ms=P50 (capture to display, median
                    over the interval; n/a without a readable code) to the stats lines  (0)
  STATUS_INTERVAL   seconds between stats lines, 0 = none    (1 with fakesink, else 10)
  OVERLAY           1: draw what the stats line says (state, fps, measured latency with
                    TIME_CODE=1, reconnects) on the picture, updated with each line     (0)
  SNAPSHOT          PNG file of the picture as shown (with the overlay), written once the
                    stream has delivered for two stats lines, SNAPSHOT_AFTER seconds after
                    the start at the latest, or at the stop if that comes first        (none)
  SNAPSHOT_AFTER    see SNAPSHOT                                        (10)
  DURATION          stop after this many seconds, 0 = never             (0)
USAGE
}
[[ "${1:-}" == "--help" || "${1:-}" == "-h" ]] && { usage; exit 0; }

here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
WHEP_URL="${WHEP_URL:-whep://localhost/raspberry-01}"
MEDIAMTX_USER="${MEDIAMTX_USER:-}"
MEDIAMTX_PASS="${MEDIAMTX_PASS:-}"
MEDIAMTX_TOKEN="${MEDIAMTX_TOKEN:-}"
SINK="${SINK:-autovideosink}"
AUDIO="${AUDIO:-0}"
LATENCY_MS="${LATENCY_MS:-50}"
PLACEHOLDER="${PLACEHOLDER:-status}"
TIME_CODE="${TIME_CODE:-0}"
if [[ "$SINK" == fakesink* ]]; then STATUS_INTERVAL="${STATUS_INTERVAL:-1}"; else STATUS_INTERVAL="${STATUS_INTERVAL:-10}"; fi
OVERLAY="${OVERLAY:-0}"
SNAPSHOT="${SNAPSHOT:-}"
SNAPSHOT_AFTER="${SNAPSHOT_AFTER:-10}"
DURATION="${DURATION:-0}"
echo "view: WHEP_URL=$WHEP_URL MEDIAMTX_USER=${MEDIAMTX_USER:-<none>}" \
  "MEDIAMTX_PASS=$([[ -n "$MEDIAMTX_PASS" ]] && echo '<set>' || echo '<none>')" \
  "MEDIAMTX_TOKEN=$([[ -n "$MEDIAMTX_TOKEN" ]] && echo '<set>' || echo '<none>') SINK=$SINK AUDIO=$AUDIO" \
  "LATENCY_MS=$LATENCY_MS PLACEHOLDER=$PLACEHOLDER TIME_CODE=$TIME_CODE STATUS_INTERVAL=$STATUS_INTERVAL" \
  "OVERLAY=$OVERLAY SNAPSHOT=${SNAPSHOT:-<none>} SNAPSHOT_AFTER=$SNAPSHOT_AFTER DURATION=$DURATION"

if ! [[ "$LATENCY_MS" =~ ^[0-9]+$ ]]; then
  echo "view: LATENCY_MS must be a whole number of milliseconds, not '$LATENCY_MS'" >&2; exit 2
fi
if [[ "$PLACEHOLDER" != "status" && "$PLACEHOLDER" != "none" ]]; then
  echo "view: PLACEHOLDER must be status or none, not '$PLACEHOLDER'" >&2; exit 2
fi
if [[ -z "${GST_PLUGIN_PATH:-}" && -d "$here/../build/plugins" ]]; then
  export GST_PLUGIN_PATH="$here/../build/plugins"
fi

read -r -a sink <<<"$SINK"
# mtxwhepsrc: our whepsrc under a name gst-plugins-rs does not also register (docs/coexistence.md).
pipeline=(mtxwhepsrc name=src location="$WHEP_URL" latency="$LATENCY_MS" placeholder="$PLACEHOLDER")
if [[ "$AUDIO" == "1" ]]; then
  pipeline+=(audio=true src. '!' queue '!' audioconvert '!' audioresample '!' autoaudiosink)
else
  pipeline+=(audio=false)
fi
# A display sink (sync=true) holds each frame until its time plus the pipeline latency (LATENCY_MS
# and a few ms): the queue must hold that long, or it drops most frames (2 buffers showed 3 of 30
# frames a second at LATENCY_MS=400); beyond 250 ms more (a sink that cannot keep up) it drops the
# oldest.
pipeline+=(src. '!' queue max-size-buffers=0 max-size-bytes=0 max-size-time="$(((LATENCY_MS + 250) * 1000000))"
  leaky=downstream)
# With TIME_CODE=1, frames are paced like a display would show them (identity sync=true, also for
# fakesink) and the time code is read there, as a frame goes to the sink.
time_code=()
if [[ "$TIME_CODE" == "1" ]]; then
  pipeline+=('!' identity sync=true)
  time_code=(--read-time-code shown)
fi
pipeline+=('!' videoconvert name=shown)
# The overlay comes after the time code is read (it would not cover the code, but the reader looks
# at the picture as the publisher made it); the snapshot is the picture as the sink gets it.
runner_options=()
if [[ "$OVERLAY" == "1" ]]; then
  pipeline+=('!' textoverlay name=overlay valignment=bottom halignment=left shaded-background=true
    font-desc="'Sans Bold 14'")
  runner_options+=(--stats-overlay src=overlay)
fi
pipeline+=('!' videoconvert name=screen '!' "${sink[@]}")
if [[ -n "$SNAPSHOT" ]]; then
  runner_options+=(--snapshot "$SNAPSHOT" --snapshot-at screen --snapshot-after "$SNAPSHOT_AFTER")
fi

export MEDIAMTX_USER MEDIAMTX_PASS MEDIAMTX_TOKEN
exec /usr/bin/python3 "$here/gst-mediamtx-run.py" --label view --stats-interval "$STATUS_INTERVAL" \
  --duration "$DURATION" "${time_code[@]}" "${runner_options[@]}" -- "${pipeline[@]}"

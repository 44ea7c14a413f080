#!/usr/bin/env bash
# gst-mediamtx: record a MediaMTX stream received over WebRTC (whepsrc decode=false) to time-split
# files without re-encoding, and keep recording across server and publisher restarts.
set -euo pipefail

usage() {
  cat <<USAGE
Usage: $0 [--help]

Records WHEP_URL's H.264 video and its Opus audio, as the publisher sent them (no re-encoding), to
RECORD_DIR/PREFIX-START-NNNNN.EXT, a new file every SEGMENT_SECONDS (cut on the next keyframe). No
segment is lost: when the server or publisher goes away whepsrc reconnects without ending the
stream, so the current file simply continues; Ctrl-C, SIGINT or SIGTERM sends EOS so the file being
written is finalized before exit. START is the time the recorder started (each restart begins a new
series).

Audio: the tracks of a series are the streams present when recording starts (whepsrc's pads once
all are exposed). A stream without audio gives video-only files (MediaMTX's placeholder audio track
for it never sends anything and is not recorded); audio in another codec (G.711, G.722) is left out.
Audio that appears later is recorded from the next start; if a reconnection brings video but no
audio, the audio track ends there and the video goes on. After a reconnection the sound before the
video's first keyframe (under a second) is dropped, so no file's last GOP spans the outage.

Environment (defaults):
  WHEP_URL          http(s)://host:8889/PATH/whep or whep://host/PATH  (whep://localhost/raspberry-01)
  MEDIAMTX_USER     user name, if the server asks for one              (none)
  MEDIAMTX_PASS     its password (never printed)                       (none)
  MEDIAMTX_TOKEN    bearer token instead (never printed)               (none)
  RECORD_DIR        folder for the files (created)                     (./recordings)
  RECORD_PREFIX     file name prefix                                   (last part of the path)
  RECORD_FORMAT     mkv (matroskamux: readable up to the last cluster even after a power cut)
                    or mp4 (mp4mux: readable once finalized; Opus in MP4 is checked
                    with GStreamer only, older players may skip it)    (mkv)
  SEGMENT_SECONDS   length of each file in seconds                     (600)
  STATUS_INTERVAL   seconds between stats lines, 0 = none              (10)
  DURATION          stop after this many seconds, 0 = never            (0)
USAGE
}
[[ "${1:-}" == "--help" || "${1:-}" == "-h" ]] && { usage; exit 0; }

here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
WHEP_URL="${WHEP_URL:-whep://localhost/raspberry-01}"
MEDIAMTX_USER="${MEDIAMTX_USER:-}"
MEDIAMTX_PASS="${MEDIAMTX_PASS:-}"
MEDIAMTX_TOKEN="${MEDIAMTX_TOKEN:-}"
RECORD_DIR="${RECORD_DIR:-./recordings}"
stream_name="${WHEP_URL%/whep}"
RECORD_PREFIX="${RECORD_PREFIX:-${stream_name##*/}}"
RECORD_FORMAT="${RECORD_FORMAT:-mkv}"
SEGMENT_SECONDS="${SEGMENT_SECONDS:-600}"
STATUS_INTERVAL="${STATUS_INTERVAL:-10}"
DURATION="${DURATION:-0}"
echo "record: WHEP_URL=$WHEP_URL MEDIAMTX_USER=${MEDIAMTX_USER:-<none>}" \
  "MEDIAMTX_PASS=$([[ -n "$MEDIAMTX_PASS" ]] && echo '<set>' || echo '<none>')" \
  "MEDIAMTX_TOKEN=$([[ -n "$MEDIAMTX_TOKEN" ]] && echo '<set>' || echo '<none>') RECORD_DIR=$RECORD_DIR" \
  "RECORD_PREFIX=$RECORD_PREFIX RECORD_FORMAT=$RECORD_FORMAT SEGMENT_SECONDS=$SEGMENT_SECONDS" \
  "STATUS_INTERVAL=$STATUS_INTERVAL DURATION=$DURATION"

if [[ -z "${GST_PLUGIN_PATH:-}" && -d "$here/../build/plugins" ]]; then
  export GST_PLUGIN_PATH="$here/../build/plugins"
fi
case "$RECORD_FORMAT" in
  mkv) muxer=matroskamux ;;
  mp4) muxer=mp4mux ;;
  *) echo "record: RECORD_FORMAT must be mkv or mp4, not '$RECORD_FORMAT'" >&2; exit 2 ;;
esac
if ! [[ "$SEGMENT_SECONDS" =~ ^[1-9][0-9]*$ ]]; then
  echo "record: SEGMENT_SECONDS must be a positive whole number of seconds" >&2; exit 2
fi
mkdir -p "$RECORD_DIR"
location="$RECORD_DIR/$RECORD_PREFIX-$(date +%Y%m%d-%H%M%S)-%05d.$RECORD_FORMAT"
echo "record: writing $location"

export MEDIAMTX_USER MEDIAMTX_PASS MEDIAMTX_TOKEN
exec /usr/bin/python3 "$here/gst-mediamtx-run.py" --label record --stats-interval "$STATUS_INTERVAL" \
  --duration "$DURATION" --eos-timeout 20 \
  --branch "src.video=queue ! h264parse ! recorder.video" \
  --branch "src.audio=queue ! opusparse ! recorder.audio_%u" -- \
  mtxwhepsrc name=src location="$WHEP_URL" decode=false audio=true video-codecs=H264 \
  splitmuxsink name=recorder muxer-factory="$muxer" max-size-time="$((SEGMENT_SECONDS * 1000000000))" \
  location="$location"

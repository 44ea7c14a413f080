#!/usr/bin/env bash
# gst-mediamtx: save one picture of a live MediaMTX stream (received over WebRTC with whepsrc).
set -euo pipefail

usage() {
  cat <<USAGE
Usage: $0 [--help] [OUTPUT]

Writes the first decoded frame of WHEP_URL to OUTPUT (PNG, or JPEG when it ends in .jpg/.jpeg)
and exits 0; exits 3 when no frame arrived within TIMEOUT seconds.

Environment (defaults):
  WHEP_URL        http(s)://host:8889/PATH/whep or whep://host/PATH  (whep://localhost/raspberry-01)
  MEDIAMTX_USER   user name, if the server asks for one              (none)
  MEDIAMTX_PASS   its password (never printed)                       (none)
  MEDIAMTX_TOKEN  bearer token instead (never printed)               (none)
  OUTPUT          file to write (or the first argument)              (snapshot.png)
  TIMEOUT         seconds to wait for a frame                        (20)
USAGE
}
[[ "${1:-}" == "--help" || "${1:-}" == "-h" ]] && { usage; exit 0; }

here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
WHEP_URL="${WHEP_URL:-whep://localhost/raspberry-01}"
MEDIAMTX_USER="${MEDIAMTX_USER:-}"
MEDIAMTX_PASS="${MEDIAMTX_PASS:-}"
MEDIAMTX_TOKEN="${MEDIAMTX_TOKEN:-}"
OUTPUT="${1:-${OUTPUT:-snapshot.png}}"
TIMEOUT="${TIMEOUT:-20}"
echo "snapshot: WHEP_URL=$WHEP_URL MEDIAMTX_USER=${MEDIAMTX_USER:-<none>}" \
  "MEDIAMTX_PASS=$([[ -n "$MEDIAMTX_PASS" ]] && echo '<set>' || echo '<none>')" \
  "MEDIAMTX_TOKEN=$([[ -n "$MEDIAMTX_TOKEN" ]] && echo '<set>' || echo '<none>') OUTPUT=$OUTPUT TIMEOUT=$TIMEOUT"

if [[ -z "${GST_PLUGIN_PATH:-}" && -d "$here/../build/plugins" ]]; then
  export GST_PLUGIN_PATH="$here/../build/plugins"
fi
case "${OUTPUT,,}" in
  *.jpg|*.jpeg) encoder=(jpegenc snapshot=true) ;;
  *) encoder=(pngenc snapshot=true) ;;
esac
partial="$OUTPUT.partial"
rm -f "$partial"
export MEDIAMTX_USER MEDIAMTX_PASS MEDIAMTX_TOKEN
status=0
/usr/bin/python3 "$here/gst-mediamtx-run.py" --label snapshot --timeout "$TIMEOUT" --done-at out -- \
  mtxwhepsrc location="$WHEP_URL" audio=false '!' videoconvert '!' "${encoder[@]}" '!' \
  filesink name=out async=false location="$partial" || status=$?
if ((status == 0)) && [[ -s "$partial" ]]; then
  mv -f "$partial" "$OUTPUT"
  echo "snapshot: wrote $OUTPUT"
  exit 0
fi
rm -f "$partial"
echo "snapshot: no picture written (exit $status)"
exit $((status == 0 ? 3 : status))

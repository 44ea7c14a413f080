#!/usr/bin/env bash
# gst-mediamtx: publish this machine's camera (Raspberry Pi camera module, USB camera, or a test
# pattern) to a MediaMTX path with mediamtxsink, and keep publishing across server restarts.
set -euo pipefail

usage() {
  cat <<USAGE
Usage: $0 [--help]

Publishes a camera to MediaMTX: libcamerasrc (Pi camera module), else v4l2src (USB camera on
VIDEO_DEVICE), else a videotestsrc test pattern (with a warning). mediamtxsink encodes to H.264
(v4l2h264enc on a Pi, else x264enc) and reconnects by itself; status lines go to stdout.

Environment (defaults):
  MEDIAMTX_URL        server: rtsp://host:8554 publishes over RTSP, http(s)://host:8889 over WHIP
                                                                    (rtsp://localhost:8554)
  STREAM_PATH         MediaMTX path to publish on                   (raspberry-01)
  MEDIAMTX_USER       user name, if the server asks for one         (none)
  MEDIAMTX_PASS       its password (never printed)                  (none)
  MEDIAMTX_TOKEN      bearer token instead (never printed)          (none)
  CAMERA              auto, libcamera, v4l2 or test                 (auto)
  LIBCAMERA_CAMERA    libcamerasrc camera-name, for a Pi with two camera modules (Pi 5); the
                      names: rpicam-hello --list-cameras, or cam --list   (first camera)
  VIDEO_DEVICE        V4L2 device for CAMERA=v4l2/auto              (/dev/video0)
  VIDEO_WIDTH         width in pixels                               (1280)
  VIDEO_HEIGHT        height in pixels                              (720)
  VIDEO_FRAMERATE     frames per second                             (30)
  VIDEO_BITRATE_KBPS  H.264 bitrate in kbit/s                       (2000)
  KEYFRAME_INTERVAL   frames between keyframes, 0 = two seconds     (0)
  ENCODER             mediamtxsink encoder: auto or an element name (auto)
  TEST_PATTERN        videotestsrc pattern for CAMERA=test          (smpte)
  TIME_CODE           1: draw the capture time into the top-left corner of each frame, for
                      a viewer on this machine to measure latency (view.sh TIME_CODE=1) (0)
  STATUS_INTERVAL     seconds between stats lines, 0 = none         (10)
  DURATION            stop after this many seconds, 0 = never       (0)
USAGE
}
[[ "${1:-}" == "--help" || "${1:-}" == "-h" ]] && { usage; exit 0; }

here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
MEDIAMTX_URL="${MEDIAMTX_URL:-rtsp://localhost:8554}"
STREAM_PATH="${STREAM_PATH:-raspberry-01}"
MEDIAMTX_USER="${MEDIAMTX_USER:-}"
MEDIAMTX_PASS="${MEDIAMTX_PASS:-}"
MEDIAMTX_TOKEN="${MEDIAMTX_TOKEN:-}"
CAMERA="${CAMERA:-auto}"
LIBCAMERA_CAMERA="${LIBCAMERA_CAMERA:-}"
VIDEO_DEVICE="${VIDEO_DEVICE:-/dev/video0}"
VIDEO_WIDTH="${VIDEO_WIDTH:-1280}"
VIDEO_HEIGHT="${VIDEO_HEIGHT:-720}"
VIDEO_FRAMERATE="${VIDEO_FRAMERATE:-30}"
VIDEO_BITRATE_KBPS="${VIDEO_BITRATE_KBPS:-2000}"
KEYFRAME_INTERVAL="${KEYFRAME_INTERVAL:-0}"
ENCODER="${ENCODER:-auto}"
TEST_PATTERN="${TEST_PATTERN:-smpte}"
TIME_CODE="${TIME_CODE:-0}"
STATUS_INTERVAL="${STATUS_INTERVAL:-10}"
DURATION="${DURATION:-0}"
echo "publish-camera: MEDIAMTX_URL=$MEDIAMTX_URL STREAM_PATH=$STREAM_PATH MEDIAMTX_USER=${MEDIAMTX_USER:-<none>}" \
  "MEDIAMTX_PASS=$([[ -n "$MEDIAMTX_PASS" ]] && echo '<set>' || echo '<none>')" \
  "MEDIAMTX_TOKEN=$([[ -n "$MEDIAMTX_TOKEN" ]] && echo '<set>' || echo '<none>') CAMERA=$CAMERA" \
  "LIBCAMERA_CAMERA=${LIBCAMERA_CAMERA:-<first>} VIDEO_DEVICE=$VIDEO_DEVICE VIDEO_WIDTH=$VIDEO_WIDTH VIDEO_HEIGHT=$VIDEO_HEIGHT" \
  "VIDEO_FRAMERATE=$VIDEO_FRAMERATE VIDEO_BITRATE_KBPS=$VIDEO_BITRATE_KBPS KEYFRAME_INTERVAL=$KEYFRAME_INTERVAL" \
  "ENCODER=$ENCODER TEST_PATTERN=$TEST_PATTERN TIME_CODE=$TIME_CODE STATUS_INTERVAL=$STATUS_INTERVAL" \
  "DURATION=$DURATION"

# From a source tree, use the plugin just built.
if [[ -z "${GST_PLUGIN_PATH:-}" && -d "$here/../build/plugins" ]]; then
  export GST_PLUGIN_PATH="$here/../build/plugins"
fi

has_element() { gst-inspect-1.0 --exists "$1"; }
# A source works when it delivers one frame within a few seconds (fakesink's num-buffers: libcamerasrc
# has no num-buffers of its own).
source_works() { timeout 15 gst-launch-1.0 -q "$@" '!' fakesink num-buffers=1 >/dev/null 2>&1; }

libcamera_source=(libcamerasrc)
[[ -n "$LIBCAMERA_CAMERA" ]] && libcamera_source+=(camera-name="$LIBCAMERA_CAMERA")

case "$CAMERA" in
  auto)
    if has_element libcamerasrc && source_works "${libcamera_source[@]}"; then
      CAMERA=libcamera
    elif has_element v4l2src && [[ -c "$VIDEO_DEVICE" ]] && source_works v4l2src device="$VIDEO_DEVICE"; then
      CAMERA=v4l2
    else
      echo "publish-camera: WARNING no working camera (libcamerasrc, v4l2src $VIDEO_DEVICE): publishing a test pattern"
      CAMERA="test"
    fi ;;
  libcamera|v4l2|test) ;;
  *) echo "publish-camera: CAMERA must be auto, libcamera, v4l2 or test, not '$CAMERA'" >&2; exit 2 ;;
esac

caps="video/x-raw,width=$VIDEO_WIDTH,height=$VIDEO_HEIGHT,framerate=$VIDEO_FRAMERATE/1"
case "$CAMERA" in
  libcamera) source=("${libcamera_source[@]}" '!' "$caps") ;;
  v4l2) source=(v4l2src device="$VIDEO_DEVICE" '!' videorate '!' videoscale '!' videoconvert '!' "$caps") ;;
  test) source=(videotestsrc is-live=true pattern="$TEST_PATTERN" '!' "$caps") ;;
esac

base="${MEDIAMTX_URL%/}"
case "$base" in
  rtsp://*|rtsps://*) sink=(mediamtxsink name=publisher transport=rtsp location="$base/$STREAM_PATH") ;;
  http://*|https://*) sink=(mediamtxsink name=publisher transport=whip location="$base/$STREAM_PATH/whip") ;;
  *) echo "publish-camera: MEDIAMTX_URL must start with rtsp://, rtsps://, http:// or https://" >&2; exit 2 ;;
esac
sink+=(encoder="$ENCODER" bitrate="$VIDEO_BITRATE_KBPS" keyframe-interval="$KEYFRAME_INTERVAL")

# The capture-time code (gst-mediamtx-run.py --write-time-code) goes in right after the camera.
time_code=()
if [[ "$TIME_CODE" == "1" ]]; then
  source+=('!' gdkpixbufoverlay name=time-code)
  time_code=(--write-time-code time-code)
fi

echo "publish-camera: camera $CAMERA -> ${sink[2]} ${sink[3]}"
export MEDIAMTX_USER MEDIAMTX_PASS MEDIAMTX_TOKEN
exec /usr/bin/python3 "$here/gst-mediamtx-run.py" --label publish-camera --stats-interval "$STATUS_INTERVAL" \
  --duration "$DURATION" "${time_code[@]}" -- "${source[@]}" '!' queue max-size-buffers=2 leaky=downstream '!' \
  "${sink[@]}"

// Publishers that feed MediaMTX a known test pattern. Each returns { stop(), log() } and
// is the one place to swap in the project's own publisher once it is merged:
// `mediamtxsink location=rtsp://…` for rtspPublisher, `mediamtxsink transport=whip …` for
// whipPublisher.
'use strict';

const { spawn } = require('node:child_process');

const { track, stopProcess } = require('./util');

// RTP payloads MediaMTX relays to WebRTC, as stock encoder chains for rtspclientsink (no AV1:
// GStreamer 1.22 has no rtpav1pay).
const VIDEO_ENCODERS = {
  h264: 'x264enc tune=zerolatency speed-preset=ultrafast key-int-max=30 bitrate=1000 ! video/x-h264,profile=constrained-baseline',
  vp8: 'vp8enc deadline=1 keyframe-max-dist=30 target-bitrate=1000000 ! video/x-vp8,profile=(string)0',
  vp9: 'vp9enc deadline=1 cpu-used=8 keyframe-max-dist=30 target-bitrate=1000000 ! vp9parse',
  h265: 'x265enc tune=zerolatency speed-preset=ultrafast key-int-max=30 bitrate=1000 ! video/x-h265,profile=main',
};

const AUDIO_ENCODERS = {
  opus: 'audiotestsrc is-live=true wave=sine freq=440 ! audioconvert ! audioresample ! opusenc',
};

// Runs a publisher as a child process; stop() sends SIGINT (gst-launch-1.0 -e: EOS first;
// whip_publisher: DELETE its session), then SIGKILL after 3 s.
function runProcess(program, args) {
  const proc = track(spawn(program, args, { stdio: ['ignore', 'pipe', 'pipe'] }));
  let log = '';
  proc.on('error', (err) => { log += `cannot run ${program}: ${err.message}\n`; });
  proc.stdout.on('data', (c) => { log += c; });
  proc.stderr.on('data', (c) => { log += c; });
  return { log: () => log, stop: () => stopProcess(proc, 'SIGINT') };
}

function launch(description) {
  return runProcess('gst-launch-1.0', ['-e', '-q', ...description.split(/\s+/).filter(Boolean)]);
}

function rawVideo({ pattern = 'smpte', width = 640, height = 360 }) {
  return `videotestsrc is-live=true pattern=${pattern} ! ` +
    `video/x-raw,width=${width},height=${height},framerate=30/1,format=I420`;
}

// Stock RTSP publisher (later: mediamtxsink location=rtsp://…).
function rtspPublisher(server, streamPath, { codec = 'h264', audio = null, ...video } = {}) {
  let d = `${rawVideo(video)} ! ${VIDEO_ENCODERS[codec]} ! ` +
    `rtspclientsink name=s protocols=tcp location=${server.rtspUrl(streamPath)}`;
  if (audio) d += ` ${AUDIO_ENCODERS[audio]} ! s.`;
  return launch(d);
}

// WHIP publisher of H.264 (tests/interop/whip_publisher.cpp on gst/'s WebrtcPeer; later:
// mediamtxsink transport=whip …).
function whipPublisher(server, streamPath, { helper, codec = 'h264', pattern = 'smpte', width = 640, height = 360 } = {}) {
  if (codec !== 'h264') throw new Error(`whip_publisher sends H.264 only, not ${codec}`);
  const args = [server.whipUrl(streamPath), pattern, String(width), String(height)];
  return runProcess(helper, args);
}

module.exports = { rtspPublisher, whipPublisher };

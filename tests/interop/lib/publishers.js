// Publishers that feed MediaMTX a known test pattern. Each returns { stop(), log() }. H.264 (the
// camera case) and H.265 go through the project's own mediamtxsink, over RTSP or WHIP; VP8/VP9 are
// not mediamtxsink inputs and use stock encoder chains into rtspclientsink.
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

// Runs a publisher as a child process; stop() sends SIGINT (gst-launch-1.0 -e: EOS first, so
// mediamtxsink ends its RTSP or WHIP session), then SIGKILL after 3 s.
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

// Raw audio for mediamtxsink's audio pad (it encodes to Opus).
const RAW_AUDIO = 'audiotestsrc is-live=true wave=sine freq=440';

// RTSP publisher: mediamtxsink (raw video encoded by it; H.265 passed through), or stock chains
// for VP8/VP9.
function rtspPublisher(server, streamPath, { codec = 'h264', audio = null, ...video } = {}) {
  let d;
  if (codec === 'h264' || codec === 'h265') {
    const encode = codec === 'h265' ? `${VIDEO_ENCODERS.h265} ! ` : '';
    d = `${rawVideo(video)} ! ${encode}mediamtxsink name=s location=${server.rtspUrl(streamPath)}`;
    if (audio) d += ` ${RAW_AUDIO} ! s.audio`;
  } else {
    d = `${rawVideo(video)} ! ${VIDEO_ENCODERS[codec]} ! ` +
      `rtspclientsink name=s protocols=tcp location=${server.rtspUrl(streamPath)}`;
    if (audio) d += ` ${AUDIO_ENCODERS[audio]} ! s.`;
  }
  return launch(d);
}

// WHIP publisher: mediamtxsink transport=whip (H.264 video, Opus audio).
function whipPublisher(server, streamPath, { codec = 'h264', audio = null, ...video } = {}) {
  if (codec !== 'h264') throw new Error(`mediamtxsink sends H.264 over WHIP, not ${codec}`);
  let d = `${rawVideo(video)} ! mediamtxsink name=s transport=whip location=${server.whipUrl(streamPath)}`;
  if (audio) d += ` ${RAW_AUDIO} ! s.audio`;
  return launch(d);
}

module.exports = { rtspPublisher, whipPublisher };

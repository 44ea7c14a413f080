// A real MediaMTX for the interop tests, started from Node on free ports with a generated config.
// Mirrors tests/testbed/mediamtx_server.cpp (MediamtxServer::write_config): only RTSP, WebRTC
// (WHEP/WHIP and the reader/publish pages), HLS and the API; everything else off.
'use strict';

const { spawn } = require('node:child_process');
const fs = require('node:fs');
const net = require('node:net');
const dgram = require('node:dgram');
const path = require('node:path');

const { sleep, track, stopProcess, makeTempDir, removeTempDir } = require('./util');

function canBindTcp(port) {
  return new Promise((resolve) => {
    const srv = net.createServer();
    srv.once('error', () => resolve(false));
    srv.listen({ port, host: '0.0.0.0', exclusive: true }, () => srv.close(() => resolve(true)));
  });
}

function canBindUdp(port) {
  return new Promise((resolve) => {
    const sock = dgram.createSocket('udp4');
    sock.once('error', () => { sock.close(); resolve(false); });
    sock.bind(port, '0.0.0.0', () => sock.close(() => resolve(true)));
  });
}

const taken = new Set();

// A port free for TCP (and UDP when asked) right now, probed at random in a high range: several
// ports are chosen before the server binds them.
async function freePort({ udp = false, even = false } = {}) {
  for (let i = 0; i < 1000; i++) {
    let port = 20000 + Math.floor(Math.random() * 40000);
    if (even) port &= ~1;
    if (taken.has(port) || (even && taken.has(port + 1))) continue;
    if (even) {
      if (await canBindUdp(port) && await canBindUdp(port + 1)) {
        taken.add(port); taken.add(port + 1);
        return port;
      }
      continue;
    }
    if (await canBindTcp(port) && (!udp || await canBindUdp(port))) {
      taken.add(port);
      return port;
    }
  }
  throw new Error('no free port found');
}

class MediamtxServer {
  constructor({ host = process.env.TESTBED_SERVER_ADDR || '127.0.0.1', bin = process.env.MEDIAMTX_BIN } = {}) {
    if (!bin || !fs.existsSync(bin)) {
      throw new Error('MEDIAMTX_BIN is not set to a MediaMTX binary (tests/run.sh sets it)');
    }
    this.bin = bin;
    this.host = host;
    this.dir = makeTempDir('mediamtx-interop-');
    this.proc = null;
    this.log = '';
  }

  async writeConfig() {
    this.rtspPort = await freePort();
    this.rtpPort = await freePort({ even: true });
    this.webrtcPort = await freePort();
    this.hlsPort = await freePort();
    this.apiPort = await freePort();
    this.iceUdpPort = await freePort({ udp: true });
    const yml = [
      'logLevel: debug',
      'logDestinations: [stdout]',
      'api: true',
      `apiAddress: 127.0.0.1:${this.apiPort}`,
      'metrics: false', 'pprof: false', 'playback: false', 'rtmp: false', 'srt: false', 'moq: false',
      'rtsp: true',
      'rtspTransports: [udp, tcp]',
      `rtspAddress: :${this.rtspPort}`,
      `rtpAddress: :${this.rtpPort}`,
      `rtcpAddress: :${this.rtpPort + 1}`,
      'hls: true',
      `hlsAddress: :${this.hlsPort}`,
      'webrtc: true',
      `webrtcAddress: :${this.webrtcPort}`,
      `webrtcLocalUDPAddress: :${this.iceUdpPort}`,
      'webrtcLocalTCPAddress: ""',
      'paths:',
      '  all_others:',
      '',
    ].join('\n');
    this.configPath = path.join(this.dir, 'mediamtx.yml');
    fs.writeFileSync(this.configPath, yml);
  }

  async start() {
    await this.writeConfig();
    this.proc = track(spawn(this.bin, [this.configPath], { cwd: this.dir, stdio: ['ignore', 'pipe', 'pipe'] }));
    const append = (chunk) => { this.log += chunk.toString(); };
    this.proc.stdout.on('data', append);
    this.proc.stderr.on('data', append);
    const deadline = Date.now() + 15000;
    while (Date.now() < deadline) {
      if (this.proc.exitCode !== null || this.proc.signalCode !== null) break;
      try {
        const res = await fetch(`http://127.0.0.1:${this.apiPort}/v3/paths/list`);
        if (res.ok) return;
      } catch { /* not listening yet */ }
      await sleep(100);
    }
    throw new Error(`MediaMTX did not become ready; log:\n${this.log}`);
  }

  // SIGTERM (SIGKILL after 3 s), then removes the config folder.
  async stop() {
    if (this.proc) await stopProcess(this.proc, 'SIGTERM');
    removeTempDir(this.dir);
  }

  rtspUrl(p) { return `rtsp://${this.host}:${this.rtspPort}/${p}`; }
  webrtcBase() { return `http://${this.host}:${this.webrtcPort}`; }
  whepUrl(p) { return `${this.webrtcBase()}/${p}/whep`; }
  whipUrl(p) { return `${this.webrtcBase()}/${p}/whip`; }
  readerPage(p) { return `${this.webrtcBase()}/${p}/`; }
  publishPage(p) { return `${this.webrtcBase()}/${p}/publish`; }

  async api(what) {
    const res = await fetch(`http://127.0.0.1:${this.apiPort}/v3/${what}`);
    if (!res.ok) throw new Error(`API ${what}: ${res.status}`);
    return res.json();
  }

  // The path's state from the API, or null when the path does not exist yet.
  async pathInfo(p) {
    const res = await fetch(`http://127.0.0.1:${this.apiPort}/v3/paths/get/${p}`);
    return res.ok ? res.json() : null;
  }

  async waitPathReady(p, timeoutMs) {
    const deadline = Date.now() + timeoutMs;
    while (Date.now() < deadline) {
      const info = await this.pathInfo(p);
      if (info && info.ready) return info;
      await sleep(200);
    }
    throw new Error(`path '${p}' not ready after ${timeoutMs} ms`);
  }

  async webrtcSessionCount() {
    return (await this.api('webrtcsessions/list')).itemCount;
  }
}

module.exports = { MediamtxServer };

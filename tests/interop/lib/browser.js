// Debian's Chromium, driven by playwright-core: never a downloaded browser.
'use strict';

const fs = require('node:fs');
const { chromium } = require('playwright-core');

const { makeTempDir, removeTempDir } = require('./util');

const CHROMIUM = process.env.CHROMIUM_BIN || '/usr/bin/chromium';

// Runs in every page before its own scripts: keeps each RTCPeerConnection the page creates in
// window.__peerConnections, so tests can read getStats() from pages they do not control
// (MediaMTX's reader and publish pages keep theirs in private fields).
function recordPeerConnections() {
  const Native = window.RTCPeerConnection;
  if (!Native) return;
  window.__peerConnections = [];
  window.RTCPeerConnection = class extends Native {
    constructor(...args) {
      super(...args);
      window.__peerConnections.push(this);
    }
  };
}

// RTP statistics of the page's open peer connections: per direction ('inbound' / 'outbound') and
// kind, the packets, codec MIME type and (video) frame size of each stream.
async function rtpStats(page) {
  return page.evaluate(async () => {
    const out = { inbound: {}, outbound: {} };
    for (const pc of window.__peerConnections || []) {
      if (pc.connectionState === 'closed') continue;
      const report = await pc.getStats();
      report.forEach((s) => {
        if (s.type !== 'inbound-rtp' && s.type !== 'outbound-rtp') return;
        const codec = s.codecId ? report.get(s.codecId) : null;
        out[s.type === 'inbound-rtp' ? 'inbound' : 'outbound'][s.kind] = {
          packets: s.type === 'inbound-rtp' ? s.packetsReceived : s.packetsSent,
          mimeType: codec ? codec.mimeType : null,
          frameWidth: s.frameWidth, frameHeight: s.frameHeight,
          frames: s.type === 'inbound-rtp' ? s.framesDecoded : s.framesEncoded,
        };
      });
    }
    return out;
  });
}

// Launches a persistent context on a fresh profile (--user-data-dir). `secureOrigin`: an http
// origin to treat as secure (the publish page needs getUserMedia); `fakeMedia`: fake camera and
// microphone, no permission prompt; `fakeVideoFile`: a .y4m file the fake camera plays in a loop
// instead of its own pattern.
async function launchChromium({ secureOrigin = null, fakeMedia = false, fakeVideoFile = null } = {}) {
  if (!fs.existsSync(CHROMIUM)) {
    throw new Error(`${CHROMIUM} not found: run tests/interop/setup.sh (installs Debian's chromium)`);
  }
  const profile = makeTempDir('interop-chromium-');
  const args = [
    '--headless', '--no-sandbox', '--disable-gpu', '--disable-background-networking',
    '--disable-quic', '--no-first-run', '--disable-component-update', '--disable-sync',
    '--autoplay-policy=no-user-gesture-required',
  ];
  if (fakeMedia) args.push('--use-fake-device-for-media-stream', '--use-fake-ui-for-media-stream');
  if (fakeVideoFile) args.push(`--use-file-for-fake-video-capture=${fakeVideoFile}`);
  if (secureOrigin) args.push(`--unsafely-treat-insecure-origin-as-secure=${secureOrigin}`);
  const context = await chromium.launchPersistentContext(profile, {
    executablePath: CHROMIUM,
    headless: true,
    args,
    viewport: { width: 800, height: 600 },
  });
  await context.addInitScript(recordPeerConnections);
  const close = async () => {
    await context.close().catch(() => {});
    removeTempDir(profile);
  };
  return { context, close };
}

module.exports = { launchChromium, rtpStats };

#!/usr/bin/env node
// Interop with a real browser and MediaMTX's own pages (issue 9). Runs inside the test network
// namespace (tests/testbed/netns-run.sh): one MediaMTX on free ports, Debian's Chromium through
// playwright-core.
//
//   browser as viewer:    GStreamer publisher (SMPTE bars) --RTSP--> MediaMTX --WHEP--> Chromium,
//                         through MediaMTX's reader page and through the seed's minimal WHEP page;
//                         asserts size, playback and the colour of every bar.
//   browser as publisher: Chromium (fake camera + microphone) --WHIP, MediaMTX's publish page-->
//                         MediaMTX --WHEP--> whepsrc (whep_probe); asserts decoded frames, size,
//                         audio buffers and the codecs MediaMTX received.
//
// Prints one line per test and "N passed, N failed" last; exits 1 on any failure.
'use strict';

const { spawn, spawnSync } = require('node:child_process');
const http = require('node:http');
const fs = require('node:fs');
const path = require('node:path');

const USAGE = `Usage: test_interop.js --whep-probe PATH [--only SUBSTRING]

Run by 'meson test --suite interop' inside tests/testbed/netns-run.sh (needs the namespace, Debian's
chromium and tests/interop/node_modules: tests/interop/setup.sh installs both).

Environment (defaults):
  MEDIAMTX_BIN         MediaMTX binary            (set by meson from -Dmediamtx)
  TESTBED_SERVER_ADDR  address MediaMTX is reached on  (set by netns-run.sh; 127.0.0.1)
  TESTBED_CLIENT_ADDR  address the test page server binds (set by netns-run.sh; 127.0.0.1)
  CHROMIUM_BIN         browser                    (/usr/bin/chromium)
  INTEROP_ONLY         run only tests whose name contains this  (all)
`;

function parseArgs(argv) {
  const opts = { probe: null, only: process.env.INTEROP_ONLY || '' };
  for (let i = 0; i < argv.length; i++) {
    if (argv[i] === '--help' || argv[i] === '-h') { process.stdout.write(USAGE); process.exit(0); }
    else if (argv[i] === '--whep-probe') opts.probe = argv[++i];
    else if (argv[i] === '--only') opts.only = argv[++i];
    else { process.stderr.write(`unknown argument ${argv[i]}\n${USAGE}`); process.exit(2); }
  }
  if (!opts.probe) { process.stderr.write(USAGE); process.exit(2); }
  opts.probe = path.resolve(opts.probe);
  return opts;
}

const opts = parseArgs(process.argv.slice(2));

try {
  require.resolve('playwright-core');
} catch {
  console.log('playwright-core is not installed: run tests/interop/setup.sh (tests/run.sh does)');
  console.log('0 passed, 1 failed');
  process.exit(1);
}

const { MediamtxServer } = require('./lib/mediamtx');
const { rtspPublisher, whipPublisher } = require('./lib/publishers');
const { launchChromium, rtpStats } = require('./lib/browser');
const { sampleVideo } = require('./lib/video_probe');
const { sleep, waitFor, assert, track, makeTempDir, removeTempDir, cleanUpOnExit } = require('./lib/util');

// SMPTE bars (videotestsrc pattern=smpte), top two thirds: seven bars, left to right.
const SMPTE_BARS = [
  ['white', [1, 1, 1]], ['yellow', [1, 1, 0]], ['cyan', [0, 1, 1]], ['green', [0, 1, 0]],
  ['magenta', [1, 0, 1]], ['red', [1, 0, 0]], ['blue', [0, 0, 1]],
];
const CODEC_MIME = { h264: 'H264', h265: 'H265', vp8: 'VP8', vp9: 'VP9', av1: 'AV1' };
// Audio codecs of the publish page: its select value, the browser's MIME type, the decoded rate.
const AUDIO_CODECS = {
  opus: { sdp: 'opus/48000', mime: 'audio/opus', rate: 48000 },
  g722: { sdp: 'g722/8000', mime: 'audio/G722', rate: 16000 },
  pcmu: { sdp: 'pcmu/8000', mime: 'audio/PCMU', rate: 8000 },
  pcma: { sdp: 'pcma/8000', mime: 'audio/PCMA', rate: 8000 },
};
const BAR_POINTS = SMPTE_BARS.map((_, i) => [(2 * i + 1) / 14, 0.3]);

// Each channel must be clearly on (>= 160) or off (<= 90) after encode, decode and colour
// conversion.
function checkBars(pixels) {
  const wrong = [];
  SMPTE_BARS.forEach(([name, expected], i) => {
    const px = pixels[i];
    const ok = px && expected.every((on, c) => (on ? px[c] >= 160 : px[c] <= 90));
    if (!ok) wrong.push(`${name} bar is rgb(${px})`);
  });
  return wrong;
}

// The <video> plays: the right size, time and frame count advancing, the bars in place.
async function assertPlaysBars(page, { width, height, selector = 'video' }) {
  const first = await waitFor('the video to show a frame', async () => {
    const s = await sampleVideo(page, BAR_POINTS, selector);
    return s.width > 0 && s.readyState >= 2 && s.currentTime > 0 ? s : null;
  }, 20000);
  await sleep(1500);
  const later = await sampleVideo(page, BAR_POINTS, selector);
  assert(later.width === width && later.height === height,
    `video is ${later.width}x${later.height}, expected ${width}x${height}`);
  assert(!later.paused, 'video is paused');
  assert(later.currentTime - first.currentTime >= 1.0,
    `playback advanced ${(later.currentTime - first.currentTime).toFixed(2)} s in 1.5 s`);
  const frames = later.totalFrames - first.totalFrames;
  assert(frames >= 20, `only ${frames} frames decoded in 1.5 s`);
  const wrong = checkBars(later.pixels);
  assert(wrong.length === 0, `pixels do not match the SMPTE bars: ${wrong.join(', ')}`);
  return { fps: Math.round(frames / 1.5) };
}

// SMPTE bars at 640x480 as a .y4m file for the publisher's fake camera (its own pattern is a
// moving drawing, hard to check pixel by pixel). A few frames: Chromium plays the file in a loop.
function makeBarsVideo() {
  const dir = makeTempDir('interop-camera-');
  const file = path.join(dir, 'bars.y4m');
  const r = spawnSync('gst-launch-1.0', ['-q', 'videotestsrc', 'pattern=smpte', 'num-buffers=10', '!',
    'video/x-raw,format=I420,width=640,height=480,framerate=30/1', '!', 'y4menc', '!', 'filesink', `location=${file}`]);
  if (r.status !== 0) throw new Error(`cannot write ${file}: ${r.stderr}`);
  return file;
}

// Serves tests/interop/pages/ (the minimal WHEP page) on the client address.
function startPageServer(host) {
  const root = path.join(__dirname, 'pages');
  const server = http.createServer((req, res) => {
    const name = path.basename(new URL(req.url, 'http://x').pathname);
    const file = path.join(root, name);
    if (!name.endsWith('.html') || !fs.existsSync(file)) { res.writeHead(404); res.end(); return; }
    res.writeHead(200, { 'Content-Type': 'text/html; charset=utf-8' });
    res.end(fs.readFileSync(file));
  });
  return new Promise((resolve) => server.listen(0, host, () => resolve(server)));
}

// Runs whep_probe on a WHEP URL and returns its JSON report.
function runWhepProbe(url, { minFrames = 60, minAudio = 0, timeoutMs = 20000, points = [] } = {}) {
  return new Promise((resolve, reject) => {
    const args = [url, String(minFrames), String(minAudio), String(timeoutMs), points.map((p) => p.join(',')).join(';')];
    const proc = track(spawn(opts.probe, args, { stdio: ['ignore', 'pipe', 'pipe'] }));
    let out = '', err = '';
    proc.on('error', reject);
    proc.stdout.on('data', (c) => { out += c; });
    proc.stderr.on('data', (c) => { err += c; });
    proc.on('exit', (code) => {
      const line = out.trim().split('\n').pop();
      try {
        resolve(JSON.parse(line));
      } catch {
        reject(new Error(`whep_probe exited ${code}: ${out}\n${err.slice(-2000)}`));
      }
    });
  });
}

// ---------------------------------------------------------------------------------------------
// The tests. ctx: { server, pageBase (URL of pages/), viewer (Chromium), publisher (Chromium with
// fake devices), cleanup: [] (async functions run after the test) }.

const matrix = [];

function record(direction, codec, result, detail) {
  matrix.push({ direction, codec, result, detail });
}

// The publishers a viewer test can use (lib/publishers.js: where mediamtxsink will slot in).
const PUBLISHERS = {
  rtsp: (server, streamPath, o) => rtspPublisher(server, streamPath, o),
  whip: (server, streamPath, o) => whipPublisher(server, streamPath, o),
};

// Starts a publisher of SMPTE bars (640x360) on streamPath and waits until MediaMTX has the stream.
async function publishBars(ctx, publisher, streamPath, { codec, audio = null }) {
  const pub = PUBLISHERS[publisher](ctx.server, streamPath, { codec, audio, pattern: 'smpte', width: 640, height: 360 });
  ctx.cleanup.push(() => pub.stop());
  await ctx.server.waitPathReady(streamPath, 15000).catch((e) => {
    throw new Error(`${e.message}; publisher log: ${pub.log().slice(-1500)}`);
  });
  return pub;
}

// A new tab in `browser`, closed (with its "beforeunload" handlers) after the test.
async function newPage(ctx, browser) {
  const page = await browser.newPage();
  ctx.cleanup.push(() => page.close({ runBeforeUnload: true }).catch(() => {}));
  return page;
}

// Browser as viewer: a publisher (stock RTSP or the WHIP helper now; mediamtxsink later) sends
// SMPTE bars.
function viewerTest(name, { publisher = 'rtsp', codec, audio = null, page: pageKind }) {
  return {
    name,
    async run(ctx) {
      const streamPath = name.replace(/[^a-z0-9]+/gi, '-');
      await publishBars(ctx, publisher, streamPath, { codec, audio });
      const sessionsBefore = await ctx.server.webrtcSessionCount(); // a WHIP publisher has one
      const page = await newPage(ctx, ctx.viewer);
      const whepUrl = ctx.server.whepUrl(streamPath);
      if (pageKind === 'reader') {
        await page.goto(ctx.server.readerPage(streamPath));
      } else {
        await page.goto(`${ctx.pageBase}/whep.html?url=${encodeURIComponent(whepUrl)}${audio ? '&audio=1' : ''}`);
      }
      const played = await assertPlaysBars(page, { width: 640, height: 360 });
      const stats = await rtpStats(page);
      const video = stats.inbound.video || {};
      assert(video.mimeType === `video/${CODEC_MIME[codec]}`, `received video codec ${video.mimeType}, sent ${codec}`);
      let detail = `${video.mimeType} 640x360, ~${played.fps} fps, bars match`;
      if (audio) {
        const a = stats.inbound.audio || {};
        assert(a.mimeType === 'audio/opus' && a.packets > 20, `audio: ${JSON.stringify(a)}`);
        detail += `, ${a.mimeType} ${a.packets} packets`;
      }
      if (pageKind === 'whep') {
        const state = await page.evaluate(() => window.whepState);
        assert(state.httpStatus === 201, `WHEP POST returned ${state.httpStatus}`);
        assert(/\/whep\/[0-9a-f-]+$/.test(state.location || ''), `Location ${state.location}`);
        // WHEP teardown deletes the session on the server.
        const sessions = await ctx.server.webrtcSessionCount();
        assert(sessions === sessionsBefore + 1, `${sessions} WebRTC sessions, expected ${sessionsBefore + 1}`);
        await page.evaluate(() => window.whepStop());
        await waitFor('the session to be deleted',
          async () => (await ctx.server.webrtcSessionCount()) === sessionsBefore, 5000);
      } else {
        // closing the reader page ends its session (its "beforeunload" handler DELETEs it)
        await page.close({ runBeforeUnload: true });
        await waitFor('the reader page to delete its session on close',
          async () => (await ctx.server.webrtcSessionCount()) === sessionsBefore, 5000);
      }
      record(`${publisher.toUpperCase()} publisher -> MediaMTX -> browser`, `${codec}${audio ? `+${audio}` : ''} (${pageKind} page)`,
        'works', detail);
    },
  };
}

// A codec MediaMTX relays but this Chromium cannot receive over WebRTC (H.265 in Debian's 156):
// the reader page must say so ("codecs not supported by client", MediaMTX's 400) and show nothing.
function viewerUnsupportedTest(name, { codec }) {
  return {
    name,
    async run(ctx) {
      const streamPath = name.replace(/[^a-z0-9]+/gi, '-');
      await publishBars(ctx, 'rtsp', streamPath, { codec });
      const page = await newPage(ctx, ctx.viewer);
      await page.goto(ctx.server.readerPage(streamPath));
      const message = await waitFor('the reader page to report an error',
        () => page.locator('#message').innerText().catch(() => ''), 15000);
      assert(/codecs not supported by client/.test(message), `reader page says "${message}"`);
      const shown = await sampleVideo(page, []);
      assert(shown.width === 0, `the video shows ${shown.width}x${shown.height}`);
      record('RTSP publisher -> MediaMTX -> browser', `${codec} (reader page)`, 'not supported',
        `Chromium offers no ${CODEC_MIME[codec]}: reader page says "${message}"`);
    },
  };
}

// Whether GStreamer has this element (gst-inspect-1.0 --exists).
function hasElement(name) {
  return spawnSync('gst-inspect-1.0', ['--exists', name]).status === 0;
}

// Opens MediaMTX's publish page for streamPath in the fake-device Chromium, picks the codecs and
// presses "publish"; returns the page, the path info once MediaMTX has the stream, and the
// camera's capture settings.
async function publishFromPage(ctx, streamPath, videoCodec, audioCodec = 'opus') {
  const page = await newPage(ctx, ctx.publisher);
  const query = new URLSearchParams({
    'video-width': '640', 'video-height': '480', 'video-framerate': '30', 'video-bitrate': '1500',
    'audio-codec': AUDIO_CODECS[audioCodec].sdp,
  });
  if (videoCodec) query.set('video-codec', `${videoCodec}/90000`);
  await page.goto(`${ctx.server.publishPage(streamPath)}?${query}`);
  const button = page.locator('#publish-button');
  await button.waitFor({ state: 'visible', timeout: 15000 });
  if (videoCodec) {
    const selected = await page.locator('#video-codec').inputValue();
    assert(selected === `${videoCodec}/90000`, `the publish page offers no ${videoCodec} (selected ${selected})`);
  }
  await button.click();
  const info = await ctx.server.waitPathReady(streamPath, 15000).catch(async (e) => {
    const message = await page.locator('#message').innerText().catch(() => '?');
    throw new Error(`${e.message}; publish page says "${message}"`);
  });
  const capture = await page.evaluate(() => {
    const { width, height } = document.querySelector('video').srcObject.getVideoTracks()[0].getSettings();
    return { width, height };
  });
  const sent = await rtpStats(page);
  const sentVideo = (sent.outbound.video || {}).mimeType;
  const sentAudio = (sent.outbound.audio || {}).mimeType;
  assert(sentVideo === `video/${CODEC_MIME[videoCodec || 'av1']}` &&
    sentAudio === AUDIO_CODECS[audioCodec].mime,
    `the browser sends ${sentVideo} and ${sentAudio}`);
  return { page, tracks: info.tracks || [], capture };
}

// A WebRTC sender scales its resolution down while its bandwidth estimate ramps up or the CPU is
// busy (2 cores here): the received size is the capture size or a reduction of it with the same
// aspect ratio.
function assertScaledCapture(width, height, capture) {
  assert(width > 0 && width <= capture.width && height <= capture.height &&
    width * 4 >= capture.width && Math.abs(width * capture.height - height * capture.width) <= capture.width * 2,
    `received ${width}x${height}, not the capture size ${capture.width}x${capture.height} or a scaled copy of it`);
}

// Browser as publisher through MediaMTX's publish page; whepsrc reads it.
function publisherTest(name, { videoCodec, audioCodec = 'opus', expectTracks }) {
  return {
    name,
    async run(ctx) {
      const streamPath = name.replace(/[^a-z0-9]+/gi, '-');
      const { page, tracks, capture } = await publishFromPage(ctx, streamPath, videoCodec, audioCodec);
      assert(JSON.stringify([...tracks].sort()) === JSON.stringify([...expectTracks].sort()),
        `MediaMTX received tracks ${JSON.stringify(tracks)}, expected ${JSON.stringify(expectTracks)}`);
      const report = await runWhepProbe(ctx.server.whepUrl(streamPath),
        { minFrames: 60, minAudio: 50, timeoutMs: 25000, points: BAR_POINTS });
      assert(report.errors.length === 0, `whepsrc errors: ${report.errors.join('; ')}`);
      assert(report.video_frames >= 60, `whepsrc decoded ${report.video_frames} frames`);
      assert(report.video_caps === 'video/x-raw', `video caps ${report.video_caps}`);
      assertScaledCapture(report.width, report.height, capture);
      const wrong = checkBars(report.pixels);
      assert(wrong.length === 0, `whepsrc's pixels do not match the camera's SMPTE bars: ${wrong.join(', ')}`);
      assert(report.audio_buffers >= 50, `whepsrc decoded ${report.audio_buffers} audio buffers`);
      assert(report.audio_caps === 'audio/x-raw' && report.audio_rate === AUDIO_CODECS[audioCodec].rate,
        `audio caps ${report.audio_caps} rate ${report.audio_rate}`);
      // closing the publish page ends the publication
      await page.close({ runBeforeUnload: true });
      await waitFor('the path to go away when the publish page closes',
        async () => !((await ctx.server.pathInfo(streamPath)) || {}).ready, 5000);
      record('browser -> MediaMTX -> whepsrc', `${tracks.join('+')} (publish page, ${videoCodec}+${audioCodec})`, 'works',
        `capture ${capture.width}x${capture.height}, whepsrc ${report.width}x${report.height} bars match, ` +
        `${report.video_frames} frames, ${report.audio_buffers} audio buffers, first frame after ${report.first_frame_ms} ms`);
    },
  };
}

// The publish page's default, AV1. GStreamer 1.22 (Debian 12) has no rtpav1depay (it comes with
// gst-plugins-rs), so whepsrc cannot offer AV1: MediaMTX must refuse its offer with a clear error
// ("codecs not supported by client", HTTP 400). The browser's own reader page reads it back.
function publisherAv1Test(name) {
  return {
    name,
    async run(ctx) {
      const streamPath = name.replace(/[^a-z0-9]+/gi, '-');
      const { tracks, capture } = await publishFromPage(ctx, streamPath, null);
      assert(tracks.includes('AV1') && tracks.includes('Opus'), `MediaMTX received ${JSON.stringify(tracks)}`);
      const viewer = await newPage(ctx, ctx.viewer);
      await viewer.goto(ctx.server.readerPage(streamPath));
      const shown = await waitFor('the reader page to play the AV1 stream', async () => {
        const s = await sampleVideo(viewer, BAR_POINTS);
        return s.width > 0 && s.currentTime > 0.5 ? s : null;
      }, 20000);
      assertScaledCapture(shown.width, shown.height, capture);
      const wrong = checkBars(shown.pixels);
      assert(wrong.length === 0, `the reader page's pixels do not match the camera's SMPTE bars: ${wrong.join(', ')}`);
      record('browser -> MediaMTX -> browser', 'AV1+Opus (publish page -> reader page)', 'works',
        `reader page ${shown.width}x${shown.height}, bars match`);
      const report = await runWhepProbe(ctx.server.whepUrl(streamPath),
        { minFrames: 30, minAudio: 20, timeoutMs: 15000 });
      if (hasElement('rtpav1depay')) {
        assert(report.errors.length === 0 && report.video_frames >= 30,
          `whepsrc with rtpav1depay: ${report.video_frames} frames, errors ${report.errors.join('; ')}`);
        record('browser -> MediaMTX -> whepsrc', 'AV1+Opus (publish page)', 'works', `${report.video_frames} frames`);
      } else {
        assert(report.video_frames === 0 && report.errors.length === 1 && /HTTP 400/.test(report.errors[0]),
          `without rtpav1depay whepsrc should fail with HTTP 400: ${JSON.stringify(report)}`);
        record('browser -> MediaMTX -> whepsrc', 'AV1+Opus (publish page)', 'not supported',
          'no rtpav1depay in GStreamer 1.22: whepsrc offers no AV1, MediaMTX answers 400 "codecs not supported by client"');
      }
    },
  };
}

const TESTS = [
  viewerTest('viewer-reader-page-h264', { codec: 'h264', page: 'reader' }),
  viewerTest('viewer-whep-page-h264', { codec: 'h264', page: 'whep' }),
  viewerTest('viewer-whep-page-h264-opus', { codec: 'h264', audio: 'opus', page: 'whep' }),
  viewerTest('viewer-reader-page-vp8-opus', { codec: 'vp8', audio: 'opus', page: 'reader' }),
  viewerTest('viewer-reader-page-vp9', { codec: 'vp9', page: 'reader' }),
  viewerUnsupportedTest('viewer-reader-page-h265-unsupported', { codec: 'h265' }),
  viewerTest('viewer-reader-page-whip-h264', { publisher: 'whip', codec: 'h264', page: 'reader' }),
  viewerTest('viewer-whep-page-whip-h264', { publisher: 'whip', codec: 'h264', page: 'whep' }),
  publisherTest('publisher-page-h264-opus', { videoCodec: 'h264', expectTracks: ['H264', 'Opus'] }),
  publisherTest('publisher-page-vp8-opus', { videoCodec: 'vp8', expectTracks: ['VP8', 'Opus'] }),
  publisherTest('publisher-page-vp9-opus', { videoCodec: 'vp9', expectTracks: ['VP9', 'Opus'] }),
  publisherAv1Test('publisher-page-default-av1-opus'),
  publisherTest('publisher-page-vp8-g722', { videoCodec: 'vp8', audioCodec: 'g722', expectTracks: ['VP8', 'G722'] }),
  publisherTest('publisher-page-vp8-pcmu', { videoCodec: 'vp8', audioCodec: 'pcmu', expectTracks: ['VP8', 'G711'] }),
  publisherTest('publisher-page-vp8-pcma', { videoCodec: 'vp8', audioCodec: 'pcma', expectTracks: ['VP8', 'G711'] }),
];

async function withTimeout(promise, ms, what) {
  let timer;
  const timeout = new Promise((_, reject) => { timer = setTimeout(() => reject(new Error(`${what} timed out after ${ms} ms`)), ms); });
  try { return await Promise.race([promise, timeout]); } finally { clearTimeout(timer); }
}

async function main() {
  cleanUpOnExit();
  const tests = TESTS.filter((t) => t.name.includes(opts.only));
  let passed = 0, failed = 0;
  const server = new MediamtxServer();
  const resources = []; // closed in reverse order at the end
  try {
    resources.push(() => server.stop());
    await server.start();
    const pageServer = await startPageServer(process.env.TESTBED_CLIENT_ADDR || '127.0.0.1');
    resources.push(() => pageServer.close());
    const barsFile = makeBarsVideo();
    resources.push(() => removeTempDir(path.dirname(barsFile)));
    const viewer = await launchChromium();
    resources.push(() => viewer.close());
    const publisher = await launchChromium({ fakeMedia: true, fakeVideoFile: barsFile, secureOrigin: server.webrtcBase() });
    resources.push(() => publisher.close());
    const ctxBase = {
      server,
      pageBase: `http://${pageServer.address().address}:${pageServer.address().port}`,
      viewer: viewer.context,
      publisher: publisher.context,
    };
    for (const test of tests) {
      const ctx = { ...ctxBase, cleanup: [] };
      const start = Date.now();
      try {
        await withTimeout(test.run(ctx), 60000, test.name);
        passed++;
        console.log(`ok   ${test.name} (${Date.now() - start} ms)`);
      } catch (err) {
        failed++;
        console.log(`FAIL ${test.name} (${Date.now() - start} ms): ${err.message}`);
      } finally {
        for (const fn of ctx.cleanup.reverse()) await fn();
      }
    }
  } finally {
    if (failed) console.log(`MediaMTX log (tail):\n${server.log.slice(-4000)}`);
    for (const fn of resources.reverse()) await fn();
  }
  console.log('codec matrix (measured):');
  for (const m of matrix) console.log(`  ${m.direction}: ${m.codec}: ${m.result}: ${m.detail}`);
  console.log(`${passed} passed, ${failed} failed`);
  return failed === 0;
}

main().then((ok) => process.exit(ok ? 0 : 1), (err) => {
  console.log(`interop: ${err.stack || err}`);
  console.log('0 passed, 1 failed');
  process.exit(1);
});

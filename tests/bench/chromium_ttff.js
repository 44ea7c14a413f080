#!/usr/bin/env node
// gst-mediamtx benchmark reference: time to first frame of MediaMTX's own reader page in Debian's
// Chromium (playwright-core from tests/interop, never a downloaded browser). One fresh browser
// per start; prints per start
//   CHROMIUM_TTFF ok=1 from_launch=MS from_navigation=MS
// from_launch: from launching the browser process to the first video frame presented;
// from_navigation: from the page's navigation start (performance.timeOrigin) to that frame, as
// the page itself measures it (requestVideoFrameCallback). Run by mtx-bench ttff-fresh.
'use strict';

const path = require('node:path');
const { launchChromium } = require(path.join(__dirname, '..', 'interop', 'lib', 'browser'));

function usage() {
  console.log(`Usage: chromium_ttff.js --url=http://host:8889/path [--starts=10] [--max-pause-ms=1000]

Environment (defaults): CHROMIUM_BIN (/usr/bin/chromium)`);
}

// Runs in the page before its scripts: the first frame of the first <video> that plays.
function watchFirstFrame() {
  window.__firstFrameMs = null;
  const hook = (video) => {
    if (video.__watched) return;
    video.__watched = true;
    const onFrame = (now) => { if (window.__firstFrameMs === null) window.__firstFrameMs = now; };
    if (video.requestVideoFrameCallback) video.requestVideoFrameCallback(onFrame);
    else video.addEventListener('playing', () => onFrame(performance.now()), { once: true });
  };
  new MutationObserver(() => document.querySelectorAll('video').forEach(hook))
    .observe(document, { childList: true, subtree: true });
}

async function main() {
  const args = Object.fromEntries(process.argv.slice(2).map((a) => {
    const [k, ...v] = a.replace(/^--/, '').split('=');
    return [k, v.join('=') || '1'];
  }));
  if (args.help || args.h || !args.url) {
    usage();
    process.exit(args.url ? 0 : 2);
  }
  const starts = Number(args.starts || 10);
  const maxPause = Number(args['max-pause-ms'] || 1000);
  console.error(`chromium_ttff: url=${args.url} starts=${starts} max-pause-ms=${maxPause}`);
  for (let i = 0; i < starts; i++) {
    const launched = performance.now();
    const { context, close } = await launchChromium();
    try {
      await context.addInitScript(watchFirstFrame);
      const page = context.pages()[0] || await context.newPage();
      await page.goto(args.url);
      await page.waitForFunction(() => window.__firstFrameMs !== null, null, { timeout: 10000, polling: 5 });
      const { first, origin } = await page.evaluate(() => ({
        first: window.__firstFrameMs, origin: performance.timeOrigin,
      }));
      // performance.timeOrigin (page) and this process's clock are both epoch-based
      const fromLaunch = origin + first - (performance.timeOrigin + launched);
      console.log(`CHROMIUM_TTFF ok=1 from_launch=${fromLaunch.toFixed(1)} from_navigation=${first.toFixed(1)}`);
    } catch (e) {
      console.log(`CHROMIUM_TTFF ok=0 error=${JSON.stringify(String(e.message || e))}`);
    } finally {
      await close();
    }
    await new Promise((r) => setTimeout(r, 200 + Math.random() * maxPause));
  }
}

main().catch((e) => { console.error(e); process.exit(1); });

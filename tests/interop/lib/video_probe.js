// What a page's <video> shows: size, playback progress and sampled pixels (RGB), read in the page
// by drawing the current frame on a canvas at the video's own size.
'use strict';

// Runs in the page. points: [[fx, fy], ...] as fractions of the width and height.
function sampleInPage({ selector, points }) {
  const video = document.querySelector(selector);
  if (!video) return { found: false };
  const w = video.videoWidth, h = video.videoHeight;
  const out = {
    found: true, width: w, height: h, currentTime: video.currentTime, paused: video.paused,
    readyState: video.readyState, pixels: [],
  };
  if (!w || !h || video.readyState < 2) return out;
  const canvas = document.createElement('canvas');
  canvas.width = w; canvas.height = h;
  const ctx = canvas.getContext('2d', { willReadFrequently: true });
  ctx.drawImage(video, 0, 0, w, h);
  for (const [fx, fy] of points) {
    const d = ctx.getImageData(Math.floor(fx * w), Math.floor(fy * h), 1, 1).data;
    out.pixels.push([d[0], d[1], d[2]]);
  }
  const q = video.getVideoPlaybackQuality ? video.getVideoPlaybackQuality() : null;
  if (q) { out.totalFrames = q.totalVideoFrames; out.droppedFrames = q.droppedVideoFrames; }
  return out;
}

async function sampleVideo(page, points, selector = 'video') {
  return page.evaluate(sampleInPage, { selector, points });
}

module.exports = { sampleVideo };

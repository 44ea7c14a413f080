#!/usr/bin/python3
"""gst-mediamtx: what a longer keyframe interval saves, at mediamtxsink's x264enc settings.

Encodes the same deterministic source at keyframe intervals of 1, 2 and 4 s (30 fps) with the
settings mediamtxsink gives x264enc (gst/encoder_selection.cpp: tune=zerolatency,
speed-preset=ultrafast, no B-frames, no lookahead), decodes it again (avdec_h264) and compares
every decoded frame with its source frame (luma PSNR, and SSIM over 8x8 blocks):

- constant quality (x264 pass=qual, the CRF mode, quantizer=Q, its bitrate cap lifted): equal quality by construction,
  the keyframe interval changes the size -> "bitrate saved at equal quality";
- the target bitrate mediamtxsink uses (pass=cbr, bitrate=B): equal size, the quality changes.

Sources: "camera" = a still detailed scene (the pinwheel pattern) with one moving object (a ball), as a
fixed camera sees; "camera-noisy" = the same with sensor-like noise blended in; "pan" = the
benchmark's full-frame moving bars (every pixel moves: the worst case for long intervals).
Prints a Markdown table (docs/benchmarks.md, "Keyframe interval"). Needs /usr/bin/python3 with
python3-gi, python3-numpy and GStreamer's x264enc/avdec_h264.
"""
import argparse
import os
import sys
import threading

import gi
import numpy as np

gi.require_version("Gst", "1.0")
from gi.repository import Gst  # noqa: E402

W, H, FPS = 1280, 720, 30

SOURCES = {
    # still background + moving ball + a little noise, composited; deterministic (fixed seeds)
    "camera": (
        "compositor name=mix background=black ! videoconvert ! "
        "video/x-raw,format=I420,width={w},height={h},framerate={fps}/1 ! {tail} "
        "videotestsrc pattern=pinwheel num-buffers={n} ! video/x-raw,width={w},height={h},framerate={fps}/1 ! mix.sink_0 "
        "videotestsrc pattern=ball motion=wavy animation-mode=frames num-buffers={n} background-color=0x00000000 "
        "! video/x-raw,format=AYUV,width={w},height={h},framerate={fps}/1 ! mix.sink_1"
    ),
    # the same with sensor-like noise (1 % random snow blended into each frame)
    "camera-noisy": (
        "compositor name=mix background=black sink_2::alpha=0.01 ! videoconvert ! "
        "video/x-raw,format=I420,width={w},height={h},framerate={fps}/1 ! {tail} "
        "videotestsrc pattern=pinwheel num-buffers={n} ! video/x-raw,width={w},height={h},framerate={fps}/1 ! mix.sink_0 "
        "videotestsrc pattern=ball motion=wavy animation-mode=frames num-buffers={n} background-color=0x00000000 "
        "! video/x-raw,format=AYUV,width={w},height={h},framerate={fps}/1 ! mix.sink_1 "
        "videotestsrc pattern=snow num-buffers={n} ! video/x-raw,width={w},height={h},framerate={fps}/1 ! mix.sink_2"
    ),
    "pan": (
        "videotestsrc pattern=smpte horizontal-speed=3 num-buffers={n} ! "
        "video/x-raw,format=I420,width={w},height={h},framerate={fps}/1 ! {tail}"
    ),
}

X264 = "x264enc tune=zerolatency speed-preset=ultrafast bframes=0 b-adapt=false rc-lookahead=0 byte-stream=true key-int-max={gop} {rc}"


def luma(sample):
    buf = sample.get_buffer()
    ok, info = buf.map(Gst.MapFlags.READ)
    try:
        y = np.frombuffer(info.data, dtype=np.uint8, count=W * H).reshape(H, W).astype(np.float64)
    finally:
        buf.unmap(info)
    return y


def ssim(a, b):
    """Mean SSIM over non-overlapping 8x8 blocks (luma, 8-bit constants)."""
    c1, c2 = (0.01 * 255) ** 2, (0.03 * 255) ** 2
    a = a[: H // 8 * 8, : W // 8 * 8].reshape(H // 8, 8, W // 8, 8)
    b = b[: H // 8 * 8, : W // 8 * 8].reshape(H // 8, 8, W // 8, 8)
    ma, mb = a.mean(axis=(1, 3)), b.mean(axis=(1, 3))
    va, vb = a.var(axis=(1, 3)), b.var(axis=(1, 3))
    cov = (a * b).mean(axis=(1, 3)) - ma * mb
    s = ((2 * ma * mb + c1) * (2 * cov + c2)) / ((ma * ma + mb * mb + c1) * (va + vb + c2))
    return float(s.mean())


def run(source, gop, rc, frames):
    tail = (
        "tee name=t t. ! queue max-size-buffers=0 max-size-bytes=0 max-size-time=0 ! appsink name=ref sync=false "
        "t. ! queue ! " + X264.format(gop=gop, rc=rc) + " ! identity name=bytes ! h264parse ! avdec_h264 ! "
        "video/x-raw,format=I420 ! appsink name=dec sync=false"
    )
    desc = SOURCES[source].format(w=W, h=H, fps=FPS, n=frames, tail=tail)
    pipeline = Gst.parse_launch(desc)
    size = [0]

    def count(_pad, info):
        size[0] += info.get_buffer().get_size()
        return Gst.PadProbeReturn.OK

    pipeline.get_by_name("bytes").get_static_pad("src").add_probe(Gst.PadProbeType.BUFFER, count)
    ref, dec = pipeline.get_by_name("ref"), pipeline.get_by_name("dec")
    refs = []  # in order: the encoder drops no frame and its output timestamps are offset
    lock = threading.Lock()
    psnr, ssims = [], []

    def pull_ref():
        while True:
            s = ref.emit("pull-sample")
            if s is None:
                return
            with lock:
                refs.append(luma(s))

    t = threading.Thread(target=pull_ref)
    pipeline.set_state(Gst.State.PLAYING)
    t.start()
    while True:
        s = dec.emit("pull-sample")
        if s is None:
            break
        d = luma(s)
        r = None
        for _ in range(2000):
            with lock:
                r = refs.pop(0) if refs else None
            if r is not None:
                break
            threading.Event().wait(0.005)
        if r is None:
            sys.exit(f"keyint_quality: no source frame for decoded frame {len(psnr)}")
        mse = np.mean((r - d) ** 2)
        psnr.append(99.0 if mse == 0 else 10 * np.log10(255 * 255 / mse))
        ssims.append(ssim(r, d))
    t.join()
    bus = pipeline.get_bus()
    err = bus.pop_filtered(Gst.MessageType.ERROR)
    pipeline.set_state(Gst.State.NULL)
    if err:
        sys.exit(f"keyint_quality: {err.parse_error()[0].message}")
    n = len(psnr)
    kbps = size[0] * 8 / (n / FPS) / 1000
    return n, kbps, float(np.mean(psnr)), float(np.min(psnr)), float(np.mean(ssims))


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--frames", type=int, default=int(os.environ.get("FRAMES", "480")),
                    help="frames per run (default 480 = 16 s; env FRAMES)")
    ap.add_argument("--quantizer", type=int, default=int(os.environ.get("QUANTIZER", "23")),
                    help="constant-quality quantizer (default 23; env QUANTIZER)")
    ap.add_argument("--bitrate", type=int, default=int(os.environ.get("BITRATE", "2000")),
                    help="kbit/s of the fixed-bitrate runs (default 2000, mediamtxsink's; env BITRATE)")
    ap.add_argument("--intervals", default=os.environ.get("INTERVALS", "1,2,4"),
                    help="keyframe intervals in s (default 1,2,4; env INTERVALS)")
    ap.add_argument("--sources", default=os.environ.get("SOURCES", "camera,camera-noisy,pan"),
                    help="camera, camera-noisy, pan (env SOURCES)")
    a = ap.parse_args()
    print(f"keyint_quality: frames={a.frames} quantizer={a.quantizer} bitrate={a.bitrate} "
          f"intervals={a.intervals} sources={a.sources} load={open('/proc/loadavg').read().split()[:3]}",
          file=sys.stderr)
    Gst.init(None)
    intervals = [float(x) for x in a.intervals.split(",")]
    print("| source | mode | keyframe interval | kbit/s | vs 1 s | PSNR-Y mean / min (dB) | SSIM-Y |")
    print("|---|---|---:|---:|---:|---|---:|")
    for source in a.sources.split(","):
        for mode, rc in (("constant quality q=%d" % a.quantizer, f"pass=qual quantizer={a.quantizer} bitrate=100000"),
                         ("%d kbit/s" % a.bitrate, f"pass=cbr bitrate={a.bitrate}")):
            base = None
            for k in intervals:
                n, kbps, p_mean, p_min, s_mean = run(source, int(round(k * FPS)), rc, a.frames)
                base = base or kbps
                print(f"| {source} | {mode} | {k:g} s | {kbps:.0f} | {100 * (kbps / base - 1):+.0f} % | "
                      f"{p_mean:.2f} / {p_min:.2f} | {s_mean:.4f} |", flush=True)


if __name__ == "__main__":
    main()

#!/usr/bin/python3
"""pipelines/demo.sh, the main job: status lines with a measured latency, a snapshot that shows them,
a clean stop on DURATION and on Ctrl-C.

Usage: check_demo.py [--help]   (run by meson test as root, outside any namespace: the demo makes its own)

Runs demo.sh three times with a small test camera (SKIP_SETUP=1, SKIP_BUILD=1, the build tree under
test): with DURATION=12 it must print a status line a second with the viewer connected, frames rising
and a measured latency (0 < latency < 2000 ms), write a PNG of the camera's size with the viewer's
status drawn on it (rows of text in its bottom quarter, found by the same look that finds none in the
bare test pattern), and exit 0; with
LATENCY_MS=400 instead of 50 the measured latency must grow by the difference (350 ms, +-100: it is
measured, not the setting echoed); with DURATION=0 it must stop within 20 s of Ctrl-C, exit 0 and
leave no process behind.

Environment (defaults):
  MEDIAMTX_BIN      MediaMTX binary        (~/.cache/gst-mediamtx/mediamtx-v1.20.1)
  GST_PLUGIN_PATH   the plugin under test  (set by meson test: BUILD_DIR/plugins)
"""
import os
import re
import statistics
import subprocess
import sys
import tempfile
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from checklib import Checks, expect, help_requested  # noqa: E402
from scriptrun import Picture, Script, png_size  # noqa: E402


def main():
    if help_requested(__doc__):
        return 0
    plugin_path = os.environ.get("GST_PLUGIN_PATH", "").split(":")[0]
    build_dir = os.path.dirname(plugin_path) if plugin_path else ""
    mediamtx = os.environ.get("MEDIAMTX_BIN") or os.path.expanduser("~/.cache/gst-mediamtx/mediamtx-v1.20.1")
    print(f"check_demo: BUILD_DIR={build_dir} MEDIAMTX_BIN={mediamtx}", flush=True)
    checks = Checks("demo")
    work = tempfile.mkdtemp(prefix="check-demo-")
    env = {"SKIP_SETUP": "1", "SKIP_BUILD": "1", "BUILD_DIR": build_dir, "MEDIAMTX_BIN": mediamtx,
           "VIDEO_WIDTH": "640", "VIDEO_HEIGHT": "360", "VIDEO_BITRATE_KBPS": "800"}
    # GST_PLUGIN_PATH comes from BUILD_DIR: the demo adds it itself.
    os.environ.pop("GST_PLUGIN_PATH", None)

    def latencies(out):
        """The measured latencies (ms) of the status lines with frames, the first one left out (start-up)."""
        found = re.findall(r"^demo: +\d+s viewer connected .*frames=[1-9]\d* .*latency=(\S+)", out, re.M)
        values = [int(v) for v in found[1:] if v.isdigit()]
        expect(len(values) >= 3, f"{len(values)} status lines with a measured latency: {found}\n{out[-3000:]}")
        return values

    def with_duration():
        snapshot = os.path.join(work, "demo.png")
        demo = Script("demo.sh", dict(env, DURATION="12", SNAPSHOT=snapshot))
        try:
            status = demo.wait(120)
            out = demo.output()
        finally:
            demo.close()
        expect(status == 0, f"exit {status}:\n{out[-3000:]}")
        lines = re.findall(r"^demo: +\d+s viewer connected +([0-9.]+) fps .*frames=(\d+)", out, re.M)
        expect(len(lines) >= 5, f"{len(lines)} connected status lines, expected one a second:\n{out[-3000:]}")
        frames = [int(f) for _, f in lines]
        expect(frames == sorted(frames) and frames[-1] > 60, f"frames do not rise: {frames}")
        expect(png_size(snapshot) == (640, 360), "snapshot is not a 640x360 PNG")
        # The status drawn on the picture: lines of text in the bottom quarter, where the bare moving
        # pattern (a white ball on black) has none.
        bare = os.path.join(work, "bare.png")
        subprocess.run(["gst-launch-1.0", "-q", "videotestsrc", "pattern=ball", "num-buffers=1", "!",
                        "video/x-raw,width=640,height=360", "!", "videoconvert", "!", "pngenc", "!", "filesink",
                        f"location={bare}"], check=True, timeout=30)
        text, none = Picture(snapshot).text_rows(270, 360), Picture(bare).text_rows(270, 360)
        print(f"     rows of text in the bottom quarter: snapshot {text}, bare pattern {none}", flush=True)
        expect(text >= 6 and none == 0, f"no status drawn on the snapshot: {text} rows of text in its bottom quarter "
               f"({none} in the bare pattern)")
        expect(re.search(r"^demo: done: viewer received \d+ frames, snapshot " + re.escape(snapshot), out, re.M),
               f"no final line:\n{out[-800:]}")
        measured = latencies(out)
        expect(all(0 < v < 2000 for v in measured), f"implausible latencies: {measured}")
        print(f"     LATENCY_MS=50: measured latency {measured} ms", flush=True)
        return statistics.median(measured)

    at_50 = checks.run("demo.sh DURATION=12: status lines a second, connected, frames rising, measured latency, "
                       "snapshot PNG, exit 0", with_duration)

    def follows_jitter_buffer():
        expect(isinstance(at_50, (int, float)), "no latency from the LATENCY_MS=50 run")
        demo = Script("demo.sh", dict(env, DURATION="12", LATENCY_MS="400", SNAPSHOT=os.path.join(work, "400.png")))
        try:
            status = demo.wait(120)
            out = demo.output()
        finally:
            demo.close()
        expect(status == 0, f"exit {status}:\n{out[-3000:]}")
        measured = latencies(out)
        at_400 = statistics.median(measured)
        print(f"     LATENCY_MS=400: measured latency {measured} ms", flush=True)
        expect(250 <= at_400 - at_50 <= 450,
               f"median {at_400} ms at LATENCY_MS=400 vs {at_50} ms at 50: expected about 350 ms more")

    checks.run("demo.sh LATENCY_MS=400: the measured latency grows by about 350 ms", follows_jitter_buffer)

    def ctrl_c():
        demo = Script("demo.sh", dict(env, DURATION="0", SNAPSHOT=os.path.join(work, "ctrl-c.png")))
        try:
            demo.wait_for(r"^demo: +\d+s viewer connected .*frames=[1-9]", 90)
            demo.wait_for(r"^demo: snapshot written", 60)
            started = time.monotonic()
            status = demo.interrupt(40)
            took = time.monotonic() - started
            out = demo.output()
            time.sleep(1)
            left = subprocess.run(["pgrep", "-a", "-g", str(demo.process.pid)], capture_output=True, text=True)
        finally:
            demo.close()
        expect(status == 0, f"exit {status} after Ctrl-C:\n{out[-2000:]}")
        expect(took < 20, f"took {took:.0f} s to stop")
        expect("demo: stopping" in out, "no stopping line")
        expect(not left.stdout.strip(), f"processes left behind: {left.stdout}")

    checks.run("demo.sh DURATION=0 stops cleanly on Ctrl-C", ctrl_c)
    subprocess.run(["rm", "-rf", work], check=False)
    return checks.finish()


if __name__ == "__main__":
    sys.exit(main())

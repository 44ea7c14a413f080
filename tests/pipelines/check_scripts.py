#!/usr/bin/python3
"""publish-camera.sh, view.sh and snapshot.sh against a real MediaMTX, with CAMERA=test.

Usage: check_scripts.py [--help]   (run by meson test inside tests/testbed/netns-run.sh; needs root)

Checks: every script answers --help and prints its settings; publish-camera.sh publishes a test
camera over RTSP (the path becomes ready, its stats lines count frames); view.sh with SINK=fakesink
prints whepsrc's connected status and one stats line a second with frames rising, and ends on
DURATION; with TIME_CODE=1 on both and LATENCY_MS=400, view.sh's stats lines carry a measured
latency of about 400 ms or more (390 at least) read from every frame (about 30 a second: none dropped on the way to a
display-paced sink), and latency-ms=n/a for a publisher without the time code; snapshot.sh writes a PNG of the published size, and a JPEG; snapshot.sh on a path nobody
publishes exits 3 after TIMEOUT with no file; publish-camera.sh over WHIP (an http:// MEDIAMTX_URL)
is viewable; a password given in MEDIAMTX_PASS is never printed.

Environment (defaults):
  MEDIAMTX_BIN   MediaMTX binary   (~/.cache/gst-mediamtx/mediamtx-v1.20.1)
"""
import os
import re
import subprocess
import sys
import tempfile

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from checklib import Checks, expect, help_requested  # noqa: E402
from mediamtxlib import Mediamtx  # noqa: E402
from scriptrun import PIPELINES, TEST_CAMERA, Script, png_size, run_script, stats_frames  # noqa: E402

SCRIPTS = ["publish-camera.sh", "view.sh", "record.sh", "snapshot.sh", "demo.sh", "wall.sh"]


def main():
    if help_requested(__doc__):
        return 0
    print(f"check_scripts: MEDIAMTX_BIN={os.environ.get('MEDIAMTX_BIN', '<default>')}", flush=True)
    checks = Checks("scripts")
    work = tempfile.mkdtemp(prefix="check-scripts-")

    def helps():
        for script in SCRIPTS:
            out = subprocess.run([os.path.join(PIPELINES, script), "--help"], capture_output=True, text=True,
                                 timeout=30)
            expect(out.returncode == 0 and "Environment (defaults)" in out.stdout, f"{script} --help: {out}")

    checks.run("every script answers --help with its environment", helps)

    server = Mediamtx().start()
    publisher = None
    try:
        secret = "s3cret-Do-Not-Print"

        def publish_rtsp():
            nonlocal publisher
            publisher = Script("publish-camera.sh", dict(TEST_CAMERA, MEDIAMTX_URL=server.rtsp_url,
                                                         STREAM_PATH="cam", MEDIAMTX_PASS=secret, TIME_CODE="1"))
            publisher.wait_for(r"^publish-camera: MEDIAMTX_URL=.* CAMERA=test", 10)
            publisher.wait_for(r"status publisher state=connected .*transport=rtsp", 60)
            server.wait_path_ready("cam", 30)
            publisher.wait_for(r"stats publisher state=connected fps=[1-9]", 30)

        checks.run("publish-camera.sh CAMERA=test publishes over RTSP", publish_rtsp)

        def view_headless():
            status, out = run_script("view.sh", {"WHEP_URL": server.whep_url("cam"), "SINK": "fakesink",
                                                 "DURATION": "8", "TIME_CODE": "1", "LATENCY_MS": "400"}, 90)
            expect(status == 0, f"view.sh exited {status}:\n{out[-2000:]}")
            expect(re.search(r"^view: WHEP_URL=.* SINK=fakesink", out, re.M), "no settings line")
            expect(re.search(r"^view: status src state=connected .*transport=webrtc", out, re.M),
                   f"no connected status line:\n{out[-2000:]}")
            frames = stats_frames(out, "src")
            expect(len(frames) >= 5, f"{len(frames)} stats lines in 8 s, expected about one a second:\n{out}")
            expect(frames[-1] > 30 and frames == sorted(frames), f"frames do not rise: {frames}")
            # A full second of frames: the lines after the first with a measured latency.
            measured = re.findall(r"^view: stats src .*latency-ms=(\d+) latency-samples=(\d+)", out, re.M)[1:]
            expect(len(measured) >= 3, f"{len(measured)} stats lines with a measured latency:\n{out[-2000:]}")
            # capture to display: the 400 ms jitter buffer and the way, less the few ms the first
            # packets' arrival (which fixes the stream's timing) may have been late: 399 ms is seen
            expect(all(390 < int(ms) < 1400 for ms, _ in measured), f"latency not 390-1400 ms: {measured}")
            expect(all(int(n) >= 20 for _, n in measured), f"under 20 frames a second read (dropped?): {measured}")

        checks.run("view.sh SINK=fakesink TIME_CODE=1 LATENCY_MS=400: connected, one stats line a second, frames "
                   "rising, measured latency from every frame", view_headless)

        def snapshot_png():
            output = os.path.join(work, "cam.png")
            status, out = run_script("snapshot.sh", {"WHEP_URL": server.whep_url("cam"), "OUTPUT": output}, 90)
            expect(status == 0, f"snapshot.sh exited {status}:\n{out[-2000:]}")
            size = png_size(output)
            expect(size == (640, 360), f"PNG is {size[0]}x{size[1]}, published 640x360")

        checks.run("snapshot.sh writes a 640x360 PNG", snapshot_png)

        def snapshot_jpeg():
            output = os.path.join(work, "cam.jpg")
            status, out = run_script("snapshot.sh", {"WHEP_URL": server.whep_url("cam")}, 90,
                                     args=[output])
            expect(status == 0, f"snapshot.sh exited {status}:\n{out[-2000:]}")
            with open(output, "rb") as f:
                expect(f.read(3) == b"\xff\xd8\xff", "not a JPEG")

        checks.run("snapshot.sh OUTPUT.jpg (first argument) writes a JPEG", snapshot_jpeg)

        def snapshot_timeout():
            output = os.path.join(work, "nobody.png")
            status, out = run_script("snapshot.sh", {"WHEP_URL": server.whep_url("nobody"), "OUTPUT": output,
                                                     "TIMEOUT": "5"}, 60)
            expect(status == 3, f"exit {status}, expected 3:\n{out[-1500:]}")
            expect(not os.path.exists(output) and not os.path.exists(output + ".partial"), "a file was left")

        checks.run("snapshot.sh on an empty path: exit 3 after TIMEOUT, no file", snapshot_timeout)

        def publish_whip():
            whip = Script("publish-camera.sh", dict(TEST_CAMERA, MEDIAMTX_URL=server.http_url, STREAM_PATH="whipcam"))
            try:
                whip.wait_for(r"status publisher state=connected .*transport=whip", 60)
                server.wait_path_ready("whipcam", 30)
                output = os.path.join(work, "whip.png")
                status, out = run_script("snapshot.sh", {"WHEP_URL": server.whep_url("whipcam"), "OUTPUT": output}, 90)
                expect(status == 0, f"snapshot.sh exited {status}:\n{out[-2000:]}")
                expect(png_size(output) == (640, 360), "wrong PNG size")
                # No time code in this picture: no latency figure rather than a wrong one.
                status, out = run_script("view.sh", {"WHEP_URL": server.whep_url("whipcam"), "SINK": "fakesink",
                                                     "DURATION": "5", "TIME_CODE": "1"}, 60)
                expect(status == 0, f"view.sh exited {status}:\n{out[-2000:]}")
                lines = re.findall(r"^view: stats src state=connected .*frames=[1-9].*", out, re.M)
                expect(lines and all("latency-ms=n/a" in line for line in lines),
                       f"view.sh TIME_CODE=1 without a time code in the picture:\n{out[-2000:]}")
                expect(whip.interrupt(30) == 0, f"publish-camera.sh did not exit 0 on Ctrl-C:\n{whip.output()[-1500:]}")
            finally:
                whip.close()

        checks.run("publish-camera.sh with an http:// MEDIAMTX_URL publishes over WHIP; view.sh TIME_CODE=1 "
                   "says latency-ms=n/a for its picture without a time code", publish_whip)

        def stop_publisher():
            expect(publisher is not None, "no publisher")
            status = publisher.interrupt(30)
            out = publisher.output()
            expect(status == 0, f"exit {status} on Ctrl-C:\n{out[-1500:]}")
            expect(secret not in out, "MEDIAMTX_PASS was printed")
            expect("MEDIAMTX_PASS=<set>" in out, "the settings line does not say a password is set")

        checks.run("publish-camera.sh stops on Ctrl-C and never prints MEDIAMTX_PASS", stop_publisher)
    finally:
        if publisher:
            publisher.close()
        server.close()
        subprocess.run(["rm", "-rf", work], check=False)
    return checks.finish()


if __name__ == "__main__":
    sys.exit(main())

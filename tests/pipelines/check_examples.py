#!/usr/bin/python3
"""The embedding examples (examples/) work against a real MediaMTX.

Usage: check_examples.py [--help] WHEP_STATUS_BINARY WHEP_STATUS_PY
       (run by meson test inside tests/testbed/netns-run.sh; needs root)

The C viewer (examples/whep-status.c, built by meson) plays a path published by publish-camera.sh
(CAMERA=test) and prints whepsrc's connecting and connected states and receives 60 frames; the
Python example (examples/whep-status.py, Debian's /usr/bin/python3) publishes with mediamtxsink and
views with whepsrc in one process, printing both elements' state changes.

Environment (defaults):
  MEDIAMTX_BIN   MediaMTX binary   (~/.cache/gst-mediamtx/mediamtx-v1.20.1)
"""
import os
import re
import subprocess
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from checklib import Checks, expect, help_requested  # noqa: E402
from mediamtxlib import Mediamtx  # noqa: E402
from scriptrun import TEST_CAMERA, Script  # noqa: E402


def main():
    if help_requested(__doc__):
        return 0
    if len(sys.argv) != 3:
        print(__doc__.strip())
        return 2
    binary, script = sys.argv[1:3]
    print(f"check_examples: MEDIAMTX_BIN={os.environ.get('MEDIAMTX_BIN', '<default>')} C={binary} Python={script}",
          flush=True)
    checks = Checks("examples")
    server = Mediamtx().start()
    publisher = Script("publish-camera.sh", dict(TEST_CAMERA, MEDIAMTX_URL=server.rtsp_url, STREAM_PATH="cam"))
    try:
        def c_viewer():
            publisher.wait_for(r"status publisher state=connected", 60)
            server.wait_path_ready("cam", 30)
            out = subprocess.run([binary, server.whep_url("cam"), "60", "60"], capture_output=True, text=True,
                                 timeout=90)
            text = out.stdout + out.stderr
            expect(out.returncode == 0, f"exit {out.returncode}:\n{text[-2000:]}")
            expect(re.search(r"^src: connecting", text, re.M),
                   f"no connecting state:\n{text[-1500:]}")
            expect(re.search(r"^src: connected \(attempt 0, webrtc\)", text, re.M), f"no connected state:\n{text}")
            expect("received" in text and "frames: done" in text, f"no frames:\n{text[-1500:]}")

        checks.run("C example (whep-status): connecting, connected, 60 frames", c_viewer)

        def python_example():
            out = subprocess.run(["/usr/bin/python3", script, server.whep_url("pyexample"),
                                  f"{server.rtsp_url}/pyexample"], capture_output=True, text=True, timeout=120,
                                 env=dict(os.environ, FRAMES="60", TIMEOUT="90"))
            text = out.stdout + out.stderr
            expect(out.returncode == 0, f"exit {out.returncode}:\n{text[-2000:]}")
            expect(re.search(r"^publisher: connected \(attempt \d+, rtsp\)", text, re.M),
                   f"no publisher connected state:\n{text[-1500:]}")
            expect(re.search(r"^viewer-source: connected \(attempt \d+, webrtc\)", text, re.M),
                   f"no viewer connected state:\n{text[-1500:]}")
            expect("frames: done" in text, f"no frames:\n{text[-1500:]}")

        checks.run("Python example (mediamtxsink + whepsrc in one process): both connected, 60 frames",
                   python_example)
    finally:
        publisher.close()
        server.close()
    return checks.finish()


if __name__ == "__main__":
    sys.exit(main())

#!/usr/bin/python3
"""record.sh keeps every segment across a MediaMTX restart and finalizes the last one on Ctrl-C.

Usage: check_record.py [--help]   (run by meson test inside tests/testbed/netns-run.sh; needs root)

Publishes a test camera (publish-camera.sh, CAMERA=test, RTSP), records it with record.sh
(SEGMENT_SECONDS=3) in each RECORD_FORMAT, kills MediaMTX mid-recording (SIGKILL) and starts it
again on the same ports; the publisher and the recorder reconnect by themselves. After Ctrl-C:
the segment numbers run from 0 without a gap, every file decodes to the end (filesrc ! parsebin !
avdec_h264 ! fakesink, no error) with frames, and the recording holds frames from before and after
the restart (total decoded duration longer than the time recorded before the kill).

Environment (defaults):
  MEDIAMTX_BIN      MediaMTX binary                (~/.cache/gst-mediamtx/mediamtx-v1.20.1)
  RECORD_FORMATS    formats tested, space-separated (mkv mp4)
"""
import os
import re
import subprocess
import sys
import tempfile
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from checklib import Checks, expect, help_requested  # noqa: E402
from mediamtxlib import Mediamtx  # noqa: E402
from scriptrun import TEST_CAMERA, Script  # noqa: E402

DECODE = ("import sys, gi; gi.require_version('Gst', '1.0'); from gi.repository import Gst; Gst.init(None)\n"
          "p = Gst.parse_launch('filesrc name=f ! parsebin ! avdec_h264 ! fakesink name=s sync=false')\n"
          "p.get_by_name('f').set_property('location', sys.argv[1])\n"
          "frames = []\n"
          "p.get_by_name('s').get_static_pad('sink').add_probe(Gst.PadProbeType.BUFFER,"
          " lambda pad, info: frames.append(info.get_buffer().pts) or Gst.PadProbeReturn.OK)\n"
          "p.set_state(Gst.State.PLAYING)\n"
          "m = p.get_bus().timed_pop_filtered(60 * Gst.SECOND, Gst.MessageType.EOS | Gst.MessageType.ERROR)\n"
          "p.set_state(Gst.State.NULL)\n"
          "if m is None or m.type != Gst.MessageType.EOS:\n"
          "    print('error', m.parse_error()[0].message if m else 'timeout'); sys.exit(1)\n"
          "pts = [t for t in frames if t != Gst.CLOCK_TIME_NONE]\n"
          "print(len(frames), (max(pts) - min(pts)) / Gst.SECOND if pts else 0)\n")


def decode(path):
    """(frames, seconds between the first and last frame) of a recorded file; fails on any error."""
    out = subprocess.run(["/usr/bin/python3", "-c", DECODE, path], capture_output=True, text=True, timeout=90)
    expect(out.returncode == 0, f"{os.path.basename(path)} does not decode: {out.stdout}{out.stderr[-500:]}")
    frames, seconds = out.stdout.split()
    return int(frames), float(seconds)


def record_across_restart(server, record_format, work):
    folder = os.path.join(work, record_format)
    recorder = Script("record.sh", {"WHEP_URL": server.whep_url("cam"), "RECORD_DIR": folder, "RECORD_PREFIX": "cam",
                                    "RECORD_FORMAT": record_format, "SEGMENT_SECONDS": "3", "STATUS_INTERVAL": "1"})
    try:
        recorder.wait_for(r"^record: stats src state=connected .*frames=[1-9]", 60)
        started = time.monotonic()
        time.sleep(5)
        before_kill = time.monotonic() - started
        server.kill()
        recorder.wait_for(r"^record: status src state=reconnecting", 30)
        time.sleep(2)
        server.start()
        server.wait_path_ready("cam", 60)
        # Connected again, with frames flowing: a stats line later than the reconnection.
        recorder.wait_for(r"state=reconnecting[\s\S]*status src state=connected[\s\S]*stats src state=connected "
                          r"fps=[1-9]", 90)
        time.sleep(4)
        status = recorder.interrupt(60)
        output = recorder.output()
        expect(status == 0, f"record.sh exited {status} on Ctrl-C:\n{output[-2000:]}")
        expect("record: eos" in output, f"no EOS before exit (last file not finalized):\n{output[-1500:]}")
    finally:
        recorder.close()
    files = sorted(os.listdir(folder))
    expect(files, "no files recorded")
    numbers = []
    for name in files:
        m = re.fullmatch(rf"cam-\d{{8}}-\d{{6}}-(\d{{5}})\.{record_format}", name)
        expect(m, f"unexpected file {name}")
        numbers.append(int(m.group(1)))
    expect(numbers == list(range(len(numbers))), f"segments missing: {numbers}")
    total_frames, total_seconds = 0, 0.0
    for name in files:
        frames, seconds = decode(os.path.join(folder, name))
        expect(frames > 0, f"{name} has no frames")
        total_frames += frames
        total_seconds += seconds
    print(f"     {record_format}: {len(files)} segments, {total_frames} frames, {total_seconds:.1f} s of video",
          flush=True)
    expect(total_seconds > before_kill + 2, f"{total_seconds:.1f} s recorded: the part after the restart is missing")


def main():
    if help_requested(__doc__):
        return 0
    formats = os.environ.get("RECORD_FORMATS", "mkv mp4").split()
    print(f"check_record: MEDIAMTX_BIN={os.environ.get('MEDIAMTX_BIN', '<default>')} RECORD_FORMATS={' '.join(formats)}",
          flush=True)
    checks = Checks("record")
    work = tempfile.mkdtemp(prefix="check-record-")
    server = Mediamtx().start()
    publisher = Script("publish-camera.sh", dict(TEST_CAMERA, MEDIAMTX_URL=server.rtsp_url, STREAM_PATH="cam"))
    try:
        def publishing():
            publisher.wait_for(r"status publisher state=connected", 60)
            server.wait_path_ready("cam", 30)

        if checks.run("publish-camera.sh CAMERA=test is publishing", publishing):
            for record_format in formats:
                checks.run(f"record.sh RECORD_FORMAT={record_format}: MediaMTX killed and restarted mid-recording, "
                           "Ctrl-C; every segment decodes, none missing", record_across_restart, server,
                           record_format, work)
    finally:
        publisher.close()
        server.close()
        subprocess.run(["rm", "-rf", work], check=False)
    return checks.finish()


if __name__ == "__main__":
    sys.exit(main())

#!/usr/bin/python3
"""record.sh records video and audio, keeps every segment across a MediaMTX restart and finalizes
the last one on Ctrl-C; a stream without audio is recorded as video only.

Usage: check_record.py [--help]   (run by meson test inside tests/testbed/netns-run.sh; needs root)

Publishes a test camera with a microphone (videotestsrc + audiotestsrc into mediamtxsink: H.264 and
Opus, through gst-mediamtx-run.py), records it with record.sh (SEGMENT_SECONDS=3) in each
RECORD_FORMAT, kills MediaMTX mid-recording (SIGKILL) and starts it again on the same ports; the
publisher and the recorder reconnect by themselves. After Ctrl-C: the segment numbers run from 0
without a gap, every file decodes to the end (filesrc ! decodebin, no error) with a video and an
audio track (the one cut at the outage may be too short for sound), every segment of half a second
or more has sound along its picture and no sound stretched across the outage, and
the recording holds frames from before and after the restart (total decoded duration longer than
the time recorded before the kill). Then a camera without audio (publish-camera.sh CAMERA=test):
its files hold one video track and nothing else (MediaMTX's silent placeholder audio track, which
never sends a packet, is not waited for). Last, a camera with audio replaced by one without on the
same path: the recorder ends the audio track and keeps recording the video (the last file holds
video and no sound) instead of stalling on the missing audio.

Environment (defaults):
  MEDIAMTX_BIN      MediaMTX binary                (~/.cache/gst-mediamtx/mediamtx-v1.20.1)
  RECORD_FORMATS    formats tested, space-separated (mkv mp4)
"""
import os
import re
import subprocess
import sys
import struct
import tempfile
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from checklib import Checks, expect, help_requested  # noqa: E402
from mediamtxlib import Mediamtx  # noqa: E402
from scriptrun import TEST_CAMERA, Script  # noqa: E402

# Prints a line for each decoded stream: "video|audio BUFFERS SPAN-SECONDS SECONDS-OF-BUFFERS".
DECODE = """import sys, gi
gi.require_version('Gst', '1.0'); from gi.repository import Gst; Gst.init(None)
p = Gst.parse_launch('filesrc name=f ! decodebin name=d')
p.get_by_name('f').set_property('location', sys.argv[1])
streams = {}
def on_pad(_d, pad):
    kind = pad.query_caps(None).get_structure(0).get_name().split('/')[0]
    sink = Gst.ElementFactory.make('fakesink'); sink.set_property('sync', False); sink.set_property('async', False)
    p.add(sink); sink.sync_state_with_parent(); pad.link(sink.get_static_pad('sink'))
    seen = streams.setdefault(kind, [])
    sink.get_static_pad('sink').add_probe(Gst.PadProbeType.BUFFER, lambda _pad, info:
        seen.append((info.get_buffer().pts, info.get_buffer().duration)) or Gst.PadProbeReturn.OK)
p.get_by_name('d').connect('pad-added', on_pad)
p.set_state(Gst.State.PLAYING)
m = p.get_bus().timed_pop_filtered(60 * Gst.SECOND, Gst.MessageType.EOS | Gst.MessageType.ERROR)
p.set_state(Gst.State.NULL)
if m is None or m.type != Gst.MessageType.EOS:
    print('error', m.parse_error()[0].message if m else 'timeout'); sys.exit(1)
for kind, seen in sorted(streams.items()):
    pts = [t for t, _ in seen if t != Gst.CLOCK_TIME_NONE]
    played = sum(d for _, d in seen if d != Gst.CLOCK_TIME_NONE)
    print(kind, len(seen), (max(pts) - min(pts)) / Gst.SECOND if pts else 0, played / Gst.SECOND)
"""


def decode(path):
    """{"video"|"audio": (buffers, seconds between the first and the last, seconds of the buffers' durations)}
    of a file; fails on any error."""
    out = subprocess.run(["/usr/bin/python3", "-c", DECODE, path], capture_output=True, text=True, timeout=90)
    expect(out.returncode == 0, f"{os.path.basename(path)} does not decode: {out.stdout}{out.stderr[-500:]}")
    streams = {}
    for line in out.stdout.split("\n"):
        if line.strip():
            kind, buffers, seconds, played = line.split()
            streams[kind] = (int(buffers), float(seconds), float(played))
    return streams


def mp4_track_kinds(path):
    """The handler types ("vide", "soun") of an MP4 file's tracks, read from its moov box."""
    def boxes(data, start, end):
        while start + 8 <= end:
            size, kind = struct.unpack(">I4s", data[start:start + 8])
            header = 8
            if size == 1:
                size, header = struct.unpack(">Q", data[start + 8:start + 16])[0], 16
            elif size == 0:
                size = end - start
            if size < header or start + size > end:
                return
            yield kind, start + header, start + size
            start += size

    def child(data, start, end, name):
        return next(((s, e) for k, s, e in boxes(data, start, end) if k == name), None)

    with open(path, "rb") as f:
        data = f.read()
    kinds = []
    moov = child(data, 0, len(data), b"moov")
    for kind, start, end in boxes(data, *moov) if moov else ():
        if kind != b"trak":
            continue
        mdia = child(data, start, end, b"mdia")
        hdlr = child(data, *mdia, b"hdlr") if mdia else None
        if hdlr:
            kinds.append(data[hdlr[0] + 8:hdlr[0] + 12].decode("ascii", "replace"))
    return kinds


def segments(folder, record_format):
    """The recorded files in order, checking their names and that no number is missing."""
    files = sorted(os.listdir(folder))
    expect(files, "no files recorded")
    numbers = []
    for name in files:
        m = re.fullmatch(rf"cam-\d{{8}}-\d{{6}}-(\d{{5}})\.{record_format}", name)
        expect(m, f"unexpected file {name}")
        numbers.append(int(m.group(1)))
    expect(numbers == list(range(len(numbers))), f"segments missing: {numbers}")
    return [os.path.join(folder, name) for name in files]


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
        try:
            recorder.wait_for(r"^record: status src state=reconnecting", 30)
            time.sleep(2)
        finally:
            server.start()  # also when the recorder failed: the next checks need the server
        server.wait_path_ready("cam", 60)
        # Connected again, with frames flowing: a stats line later than the reconnection.
        recorder.wait_for(r"state=reconnecting[\s\S]*status src state=connected[\s\S]*stats src state=connected "
                          r"fps=[1-9]", 90)
        time.sleep(4)
        status = recorder.interrupt(60)
        output = recorder.output()
        expect(status == 0, f"record.sh exited {status} on Ctrl-C:\n{output[-2000:]}")
        expect("record: eos" in output, f"no EOS before exit (last file not finalized):\n{output[-1500:]}")
        expect(re.search(r"^record: branch audio_0 \(audio/x-opus\)", output, re.M) and "record: note:" not in output,
               f"audio not recorded throughout:\n{output[-2500:]}")
    finally:
        recorder.close()
    total_frames, total_seconds, total_audio = 0, 0.0, 0.0
    for path in segments(folder, record_format):
        name = os.path.basename(path)
        streams = decode(path)
        if record_format == "mp4" and "video" not in streams and "vide" in mp4_track_kinds(path):
            # The file cut at the outage: a sliver of video (the frames after its last cut) and sound
            # that went on a little longer; qtdemux skips such a short video track as a "preview".
            # The frames are in the file; the totals below still count the recording.
            audio_span = streams.get("audio", (0, 0.0))[1]
            expect(audio_span < 1.5, f"{name}: a video track qtdemux skips, beside {audio_span:.1f} s of sound")
            print(f"     {name}: short video track skipped by qtdemux beside {audio_span:.1f} s of sound", flush=True)
            continue
        expect("video" in streams, f"{name} has tracks {sorted(streams)}, expected audio and video")
        frames, seconds, _ = streams["video"]
        # The file cut at the outage may hold a few frames and no sound (mp4mux leaves an empty track out).
        expect(seconds < 0.5 or sorted(streams) == ["audio", "video"],
               f"{name} has tracks {sorted(streams)}, expected audio and video")
        audio_buffers, _, audio_seconds = streams.get("audio", (0, 0, 0))  # the sound itself, not a span
        expect(frames > 0, f"{name} has no frames")
        expect(seconds < 0.5 or audio_seconds > seconds / 2,
               f"{name}: {seconds:.1f} s of video but {audio_seconds:.1f} s of sound ({audio_buffers} buffers)")
        # Sound stretched across the outage would leave a file whose video covers a sliver of it
        # (qtdemux then skips the video track as a "preview").
        expect(streams.get("audio", (0, 0))[1] < seconds + 1.5,
               f"{name}: sound spans {streams['audio'][1]:.1f} s, video {seconds:.1f} s")
        total_frames += frames
        total_seconds += seconds
        total_audio += audio_seconds
    print(f"     {record_format}: {len(os.listdir(folder))} segments, {total_frames} frames, {total_seconds:.1f} s of "
          f"video, {total_audio:.1f} s of sound", flush=True)
    expect(total_seconds > before_kill + 2, f"{total_seconds:.1f} s recorded: the part after the restart is missing")
    expect(total_audio > before_kill + 2, f"{total_audio:.1f} s of sound: the part after the restart is missing")


def record_without_audio(server, work):
    folder = os.path.join(work, "no-audio")
    recorder = Script("record.sh", {"WHEP_URL": server.whep_url("silent"), "RECORD_DIR": folder,
                                    "RECORD_PREFIX": "cam", "SEGMENT_SECONDS": "3", "STATUS_INTERVAL": "1"})
    try:
        recorder.wait_for(r"^record: stats src state=connected .*frames=[1-9]", 60)
        time.sleep(5)
        status = recorder.interrupt(60)
        output = recorder.output()
    finally:
        recorder.close()
    expect(status == 0, f"record.sh exited {status} on Ctrl-C:\n{output[-2000:]}")
    expect(re.search(r"^record: branch video_0 \(video/x-h264\)", output, re.M) and "branch audio" not in output,
           f"expected a video branch only:\n{output[-1500:]}")
    files = segments(folder, "mkv")
    total = 0.0
    for path in files:
        streams = decode(path)
        expect(sorted(streams) == ["video"], f"{os.path.basename(path)} has tracks {sorted(streams)}, expected video")
        total += streams["video"][1]
    expect(total > 4, f"{total:.1f} s of video recorded in about 6 s")


def audio_publisher(server, path):
    """A camera with a microphone: H.264 + Opus (mediamtxsink encodes both)."""
    return Script("gst-mediamtx-run.py", {}, args=[
        "--label", "publisher", "--", "videotestsrc", "is-live=true", "pattern=ball", "!",
        "video/x-raw,width=640,height=360,framerate=30/1", "!", "mediamtxsink", "name=publisher",
        # a keyframe every second (not the 2 s default): the recorder's segment after the outage starts
        # its video at the first keyframe it reads, and the span check below allows 1.5 s of sound
        # before it
        f"location={server.rtsp_url}/{path}", "bitrate=800", "keyframe-interval=30", "audiotestsrc", "is-live=true", "wave=ticks", "!",
        "publisher.audio"])


def audio_goes_away(server, work):
    """The publisher comes back without its microphone: the muxer must not wait for audio forever."""
    folder = os.path.join(work, "switch")
    first = audio_publisher(server, "switch")
    second = None
    recorder = None
    try:
        first.wait_for(r"status publisher state=connected", 60)
        server.wait_path_ready("switch", 30)
        recorder = Script("record.sh", {"WHEP_URL": server.whep_url("switch"), "RECORD_DIR": folder,
                                        "RECORD_PREFIX": "cam", "SEGMENT_SECONDS": "3", "STATUS_INTERVAL": "1"})
        recorder.wait_for(r"^record: branch audio_0[\s\S]*stats src state=connected .*frames=[1-9]", 60)
        time.sleep(2)
        first.close()
        first = None
        second = Script("publish-camera.sh", dict(TEST_CAMERA, MEDIAMTX_URL=server.rtsp_url, STREAM_PATH="switch"))
        recorder.wait_for(r"^record: note: audio_0 brought nothing", 60)
        # Frames still reach the files: a stats line with frames flowing after the note.
        recorder.wait_for(r"note: audio_0 brought nothing[\s\S]*stats src state=connected fps=[1-9]"
                          r"[\s\S]*stats src state=connected fps=[1-9]", 30)
        time.sleep(3)
        status = recorder.interrupt(60)
        output = recorder.output()
        expect(status == 0, f"record.sh exited {status} on Ctrl-C:\n{output[-2000:]}")
        expect("record: eos" in output, f"no EOS before exit:\n{output[-1500:]}")
    finally:
        for script in (recorder, second, first):
            if script:
                script.close()
    files = segments(folder, "mkv")
    decoded = [decode(path) for path in files]
    # The files after the switch: video and no sound. splitmuxsink cuts every 3 s, so the last of them
    # may be short; together they hold the >= 4 s of video recorded after the note.
    tail = []
    for streams in reversed(decoded):
        if streams.get("audio", (0,))[0] != 0:
            break
        tail.insert(0, streams)
    frames = sum(streams.get("video", (0,))[0] for streams in tail)
    expect(tail and tail[-1].get("video", (0,))[0] > 0 and frames > 60,
           f"the last files should hold the audio-less camera's video only (> 60 frames): {decoded}")
    for path in files[:-1]:
        decode(path)


def main():
    if help_requested(__doc__):
        return 0
    formats = os.environ.get("RECORD_FORMATS", "mkv mp4").split()
    print(f"check_record: MEDIAMTX_BIN={os.environ.get('MEDIAMTX_BIN', '<default>')} RECORD_FORMATS={' '.join(formats)}",
          flush=True)
    checks = Checks("record")
    work = tempfile.mkdtemp(prefix="check-record-")
    server = Mediamtx().start()
    publisher = audio_publisher(server, "cam")
    silent = Script("publish-camera.sh", dict(TEST_CAMERA, MEDIAMTX_URL=server.rtsp_url, STREAM_PATH="silent"))
    try:
        def publishing():
            publisher.wait_for(r"status publisher state=connected", 60)
            silent.wait_for(r"status publisher state=connected", 60)
            server.wait_path_ready("cam", 30)
            server.wait_path_ready("silent", 30)

        if checks.run("a camera with audio and one without are publishing", publishing):
            for record_format in formats:
                checks.run(f"record.sh RECORD_FORMAT={record_format}: MediaMTX killed and restarted mid-recording, "
                           "Ctrl-C; every segment decodes with video and audio, none missing", record_across_restart,
                           server, record_format, work)
            checks.run("record.sh on a stream without audio: video-only files", record_without_audio, server, work)
            checks.run("record.sh when the publisher comes back without audio: the audio track ends, the video goes "
                       "on being recorded", audio_goes_away, server, work)
    finally:
        publisher.close()
        silent.close()
        server.close()
        subprocess.run(["rm", "-rf", work], check=False)
    return checks.finish()


if __name__ == "__main__":
    sys.exit(main())

#!/usr/bin/python3
"""Runs one GStreamer pipeline for the gst-mediamtx scripts and reports on it, one line at a time.

Usage: gst-mediamtx-run.py [--help] [options] -- PIPELINE DESCRIPTION...

Lines printed on stdout (the scripts' and services' log):
  LABEL: status ELEMENT state=STATE attempt=N transport=T [retry-in-ms=N] [reason="..."]
        each `gst-mediamtx-status` message (whepsrc, mediamtxsink, reconnectbin)
  LABEL: stats ELEMENT state=... fps=F kbps=K frames=N ...
        every --stats-interval seconds for each whepsrc and mediamtxsink, from its `stats`
        property (fps and kbps are the differences since the previous line)
  LABEL: error ELEMENT: MESSAGE          an error message (the process then exits 1)
  LABEL: eos                             the pipeline finished (exit 0)
  LABEL: snapshot written FILE (WxH)     --snapshot saved the picture
  LABEL: latency N ms (ELEMENT changed its own)
                                         the pipeline's latency, recalculated on a LATENCY message

Ctrl-C / SIGINT / SIGTERM and --duration send EOS, so muxers and encoders finish their files; if the
EOS does not arrive within --eos-timeout seconds the pipeline is stopped anyway (exit 0 after a
signal or --duration, 3 after --timeout); if stopping it takes over 10 s (a streaming thread stuck in
an element), the process exits regardless (status 1 unless it already had one).

Credentials come from the environment, never from the command line (argv is visible to every user):
MEDIAMTX_USER / MEDIAMTX_PASS become user-id / user-pw of each mediamtxsink and the user:password
of each whepsrc location; MEDIAMTX_TOKEN becomes the auth-token of each whepsrc and mediamtxsink.
They are never printed.

Options:
  --label TEXT          prefix of each line (default: run)
  --stats-interval S    seconds between stats lines, 0 = none (default: 0)
  --duration S          send EOS after S seconds, 0 = run until EOS or a signal (default: 0)
  --timeout S           give up with exit status 3 if no EOS came after S seconds (default: 0, none)
  --eos-timeout S       seconds to wait for EOS after a signal or --duration (default: 10)
  --done-at NAME        finish (exit 0) once the element called NAME has received a buffer or EOS,
                        without waiting for the whole pipeline: for snapshots (the encoder's
                        snapshot=true only refuses more frames, the live source keeps running)
  --write-time-code NAME
                        draw the capture time into every frame entering NAME, a gdkpixbufoverlay
                        placed right after the camera (a time code, below)
  --read-time-code NAME read the time code from every frame entering NAME (8-bit YUV, as decoded)
                        and add latency-ms=P50 latency-samples=N to each whepsrc stats line: the
                        median time from capture to here over the interval and the frames it was
                        read from, or latency-ms=n/a when fewer than half of the frames carried a
                        readable code (another publisher, a real camera, a picture scaled on the
                        way)
  --tile SRC=NAME       (repeatable) count the frames entering NAME's sink pad (the tile of the
                        whepsrc SRC in a compositor wall) and add shown-fps=F to SRC's stats lines:
                        the frames a second that reached the picture, live or status slate
  --count NAME          (repeatable) add a line "stats NAME fps=F frames=N" for the frames entering
                        NAME's sink pad (a wall's composed picture)
  --stats-overlay SRC=NAME
                        show SRC's stats (state, fps, measured latency, reconnects) as the text of
                        NAME, a textoverlay, updated with each stats line
  --snapshot FILE       write a PNG of the picture entering the sink pad of --snapshot-at once every
                        whepsrc has been connected and delivering for two stats lines (its overlay
                        then shows measured figures), at the latest --snapshot-after seconds after
                        the start, or when the pipeline stops before that; a "snapshot written FILE"
                        line says so (written through FILE.partial, then renamed)
  --snapshot-at NAME    the element whose input is the picture to save (default: screen)
  --snapshot-after S    write the snapshot after S seconds whatever the states (default: 10)
  --branch 'SRC.KIND=DESCRIPTION ! TARGET.PAD'
                        (repeatable) hold every pad of the element SRC (a whepsrc: video_0,
                        audio_0) until SRC has exposed all of them (its no-more-pads), then send
                        each pad whose name starts with KIND through a new DESCRIPTION bin into
                        TARGET's pad PAD (requested, for a request pad such as audio_%u), if the
                        pad's caps fit what DESCRIPTION takes, in the order of the options (video
                        first for splitmuxsink); SRC's other pads, and pads it exposes
                        later, end in a fakesink (a "note" line says so). A muxer such as
                        splitmuxsink then gets exactly the streams that are there: one linked to
                        a stream that never comes would wait for it forever. After a reconnection
                        the other streams' buffers are dropped until the first one's (the video's)
                        next keyframe, so no GOP stretches across the gap; a stream that a new
                        session does not bring for 3 s while the others flow gets an EOS, so the
                        muxer does not wait for it.

Time code: the CLOCK_MONOTONIC time in milliseconds (modulo 2^20, about 17 minutes) plus a 12-bit
check, as 2 rows of 16 black or white 16x16-pixel blocks at (16,16), big enough to survive H.264 at
a few hundred kbit/s. It measures end-to-end latency only when the publisher and the viewer run on
the same machine (the same clock), as pipelines/demo.sh does.
"""
import argparse
import os
import re
import signal
import sys
import threading
import time
import urllib.parse

import gi

gi.require_version("Gst", "1.0")
from gi.repository import GLib, Gst  # noqa: E402

MEASURED = ("whepsrc", "mediamtxsink")


# Our elements by GType. whepsrc and mtxwhepsrc are one GType under two names, and an element
# reports as its factory whichever name was registered last (mtxwhepsrc), so the name it was
# created by cannot be read back. Another plugin's whepsrc (gst-plugins-rs: GstWhepSrc) is not ours.
OWN_TYPES = {"GstMtxWhepSrc": "whepsrc"}


def factory_name(element):
    """The element's kind: its factory name, "whepsrc" for ours under either name, "" for a foreign whepsrc."""
    own = OWN_TYPES.get(element.__gtype__.name)
    if own:
        return own
    factory = element.get_factory()
    name = factory.get_name() if factory else ""
    return "" if name in OWN_TYPES.values() else name


def iterate_elements(pipeline):
    found = []
    it = pipeline.iterate_recurse()
    while True:
        result, element = it.next()
        if result == Gst.IteratorResult.OK:
            found.append(element)
        elif result == Gst.IteratorResult.RESYNC:
            it.resync()
            found = []
        else:
            break
    return found


def sink_pad(element):
    """An element's sink pad ("sink", or the first: textoverlay's is "video_sink")."""
    return element.get_static_pad("sink") or (element.sinkpads[0] if element.sinkpads else None)


def structure_value(structure, field):
    if structure is None or not structure.has_field(field):
        return None
    return structure.get_value(field)


def with_userinfo(location, user, password):
    """location with user:password@ inserted (percent-encoded), for whepsrc."""
    parts = urllib.parse.urlsplit(location)
    if not parts.hostname or "@" in parts.netloc:
        return location
    userinfo = urllib.parse.quote(user, safe="") + ":" + urllib.parse.quote(password, safe="")
    return urllib.parse.urlunsplit(parts._replace(netloc=userinfo + "@" + parts.netloc))


# ---- the time code: capture time drawn into frames, read back after the viewer's decoder ---------

CODE_X, CODE_Y, CODE_BLOCK, CODE_COLUMNS, CODE_ROWS = 16, 16, 16, 16, 2
CODE_VALUE_BITS, CODE_CHECK_BITS = 20, 12
CODE_MODULO = 1 << CODE_VALUE_BITS
# Formats whose first plane is 8-bit luma, one byte a pixel.
LUMA_FORMATS = ("I420", "YV12", "NV12", "NV21", "Y42B", "Y444", "Y41B", "GRAY8")


def code_check(value):
    """12 check bits of a 20-bit value; neither all-black (0, 0) nor all-white passes."""
    return (((value * 0x9E3779B1) >> 11) ^ 0x5A3) & ((1 << CODE_CHECK_BITS) - 1)


def code_bits(value):
    word = (value << CODE_CHECK_BITS) | code_check(value)
    total = CODE_VALUE_BITS + CODE_CHECK_BITS
    return [(word >> (total - 1 - i)) & 1 for i in range(total)]


def code_value(bits):
    """The value the bits carry, or None when the check does not match."""
    word = 0
    for bit in bits:
        word = (word << 1) | bit
    value = word >> CODE_CHECK_BITS
    if word & ((1 << CODE_CHECK_BITS) - 1) != code_check(value):
        return None
    return value


def now_ms():
    return time.monotonic_ns() // 1000000


class TimeCodeWriter:
    """Sets the pixbuf of a gdkpixbufoverlay to the time code of now, just before each frame enters it
    (a pad probe in the streaming thread; the overlay blends it into the frame it is about to process)."""

    def __init__(self, overlay):
        gi.require_version("GdkPixbuf", "2.0")
        from gi.repository import GdkPixbuf
        self.pixbuf_type = GdkPixbuf
        self.overlay = overlay
        overlay.set_property("offset-x", CODE_X)
        overlay.set_property("offset-y", CODE_Y)
        overlay.get_static_pad("sink").add_probe(Gst.PadProbeType.BUFFER, self.on_frame)

    def on_frame(self, _pad, _info):
        bits = code_bits(now_ms() % CODE_MODULO)
        black, white = b"\x00\x00\x00\xff", b"\xff\xff\xff\xff"
        data = b""
        for row in range(CODE_ROWS):
            line = b"".join((white if bit else black) * CODE_BLOCK
                            for bit in bits[row * CODE_COLUMNS:(row + 1) * CODE_COLUMNS])
            data += line * CODE_BLOCK
        width, height = CODE_COLUMNS * CODE_BLOCK, CODE_ROWS * CODE_BLOCK
        pixbuf = self.pixbuf_type.Pixbuf.new_from_bytes(GLib.Bytes.new(data), self.pixbuf_type.Colorspace.RGB,
                                                        True, 8, width, height, width * 4)
        self.overlay.set_property("pixbuf", pixbuf)
        return Gst.PadProbeReturn.OK


class TimeCodeReader:
    """Reads the time code from frames passing a pad (streaming thread) and keeps the latencies until
    the next stats line takes them (main loop)."""

    def __init__(self, pad):
        gi.require_version("GstVideo", "1.0")
        from gi.repository import GstVideo
        self.video = GstVideo
        self.caps = None
        self.info = None
        self.latencies = []
        self.frames = 0
        pad.add_probe(Gst.PadProbeType.BUFFER, self.on_frame)

    def luma_plane(self, pad, buffer):
        """(offset, stride) of the luma plane, or None when the frame is not 8-bit YUV or too small."""
        caps = pad.get_current_caps()
        if caps is None:
            return None
        if self.caps is None or not caps.is_equal(self.caps):
            self.caps = caps
            self.info = self.video.VideoInfo.new_from_caps(caps)
        info = self.info
        if (info is None or info.finfo.name not in LUMA_FORMATS or info.width < CODE_X + CODE_COLUMNS * CODE_BLOCK
                or info.height < CODE_Y + CODE_ROWS * CODE_BLOCK):
            return None
        meta = self.video.buffer_get_video_meta(buffer)
        if meta is not None:
            return meta.offset[0], meta.stride[0]
        return info.offset[0], info.stride[0]

    def read(self, pad, buffer):
        """The time code of one frame, or None."""
        plane = self.luma_plane(pad, buffer)
        if plane is None:
            return None
        offset, stride = plane
        bits = []
        # The middle half of each block, on 4 lines through its middle: clearly black or white, or no code.
        for row in range(CODE_ROWS):
            sums = [0] * CODE_COLUMNS
            top = CODE_Y + row * CODE_BLOCK + CODE_BLOCK // 2 - 2
            for y in range(top, top + 4):
                line = buffer.extract_dup(offset + y * stride + CODE_X, CODE_COLUMNS * CODE_BLOCK)
                if len(line) < CODE_COLUMNS * CODE_BLOCK:
                    return None
                for column in range(CODE_COLUMNS):
                    start = column * CODE_BLOCK + CODE_BLOCK // 4
                    sums[column] += sum(line[start:start + CODE_BLOCK // 2])
            for total in sums:
                mean = total / (4 * CODE_BLOCK // 2)
                if mean < 80:
                    bits.append(0)
                elif mean > 170:
                    bits.append(1)
                else:
                    return None
        return code_value(bits)

    def on_frame(self, pad, info):
        value = self.read(pad, info.get_buffer())
        self.frames += 1
        if value is not None:
            latency = (now_ms() - value) % CODE_MODULO
            if latency < 60000:  # older than a minute: not our clock's
                self.latencies.append(latency)
        return Gst.PadProbeReturn.OK

    def take(self):
        """(median latency in ms or None when under half of the frames had a code, frames read) since
        the last call."""
        latencies, frames = self.latencies, self.frames
        self.latencies, self.frames = [], 0  # the streaming thread may append to the old list: fine
        if not frames or len(latencies) * 2 < frames:
            return None, len(latencies)
        latencies.sort()
        return latencies[len(latencies) // 2], len(latencies)


class FrameCounter:
    """Counts the buffers entering a pad (streaming thread) until the main loop takes the count."""

    def __init__(self, pad):
        self.count = 0
        pad.add_probe(Gst.PadProbeType.BUFFER, self.on_buffer)

    def on_buffer(self, _pad, _info):
        self.count += 1
        return Gst.PadProbeReturn.OK

    def take(self):
        count, self.count = self.count, 0  # a frame counted meanwhile may be lost: a rate, not a total
        return count


class Snapshot:
    """--snapshot: the next picture entering a pad, written as a PNG from the main loop."""

    def __init__(self, say, pad, path):
        gi.require_version("GstVideo", "1.0")
        from gi.repository import GstVideo
        self.video = GstVideo
        self.say = say
        self.pad = pad
        self.path = path
        self.state = "pending"  # pending -> capturing -> written | failed

    def take(self):
        """Main loop: save the next picture that passes."""
        if self.state == "pending":
            self.state = "capturing"
            self.pad.add_probe(Gst.PadProbeType.BUFFER, self.on_buffer)

    def on_buffer(self, pad, info):
        """Streaming thread: keep this picture (a sample refs the buffer) for the main loop."""
        sample = Gst.Sample.new(info.get_buffer(), pad.get_current_caps(), None, None)
        GLib.idle_add(self.write, sample)
        return Gst.PadProbeReturn.REMOVE

    def write(self, sample):
        partial = self.path + ".partial"
        try:
            png = self.video.video_convert_sample(sample, Gst.Caps.from_string("image/png"), 5 * Gst.SECOND)
            ok, data = png.get_buffer().map(Gst.MapFlags.READ)
            if not ok:
                raise GLib.Error("cannot read the PNG")
            try:
                with open(partial, "wb") as f:
                    f.write(bytes(data.data))
            finally:
                png.get_buffer().unmap(data)
            os.replace(partial, self.path)
        except (GLib.Error, OSError) as e:
            self.state = "failed"
            self.say(f"snapshot failed: {getattr(e, 'message', None) or e}")
            return False
        structure = sample.get_caps().get_structure(0)
        self.state = "written"
        self.say(f"snapshot written {self.path} ({structure.get_value('width')}x{structure.get_value('height')})")
        return False


STARVING_S = 3  # a linked stream without a buffer for this long, while another goes on, is ended
# The lead stream (the video) waits longer: after a reconnection MediaMTX sends H.264 from the
# publisher's next keyframe, which can be seconds away (it cannot ask an RTSP publisher for one).
LEAD_STARVING_S = 10


class Branches:
    """--branch: links a source's pads once it has exposed them all (see the usage text)."""

    def __init__(self, runner, source, branches):
        self.say = runner.say
        self.pipeline = runner.pipeline
        self.branches = branches  # [(kind, description, target element name, target pad name)]
        self.held = []  # [(pad, probe id)] waiting for the main loop
        self.decided = False  # the first set of pads is linked: later ones cannot join a muxer
        self.source = source
        self.buffers = {}  # linked pad -> buffers since the session started (streaming threads count)
        self.session_started = None  # monotonic time of the source's last "connected" status
        self.ended = set()  # pads whose branch was ended with EOS because their stream went away
        self.lead_pad = None  # the first linked stream (the video): the others wait for its keyframe
        self.segments = {}  # linked pad -> segment events seen
        self.sessions = 0  # the source's sessions seen (the most segments one pad has seen)
        self.await_keyframe = False
        self.resume_at = None  # running time of that keyframe: the others' older buffers are dropped
        source.connect("pad-added", self.on_pad_added)
        source.connect("no-more-pads", lambda _source: GLib.idle_add(self.link_held))
        GLib.timeout_add(500, self.check_starving)

    def on_pad_added(self, _source, pad):
        """Any thread: block the pad until the main loop has linked it."""
        if pad.get_direction() != Gst.PadDirection.SRC:
            return
        probe = pad.add_probe(Gst.PadProbeType.BLOCK_DOWNSTREAM, lambda _pad, _info: Gst.PadProbeReturn.OK)
        self.held.append((pad, probe))
        if self.decided:
            GLib.idle_add(self.link_held)

    def link_held(self):
        """Main loop: link every held pad through its branch, or into a fakesink, then release them all.
        Pads are linked in the order of the --branch options and released only once all are linked:
        splitmuxsink takes the first stream that brings data as the one it cuts on (the video)."""
        held, self.held = self.held, []

        def order(entry):
            name = entry[0].get_name()
            kinds = [i for i, branch in enumerate(self.branches) if name.startswith(branch[0])]
            return kinds[0] if kinds else len(self.branches)

        for pad, _probe in sorted(held, key=order):
            if self.decided:
                self.say(f"note: {pad.get_name()} ({self.media(pad)}) came after recording started: left out")
                self.to_fakesink(pad)
            elif not self.link(pad):
                self.to_fakesink(pad)
        for pad, probe in held:
            pad.remove_probe(probe)
        self.decided = True
        return False

    def on_data(self, pad, info):
        """Streaming threads. A reconnection (a new segment on any stream) leaves a gap; the first
        stream's GOP (splitmuxsink cuts on the video) spans it, and sound from before the video's next
        keyframe would stretch that GOP's audio across the gap, leaving a file whose video covers a
        sliver of its length (qtdemux then skips that video track as a "preview"). So the other
        streams' buffers are dropped from a new segment until the first stream's next keyframe."""
        if info.type & Gst.PadProbeType.EVENT_DOWNSTREAM:
            # Each session brings one segment per stream: a pad's second one starts session 2.
            if info.get_event().type == Gst.EventType.SEGMENT:
                self.segments[pad] = self.segments.get(pad, 0) + 1
                if self.segments[pad] > self.sessions:
                    self.sessions = self.segments[pad]
                    if self.sessions > 1:
                        self.await_keyframe = True
                        self.resume_at = None
            return Gst.PadProbeReturn.OK
        self.buffers[pad] = self.buffers.get(pad, 0) + 1
        if pad == self.lead_pad:
            if self.await_keyframe and not info.get_buffer().has_flags(Gst.BufferFlags.DELTA_UNIT):
                self.await_keyframe = False
                self.resume_at = self.running_time(pad, info.get_buffer())
        elif self.await_keyframe:
            return Gst.PadProbeReturn.DROP
        elif self.resume_at is not None:
            # what arrives after the keyframe but belongs before it would land in the old GOP too
            running_time = self.running_time(pad, info.get_buffer())
            if running_time is not None and running_time < self.resume_at:
                return Gst.PadProbeReturn.DROP
        return Gst.PadProbeReturn.OK

    @staticmethod
    def running_time(pad, buffer):
        event = pad.get_sticky_event(Gst.EventType.SEGMENT, 0)
        if event is None or buffer.pts == Gst.CLOCK_TIME_NONE:
            return None
        running_time = event.parse_segment().to_running_time(Gst.Format.TIME, buffer.pts)
        return None if running_time == Gst.CLOCK_TIME_NONE else running_time

    def on_connected(self):
        """Main loop: the source (re)connected; a new session starts the counts again."""
        self.session_started = time.monotonic()
        for pad in self.buffers:
            self.buffers[pad] = 0

    def check_starving(self):
        """A muxer waits for every stream it has: when a session brings no buffer for a stream while
        another flows (the publisher came back without audio), end that stream (EOS into its branch)
        so that the others are still recorded."""
        if self.session_started is None:
            return True
        waited = time.monotonic() - self.session_started
        if waited < STARVING_S:
            return True
        if max(self.buffers.values(), default=0) < 10:
            return True  # nothing flows (a publisher gone, the source reconnecting): nothing to tell
        for pad, count in list(self.buffers.items()):
            if count or pad in self.ended:
                continue
            grace = LEAD_STARVING_S if pad == self.lead_pad else STARVING_S
            if waited < grace:
                continue
            self.ended.add(pad)
            self.say(f"note: {pad.get_name()} brought nothing for {grace} s since connecting while the "
                     "other streams flow: ending it, the rest is still recorded (it is recorded again from the "
                     "next start)")
            pad.get_peer().send_event(Gst.Event.new_eos())
        return True

    @staticmethod
    def media(pad):
        caps = pad.get_current_caps() or pad.query_caps(None)
        return caps.get_structure(0).get_name() if caps and caps.get_size() else "unknown caps"

    def to_fakesink(self, pad):
        sink = Gst.ElementFactory.make("fakesink", None)
        sink.set_property("sync", False)
        sink.set_property("async", False)
        self.pipeline.add(sink)
        sink.sync_state_with_parent()
        pad.link(sink.get_static_pad("sink"))

    def link(self, pad):
        name = pad.get_name()
        for kind, description, target_name, target_pad in self.branches:
            if not name.startswith(kind):
                continue
            branch = Gst.parse_bin_from_description(description, True)
            caps = pad.get_current_caps() or pad.query_caps(None)
            if not caps.can_intersect(branch.get_static_pad("sink").query_caps(None)):
                self.say(f"note: {name} ({self.media(pad)}) does not fit '{description}': left out")
                return False
            target = self.pipeline.get_by_name(target_name)
            sink_pad = target.get_static_pad(target_pad) or target.request_pad_simple(target_pad)
            if sink_pad is None:
                self.say(f"note: {target_name} has no pad {target_pad}: {name} left out")
                return False
            self.pipeline.add(branch)
            branch.sync_state_with_parent()
            if (branch.get_static_pad("src").link(sink_pad) != Gst.PadLinkReturn.OK
                    or pad.link(branch.get_static_pad("sink")) != Gst.PadLinkReturn.OK):
                self.say(f"note: {name} ({self.media(pad)}) could not be linked to {target_name}: left out")
                return False
            self.say(f"branch {name} ({self.media(pad)}) -> {description} -> {target_name}.{sink_pad.get_name()}")
            self.buffers[pad] = 1
            if self.lead_pad is None:
                self.lead_pad = pad
            pad.add_probe(Gst.PadProbeType.BUFFER | Gst.PadProbeType.EVENT_DOWNSTREAM, self.on_data)
            return True
        self.say(f"note: {name} ({self.media(pad)}): no --branch takes it, left out")
        return False


STOP_TIMEOUT_S = 10  # going to NULL after the main loop ended


class Runner:
    def __init__(self, args):
        self.args = args
        self.label = args.label
        self.loop = GLib.MainLoop()
        self.exit_code = 0
        self.stopping = False
        self.previous = {}  # element name -> (monotonic time, frames, bytes)
        self.time_code_reader = None
        self.branches = []
        self.tiles = {}  # whepsrc name -> FrameCounter of its tile
        self.counted = {}  # --count: element name -> [FrameCounter, frames so far]
        self.overlays = {}  # whepsrc name -> textoverlay showing its stats
        self.snapshot = None
        self.snapshot_ready_lines = 0
        self.last_latency = None  # the time code's last median (ms), for the overlay
        self.latency = None  # the pipeline's latency, printed when a LATENCY message changes it  # stats lines in a row with every whepsrc delivering
        self.pipeline = Gst.parse_launch(" ".join(args.pipeline))
        if not isinstance(self.pipeline, Gst.Pipeline):  # a single element
            bin_ = Gst.Pipeline.new(None)
            bin_.add(self.pipeline)
            self.pipeline = bin_
        self.apply_credentials()

    def say(self, text):
        try:
            print(f"{self.label}: {text}", flush=True)
        except OSError:  # stdout closed (a reader such as `head` went away): keep running, and stopping
            pass

    def apply_credentials(self):
        user = os.environ.get("MEDIAMTX_USER", "")
        password = os.environ.get("MEDIAMTX_PASS", "")
        token = os.environ.get("MEDIAMTX_TOKEN", "")
        for element in iterate_elements(self.pipeline):
            name = factory_name(element)
            if name == "mediamtxsink":
                if user:
                    element.set_property("user-id", user)
                    element.set_property("user-pw", password)
                if token:
                    element.set_property("auth-token", token)
            elif name == "whepsrc":
                location = element.get_property("location")
                if user and location:
                    element.set_property("location", with_userinfo(location, user, password))
                if token:
                    element.set_property("auth-token", token)

    def on_message(self, _bus, message):
        kind = message.type
        source = message.src.get_name() if message.src else "?"
        if kind == Gst.MessageType.ELEMENT:
            structure = message.get_structure()
            if structure is not None and structure.get_name() == "gst-mediamtx-status":
                if structure_value(structure, "state") == "connected":
                    for branches in self.branches:
                        if message.src == branches.source:
                            branches.on_connected()
                fields = [f"state={structure_value(structure, 'state')}",
                          f"attempt={structure_value(structure, 'attempt')}",
                          f"transport={structure_value(structure, 'transport')}"]
                retry = structure_value(structure, "retry-in-ms")
                if retry:
                    fields.append(f"retry-in-ms={retry}")
                reason = structure_value(structure, "reason")
                if reason:
                    fields.append(f'reason="{reason}"')
                self.say(f"status {source} " + " ".join(fields))
        elif kind == Gst.MessageType.ERROR:
            error, debug = message.parse_error()
            self.say(f"error {source}: {error.message}")
            if debug and os.environ.get("GST_MEDIAMTX_RUN_DEBUG"):
                self.say(f"debug {debug}")
            self.exit_code = 1
            self.loop.quit()
        elif kind == Gst.MessageType.WARNING:
            warning, _debug = message.parse_warning()
            self.say(f"warning {source}: {warning.message}")
        elif kind == Gst.MessageType.EOS:
            self.say("eos")
            self.loop.quit()
        elif kind == Gst.MessageType.LATENCY:
            # An element's latency changed (whepsrc going from its placeholder slate, which adds
            # none, to live video behind a jitter buffer): what gst-launch does. Without it a sink
            # keeps the slate's latency and gets every live frame late.
            self.pipeline.recalculate_latency()
            query = Gst.Query.new_latency()
            if self.pipeline.query(query):
                _live, latency, _max = query.parse_latency()
                if latency != self.latency:
                    self.latency = latency
                    self.say(f"latency {latency / Gst.MSECOND:.0f} ms ({source} changed its own)")
        return True

    def print_stats(self):
        now = time.monotonic()
        latency = None
        if self.time_code_reader is not None:
            median, samples = self.time_code_reader.take()
            self.last_latency = median
            latency = f"latency-ms={'n/a' if median is None else median} latency-samples={samples}"
        delivering = []  # per whepsrc: connected and passing frames on
        for element in iterate_elements(self.pipeline):
            kind = factory_name(element)
            if kind not in MEASURED:
                continue
            asked = time.monotonic()
            stats = element.get_property("stats")
            took = time.monotonic() - asked
            if took > 0.25:  # it should never wait (a cache); a slow read holds the main loop
                self.say(f"note: reading {element.get_name()}'s stats took {took * 1000:.0f} ms")
            if stats is None:
                continue
            if kind == "whepsrc":
                frames = structure_value(stats, "frames") or 0
                received = structure_value(stats, "bytes-received") or 0
            else:
                frames = structure_value(stats, "frames-sent") or 0
                received = structure_value(stats, "bytes-sent") or 0
            name = element.get_name()
            then, frames_then, bytes_then = self.previous.get(name, (None, 0, 0))
            self.previous[name] = (now, frames, received)
            fps = kbps = 0.0
            if then is not None and now > then:
                fps = (frames - frames_then) / (now - then)
                kbps = (received - bytes_then) * 8 / 1000 / (now - then)
            state = structure_value(stats, 'state')
            fields = [f"state={state}", f"fps={fps:.1f}", f"kbps={kbps:.0f}", f"frames={frames}"]
            if name in self.tiles:
                shown = self.tiles[name].take() / (now - then) if then is not None and now > then else 0.0
                fields.append(f"shown-fps={shown:.1f}")
            if kind == "whepsrc":
                delivering.append(state in ("connected", "fallback") and fps > 0)
                for field, label in (("reconnects", "reconnects"), ("time-to-first-frame-ms", "ttff-ms"),
                                     ("round-trip-time", "rtt"), ("jitter", "jitter"),
                                     ("packets-lost", "lost")):
                    value = structure_value(stats, field)
                    if value is not None:
                        fields.append(f"{label}={value:.3g}" if isinstance(value, float) else f"{label}={value}")
                if latency is not None:
                    fields.append(latency)
                slate = structure_value(stats, "placeholder-text")
                if slate:  # placeholder=status: what the slate in its picture says
                    fields.append('slate="' + " | ".join(line.strip() for line in slate.splitlines() if line.strip()) + '"')
                if name in self.overlays:
                    self.overlays[name].set_property("text", self.overlay_text(stats, state, fps))
            else:
                for field in ("attempts", "frames-dropped", "encoder", "transport"):
                    value = structure_value(stats, field)
                    if value is not None:
                        fields.append(f"{field}={value}")
            self.say(f"stats {name} " + " ".join(fields))
        for name, counted in self.counted.items():
            then = self.previous.get(name, (None, 0, 0))[0]
            self.previous[name] = (now, 0, 0)
            frames = counted[0].take()
            counted[1] += frames
            fps = frames / (now - then) if then is not None and now > then else 0.0
            self.say(f"stats {name} fps={fps:.1f} frames={counted[1]}")
        if self.snapshot is not None:
            self.snapshot_ready_lines = self.snapshot_ready_lines + 1 if delivering and all(delivering) else 0
            if self.snapshot_ready_lines >= 2:
                self.snapshot.take()
        return True

    def snapshot_due(self):
        self.snapshot.take()
        return False

    def overlay_text(self, stats, state, fps):
        """--stats-overlay: what the stats line says, for a person looking at the picture."""
        parts = [f"{self.label}: {state}", f"{fps:.0f} fps"]
        if self.time_code_reader is not None:
            median = self.last_latency
            parts.append("latency n/a" if median is None else f"latency {median} ms")
        parts.append(f"reconnects {structure_value(stats, 'reconnects') or 0}")
        return "   ".join(parts)

    def on_done_probe(self, _pad, info):
        """Called from a streaming thread; the main loop stops the pipeline once the buffer is written
        (going to NULL waits for the streaming thread to leave the sink)."""
        if info.type & Gst.PadProbeType.BUFFER or info.get_event().type == Gst.EventType.EOS:
            GLib.idle_add(self.done)
            return Gst.PadProbeReturn.REMOVE
        return Gst.PadProbeReturn.OK

    def done(self):
        # The probe runs before the sink writes: give it a moment to finish (and a sink that waited
        # for the pipeline to preroll, to be told to play) before stopping.
        self.say(f"done: {self.args.done_at} got its data")
        GLib.timeout_add(1000, self.loop.quit)
        return False

    def stop(self, why):
        if self.snapshot is not None and self.snapshot.state == "pending" and not self.stopping:
            # Stopping before the snapshot was due: save the picture of now first.
            self.snapshot.take()
            GLib.timeout_add(1000, self.stop, why)
            return False
        if self.stopping:
            self.say(f"{why} again: stopping now")
            self.loop.quit()
            return False
        self.stopping = True
        self.say(f"{why}: sending EOS")
        self.pipeline.send_event(Gst.Event.new_eos())
        GLib.timeout_add_seconds(self.args.eos_timeout, self.eos_overdue)
        return False

    def eos_overdue(self):
        self.say(f"no EOS within {self.args.eos_timeout} s: stopping")
        self.loop.quit()
        return False

    def timed_out(self):
        self.say(f"timeout: nothing finished within {self.args.timeout} s")
        self.exit_code = 3
        self.loop.quit()
        return False

    def run(self):
        bus = self.pipeline.get_bus()
        bus.add_signal_watch()
        bus.connect("message", self.on_message)
        for signum in (signal.SIGINT, signal.SIGTERM):
            GLib.unix_signal_add(GLib.PRIORITY_DEFAULT, signum, self.stop, signal.Signals(signum).name)
        if self.args.stats_interval > 0:
            GLib.timeout_add(int(self.args.stats_interval * 1000), self.print_stats)
        if self.args.duration > 0:
            GLib.timeout_add(int(self.args.duration * 1000), self.stop, "duration reached")
        if self.args.timeout > 0:
            GLib.timeout_add(int(self.args.timeout * 1000), self.timed_out)
        for option, name in (("--write-time-code", self.args.write_time_code),
                             ("--read-time-code", self.args.read_time_code)):
            if name and self.pipeline.get_by_name(name) is None:
                self.say(f"error: {option}: no element called {name}")
                return 2
        if self.args.write_time_code:
            overlay = self.pipeline.get_by_name(self.args.write_time_code)
            if factory_name(overlay) != "gdkpixbufoverlay":
                self.say(f"error: --write-time-code: {self.args.write_time_code} is not a gdkpixbufoverlay")
                return 2
            TimeCodeWriter(overlay)
        if self.args.read_time_code:
            pad = self.pipeline.get_by_name(self.args.read_time_code).get_static_pad("sink")
            if pad is None:
                self.say(f"error: --read-time-code: {self.args.read_time_code} has no sink pad")
                return 2
            self.time_code_reader = TimeCodeReader(pad)
        for option, specs in (("--tile", self.args.tile), ("--stats-overlay", self.args.stats_overlay)):
            for spec in specs:
                source, _, target = spec.partition("=")
                if not self.pipeline.get_by_name(source) or not self.pipeline.get_by_name(target) or (
                        option == "--tile" and sink_pad(self.pipeline.get_by_name(target)) is None):
                    self.say(f"error: {option} '{spec}': expected SRC=NAME with elements SRC and NAME in the pipeline")
                    return 2
                if option == "--tile":
                    self.tiles[source] = FrameCounter(sink_pad(self.pipeline.get_by_name(target)))
                else:
                    self.overlays[source] = self.pipeline.get_by_name(target)
        for name in self.args.count:
            element = self.pipeline.get_by_name(name)
            if element is None or sink_pad(element) is None:
                self.say(f"error: --count: no element called {name} with a sink pad")
                return 2
            self.counted[name] = [FrameCounter(sink_pad(element)), 0]
        if self.args.snapshot:
            target = self.pipeline.get_by_name(self.args.snapshot_at)
            if target is None or sink_pad(target) is None:
                self.say(f"error: --snapshot-at: no element called {self.args.snapshot_at} with a sink pad")
                return 2
            self.snapshot = Snapshot(self.say, sink_pad(target), self.args.snapshot)
            GLib.timeout_add(int(self.args.snapshot_after * 1000), self.snapshot_due)
        branches = {}  # source name -> [(kind, description, target, pad)]
        for spec in self.args.branch:
            m = re.fullmatch(r"\s*([^.=\s]+)\.([^=\s]+)\s*=(.+)!\s*([^.!\s]+)\.(\S+)\s*", spec)
            if not m or not self.pipeline.get_by_name(m.group(1)) or not self.pipeline.get_by_name(m.group(4)):
                self.say(f"error: --branch '{spec}': expected 'SRC.KIND=DESCRIPTION ! TARGET.PAD' with elements "
                         "SRC and TARGET in the pipeline")
                return 2
            branches.setdefault(m.group(1), []).append((m.group(2), m.group(3).strip(), m.group(4), m.group(5)))
        self.branches = [Branches(self, self.pipeline.get_by_name(source), specs)
                         for source, specs in branches.items()]
        if self.args.done_at:
            done = self.pipeline.get_by_name(self.args.done_at)
            if done is None:
                self.say(f"error: no element called {self.args.done_at}")
                return 2
            done.get_static_pad("sink").add_probe(Gst.PadProbeType.EVENT_DOWNSTREAM | Gst.PadProbeType.BUFFER,
                                                  self.on_done_probe)
        if self.pipeline.set_state(Gst.State.PLAYING) == Gst.StateChangeReturn.FAILURE:
            self.say("error: the pipeline could not start (missing element or device?)")
            self.pipeline.set_state(Gst.State.NULL)
            return 1
        self.loop.run()
        # Stopping waits for every streaming thread; one stuck in an element must not keep the process
        # (and a service stop) hanging.
        stuck = threading.Timer(STOP_TIMEOUT_S, self.stop_stuck)
        stuck.daemon = True
        stuck.start()
        self.pipeline.set_state(Gst.State.NULL)
        stuck.cancel()
        return self.exit_code

    def stop_stuck(self):
        self.say(f"the pipeline did not stop within {STOP_TIMEOUT_S} s: exiting anyway")
        os._exit(self.exit_code or 1)


def main():
    if "--help" in sys.argv[1:2] or "-h" in sys.argv[1:2]:
        print(__doc__.strip())
        return 0
    parser = argparse.ArgumentParser(add_help=False)
    parser.add_argument("--label", default="run")
    parser.add_argument("--stats-interval", type=float, default=0)
    parser.add_argument("--duration", type=float, default=0)
    parser.add_argument("--timeout", type=float, default=0)
    parser.add_argument("--eos-timeout", type=int, default=10)
    parser.add_argument("--done-at", default="")
    parser.add_argument("--write-time-code", default="")
    parser.add_argument("--branch", action="append", default=[])
    parser.add_argument("--read-time-code", default="")
    parser.add_argument("--tile", action="append", default=[])
    parser.add_argument("--stats-overlay", action="append", default=[])
    parser.add_argument("--count", action="append", default=[])
    parser.add_argument("--snapshot", default="")
    parser.add_argument("--snapshot-at", default="screen")
    parser.add_argument("--snapshot-after", type=float, default=10)
    parser.add_argument("pipeline", nargs="+")
    args = parser.parse_args()
    Gst.init(None)
    try:
        runner = Runner(args)
    except GLib.Error as e:
        print(f"{args.label}: error: cannot build the pipeline: {e.message}", flush=True)
        return 2
    return runner.run()


if __name__ == "__main__":
    sys.exit(main())

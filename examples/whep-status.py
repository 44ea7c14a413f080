#!/usr/bin/python3
"""Embedding gst-mediamtx in a Python application (PyGObject, Debian's python3-gi).

Usage: whep-status.py [--help] WHEP_URL [PUBLISH_URL]

Builds a viewer pipeline (whepsrc -> fakesink) and, when PUBLISH_URL is given (rtsp://host:8554/path
or http://host:8889/path/whip), a publisher pipeline first (videotestsrc -> mediamtxsink) that feeds
the same path. Prints every change of state from the elements' `gst-mediamtx-status` messages, and
whepsrc's `stats` once a second. Exits 0 once the viewer has received FRAMES frames, 1 on an error
or after TIMEOUT seconds.

Environment (defaults):
  FRAMES    frames to receive before exiting 0   (60)
  TIMEOUT   seconds before giving up             (60)
"""
import os
import sys

import gi

gi.require_version("Gst", "1.0")
from gi.repository import GLib, Gst  # noqa: E402


class Example:
    def __init__(self, whep_url, publish_url):
        self.loop = GLib.MainLoop()
        self.frames_wanted = int(os.environ.get("FRAMES", "60"))
        self.exit_code = 1
        self.last_state = {}
        self.pipelines = []
        if publish_url:
            publisher = Gst.parse_launch(
                "videotestsrc is-live=true pattern=ball ! video/x-raw,width=320,height=240,framerate=30/1 ! "
                "mediamtxsink name=publisher bitrate=500")
            sink = publisher.get_by_name("publisher")
            if publish_url.startswith(("http://", "https://")):
                sink.set_property("transport", "whip")  # an enum set by its nick
            sink.set_property("location", publish_url)
            self.pipelines.append(publisher)
        # Built element by element here, to show it; Gst.parse_launch() works just as well.
        viewer = Gst.Pipeline.new("viewer")
        self.whepsrc = Gst.ElementFactory.make("whepsrc", "viewer-source")
        if self.whepsrc is None:
            raise RuntimeError("no whepsrc element: set GST_PLUGIN_PATH to the gst-mediamtx build (build/plugins)")
        self.whepsrc.set_property("location", whep_url)
        self.whepsrc.set_property("audio", False)
        convert = Gst.ElementFactory.make("videoconvert")
        sink = Gst.ElementFactory.make("fakesink")
        for element in (self.whepsrc, convert, sink):
            viewer.add(element)
        convert.link(sink)
        # whepsrc's pads appear once the stream is negotiated: link them as they come.
        self.whepsrc.connect("pad-added", self.on_pad_added, convert)
        self.pipelines.append(viewer)

    def on_pad_added(self, _element, pad, convert):
        """Called from a streaming thread."""
        if pad.get_name().startswith("video_") and not convert.get_static_pad("sink").is_linked():
            pad.link(convert.get_static_pad("sink"))

    def on_message(self, _bus, message):
        if message.type == Gst.MessageType.ELEMENT:
            structure = message.get_structure()
            if structure is not None and structure.get_name() == "gst-mediamtx-status":
                name = message.src.get_name()
                state = structure.get_string("state")
                if self.last_state.get(name) != state:
                    self.last_state[name] = state
                    reason = structure.get_string("reason") or ""
                    print(f"{name}: {state} (attempt {structure.get_value('attempt')}, "
                          f"{structure.get_string('transport')}) {reason}", flush=True)
        elif message.type == Gst.MessageType.ERROR:
            error, _debug = message.parse_error()
            print(f"error from {message.src.get_name()}: {error.message}", flush=True)
            self.loop.quit()
        return True

    def every_second(self):
        stats = self.whepsrc.get_property("stats")
        frames = stats.get_value("frames") if stats and stats.has_field("frames") else 0
        print(f"viewer stats: state={stats.get_string('state') if stats else '?'} frames={frames}", flush=True)
        if frames >= self.frames_wanted:
            print(f"received {frames} frames: done", flush=True)
            self.exit_code = 0
            self.loop.quit()
        return True

    def on_timeout(self):
        print("timed out", flush=True)
        self.loop.quit()
        return False

    def run(self):
        for pipeline in self.pipelines:
            bus = pipeline.get_bus()
            bus.add_signal_watch()
            bus.connect("message", self.on_message)
            pipeline.set_state(Gst.State.PLAYING)
        GLib.timeout_add_seconds(1, self.every_second)
        GLib.timeout_add_seconds(int(os.environ.get("TIMEOUT", "60")), self.on_timeout)
        self.loop.run()
        for pipeline in reversed(self.pipelines):
            pipeline.set_state(Gst.State.NULL)
        return self.exit_code


def main():
    if len(sys.argv) < 2 or sys.argv[1] in ("--help", "-h"):
        print(__doc__.strip())
        return 0 if len(sys.argv) >= 2 else 2
    Gst.init(None)
    return Example(sys.argv[1], sys.argv[2] if len(sys.argv) > 2 else None).run()


if __name__ == "__main__":
    sys.exit(main())

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

Ctrl-C / SIGINT / SIGTERM and --duration send EOS, so muxers and encoders finish their files; if the
EOS does not arrive within --eos-timeout seconds the pipeline is stopped anyway (exit 0 after a
signal or --duration, 3 after --timeout).

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
"""
import argparse
import os
import signal
import sys
import time
import urllib.parse

import gi

gi.require_version("Gst", "1.0")
from gi.repository import GLib, Gst  # noqa: E402

MEASURED = ("whepsrc", "mediamtxsink")


def factory_name(element):
    factory = element.get_factory()
    return factory.get_name() if factory else ""


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


class Runner:
    def __init__(self, args):
        self.args = args
        self.label = args.label
        self.loop = GLib.MainLoop()
        self.exit_code = 0
        self.stopping = False
        self.previous = {}  # element name -> (monotonic time, frames, bytes)
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
        return True

    def print_stats(self):
        now = time.monotonic()
        for element in iterate_elements(self.pipeline):
            kind = factory_name(element)
            if kind not in MEASURED:
                continue
            stats = element.get_property("stats")
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
            fields = [f"state={structure_value(stats, 'state')}", f"fps={fps:.1f}", f"kbps={kbps:.0f}",
                      f"frames={frames}"]
            if kind == "whepsrc":
                for field, label in (("reconnects", "reconnects"), ("time-to-first-frame-ms", "ttff-ms"),
                                     ("round-trip-time", "rtt"), ("jitter", "jitter"),
                                     ("packets-lost", "lost")):
                    value = structure_value(stats, field)
                    if value is not None:
                        fields.append(f"{label}={value:.3g}" if isinstance(value, float) else f"{label}={value}")
            else:
                for field in ("attempts", "frames-dropped", "encoder", "transport"):
                    value = structure_value(stats, field)
                    if value is not None:
                        fields.append(f"{field}={value}")
            self.say(f"stats {name} " + " ".join(fields))
        return True

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
        self.pipeline.set_state(Gst.State.NULL)
        return self.exit_code


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

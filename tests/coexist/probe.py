#!/usr/bin/python3
"""Prints, as one JSON object, what one GStreamer process sees of the element names that this plugin
and gst-plugins-rs' webrtchttp both want. Run by tests/coexist/check_registry.py in a prepared
environment (GST_PLUGIN_PATH, GST_REGISTRY); not a test by itself.

Usage: probe.py [--help] [STEP...]

Steps, in the order given (default: find uri load-mediamtx find):
  find            which plugin the factory named whepsrc belongs to, and its rank
  uri             the element gst_element_make_from_uri() makes for whep:// (what playbin's
                  source is), and the GType of mtxwhepsrc
  types           both GTypes (GstMtxWhepSrc and gst-plugins-rs' GstWhepSrc) instantiated in this
                  one process (loads both plugins)
  load-mediamtx   creates mediamtxsink, which loads this plugin (its plugin_init registers its
                  elements again)
  load-webrtchttp creates whipsink, which loads gst-plugins-rs' webrtchttp
"""
import json
import sys

import gi

gi.require_version("Gst", "1.0")
from gi.repository import GObject, Gst  # noqa: E402


def factory_info(name):
    factory = Gst.ElementFactory.find(name)
    if factory is None:
        return None
    return {"plugin": factory.get_plugin_name(), "rank": int(factory.get_rank())}


def main(argv):
    if "--help" in argv or "-h" in argv:
        print(__doc__.strip())
        return 0
    Gst.init(None)
    steps = argv or ["find", "uri", "load-mediamtx", "find"]
    results = []
    for step in steps:
        if step == "find":
            results.append({"step": step, "whepsrc": factory_info("whepsrc"), "mtxwhepsrc": factory_info("mtxwhepsrc")})
        elif step == "uri":
            element = Gst.Element.make_from_uri(Gst.URIType.SRC, "whep://127.0.0.1:8889/cam", None)
            alias = Gst.ElementFactory.make("mtxwhepsrc", None)
            results.append({"step": step,
                            "uri_element": element.get_factory().get_name() if element else None,
                            "uri_type": element.__gtype__.name if element else None,
                            "mtxwhepsrc_type": alias.__gtype__.name if alias else None})
        elif step == "types":
            for plugin in ("mediamtx", "webrtchttp"):
                if Gst.Plugin.load_by_name(plugin) is None:
                    results.append({"step": step, "error": f"plugin {plugin} does not load"})
            made = {}
            for type_name in ("GstMtxWhepSrc", "GstWhepSrc"):
                gtype = GObject.type_from_name(type_name)
                element = GObject.new(gtype) if gtype else None
                made[type_name] = element.__gtype__.name if element else None
            results.append({"step": step, "made": made})
        elif step in ("load-mediamtx", "load-webrtchttp"):
            element = Gst.ElementFactory.make("mediamtxsink" if step == "load-mediamtx" else "whipsink", None)
            results.append({"step": step, "made": element is not None})
        else:
            print(f"probe: unknown step {step!r}; see --help", file=sys.stderr)
            return 2
    print(json.dumps(results))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))

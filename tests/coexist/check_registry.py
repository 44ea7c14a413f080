#!/usr/bin/python3
"""coexist/registry: this plugin and gst-plugins-rs' webrtchttp (built from crates.io by
tests/coexist/build-rs-webrtchttp.sh, cached outside the repository) in one registry.

Usage: check_registry.py [--help]

Both plugin folders go on GST_PLUGIN_PATH, in both orders, each time with a fresh registry
(GST_REGISTRY in a temporary folder). Checks: the registry scan and `gst-inspect-1.0` print no
panic, critical or warning (gst-plugins-rs' own notice that its whepsrc/whipsink are deprecated
aside) and list mtxwhepsrc, mediamtxsink, reconnectbin and rs' whipsink; each of them and
whepsrc inspect cleanly; both GTypes (GstMtxWhepSrc and rs' GstWhepSrc) live in one process; and
what docs/coexistence.md says about the shared name `whepsrc`: after a scan it is the plugin
scanned last (last on GST_PLUGIN_PATH), the same again from the cached registry; in a process it
moves to whichever plugin was loaded last (each loads once); GST_PLUGIN_FEATURE_RANK re-ranks the winner but does
not choose it; mtxwhepsrc and whep:// URIs (gst_element_make_from_uri, what playbin uses) always
give this plugin's element. Skipped (exit 77) only when cargo is missing or cannot reach crates.io.

Environment (defaults):
  GST_PLUGIN_PATH  this plugin's folder                     (<repo>/build/plugins)
  RS_PLUGIN_DIR    folder of libgstwebrtchttp.so (built and cached by build-rs-webrtchttp.sh)
"""
import json
import os
import re
import subprocess
import sys
import tempfile

sys.path.insert(0, os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), "pipelines"))
from checklib import REPO_ROOT, Checks, expect, help_requested  # noqa: E402

HERE = os.path.dirname(os.path.abspath(__file__))
OURS = ["mtxwhepsrc", "mediamtxsink", "reconnectbin"]
THEIRS = ["whipsink"]
# gst-plugins-rs 0.15 warns that its own whepsrc/whipsink are deprecated when they load: not ours.
RS_NOTICE = re.compile(r"(whepsrc|whipsink)-WARNING \*\*: [\d:.]+: \w+ is now deprecated and it is recommended")
# Case matters: GLib prints "CRITICAL **" / "WARNING **", Rust "panicked"; a property's description
# may say "warning" in prose (mediamtxsink's keyframe-on-join does).
BAD = re.compile(r"panic|CRITICAL|WARNING|already been registered|Failed to load plugin|GLib-GObject")


def problems(text):
    """Lines of stderr/stdout that report trouble, rs' deprecation notice aside."""
    return [line for line in text.splitlines() if BAD.search(line) and not RS_NOTICE.search(line)]


def run(args, env, timeout=120):
    result = subprocess.run(args, capture_output=True, text=True, env=env, timeout=timeout)
    return result.returncode, result.stdout, result.stderr


def probe(env, *steps):
    code, out, err = run(["/usr/bin/python3", os.path.join(HERE, "probe.py"), *steps], env)
    expect(code == 0, f"probe.py {' '.join(steps)} exited {code}: {err.strip()[-500:]}")
    expect(not problems(err), f"probe.py printed {problems(err)}")
    return json.loads(out.strip().splitlines()[-1])


def main():
    if help_requested(__doc__):
        return 0
    ours = os.path.realpath(os.environ.get("GST_PLUGIN_PATH", os.path.join(REPO_ROOT, "build", "plugins"))
                            .split(os.pathsep)[0])
    rs = os.environ.get("RS_PLUGIN_DIR", "")
    print(f"check_registry: GST_PLUGIN_PATH={ours} RS_PLUGIN_DIR={rs or '<build-rs-webrtchttp.sh>'}", flush=True)
    if not rs:
        build = subprocess.run([os.path.join(HERE, "build-rs-webrtchttp.sh")], stdout=subprocess.PIPE, text=True,
                               timeout=3000)
        if build.returncode == 77:
            print("check_registry: SKIPPED: gst-plugins-rs' webrtchttp could not be fetched (see above)")
            print("0 passed, 0 failed")
            return 77
        if build.returncode != 0 or not build.stdout.strip():
            print(f"check_registry: FAILED: build-rs-webrtchttp.sh exited {build.returncode}")
            print("0 passed, 1 failed")
            return 1
        rs = build.stdout.strip().splitlines()[-1]
    checks = Checks("coexist")
    work = tempfile.mkdtemp(prefix="coexist-")
    base = {k: v for k, v in os.environ.items() if not k.startswith("GST_")}
    base["GST_REGISTRY_UPDATE"] = "yes"

    for label, path, last in (("mediamtx first", [ours, rs], "webrtchttp"), ("rs first", [rs, ours], "mediamtx")):
        env = dict(base, GST_PLUGIN_PATH=os.pathsep.join(path),
                   GST_REGISTRY=os.path.join(work, label.replace(" ", "-") + ".bin"))

        def listing():
            code, out, err = run(["gst-inspect-1.0"], env)
            expect(code == 0, f"gst-inspect-1.0 exited {code}: {err.strip()[-500:]}")
            expect(not problems(out + err), f"gst-inspect-1.0 printed {problems(out + err)}")
            listed = re.findall(r"^(mediamtx|webrtchttp):\s+([\w-]+):", out, re.M)
            for element in OURS:
                expect(("mediamtx", element) in listed, f"{element} not listed by plugin mediamtx: {listed}")
            for element in THEIRS:
                expect(("webrtchttp", element) in listed, f"{element} not listed by plugin webrtchttp: {listed}")
            owners = [plugin for plugin, element in listed if element == "whepsrc"]
            expect(owners == [last], f"whepsrc listed for {owners}, expected once, for {last} (scanned last)")

        checks.run(f"{label}: fresh registry, gst-inspect-1.0 lists both plugins, no panic/critical/warning", listing)

        for element in OURS + THEIRS + ["whepsrc"]:
            def inspect_one(element=element):
                code, out, err = run(["gst-inspect-1.0", element], env)
                expect(code == 0, f"gst-inspect-1.0 {element} exited {code}: {err.strip()[-300:]}")
                expect(not problems(out + err), f"gst-inspect-1.0 {element} printed {problems(out + err)}")

            checks.run(f"{label}: gst-inspect-1.0 {element} loads cleanly", inspect_one)

        def scanned_last_wins():
            found = probe(env, "find", "uri")
            expect(found[0]["whepsrc"]["plugin"] == last, f"whepsrc is {found[0]['whepsrc']}, not {last}'s")
            expect(found[0]["mtxwhepsrc"]["plugin"] == "mediamtx", f"mtxwhepsrc is {found[0]['mtxwhepsrc']}")
            expect(found[1]["uri_type"] == "GstMtxWhepSrc" and found[1]["mtxwhepsrc_type"] == "GstMtxWhepSrc",
                   f"whep:// and mtxwhepsrc made {found[1]}")
            again = probe(env, "find")
            expect(again[0]["whepsrc"]["plugin"] == last, f"from the cached registry whepsrc is {again[0]['whepsrc']}")

        checks.run(f"{label}: whepsrc is {last}'s (scanned last, also from the cache); mtxwhepsrc and whep:// ours",
                   scanned_last_wins)

        def loaded_last_wins():
            for first, second in (("mediamtx", "webrtchttp"), ("webrtchttp", "mediamtx")):
                steps = probe(env, "load-" + first, "find", "load-" + second, "find")
                owners = [s["whepsrc"]["plugin"] for s in steps if s["step"] == "find"]
                expect(owners == [first, second], f"after loading {first}, then {second}: whepsrc is {owners}'s")

        checks.run(f"{label}: in a process, whepsrc moves to the plugin loaded last", loaded_last_wins)

        def both_types():
            made = probe(env, "types")[-1]["made"]
            expect(made == {"GstMtxWhepSrc": "GstMtxWhepSrc", "GstWhepSrc": "GstWhepSrc"}, f"made {made}")

        checks.run(f"{label}: GstMtxWhepSrc and rs' GstWhepSrc instantiated in one process", both_types)

    def rank_does_not_choose():
        env = dict(base, GST_PLUGIN_PATH=os.pathsep.join([ours, rs]), GST_REGISTRY=os.path.join(work, "rank.bin"),
                   GST_PLUGIN_FEATURE_RANK="whepsrc:PRIMARY")
        found = probe(env, "find", "uri")
        expect(found[0]["whepsrc"] == {"plugin": "webrtchttp", "rank": 256},
               f"with GST_PLUGIN_FEATURE_RANK=whepsrc:PRIMARY whepsrc is {found[0]['whepsrc']}")
        expect(found[1]["uri_type"] == "GstMtxWhepSrc", f"whep:// made {found[1]}")

    checks.run("GST_PLUGIN_FEATURE_RANK=whepsrc:PRIMARY re-ranks the winner (rs here), does not choose; "
               "whep:// stays ours", rank_does_not_choose)
    subprocess.run(["rm", "-rf", work], check=False)
    return checks.finish()


if __name__ == "__main__":
    sys.exit(main())

#!/usr/bin/python3
"""docs/reference/ is current and says what gst-inspect-1.0 says.

Usage: check_reference.py [--help]   (GST_PLUGIN_PATH must point at the build's plugins dir)

Checks: `docs/gen-reference.py --check` passes (no stale, missing or extra page); every element
`gst-inspect-1.0 mediamtx` lists has a page and every page an element; each page's property list
has exactly the names `gst-inspect-1.0 <element>` prints; an alias page (a second name of an
element, e.g. mtxwhepsrc) points to a page that exists and the alias has exactly the properties of
the element it names. The same property comparison runs on a
few stock GStreamer plugins rendered to a temporary folder, so the generator is exercised on bins,
sources, enums, flags and signals even while the mediamtx plugin has few elements.

Environment (defaults):
  GST_PLUGIN_PATH  built plugin folder                 (<repo>/build/plugins)
  REFERENCE_DIR    committed pages to check          (<repo>/docs/reference)
  SELFTEST_PLUGINS stock plugins the generator renders (coreelements rtsp webrtc x264)
"""
import os
import re
import shutil
import subprocess
import sys
import tempfile

sys.path.insert(0, os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), "pipelines"))
from checklib import REPO_ROOT, Checks, expect, help_requested  # noqa: E402

GENERATOR = os.path.join(REPO_ROOT, "docs", "gen-reference.py")


def inspect(*args):
    result = subprocess.run(["gst-inspect-1.0", *args], capture_output=True, text=True, timeout=60)
    expect(result.returncode == 0, f"gst-inspect-1.0 {' '.join(args)} failed: {result.stderr.strip()}")
    return result.stdout


def inspect_elements(plugin):
    """Element names of a plugin, from `gst-inspect-1.0 <plugin>`."""
    return sorted(re.findall(r"^  ([\w-]+): ", inspect(plugin), re.M))


def inspect_properties(element):
    """Property names from the "Element Properties:" block of `gst-inspect-1.0 <element>`."""
    out = inspect(element)
    block = re.search(r"^Element Properties:\n(.*?)(?:\n\S|\Z)", out, re.S | re.M)
    if not block:
        return []
    return sorted(re.findall(r"^  ([\w-]+)\s*: ", block.group(1), re.M))


def page_properties(path):
    with open(path, encoding="utf-8") as f:
        text = f.read()
    section = re.search(r"^## Properties\n(.*?)(?=^## |\Z)", text, re.S | re.M)
    expect(section, f"{os.path.basename(path)} has no '## Properties' section")
    return sorted(re.findall(r"^### `([\w-]+)`", section.group(1), re.M))


ALIAS = re.compile(r"^Another name for \[`([\w-]+)`\]\(([\w-]+)\.md\)", re.M)


def alias_target(path):
    """The element an alias page points to, or None for a full page."""
    with open(path, encoding="utf-8") as f:
        m = ALIAS.search(f.read())
    if not m:
        return None
    expect(m.group(1) == m.group(2), f"{os.path.basename(path)} names `{m.group(1)}` but links {m.group(2)}.md")
    return m.group(1)


def compare_alias(alias, page):
    target = alias_target(page)
    target_page = os.path.join(os.path.dirname(page), target + ".md")
    expect(os.path.exists(target_page) and alias_target(target_page) is None,
           f"{alias} points to {target}.md, which is not a full element page")
    aliased, own = inspect_properties(alias), inspect_properties(target)
    expect(aliased and aliased == own, f"{alias} has properties {aliased}, {target} has {own}")


def compare_properties(element, page):
    documented = page_properties(page)
    inspected = inspect_properties(element)
    missing = sorted(set(inspected) - set(documented))
    extra = sorted(set(documented) - set(inspected))
    expect(not missing and not extra,
           f"{element}: gst-inspect-1.0 lists {missing} not documented; documented but not listed: {extra}")


def main():
    if help_requested(__doc__):
        return 0
    os.environ.setdefault("GST_PLUGIN_PATH", os.path.join(REPO_ROOT, "build", "plugins"))
    reference_dir = os.environ.get("REFERENCE_DIR", os.path.join(REPO_ROOT, "docs", "reference"))
    selftest_plugins = os.environ.get("SELFTEST_PLUGINS", "coreelements rtsp webrtc x264").split()
    print(f"check_reference: GST_PLUGIN_PATH={os.environ['GST_PLUGIN_PATH']} REFERENCE_DIR={reference_dir} "
          f"SELFTEST_PLUGINS={' '.join(selftest_plugins)}", flush=True)
    checks = Checks("docs")

    def up_to_date():
        result = subprocess.run([GENERATOR, "--check"], capture_output=True, text=True, timeout=300,
                                env=dict(os.environ, REFERENCE_DIR=reference_dir))
        expect(result.returncode == 0, result.stderr.strip())

    checks.run("docs/reference matches the registry (docs/gen-reference.py --check)", up_to_date)

    elements = checks.run("gst-inspect-1.0 mediamtx lists the plugin's elements", inspect_elements, "mediamtx")
    if elements is True:  # the plugin has no element: run() maps an empty result to True
        elements = []

    def pages_match_elements():
        pages = sorted(name[:-3] for name in os.listdir(reference_dir) if name.endswith(".md") and name != "README.md")
        expect(pages == elements, f"pages {pages} but elements {elements}")

    if elements is not None:
        checks.run("one page per element, no page without an element", pages_match_elements)
        for element in elements:
            page = os.path.join(reference_dir, element + ".md")
            if os.path.exists(page) and alias_target(page):
                checks.run(f"{element}: alias page points to {alias_target(page)}.md, same properties", compare_alias,
                           element, page)
            elif os.path.exists(page):
                checks.run(f"{element}: documented properties == gst-inspect-1.0 properties", compare_properties,
                           element, page)

    work = tempfile.mkdtemp(prefix="check-reference-")
    try:
        for plugin in selftest_plugins:
            if subprocess.run(["gst-inspect-1.0", plugin], capture_output=True, timeout=60).returncode != 0:
                print(f"note stock plugin {plugin} not installed: generator self-test skipped for it", flush=True)
                continue
            out_dir = os.path.join(work, plugin)

            def render():
                result = subprocess.run([GENERATOR], capture_output=True, text=True, timeout=300,
                                        env=dict(os.environ, PLUGIN_NAME=plugin, REFERENCE_DIR=out_dir))
                expect(result.returncode == 0, f"generator failed on {plugin}: {result.stderr.strip()}")

            if checks.run(f"generator renders stock plugin {plugin}", render) is None:
                continue
            names = sorted(n[:-3] for n in os.listdir(out_dir) if n != "README.md")
            # A few elements per plugin keep the test fast; all of them for small plugins.
            for element in names[:4]:
                checks.run(f"generator self-test: {element} properties == gst-inspect-1.0", compare_properties, element,
                           os.path.join(out_dir, element + ".md"))
    finally:
        shutil.rmtree(work, ignore_errors=True)
    return checks.finish()


if __name__ == "__main__":
    sys.exit(main())

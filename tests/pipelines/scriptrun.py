"""Starts the pipelines/ scripts as child processes for the script tests and reads what they print."""
import os
import re
import signal
import struct
import subprocess
import tempfile
import time

from checklib import REPO_ROOT, CheckFailed, expect

PIPELINES = os.path.join(REPO_ROOT, "pipelines")
# Small pictures: other jobs share the machine's two cores.
TEST_CAMERA = {"CAMERA": "test", "VIDEO_WIDTH": "640", "VIDEO_HEIGHT": "360", "VIDEO_FRAMERATE": "30",
               "VIDEO_BITRATE_KBPS": "800", "TEST_PATTERN": "ball", "STATUS_INTERVAL": "2"}


class Script:
    """One script running in the background, its output going to a file."""

    def __init__(self, name, env, args=()):
        self.name = name
        self.log = tempfile.NamedTemporaryFile(prefix=f"{name}-", suffix=".log", delete=False)
        full_env = dict(os.environ)
        full_env.update(env)
        self.process = subprocess.Popen([os.path.join(PIPELINES, name), *args], env=full_env, stdout=self.log,
                                        stderr=subprocess.STDOUT, start_new_session=True)

    def output(self):
        with open(self.log.name, encoding="utf-8", errors="replace") as f:
            return f.read()

    def wait_for(self, pattern, timeout):
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            m = re.search(pattern, self.output(), re.M)
            if m:
                return m
            if self.process.poll() is not None:
                break
            time.sleep(0.3)
        raise CheckFailed(f"{self.name}: no line matching {pattern!r} within {timeout} s; output:\n"
                          + self.output()[-3000:])

    def interrupt(self, timeout=30):
        """Ctrl-C (SIGINT to the script's process group), then the exit status."""
        if self.process.poll() is None:
            os.killpg(self.process.pid, signal.SIGINT)
        return self.wait(timeout)

    def wait(self, timeout):
        try:
            return self.process.wait(timeout)
        except subprocess.TimeoutExpired:
            os.killpg(self.process.pid, signal.SIGKILL)
            self.process.wait(10)
            raise CheckFailed(f"{self.name} did not exit within {timeout} s; output:\n{self.output()[-3000:]}")

    def close(self):
        if self.process.poll() is None:
            os.killpg(self.process.pid, signal.SIGKILL)
            self.process.wait(10)
        os.unlink(self.log.name)


def run_script(name, env, timeout, args=()):
    """Runs a script to its end: (exit status, output)."""
    script = Script(name, env, args)
    try:
        status = script.wait(timeout)
        return status, script.output()
    finally:
        script.close()


def png_size(path):
    """(width, height) of a PNG file, checking its signature and IHDR chunk."""
    with open(path, "rb") as f:
        head = f.read(24)
    expect(len(head) == 24 and head[:8] == b"\x89PNG\r\n\x1a\n" and head[12:16] == b"IHDR", f"{path} is not a PNG")
    return struct.unpack(">II", head[16:24])


class Picture:
    """A PNG's pixels (decoded with GdkPixbuf, Debian's /usr/bin/python3 + gir1.2-gdkpixbuf-2.0)."""

    def __init__(self, path):
        import gi
        gi.require_version("GdkPixbuf", "2.0")
        from gi.repository import GdkPixbuf
        pixbuf = GdkPixbuf.Pixbuf.new_from_file(path)
        self.width, self.height = pixbuf.get_width(), pixbuf.get_height()
        self.data, self.stride, self.channels = pixbuf.get_pixels(), pixbuf.get_rowstride(), pixbuf.get_n_channels()

    def rgb(self, x, y):
        p = y * self.stride + x * self.channels
        return self.data[p], self.data[p + 1], self.data[p + 2]

    def mean(self, x0, y0, x1, y1, step=4):
        """Mean (R, G, B) over the rectangle, every step-th pixel."""
        sums, n = [0, 0, 0], 0
        for y in range(y0, y1, step):
            for x in range(x0, x1, step):
                for i, value in enumerate(self.rgb(x, y)):
                    sums[i] += value
                n += 1
        return tuple(s / n for s in sums)

    def text_rows(self, y0, y1):
        """Rows of the band y0..y1 that look like a line of text: 10 or more dark/bright changes."""
        rows = 0
        for y in range(y0, y1):
            bright = [sum(self.rgb(x, y)) > 3 * 128 for x in range(self.width)]
            if sum(a != b for a, b in zip(bright, bright[1:])) >= 10:
                rows += 1
        return rows


def stats_frames(output, element):
    """The frame counts of an element's stats lines."""
    return [int(n) for n in re.findall(rf"stats {element} .*?frames=(\d+)", output)]

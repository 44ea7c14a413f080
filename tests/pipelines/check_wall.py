#!/usr/bin/python3
"""pipelines/wall.sh against a real MediaMTX: five tiles, one camera never published, one killed.

Usage: check_wall.py [--help]   (run by meson test inside tests/testbed/netns-run.sh; needs root)

Four test cameras publish solid colours (red, green, blue, white: cheap to encode, and each tile's
place in the picture can be checked from its colour) at 320x180, and wall.sh shows them with a fifth
path nobody publishes, headless (SINK=fakesink), in 320x180 tiles (3 x 2 grid). Checks:
- bad settings (a CAMERAS entry that is no path name, the same path twice) exit 2 at once;
- the 4 live cameras report >= 25 fps each, both received (fps) and reaching their tile
  (shown-fps), and the never-published one says "waiting for the camera to publish" on its slate
  while its tile still gets >= 25 frames a second (the slate);
- the snapshot (SNAPSHOT_AFTER=12) is a 960x360 PNG with the 5 tiles where the grid puts them:
  each live tile the colour of its camera (below the label), the fifth the slate (neither black nor
  a camera's colour), the sixth cell black;
- one publisher killed mid-run: its tile leaves "connected" and shows a slate, the other three keep
  >= 25 fps (mean over the following seconds, received and shown; no second below 5) and stay
  connected;
- Ctrl-C ends the wall with exit 0.

Environment (defaults):
  MEDIAMTX_BIN     MediaMTX binary                        (~/.cache/gst-mediamtx/mediamtx-v1.20.1)
  CHECK_WALL_LOG   write the wall's whole output there    (none)
"""
import os
import re
import signal
import subprocess
import sys
import tempfile
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from checklib import CheckFailed, Checks, expect, help_requested  # noqa: E402
from mediamtxlib import Mediamtx  # noqa: E402
from scriptrun import TEST_CAMERA, Picture, Script, png_size, run_script  # noqa: E402

TILE_W, TILE_H = 320, 180
# path -> (videotestsrc pattern, its colour in RGB)
CAMERAS = {"red": ("red", (255, 0, 0)), "green": ("green", (0, 255, 0)), "blue": ("blue", (0, 0, 255)),
           "white": ("white", (255, 255, 255))}
NOBODY = "nobody"
KILLED = "blue"
STATS = re.compile(r"^wall: stats (\S+) state=(\S+) fps=([0-9.]+) .*?shown-fps=([0-9.]+)(?:.*slate=\"(.*)\")?", re.M)


def stats_lines(out):
    """[(path, state, fps, shown-fps, slate text or '')] in order."""
    return [(m.group(1), m.group(2), float(m.group(3)), float(m.group(4)), m.group(5) or "")
            for m in STATS.finditer(out)]


def live_seconds(lines, path):
    """The stats lines of a path that show it connected at >= 25 fps received and shown."""
    return [line for line in lines if line[0] == path and line[1] == "connected" and line[2] >= 25 and line[3] >= 25]


def cell_means(png):
    """Mean (R, G, B) of each grid cell below its top third (the label), as {cell index: rgb}."""
    picture = Picture(png)
    means = {}
    for cell in range(6):
        x0, y0 = cell % 3 * TILE_W, cell // 3 * TILE_H
        means[cell] = picture.mean(x0 + 4, y0 + TILE_H // 3, x0 + TILE_W - 4, y0 + TILE_H - 4)
    return means


def close_to(rgb, expected, tolerance=40):
    return all(abs(a - b) <= tolerance for a, b in zip(rgb, expected))


def main():
    if help_requested(__doc__):
        return 0
    print(f"check_wall: MEDIAMTX_BIN={os.environ.get('MEDIAMTX_BIN', '<default>')}", flush=True)
    checks = Checks("wall")
    work = tempfile.mkdtemp(prefix="check-wall-")

    def bad_settings():
        for cameras, why in (("cam1,bad name", "not a MediaMTX path name"), ("cam1,cam1", "twice")):
            status, out = run_script("wall.sh", {"CAMERAS": cameras, "SINK": "fakesink"}, 30)
            expect(status == 2 and why in out, f"CAMERAS={cameras}: exit {status}, expected 2 saying '{why}':\n{out}")

    checks.run("wall.sh: a CAMERAS entry that is no path name, or a path twice, exits 2", bad_settings)

    def layout():
        # GRID_COLUMNS, else COLUMNS when it can be a tile count, else the smallest square grid; a
        # terminal's COLUMNS (wider than the camera count) is no tile count.
        for env, want in (({}, "2 x 2"), ({"COLUMNS": "1"}, "1 x 3"), ({"COLUMNS": "200"}, "2 x 2"),
                          ({"GRID_COLUMNS": "3", "COLUMNS": "1"}, "3 x 1")):
            status, out = run_script("wall.sh", dict(env, CAMERAS="a,b,c", SINK="fakesink", DURATION="1",
                                                     MEDIAMTX_URL="http://127.0.0.1:9"), 30)
            expect(f"3 cameras in {want} tiles" in out, f"{env}: expected {want} tiles (exit {status}):\n{out}")

    checks.run("wall.sh: the grid from GRID_COLUMNS, COLUMNS (a tile count, not a terminal's width) or the count",
               layout)

    server = Mediamtx().start()
    publishers = {}
    wall = None
    snapshot = os.path.join(work, "wall.png")
    try:
        def publish():
            for path, (pattern, _rgb) in CAMERAS.items():
                publishers[path] = Script("publish-camera.sh", dict(
                    TEST_CAMERA, MEDIAMTX_URL=server.rtsp_url, STREAM_PATH=path, TEST_PATTERN=pattern,
                    VIDEO_WIDTH=str(TILE_W), VIDEO_HEIGHT=str(TILE_H), VIDEO_BITRATE_KBPS="200", STATUS_INTERVAL="0"))
            for path in CAMERAS:
                server.wait_path_ready(path, 60)

        checks.run("4 test cameras publish (solid colours, 320x180)", publish)

        def all_live():
            nonlocal wall
            expect(len(publishers) == 4, "the cameras do not publish")
            wall = Script("wall.sh", {"MEDIAMTX_URL": server.http_url, "CAMERAS": ",".join([*CAMERAS, NOBODY]),
                                      "SINK": "fakesink", "TILE_WIDTH": str(TILE_W), "TILE_HEIGHT": str(TILE_H),
                                      "SNAPSHOT": snapshot, "SNAPSHOT_AFTER": "12"})
            wall.wait_for(r"^wall: 5 cameras in 3 x 2 tiles of 320x180: 960x360", 15)
            deadline = time.monotonic() + 45
            while True:
                lines = stats_lines(wall.output())
                # the last 3 lines of each live camera at >= 25 fps
                if all(len(live_seconds(lines, path)) >= 3 and
                       [line for line in lines if line[0] == path][-3:] == live_seconds(lines, path)[-3:]
                       for path in CAMERAS):
                    break
                expect(time.monotonic() < deadline and wall.process.poll() is None,
                       "the 4 live tiles did not all report >= 25 fps (received and shown) for 3 s within 45 s:\n"
                       + wall.output()[-4000:])
                time.sleep(0.5)
            nobody = [line for line in lines if line[0] == NOBODY][-3:]
            expect(len(nobody) == 3 and all(line[1] != "connected" and "waiting for the camera to publish" in line[4]
                                            and line[3] >= 25 for line in nobody),
                   f"the never-published path's last lines do not show its waiting slate at >= 25 fps: {nobody}")
            print(f"     last lines: {[line for line in lines[-5:]]}", flush=True)

        checks.run("wall.sh: 4 live tiles at >= 25 fps (received and shown), the 5th shows its 'waiting for the "
                   "camera to publish' slate", all_live)

        def snapshot_png():
            expect(wall is not None, "no wall")
            wall.wait_for(r"^wall: snapshot written ", 30)
            expect(png_size(snapshot) == (3 * TILE_W, 2 * TILE_H), f"snapshot is not {3 * TILE_W}x{2 * TILE_H}")
            means = cell_means(snapshot)
            print(f"     cell colours: { {c: tuple(round(v) for v in rgb) for c, rgb in means.items()} }", flush=True)
            for cell, (path, (_pattern, rgb)) in enumerate(CAMERAS.items()):
                expect(close_to(means[cell], rgb), f"tile {cell} ({path}) is {means[cell]}, expected about {rgb}")
            slate = means[4]
            expect(max(slate) > 20 and not any(close_to(slate, rgb) for _p, rgb in CAMERAS.values()),
                   f"tile 4 ({NOBODY}) is {slate}: not a slate (black, or a camera's colour)")
            expect(close_to(means[5], (0, 0, 0), 8), f"the empty sixth cell is {means[5]}, not black")

        checks.run("wall.sh SNAPSHOT: a 960x360 PNG, each camera's colour in its grid cell, the slate in the 5th, "
                   "the 6th black", snapshot_png)

        def kill_one():
            expect(wall is not None and KILLED in publishers, "no wall")
            killed_at = len(stats_lines(wall.output()))
            os.killpg(publishers[KILLED].process.pid, signal.SIGKILL)
            deadline = time.monotonic() + 20
            while True:
                after = stats_lines(wall.output())[killed_at:]
                down = [i for i, line in enumerate(after) if line[0] == KILLED and line[1] != "connected" and line[4]]
                if down:
                    break
                expect(time.monotonic() < deadline, f"{KILLED}'s tile did not leave 'connected' for a slate within "
                       f"20 s of its publisher's kill:\n" + wall.output()[-3000:])
                time.sleep(0.5)
            time.sleep(5)  # the others, and the slate, for 5 s more
            after = stats_lines(wall.output())[killed_at:]
            for path in CAMERAS:
                lines = [line for line in after if line[0] == path]
                expect(len(lines) >= 6, f"{path}: {len(lines)} stats lines after the kill")
                if path == KILLED:
                    last = lines[-3:]
                    # a slate at the stream's rate: 25 fps or more over these 3 s, no second without one
                    expect(all(line[1] != "connected" and line[4] and line[3] >= 10 for line in last)
                           and sum(line[3] for line in last) >= 25 * len(last),
                           f"{KILLED}'s tile does not show a slate at >= 25 fps: {last}")
                    continue
                fps = [line[2] for line in lines]
                shown = [line[3] for line in lines]
                expect(all(line[1] == "connected" for line in lines), f"{path} left 'connected': {lines}")
                # Per second, not per frame: while the killed camera's session is silent (until whepsrc
                # notices, ~3 s) compositor waits for its tile up to its latency once (~150 ms), then
                # catches up when the slate comes: one second a few frames short, the next a few over.
                # A wall that waits on the dead tile would stay low; a frozen second is a failure.
                expect(sum(fps) / len(fps) >= 25 and sum(shown) / len(shown) >= 25 and min(fps + shown) >= 5,
                       f"{path} slowed down after {KILLED}'s publisher was killed: fps {fps}, shown {shown}; the wall's "
                       f"lines since:\n" + "\n".join(line for line in wall.output().splitlines()[-60:]
                                                     if "wall: stats" in line or "wall: status" in line))
            print(f"     {KILLED} after the kill: {[line[1:] for line in after if line[0] == KILLED][-1]}", flush=True)

        checks.run(f"wall.sh: {KILLED}'s publisher killed: only its tile changes state (a slate), the others keep "
                   ">= 25 fps", kill_one)

        def ctrl_c():
            expect(wall is not None, "no wall")
            status = wall.interrupt(30)
            expect(status == 0, f"exit {status} after Ctrl-C:\n{wall.output()[-2000:]}")

        checks.run("wall.sh stops on Ctrl-C with exit 0", ctrl_c)
    except CheckFailed as e:
        print(f"FAIL setup: {e}", flush=True)
        checks.failed += 1
    finally:
        if wall and os.environ.get("CHECK_WALL_LOG"):
            with open(os.environ["CHECK_WALL_LOG"], "w", encoding="utf-8") as f:
                f.write(wall.output())
        if wall:
            wall.close()
        for publisher in publishers.values():
            publisher.close()
        server.close()
        subprocess.run(["rm", "-rf", work], check=False)
    return checks.finish()


if __name__ == "__main__":
    sys.exit(main())

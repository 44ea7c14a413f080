#!/usr/bin/python3
"""CPU of a camera wall (pipelines/wall.sh) against a real MediaMTX: a benchmark, not a test.

Usage: tests/testbed/netns-run.sh /usr/bin/python3 tests/bench/wall_cpu.py [--help]
       (root: a private network namespace; GST_PLUGIN_PATH=build/plugins, or the source tree's build/)

Starts MediaMTX and CAMERAS test cameras (publish-camera.sh CAMERA=test, moving patterns, VIDEO_WIDTH x
VIDEO_HEIGHT at 30 fps), waits until every path is ready, then runs wall.sh headless (SINK=fakesink:
decode, scale, label and compose every tile, no display) with the CAMERAS paths plus OFFLINE paths
nobody publishes. After WARMUP seconds it measures, over WINDOW seconds, the CPU time (utime + stime
from /proc/PID/stat) of the wall process, of all publishers together and of MediaMTX, in % of one
core, the wall's peak RSS, and the frames a second of each tile and of the composed picture (the
wall's stats lines). Prints RESULT lines and the load average before and after. With SNAPSHOT set,
the wall also writes its picture there (what docs/viewer.md shows).

Environment (defaults):
  CAMERAS        published test cameras                 (4)
  OFFLINE        extra paths never published (their tiles show the waiting slate)   (0)
  VIDEO_WIDTH, VIDEO_HEIGHT, VIDEO_BITRATE_KBPS  each camera          (640, 360, 800)
  TILE_WIDTH, TILE_HEIGHT                         each tile            (640, 360)
  WARMUP         seconds before the window              (8)
  WINDOW         seconds measured                       (20)
  SNAPSHOT       PNG of the wall, written SNAPSHOT_AFTER s after its start (none)
  SNAPSHOT_AFTER (6)
  WALL_LOG       write the wall's whole output to this file   (none)
  MEDIAMTX_BIN   MediaMTX binary   (~/.cache/gst-mediamtx/mediamtx-v1.20.1)
"""
import os
import re
import sys
import time

sys.path.insert(0, os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), "pipelines"))
from checklib import REPO_ROOT, help_requested  # noqa: E402
from mediamtxlib import Mediamtx  # noqa: E402
from scriptrun import TEST_CAMERA, Script  # noqa: E402

PATTERNS = ["ball", "smpte", "pinwheel", "colors", "spokes", "zone-plate", "gradient", "circular", "bar"]
TICKS = os.sysconf("SC_CLK_TCK")


def env_int(name, default):
    return int(os.environ.get(name, default))


def cpu_ticks(pid):
    """utime + stime of a process and its reaped children' (ticks), 0 when it is gone."""
    try:
        with open(f"/proc/{pid}/stat", encoding="ascii") as f:
            fields = f.read().rsplit(")", 1)[1].split()
    except OSError:
        return 0
    return sum(int(v) for v in fields[11:15])


def group_pids(pgid):
    """Every process of a process group (a script and what it started)."""
    pids = []
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            try:
                with open(f"/proc/{entry}/stat", encoding="ascii") as f:
                    if int(f.read().rsplit(")", 1)[1].split()[2]) == pgid:
                        pids.append(int(entry))
            except (OSError, ValueError, IndexError):
                pass
    return pids


def peak_rss_mib(pid):
    try:
        with open(f"/proc/{pid}/status", encoding="ascii") as f:
            for line in f:
                if line.startswith("VmHWM:"):
                    return int(line.split()[1]) / 1024
    except OSError:
        pass
    return 0.0


def loadavg():
    with open("/proc/loadavg", encoding="ascii") as f:
        return f.read().strip()


def main():
    if help_requested(__doc__):
        return 0
    cameras, offline = env_int("CAMERAS", 4), env_int("OFFLINE", 0)
    video = (env_int("VIDEO_WIDTH", 640), env_int("VIDEO_HEIGHT", 360), env_int("VIDEO_BITRATE_KBPS", 800))
    tile = (env_int("TILE_WIDTH", 640), env_int("TILE_HEIGHT", 360))
    warmup, window = env_int("WARMUP", 8), env_int("WINDOW", 20)
    snapshot = os.environ.get("SNAPSHOT", "")
    if not os.environ.get("GST_PLUGIN_PATH"):
        os.environ["GST_PLUGIN_PATH"] = os.path.join(REPO_ROOT, "build", "plugins")
    paths = [f"camera-{i + 1:02d}" for i in range(cameras)]
    missing = [f"offline-{i + 1:02d}" for i in range(offline)]
    print(f"wall_cpu: CAMERAS={cameras} OFFLINE={offline} VIDEO={video[0]}x{video[1]} {video[2]} kbit/s "
          f"TILE={tile[0]}x{tile[1]} WARMUP={warmup} WINDOW={window} SNAPSHOT={snapshot or '<none>'} "
          f"GST_PLUGIN_PATH={os.environ['GST_PLUGIN_PATH']}", flush=True)
    print(f"load before: {loadavg()}", flush=True)
    server = Mediamtx().start()
    publishers, wall = [], None
    try:
        for i, path in enumerate(paths):
            publishers.append(Script("publish-camera.sh", dict(
                TEST_CAMERA, MEDIAMTX_URL=server.rtsp_url, STREAM_PATH=path, TEST_PATTERN=PATTERNS[i % len(PATTERNS)],
                VIDEO_WIDTH=str(video[0]), VIDEO_HEIGHT=str(video[1]), VIDEO_BITRATE_KBPS=str(video[2]),
                STATUS_INTERVAL="0")))
        for path in paths:
            server.wait_path_ready(path, 60)
        wall_env = {"MEDIAMTX_URL": server.http_url, "CAMERAS": ",".join(paths + missing), "SINK": "fakesink",
                    "TILE_WIDTH": str(tile[0]), "TILE_HEIGHT": str(tile[1])}
        if snapshot:
            wall_env.update(SNAPSHOT=os.path.abspath(snapshot), SNAPSHOT_AFTER=os.environ.get("SNAPSHOT_AFTER", "6"))
        wall = Script("wall.sh", wall_env)
        time.sleep(warmup)
        # wall.sh execs the runner: the script's process is the wall.
        publisher_pids = [pid for p in publishers for pid in group_pids(p.process.pid)]
        start = time.monotonic()
        before = (cpu_ticks(wall.process.pid), sum(cpu_ticks(p) for p in publisher_pids),
                  cpu_ticks(server.process.pid))
        lines_before = len(wall.output().splitlines())
        time.sleep(window)
        after = (cpu_ticks(wall.process.pid), sum(cpu_ticks(p) for p in publisher_pids),
                 cpu_ticks(server.process.pid))
        elapsed = time.monotonic() - start
        rss = peak_rss_mib(wall.process.pid)
        out = wall.output()
        lines = out.splitlines()[lines_before:]
        cpu = [100.0 * (a - b) / TICKS / elapsed for a, b in zip(after, before)]
        tile_fps = {}
        for line in lines:
            m = re.match(r"wall: stats (\S+) .*?fps=([0-9.]+)(?: .*shown-fps=([0-9.]+))?", line)
            if m:
                tile_fps.setdefault(m.group(1), []).append(float(m.group(3) or m.group(2)))
        print(f"load after: {loadavg()}", flush=True)
        if wall.process.poll() is not None:
            print("wall_cpu: the wall ended early:\n" + out[-3000:], flush=True)
            return 1
        wall_size = f"{len(paths + missing)} tiles of {tile[0]}x{tile[1]}"
        print(f"RESULT wall cpu={cpu[0]:.0f}% rss={rss:.0f}MiB ({wall_size}, {cameras} live {video[0]}x{video[1]}, "
              f"window {elapsed:.0f} s)", flush=True)
        print(f"RESULT publishers cpu={cpu[1]:.0f}% ({cameras} x publish-camera.sh, x264enc {video[0]}x{video[1]})",
              flush=True)
        print(f"RESULT mediamtx cpu={cpu[2]:.0f}%", flush=True)
        for name, values in sorted(tile_fps.items()):
            print(f"RESULT fps {name} mean={sum(values) / len(values):.1f} min={min(values):.1f} "
                  f"({'composed picture' if name == 'screen' else 'frames reaching the tile'})", flush=True)
        if os.environ.get("WALL_LOG"):
            with open(os.environ["WALL_LOG"], "w", encoding="utf-8") as f:
                f.write(out)
        if snapshot:
            wall.wait_for(r"^wall: snapshot written ", 30)
            print(f"wall_cpu: {re.findall(r'^wall: snapshot written .*', wall.output(), re.M)[-1]}", flush=True)
        return 0
    finally:
        if wall:
            wall.close()
        for publisher in publishers:
            publisher.close()
        server.close()


if __name__ == "__main__":
    sys.exit(main())

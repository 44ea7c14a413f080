"""A real MediaMTX for the script and example tests, on free ports (the Python twin of
tests/testbed/mediamtx_server.cpp): RTSP over TCP, WebRTC with its ICE UDP port, the API on
127.0.0.1; listening on every address of the test namespace, reached at $TESTBED_SERVER_ADDR."""
import os
import random
import socket
import subprocess
import tempfile
import time
import urllib.request

from checklib import CheckFailed


def _can_bind(port, kind):
    with socket.socket(socket.AF_INET, kind) as s:
        s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            s.bind(("", port))
            return True
        except OSError:
            return False


def free_port(taken, udp=False):
    """A random high port free for TCP (and UDP): several are picked before MediaMTX binds them."""
    for _ in range(1000):
        port = random.randint(20000, 59999)
        if port not in taken and _can_bind(port, socket.SOCK_STREAM) and (not udp or _can_bind(port, socket.SOCK_DGRAM)):
            taken.add(port)
            return port
    raise CheckFailed("no free port")


class Mediamtx:
    def __init__(self):
        self.binary = os.environ.get("MEDIAMTX_BIN") or os.path.expanduser("~/.cache/gst-mediamtx/mediamtx-v1.20.1")
        self.host = os.environ.get("TESTBED_SERVER_ADDR") or "127.0.0.1"
        self.dir = tempfile.mkdtemp(prefix="mediamtx-")
        taken = set()
        self.rtsp_port, self.webrtc_port, self.api_port = free_port(taken), free_port(taken), free_port(taken)
        self.ice_port = free_port(taken, udp=True)
        self.config = os.path.join(self.dir, "mediamtx.yml")
        with open(self.config, "w", encoding="utf-8") as f:
            f.write(f"""logLevel: info
logDestinations: [stdout]
api: true
apiAddress: 127.0.0.1:{self.api_port}
metrics: false
pprof: false
playback: false
rtmp: false
srt: false
moq: false
hls: false
rtsp: true
rtspTransports: [tcp]
rtspAddress: :{self.rtsp_port}
webrtc: true
webrtcAddress: :{self.webrtc_port}
webrtcLocalUDPAddress: :{self.ice_port}
webrtcLocalTCPAddress: ""
paths:
  all_others:
""")
        self.log_path = os.path.join(self.dir, "mediamtx.log")
        self.process = None

    @property
    def rtsp_url(self):
        return f"rtsp://{self.host}:{self.rtsp_port}"

    @property
    def http_url(self):
        return f"http://{self.host}:{self.webrtc_port}"

    def whep_url(self, path):
        return f"{self.http_url}/{path}/whep"

    def start(self):
        log = open(self.log_path, "ab")
        self.process = subprocess.Popen([self.binary, self.config], cwd=self.dir, stdout=log, stderr=log)
        log.close()
        deadline = time.monotonic() + 15
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise CheckFailed(f"MediaMTX exited: {self.log()[-2000:]}")
            try:
                urllib.request.urlopen(f"http://127.0.0.1:{self.api_port}/v3/paths/list", timeout=2).read()
                return self
            except OSError:
                time.sleep(0.2)
        raise CheckFailed("MediaMTX did not become ready")

    def kill(self):
        if self.process and self.process.poll() is None:
            self.process.kill()
            self.process.wait(10)
        self.process = None

    def path_ready(self, path):
        try:
            with urllib.request.urlopen(f"http://127.0.0.1:{self.api_port}/v3/paths/get/{path}", timeout=2) as r:
                return b'"ready":true' in r.read()
        except OSError:
            return False

    def wait_path_ready(self, path, timeout=30):
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.path_ready(path):
                return
            time.sleep(0.3)
        raise CheckFailed(f"path {path} not ready after {timeout} s; MediaMTX log: {self.log()[-1500:]}")

    def log(self):
        try:
            with open(self.log_path, encoding="utf-8", errors="replace") as f:
                return f.read()
        except OSError:
            return ""

    def close(self):
        self.kill()
        subprocess.run(["rm", "-rf", self.dir], check=False)

#!/usr/bin/python3
"""pipelines/deploy/mediamtx.yml is accepted by the real MediaMTX and does what it says.

Usage: check_deploy.py [--help]   (run by meson test inside tests/testbed/netns-run.sh; needs root)

Parses the file as YAML, rewrites every listen port to a free one (line by line, the rest of the
file unchanged), starts MediaMTX with it and with the environment the Kubernetes Deployment sets,
as the Deployment's UID in a directory it cannot write (as in the read-only container), then
checks: the API answers, also to a non-local private address as a kubelet probe; the configured
paths are listed; the Deployment's environment overrides took effect; every listener is open;
nothing was logged as a warning or error; a WHEP answer carries the additional host on the ICE
port for UDP and TCP and no STUN/TURN; an RTSP (TCP) publisher is accepted on a configured path
and on one matched by the raspberry-N pattern, and refused on an unconfigured path; rtspclientsink
left to its default transports (UDP first) fails at once rather than silently.

Environment (defaults):
  MEDIAMTX_BIN   MediaMTX binary   (~/.cache/gst-mediamtx/mediamtx-v1.20.1)
  MEDIAMTX_YML   file under test   (pipelines/deploy/mediamtx.yml)
  DEPLOYMENT     k8s Deployment whose container env is applied   (pipelines/deploy/k8s/deployment.yaml)
"""
import http.client
import json
import os
import re
import shutil
import socket
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.request

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from checklib import REPO_ROOT, CheckFailed, Checks, expect, help_requested  # noqa: E402

import yaml  # noqa: E402

ADDRESS_LINE = re.compile(r"^(?P<key>\w+Address): *(?P<host>[^\s:#]*):(?P<port>\d+)(?P<rest>\s*(#.*)?)$")


# A recvonly H.264 offer as a browser would send it, without candidates (the server then has no one to
# send ICE checks to). The fingerprint is never checked: no DTLS handshake happens.
WHEP_OFFER = "\r\n".join([
    "v=0", "o=- 4611731400430051336 2 IN IP4 127.0.0.1", "s=-", "t=0 0", "a=group:BUNDLE 0", "a=msid-semantic: WMS",
    "m=video 9 UDP/TLS/RTP/SAVPF 96", "c=IN IP4 0.0.0.0", "a=rtcp:9 IN IP4 0.0.0.0",
    "a=ice-ufrag:Xk3p", "a=ice-pwd:Q2x9mZ7rT4vB8nL1cW6yH0dS", "a=ice-options:trickle",
    "a=fingerprint:sha-256 " + ":".join(["AB"] * 32), "a=setup:actpass", "a=mid:0", "a=recvonly", "a=rtcp-mux",
    "a=rtpmap:96 H264/90000", "a=rtcp-fb:96 nack", "a=rtcp-fb:96 nack pli",
    "a=fmtp:96 level-asymmetry-allowed=1;packetization-mode=1;profile-level-id=42e01f", ""])


def free_port(taken):
    """A port free for both TCP and UDP (the ICE listeners share one number)."""
    while True:
        with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as tcp:
            tcp.bind(("", 0))
            port = tcp.getsockname()[1]
            if port in taken:
                continue
            try:
                with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as udp:
                    udp.bind(("", port))
            except OSError:
                continue
            return port


def rewrite_ports(text):
    """Returns (new text, {key: new port}); one new port per original port number."""
    by_original, by_key, out = {}, {}, []
    for line in text.splitlines(keepends=True):
        m = ADDRESS_LINE.match(line.rstrip("\n"))
        if m:
            original = int(m["port"])
            if original not in by_original:
                by_original[original] = free_port(set(by_original.values()))
            port = by_original[original]
            by_key[m["key"]] = port
            line = f"{m['key']}: {m['host']}:{port}{m['rest']}\n"
        out.append(line)
    return "".join(out), by_key


def deployment_env(path):
    with open(path, encoding="utf-8") as f:
        docs = [d for d in yaml.safe_load_all(f) if d]
    deployment = next(d for d in docs if d.get("kind") == "Deployment")
    container = deployment["spec"]["template"]["spec"]["containers"][0]
    return {e["name"]: str(e["value"]) for e in container.get("env", [])}, container["image"]


def deployment_security(path):
    """The Deployment's pod-level securityContext merged with the container's."""
    with open(path, encoding="utf-8") as f:
        docs = [d for d in yaml.safe_load_all(f) if d]
    pod = next(d for d in docs if d.get("kind") == "Deployment")["spec"]["template"]["spec"]
    merged = dict(pod.get("securityContext") or {})
    merged.update(pod["containers"][0].get("securityContext") or {})
    return merged


def api_get(port, path, timeout=2.0):
    with urllib.request.urlopen(f"http://127.0.0.1:{port}{path}", timeout=timeout) as r:
        return json.loads(r.read().decode())


def main():
    if help_requested(__doc__):
        return 0
    mediamtx_bin = os.environ.get("MEDIAMTX_BIN") or os.path.expanduser("~/.cache/gst-mediamtx/mediamtx-v1.20.1")
    config_path = os.environ.get("MEDIAMTX_YML", os.path.join(REPO_ROOT, "pipelines/deploy/mediamtx.yml"))
    deployment_path = os.environ.get("DEPLOYMENT", os.path.join(REPO_ROOT, "pipelines/deploy/k8s/deployment.yaml"))
    print(f"check_deploy: MEDIAMTX_BIN={mediamtx_bin} MEDIAMTX_YML={config_path} DEPLOYMENT={deployment_path}",
          flush=True)
    checks = Checks("deploy")
    if os.environ.get("TESTBED_NETNS") != "1":
        print("check_deploy: not inside tests/testbed/netns-run.sh; refusing to open ports on this host")
        checks.failed += 1
        return checks.finish()

    with open(config_path, encoding="utf-8") as f:
        text = f.read()

    def parse():
        config = yaml.safe_load(text)
        expect(isinstance(config, dict), "top level is not a mapping")
        return config

    config = checks.run("mediamtx.yml parses as YAML", parse)
    if config is None:
        return checks.finish()

    def current_keys():
        expect("webrtcICEServers" not in config, "old key webrtcICEServers (MediaMTX >= 1.0: webrtcICEServers2)")
        for key in ("webrtcICEServers2", "webrtcAdditionalHosts", "webrtcLocalUDPAddress", "webrtcLocalTCPAddress"):
            expect(key in config, f"{key} missing")
        expect(config.get("webrtcLocalTCPAddress"), "ICE over TCP is off (webrtcLocalTCPAddress empty)")
        expect(config.get("api") is True, "api is not enabled (the readiness probe needs it)")
        for path in ("raspberry-01", "raspberry-02"):
            expect((config.get("paths") or {}).get(path, {}).get("source") == "publisher",
                   f"path {path} is not source: publisher")

    checks.run("current key names, API on, camera paths configured", current_keys)

    env, image = deployment_env(deployment_path)

    def version_matches_image():
        out = subprocess.run([mediamtx_bin, "--version"], capture_output=True, text=True, timeout=10).stdout
        version = out.strip().lstrip("v")
        tag = image.rsplit(":", 1)[1]
        expect(version == tag, f"test binary is {out.strip()}, Deployment image is {image}")

    checks.run("MediaMTX under test is the version the Deployment pins", version_matches_image)

    rewritten, ports = rewrite_ports(text)
    for key in ("rtspAddress", "webrtcAddress", "webrtcLocalUDPAddress", "webrtcLocalTCPAddress", "apiAddress",
                "hlsAddress"):
        if key not in ports:
            print(f"FAIL listen address {key} not found in the form 'key: [host]:port'")
            checks.failed += 1
            return checks.finish()
    work = tempfile.mkdtemp(prefix="check-deploy-")
    config_file = os.path.join(work, "mediamtx.yml")
    with open(config_file, "w", encoding="utf-8") as f:
        f.write(rewritten)
    # Like the pod: an unprivileged UID (the Deployment's runAsUser) in a directory it cannot write,
    # so a setting that makes MediaMTX write files (logs, recordings, generated keys) shows up here.
    security = deployment_security(deployment_path)
    run_as = (security.get("runAsUser", 65534), security.get("runAsGroup", 65534))
    os.chmod(work, 0o755)
    os.chmod(config_file, 0o644)
    cwd = os.path.join(work, "readonly")
    os.mkdir(cwd, 0o555)
    server_bin = os.path.join(work, "mediamtx")  # the cache under /root is not reachable by that UID
    shutil.copy2(mediamtx_bin, server_bin)
    os.chmod(server_bin, 0o755)
    log_path = os.path.join(work, "mediamtx.log")
    child_env = dict(os.environ)
    child_env.update(env)
    print(f"check_deploy: ports {ports}; Deployment env {sorted(env)}", flush=True)
    log = open(log_path, "w", encoding="utf-8")
    print(f"check_deploy: MediaMTX runs as uid {run_as[0]} gid {run_as[1]} in {cwd} (not writable)", flush=True)
    server = subprocess.Popen([server_bin, config_file], stdout=log, stderr=subprocess.STDOUT, env=child_env,
                              cwd=cwd, user=run_as[0], group=run_as[1], extra_groups=[])
    publishers = []
    try:
        api = ports["apiAddress"]

        def api_answers():
            deadline = time.monotonic() + 10
            while True:
                expect(server.poll() is None, f"MediaMTX exited with {server.returncode}: {open(log_path).read()}")
                try:
                    return api_get(api, "/v3/paths/list")
                except (urllib.error.URLError, ConnectionError, OSError):
                    expect(time.monotonic() < deadline, "API did not answer within 10 s")
                    time.sleep(0.1)

        listed = checks.run("MediaMTX starts and the API answers", api_answers)
        if listed is None:
            return checks.finish()

        configured = list((config.get("paths") or {}).keys())

        def paths_listed():
            names = {item["name"] for item in listed["items"]}
            static = [p for p in configured if not p.startswith("~") and p != "all_others"]
            missing = [p for p in static if p not in names]
            expect(not missing, f"paths {missing} not in /v3/paths/list ({sorted(names)})")
            conf_names = [item["name"] for item in api_get(api, "/v3/config/paths/list")["items"]]
            expect(sorted(conf_names) == sorted(configured),
                   f"/v3/config/paths/list has {conf_names}, the file has {configured}")

        checks.run("configured paths are listed by the API", paths_listed)

        def env_applied():
            glob = api_get(api, "/v3/config/global/get")
            if "MTX_WEBRTCADDITIONALHOSTS" in env:
                expect(glob["webrtcAdditionalHosts"] == env["MTX_WEBRTCADDITIONALHOSTS"].split(","),
                       f"webrtcAdditionalHosts is {glob['webrtcAdditionalHosts']}")
            if "MTX_AUTHINTERNALUSERS_1_IPS" in env:
                ips = glob["authInternalUsers"][1]["ips"]
                expect(len(ips) == len(env["MTX_AUTHINTERNALUSERS_1_IPS"].split(",")), f"API ips are {ips}")
                expect(any(p["action"] == "api" for p in glob["authInternalUsers"][1]["permissions"]),
                       "authInternalUsers[1] (what MTX_AUTHINTERNALUSERS_1_IPS widens) does not grant api")
            # Every MTX_ variable names a real key (MediaMTX ignores unknown ones silently).
            keys = {k.lower(): k for k in glob}
            for name in env:
                if not name.startswith("MTX_"):
                    continue
                parts = name[4:].lower().split("_")
                expect(parts[0] in keys, f"{name}: no global key {parts[0]!r}")
                if len(parts) == 3 and parts[1].isdigit():
                    items = glob[keys[parts[0]]]
                    expect(isinstance(items, list) and len(items) > int(parts[1]) and
                           parts[2] in {k.lower() for k in items[int(parts[1])]},
                           f"{name}: no field {parts[2]!r} in {keys[parts[0]]}[{parts[1]}]")
            expect(glob["webrtcICEServers2"] == [], "ICE servers configured: sessions would contact them")
            expect(glob["rtspTransports"] == ["tcp"], f"rtspTransports is {glob['rtspTransports']}")

        checks.run("the Deployment's environment overrides take effect", env_applied)

        def probe_from_node():
            # kubelet probes come from the node's address, not localhost: ask from the veth address.
            server_addr = os.environ.get("TESTBED_SERVER_ADDR", "10.77.0.1")
            client_addr = os.environ.get("TESTBED_CLIENT_ADDR", "10.77.0.2")
            connection = http.client.HTTPConnection(server_addr, api, timeout=5, source_address=(client_addr, 0))
            try:
                connection.request("GET", "/v3/paths/list")
                status = connection.getresponse().status
            finally:
                connection.close()
            expect(status == 200, f"GET /v3/paths/list from {client_addr} answered {status}: the readiness probe "
                                  "would fail (MTX_AUTHINTERNALUSERS_1_IPS)")

        checks.run("the API answers a probe from a private non-local address (kubelet)", probe_from_node)

        def listeners_open():
            for key in ("rtspAddress", "webrtcAddress", "webrtcLocalTCPAddress", "hlsAddress"):
                with socket.create_connection(("127.0.0.1", ports[key]), timeout=2):
                    pass
            with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as udp:
                try:
                    udp.bind(("", ports["webrtcLocalUDPAddress"]))
                except OSError:
                    return
            raise CheckFailed("nothing listens on the ICE UDP port")

        checks.run("RTSP, WebRTC, ICE/TCP, ICE/UDP and HLS listeners are open", listeners_open)

        def log_clean():
            bad = [line for line in open(log_path, encoding="utf-8")
                   if re.search(r" (WAR|ERR) ", line)]
            expect(not bad, "warnings/errors in the MediaMTX log:\n" + "".join(bad))

        checks.run("MediaMTX logged no warning or error at startup (no deprecated key)", log_clean)

        gst_launch = shutil.which("gst-launch-1.0")

        def publisher(path, protocols=("protocols=tcp",)):
            cmd = [gst_launch, "-q", "videotestsrc", "is-live=true", "!",
                   "video/x-raw,width=320,height=240,framerate=15/1", "!",
                   "x264enc", "tune=zerolatency", "speed-preset=ultrafast", "key-int-max=15", "!",
                   "rtspclientsink", *protocols, f"location=rtsp://127.0.0.1:{ports['rtspAddress']}/{path}"]
            child = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
            publishers.append(child)
            return child

        def path_ready(path):
            deadline = time.monotonic() + 15
            while time.monotonic() < deadline:
                try:
                    if api_get(api, f"/v3/paths/get/{path}").get("ready"):
                        return True
                except urllib.error.HTTPError:
                    pass
                time.sleep(0.2)
            return False

        def publish_accepted(path):
            expect(gst_launch, "gst-launch-1.0 not found")
            child = publisher(path)
            ok = path_ready(path)
            child.terminate()
            err = child.communicate(timeout=10)[1]
            expect(ok, f"path {path} never became ready; publisher said: {err.strip()[-500:]}")

        def publish_refused(path, protocols=("protocols=tcp",)):
            expect(gst_launch, "gst-launch-1.0 not found")
            child = publisher(path, protocols)
            try:
                child.wait(timeout=15)
            except subprocess.TimeoutExpired:
                child.kill()
                raise CheckFailed(f"publisher on unconfigured path {path} still running after 15 s")
            expect(child.returncode != 0, "publisher on an unconfigured path exited 0")

        def whep_candidates():
            expect(gst_launch, "gst-launch-1.0 not found")
            hosts = [h for h in env.get("MTX_WEBRTCADDITIONALHOSTS", "").split(",") if h]
            expect(hosts, "the Deployment sets no MTX_WEBRTCADDITIONALHOSTS")
            child = publisher("raspberry-01")
            try:
                expect(path_ready("raspberry-01"), "publisher on raspberry-01 never became ready")
                url = f"http://127.0.0.1:{ports['webrtcAddress']}/raspberry-01/whep"
                request = urllib.request.Request(url, data=WHEP_OFFER.encode(), method="POST",
                                                 headers={"Content-Type": "application/sdp"})
                with urllib.request.urlopen(request, timeout=10) as response:
                    expect(response.status == 201, f"WHEP POST answered {response.status}")
                    location = response.headers.get("Location", "")
                    links = response.headers.get_all("Link") or []
                    answer = response.read().decode()
                candidates = re.findall(r"^a=candidate:\S+ \d (udp|tcp) \d+ (\S+) (\d+) typ (\w+)", answer, re.M)
                ice_port = str(ports["webrtcLocalUDPAddress"])
                for host in hosts:
                    for transport in ("udp", "tcp"):
                        expect((transport, host, ice_port, "host") in candidates,
                               f"no {transport} candidate {host}:{ice_port} in the answer: {candidates}")
                expect(all(c[3] == "host" for c in candidates), f"non-host candidates (STUN/TURN?): {candidates}")
                expect(not any("ice-server" in link for link in links), f"ICE servers offered to viewers: {links}")
                expect(location.startswith("/raspberry-01/whep/"), f"Location is {location!r}")
                delete = urllib.request.Request(f"http://127.0.0.1:{ports['webrtcAddress']}{location}", method="DELETE")
                with urllib.request.urlopen(delete, timeout=10) as response:
                    expect(response.status == 200, f"WHEP DELETE answered {response.status}")
            finally:
                child.terminate()
                child.communicate(timeout=10)

        checks.run("a WHEP answer offers the additional host on the ICE port over UDP and TCP", whep_candidates)
        checks.run("an RTSP/TCP publisher is accepted on raspberry-01", publish_accepted, "raspberry-01")
        checks.run("an RTSP/TCP publisher is accepted on raspberry-17 (pattern)", publish_accepted, "raspberry-17")
        checks.run("a publisher on an unconfigured path is refused", publish_refused, "not-a-camera")
        # What docs/kubernetes.md tells publishers: rtspclientsink does not fall back to TCP by itself.
        checks.run("rtspclientsink without protocols=tcp fails at once (UDP refused, no fallback)", publish_refused,
                   "raspberry-02", ())

    finally:
        for child in publishers:
            if child.poll() is None:
                child.kill()
                child.wait()
        server.terminate()
        try:
            server.wait(timeout=10)
        except subprocess.TimeoutExpired:
            server.kill()
            server.wait()
        log.close()
        if checks.failed:
            print("---- MediaMTX log ----")
            print(open(log_path, encoding="utf-8").read())
        shutil.rmtree(work, ignore_errors=True)
    return checks.finish()


if __name__ == "__main__":
    sys.exit(main())

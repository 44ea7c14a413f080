#!/usr/bin/python3
"""The Kubernetes manifests in pipelines/deploy/k8s/ are consistent with mediamtx.yml.

Usage: check_k8s.py [--help]

Checks: every manifest parses as YAML; a Deployment, a ConfigMap and Services exist; the Deployment
pins the MediaMTX image, mounts the ConfigMap, and probes the API; the ConfigMap embeds
pipelines/deploy/mediamtx.yml byte for byte (and gen-configmap.py --check agrees); the Services and
container expose RTSP 8554/TCP, WHEP 8889/TCP, ICE 8189/UDP and 8189/TCP, and the API port, with the
numbers mediamtx.yml listens on.

Environment (defaults):
  K8S_DIR       manifests folder    (pipelines/deploy/k8s)
  MEDIAMTX_YML  configuration       (pipelines/deploy/mediamtx.yml)
"""
import glob
import os
import re
import subprocess
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from checklib import REPO_ROOT, Checks, expect, help_requested  # noqa: E402

import yaml  # noqa: E402


def port_of(address):
    m = re.search(r":(\d+)$", str(address or ""))
    return int(m.group(1)) if m else None


def main():
    if help_requested(__doc__):
        return 0
    k8s_dir = os.environ.get("K8S_DIR", os.path.join(REPO_ROOT, "pipelines/deploy/k8s"))
    config_path = os.environ.get("MEDIAMTX_YML", os.path.join(REPO_ROOT, "pipelines/deploy/mediamtx.yml"))
    print(f"check_k8s: K8S_DIR={k8s_dir} MEDIAMTX_YML={config_path}", flush=True)
    checks = Checks("k8s")
    objects = []

    def parse_all():
        files = sorted(glob.glob(os.path.join(k8s_dir, "*.yaml")) + glob.glob(os.path.join(k8s_dir, "*.yml")))
        expect(files, f"no manifests in {k8s_dir}")
        for path in files:
            with open(path, encoding="utf-8") as f:
                for doc in yaml.safe_load_all(f):
                    if doc is None:
                        continue
                    for field in ("apiVersion", "kind", "metadata"):
                        expect(field in doc, f"{os.path.basename(path)}: a document has no {field}")
                    expect("namespace" not in doc["metadata"],
                           f"{os.path.basename(path)}: hard-coded namespace (apply with -n instead)")
                    objects.append(doc)

    if checks.run("every manifest parses as YAML with apiVersion, kind, metadata", parse_all) is None:
        return checks.finish()
    with open(config_path, encoding="utf-8") as f:
        config_text = f.read()
    config = yaml.safe_load(config_text)

    def of_kind(kind):
        return [o for o in objects if o["kind"] == kind]

    def kinds_present():
        for kind in ("Deployment", "ConfigMap", "Service"):
            expect(of_kind(kind), f"no {kind}")
        expect(len(of_kind("Deployment")) == 1, "more than one Deployment")

    if checks.run("Deployment, ConfigMap and Service present", kinds_present) is None:
        return checks.finish()
    deployment = of_kind("Deployment")[0]
    pod = deployment["spec"]["template"]["spec"]
    container = pod["containers"][0]

    def configmap_identical():
        config_maps = of_kind("ConfigMap")
        embedded = [cm for cm in config_maps if "mediamtx.yml" in cm.get("data", {})]
        expect(len(embedded) == 1, "expected exactly one ConfigMap with data key mediamtx.yml")
        expect(embedded[0]["data"]["mediamtx.yml"] == config_text,
               "ConfigMap's mediamtx.yml differs from pipelines/deploy/mediamtx.yml: "
               "run pipelines/deploy/gen-configmap.py")
        gen = os.path.join(REPO_ROOT, "pipelines/deploy/gen-configmap.py")
        result = subprocess.run([gen, "--check"], capture_output=True, text=True, timeout=30,
                                env=dict(os.environ, MEDIAMTX_YML=config_path,
                                         CONFIGMAP_YAML=os.path.join(k8s_dir, "configmap.yaml")))
        expect(result.returncode == 0, f"gen-configmap.py --check: {result.stderr.strip()}")
        return embedded[0]

    configmap = checks.run("ConfigMap embeds mediamtx.yml byte for byte", configmap_identical)

    def deployment_shape():
        image = container["image"]
        expect(re.search(r"(^|/)bluenviron/mediamtx:\d+\.\d+\.\d+$", image), f"image not pinned to a release: {image}")
        expect(deployment["spec"].get("replicas") == 1, "replicas must be 1 (a stream lives in one pod)")
        selector = deployment["spec"]["selector"]["matchLabels"]
        labels = deployment["spec"]["template"]["metadata"]["labels"]
        expect(all(labels.get(k) == v for k, v in selector.items()), "selector does not match the pod labels")
        mounts = {m["name"]: m for m in container.get("volumeMounts", [])}
        volumes = {v["name"]: v for v in pod.get("volumes", [])}
        config_arg = (container.get("args") or [None])[0]
        expect(config_arg, "no configuration file argument")
        mount = next((m for m in mounts.values() if config_arg.startswith(m["mountPath"].rstrip("/") + "/")), None)
        expect(mount, f"{config_arg} is not under any volumeMount")
        expect("subPath" not in mount, "ConfigMap mounted with subPath: edits would never reach the pod")
        volume = volumes[mount["name"]]
        expect(configmap and volume.get("configMap", {}).get("name") == configmap["metadata"]["name"],
               "the mounted volume is not the mediamtx.yml ConfigMap")
        expect(os.path.basename(config_arg) == "mediamtx.yml", f"argument {config_arg} is not the ConfigMap key")
        resources = container.get("resources", {})
        expect(resources.get("requests", {}).get("cpu") and resources.get("requests", {}).get("memory"),
               "no CPU/memory requests")
        expect(resources.get("limits", {}).get("memory"), "no memory limit")

    checks.run("Deployment pins the image, mounts the ConfigMap, sets resources", deployment_shape)

    container_ports = {p["name"]: (p["containerPort"], p.get("protocol", "TCP")) for p in container["ports"]}

    def readiness_on_api():
        probe = container.get("readinessProbe", {}).get("httpGet")
        expect(probe, "no httpGet readiness probe")
        expect(probe["path"].startswith("/v3/"), f"readiness probe path {probe['path']} is not the API")
        port = probe["port"]
        number = container_ports[port][0] if isinstance(port, str) else port
        expect(number == port_of(config["apiAddress"]), f"probe port {number} is not apiAddress {config['apiAddress']}")
        expect(config.get("api") is True, "api disabled in mediamtx.yml")
        env = {e["name"]: e.get("value", "") for e in container.get("env", [])}
        expect("MTX_AUTHINTERNALUSERS_1_IPS" in env,
               "the API only answers localhost by default: the probe (from the node) needs its range")

    checks.run("readiness probe calls the API on apiAddress's port", readiness_on_api)

    wanted = {
        "rtsp": (port_of(config["rtspAddress"]), "TCP"),
        "webrtc": (port_of(config["webrtcAddress"]), "TCP"),
        "ice-udp": (port_of(config["webrtcLocalUDPAddress"]), "UDP"),
        "ice-tcp": (port_of(config["webrtcLocalTCPAddress"]), "TCP"),
        "api": (port_of(config["apiAddress"]), "TCP"),
    }
    if config.get("hls"):
        wanted["hls"] = (port_of(config["hlsAddress"]), "TCP")

    def seed_ports():
        expect(wanted["rtsp"][0] == 8554 and wanted["webrtc"][0] == 8889 and wanted["ice-udp"][0] == 8189,
               f"listeners moved from the deployed system's 8554/8889/8189: {wanted}")

    checks.run("mediamtx.yml keeps RTSP 8554, WHEP 8889, ICE 8189", seed_ports)

    def container_ports_match():
        for name, (number, protocol) in wanted.items():
            expect(container_ports.get(name) == (number, protocol),
                   f"container port {name} is {container_ports.get(name)}, mediamtx.yml says {number}/{protocol}")

    checks.run("container ports match the listeners", container_ports_match)

    def services_expose():
        exposed = {}
        for service in of_kind("Service"):
            selector = service["spec"].get("selector", {})
            labels = deployment["spec"]["template"]["metadata"]["labels"]
            expect(selector and all(labels.get(k) == v for k, v in selector.items()),
                   f"Service {service['metadata']['name']} does not select the MediaMTX pod")
            for p in service["spec"]["ports"]:
                target = p.get("targetPort", p["port"])
                target_number = container_ports[target][0] if isinstance(target, str) else target
                protocol = p.get("protocol", "TCP")
                expect(p["port"] == target_number,
                       f"Service {service['metadata']['name']} remaps {p['port']} -> {target_number}: "
                       "ICE candidates carry the listen port, keep numbers equal")
                exposed[(p["port"], protocol)] = service
        for name, (number, protocol) in wanted.items():
            expect((number, protocol) in exposed, f"no Service exposes {name} {number}/{protocol}")
        api_service = exposed[wanted["api"]]
        expect(api_service["spec"].get("type", "ClusterIP") == "ClusterIP",
               "the API port is on a non-ClusterIP Service: it would be reachable from outside")
        for name in ("rtsp", "webrtc", "ice-udp", "ice-tcp"):
            service = exposed[wanted[name]]
            expect(service["spec"].get("type") in ("LoadBalancer", "NodePort"),
                   f"{name} is only on a ClusterIP Service: cameras and viewers outside cannot reach it")

    checks.run("Services expose 8554/TCP, 8889/TCP, 8189/UDP+TCP publicly and the API in-cluster",
               services_expose)
    return checks.finish()


if __name__ == "__main__":
    sys.exit(main())

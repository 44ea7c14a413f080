#!/usr/bin/python3
"""The systemd units in pipelines/deploy/systemd/ are valid and keep their promises.

Usage: check_systemd.py [--help] [UNIT.service...]

UNIT files are the units meson configured (build/pipelines/*.service); without arguments the
templates are rendered here with the default install paths. Checks, per unit: `systemd-analyze
verify` reports nothing (run on a copy whose ExecStart points at the script in pipelines/ if it
exists yet, else at a stub, since verify insists the command exists); `systemd-analyze security
--offline` rates it at most MAX_EXPOSURE; Restart=always, RestartSec, the EnvironmentFile under
/etc/gst-mediamtx, the gst-mediamtx account (created by the sysusers.d file) with the video group
for the camera and display units, no device-closing hardening on those. The template unit for
several cameras (gst-mediamtx-publisher@.service) is verified the same way (systemd-analyze
instantiates it) and must differ from the single publisher only in its per-instance env file, its
default STREAM_PATH (the instance name) and its description. Then the env examples:
each parses the same way for systemd and for a shell, and when the script a unit runs exists,
every variable of its example appears in the script's --help.

Environment (defaults):
  SYSTEMD_ANALYZE  systemd-analyze binary                          (systemd-analyze on PATH)
  MAX_EXPOSURE     highest accepted `systemd-analyze security` score (3.0)
"""
import os
import re
import shutil
import subprocess
import sys
import tempfile

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from checklib import REPO_ROOT, Checks, expect, help_requested  # noqa: E402

SYSTEMD_DIR = os.path.join(REPO_ROOT, "pipelines/deploy/systemd")
UNITS = {
    # unit: (script it runs, env file, needs devices, env example)
    "gst-mediamtx-publisher.service": ("publish-camera.sh", "publisher.env", True, "publisher.env.example"),
    "gst-mediamtx-publisher@.service": ("publish-camera.sh", "publisher-%i.env", True, "publisher.env.example"),
    "gst-mediamtx-viewer.service": ("view.sh", "viewer.env", True, "viewer.env.example"),
    "gst-mediamtx-wall.service": ("wall.sh", "wall.env", True, "wall.env.example"),
    "gst-mediamtx-recorder.service": ("record.sh", "recorder.env", False, "recorder.env.example"),
}
# What the template may change from the single publisher (every other line is the same).
TEMPLATE_CHANGES = {("Unit", "Description"), ("Service", "Environment"), ("Service", "EnvironmentFile")}
ENV_LINE = re.compile(r"^(?P<name>[A-Za-z_][A-Za-z0-9_]*)=(?P<value>[^\s'\"\\$`]*)$")


def parse_unit(text):
    """{(section, key): [values]} (repeated keys accumulate)."""
    section, entries = None, {}
    for raw in text.splitlines():
        line = raw.strip()
        if not line or line.startswith(("#", ";")):
            continue
        if line.startswith("[") and line.endswith("]"):
            section = line[1:-1]
            continue
        key, _, value = line.partition("=")
        entries.setdefault((section, key.strip()), []).append(value.strip())
    return entries


def render_template(path):
    with open(path, encoding="utf-8") as f:
        text = f.read()
    return (text.replace("@pipelinesdir@", "/usr/local/share/gst-mediamtx/pipelines")
            .replace("@examplesdir@", "/usr/local/share/gst-mediamtx/deploy/systemd")
            .replace("@docdir@", "/usr/local/share/doc/gst-mediamtx"))


def parse_env_file(path):
    values = {}
    with open(path, encoding="utf-8") as f:
        for number, raw in enumerate(f, 1):
            line = raw.rstrip("\n")
            if not line.strip() or line.lstrip().startswith("#"):
                continue
            m = ENV_LINE.match(line)
            expect(m, f"{os.path.basename(path)}:{number}: not a plain VAR=value line: {line!r}")
            values[m["name"]] = m["value"]
    return values


def main():
    if help_requested(__doc__):
        return 0
    analyze = os.environ.get("SYSTEMD_ANALYZE") or shutil.which("systemd-analyze")
    max_exposure = float(os.environ.get("MAX_EXPOSURE", "3.0"))
    print(f"check_systemd: SYSTEMD_ANALYZE={analyze} MAX_EXPOSURE={max_exposure}", flush=True)
    checks = Checks("systemd")

    texts = {}
    for arg in sys.argv[1:]:
        with open(arg, encoding="utf-8") as f:
            texts[os.path.basename(arg)] = f.read()
    for unit in UNITS:
        if unit not in texts:
            texts[unit] = render_template(os.path.join(SYSTEMD_DIR, unit + ".in"))

    def sysusers():
        with open(os.path.join(SYSTEMD_DIR, "gst-mediamtx.sysusers.conf"), encoding="utf-8") as f:
            lines = [line.split() for line in f if line.strip() and not line.startswith("#")]
        expect(any(fields[:2] == ["u", "gst-mediamtx"] for fields in lines),
               "sysusers.d file does not create the gst-mediamtx user")
        if analyze:
            result = subprocess.run([analyze, "cat-config", "--no-pager", "sysusers.d"], capture_output=True, text=True,
                                    timeout=30)
            expect(result.returncode == 0, f"systemd-analyze cat-config failed: {result.stderr}")

    checks.run("sysusers.d creates the gst-mediamtx account", sysusers)

    work = tempfile.mkdtemp(prefix="check-systemd-")
    try:
        stubs = os.path.join(work, "stubs")
        os.mkdir(stubs)
        examples_checked = set()
        for unit, (script, env_name, needs_devices, example_name) in UNITS.items():
            entries = parse_unit(texts[unit])

            def get(section, key):
                return entries.get((section, key), [])

            def structure():
                expect(get("Service", "Restart") == ["always"], f"Restart is {get('Service', 'Restart')}")
                expect(get("Service", "RestartSec"), "no RestartSec")
                expect(get("Unit", "StartLimitIntervalSec") == ["0"],
                       "restarts are rate-limited (StartLimitIntervalSec)")
                expect(get("Service", "EnvironmentFile") == [f"/etc/gst-mediamtx/{env_name}"],
                       f"EnvironmentFile is {get('Service', 'EnvironmentFile')}")
                exec_start = get("Service", "ExecStart")
                expect(len(exec_start) == 1 and exec_start[0].endswith("/pipelines/" + script),
                       f"ExecStart {exec_start} does not run pipelines/{script}")
                expect(exec_start[0].startswith("/"), "ExecStart is not an absolute path")
                expect(get("Service", "User") == ["gst-mediamtx"], f"User is {get('Service', 'User')}")
                groups = " ".join(get("Service", "SupplementaryGroups")).split()
                if needs_devices:
                    expect("video" in groups, "no video group: the camera/display devices are group video")
                    for key, bad in (("PrivateDevices", "yes"), ("DevicePolicy", "closed"), ("DevicePolicy", "strict"),
                                     ("ProtectClock", "yes"), ("MemoryDenyWriteExecute", "yes")):
                        expect(bad not in get("Service", key), f"{key}={bad} would break device access or ORC")
                    expect(not get("Service", "DeviceAllow"), "DeviceAllow= makes device access an allow-list")
                expect(get("Service", "NoNewPrivileges") == ["yes"], "no NoNewPrivileges=yes")
                expect(get("Service", "ProtectSystem") == ["strict"], "ProtectSystem is not strict")
                expect(get("Install", "WantedBy") == ["multi-user.target"], "not WantedBy=multi-user.target")

            checks.run(f"{unit}: restart policy, env file, account, hardening", structure)

            if unit.endswith("@.service"):
                def template():
                    single = parse_unit(texts[unit.replace("@.service", ".service")])
                    keys = set(entries) | set(single)
                    drift = sorted(f"[{section}] {key}" for section, key in keys - TEMPLATE_CHANGES
                                   if entries.get((section, key)) != single.get((section, key)))
                    expect(not drift, f"differs from the single unit in {drift}")
                    want = ["STREAM_PATH=%i"] + single.get(("Service", "Environment"), [])
                    expect(get("Service", "Environment") == want,
                           f"Environment is {get('Service', 'Environment')}, not {want}")
                    expect("%i" in " ".join(get("Unit", "Description")), "the description does not name the instance")

                checks.run(f"{unit}: the single publisher per instance (env file, STREAM_PATH=%i)", template)

            copy = os.path.join(work, unit)
            real_script = os.path.join(REPO_ROOT, "pipelines", script)
            if os.access(real_script, os.X_OK):
                target = real_script
            else:
                target = os.path.join(stubs, script)
                with open(target, "w", encoding="utf-8") as f:
                    f.write("#!/bin/sh\nexit 0\n")
                os.chmod(target, 0o755)
            with open(copy, "w", encoding="utf-8") as f:
                f.write(re.sub(r"^ExecStart=.*$", f"ExecStart={target}", texts[unit], flags=re.M))

            def verify():
                expect(analyze, "systemd-analyze not found (Debian package systemd)")
                result = subprocess.run([analyze, "verify", "--man=no", copy], capture_output=True, text=True,
                                        timeout=60)
                output = (result.stdout + result.stderr).strip()
                expect(result.returncode == 0 and not output, f"systemd-analyze verify: {output or result.returncode}")

            checks.run(f"{unit}: systemd-analyze verify is silent", verify)

            def exposure():
                expect(analyze, "systemd-analyze not found (Debian package systemd)")
                result = subprocess.run([analyze, "security", "--offline=true", "--no-pager", copy],
                                        capture_output=True, text=True, timeout=60)
                m = re.search(r"Overall exposure level for \S+: ([0-9.]+)", result.stdout)
                expect(m, f"no exposure level in: {result.stdout[-300:]} {result.stderr[-300:]}")
                expect(float(m.group(1)) <= max_exposure, f"exposure {m.group(1)} > {max_exposure}")

            checks.run(f"{unit}: systemd-analyze security exposure <= {max_exposure}", exposure)

            if example_name in examples_checked:
                continue
            examples_checked.add(example_name)
            example = os.path.join(SYSTEMD_DIR, example_name)

            def env_file():
                values = parse_env_file(example)
                expect(values, "no variables")
                # The same file read by a shell must give the same values.
                dump = subprocess.run(["env", "-i", "bash", "-c", 'set -a; . "$1"; env -0', "-", example],
                                      capture_output=True, text=True, timeout=10)
                expect(dump.returncode == 0, f"bash could not source it: {dump.stderr}")
                shell = dict(item.split("=", 1) for item in dump.stdout.split("\0") if "=" in item)
                for name, value in values.items():
                    expect(shell.get(name) == value, f"{name}: systemd reads {value!r}, a shell {shell.get(name)!r}")
                return values

            values = checks.run(f"{example_name} parses for systemd and shell alike", env_file)

            def env_matches_script():
                out = subprocess.run([real_script, "--help"], capture_output=True, text=True, timeout=30)
                expect(out.returncode == 0, f"{script} --help exited {out.returncode}")
                unknown = [name for name in values if name not in out.stdout + out.stderr]
                expect(not unknown, f"{example_name} sets {unknown}, which {script} --help does not mention")

            if values and not os.access(real_script, os.X_OK):
                print(f"note {example_name} not cross-checked: pipelines/{script} does not exist yet", flush=True)
            elif values:
                checks.run(f"{example_name} only sets variables {script} knows", env_matches_script)
    finally:
        shutil.rmtree(work, ignore_errors=True)
    return checks.finish()


if __name__ == "__main__":
    sys.exit(main())

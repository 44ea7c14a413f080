#!/usr/bin/env python3
"""Counts the individual checks in meson testlog.json files and prints "N passed, N failed".

gst-check prints "Checks: N, Failures: F, Errors: E"; script tests may print "N passed, N failed";
a program that died before its summary counts as one failure. Each failed program is named, with
its failed checks' own lines (gst-check's "file:line:F:case:test:N: message", at most 5), so a
log's last lines say what failed. Exits 1 on any failure.
Usage: count-results.py TESTLOG.json [TESTLOG.json...]
"""
import json
import re
import sys

if len(sys.argv) < 2 or sys.argv[1] in ("-h", "--help"):
    print(__doc__.strip())
    sys.exit(0 if len(sys.argv) > 1 else 2)
passed = failed = 0
for path in sys.argv[1:]:
    for line in open(path):
        t = json.loads(line)
        out = t.get("stdout") or ""
        checks = re.findall(r"Checks: (\d+), Failures: (\d+), Errors: (\d+)", out)
        plain = re.findall(r"^(?:\w+: )?(\d+) passed, (\d+) failed", out, re.M)
        ok = t["result"] in ("OK", "EXPECTEDFAIL", "SKIP")
        if checks:
            n, f, e = (sum(int(c[i]) for c in checks) for i in range(3))
            p, x = n - f - e, f + e
        elif plain:
            p, x = int(plain[-1][0]), int(plain[-1][1])
        else:
            p, x = (1, 0) if ok else (0, 1)
        if not ok and x == 0:
            x = 1
        if not ok:
            print(f"FAILED: {t['name']} ({t['result']})")
            for reason in re.findall(r"^\s*(\S+:\d+:[FE]:.*)$", out, re.M)[:5]:
                print(f"  {reason}")
        passed += p
        failed += x
print(f"{passed} passed, {failed} failed")
sys.exit(1 if failed else 0)

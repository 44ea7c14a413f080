"""Tiny harness shared by the pipelines/ and docs/ script tests (Debian's /usr/bin/python3).

Each check is a function; `Checks.run` records it as passed or failed with the reason, and
`Checks.finish` prints the "N passed, N failed" line tests/run.sh counts and returns the exit status.
"""
import os
import sys
import traceback

REPO_ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))


class CheckFailed(Exception):
    pass


def expect(condition, message):
    if not condition:
        raise CheckFailed(message)


class Checks:
    def __init__(self, name):
        self.name = name
        self.passed = 0
        self.failed = 0

    def run(self, title, function, *args):
        """Runs one check; returns its result, or None when it failed."""
        try:
            result = function(*args)
        except CheckFailed as e:
            self.failed += 1
            print(f"FAIL {title}: {e}", flush=True)
            return None
        except Exception:  # a bug or an unexpected file: still one failure, with the traceback
            self.failed += 1
            print(f"FAIL {title}: unexpected error", flush=True)
            traceback.print_exc(file=sys.stdout)
            return None
        self.passed += 1
        print(f"ok   {title}", flush=True)
        return result if result is not None else True

    def finish(self):
        print(f"{self.passed} passed, {self.failed} failed", flush=True)
        return 1 if self.failed or not self.passed else 0


def help_requested(doc):
    if "--help" in sys.argv[1:] or "-h" in sys.argv[1:]:
        print(doc.strip())
        return True
    return False

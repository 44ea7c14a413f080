#!/usr/bin/env bash
# Runs reconnectbin's 50-restart-cycle test (and the other restart paths) under valgrind memcheck and fails on any definite
# leak or memory error. Last line: "N passed, N failed".
#
#   tests/reconnectbin/valgrind.sh build/tests/reconnectbin_element
#
# GStreamer and GLib keep one-time allocations (type registrations, the registry, thread pools)
# for the life of the process: valgrind reports them as "still reachable" or "possibly lost",
# which are not counted here; only "definitely lost" and "indirectly lost" fail. The suppression
# file tests/reconnectbin/valgrind.supp names each third-party leak it hides and why.
set -euo pipefail

usage() {
  cat <<USAGE
Usage: $0 [--help] TEST_PROGRAM

Runs TEST_PROGRAM (the reconnectbin element suite) under valgrind, only the test named by
GST_CHECKS, and reports definite leaks and memory errors.

Environment (defaults):
  GST_CHECKS     test(s) to run, comma-separated (every element test but the one that
                 asserts a frame rate, which valgrind's slowness would break)
  VALGRIND       valgrind binary                 (valgrind)
  VALGRIND_LOG   where valgrind writes its log   (a temporary file, printed on failure)
USAGE
}
[[ "${1:-}" == "--help" || "${1:-}" == "-h" ]] && { usage; exit 0; }
[[ $# -ge 1 ]] || { usage >&2; exit 2; }

program="$1"
here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
export GST_CHECKS="${GST_CHECKS:-test_fifty_eos_restarts,test_failing_child_posts_one_error,test_stall_restarts_child,test_sink_side_drops_while_down,test_sink_side_upstream_eos_while_down,test_fallback_freeze_and_silence,test_eos_passes_without_restart_on_eos,test_bin_syntax_children_are_rebuilt,test_bad_description}"
VALGRIND="${VALGRIND:-valgrind}"
log="${VALGRIND_LOG:-$(mktemp)}"
echo "valgrind.sh: program=$program GST_CHECKS=$GST_CHECKS VALGRIND=$VALGRIND VALGRIND_LOG=$log" >&2

# no fork (valgrind follows one process), plain malloc, no debug output, no gst-check timeout
export CK_FORK=no G_SLICE=always-malloc G_DEBUG=gc-friendly GST_DEBUG='' CK_DEFAULT_TIMEOUT=600

status=0
"$VALGRIND" --tool=memcheck --leak-check=full --show-leak-kinds=definite,indirect \
  --errors-for-leak-kinds=definite,indirect --error-exitcode=42 --num-callers=30 \
  --suppressions="$here/valgrind.supp" --log-file="$log" "$program" || status=$?

if [[ $status -eq 0 ]]; then
  echo "valgrind: no definite leaks, no memory errors"
  grep -E "definitely lost|indirectly lost|ERROR SUMMARY" "$log" || true
  echo "1 passed, 0 failed"
else
  echo "valgrind: failed (exit $status)"
  cat "$log"
  echo "0 passed, 1 failed"
fi
[[ -z "${VALGRIND_LOG:-}" ]] && rm -f "$log"
exit $(( status == 0 ? 0 : 1 ))

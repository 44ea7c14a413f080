#!/usr/bin/env bash
# gst-mediamtx: Valgrind memcheck on the unit tests, the fuzz replay and the whepsrc fault cases that
# need no media (400, 415, 500, redirect loop). Fails on any memory error or definite leak; only the
# named third-party leaks of tests/faults/valgrind.supp are suppressed. Must run in the test
# network namespace (meson test does that; by hand: tests/testbed/netns-run.sh tests/faults/valgrind.sh).
# Last line: "N passed, N failed" (one per program).
set -euo pipefail

usage() {
  cat <<EOF2
Usage: $0 [--help] [BUILD_DIR]

Environment (defaults):
  BUILD_DIR        Meson build directory with the tests built (or the first argument)  (build)
  VALGRIND_ARGS    extra valgrind arguments                          (none)
EOF2
}
[[ "${1:-}" == "--help" || "${1:-}" == "-h" ]] && { usage; exit 0; }

here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
root="$(cd "$here/../.." && pwd)"
BUILD_DIR="${1:-${BUILD_DIR:-$root/build}}"
[[ "$BUILD_DIR" = /* ]] || BUILD_DIR="$root/$BUILD_DIR"
VALGRIND_ARGS="${VALGRIND_ARGS:-}"
echo "valgrind: BUILD_DIR=$BUILD_DIR VALGRIND_ARGS=$VALGRIND_ARGS"

command -v valgrind >/dev/null || { echo "valgrind: not installed (subprojects/setup.sh installs it)"; exit 77; }

# GLib and GStreamer settings that make memcheck's answers exact: no slice allocator caching, no
# debug output, one process per test (gst-check forks otherwise), plugins from the build tree.
export G_SLICE=always-malloc G_DEBUG=gc-friendly GST_DEBUG="" CK_FORK=no
export GST_PLUGIN_PATH="$BUILD_DIR/plugins"
export GST_REGISTRY="$BUILD_DIR/tests/registry-valgrind.bin"
# the registry scan forks gst-plugin-scanner: build it outside valgrind
gst-inspect-1.0 whepsrc >/dev/null

read -r -a extra <<<"$VALGRIND_ARGS"
vg=(valgrind --tool=memcheck --error-exitcode=99 --leak-check=full --show-leak-kinds=definite
    --errors-for-leak-kinds=definite --num-callers=40 --track-origins=no
    --suppressions=/usr/share/glib-2.0/valgrind/glib.supp --suppressions="$here/valgrind.supp"
    "${extra[@]}")

passed=0
failed=0
run() {
  local name=$1
  shift
  local log="$BUILD_DIR/tests/valgrind-$name.log"
  local start=$SECONDS
  if "${vg[@]}" --log-file="$log" "$@" >"$log.out" 2>&1; then
    echo "valgrind: $name: ok ($((SECONDS - start)) s, $(grep -o 'ERROR SUMMARY: [0-9]* errors' "$log" | tail -n 1))"
    passed=$((passed + 1))
  else
    echo "valgrind: $name: FAILED ($((SECONDS - start)) s), log $log"
    grep -E 'ERROR SUMMARY|definitely lost|Invalid|uninitialised' "$log" | head -n 20 || true
    tail -n 5 "$log.out" || true
    failed=$((failed + 1))
  fi
}

run unit "$BUILD_DIR/tests/unit_gstmtx"
run fuzz-replay "$BUILD_DIR/tests/fuzz/fuzz_replay" "$root/tests/fuzz"
if [[ "${TESTBED_NETNS:-}" == "1" ]]; then
  run whepsrc-fault-cases "$BUILD_DIR/tests/faults_memcheck_cases"
else
  echo "valgrind: whepsrc-fault-cases: skipped (not in the test namespace; use tests/testbed/netns-run.sh)"
fi
echo "$passed passed, $failed failed"
((failed == 0))

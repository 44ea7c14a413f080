#!/usr/bin/env bash
# gst-mediamtx: builds the unit tests, the fuzz replay, the plugin and the whepsrc fault suites with
# AddressSanitizer + UndefinedBehaviorSanitizer (Meson b_sanitize, a separate build directory) and
# runs them. Any sanitizer report fails; LeakSanitizer suppresses only the named third-party leaks of
# tests/faults/lsan.supp. Must run in the test network namespace for the whepsrc suites (meson test
# does that; by hand: tests/testbed/netns-run.sh tests/faults/asan.sh). Last line: "N passed, N failed".
set -euo pipefail

usage() {
  cat <<EOF2
Usage: $0 [--help]

Environment (defaults):
  ASAN_BUILD_DIR  sanitizer build directory              (build-asan)
  MEDIAMTX_BIN    MediaMTX binary (configure option)      (unset: tests that need it are not run here)
  ASAN_SUITES     programs to run, space separated        (unit fuzz-replay memcheck-cases whepsrc-faults)
EOF2
}
[[ "${1:-}" == "--help" || "${1:-}" == "-h" ]] && { usage; exit 0; }

root="$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)"
ASAN_BUILD_DIR="${ASAN_BUILD_DIR:-$root/build-asan}"
MEDIAMTX_BIN="${MEDIAMTX_BIN:-}"
ASAN_SUITES="${ASAN_SUITES:-unit fuzz-replay memcheck-cases whepsrc-faults}"
echo "asan: ASAN_BUILD_DIR=$ASAN_BUILD_DIR MEDIAMTX_BIN=$MEDIAMTX_BIN ASAN_SUITES=$ASAN_SUITES"

if [[ ! -f "$ASAN_BUILD_DIR/build.ninja" ]]; then
  meson setup "$ASAN_BUILD_DIR" "$root" -Dwerror=true -Db_sanitize=address,undefined -Db_lundef=false \
    -Dbuildtype=debug -Dmediamtx="$MEDIAMTX_BIN" >/dev/null
fi
ninja -C "$ASAN_BUILD_DIR" plugins/libgstmediamtx.so tests/unit_gstmtx tests/fuzz/fuzz_replay \
  tests/faults_memcheck_cases tests/whepsrc_faults >/dev/null

# The plugin is instrumented: scan it in this (instrumented) process, not in gst-plugin-scanner.
export GST_REGISTRY_FORK=no GST_PLUGIN_PATH="$ASAN_BUILD_DIR/plugins"
export GST_REGISTRY="$ASAN_BUILD_DIR/tests/registry.bin" GST_CHECKS_IGNORE_POISONING=1 CK_DEFAULT_TIMEOUT=120
# full stacks through uninstrumented libraries, so suppressions can name their frames
export ASAN_OPTIONS="detect_leaks=1:fast_unwind_on_malloc=0:halt_on_error=1:${ASAN_OPTIONS:-}"
export LSAN_OPTIONS="suppressions=$root/tests/faults/lsan.supp:print_suppressions=0:${LSAN_OPTIONS:-}"
export UBSAN_OPTIONS="print_stacktrace=1:halt_on_error=1:${UBSAN_OPTIONS:-}"
[[ -n "$MEDIAMTX_BIN" ]] && export MEDIAMTX_BIN

passed=0
failed=0
# run NAME strict|sanitizers-only PROGRAM [ARGS...]: strict also needs the program to pass;
# sanitizers-only is for suites with wall-clock bounds the instrumented build is too slow to meet.
run() {
  local name=$1 mode=$2
  shift 2
  local log="$ASAN_BUILD_DIR/asan-$name.log"
  local start=$SECONDS status=0
  "$@" >"$log" 2>&1 || status=$?
  if [[ "$mode" == sanitizers-only && $status -ne 0 ]] && ! grep -qE 'ERROR: (Address|Leak)Sanitizer|runtime error:' "$log"; then
    echo "asan: $name: no sanitizer report; timing checks that failed under ASan (not counted):"
    grep -E ':F:' "$log" | sed 's/^/asan:   /' || true
    status=0
  fi
  if ((status == 0)) && ! grep -qE 'ERROR: (Address|Leak)Sanitizer|runtime error:' "$log"; then
    echo "asan: $name: ok ($((SECONDS - start)) s)"
    passed=$((passed + 1))
  else
    echo "asan: $name: FAILED ($((SECONDS - start)) s), log $log"
    grep -E -A12 'ERROR: (Address|Leak)Sanitizer|runtime error:|Checks:' "$log" | head -n 40 || true
    failed=$((failed + 1))
  fi
}

for suite in $ASAN_SUITES; do
  case "$suite" in
    unit) run unit strict "$ASAN_BUILD_DIR/tests/unit_gstmtx" ;;
    fuzz-replay) run fuzz-replay strict "$ASAN_BUILD_DIR/tests/fuzz/fuzz_replay" "$root/tests/fuzz" ;;
    memcheck-cases|whepsrc-faults)
      if [[ "${TESTBED_NETNS:-}" != "1" ]]; then
        echo "asan: $suite: skipped (not in the test namespace; use tests/testbed/netns-run.sh)"
        continue
      fi
      if [[ "$suite" == memcheck-cases ]]; then
        run "$suite" strict "$ASAN_BUILD_DIR/tests/faults_memcheck_cases"
      else
        run "$suite" sanitizers-only "$ASAN_BUILD_DIR/tests/whepsrc_faults"
      fi
      ;;
    *) echo "asan: unknown suite $suite" >&2; exit 2 ;;
  esac
done
echo "$passed passed, $failed failed"
((failed == 0))

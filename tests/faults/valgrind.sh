#!/usr/bin/env bash
# gst-mediamtx: Valgrind memcheck on the unit tests, the fuzz replay, the whepsrc fault cases and the
# element suites (whepsrc, mediamtxsink, reconnectbin), each suite that needs the network in a fresh
# private network namespace (tests/testbed/netns-run.sh). Fails on any memory error or definite leak;
# only the named third-party reports of tests/faults/valgrind.supp are suppressed, and those of
# tests/faults/valgrind-stock-rtspclientsink.supp (the tests' stock RTSP publishers) in every suite
# but mediamtxsink-element. Test
# `faults/valgrind` of tests/run.sh runs the quick selection; `tests/faults/valgrind.sh build all`
# runs every suite (docs/reliability.md). Last line: "N passed, N failed" (one per suite).
set -euo pipefail

# name : program (relative to the build directory) : needs a network namespace : mode
# strict: the program runs in one process (CK_FORK=no) and must also pass. memcheck-only: element
# suites, one process per test (valgrind follows gst-check's fork); their waits are stretched
# (TESTBED_TIME_SCALE) but the elements' own timers are not, so checks that fail under valgrind's
# 20-50x slowdown are printed and not counted; a memory error or a definite leak in any process is.
suites=(
  "unit:tests/unit_gstmtx:no:strict"
  "fuzz-replay:tests/fuzz/fuzz_replay:no:strict"
  "live-schedule:tests/unit_live_schedule:no:strict"
  "whepsrc-fault-cases:tests/faults_memcheck_cases:yes:strict"
  "whepsrc-element:tests/whepsrc_element:yes:memcheck-only"
  "whepsrc-faults:tests/whepsrc_faults:yes:memcheck-only"
  "mediamtxsink-element:tests/mediamtxsink_element:yes:memcheck-only"
  "reconnectbin-element:tests/reconnectbin_element:no:memcheck-only"
  "reconnectbin-network:tests/reconnectbin_network:yes:memcheck-only"
)
# what tests/run.sh runs (test faults/valgrind): NAME=TEST,TEST runs only those tests of a suite
quick="unit fuzz-replay live-schedule whepsrc-fault-cases whepsrc-element=test_stop_deletes_session
mediamtxsink-element=test_publish_raw_video,test_publish_whip,test_whip_rejects_h265"

# few_checks_passed LOG FLOOR: a gst-check program of 4 checks or more passed fewer than FLOOR %
few_checks_passed() {
  local line pct checks
  line="$(grep -E '^[0-9]+%: Checks: [0-9]+' "$1" | tail -n 1)"
  pct="${line%%\%*}"
  checks="$(sed -E 's/.*Checks: ([0-9]+).*/\1/' <<<"$line")"
  ((checks >= 4 && pct < $2))
}

usage() {
  cat <<EOF2
Usage: $0 [--help] [BUILD_DIR] [SUITE[=TEST,...]... | all | quick]

Suites: $(for s in "${suites[@]}"; do printf '%s ' "${s%%:*}"; done)
Default: quick (${quick//$'\n'/ }).
(reconnectbin's restart paths also run under valgrind in tests/run.sh: tests/reconnectbin/valgrind.sh.)

Environment (defaults):
  BUILD_DIR           Meson build directory with the tests built (or the first argument)  (build)
  MEDIAMTX_BIN        MediaMTX binary for the network suites     (unset: those suites are skipped)
  VALGRIND_ARGS       extra valgrind arguments                    (none)
  TESTBED_TIME_SCALE  how much longer the tests' waits are        (8)
EOF2
}
[[ "${1:-}" == "--help" || "${1:-}" == "-h" ]] && { usage; exit 0; }

here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
root="$(cd "$here/../.." && pwd)"
BUILD_DIR="${BUILD_DIR:-$root/build}"
if [[ $# -gt 0 && -d "$1" ]]; then
  BUILD_DIR="$1"
  shift
fi
[[ "$BUILD_DIR" = /* ]] || BUILD_DIR="$root/$BUILD_DIR"
VALGRIND_ARGS="${VALGRIND_ARGS:-}"
MEDIAMTX_BIN="${MEDIAMTX_BIN:-}"
export TESTBED_TIME_SCALE="${TESTBED_TIME_SCALE:-8}"
selected="${*:-quick}"
selected="${selected//quick/$quick}"
[[ "$selected" == all ]] && selected="$(for s in "${suites[@]}"; do printf '%s ' "${s%%:*}"; done)"
read -r -a selected <<<"${selected//$'\n'/ }"
echo "valgrind: BUILD_DIR=$BUILD_DIR MEDIAMTX_BIN=$MEDIAMTX_BIN VALGRIND_ARGS=$VALGRIND_ARGS" \
  "TESTBED_TIME_SCALE=$TESTBED_TIME_SCALE suites: ${selected[*]}"

command -v valgrind >/dev/null || { echo "valgrind: not installed (subprojects/setup.sh installs it)"; exit 77; }

# GLib and GStreamer settings that make memcheck's answers exact: no slice allocator caching, no
# debug output, plugins from the build tree, no gst-check timeout of its own.
export G_SLICE=always-malloc G_DEBUG=gc-friendly GST_DEBUG="" CK_DEFAULT_TIMEOUT=1200 CK_TIMEOUT_MULTIPLIER=10
export GST_PLUGIN_PATH="$BUILD_DIR/plugins" GST_CHECKS_IGNORE_POISONING=1
export GST_REGISTRY="$BUILD_DIR/tests/registry-valgrind.bin"
[[ -n "$MEDIAMTX_BIN" ]] && export MEDIAMTX_BIN
# the registry scan forks gst-plugin-scanner: build it outside valgrind
gst-inspect-1.0 whepsrc >/dev/null

read -r -a extra <<<"$VALGRIND_ARGS"
vg=(valgrind --tool=memcheck --error-exitcode=99 --leak-check=full --show-leak-kinds=definite
    --errors-for-leak-kinds=definite --num-callers=40 --track-origins=no
    --suppressions=/usr/share/glib-2.0/valgrind/glib.supp --suppressions="$here/valgrind.supp"
    "${extra[@]}")

passed=0
failed=0
run_suite() {
  local request=$1 name checks="" s n prog netns mode
  name="${request%%=*}"
  [[ "$request" == *=* ]] && checks="${request#*=}"
  for s in "${suites[@]}"; do
    IFS=: read -r n prog netns mode <<<"$s"
    [[ "$n" == "$name" ]] && break
  done
  [[ "$n" == "$name" ]] || { echo "valgrind: unknown suite $name" >&2; exit 2; }
  if [[ "$netns" == yes && -z "$MEDIAMTX_BIN" && "$name" != whepsrc-fault-cases ]]; then
    echo "valgrind: $name: skipped (MEDIAMTX_BIN not set)"
    return 0
  fi
  local log="$BUILD_DIR/tests/valgrind-$name" start=$SECONDS status=0 wrap=(env)
  [[ "$netns" == yes ]] && wrap=("$root/tests/testbed/netns-run.sh" env)
  local fork=no
  [[ "$mode" == memcheck-only ]] && fork=yes
  local args=() supp=(--suppressions="$here/valgrind-stock-rtspclientsink.supp")
  [[ "$name" == fuzz-replay ]] && args=("$root/tests/fuzz")
  # mediamtxsink publishes through rtspclientsink without its send-after-close race
  [[ "$name" == mediamtxsink-element ]] && supp=()
  rm -f "$log".*
  "${wrap[@]}" CK_FORK="$fork" ${checks:+GST_CHECKS="$checks"} \
    "${vg[@]}" "${supp[@]}" --log-file="$log.%p.vg" "$BUILD_DIR/$prog" "${args[@]}" >"$log.out" 2>&1 || status=$?
  # every process (gst-check forks one per test): its error count and definite leaks
  local errors=0 leaked=0 f e l
  for f in "$log".*.vg; do
    e=$(grep -o 'ERROR SUMMARY: [0-9]*' "$f" | tail -n 1 | grep -o '[0-9]*$' || echo 0)
    l=$(grep -o 'definitely lost: [0-9,]* bytes' "$f" | tail -n 1 | tr -dc '0-9' || true)
    errors=$((errors + ${e:-0}))
    leaked=$((leaked + ${l:-0}))
  done
  local verdict
  if ((errors > 0)); then
    verdict="FAILED ($errors errors, $leaked bytes definitely lost)"
  elif ((status == 0)); then
    verdict="ok"
  elif [[ "$mode" == memcheck-only ]] && grep -q '^[0-9]*%: Checks:' "$log.out" &&
    few_checks_passed "$log.out" 20; then
    # nearly every check failing means the code was not exercised (a helper or server that never
    # started), not a clean run; 20-50x slower, a quarter to a half of the timed checks can miss
    verdict="FAILED (almost every check failed: $(grep -E '^[0-9]+%: Checks:' "$log.out" | tail -n 1))"
  elif [[ "$mode" == memcheck-only ]] && grep -q '^[0-9]*%: Checks:' "$log.out" &&
    ! grep -E ':E:' "$log.out" | grep -vq 'Test timeout expired'; then
    verdict="ok (failed checks under valgrind, not counted: $(grep -cE ':[FE]:' "$log.out"))"
  else
    verdict="FAILED (exit $status)"
  fi
  echo "valgrind: $name${checks:+ ($checks)}: $verdict ($((SECONDS - start)) s, 0 errors means every process)"
  case "$verdict" in
    ok*)
      passed=$((passed + 1))
      grep -E ':[EF]:' "$log.out" | sed 's/^/valgrind:   not counted: /' || true
      ;;
    *)
      failed=$((failed + 1))
      echo "valgrind:   logs $log.*"
      grep -E ':[EF]:' "$log.out" | sed 's/^/valgrind:   /' || true
      grep -h -E -A12 '^==[0-9]+== (Invalid|Conditional|Use of|Syscall|Mismatched|Source and|[0-9,]+ bytes in [0-9,]+ blocks are definitely)' \
        "$log".*.vg | head -n 60 || true
      tail -n 5 "$log.out" || true
      ;;
  esac
}

start_all=$SECONDS
for request in "${selected[@]}"; do
  run_suite "$request"
done
echo "valgrind: total $((SECONDS - start_all)) s"
echo "$passed passed, $failed failed"
((failed == 0))

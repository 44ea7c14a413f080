#!/usr/bin/env bash
# gst-mediamtx: builds the plugin and the test programs with AddressSanitizer +
# UndefinedBehaviorSanitizer (Meson b_sanitize, a separate build directory) and runs them, each suite
# that needs the network in a fresh private network namespace (tests/testbed/netns-run.sh). Any
# ASan, UBSan or LeakSanitizer report fails; LeakSanitizer suppresses only the named third-party leaks
# of tests/faults/lsan.supp. Test `faults/asan` of tests/run.sh runs the default (quick) selection;
# `tests/faults/asan.sh all` runs every suite (docs/reliability.md). Last line: "N passed, N failed".
set -euo pipefail

# name : program (relative to the build directory) : needs a network namespace : mode
# mode strict: the program must also pass; sanitizers-only: for suites with wall-clock bounds that
# the instrumented build (2-3x slower) can miss, failed assertions and timeouts are printed but do
# not count, a sanitizer report, a crash, a program that never reports its checks or one where
# of 4 checks or more where fewer than half pass (the code was not exercised) still does.
suites=(
  "inspect:-:no:strict"
  "unit:tests/unit_gstmtx:no:strict"
  "dtls-certificate:tests/unit_dtls_certificate:no:strict"
  "reader-watch:tests/unit_reader_watch:no:strict"
  "library-preload:tests/unit_library_preload:no:strict"
  "rate-controller:tests/unit_rate_controller:no:strict"
  "twcc-estimator:tests/unit_twcc_estimator:no:strict"
  "rtp-retransmission:tests/unit_rtp_retransmission:no:strict"
  "live-schedule:tests/unit_live_schedule:no:strict"
  "stall-watchdog:tests/reconnectbin_stall_watchdog:no:strict"
  "encoder-selection:tests/mediamtxsink_encoder_selection:no:strict"
  "fuzz-replay:tests/fuzz/fuzz_replay:no:strict"
  "testbed:tests/integration_testbed:yes:strict"
  "memcheck-cases:tests/faults_memcheck_cases:yes:strict"
  "reconnectbin-element:tests/reconnectbin_element:no:sanitizers-only"
  "reconnectbin-network:tests/reconnectbin_network:yes:sanitizers-only"
  "whepsrc-element:tests/whepsrc_element:yes:sanitizers-only"
  "whepsrc-faults:tests/whepsrc_faults:yes:sanitizers-only"
  "whepsrc-placeholder:tests/whepsrc_placeholder:yes:sanitizers-only"
  "mediamtxsink-element:tests/mediamtxsink_element:yes:sanitizers-only"
  "mediamtxsink-keyframe-on-join:tests/mediamtxsink_keyframe_on_join:yes:sanitizers-only"
  "faults-tls:tests/faults_tls:yes:sanitizers-only"
  "faults-bounds:tests/faults_bounds:yes:sanitizers-only"
  "faults-secrets:tests/faults_secrets:yes:sanitizers-only"
  "faults-network:tests/faults_network:yes:sanitizers-only"
  "faults-bandwidth:tests/faults_bandwidth:yes:sanitizers-only"
)
# what tests/run.sh runs (test faults/asan), within its time budget: every suite but faults-secrets
# (170 s under ASan: debug logging at level 9, its subject is what the logs say; its auth and
# fault-server paths run under ASan in whepsrc-element and whepsrc-faults too). faults-network (the
# three hosts, 10 server kills, partitions, loss, ICE-TCP, the 100-cycle soak: ~280 s) is in: the
# reconnection paths are where a use-after-free would hide. The longest first (ASAN_JOBS at a time).
quick="faults-network whepsrc-element mediamtxsink-element reconnectbin-network whepsrc-placeholder whepsrc-faults faults-bounds faults-tls
reconnectbin-element testbed memcheck-cases inspect unit dtls-certificate reader-watch library-preload rate-controller twcc-estimator
rtp-retransmission live-schedule stall-watchdog encoder-selection fuzz-replay"

usage() {
  cat <<EOF2
Usage: $0 [--help] [SUITE... | all | quick]

Suites: $(for s in "${suites[@]}"; do printf '%s ' "${s%%:*}"; done)
Default: quick (${quick//$'\n'/ }).
Not built with sanitizers: bench (benchmarks, no pass/fail), interop (Chromium), arm64 (cross
build under qemu), docs/pipelines (Python and shell checks of files and scripts), fuzz/libfuzzer
(clang's own ASan+UBSan build), the valgrind tests (valgrind cannot run an ASan program).

Environment (defaults):
  ASAN_BUILD_DIR  sanitizer build directory                 (build-asan)
  MEDIAMTX_BIN    MediaMTX binary for the network suites     (unset: those suites are skipped)
  ASAN_JOBS       suites run at the same time                (the number of cores)
EOF2
}
[[ "${1:-}" == "--help" || "${1:-}" == "-h" ]] && { usage; exit 0; }

here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
root="$(cd "$here/../.." && pwd)"
ASAN_BUILD_DIR="${ASAN_BUILD_DIR:-$root/build-asan}"
MEDIAMTX_BIN="${MEDIAMTX_BIN:-}"
ASAN_JOBS="${ASAN_JOBS:-$(nproc)}"
selected="${*:-quick}"
selected="${selected//quick/$quick}"
[[ "$selected" == all ]] && selected="$(for s in "${suites[@]}"; do printf '%s ' "${s%%:*}"; done)"
read -r -a selected <<<"${selected//$'\n'/ }"
echo "asan: ASAN_BUILD_DIR=$ASAN_BUILD_DIR MEDIAMTX_BIN=$MEDIAMTX_BIN ASAN_JOBS=$ASAN_JOBS suites: ${selected[*]}"

start_all=$SECONDS
# Quiet while it works; on failure the build's own output is shown (a hidden compiler error is no
# help to anyone).
build_log="$(mktemp)"
trap 'rm -f "$build_log"' EXIT
quiet() {
  if ! "$@" >"$build_log" 2>&1; then
    cat "$build_log" >&2
    echo "asan: FAILED: $*" >&2
    exit 1
  fi
}
if [[ ! -f "$ASAN_BUILD_DIR/build.ninja" ]]; then
  quiet meson setup "$ASAN_BUILD_DIR" "$root" -Dwerror=true -Db_sanitize=address,undefined -Db_lundef=false \
    -Dbuildtype=debug -Dmediamtx="$MEDIAMTX_BIN"
fi
targets=(plugins/libgstmediamtx.so)
for name in "${selected[@]}"; do
  for s in "${suites[@]}"; do
    IFS=: read -r n prog _ _ <<<"$s"
    [[ "$n" == "$name" && "$prog" != - ]] && targets+=("$prog")
  done
  # faults-network's and faults-bandwidth's client hosts and delayer (nfq-delay only where libnetfilter_queue is)
  if [[ "$name" == faults-network || "$name" == faults-bandwidth ]]; then
    targets+=(tests/faults/netns-pipeline)
    if grep -q 'build tests/faults/nfq-delay:' "$ASAN_BUILD_DIR/build.ninja"; then targets+=(tests/faults/nfq-delay); fi
  fi
done
quiet ninja -C "$ASAN_BUILD_DIR" "${targets[@]}"
echo "asan: built in $((SECONDS - start_all)) s"

# For uninstrumented programs: the ASan runtime, and libstdc++ so that its __cxa_throw interceptor
# finds the real one (C++ libraries such as libproxy are dlopen()ed later by a C program).
preload="$(${CXX:-c++} -print-file-name=libasan.so):$(${CXX:-c++} -print-file-name=libstdc++.so.6)"
export GST_PLUGIN_PATH="$ASAN_BUILD_DIR/plugins" GST_REGISTRY="$ASAN_BUILD_DIR/tests/registry.bin"
export GST_CHECKS_IGNORE_POISONING=1 CK_DEFAULT_TIMEOUT=120 CK_TIMEOUT_MULTIPLIER=3
# The plugin is instrumented: plugins are scanned in the process, not in gst-plugin-scanner.
export GST_REGISTRY_FORK=no
# Full stacks through uninstrumented libraries, so suppressions can name their frames.
# intercept_tls_get_addr=0: with it, LeakSanitizer's tracer sometimes dies with "Tracer caught signal
# 11" at exit (it misreads the dynamic TLS of dlopen()ed plugins; google/sanitizers#1322).
export ASAN_OPTIONS="detect_leaks=1:fast_unwind_on_malloc=0:halt_on_error=1:intercept_tls_get_addr=0:${ASAN_OPTIONS:-}"
export LSAN_OPTIONS="suppressions=$here/lsan.supp:print_suppressions=0:${LSAN_OPTIONS:-}"
export UBSAN_OPTIONS="print_stacktrace=1:halt_on_error=1:${UBSAN_OPTIONS:-}"
[[ -n "$MEDIAMTX_BIN" ]] && export MEDIAMTX_BIN
# ASan makes the tests 2-3x slower: their waits (tests/testbed) are stretched as much
export TESTBED_TIME_SCALE="${TESTBED_TIME_SCALE:-2}"

# The registry: the first scan loads every installed GStreamer plugin in the (instrumented) scanning
# process; their one-time allocations at load are not ours, so scan once with leak detection off.
# Uninstrumented programs (gst-inspect-1.0 here, the gst-launch-1.0 that faults-bounds and
# faults-secrets start) load the plugin with the ASan runtime preloaded.
LD_PRELOAD="$preload" ASAN_OPTIONS="$ASAN_OPTIONS:detect_leaks=0" gst-inspect-1.0 >/dev/null

report_re='ERROR: (Address|Leak)Sanitizer|runtime error:|Sanitizer:DEADLYSIGNAL|Sanitizer has encountered|Sanitizer: CHECK failed'
# few_checks_passed LOG FLOOR: a gst-check program of 4 checks or more passed fewer than FLOOR %
few_checks_passed() {
  local line pct checks
  line="$(grep -E '^[0-9]+%: Checks: [0-9]+' "$1" | tail -n 1)"
  pct="${line%%\%*}"
  checks="$(sed -E 's/.*Checks: ([0-9]+).*/\1/' <<<"$line")"
  ((checks >= 4 && pct < $2))
}

# run_one NAME MODE NETNS PROGRAM [ARGS...]: writes $ASAN_BUILD_DIR/asan-NAME.log and .result. Every
# instrumented process of the run (gst-check forks one per test, gst-launch-1.0 children) writes its
# reports to asan-NAME.report.PID, collected into the log: a child's stderr may go elsewhere.
run_one() {
  local name=$1 mode=$2 netns=$3
  shift 3
  local log="$ASAN_BUILD_DIR/asan-$name.log" start=$SECONDS status=0 verdict
  local report="$ASAN_BUILD_DIR/asan-$name.report"
  local wrap=(env)
  [[ "$netns" == yes ]] && wrap=("$root/tests/testbed/netns-run.sh" env)
  rm -f "$report".*
  "${wrap[@]}" ${PRELOAD:+LD_PRELOAD="$PRELOAD"} ASAN_OPTIONS="$ASAN_OPTIONS:log_path=$report" \
    UBSAN_OPTIONS="$UBSAN_OPTIONS:log_path=$report" "$@" >"$log" 2>&1 || status=$?
  for f in "$report".*; do
    [[ -e "$f" ]] || continue
    printf '\n==== %s\n' "$f" >>"$log"
    cat "$f" >>"$log"
  done
  if grep -qE "$report_re" "$log"; then
    verdict="FAILED (sanitizer report)"
  elif ((status == 0)); then
    verdict=ok
  elif [[ "$mode" == sanitizers-only ]] && grep -q '^[0-9]*%: Checks:' "$log" &&
    few_checks_passed "$log" 50; then
    # a run where most checks fail did not exercise the code (a helper program missing, a server
    # that never started): not a sanitizer-clean run
    verdict="FAILED (most checks failed: $(grep -E '^[0-9]+%: Checks:' "$log" | tail -n 1))"
  elif [[ "$mode" == sanitizers-only ]] && grep -q '^[0-9]*%: Checks:' "$log" &&
    ! grep -E ':E:' "$log" | grep -vq 'Test timeout expired'; then
    verdict="ok (failed checks under ASan, not counted: $(grep -cE ':[FE]:' "$log"))"
  else
    verdict="FAILED (exit $status)"
  fi
  echo "$verdict|$((SECONDS - start))" >"$log.result"
}

run_suite() {
  local name=$1 s n prog netns mode
  for s in "${suites[@]}"; do
    IFS=: read -r n prog netns mode <<<"$s"
    [[ "$n" == "$name" ]] && break
  done
  [[ "$n" == "$name" ]] || { echo "asan: unknown suite $name" >&2; return 2; }
  rm -f "$ASAN_BUILD_DIR/asan-$name.log.result"
  if [[ "$netns" == yes && -z "$MEDIAMTX_BIN" ]]; then
    echo "skipped (MEDIAMTX_BIN not set)|0" >"$ASAN_BUILD_DIR/asan-$name.log.result"
    return 0
  fi
  case "$name" in
    inspect) PRELOAD="$preload" run_one "$name" "$mode" no gst-inspect-1.0 mediamtx ;;
    fuzz-replay) run_one "$name" "$mode" no "$ASAN_BUILD_DIR/$prog" "$root/tests/fuzz" ;;
    faults-bounds|faults-secrets) PRELOAD="$preload" run_one "$name" "$mode" "$netns" "$ASAN_BUILD_DIR/$prog" ;;
    *) PRELOAD="" run_one "$name" "$mode" "$netns" "$ASAN_BUILD_DIR/$prog" ;;
  esac
}

for name in "${selected[@]}"; do
  while (($(jobs -rp | wc -l) >= ASAN_JOBS)); do wait -n || true; done
  run_suite "$name" &
done
wait

passed=0
failed=0
for name in "${selected[@]}"; do
  log="$ASAN_BUILD_DIR/asan-$name.log"
  IFS='|' read -r verdict secs <"$log.result" || verdict="FAILED (no result)"
  echo "asan: $name: $verdict (${secs:-?} s)"
  case "$verdict" in
    ok*) passed=$((passed + 1)) ;;
    skipped*) ;;
    *)
      failed=$((failed + 1))
      echo "asan:   log $log"
      grep -E -A14 "$report_re|:[EF]:" "$log" | head -n 40 | sed 's/^/asan:   /' || true
      ;;
  esac
  if [[ "$verdict" == "ok (failed"* ]]; then
    grep -E ':[EF]:' "$log" | sed 's/^/asan:   not counted: /' || true
  fi
done
echo "asan: total $((SECONDS - start_all)) s"
echo "$passed passed, $failed failed"
((failed == 0))

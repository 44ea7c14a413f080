#!/usr/bin/env bash
# gst-mediamtx: builds the libFuzzer targets (tests/fuzz/build.sh) and runs each for a short time
# on a scratch copy of its committed seed corpus. A crash is reported with the saved input and the
# command to reproduce it; copy the input to tests/fuzz/crashers/<target>/ once fixed, so the
# replay unit test keeps it fixed. Last line: "N passed, N failed" (one per target).
set -euo pipefail

usage() {
  cat <<EOF2
Usage: $0 [--help] [TARGET...]

Runs every fuzz target (or the ones named) for FUZZ_SECONDS each. Exits 77 (skipped) when clang is
not installed (subprojects/setup.sh installs it).

Environment (defaults):
  FUZZ_SECONDS    seconds per target                   (10)
  FUZZ_BUILD_DIR  where build.sh puts the binaries     (\$MESON_BUILD_ROOT/fuzz, else build-fuzz)
  FUZZ_WORK_DIR   scratch corpora and crash inputs     (\$FUZZ_BUILD_DIR/work)
  FUZZ_MAX_LEN    largest input, bytes                 (8192)
  FUZZ_JOBS       targets fuzzed at the same time      (nproc)
EOF2
}
[[ "${1:-}" == "--help" || "${1:-}" == "-h" ]] && { usage; exit 0; }

here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
FUZZ_SECONDS="${FUZZ_SECONDS:-10}"
if [[ -n "${MESON_BUILD_ROOT:-}" ]]; then
  FUZZ_BUILD_DIR="${FUZZ_BUILD_DIR:-$MESON_BUILD_ROOT/fuzz}"
else
  FUZZ_BUILD_DIR="${FUZZ_BUILD_DIR:-$here/../../build-fuzz}"
fi
FUZZ_WORK_DIR="${FUZZ_WORK_DIR:-$FUZZ_BUILD_DIR/work}"
FUZZ_MAX_LEN="${FUZZ_MAX_LEN:-8192}"
FUZZ_JOBS="${FUZZ_JOBS:-$(nproc)}"
echo "fuzz: FUZZ_SECONDS=$FUZZ_SECONDS FUZZ_BUILD_DIR=$FUZZ_BUILD_DIR FUZZ_WORK_DIR=$FUZZ_WORK_DIR FUZZ_MAX_LEN=$FUZZ_MAX_LEN FUZZ_JOBS=$FUZZ_JOBS"

if ! command -v clang++ >/dev/null && ! compgen -c clang++- | grep -E '^clang\+\+-[0-9]+$' >/dev/null; then
  echo "fuzz: clang is not installed, skipping (subprojects/setup.sh installs it)"
  exit 77
fi
export FUZZ_BUILD_DIR
"$here/build.sh" >/dev/null

if (($#)); then
  targets=("$@")
else
  mapfile -t targets < <(find "$FUZZ_BUILD_DIR" -maxdepth 1 -name 'fuzz-*' -type f -printf '%f\n' | sed 's/^fuzz-//' | sort)
fi
# per-input leak checks stay on; the report at exit would only list gst_init's registry
# full stacks at malloc, so that lsan.supp can name GLib's never-freed quark arrays precisely
export ASAN_OPTIONS="leak_check_at_exit=0:abort_on_error=1:fast_unwind_on_malloc=0:${ASAN_OPTIONS:-}"
export LSAN_OPTIONS="suppressions=$here/lsan.supp:${LSAN_OPTIONS:-}"
export UBSAN_OPTIONS="print_stacktrace=1:halt_on_error=1:${UBSAN_OPTIONS:-}"
export GST_REGISTRY="$FUZZ_BUILD_DIR/registry.bin"

# fuzz_one TARGET: runs it, writes "ok" or "failed" and a report to $FUZZ_WORK_DIR/TARGET/.
fuzz_one() {
  local target=$1
  local work="$FUZZ_WORK_DIR/$target"
  rm -rf "$work"
  mkdir -p "$work/corpus" "$work/artifacts"
  local seeds=("$here/corpus/$target")
  [[ -d "$here/crashers/$target" ]] && seeds+=("$here/crashers/$target")
  local log="$work/fuzz.log"
  if "$FUZZ_BUILD_DIR/fuzz-$target" "$work/corpus" "${seeds[@]}" -max_total_time="$FUZZ_SECONDS" \
       -max_len="$FUZZ_MAX_LEN" -timeout=10 -rss_limit_mb=2048 -artifact_prefix="$work/artifacts/" \
       -print_final_stats=1 >"$log" 2>&1; then
    local runs cov
    runs=$(sed -n 's/^stat::number_of_executed_units: *//p' "$log")
    cov=$(grep -o 'cov: [0-9]*' "$log" | tail -n 1 || true)
    echo "fuzz: $target: ok, ${runs:-?} runs in ${FUZZ_SECONDS} s, $cov" >"$work/report"
    echo ok >"$work/result"
  else
    {
      echo "fuzz: $target: FAILED"
      grep -E '^fuzz |ERROR|SUMMARY|runtime error' "$log" | head -n 20 || true
      for input in "$work"/artifacts/*; do
        [[ -e "$input" ]] || continue
        echo "fuzz: reproduce with: $FUZZ_BUILD_DIR/fuzz-$target $input"
        echo "fuzz: keep it with:   cp $input $here/crashers/$target/"
      done
    } >"$work/report"
    echo failed >"$work/result"
  fi
}

running=()
for target in "${targets[@]}"; do
  fuzz_one "$target" &
  running+=($!)
  if ((${#running[@]} >= FUZZ_JOBS)); then
    wait "${running[0]}"
    running=("${running[@]:1}")
  fi
done
for pid in "${running[@]}"; do wait "$pid"; done

passed=0
failed=0
for target in "${targets[@]}"; do
  cat "$FUZZ_WORK_DIR/$target/report"
  if [[ "$(cat "$FUZZ_WORK_DIR/$target/result")" == ok ]]; then
    passed=$((passed + 1))
  else
    failed=$((failed + 1))
  fi
done
echo "$passed passed, $failed failed"
((failed == 0))

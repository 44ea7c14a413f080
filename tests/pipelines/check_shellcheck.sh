#!/usr/bin/env bash
# Every shell script of the repository is shellcheck-clean: *.sh files, and files without an
# extension whose first line is a sh/bash shebang, under pipelines/, tests/ and subprojects/ (files
# git tracks or would track: build trees and downloaded wrap sources are skipped).
set -euo pipefail

usage() {
  cat <<USAGE
Usage: $0 [--help]

Runs shellcheck on each script, one check per file; prints "N passed, N failed" last and exits
non-zero when a script has findings.

Environment (defaults):
  SHELLCHECK        shellcheck binary                  (shellcheck)
  SHELLCHECK_DIRS   folders searched, space-separated  (pipelines tests subprojects)
  SHELLCHECK_ARGS   extra shellcheck arguments         (-x: follow sourced files)
USAGE
}
[[ "${1:-}" == "--help" || "${1:-}" == "-h" ]] && { usage; exit 0; }

root="$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)"
SHELLCHECK="${SHELLCHECK:-shellcheck}"
SHELLCHECK_DIRS="${SHELLCHECK_DIRS:-pipelines tests subprojects}"
SHELLCHECK_ARGS="${SHELLCHECK_ARGS:--x}"
echo "check_shellcheck: SHELLCHECK=$SHELLCHECK SHELLCHECK_DIRS=$SHELLCHECK_DIRS SHELLCHECK_ARGS=$SHELLCHECK_ARGS"

if ! command -v "$SHELLCHECK" >/dev/null; then
  echo "FAIL shellcheck not found (Debian package shellcheck)"
  echo "0 passed, 1 failed"
  exit 1
fi

cd "$root"
read -r -a dirs <<<"$SHELLCHECK_DIRS"
read -r -a extra <<<"$SHELLCHECK_ARGS"
candidates=()
if git rev-parse --is-inside-work-tree >/dev/null 2>&1; then
  while IFS= read -r -d '' file; do candidates+=("$file"); done \
    < <(git ls-files -z --cached --others --exclude-standard -- "${dirs[@]}")
else
  while IFS= read -r -d '' file; do candidates+=("${file#./}"); done \
    < <(find "${dirs[@]}" -type f -not -path '*/node_modules/*' -print0)
fi

scripts=()
for file in "${candidates[@]}"; do
  [[ -f "$file" ]] || continue   # deleted but still in the index
  case "$file" in
    */node_modules/*) continue ;;
    *.sh) scripts+=("$file") ;;
    */*.*) ;;
    *) if head -n 1 "$file" | grep -qE '^#!.*(/|env )(ba)?sh( |$)'; then scripts+=("$file"); fi ;;
  esac
done

passed=0
failed=0
for script in "${scripts[@]}"; do
  if findings=$("$SHELLCHECK" "${extra[@]}" -f gcc "$script" 2>&1); then
    echo "ok   $script"
    passed=$((passed + 1))
  else
    echo "FAIL $script"
    echo "$findings"
    failed=$((failed + 1))
  fi
done
if ((passed + failed == 0)); then
  echo "FAIL no shell scripts found under $SHELLCHECK_DIRS"
  failed=1
fi
echo "$passed passed, $failed failed"
((failed == 0))

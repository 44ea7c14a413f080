#!/usr/bin/env bash
# gst-inspect-1.0 lists the mediamtx plugin from the build tree with no warnings on stderr.
set -euo pipefail
[[ "${1:-}" == "--help" ]] && { echo "Usage: $0   (GST_PLUGIN_PATH must point at the build's plugins dir)"; exit 0; }
err=$(mktemp)
trap 'rm -f "$err"' EXIT
out=$(gst-inspect-1.0 mediamtx 2>"$err")
grep -q "Name *mediamtx" <<<"$out" || { echo "plugin mediamtx not listed"; echo "$out"; exit 1; }
if [[ -s "$err" ]]; then echo "warnings on stderr:"; cat "$err"; exit 1; fi
for element in ${EXPECTED_ELEMENTS:-}; do
  grep -q "^  $element:" <<<"$out" || { echo "element $element not registered"; exit 1; }
  gst-inspect-1.0 "$element" >/dev/null 2>"$err" || { echo "gst-inspect-1.0 $element failed"; exit 1; }
  [[ -s "$err" ]] && { echo "warnings inspecting $element:"; cat "$err"; exit 1; }
done
echo "gst-inspect-1.0 mediamtx: clean"

#!/usr/bin/env bash
# Builds the pinned MediaMTX release from the Go module proxy with the machine's Go toolchain and
# caches the binary outside the repository. Idempotent: a cached binary of the right version is
# reused. Prints the binary's path on stdout (last line).
set -euo pipefail

usage() {
  cat <<EOF
Usage: $0 [--help]

Builds MediaMTX \$MEDIAMTX_VERSION from the Go module proxy (no 'go install': the proxy refuses
the version list here) and caches it in \$MEDIAMTX_CACHE. Prints the binary path.

Environment (defaults):
  MEDIAMTX_VERSION  release tag to build             (v1.20.1)
  MEDIAMTX_CACHE    cache directory for the binary   (\$XDG_CACHE_HOME/gst-mediamtx or ~/.cache/gst-mediamtx)
  HLSJS_VERSION     hls.js from npm embedded in the HLS page (read from the module)
EOF
}
[[ "${1:-}" == "--help" || "${1:-}" == "-h" ]] && { usage; exit 0; }

MEDIAMTX_VERSION="${MEDIAMTX_VERSION:-v1.20.1}"
MEDIAMTX_CACHE="${MEDIAMTX_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/gst-mediamtx}"
bin="$MEDIAMTX_CACHE/mediamtx-$MEDIAMTX_VERSION"

log() { echo "build-mediamtx: $*" >&2; }

if [[ -x "$bin" ]] && "$bin" --version 2>/dev/null | grep -q "${MEDIAMTX_VERSION}"; then
  log "cached $bin"
  echo "$bin"
  exit 0
fi

command -v go >/dev/null || { log "no Go toolchain on PATH (try /usr/local/go/bin)"; exit 1; }
command -v npm >/dev/null || { log "npm is needed to fetch hls.js"; exit 1; }
log "building MediaMTX $MEDIAMTX_VERSION into $MEDIAMTX_CACHE (about 90 s on 2 cores)"
mkdir -p "$MEDIAMTX_CACHE"

moddir=$(go mod download -json "github.com/bluenviron/mediamtx@$MEDIAMTX_VERSION" |
  sed -n 's/^[[:space:]]*"Dir": "\(.*\)",$/\1/p')
[[ -d "$moddir" ]] || { log "go mod download gave no module directory"; exit 1; }

work=$(mktemp -d)
trap 'chmod -R u+w "$work" 2>/dev/null; rm -rf "$work"' EXIT
cp -r "$moddir" "$work/src"
chmod -R u+w "$work/src"

# The two files MediaMTX's 'go generate' would download.
echo "$MEDIAMTX_VERSION" > "$work/src/internal/core/VERSION"
HLSJS_VERSION="${HLSJS_VERSION:-$(tr -d 'v \n' < "$work/src/internal/servers/hls/hlsjsdownloader/VERSION")}"
(cd "$work" && npm pack --silent "hls.js@$HLSJS_VERSION" >/dev/null && tar xzf hls.js-*.tgz)
cp "$work/package/dist/hls.min.js" "$work/src/internal/servers/hls/hls.min.js"

(cd "$work/src" && CGO_ENABLED=0 go build -trimpath -o "$bin.tmp" .)
mv "$bin.tmp" "$bin"
"$bin" --version >&2
echo "$bin"

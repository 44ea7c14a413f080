#!/usr/bin/env bash
# gst-mediamtx benchmarks: the one description of the machine a run was taken on, sourced by
# tests/bench/run.sh, adapt.sh and ttff.sh (they add their own settings and load samples after it).
# Needs MEDIAMTX_BIN set by the caller.

describe_machine() {
  echo "date: $(date -u +%Y-%m-%dT%H:%M:%SZ)"
  echo "kernel: $(uname -r)"
  echo "cpu: $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2- | sed 's/^ //') x $(nproc)"
  echo "memory: $(free -g | awk '/Mem:/ {print $2}') GiB"
  echo "os: $(sed -n 's/^PRETTY_NAME=//p' /etc/os-release | tr -d '"')"
  echo "gstreamer: $(gst-launch-1.0 --version | sed -n 2p)"
  echo "mediamtx: $("$MEDIAMTX_BIN" --version 2>/dev/null || basename "$MEDIAMTX_BIN")"
  echo "git: $(git rev-parse --short HEAD 2>/dev/null || echo '?')"
}

#!/usr/bin/env bash
# Asserts that the test namespace cannot reach anything but itself: only lo and the veth pair,
# no default route, and the only routes are loopback and the veth subnet.
set -euo pipefail
[[ "${1:-}" == "--help" ]] && { echo "Usage: $0   (run by meson test inside netns-run.sh)"; exit 0; }
fail=0
links=$(ip -o link show | awk -F': ' '{print $2}' | sed 's/@.*//' | sort | tr '\n' ' ')
[[ "$links" == "lo va vb " ]] || { echo "unexpected interfaces: $links"; fail=1; }
if ip route show default | grep -q .; then echo "a default route exists"; fail=1; fi
while read -r route; do
  case "$route" in
    10.77.0.0/24*) ;;
    *) echo "unexpected route: $route"; fail=1 ;;
  esac
done < <(ip route show)
if ip route get 192.0.2.1 >/dev/null 2>&1; then echo "a documentation address is routable"; fail=1; fi
if ((fail)); then echo "0 passed, 1 failed"; exit 1; fi
echo "1 passed, 0 failed"

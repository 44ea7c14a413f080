#!/usr/bin/env bash
# Runs a command in a fresh private network namespace with lo up and a veth pair
# (va 10.77.0.1 <-> vb 10.77.0.2), so WebRTC tests have non-loopback candidates and no packet can
# leave the machine. Exports TESTBED_NETNS=1, TESTBED_SERVER_ADDR and TESTBED_CLIENT_ADDR.
set -euo pipefail
if [[ "${1:-}" == "--help" ]]; then
  echo "Usage: $0 COMMAND [ARGS...]   (run COMMAND in a private network namespace; needs root)"
  exit 0
fi
if [[ "${_NETNS_INSIDE:-}" != "1" ]]; then
  export _NETNS_INSIDE=1
  exec unshare --net -- "$0" "$@"
fi
unset _NETNS_INSIDE
ip link set lo up
ip link add va type veth peer name vb
ip addr add 10.77.0.1/24 dev va
ip addr add 10.77.0.2/24 dev vb
ip link set va up
ip link set vb up
export TESTBED_NETNS=1 TESTBED_SERVER_ADDR=10.77.0.1 TESTBED_CLIENT_ADDR=10.77.0.2
exec "$@"

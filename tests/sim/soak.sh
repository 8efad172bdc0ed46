#!/bin/sh
# A longer local sweep of the raft simulator (the CTest sweep runs 90 s).
# usage: tests/sim/soak.sh [seconds] [first-seed] [extra raft_sim args...]
# Defaults: one hour from a seed derived from the clock, alternating 3- and
# 5-node clusters. Every failure prints its seed and the command to replay it.
set -eu
top=$(cd "$(dirname "$0")/../.." && pwd)
build=${BUILD_DIR:-$top/build-sim}
seconds=${1:-3600}
first=${2:-$(( $(date +%s) % 1000000000 * 1000 ))}
[ $# -gt 0 ] && shift
[ $# -gt 0 ] && shift
sim=$build/tests/sim/raft_sim
if [ ! -x "$sim" ]; then
    echo "soak: $sim not built (BUILD_DIR=$build ./deploy/build.sh)" >&2
    exit 2
fi
echo "soak: $seconds s from seed $first"
exec "$sim" --first "$first" --seconds "$seconds" "$@"

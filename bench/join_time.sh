#!/bin/bash
# join_time.sh - how long a node takes to join a swarm (issue 4), in the
# namespace lab of tests/lab/lib.sh (each host a network namespace on one
# bridge, all on this machine).
#
# One manager (`swarmc init --dispatcher-heartbeat 1s`), then, one host at a
# time:
#   WORKERS (default 5) hosts join with the worker token;
#   MANAGERS (default 2) hosts join with the manager token.
# For each join two times are printed, both from just before the CLI is
# exec'd:
#   join_ms   until `swarmc join` returns (it returns once the new daemon's
#             control socket answers, i.e. the node has its certificate and
#             state and its daemon is up)
#   ready_ms  until the first manager's `node ls` (polled every $POLL s)
#             shows the node Ready (a worker) or Ready and Reachable (a
#             manager: a raft voter)
# plus the median and max of each. `node ls` itself costs some ms (printed
# as cli_overhead), which bounds the polling error of ready_ms.
#
# Usage (root): bench/join_time.sh
#   env: SWARMC (default /work/build-full/cli/swarmc) WORKERS=5 MANAGERS=2
#        POLL=0.05 and tests/lab/lib.sh's settings.
# Prints numbers; asserts nothing (fails only when a join fails or a node
# is not Ready within 60 s).
set -eu
export LC_ALL=C
HERE=$(cd "$(dirname "$0")" && pwd)
export SWARMC=${SWARMC:-/work/build-full/cli/swarmc}
WORKERS=${WORKERS:-5}
MANAGERS=${MANAGERS:-2}
POLL=${POLL:-0.05}
[ -x "$SWARMC" ] || {
    echo "join_time.sh: no swarmc binary at $SWARMC" >&2
    exit 1
}
. "$HERE/../tests/lab/lib.sh"

# ms since the epoch, in $NOW, without a fork (bash 5's EPOCHREALTIME)
now_ms() { NOW=${EPOCHREALTIME/./} && NOW=$((NOW / 1000)); }
# "median=X max=Y" of the arguments (lower median for an even count)
summary() {
    local sorted n
    sorted=$(printf '%s\n' "$@" | sort -n)
    n=$#
    echo "median_ms=$(echo "$sorted" | sed -n "$(((n + 1) / 2))p") max_ms=$(echo "$sorted" | tail -n 1) all_ms=$(echo "$@" | tr ' ' ,)"
}

lab_create $((1 + WORKERS + MANAGERS))
lab_start_daemon 1 --dispatcher-heartbeat 1s
wtoken=$(lab_sw 1 join-token -q worker)
mtoken=$(lab_sw 1 join-token -q manager)
manager="$(lab_addr 1):2377"

# The CLI's own cost: 10 `node ls` on the manager.
ov=()
for _ in $(seq 1 10); do
    now_ms && t=$NOW
    lab_sw 1 node ls >/dev/null
    now_ms && ov+=($((NOW - t)))
done
echo "join cli_overhead node_ls $(summary "${ov[@]}")"

# Polls until host i shows in node ls as ROLE wants it; bounded at 60 s.
shown() { # i role
    local line
    line=$(lab_sw 1 node ls 2>/dev/null | grep -w "h$1") || return 1
    echo "$line" | grep -qw Ready || return 1
    [ "$2" = worker ] || echo "$line" | grep -qw Reachable
}

jw=() rw=() jm=() rm=()
h=1
for role in worker manager; do
    if [ "$role" = worker ]; then count=$WORKERS token=$wtoken; else count=$MANAGERS token=$mtoken; fi
    for _ in $(seq 1 "$count"); do
        h=$((h + 1))
        now_ms && t0=$NOW
        lab_sw "$h" join --token "$token" --advertise-addr "$(lab_addr "$h")" "$manager" >/dev/null ||
            lab_fail "host $h: join failed"
        now_ms && t1=$NOW
        end=$((t0 + 60000))
        until shown "$h" "$role"; do
            now_ms
            [ "$NOW" -lt "$end" ] || lab_fail "host $h: not shown as a ready $role within 60 s"
            sleep "$POLL"
        done
        now_ms && t2=$NOW
        echo "join role=$role host=h$h join_ms=$((t1 - t0)) ready_ms=$((t2 - t0))"
        if [ "$role" = worker ]; then
            jw+=($((t1 - t0))) rw+=($((t2 - t0)))
        else
            jm+=($((t1 - t0))) rm+=($((t2 - t0)))
        fi
    done
done
[ "$WORKERS" = 0 ] || {
    echo "join worker n=$WORKERS join $(summary "${jw[@]}")"
    echo "join worker n=$WORKERS ready $(summary "${rw[@]}")"
}
[ "$MANAGERS" = 0 ] || {
    echo "join manager n=$MANAGERS join $(summary "${jm[@]}")"
    echo "join manager n=$MANAGERS ready $(summary "${rm[@]}")"
}

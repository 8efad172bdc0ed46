#!/bin/bash
# failover.sh - how long a 3-manager swarm takes to accept writes again
# after kill -9 of its leader's daemon (issue 4), in the namespace lab of
# tests/lab/lib.sh (each host a network namespace on one bridge, all on
# this machine; the daemons talk over the cluster port, mTLS).
#
# Three managers (`init --dispatcher-heartbeat 1s`, two joins with the
# manager token). TRIALS (default 20) times:
#   1. find the leader (`node ls` on any manager: the Leader line; a
#      follower forwards cluster requests to the leader);
#   2. t0 = the wall clock (bash's EPOCHREALTIME: date +%s%N without a
#      fork), then `kill -9` of the leader's daemon pid (not waiting for it
#      to exit);
#   3. every $POLL s, try a write on each of the two survivors:
#      `service create --detach --replicas 0 --name f<trial> busybox sleep 1`
#      (a follower forwards it to the leader it knows; it fails while the
#      leader is dead or unknown); stop at the first that succeeds:
#      failover_ms = now - t0;
#   4. wait for the killed pid to be gone, restart the killed daemon
#      (lab_restart) and wait until the leader's `node ls` shows 3
#      managers, all Ready, the restarted one Reachable, then 1 s more
#      before the next trial.
# Prints each trial and the median / max. Also per trial: elected_log_ms,
# when the new leader's log says "is now leader" (after the kill; log
# timestamps are ms, same wall clock), i.e. the election without the CLI;
# and rejoin: from lab_restart until step 4's condition holds (polled
# every 0.2 s). On stderr, per trial: each CLI call's host, start (ms
# after the kill), result and duration, and the last error a call printed.
# failover_ms includes one or more CLI calls (each a fresh process through
# timeout, nsenter, unshare and sh, then a request on the daemon's unix
# socket): the cost of one `node ls` and one write on the leader and of one
# write through a follower are measured first and printed (cli_overhead)
# to read it against.
# Raft: 50 ms ticks, election timeout 10 ticks randomized to 0.5-1 s.
#
# Usage (root): bench/failover.sh
#   env: SWARMC (default /work/build-full/cli/swarmc) TRIALS=20 POLL=0.05
#        and tests/lab/lib.sh's settings.
# Prints numbers; asserts nothing (fails only when no survivor takes a
# write within 30 s or the killed member does not come back within 60 s).
set -eu
export LC_ALL=C
HERE=$(cd "$(dirname "$0")" && pwd)
export SWARMC=${SWARMC:-/work/build-full/cli/swarmc}
TRIALS=${TRIALS:-20}
POLL=${POLL:-0.05}
[ -x "$SWARMC" ] || {
    echo "failover.sh: no swarmc binary at $SWARMC" >&2
    exit 1
}
. "$HERE/../tests/lab/lib.sh"
# Polls must not hang on a dead leader's socket for the default 120 s.
export LAB_CMD_TIMEOUT=${LAB_CMD_TIMEOUT:-10}

# Clock readings without a fork (bash 5's EPOCHREALTIME, in us).
now_us() { NOW=${EPOCHREALTIME/./}; }
summary() {
    local sorted n
    sorted=$(printf '%s\n' "$@" | sort -n)
    n=$#
    echo "median_ms=$(echo "$sorted" | sed -n "$(((n + 1) / 2))p") max_ms=$(echo "$sorted" | tail -n 1) all_ms=$(echo "$@" | tr ' ' ,)"
}

lab_create 3
lab_start_daemon 1 --dispatcher-heartbeat 1s
lab_join 2 1 manager
lab_join 3 1 manager

# 0 when host L's node ls shows 3 Ready managers, host K among them Reachable.
healthy() { # L K
    local out
    out=$(lab_sw "$1" node ls 2>/dev/null) || return 1
    [ "$(echo "$out" | grep -w Ready | grep -cwE 'Leader|Reachable')" = 3 ] || return 1
    echo "$out" | grep -w "h$2" | grep -w Ready | grep -qw Reachable
}
wait_healthy() { # K
    local end=$(($(date +%s) + 60)) l
    while :; do
        l=$(lab_leader) && healthy "$l" "$1" && return 0
        [ "$(date +%s)" -lt "$end" ] || lab_fail "h$1 not back as a Ready, Reachable manager within 60 s"
        sleep 0.2
    done
}
wait_healthy 3
sleep 1

# ms (wall clock) of the newest "is now leader" line in host i's log, or
# nothing.
elected_at() {
    local line
    line=$(grep -F 'is now leader' "$(lab_data_dir "$1")/swarmc.log" 2>/dev/null | tail -n 1) || return 0
    [ -n "$line" ] && date -d "${line%% *}" +%s%3N
}

# The CLI's own cost on the leader: 10 node ls, 10 writes.
l=$(lab_leader) || lab_fail "no leader"
ov=() ow=()
for k in $(seq 1 10); do
    now_us && t=$NOW
    lab_sw "$l" node ls >/dev/null
    now_us && ov+=($(((NOW - t) / 1000)))
done
for k in $(seq 1 10); do
    now_us && t=$NOW
    lab_sw "$l" service create --detach --replicas 0 --name "o$k" busybox sleep 1 >/dev/null
    now_us && ow+=($(((NOW - t) / 1000)))
done
echo "failover cli_overhead node_ls $(summary "${ov[@]}")"
echo "failover cli_overhead write $(summary "${ow[@]}")"
# What a write through a follower costs (forwarded to the leader over the
# cluster port: one more mTLS connection per request).
f=$((l % 3 + 1))
of=()
for k in $(seq 1 10); do
    now_us && t=$NOW
    lab_sw "$f" service create --detach --replicas 0 --name "x$k" busybox sleep 1 >/dev/null
    now_us && of+=($(((NOW - t) / 1000)))
done
echo "failover cli_overhead write_via_follower $(summary "${of[@]}")"

times=() polls=() elects=() rejoins=()
for k in $(seq 1 "$TRIALS"); do
    l=$(lab_leader) || lab_fail "no leader before trial $k"
    pid=$(lab_daemon_pid "$l")
    [ -n "$pid" ] || lab_fail "h$l: no daemon pid"
    a=$((l % 3 + 1)) b=$(((l + 1) % 3 + 1))
    now_us && t0=$NOW
    kill -9 "$pid"
    # The loop forks nothing but the CLI calls (this machine pays 10-20 ms
    # per fork).
    new="" n=0 last_err="" calls=""
    while [ -z "$new" ]; do
        now_us
        [ $(((NOW - t0) / 1000)) -lt 30000 ] || lab_fail "trial $k: no survivor took a write within 30 s"
        for s in $a $b; do
            n=$((n + 1))
            now_us && c0=$NOW
            if out=$(lab_sw "$s" service create --detach --replicas 0 --name "f$k" busybox sleep 1 2>&1); then
                res=ok
            else
                res=err
                last_err=${out%%$'\n'*}
                # A write that committed but whose reply was lost would
                # make the retry fail with a name conflict: a success.
                case "$out" in *"already exists"* | *"name conflicts"*) res=ok ;; esac
            fi
            now_us
            calls="$calls h$s@$(((c0 - t0) / 1000)):$res:$(((NOW - c0) / 1000))"
            if [ "$res" = ok ]; then
                new=$s
                break
            fi
        done
        [ -n "$new" ] || sleep "$POLL"
    done
    ms=$(((NOW - t0) / 1000))
    times+=("$ms") polls+=("$n")
    nl=$(lab_leader) || nl="?"
    # When the new leader's raft logged its election (after the kill).
    el="?"
    if [ "$nl" != "?" ] && e=$(elected_at "$nl") && [ -n "$e" ] && [ "$e" -ge $((t0 / 1000)) ]; then
        el=$((e - t0 / 1000))
        elects+=("$el")
    fi
    echo "failover trial=$k killed=h$l wrote_via=h$new new_leader=h$nl ms=$ms elected_log_ms=$el cli_calls=$n"
    lab_log "trial $k: calls (host@start_ms:result:duration_ms):$calls; last error: ${last_err:-none}"
    # The daemon is gone before the restart (lab_restart would TERM it).
    end=$(($(date +%s) + 30))
    while kill -0 "$pid" 2>/dev/null; do
        [ "$(date +%s)" -lt "$end" ] || lab_fail "h$l: daemon $pid alive 30 s after kill -9"
        sleep 0.05
    done
    r0=$(date +%s%N)
    lab_restart "$l"
    wait_healthy "$l"
    rejoins+=($((($(date +%s%N) - r0) / 1000000)))
    sleep 1
done
echo "failover trials=$TRIALS $(summary "${times[@]}")"
[ ${#elects[@]} = 0 ] || echo "failover elected_log n=${#elects[@]} $(summary "${elects[@]}")"
echo "failover rejoin $(summary "${rejoins[@]}")"
echo "failover cli_calls_per_trial $(summary "${polls[@]}" | sed 's/_ms//g')"

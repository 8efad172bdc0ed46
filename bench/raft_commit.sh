#!/bin/bash
# Raft commit benchmark (issue 3): swarmc's raft node as real processes on
# loopback (tests/raftnode/raftnode: the real node, LMDB with fsync, the
# plain TCP transport), writing small entries (one task create, ~60 bytes).
#
#   raft_commit.sh [commit|commit-1|commit-3|election|all]
#
# commit:   first the disk's floor in the same dir (bench/fsync_floor: one
#           fdatasync, one LMDB commit), then for 1 and 3 voters, N writes from 1, 16 and 256 concurrent
#           proposers inside the leader's process (closed loop: each
#           proposer issues its next write when the last commits); prints
#           throughput and p50/p99/max commit latency.
# election: 3 voters; 20 times: kill -9 the leader, time until a survivor
#           leads and acknowledges a write; restart the killed member and
#           let it catch up. Prints the median and the max.
# Data dirs live under $BENCH_TMP (default /var/tmp: a disk, not tmpfs).
# Needs RAFTNODE (default: build/tests/raftnode/raftnode).
set -eu

HERE=$(cd "$(dirname "$0")" && pwd)
export RAFTNODE=${RAFTNODE:-$HERE/../build/tests/raftnode/raftnode}
FSYNC_FLOOR=${FSYNC_FLOOR:-$(dirname "$RAFTNODE")/../../bench/fsync_floor}
export RAFTNODE_TMP=${BENCH_TMP:-/var/tmp}
TRIALS=${TRIALS:-20}

bench_writes() { # proposers -> number of writes for that load
    case "$1" in 1) echo 1000 ;; 16) echo 8000 ;; *) echo 30000 ;; esac
}

run_commit() { # voters
    MEMBERS=$1
    . "$HERE/../tests/raftnode/lib.sh"
    pick_ports
    for ((i = 0; i < MEMBERS; i++)); do start_member "$i"; done
    local deadline=$((SECONDS + 30))
    until find_leader; do
        [ "$SECONDS" -lt "$deadline" ] || fail "no leader"
        sleep 0.05
    done
    for p in 1 16 256; do
        REQ_TIMEOUT=600 req "$LEADER" "BENCH $p $(bench_writes "$p")"
        printf 'raft_commit voters=%d proposers=%-3d %s\n' "$MEMBERS" "$p" "${R#BENCH }"
    done
}

run_election() {
    MEMBERS=3
    . "$HERE/../tests/raftnode/lib.sh"
    pick_ports
    for i in 0 1 2; do start_member "$i"; done
    local times=() n=0 t0 killed
    until find_leader; do sleep 0.05; done
    req "$LEADER" "PUT warmup" # every member has heard from the leader
    sleep 1
    for trial in $(seq 1 "$TRIALS"); do
        find_leader || fail "no leader before trial $trial"
        killed=$LEADER
        t0=$(date +%s%N)
        kill_member "$killed"
        until find_leader && req "$LEADER" "PUT e$trial" && [ "${R%% *}" = OK ]; do
            [ $((($(date +%s%N) - t0) / 1000000000)) -lt 30 ] || fail "no new leader after 30 s"
            sleep 0.01
        done
        times+=($((($(date +%s%N) - t0) / 1000000)))
        start_member "$killed"
        sleep 1.5 # the restarted member rejoins before the next kill
    done
    sorted=$(printf '%s\n' "${times[@]}" | sort -n)
    median=$(echo "$sorted" | sed -n "$(((TRIALS + 1) / 2))p")
    max=$(echo "$sorted" | tail -n 1)
    echo "raft_election trials=$TRIALS median_ms=$median max_ms=$max all_ms=$(echo $sorted | tr ' ' ,)"
}

# Each cluster runs in its own process: lib.sh owns the process's exit trap.
case "${1:-all}" in
commit-1) run_commit 1 ;;
commit-3) run_commit 3 ;;
election) run_election ;;
floor)
    if [ -x "$FSYNC_FLOOR" ]; then
        "$FSYNC_FLOOR" 200 "$RAFTNODE_TMP"
    else
        echo "fsync_floor not built ($FSYNC_FLOOR): floor skipped"
    fi
    ;;
commit) "$0" floor && "$0" commit-1 && "$0" commit-3 ;;
all) "$0" commit && "$0" election ;;
*)
    echo "usage: $0 [floor|commit|commit-1|commit-3|election|all]" >&2
    exit 2
    ;;
esac

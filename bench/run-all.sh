#!/usr/bin/env bash
# run-all.sh - builds swarmc in Release and runs every benchmark; the
# results (markdown) go to stdout and to $OUT.
#
#   1. scheduler_bench          sched_run alone, in memory (1,000 nodes,
#                               100,000 pending tasks)
#   2. scheduler_store_bench    the same through LMDB: read, sched_run,
#                               write back (1,000 per transaction, then as
#                               one entry)
#   3. store_bench              the store's create/list/update rates
#   4. convergence.sh           create/rm of 50 replicas vs the runc floor
#                               and Docker Swarm (same run when docker.io is
#                               installed: DOCKER=auto|0|1)
#   5. memory.sh                daemon and shim memory, idle and 100 tasks
#   6. fsync_floor              the disk's floor for a durable commit: small
#                               write + fdatasync/fsync, one LMDB commit
#   7. etcd.sh                  etcd's put throughput and latency, 1 and 3
#                               members, 1/16/256 clients (Raft reference;
#                               skipped when etcd-server is not installed)
#   8. join_time.sh             time for workers and managers to join a
#                               swarm (namespace lab, tests/lab/lib.sh)
#   9. failover.sh              3 managers in the namespace lab: kill -9 of
#                               the leader until a survivor takes a write
#                               (TRIALS, default 20)
#  10. control_throughput.sh    service creates/updates per second through
#                               the leader (1 and 8 clients) and a follower
#                               (8 clients), 3 managers in the namespace lab
#  11. manager_rss.sh           the manager daemon's memory with 1,000 tasks
#                               on 5 nodes (namespace lab)
#
# Usage (root): bench/run-all.sh
#   env: BUILD_DIR (default <top>/build-bench), OUT (default
#        $BUILD_DIR/bench-results.md), SKIP_BUILD=1,
#        ONLY="sched conv mem floor raft etcd join failover ctl rss" and everything
#        convergence.sh / memory.sh / etcd.sh / control_throughput.sh /
#        manager_rss.sh take (REPS, DOCKER, ETCD_REPS, CLIENTS, CTL_CLIENTS, K, SERVICES,
#        REPLICAS, HEARTBEAT...).
# Prints numbers; asserts nothing. See docs/benchmarks.md.
set -u -o pipefail
export LC_ALL=C
TOP=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
BUILD_DIR=${BUILD_DIR:-$TOP/build-bench}
OUT=${OUT:-$BUILD_DIR/bench-results.md}
export DOCKER_RAW_OUT=${DOCKER_RAW_OUT:-$BUILD_DIR/docker-swarm-raw.md}
ONLY=${ONLY:-"sched conv mem floor raft etcd join failover ctl rss"}
export SWARMC=${SWARMC:-$BUILD_DIR/cli/swarmc}

[ "$(id -u)" = 0 ] || {
    echo "run-all.sh: must run as root" >&2
    exit 1
}
if [ "${SKIP_BUILD:-0}" != 1 ]; then
    mkdir -p "$BUILD_DIR"
    BUILD_DIR=$BUILD_DIR BUILD_TYPE=Release "$TOP/deploy/build.sh" >"$BUILD_DIR/run-all-build.log" 2>&1 || {
        tail -n 30 "$BUILD_DIR/run-all-build.log" >&2
        echo "run-all.sh: build failed (log: $BUILD_DIR/run-all-build.log)" >&2
        exit 1
    }
fi
mkdir -p "$(dirname "$OUT")"

wanted() { case " $ONLY " in *" $1 "*) return 0 ;; esac; return 1; }
code() {
    echo '```'
    "$@" 2>&1
    echo '```'
}

{
    echo "# swarmc benchmarks, $(date -u +%FT%TZ)"
    echo
    echo '```'
    echo "machine: $(nproc) CPUs ($(awk -F': ' '/^model name/{print $2; exit}' /proc/cpuinfo)), $(awk '/MemTotal/{print $2" kB"}' /proc/meminfo)"
    echo "kernel:  $(uname -r); cgroup fs: $(stat -fc %T /sys/fs/cgroup)"
    echo "os:      $(. /etc/os-release && echo "$PRETTY_NAME")"
    echo "runc:    $(runc --version 2>/dev/null | tr '\n' ' ')"
    echo "swarmc:  $SWARMC ($(grep -E '^CMAKE_BUILD_TYPE' "$BUILD_DIR/CMakeCache.txt" 2>/dev/null | cut -d= -f2))"
    echo "load:    $(cut -d' ' -f1-3 /proc/loadavg) at start"
    echo '```'
    if wanted sched; then
        echo
        echo "## Scheduler"
        echo
        echo "sched_run alone (bench/scheduler_bench.c), 3 runs:"
        code sh -c "for i in 1 2 3; do '$BUILD_DIR/bench/scheduler_bench'; done"
        echo
        echo "Through the store (bench/scheduler_store_bench.c), 1,000 assignments per transaction, 3 runs:"
        code sh -c "for i in 1 2 3; do '$BUILD_DIR/bench/scheduler_store_bench' 1000 100000 100 1000; echo; done"
        echo
        echo "Through the store, every assignment in ONE entry (what a reconcile pass proposes):"
        code "$BUILD_DIR/bench/scheduler_store_bench" 1000 100000 100 0
        echo
        echo "Store rates (bench/store_bench.c):"
        code "$BUILD_DIR/bench/store_bench"
    fi
    if wanted conv; then
        "$TOP/bench/convergence.sh"
    fi
    if wanted mem; then
        "$TOP/bench/memory.sh"
    fi
    if wanted floor; then
        echo
        echo "## Durable commit floor"
        echo
        echo "bench/fsync_floor in /var/tmp (the filesystem the data dirs use), 3 runs:"
        code sh -c "for i in 1 2 3; do '$BUILD_DIR/bench/fsync_floor' 200 /var/tmp; done"
    fi
    if wanted raft; then
        echo
        echo "## Raft commit and election (bench/raft_commit.sh)"
        echo
        code env RAFTNODE="$BUILD_DIR/tests/raftnode/raftnode" FSYNC_FLOOR="$BUILD_DIR/bench/fsync_floor" \
            "$TOP/bench/raft_commit.sh" all
    fi
    if wanted etcd; then
        # etcd.sh prints the floor itself unless the floor part just did
        floor=$BUILD_DIR/bench/fsync_floor
        wanted floor && floor=none
        BUILD_DIR=$BUILD_DIR FSYNC_FLOOR=$floor "$TOP/bench/etcd.sh"
    fi
    if wanted join; then
        echo
        echo "## Join time (bench/join_time.sh, namespace lab)"
        echo
        code "$TOP/bench/join_time.sh"
    fi
    if wanted failover; then
        echo
        echo "## Failover after kill -9 of the leader (bench/failover.sh, namespace lab)"
        echo
        code "$TOP/bench/failover.sh"
    fi
    if wanted ctl; then
        echo
        echo "## Control-plane throughput (bench/control_throughput.sh, namespace lab)"
        echo
        code "$TOP/bench/control_throughput.sh"
    fi
    if wanted rss; then
        echo
        echo "## Manager memory with 1,000 tasks (bench/manager_rss.sh, namespace lab)"
        echo
        code "$TOP/bench/manager_rss.sh"
    fi
    echo
    echo "load at end: $(cut -d' ' -f1-3 /proc/loadavg)"
} | tee "$OUT"
echo "results written to $OUT" >&2

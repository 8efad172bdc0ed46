#!/bin/bash
# control_throughput.sh - control-plane write throughput (issue 4): service
# creates and service updates per second through the raft leader of a
# 3-manager swarm, and through a follower (which forwards each request to
# the leader over the cluster port), in the namespace lab of
# tests/lab/lib.sh (each host a network namespace on one bridge, all on
# this machine).
#
# h1 inits (`--dispatcher-heartbeat 1s`), h2 and h3 join as managers. For
# each run, C concurrent clients (background shells) each do K operations
# back to back, and the wall time from before the first client starts to
# after the last one ends gives ops/s:
#   create  `service create --detach --replicas 0 --name <unique> busybox
#           sleep 1` (0 replicas: no image and no container, only the
#           service object through raft)
#   update  `service update --detach --env-add K=<k> <service>` on the
#           services the create run made (a new spec version through raft)
# Two ways to run the CLI:
#   lab     lab_sw: timeout + nsenter --net + unshare --uts + sh + swarmc,
#           five execs per call (what the lab tests do)
#   direct  swarmc alone (one exec, no timeout wrapper), from the root
#           namespace, with the host's --data-dir/--run-dir (the CLI only
#           talks to the daemon's unix socket; the daemon itself still runs
#           in the host's namespace)
# Runs: leader x {lab, direct} x CTL_CLIENTS (default "1 8") x {create, update},
# then follower x {lab, direct} x FOLLOWER_CLIENTS (default 8).
#
# Also printed for each run: failures, the CPU time of the client side per
# operation (the CLI processes and their wrappers, from bash's `times`), the leader's (and for a follower run
# the follower's) daemon CPU time per operation (utime+stime from
# /proc/<pid>/stat), and the whole machine's busy CPU share over the run
# (from /proc/stat), to tell whether the daemon, the CLI processes or the
# disk limit the rate. First: the cost of one fork+exec (/bin/true) and of
# one read-only CLI call (`node ls`) each way.
#
# Usage (root): bench/control_throughput.sh
#   env: SWARMC (default /work/build-full/cli/swarmc) CTL_CLIENTS="1 8" K=25
#        FOLLOWER_CLIENTS=8 MODES="lab direct" and tests/lab/lib.sh's
#        settings.
# Prints numbers; asserts nothing (fails only when the lab cannot be set up).
set -eu
export LC_ALL=C
HERE=$(cd "$(dirname "$0")" && pwd)
export SWARMC=${SWARMC:-/work/build-full/cli/swarmc}
CLIENTS=${CTL_CLIENTS:-"1 8"}
K=${K:-25}
FOLLOWER_CLIENTS=${FOLLOWER_CLIENTS:-8}
MODES=${MODES:-"lab direct"}
[ -x "$SWARMC" ] || {
    echo "control_throughput.sh: no swarmc binary at $SWARMC" >&2
    exit 1
}
. "$HERE/../tests/lab/lib.sh"

# us since the epoch, in $NOW, without a fork (bash 5's EPOCHREALTIME)
now_us() { NOW=${EPOCHREALTIME/./}; }
TCK=$(getconf CLK_TCK)
# utime+stime of pid $1 in clock ticks, in $CPU (no fork)
cpu_ticks() {
    local line rest
    CPU=0
    [ -n "$1" ] && read -r line <"/proc/$1/stat" 2>/dev/null || return 0
    rest=${line##*) }
    # shellcheck disable=SC2086 # split on purpose
    set -- $rest
    CPU=$((${12} + ${13}))
}
# busy and total jiffies of the whole machine, in $BUSY $TOTAL (no fork)
machine_ticks() {
    local u n s idle iow irq sirq st
    read -r _ u n s idle iow irq sirq st _ </proc/stat
    BUSY=$((u + n + s + irq + sirq + st))
    TOTAL=$((BUSY + idle + iow))
}
# CPU ms (user+sys) of this shell's waited-for descendants, in $KIDS: the
# CLI processes and the client shells (bash's times; no fork)
kids_ms() {
    local u s v t=0
    times >"$LAB_DIR/times"
    { read -r _ _ && read -r u s; } <"$LAB_DIR/times"
    for v in "$u" "$s"; do
        v=${v%s}                                     # XmY.ZZZ
        t=$((t + ${v%%m*} * 60000))                  # minutes
        v=${v#*m}                                    # Y.ZZZ
        t=$((t + ${v%.*} * 1000 + 10#${v#*.}))
    done
    KIDS=$t
}

lab_create 3
lab_start_daemon 1 --dispatcher-heartbeat 1s
lab_join 2 1 manager
lab_join 3 1 manager

managers_ok() {
    local out
    out=$(lab_sw 1 node ls 2>/dev/null) || return 1
    [ "$(echo "$out" | grep -w Ready | grep -cwE 'Leader|Reachable')" = 3 ]
}
lab_wait_for 60 "3 Ready managers" managers_ok
sleep 1
L=$(lab_leader) || lab_fail "no leader"
F=$((L % 3 + 1))
lpid=$(lab_daemon_pid "$L")
fpid=$(lab_daemon_pid "$F")
echo "ctl leader=h$L follower=h$F cpus=$(nproc) load=$(cut -d' ' -f1-3 /proc/loadavg)"

# One CLI call on host i, either way.
cli() { # mode i ARGS...
    local mode=$1 i=$2
    shift 2
    if [ "$mode" = lab ]; then
        lab_sw "$i" "$@"
    else
        "$SWARMC" --data-dir "$LAB_DIR/h$i/data" --run-dir "$LAB_DIR/h$i/run" "$@"
    fi
}

# The fixed costs: a fork+exec, and a read-only call each way (10 each).
per_call() { # label CMD...
    local label=$1 t s=()
    shift
    for _ in 1 2 3 4 5 6 7 8 9 10; do
        now_us && t=$NOW
        "$@" >/dev/null
        now_us && s+=($(((NOW - t) / 1000)))
    done
    echo "ctl call $label median_ms=$(printf '%s\n' "${s[@]}" | sort -n | sed -n 5p) all_ms=$(echo "${s[@]}" | tr ' ' ,)"
}
per_call fork_exec_true /bin/true
for m in $MODES; do per_call "node_ls_$m" cli "$m" "$L" node ls; done

# One client: K operations, failures counted in $2.
client() { # mode host op name_prefix errfile
    local mode=$1 h=$2 op=$3 p=$4 err=$5 k n=0
    for k in $(seq 1 "$K"); do
        if [ "$op" = create ]; then
            cli "$mode" "$h" service create --detach --replicas 0 --name "$p-$k" busybox sleep 1 \
                >/dev/null 2>>"$err.log" || n=$((n + 1))
        else
            cli "$mode" "$h" service update --detach --env-add "K=$k" "$p-$k" \
                >/dev/null 2>>"$err.log" || n=$((n + 1))
        fi
    done
    echo "$n" >"$err"
}

run=0
# Runs C clients doing op on host h; names <tag>c<client>-<k>.
measure() { # target mode op C tag
    local target=$1 mode=$2 op=$3 c=$4 tag=$5 h j t0 l0 f0 b0 m0 k0 ms ops fails=0 e
    if [ "$target" = leader ]; then h=$L; else h=$F; fi
    run=$((run + 1))
    e=$LAB_DIR/ctl-err.$run
    cpu_ticks "$lpid" && l0=$CPU
    cpu_ticks "$fpid" && f0=$CPU
    machine_ticks && b0=$BUSY m0=$TOTAL
    kids_ms && k0=$KIDS
    now_us && t0=$NOW
    for j in $(seq 1 "$c"); do
        client "$mode" "$h" "$op" "${tag}c$j" "$e.$j" &
    done
    wait
    now_us
    ms=$(((NOW - t0) / 1000))
    machine_ticks
    kids_ms
    local kcpu=$((KIDS - k0))
    local busy=$(((BUSY - b0) * 100 / (TOTAL - m0 > 0 ? TOTAL - m0 : 1)))
    cpu_ticks "$lpid" && local lcpu=$(((CPU - l0) * 1000 / TCK))
    cpu_ticks "$fpid" && local fcpu=$(((CPU - f0) * 1000 / TCK))
    for j in $(seq 1 "$c"); do fails=$((fails + $(cat "$e.$j" 2>/dev/null || echo "$K"))); done
    ops=$((c * K))
    local fol=""
    [ "$target" = leader ] || fol=" follower_cpu_ms_per_op=$(awk -v a="$fcpu" -v n="$ops" 'BEGIN{printf "%.2f", a/n}')"
    echo "ctl target=$target cli=$mode op=$op clients=$c ops=$ops fails=$fails wall_ms=$ms" \
        "ops_per_s=$(awk -v n="$ops" -v t="$ms" 'BEGIN{printf "%.1f", n*1000/t}')" \
        "ms_per_op_per_client=$(awk -v t="$ms" -v k="$K" 'BEGIN{printf "%.1f", t/k}')" \
        "leader_cpu_ms_per_op=$(awk -v a="$lcpu" -v n="$ops" 'BEGIN{printf "%.2f", a/n}')$fol" \
        "cli_cpu_ms_per_op=$(awk -v a="$kcpu" -v n="$ops" 'BEGIN{printf "%.1f", a/n}')" \
        "machine_busy_pct=$busy"
    if [ "$fails" != 0 ]; then
        lab_log "run $run: $fails failures; first errors:"
        cat "$e".*.log 2>/dev/null | sort | uniq -c | sort -rn | head -n 5 >&2
    fi
}

for m in $MODES; do
    for c in $CLIENTS; do
        measure leader "$m" create "$c" "l$m$c"
        measure leader "$m" update "$c" "l$m$c"
    done
done
for m in $MODES; do
    for c in $FOLLOWER_CLIENTS; do
        measure follower "$m" create "$c" "f$m$c"
        measure follower "$m" update "$c" "f$m$c"
    done
done
echo "ctl services=$(cli direct "$L" service ls -q | wc -l) load=$(cut -d' ' -f1-3 /proc/loadavg)"
[ "$(lab_leader)" = "$L" ] || echo "ctl WARNING: the leader changed during the runs (now h$(lab_leader || echo '?'))"
for i in 1 2 3; do
    w=$(grep -ciE 'warn|error' "$(lab_data_dir "$i")/swarmc.log" || true)
    echo "ctl log h$i warn_or_error_lines=$w"
    [ "$w" = 0 ] || grep -iE 'warn|error' "$(lab_data_dir "$i")/swarmc.log" | sed 's/^[^ ]* //' |
        sort | uniq -c | sort -rn | head -n 5 | sed 's/^/ctl   /'
done

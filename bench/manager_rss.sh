#!/bin/bash
# manager_rss.sh - the manager daemon's memory with 1,000 tasks in a 5-node
# swarm (issue 4), in the namespace lab of tests/lab/lib.sh (each host a
# network namespace on one bridge, all on this machine, so all 1,000
# containers run here too).
#
# h1 inits (`--dispatcher-heartbeat $HEARTBEAT`, default 5s, swarmc's
# default: with 1s every node went Down under the load of starting 100
# containers at once and stayed Down, see docs/benchmarks.md); its daemon's VmRSS/VmHWM/Pss are
# read 5 s later (empty). h2..h5 join as workers, every host loads the
# busybox test image, then read again (5 nodes, no service). Then SERVICES
# (default 10) services of REPLICAS (default 100) replicas each:
#   service create --detach --replicas R --stop-grace-period 1s
#                  --name m<k> busybox sleep 100000
# one at a time (RAMP=1, the default: each service's tasks all running
# before the next is created; RAMP=0 creates them all at once), `service
# ls` polled every 2 s (progress every 10 s, at most WAIT_S, default 900 s,
# in all) until its REPLICAS column shows every task running. A node shown
# Down ends the run at once.
# 5 s later: the leader's daemon VmRSS, VmHWM (peak) and Pss, a worker's
# (h2) and every host's container count (`runc list`); the shims' count and
# Pss sum, the machine's MemAvailable drop. Then `service rm` of every
# service, a wait (at most WAIT_S) until no host has a container left, and
# the leader's VmRSS once more, with the daemons' open descriptors by kind
# and the mounts left under the lab's dir (right away and 15 s later). The
# lab harness removes the rest.
#
# Before starting it checks that the machine has the room (MemAvailable
# for about 3 MiB per task, pid_max and the user's process limit for about
# 4 pids per task); if not, it lowers REPLICAS and says so.
#
# Usage (root): bench/manager_rss.sh
#   env: SWARMC (default /work/build-full/cli/swarmc) SERVICES=10
#        REPLICAS=100 WAIT_S=900 RAMP=1 HEARTBEAT=5s and tests/lab/lib.sh's settings.
# Prints numbers; asserts nothing (fails only when the lab cannot be set up
# or the tasks do not all run within WAIT_S).
set -eu
export LC_ALL=C
HERE=$(cd "$(dirname "$0")" && pwd)
export SWARMC=${SWARMC:-/work/build-full/cli/swarmc}
SERVICES=${SERVICES:-10}
REPLICAS=${REPLICAS:-100}
WAIT_S=${WAIT_S:-900}
RAMP=${RAMP:-1}
HEARTBEAT=${HEARTBEAT:-5s}
NODES=5
[ -x "$SWARMC" ] || {
    echo "manager_rss.sh: no swarmc binary at $SWARMC" >&2
    exit 1
}
. "$HERE/../tests/lab/lib.sh"

kb() { awk -v k="$2:" '$1 == k {print $2; f=1} END{if(!f) print 0}' "$1" 2>/dev/null || echo 0; }
mem_of() { # label pid: VmRSS VmHWM Pss of a daemon
    echo "rss $1 pid=$2 vmrss_kb=$(kb "/proc/$2/status" VmRSS) vmhwm_kb=$(kb "/proc/$2/status" VmHWM) pss_kb=$(kb "/proc/$2/smaps_rollup" Pss) threads=$(kb "/proc/$2/status" Threads) fds=$(ls "/proc/$2/fd" 2>/dev/null | wc -l)"
}
avail_kb() { kb /proc/meminfo MemAvailable; }

# Room for the tasks: about 3 MiB (a shim's Pss is about 0.6 MiB, a busybox
# sleep's RSS about 1.4 MiB, plus page cache and kernel objects) and 4 pids
# (shim, sleep, runc while starting) per task, with a margin.
total=$((SERVICES * REPLICAS))
room_mem=$(($(avail_kb) / 1024 / 3 / 2))
room_pid=$(($(cat /proc/sys/kernel/pid_max) / 4 / 2))
ul=$(ulimit -u)
[ "$ul" = unlimited ] || [ $((ul / 4 / 2)) -ge "$room_pid" ] || room_pid=$((ul / 4 / 2))
room=$((room_mem < room_pid ? room_mem : room_pid))
echo "rss room: MemAvailable $(avail_kb) kB, pid_max $(cat /proc/sys/kernel/pid_max), ulimit -u $ul: about $room tasks"
if [ "$total" -gt "$room" ]; then
    REPLICAS=$((room / SERVICES))
    echo "rss NOTE: not enough room for $total tasks; REPLICAS lowered to $REPLICAS"
    total=$((SERVICES * REPLICAS))
fi

lab_create $NODES
lab_start_daemon 1 --dispatcher-heartbeat "$HEARTBEAT"
sleep 5
lpid=$(lab_daemon_pid 1)
mem_of "leader empty (5 s after init)" "$lpid"
for i in $(seq 2 $NODES); do lab_join "$i" 1; done
for i in $(seq 1 $NODES); do lab_load_busybox "$i"; done
ready() {
    [ "$(lab_sw 1 node ls 2>/dev/null | grep -cw Ready)" = "$NODES" ]
}
lab_wait_for 60 "$NODES nodes Ready" ready
sleep 5
mem_of "leader $NODES nodes, images loaded, no service" "$lpid"
wpid=$(lab_daemon_pid 2)
mem_of "worker h2, no service" "$wpid"
avail0=$(avail_kb)

# Tasks running in total: the sum of the x in the x/y of `service ls`.
running() {
    lab_sw 1 service ls 2>/dev/null |
        awk '{ for (k = 1; k <= NF; k++) if ($k ~ /^[0-9]+\/[0-9]+$/) { split($k, a, "/"); n += a[1] } } END { print n + 0 }'
}
containers() { # host
    runc --root "$(lab_runc_root "$1")" list -q 2>/dev/null | grep -c . || true
}
down_nodes() { lab_sw 1 node ls 2>/dev/null | awk '$0 ~ / Down / { for (k = 1; k <= NF; k++) if ($k ~ /^h[0-9]+$/) printf "%s ", $k }'; }
# Waits until at least $1 tasks run; progress every 10 s; fails at the
# deadline, or at once when a node is Down (its tasks would be shut down
# and left pending).
wait_running() { # count
    local n now last=0 d
    while :; do
        n=$(running)
        [ "$n" -ge "$1" ] && return 0
        now=$(date +%s)
        if [ $((now - last)) -ge 10 ]; then
            lab_log "running $n/$1 after $(((now * 1000 - t0 / 1000000) / 1000)) s; load $(cut -d' ' -f1 /proc/loadavg); leader VmRSS $(kb "/proc/$lpid/status" VmRSS) kB"
            last=$now
            d=$(down_nodes)
            [ -z "$d" ] || lab_fail "nodes Down: $d($n/$1 tasks running; $(grep -hc 'heartbeat failure' "$(lab_data_dir 1)/swarmc.log") heartbeat failures in h1's log)"
        fi
        [ "$now" -lt "$end" ] || lab_fail "only $n of $1 tasks running after ${WAIT_S}s"
        sleep 2
    done
}
t0=$(date +%s%N)
end=$(($(date +%s) + WAIT_S))
for k in $(seq 1 "$SERVICES"); do
    c0=$(date +%s%N)
    lab_sw 1 service create --detach --replicas "$REPLICAS" --stop-grace-period 1s --name "m$k" \
        busybox sleep 100000 >/dev/null || lab_fail "service create m$k"
    c1=$(date +%s%N)
    # RAMP=1: one service at a time (wait for its tasks before the next)
    if [ "$RAMP" = 1 ]; then
        wait_running $((k * REPLICAS))
        echo "rss service m$k: create returned in $(((c1 - c0) / 1000000)) ms, $((k * REPLICAS)) tasks running after $((($(date +%s%N) - c0) / 1000000)) ms; leader VmRSS $(kb "/proc/$lpid/status" VmRSS) kB"
    fi
done
echo "rss created $SERVICES services x $REPLICAS replicas = $total tasks (RAMP=$RAMP) in $((($(date +%s%N) - t0) / 1000000)) ms"
wait_running "$total"
echo "rss all $total tasks running after $((($(date +%s%N) - t0) / 1000000)) ms"
sleep 5
mem_of "leader $total tasks running" "$lpid"
mem_of "worker h2, $total tasks in the swarm" "$wpid"
per=""
for i in $(seq 1 $NODES); do per="$per h$i=$(containers "$i")"; done
echo "rss containers per host:$per"
# The shims: `swarmc shim` processes with this lab's dir on their command line.
shims=$(grep -alsF -f <(printf '%s\n' "$LAB_DIR/") /proc/[0-9]*/cmdline 2>/dev/null |
    while read -r f; do tr '\0' ' ' <"$f" 2>/dev/null | grep -q ' shim ' && f=${f#/proc/} && echo "${f%/cmdline}"; done || true)
nshims=$(echo "$shims" | grep -c . || true)
spss=0
for p in $shims; do spss=$((spss + $(kb "/proc/$p/smaps_rollup" Pss))); done
echo "rss shims n=$nshims pss_sum_kb=$spss pss_per_shim_kb=$((nshims > 0 ? spss / nshims : 0))"
echo "rss machine MemAvailable drop with the tasks: $((avail0 - $(avail_kb))) kB"
echo "rss leader service ls: $(lab_sw 1 service ls 2>/dev/null | awk 'NR > 1' | wc -l) services"

t1=$(date +%s%N)
for k in $(seq 1 "$SERVICES"); do
    lab_sw 1 service rm "m$k" >/dev/null || lab_fail "service rm m$k"
done
gone() {
    local i
    for i in $(seq 1 $NODES); do [ "$(containers "$i")" = 0 ] || return 1; done
}
end=$(($(date +%s) + WAIT_S))
last=0
until gone; do
    now=$(date +%s)
    if [ $((now - last)) -ge 10 ]; then
        left=0
        for i in $(seq 1 $NODES); do left=$((left + $(containers "$i"))); done
        lab_log "$left containers left after $(((now * 1000 - t1 / 1000000) / 1000)) s"
        last=$now
    fi
    [ "$now" -lt "$end" ] || lab_fail "containers left ${WAIT_S}s after service rm"
    sleep 2
done
echo "rss all containers gone $((($(date +%s%N) - t1) / 1000000)) ms after the first service rm"
fd_kinds() { # pid: its open descriptors counted by kind
    local f t
    for f in /proc/"$1"/fd/*; do
        t=$(readlink "$f" 2>/dev/null) || continue
        case "$t" in /*) echo file ;; *) echo "${t%%:*}" ;; esac
    done | sort | uniq -c | awk '{printf "%s=%s ", $2, $1}'
}
lab_mounts() { awk -v d="$LAB_DIR/" 'index($5, d) == 1' /proc/self/mountinfo | wc -l; }
for w in 0 15; do
    sleep "$w"
    echo "rss after service rm +${w}s: mounts under the lab dir=$(lab_mounts)" \
        "leader fds: $(fd_kinds "$lpid")worker h2 fds: $(fd_kinds "$wpid")"
done
mem_of "leader after service rm" "$lpid"
mem_of "worker h2 after service rm" "$wpid"
for i in $(seq 1 $NODES); do
    w=$(grep -ciE 'warn|error' "$(lab_data_dir "$i")/swarmc.log" || true)
    echo "rss log h$i warn_or_error_lines=$w"
    [ "$w" = 0 ] || grep -iE 'warn|error' "$(lab_data_dir "$i")/swarmc.log" | cut -d' ' -f2- |
        sed -E 's/[0-9a-z]{25}/<id>/g; s/[0-9]+(\.[0-9]+)?( ?ms| s)/N\2/g; s/[0-9.]+:[0-9]+/<addr>/g' |
        sort | uniq -c | sort -rn | head -n 6 | sed 's/^/rss   /'
done

#!/bin/bash
# Self-test of the lab harness (tests/lab/lib.sh): three hosts, their
# connectivity, partitions, one-way and partial loss, isolation, unplugging,
# daemons killed and restarted, and a cleanup that leaves nothing behind.
. "$(dirname "$0")/lib.sh"

lab_create 3
addrs="$(lab_addr 1) $(lab_addr 2) $(lab_addr 3)"

# Nothing in the root namespace.
for a in $addrs; do
    ! ip -o addr show | grep -qF " $a/" || lab_fail "$a is in the root namespace"
done
! ip -o link show | grep -qF "$LAB_PREFIX" || lab_fail "a lab link is in the root namespace"

pairs="1:2 1:3 2:1 2:3 3:1 3:2"
all_reach() {
    local p
    for p in $pairs; do
        lab_ping "${p%:*}" "${p#*:}" || lab_fail "host ${p%:*} cannot ping host ${p#*:}"
    done
}
lab_log "every host pings every other"
all_reach

lab_log "a daemon on each host"
for i in 1 2 3; do lab_start_daemon "$i"; done
for i in 1 2 3; do
    out=$(lab_sw "$i" node ls) || lab_fail "host $i: node ls failed"
    [ "$(echo "$out" | grep -c Leader)" = 1 ] || lab_fail "host $i: node ls: $out"
    echo "$out" | grep -qw "h$i" || lab_fail "host $i: hostname is not h$i: $out"
    pid=$(lab_daemon_pid "$i")
    [ -n "$pid" ] || lab_fail "host $i: no daemon pid"
    [ "$(stat -L -c %i /proc/"$pid"/ns/net)" = "$(stat -L -c %i /run/netns/"$(lab_ns "$i")")" ] ||
        lab_fail "host $i: the daemon is not in the host's namespace"
done

lab_log "a container on host 1"
lab_load_busybox 1
lab_sw 1 service create --name keep --replicas 1 --stop-grace-period 1s busybox sleep 100000 \
    >/dev/null || lab_fail "service create"
running() {
    lab_sw 1 service ps --format json keep |
        jq -e -s '[.[] | select(.status.state == "TASK_STATE_RUNNING")] | length == 1' >/dev/null
}
lab_wait_for 60 "the task on host 1 running" running
cpid=$(lab_sw 1 service ps --format json keep | jq -s -r '.[0].status.container.pid')
tid=$(lab_sw 1 service ps --format json keep | jq -s -r '.[0].id')
cgroups() { ls -d /sys/fs/cgroup/swarmc/"$tid" /sys/fs/cgroup/*/swarmc/"$tid" 2>/dev/null || true; }
[ -n "$(cgroups)" ] || lab_fail "no cgroup named after task $tid"
kill -0 "$cpid" 2>/dev/null || lab_fail "no container process ($cpid)"
grep -qF " $LAB_DIR/" /proc/mounts || lab_fail "the container's rootfs is not in the root mount namespace"

lab_log "partition 1 | 2"
lab_partition 1 2
! lab_ping 1 2 || lab_fail "1 pings 2 across the partition"
! lab_ping 2 1 || lab_fail "2 pings 1 across the partition"
[ "$(lab_udp_probe 1 2)" = 0 ] || lab_fail "udp 1->2 crosses the partition"
[ "$(lab_udp_probe 2 1)" = 0 ] || lab_fail "udp 2->1 crosses the partition"
for p in 1:3 3:1 2:3 3:2; do
    lab_ping "${p%:*}" "${p#*:}" || lab_fail "partition 1|2 cut ${p%:*} -> ${p#*:}"
done
lab_heal 1 2
all_reach

lab_log "one-way cut 1 -> 3"
lab_cut_oneway 1 3
[ "$(lab_udp_probe 1 3)" = 0 ] || lab_fail "udp 1->3 passes the one-way cut"
[ "$(lab_udp_probe 3 1)" = 3 ] || lab_fail "udp 3->1 lost under the cut 1->3 only"
! lab_ping 1 3 || lab_fail "1 pings 3 across the one-way cut"
lab_ping 1 2 && lab_ping 2 3 || lab_fail "the one-way cut 1->3 cut another path"
lab_heal 1 3
all_reach

lab_log "partial loss 2 -> 3"
lab_loss 2 3 100
[ "$(lab_udp_probe 2 3)" = 0 ] || lab_fail "udp 2->3 passes 100% loss"
[ "$(lab_udp_probe 3 2)" = 3 ] || lab_fail "udp 3->2 lost under 2->3 loss"
lab_loss 2 3 50
got=$(lab_udp_probe 2 3 200)
[ "$got" -ge 40 ] && [ "$got" -le 160 ] || lab_fail "50% loss let $got of 200 through"
lab_log "50% loss: $got of 200 through"
lab_heal 2 3
[ "$(lab_udp_probe 2 3 20)" = 20 ] || lab_fail "loss 2->3 not healed"

lab_log "isolate 3, unplug 2"
lab_isolate 3
! lab_ping 3 1 && ! lab_ping 2 3 || lab_fail "3 is not isolated"
lab_ping 1 2 || lab_fail "isolating 3 cut 1 -> 2"
lab_unplug 2
! lab_ping 1 2 || lab_fail "1 pings an unplugged 2"
lab_heal_all
lab_wait_for 10 "1 pings 2 after plug" lab_ping 1 2
all_reach

lab_log "kill -9 and restart host 1's daemon"
lab_kill 1
[ -z "$(lab_daemon_pid 1)" ] || lab_fail "daemon 1 still holds its lock"
! lab_sw 1 node ls >/dev/null 2>&1 || lab_fail "node ls answered with the daemon dead"
lab_sw 2 node ls >/dev/null || lab_fail "host 2 suffered from host 1's kill"
lab_restart 1
lab_sw 1 node ls | grep -q Leader || lab_fail "host 1: node ls after restart"
lab_wait_for 30 "the task re-adopted" running
[ "$(lab_sw 1 service ps --format json keep | jq -s -r '.[0].status.container.pid')" = "$cpid" ] ||
    lab_fail "the container was not re-adopted"
lab_log "SIGTERM and restart host 2's daemon"
lab_restart 2
lab_sw 2 node ls | grep -q Leader || lab_fail "host 2: node ls after restart"

logs=$(lab_logs 20)
[ "$(echo "$logs" | grep -c 'daemon: started')" -ge 3 ] || lab_fail "lab_logs: $logs"

lab_log "cleanup"
prefix=$LAB_PREFIX
dir=$LAB_DIR
lab_cleanup
lab_cleanup # idempotent
left=$(lab_leftovers "$prefix" "$dir") || lab_fail "cleanup left: $left"
! kill -0 "$cpid" 2>/dev/null || lab_fail "the container ($cpid) outlived the cleanup"
[ -z "$(cgroups)" ] || lab_fail "the container's cgroups outlived the cleanup: $(cgroups)"
lab_log "ok"

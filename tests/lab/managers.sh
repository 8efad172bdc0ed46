#!/bin/bash
# Three managers and a worker: managers join with the manager token and
# become raft voters over the cluster port; a follower refuses cluster
# commands to the leader; kill -9 of the leader: another manager leads
# within seconds, nothing acknowledged is lost, the worker finds the new
# leader, the dead leader's tasks are rescheduled; the old leader comes back
# as a follower and catches up; a follower partitioned away refuses writes
# while the majority goes on, and catches up once healed; two of three
# managers lost: no leader, then `init --force-new-cluster` on the survivor
# keeps every service and takes new managers.
. "$(dirname "$0")/lib.sh"

lab_create 4
lab_start_daemon 1 --dispatcher-heartbeat 1s
lab_join 2 1 manager
lab_join 3 1 manager
lab_join 4 1
for i in 1 2 3 4; do lab_load_busybox "$i"; done

ready() {
    [ "$(lab_sw "$1" node ls --format json |
        jq -s '[.[] | select(.status.state == "NODE_STATE_READY")] | length')" = "$2" ]
}
lab_wait_for 30 "4 nodes ready" ready 1 4
nodes=$(lab_sw 1 node ls)
[ "$(echo "$nodes" | grep -c Reachable)" = 2 ] || lab_fail "not two reachable managers: $nodes"
echo "$nodes" | grep -w h1 | grep -qw Leader || lab_fail "h1 is not the leader: $nodes"
echo "$nodes" | grep -w h4 | grep -qvw Reachable || lab_fail "h4 is a manager: $nodes"

lab_log "a follower forwards cluster commands to the leader"
lab_sw 2 service create --detach --name via-h2 --replicas 0 busybox sleep 1 >/dev/null ||
    lab_fail "service create on a follower"
lab_sw 1 service inspect via-h2 >/dev/null || lab_fail "the leader lacks via-h2"
lab_sw 3 node ls | grep '\*' | grep -qw h3 || lab_fail "node ls on h3 does not mark h3"
[ "$(lab_sw 3 info --format json | jq -r .node_id)" = "$(cat "$(lab_data_dir 3)/node_id")" ] ||
    lab_fail "info on h3 names another node"

out=$(lab_sw 2 leave 2>&1) && lab_fail "leave without --force on a manager succeeded"
echo "$out" | grep -qF "Removing this node leaves 2 managers out of 3" || lab_fail "leave on h2: $out"

lab_log "services on the leader, replicated to every manager"
lab_sw 1 service create --name web --replicas 8 --stop-grace-period 1s busybox sleep 100000 \
    >/dev/null || lab_fail "service create web"
for k in 1 2 3 4 5; do
    lab_sw 1 service create --detach --name "s$k" --replicas 0 busybox sleep 1 >/dev/null ||
        lab_fail "service create s$k"
done
running() {
    [ "$(lab_sw "$1" service ps --format json web |
        jq -s '[.[] | select(.desired_state == "TASK_STATE_RUNNING" and .status.state == "TASK_STATE_RUNNING")] | length')" = 8 ]
}
lab_wait_for 60 "8 tasks running" running 1

lab_log "kill -9 the leader (h1)"
lab_kill 1
end=$(($(date +%s) + 30))
until lab_sw 2 service create --detach --name probe --replicas 0 busybox sleep 1 >/dev/null 2>&1; do
    [ "$(date +%s)" -lt "$end" ] || lab_fail "no write through h2 within 30 s of the kill"
    sleep 0.1
done
new=$(lab_leader 2 3) || lab_fail "neither h2 nor h3 says it leads"
lab_log "h$new leads"
for s in web s1 s2 s3 s4 s5; do
    lab_sw "$new" service inspect "$s" >/dev/null || lab_fail "service $s lost in the failover"
done
h1_down() { lab_sw "$new" node ls | grep -w h1 | grep -qw Down; }
lab_wait_for 30 "h1 down" h1_down
on_h1() {
    local id
    id=$(cat "$(lab_data_dir 1)/node_id")
    [ "$(lab_sw "$new" service ps --format json web |
        jq -s --arg n "$id" '[.[] | select(.desired_state == "TASK_STATE_RUNNING" and .status.state == "TASK_STATE_RUNNING" and .node_id != $n)] | length')" = 8 ]
}
lab_wait_for 60 "8 tasks running off h1" on_h1
lab_wait_for 30 "the worker back with the new leader" ready "$new" 3
lab_sw "$new" service create --detach --name after --replicas 0 busybox sleep 1 >/dev/null ||
    lab_fail "the new leader does not take writes"

lab_log "h1 comes back as a follower"
lab_restart 1
lab_wait_for 30 "h1 ready" ready "$new" 4
[ "$(lab_leader 1 2 3)" = "$new" ] || lab_fail "the leader changed when h1 came back"
# Host $1's own store has applied everything host $2 (the leader) had
# (`info` on a follower reports the follower's applied index).
applied() { lab_sw "$1" info --format json | jq -r .raft_applied_index; }
caught_up() { [ "$(applied "$1")" -ge "$2" ]; }
lab_wait_for 30 "h1's store caught up" caught_up 1 "$(applied "$new")"
lab_log "partition a follower away: the majority writes, the minority refuses"
f=1
[ "$new" = 1 ] && f=2
o=$((6 - new - f)) # the third manager
lab_isolate "$f"
minority_refuses() {
    local out
    out=$(lab_sw "$f" service create --detach --name minority --replicas 0 busybox sleep 1 2>&1) &&
        return 1
    echo "$out" | grep -qE "does not have a leader|cannot reach the leader"
}
lab_wait_for 30 "the isolated h$f refusing writes" minority_refuses
lab_sw "$o" service create --detach --name majority --replicas 0 busybox sleep 1 >/dev/null ||
    lab_fail "the majority refused a write"
lab_heal_all
lab_wait_for 30 "h$f's store has the majority's write" caught_up "$f" "$(applied "$o")"
! lab_sw "$new" service inspect minority >/dev/null 2>&1 || lab_fail "the minority's write landed"

lab_log "lose two of three managers: no leader"
survivor=$new
for i in 1 2 3; do [ "$i" = "$survivor" ] || lab_kill "$i"; done
no_leader() { lab_sw "$survivor" service ls 2>&1 | grep -qF "The swarm does not have a leader"; }
lab_wait_for 30 "the survivor reports no leader" no_leader

lab_log "init --force-new-cluster on the survivor"
lab_kill "$survivor" TERM
lab_sw "$survivor" init --force-new-cluster >/dev/null || lab_fail "init --force-new-cluster"
for s in web s1 s2 s3 s4 s5 after majority; do
    lab_sw "$survivor" service inspect "$s" >/dev/null || lab_fail "service $s lost"
done
lab_sw "$survivor" service create --detach --name forced --replicas 0 busybox sleep 1 \
    >/dev/null || lab_fail "the forced cluster does not take writes"
lab_sw "$survivor" node ls | grep '\*' | grep -qw Leader || lab_fail "the survivor does not lead"
lab_sw 4 leave >/dev/null || lab_fail "h4 leave"
lab_join 4 "$survivor" manager
lab_wait_for 30 "the new manager h4 reachable" \
    sh -c "'$SWARMC' --data-dir '$(lab_data_dir "$survivor")' --run-dir '$(lab_run_dir "$survivor")' node ls 2>/dev/null | grep -w h4 | grep -q Reachable"
lab_log "ok"

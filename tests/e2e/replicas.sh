#!/bin/sh
# 3 replicas start and run as real runc containers; scale 3 -> 7 -> 1
# (scale-down prefers tasks that are not running); `service rm` removes
# every container.
. "$(dirname "$0")/lib.sh"
start_cluster

log "create web with 3 replicas"
sw service create --name web --replicas 3 --stop-grace-period 1s busybox sleep 100000 >/dev/null ||
    fail "service create"
running_is web 3 || fail "create returned before 3 tasks ran: $(count_tasks web running)"
[ "$(container_count)" = 3 ] || fail "expected 3 runc containers, found $(container_count)"
sw service ls | grep -q "web .*3/3" || fail "service ls does not show 3/3: $(sw service ls)"

log "scale to 7"
sw service scale web=7 >/dev/null || fail "scale to 7"
running_is web 7 || fail "7 tasks not running after scale"
[ "$(container_count)" = 7 ] || fail "expected 7 containers, found $(container_count)"

log "scale to 1"
sw service scale web=1 >/dev/null || fail "scale to 1"
wait_for 60 "1 running task" running_is web 1
wait_for 60 "containers of removed slots gone" sh -c "[ \$(runc --root '$RUN/runc' list -q | grep -c .) -le 1 ]"
slots=$(sw service ps --format json web | jq -s '[.[] | select(.desired_state == "TASK_STATE_RUNNING")] | map(.slot) | unique | length')
[ "$slots" = 1 ] || fail "expected one slot left, got $slots"

log "remove the service"
sw service rm web >/dev/null || fail "service rm"
wait_for 60 "every container removed" sh -c "[ \$(runc --root '$RUN/runc' list -q | grep -c .) -eq 0 ]"
sw service ls -q | grep -q . && fail "service still listed"
log "ok"

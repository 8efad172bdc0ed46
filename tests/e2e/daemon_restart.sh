#!/bin/sh
# kill -9 of the daemon, then `swarmc daemon`: services and tasks are intact,
# running containers are re-adopted (not restarted), and a container that
# died meanwhile is reported and replaced.
. "$(dirname "$0")/lib.sh"
start_cluster

sw service create --name keep --replicas 3 --restart-delay 0s --stop-grace-period 1s \
    busybox sleep 100000 >/dev/null || fail "create"
before=$(sw service ps --format json keep | jq -s -r '[.[] | select(.status.state == "TASK_STATE_RUNNING") | .id] | sort | join(",")')
victim=$(sw service ps --format json keep | jq -s -r '.[0].id')
victim_pid=$(sw service ps --format json keep | jq -s -r '.[0].status.container.pid')

pid=$(daemon_pid)
[ -n "$pid" ] || fail "no daemon pid"
log "kill -9 daemon $pid, and kill the container of $victim while it is down"
kill -9 "$pid"
sleep 0.5
kill -9 "$victim_pid"
sleep 0.5
sw daemon >/dev/null || fail "swarmc daemon did not start"

sw service ls | grep -q "keep" || fail "service lost"
wait_for 30 "3 running again" running_is keep 3
after=$(sw service ps --format json keep | jq -s -r '[.[] | select(.status.state == "TASK_STATE_RUNNING") | .id] | sort | join(",")')
# The two untouched tasks are still the same tasks (re-adopted).
for id in $(echo "$before" | tr ',' ' '); do
    [ "$id" = "$victim" ] && continue
    echo "$after" | grep -q "$id" || fail "task $id was not re-adopted"
done
sw service ps --format json keep | jq -s -e --arg id "$victim" '.[] | select(.id == $id and .status.state == "TASK_STATE_FAILED")' >/dev/null ||
    fail "the task whose container died while the daemon was down is not FAILED"
log "ok"

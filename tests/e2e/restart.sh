#!/bin/sh
# A task whose container is killed is replaced per its restart policy;
# with --restart-condition none it is not.
. "$(dirname "$0")/lib.sh"
start_cluster

sw service create --name r --replicas 2 --restart-delay 0s --stop-grace-period 1s \
    busybox sleep 100000 >/dev/null || fail "create r"
first=$(sw service ps --format json r | jq -s -r '[.[] | select(.status.state == "TASK_STATE_RUNNING")][0].id')
pid=$(sw service ps --format json r | jq -s -r --arg id "$first" '.[] | select(.id == $id) | .status.container.pid')
[ -n "$pid" ] && [ "$pid" != null ] || fail "no pid for task $first"
log "kill -9 the container of $first (pid $pid)"
kill -9 "$pid"
wait_for 30 "killed task reported failed" sh -c \
    "$SWARMC --data-dir '$DATA' --run-dir '$RUN' service ps --format json r | jq -s -e --arg id '$first' '.[] | select(.id == \$id and .status.state == \"TASK_STATE_FAILED\")'"
wait_for 30 "2 tasks running again" running_is r 2
err=$(sw service ps --format json r | jq -s -r --arg id "$first" '.[] | select(.id == $id) | .status.err')
echo "$err" | grep -q "non-zero exit (137)" || fail "unexpected error for the killed task: $err"

log "restart condition none: not replaced"
sw service create --name once --restart-condition none --stop-grace-period 1s \
    busybox sleep 100000 >/dev/null || fail "create once"
pid=$(sw service ps --format json once | jq -s -r '.[0].status.container.pid')
kill -9 "$pid"
wait_for 30 "task failed" sh -c \
    "$SWARMC --data-dir '$DATA' --run-dir '$RUN' service ps --format json once | jq -s -e '.[0].status.state == \"TASK_STATE_FAILED\"'"
sleep 2
[ "$(sw service ps --format json once | jq -s length)" = 1 ] || fail "condition none made a new task"
log "ok"

#!/bin/sh
# `service update`: a new image rolls out slot by slot (old tasks shut down,
# kept as history); --env-add reaches the containers; --force replaces tasks
# with an unchanged spec; scaling alone restarts nothing.
. "$(dirname "$0")/lib.sh"
start_cluster
sh "$E2E_DIR/../images/make-busybox-image.sh" "$T/v2.tar" busybox:v2 >/dev/null
sw image load -i "$T/v2.tar" >/dev/null || fail "load busybox:v2"

running_ids() {
    sw service ps --format json u |
        jq -s -r '[.[] | select(.status.state == "TASK_STATE_RUNNING") | .id] | sort | join(",")'
}
runs_image() {
    [ "$(sw service ps --format json u | jq -s --arg i "$1" '[.[] | select(.status.state == "TASK_STATE_RUNNING" and .spec.container.image == $i)] | length')" = "$2" ]
}

sw service create --name u --replicas 3 --stop-grace-period 0s busybox \
    sh -c 'echo "GREETING=$GREETING"; exec sleep 100000' >/dev/null || fail "create"
first=$(running_ids)

log "scale 3 -> 4 restarts nothing"
sw service scale u=4 >/dev/null || fail "scale"
for id in $(echo "$first" | tr ',' ' '); do
    running_ids | grep -q "$id" || fail "scaling replaced task $id"
done

log "new image, two slots at a time"
sw service update --image busybox:v2 --update-parallelism 2 u >/dev/null || fail "update image"
runs_image busybox:v2 4 || fail "not every task runs busybox:v2"
[ "$(sw service ps --format json u | jq -s '[.[] | select(.desired_state == "TASK_STATE_SHUTDOWN")] | length')" = 4 ] ||
    fail "the 4 old tasks are not kept as shut-down history"

log "env reaches the containers"
sw service update --env-add GREETING=hello u >/dev/null || fail "update env"
wait_for 30 "a container printed the new env" sh -c \
    "$SWARMC --data-dir '$DATA' --run-dir '$RUN' service logs u 2>/dev/null | grep -q 'GREETING=hello'"

log "--force replaces tasks"
before=$(running_ids)
sw service update --force u >/dev/null || fail "update --force"
after=$(running_ids)
for id in $(echo "$before" | tr ',' ' '); do
    echo "$after" | grep -q "$id" && fail "task $id survived --force"
done
running_is u 4 || fail "4 tasks not running after --force"
log "ok"

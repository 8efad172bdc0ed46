#!/bin/sh
# An unsatisfiable constraint leaves the task PENDING with Swarm's message;
# it is placed once the node gains the label.
. "$(dirname "$0")/lib.sh"
start_cluster

sw service create --detach --name c --constraint node.labels.zone==east --stop-grace-period 1s \
    busybox sleep 100000 >/dev/null || fail "create constrained"
pending() {
    sw service ps --format json c | jq -s -e '.[0].status.state == "TASK_STATE_PENDING" and (.[0].status.err // .[0].status.message | test("no suitable node"))'
}
wait_for 20 "task pending with no suitable node" pending
sw service ps --no-trunc c | grep -q "no suitable node (scheduling constraints not satisfied on 1 node)" ||
    fail "service ps does not show the scheduler's message: $(sw service ps --no-trunc c)"
sw node update --label-add zone=east self >/dev/null || fail "node update"
wait_for 30 "task running after the label was added" running_is c 1
log "ok"

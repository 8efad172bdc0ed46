#!/bin/sh
# A global service gets exactly one task on the one node.
. "$(dirname "$0")/lib.sh"
start_cluster

sw service create --name g --mode global --stop-grace-period 1s busybox sleep 100000 >/dev/null ||
    fail "create global"
running_is g 1 || fail "global task not running"
sleep 1
[ "$(sw service ps --format json g | jq -s length)" = 1 ] || fail "global service has more than one task"
sw service scale g=3 >/dev/null 2>&1 && fail "scaling a global service must fail"
log "ok"

#!/bin/sh
# Garbage on the control socket (random frames, oversized lengths, cut
# frames, requests with missing fields) never crashes the daemon or changes
# what is stored.
. "$(dirname "$0")/lib.sh"
: "${CONTROL_GARBAGE:?CONTROL_GARBAGE must point to the control_garbage binary}"
start_cluster
sw service create --name keep --replicas 1 --stop-grace-period 0s busybox sleep 100000 >/dev/null ||
    fail "create"
version=$(sw service inspect --format json keep | jq '.[0].meta.version')
"$CONTROL_GARBAGE" "$RUN/swarmc.sock" "${SEED:-$(date +%s)}" || fail "the daemon did not survive"
[ "$(sw service inspect --format json keep | jq '.[0].meta.version')" = "$version" ] ||
    fail "garbage changed the stored service"
running_is keep 1 || fail "the service no longer runs"
log "ok"

#!/bin/bash
# Certificates renew before they expire: a swarm made with --cert-expiry
# 20s (a manager, a second manager and a worker) keeps working well past
# that: each node renews at 50-80% of its certificate's life, saves it, and
# the managers keep replicating and answering.
. "$(dirname "$0")/lib.sh"

lab_create 3
lab_start_daemon 1 --dispatcher-heartbeat 1s --cert-expiry 20s
lab_join 2 1 manager
lab_join 3 1
crt() { sha256sum "$(lab_data_dir "$1")/certificates/node.crt" | cut -d' ' -f1; }
first2=$(crt 2)
first3=$(crt 3)
ready() {
    [ "$(lab_sw 1 node ls --format json |
        jq -s '[.[] | select(.status.state == "NODE_STATE_READY")] | length')" = 3 ]
}
lab_wait_for 30 "3 nodes ready" ready

lab_log "45 s: more than two certificate lifetimes"
for k in $(seq 1 9); do
    sleep 5
    lab_sw 2 service create --detach --name "r$k" --replicas 0 busybox sleep 1 >/dev/null ||
        lab_fail "a write through the second manager failed after ${k}x5 s"
done
ready || lab_fail "a node is no longer ready: $(lab_sw 1 node ls)"
[ "$(crt 2)" != "$first2" ] || lab_fail "the second manager did not renew its certificate"
[ "$(crt 3)" != "$first3" ] || lab_fail "the worker did not renew its certificate"
for i in 1 2 3; do
    grep -q "certificate renewed" "$(lab_data_dir "$i")/swarmc.log" ||
        lab_fail "host $i logged no renewal"
done
lab_log "ok"

#!/bin/sh
# Every bad input gets a one-line error and a non-zero exit, and changes
# nothing.
. "$(dirname "$0")/lib.sh"
start_cluster

sw service create --name ok --replicas 1 --stop-grace-period 1s busybox sleep 100000 >/dev/null ||
    fail "create ok"
version=$(sw service inspect --format json ok | jq '.[0].meta.version')

expect_error() {
    what=$1
    shift
    if out=$("$@" 2>&1); then
        fail "$what: succeeded: $out"
    fi
    lines=$(printf '%s\n' "$out" | grep -c .)
    [ "$lines" -ge 1 ] || fail "$what: no error message"
    log "$what -> $(printf '%s\n' "$out" | head -n 1)"
}

expect_error "bad replicas" sw service create --replicas abc busybox true
expect_error "negative replicas" sw service create --replicas -1 busybox true
expect_error "bad duration" sw service create --restart-delay 5x busybox true
expect_error "bad memory" sw service create --limit-memory 12q busybox true
expect_error "bad restart condition" sw service create --restart-condition sometimes busybox true
expect_error "bad constraint" sw service create --constraint 'node.labels.zone~=a' busybox true
expect_error "unknown flag" sw service create --no-such-flag busybox true
expect_error "duplicate name" sw service create --name ok busybox true
expect_error "unknown service (update)" sw service update --replicas 2 nosuch
expect_error "unknown service (rm)" sw service rm nosuch
expect_error "unknown service (scale)" sw service scale nosuch=2
expect_error "bad scale syntax" sw service scale ok=x
expect_error "malformed tarball" sh -c "head -c 3000 '$IMAGE_TAR' > '$T/trunc.tar' && $SWARMC --data-dir '$DATA' --run-dir '$RUN' image load -i '$T/trunc.tar'"
expect_error "not a tarball" sh -c "echo hello > '$T/hello.tar' && $SWARMC --data-dir '$DATA' --run-dir '$RUN' image load -i '$T/hello.tar'"
expect_error "missing file" sw image load -i "$T/does-not-exist.tar"
expect_error "image in use" sw image rm busybox:latest
expect_error "bad availability" sw node update --availability sleepy self

log "missing image: task rejected with a clear error"
sw service create --detach --name noimg nosuchimage:1 sleep 1 >/dev/null || fail "create noimg"
wait_for 20 "rejected task" sh -c \
    "$SWARMC --data-dir '$DATA' --run-dir '$RUN' service ps --format json noimg | jq -s -e '.[] | select(.status.state == \"TASK_STATE_REJECTED\") | .status.err | test(\"No such image\")'"

now=$(sw service inspect --format json ok | jq '.[0].meta.version')
[ "$now" = "$version" ] || fail "service ok changed ($version -> $now)"
running_is ok 1 || fail "service ok no longer running"
log "ok"

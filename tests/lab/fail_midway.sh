#!/bin/bash
# Helper of cleanup_check.sh: makes a two-host lab with daemons and a running
# container, writes "PREFIX DIR CONTAINER-PID" to $LAB_REPORT, then
#   exit:   fails (exit 1), as a test that finds a bug half-way does;
#   wait:   waits up to 5 minutes to be killed (by TERM, INT or KILL).
. "$(dirname "$0")/lib.sh"
mode=${1:-exit}
: "${LAB_REPORT:?}"

lab_create 2
lab_start_daemon 1
lab_start_daemon 2
lab_load_busybox 1
lab_sw 1 service create --name victim --replicas 1 --stop-grace-period 1s busybox sleep 100000 \
    >/dev/null || lab_fail "service create"
running() {
    lab_sw 1 service ps --format json victim |
        jq -e -s '[.[] | select(.status.state == "TASK_STATE_RUNNING")] | length == 1' >/dev/null
}
lab_wait_for 60 "the task running" running
cpid=$(lab_sw 1 service ps --format json victim | jq -s -r '.[0].status.container.pid')
lab_partition 1 2
echo "$LAB_PREFIX $LAB_DIR $cpid" >"$LAB_REPORT.tmp"
mv "$LAB_REPORT.tmp" "$LAB_REPORT"
case "$mode" in
exit)
    lab_fail "failing on purpose half-way"
    ;;
wait)
    # Short sleeps: bash runs a trap only between commands.
    for _ in $(seq 1 3000); do sleep 0.1; done
    lab_fail "nobody killed me"
    ;;
esac

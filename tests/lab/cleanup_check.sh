#!/bin/bash
# The lab is removed however its test ends: a failure half-way (exit 1),
# SIGTERM, SIGINT; and after SIGKILL, which no trap sees, cleanup-stale.sh
# removes it. Each case runs fail_midway.sh (two hosts, daemons, a running
# container, a partition) and then looks for anything left.
. "$(dirname "$0")/lib.sh"
here=$(cd "$(dirname "$0")" && pwd)
: "${SWARMC:?}"
work=$(mktemp -d /tmp/swarmc-labcheck.XXXXXX)
trap 'rm -rf "$work"' EXIT
# The failures here are on purpose: keep their logs out of the real ones.
export LAB_LOG_DIR=$work/logs

# Reads the report of a fail_midway.sh run into prefix, dir, cpid.
read_report() {
    [ -s "$1" ] || lab_fail "fail_midway.sh wrote no report ($1)"
    read -r prefix dir cpid <"$1"
}

# Waits up to 120 s for the report of a background run; fails if it died.
wait_report() {
    local end=$(($(date +%s) + 120))
    while [ ! -s "$1" ]; do
        kill -0 "$2" 2>/dev/null || lab_fail "fail_midway.sh ($2) died before it was ready"
        [ "$(date +%s)" -lt "$end" ] || lab_fail "fail_midway.sh ($2) not ready after 120 s"
        sleep 0.2
    done
}

expect_clean() {
    local left
    left=$(lab_leftovers "$prefix" "$dir") || lab_fail "$1: left behind: $left"
    ! kill -0 "$cpid" 2>/dev/null || lab_fail "$1: the container ($cpid) is still running"
    lab_log "$1: nothing left of $prefix"
}

lab_log "case 1: the test fails half-way"
rc=0
LAB_REPORT=$work/r1 bash "$here/fail_midway.sh" exit 2>"$work/err1" || rc=$?
[ "$rc" = 1 ] || { cat "$work/err1" >&2; lab_fail "fail_midway.sh exit: status $rc, want 1"; }
read_report "$work/r1"
grep -q "FAIL: failing on purpose" "$work/err1" || lab_fail "no FAIL line"
grep -q -- "--- h1 ($prefix): last" "$work/err1" || lab_fail "the daemon logs were not dumped"
grep -q "daemon: started" "$work/err1" || lab_fail "the dumped logs lack the daemon's lines"
[ -s "$LAB_LOG_DIR/$prefix-h2.swarmc.log" ] || lab_fail "the logs were not copied to LAB_LOG_DIR"
expect_clean "exit 1"

for sig in TERM INT; do
    lab_log "case: SIGTERM/SIGINT half-way ($sig)"
    # A background job of a non-interactive shell starts with SIGINT
    # ignored, and bash cannot trap a signal ignored on entry: reset it.
    LAB_REPORT=$work/r$sig env --default-signal=INT bash "$here/fail_midway.sh" wait \
        2>"$work/err$sig" &
    pid=$!
    wait_report "$work/r$sig" "$pid"
    read_report "$work/r$sig"
    kill -s "$sig" "$pid"
    rc=0
    wait "$pid" || rc=$?
    want=$([ "$sig" = TERM ] && echo 143 || echo 130)
    [ "$rc" = "$want" ] || { cat "$work/err$sig" >&2; lab_fail "after SIG$sig: status $rc, want $want"; }
    expect_clean "SIG$sig"
done

lab_log "case: SIGKILL half-way, then cleanup-stale.sh"
LAB_REPORT=$work/rKILL bash "$here/fail_midway.sh" wait 2>"$work/errKILL" &
pid=$!
wait_report "$work/rKILL" "$pid"
read_report "$work/rKILL"
kill -9 "$pid"
wait "$pid" 2>/dev/null || true
lab_leftovers "$prefix" "$dir" >/dev/null && lab_fail "SIGKILL: nothing left, the check is blind"
kill -0 "$cpid" 2>/dev/null || lab_fail "SIGKILL: the container died with the test"
out=$(bash "$here/cleanup-stale.sh" --dry-run) || lab_fail "cleanup-stale.sh --dry-run: $out"
echo "$out" | grep -q "$prefix: would remove" || lab_fail "dry run: $out"
lab_leftovers "$prefix" "$dir" >/dev/null && lab_fail "the dry run removed the lab"
out=$(bash "$here/cleanup-stale.sh") || lab_fail "cleanup-stale.sh: $out"
echo "$out" | grep -q "$prefix: removing" || lab_fail "cleanup-stale.sh did not see $prefix: $out"
expect_clean "SIGKILL + cleanup-stale.sh"
lab_log "ok"

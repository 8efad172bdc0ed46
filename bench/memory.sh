#!/usr/bin/env bash
# memory.sh - the memory a one-node swarmc cluster costs, idle and with 100
# running tasks, against Docker Swarm's (dockerd + containerd + shims).
#
#   idle      a fresh cluster (init), 5 s later: the daemon's VmRSS and Pss
#             (the reference samples dockerd 5 s after `swarm init`); then
#             again after `image load`.
#   100       for each of REPS repetitions (default 3): `service create
#             --replicas 100 --stop-grace-period 0s busybox sleep 100000`,
#             until 100 tasks are RUNNING, 3 s later (as the reference):
#             the daemon's VmRSS, Pss and VmHWM (peak); the shims' count,
#             VmRSS sum and Pss sum (Pss splits shared pages, so the sum is
#             what they really cost together) and Pss per shim; the task
#             processes' VmRSS sum; then `service rm` and wait until every
#             container is gone.
# The daemon's pid is whoever holds <data>/daemon.lock (fuser); shims are the
# `swarmc shim` processes whose bundle is under this run's data dir.
#
# Usage (root): bench/memory.sh      env: SWARMC=path REPS=3 TASKS=100
# Prints numbers; asserts nothing.
# shellcheck disable=SC2046 # $(vals ...) is split into numbers on purpose
set -u -o pipefail
# shellcheck source-path=SCRIPTDIR source=lib.sh
. "$(dirname "${BASH_SOURCE[0]}")/lib.sh"

REPS=${REPS:-3}
TASKS=${TASKS:-100}
WAIT_S=${WAIT_S:-300}

bench_require
T=$(mktemp -d /tmp/swarmc-bench-mem.XXXXXX)
chmod 711 "$T"
RES=$T/results.tsv
: >"$RES"
rec() { printf '%s\t%s\n' "$1" "$2" >>"$RES"; }
vals() { awk -F'\t' -v k="$1" '$1==k{printf "%s ", $2}' "$RES"; }

cleanup() {
    local rc=$? m p
    trap - EXIT INT TERM
    cluster_stop
    for p in $(pids_with_arg "$T/"); do kill -KILL "$p" 2>/dev/null; done
    awk -v t="$T/" 'index($5, t) == 1 {print $5}' /proc/self/mountinfo | sort -r |
        while read -r m; do umount "$m" 2>/dev/null || umount -l "$m" 2>/dev/null; done
    bench_log "cleanup check: $(leftovers "$T")"
    rm -rf "$T"
    exit "$rc"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

running() {
    sw service ps --format json mem 2>/dev/null |
        jq -s '[.[] | select(.desired_state == "TASK_STATE_RUNNING" and .status.state == "TASK_STATE_RUNNING")] | length'
}
containers_gone() {
    [ -z "$("$RUNC" --root "$CL/run/runc" list -q 2>/dev/null)" ] &&
        [ -z "$(ls -A "$CL/data/containers" 2>/dev/null)" ]
}
wait_for() { # wait_for SECONDS CMD...
    local deadline=$(($(now_us) + $1 * 1000000))
    shift
    until "$@"; do
        (($(now_us) > deadline)) && return 1
        sleep 0.2
    done
}
all_running() { [ "$(running)" = "$TASKS" ]; }

bench_log "temp dir $T; swarmc $SWARMC; load $(load)"
make_image "$T"
cluster_start "$T/c"
sleep 5
rec idle_rss "$(rss_kb "$DPID")"
rec idle_pss "$(pss_kb "$DPID")"
cluster_load_image "$T/busybox.tar"
sleep 2
rec loaded_rss "$(rss_kb "$DPID")"
rec loaded_pss "$(pss_kb "$DPID")"

for ((r = 1; r <= REPS; r++)); do
    bench_log "rep $r/$REPS: $TASKS tasks (load $(load))"
    sw service create --detach --replicas "$TASKS" --stop-grace-period 0s --name mem \
        busybox sleep 100000 >/dev/null || die "service create failed"
    wait_for "$WAIT_S" all_running || die "$TASKS tasks not running after ${WAIT_S}s ($(running) are)"
    sleep 3
    shims=$(shim_pids)
    ns=$(wc -w <<<"$shims")
    [ "$ns" -gt 0 ] || ns=1
    # shellcheck disable=SC2086 # word splitting of the pid lists is wanted
    {
        tasks=$(sw service ps --format json mem | jq -r '.status.container.pid // empty')
        d_pss=$(pss_kb "$DPID")
        s_rss=$(sum_of rss_kb $shims)
        s_pss=$(sum_of pss_kb $shims)
        rec d_rss "$(rss_kb "$DPID")"
        rec d_pss "$d_pss"
        rec d_hwm "$(hwm_kb "$DPID")"
        rec shims_n "$(wc -w <<<"$shims")"
        rec shims_rss "$s_rss"
        rec shims_pss "$s_pss"
        rec shim_pss_each "$((s_pss / ns))"
        rec shim_rss_each "$((s_rss / ns))"
        rec tasks_n "$(wc -w <<<"$tasks")"
        rec tasks_rss "$(sum_of rss_kb $tasks)"
        rec total_pss "$((d_pss + s_pss))"
    }
    sw service rm mem >/dev/null || die "service rm failed"
    wait_for 120 containers_gone || bench_log "containers of rep $r not gone after 120 s"
done
sleep 2
rec after_rss "$(rss_kb "$DPID")"

ref_d_idle=$(ref_number 'dockerd VmRSS, idle, 5 s after' 85924)
ref_c_idle=$(ref_number 'containerd VmRSS, idle' 37008)
ref_d_100=$(ref_number 'dockerd VmRSS with 100 running tasks' 147216)
ref_pss=$(ref_number 'containerd + 100 shims, **sum of Pss**' 307570)
ref_rss=$(ref_number 'containerd + 100 shims, **sum of VmRSS**' 1376072)
ref_tasks=$(ref_number 'the 100 task processes (busybox sleep), sum of VmRSS' 137940)
kib() { printf "%'d KiB" "$1" 2>/dev/null || echo "$1 KiB"; }
med() { median $(vals "$1") | sed 's/\.000$//; s/\..*//'; }
row() { printf '| %s | %s | %s | %s |\n' "$1" "$2" "$3" "$4"; }

echo
echo "## Memory: one node, $TASKS tasks ($(nproc) CPUs, load at end $(load))"
echo
echo "| measurement | swarmc (median of $REPS) | raw | Docker Swarm (reference file) |"
echo "|---|---|---|---|"
row "daemon VmRSS, idle, 5 s after init" "**$(kib "$(med idle_rss)")**" "Pss $(vals idle_pss)KiB" "dockerd $(kib "$ref_d_idle") (+ containerd $(kib "$ref_c_idle"))"
row "daemon VmRSS after \`image load\`" "$(kib "$(med loaded_rss)")" "Pss $(vals loaded_pss)KiB" ""
row "**daemon VmRSS with $TASKS running tasks** (target < 20 MiB = 20,480 KiB)" "**$(kib "$(med d_rss)")**" "$(vals d_rss)" "dockerd $(kib "$ref_d_100")"
row "daemon Pss with $TASKS tasks" "$(kib "$(med d_pss)")" "$(vals d_pss)" ""
row "daemon VmHWM (peak RSS so far)" "$(kib "$(med d_hwm)")" "$(vals d_hwm)" ""
row "shim processes" "$(med shims_n)" "$(vals shims_n)" "100 containerd-shim-runc-v2"
row "shims, sum of VmRSS" "$(kib "$(med shims_rss)")" "$(vals shims_rss)" "containerd + shims $(kib "$ref_rss")"
row "**shims, sum of Pss**" "**$(kib "$(med shims_pss)")**" "$(vals shims_pss)" "containerd + shims $(kib "$ref_pss")"
row "Pss per shim" "$(kib "$(med shim_pss_each)")" "$(vals shim_pss_each)" "about 2,500 KiB"
row "VmRSS per shim" "$(kib "$(med shim_rss_each)")" "$(vals shim_rss_each)" "about 13,200 KiB"
row "**daemon + shims, Pss** (the whole runtime)" "**$(kib "$(med total_pss)")**" "$(vals total_pss)" "dockerd $(kib "$ref_d_100") RSS + containerd/shims $(kib "$ref_pss") Pss"
row "the $TASKS task processes (busybox sleep), sum of VmRSS" "$(kib "$(med tasks_rss)")" "$(vals tasks_rss)" "$(kib "$ref_tasks")"
row "daemon VmRSS after the last \`service rm\`" "$(kib "$(med after_rss)")" "" ""

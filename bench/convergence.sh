#!/usr/bin/env bash
# convergence.sh - how fast a one-node swarmc cluster starts and removes the
# containers of a service, against the runc floor and Docker Swarm.
#
# For each of REPS repetitions (default 3), interleaved so that machine noise
# hits both alike:
#   floor   50 OCI bundles prepared up front (an overlay over the busybox
#           rootfs, `runc spec` with sleep 100000, own namespaces and cgroup),
#           then `runc run -d` of each, one after the other (timed), then
#           `runc delete --force` of each (timed): what any runtime on this
#           machine pays at least. Same method as the reference script's
#           phase 7.
#   swarmc  a fresh cluster in a temp dir (init, image load), then
#           `service create --detach --replicas 50 --stop-grace-period 0s`
#           until `service ls` shows 50/50 (polled every $POLL s, then
#           checked with `service ps --format json`: 50 tasks RUNNING); then
#           `service rm` until runc lists no container and every bundle
#           (overlay mount, dir) is gone; then `leave --force`.
# Clock: from just before the CLI is exec'd to the first poll that sees the
# end state, as the Docker reference measures it. Also shown: the same end
# point from the daemon's own task timestamps (no polling error), and the CPU
# time (user+sys) spent: for swarmc the daemon, its shims and runc (reaped
# children) plus the container processes (which carry runc init's work);
# for the floor the runc processes plus the container processes.
#
# Docker Swarm: its reference numbers come from $REF_RESULTS. With
# DOCKER=1 (default: auto = when dockerd and containerd are installed) the
# reference script also runs here, in the same run, phases "1 9" (5 minutes
# on the reference machine; on a slower one its own 900 s watchdog may stop
# it during phase 1, after the create-50 numbers): create-50 exactly as in
# the reference, and create/rm-50 with --stop-grace-period 0s. Its daemons run in private network namespaces with
# no route out, so nothing leaves the machine.
#
# Usage (root): bench/convergence.sh
#   env: SWARMC=path REPS=3 REPLICAS=50 POLL=0.05 DOCKER=auto|0|1
#        DOCKER_BENCH=<reference script> DOCKER_RAW_OUT=<file to keep its raw
#        report in> TOTAL_TIMEOUT=1800
# Prints numbers; asserts nothing.
# shellcheck disable=SC2046 # $(vals ...) is split into numbers on purpose
set -u -o pipefail
# shellcheck source-path=SCRIPTDIR source=lib.sh
. "$(dirname "${BASH_SOURCE[0]}")/lib.sh"

REPS=${REPS:-3}
REPLICAS=${REPLICAS:-50}
POLL=${POLL:-0.05}
WAIT_S=${WAIT_S:-180}
DOCKER=${DOCKER:-auto}
DOCKER_BENCH=${DOCKER_BENCH:-$SHARED/reference/docker-swarm-bench.sh}
TOTAL_TIMEOUT=${TOTAL_TIMEOUT:-1800}
ID=swmb$$ # cgroup names of the floor's containers

bench_require
T=$(mktemp -d /tmp/swarmc-bench-conv.XXXXXX)
chmod 711 "$T"
RES=$T/results.tsv # key <TAB> value
: >"$RES"
rec() { printf '%s\t%s\n' "$1" "$2" >>"$RES"; }
vals() { awk -F'\t' -v k="$1" '$1==k{printf "%s ", $2}' "$RES"; }

# ---------------------------------------------------------------- cleanup
FLOOR=$T/floor
cleanup() {
    local rc=$? c m
    trap - EXIT INT TERM
    [ -n "${WD_PID:-}" ] && kill "$WD_PID" 2>/dev/null
    if [ -n "${DOCKER_PID:-}" ] && [ -d "/proc/$DOCKER_PID" ]; then
        # the reference script tears its daemons down on TERM
        kill -TERM "$DOCKER_PID" 2>/dev/null
        for ((c = 0; c < 1200 && $(kill -0 "$DOCKER_PID" 2>/dev/null && echo 1 || echo 0); c++)); do sleep 0.1; done
    fi
    cluster_stop
    if [ -d "$FLOOR/state" ]; then
        for c in $("$RUNC" --root "$FLOOR/state" list -q 2>/dev/null); do
            "$RUNC" --root "$FLOOR/state" delete --force "$c" >/dev/null 2>&1
        done
    fi
    for c in $(pids_with_arg "$T/"); do kill -KILL "$c" 2>/dev/null; done
    awk -v t="$T/" 'index($5, t) == 1 {print $5}' /proc/self/mountinfo | sort -r |
        while read -r m; do umount "$m" 2>/dev/null || umount -l "$m" 2>/dev/null; done
    for c in /sys/fs/cgroup/*/"$ID" /sys/fs/cgroup/"$ID"; do
        [ -d "$c" ] && find "$c" -depth -type d -exec rmdir {} \; 2>/dev/null
    done
    bench_log "cleanup check: $(leftovers "$T") cgroups=$(find /sys/fs/cgroup -maxdepth 2 -name "$ID" 2>/dev/null | grep -c . || true)"
    rm -rf "$T"
    exit "$rc"
}
trap cleanup EXIT
trap 'exit 130' INT TERM
# watchdog: a hard bound on the whole run, then the trap cleans up
(
    trap - EXIT
    sleep "$TOTAL_TIMEOUT" &
    s=$!
    trap 'kill $s; exit 0' TERM
    wait $s && kill -TERM $$
) 2>/dev/null &
WD_PID=$!

# ---------------------------------------------------------------- floor
floor_prepare() {
    local i b
    mkdir -p "$FLOOR/state"
    "$RUNC" spec --bundle "$FLOOR" || die "runc spec failed"
    for ((i = 1; i <= REPLICAS; i++)); do
        b=$FLOOR/b$i
        mkdir -p "$b/rootfs" "$b/upper" "$b/work"
        mount -t overlay overlay -o "lowerdir=$T/rootfs,upperdir=$b/upper,workdir=$b/work" \
            "$b/rootfs" || die "overlay mount failed"
        jq --arg h "c$i" --arg cg "/$ID/c$i" '.process.terminal=false
            | .process.args=["sleep","100000"] | .root.path="rootfs" | .root.readonly=false
            | .hostname=$h | .linux.cgroupsPath=$cg' "$FLOOR/config.json" >"$b/config.json"
    done
}

floor_unprepare() {
    local i
    for ((i = 1; i <= REPLICAS; i++)); do
        umount "$FLOOR/b$i/rootfs" 2>/dev/null
    done
    rm -rf "$FLOOR"
    for i in /sys/fs/cgroup/*/"$ID" /sys/fs/cgroup/"$ID"; do
        [ -d "$i" ] && find "$i" -depth -type d -exec rmdir {} \; 2>/dev/null
    done
}

floor_run() {
    local i t0 t1 c0 c1 c_ctrs pids each=()
    floor_prepare
    c0=$(cpu_ticks $$ all)
    t0=$(now_us)
    for ((i = 1; i <= REPLICAS; i++)); do
        t1=$(now_us)
        "$RUNC" --root "$FLOOR/state" run -d --bundle "$FLOOR/b$i" "${ID}c$i" </dev/null >/dev/null 2>>"$T/runc.err"
        each+=("$((($(now_us) - t1) / 1000))")
    done
    t1=$(now_us)
    c1=$(cpu_ticks $$ all)
    pids=$("$RUNC" --root "$FLOOR/state" list -f json 2>/dev/null | jq -r '.[] | select(.status=="running") | .pid')
    rec floor_create_s "$(secs $((t1 - t0)))"
    rec floor_running "$(wc -w <<<"$pids")"
    rec floor_each_ms "$(median "${each[@]}")"
    # shellcheck disable=SC2086 # word splitting of the pid list is wanted
    c_ctrs=$(sum_of cpu_ticks $pids)
    rec floor_cpu_s "$(ticks_to_s $((c1 - c0 + c_ctrs)))"
    t0=$(now_us)
    for ((i = 1; i <= REPLICAS; i++)); do
        "$RUNC" --root "$FLOOR/state" delete --force "${ID}c$i" >/dev/null 2>>"$T/runc.err"
    done
    rec floor_rm_s "$(secs $(($(now_us) - t0)))"
    floor_unprepare
}

# ---------------------------------------------------------------- swarmc
running_count() { # from `service ls`: the running half of REPLICAS "r/d"
    sw service ls 2>/dev/null | awk '$2 == "conv" { split($4, a, "/"); print a[1] }'
}
containers_gone() {
    [ -z "$("$RUNC" --root "$CL/run/runc" list -q 2>/dev/null)" ] &&
        [ -z "$(ls -A "$CL/data/containers" 2>/dev/null)" ]
}

swarmc_run() {
    local r=$1 t0 t1 c0 c1 n deadline json pids shims t0_ns
    cluster_start "$T/c$r"
    cluster_load_image "$T/busybox.tar"
    sleep 1
    c0=$(cpu_ticks "$DPID" all)
    t0=$(now_us)
    sw service create --detach --replicas "$REPLICAS" --stop-grace-period 0s --name conv \
        busybox sleep 100000 >/dev/null || die "service create failed"
    rec sw_cli_s "$(secs $(($(now_us) - t0)))"
    deadline=$((t0 + WAIT_S * 1000000))
    while :; do
        n=$(running_count)
        [ "$n" = "$REPLICAS" ] && break
        (($(now_us) > deadline)) && break
        sleep "$POLL"
    done
    t1=$(now_us)
    json=$(sw service ps --format json conv | jq -s -c '[.[] | select(.desired_state == "TASK_STATE_RUNNING")]')
    n=$(jq '[.[] | select(.status.state == "TASK_STATE_RUNNING")] | length' <<<"$json")
    if [ "$n" != "$REPLICAS" ]; then
        rec sw_create_s TIMEOUT
        bench_log "swarmc: only $n of $REPLICAS tasks running after ${WAIT_S}s"
    else
        rec sw_create_s "$(secs $((t1 - t0)))"
        t0_ns=$((t0 * 1000))
        rec sw_create_ts_s "$(jq -r --argjson t0 "$t0_ns" '[.[].status.timestamp] | max | (. - $t0) / 1e9 | . * 1000 | floor / 1000' <<<"$json")"
        rec sw_first_ts_s "$(jq -r --argjson t0 "$t0_ns" '[.[].status.timestamp] | min | (. - $t0) / 1e9 | . * 1000 | floor / 1000' <<<"$json")"
    fi
    pids=$(jq -r '.[].status.container.pid // empty' <<<"$json")
    shims=$(shim_pids)
    local c_daemon c_ctrs c_shims p
    c_daemon=$(cpu_ticks "$DPID" all)
    # shellcheck disable=SC2086 # word splitting of the pid list is wanted
    c_ctrs=$(sum_of cpu_ticks $pids)
    c_shims=0
    for p in $shims; do c_shims=$((c_shims + $(cpu_ticks "$p" all))); done
    c1=$((c_daemon + c_ctrs + c_shims))
    rec sw_cpu_s "$(ticks_to_s $((c1 - c0)))"

    t0=$(now_us)
    sw service rm conv >/dev/null || die "service rm failed"
    deadline=$((t0 + WAIT_S * 1000000))
    until containers_gone; do
        (($(now_us) > deadline)) && break
        sleep "$POLL"
    done
    if containers_gone; then rec sw_rm_s "$(secs $(($(now_us) - t0)))"; else rec sw_rm_s TIMEOUT; fi
    cluster_stop
}

# ---------------------------------------------------------------- docker
docker_wanted() {
    case $DOCKER in
    0) return 1 ;;
    1) return 0 ;;
    esac
    command -v dockerd >/dev/null && command -v containerd >/dev/null && [ -r "$DOCKER_BENCH" ]
}

docker_run() {
    local raw=$T/docker/docker-swarm-raw.md key
    mkdir -p "$T/docker"
    bench_log "docker: running $DOCKER_BENCH with PHASES=\"1 9\" (about 5 minutes; log in $T/docker)"
    RAW=$raw PHASES="1 9" REPS=$REPS TOTAL_TIMEOUT=900 bash "$DOCKER_BENCH" >"$T/docker/console.log" 2>&1 &
    DOCKER_PID=$!
    wait "$DOCKER_PID" || bench_log "docker: reference script failed: $(tail -n 3 "$T/docker/console.log")"
    DOCKER_PID=""
    for key in p1_create10_s p1_create50_s p1_create100_s p1_rm100_s p9_create50_offline_s p9_rm50_g0_s; do
        # summary row: | metric | N | median | raw | key |
        rec "docker_$key" "$(awk -F'|' -v k="$key" '{gsub(/ /, "", $6)} $6 == k {gsub(/ /, "", $4); print $4; exit}' "$raw" 2>/dev/null)"
        rec "docker_raw_$key" "$(awk -F'|' -v k="$key" '{gsub(/ /, "", $6)} $6 == k {gsub(/^ +| +$/, "", $5); print $5; exit}' "$raw" 2>/dev/null)"
    done
    grep -F 'Cleanup check' -A 2 "$raw" 2>/dev/null | tail -n 1 | sed 's/^/docker: /' >&2
    if [ -n "${DOCKER_RAW_OUT:-}" ] && [ -f "$raw" ]; then
        cp "$raw" "$DOCKER_RAW_OUT" && bench_log "docker: raw report kept in $DOCKER_RAW_OUT"
    fi
}

# ---------------------------------------------------------------- main
bench_log "temp dir $T; swarmc $SWARMC; runc $("$RUNC" --version | head -n 1); load $(load)"
make_image "$T"
for ((r = 1; r <= REPS; r++)); do
    bench_log "rep $r/$REPS: runc floor (load $(load))"
    floor_run
    bench_log "rep $r/$REPS: swarmc (load $(load))"
    swarmc_run "$r"
    bench_log "rep $r/$REPS: floor $(vals floor_create_s| awk '{print $NF}')s, swarmc $(vals sw_create_s | awk '{print $NF}')s"
done
if docker_wanted; then docker_run; fi

# shellcheck disable=SC2016 # backquotes are literal text of the results file
ref_create=$(ref_number 'service create --replicas 50 ...` until 50/50 running' 6.73)
# shellcheck disable=SC2016
ref_rm=$(ref_number '`service rm` with 50 running (grace 0 s)' 5.17)
# shellcheck disable=SC2016
ref_floor=$(ref_number 'runc floor: `runc run -d` of 50 prepared bundles' 1.24)
sw_c=$(median $(vals sw_create_s))
fl_c=$(median $(vals floor_create_s))
sw_r=$(median $(vals sw_rm_s))
fl_r=$(median $(vals floor_rm_s))
dk_c=$(vals docker_p1_create50_s | tr -d ' ')

row() { printf '| %s | %s | %s |\n' "$1" "$2" "$3"; }
echo
echo "## Convergence: $REPLICAS replicas, one node ($(nproc) CPUs, load at end $(load))"
echo
echo "| measurement | median of $REPS | raw (run order) |"
echo "|---|---|---|"
row "swarmc: \`service create --replicas $REPLICAS\` until $REPLICAS RUNNING (poll)" "**$sw_c s**" "$(vals sw_create_s)"
row "... from the daemon's task timestamps: last task RUNNING" "$(median $(vals sw_create_ts_s)) s" "$(vals sw_create_ts_s)"
row "... first task RUNNING" "$(median $(vals sw_first_ts_s)) s" "$(vals sw_first_ts_s)"
row "... CLI returns (--detach)" "$(median $(vals sw_cli_s)) s" "$(vals sw_cli_s)"
row "runc floor: $REPLICAS x \`runc run -d\`, sequential" "**$fl_c s**" "$(vals floor_create_s)"
row "... per container" "$(median $(vals floor_each_ms)) ms" "$(vals floor_each_ms)"
row "**ratio swarmc / runc floor** (target <= 1.5)" "**$(ratio "$sw_c" "$fl_c")**" ""
row "Docker Swarm create-50, from the reference file (2026-11-27)" "$ref_create s" "runc floor then: $ref_floor s"
row "**Docker Swarm (reference file) / swarmc** (target >= 3)" "**$(ratio "$ref_create" "$sw_c")**" ""
if [ -n "$dk_c" ]; then
    row "Docker Swarm create-50, same run (reference script phase 1)" "$dk_c s" "$(vals docker_raw_p1_create50_s)"
    row "**Docker Swarm (same run) / swarmc** (target >= 3)" "**$(ratio "$dk_c" "$sw_c")**" ""
    row "Docker Swarm, same run: create-10 / create-100 (grace 0s) / rm-100 (grace 0s)" "$(vals docker_p1_create10_s)/ $(vals docker_p1_create100_s)/ $(vals docker_p1_rm100_s)s" "create-50 grace 0s, offline (phase 9): $(vals docker_raw_p9_create50_offline_s)"
fi
row "swarmc: \`service rm\` ($REPLICAS running, grace 0s) until all containers gone" "**$sw_r s**" "$(vals sw_rm_s)"
row "runc floor: $REPLICAS x \`runc delete --force\`, sequential" "$fl_r s" "$(vals floor_rm_s)"
row "ratio swarmc rm / runc delete floor" "$(ratio "$sw_r" "$fl_r")" ""
row "Docker Swarm rm-50 (grace 0s), from the reference file" "$ref_rm s" ""
if [ -n "$(vals docker_p9_rm50_g0_s | tr -d ' ')" ]; then
    row "Docker Swarm rm-50 (grace 0s), same run (phase 9)" "$(median $(vals docker_p9_rm50_g0_s)) s" "$(vals docker_p9_rm50_g0_s)"
fi
row "CPU time (user+sys), swarmc create: daemon + shims + runc + containers" "$(median $(vals sw_cpu_s)) s" "$(vals sw_cpu_s)"
row "CPU time (user+sys), runc floor create: runc + containers" "$(median $(vals floor_cpu_s)) s" "$(vals floor_cpu_s)"

#!/bin/bash
# Workers join a one-manager swarm over the cluster port and run its tasks:
# `swarmc join` with a worker token (and refusals of bad tokens), replicas
# spread over every node, `--availability drain` at join, drain and
# reactivation, a worker killed (DOWN after three heartbeats, its tasks
# rescheduled) and restarted (its stale containers removed), a worker's CLI
# refusing cluster commands, and `leave` on a worker.
. "$(dirname "$0")/lib.sh"

lab_create 4
lab_start_daemon 1 --dispatcher-heartbeat 1s
lab_load_busybox 1
token=$(lab_sw 1 join-token -q worker)
manager="$(lab_addr 1):2377"

# `swarmc join` on host i with ARGS must fail, print EXPECTED and leave
# host i without state.
refused_join() {
    local i=$1 expected=$2 out
    shift 2
    if out=$(lab_sw "$i" join "$@" 2>&1); then
        lab_fail "host $i: join $* succeeded"
    fi
    echo "$out" | grep -qF -- "$expected" || lab_fail "host $i: join $*: printed: $out"
    # One line, and Docker's usage hint after a usage error.
    [ "$(echo "$out" | grep -vc "^See 'swarmc join --help'")" = 1 ] ||
        lab_fail "host $i: join $*: more than one line: $out"
    [ ! -e "$(lab_data_dir "$i")/node_id" ] || lab_fail "host $i: a refused join left a node_id"
}

lab_log "joins that must be refused"
wrong=${token%-*}-0000000000000000000000000
other=SWMTKN-1-$(printf '%050d' 0)-${token##*-}
refused_join 4 "invalid join token" --token "$wrong" "$manager"
refused_join 4 "another cluster" --token "$other" "$manager"
refused_join 4 "invalid join token" --token bogus "$manager"
refused_join 4 "--token is required" "$manager"
refused_join 4 "invalid manager address" --token "$token" not-an-address
refused_join 4 "cannot join the swarm at $(lab_addr 3):2377" --token "$token" "$(lab_addr 3)"
lab_sw 1 node ls >/dev/null || lab_fail "the manager stopped answering after refused joins"
[ "$(lab_sw 1 node ls -q | wc -l)" = 1 ] || lab_fail "a refused join created a node"

lab_log "two workers join; a third joins drained"
lab_join 2 1
lab_join 3 1
lab_join 4 1 worker --availability drain
for i in 2 3 4; do lab_load_busybox "$i"; done
ready() {
    [ "$(lab_sw 1 node ls --format json |
        jq -s '[.[] | select(.status.state == "NODE_STATE_READY")] | length')" = "$1" ]
}
lab_wait_for 30 "4 nodes ready" ready 4
nodes=$(lab_sw 1 node ls)
for i in 2 3 4; do echo "$nodes" | grep -qw "h$i" || lab_fail "node ls lacks h$i: $nodes"; done
echo "$nodes" | grep -w h4 | grep -qw Drain || lab_fail "h4 did not join drained: $nodes"
avail=$(lab_sw 1 node inspect --format json "$(cat "$(lab_data_dir 2)/node_id")" |
    jq -r '.[0].spec.availability // "NODE_AVAILABILITY_ACTIVE"')
[ "$avail" = NODE_AVAILABILITY_ACTIVE ] || lab_fail "h2 joined $avail"

declare -A HOST_OF
for i in 1 2 3 4; do HOST_OF[$(cat "$(lab_data_dir "$i")/node_id")]=h$i; done

lab_log "a worker refuses cluster commands"
out=$(lab_sw 2 service ls 2>&1) && lab_fail "service ls on a worker succeeded"
echo "$out" | grep -qF "This node is not a swarm manager." || lab_fail "service ls on a worker: $out"
lab_sw 2 info >/dev/null || lab_fail "info on a worker failed"

lab_log "9 replicas spread over the 3 active nodes"
lab_sw 1 service create --name web --replicas 9 --stop-grace-period 1s busybox sleep 100000 \
    >/dev/null || lab_fail "service create"
# Prints "h1=N h2=N ..." for the running tasks of service $1 (web).
spread() {
    local id
    lab_sw 1 service ps --format json "${1:-web}" |
        jq -r 'select(.desired_state == "TASK_STATE_RUNNING" and .status.state == "TASK_STATE_RUNNING") | .node_id' |
        while read -r id; do echo "${HOST_OF[$id]:-?}"; done | sort | uniq -c |
        awk '{ printf "%s%s=%s", sep, $2, $1; sep = " " }'
}
running_on() { [ "$(spread "${2:-web}")" = "$1" ]; }
# All 9 running, none on host $1 (nor on the drained h4).
running_off() {
    local s
    s=$(spread)
    case "$s" in *"$1="* | *h4=*) return 1 ;; esac
    [ "$(echo "$s" | tr ' ' '\n' | cut -d= -f2 | awk '{ n += $1 } END { print n }')" = 9 ]
}
lab_wait_for 60 "3 tasks on each of h1 h2 h3" running_on "h1=3 h2=3 h3=3"
# Running containers on host $1 (stopped ones stay until their task is
# pruned, as in Swarm).
containers() {
    runc --root "$(lab_runc_root "$1")" list --format json 2>/dev/null |
        jq '[.[]? | select(.status == "running")] | length'
}
[ "$(containers 2)" = 3 ] || lab_fail "host 2 runs $(containers 2) containers, not 3"
[ "$(containers 4)" = 0 ] || lab_fail "the drained host 4 runs containers"

lab_log "a global service: one task on every active node"
lab_sw 1 service create --mode global --name g --stop-grace-period 1s busybox sleep 100000 \
    >/dev/null || lab_fail "service create --mode global"
lab_wait_for 60 "g on h1 h2 h3" running_on "h1=1 h2=1 h3=1" g

lab_log "drain h3: its tasks move to h1 and h2"
lab_sw 1 node update --availability drain h3 >/dev/null || lab_fail "node update drain"
lab_wait_for 60 "the tasks off h3" running_off h3
lab_wait_for 30 "g off the drained h3" running_on "h1=1 h2=1" g
no_containers() { [ "$(containers "$1")" = 0 ]; }
lab_wait_for 30 "h3's containers stopped" no_containers 3
lab_sw 1 node update --availability active h3 >/dev/null || lab_fail "node update active"

lab_log "kill -9 worker h2: DOWN after three heartbeats, its tasks rescheduled"
lab_kill 2
down() { lab_sw 1 node ls | grep -w h2 | grep -qw Down; }
lab_wait_for 30 "h2 down" down
lab_wait_for 60 "9 tasks running off h2" running_off h2

lab_log "h2 comes back: READY, its stale containers stopped, the global task back"
lab_restart 2
lab_wait_for 30 "h2 ready" ready 4
one_container() { [ "$(containers "$1")" = 1 ]; }
lab_wait_for 60 "h2 running only the global task" one_container 2
lab_wait_for 30 "g back on h2" running_on "h1=1 h2=1 h3=1" g
lab_wait_for 30 "still 9 running" running_off h2

lab_log "garbage and oversized frames on the cluster port"
for k in $(seq 1 20); do
    lab_host_exec 3 bash -c "head -c $((k * 10000)) /dev/urandom > /dev/tcp/$(lab_addr 1)/2377" \
        2>/dev/null || true
done
# A frame header claiming 4 GiB, then nothing.
lab_host_exec 3 bash -c "printf '\\377\\377\\377\\377' > /dev/tcp/$(lab_addr 1)/2377" 2>/dev/null || true
lab_sw 1 node ls >/dev/null || lab_fail "the manager stopped answering after garbage on 2377"
grep -q "connection rejected remote=$(lab_addr 3)" "$(lab_data_dir 1)/swarmc.log" ||
    lab_fail "no log line for the garbage connections"
lab_wait_for 10 "4 nodes still ready" ready 4

lab_log "node rm: refused for a manager and a ready node; a down worker is removed and revoked"
out=$(lab_sw 1 node rm h1 2>&1) && lab_fail "node rm of the manager succeeded"
echo "$out" | grep -qF "must be demoted to worker before removal" || lab_fail "node rm h1: $out"
out=$(lab_sw 1 node rm h2 2>&1) && lab_fail "node rm of a ready node succeeded"
echo "$out" | grep -qF "is not down and can't be removed" || lab_fail "node rm h2: $out"
lab_kill 3
h3_down() { lab_sw 1 node ls | grep -w h3 | grep -qw Down; }
lab_wait_for 30 "h3 down" h3_down
lab_sw 1 node rm h3 >/dev/null || lab_fail "node rm of the down h3"
! lab_sw 1 node ls | grep -qw h3 || lab_fail "h3 is still listed after node rm"
lab_restart 3
revoked() { grep -q "connection rejected remote=$(lab_addr 3).*revoked" "$(lab_data_dir 1)/swarmc.log"; }
lab_wait_for 30 "the removed h3 refused" revoked
! lab_sw 1 node ls | grep -qw h3 || lab_fail "the removed h3 came back"
lab_wait_for 60 "9 tasks running off h3" running_off h3

lab_log "worker h4 leaves"
lab_sw 4 leave >/dev/null || lab_fail "leave on a worker"
[ ! -e "$(lab_data_dir 4)/node_id" ] || lab_fail "leave kept h4's state"
h4_down() { lab_sw 1 node ls | grep -w h4 | grep -qw Down; }
lab_wait_for 30 "h4 down" h4_down
lab_log "ok"

#!/bin/bash
# The README's demo: installs dependencies, builds swarmc, and runs a small
# swarm on this machine: four hosts made of network namespaces (the lab
# harness, tests/lab/lib.sh), three managers and a worker joined over the
# secure channel on port 2377, a 6-replica service on real runc containers
# spread over them, then the leader killed with SIGKILL and another manager
# taking over within about a second. Everything is removed at the end (set
# LAB_KEEP=1 to leave it running).
set -eu
top=$(cd "$(dirname "$0")/.." && pwd)
"$top/deploy/install-deps.sh"
"$top/deploy/build.sh"
export SWARMC="$top/build/cli/swarmc"
. "$top/tests/lab/lib.sh"

show() {
    printf '\n$ swarmc (on h%s) %s\n' "$1" "${*:2}"
    lab_sw "$@"
}

lab_create 4
lab_start_daemon 1
lab_join 2 1 manager
lab_join 3 1 manager
lab_join 4 1
for i in 1 2 3 4; do lab_load_busybox "$i"; done
show 1 node ls

show 1 service create --name web --replicas 6 busybox \
    sh -c 'echo "hello from $(hostname)"; exec httpd -f -p 8080 -h /'
show 2 service ps web

lab_log "kill -9 the leader's daemon (h1); its containers keep running"
start=${EPOCHREALTIME/./}
lab_kill 1
until lab_sw 2 service create --detach --name after-failover --replicas 1 busybox sleep 100000 \
    >/dev/null 2>&1; do
    sleep 0.05
done
lab_log "a write succeeded through h2 $(((${EPOCHREALTIME/./} - start) / 1000)) ms after the kill"
show 2 node ls
show 3 service ls

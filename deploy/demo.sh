#!/bin/sh
# The README's demo: installs dependencies, builds swarmc, starts a one-node
# cluster in a scratch data dir, loads a busybox image built locally from
# Debian's busybox-static, runs a 3-replica service on real runc containers,
# shows it, and cleans everything up. Set KEEP=1 to leave the cluster running.
set -eu
top=$(cd "$(dirname "$0")/.." && pwd)
"$top/deploy/install-deps.sh"
"$top/deploy/build.sh"
swarmc="$top/build/cli/swarmc"
demo=${DEMO_DIR:-/tmp/swarmc-demo}
sw() { "$swarmc" --data-dir "$demo/data" --run-dir "$demo/run" "$@"; }

cleanup() {
    if [ "${KEEP:-0}" != 1 ]; then
        sw leave --force >/dev/null 2>&1 || true
        rm -rf "$demo"
    fi
}
trap cleanup EXIT

rm -rf "$demo" && mkdir -p "$demo"
sh "$top/tests/images/make-busybox-image.sh" "$demo/busybox.tar" busybox:latest >/dev/null
set -x
sw init
sw image load -i "$demo/busybox.tar"
sw service create --name web --replicas 3 busybox \
    sh -c 'echo "hello from $(hostname)"; exec httpd -f -p 8080 -h /'
sw service ls
sw service ps web
sw service logs web
sw service scale web=5
sw service ps web
sw node ls
set +x
if [ "${KEEP:-0}" = 1 ]; then
    echo "cluster left running: $swarmc --data-dir $demo/data --run-dir $demo/run service ls"
fi

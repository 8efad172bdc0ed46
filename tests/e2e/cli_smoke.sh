#!/bin/sh
# Smoke test of the swarmc command line against a real node daemon: a
# one-node cluster in a temporary data/run dir, the client commands on it,
# then `leave --force`. Needs root (the daemon manages containers and
# networks); exits 77 (skipped) otherwise. Every command is time-bounded and
# the node is torn down even when a check fails.
#
# usage: tests/e2e/cli_smoke.sh [path/to/swarmc]
set -eu

SWARMC=${1:-build/cli/swarmc}
[ "$(id -u)" = 0 ] || { echo "skipped: needs root"; exit 77; }
[ -x "$SWARMC" ] || { echo "no swarmc at $SWARMC" >&2; exit 1; }

dir=$(mktemp -d /tmp/swarmc-cli-e2e.XXXXXX)
cleanup() {
    timeout 30 "$SWARMC" --data-dir "$dir/data" --run-dir "$dir/run" leave --force \
        >/dev/null 2>&1 || true
    rm -rf "$dir"
}
trap cleanup EXIT INT TERM

sw() { timeout 60 "$SWARMC" --data-dir "$dir/data" --run-dir "$dir/run" "$@"; }
fail() { echo "FAIL: $*" >&2; exit 1; }

# expect NEEDLE COMMAND...: the command succeeds and its output has NEEDLE.
expect() {
    needle=$1
    shift
    out=$(sw "$@" 2>&1) || fail "swarmc $* exited $?: $out"
    case $out in *"$needle"*) ;; *) fail "swarmc $*: no '$needle' in: $out" ;; esac
}

# refuse NEEDLE COMMAND...: the command fails with exit 1 and says NEEDLE.
refuse() {
    needle=$1
    shift
    rc=0
    out=$(sw "$@" 2>&1) || rc=$?
    [ "$rc" = 1 ] || fail "swarmc $*: exit $rc, want 1: $out"
    case $out in *"$needle"*) ;; *) fail "swarmc $*: no '$needle' in: $out" ;; esac
}

refuse "Is the daemon running?" service ls
refuse 'invalid argument "5x" for "--restart-delay" flag' service create --restart-delay 5x busybox
refuse "unknown flag: --frobnicate" service ls --frobnicate

expect "Swarm initialized: current node (" init --advertise-addr 127.0.0.1
expect "Is Manager: true" info
expect " * " node ls
expect '"id":' node inspect --format json self

id=$(sw service create -d --name web --replicas 1 -e A=1 -p 18080:80 busybox sleep 600)
[ -n "$id" ] || fail "service create printed no id"
expect "web" service ls
expect "*:18080->80/tcp" service ls
expect "$(printf %.12s "$id")" service ls -q
expect '"name":"web"' service ls --format json
expect '"A=1"' service inspect web
expect "Name:		web" service inspect --pretty web
expect "web" service update -d --env-add B=2 --env-rm A web
expect '"B=2"' service inspect web
expect "web scaled to 2" service scale -d web=2
expect '"replicas": 2' service inspect web
expect "NAME" service ps web
expect "web" service rm web
[ -z "$(sw service ls -q)" ] || fail "service still listed after rm"

refuse "Use \`--force\` to ignore this message." leave
expect "Node left the swarm." leave --force
refuse "Is the daemon running?" info
echo "ok"

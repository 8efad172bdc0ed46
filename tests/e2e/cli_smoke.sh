#!/bin/sh
# The command line against a real node daemon: what each client command
# prints, and that it refuses what it must, before and after `init`.
. "$(dirname "$0")/lib.sh"

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

refuse 'invalid argument "0" for "--snapshot-interval" flag' init --snapshot-interval 0
expect "Swarm initialized: current node (" init --advertise-addr 127.0.0.1 --snapshot-interval 10
sh "$E2E_DIR/../images/make-busybox-image.sh" "$IMAGE_TAR" busybox:latest >/dev/null
expect "Loaded image: busybox:latest" image load -i "$IMAGE_TAR"
expect "Is Manager: true" info
expect "Snapshot Interval: 10" info
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
# More than 10 entries were committed: the log has snapshotted, and the
# daemon restarts from the snapshot.
grep -q "raft: snapshot at index" "$DATA/swarmc.log" || fail "no raft snapshot after 10 entries"
kill -TERM "$(daemon_pid)"
sw daemon >/dev/null || fail "swarmc daemon failed after a snapshot"
expect "Snapshot Interval: 10" info

refuse "Use \`--force\` to ignore this message." leave
expect "Node left the swarm." leave --force
refuse "Is the daemon running?" info
log "ok"

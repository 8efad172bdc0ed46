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

# The cluster's CA: the node's key material, and the join tokens.
[ "$(stat -c %a "$DATA/certificates/node.key")" = 600 ] || fail "node.key is not 0600"
[ "$(stat -c %s "$DATA/certificates/node.crt")" = 208 ] || fail "node.crt is not 208 bytes"
[ "$(stat -c %s "$DATA/certificates/root-ca.pub")" = 32 ] || fail "root-ca.pub is not 32 bytes"
refuse "unknown role bogus" join-token bogus
refuse '"swarmc join-token" requires exactly 1 argument.' join-token
wt=$(sw join-token -q worker) || fail "join-token -q worker failed"
mt=$(sw join-token -q manager) || fail "join-token -q manager failed"
# SWMTKN-1-<50 base-36 digest>-<25 base-36 secret>, one digest per cluster.
for t in "$wt" "$mt"; do
    echo "$t" | grep -Eqx 'SWMTKN-1-[0-9a-z]{50}-[0-9a-z]{25}' || fail "malformed token: $t"
done
[ "${wt%-*}" = "${mt%-*}" ] || fail "worker and manager tokens name different roots"
[ "$wt" != "$mt" ] || fail "worker and manager tokens are the same"
out=$(sw join-token worker)
want=$(printf 'To add a worker to this swarm, run the following command:\n\n    swarmc join --token %s 127.0.0.1:2377\n' "$wt")
[ "$out" = "$want" ] || fail "join-token worker printed: $out"
expect "To add a manager to this swarm, run the following command:" join-token manager
expect "swarmc join --token $mt 127.0.0.1:2377" join-token manager
out=$(sw join-token --rotate worker)
case $out in "Successfully rotated worker join token."*) ;; *) fail "join-token --rotate: $out" ;; esac
wt2=$(sw join-token -q worker)
[ "$wt2" != "$wt" ] || fail "--rotate did not change the worker token"
[ "${wt2%-*}" = "${wt%-*}" ] || fail "--rotate changed the root digest"
[ "$(sw join-token -q manager)" = "$mt" ] || fail "rotating the worker token changed the manager's"
case $out in *"swarmc join --token $wt2 127.0.0.1:2377"*) ;; *) fail "--rotate showed: $out" ;; esac
mt2=$(sw join-token -q --rotate manager)
[ "$mt2" != "$mt" ] && [ "$mt2" = "$(sw join-token -q manager)" ] || fail "-q --rotate manager: $mt2"
sw info --format json | grep -q "${wt2##*-}" && fail "info shows the worker token's secret"
expect "Root Rotation In Progress: false" info
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
# The node's key material is checked before the daemon starts.
chmod 644 "$DATA/certificates/node.key"
refuse "node.key: permissions 0644 are too open" daemon
chmod 600 "$DATA/certificates/node.key"
sw daemon >/dev/null || fail "swarmc daemon failed after a snapshot"
expect "Snapshot Interval: 10" info
[ "$(sw join-token -q worker)" = "$wt2" ] || fail "the worker token changed across a restart"

refuse "Use \`--force\` to ignore this message." leave
expect "Node left the swarm." leave --force
refuse "Is the daemon running?" info
[ ! -e "$DATA/certificates" ] || fail "leave left the node's key material behind"
log "ok"

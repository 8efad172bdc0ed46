# Lab harness for swarmc's multi-host end-to-end tests (issue 4).
#
# Source it from a bash script:   . "$(dirname "$0")/../lab/lib.sh"
#
# A lab is N "hosts": each a network namespace with lo and eth0
# (LAB_NET.i/24), plugged by a veth pair into a bridge that lives in its own
# "switch" namespace. Nothing is added to the root namespace's links,
# addresses, routes or nft tables. Each host has its own data dir, run dir
# and runc root (<run-dir>/runc) under LAB_DIR, and its daemon runs with
# only its network namespace switched (nsenter --net), so its mounts are in
# the root mount namespace where the cleanup can see them.
#
# Every name carries LAB_PREFIX = swl<owner pid>r<random hex> (at most 15
# characters), so parallel runs do not collide and cleanup-stale.sh can tell
# whose leftovers are whose. lab_cleanup (trap on EXIT INT TERM HUP, set by
# lab_create) removes the daemons, shims, containers, mounts, namespaces
# (with their links and nft tables) and LAB_DIR, pass or fail, and dumps
# every daemon's log tail first when the script fails.
#
# Needs: root, bash, iproute2, nftables, util-linux (nsenter), psmisc
# (fuser), runc, busybox (ping). SWARMC must name the swarmc binary (only
# for the functions that run it).
#
# Functions (host numbers are 1..N):
#   lab_create N                 make the switch and N hosts
#   lab_addr i                   host i's address
#   lab_ns i                     host i's namespace name
#   lab_data_dir i / lab_run_dir i / lab_runc_root i
#   lab_host_exec i CMD...       run CMD as host i: in its network namespace,
#                                with hostname h<i> (a private UTS namespace)
#   lab_sw i ARGS...             run swarmc (with host i's dirs) in host i
#   lab_start_daemon i [ARGS]    `swarmc init --advertise-addr <addr> ARGS`,
#                                or `swarmc daemon` if host i has state
#   lab_join i m [ROLE] [ARGS]   host i joins host m's swarm with m's ROLE
#                                (worker) token: `swarmc join --token T
#                                --advertise-addr <addr> ARGS <m's addr>`
#   lab_leader [i...]            the host (among i..., default all) that says
#                                it leads: its own `node ls` line is Leader
#   lab_daemon_pid i             the pid holding host i's daemon.lock
#   lab_kill i [SIGNAL]          signal host i's daemon (default KILL), wait
#                                until it has exited
#   lab_restart i                stop host i's daemon if running (TERM),
#                                then `swarmc daemon`
#   lab_partition i j            drop all traffic between i and j (both ways)
#   lab_cut_oneway i j           drop packets from i to j only (nft in i)
#   lab_loss i j PCT             drop PCT% of packets from i to j (nft in i)
#   lab_heal i j                 undo partition/cut/loss between i and j
#   lab_isolate i                partition i from every other host
#   lab_unplug i / lab_plug i    take host i's switch port down / up
#   lab_heal_all                 undo every partition, cut, loss and unplug
#   lab_ping i j                 0 if i gets an ICMP echo reply from j
#                                within 2 s
#   lab_udp_probe i j [COUNT]    send COUNT (3) UDP datagrams from i to j;
#                                prints how many j's input hook accepted
#   lab_load_busybox i           load the busybox test image into host i
#   lab_wait_for SECS DESC CMD.. poll CMD every 0.2 s, lab_fail on timeout
#   lab_logs [LINES]             every host's daemon log tail, to stdout
#   lab_log MSG / lab_fail MSG   log a line / fail the test (exit 1)
#   lab_cleanup                  remove everything now (idempotent)
#   lab_leftovers PREFIX [DIR]   print what of that lab still exists;
#                                status 1 if anything does
#
# Settings (environment): LAB_ROOT (parent of LAB_DIR, default /tmp),
# LAB_NET (first three octets, default 10.77.X with X per run),
# LAB_LOG_DIR (copy every daemon's full log there on failure),
# LAB_LOG_LINES (tail length, default 60), LAB_CMD_TIMEOUT (bound on each
# lab_sw, default 120 s), LAB_LEAVE_TIMEOUT (bound on the cleanup's
# `leave --force`, default 30 s), LAB_KEEP=1 (skip the cleanup, to debug).
set -eu

LAB_LIB_DIR=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
LAB_TABLE=swarmc_lab
LAB_PROBE_PORT=47777
LAB_PREFIX=${LAB_PREFIX:-}
LAB_DIR=${LAB_DIR:-}
LAB_N=0
LAB_CLEANED=0
LAB_LOGS_DUMPED=0
LAB_NS_INODES=""

lab_log() {
    printf '[%s] %s\n' "$(date +%H:%M:%S)" "$*" >&2
}

lab_fail() {
    echo "FAIL: $*" >&2
    exit 1
}

lab__need_host() {
    case "${1:-}" in
    '' | *[!0-9]*) lab_fail "bad host number '${1:-}'" ;;
    esac
    [ "$1" -ge 1 ] && [ "$1" -le "$LAB_N" ] || lab_fail "no host $1 in this lab (1..$LAB_N)"
}

lab_ns() { echo "$LAB_PREFIX-h$1"; }
lab_addr() { echo "$LAB_NET.$1"; }
lab_data_dir() { echo "$LAB_DIR/h$1/data"; }
lab_run_dir() { echo "$LAB_DIR/h$1/run"; }
lab_runc_root() { echo "$LAB_DIR/h$1/run/runc"; }

# Start time (clock ticks since boot) of a pid, to tell it from a reused pid.
lab__starttime() {
    [ -r "/proc/$1/stat" ] || return 1
    sed 's/.*) //' "/proc/$1/stat" 2>/dev/null | awk '{print $20}'
}

# ---------------------------------------------------------------- create --

lab_create() {
    local n=${1:-}
    case "$n" in '' | *[!0-9]*) lab_fail "lab_create: bad host count '$n'" ;; esac
    [ "$n" -ge 1 ] && [ "$n" -le 200 ] || lab_fail "lab_create: 1..200 hosts"
    [ -z "$LAB_PREFIX" ] || lab_fail "lab_create: this shell already has lab $LAB_PREFIX"
    [ "$(id -u)" = 0 ] || lab_fail "the lab needs root"
    local rnd
    rnd=$(od -An -N2 -tx2 /dev/urandom | tr -d ' \n')
    LAB_PREFIX="swl$$r$rnd"
    LAB_DIR="${LAB_ROOT:-/tmp}/swarmc-lab.$LAB_PREFIX"
    LAB_NET=${LAB_NET:-10.77.$(((0x$rnd + $$) % 254 + 1))}
    LAB_N=$n
    LAB_CLEANED=0
    # The traps go first: a lab_create that fails half-way is cleaned up too.
    trap 'lab__on_exit' EXIT
    trap 'exit 130' INT
    trap 'exit 143' TERM
    trap 'exit 129' HUP
    mkdir -p "$LAB_DIR"
    printf '%s %s\n' "$$" "$(lab__starttime $$)" >"$LAB_DIR/owner"
    printf '%s\n' "$LAB_NET" >"$LAB_DIR/net"
    local sw="$LAB_PREFIX-sw" i ns
    ip netns add "$sw"
    ip -n "$sw" link add br0 type bridge
    ip -n "$sw" link set br0 up
    LAB_NS_INODES="$(stat -L -c %i "/run/netns/$sw")"
    for i in $(seq 1 "$n"); do
        ns=$(lab_ns "$i")
        ip netns add "$ns"
        LAB_NS_INODES="$LAB_NS_INODES $(stat -L -c %i "/run/netns/$ns")"
        # Both ends are created inside namespaces: the root namespace never
        # sees them.
        ip -n "$sw" link add "p$i" type veth peer name eth0 netns "$ns"
        ip -n "$sw" link set "p$i" master br0
        ip -n "$sw" link set "p$i" up
        ip -n "$ns" link set lo up
        ip -n "$ns" addr add "$(lab_addr "$i")/24" dev eth0
        ip -n "$ns" link set eth0 up
        lab__nft_init "$i"
        mkdir -p "$LAB_DIR/h$i/data" "$LAB_DIR/h$i/run"
    done
    lab_log "lab $LAB_PREFIX: $n hosts on $LAB_NET.0/24, dir $LAB_DIR"
}

# The host's filter table: sets of peers whose packets are dropped on the
# way in and out, a chain for probabilistic loss rules, and a counter of the
# UDP probes that got through.
lab__nft_init() {
    lab_host_exec "$1" nft -f - <<EOF
table inet $LAB_TABLE {
    set drop_in { type ipv4_addr; }
    set drop_out { type ipv4_addr; }
    counter probe_rx { }
    chain loss { }
    chain input {
        type filter hook input priority -10; policy accept;
        ip saddr @drop_in counter drop
        udp dport $LAB_PROBE_PORT counter name probe_rx
    }
    chain output {
        type filter hook output priority -10; policy accept;
        ip daddr @drop_out counter drop
        jump loss
    }
}
EOF
}

# ------------------------------------------------------------------ exec --

# Runs a command as host i: in its network namespace, and in a fresh UTS
# namespace whose hostname is h<i> (so a daemon started here reports that
# hostname). Mount, pid and other namespaces stay the root's.
lab__enter() {
    local i=$1
    shift
    nsenter --net="/run/netns/$(lab_ns "$i")" -- unshare --uts -- \
        sh -c 'hostname "$0" && exec "$@"' "h$i" "$@"
}

lab_host_exec() {
    lab__need_host "${1:-}"
    lab__enter "$@"
}

lab_sw() {
    : "${SWARMC:?SWARMC must point to the swarmc binary}"
    lab__need_host "${1:-}"
    local i=$1
    shift
    timeout "${LAB_CMD_TIMEOUT:-120}" nsenter --net="/run/netns/$(lab_ns "$i")" -- \
        unshare --uts -- sh -c 'hostname "$0" && exec "$@"' "h$i" \
        "$SWARMC" --data-dir "$(lab_data_dir "$i")" --run-dir "$(lab_run_dir "$i")" "$@"
}

lab_wait_for() {
    local limit=$1 what=$2 end
    shift 2
    end=$(($(date +%s) + limit))
    while ! "$@" >/dev/null 2>&1; do
        [ "$(date +%s)" -ge "$end" ] && lab_fail "timed out after ${limit}s waiting for: $what"
        sleep 0.2
    done
}

# --------------------------------------------------------------- daemons --

lab__lock_pids() {
    [ -e "$1/daemon.lock" ] || return 0
    fuser "$1/daemon.lock" 2>/dev/null | tr -s ' ' '\n' | grep -v '^$' || true
}

lab_daemon_pid() {
    lab__need_host "${1:-}"
    lab__lock_pids "$(lab_data_dir "$1")" | head -n 1
}

lab_start_daemon() {
    lab__need_host "${1:-}"
    local i=$1 a
    shift
    if [ -e "$(lab_data_dir "$i")/node_id" ]; then
        lab_sw "$i" daemon >/dev/null || lab_fail "host $i: swarmc daemon failed"
        return
    fi
    for a in "$@"; do
        case "$a" in --advertise-addr*)
            lab_sw "$i" init "$@" >/dev/null || lab_fail "host $i: swarmc init failed"
            return
            ;;
        esac
    done
    lab_sw "$i" init --advertise-addr "$(lab_addr "$i")" "$@" >/dev/null ||
        lab_fail "host $i: swarmc init failed"
}

lab_join() {
    lab__need_host "${1:-}"
    lab__need_host "${2:-}"
    local i=$1 m=$2 role=${3:-worker} token
    shift 2
    [ $# -eq 0 ] || shift
    token=$(lab_sw "$m" join-token -q "$role") || lab_fail "host $m: join-token $role failed"
    lab_sw "$i" join --token "$token" --advertise-addr "$(lab_addr "$i")" "$@" \
        "$(lab_addr "$m"):2377" >/dev/null || lab_fail "host $i: swarmc join failed"
}

lab_leader() {
    local i
    [ $# -gt 0 ] || set -- $(seq 1 "$LAB_N")
    for i in "$@"; do
        if lab_sw "$i" node ls 2>/dev/null | grep '\*' | grep -qw Leader; then
            echo "$i"
            return 0
        fi
    done
    return 1
}

lab_kill() {
    lab__need_host "${1:-}"
    local i=$1 sig=${2:-KILL} pid end
    pid=$(lab_daemon_pid "$i")
    [ -n "$pid" ] || lab_fail "host $i: no daemon to kill"
    kill -s "$sig" "$pid" || lab_fail "host $i: kill -$sig $pid failed"
    end=$(($(date +%s) + 60))
    while kill -0 "$pid" 2>/dev/null; do
        [ "$(date +%s)" -ge "$end" ] && lab_fail "host $i: daemon $pid still alive 60s after SIG$sig"
        sleep 0.1
    done
}

lab_restart() {
    lab__need_host "${1:-}"
    [ -z "$(lab_daemon_pid "$1")" ] || lab_kill "$1" TERM
    lab_sw "$1" daemon >/dev/null || lab_fail "host $1: swarmc daemon failed"
}

lab_load_busybox() {
    lab__need_host "${1:-}"
    if [ ! -s "$LAB_DIR/busybox.tar" ]; then
        sh "$LAB_LIB_DIR/../images/make-busybox-image.sh" "$LAB_DIR/busybox.tar" busybox:latest \
            >/dev/null || lab_fail "cannot build the busybox test image"
    fi
    lab_sw "$1" image load -i "$LAB_DIR/busybox.tar" >/dev/null ||
        lab_fail "host $1: image load failed"
}

# --------------------------------------------------------------- network --

lab__nft() {
    local i=$1
    shift
    lab_host_exec "$i" nft "$@"
}

lab__set_add() { lab__nft "$1" add element inet $LAB_TABLE "$2" "{ $3 }"; }
lab__set_del() { lab__nft "$1" delete element inet $LAB_TABLE "$2" "{ $3 }" 2>/dev/null || true; }

# Deletes host i's loss rules aimed at address A.
lab__loss_del() {
    local h
    for h in $(lab__nft "$1" -a list chain inet $LAB_TABLE loss 2>/dev/null |
        awk -v c="\"to $2\"" 'index($0, "comment " c) { print $NF }'); do
        lab__nft "$1" delete rule inet $LAB_TABLE loss handle "$h" || true
    done
}

lab_partition() {
    lab__need_host "${1:-}"
    lab__need_host "${2:-}"
    local ai aj
    ai=$(lab_addr "$1")
    aj=$(lab_addr "$2")
    lab__set_add "$1" drop_out "$aj"
    lab__set_add "$1" drop_in "$aj"
    lab__set_add "$2" drop_out "$ai"
    lab__set_add "$2" drop_in "$ai"
}

lab_cut_oneway() {
    lab__need_host "${1:-}"
    lab__need_host "${2:-}"
    lab__set_add "$1" drop_out "$(lab_addr "$2")"
}

lab_loss() {
    lab__need_host "${1:-}"
    lab__need_host "${2:-}"
    local pct=${3:-}
    case "$pct" in '' | *[!0-9]*) lab_fail "lab_loss: bad percentage '$pct'" ;; esac
    [ "$pct" -le 100 ] || lab_fail "lab_loss: bad percentage '$pct'"
    local aj
    aj=$(lab_addr "$2")
    lab__loss_del "$1" "$aj"
    if [ "$pct" = 100 ]; then
        lab__nft "$1" add rule inet $LAB_TABLE loss ip daddr "$aj" counter drop comment "\"to $aj\""
    elif [ "$pct" != 0 ]; then
        lab__nft "$1" add rule inet $LAB_TABLE loss ip daddr "$aj" numgen random mod 100 "<" "$pct" \
            counter drop comment "\"to $aj\""
    fi
}

lab_heal() {
    lab__need_host "${1:-}"
    lab__need_host "${2:-}"
    local ai aj s
    ai=$(lab_addr "$1")
    aj=$(lab_addr "$2")
    for s in drop_in drop_out; do
        lab__set_del "$1" "$s" "$aj"
        lab__set_del "$2" "$s" "$ai"
    done
    lab__loss_del "$1" "$aj"
    lab__loss_del "$2" "$ai"
}

lab_isolate() {
    lab__need_host "${1:-}"
    local j
    for j in $(seq 1 "$LAB_N"); do
        [ "$j" = "$1" ] || lab_partition "$1" "$j"
    done
}

lab_unplug() {
    lab__need_host "${1:-}"
    ip -n "$LAB_PREFIX-sw" link set "p$1" down
}

lab_plug() {
    lab__need_host "${1:-}"
    ip -n "$LAB_PREFIX-sw" link set "p$1" up
}

lab_heal_all() {
    local i
    for i in $(seq 1 "$LAB_N"); do
        lab__nft "$i" flush set inet $LAB_TABLE drop_in
        lab__nft "$i" flush set inet $LAB_TABLE drop_out
        lab__nft "$i" flush chain inet $LAB_TABLE loss
        lab_plug "$i"
    done
}

lab_ping() {
    lab__need_host "${1:-}"
    lab__need_host "${2:-}"
    lab_host_exec "$1" busybox ping -q -c 1 -W 2 "$(lab_addr "$2")" >/dev/null 2>&1
}

lab__probe_count() {
    lab__nft "$1" list counter inet $LAB_TABLE probe_rx |
        awk '{ for (k = 1; k < NF; k++) if ($k == "packets") { print $(k + 1); exit } }'
}

lab_udp_probe() {
    lab__need_host "${1:-}"
    lab__need_host "${2:-}"
    local count=${3:-3} before after
    before=$(lab__probe_count "$2")
    # One socket per datagram (bash's /dev/udp); errors (an ICMP port
    # unreachable from an earlier one, EPERM from a drop rule) do not matter.
    lab_host_exec "$1" bash -c 'for k in $(seq 1 "$1"); do echo probe >"/dev/udp/$2/$3"; done' \
        probe "$count" "$(lab_addr "$2")" "$LAB_PROBE_PORT" >/dev/null 2>&1 || true
    sleep 0.2
    after=$(lab__probe_count "$2")
    echo $((after - before))
}

# ------------------------------------------------------------------ logs --

lab_logs() {
    local lines=${1:-${LAB_LOG_LINES:-60}} h
    [ -n "$LAB_DIR" ] && [ -d "$LAB_DIR" ] || return 0
    for h in "$LAB_DIR"/h*/; do
        h=${h%/}
        [ -d "$h" ] || continue
        echo "--- ${h##*/} ($LAB_PREFIX): last $lines lines of swarmc.log ---"
        if [ -f "$h/data/swarmc.log" ]; then
            tail -n "$lines" "$h/data/swarmc.log"
        else
            echo "(no log)"
        fi
    done
}

lab__save_logs() {
    local h
    [ -n "${LAB_LOG_DIR:-}" ] && [ -d "$LAB_DIR" ] || return 0
    mkdir -p "$LAB_LOG_DIR" || return 0
    for h in "$LAB_DIR"/h*/; do
        h=${h%/}
        [ -f "$h/data/swarmc.log" ] &&
            cp "$h/data/swarmc.log" "$LAB_LOG_DIR/$LAB_PREFIX-${h##*/}.swarmc.log"
    done
    lab_log "daemon logs copied to $LAB_LOG_DIR"
}

# --------------------------------------------------------------- cleanup --

# Pids (other than this shell) of processes in PREFIX's namespaces or whose
# command line names a path under DIR (daemons, shims, lab_sw commands).
lab__procs() {
    local prefix=$1 dir=$2 ns p
    {
        for ns in $(ip netns list 2>/dev/null | awk '{print $1}' | grep -F -- "$prefix-"); do
            ip netns pids "$ns" 2>/dev/null
        done
        # The pattern comes from a file, or grep would find itself.
        grep -alsF -f <(printf '%s\n' "$dir/") /proc/[0-9]*/cmdline 2>/dev/null | cut -d/ -f3
    } | sort -un | while read -r p; do
        [ "$p" = "$$" ] || [ "$p" = "$BASHPID" ] || echo "$p"
    done
}

# Removes whatever exists of the lab PREFIX with its files in DIR: daemons
# (`leave --force` first when SWARMC is given), containers, shims and other
# processes, mounts, namespaces (their veths and nft tables go with them)
# and DIR. Safe to run twice and on a half-made lab.
lab__teardown() {
    local prefix=$1 dir=$2 swarmc=${3:-} h pid pids id ns m
    case "$prefix" in swl[0-9]*r*) ;; *) return 0 ;; esac
    if [ -d "$dir" ]; then
        # Orderly: each daemon stops its containers and exits.
        pids=""
        if [ -n "$swarmc" ] && [ -x "$swarmc" ]; then
            for h in "$dir"/h*/; do
                h=${h%/}
                [ -S "$h/run/swarmc.sock" ] && [ -n "$(lab__lock_pids "$h/data")" ] || continue
                timeout "${LAB_LEAVE_TIMEOUT:-30}" "$swarmc" --data-dir "$h/data" \
                    --run-dir "$h/run" leave --force >/dev/null 2>&1 &
                pids="$pids $!"
            done
            for pid in $pids; do wait "$pid" 2>/dev/null; done
        fi
        # Forced: daemons, then containers, then the rest.
        for h in "$dir"/h*/; do
            h=${h%/}
            for pid in $(lab__lock_pids "$h/data"); do kill -9 "$pid" 2>/dev/null; done
        done
        for h in "$dir"/h*/; do
            h=${h%/}
            [ -d "$h/run/runc" ] || continue
            for id in $(runc --root "$h/run/runc" list -q 2>/dev/null); do
                timeout 30 runc --root "$h/run/runc" delete --force "$id" >/dev/null 2>&1
            done
        done
    fi
    for _ in $(seq 1 50); do
        pids=$(lab__procs "$prefix" "$dir")
        [ -n "$pids" ] || break
        kill -9 $pids 2>/dev/null
        sleep 0.1
    done
    if [ -n "$dir" ]; then
        awk -v d="$dir/" 'index($2, d) == 1 { print $2 }' /proc/mounts | sort -r |
            while read -r m; do umount -l "$m" 2>/dev/null; done
    fi
    for ns in $(ip netns list 2>/dev/null | awk '{print $1}' | grep -F -- "$prefix-"); do
        ip netns del "$ns" 2>/dev/null
    done
    [ -n "$dir" ] && rm -rf "$dir" 2>/dev/null
    return 0
}

lab_cleanup() {
    local status=${1:-0}
    [ "$LAB_CLEANED" = 0 ] && [ -n "$LAB_PREFIX" ] || return 0
    # Only the shell that made the lab removes it (not a subshell).
    [ "$BASHPID" = "$$" ] || return 0
    set +e
    if [ "$status" != 0 ] && [ "$LAB_LOGS_DUMPED" = 0 ]; then
        LAB_LOGS_DUMPED=1
        lab_logs >&2
        lab__save_logs
    fi
    if [ "${LAB_KEEP:-0}" = 1 ]; then
        lab_log "LAB_KEEP=1: leaving lab $LAB_PREFIX in place (remove it with" \
            "tests/lab/cleanup-stale.sh --all once this shell has exited)"
        LAB_CLEANED=1
        return 0
    fi
    lab__teardown "$LAB_PREFIX" "$LAB_DIR" "${SWARMC:-}"
    LAB_CLEANED=1
    return 0
}

lab__on_exit() {
    local status=$?
    lab_cleanup "$status"
    exit "$status"
}

# Prints what still exists of lab PREFIX (files in DIR): namespaces, links
# or nft tables naming it in the root namespace, processes, mounts, DIR.
# Processes still in the lab's namespaces are found by the namespace inodes
# recorded by lab_create (when PREFIX is this shell's lab). Status 1 if
# anything is left.
lab_leftovers() {
    local prefix=$1 dir=${2:-} out="" x p ino
    x=$(ip netns list 2>/dev/null | awk '{print $1}' | grep -F -- "$prefix" || true)
    [ -z "$x" ] || out="${out}namespaces: $x"$'\n'
    x=$(ip -o link show 2>/dev/null | grep -F -- "$prefix" || true)
    [ -z "$x" ] || out="${out}root-namespace links: $x"$'\n'
    x=$(nft list tables 2>/dev/null | grep -F -e "$prefix" -e "$LAB_TABLE" || true)
    [ -z "$x" ] || out="${out}root-namespace nft tables: $x"$'\n'
    if [ -n "$dir" ]; then
        x=$(awk -v d="$dir" 'index($2, d) == 1 { print $2 }' /proc/mounts)
        [ -z "$x" ] || out="${out}mounts: $x"$'\n'
        x=$(grep -alsF -f <(printf '%s\n' "$dir") /proc/[0-9]*/cmdline 2>/dev/null | cut -d/ -f3 |
            grep -vx -e "$$" -e "$BASHPID" || true)
        [ -z "$x" ] || out="${out}processes naming $dir: $x"$'\n'
        [ ! -e "$dir" ] || out="${out}directory: $dir"$'\n'
    fi
    if [ "$prefix" = "$LAB_PREFIX" ] && [ -n "$LAB_NS_INODES" ]; then
        x=""
        for p in /proc/[0-9]*; do
            ino=$(stat -L -c %i "$p/ns/net" 2>/dev/null) || continue
            case " $LAB_NS_INODES " in *" $ino "*) x="$x ${p#/proc/}" ;; esac
        done
        [ -z "$x" ] || out="${out}processes in the lab's namespaces:$x"$'\n'
    fi
    [ -z "$out" ] && return 0
    printf '%s' "$out"
    return 1
}

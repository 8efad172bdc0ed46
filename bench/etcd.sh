#!/usr/bin/env bash
# etcd.sh - etcd's put throughput and latency on this machine, the reference
# for swarmc's Raft commit benchmark (issue 3).
#
# For a 1-member and a 3-member etcd cluster (every member on 127.0.0.1,
# data dirs in a temp dir under $DATA_PARENT, default /var/tmp, so on the
# same filesystem as swarmc's data; real fsync, etcd's defaults otherwise),
# and for 1, 16 and 256 concurrent clients, ETCD_REPS times each (default 2):
# bench/etcd_load puts with 8-byte keys and 64-byte values (KEY_BYTES,
# VALUE_BYTES), each client its own connection with one put in flight, over
# each API in $API (default "grpc json"): native gRPC (KV/Put over
# cleartext HTTP/2, what etcd's clients and its benchmark tool use) and JSON
# over HTTP/1.1 through etcd's grpc-gateway (POST /v3/kv/put). All clients
# talk to the leader (TARGET=all spreads them over the members, which
# forward to the leader). Puts per run: 1,000 for 1 client, else
# max(4,000, 50 x clients); PUTS=n overrides.
#
# Also printed, from the leader's /metrics (etcd runs with --metrics
# extensive), as the difference over each run: the server's mean gRPC Put
# handling time (so the gateway's share of the latency shows; with
# TARGET=all only of the puts sent to the leader), WAL fsyncs per
# put (etcd's group commit) and the mean WAL fsync; and the CPU time (user +
# sys) all members spent per timed put. And, first, the disk's
# floor in the same dir (bench/fsync_floor, when built).
#
# The gateway costs etcd CPU that gRPC clients do not pay (JSON, one more
# local gRPC hop, and its own Put shows up in the server column), so the
# gRPC rows are the reference; the JSON rows show what that hop costs.
#
# If etcd is not installed (apt-get install -y etcd-server) or does not
# start, says so in one line and exits 0. Every etcd it starts and its temp
# dir are removed on exit, pass or fail; each load run is bounded by
# RUN_TIMEOUT seconds (default 60). Traffic stays on loopback.
#
# Usage: bench/etcd.sh
#   env: ETCD=etcd ETCD_LOAD=<build>/bench/etcd_load (compiled into the temp
#        dir with cc if missing) FSYNC_FLOOR=<build>/bench/fsync_floor
#        BUILD_DIR (default <top>/build-bench) ETCD_REPS=2 CLIENTS="1 16 256"
#        MEMBERS="1 3" API="grpc json" PUTS KEY_BYTES=8 VALUE_BYTES=64 TARGET=leader|all
#        DATA_PARENT=/var/tmp RUN_TIMEOUT=60
# Prints numbers (markdown); asserts nothing.
set -u -o pipefail
export LC_ALL=C
TOP=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
BUILD_DIR=${BUILD_DIR:-$TOP/build-bench}
ETCD=${ETCD:-etcd}
ETCD_LOAD=${ETCD_LOAD:-$BUILD_DIR/bench/etcd_load}
FSYNC_FLOOR=${FSYNC_FLOOR:-$BUILD_DIR/bench/fsync_floor}
REPS=${ETCD_REPS:-2}
CLIENTS=${CLIENTS:-"1 16 256"}
API=${API:-"grpc json"}
MEMBERS=${MEMBERS:-"1 3"}
PUTS=${PUTS:-}
KEY_BYTES=${KEY_BYTES:-8}
VALUE_BYTES=${VALUE_BYTES:-64}
TARGET=${TARGET:-leader}
DATA_PARENT=${DATA_PARENT:-/var/tmp}
RUN_TIMEOUT=${RUN_TIMEOUT:-60}

say() { printf '[%s] %s\n' "$(date +%H:%M:%S)" "$*" >&2; }
skip() {
    echo "etcd.sh: skipped: $*"
    exit 0
}

command -v "$ETCD" >/dev/null 2>&1 || skip "no etcd binary (apt-get install -y etcd-server)"
command -v curl >/dev/null 2>&1 || skip "no curl"
ETCD_VERSION=$("$ETCD" --version 2>/dev/null | awk '/^etcd Version/{print $3}')

T=$(mktemp -d "$DATA_PARENT/swarmc-bench-etcd.XXXXXX") || {
    echo "etcd.sh: cannot make a temp dir under $DATA_PARENT" >&2
    exit 1
}
PIDS=()
stop_members() {
    local p i
    for p in "${PIDS[@]}"; do kill -TERM "$p" 2>/dev/null; done
    for ((i = 0; i < 100; i++)); do
        local alive=0
        for p in "${PIDS[@]}"; do kill -0 "$p" 2>/dev/null && alive=1; done
        [ $alive = 0 ] && break
        sleep 0.1
    done
    for p in "${PIDS[@]}"; do
        if kill -0 "$p" 2>/dev/null; then
            say "cleanup: etcd $p still running 10 s after SIGTERM, killing it"
            kill -KILL "$p" 2>/dev/null
        fi
        wait "$p" 2>/dev/null
    done
    PIDS=()
}
cleanup() {
    stop_members
    rm -rf "$T"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

if [ ! -x "$ETCD_LOAD" ]; then
    cc -O2 -o "$T/etcd_load" "$TOP/bench/etcd_load.c" 2>"$T/cc.log" || {
        echo "etcd.sh: no $ETCD_LOAD and cannot compile bench/etcd_load.c: $(head -n 3 "$T/cc.log")" >&2
        exit 1
    }
    ETCD_LOAD=$T/etcd_load
fi

# Two ports per member, all free now: client BASE+i, peer BASE+100+i.
port_free() { ! ss -Htln "sport = :$1" 2>/dev/null | grep -q .; }
BASE=""
for b in $(seq 23700 20 23980); do
    ok=1
    for i in 1 2 3; do
        port_free $((b + i)) && port_free $((b + 100 + i)) || ok=0
    done
    if [ $ok = 1 ]; then
        BASE=$b
        break
    fi
done
[ -n "$BASE" ] || skip "no free loopback ports in 23700-24100"

# Starts an N-member cluster; sets EPS (client URLs) and LEADER.
EPS=()
LEADER=""
cluster_start() {
    local n=$1
    local i cluster="" tok="swarmc-bench-$$-$n"
    EPS=()
    for ((i = 1; i <= n; i++)); do
        cluster+="${cluster:+,}m$i=http://127.0.0.1:$((BASE + 100 + i))"
        EPS+=("127.0.0.1:$((BASE + i))")
    done
    for ((i = 1; i <= n; i++)); do
        "$ETCD" --name "m$i" --data-dir "$T/c$n/m$i" \
            --listen-client-urls "http://127.0.0.1:$((BASE + i))" \
            --advertise-client-urls "http://127.0.0.1:$((BASE + i))" \
            --listen-peer-urls "http://127.0.0.1:$((BASE + 100 + i))" \
            --initial-advertise-peer-urls "http://127.0.0.1:$((BASE + 100 + i))" \
            --initial-cluster "$cluster" --initial-cluster-state new \
            --initial-cluster-token "$tok" --metrics extensive \
            --logger zap --log-outputs stderr >/dev/null 2>"$T/c$n-m$i.log" &
        PIDS+=($!)
    done
    local tries st p
    for ((tries = 0; tries < 200; tries++)); do
        for p in "${PIDS[@]}"; do
            kill -0 "$p" 2>/dev/null || return 1 # a member exited
        done
        LEADER=""
        for ((i = 1; i <= n; i++)); do
            st=$(curl -s -m 2 -X POST "http://${EPS[i - 1]}/v3/maintenance/status" -d '{}' 2>/dev/null)
            # gateway JSON: uint64 as strings; the leader is the member whose id is the leader's
            if [ -n "$st" ] && [ "$(jq -r 'select(.leader != null and .leader != "0") | (.header.member_id == .leader)' <<<"$st" 2>/dev/null)" = true ]; then
                LEADER=${EPS[i - 1]}
            fi
        done
        [ -n "$LEADER" ] && return 0
        sleep 0.1
    done
    return 1
}

# Sum of a metric family's samples (name and label filter as a regexp).
metric() { curl -s -m 5 "http://$LEADER/metrics" | awk -v re="$1" '$0 !~ /^#/ && $1 ~ re {s += $2} END {printf "%.9f\n", s}'; }
snap_metrics() {
    metric '^grpc_server_handling_seconds_sum\{.*grpc_method="Put"'
    metric '^grpc_server_handling_seconds_count\{.*grpc_method="Put"'
    metric '^etcd_disk_wal_fsync_duration_seconds_sum$'
    metric '^etcd_disk_wal_fsync_duration_seconds_count$'
}

# CPU time (user+sys, clock ticks) of every member.
members_ticks() {
    local p t=0 v
    for p in "${PIDS[@]}"; do
        v=$(awk '{ sub(/^.*\) /, ""); print $12 + $13 }' "/proc/$p/stat" 2>/dev/null) || v=0
        t=$((t + ${v:-0}))
    done
    echo "$t"
}
CLK_TCK=$(getconf CLK_TCK)

puts_for() {
    if [ -n "$PUTS" ]; then
        echo "$PUTS"
    elif [ "$1" -le 1 ]; then
        echo 1000
    else
        local p=$((50 * $1))
        echo $((p > 4000 ? p : 4000))
    fi
}

print_header() {
    echo
    echo "## etcd put reference (etcd ${ETCD_VERSION:-?}, $(nproc) CPUs, load at start $(cut -d' ' -f1-3 /proc/loadavg))"
    echo
    echo "Members on 127.0.0.1, data in $DATA_PARENT ($(findmnt -no FSTYPE -T "$DATA_PARENT" 2>/dev/null || stat -fc %T "$DATA_PARENT")), real fsync;"
    echo "key $KEY_BYTES B, value $VALUE_BYTES B, one connection per client with one put in flight,"
    echo "clients on the $TARGET. Server columns from the leader's /metrics over the run."
    if [ -x "$FSYNC_FLOOR" ]; then
        echo
        echo "The disk's floor in the same dir (bench/fsync_floor):"
        echo '```'
        "$FSYNC_FLOOR" 200 "$DATA_PARENT" 2>&1
        echo '```'
    fi
    echo
    echo "| members | API | clients | puts | puts/s | p50 ms | p99 ms | max ms | server Put mean ms | WAL fsyncs per put | WAL fsync mean ms | etcd CPU ms per put |"
    echo "|---|---|---|---|---|---|---|---|---|---|---|---|"
}

RAW=$T/raw.txt
: >"$RAW"
started=0
for m in $MEMBERS; do
    say "etcd: starting a $m-member cluster (ports $((BASE + 1))..)"
    if ! cluster_start "$m"; then
        [ $started = 1 ] || {
            stop_members
            why=$(grep -h '"level":"\(error\|fatal\|panic\)"' "$T"/c"$m"-m*.log 2>/dev/null | head -n 1 | cut -c1-200)
            skip "etcd ${ETCD_VERSION:-?} did not start a $m-member cluster on 127.0.0.1: ${why:-a member exited or no leader within 20 s}"
        }
        echo "| $m | - | - | etcd did not start | | | | | | | | |"
        stop_members
        continue
    fi
    [ $started = 1 ] || print_header
    started=1
    if [ "$TARGET" = all ]; then
        target=$(
            IFS=,
            echo "${EPS[*]}"
        )
    else
        target=$LEADER
    fi
    for api in $API; do
        flags=()
        [ "$api" = grpc ] && flags=(-g)
        for c in $CLIENTS; do
            n=$(puts_for "$c")
            for ((r = 1; r <= REPS; r++)); do
                mapfile -t before < <(snap_metrics)
                ticks0=$(members_ticks)
                line=$("$ETCD_LOAD" "${flags[@]}" -c "$c" -n "$n" -t "$RUN_TIMEOUT" -k "$KEY_BYTES" -v "$VALUE_BYTES" "$target" 2>&1 | tail -n 1)
                ticks1=$(members_ticks)
                mapfile -t after < <(snap_metrics)
                echo "$m members, leader $LEADER: $line" >>"$RAW"
                say "etcd: $m members: $line"
                # "... N puts in S s, R puts/s, p50 A ms, p99 B ms, max C ms, failed F"
                read -r done_n rate p50 p99 mx < <(sed -nE 's/.*: ([0-9]+) puts in [0-9.]+ s, ([0-9]+) puts\/s, p50 ([0-9.]+) ms, p99 ([0-9.]+) ms, max ([0-9.]+) ms.*/\1 \2 \3 \4 \5/p' <<<"$line")
                srv=$(awk -v s0="${before[0]:-0}" -v c0="${before[1]:-0}" -v s1="${after[0]:-0}" -v c1="${after[1]:-0}" \
                    'BEGIN{ if (c1 - c0 > 0) printf "%.2f", (s1 - s0) / (c1 - c0) * 1000; else print "n/a" }')
                # per Put the leader handled (the untimed first put of each
                # client included); with TARGET=all the followers forward
                # puts the leader's Put count misses, so per put sent
                puts=$((${after[1]%.*} - ${before[1]%.*}))
                [ "$TARGET" = all ] && puts=$((${done_n:-0} + c))
                fpp=$(awk -v f0="${before[3]:-0}" -v f1="${after[3]:-0}" -v n="$puts" \
                    'BEGIN{ if (n > 0) printf "%.2f", (f1 - f0) / n; else print "n/a" }')
                fms=$(awk -v s0="${before[2]:-0}" -v c0="${before[3]:-0}" -v s1="${after[2]:-0}" -v c1="${after[3]:-0}" \
                    'BEGIN{ if (c1 - c0 > 0) printf "%.3f", (s1 - s0) / (c1 - c0) * 1000; else print "n/a" }')
                cpu=$(awk -v t="$((ticks1 - ticks0))" -v hz="$CLK_TCK" -v n="${done_n:-0}" \
                    'BEGIN{ if (n > 0) printf "%.3f", t / hz * 1000 / n; else print "n/a" }')
                if [ -n "${done_n:-}" ]; then
                    echo "| $m | $api | $c | $done_n | $rate | $p50 | $p99 | $mx | $srv | $fpp | $fms | $cpu |"
                else
                    echo "| $m | $api | $c | failed: ${line:0:80} | | | | | | | | |"
                fi
                done_n=""
            done
        done
    done
    stop_members
done
echo
echo "Raw (bench/etcd_load):"
echo '```'
cat "$RAW"
echo '```'
echo
echo "load at the end of etcd.sh: $(cut -d' ' -f1-3 /proc/loadavg)"

#!/bin/bash
# Three raft members as real processes on loopback (plain TCP transport,
# LMDB with fsync). A client writes a stream of entries to whoever leads;
# the leader is killed with SIGKILL partway. Checks:
#  - a new leader takes over and the stream goes on;
#  - every acknowledged write is present on both survivors;
#  - the killed member, restarted, catches up to the same state.
# Prints the failover time (kill to the next acknowledged write).
# Needs: RAFTNODE (path of the raftnode binary), bash, ss (iproute2).
set -eu

WRITES=${WRITES:-300}
KILL_AT=${KILL_AT:-100}
MEMBERS=3
. "$(dirname "$0")/lib.sh"

# Writes key to the leader until acknowledged (a retry of a write whose
# acknowledgement was lost finds it already created: also committed).
LEADER=-1
write_key() {
    local key=$1 deadline=$((SECONDS + 60))
    while [ "$SECONDS" -lt "$deadline" ]; do
        if [ "$LEADER" -lt 0 ] || ! alive "$LEADER"; then
            find_leader || { sleep 0.05; continue; }
        fi
        req "$LEADER" "PUT $key"
        case "$R" in
        "OK "*) return 0 ;;
        "ERR -5008 "*) return 0 ;; # SWM_EEXISTS: an earlier attempt committed
        *) LEADER=-1; sleep 0.05 ;;
        esac
    done
    fail "write $key was not acknowledged within 60 s"
}

# Sets C to the number of entries member $1 holds (empty if it does not answer).
count() {
    req "$1" COUNT
    C=${R#COUNT }
    [ "$C" != "$R" ] || C=""
}

wait_count() { # member n
    local deadline=$((SECONDS + 60))
    while [ "$SECONDS" -lt "$deadline" ]; do
        count "$1"
        [ -n "$C" ] && [ "$C" -ge "$2" ] && return 0
        sleep 0.1
    done
    fail "member $1 holds ${C:-no} entries, expected at least $2"
}

check_all_present() { # member
    local missing=0
    for k in $(seq 1 "$WRITES"); do
        req "$1" "LGET w$k"
        case "$R" in "VAL "*) ;; *) missing=$((missing + 1)) ;; esac
    done
    [ "$missing" -eq 0 ] || fail "member $1 lacks $missing acknowledged writes"
}

pick_ports
for i in 0 1 2; do start_member "$i"; done
log "members started on 127.0.0.1:$BASE-$((BASE + 2))"

killed=-1
for k in $(seq 1 "$WRITES"); do
    if [ "$k" -eq "$KILL_AT" ]; then
        find_leader || fail "no leader before the kill"
        killed=$LEADER
        kill_member "$killed"
        kill_ns=$(date +%s%N)
        log "killed the leader, member $killed, after $((k - 1)) acknowledged writes"
    fi
    write_key "w$k"
    if [ "$k" -eq "$KILL_AT" ]; then
        log "failover: the next write was acknowledged $((($(date +%s%N) - kill_ns) / 1000000)) ms after the kill"
    fi
done
log "$WRITES writes acknowledged"

for i in 0 1 2; do
    [ "$i" -eq "$killed" ] && continue
    wait_count "$i" "$WRITES"
    check_all_present "$i"
    log "member $i holds every acknowledged write"
done

start_member "$killed"
wait_count "$killed" "$WRITES"
check_all_present "$killed"
for i in 0 1 2; do
    count "$i"
    [ "$C" = "$WRITES" ] || fail "member $i holds ${C:-no} entries, expected exactly $WRITES"
done
log "restarted member $killed caught up; all three hold the same $WRITES writes"
echo "PASS"

# Shared by tests/raftnode/kill_leader.sh and bench/raft_commit.sh: a
# cluster of MEMBERS raftnode processes on loopback (member i has raft id
# i+1, raft port BASE+i, client port BASE+MEMBERS+i), a line client over
# one persistent connection per member, and cleanup on exit.
# Needs: RAFTNODE (path of the raftnode binary), bash, ss (iproute2).
# Source it after setting MEMBERS (default 3).

: "${RAFTNODE:?RAFTNODE must point to the raftnode binary}"
MEMBERS=${MEMBERS:-3}
T=$(mktemp -d "${RAFTNODE_TMP:-/tmp}/swarmc-raftnode.XXXXXX")
declare -ga PIDS FD # global even when sourced inside a function
for ((i = 0; i < MEMBERS; i++)); do PIDS[$i]=0; FD[$i]=0; done

log() { printf '[%s] %s\n' "$(date +%H:%M:%S.%3N)" "$*"; }

cleanup() {
    status=$?
    set +e
    for pid in "${PIDS[@]}"; do
        [ "$pid" -gt 0 ] || continue
        kill -9 "$pid" 2>/dev/null
        wait "$pid" 2>/dev/null
    done
    if [ "$status" -ne 0 ]; then
        for ((i = 0; i < MEMBERS; i++)); do
            echo "--- member $i log (last lines) ---" >&2
            tail -n 20 "$T/node$i.log" >&2
        done
    fi
    rm -rf "$T"
    exit "$status"
}
trap cleanup EXIT INT TERM

fail() {
    echo "FAIL: $*" >&2
    exit 1
}

# 2*MEMBERS free ports from BASE.
pick_ports() {
    for _ in $(seq 1 50); do
        BASE=$((20000 + RANDOM % 30000))
        local busy=0
        for p in $(seq "$BASE" $((BASE + 2 * MEMBERS - 1))); do
            if ss -Htan "( sport = :$p )" | grep -q .; then busy=1; fi
        done
        [ "$busy" -eq 0 ] && return 0
    done
    fail "no free ports"
}

start_member() {
    local i=$1 peers=()
    for ((j = 0; j < MEMBERS; j++)); do
        [ "$j" -eq "$i" ] || peers+=(--peer "$((j + 1))=127.0.0.1:$((BASE + j))")
    done
    "$RAFTNODE" --id $((i + 1)) --data "$T/data$i" --listen "127.0.0.1:$((BASE + i))" \
        --client $((BASE + MEMBERS + i)) "${peers[@]}" >>"$T/node$i.log" 2>&1 &
    PIDS[$i]=$!
}

# Kills member i with SIGKILL and forgets its connection.
kill_member() {
    kill -9 "${PIDS[$1]}"
    wait "${PIDS[$1]}" 2>/dev/null || true
    PIDS[$1]=0
    disconnect "$1"
}

# req MEMBER LINE: one request over the member's connection (FD[MEMBER],
# opened on first use and again after a failure); sets R to the reply line,
# or to nothing if the member does not answer within REQ_TIMEOUT s (5). (Not meant for
# $(...): the connection must stay open in this shell.)
trap '' PIPE
disconnect() {
    [ "${FD[$1]}" -eq 0 ] || exec {FD[$1]}>&-
    FD[$1]=0
}
req() {
    local i=$1 fd
    R=""
    if [ "${FD[$i]}" -eq 0 ]; then
        # The group keeps 2>/dev/null from applying to the whole shell.
        { exec {fd}<>"/dev/tcp/127.0.0.1/$((BASE + MEMBERS + i))"; } 2>/dev/null || return 0
        FD[$i]=$fd
    fi
    fd=${FD[$i]}
    if ! { printf '%s\n' "$2" >&"$fd" && IFS= read -r -t "${REQ_TIMEOUT:-5}" R <&"$fd"; } 2>/dev/null; then
        R=""
        disconnect "$i"
    fi
}

alive() { [ "${PIDS[$1]}" -gt 0 ] && kill -0 "${PIDS[$1]}" 2>/dev/null; }

# Sets LEADER to the member that says it leads, or -1.
find_leader() {
    LEADER=-1
    for ((i = 0; i < MEMBERS; i++)); do
        alive "$i" || continue
        req "$i" LEADER
        case "$R" in "LEADER "*" SELF") LEADER=$i; return 0 ;; esac
    done
    return 1
}


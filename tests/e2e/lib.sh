# Shared helpers for swarmc's end-to-end tests: each test gets its own data
# dir, run dir and runc root under a fresh temp dir, and everything it made
# (daemon, shims, containers, mounts) is removed on exit, pass or fail.
# Needs: SWARMC (path of the binary), root, runc, busybox-static, jq.
set -eu

: "${SWARMC:?SWARMC must point to the swarmc binary}"
E2E_DIR=$(cd "$(dirname "$0")" && pwd)
T=$(mktemp -d /tmp/swarmc-e2e.XXXXXX)
DATA="$T/data"
RUN="$T/run"
IMAGE_TAR="$T/busybox.tar"

# A daemon (init, daemon) gets a network namespace of its own (with lo up:
# its agent reaches the dispatcher through the cluster port), so that its
# cluster port (2377) clashes neither with another test's daemon nor with a
# swarm already on this machine; the CLI reaches it through its control
# socket, a file.
sw() {
    case "${1:-}" in
    init | daemon)
        unshare --net -- sh -c 'ip link set lo up && exec "$@"' sh \
            "$SWARMC" --data-dir "$DATA" --run-dir "$RUN" "$@"
        ;;
    *) "$SWARMC" --data-dir "$DATA" --run-dir "$RUN" "$@" ;;
    esac
}

log() {
    printf '[%s] %s\n' "$(date +%H:%M:%S)" "$*"
}

fail() {
    echo "FAIL: $*" >&2
    if [ -f "$DATA/swarmc.log" ]; then
        echo "--- last daemon log lines ---" >&2
        tail -n 40 "$DATA/swarmc.log" >&2
    fi
    exit 1
}

daemon_pid() {
    # The daemon holds the data dir lock; fuser names it.
    fuser "$DATA/daemon.lock" 2>/dev/null | tr -s ' ' '\n' | grep -v '^$' | head -n 1
}

cleanup() {
    status=$?
    set +e
    if [ -S "$RUN/swarmc.sock" ]; then
        timeout 60 "$SWARMC" --data-dir "$DATA" --run-dir "$RUN" leave --force >/dev/null 2>&1
    fi
    pid=$(daemon_pid)
    [ -n "$pid" ] && kill -9 "$pid" 2>/dev/null
    # Containers and shims that outlived the daemon.
    if [ -d "$RUN/runc" ]; then
        for id in $(runc --root "$RUN/runc" list -q 2>/dev/null); do
            runc --root "$RUN/runc" delete --force "$id" >/dev/null 2>&1
        done
    fi
    pkill -9 -f "shim.*$T" 2>/dev/null
    grep " $T/" /proc/mounts | awk '{print $2}' | sort -r | while read -r m; do
        umount -l "$m" 2>/dev/null
    done
    rm -rf "$T"
    exit $status
}
trap cleanup EXIT INT TERM

# wait_for TIMEOUT_S DESCRIPTION COMMAND...: polls COMMAND every 0.2 s.
wait_for() {
    limit=$1
    what=$2
    shift 2
    end=$(( $(date +%s) + limit ))
    while ! "$@" >/dev/null 2>&1; do
        [ "$(date +%s)" -ge "$end" ] && fail "timed out after ${limit}s waiting for: $what"
        sleep 0.2
    done
}

# Number of tasks of SERVICE in state STATE with desired state running.
count_tasks() {
    sw service ps --format json "$1" |
        jq -s --arg s "$2" '[.[] | select(.desired_state == "TASK_STATE_RUNNING" and .status.state == ("TASK_STATE_" + ($s | ascii_upcase)))] | length'
}

running_is() {
    [ "$(count_tasks "$1" running)" = "$2" ]
}

container_count() {
    runc --root "$RUN/runc" list -q 2>/dev/null | grep -c . || true
}

start_cluster() {
    sh "$E2E_DIR/../images/make-busybox-image.sh" "$IMAGE_TAR" busybox:latest >/dev/null ||
        fail "cannot build the busybox test image"
    sw init "$@" >/dev/null || fail "swarmc init failed"
    sw image load -i "$IMAGE_TAR" >/dev/null || fail "image load failed"
}

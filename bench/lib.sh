# Shared helpers for the shell benchmarks (bench/*.sh), sourced by bash.
# Each benchmark works under one temp dir ($T) and removes everything it
# made there (daemons, shims, containers, overlay mounts, cgroups) on exit,
# pass or fail. Nothing here talks to the network.
#
# Needs: root, runc, jq, fuser (psmisc), busybox-static (for the image).
# shellcheck shell=bash

export LC_ALL=C
BENCH_DIR=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
TOP=$(cd "$BENCH_DIR/.." && pwd)
SWARMC=${SWARMC:-$TOP/build-bench/cli/swarmc}
RUNC=${RUNC:-$(command -v runc || echo /usr/sbin/runc)}
SHARED=${SHARED:-$TOP/../shared}
REF_RESULTS=${REF_RESULTS:-$SHARED/reference/docker-swarm-results.md}
CLK_TCK=$(getconf CLK_TCK)

bench_log() { printf '[%s] %s\n' "$(date +%H:%M:%S)" "$*" >&2; }
die() {
    bench_log "error: $*"
    exit 1
}

bench_require() {
    [ "$(id -u)" = 0 ] || die "must run as root (runc, overlay mounts)"
    [ -x "$SWARMC" ] || die "no swarmc binary at $SWARMC (build: BUILD_DIR=$TOP/build-bench BUILD_TYPE=Release ./deploy/build.sh, or set SWARMC)"
    local b
    for b in "$RUNC" jq fuser tar; do
        command -v "$b" >/dev/null || die "missing $b"
    done
}

now_us() { echo "${EPOCHREALTIME/./}"; }
# us -> seconds with 3 decimals
secs() { printf '%d.%03d' $(($1 / 1000000)) $((($1 % 1000000) / 1000)); }
# median of numeric arguments (non-numbers ignored), "n/a" if none
median() {
    printf '%s\n' "$@" | grep -E '^[0-9]+(\.[0-9]+)?$' | sort -g |
        awk '{a[NR]=$1} END{ if(NR==0){print "n/a"; exit}
            m = NR%2 ? a[(NR+1)/2] : (a[NR/2]+a[NR/2+1])/2; printf "%.3f\n", m }'
}
# a / b with 2 decimals, "n/a" if either is not a number
ratio() { awk -v a="$1" -v b="$2" 'BEGIN{ if (a+0 > 0 && b+0 > 0) printf "%.2f\n", a/b; else print "n/a" }'; }

load() { cut -d' ' -f1-3 /proc/loadavg; }

# ---------------------------------------------------------------- /proc
# CPU time of a process in clock ticks: utime+stime, plus its reaped
# children's with "all".
cpu_ticks() {
    [ -r "/proc/$1/stat" ] || {
        echo 0
        return
    }
    local stat
    stat=$(cat "/proc/$1/stat" 2>/dev/null) || {
        echo 0
        return
    }
    # fields after "(comm)": state is $1, utime $12, stime $13, cutime $14, cstime $15
    awk -v all="${2:-}" '{ sub(/^.*\) /, ""); t = $12 + $13; if (all == "all") t += $14 + $15; print t }' <<<"$stat"
}
ticks_to_s() { awk -v t="$1" -v hz="$CLK_TCK" 'BEGIN{ printf "%.2f\n", t / hz }'; }
rss_kb() { awk '/^VmRSS:/{print $2; f=1} END{if(!f) print 0}' "/proc/$1/status" 2>/dev/null || echo 0; }
hwm_kb() { awk '/^VmHWM:/{print $2; f=1} END{if(!f) print 0}' "/proc/$1/status" 2>/dev/null || echo 0; }
pss_kb() { awk '/^Pss:/{print $2; f=1} END{if(!f) print 0}' "/proc/$1/smaps_rollup" 2>/dev/null || echo 0; }
sum_of() { # sum_of FUNC PID...
    local f=$1 t=0 p
    shift
    for p in "$@"; do t=$((t + $($f "$p"))); done
    echo "$t"
}

# Pids whose command line contains the string $1 (our temp dir is in every
# path our daemons, shims and runc processes get). Exact pids, no pattern
# matching on program names.
pids_with_arg() {
    local f p cmd
    grep -laF -- "$1" /proc/[0-9]*/cmdline 2>/dev/null | while read -r f; do
        p=${f#/proc/}
        p=${p%/cmdline}
        [ "$p" = "$$" ] || [ "$p" = "$BASHPID" ] && continue
        cmd=$(tr '\0' ' ' 2>/dev/null <"$f") || continue
        case $cmd in '' | grep\ *) continue ;; esac # gone, or the grep above
        echo "$p"
    done
}

# ---------------------------------------------------------------- image
# Builds the busybox image tarball once, and its unpacked rootfs for the
# runc floor (the same layer swarmc unpacks).
make_image() { # make_image DIR
    local d=$1 l
    sh "$TOP/tests/images/make-busybox-image.sh" "$d/busybox.tar" busybox:latest >/dev/null ||
        die "cannot build the busybox image (apt-get install busybox-static)"
    mkdir -p "$d/img" "$d/rootfs"
    tar -xf "$d/busybox.tar" -C "$d/img" || die "cannot unpack the image"
    for l in $(jq -r '.[0].Layers[]' "$d/img/manifest.json"); do
        tar -xf "$d/img/$l" -C "$d/rootfs" || die "cannot unpack layer $l"
    done
}

# ---------------------------------------------------------------- cluster
# One swarmc node under $1 (data and run dirs), like the e2e tests.
CL=""
sw() { "$SWARMC" --data-dir "$CL/data" --run-dir "$CL/run" "$@"; }
daemon_pid() { fuser "$CL/data/daemon.lock" 2>/dev/null | tr -s ' ' '\n' | grep -E '^[0-9]+$' | head -n 1; }
shim_pids() { # the `swarmc shim` processes of this cluster
    local p
    for p in $(pids_with_arg "$CL/data/containers/"); do
        [ "$(tr '\0' '\n' <"/proc/$p/cmdline" 2>/dev/null | sed -n 2p)" = shim ] && echo "$p"
    done
}

cluster_start() { # cluster_start DIR [init flags]
    CL=$1
    shift
    mkdir -p "$CL"
    sw init "$@" >/dev/null 2>"$CL/init.err" || die "swarmc init failed: $(cat "$CL/init.err")"
    DPID=$(daemon_pid)
    [ -n "$DPID" ] || die "no daemon holds $CL/data/daemon.lock"
}

cluster_load_image() { # cluster_load_image TARBALL
    sw image load -i "$1" >/dev/null || die "image load failed"
}

# Leaves the swarm (which removes every container), waits for the daemon to
# exit, then removes whatever is left: the daemon, shims, runc containers,
# mounts. Safe to call twice and on a half-started cluster.
cluster_stop() {
    [ -n "$CL" ] || return 0
    local pid i m
    pid=$(daemon_pid)
    if [ -n "$pid" ] && [ -S "$CL/run/swarmc.sock" ]; then
        timeout 60 "$SWARMC" --data-dir "$CL/data" --run-dir "$CL/run" leave --force >/dev/null 2>&1
    fi
    for ((i = 0; i < 300; i++)); do
        if [ -z "$pid" ] || [ ! -d "/proc/$pid" ]; then break; fi
        sleep 0.1
    done
    if [ -n "$pid" ] && [ -d "/proc/$pid" ]; then
        bench_log "cleanup: daemon $pid still running 30 s after leave, killing it"
        kill -KILL "$pid" 2>/dev/null
    fi
    if [ -d "$CL/run/runc" ]; then
        for i in $("$RUNC" --root "$CL/run/runc" list -q 2>/dev/null); do
            "$RUNC" --root "$CL/run/runc" delete --force "$i" >/dev/null 2>&1
        done
    fi
    for pid in $(pids_with_arg "$CL/"); do
        bench_log "cleanup: leftover pid $pid: $(tr '\0' ' ' <"/proc/$pid/cmdline" 2>/dev/null | cut -c1-100)"
        kill -KILL "$pid" 2>/dev/null
    done
    awk -v t="$CL/" 'index($5, t) == 1 {print $5}' /proc/self/mountinfo | sort -r |
        while read -r m; do umount "$m" 2>/dev/null || umount -l "$m" 2>/dev/null; done
    rm -rf "$CL"
    CL=""
}

# Counts of what a run left behind under dir $1: processes, mounts.
leftovers() {
    local procs mounts
    procs=$(pids_with_arg "$1/" | grep -c . || true)
    mounts=$(awk -v t="$1/" 'index($5, t) == 1' /proc/self/mountinfo | grep -c . || true)
    echo "processes=$procs mounts=$mounts"
}

# Reference numbers from the Docker Swarm results file: the median column of
# the summary row whose text contains $1, or $2 if the file or row is missing.
ref_number() {
    local v=""
    [ -r "$REF_RESULTS" ] &&
        v=$(grep -F -- "$1" "$REF_RESULTS" | head -n 1 | awk -F'|' '{gsub(/[ *]/, "", $5); print $5}')
    case $v in
    '' | *[!0-9.]*) echo "$2" ;;
    *) echo "$v" ;;
    esac
}

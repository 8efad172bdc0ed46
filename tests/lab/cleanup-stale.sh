#!/bin/bash
# Removes what is left of lab runs (tests/lab/lib.sh) whose owner is dead: a
# test killed with SIGKILL (a CTest timeout) cannot run its own cleanup.
#
# Usage: cleanup-stale.sh [--dry-run] [--all]
#
#   --dry-run   only print what would be removed
#   --all       remove every lab, live owner or not (only when no lab test
#               is running)
#
# A lab is named swl<owner pid>r<hex>; its owner is dead when that pid is
# gone or has another start time than the one recorded in the lab's dir.
# Labs are found by their namespaces and by their dirs under LAB_ROOT
# (default /tmp). SWARMC, if set, lets the daemons leave in order first.
. "$(dirname "$0")/lib.sh"
set +e

dry=0
all=0
for a in "$@"; do
    case "$a" in
    --dry-run) dry=1 ;;
    --all) all=1 ;;
    -h | --help)
        sed -n '2,/^$/{s/^# \{0,1\}//p}' "$0"
        exit 0
        ;;
    *)
        echo "cleanup-stale: unknown argument $a" >&2
        exit 2
        ;;
    esac
done

root=${LAB_ROOT:-/tmp}
prefixes=$({
    ip netns list 2>/dev/null | awk '{print $1}' | sed -n 's/^\(swl[0-9][0-9]*r[0-9a-f][0-9a-f]*\)-.*/\1/p'
    for d in "$root"/swarmc-lab.swl*; do
        [ -d "$d" ] && echo "${d##*/swarmc-lab.}"
    done
} | grep -E '^swl[0-9]+r[0-9a-f]+$' | sort -u)

removed=0
for p in $prefixes; do
    dir="$root/swarmc-lab.$p"
    pid=${p#swl}
    pid=${pid%%r*}
    start=""
    [ -f "$dir/owner" ] && read -r opid start <"$dir/owner" && [ "$opid" = "$pid" ] || start=""
    alive=0
    if [ -d "/proc/$pid" ]; then
        if [ -z "$start" ] || [ "$(lab__starttime "$pid")" = "$start" ]; then
            alive=1
        fi
    fi
    if [ "$alive" = 1 ] && [ "$all" = 0 ]; then
        echo "cleanup-stale: $p: owner $pid alive, kept"
        continue
    fi
    if [ "$dry" = 1 ]; then
        echo "cleanup-stale: $p: would remove (owner $pid $([ "$alive" = 1 ] && echo alive || echo gone))"
        continue
    fi
    echo "cleanup-stale: $p: removing (owner $pid $([ "$alive" = 1 ] && echo alive || echo gone))"
    lab__teardown "$p" "$dir" "${SWARMC:-}"
    if left=$(lab_leftovers "$p" "$dir"); then
        removed=$((removed + 1))
    else
        echo "cleanup-stale: $p: could not remove: $left" >&2
        exit 1
    fi
done
echo "cleanup-stale: $removed lab(s) removed"
exit 0

#!/usr/bin/env bash
# ops-scale: the cost of create, start, status, exec, stop and destroy of
# one VE with 10 and with N VEs defined (issue 10: within 1.25x), and of
# `list --all` of all of them (goal: under 300 ms at 5,000).
#
#   bench/ops-scale.sh [N]     N=1000 by default; RUNS=7 cycles per size
#
# The N are made with `--storage dir` (quick, no pool) under a private
# state root ($KB_ROOT/large; the 10 in $KB_ROOT/small; both removed at
# the end), stopped; RUNNING=M starts M of them (in each root) first. KENNEL names a binary (default: this tree's
# release build, built if missing). Prints medians in ms and the ratios.
set -euo pipefail
N=${1:-1000}
RUNS=${RUNS:-7}
RUNNING=${RUNNING:-0}
HERE=$(cd "$(dirname "$0")" && pwd)
KB_ROOT=${KB_ROOT:-/var/tmp/kennel-ops-scale}
[ "$(id -u)" = 0 ] || { echo "ops-scale: run as root" >&2; exit 2; }
if [ -z "${KENNEL:-}" ]; then
    KENNEL=$HERE/../target/x86_64-unknown-linux-gnu/release/kennel
    [ -x "$KENNEL" ] || (cd "$HERE/.." && cargo build --release -q -p kennel)
fi
# Two state roots, timed in turns (a cycle on one, then the same on the
# other), so that the load of a shared host weighs on both alike.
SMALL=$KB_ROOT/small; LARGE=$KB_ROOT/large
k() { "$KENNEL" --root "$ROOT" -q "$@"; }
cleanup() {
    for ROOT in "$SMALL" "$LARGE"; do
        [ -d "$ROOT" ] || continue
        for id in $(k list --all -H -o id 2>/dev/null); do k destroy --force "$id" >/dev/null 2>&1 || true; done
        # This root's cgroup parent, as `kennel check` names it.
        local p; p=$(k check 2>/dev/null | sed -n 's|.*VEs below \(.*\)/$|\1|p' || true)
        if [ -n "$p" ]; then
            for h in /sys/fs/cgroup/ /sys/fs/cgroup/*/; do rmdir "$h$p/_monitor" "$h$p" 2>/dev/null || true; done
        fi
        rm -rf "$ROOT"
    done
}
trap 'cleanup; kb_run_release' EXIT
cleanup
mkdir -p "$KB_ROOT"

now() { date +%s%N; }
# t FILE CMD...: runs CMD, appends its time in ms to FILE
t() {
    local file=$1 a b; shift
    a=$(now); "$@" >/dev/null; b=$(now)
    echo "scale=3; ($b - $a) / 1000000" | bc >> "$file"
}
median() { sort -g | awk '{v[NR]=$1} END {if (NR%2) print v[(NR+1)/2]; else print (v[NR/2]+v[NR/2+1])/2}'; }

# define ROOT COUNT: COUNT VEs (f1..fCOUNT) in ROOT, RUNNING of them started
define() {
    ROOT=$1
    k template create busybox >/dev/null
    for i in $(seq 1 "$2"); do k create "f$i" --template busybox --storage dir; done
    for i in $(seq 1 "$RUNNING"); do k start "f$i" 2>/dev/null || true; done
}

# cycle ROOT LABEL: one VE's life, then `list --all`
cycle() {
    ROOT=$1
    local r=$KB_ROOT/$2
    t "$r-create" k create probe --template busybox --storage dir
    t "$r-start" k start probe
    t "$r-status" k status probe
    t "$r-exec" k exec probe -- true
    t "$r-stop" k stop probe --timeout 10
    t "$r-destroy" k destroy probe
    t "$r-list" k list --all
}

define "$SMALL" 10
define "$LARGE" "$N"
for op in create start status exec stop destroy list; do : > "$KB_ROOT/small-$op"; : > "$KB_ROOT/large-$op"; done
for _ in $(seq 1 "$RUNS"); do
    cycle "$SMALL" small
    cycle "$LARGE" large
done
printf '%-8s %10s %10s %7s\n' op "10 (ms)" "$N (ms)" ratio
for op in create start status exec stop destroy list; do
    a=$(median < "$KB_ROOT/small-$op"); b=$(median < "$KB_ROOT/large-$op")
    printf '%-8s %10.2f %10.2f %7s\n' "$op" "$a" "$b" "$(awk -v a="$a" -v b="$b" 'BEGIN { printf "%.2f", b / a }')"
done

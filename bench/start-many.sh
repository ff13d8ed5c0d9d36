#!/usr/bin/env bash
# Parallel boot: N busybox VEs started by `kennel start --all` (batch
# workers, four per CPU), against one by one, and against one
# `kennel start ID` process per VE at the same parallelism (xargs -P: the
# design the long-lived workers replace), with each storage backend
# (`--storage dir`, and `image`: a disk of its own); then `kill --all`
# and `stop --all`. Goal (issue 10): 1,000 VEs started in at most 5 s.
#
#   bench/start-many.sh [N]         N=200 by default
#   PARALLEL="1 2 4 8" bench/...    also time start --all at each --parallel
#   BACKENDS=dir bench/...          one backend only
#
# Each VE: --memory 64M --numproc 64 --numpty $NUMPTY. NUMPTY defaults
# to 4: the running VEs of one host share kernel.pty.reserve minus 128
# ptys (`kennel check`), so N * NUMPTY must fit in that.
#
# Everything lives in its own state root ($KB_ROOT/state, default
# /var/tmp/kennel-bench-many) and is removed on exit.
KB_ROOT=${KB_ROOT:-/var/tmp/kennel-bench-many}
source "$(dirname "$0")/lib.sh"
N=${1:-200}
NUMPTY=${NUMPTY:-4}
SWEEP=${PARALLEL:-}
BACKENDS=${BACKENDS:-dir image}
P=$(($(nproc) * 4))
# Refuse up front rather than fail at VE number 225 (numpty is at least 2).
budget=$(($(cat /proc/sys/kernel/pty/reserve) - 128))
if [ $((N * NUMPTY)) -gt "$budget" ]; then
    echo "bench: $N VEs with --numpty $NUMPTY need $((N * NUMPTY)) ptys, the host leaves VEs $budget:" \
         "lower NUMPTY (at least 2) or raise kernel.pty.reserve (and kernel.pty.max) to $((N * NUMPTY + 128))" >&2
    exit 2
fi

destroy_all() {
    k kill --all >/dev/null 2>&1 || true
    for id in $(k list --all -H -o id 2>/dev/null); do k destroy --force "$id" || true; done
}
cleanup() {
    destroy_all
    k storage remove >/dev/null 2>&1 || true
    local p; p=$(k check 2>/dev/null | sed -n 's|.*VEs below \(.*\)/$|\1|p' || true)
    [ -n "$p" ] || return 0
    for h in /sys/fs/cgroup/ /sys/fs/cgroup/*/; do
        rmdir "$h$p/_monitor" "$h$p" 2>/dev/null || true
    done
}
trap 'cleanup; kb_run_release' EXIT

now() { date +%s.%N; }
since() { awk -v a="$1" -v b="$(now)" 'BEGIN { printf "%.2f", b - a }'; }
per_ve() { awk -v t="$1" -v n="$N" 'BEGIN { printf "%.1f", t * 1000 / n }'; }
ids() { seq -f "m%g" 1 "$N"; }
running() { k list -H -o id | wc -l; }
# All N must run: a timing of a start that did not happen is no timing.
all_running() {
    local r; r=$(running)
    [ "$r" = "$N" ] || { echo "bench: $1: $r of $N VEs run" >&2; exit 1; }
}
out=$KB_RESULTS/start-many.txt
: >"$out"
report() { printf '%s\n' "$*" | tee -a "$out"; }

grep -q '^ *busybox ' <<<"$(k template list)" || k template create busybox
destroy_all
report "start-many: N=$N busybox VEs, $(nproc) CPUs, workers $P; seconds (ms per VE)"
for backend in $BACKENDS; do
    t=$(now)
    for id in $(ids); do
        k create "$id" --template busybox --storage "$backend" --memory 64M --numproc 64 --numpty "$NUMPTY"
    done
    create=$(since "$t")

    t=$(now)
    for id in $(ids); do k start "$id"; done
    serial=$(since "$t")
    all_running "one by one"
    t=$(now); k kill --all; kill_all=$(since "$t")

    t=$(now)
    ids | xargs -P "$P" -n 1 "$KENNEL" --root "$KB_ROOT/state" -q start
    per_exec=$(since "$t")
    all_running "xargs -P $P"
    k kill --all

    t=$(now); k start --all; batch=$(since "$t")
    all_running "start --all"
    t=$(now); k stop --all; stop_all=$(since "$t")
    [ "$(running)" = 0 ] || { echo "bench: VEs still run after stop --all" >&2; exit 1; }

    report "$backend: create one by one $create ($(per_ve "$create")); start one by one $serial ($(per_ve "$serial")); xargs -P $P kennel start $per_exec ($(per_ve "$per_exec")); start --all $batch ($(per_ve "$batch")); kill --all $kill_all; stop --all $stop_all"
    for p in $SWEEP; do
        t=$(now); k start --all --parallel "$p"; s=$(since "$t")
        all_running "start --all --parallel $p"
        t=$(now); k kill --all --parallel "$p"; kl=$(since "$t")
        report "$backend: start --all --parallel $p: $s ($(per_ve "$s")); kill --all --parallel $p: $kl"
    done
    destroy_all
done

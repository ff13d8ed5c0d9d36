#!/usr/bin/env bash
# Noisy neighbours: how much a busy VE slows another on the same host.
# Two busybox VEs with the default plan (1G memory, 100% CPU, ...): a
# probe and a hog. The probe runs a periodic task: every PERIOD µs it
# wakes on a timer and does a fixed piece of CPU work (TASK iterations,
# about 0.1 ms); its latency runs from the time it was due to the end of
# the work, so it counts the wait for a CPU as well as work slowed by the
# neighbour. Then `kennel exec probe -- /bin/true` is timed (hyperfine),
# the host-side path into the probe VE. Five phases, the hog VE
# restarted for each (its counters start at zero):
#
#   idle        the hog runs its init only
#   cpu         HOG_PROCS (4) busy loops in the hog
#   memory      the hog allocates past its memory limit in a loop (1 MiB
#               at a time, touched): reclaim, then its own OOM kill, again;
#               measured once it reached 90% of its limit
#   disk        the hog writes a 256 MiB file with O_DIRECT (busybox dd),
#               again and again, under --io-limit IO_LIMIT (50M) where the
#               state root's disk takes a limit (IO_LIMIT=unlimited: none);
#               direct I/O, since cgroup v1 limits only what the VE submits
#   idle-after  idle again: how far the machine itself drifted meanwhile
#
# Each phase measures SETTLE s after its load started (or reached its
# limit), while the load goes on.
# Reports median and p99 of both per phase, and their ratio to idle. The
# probe task is a small static C program (kb-nb, built here with the
# host's gcc, copied into each VE through `kennel exec`'s stdin).
#
#   bench/neighbour.sh     PROBES=2000 PERIOD=2000 TASK=50000 RUNS=200 SETTLE=1 (~40 s)
source "$(dirname "$0")/lib.sh"
need_cmds gcc
RUNS=${RUNS:-200}
PROBES=${PROBES:-2000}
PERIOD=${PERIOD:-2000}
TASK=${TASK:-50000}
SETTLE=${SETTLE:-1}
HOG_PROCS=${HOG_PROCS:-4}
IO_LIMIT=${IO_LIMIT:-50M}
# No peer runs here: leave the peers' containers and cgroups (another
# benchmark's, maybe running) alone when kb_cleanup runs.
crun_cleanup_all() { :; }; lxc_cleanup_all() { :; }; cgroup_cleanup_all() { :; }

hog_pids=()
# Ends the hog's load: its VE killed (every process in it), then the
# host-side `kennel exec` that started the load, by its PID.
stop_hog() {
    k kill nb-hog 2>/dev/null || true
    local p
    for p in "${hog_pids[@]}"; do
        for _ in $(seq 50); do kill -0 "$p" 2>/dev/null || break; sleep 0.1; done
        kill -KILL "$p" 2>/dev/null || true
        wait "$p" 2>/dev/null || true
    done
    hog_pids=()
}
cleanup() {
    stop_hog
    kb_cleanup
}
trap cleanup EXIT
kb_busybox_template

helper=$KB_ROOT/kb-nb
cat > "$helper.c" <<'EOF'
/* bench/neighbour.sh's probe task and memory hog.
 *   kb-nb probe N ITERS PERIOD_US   N tasks of ITERS steps, one due every
 *                                   PERIOD_US; prints each one's latency
 *                                   (ns from due to done)
 *   kb-nb mem MIB                   allocates and touches MIB MiB */
#define _GNU_SOURCE
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <sys/prctl.h>

static long long now(void) {
    struct timespec t;
    clock_gettime(CLOCK_MONOTONIC, &t);
    return t.tv_sec * 1000000000LL + t.tv_nsec;
}

int main(int argc, char **argv) {
    if (argc == 5 && !strcmp(argv[1], "probe")) {
        long n = atol(argv[2]), iters = atol(argv[3]), period_us = atol(argv[4]);
        prctl(PR_SET_TIMERSLACK, 1UL, 0, 0, 0); /* not the default 50 µs */
        volatile unsigned long x = 1;
        long long due = now();
        for (long i = 0; i < n; i++) {
            due += period_us * 1000LL;
            struct timespec d = { due / 1000000000LL, due % 1000000000LL };
            while (clock_nanosleep(CLOCK_MONOTONIC, TIMER_ABSTIME, &d, NULL)) {}
            for (long j = 0; j < iters; j++) x = x * 6364136223846793005UL + 1442695040888963407UL;
            long long end = now();
            printf("%lld\n", end - due);
            if (end > due) due = end; /* late: the next one is due a period from now */
        }
        return 0;
    }
    if (argc == 3 && !strcmp(argv[1], "mem")) {
        long mib = atol(argv[2]);
        for (long i = 0; i < mib; i++) {
            char *p = malloc(1 << 20);
            if (!p) return 1;
            memset(p, (int)i | 1, 1 << 20);
        }
        return 0;
    }
    fprintf(stderr, "usage: kb-nb probe N ITERS PERIOD_US | kb-nb mem MIB\n");
    return 2;
}
EOF
gcc -O2 -static -o "$helper" "$helper.c" \
    || { echo "bench: cannot build the probe statically (apt-get install libc6-dev)" >&2; exit 1; }

k create nb-probe --template busybox
io_note="--io-limit $IO_LIMIT"
if [ "$IO_LIMIT" = unlimited ] || [ -z "$IO_LIMIT" ]; then
    io_note="no disk limit (IO_LIMIT=unlimited)"
    k create nb-hog --template busybox
elif ! k create nb-hog --template busybox --io-limit "$IO_LIMIT" 2>"$KB_RESULTS/neighbour-io-limit.log"; then
    io_note="no disk limit: kennel refused one here ($(head -1 "$KB_RESULTS/neighbour-io-limit.log"))"
    k create nb-hog --template busybox
fi
k start nb-probe
k start nb-hog
for v in nb-probe nb-hog; do k exec "$v" -- sh -c 'cat > /kb-nb && chmod 755 /kb-nb' < "$helper"; done
mem_limit=$(k stat nb-hog --json | jq -r '.memory.limit')
k kill nb-hog
[ "$mem_limit" != null ] || { echo "bench: the hog has no memory limit" >&2; exit 1; }
# A quarter past the limit: the limit, not the allocation, ends each round.
mem_mib=$(( mem_limit * 5 / 4 / 1048576 ))

# pct P: the P-th percentile (nearest rank) of the numbers on stdin
pct() { sort -g | awk -v p="$1" '{ v[NR] = $1 } END { i = int(NR * p / 100); if (i < NR * p / 100) i++; if (i < 1) i = 1; print v[i] }'; }

# phase NAME [HOG_SCRIPT [READY]]: the hog VE (re)started, HOG_SCRIPT run
# in it (in the background), up to 30 s for the jq test READY on the hog's
# counters to hold, SETTLE s more, then the probe's tasks and execs.
rm -f "$KB_RESULTS"/neighbour-*.{ns,json,hog}
phase() {
    local name=$1 script=${2:-} ready=${3:-true}
    k start nb-hog
    if [ -n "$script" ]; then
        # Not through k(), so that $! is kennel's own PID.
        "$KENNEL" --root "$KB_ROOT/state" -q exec nb-hog -- sh -c "$script" </dev/null >/dev/null 2>&1 &
        hog_pids+=($!)
    fi
    for _ in $(seq 300); do
        k stat nb-hog --json 2>/dev/null | jq -e "$ready" >/dev/null && break
        sleep 0.1
    done
    sleep "$SETTLE"
    k exec nb-probe -- /kb-nb probe "$PROBES" "$TASK" "$PERIOD" > "$KB_RESULTS/neighbour-$name.ns"
    hyperfine -N --style basic --warmup 3 --runs "$RUNS" --export-json "$KB_RESULTS/neighbour-$name.json" \
        -n exec "$KENNEL --root $KB_ROOT/state exec nb-probe -- /bin/true" >> "$KB_RESULTS/neighbour.log" 2>&1 \
        || { cat "$KB_RESULTS/neighbour.log" >&2; exit 1; }
    # What the hog did meanwhile (counters since its start).
    k stat nb-hog --json > "$KB_RESULTS/neighbour-$name.hog" 2>/dev/null || echo '{}' > "$KB_RESULTS/neighbour-$name.hog"
    stop_hog
}
: > "$KB_RESULTS/neighbour.log"
phase idle
phase cpu "for i in \$(seq $HOG_PROCS); do (while :; do :; done) & done; wait"
phase memory "while :; do /kb-nb mem $mem_mib; done" '.memory.peak >= .memory.limit * 0.9 or .oom_kills > 0'
phase disk "while :; do dd if=/dev/zero of=/kb-io bs=1M count=256 oflag=direct 2>/dev/null; done" '.io.write_bytes > 0'
phase idle-after

task_stats() { # NAME -> median and p99 of the task latency, µs
    local f=$KB_RESULTS/neighbour-$1.ns
    echo "$(awk '{ print $1 / 1000 }' "$f" | median) $(awk '{ print $1 / 1000 }' "$f" | pct 99)"
}
exec_stats() { # NAME -> median and p99 of exec, ms
    local f=$KB_RESULTS/neighbour-$1.json
    echo "$(jq -r '.results[0].times[] * 1000' "$f" | median) $(jq -r '.results[0].times[] * 1000' "$f" | pct 99)"
}
read -r t_med0 t_p990 <<<"$(task_stats idle)"
read -r e_med0 e_p990 <<<"$(exec_stats idle)"
{
    printf 'neighbour: probe VE latency while a hog VE (default plan) is busy; task: %s tasks of %s steps every %s µs; exec: %s runs of "kennel exec probe -- /bin/true"; disk phase with %s\n' \
        "$PROBES" "$TASK" "$PERIOD" "$RUNS" "$io_note"
    for name in idle cpu memory disk idle-after; do
        read -r tm tp <<<"$(task_stats $name)"
        read -r em ep <<<"$(exec_stats $name)"
        hog=$(jq -r '"hog: cpu \((.cpu.usage_ns // 0) / 1e9 * 100 | round / 100) s, throttled \(.cpu.throttled_periods // 0), oom kills \(.oom_kills // 0), written \((.io.write_bytes // 0) / 1048576 | round) MiB"' \
            "$KB_RESULTS/neighbour-$name.hog")
        printf '  %-10s task median %7.1f µs (%sx) p99 %8.1f µs (%sx) | exec median %6.2f ms (%sx) p99 %6.2f ms (%sx) | %s\n' \
            "$name" "$tm" "$(ratio "$tm" "$t_med0")" "$tp" "$(ratio "$tp" "$t_p990")" \
            "$em" "$(ratio "$em" "$e_med0")" "$ep" "$(ratio "$ep" "$e_p990")" "$hog"
    done
} | tee "$KB_RESULTS/neighbour.txt"

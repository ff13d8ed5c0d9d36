#!/usr/bin/env bash
# The cost of a Prometheus scrape of kenneld's /metrics (issue 11) with N
# busybox VEs running, each with a routed address (so that its network
# series are read too): the time of SCRAPES scrapes one after another
# (median, p90, as curl sees them, TLS included, and as kenneld reports
# its own reading), and of PAR scrapes at once (which share one reading).
# Goal: under 250 ms with 1,000 VEs.
#
#   bench/api-metrics.sh [N]     N=1000 SCRAPES=50 PAR=4 NUMPTY=2 STORAGE=dir NET=1
#
# Everything happens in a state root of its own ($KB_ROOT/state, default
# /var/tmp/kennel-bench-metrics) and, with NET=1, in a network namespace
# this script makes (`kb-met-h`: Kennel and kenneld run there, nothing is
# set in the machine's own); the sysctls a run needs (ptys, pids) are
# raised for it and put back. On exit the VEs are destroyed, kenneld is
# stopped (by its PID), the namespace and the state root are removed.
#
# The binaries: $KENNEL (else the tree's, built) and kenneld beside it
# (cargo build --release -p kenneld -p kennel).
: "${KB_ROOT:=/var/tmp/kennel-bench-metrics}"
: "${PEERBENCH_DIR:=$KB_ROOT/peers}"
export PEERBENCH_DIR
[ $# -eq 0 ] || N=$1
source "$(dirname "$0")/lib.sh"
need_cmds curl nsenter
N=${N:-1000}
SCRAPES=${SCRAPES:-50}
PAR=${PAR:-4}
NUMPTY=${NUMPTY:-2}
STORAGE=${STORAGE:-dir}
NET=${NET:-1}
PORT=${PORT:-18643}
KENNELD=${KENNELD:-$(dirname "$KENNEL")/kenneld}
[ -x "$KENNELD" ] || die "no kenneld at $KENNELD: cargo build --release -p kenneld (or set KENNELD)"
H=kb-met-h
OUT=$KB_RESULTS/api-metrics.txt
: > "$OUT"
report() { printf '%s\n' "$*" | tee -a "$OUT"; }
# In the namespace (NET=1), or here.
inh() { if [ "$NET" = 1 ]; then nsenter --net=/run/netns/$H -- "$@"; else "$@"; fi; }
kh() { inh "$KENNEL" --root "$KB_ROOT/state" -q "$@"; }
ids() { seq -f "mt%g" 1 "$N"; }
# mt<i>'s address: 198.18.<i/250>.<1 + i%250> (the benchmarking range)
addr() { echo "198.18.$(($1 / 250)).$(($1 % 250 + 1))"; }
URL=https://127.0.0.1:$PORT/metrics
KD_PID=

metrics_cleanup() {
    local rc=$?
    set +e
    if [ -n "$KD_PID" ]; then
        kill "$KD_PID" 2>/dev/null
        for _ in $(seq 100); do kill -0 "$KD_PID" 2>/dev/null || break; sleep 0.1; done
        kill -9 "$KD_PID" 2>/dev/null
    fi
    if [ "$NET" != 1 ] || [ -e /run/netns/$H ]; then
        kh kill --all >/dev/null 2>&1
        for id in $(kh list --all --json -o id 2>/dev/null | jq -r '.[].id' 2>/dev/null); do kh destroy --force "$id" >/dev/null 2>&1; done
        kh storage remove >/dev/null 2>&1
    fi
    [ "$NET" != 1 ] || ip netns del $H 2>/dev/null
    if [ -n "${PARENT:-}" ]; then
        for h in /sys/fs/cgroup/*/; do rmdir "$h$PARENT/_monitor" "$h$PARENT" 2>/dev/null; done
    fi
    kb_sysctl_restore
    kb_run_release
    # The state root, once nothing is mounted below it.
    if ! grep -qF " $KB_ROOT/state/" /proc/self/mountinfo; then rm -rf "$KB_ROOT/state"; fi
    exit "$rc"
}
trap metrics_cleanup EXIT

if [ "$NET" = 1 ]; then
    ip netns del $H 2>/dev/null || true
    ip netns add $H
    ip netns exec $H ip link set lo up
fi
kh template list | grep -q '^ *busybox ' || kh template create busybox
PARENT=$({ kh check 2>/dev/null || true; } | sed -n 's|.*VEs below \(.*\)/$|\1|p' | head -1)
pty_reserve=$((N * NUMPTY + 128 + $(cat /proc/sys/kernel/pty/nr)))
kb_sysctl_raise kernel.pty.max $((pty_reserve + 1024))
kb_sysctl_raise kernel.pty.reserve "$pty_reserve"
kb_sysctl_raise kernel.pid_max $(($(kb_threads) + N * 4 + 8192))
report "# api-metrics N=$N storage=$STORAGE net=$NET scrapes=$SCRAPES par=$PAR $(env_line)"
report "sysctls raised for this run: $(kb_sysctl_changes)"

[ "$STORAGE" = dir ] || kh storage init
t0=$(kb_us)
i=0
for id in $(ids); do
    i=$((i + 1))
    net=(); [ "$NET" != 1 ] || net=(--ip "$(addr "$i")")
    kh create "$id" --template busybox --storage "$STORAGE" --memory 64M --numproc 64 --numpty "$NUMPTY" "${net[@]}"
done
t_create=$((($(kb_us) - t0) / 1000))
t0=$(kb_us)
# One first, alone: on a root whose cgroups do not exist yet, the batch's
# first starts race to make them (v1 cpuset: "No space left on device").
kh start mt1
kh start --all
t_start=$((($(kb_us) - t0) / 1000))
running=$(kh list -H -o id | wc -l)
[ "$running" = "$N" ] || die "$running of $N VEs run"
report "created $N VEs in $t_create ms, started them in $t_start ms"

# Not through inh (a function): $! must be kenneld's PID (nsenter execs it).
ns=(); [ "$NET" != 1 ] || ns=(nsenter --net=/run/netns/$H --)
"${ns[@]}" "$KENNELD" --root "$KB_ROOT/state" --listen "127.0.0.1:$PORT" --kennel "$KENNEL" \
    > "$KB_RESULTS/api-metrics-kenneld.log" 2>&1 &
KD_PID=$!
for _ in $(seq 100); do
    code=$(inh curl -sk -o /dev/null -w '%{http_code}' "$URL" || true)
    [ "$code" = 200 ] && break
    kill -0 "$KD_PID" 2>/dev/null || die "kenneld ended: $(tail -3 "$KB_RESULTS/api-metrics-kenneld.log")"
    sleep 0.1
done
[ "$code" = 200 ] || die "no answer from kenneld at $URL"

body=$KB_RESULTS/api-metrics-body.txt
# One scrape: curl's total time (ms), and kenneld's own reading of it.
scrape() {
    local t
    t=$(inh curl -sk -o "$body" -w '%{time_total}' "$URL")
    awk -v t="$t" -v r="$(awk '/^kenneld_scrape_collect_seconds / {print $2}' "$body")" \
        'BEGIN {printf "%.1f %.1f\n", t * 1000, r * 1000}'
}
for _ in 1 2 3; do scrape > /dev/null; done   # warm-up
times=$KB_RESULTS/api-metrics-times.txt
for ((s = 0; s < SCRAPES; s++)); do scrape; done > "$times"
# pct P < numbers: the P-th percentile (nearest rank).
pct() { sort -g | awk -v p="$1" '{v[NR] = $1} END {i = int((NR * p + 99) / 100); if (i < 1) i = 1; print v[i]}'; }
series=$(grep -c '^kennel_ve_' "$body")
net_series=$(grep -c '^kennel_ve_network_' "$body" || true)
[ "$NET" != 1 ] || [ "$net_series" -ge $((N * 4)) ] || die "only $net_series network series for $N VEs"
report "$(printf 'scrape of %s running VEs (%s VE series, %s network, %s KiB): median %s ms, p90 %s ms (curl, TLS included; goal < 250 ms); reading in kenneld: median %s ms, p90 %s ms (%s scrapes)' \
    "$running" "$series" "$net_series" "$(($(stat -c %s "$body") / 1024))" \
    "$(cut -d' ' -f1 "$times" | median)" "$(cut -d' ' -f1 "$times" | pct 90)" \
    "$(cut -d' ' -f2 "$times" | median)" "$(cut -d' ' -f2 "$times" | pct 90)" "$SCRAPES")"

# PAR scrapes at once, ten rounds: the wall time of each round.
par=$KB_RESULTS/api-metrics-par.txt
for ((r = 0; r < 10; r++)); do
    t0=$(kb_us)
    for ((p = 0; p < PAR; p++)); do inh curl -sk -o /dev/null "$URL" & done
    wait $(jobs -p | grep -vx "$KD_PID")
    echo $((($(kb_us) - t0) / 1000))
done > "$par"
report "$PAR scrapes at once: median $(median < "$par") ms, p90 $(pct 90 < "$par") ms for all $PAR (10 rounds)"
report "kenneld: $(awk '/^kenneld_resident_memory_bytes / {printf "%.1f MiB resident", $2 / 1048576}' "$body"), $(awk '/^kenneld_cpu_seconds_total / {printf "%.1f s CPU", $2}' "$body") after $(awk '/^kenneld_scrapes_total / {print $2}' "$body") scrapes"
report "results: $OUT"

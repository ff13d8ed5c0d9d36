#!/usr/bin/env bash
# Density at scale (issue 10): N busybox VEs (`--memory 64M --numproc 64`,
# each with its console, `--numpty NUMPTY`) created, started, checked,
# listed, stopped and destroyed, with per phase the total and per-VE time,
# MemAvailable per running VE, and at the end what was left on the host
# (mounts, loop devices, cgroups, processes, ptys: there must be none).
# Beside it crun at the same N where crun can do the same: create+start
# (`run -d`, `sleep` as pid 1, user namespace, the same memory and pids
# limits, no terminal), `list`, and `delete -f`.
#
#   bench/density-scale.sh [--storage image|dir] [N]      N=100
#
# Settings (environment): STORAGE (image, the default backend, or dir),
# NUMPTY (4: a getty on the console and a few `enter`s; Kennel's default
# is 64), START (auto: one `kennel start ID...` if this build takes several
# ids, else one by one; `each` forces one by one; stops, which take busybox
# init 2 s, run STOP_JOBS (100) at a time unless one `kennel stop` takes
# several ids), PROBES (10: runs of the
# one-VE operations timed with N VEs defined), LIST_RUNS (5), CRUN (1; 0
# skips it), POOL_SIZE (the pool's size for the image backend, else
# Kennel's default), DISK (each VE's --disk, else the plan's), SETTLE (3 s).
#
# The host sysctls that N VEs need (kernel.pty.max and .reserve for the
# ptys, kernel.pid_max for their processes and, with disks, loop devices'
# kernel threads) are raised only for the run and put back on exit; the
# script prints what it changed. Do not run N >= 1000 on a shared host
# without asking: the kernel's pools (pids, ptys, memory) are everyone's.
: "${KB_ROOT:=/var/tmp/kennel-bench-scale}"
: "${PEERBENCH_DIR:=$KB_ROOT/peers}"
export PEERBENCH_DIR
while [ $# -gt 0 ]; do
    case $1 in
        --storage) STORAGE=$2; shift 2 ;;
        --storage=*) STORAGE=${1#*=}; shift ;;
        [0-9]*) N=$1; shift ;;
        *) echo "usage: $0 [--storage image|dir] [N]" >&2; exit 2 ;;
    esac
done
source "$(dirname "$0")/lib.sh"
N=${N:-100}
STORAGE=${STORAGE:-image}
NUMPTY=${NUMPTY:-4}
START=${START:-auto}
PROBES=${PROBES:-10}
LIST_RUNS=${LIST_RUNS:-5}
STOP_JOBS=${STOP_JOBS:-100}
CRUN=${CRUN:-1}
case $STORAGE in image | dir) ;; *) echo "density-scale: --storage is image or dir, not $STORAGE" >&2; exit 2 ;; esac
# crun's own state root and names (pb-ks-*): other benches' peers are left alone.
CRUN_ROOT=$PB_RUNSTATE/crun-scale
OUT=$KB_RESULTS/density-scale-$N-$STORAGE.txt
: > "$OUT"
report() { printf '%s\n' "$*" | tee -a "$OUT"; }
ms() { awk -v v="$1" 'BEGIN {printf "%.1f", v / 1000}'; }
per() { awk -v v="$1" -v n="$2" 'BEGIN {if (n > 0) printf "%.2f", v / n / 1000; else print "n/a"}'; }
mib_per() { awk -v v="$1" -v n="$2" 'BEGIN {if (n > 0) printf "%.2f", v / n / 1024; else print "n/a"}'; }
avg_us() { awk '{s += $1} END {if (NR) printf "%.2f", s / NR / 1000; else print "n/a"}'; }
# median (ms) of RUNS runs of a command, its output dropped
timed_median() {
    local runs=$1 i t0; shift
    for ((i = 0; i < runs; i++)); do
        t0=$(kb_us); "$@" >/dev/null 2>&1 || true; echo $(($(kb_us) - t0))
    done | median | awk '{printf "%.2f", $1 / 1000}'
}

ids=()
for ((i = 1; i <= N; i++)); do ids+=("ks$i"); done
scale_cleanup() {
    local rc=$?
    set +e
    for id in $(k list --all --json -o id 2>/dev/null | jq -r '.[].id' 2>/dev/null); do k destroy --force "$id" >/dev/null 2>&1; done
    k storage remove >/dev/null 2>&1
    in_crun_ns bash -c 'for id in $(crun --root "$1" list -q 2>/dev/null | grep "^pb-ks-"); do crun --root "$1" delete -f "$id" >/dev/null 2>&1; done' _ "$CRUN_ROOT"
    for d in /sys/fs/cgroup/*/pb-ks-*; do [ -d "$d" ] && rmdir "$d" 2>/dev/null; done
    if [ -n "${PARENT:-}" ]; then
        for h in /sys/fs/cgroup/*/; do rmdir "$h$PARENT/_monitor" "$h$PARENT" 2>/dev/null; done
    fi
    kb_sysctl_restore
    kb_run_release
    exit "$rc"
}
trap scale_cleanup EXIT
kb_busybox_template
PARENT=$(kb_cgroup_parent)

# --- What N VEs need of the host's pools, raised for this run only.
# ptys: Kennel's ledger holds NUMPTY per running VE in kernel.pty.reserve
# (less 128 for the host), and kernel.pty.max must leave 1024 above it
# (`kennel check`, docs/CLI.md --numpty). pids: three processes a VE
# (monitor, init, getty), and a disk's loop device adds kernel threads
# (about 3 a VE); crun's `sleep` one each.
pty_reserve=$(((N + 1) * NUMPTY + 128 + $(cat /proc/sys/kernel/pty/nr)))   # N and the probe
kb_sysctl_raise kernel.pty.max $((pty_reserve + 1024))
kb_sysctl_raise kernel.pty.reserve "$pty_reserve"
pids_per_ve=4; [ "$STORAGE" = image ] && pids_per_ve=8
threads_now=$(kb_threads)
kb_sysctl_raise kernel.pid_max $((threads_now + N * pids_per_ve + 8192))
report "# density-scale N=$N storage=$STORAGE numpty=$NUMPTY $(env_line)"
report "sysctls raised for this run: $(kb_sysctl_changes)"

# --- Kennel
ptys0=$(cat /proc/sys/kernel/pty/nr)
a0=$(kb_mem_available_settled)
create_args=(--template busybox --memory 64M --numproc 64 --numpty "$NUMPTY" --storage "$STORAGE")
[ -z "${DISK:-}" ] || create_args+=(--disk "$DISK")
pool_used_kib() { k storage info --json | jq '.used / 1024 | floor'; }
if [ "$STORAGE" = image ]; then k storage init ${POOL_SIZE:+--size "$POOL_SIZE"}; pool0=$(pool_used_kib); fi

# create, one by one, each timed: the first and last tenth show whether a
# create costs more with more VEs defined.
: > "$KB_RESULTS/create-us.txt"
t0=$(kb_us)
for id in "${ids[@]}"; do
    t=$(kb_us); k create "$id" "${create_args[@]}"; echo $(($(kb_us) - t)) >> "$KB_RESULTS/create-us.txt"
done
t_create=$(($(kb_us) - t0))
tenth=$(((N + 9) / 10))
report "create: $N VEs in $(ms "$t_create") ms, $(per "$t_create" "$N") ms each; first tenth $(head -n "$tenth" "$KB_RESULTS/create-us.txt" | avg_us) ms, last tenth $(tail -n "$tenth" "$KB_RESULTS/create-us.txt" | avg_us) ms"
a_created=$(kb_mem_available_settled)

# start: one command for all when the build takes several ids, else one by one.
: > "$KB_RESULTS/start-us.txt"; : > "$KB_RESULTS/start-errors.txt"
t0=$(kb_us)
if [ "$START" = auto ] && kb_takes_many start; then
    start_how="one \`kennel start\` of all $N ids"
    k start "${ids[@]}" 2>> "$KB_RESULTS/start-errors.txt" || true
else
    start_how="one by one"
    for id in "${ids[@]}"; do
        t=$(kb_us); k start "$id" 2>> "$KB_RESULTS/start-errors.txt" || true; echo $(($(kb_us) - t)) >> "$KB_RESULTS/start-us.txt"
    done
fi
t_start=$(($(kb_us) - t0))
running=$(k list --json -o id | jq length)
line="start ($start_how): $running of $N running after $(ms "$t_start") ms, $(per "$t_start" "$N") ms each"
[ ! -s "$KB_RESULTS/start-us.txt" ] || line+="; first tenth $(head -n "$tenth" "$KB_RESULTS/start-us.txt" | avg_us) ms, last tenth $(tail -n "$tenth" "$KB_RESULTS/start-us.txt" | avg_us) ms"
report "$line"
[ "$STORAGE" = dir ] || report "pool: $(pool_used_kib) KiB used of $(k storage info --json | jq '.size / 1073741824 | floor') GiB, $(awk -v u="$(pool_used_kib)" -v u0="$pool0" -v n="$N" 'BEGIN {printf "%.0f", (u - u0) / n}') KiB per VE"
[ ! -s "$KB_RESULTS/start-errors.txt" ] || report "start errors ($(wc -l < "$KB_RESULTS/start-errors.txt") lines), the first: $(head -1 "$KB_RESULTS/start-errors.txt")"
a1=$(kb_mem_available_settled)
memcg=$(kb_memcg_kb "$PARENT")
report "MemAvailable: $(mib_per $((a_created - a1)) "$running") MiB per running VE ($((a_created - a1)) KiB for $running, settled: caches dropped, median of 5 readings; other users of the host move it too); creating them took $((a0 - a_created)) KiB; charged to the VEs' and monitors' memory cgroups: $(mib_per "$memcg" "$running") MiB per VE; ptys in use host-wide $(cat /proc/sys/kernel/pty/nr) (before: $ptys0)"

# check, list, and the one-VE operations with N VEs there.
t0=$(kb_us); check_out=$(k check 2>&1) || true; t_check=$(($(kb_us) - t0))
report "check: $(ms "$t_check") ms; lines not ok: $(grep -cv '^ok' <<<"$check_out" || true) (the host's own settings among them); the shared pools:"
grep -E '^[a-z]+ +(ptys|memory cgroups|keys|arp table|pids|inotify|user namespaces) ' <<<"$check_out" | sed 's/^/  check: /' | tee -a "$OUT" || true
report "list: $(timed_median "$LIST_RUNS" k list) ms with $running running, list --all $(timed_median "$LIST_RUNS" k list --all) ms (medians of $LIST_RUNS)"
probe=${ids[$((N / 2))]:-${ids[0]}}
report "one VE with $N defined (medians of $PROBES): status $(timed_median "$PROBES" k status "$probe") ms, exec /bin/true $(timed_median "$PROBES" k exec "$probe" -- /bin/true) ms"
: > "$KB_RESULTS/probe-cycle.txt"
probe_cycle() {
    local t c s p d
    t=$(kb_us); k create ksprobe "${create_args[@]}" || return 1; c=$(($(kb_us) - t))
    t=$(kb_us); k start ksprobe || return 1; s=$(($(kb_us) - t))
    t=$(kb_us); k stop ksprobe || return 1; p=$(($(kb_us) - t))
    t=$(kb_us); k destroy ksprobe || return 1; d=$(($(kb_us) - t))
    echo "$c $s $p $d" >> "$KB_RESULTS/probe-cycle.txt"
}
for ((i = 0; i < PROBES; i++)); do
    probe_cycle 2>> "$KB_RESULTS/start-errors.txt" || { report "one more VE: failed: $(tail -1 "$KB_RESULTS/start-errors.txt")"; k destroy --force ksprobe 2>/dev/null || true; break; }
done
col() { awk -v c="$1" '{print $c}' "$KB_RESULTS/probe-cycle.txt" | median | awk '{printf "%.2f", $1 / 1000}'; }
report "one more VE with $N defined (medians of $PROBES): create $(col 1) ms, start $(col 2) ms, stop $(col 3) ms, destroy $(col 4) ms"

# stop, then destroy.
: > "$KB_RESULTS/stop-errors.txt"
t0=$(kb_us)
if [ "$START" = auto ] && kb_takes_many stop; then
    stop_how="one \`kennel stop\` of all"
    k stop "${ids[@]}" 2>> "$KB_RESULTS/stop-errors.txt" || true
else
    # busybox init takes 2 s to shut down (it waits 1 s after SIGTERM and
    # 1 s after SIGKILL), so stops run STOP_JOBS at a time.
    stop_how="$STOP_JOBS at a time"
    printf '%s\n' "${ids[@]}" | xargs -P "$STOP_JOBS" -n 1 "$KENNEL" --root "$KB_ROOT/state" -q stop 2>> "$KB_RESULTS/stop-errors.txt" || true
fi
t_stop=$(($(kb_us) - t0))
report "stop ($stop_how): $(ms "$t_stop") ms, $(per "$t_stop" "$N") ms each; still running: $(k list --json -o id | jq length)"
# MemAvailable again with the VEs stopped: the running figure against the
# mean of before and after brackets the drift other users of the host cause.
a_stopped=$(kb_mem_available_settled)
report "MemAvailable bracketed: $(mib_per $(((a_created + a_stopped) / 2 - a1)) "$running") MiB per running VE (running against the mean of before the starts and after the stops, which differ by $(( (a_stopped - a_created) / 1024 )) MiB)"
[ ! -s "$KB_RESULTS/stop-errors.txt" ] || report "stop errors, the first: $(head -1 "$KB_RESULTS/stop-errors.txt")"
t0=$(kb_us)
for id in "${ids[@]}"; do k destroy "$id" || report "destroy $id failed"; done
t_destroy=$(($(kb_us) - t0))
report "destroy: $(ms "$t_destroy") ms, $(per "$t_destroy" "$N") ms each"
[ "$STORAGE" = dir ] || k storage remove
a2=$(kb_mem_available_settled)
leftovers=$(kb_objects "$PARENT" ks | kb_live)
report "leftovers: $(if [ -n "$leftovers" ]; then wc -l <<<"$leftovers"; else echo none; fi) (mounts, loop devices, cgroups, processes, pty ledger, links, nft tables); ptys in use host-wide $(cat /proc/sys/kernel/pty/nr) (before: $ptys0); MemAvailable $(( (a2 - a0) / 1024 )) MiB from where it started"
[ -z "$leftovers" ] || sed 's/^/  left: /' <<<"$leftovers" | tee -a "$OUT"

# --- crun at the same N: run -d (create + start), list, delete -f.
if [ "$CRUN" = 1 ]; then
    B=$PB_DIR/bundles/pb-ks
    make_bundle "$B" "$PB_BUSYBOX" crun --userns -- /bin/sleep 1000000
    jq '.linux.resources.memory.limit = 67108864 | .linux.resources.pids.limit = 64' "$B/config.json" > "$B/config.json.new"
    mv "$B/config.json.new" "$B/config.json"
    crun_scale() {
        local i t0 t_run t_del n_run a0 a1 a2
        a0=$(kb_mem_available_settled)
        t0=$(kb_us)
        for ((i = 1; i <= N; i++)); do
            crun --root "$CRUN_ROOT" run -d --bundle "$B" "pb-ks-$i" </dev/null >/dev/null 2>>"$KB_RESULTS/crun-errors.txt" || true
        done
        t_run=$(($(kb_us) - t0))
        n_run=$(crun --root "$CRUN_ROOT" list -q | grep -c '^pb-ks-' || true)
        a1=$(kb_mem_available_settled)
        echo "crun run -d (create + start, one by one): $n_run of $N running after $(ms "$t_run") ms, $(per "$t_run" "$N") ms each"
        echo "crun MemAvailable: $(mib_per $((a0 - a1)) "$n_run") MiB per container ($((a0 - a1)) KiB for $n_run); charged to their memory cgroups: $(mib_per "$(kb_memcg_kb 'pb-ks-*')" "$n_run") MiB per container"
        echo "crun list: $(timed_median "$LIST_RUNS" crun --root "$CRUN_ROOT" list) ms (median of $LIST_RUNS)"
        t0=$(kb_us)
        for ((i = 1; i <= N; i++)); do crun --root "$CRUN_ROOT" delete -f "pb-ks-$i" >/dev/null 2>&1 || true; done
        t_del=$(($(kb_us) - t0))
        echo "crun delete -f (kill + delete, one by one): $(ms "$t_del") ms, $(per "$t_del" "$N") ms each; left: $(crun --root "$CRUN_ROOT" list -q | grep -c '^pb-ks-' || true)"
        a2=$(kb_mem_available_settled)
        echo "crun MemAvailable bracketed: $(mib_per $(((a0 + a2) / 2 - a1)) "$n_run") MiB per container (before and after differ by $(( (a2 - a0) / 1024 )) MiB)"
    }
    : > "$KB_RESULTS/crun-errors.txt"
    export -f crun_scale kb_memcg_kb kb_mem_available_settled kb_settle mem_available_kb median kb_us ms per mib_per timed_median
    export N CRUN_ROOT B KB_RESULTS LIST_RUNS SETTLE
    in_crun_ns bash -c crun_scale | tee -a "$OUT"
    [ ! -s "$KB_RESULTS/crun-errors.txt" ] || report "crun errors, the first: $(head -1 "$KB_RESULTS/crun-errors.txt")"
    left=$(compgen -G "/sys/fs/cgroup/*/pb-ks-*" | wc -l || true)
    report "crun leftovers: $left cgroups pb-ks-*"
fi
report "results: $OUT"

#!/usr/bin/env bash
# No leak over time (issue 10): CYCLES start/stop cycles across VES busybox
# VEs, each with a routed IPv4 address (so each start makes and each stop
# removes a veth, a route, a proxy ARP entry and nf_tables tables), in a
# network namespace this script makes to play the host (nothing is set in
# the machine's own). Then it checks that nothing is left and that memory
# came back:
#
# * objects: mounts, loop devices, cgroups, processes, pty ledger entries,
#   links and nft tables of this state root, before the cycles and after
#   (the same set: a witness VE that runs throughout, the pool), and after
#   everything is destroyed (none);
# * descriptors: those of the witness's monitor and init before and after,
#   and of one cycling VE's monitor at each of its starts (Kennel's only
#   long-lived processes are a running VE's monitor); the host's allocated
#   file handles (fs.file-nr, every user's);
# * memory: MemAvailable (caches dropped, then the median of 5 readings 1 s
#   apart) before the first cycle and after the last, goal within 1%; and
#   the kernel's unreclaimable slab, page tables and kernel stacks, where a
#   kernel-side leak would show.
#
# The host is shared: other users' VEs and tests move MemAvailable, slab,
# ptys and file handles too, so those are figures to read, and the objects
# of this root are the check.
#
#   bench/soak.sh                 VES=100 CYCLES=10000 STORAGE=image
#
# A round starts every VE and stops every one (VES cycles), and runs one
# `kennel exec` in one of them; CYCLES / VES rounds. START=each forces one
# `kennel start` (and `stop`) per VE even when the build takes several ids;
# the stops run all at once (busybox init takes 2 s to shut down: it waits
# 1 s after its SIGTERM and 1 s after its SIGKILL). STOP=kill kills
# instead of stopping. SETTLE (3 s) before each memory reading.
: "${KB_ROOT:=/var/tmp/kennel-bench-soak}"
: "${PEERBENCH_DIR:=$KB_ROOT/peers}"
export PEERBENCH_DIR
source "$(dirname "$0")/lib.sh"
need_cmds nsenter
VES=${VES:-100}
CYCLES=${CYCLES:-10000}
STORAGE=${STORAGE:-image}
START=${START:-auto}
STOP=${STOP:-stop}
ROUNDS=$(((CYCLES + VES - 1) / VES))
H=kb-soak-h
OUT=$KB_RESULTS/soak.txt
: > "$OUT"
report() { printf '%s\n' "$*" | tee -a "$OUT"; }
inh() { nsenter --net=/run/netns/$H -- "$@"; }
kh() { inh "$KENNEL" --root "$KB_ROOT/state" -q "$@"; }
ids=()
for ((i = 1; i <= VES; i++)); do ids+=("ko$i"); done

soak_cleanup() {
    local rc=$?
    set +e
    if [ -e /run/netns/$H ]; then
        for id in $(kh list --all --json -o id 2>/dev/null | jq -r '.[].id' 2>/dev/null); do kh destroy --force "$id" >/dev/null 2>&1; done
        kh storage remove >/dev/null 2>&1
        ip netns del $H
    fi
    if [ -n "${PARENT:-}" ]; then
        for h in /sys/fs/cgroup/*/; do rmdir "$h$PARENT/_monitor" "$h$PARENT" 2>/dev/null; done
    fi
    kb_sysctl_restore
    kb_run_release
    exit "$rc"
}
trap soak_cleanup EXIT
ip netns del $H 2>/dev/null || true
# The host namespace: an uplink holding the VEs' network (one end of a
# veth pair whose other end stays in the namespace: nothing leaves it),
# forwarding on there only.
ip netns add $H
ip netns exec $H sh -ec 'ip link set lo up; ip link add up0 type veth peer name up0-lan
    ip addr add 198.18.0.1/16 dev up0; ip link set up0-lan up; ip link set up0 up
    sysctl -qw net.ipv4.ip_forward=1 net.ipv4.neigh.up0.proxy_delay=0'
kh template list | grep -q '^ *busybox ' || kh template create busybox
PARENT=$({ kh check 2>/dev/null || true; } | sed -n 's|.*VEs below \(.*\)/$|\1|p' | head -1)
# The ptys the ledger takes (4 a VE; see density-scale.sh) and pids.
pty_reserve=$(((VES + 1) * 4 + 128 + $(cat /proc/sys/kernel/pty/nr)))
kb_sysctl_raise kernel.pty.max $((pty_reserve + 1024))
kb_sysctl_raise kernel.pty.reserve "$pty_reserve"
report "# soak VES=$VES CYCLES=$CYCLES ($ROUNDS rounds) storage=$STORAGE stop=$STOP $(env_line)"
report "sysctls raised for this run: $(kb_sysctl_changes)"

args=(--template busybox --memory 64M --numproc 64 --numpty 4 --storage "$STORAGE")
[ "$STORAGE" = dir ] || kh storage init
kh create kowitness "${args[@]}" --ip 198.18.0.2
kh start kowitness
for ((i = 1; i <= VES; i++)); do kh create "ko$i" "${args[@]}" --ip "198.18.$((i / 250 + 1)).$((i % 250 + 1))"; done
# One cycle first, so that what a first start loads once (modules, caches
# of the template's files) is in the baseline.
kh start ko1; kh "$STOP" ko1

fds() { ls "/proc/$1/fd" 2>/dev/null | wc -l; }
wmon=$(kh status kowitness --json | jq .monitor_pid)
winit=$(kh status kowitness --json | jq .init_pid)
snapshot() {
    echo "MemAvailable $(kb_mem_available_settled)"
    for f in SUnreclaim SReclaimable PageTables KernelStack Percpu; do echo "$f $(meminfo_kb $f)"; done
    echo "pty_nr $(cat /proc/sys/kernel/pty/nr)"
    # memory cgroups the kernel still holds (dying ones too: a cgroup whose
    # pages or kernel objects outlive it stays counted)
    echo "memory_cgroups $(awk '$1 == "memory" {print $3}' /proc/cgroups)"
    echo "file_handles $(cut -f1 /proc/sys/fs/file-nr)"
    echo "witness_monitor_fds $(fds "$wmon")"
    echo "witness_init_fds $(fds "$winit")"
    echo "zombies_of_this_root $(kb_objects "$PARENT" | sed -n 's/^process: //p' | sort -u | while read -r p; do grep -qs '^State:.*Z' "/proc/$p/status" && echo "$p"; done | wc -l)"
}
kb_objects "$PARENT" ko $H | kb_live | sed 's/ (.*//' > "$KB_RESULTS/soak-objects-before.txt"
snapshot > "$KB_RESULTS/soak-before.txt"

many=0; [ "$START" = auto ] && kb_takes_many start && many=1
many_stop=0; [ "$START" = auto ] && kb_takes_many "$STOP" && many_stop=1
: > "$KB_RESULTS/soak-monitor-fds.txt"; : > "$KB_RESULTS/soak-errors.txt"
failed=0
t0=$(kb_us)
for ((r = 1; r <= ROUNDS; r++)); do
    if [ "$many" = 1 ]; then
        kh start "${ids[@]}" 2>> "$KB_RESULTS/soak-errors.txt" || failed=$((failed + 1))
    else
        for id in "${ids[@]}"; do kh start "$id" 2>> "$KB_RESULTS/soak-errors.txt" || failed=$((failed + 1)); done
    fi
    n=$(kh list --json -o id | jq length)
    [ "$n" = $((VES + 1)) ] || { echo "round $r: $n running, not $((VES + 1))" >> "$KB_RESULTS/soak-errors.txt"; failed=$((failed + 1)); }
    fds "$(kh status ko1 --json | jq .monitor_pid)" >> "$KB_RESULTS/soak-monitor-fds.txt"
    kh exec "ko$(((r - 1) % VES + 1))" -- /bin/true || { echo "round $r: exec failed" >> "$KB_RESULTS/soak-errors.txt"; failed=$((failed + 1)); }
    if [ "$many_stop" = 1 ]; then
        kh "$STOP" "${ids[@]}" 2>> "$KB_RESULTS/soak-errors.txt" || failed=$((failed + 1))
    else
        printf '%s\n' "${ids[@]}" | xargs -P "$VES" -n 1 nsenter --net=/run/netns/$H -- "$KENNEL" --root "$KB_ROOT/state" -q "$STOP" \
            2>> "$KB_RESULTS/soak-errors.txt" || failed=$((failed + 1))
    fi
    if ((r % 10 == 0 || r == ROUNDS)); then
        printf '[%s] round %d/%d: %d cycles in %d s, MemAvailable %d MiB (not settled), failures %d\n' \
            "$(date +%T)" "$r" "$ROUNDS" $((r * VES)) $((($(kb_us) - t0) / 1000000)) $(($(mem_available_kb) / 1024)) "$failed" >&2
    fi
done
t_all=$(($(kb_us) - t0))
report "cycles: $((ROUNDS * VES)) in $((t_all / 1000000)) s ($(awk -v t="$t_all" -v n=$((ROUNDS * VES)) 'BEGIN {printf "%.1f", t / n / 1000}') ms per start + $STOP, exec included); failures: $failed"
[ ! -s "$KB_RESULTS/soak-errors.txt" ] || report "errors, the first: $(head -1 "$KB_RESULTS/soak-errors.txt")"
report "a cycling VE's monitor, descriptors at each start: $(sort -n "$KB_RESULTS/soak-monitor-fds.txt" | uniq -c | awk '{printf "%s%d x%d", sep, $2, $1; sep = ", "}')"

sleep 2   # the last monitors end just after their `kennel stop`
kb_objects "$PARENT" ko $H | kb_live | sed 's/ (.*//' > "$KB_RESULTS/soak-objects-after.txt"
snapshot > "$KB_RESULTS/soak-after.txt"
new=$(comm -13 <(sort "$KB_RESULTS/soak-objects-before.txt") <(sort "$KB_RESULTS/soak-objects-after.txt"))
gone=$(comm -23 <(sort "$KB_RESULTS/soak-objects-before.txt") <(sort "$KB_RESULTS/soak-objects-after.txt"))
report "objects of this root before the cycles: $(wc -l < "$KB_RESULTS/soak-objects-before.txt") (the witness's and the pool's), after: $(wc -l < "$KB_RESULTS/soak-objects-after.txt"); new: $(if [ -n "$new" ]; then wc -l <<<"$new"; else echo none; fi)"
[ -z "$new" ] || sed 's/^/  new: /' <<<"$new" | tee -a "$OUT"
[ -z "$gone" ] || sed 's/^/  gone: /' <<<"$gone" | tee -a "$OUT"
join "$KB_RESULTS/soak-before.txt" "$KB_RESULTS/soak-after.txt" | awk '
    $1 == "MemAvailable" {d = $3 - $2; printf "MemAvailable: %d -> %d KiB (%+d KiB, %+.3f%%; goal within 1%%)\n", $2, $3, d, 100 * d / $2; next}
    {printf "%s: %d -> %d (%+d)\n", $1, $2, $3, $3 - $2}' | tee -a "$OUT"

# Everything down: nothing of this root may remain.
for id in "${ids[@]}" kowitness; do kh destroy --force "$id"; done
[ "$STORAGE" = dir ] || kh storage remove
left=$(kb_objects "$PARENT" ko $H | kb_live)
report "after destroying every VE: $(if [ -n "$left" ]; then wc -l <<<"$left"; else echo no; fi) leftovers (mounts, loop devices, cgroups, processes, pty ledger, links, nft tables)"
[ -z "$left" ] || sed 's/^/  left: /' <<<"$left" | tee -a "$OUT"
report "results: $OUT"

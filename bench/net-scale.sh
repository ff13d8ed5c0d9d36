#!/usr/bin/env bash
# Network at scale (issue 10): TCP throughput (iperf3, one stream) from one
# routed VE to a LAN namespace with only that VE running, and with N routed
# VEs running, each with its IPv4 address. Goal: within 5%.
#
# Everything happens in namespaces this script makes: `kb-nsc-h` plays the
# host and runs Kennel (uplink up0, 198.18.0.1/16, forwarding on there
# only), `kb-nsc-l` the LAN (lan0, 198.18.0.2/16); nothing is set in the
# machine's own network namespace, and no packet leaves the machine. The
# addresses are the benchmarking range (RFC 2544, 198.18.0.0/15).
#
# The rounds run with 1 VE, then with N, then with 1 again (DURATION s x
# ROUNDS each); the ratio is the median with N against the median of both
# runs with 1, which brackets the host's drift.
#
#   bench/net-scale.sh [N]        N=1000 DURATION=5 ROUNDS=3 STORAGE=image
: "${KB_ROOT:=/var/tmp/kennel-bench-netscale}"
: "${PEERBENCH_DIR:=$KB_ROOT/peers}"
export PEERBENCH_DIR
[ $# -eq 0 ] || N=$1
source "$(dirname "$0")/lib.sh"
need_cmds iperf3 nsenter
N=${N:-1000}
DURATION=${DURATION:-5}
ROUNDS=${ROUNDS:-3}
STORAGE=${STORAGE:-image}
START=${START:-auto}
H=kb-nsc-h L=kb-nsc-l
OUT=$KB_RESULTS/net-scale.txt
: > "$OUT"
report() { printf '%s\n' "$*" | tee -a "$OUT"; }
inh() { nsenter --net=/run/netns/$H -- "$@"; }
kh() { inh "$KENNEL" --root "$KB_ROOT/state" -q "$@"; }
others=()
for ((i = 1; i < N; i++)); do others+=("ns$i"); done
# ns<i>'s address: 198.18.<1 + i/250>.<1 + i%250>
addr() { echo "198.18.$(($1 / 250 + 1)).$(($1 % 250 + 1))"; }

net_cleanup() {
    local rc=$?
    set +e
    if [ -e /run/netns/$H ]; then
        for id in $(kh list --all --json -o id 2>/dev/null | jq -r '.[].id' 2>/dev/null); do kh destroy --force "$id" >/dev/null 2>&1; done
        kh storage remove >/dev/null 2>&1
    fi
    ip netns del $H 2>/dev/null; ip netns del $L 2>/dev/null
    if [ -n "${PARENT:-}" ]; then
        for h in /sys/fs/cgroup/*/; do rmdir "$h$PARENT/_monitor" "$h$PARENT" 2>/dev/null; done
    fi
    kb_sysctl_restore
    kb_run_release
    exit "$rc"
}
trap net_cleanup EXIT
ip netns del $H 2>/dev/null || true; ip netns del $L 2>/dev/null || true
ip netns add $H; ip netns add $L
ip -n $H link add up0 type veth peer name lan0 netns $L
ip netns exec $H sh -ec 'ip link set lo up; ip addr add 198.18.0.1/16 dev up0; ip link set up0 up
    sysctl -qw net.ipv4.ip_forward=1 net.ipv4.neigh.up0.proxy_delay=0'
ip netns exec $L sh -ec 'ip link set lo up; ip addr add 198.18.0.2/16 dev lan0; ip link set lan0 up'

kh template list | grep -q '^ *busybox ' || kh template create busybox
PARENT=$({ kh check 2>/dev/null || true; } | sed -n 's|.*VEs below \(.*\)/$|\1|p' | head -1)
pty_reserve=$((N * 4 + 128 + $(cat /proc/sys/kernel/pty/nr)))
kb_sysctl_raise kernel.pty.max $((pty_reserve + 1024))
kb_sysctl_raise kernel.pty.reserve "$pty_reserve"
pids_per_ve=4; [ "$STORAGE" = image ] && pids_per_ve=8
kb_sysctl_raise kernel.pid_max $(($(kb_threads) + N * pids_per_ve + 8192))
report "# net-scale N=$N storage=$STORAGE DURATION=$DURATION ROUNDS=$ROUNDS $(env_line)"
report "sysctls raised for this run: $(kb_sysctl_changes)"

args=(--template busybox --memory 64M --numproc 64 --numpty 4 --storage "$STORAGE")
[ "$STORAGE" = dir ] || kh storage init
kh create ns0 "${args[@]}" --ip 198.18.0.10
for ((i = 1; i < N; i++)); do kh create "ns$i" "${args[@]}" --ip "$(addr "$i")"; done
kh start ns0
probe_net="--net=/proc/$(kh status ns0 --json | jq .init_pid)/ns/net"

# Gbit/s of one iperf3 run from the probe VE to the LAN namespace.
gbps() {
    ip netns exec $L iperf3 -s -1 -D -B 198.18.0.2 -p 15302
    sleep 0.3
    nsenter "$probe_net" -- iperf3 -c 198.18.0.2 -p 15302 -t "$DURATION" -J | jq '.end.sum_received.bits_per_second / 1e9'
}
measure() { local r; for ((r = 0; r < ROUNDS; r++)); do gbps; done; }

measure > "$KB_RESULTS/net-scale-1a.txt"
t0=$(kb_us)
if [ "$START" = auto ] && kb_takes_many start; then
    kh start "${others[@]}" 2> "$KB_RESULTS/net-scale-errors.txt" || true
else
    for id in "${others[@]}"; do kh start "$id" 2>> "$KB_RESULTS/net-scale-errors.txt" || true; done
fi
t_start=$(($(kb_us) - t0))
running=$(kh list --json -o id | jq length)
report "started $((N - 1)) more routed VEs in $((t_start / 1000)) ms ($(awk -v t="$t_start" -v n=$((N - 1)) 'BEGIN {if (n) printf "%.2f", t / n / 1000}') ms each): $running running"
[ ! -s "$KB_RESULTS/net-scale-errors.txt" ] || report "start errors, the first: $(head -1 "$KB_RESULTS/net-scale-errors.txt")"
report "host namespace with $running running: $(ip -n $H -o link | grep -c ': kv' || true) VE links, $(ip -n $H route | grep -c ' dev kv' || true) routes, $(ip -n $H neigh show proxy | wc -l) proxy neighbours, $(ip netns exec $H python3 "$KB_TOP/bench/nft-tables.py" | grep -c kennel || true) nft tables"
measure > "$KB_RESULTS/net-scale-n.txt"
for id in "${others[@]}"; do kh kill "$id" 2>/dev/null || true; done
measure > "$KB_RESULTS/net-scale-1b.txt"

rounds() { awk '{printf "%s%.2f", sep, $1; sep = " "}' "$KB_RESULTS/net-scale-$1.txt"; }
one=$(cat "$KB_RESULTS/net-scale-1a.txt" "$KB_RESULTS/net-scale-1b.txt" | median)
many=$(median < "$KB_RESULTS/net-scale-n.txt")
report "$(printf 'throughput of one routed VE: %.2f Gbit/s alone (rounds %s | %s), %.2f Gbit/s with %s running (rounds %s): ratio %s (goal >= 0.95)' \
    "$one" "$(rounds 1a)" "$(rounds 1b)" \
    "$many" "$running" "$(rounds n)" "$(ratio "$many" "$one")")"

for id in ns0 "${others[@]}"; do kh destroy --force "$id"; done
[ "$STORAGE" = dir ] || kh storage remove
left=$(kb_objects "$PARENT" ns $H | kb_live)
left+=$(ip -n $H route | grep ' dev kv' | sed 's/^/route: /' || true)
left+=$(ip -n $H neigh show proxy | sed 's/^/proxy neighbour: /' || true)
report "leftovers: $(if [ -n "$left" ]; then wc -l <<<"$left"; else echo none; fi) (mounts, loop devices, cgroups, processes, pty ledger, links, routes, proxy neighbours, nft tables)"
[ -z "$left" ] || sed 's/^/  left: /' <<<"$left" | tee -a "$OUT"
report "results: $OUT"

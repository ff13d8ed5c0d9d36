#!/usr/bin/env bash
# VE networking, in namespaces this script makes (one plays the host and
# runs Kennel, one plays the LAN; no address leaves them, nothing is set in
# the machine's own network namespace):
#
# 1. TCP throughput (iperf3, one stream, DURATION s, ROUNDS rounds,
#    interleaved) from a VE to the LAN namespace over the routed model
#    (VE -> host end -> forwarding -> uplink veth -> LAN) and the bridged
#    model (VE -> host end -> bridge -> veth -> LAN), against a bare veth
#    pair between two namespaces. Goals: routed >= 0.95, bridged >= 0.9 of
#    the bare veth.
# 2. Start time added by a network: `kennel start` of a VE with two
#    addresses (IPv4 and IPv6) against one with loopback only. Goal: under
#    3 ms.
#
#   bench/net.sh                 DURATION=5 ROUNDS=3 RUNS=40
source "$(dirname "$0")/lib.sh"
need_cmds iperf3 nft nsenter
DURATION=${DURATION:-5}
ROUNDS=${ROUNDS:-3}
RUNS=${RUNS:-40}
H=kb-net-h L=kb-net-l A=kb-net-a B=kb-net-b
inh() { nsenter --net=/run/netns/$H -- "$@"; }
kh() { inh "$KENNEL" --root "$KB_ROOT/state" -q "$@"; }

net_cleanup() {
    for id in bn-routed bn-bridged bn-lo bn-two; do kh destroy --force "$id" >/dev/null 2>&1 || true; done
    for n in $H $L $A $B; do ip netns del "$n" 2>/dev/null || true; done
    kb_cleanup
}
trap net_cleanup EXIT
net_cleanup

for n in $H $L $A $B; do ip netns add "$n"; ip -n "$n" link set lo up; done
# host <-> LAN (routed uplink), and a bridge with a LAN port.
ip -n $H link add up0 type veth peer name lan0 netns $L
ip -n $H link add br0 type bridge
ip -n $H link add brport type veth peer name lan1 netns $L
ip netns exec $H sh -ec 'ip addr add 192.0.2.1/24 dev up0; ip link set up0 up
    ip link set brport master br0; ip link set brport up; ip link set br0 up
    sysctl -qw net.ipv4.ip_forward=1 net.ipv4.neigh.up0.proxy_delay=0'
ip netns exec $L sh -ec 'ip addr add 192.0.2.100/24 dev lan0; ip link set lan0 up
    ip addr add 198.51.100.100/24 dev lan1; ip link set lan1 up; ip route add default via 192.0.2.1'
# The bare veth pair.
ip -n $A link add va type veth peer name vb netns $B
ip -n $A addr add 203.0.113.1/24 dev va; ip -n $A link set va up
ip -n $B addr add 203.0.113.2/24 dev vb; ip -n $B link set vb up

kb_busybox_template
kh create bn-routed --template busybox --ip 192.0.2.11
kh create bn-bridged --template busybox --netif eth1,bridge=br0,ip=198.51.100.21/24
kh start bn-routed
kh start bn-bridged
ve_net() { echo "--net=/proc/$(kh status "$1" --json | jq .init_pid)/ns/net"; }

# gbps SERVER_NS SERVER_ADDR CLIENT_NSENTER_ARG
gbps() {
    ip netns exec "$1" iperf3 -s -1 -D -B "$2" -p 15301
    sleep 0.3
    nsenter "$3" -- iperf3 -c "$2" -p 15301 -t "$DURATION" -J | jq '.end.sum_received.bits_per_second / 1e9'
}
: > "$KB_RESULTS/net-bare.txt"; : > "$KB_RESULTS/net-routed.txt"; : > "$KB_RESULTS/net-bridged.txt"
for _ in $(seq "$ROUNDS"); do
    gbps $B 203.0.113.2 --net=/run/netns/$A >> "$KB_RESULTS/net-bare.txt"
    gbps $L 192.0.2.100 "$(ve_net bn-routed)" >> "$KB_RESULTS/net-routed.txt"
    gbps $L 198.51.100.100 "$(ve_net bn-bridged)" >> "$KB_RESULTS/net-bridged.txt"
done
bare=$(median < "$KB_RESULTS/net-bare.txt")
routed=$(median < "$KB_RESULTS/net-routed.txt")
bridged=$(median < "$KB_RESULTS/net-bridged.txt")
printf 'throughput: bare veth %.2f Gbit/s, routed VE %.2f (%s of bare, goal >= 0.95), bridged VE %.2f (%s, goal >= 0.9); medians of %s x %ss\n' \
    "$bare" "$routed" "$(ratio "$routed" "$bare")" "$bridged" "$(ratio "$bridged" "$bare")" "$ROUNDS" "$DURATION" \
    | tee "$KB_RESULTS/net.txt"
kh kill bn-routed; kh kill bn-bridged

# Start time with and without a network, same template, same host.
kh create bn-lo --template busybox
kh create bn-two --template busybox --ip 192.0.2.21 --ip 2001:db8::21
prep=$KB_ROOT/prep; mkdir -p "$prep"
for id in bn-lo bn-two; do
    printf '#!/bin/sh\nnsenter --net=/run/netns/%s -- %s --root %s -q kill %s 2>/dev/null; exit 0\n' \
        "$H" "$KENNEL" "$KB_ROOT/state" "$id" > "$prep/$id"
done
chmod +x "$prep"/*
out=$KB_RESULTS/net-start.json
hyperfine -N --style basic --warmup 5 --runs "$RUNS" --export-json "$out" \
    --prepare "$prep/bn-lo" -n loopback "nsenter --net=/run/netns/$H -- $KENNEL --root $KB_ROOT/state -q start bn-lo" \
    --prepare "$prep/bn-two" -n two-addresses "nsenter --net=/run/netns/$H -- $KENNEL --root $KB_ROOT/state -q start bn-two" \
    > "$KB_RESULTS/net-start.log" 2>&1 || { cat "$KB_RESULTS/net-start.log" >&2; exit 1; }
"$prep/bn-lo"; "$prep/bn-two"
lo=$(hf_median "$out" loopback); two=$(hf_median "$out" two-addresses)
printf 'start: loopback only %.2f ms, two addresses %.2f ms (medians, %s runs): %.2f ms added (goal < 3)\n' \
    "$lo" "$two" "$RUNS" "$(echo "$two - $lo" | bc -l)" | tee -a "$KB_RESULTS/net.txt"

#!/usr/bin/env bash
# Kennel in one command: install what is needed, build, make the busybox
# template, create and start a VE with its own IP address, show that it is
# isolated and that the host reaches it, enter it.
#
#   sudo scripts/quickstart.sh          (KENNEL_ROOT=DIR to keep state elsewhere)
#
# The demo VE gets the routed address KENNEL_DEMO_IP (default 192.0.2.11, a
# documentation address no network routes; `none` for loopback only). The
# host reaches it over the VE's own link without forwarding or any other
# host setting; see docs/NETWORK.md for reaching VEs from the LAN.
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/install-deps.sh
echo "==> building (cargo build --release)"
cargo build --release -q
install -m 0755 target/x86_64-unknown-linux-gnu/release/kennel target/x86_64-unknown-linux-gnu/release/kennel-monitor /usr/local/bin/
K=/usr/local/bin/kennel
if [ -d /run/systemd/system ]; then
    # lxcfs bounded, and synced into running VEs after each restart.
    d=/etc/systemd/system
    if ! cmp -s scripts/systemd/lxcfs.service.d/kennel.conf "$d/lxcfs.service.d/kennel.conf" \
        || ! cmp -s scripts/systemd/kennel-lxcfs-sync.service "$d/kennel-lxcfs-sync.service"; then
        install -D -m 0644 scripts/systemd/lxcfs.service.d/kennel.conf "$d/lxcfs.service.d/kennel.conf"
        install -m 0644 scripts/systemd/kennel-lxcfs-sync.service "$d/"
        systemctl daemon-reload
        systemctl restart lxcfs
    fi
    systemctl enable -q --now lxcfs
fi
$K check
grep -q '^ *busybox ' <<<"$($K template list)" || $K template create busybox
ip=${KENNEL_DEMO_IP:-192.0.2.11}
net=(); [ "$ip" = none ] || net=(--ip "$ip")
$K config demo >/dev/null 2>&1 || $K create demo --template busybox --hostname demo --memory 256M --numproc 256 --disk 2G "${net[@]}"
grep -q running <<<"$($K status demo)" || $K start demo
$K status demo
echo "==> inside VE demo: its own hostname, PID 1, root user mapped to an unprivileged host uid, its own network"
$K exec demo -- sh -c 'echo "hostname: $(hostname)"; echo "processes:"; ps; echo "uid map: $(cat /proc/self/uid_map)"; echo "its own 2G disk:"; df -h /; echo "network:"; ip addr | grep -E "^[0-9]|inet"; ip route'
echo "==> on the host, the VE's init runs as uid $(awk '/^Uid:/ {print $2}' /proc/"$($K status demo --json | jq .init_pid)"/status)"
if [ "$ip" != none ]; then
    echo "==> the host reaches the VE at $ip"
    busybox ping -c 1 -W 2 "$ip"
fi
if [ -t 0 ]; then
    echo "==> entering VE demo (exit to leave; 'kennel stop demo' and 'kennel destroy demo' to clean up)"
    exec $K enter demo
fi

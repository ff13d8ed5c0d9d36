#!/usr/bin/env bash
# Kennel in one command: install what is needed, build, install kennel
# (with its completions, man pages and systemd units: the onboot VEs start
# with the host, every VE stops cleanly with it), make the busybox
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
rel=${CARGO_TARGET_DIR:-target}/x86_64-unknown-linux-gnu/release
install -m 0755 $rel/kennel $rel/kennel-monitor $rel/kennel-remote /usr/local/bin/
K=/usr/local/bin/kennel
# kenneld, the API service, once the build makes it.
kenneld_changed=no
if [ -x $rel/kenneld ]; then
    cmp -s $rel/kenneld /usr/local/bin/kenneld || kenneld_changed=yes
    install -m 0755 $rel/kenneld /usr/local/bin/
fi
# Shell completions and man pages, made from kennel's own grammar.
install -d /usr/share/bash-completion/completions /usr/local/share/man/man1
$K completions bash > /usr/share/bash-completion/completions/kennel
[ ! -d /usr/share/zsh/vendor-completions ] || $K completions zsh > /usr/share/zsh/vendor-completions/_kennel
[ ! -d /usr/share/fish/vendor_completions.d ] || $K completions fish > /usr/share/fish/vendor_completions.d/kennel.fish
$K -q man /usr/local/share/man/man1
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
    # The onboot VEs start with the host, and every VE is shut down
    # cleanly with it. Started now too (it starts the onboot VEs not yet
    # running): only a started unit is stopped, with the VEs, at shutdown.
    # Never restarted here: its stop stops every VE.
    if ! cmp -s scripts/systemd/kennel-onboot.service "$d/kennel-onboot.service"; then
        install -m 0644 scripts/systemd/kennel-onboot.service "$d/"
        systemctl daemon-reload
    fi
    systemctl enable -q --now kennel-onboot.service
    # The API service, if it was built. Restarting it leaves the VEs
    # running (see the unit).
    if [ -x $rel/kenneld ]; then
        if ! cmp -s scripts/systemd/kenneld.service "$d/kenneld.service"; then
            install -m 0644 scripts/systemd/kenneld.service "$d/"
            systemctl daemon-reload
            kenneld_changed=yes
        fi
        systemctl enable -q kenneld.service
        if [ "$kenneld_changed" = yes ]; then
            systemctl restart kenneld.service
        else
            systemctl start kenneld.service
        fi
    fi
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

#!/usr/bin/env bash
# Installs what building, running and testing Kennel needs on Debian 12.
# Used by quickstart.sh and tests/run-all.sh; safe to run again.
set -euo pipefail
[ "$(id -u)" = 0 ] || { echo "run as root (sudo $0)" >&2; exit 3; }
pkgs=(
    busybox-static  # the busybox template
    debootstrap     # the debian-12 template
    libseccomp-dev pkg-config gcc   # building (libseccomp compiles the filter)
    iproute2 util-linux procps      # links and namespaces (Kennel, tests)
    nftables                        # the per-VE host firewall
    iperf3 iptables                 # network tests: rates, firewalls inside VEs
    python3                         # network tests: frames a hostile VE forges
    tar zstd jq                     # test fixtures, the v2 VM runner
    curl                            # API tests: requests over kenneld's Unix socket
    g++                             # libFuzzer, built by tests/fuzz.sh
    lxcfs                           # /proc inside a VE shows its own limits (docs/RESOURCES.md)
    systemd                         # systemd-analyze: tests/systemd-units.sh checks the units Kennel installs
    e2fsprogs xfsprogs              # VE disks (ext4) and the storage pool (XFS, reflinks): docs/STORAGE.md
)
missing=()
for p in "${pkgs[@]}"; do [[ $(dpkg-query -W -f='${Status}' "$p" 2>/dev/null) == *'ok installed'* ]] || missing+=("$p"); done
if [ ${#missing[@]} -gt 0 ]; then
    export DEBIAN_FRONTEND=noninteractive
    apt-get update -q >/dev/null
    apt-get install -y -q --no-install-recommends "${missing[@]}" >/dev/null
    echo "installed: ${missing[*]}"
fi
if ! command -v cargo >/dev/null; then
    echo "cargo is missing: install Rust with rustup (https://rustup.rs); Debian 12's own Rust is too old" >&2
    exit 1
fi

#!/usr/bin/env bash
# Checks the systemd units and drop-ins Kennel installs (scripts/systemd)
# with systemd-analyze verify (no running systemd needed): lxcfs.service
# with Kennel's drop-in, kennel-lxcfs-sync.service, kennel-onboot.service
# (the host's boot and shutdown of VEs) and kenneld.service (the API
# service); and what each of the last two must say for the VEs' sake.
set -euo pipefail
cd "$(dirname "$0")/.."
unit=/lib/systemd/system/lxcfs.service
[ -f "$unit" ] || { echo "tests/systemd-units: $unit missing (scripts/install-deps.sh installs lxcfs)" >&2; exit 1; }
d=$(mktemp -d)
trap 'rm -rf "$d"' EXIT
cp "$unit" "$d/"
cp -r scripts/systemd/lxcfs.service.d "$d/"
# The quickstart installs kennel (and kenneld) to /usr/local/bin; CI does
# not: check the units' syntax against an executable that exists.
for u in kennel-lxcfs-sync.service kennel-onboot.service kenneld.service; do
    sed -E 's#/usr/local/bin/kenneld? #/bin/true #' "scripts/systemd/$u" > "$d/$u"
done
# verify prints problems (unknown keys, bad values) and fails on errors.
for u in lxcfs.service kennel-lxcfs-sync.service kennel-onboot.service kenneld.service; do
    out=$(cd "$d" && SYSTEMD_UNIT_PATH="$d:" systemd-analyze verify --man=no "$d/$u" 2>&1) || { echo "tests/systemd-units: $u: $out" >&2; exit 1; }
    [ -z "$out" ] || { echo "tests/systemd-units: $u: $out" >&2; exit 1; }
    echo "$u (with Kennel's files): ok"
done
# What the units are for, beyond their syntax.
want() { # UNIT KEY=VALUE: the unit sets KEY to exactly VALUE
    grep -qxF "$2" "scripts/systemd/$1" || { echo "tests/systemd-units: $1 lacks $2" >&2; exit 1; }
}
want kennel-onboot.service 'Type=oneshot'
want kennel-onboot.service 'RemainAfterExit=yes'
# A VE that fails to start must not fail the unit: a failed unit is not
# stopped at shutdown, and the running VEs would not be shut down cleanly.
want kennel-onboot.service 'ExecStart=-/usr/local/bin/kennel boot'
want kennel-onboot.service 'ExecStop=/usr/local/bin/kennel shutdown'
want kennel-onboot.service 'WantedBy=multi-user.target'
for dep in network-online.target lxcfs.service local-fs.target; do
    grep -qE "^After=.*\\b$dep\\b" scripts/systemd/kennel-onboot.service \
        || { echo "tests/systemd-units: kennel-onboot.service is not After=$dep" >&2; exit 1; }
done
# Stopping the API service must never take a VE (or a helper half-way
# through starting one) with it.
want kenneld.service 'KillMode=process'
want kenneld.service 'Restart=on-failure'
want kenneld.service 'ExecStart=/usr/local/bin/kenneld --listen 0.0.0.0:8443'
echo "kennel-onboot.service, kenneld.service: boot, shutdown and kill settings ok"

#!/usr/bin/env bash
# Checks the systemd units and drop-ins Kennel installs (scripts/systemd)
# with systemd-analyze verify (no running systemd needed): lxcfs.service
# with Kennel's drop-in, and kennel-lxcfs-sync.service.
set -euo pipefail
cd "$(dirname "$0")/.."
unit=/lib/systemd/system/lxcfs.service
[ -f "$unit" ] || { echo "tests/systemd-units: $unit missing (scripts/install-deps.sh installs lxcfs)" >&2; exit 1; }
d=$(mktemp -d)
trap 'rm -rf "$d"' EXIT
cp "$unit" "$d/"
cp -r scripts/systemd/lxcfs.service.d "$d/"
# The quickstart installs kennel to /usr/local/bin; CI does not: check the
# unit's syntax against an executable that exists.
sed 's#/usr/local/bin/kennel #/bin/true #' scripts/systemd/kennel-lxcfs-sync.service > "$d/kennel-lxcfs-sync.service"
# verify prints problems (unknown keys, bad values) and fails on errors.
for u in lxcfs.service kennel-lxcfs-sync.service; do
    out=$(cd "$d" && SYSTEMD_UNIT_PATH="$d:" systemd-analyze verify --man=no "$d/$u" 2>&1) || { echo "tests/systemd-units: $u: $out" >&2; exit 1; }
    [ -z "$out" ] || { echo "tests/systemd-units: $u: $out" >&2; exit 1; }
    echo "$u (with Kennel's files): ok"
done

#!/usr/bin/env bash
# Checks the systemd drop-ins Kennel installs (scripts/systemd) against the
# units they extend, with systemd-analyze verify (no running systemd needed).
set -euo pipefail
cd "$(dirname "$0")/.."
unit=/lib/systemd/system/lxcfs.service
[ -f "$unit" ] || { echo "tests/systemd-units: $unit missing (scripts/install-deps.sh installs lxcfs)" >&2; exit 1; }
d=$(mktemp -d)
trap 'rm -rf "$d"' EXIT
cp "$unit" "$d/"
cp -r scripts/systemd/lxcfs.service.d "$d/"
# verify prints problems (unknown keys, bad values) and fails on errors.
out=$(cd "$d" && SYSTEMD_UNIT_PATH="$d:" systemd-analyze verify --man=no "$d/lxcfs.service" 2>&1) || { echo "$out" >&2; exit 1; }
[ -z "$out" ] || { echo "tests/systemd-units: $out" >&2; exit 1; }
echo "lxcfs.service.d/kennel.conf: ok"

# shellcheck shell=bash
# Shared setup for Kennel's benchmarks. Source it.
#
# The peers (crun, LXC, nsenter) are set up with the team's peer scripts
# (../shared/bench/peers/lib.sh: same busybox rootfs, same OCI/LXC configs)
# and timed in the same run as Kennel; results are reported as ratios.
# Everything Kennel makes lives in $KB_ROOT (a private state root), peers
# use pb-* names; all of it is removed on exit.
set -euo pipefail
KB_HERE=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
KB_TOP=$(cd "$KB_HERE/.." && pwd)
PEERS=${KENNEL_PEERS:-$KB_TOP/../shared/bench/peers}
[ -f "$PEERS/lib.sh" ] || { echo "bench: peer scripts not found at $PEERS (set KENNEL_PEERS)" >&2; exit 2; }
# The peers' lib.sh defaults RUNS: keep the caller's (or none, so that each
# script's own default holds).
kb_runs=${RUNS-}
# shellcheck source=/dev/null
source "$PEERS/lib.sh"
if [ -n "$kb_runs" ]; then RUNS=$kb_runs; else unset RUNS; fi
need_root
KB_ROOT=${KB_ROOT:-/var/tmp/kennel-bench}
KB_RESULTS=${KB_RESULTS:-$KB_ROOT/results}
mkdir -p "$KB_ROOT" "$KB_RESULTS"
# KENNEL names a binary built elsewhere (another target directory, a
# baseline); without it, the tree's own is built.
if [ -z "${KENNEL:-}" ]; then
    KENNEL=${CARGO_TARGET_DIR:-$KB_TOP/target}/x86_64-unknown-linux-gnu/release/kennel
    (cd "$KB_TOP" && cargo build --release -q)
fi
need_cmds crun lxc-start hyperfine jq bc
k() { "$KENNEL" --root "$KB_ROOT/state" -q "$@"; }

# Kennel's busybox template; the peers run an exact copy of the same tree
# (PB_BUSYBOX; Kennel's template directory is root-only, which a user
# namespace container cannot traverse), so every tool starts the same rootfs.
kb_busybox_template() {
    grep -q '^ *busybox ' <<<"$(k template list)" || k template create busybox
    PB_BUSYBOX=$PB_ROOTFS/kennel-busybox
    rm -rf "$PB_BUSYBOX"
    cp -a "$KB_ROOT/state/lib/templates/busybox/rootfs" "$PB_BUSYBOX"
}

# median of numbers on stdin
median() { sort -g | awk '{v[NR]=$1} END {if (NR%2) print v[(NR+1)/2]; else print (v[NR/2]+v[NR/2+1])/2}'; }

# hyperfine median (ms) of command NAME in a JSON export
hf_median() { jq -r --arg n "$2" '.results[] | select(.command == $n) | .median * 1000' "$1"; }

kb_cleanup() {
    for id in $(k list --all --json -o id 2>/dev/null | jq -r '.[].id' 2>/dev/null); do k destroy --force "$id" || true; done
    k storage remove >/dev/null 2>&1 || true   # the pool, once its disks are gone
    crun_cleanup_all; lxc_cleanup_all; cgroup_cleanup_all
    # This state root's cgroup parent, as `kennel check` names it.
    local p; p=$(k check 2>/dev/null | sed -n 's|.*VEs below \(.*\)/$|\1|p' || true)
    [ -n "$p" ] || return 0
    for h in /sys/fs/cgroup/ /sys/fs/cgroup/*/; do
        rmdir "$h$p/_monitor" "$h$p" 2>/dev/null || true
    done
}

ratio() { awk -v a="$1" -v b="$2" 'BEGIN { if (b > 0) printf "%.2f", a / b; else print "n/a" }'; }

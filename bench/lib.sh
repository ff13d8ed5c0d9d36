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

# On a host Kennel's run directory is /run/kennel, a tmpfs; a private state
# root puts it at $KB_ROOT/state/run, on this disk. A start writes a few
# files there (its state, lock, pty share), and their ext4 inode
# allocation took 5% of a start with 1,000 VEs running: so the benches run
# with a tmpfs there too, as on a host. It is mounted when no VE of the
# root runs, and kb_run_release (in every bench's EXIT trap) unmounts it
# once none runs again.
kb_run_tmpfs() {
    local run=$KB_ROOT/state/run
    mountpoint -q "$run" && return 0
    if [ -n "$(ls -A "$run/ve" 2>/dev/null)" ]; then
        echo "bench: VEs of $KB_ROOT/state still run; $run stays on the disk" >&2
        return 0
    fi
    rm -rf "$run" && mkdir -p "$run" && mount -t tmpfs -o mode=0755 kennel-bench-run "$run"
}
kb_run_release() {
    local run=$KB_ROOT/state/run
    mountpoint -q "$run" || return 0
    if [ -n "$(ls -A "$run/ve" 2>/dev/null)" ]; then
        echo "bench: VEs of $KB_ROOT/state still run; its run tmpfs stays mounted" >&2
        return 0
    fi
    umount "$run"
}
kb_run_tmpfs

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
    if [ -n "$p" ]; then
        for h in /sys/fs/cgroup/ /sys/fs/cgroup/*/; do
            rmdir "$h$p/_monitor" "$h$p" 2>/dev/null || true
        done
    fi
    kb_run_release
}

ratio() { awk -v a="$1" -v b="$2" 'BEGIN { if (b > 0) printf "%.2f", a / b; else print "n/a" }'; }

# ---------------------------------------------------------------------------
# For the benches at scale (density-scale.sh, soak.sh, net-scale.sh): host
# sysctls raised for one run, what a state root leaves on the host, and
# starting or stopping many VEs.

# Microseconds since the epoch, without a fork (bash 5's EPOCHREALTIME).
kb_us() { local t=${EPOCHREALTIME/[.,]/}; echo "$t"; }

# kb_sysctl_raise NAME VALUE: raises host sysctl NAME to at least VALUE for
# this run and says so. kb_sysctl_restore (in the EXIT trap) puts back, newest
# first, what this run changed; a value someone else changed meanwhile is
# left as it is, and said. Each change is also written to
# $KB_RESULTS/sysctl-restore.sh until restored, should the run be killed.
KB_SYSCTLS=()
kb_sysctl_file() { local n=$1; echo "/proc/sys/${n//.//}"; }
kb_sysctl_raise() {
    local name=$1 want=$2 f old
    f=$(kb_sysctl_file "$name")
    old=$(cat "$f")
    [ "$old" -lt "$want" ] || return 0
    echo "sysctl -w $name=$old" >> "$KB_RESULTS/sysctl-restore.sh"
    echo "$want" > "$f"
    KB_SYSCTLS+=("$name $old $want")
    echo "sysctl: raised $name from $old to $want for this run" >&2
}
kb_sysctl_restore() {
    local i name old set now f
    for ((i = ${#KB_SYSCTLS[@]} - 1; i >= 0; i--)); do
        read -r name old set <<<"${KB_SYSCTLS[i]}"
        f=$(kb_sysctl_file "$name")
        now=$(cat "$f")
        if [ "$now" = "$set" ]; then
            echo "$old" > "$f" && echo "sysctl: restored $name to $old" >&2
        else
            echo "sysctl: $name is now $now, not the $set this run set: left as it is (it was $old)" >&2
        fi
    done
    KB_SYSCTLS=()
    rm -f "$KB_RESULTS/sysctl-restore.sh"
}

# Drops the page cache, dentries and inodes, then waits SETTLE seconds
# (default 3) for the kernel's deferred frees (RCU, workqueues).
kb_settle() { sync; echo 3 > /proc/sys/vm/drop_caches; sleep "${SETTLE:-3}"; }
# MemAvailable (KiB) after kb_settle: the median of 5 readings 1 s apart.
kb_mem_available_settled() {
    local i
    kb_settle
    for i in 1 2 3 4 5; do mem_available_kb; [ "$i" = 5 ] || sleep 1; done | median
}
meminfo_kb() { awk -v k="$1:" '$1 == k {print $2}' /proc/meminfo; }

# This state root's cgroup parent (as `kennel check` names it).
kb_cgroup_parent() { { k check 2>/dev/null || true; } | sed -n 's|.*VEs below \(.*\)/$|\1|p' | head -1; }

# Every host object this state root has, one line each: mounts and loop
# devices below it, cgroups below PARENT (its `_monitor` aside) and the
# processes in them or whose command line names the root, the ptys its
# ledger counts, and in network namespace NETNS (default: this one) the
# links `kv<PREFIX>*` and nf_tables tables `kennel-<PREFIX>*`.
# kb_objects PARENT [PREFIX] [NETNS]
kb_objects() {
    local parent=$1 prefix=${2:-} netns=${3:-} state=$KB_ROOT/state h d f pat
    grep -F " $state/" /proc/self/mountinfo | awk -v run="$state/run" '$5 != run {print "mount: " $5 " (" $(NF-2) ")"}' || true
    for f in /sys/block/loop*/loop/backing_file; do
        [ -r "$f" ] || continue
        case $(cat "$f" 2>/dev/null) in "$state"/*) echo "loop device: ${f#/sys/block/} $(cat "$f")" | sed 's|/loop/backing_file||' ;; esac
    done
    if [ -n "$parent" ]; then
        for h in $(findmnt -rno TARGET -t cgroup,cgroup2); do
            for d in "$h/$parent"/*/; do
                [ -d "$d" ] || continue
                case $d in */_monitor/) [ -s "$d/cgroup.procs" ] && echo "monitor processes: ${d%/}" ;; *) echo "cgroup: ${d%/}" ;; esac
            done
        done
        grep -lE ":/$parent(/|\$)" /proc/[0-9]*/cgroup 2>/dev/null | cut -d/ -f3 || true
    fi | awk '/^[0-9]+$/ {print "process: " $1; next} {print}'
    # The root's path, from a file, so that grep's own command line does not hold it.
    pat=$KB_RESULTS/.objects-pattern
    printf '%s\n' "$state" > "$pat"
    grep -lFf "$pat" /proc/[0-9]*/cmdline 2>/dev/null | cut -d/ -f3 | sed 's/^/process: /' || true
    for f in "$state"/run/ptys/*; do [ -e "$f" ] && echo "pty ledger: ${f##*/}"; done
    local inns=(); [ -z "$netns" ] || inns=(ip netns exec "$netns")
    "${inns[@]}" ip -o link show 2>/dev/null | awk -F': ' -v p="kv$prefix" 'index($2, p) == 1 {sub(/@.*/, "", $2); print "link: " $2}'
    # (not `nft list tables`: it took minutes with 1,000 VEs' tables)
    "${inns[@]}" python3 "$KB_TOP/bench/nft-tables.py" 2>/dev/null | awk -v p="kennel-$prefix" 'index($2, p) == 1 {print "nft table: " $1 " " $2}'
}
# kb_objects' lines with the processes among them that are gone or zombies
# left out (a stopped VE's monitor ends just after `kennel stop` returns,
# and its zombie waits for the host's PID 1), and a command line added.
kb_live() {
    local l pid cmd
    while IFS= read -r l; do
        case $l in
            process:*) pid=${l#process: }
                grep -qs '^State:.*Z' "/proc/$pid/status" && continue
                cmd=$(tr '\0' ' ' < "/proc/$pid/cmdline" 2>/dev/null) || continue
                [ -n "$cmd" ] || cmd="[$(cat "/proc/$pid/comm" 2>/dev/null)]"
                [ -d "/proc/$pid" ] && echo "$l (${cmd:0:80})" ;;
            *) echo "$l" ;;
        esac
    done | sort -u
}

# Whether this build's `kennel start` (or `stop`) takes several ids.
kb_takes_many() { "$KENNEL" "$1" --help 2>&1 | grep -qE '<ID(S)?>\.\.\.|\[ID(S)?\]\.\.\.|--all'; }
# Threads on the host (each takes a pid), from /proc/loadavg.
kb_threads() { awk '{split($4, a, "/"); print a[2]}' /proc/loadavg; }
# KiB charged to the memory cgroups matching a glob below the memory
# hierarchy (v1 memory.usage_in_bytes, v2 memory.current): less noisy than
# MemAvailable on a shared host, but blind to what no cgroup is charged for.
kb_memcg_kb() {
    local m f s=0
    m=$(findmnt -rno TARGET -t cgroup -O memory | head -1)
    [ -n "$m" ] || m=$(findmnt -rno TARGET -t cgroup2 | head -1)
    for f in $m/$1/memory.usage_in_bytes $m/$1/memory.current; do
        [ -f "$f" ] && s=$((s + $(cat "$f")))
    done
    echo $((s / 1024))
}
# What kb_sysctl_raise changed, on one line ("none" if nothing).
kb_sysctl_changes() {
    local e name old set out=()
    for e in "${KB_SYSCTLS[@]}"; do read -r name old set <<<"$e"; out+=("$name $old -> $set"); done
    if [ ${#out[@]} -eq 0 ]; then echo none; else (IFS=,; echo "${out[*]}" | sed 's/,/, /g'); fi
}

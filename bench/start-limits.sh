#!/usr/bin/env bash
# What a VE's resources cost at start: `kennel start` of a busybox VE with
# the default plan (memory, swap, CPU time and process limits written into
# its cgroups) and lxcfs bound over its /proc, against a busybox VE with
# everything unlimited (`--memory unlimited --swap 0 --cpu-limit unlimited
# --numproc unlimited`; disk limits are unlimited by default) and lxcfs off
# (`lxcfs_dir = "none"`), on the same state root. Timed as bench/start.sh
# times start (`kennel kill` before each run), and `kennel kill` itself
# (`kennel start` before each run), in ROUNDS short rounds whose order
# flips every round (as bench/regress.sh; drift on this machine moves a
# block of runs by more than the 1 ms looked for). Goal: the plan adds at
# most 1 ms to start.
#
# The lxcfs is the script's own (as crates/kennel/tests/common/mod.rs
# starts one): mounted at $KB_ROOT/lxcfs, named by the root's kennel.toml
# only for the plan VE's runs, killed by its PID and unmounted at exit.
# `nofile` and `numpty` have no unlimited: both VEs get the same.
#
#   bench/start-limits.sh        RUNS=200 ROUNDS=20 by default (~30 s)
source "$(dirname "$0")/lib.sh"
need_cmds lxcfs mountpoint
RUNS=${RUNS:-200}
ROUNDS=${ROUNDS:-20}
per=$(( (RUNS + ROUNDS - 1) / ROUNDS ))
# No peer runs here: leave the peers' containers and cgroups (another
# benchmark's, maybe running) alone when kb_cleanup runs.
crun_cleanup_all() { :; }; lxc_cleanup_all() { :; }; cgroup_cleanup_all() { :; }

conf=$KB_ROOT/state/lib/kennel.toml
conf_saved=$KB_ROOT/kennel.toml.saved
lxcfs_dir=$KB_ROOT/lxcfs
lxcfs_pid=
cleanup() {
    kb_cleanup
    if [ -n "$lxcfs_pid" ]; then
        # Its own PID only (SIGTERM: lxcfs unmounts itself), then reaped.
        kill "$lxcfs_pid" 2>/dev/null || true
        for _ in $(seq 100); do kill -0 "$lxcfs_pid" 2>/dev/null || break; sleep 0.1; done
        kill -KILL "$lxcfs_pid" 2>/dev/null || true
        wait "$lxcfs_pid" 2>/dev/null || true
        umount -l "$lxcfs_dir" 2>/dev/null || true
    fi
    if [ -f "$conf_saved" ]; then mv -f "$conf_saved" "$conf"; else rm -f "$conf"; fi
    rm -f "$conf.base"
}

mkdir -p "$KB_ROOT/state/lib"
# The host's settings but lxcfs_dir, which each run's prepare sets.
[ -f "$conf" ] && cp "$conf" "$conf_saved"
grep -v '^ *lxcfs_dir *=' "$conf_saved" > "$conf.base" 2>/dev/null || : > "$conf.base"
trap cleanup EXIT
kb_busybox_template

mkdir -p "$lxcfs_dir"
if mountpoint -q "$lxcfs_dir"; then
    echo "bench: $lxcfs_dir is mounted already (another run of this script?); umount -l it first" >&2
    exit 1
fi
lxcfs -f -l --enable-pidfd -p "$KB_ROOT/lxcfs.pid" "$lxcfs_dir" </dev/null >"$KB_RESULTS/start-limits-lxcfs.log" 2>&1 &
lxcfs_pid=$!
for _ in $(seq 100); do [ -e "$lxcfs_dir/proc/meminfo" ] && break; sleep 0.1; done
[ -e "$lxcfs_dir/proc/meminfo" ] || { echo "bench: lxcfs did not mount at $lxcfs_dir" >&2; exit 1; }

k create limits-bare --template busybox --memory unlimited --swap 0 --cpu-limit unlimited --numproc unlimited
k create limits-plan --template busybox

# Each prepare kills (or starts) its VE and names lxcfs in kennel.toml, or not.
prep=$KB_ROOT/prep; mkdir -p "$prep"
kn="$KENNEL --root $KB_ROOT/state -q"
for v in bare plan; do
    if [ $v = bare ]; then dir=none; else dir=$lxcfs_dir; fi
    printf '#!/bin/sh\n{ echo %s; cat %s; } > %s\n' "'lxcfs_dir = \"$dir\"'" "$conf.base" "$conf" > "$prep/conf-$v"
    printf '#!/bin/sh\n%s kill limits-%s 2>/dev/null; exec %s\n' "$kn" $v "$prep/conf-$v" > "$prep/start-$v"
    printf '#!/bin/sh\n%s kill limits-%s 2>/dev/null; %s && exec %s start limits-%s\n' \
        "$kn" $v "$prep/conf-$v" "$kn" $v > "$prep/kill-$v"
done
chmod +x "$prep"/*

# rounds TAG GROUP...: each GROUP is one command's hyperfine options
# ("--prepare|P|-n|NAME|CMD"), in ROUNDS rounds of `per` runs, the order
# reversed every other round.
: > "$KB_RESULTS/start-limits.log"; rm -f "$KB_RESULTS"/start-limits-*-*.json
rounds() {
    local tag=$1 r g; shift
    for r in $(seq "$ROUNDS"); do
        local args=() order=("$@")
        if (( r % 2 == 0 )); then order=(); for g in "$@"; do order=("$g" "${order[@]}"); done; fi
        for g in "${order[@]}"; do IFS='|' read -r -a part <<<"$g"; args+=("${part[@]}"); done
        hyperfine -N --style basic --warmup 1 --runs "$per" \
            --export-json "$KB_RESULTS/start-limits-$tag-$r.json" "${args[@]}" >> "$KB_RESULTS/start-limits.log" 2>&1 \
            || { cat "$KB_RESULTS/start-limits.log" >&2; exit 1; }
    done
}
# all_median TAG NAME: median over all rounds, in ms.
all_median() {
    jq -s --arg n "$2" '[.[].results[] | select(.command == $n) | .times[]] | sort
        | if length % 2 == 1 then .[length / 2 | floor] else (.[length / 2 - 1] + .[length / 2]) / 2 end * 1000' \
        "$KB_RESULTS"/start-limits-"$1"-*.json
}
rounds start \
    "--prepare|$prep/start-bare|-n|bare|$kn start limits-bare" \
    "--prepare|$prep/start-plan|-n|plan|$kn start limits-plan"
rounds kill \
    "--prepare|$prep/kill-bare|-n|bare|$kn kill limits-bare" \
    "--prepare|$prep/kill-plan|-n|plan|$kn kill limits-plan"

# Check that the two really differ as meant: lxcfs in the plan VE's /proc
# only, and the plan's limits in its cgroups only.
"$prep/start-plan"; k start limits-plan
"$prep/start-bare"; k start limits-bare
lx_plan=$(k exec limits-plan -- grep -c lxcfs /proc/mounts || true)
lx_bare=$(k exec limits-bare -- grep -c lxcfs /proc/mounts || true)
mem_plan=$(k stat limits-plan --json | jq -r '.memory.limit')
mem_bare=$(k stat limits-bare --json | jq -r '.memory.limit')
k kill limits-plan; k kill limits-bare
if [ "${lx_plan:-0}" -eq 0 ] || [ "${lx_bare:-0}" -ne 0 ] || [ "$mem_plan" = null ] || [ "$mem_bare" != null ]; then
    echo "bench: the VEs do not differ as meant: lxcfs mounts plan=$lx_plan bare=$lx_bare, memory limit plan=$mem_plan bare=$mem_bare" >&2
    exit 1
fi

sb=$(all_median start bare); sp=$(all_median start plan)
kb=$(all_median kill bare); kp=$(all_median kill plan)
{
    printf 'start-limits: start bare %.2f ms, plan+lxcfs %.2f ms: %+.2f ms (goal <= +1 ms); ' "$sb" "$sp" "$(echo "$sp - $sb" | bc -l)"
    printf 'kill bare %.2f ms, plan+lxcfs %.2f ms: %+.2f ms; medians of %s runs each in %s alternating rounds\n' \
        "$kb" "$kp" "$(echo "$kp - $kb" | bc -l)" "$((per * ROUNDS))" "$ROUNDS"
} | tee "$KB_RESULTS/start-limits.txt"

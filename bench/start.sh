#!/usr/bin/env bash
# Start latency: `kennel start` of a busybox VE (user namespace, all
# namespaces, cgroups, console, seccomp) until it returns with init running,
# against `crun run -d` (user namespace) and `lxc-start -d` of the same
# rootfs. Goal: Kennel at most 0.5x crun's median. Kennel's VE keeps its
# layer in a directory (`--storage dir`), as the peers do; `kennel-disk`
# is the same VE with a disk of its own (the default: its ext4 image is
# attached and mounted at start, docs/STORAGE.md).
#
#   bench/start.sh            RUNS=40 by default
source "$(dirname "$0")/lib.sh"
RUNS=${RUNS:-40}
trap kb_cleanup EXIT
kb_busybox_template
k create bench-start --template busybox --storage dir
k create bench-start-disk --template busybox
B=$PB_DIR/bundles
make_bundle "$B/kb-crun" "$PB_BUSYBOX" crun --userns --cgroup /pb-kb-crun -- /bin/sleep 100000
make_lxc pb-kb-lxc "/bin/sleep 100000"
prep=$KB_ROOT/prep; mkdir -p "$prep"
printf '#!/bin/sh\n%s --root %s -q kill bench-start 2>/dev/null; exit 0\n' "$KENNEL" "$KB_ROOT/state" > "$prep/kennel"
printf '#!/bin/sh\n%s --root %s -q kill bench-start-disk 2>/dev/null; exit 0\n' "$KENNEL" "$KB_ROOT/state" > "$prep/kennel-disk"
printf '#!/bin/sh\ncrun --root %s delete -f pb-kb-crun >/dev/null 2>&1; exit 0\n' "$PB_CRUN_ROOT" > "$prep/crun"
printf '#!/bin/sh\nlxc-stop -P %s -n pb-kb-lxc -k >/dev/null 2>&1; exit 0\n' "$PB_LXC_PATH" > "$prep/lxc"
chmod +x "$prep"/*
out=$KB_RESULTS/start.json
# crun refuses this host's hybrid cgroup layout unless the cgroup2
# controller list is hidden (see the peers' lib.sh): run hyperfine there.
in_crun_ns hyperfine -N --style basic --warmup 5 --runs "$RUNS" --export-json "$out" \
    --prepare "$prep/kennel" -n kennel "$KENNEL --root $KB_ROOT/state -q start bench-start" \
    --prepare "$prep/kennel-disk" -n kennel-disk "$KENNEL --root $KB_ROOT/state -q start bench-start-disk" \
    --prepare "$prep/crun" -n crun "crun --root $PB_CRUN_ROOT run -d --bundle $B/kb-crun pb-kb-crun" \
    --prepare "$prep/lxc" -n lxc "lxc-start -P $PB_LXC_PATH -n pb-kb-lxc -d" > "$KB_RESULTS/start.log" 2>&1 \
    || { cat "$KB_RESULTS/start.log" >&2; exit 1; }
"$prep/crun"; "$prep/lxc"; "$prep/kennel-disk"
kn=$(hf_median "$out" kennel); kd=$(hf_median "$out" kennel-disk); cr=$(hf_median "$out" crun); lx=$(hf_median "$out" lxc)
printf 'start: kennel %.2f ms (with its own disk %.2f ms), crun %.2f ms, lxc %.2f ms (medians, %s runs); kennel/crun = %s (goal <= 0.5), kennel/lxc = %s, with a disk: kennel/crun = %s\n' \
    "$kn" "$kd" "$cr" "$lx" "$RUNS" "$(ratio "$kn" "$cr")" "$(ratio "$kn" "$lx")" "$(ratio "$kd" "$cr")" | tee "$KB_RESULTS/start.txt"

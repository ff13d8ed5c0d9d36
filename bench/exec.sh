#!/usr/bin/env bash
# exec latency: `/bin/true` inside an already running container, with
# Kennel (`kennel exec ID /bin/true`: all namespaces, cgroup, capability
# bounding set, seccomp), `crun exec`, `lxc-attach`, and `nsenter -a` into
# the crun container (the floor: namespaces only). Goal: Kennel at most
# 0.6x crun's median.
#
#   bench/exec.sh            RUNS=30 by default
source "$(dirname "$0")/lib.sh"
RUNS=${RUNS:-30}
trap kb_cleanup EXIT
kb_busybox_template
k create bench-exec --template busybox
k start bench-exec
B=$PB_DIR/bundles
make_bundle "$B/kb-exec-crun" "$PB_BUSYBOX" crun --userns --cgroup /pb-kb-exec -- /bin/sleep 100000
make_lxc pb-kb-exec-lxc "/bin/sleep 100000" "$PB_BUSYBOX"
pbcrun run -d --bundle "$B/kb-exec-crun" pb-kb-exec </dev/null >/dev/null 2>&1
lxc-start -P "$PB_LXC_PATH" -n pb-kb-exec-lxc -d
pid=$(pbcrun state pb-kb-exec | jq -r .pid)
out=$KB_RESULTS/exec.json
in_crun_ns hyperfine -N --style basic --warmup 5 --runs "$RUNS" --export-json "$out" \
    -n kennel "$KENNEL --root $KB_ROOT/state exec bench-exec -- /bin/true" \
    -n crun "crun --root $PB_CRUN_ROOT exec pb-kb-exec /bin/true" \
    -n lxc-attach "lxc-attach -P $PB_LXC_PATH -n pb-kb-exec-lxc -- /bin/true" \
    -n nsenter "nsenter -t $pid -a /bin/true" > "$KB_RESULTS/exec.log" 2>&1 \
    || { cat "$KB_RESULTS/exec.log" >&2; exit 1; }
kn=$(hf_median "$out" kennel); cr=$(hf_median "$out" crun); la=$(hf_median "$out" lxc-attach); ns=$(hf_median "$out" nsenter)
printf 'exec: kennel %.2f ms, crun %.2f ms, lxc-attach %.2f ms, nsenter -a %.2f ms (medians, %s runs); kennel/crun = %s (goal <= 0.6), kennel/nsenter = %s\n' \
    "$kn" "$cr" "$la" "$ns" "$RUNS" "$(ratio "$kn" "$cr")" "$(ratio "$kn" "$ns")" | tee "$KB_RESULTS/exec.txt"

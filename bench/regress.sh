#!/usr/bin/env bash
# This build against another build of Kennel, side by side in one run:
# `start` of a busybox VE, `exec ID /bin/true`, and `exec -t -w /root ID
# /bin/true` (the path `enter` takes: a pty from the VE's devpts, relayed,
# and a working directory inside the VE). Used to hold a change to within
# a few percent of what it replaces; reports each median and the ratio.
#
#   BASELINE=/var/tmp/kennel-baseline bench/regress.sh     RUNS=60 by default
#
# BASELINE holds the other build's `kennel` and `kennel-monitor` (e.g.
# `git worktree add /tmp/old <commit> && cargo build --release` there).
source "$(dirname "$0")/lib.sh"
RUNS=${RUNS:-60}
BASE=${BASELINE:?set BASELINE to a directory holding the other kennel and kennel-monitor}
[ -x "$BASE/kennel" ] && [ -x "$BASE/kennel-monitor" ] || { echo "bench: no kennel and kennel-monitor in $BASE" >&2; exit 2; }
OLD=$BASE/kennel
old_root=$KB_ROOT/state-baseline
ko() { "$OLD" --root "$old_root" -q "$@"; }
cleanup() {
    for id in $(ko list --all --json -o id 2>/dev/null | jq -r '.[].id' 2>/dev/null); do ko destroy --force "$id" || true; done
    kb_cleanup
}
trap cleanup EXIT
kb_busybox_template
grep -q '^ *busybox ' <<<"$(ko template list)" || ko template create busybox
k create bench-new --template busybox
ko create bench-old --template busybox
prep=$KB_ROOT/prep; mkdir -p "$prep"
printf '#!/bin/sh\n%s --root %s -q kill bench-new 2>/dev/null; exit 0\n' "$KENNEL" "$KB_ROOT/state" > "$prep/new"
printf '#!/bin/sh\n%s --root %s -q kill bench-old 2>/dev/null; exit 0\n' "$OLD" "$old_root" > "$prep/old"
chmod +x "$prep"/*
out=$KB_RESULTS/regress-start.json
hyperfine -N --style basic --warmup 5 --runs "$RUNS" --export-json "$out" \
    --prepare "$prep/new" -n new "$KENNEL --root $KB_ROOT/state -q start bench-new" \
    --prepare "$prep/old" -n old "$OLD --root $old_root -q start bench-old" > "$KB_RESULTS/regress.log" 2>&1 \
    || { cat "$KB_RESULTS/regress.log" >&2; exit 1; }
s_new=$(hf_median "$out" new); s_old=$(hf_median "$out" old)
"$prep/new"; "$prep/old"
k start bench-new; ko start bench-old
out2=$KB_RESULTS/regress-exec.json
hyperfine -N --style basic --warmup 10 --runs "$RUNS" --export-json "$out2" \
    -n exec-new "$KENNEL --root $KB_ROOT/state exec bench-new -- /bin/true" \
    -n exec-old "$OLD --root $old_root exec bench-old -- /bin/true" \
    -n enter-new "$KENNEL --root $KB_ROOT/state exec -t -w /root bench-new -- /bin/true" \
    -n enter-old "$OLD --root $old_root exec -t -w /root bench-old -- /bin/true" >> "$KB_RESULTS/regress.log" 2>&1 \
    || { cat "$KB_RESULTS/regress.log" >&2; exit 1; }
e_new=$(hf_median "$out2" exec-new); e_old=$(hf_median "$out2" exec-old)
t_new=$(hf_median "$out2" enter-new); t_old=$(hf_median "$out2" enter-old)
{
    printf 'regress: start %.2f ms vs %.2f ms (ratio %s); ' "$s_new" "$s_old" "$(ratio "$s_new" "$s_old")"
    printf 'exec %.2f ms vs %.2f ms (ratio %s); ' "$e_new" "$e_old" "$(ratio "$e_new" "$e_old")"
    printf 'enter path %.2f ms vs %.2f ms (ratio %s); medians of %s runs, this build vs %s\n' \
        "$t_new" "$t_old" "$(ratio "$t_new" "$t_old")" "$RUNS" "$BASE"
} | tee "$KB_RESULTS/regress.txt"

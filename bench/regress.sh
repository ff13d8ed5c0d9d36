#!/usr/bin/env bash
# This build against another build of Kennel, side by side in one run:
# `start` of a busybox VE, `exec ID /bin/true`, and `exec -t -w /root ID
# /bin/true` (the path `enter` takes: a pty from the VE's devpts, relayed,
# and a working directory inside the VE). Used to hold a change to within
# a few percent of what it replaces; reports each median and the ratio.
#
#   BASELINE=/var/tmp/kennel-baseline bench/regress.sh     RUNS=1000, ROUNDS=200 by default (~1 min)
#
# BASELINE holds the other build's `kennel` and `kennel-monitor` (e.g.
# `git worktree add /tmp/old <commit> && cargo build --release` there).
source "$(dirname "$0")/lib.sh"
RUNS=${RUNS:-1000}
BASE=${BASELINE:?set BASELINE to a directory holding the other kennel and kennel-monitor}
[ -x "$BASE/kennel" ] && [ -x "$BASE/kennel-monitor" ] || { echo "bench: no kennel and kennel-monitor in $BASE" >&2; exit 2; }
OLD=$BASE/kennel
old_root=$KB_ROOT/state-baseline
ko() { "$OLD" --root "$old_root" -q "$@"; }
cleanup() {
    for id in $(ko list --all --json -o id 2>/dev/null | jq -r '.[].id' 2>/dev/null); do ko destroy --force "$id" || true; done
    # The other build's root: its pool and its cgroup parent too.
    ko storage remove >/dev/null 2>&1 || true
    local p; p=$(ko check 2>/dev/null | sed -n 's|.*VEs below \(.*\)/$|\1|p' || true)
    if [ -n "$p" ]; then
        for h in /sys/fs/cgroup/ /sys/fs/cgroup/*/; do rmdir "$h$p/_monitor" "$h$p" 2>/dev/null || true; done
    fi
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
# Drift on a shared machine moves a whole block of runs by 10-30%: time
# the builds in ROUNDS short rounds of RUNS/ROUNDS runs each, the order
# reversed every round, and take the median of all runs of each command.
# (Two blocks of 60 runs gave exec ratios from 0.93 to 1.30 for one pair
# of builds; 200 rounds of 5 agree within 3%.)
ROUNDS=${ROUNDS:-200}
per=$(( (RUNS + ROUNDS - 1) / ROUNDS ))
# rounds TAG GROUP...: each GROUP is one command's hyperfine options
# ("--prepare P -n NAME CMD" as one string, split on '|').
rounds() {
    local tag=$1 r g; shift
    local groups=("$@")
    for r in $(seq "$ROUNDS"); do
        local args=()
        local order=("${groups[@]}")
        if (( r % 2 == 0 )); then
            order=(); for g in "${groups[@]}"; do order=("$g" "${order[@]}"); done
        fi
        for g in "${order[@]}"; do IFS='|' read -r -a part <<<"$g"; args+=("${part[@]}"); done
        hyperfine -N --style basic --warmup 1 --runs "$per" \
            --export-json "$KB_RESULTS/regress-$tag-$r.json" "${args[@]}" >> "$KB_RESULTS/regress.log" 2>&1 \
            || { cat "$KB_RESULTS/regress.log" >&2; exit 1; }
    done
}
# median TAG NAME: over all rounds, in ms.
median() {
    jq -s --arg n "$2" '[.[].results[] | select(.command == $n) | .times[]] | sort
        | if length % 2 == 1 then .[length / 2 | floor] else (.[length / 2 - 1] + .[length / 2]) / 2 end * 1000' \
        "$KB_RESULTS"/regress-"$1"-*.json
}
rm -f "$KB_RESULTS"/regress-*.json; : > "$KB_RESULTS/regress.log"
rounds start \
    "--prepare|$prep/new|-n|new|$KENNEL --root $KB_ROOT/state -q start bench-new" \
    "--prepare|$prep/old|-n|old|$OLD --root $old_root -q start bench-old"
s_new=$(median start new); s_old=$(median start old)
"$prep/new"; "$prep/old"
k start bench-new; ko start bench-old
rounds exec \
    "-n|exec-new|$KENNEL --root $KB_ROOT/state exec bench-new -- /bin/true" \
    "-n|exec-old|$OLD --root $old_root exec bench-old -- /bin/true"
rounds enter \
    "-n|enter-new|$KENNEL --root $KB_ROOT/state exec -t -w /root bench-new -- /bin/true" \
    "-n|enter-old|$OLD --root $old_root exec -t -w /root bench-old -- /bin/true"
e_new=$(median exec exec-new); e_old=$(median exec exec-old)
t_new=$(median enter enter-new); t_old=$(median enter enter-old)
{
    printf 'regress: start %.2f ms vs %.2f ms (ratio %s); ' "$s_new" "$s_old" "$(ratio "$s_new" "$s_old")"
    printf 'exec %.2f ms vs %.2f ms (ratio %s); ' "$e_new" "$e_old" "$(ratio "$e_new" "$e_old")"
    printf 'enter path %.2f ms vs %.2f ms (ratio %s); medians of %s runs in %s alternating rounds, this build vs %s\n' \
        "$t_new" "$t_old" "$(ratio "$t_new" "$t_old")" "$((per * ROUNDS))" "$ROUNDS" "$BASE"
} | tee "$KB_RESULTS/regress.txt"

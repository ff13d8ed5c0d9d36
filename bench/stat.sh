#!/usr/bin/env bash
# The cost of reading every VE's counters: `kennel stat` (all running
# VEs, the ones that hit a limit) and `kennel list` with counter columns,
# with N busybox VEs running. Goal: `kennel stat` for 500 under 200 ms.
#
#   bench/stat.sh          N=440 (see below), RUNS=20
source "$(dirname "$0")/lib.sh"
# Two ptys each is the least a VE takes: the default kernel.pty.reserve
# (1024, less 128 for the host) holds 448 VEs; 500 need it raised.
N=${N:-440}
RUNS=${RUNS:-20}
trap kb_cleanup EXIT
kb_busybox_template
for i in $(seq "$N"); do
    k create "s$i" --template busybox --numpty 2 --memory 64M
    k start "s$i"
done
out=$KB_RESULTS/stat.json
hyperfine -N --style basic --warmup 2 --runs "$RUNS" --export-json "$out" \
    -n stat "$KENNEL --root $KB_ROOT/state stat" \
    -n list "$KENNEL --root $KB_ROOT/state list -o id,memory,swap,cpu,procs,numproc,fails" \
    -n list-plain "$KENNEL --root $KB_ROOT/state list" > "$KB_RESULTS/stat.log" 2>&1 \
    || { cat "$KB_RESULTS/stat.log" >&2; exit 1; }
printf 'stat: %.1f ms for %s running VEs (goal < 200 ms); list with counters %.1f ms, plain list %.1f ms (medians of %s runs)\n' \
    "$(hf_median "$out" stat)" "$N" "$(hf_median "$out" list)" "$(hf_median "$out" list-plain)" "$RUNS" \
    | tee "$KB_RESULTS/stat.txt"

#!/usr/bin/env bash
# All of Kennel's benchmarks, each timing Kennel and its peers side by side
# in the same run, then one summary of the ratios. Results (text, JSON,
# logs) land in $KB_ROOT/results (default /var/tmp/kennel-bench/results).
#
#   bench/run-all.sh                   RUNS=30, N=100
# Needs: cargo build --release; apt-get install crun lxc hyperfine jq bc
# (the peers' tools, ../shared/bench/peers/README.md).
set -uo pipefail
here=$(cd "$(dirname "$0")" && pwd)
rc=0
for b in start exec create density net; do
    echo "=== $b"
    "$here/$b.sh" || { echo "!!! $b failed"; rc=1; }
done
results=${KB_RESULTS:-${KB_ROOT:-/var/tmp/kennel-bench}/results}
echo "=== summary ($(uname -r), $(nproc) cores, load $(cut -d' ' -f1-3 /proc/loadavg))"
cat "$results"/start.txt "$results"/exec.txt "$results"/create.txt "$results"/density.txt "$results"/net.txt 2>/dev/null
exit $rc

#!/usr/bin/env bash
# The API service (issue 11): with N busybox VEs running (default 1,000),
#   * GET /v1/ves on a kept-alive HTTPS connection (goal: under 50 ms);
#   * a start through the API against `kennel start` (goal: under +2 ms),
#     both timed from one client process, in turn;
#   * an event's latency, from the state change (its file's mtime) to the
#     client (goal: under 50 ms).
# The /metrics scrape has its own script (bench/api-metrics.sh).
#
#   bench/api.sh [N]              RUNS=30 requests each by default
#
# N over ~220 needs more ptys than the host leaves VEs: raise
# kernel.pty.reserve (and kernel.pty.max) for the run, as start-many.sh says.
KB_ROOT=${KB_ROOT:-/var/tmp/kennel-bench-api}
source "$(dirname "$0")/lib.sh"
N=${1:-1000}
RUNS=${RUNS:-30}
NUMPTY=${NUMPTY:-4}
KENNELD=$(dirname "$KENNEL")/kenneld
[ -x "$KENNELD" ] || { echo "bench: $KENNELD is missing (cargo build --release -p kenneld)" >&2; exit 2; }
budget=$(($(cat /proc/sys/kernel/pty/reserve) - 128))
# N VEs and the probe VE.
if [ $(((N + 1) * NUMPTY)) -gt "$budget" ]; then
    echo "bench: $((N + 1)) VEs need $(((N + 1) * NUMPTY)) ptys, the host leaves VEs $budget: raise kernel.pty.reserve and kernel.pty.max" >&2
    exit 2
fi
dpid=
cleanup() {
    [ -z "$dpid" ] || { kill "$dpid" 2>/dev/null || true; wait "$dpid" 2>/dev/null || true; }
    k kill --all >/dev/null 2>&1 || true
    for id in $(k list --all -H -o id 2>/dev/null); do k destroy --force "$id" || true; done
    local p; p=$(k check 2>/dev/null | sed -n 's|.*VEs below \(.*\)/$|\1|p' || true)
    if [ -n "$p" ]; then
        for h in /sys/fs/cgroup/ /sys/fs/cgroup/*/; do rmdir "$h$p/_monitor" "$h$p" 2>/dev/null || true; done
    fi
}
trap 'cleanup; kb_run_release' EXIT
out=$KB_RESULTS/api.txt
: >"$out"
report() { printf '%s\n' "$*" | tee -a "$out"; }

grep -q '^ *busybox ' <<<"$(k template list)" || k template create busybox
for i in $(seq 1 "$N"); do
    k create "a$i" --template busybox --storage dir --memory 64M --numproc 64 --numpty "$NUMPTY"
done
k create probe --template busybox --storage dir --memory 64M --numproc 64 --numpty "$NUMPTY"
k start --all >/dev/null
k kill probe
log=$KB_ROOT/kenneld.log
"$KENNELD" --root "$KB_ROOT/state" --listen 127.0.0.1:0 --socket "$KB_ROOT/kenneld.sock" 2>"$log" &
dpid=$!
for _ in $(seq 100); do grep -q 'https://' "$log" && break; sleep 0.1; done
url=$(grep -o 'https://[0-9.:]*' "$log" | head -1)
[ -n "$url" ] || { cat "$log" >&2; exit 1; }
token=$(k api token create --role admin)
ca=$KB_ROOT/state/lib/api/tls/cert.pem
py() { python3 "$KB_HERE/api.py" "$@"; }
report "api: $(k list -H -o id | wc -l) VEs running, $(nproc) CPUs; ms: median p90"
report "$(py list "$url" "$token" "$ca" "$RUNS")"
report "$(py start "$url" "$token" "$ca" "$RUNS" "$KENNEL" "$KB_ROOT/state" probe)"
report "$(py events "$url" "$token" "$ca" "$RUNS" "$KENNEL" "$KB_ROOT/state" probe)"

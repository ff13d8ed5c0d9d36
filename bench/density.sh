#!/usr/bin/env bash
# Memory per idle VE: start N busybox VEs (their init and a getty) and
# measure the host memory they cost: the monitors' Pss, the kernel's slab
# growth, and what their memory cgroups are charged. Beside it, the same
# for N crun containers (no monitor process) and N LXC containers (a
# monitor each) running `sleep` on the same rootfs. Goal: at most 0.6 MiB
# per Kennel VE.
#
#   bench/density.sh          N=100
source "$(dirname "$0")/lib.sh"
N=${N:-100}
SETTLE=${SETTLE:-3}
trap kb_cleanup EXIT
kb_busybox_template
slab_kb() { awk '/^Slab:/ {print $2}' /proc/meminfo; }
# page tables and kernel stacks: per-process kernel memory outside the slab
pt_ks_kb() { awk '/^(PageTables|KernelStack):/ {s += $2} END {print s}' /proc/meminfo; }
# user pages (anon + page cache) charged to the memory cgroups matching a
# glob: the memcg figure without its kernel part, which Slab already counts
memcg_user_kb() {
    local f s=0 v
    for f in $1; do
        [ -f "$f" ] || continue
        v=$(awk '$1 == "rss" || $1 == "cache" || $1 == "anon" || $1 == "file" {s += $2} END {print s + 0}' "$f")
        s=$((s + v))
    done
    echo $((s / 1024))
}
# sum of memory cgroup charges (KiB) over the dirs matching a glob
memcg_kb() {
    local f s=0
    for f in $1; do [ -f "$f" ] && s=$((s + $(cat "$f"))); done
    echo $((s / 1024))
}
pss_kb() { local p s=0 v; for p in "$@"; do v=$(awk '/^Pss:/ {print $2}' "/proc/$p/smaps_rollup" 2>/dev/null); s=$((s + ${v:-0})); done; echo "$s"; }
settle() { sync; echo 2 > /proc/sys/vm/drop_caches 2>/dev/null || true; sleep "$SETTLE"; }
report() { printf '%s\n' "$*" | tee -a "$KB_RESULTS/density.txt"; }
: > "$KB_RESULTS/density.txt"
memdir=$(findmnt -rno TARGET -t cgroup -O memory | head -1)
[ -n "$memdir" ] || memdir=/sys/fs/cgroup   # cgroup v2
usage=memory.usage_in_bytes; [ -f "$memdir/memory.current" ] && usage=memory.current

# --- Kennel
# Four ptys each (a getty on the console and a few `enter`s): at the
# default 64, kernel.pty.reserve's default 1024 leaves room for only 14
# VEs, and a dense host raises it (`kennel check`) or gives VEs fewer.
for i in $(seq "$N"); do k create "d$i" --template busybox --numpty 4; done
settle; s0=$(slab_kb); a0=$(mem_available_kb); p0=$(pt_ks_kb)
t0=$(now_ns)
for i in $(seq "$N"); do k start "d$i"; done
t1=$(now_ns)
settle; s1=$(slab_kb); a1=$(mem_available_kb); p1=$(pt_ks_kb)
parent=$(basename "$(dirname "$(awk -F: '$2 ~ /memory/ || $2 == "" {print $3; exit}' /proc/"$(k status d1 --json | jq .init_pid)"/cgroup)")")
mapfile -t mons < <(for i in $(seq "$N"); do k status "d$i" --json | jq .monitor_pid; done)
pss=$(pss_kb "${mons[@]}")
ve_memcg=$(memcg_kb "$memdir/$parent/d*/$usage")
mon_memcg=$(memcg_kb "$memdir/$parent/_monitor/$usage")
slab=$((s1 - s0)); avail=$((a0 - a1))
per=$(awk -v a="$pss" -v b="$slab" -v c="$ve_memcg" -v n="$N" 'BEGIN {printf "%.2f", (a + b + c) / n / 1024}')
report "kennel N=$N start_all_ms=$(( (t1 - t0) / 1000000 )) monitors_Pss=${pss}KiB slab_delta=${slab}KiB VE_memcg=${ve_memcg}KiB monitor_memcg=${mon_memcg}KiB MemAvailable_delta=${avail}KiB"
report "kennel per VE: $per MiB (monitor Pss $(awk -v v="$pss" -v n="$N" 'BEGIN {printf "%.0f", v/n}') KiB + slab $(awk -v v="$slab" -v n="$N" 'BEGIN {printf "%.0f", v/n}') KiB + memcg $(awk -v v="$ve_memcg" -v n="$N" 'BEGIN {printf "%.0f", v/n}') KiB); goal <= 0.6 MiB"
ve_user=$(memcg_user_kb "$memdir/$parent/d*/memory.stat")
report "kennel per VE without double counting: $(awk -v a="$pss" -v b="$slab" -v c=$((p1 - p0)) -v d="$ve_user" -v n="$N" 'BEGIN {printf "%.2f", (a + b + c + d) / n / 1024}') MiB (monitor Pss + slab + page tables and kernel stacks $(awk -v v=$((p1 - p0)) -v n="$N" 'BEGIN {printf "%.0f", v/n}') KiB + VE user pages $(awk -v v="$ve_user" -v n="$N" 'BEGIN {printf "%.0f", v/n}') KiB); MemAvailable fell $(awk -v v="$avail" -v n="$N" 'BEGIN {printf "%.2f", v/n/1024}') MiB per VE"
for i in $(seq "$N"); do k kill "d$i"; done
for i in $(seq "$N"); do k destroy "d$i"; done
settle

# --- crun (no monitor process)
B=$PB_DIR/bundles
make_bundle "$B/kb-dens-crun" "$PB_BUSYBOX" crun --userns -- /bin/sleep 100000
crun_dens() {
    local i s0 s1 a0 a1
    settle; s0=$(slab_kb); a0=$(mem_available_kb); p0=$(pt_ks_kb)
    for i in $(seq "$N"); do crun --root "$PB_CRUN_ROOT" run -d --bundle "$B/kb-dens-crun" "pb-kd-$i" </dev/null >/dev/null 2>&1; done
    settle; s1=$(slab_kb); a1=$(mem_available_kb); p1=$(pt_ks_kb)
    local mc mu; mc=$(memcg_kb "$memdir/pb-kd-*/$usage"); mu=$(memcg_user_kb "$memdir/pb-kd-*/memory.stat")
    echo "crun N=$N slab_delta=$((s1 - s0))KiB memcg=${mc}KiB MemAvailable_delta=$((a0 - a1))KiB per_container=$(awk -v b=$((s1 - s0)) -v c="$mc" -v n="$N" 'BEGIN {printf "%.2f", (b + c) / n / 1024}')MiB without_double_counting=$(awk -v b=$((s1 - s0)) -v c=$((p1 - p0)) -v d="$mu" -v n="$N" 'BEGIN {printf "%.2f", (b + c + d) / n / 1024}')MiB MemAvailable_per_container=$(awk -v v=$((a0 - a1)) -v n="$N" 'BEGIN {printf "%.2f", v/n/1024}')MiB"
    for i in $(seq "$N"); do crun --root "$PB_CRUN_ROOT" kill "pb-kd-$i" KILL 2>/dev/null || true; done
    sleep 1
    for i in $(seq "$N"); do crun --root "$PB_CRUN_ROOT" delete -f "pb-kd-$i" 2>/dev/null || true; done
}
export -f crun_dens settle slab_kb mem_available_kb memcg_kb pt_ks_kb memcg_user_kb
export N PB_CRUN_ROOT B memdir usage SETTLE
report "$(in_crun_ns bash -c crun_dens)"

# --- LXC (a monitor process per container)
for i in $(seq "$N"); do make_lxc "pb-kd-$i" "/bin/sleep 100000" "$PB_BUSYBOX"; done
settle; s0=$(slab_kb); a0=$(mem_available_kb); p0=$(pt_ks_kb)
for i in $(seq "$N"); do lxc-start -P "$PB_LXC_PATH" -n "pb-kd-$i" -d; done
settle; s1=$(slab_kb); a1=$(mem_available_kb); p1=$(pt_ks_kb)
mapfile -t lmons < <(pgrep -f "\[lxc monitor\] $PB_LXC_PATH pb-kd-" || true)
lpss=$(pss_kb "${lmons[@]}")
lmc=$(memcg_kb "$memdir/lxc.payload.pb-kd-*/$usage")
lmu=$(memcg_user_kb "$memdir/lxc.payload.pb-kd-*/memory.stat")
report "lxc N=$N monitors_Pss=${lpss}KiB slab_delta=$((s1 - s0))KiB memcg=${lmc}KiB MemAvailable_delta=$((a0 - a1))KiB per_container=$(awk -v a="$lpss" -v b=$((s1 - s0)) -v c="$lmc" -v n="$N" 'BEGIN {printf "%.2f", (a + b + c) / n / 1024}')MiB without_double_counting=$(awk -v a="$lpss" -v b=$((s1 - s0)) -v c=$((p1 - p0)) -v d="$lmu" -v n="$N" 'BEGIN {printf "%.2f", (a + b + c + d) / n / 1024}')MiB MemAvailable_per_container=$(awk -v v=$((a0 - a1)) -v n="$N" 'BEGIN {printf "%.2f", v/n/1024}')MiB"
for i in $(seq "$N"); do lxc-stop -P "$PB_LXC_PATH" -n "pb-kd-$i" -k 2>/dev/null || true; done
rm -rf "$PB_LXC_PATH"/pb-kd-*

#!/usr/bin/env bash
# Memory per idle VE: start N busybox VEs (their init and a getty) and
# measure the host memory they cost, with a breakdown of where it goes
# (/proc/meminfo fields, the slab caches that grew most, the monitors' and
# the VEs' own pages, mounts and kernel threads per VE). Beside it, the
# same for N crun containers (no monitor process) and N LXC containers (a
# monitor each) running `sleep` on the same rootfs; LXC also booting the
# rootfs's own busybox init, with its getty on LXC's console (the same job
# as a VE; LXC_BOOT=0 skips it); and, when asked, N_DEBIAN
# Debian 12 VEs booting systemd against as many LXC containers booting the
# same rootfs. Goal: at most 0.6 MiB per busybox VE.
#
#   bench/density.sh                              N=100, both storage backends, peers
#   N=200 STORAGE=dir WITH_PEERS=0 bench/density.sh    one backend, no peers
#   N=0 N_DEBIAN=200 bench/density.sh             only the Debian/systemd comparison
#
# What is counted, per VE (see bench/README.md, "density"):
#   issue's measure   monitor Pss + slab growth + the VEs' memory cgroup
#                     charge (counts the kernel objects charged to the VE
#                     twice: they are slab too)
#   without double    monitor Pss + slab + percpu + kernel stacks + page
#   counting          tables + the VEs' own user pages (memory.stat)
#   charged           what the VE's memory cgroup and its monitor's share
#                     of theirs are charged (user pages and the kernel
#                     objects their processes allocated): exact per cgroup,
#                     so the one figure other work on the host cannot blur;
#                     it leaves out what no VE cgroup pays for (the cgroups
#                     themselves, kernel threads), which the rows above show
#   MemAvailable      the fall of MemAvailable: the whole machine, noisy
#                     while other work runs on it
source "$(dirname "$0")/lib.sh"
N=${N:-100}
N_DEBIAN=${N_DEBIAN:-0}
STORAGE=${STORAGE:-image dir}
WITH_PEERS=${WITH_PEERS:-1}
LXC_BOOT=${LXC_BOOT:-1}
SETTLE=${SETTLE:-3}
# systemd takes a while to settle into idle
SETTLE_DEBIAN=${SETTLE_DEBIAN:-30}
trap kb_cleanup EXIT
kb_busybox_template
: > "$KB_RESULTS/density.txt"
report() { printf '%s\n' "$*" | tee -a "$KB_RESULTS/density.txt"; }
settle() { sync; echo 2 > /proc/sys/vm/drop_caches 2>/dev/null || true; sleep "${1:-$SETTLE}"; }

# --- measuring
memdir=$(findmnt -rno TARGET -t cgroup -O memory | head -1)
[ -n "$memdir" ] || memdir=/sys/fs/cgroup   # cgroup v2
usage=memory.usage_in_bytes; [ -f "$memdir/memory.current" ] && usage=memory.current
# the kernel part of a charge: its own counter on v1, memory.stat on v2
kmem_kb() {
    local f s=0 v
    for f in $1; do
        if [ -f "$f/memory.kmem.usage_in_bytes" ]; then
            v=$(cat "$f/memory.kmem.usage_in_bytes")
        else
            v=$(awk '$1 == "kernel" {print $2}' "$f/memory.stat" 2>/dev/null)
        fi
        s=$((s + ${v:-0}))
    done
    echo $((s / 1024))
}
MEMINFO='MemAvailable|Slab|SUnreclaim|SReclaimable|Percpu|KernelStack|PageTables|VmallocUsed|AnonPages|Shmem|Cached|Buffers'
# snap FILE: the meminfo fields above, every slab cache's size (KiB) and
# the number of kernel threads, as "key value" lines
snap() {
    {
        grep -E "^($MEMINFO):" /proc/meminfo | tr -d :
        awk 'NR > 2 {printf "slab:%s %d\n", $1, $3 * $4 / 1024}' /proc/slabinfo
        echo "kthreads $(ps -e -o ppid=,pid= | awk '$1 == 2 {n++} END {print n + 0}')"
    } > "$1"
}
field() { awk -v k="$2" '$1 == k {print $2}' "$1"; }
delta() { echo $(( $(field "$2" "$3") - $(field "$1" "$3") )); }
per() { awk -v v="$1" -v n="$2" 'BEGIN {printf "%.1f", v / n}'; }
mib() { awk -v v="$1" -v n="$2" 'BEGIN {printf "%.2f", v / n / 1024}'; }
# sum of a smaps_rollup field (KiB) over PIDs
rollup_kb() {
    local k=$1 p s=0 v; shift
    for p in "$@"; do v=$(awk -v k="$k:" '$1 == k {print $2}' "/proc/$p/smaps_rollup" 2>/dev/null); s=$((s + ${v:-0})); done
    echo "$s"
}
# sum of memory cgroup charges (KiB) over the dirs matching a glob
memcg_kb() {
    local f s=0
    for f in $1; do [ -f "$f" ] && s=$((s + $(cat "$f"))); done
    echo $((s / 1024))
}
# user pages (anon + page cache) charged to the memory cgroups matching a
# glob: the charge without its kernel part, which slab already counts. On
# v1 the total_ lines include sub-cgroups (an LXC container's systemd
# makes some); v2's lines always do.
memcg_user_kb() {
    local f s=0 v
    for f in $1; do
        [ -f "$f" ] || continue
        v=$(awk '$1 == "total_rss" || $1 == "total_cache" {t += $2; v1 = 1}
                 $1 == "rss" || $1 == "cache" || $1 == "anon" || $1 == "file" {s += $2}
                 END {print (v1 ? t : s) + 0}' "$f")
        s=$((s + v))
    done
    echo $((s / 1024))
}
# breakdown LABEL N BEFORE AFTER MONITOR_PSS MONITOR_DIRTY MEMCG USER: the
# table for one run
breakdown() {
    local label=$1 n=$2 a=$3 b=$4 mpss=$5 mdirty=$6 memcg=$7 user=$8 f row1="" row2=""
    for f in MemAvailable Slab SUnreclaim SReclaimable Percpu KernelStack PageTables VmallocUsed AnonPages Shmem Cached kthreads; do
        row1+="| $f "; row2+="| $(per "$(delta "$a" "$b" "$f")" "$n") "
    done
    report ""
    report "$label: growth per VE (KiB; kthreads: count), N=$n"
    report "${row1}| monitor Pss | monitor Private_Dirty | memcg charge | VE user pages |"
    report "${row2}| $(per "$mpss" "$n") | $(per "$mdirty" "$n") | $(per "$memcg" "$n") | $(per "$user" "$n") |"
    report "$label: slab caches that grew most (KiB per VE)"
    awk -v n="$n" 'NR == FNR {a[$1] = $2; next} $1 ~ /^slab:/ {d = $2 - a[$1]; if (d > 0) printf "%s %.1f\n", substr($1, 6), d / n}' "$a" "$b" \
        | sort -k2 -g -r | head -12 | awk '{printf "  %-28s %7s\n", $1, $2}' | tee -a "$KB_RESULTS/density.txt"
    local slab pc ks pt
    slab=$(delta "$a" "$b" Slab); pc=$(delta "$a" "$b" Percpu)
    ks=$(delta "$a" "$b" KernelStack); pt=$(delta "$a" "$b" PageTables)
    report "$label per VE: issue's measure $(mib $((mpss + slab + memcg)) "$n") MiB; without double counting $(mib $((mpss + slab + pc + ks + pt + user)) "$n") MiB; MemAvailable fell $(mib "$(delta "$b" "$a" MemAvailable)" "$n") MiB"
}
# mounts and distinct superblocks in a process's mount namespace, and how
# many of those the host's namespace does not show (the VE's own; the
# mqueue of its IPC namespace, mounted nowhere, comes on top)
mounts_of() {
    awk 'NR == FNR {host[$3] = 1; next} {m++; s[$3]++; if (!($3 in host)) own[$3]++}
         END {printf "%d mounts, %d superblocks (%d its own)", m, length(s), length(own)}' \
        /proc/self/mountinfo "/proc/$1/mountinfo"
}

# --- Kennel
# kennel_run LABEL N TEMPLATE SETTLE CREATE-ARGS...
kennel_run() {
    local label=$1 n=$2 tpl=$3 wait=$4 i t0 t1; shift 4
    for i in $(seq "$n"); do k create "d$i" --template "$tpl" "$@"; done
    settle; snap "$KB_RESULTS/snap0"
    t0=$(now_ns)
    for i in $(seq "$n"); do k start "d$i"; done
    t1=$(now_ns)
    settle "$wait"; snap "$KB_RESULTS/snap1"
    local st init parent mons=() inits=()
    for i in $(seq "$n"); do
        st=$(k status "d$i" --json)
        mons+=("$(jq .monitor_pid <<<"$st")"); inits+=("$(jq .init_pid <<<"$st")")
    done
    init=${inits[0]}
    parent=$(basename "$(dirname "$(awk -F: '$2 ~ /memory/ || $2 == "" {print $3; exit}' "/proc/$init/cgroup")")")
    local mpss mdirty ve_memcg ve_user
    mpss=$(rollup_kb Pss "${mons[@]}"); mdirty=$(rollup_kb Private_Dirty "${mons[@]}")
    ve_memcg=$(memcg_kb "$memdir/$parent/d*/$usage")
    ve_user=$(memcg_user_kb "$memdir/$parent/d*/memory.stat")
    report ""
    report "$label N=$n start_all_ms=$(( (t1 - t0) / 1000000 )) monitors_Pss=${mpss}KiB slab_delta=$(delta "$KB_RESULTS/snap0" "$KB_RESULTS/snap1" Slab)KiB VE_memcg=${ve_memcg}KiB monitor_memcg=$(memcg_kb "$memdir/$parent/_monitor/$usage")KiB"
    local ve_kmem mon_memcg mon_kmem
    ve_kmem=$(kmem_kb "$memdir/$parent/d*"); mon_memcg=$(memcg_kb "$memdir/$parent/_monitor/$usage")
    mon_kmem=$(kmem_kb "$memdir/$parent/_monitor")
    report "$label charged per VE: $(mib $((ve_memcg + mon_memcg)) "$n") MiB = VE cgroup $(per "$ve_memcg" "$n") KiB (kernel $(per "$ve_kmem" "$n")) + monitor's $(per "$mon_memcg" "$n") KiB (kernel $(per "$mon_kmem" "$n"))"
    report "$label: a VE has $(mounts_of "$init") and $(wc -l < "$memdir/$parent/d1/tasks" 2>/dev/null || echo "?") task(s) in its memory cgroup"
    breakdown "$label" "$n" "$KB_RESULTS/snap0" "$KB_RESULTS/snap1" "$mpss" "$mdirty" "$ve_memcg" "$ve_user"
    for i in $(seq "$n"); do k kill "d$i"; done
    for i in $(seq "$n"); do k destroy "d$i"; done
    settle
}
report "# $(env_line)"
if [ "$N" -gt 0 ]; then
    # Four ptys each (a getty on the console and a few `enter`s): at the
    # default 64, kernel.pty.reserve's default 1024 leaves room for only 14
    # VEs, and a dense host raises it (`kennel check`) or gives VEs fewer.
    for s in $STORAGE; do
        kennel_run "kennel-$s" "$N" busybox "$SETTLE" --numpty 4 --storage "$s"
    done
fi

# --- peers, busybox
B=$PB_DIR/bundles
crun_dens() {
    local i
    settle; snap "$KB_RESULTS/snap0"
    for i in $(seq "$N"); do crun --root "$PB_CRUN_ROOT" run -d --bundle "$B/kb-dens-crun" "pb-kd-$i" </dev/null >/dev/null 2>&1; done
    settle; snap "$KB_RESULTS/snap1"
    echo "$(memcg_kb "$memdir/pb-kd-*/$usage") $(memcg_user_kb "$memdir/pb-kd-*/memory.stat") $(kmem_kb "$memdir/pb-kd-*")"
    for i in $(seq "$N"); do crun --root "$PB_CRUN_ROOT" kill "pb-kd-$i" KILL 2>/dev/null || true; done
    sleep 1
    for i in $(seq "$N"); do crun --root "$PB_CRUN_ROOT" delete -f "pb-kd-$i" 2>/dev/null || true; done
}
lxc_dens() {   # lxc_dens N INIT ROOTFS WAIT [LABEL [CONSOLE]]
    local n=$1 i label=${5:-lxc} console=${6:-none}; shift
    for i in $(seq "$n"); do
        make_lxc "pb-kd-$i" "$1" "$2"
        # `default`: LXC's own console, a pty whose master its monitor holds
        if [ "$console" = default ]; then sed -i "/^lxc.console.path/d" "$PB_LXC_PATH/pb-kd-$i/config"; fi
    done
    settle; snap "$KB_RESULTS/snap0"
    for i in $(seq "$n"); do lxc-start -P "$PB_LXC_PATH" -n "pb-kd-$i" -d; done
    settle "$3"; snap "$KB_RESULTS/snap1"
    local lmons
    mapfile -t lmons < <(pgrep -f "\[lxc monitor\] $PB_LXC_PATH pb-kd-" || true)
    breakdown "$label" "$n" "$KB_RESULTS/snap0" "$KB_RESULTS/snap1" "$(rollup_kb Pss "${lmons[@]}")" \
        "$(rollup_kb Private_Dirty "${lmons[@]}")" "$(memcg_kb "$memdir/lxc.payload.pb-kd-*/$usage")" \
        "$(memcg_user_kb "$memdir/lxc.payload.pb-kd-*/memory.stat")"
    local lc lm
    lc=$(memcg_kb "$memdir/lxc.payload.pb-kd-*/$usage"); lm=$(memcg_kb "$memdir/lxc.monitor.pb-kd-*/$usage")
    report "$label charged per container: $(mib $((lc + lm)) "$n") MiB = payload cgroup $(per "$lc" "$n") KiB (kernel $(per "$(kmem_kb "$memdir/lxc.payload.pb-kd-*")" "$n")) + monitor cgroup $(per "$lm" "$n") KiB"
    for i in $(seq "$n"); do lxc-stop -P "$PB_LXC_PATH" -n "pb-kd-$i" -k 2>/dev/null || true; done
    rm -rf "${PB_LXC_PATH:?}"/pb-kd-*
}
if [ "$N" -gt 0 ] && [ "$WITH_PEERS" = 1 ]; then
    make_bundle "$B/kb-dens-crun" "$PB_BUSYBOX" crun --userns -- /bin/sleep 100000
    export -f crun_dens settle snap memcg_kb memcg_user_kb kmem_kb
    export N PB_CRUN_ROOT B memdir usage SETTLE MEMINFO KB_RESULTS
    read -r cmc cmu ckm < <(in_crun_ns bash -c crun_dens)
    breakdown "crun" "$N" "$KB_RESULTS/snap0" "$KB_RESULTS/snap1" 0 0 "$cmc" "$cmu"
    report "crun charged per container: $(mib "$cmc" "$N") MiB (kernel $(per "$ckm" "$N") KiB)"
    lxc_dens "$N" "/bin/sleep 100000" "$PB_BUSYBOX" "$SETTLE"
    # The template's inittab: busybox init and a getty on /dev/console.
    if [ "$LXC_BOOT" = 1 ]; then lxc_dens "$N" "/sbin/init" "$PB_BUSYBOX" "$SETTLE" "lxc-init" default; fi
fi

# --- Debian 12 with systemd, against LXC booting the same rootfs
if [ "$N_DEBIAN" -gt 0 ]; then
    cache=${KENNEL_TEST_CACHE:-/var/tmp/kennel-test-cache}/debian-12.tar.zst
    [ -f "$cache" ] || { echo "density: $cache missing (the test suite makes it)" >&2; exit 2; }
    grep -q '^ *debian-12 ' <<<"$(k template list)" || k template import debian-12 "$cache"
    # Four ptys each, as the busybox VEs: Kennel reserves a VE's ptys from
    # the host's pool at start, and 200 x 8 exceed what this host leaves
    # for VEs; an idle VE opens none (LXC's lxc.pty.max below is a bound,
    # not a reservation)
    kennel_run "kennel-debian" "$N_DEBIAN" debian-12 "$SETTLE_DEBIAN" --numpty 4 --storage "${STORAGE%% *}"
    PB_DEB=$PB_ROOTFS/kennel-debian-12
    rm -rf "$PB_DEB"; mkdir -p "$PB_DEB"
    zstd -dc "$cache" | tar -x -C "$PB_DEB" --numeric-owner
    # LXC's containers are privileged here (the peers' config): every
    # container's systemd, journald and logind are the host's root, and
    # share its fs.inotify.max_user_instances (128, some 25 containers'
    # worth); each Kennel VE is a user of its own. Raised for this run
    # only, so that LXC's containers boot as one does alone.
    inotify=$(cat /proc/sys/fs/inotify/max_user_instances)
    trap 'echo "$inotify" > /proc/sys/fs/inotify/max_user_instances; kb_cleanup' EXIT
    echo $((N_DEBIAN * 8 + inotify)) > /proc/sys/fs/inotify/max_user_instances
    lxc_dens "$N_DEBIAN" "/sbin/init" "$PB_DEB" "$SETTLE_DEBIAN"
    echo "$inotify" > /proc/sys/fs/inotify/max_user_instances
    trap kb_cleanup EXIT
    rm -rf "$PB_DEB"
fi

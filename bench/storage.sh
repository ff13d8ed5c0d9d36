#!/usr/bin/env bash
# Storage (issue 9): the per-VE disk images in a reflink pool.
#
#   create    `kennel create` on the image backend (the default: a reflink
#             clone of the pool's empty disk of that size) vs `--storage dir`
#             (hyperfine, RUNS each, destroy between); median and p90;
#             goal < 50 ms. `kennel start` of each (the image is
#             loop-mounted at start): medians and the difference.
#   space     SPACE_N (100) VEs from the busybox template: pool use
#             (`storage info --json` .used) and host use (blocks of the
#             pool image) before, after create and after a start of all;
#             per VE; the template counted once beside it.
#   snapshot  `kennel snapshot create` of a running VE that has just written
#             1 GiB (all of it still dirty), of the same VE while a writer
#             keeps writing, and of it settled (synced): total (wall and as
#             reported) and frozen time as reported, SNAPS (5) each,
#             medians; goal < 1 s total, frozen < 100 ms. One more under
#             strace shows where the time goes (syncfs, FIFREEZE, FICLONE,
#             FITHAW, the cgroup freezer).
#   clone     `kennel clone` of the running 1 GiB VE and of the 10,000-file
#             VE (3 each); goal < 1 s.
#   backup    a VE with ~1.1 GiB of files written inside (10,000 of 100 KiB,
#             half hex of random bytes, half log-like text; plus 10 x 10 MiB
#             random): `kennel backup` vs `tar -cf - . | zstd -3 -T0` of the
#             same tree (a snapshot of it mounted with `snapshot mount`),
#             caches dropped before each, ROUNDS (3) alternating, medians;
#             goal kennel >= 0.9x tar|zstd in MB/s of input. Incremental
#             after changing 10 MiB (100 files rewritten): goal < 2 s.
#   density   (only when asked: `bench/storage.sh density`) DENSITY_N
#             (1000) VEs created with --memory 64M --numproc 64 --numpty 4,
#             create p50/p99, DENSITY_START (= DENSITY_N) of them started:
#             MemAvailable, loop devices and kernel threads per started
#             VE; then all destroyed and the leftovers counted.
#
#   bench/storage.sh                     space create snapshot clone backup
#   bench/storage.sh density             the density run alone (several minutes)
#   bench/storage.sh snapshot backup     any subset, in the order given
#
# State lives in $KB_ROOT (/var/tmp/kennel-bench-storage, its own pool
# image of POOL_SIZE, 20G sparse); all of it is removed on exit, the pool
# with `kennel storage remove`. Peers are not used here (tar|zstd is run
# inline), so the cleanup touches no pb-* object of a peer run beside it.
KB_ROOT=${KB_ROOT:-/var/tmp/kennel-bench-storage}
source "$(dirname "$0")/lib.sh"
need_cmds zstd tar python3 strace
RUNS=${RUNS:-50}
SNAPS=${SNAPS:-5}
ROUNDS=${ROUNDS:-3}
SPACE_N=${SPACE_N:-100}
DENSITY_N=${DENSITY_N:-1000}
DENSITY_START=${DENSITY_START:-$DENSITY_N}
POOL_SIZE=${POOL_SIZE:-20G}
export TREE_DIRS=${TREE_DIRS:-100}   # 100 files of 100 KiB each
ST=$KB_ROOT/state
kv() { "$KENNEL" --root "$ST" "$@"; }          # not quiet: snapshot prints its times
now() { echo "$EPOCHREALTIME"; }                 # no fork
ms_since() { awk -v a="$1" -v b="$EPOCHREALTIME" 'BEGIN {printf "%.1f", (b - a) * 1000}'; }
# percentile P (0-100, nearest rank) of numbers on stdin
pct() { sort -g | awk -v p="$1" '{v[NR]=$1} END {i = int((p / 100) * NR + 0.999999); if (i < 1) i = 1; print v[i]}'; }
hf_pct() { jq -r --arg n "$2" '.results[] | select(.command == $n) | .times[] * 1000' "$1" | pct "$3"; }
TABLE=$KB_RESULTS/storage.txt
row() { printf '| %s | %s | %s |\n' "$1" "$2" "$3" | tee -a "$TABLE"; }
note() { printf '%s\n' "$*" | tee -a "$KB_RESULTS/storage-notes.txt" >&2; }
drop_caches() { sync; echo 3 > /proc/sys/vm/drop_caches; }
pool_used() { kv storage info --json | jq .used; }
pool_img() { kv storage info --json | jq -r '.pool.image // empty'; }
img_kb() { local i; i=$(pool_img); [ -n "$i" ] && du -k "$i" | cut -f1 || echo 0; }
kthreads() { ps -o pid= --ppid 2 | wc -l; }
loops_attached() { losetup -a | grep -c "$ST/lib/pool/" || true; }   # VEs' disks, not the pool's own loop

MOUNTS=()
st_cleanup() {
    set +e
    local m id p h
    # shellcheck disable=SC2086  # "ID NAME"
    for m in "${MOUNTS[@]}"; do kv -q snapshot umount $m 2>/dev/null; done
    for id in $(k list --all --json -o id 2>/dev/null | jq -r '.[].id' 2>/dev/null); do k destroy --force "$id"; done
    p=$(k check 2>/dev/null | sed -n 's|.*VEs below \(.*\)/$|\1|p')
    k storage remove 2>/dev/null
    if [ -n "$p" ]; then
        for h in /sys/fs/cgroup/ /sys/fs/cgroup/*/; do rmdir "$h$p/_monitor" "$h$p" 2>/dev/null; done
    fi
    rm -rf "${KB_ROOT:?}/data" "$KB_ROOT/bk" "$KB_ROOT/mnt" "$ST"
    if grep -q " $ST" /proc/self/mountinfo || losetup -a | grep -q "$ST"; then
        echo "storage.sh: left behind:" >&2; grep " $ST" /proc/self/mountinfo >&2; losetup -a | grep "$ST" >&2
    fi
}
trap 'st_cleanup; kb_run_release' EXIT
mkdir -p "$ST"
grep -q '^ *busybox ' <<<"$(k template list)" || k template create busybox
k storage init --size "$POOL_SIZE"
TPL=$ST/lib/templates/busybox/rootfs

# ---------------------------------------------------------------- create
bench_create() {
    local prep=$KB_ROOT/prep out=$KB_RESULTS/storage-create.json
    mkdir -p "$prep"
    printf '#!/bin/sh\n%s --root %s -q destroy -f sc-img 2>/dev/null; %s --root %s -q destroy -f sc-dir 2>/dev/null; exit 0\n' \
        "$KENNEL" "$ST" "$KENNEL" "$ST" > "$prep/create"
    chmod +x "$prep/create"
    hyperfine -N --style basic --warmup 3 --runs "$RUNS" --export-json "$out" --prepare "$prep/create" \
        -n image "$KENNEL --root $ST -q create sc-img --template busybox" \
        -n dir "$KENNEL --root $ST -q create sc-dir --template busybox --storage dir" > "$KB_RESULTS/storage-create.log" 2>&1 \
        || { cat "$KB_RESULTS/storage-create.log" >&2; exit 1; }
    "$prep/create"
    row "create, image backend (median / p90, $RUNS runs)" "$(printf '%.1f / %.1f ms' "$(hf_median "$out" image)" "$(hf_pct "$out" image 90)")" "< 50 ms"
    row "create, --storage dir (median / p90)" "$(printf '%.1f / %.1f ms' "$(hf_median "$out" dir)" "$(hf_pct "$out" dir 90)")" ""
    # start: the image VE's disk is checked and mounted by start
    k create ss-img --template busybox; k create ss-dir --template busybox --storage dir
    printf '#!/bin/sh\n%s --root %s -q kill ss-img 2>/dev/null; %s --root %s -q kill ss-dir 2>/dev/null; exit 0\n' \
        "$KENNEL" "$ST" "$KENNEL" "$ST" > "$prep/start"
    chmod +x "$prep/start"
    out=$KB_RESULTS/storage-start.json
    hyperfine -N --style basic --warmup 3 --runs "$RUNS" --export-json "$out" --prepare "$prep/start" \
        -n image "$KENNEL --root $ST -q start ss-img" \
        -n dir "$KENNEL --root $ST -q start ss-dir" > "$KB_RESULTS/storage-start.log" 2>&1 \
        || { cat "$KB_RESULTS/storage-start.log" >&2; exit 1; }
    "$prep/start"
    local si sd; si=$(hf_median "$out" image); sd=$(hf_median "$out" dir)
    row "start, image vs dir (medians, $RUNS runs)" "$(printf '%.2f vs %.2f ms (+%.2f ms, %sx)' "$si" "$sd" "$(awk -v a="$si" -v b="$sd" 'BEGIN{print a-b}')" "$(ratio "$si" "$sd")")" ""
    # where the image's start time goes: slow calls (> 2 ms) of one start
    # (strace -f would wait for the VE's monitor and init forever: once the
    # VE runs, the tracer is killed, which detaches them)
    strace -f -T -o "$KB_RESULTS/storage-start-strace.txt" "$KENNEL" --root "$ST" -q start ss-img &
    local spid=$! n=0
    until k status ss-img --json 2>/dev/null | jq -e '.init_pid > 0' >/dev/null || [ $((n += 1)) -gt 100 ]; do sleep 0.1; done
    sleep 1; kill -KILL "$spid"; wait "$spid" 2>/dev/null || true
    note "start of an image VE under strace, calls over 2 ms:"
    note "$(awk -F'<' '/<[0-9.]+>$/ {t = $NF; sub(/>/, "", t); if (t + 0 > 0.002) print "    " substr($0, 1, 110) " <" t}' "$KB_RESULTS/storage-start-strace.txt")"
    k destroy -f ss-img; k destroy -f ss-dir
}

# ---------------------------------------------------------------- space
bench_space() {
    local u0 h0 u1 h1 u2 h2 i tpl_kb
    sync; u0=$(pool_used); h0=$(img_kb)
    for i in $(seq "$SPACE_N"); do k create "sp$i" --template busybox --memory 64M --numproc 64 --numpty 4; done
    sync; u1=$(pool_used); h1=$(img_kb)
    for i in $(seq "$SPACE_N"); do k start "sp$i"; done
    sleep 5   # ext4's lazy inode-table init runs in the background after the first mount
    for i in $(seq "$SPACE_N"); do k kill "sp$i"; done
    sync; u2=$(pool_used); h2=$(img_kb)
    tpl_kb=$(du -sk "$TPL" | cut -f1)
    note "space: pool used ${u0} -> ${u1} (created) -> ${u2} (started once) bytes; pool image ${h0} -> ${h1} -> ${h2} KiB; template ${tpl_kb} KiB"
    row "space, $SPACE_N VEs: pool use per VE, created / started once" \
        "$(awk -v a="$u0" -v b="$u1" -v c="$u2" -v n="$SPACE_N" 'BEGIN {printf "%.2f / %.2f MiB (pool %.0f -> %.0f -> %.0f MiB)", (b-a)/n/1048576, (c-a)/n/1048576, a/1048576, b/1048576, c/1048576}')" ""
    row "space, $SPACE_N VEs: host use per VE (pool image blocks), created / started once" \
        "$(awk -v a="$h0" -v b="$h1" -v c="$h2" -v n="$SPACE_N" 'BEGIN {printf "%.2f / %.2f MiB (image %.0f -> %.0f -> %.0f MiB)", (b-a)/n/1024, (c-a)/n/1024, a/1024, b/1024, c/1024}')" ""
    row "space: the template, once" "$(awk -v t="$tpl_kb" 'BEGIN {printf "%.1f MiB", t/1024}')" ""
    for i in $(seq "$SPACE_N"); do k destroy -f "sp$i"; done
    sync; sleep 1
    note "space: after destroying them: pool used $(pool_used) bytes, pool image $(img_kb) KiB on the host"
    row "space: after destroying the $SPACE_N, pool use / host use (pool image blocks)" "$(awk -v u="$(pool_used)" -v h="$(img_kb)" 'BEGIN {printf "%.0f / %.0f MiB", u/1048576, h/1024}')" ""
}

# ---------------------------------------------------------------- snapshot
# snap VE NAME -> "wall_ms reported_total_ms frozen_ms"
snap() {
    local t o; t=$(now)
    o=$(kv snapshot create "$1" "$2")
    local w; w=$(ms_since "$t")
    # "Took snapshot 'x' of VE y in 204.8 ms; the VE was frozen 44.8 ms"
    echo "$w $(sed -n 's/.* in \([0-9.]*\) ms; the VE was frozen \([0-9.]*\) ms.*/\1 \2/p' <<<"$o")"
}
snap_rows() {  # label file
    row "snapshot, $1 (medians of $SNAPS): total wall / reported, frozen" \
        "$(printf '%s / %s ms, frozen %s ms (frozen max %s)' "$(cut -d' ' -f1 "$2" | median)" "$(cut -d' ' -f2 "$2" | median)" "$(cut -d' ' -f3 "$2" | median)" "$(cut -d' ' -f3 "$2" | sort -g | tail -1)")" "< 1 s, frozen < 100 ms"
    note "snapshot $1 (wall reported frozen): $(tr '\n' ';' < "$2")"
}
memcg_dirty_kb() {  # VE: dirty page cache charged to its memory cgroup
    local p; p=$(k check 2>/dev/null | sed -n 's|.*VEs below \(.*\)/$|\1|p')
    awk '$1 == "dirty" || $1 == "file_dirty" {print int($2 / 1024)}' "/sys/fs/cgroup/memory/$p/$1/memory.stat" 2>/dev/null | head -1
}
bench_snapshot() {
    local i f=$KB_RESULTS/storage-snap ve
    # sn1 has the default plan (memory 1G: the kernel's per-cgroup dirty
    # limit starts writeback while the VE writes); sn4 --memory 4G, where
    # the whole GiB is still dirty when the snapshot starts.
    k create sn1 --template busybox
    k create sn4 --template busybox --memory 4G
    for ve in sn1 sn4; do
        k start "$ve"
        k exec "$ve" -- /bin/sh -c 'dd if=/dev/urandom of=/seed bs=1M count=1024 2>/dev/null && sync'
        : > "$f-dirty-$ve"
        for i in $(seq "$SNAPS"); do
            k exec "$ve" -- /bin/sh -c 'rm -f /big; sync; cp /seed /big'
            note "snapshot $ve d$i: dirty in the VE's memory cgroup before: $(memcg_dirty_kb "$ve") KiB"
            snap "$ve" "d$i" >> "$f-dirty-$ve"
            k snapshot delete "$ve" "d$i"
        done
    done
    snap_rows "1 GiB just written, memory 1G (default)" "$f-dirty-sn1"
    snap_rows "1 GiB just written, memory 4G (all dirty)" "$f-dirty-sn4"
    k destroy -f sn4
    # a writer keeps writing (dd from /dev/urandom) during each snapshot
    k exec sn1 -- /bin/sh -c 'rm -f /big; sync'
    "$KENNEL" --root "$ST" -q exec -T sn1 -- /bin/sh -c 'exec timeout 60 dd if=/dev/urandom of=/w bs=1M count=3000 2>/dev/null' &
    local wpid=$!
    sleep 3
    : > "$f-writer"
    for i in $(seq "$SNAPS"); do snap sn1 "w$i" >> "$f-writer"; k snapshot delete sn1 "w$i"; sleep 1; done
    snap_rows "with a writer writing (dd from urandom)" "$f-writer"
    k exec sn1 -- /bin/sh -c 'killall dd 2>/dev/null; exit 0'
    wait "$wpid" || true
    # settled: 1 GiB on the disk, nothing dirty
    k exec sn1 -- /bin/sh -c 'rm -f /w; sync'
    : > "$f-settled"
    for i in $(seq "$SNAPS"); do snap sn1 "s$i" >> "$f-settled"; k snapshot delete sn1 "s$i"; done
    snap_rows "1 GiB written, synced" "$f-settled"
    # where the time goes: one dirty snapshot under strace (times per call)
    k exec sn1 -- /bin/sh -c 'rm -f /big; cp /seed /big'
    strace -f -tt -T -e trace=syncfs,ioctl,openat,write -o "$KB_RESULTS/storage-snap-strace.txt" \
        "$KENNEL" --root "$ST" snapshot create sn1 st > "$KB_RESULTS/storage-snap-strace.out"
    note "snapshot under strace: $(cat "$KB_RESULTS/storage-snap-strace.out")"
    note "$(grep -E 'syncfs\(|FIFREEZE|FICLONE|FITHAW|freezer' "$KB_RESULTS/storage-snap-strace.txt" | sed 's/^/    /')"
    k snapshot delete sn1 st
    k exec sn1 -- /bin/sh -c 'rm -f /big; sync'   # leaves /seed: 1 GiB written, for clone
}

# ---------------------------------------------------------------- clone
clone_rows() {  # VE label
    local i t f=$KB_RESULTS/storage-clone-$1
    : > "$f"
    for i in $(seq 3); do t=$(now); k clone "$1" "cl-$1"; ms_since "$t" >> "$f"; echo >> "$f"; k destroy -f "cl-$1"; done
    sed -i '/^$/d' "$f"
    row "clone, $2 (median of 3)" "$(median < "$f") ms (max $(sort -g "$f" | tail -1))" "< 1 s"
}
bench_clone() {
    k list --all | grep -q ' sn1 \|^sn1 ' || { k create sn1 --template busybox; k start sn1
        k exec sn1 -- /bin/sh -c 'dd if=/dev/urandom of=/seed bs=1M count=1024 2>/dev/null && sync'; }
    clone_rows sn1 "running VE with 1 GiB written (one file)"
}

# ---------------------------------------------------------------- backup
make_tree() {  # DIR: 10,000 x 100 KiB (half hex of random bytes, half log-like text) + 10 x 10 MiB random
    python3 - "$1" <<'EOF'
import os, sys, random
root = sys.argv[1]
rnd = random.Random(9)
words = "alpha beta gamma delta kennel storage image pool snapshot backup clone disk ext4 xfs loop mount error warning info debug".split()
for d in range(int(os.environ.get("TREE_DIRS", "100"))):
    os.makedirs(f"{root}/d{d:02}", exist_ok=True)
    for f in range(100):
        hexpart = os.urandom(25600).hex().encode()               # 50 KiB, 2:1
        lines = []
        n = 0
        while n < 51200:
            l = f"2026-12-06T{rnd.randrange(24):02}:{rnd.randrange(60):02}:{rnd.randrange(60):02}Z {rnd.choice(words)} id={rnd.randrange(10**6)} {' '.join(rnd.choice(words) for _ in range(6))}\n"
            lines.append(l); n += len(l)
        text = "".join(lines).encode()[:51200]
        with open(f"{root}/d{d:02}/f{f:03}", "wb") as fh:
            fh.write(hexpart + text)
os.makedirs(f"{root}/rnd", exist_ok=True)
for i in range(10):
    with open(f"{root}/rnd/r{i}", "wb") as fh:
        fh.write(os.urandom(10 << 20))
EOF
}
bench_backup() {
    local data=$KB_ROOT/data bk=$KB_ROOT/bk mnt=$KB_ROOT/mnt r t bytes
    rm -rf "$data" "$bk"; mkdir -p "$data" "$bk" "$mnt"
    make_tree "$data"
    k create bk1 --template busybox
    k start bk1
    tar -C "$data" -cf - . | k exec -T bk1 -- /bin/sh -c 'mkdir -p /data && tar -xf - -C /data && sync'
    rm -rf "$data"
    k snapshot create bk1 base
    kv -q snapshot mount bk1 base "$mnt"; MOUNTS+=("bk1 base")
    bytes=$(du -sb --apparent-size "$mnt" | cut -f1)
    local fk=$KB_RESULTS/storage-bk-kennel ft=$KB_RESULTS/storage-bk-tar ft1=$KB_RESULTS/storage-bk-tar1
    : > "$fk"; : > "$ft"; : > "$ft1"
    for r in $(seq "$ROUNDS"); do
        rm -f "$bk/full.kbk" "$bk/full.tar.zst"
        drop_caches; t=$(now); k backup bk1 "$bk/full.kbk"; ms_since "$t" >> "$fk"; echo >> "$fk"
        drop_caches; t=$(now); tar -C "$mnt" -cf - . | zstd -3 -T0 -q > "$bk/full.tar.zst"; ms_since "$t" >> "$ft"; echo >> "$ft"
        drop_caches; t=$(now); tar -C "$mnt" -cf - . | zstd -3 -T1 -q > "$bk/full1.tar.zst"; ms_since "$t" >> "$ft1"; echo >> "$ft1"
    done
    # CPU: kennel (and its children) vs the pipeline, one more cold run each
    drop_caches; note "backup CPU, kennel: $( { /usr/bin/time -f '%e s wall, %U s user, %S s sys' "$KENNEL" --root "$ST" -q backup bk1 "$bk/cpu.kbk"; } 2>&1 )"
    drop_caches; note "backup CPU, tar|zstd -3 -T0: $( { /usr/bin/time -f '%e s wall, %U s user, %S s sys' bash -c "tar -C $mnt -cf - . | zstd -3 -T0 -q > $bk/cpu.tar.zst"; } 2>&1 )"
    rm -f "$bk/cpu.kbk" "$bk/cpu.tar.zst" "$bk/full1.tar.zst"
    sed -i '/^$/d' "$ft1"
    local mt1; mt1=$(median < "$ft1")
    sed -i '/^$/d' "$fk" "$ft"
    local mk mt; mk=$(median < "$fk"); mt=$(median < "$ft")
    local sk st; sk=$(stat -c %s "$bk/full.kbk"); st=$(stat -c %s "$bk/full.tar.zst")
    note "backup: input $bytes bytes (du --apparent-size of the mounted snapshot); kennel ms: $(tr '\n' ' ' < "$fk"); tar|zstd ms: $(tr '\n' ' ' < "$ft"); sizes kennel $sk tar.zst $st"
    local tk tt; tk=$(awk -v b="$bytes" -v m="$mk" 'BEGIN {printf "%.0f", b / 1e6 / (m / 1000)}'); tt=$(awk -v b="$bytes" -v m="$mt" 'BEGIN {printf "%.0f", b / 1e6 / (m / 1000)}')
    row "backup, full, $(awk -v b="$bytes" 'BEGIN {printf "%.2f GiB", b/2^30}') in 10,010 files, cold cache (medians of $ROUNDS): kennel vs tar|zstd -3 -T0" \
        "$(printf '%s MB/s (%.2f s, %s MiB) vs %s MB/s (%.2f s, %s MiB): %sx' "$tk" "$(awk -v m="$mk" 'BEGIN{print m/1000}')" $((sk >> 20)) "$tt" "$(awk -v m="$mt" 'BEGIN{print m/1000}')" $((st >> 20)) "$(ratio "$tk" "$tt")")" ">= 0.9x"
    row "backup, full: tar|zstd -3 -T1 (one thread) for scale" "$(awk -v b="$bytes" -v m="$mt1" 'BEGIN {printf "%.0f MB/s (%.2f s)", b / 1e6 / (m / 1000), m / 1000}')" ""
    kv -q snapshot umount bk1 base; MOUNTS=()
    k snapshot delete bk1 base
    # incremental: 100 files (10 MiB) rewritten, then a backup since the last one
    local fi_=$KB_RESULTS/storage-bk-inc prev=$bk/full.kbk
    : > "$fi_"
    for r in $(seq "$ROUNDS"); do
        k exec bk1 -- /bin/sh -c "for i in \$(seq 0 99); do dd if=/dev/urandom of=/data/d$((r + 10))/f\$(printf %03d \$i) bs=100k count=1 2>/dev/null; done; sync"
        t=$(now); k backup bk1 "$bk/inc$r.kbk" --since "$prev"; ms_since "$t" >> "$fi_"; echo >> "$fi_"
        prev=$bk/inc$r.kbk
    done
    sed -i '/^$/d' "$fi_"
    note "incremental backups (ms): $(tr '\n' ' ' < "$fi_"); sizes: $(stat -c '%n=%s' "$bk"/inc*.kbk | sed "s|$bk/||" | tr '\n' ' ')"
    row "backup, incremental after 10 MiB changed (100 files; median of $ROUNDS)" "$(median < "$fi_") ms ($(( $(stat -c %s "$bk/inc1.kbk") >> 10 )) KiB)" "< 2 s"
}

# ---------------------------------------------------------------- density
bench_density() {
    local i t f=$KB_RESULTS/storage-density-create started=0 a0 a1 l0 l1 kt0 kt1 blk0 blk1
    : > "$f"
    blk0=$(find /sys/block -maxdepth 1 -name "loop*" | wc -l)
    local u0; u0=$(pool_used)
    for i in $(seq "$DENSITY_N"); do
        t=$(now); k create "dn$i" --template busybox --memory 64M --numproc 64 --numpty 4; ms_since "$t" >> "$f"; echo >> "$f"
    done
    sed -i '/^$/d' "$f"
    local u1; u1=$(pool_used)
    row "density: create of $DENSITY_N image VEs one after another, p50 / p99" "$(pct 50 < "$f") / $(pct 99 < "$f") ms (first 100 p50 $(head -100 "$f" | pct 50), last 100 p50 $(tail -100 "$f" | pct 50))" "< 50 ms"
    sync; sleep 3; a0=$(mem_available_kb); l0=$(loops_attached); kt0=$(kthreads)
    t=$(now)
    for i in $(seq "$DENSITY_START"); do
        if ! k start "dn$i" 2> "$KB_RESULTS/storage-density-start-err.txt"; then
            note "density: start of dn$i failed: $(cat "$KB_RESULTS/storage-density-start-err.txt")"; break
        fi
        started=$i
    done
    local start_s; start_s=$(ms_since "$t")
    sleep 10; a1=$(mem_available_kb); l1=$(loops_attached); kt1=$(kthreads)
    note "density: started $started in $start_s ms; MemAvailable ${a0} -> ${a1} KiB; loops ${l0} -> ${l1}; kthreads ${kt0} -> ${kt1}; pool used $u0 -> $u1 after create"
    row "density: $started VEs started (of $DENSITY_N created): MemAvailable fall per started VE" "$(awk -v a="$a0" -v b="$a1" -v n="$started" 'BEGIN {printf "%.2f MiB", (a-b)/n/1024}')" ""
    row "density: loop devices / kernel threads per started VE" "$(awk -v a="$l0" -v b="$l1" -v c="$kt0" -v d="$kt1" -v n="$started" 'BEGIN {printf "%.2f / %.2f (kthreads %d -> %d)", (b-a)/n, (d-c)/n, c, d}')" ""
    t=$(now)
    for i in $(seq "$DENSITY_N"); do k destroy -f "dn$i"; done
    local d_s; d_s=$(ms_since "$t")
    sleep 2
    blk1=$(find /sys/block -maxdepth 1 -name "loop*" | wc -l)
    local left_l left_m left_c
    left_l=$(loops_attached); left_m=$(grep -c " $ST/run/" /proc/self/mountinfo || true)
    local p; p=$(k check 2>/dev/null | sed -n 's|.*VEs below \(.*\)/$|\1|p')
    left_c=$(find /sys/fs/cgroup/*/"$p" -mindepth 1 -maxdepth 1 -type d 2>/dev/null | grep -vc '/_monitor$' || true)
    row "density: destroy all $DENSITY_N; left behind: attached loops / mounts / VE cgroups; kernel threads" \
        "$left_l / $left_m / $left_c; kthreads $(kthreads) (before $kt0); $(awk -v d="$d_s" -v n="$DENSITY_N" 'BEGIN {printf "%.0f ms per destroy", d/n}'); /sys/block/loop* $blk0 -> $blk1" "0 / 0 / 0"
}

: > "$TABLE"; : > "$KB_RESULTS/storage-notes.txt"
env_line | tee -a "$TABLE"
printf '| benchmark | figure | goal |\n|---|---|---|\n' | tee -a "$TABLE"
sections=("$@")
[ ${#sections[@]} -gt 0 ] || sections=(space create snapshot clone backup)
for s in "${sections[@]}"; do
    case $s in
        create|space|snapshot|clone|backup|density) "bench_$s" ;;
        *) echo "storage.sh: unknown section $s (create space snapshot clone backup density)" >&2; exit 2 ;;
    esac
done
# clone of the 10,000-file VE once the backup VE exists (clone ran before backup)
if [[ " ${sections[*]} " == *" backup "* ]] && [[ " ${sections[*]} " == *" clone "* ]]; then
    clone_rows bk1 "running VE with 10,010 files (1.1 GiB)"
fi
echo; cat "$KB_RESULTS/storage-notes.txt"

#!/usr/bin/env bash
# create: a VE from the Debian 12 template (systemd, ~165 MiB). Kennel
# copies nothing: the VE gets an empty writable layer over the shared,
# idmapped template. Goal: under 50 ms. For scale, the time to copy the
# same tree (what a copying tool would pay) is measured beside it.
#
#   bench/create.sh          RUNS=30; uses the test suite's Debian tarball
#                            (/var/tmp/kennel-test-cache) or debootstraps
source "$(dirname "$0")/lib.sh"
RUNS=${RUNS:-30}
trap kb_cleanup EXIT
cache=${KENNEL_TEST_CACHE:-/var/tmp/kennel-test-cache}/debian-12.tar.zst
if ! grep -q '^ *debian-12 ' <<<"$(k template list)"; then
    if [ -f "$cache" ]; then k template import debian-12 "$cache"; else k template create debian-12; fi
fi
tpl=$KB_ROOT/state/lib/templates/debian-12/rootfs
prep=$KB_ROOT/prep; mkdir -p "$prep"
printf '#!/bin/sh\n%s --root %s -q destroy bench-create 2>/dev/null; rm -rf %s/copy; exit 0\n' "$KENNEL" "$KB_ROOT/state" "$KB_ROOT" > "$prep/create"
chmod +x "$prep/create"
out=$KB_RESULTS/create.json
hyperfine -N --style basic --warmup 3 --runs "$RUNS" --export-json "$out" --prepare "$prep/create" \
    -n kennel "$KENNEL --root $KB_ROOT/state -q create bench-create --template debian-12" \
    -n "cp -a of the template" "cp -a $tpl $KB_ROOT/copy" > "$KB_RESULTS/create.log" 2>&1 \
    || { cat "$KB_RESULTS/create.log" >&2; exit 1; }
"$prep/create"
kn=$(hf_median "$out" kennel); cp=$(hf_median "$out" "cp -a of the template")
size=$(du -sh "$tpl" | cut -f1)
printf 'create: kennel %.2f ms from a %s Debian template (goal < 50 ms); a full copy takes %.0f ms (%sx)\n' \
    "$kn" "$size" "$cp" "$(ratio "$cp" "$kn")" | tee "$KB_RESULTS/create.txt"

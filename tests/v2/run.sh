#!/usr/bin/env bash
# Runs Kennel's test suite on a pure cgroup v2 kernel: boots the team's
# throw-away VM (../shared/tools/cgroup2-vm, see ../shared/docs/testing.md)
# and runs every host-built test binary inside it, with the test state on
# an ext4 image in the guest (tests/v2/guest-env.sh).
#
#   tests/v2/run.sh                 all test binaries
#   tests/v2/run.sh lifecycle       only binaries whose name contains "lifecycle"
#   V2_TEST_ARGS='--ignored --test-threads=1' tests/v2/run.sh host_check
#                                   the tests that lower host-wide limits (safe in the VM)
#
# Needs the Debian template tarball in the host's test cache (the host run
# of the suite makes it; the guest has no network).
#
# Each binary has a time limit (V2_BINARY_TIMEOUT, 1200 s), and each test's
# time is printed. A guest kernel that locks up panics and ends the VM at
# once, printing where; the binaries that had not ended then run once more
# in a fresh VM (the guest is Debian's 6.1 kernel emulated by TCG; an
# emulated CPU stuck for good happened once in CI, in kenneld and kennel,
# and not in ten runs of that binary since).
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
top=$(cd "$here/../.." && pwd)
VM=${KENNEL_CGROUP2_VM:-$top/../shared/tools/cgroup2-vm/run.sh}
[ -f "$VM" ] || { echo "tests/v2: the cgroup2 VM tool is missing at $VM (set KENNEL_CGROUP2_VM)" >&2; exit 2; }
filter=${1:-}
cache=${KENNEL_TEST_CACHE:-/var/tmp/kennel-test-cache}

cd "$top"
# Build on the host; list the test executables.
# Crates that never touch cgroups (parsers, netlink, loop devices, the
# monitor's ring, the attack probes) run on the host only: the VM is for
# what differs under cgroup v2, and emulation makes it slow. V2_ALL=1 runs
# them too.
mapfile -t bins < <(cargo test --workspace --no-run --message-format=json 2>/dev/null \
    | jq -r --argjson all "$([ "${V2_ALL:-0}" = 1 ] && echo true || echo false)" \
        'select(.reason == "compiler-artifact" and .profile.test == true and .executable != null)
         | select($all or ([.package_id | capture("/crates/(?<c>[^#/]+)#").c] | inside(["kennel", "kennel-cgroup", "kennel-runtime", "kennel-ve"])))
         | .executable' \
    | sort -u | grep -- "$filter" || true)
[ ${#bins[@]} -gt 0 ] || { echo "tests/v2: no test binaries match '$filter'" >&2; exit 2; }
if [ ! -f "$cache/debian-12.tar.zst" ]; then
    echo "tests/v2: building the Debian template fixture on the host first" >&2
    cargo test -p kennel --test systemd >/dev/null
fi

# Set up the VM (cached under /var/tmp/cgroup2-vm after the first time).
# Besides the tool's default modules, the network tests need the qdiscs,
# filters and actions of rate limits, and netfilter loaded before the
# first test (overlay too: a binary run alone starts VEs in parallel at
# once): concurrent on-demand loads race, and a VE's user namespace
# cannot load modules (iptables-legacy tries to).
KP=${KP:-/var/tmp/cgroup2-vm}
export KP
export KP_PRELOAD="crc32c_generic virtio_pci 9pnet_virtio 9p virtiofs loop overlay xfs tun nfnetlink nf_tables x_tables ip_tables iptable_filter xt_tcpudp"
export KP_LAZY="virtio_blk veth bridge br_netfilter dummy macvlan ipvlan vxlan ext4 squashfs
 nft_chain_nat nft_nat nft_masq nft_redir nft_ct nft_reject_inet nft_fib_inet nft_limit
 nft_compat nft_numgen nft_hash nft_quota nft_log nf_conntrack_netlink nft_meta_bridge
 xt_MASQUERADE xt_conntrack xt_comment xt_mark xt_addrtype ip6_tables iptable_nat
 ip6table_nat ip6table_filter sch_tbf sch_ingress ifb cls_u32 act_mirred nft_connlimit"
stamp=$KP/kennel-modules
[ -f "$KP/initrd.cpio.gz" ] || bash "$VM" setup
if [ ! -f "$KP/initrd.cpio.gz" ] || [ "$(cat "$stamp" 2>/dev/null)" != "$KP_PRELOAD $KP_LAZY" ]; then
    bash "$VM" initrd
    echo "$KP_PRELOAD $KP_LAZY" > "$stamp"
fi

script=$(mktemp -p /var/tmp kennel-v2-XXXXXX.sh)
log=$(mktemp -p /var/tmp kennel-v2-XXXXXX.log)
trap 'rm -f "$script" "$log"' EXIT

# The VM is for what differs under cgroup v2 (and on Debian's 6.1 kernel);
# emulation makes each test cost several times its host time. Where a
# binary's tests are mostly the same code on either (the API's access
# rules, jobs and load; a Debian VE's chpasswd; deleting a hostile tree;
# a Debian VE's network files and its rollback (systemd boots Debian on
# v2); the leak check of 200 network starts, each
# start's own checks run), only the rest runs here:
# these are libtest filters (run only) and `--skip`s, per binary. V2_ALL=1
# runs everything.
declare -A v2_only=(
    [api]="events:: metrics:: console:: ves::the_api_drives_a_ves_whole_life"
    [features]="--skip userpasswd_sets_a_password"
    [lifecycle]="--skip destroy_removes_a_hostile_tree_and_nothing_else"
    [network]="--skip debian_ve_boots_with_its_network --skip start_stop_cycles_leave_nothing"
    [storage]="--skip a_debian_ve_rolls_back_to_a_snapshot_and_boots"
)

# One VM run of the binaries given: each has a time limit of its own, so
# that a hung test fails its binary, not the whole run; each that ends
# says so (`=== v2 ended: NAME`), so that after a VM that died the rest
# can be told apart.
boot_vm() {
    {
        echo "set -u"
        echo ". $top/tests/v2/guest-env.sh || exit 125"
        echo "export KENNEL_TEST_DIR=\$KENNEL_V2_MNT/tests KENNEL_TEST_CACHE=$cache RUST_BACKTRACE=1"
        echo "mkdir -p \$KENNEL_TEST_DIR"
        echo "cd $top && failed=0"
        for b in "$@"; do
            n=$(basename "$b")
            only=
            [ "${V2_ALL:-0}" = 1 ] || only=${v2_only[${n%-*}]:-}
            # --report-time (unstable in libtest, hence RUSTC_BOOTSTRAP):
            # each test's time, to see where the VM's minutes go.
            echo "echo '=== v2: $n'; RUSTC_BOOTSTRAP=1 timeout -k 10 ${V2_BINARY_TIMEOUT:-1200} $b ${V2_TEST_ARGS:---test-threads=2} $only -Z unstable-options --report-time || failed=\$((failed+1)); echo '=== v2 ended: $n'"
        done
        echo "echo \"=== v2: \$failed test binaries failed\"; exit \$failed"
    } > "$script"
    # KP_MEM: the Debian template is imported into a RAM-backed image.
    # A kernel that locks up (a CPU stuck for 2 minutes) prints where
    # (loglevel 5 lets the registers and stack through) and panics, which
    # ends the VM at once instead of at KP_TIMEOUT.
    KP_MEM=${KP_MEM:-3072} KP_TIMEOUT=${KP_TIMEOUT:-3000} KP_QEMU_EXTRA=${KP_QEMU_EXTRA:-"-cpu qemu64,+rdrand"} \
        KP_APPEND="${KP_APPEND:-loglevel=5 watchdog_thresh=60 softlockup_panic=1}" \
        bash "$VM" boot "sh $script" 2>&1 | tee "$log"
}

set +e
boot_vm "${bins[@]}"
rc=$?
set -e
if grep -q '^=== v2: [0-9]* test binaries failed' "$log"; then
    exit "$rc"
fi
# The VM itself died (a kernel panic, a lockup, KP_TIMEOUT): the guest
# kernel is the emulated Debian 6.1 one, under TCG. Whatever it was, it is
# printed above; the binaries that had not ended run again, once, in a
# fresh VM, and the run still fails if the one that was running fails
# again.
rest=()
for b in "${bins[@]}"; do
    grep -qx "=== v2 ended: $(basename "$b")" "$log" || rest+=("$b")
done
echo "tests/v2: the VM died (exit $rc) while running $(grep '^=== v2: ' "$log" | tail -1 | cut -d' ' -f3); running the ${#rest[@]} binaries that had not ended once more in a fresh VM" >&2
[ ${#rest[@]} -gt 0 ] || exit "$rc"
KP_TIMEOUT=${KP_RETRY_TIMEOUT:-1800} boot_vm "${rest[@]}"

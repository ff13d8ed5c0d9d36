# Kennel: writable ext4 state filesystem for tests inside the cgroup2-vm guest.
# POSIX sh; source it INSIDE the guest, as root, e.g.
#   run.sh boot '. /work/main/tests/v2/guest-env.sh && KENNEL_ROOT=$KENNEL_V2_MNT/t1 target/debug/deps/x-HASH'
# Why: the guest's / is the host's / over 9p (read-only) and its writable places are
# tmpfs; neither 9p nor the guest kernel's (6.1) tmpfs supports idmapped mounts; ext4 does.
# Knobs: KENNEL_V2_MNT [/tmp/kroot]  KENNEL_V2_IMG_MB [3072]
#        KENNEL_V2_IMG [/tmp/kennel-v2.img] (a file in a KP_RW dir also works: no guest RAM,
#        but slower and no discard, and the file is left on the host).
# RAM: the image is sparse; written blocks cost guest RAM (~1.1x the data) and the
# `discard` mount option hands freed blocks back to the tmpfs.
KENNEL_V2_MNT=${KENNEL_V2_MNT:-/tmp/kroot}
KENNEL_V2_IMG_MB=${KENNEL_V2_IMG_MB:-3072}
KENNEL_V2_IMG=${KENNEL_V2_IMG:-/tmp/kennel-v2.img}
export KENNEL_V2_MNT KENNEL_V2_IMG_MB KENNEL_V2_IMG

# What a systemd host has (systemd's sysctl default, and what `kennel check`
# asks for): open files bounded by each VE's memory limit, not by one host
# table a VE can fill. The guest has no systemd to set it.
echo 9223372036854775807 > /proc/sys/fs/file-max
# A task stuck in the kernel for 10 minutes panics the guest, which ends
# the VM at once (tests/v2/run.sh says which binary was running) instead
# of at KP_TIMEOUT.
echo 600 > /proc/sys/kernel/hung_task_timeout_secs 2>/dev/null
echo 1 > /proc/sys/kernel/hung_task_panic 2>/dev/null
# A host has its loopback up: the API tests serve and call kenneld on
# 127.0.0.1 (and 127.0.0.2), inside the guest only.
ip link set lo up
kennel_v2_setup() {
    if mountpoint -q "$KENNEL_V2_MNT"; then echo "kennel-v2: $KENNEL_V2_MNT already mounted"; return 0; fi
    _kd=$(dirname "$KENNEL_V2_IMG"); mkdir -p "$_kd" "$KENNEL_V2_MNT" || return 1
    # The guest's /tmp is capped at half of KP_MEM. A loop write that hits the tmpfs cap
    # aborts the ext4 journal (fs goes read-only, the VM hangs until KP_TIMEOUT); running
    # out of RAM only OOM-kills the writer. So grow the tmpfs to hold the whole image.
    if [ "$(stat -f -c %T "$_kd")" = tmpfs ]; then
        set -- $(df -Pm "$_kd" | awk 'NR==2 {print $2, $3, $6}')   # size used mountpoint
        _kn=$((KENNEL_V2_IMG_MB + $2 + 256))
        [ "$1" -ge "$_kn" ] || mount -o remount,size="${_kn}M" "$3" || return 1
    fi
    rm -f "$KENNEL_V2_IMG" && truncate -s "${KENNEL_V2_IMG_MB}M" "$KENNEL_V2_IMG" || return 1
    # Explicit UUID and hash seed: the guest CPU has no RDRAND, so its CRNG is not ready
    # and mke2fs (libuuid) would sleep ~4 s; /proc/sys/kernel/random/uuid never blocks.
    mkfs.ext4 -q -F -U "$(cat /proc/sys/kernel/random/uuid)" \
        -E "hash_seed=$(cat /proc/sys/kernel/random/uuid)" "$KENNEL_V2_IMG" || return 1
    mount -o loop,discard "$KENNEL_V2_IMG" "$KENNEL_V2_MNT" || return 1
    echo "kennel-v2: ext4 ${KENNEL_V2_IMG_MB}M at $KENNEL_V2_MNT ($(losetup -j "$KENNEL_V2_IMG" | cut -d: -f1) on $KENNEL_V2_IMG)"
}
kennel_v2_setup

//! Kernel filesystems, masks, read-only mounts and device nodes: mounting
//! procfs, sysfs, cgroupfs (with `release_agent`), debugfs, tracefs,
//! securityfs and a block device; remounting read-only parts read-write;
//! the host knobs and memory behind /proc; making and opening host device
//! nodes; `open_by_handle_at`.

use super::lab::{case, Case, Lab};

fn host_root_dev() -> (u32, u32) {
    let mi = std::fs::read_to_string("/proc/self/mountinfo").unwrap_or_default();
    mi.lines()
        .find(|l| l.split(' ').nth(4) == Some("/"))
        .and_then(|l| {
            let (a, b) = l.split(' ').nth(2)?.split_once(':')?;
            Some((a.parse().ok()?, b.parse().ok()?))
        })
        .unwrap_or((8, 0))
}

fn ok(r: Result<String, String>) -> Result<(), String> {
    r.map(|_| ())
}

pub const CASES: &[Case] = &[
    case("mount_proc", |l: &mut Lab| {
        let comm = l.host_canary_comm.clone();
        ok(l.blocked(&["mount-proc", &comm]))
    }),
    case("mount_sysfs", |l| ok(l.blocked(&["mount-sysfs"]))),
    case("mount_debugfs", |l| ok(l.blocked(&["mount-fs", "debugfs"]))),
    case("mount_tracefs", |l| ok(l.blocked(&["mount-fs", "tracefs"]))),
    case("mount_securityfs", |l| ok(l.blocked(&["mount-fs", "securityfs"]))),
    case("mount_block_device", |l| {
        ok(l.blocked(&["mount-fs", "ext4", "/dev/zero"]))?;
        ok(l.blocked(&["mount-fs", "ext4", "/dev/zero", "", "nested"]))
    }),
    case("mount_cgroup_v1_release_agent", |l| ok(l.blocked(&["release-agent"]))),
    case("mount_cgroup_v1_release_agent_nested_userns", |l| {
        ok(l.blocked(&["release-agent", "nested"]))
    }),
    case("remount_proc_sys_rw", |l| {
        ok(l.blocked(&["remount-rw", "/proc/sys", "/proc/sys/kernel/core_pattern"]))
    }),
    case("remount_sys_rw", |l| {
        ok(l.blocked(&["remount-rw", "/sys", "/sys/kernel/mm/transparent_hugepage/enabled"]))
    }),
    case("remount_sysrq_trigger_rw", |l| {
        ok(l.blocked(&["remount-rw", "/proc/sysrq-trigger", "/proc/sysrq-trigger"]))
    }),
    case("proc_sysrq_trigger", |l| ok(l.blocked(&["unmask", "w", "/proc/sysrq-trigger"]))),
    case("proc_sys_kernel_host_knobs", |l| {
        ok(l.blocked(&[
            "unmask",
            "w",
            "/proc/sys/kernel/core_pattern",
            "/proc/sys/kernel/modprobe",
            "/proc/sys/kernel/panic",
            "/proc/sys/kernel/sysrq",
            "/proc/sys/kernel/ctrl-alt-del",
            "/proc/sys/kernel/printk",
            "/proc/sys/kernel/kptr_restrict",
            "/proc/sys/kernel/randomize_va_space",
            "/proc/sys/kernel/pty/max",
            "/proc/sys/kernel/keys/maxkeys",
        ]))
    }),
    case("proc_sys_vm_fs_host_knobs", |l| {
        ok(l.blocked(&[
            "unmask",
            "w",
            "/proc/sys/vm/overcommit_memory",
            "/proc/sys/vm/drop_caches",
            "/proc/sys/vm/unprivileged_userfaultfd",
            "/proc/sys/fs/file-max",
            "/proc/sys/fs/nr_open",
            "/proc/sys/fs/inotify/max_user_instances",
        ]))
    }),
    case("pid_max_is_the_ves_own", |l| {
        // Since Linux 6.14 pid_max belongs to the PID namespace: the VE
        // may lower its own; the host's must stay (checked by the lab).
        let (_, out) = l.sh(
            super::lab::ATT,
            "unshare -m sh -c 'umount /proc/sys 2>/dev/null; echo 5000 > /proc/sys/kernel/pid_max'; cat /proc/sys/kernel/pid_max",
            10,
        );
        let _ = out;
        Ok(())
    })
    .restarts(),
    case("proc_kcore", |l| ok(l.blocked(&["unmask", "r", "/proc/kcore"]))),
    case("proc_kmsg", |l| ok(l.blocked(&["unmask", "r", "/proc/kmsg"]))),
    case("proc_kallsyms_addresses", |l| {
        let (_, out) = l.sh(
            super::lab::ATT,
            "grep -v '^0000000000000000' /proc/kallsyms | head -3; echo done",
            10,
        );
        if out.trim() == "done" {
            Ok(())
        } else {
            Err(format!("kernel addresses readable in the VE: {out}"))
        }
    }),
    case("dev_mem_kmem_port", |l| {
        ok(l.blocked(&["unmask", "r", "/dev/mem", "/dev/kmem", "/dev/port"]))?;
        ok(l.blocked(&["mknod-open", "c", "1", "1"]))?;
        ok(l.blocked(&["mknod-open", "c", "1", "4"]))
    }),
    case("mknod_host_disk", |l| {
        let (ma, mi) = host_root_dev();
        ok(l.blocked(&["mknod-open", "b", &ma.to_string(), &mi.to_string()]))?;
        ok(l.blocked(&["mknod-open", "b", "8", "0"]))
    }),
    case("open_by_handle_at_host_fs", |l| ok(l.blocked(&["open-by-handle"]))),
    case("umount_mnt_force", |l| ok(l.blocked(&["umount-force"]))),
];

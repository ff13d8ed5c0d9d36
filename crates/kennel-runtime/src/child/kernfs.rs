//! Step 2: `/proc` and `/sys`.
//!
//! `/proc` is the VE's own (its PID namespace); parts that describe or act
//! on the host are hidden or read-only. `/sys` is the VE's own (its network
//! namespace) and read-only, which also tells systemd not to run udev.
//! The lists and the reason for each entry are in docs/SECURITY.md.
//!
//! Every mount is attached first and refined afterwards: older kernels
//! (6.1) cannot mount onto a detached tree.

use std::os::fd::{AsFd, BorrowedFd, OwnedFd};

use rustix::mount::MountAttrFlags;

use super::mnt::{attach, clone_of, new_fs, open_target, Make, NOSUID_NODEV_NOEXEC};
use super::rootfs::VeRoot;
use crate::error::{Result, RuntimeError};

/// Files in /proc replaced by `/dev/null`: they expose host memory, keys,
/// timers or scheduler state to any reader. (Files only the host's root
/// may open, such as /proc/kpageflags, are already out of a VE's reach.)
pub const PROC_HIDDEN_FILES: &[&str] = &[
    "kcore",
    "keys",
    "timer_list",
    "sched_debug",
    "latency_stats",
    "timer_stats",
];

/// Directories in /proc covered by an empty read-only tmpfs: host hardware.
pub const PROC_HIDDEN_DIRS: &[&str] = &["acpi", "scsi", "asound", "driver"];

/// Entries in /proc made read-only: host-wide knobs. `sys/net` is put back
/// writable on top: it belongs to the VE's own network namespace.
pub const PROC_READONLY: &[&str] = &["sysrq-trigger", "bus", "fs", "irq", "sys"];

/// Directories in /sys covered by an empty read-only tmpfs: firmware
/// tables and power counters (an energy side channel). A fresh sysfs
/// holds no debugfs, tracefs or securityfs: those are separate mounts.
pub const SYS_HIDDEN_DIRS: &[&str] = &["firmware", "devices/virtual/powercap"];

/// Mounts a new filesystem at `rel` below `root` and returns a descriptor
/// of its root directory.
pub(crate) fn mount_and_open(
    root: BorrowedFd<'_>,
    rel: &str,
    fs: OwnedFd,
    mode: u32,
) -> Result<OwnedFd> {
    let target = open_target(root, rel, Make::Dir(mode))?
        .ok_or_else(|| RuntimeError::Setup(format!("/{rel} missing")))?;
    attach(fs.as_fd(), target.as_fd(), &format!("/{rel}"))?;
    open_target(root, rel, Make::Nothing)?
        .ok_or_else(|| RuntimeError::Setup(format!("/{rel} vanished")))
}

/// `hider` covers the host-hardware directories; pass the same one to
/// [`mount_sys`] so that one filesystem covers both.
pub fn mount_proc(root: &VeRoot, hider: &mut Hider) -> Result<()> {
    let fs = new_fs("proc", &[], &[], NOSUID_NODEV_NOEXEC)?;
    let proc = mount_and_open(root.fd.as_fd(), "proc", fs, 0o555)?;
    let p = proc.as_fd();
    // A writable copy of sys/net, taken before /proc/sys turns read-only.
    let net = clone_of(p, "sys/net")?;
    for name in PROC_READONLY {
        if let Some(t) = open_target(p, name, Make::Nothing)? {
            let ro = clone_of(p, name)?;
            kennel_sys::mount::set_readonly(ro.as_fd()).map_err(|source| RuntimeError::Sys {
                what: format!("make /proc/{name} read-only"),
                source,
            })?;
            attach(ro.as_fd(), t.as_fd(), &format!("read-only /proc/{name}"))?;
        }
    }
    if let Some(t) = open_target(p, "sys/net", Make::Nothing)? {
        attach(net.as_fd(), t.as_fd(), "/proc/sys/net")?;
    }
    let host_null = rustix::fs::open(
        "/dev/null",
        rustix::fs::OFlags::PATH | rustix::fs::OFlags::CLOEXEC,
        rustix::fs::Mode::empty(),
    )
    .map_err(|e| RuntimeError::Sys {
        what: "open host /dev/null".into(),
        source: e.into(),
    })?;
    for name in PROC_HIDDEN_FILES {
        if let Some(t) = open_target(p, name, Make::Nothing)? {
            let m = clone_of(host_null.as_fd(), "")?;
            attach(
                m.as_fd(),
                t.as_fd(),
                &format!("/dev/null over /proc/{name}"),
            )?;
        }
    }
    for name in PROC_HIDDEN_DIRS {
        hider.hide(p, name, "proc")?;
    }
    Ok(())
}

pub fn mount_sys(root: &VeRoot, hider: &mut Hider) -> Result<()> {
    let fs = new_fs(
        "sysfs",
        &[],
        &[],
        NOSUID_NODEV_NOEXEC | MountAttrFlags::MOUNT_ATTR_RDONLY,
    )?;
    let sys = mount_and_open(root.fd.as_fd(), "sys", fs, 0o555)?;
    for name in SYS_HIDDEN_DIRS {
        hider.hide(sys.as_fd(), name, "sys")?;
    }
    Ok(())
}

/// Covers directories with an empty read-only directory of the VE's
/// tmpfs ([`super::scratch`]), attached once and then cloned, for /proc
/// and /sys together. A mount costs far less than a superblock, and every
/// superblock also registers a shrinker whose per-memory-cgroup
/// bookkeeping every memory cgroup on the host carries (see
/// docs/DENSITY.md, "Memory per VE").
#[derive(Debug)]
pub struct Hider {
    /// The empty directory, until it is first attached.
    unused: Option<OwnedFd>,
    /// Where it was first attached, to clone from.
    first: Option<OwnedFd>,
}

impl Hider {
    /// `empty`: a detached, read-only mount of an empty directory.
    pub fn new(empty: OwnedFd) -> Self {
        Self {
            unused: Some(empty),
            first: None,
        }
    }

    /// Covers directory `name` below `dir` (absent: nothing to hide).
    fn hide(&mut self, dir: BorrowedFd<'_>, name: &str, what: &str) -> Result<()> {
        let Some(t) = open_target(dir, name, Make::Nothing)? else {
            return Ok(());
        };
        let what = format!("empty /{what}/{name}");
        if let Some(first) = &self.first {
            let m = clone_of(first.as_fd(), "")?;
            return attach(m.as_fd(), t.as_fd(), &what);
        }
        let empty = self
            .unused
            .take()
            .ok_or_else(|| RuntimeError::Setup(format!("nothing left to cover {what}")))?;
        attach(empty.as_fd(), t.as_fd(), &what)?;
        // Cloned from its attached place: the kernels Kennel supports
        // (6.1) cannot clone a detached mount.
        self.first = open_target(dir, name, Make::Nothing)?;
        Ok(())
    }
}

/// Where the `nesting` feature puts an unmasked procfs and sysfs.
pub const UNMASKED_DIR: &str = "dev/.kennel";

/// The `nesting` feature: a procfs and a sysfs without masks, below
/// [`UNMASKED_DIR`]. The kernel lets a nested user namespace mount its own
/// procfs or sysfs only while one of the same type is fully visible in its
/// mount namespace; the masks on `/proc` and `/sys` hide parts of them, so
/// nested containers (podman, LXC, `unshare --user --mount-proc`) need
/// these (LXC does the same for nesting). What they show is guarded by the
/// kernel's own permission checks, as on any LXC or Incus VE.
pub fn mount_unmasked(root: &VeRoot) -> Result<()> {
    let r = root.fd.as_fd();
    super::mnt::open_target(r, UNMASKED_DIR, Make::Dir(0o700))?;
    let proc = new_fs("proc", &[], &[], NOSUID_NODEV_NOEXEC)?;
    mount_and_open(r, &format!("{UNMASKED_DIR}/proc"), proc, 0o555)?;
    let sys = new_fs(
        "sysfs",
        &[],
        &[],
        NOSUID_NODEV_NOEXEC | MountAttrFlags::MOUNT_ATTR_RDONLY,
    )?;
    mount_and_open(r, &format!("{UNMASKED_DIR}/sys"), sys, 0o555)?;
    Ok(())
}

/// Binds lxcfs's files (its mount at `dir` on the host) over the VE's
/// `/proc` and `/sys` ones. Best effort, file by file: an lxcfs that went
/// away since the start checked it leaves the kernel's own files, and the
/// VE still starts. Returns how many were bound.
pub fn mount_lxcfs(root: &VeRoot, dir: &std::path::Path) -> usize {
    let mut bound = 0;
    for (rel, m) in crate::lxcfs::read_only_copies(dir) {
        let Ok(Some(target)) = open_target(root.fd.as_fd(), rel, Make::Nothing) else {
            continue;
        };
        if attach(m.as_fd(), target.as_fd(), &format!("lxcfs /{rel}")).is_ok() {
            bound += 1;
        }
    }
    bound
}

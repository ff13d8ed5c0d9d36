//! Each VE's pty instance (`/dev/pts`), made by the host.
//!
//! A devpts instance has a `max` of ptys, but whoever owns its superblock
//! may remount it with another: had the VE mounted its own, its root could
//! lift the limit at will. So the monitor makes the instance from the
//! host's user namespace (the VE's root holds no capability over it) and
//! hands the VE a mount of it. Made from the host's initial mount
//! namespace, its ptys may also draw on `kernel.pty.reserve`, the part of
//! `kernel.pty.max` that instances a VE mounts itself can never take: a VE
//! that exhausts the pool through devpts instances of its own leaves the
//! other VEs' consoles, `enter` and sshd working. `kennel start` keeps the
//! sum of the running VEs' maxima within the reserve (kennel-ve).
//!
//! The monitor keeps a descriptor of the mount ([`MONITOR_FD_DEVPTS`]),
//! through which `kennel set --numpty` changes the limit of a running VE
//! (`pidfd_getfd` and a reconfiguration).
//!
//! [`MONITOR_FD_DEVPTS`]: crate::launch::MONITOR_FD_DEVPTS

use std::os::fd::{AsFd, BorrowedFd, OwnedFd};

use rustix::mount::{
    fsconfig_create, fsconfig_reconfigure, fsconfig_set_string, fsmount, fsopen, fspick,
    FsMountFlags, FsOpenFlags, FsPickFlags, MountAttrFlags,
};

use crate::error::{Context, Result};

/// The group of ptys inside the VE (Debian's `tty`).
pub const TTY_GID: u32 = 5;

/// `statfs` magic of devpts: whether a descriptor is on a devpts instance.
pub(crate) const DEVPTS_SUPER_MAGIC: i64 = 0x1cd1;

/// What the VE's instance is made with.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct DevptsOptions {
    /// Host gid of the VE's `tty` group (its gid base + 5).
    pub gid: u32,
    /// The most ptys the VE may have open (its console included).
    pub max: u32,
}

fn configure(fs: BorrowedFd<'_>, opts: DevptsOptions) -> Result<()> {
    let gid = opts.gid.to_string();
    let max = opts.max.to_string();
    for (k, v) in [
        ("gid", gid.as_str()),
        ("mode", "0620"),
        ("ptmxmode", "0666"),
        ("max", max.as_str()),
    ] {
        fsconfig_set_string(fs, k, v).ctx(|| format!("devpts option {k}={v}"))?;
    }
    Ok(())
}

/// A new, detached devpts instance. Call from the host's user and mount
/// namespaces.
pub fn new_instance(opts: DevptsOptions) -> Result<OwnedFd> {
    let fs = fsopen("devpts", FsOpenFlags::FSOPEN_CLOEXEC).ctx(|| "open devpts".into())?;
    configure(fs.as_fd(), opts)?;
    fsconfig_create(&fs).ctx(|| "create the VE's devpts".into())?;
    fsmount(
        &fs,
        FsMountFlags::FSMOUNT_CLOEXEC,
        MountAttrFlags::MOUNT_ATTR_NOSUID | MountAttrFlags::MOUNT_ATTR_NOEXEC,
    )
    .ctx(|| "mount the VE's devpts".into())
}

/// Changes the limit of the instance behind `mount` (a descriptor of one
/// of its mounts). Every option is given again: devpts resets what a
/// reconfiguration leaves out.
pub fn set_max(mount: BorrowedFd<'_>, opts: DevptsOptions) -> Result<()> {
    let fs = fspick(
        mount,
        "",
        FsPickFlags::FSPICK_EMPTY_PATH | FsPickFlags::FSPICK_CLOEXEC,
    )
    .ctx(|| "open the VE's devpts for a change".into())?;
    configure(fs.as_fd(), opts)?;
    fsconfig_reconfigure(&fs).ctx(|| "change the VE's pty limit".into())
}

//! Mounting a filesystem image through a loop device, with the new mount
//! API, and taking such mounts down.
//!
//! The loop device is attached with autoclear: it goes by itself when its
//! filesystem is unmounted (or when the mount fails), so no path through
//! this module can leak a loop device, even a crash.

use std::os::fd::AsFd;
use std::path::Path;

use kennel_sys::blockdev::{loop_attach, LoopOptions};
use rustix::fs::{Mode, OFlags, CWD};
use rustix::mount::{
    fsconfig_create, fsconfig_set_flag, fsconfig_set_string, fsmount, fsopen, move_mount,
    FsMountFlags, FsOpenFlags, MountAttrFlags, MoveMountFlags, UnmountFlags,
};

use crate::error::{io_err, Result};

/// How an image is mounted.
#[derive(Debug, Clone, Copy)]
pub(crate) struct ImageMount<'a> {
    pub image: &'a Path,
    pub fstype: &'a str,
    pub read_only: bool,
    /// Filesystem flags (`noload`, ...).
    pub flags: &'a [&'a str],
    pub attrs: MountAttrFlags,
}

/// Mounts `m.image` at `target`.
pub(crate) fn mount_image(m: &ImageMount<'_>, target: &Path) -> Result<()> {
    let access = if m.read_only {
        OFlags::RDONLY
    } else {
        OFlags::RDWR
    };
    let file = rustix::fs::open(m.image, access | OFlags::CLOEXEC, Mode::empty())
        .map_err(|e| io_err("open", m.image)(e.into()))?;
    let dev = loop_attach(
        file.as_fd(),
        LoopOptions {
            read_only: m.read_only,
            direct_io: true,
            block_size: 4096,
        },
    )
    .map_err(io_err("attach a loop device to", m.image))?;
    let fail = |op: &'static str| move |e: rustix::io::Errno| io_err(op, m.image)(e.into());
    let fs = fsopen(m.fstype, FsOpenFlags::FSOPEN_CLOEXEC).map_err(fail("open filesystem for"))?;
    fsconfig_set_string(fs.as_fd(), "source", dev.path()).map_err(fail("configure"))?;
    if m.read_only {
        fsconfig_set_flag(fs.as_fd(), "ro").map_err(fail("configure"))?;
    }
    for f in m.flags {
        fsconfig_set_flag(fs.as_fd(), *f).map_err(fail("configure"))?;
    }
    fsconfig_create(fs.as_fd()).map_err(fail("mount the filesystem in"))?;
    let mut attrs = m.attrs;
    if m.read_only {
        attrs |= MountAttrFlags::MOUNT_ATTR_RDONLY;
    }
    let mnt = fsmount(fs.as_fd(), FsMountFlags::FSMOUNT_CLOEXEC, attrs)
        .map_err(fail("mount the filesystem in"))?;
    move_mount(
        mnt.as_fd(),
        "",
        CWD,
        target,
        MoveMountFlags::MOVE_MOUNT_F_EMPTY_PATH,
    )
    .map_err(|e| io_err("attach mount at", target)(e.into()))
    // `dev` closes here: the mount now holds the device.
}

/// Whether `path` is the root of a mount.
pub(crate) fn is_mount_root(path: &Path) -> bool {
    rustix::fs::statx(
        CWD,
        path,
        rustix::fs::AtFlags::SYMLINK_NOFOLLOW,
        rustix::fs::StatxFlags::BASIC_STATS,
    )
    .map(|s| {
        s.stx_attributes_mask
            .contains(rustix::fs::StatxAttributes::MOUNT_ROOT)
            && s.stx_attributes
                .contains(rustix::fs::StatxAttributes::MOUNT_ROOT)
    })
    .unwrap_or(false)
}

/// Unmounts what is mounted at `target`, if anything. `detach` leaves a
/// filesystem still in use (by a dying VE's namespace) to go when its
/// last user does.
pub(crate) fn unmount(target: &Path, detach: bool) -> Result<()> {
    if !is_mount_root(target) {
        return Ok(());
    }
    let flags = if detach {
        UnmountFlags::DETACH
    } else {
        UnmountFlags::empty()
    };
    rustix::mount::unmount(target, flags).map_err(|e| io_err("unmount", target)(e.into()))
}

//! Small helpers over the new mount API, relative to directory descriptors.

use std::os::fd::{AsFd, BorrowedFd, OwnedFd};

use rustix::fs::{mkdirat, openat, openat2, Mode, OFlags, ResolveFlags};
use rustix::io::Errno;
use rustix::mount::{
    fsconfig_create, fsconfig_set_flag, fsconfig_set_string, fsmount, fsopen, move_mount,
    open_tree, FsMountFlags, FsOpenFlags, MountAttrFlags, MoveMountFlags, OpenTreeFlags,
};

use crate::error::{Context, Result};

/// Resolution for every path below the VE's root: stay beneath it and
/// follow no symlink at all.
pub(crate) const BENEATH: ResolveFlags = ResolveFlags::BENEATH
    .union(ResolveFlags::NO_SYMLINKS)
    .union(ResolveFlags::NO_MAGICLINKS);

/// What to create if a mount target is missing.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Make {
    Dir(u32),
    File,
    Nothing,
}

/// Opens `rel` below `root` as an `O_PATH` descriptor, creating it if asked
/// and missing. `Ok(None)`: missing and `Make::Nothing`.
pub(crate) fn open_target(root: BorrowedFd<'_>, rel: &str, make: Make) -> Result<Option<OwnedFd>> {
    let flags = OFlags::PATH | OFlags::CLOEXEC;
    match openat2(root, rel, flags, Mode::empty(), BENEATH) {
        Ok(fd) => return Ok(Some(fd)),
        Err(Errno::NOENT) if make != Make::Nothing => {}
        Err(Errno::NOENT) => return Ok(None),
        Err(Errno::LOOP) | Err(Errno::XDEV) => {
            return Err(crate::RuntimeError::Setup(format!(
                "/{rel} in the VE's files is a symlink or leaves the VE's root; Kennel will not mount over it"
            )))
        }
        Err(e) => return Err(e).ctx(|| format!("open /{rel} in the VE")),
    }
    let (parent, name) = match rel.rsplit_once('/') {
        Some((p, n)) => (p, n),
        None => (".", rel),
    };
    let pfd = openat2(
        root,
        parent,
        OFlags::PATH | OFlags::DIRECTORY | OFlags::CLOEXEC,
        Mode::empty(),
        BENEATH,
    )
    .ctx(|| format!("open /{parent} in the VE"))?;
    match make {
        Make::Dir(mode) => match mkdirat(pfd.as_fd(), name, Mode::from_raw_mode(mode)) {
            Ok(()) | Err(Errno::EXIST) => {}
            Err(e) => return Err(e).ctx(|| format!("create /{rel} in the VE")),
        },
        Make::File => {
            let f = openat(
                pfd.as_fd(),
                name,
                OFlags::CREATE | OFlags::WRONLY | OFlags::NOFOLLOW | OFlags::CLOEXEC,
                Mode::from_raw_mode(0o644),
            )
            .ctx(|| format!("create /{rel} in the VE"))?;
            drop(f);
        }
        Make::Nothing => {}
    }
    openat2(root, rel, flags, Mode::empty(), BENEATH)
        .map(Some)
        .ctx(|| format!("open /{rel} in the VE"))
}

/// A new, detached filesystem instance.
pub(crate) fn new_fs(
    fstype: &str,
    flags: &[&str],
    strings: &[(&str, &str)],
    attrs: MountAttrFlags,
) -> Result<OwnedFd> {
    let fs =
        fsopen(fstype, FsOpenFlags::FSOPEN_CLOEXEC).ctx(|| format!("open filesystem {fstype}"))?;
    for f in flags {
        fsconfig_set_flag(fs.as_fd(), *f).ctx(|| format!("{fstype} option {f}"))?;
    }
    for (k, v) in strings {
        fsconfig_set_string(fs.as_fd(), *k, *v).ctx(|| format!("{fstype} option {k}={v}"))?;
    }
    fsconfig_create(fs.as_fd()).ctx(|| format!("create {fstype} filesystem"))?;
    fsmount(fs.as_fd(), FsMountFlags::FSMOUNT_CLOEXEC, attrs).ctx(|| format!("mount {fstype}"))
}

/// A detached copy of the mount at `path` (relative to `dirfd`; empty
/// means `dirfd` itself).
pub(crate) fn clone_of(dirfd: BorrowedFd<'_>, path: &str) -> Result<OwnedFd> {
    let mut flags = OpenTreeFlags::OPEN_TREE_CLONE | OpenTreeFlags::OPEN_TREE_CLOEXEC;
    if path.is_empty() {
        flags |= OpenTreeFlags::AT_EMPTY_PATH;
    }
    open_tree(dirfd, path, flags).ctx(|| format!("clone mount {path}"))
}

/// Attaches the detached mount `mnt` on top of `target`.
pub(crate) fn attach(mnt: BorrowedFd<'_>, target: BorrowedFd<'_>, what: &str) -> Result<()> {
    move_mount(
        mnt,
        "",
        target,
        "",
        MoveMountFlags::MOVE_MOUNT_F_EMPTY_PATH | MoveMountFlags::MOVE_MOUNT_T_EMPTY_PATH,
    )
    .ctx(|| format!("mount {what}"))
}

/// Common attributes of API filesystems.
pub(crate) const NOSUID_NODEV_NOEXEC: MountAttrFlags = MountAttrFlags::MOUNT_ATTR_NOSUID
    .union(MountAttrFlags::MOUNT_ATTR_NODEV)
    .union(MountAttrFlags::MOUNT_ATTR_NOEXEC);

//! Mounting a filesystem image through a loop device, with the new mount
//! API, and taking such mounts down.
//!
//! The loop device is attached with autoclear: it goes by itself when its
//! filesystem is unmounted (or when the mount fails), so no path through
//! this module can leak a loop device, even a crash.
//!
//! **One image, one filesystem instance.** A process that copied the
//! host's mount namespace (`unshare -m`, a service with a private `/tmp`)
//! keeps a copy of every mount, and with it the filesystem, alive after
//! the host unmounts it. Mounting the image again through a *second* loop
//! device would then run two instances of one filesystem on one file,
//! which corrupts it. So:
//! * a writable image remembers its loop device (`<image>.loop`); if that
//!   device still backs the image, it is mounted again (the kernel gives
//!   back the same superblock) instead of a new one being attached;
//! * the mounts are made *shared*, so that namespaces that copy them as
//!   slaves (`ip netns exec`, systemd's sandboxing) lose their copies when
//!   the host unmounts.

use std::os::fd::{AsFd, BorrowedFd, OwnedFd};
use std::path::Path;

use kennel_sys::blockdev::{loop_attach, LoopOptions};
use rustix::fs::{Mode, OFlags, CWD};
use rustix::mount::{
    fsconfig_create, fsconfig_set_flag, fsconfig_set_string, fsmount, fsopen, move_mount,
    FsMountFlags, FsOpenFlags, MountAttrFlags, MountPropagationFlags, MoveMountFlags, UnmountFlags,
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
    /// Where a writable image's loop device is remembered.
    pub remember: bool,
}

/// Mounts `m.image` at `target`, shared (see the module doc).
pub(crate) fn mount_image(m: &ImageMount<'_>, target: &Path) -> Result<()> {
    let mnt = mount_image_detached(m)?;
    attach(mnt.as_fd(), target, "mount the filesystem at")?;
    rustix::mount::mount_change(target, MountPropagationFlags::SHARED)
        .map_err(|e| io_err("share the mount at", target)(e.into()))
}

/// Mounts `m.image` detached: a mount in no namespace, held by the
/// returned descriptor (`fsmount`'s), which the caller attaches where it
/// wants; dropped unattached, it unmounts.
pub(crate) fn mount_image_detached(m: &ImageMount<'_>) -> Result<OwnedFd> {
    let access = if m.read_only {
        OFlags::RDONLY
    } else {
        OFlags::RDWR
    };
    let file = rustix::fs::open(m.image, access | OFlags::CLOEXEC, Mode::empty())
        .map_err(|e| io_err("open", m.image)(e.into()))?;
    let note = m.remember.then(|| note_of(m.image));
    let reused = note.as_deref().and_then(|n| attached(file.as_fd(), n));
    // The device is held open until the mount holds it: an autoclear
    // device goes with its last user, and its number could be another
    // image's by the time it is mounted.
    let (dev, held) = match reused {
        Some((path, fd)) => (path, fd),
        None => {
            let dev = loop_attach(
                file.as_fd(),
                LoopOptions {
                    read_only: m.read_only,
                    direct_io: true,
                    block_size: 4096,
                },
            )
            .map_err(io_err("attach a loop device to", m.image))?;
            if let Some(n) = &note {
                std::fs::write(n, dev.index.to_string()).map_err(io_err("write", n))?;
            }
            (dev.path(), dev.fd)
        }
    };
    let mnt = mount_device(m, &dev)?;
    drop(held);
    Ok(mnt)
}

/// A new mount of the filesystem on `image`'s remembered loop device, if
/// that device still backs `image`: the kernel gives back the filesystem
/// already there (a running VE's disk), never a second instance. `None`
/// when no device backs it (nothing is mounted); never attaches one.
pub(crate) fn mount_existing(m: &ImageMount<'_>) -> Result<Option<OwnedFd>> {
    let file = rustix::fs::open(m.image, OFlags::RDONLY | OFlags::CLOEXEC, Mode::empty())
        .map_err(|e| io_err("open", m.image)(e.into()))?;
    let Some((dev, held)) = attached(file.as_fd(), &note_of(m.image)) else {
        return Ok(None);
    };
    let mnt = mount_device(m, &dev)?;
    drop(held);
    Ok(Some(mnt))
}

/// Makes a detached mount of `m`'s filesystem on the block device `dev`.
fn mount_device(m: &ImageMount<'_>, dev: &str) -> Result<OwnedFd> {
    let fail = |op: &'static str| move |e: rustix::io::Errno| io_err(op, m.image)(e.into());
    let fs = open_fs(m.fstype).map_err(fail("open filesystem for"))?;
    fsconfig_set_string(fs.as_fd(), "source", dev).map_err(fail("configure"))?;
    if m.read_only {
        fsconfig_set_flag(fs.as_fd(), "ro").map_err(fail("configure"))?;
    }
    for f in m.flags {
        fsconfig_set_flag(fs.as_fd(), *f).map_err(fail("configure"))?;
    }
    let mut attrs = m.attrs;
    if m.read_only {
        attrs |= MountAttrFlags::MOUNT_ATTR_RDONLY;
    }
    fsconfig_create(fs.as_fd()).map_err(fail("mount the filesystem of"))?;
    fsmount(fs.as_fd(), FsMountFlags::FSMOUNT_CLOEXEC, attrs)
        .map_err(fail("mount the filesystem of"))
}

fn note_of(image: &Path) -> std::path::PathBuf {
    let mut n = image.as_os_str().to_owned();
    n.push(".loop");
    n.into()
}

/// The loop device remembered in `note`, opened, if it is still backed
/// by `image` (the same file: device and inode, not a path).
fn attached(image: BorrowedFd<'_>, note: &Path) -> Option<(String, rustix::fd::OwnedFd)> {
    let index: u32 = std::fs::read_to_string(note).ok()?.trim().parse().ok()?;
    let path = format!("/dev/loop{index}");
    let dev = rustix::fs::open(
        &path,
        rustix::fs::OFlags::RDWR | rustix::fs::OFlags::CLOEXEC,
        rustix::fs::Mode::empty(),
    )
    .ok()?;
    let (bdev, ino) = kennel_sys::blockdev::loop_backing(dev.as_fd()).ok()?;
    let st = rustix::fs::fstat(image).ok()?;
    (st.st_dev == bdev && st.st_ino == ino).then_some((path, dev))
}

/// `fsopen(fstype)`. Where the filesystem is a module (XFS, ext4 on
/// Debian's kernel), the first user loads it, and a second caller racing
/// with that load can get ENODEV although the module is a moment away:
/// retry briefly.
pub(crate) fn open_fs(fstype: &str) -> rustix::io::Result<rustix::fd::OwnedFd> {
    for _ in 0..50 {
        match fsopen(fstype, FsOpenFlags::FSOPEN_CLOEXEC) {
            Err(rustix::io::Errno::NODEV) => {
                std::thread::sleep(std::time::Duration::from_millis(20))
            }
            other => return other,
        }
    }
    fsopen(fstype, FsOpenFlags::FSOPEN_CLOEXEC)
}

/// Creates the filesystem configured in `fs`, mounts it with `attrs` and
/// attaches it at `target`; `what` names it in errors.
pub(crate) fn create_and_attach(
    fs: BorrowedFd<'_>,
    attrs: MountAttrFlags,
    target: &Path,
    what: &'static str,
) -> Result<()> {
    fsconfig_create(fs).map_err(|e| io_err(what, target)(e.into()))?;
    let mnt = fsmount(fs, FsMountFlags::FSMOUNT_CLOEXEC, attrs)
        .map_err(|e| io_err(what, target)(e.into()))?;
    attach(mnt.as_fd(), target, what)
}

/// Attaches the detached mount `mnt` at `target`.
pub(crate) fn attach(mnt: BorrowedFd<'_>, target: &Path, what: &'static str) -> Result<()> {
    move_mount(
        mnt,
        "",
        CWD,
        target,
        MoveMountFlags::MOVE_MOUNT_F_EMPTY_PATH,
    )
    .map_err(|e| io_err(what, target)(e.into()))
}

/// Opens the root of the detached or attached mount `mnt` (an `O_PATH`
/// descriptor, as `fsmount` gives) for work on its filesystem: ioctls
/// and `syncfs` need a real open.
pub(crate) fn open_root(mnt: BorrowedFd<'_>, what: &Path) -> Result<OwnedFd> {
    rustix::fs::openat(
        mnt,
        ".",
        OFlags::RDONLY | OFlags::DIRECTORY | OFlags::NOFOLLOW | OFlags::CLOEXEC,
        Mode::empty(),
    )
    .map_err(|e| io_err("open the filesystem of", what)(e.into()))
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

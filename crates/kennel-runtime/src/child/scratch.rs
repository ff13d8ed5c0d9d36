//! One tmpfs per VE for every place that needs a small writable (or empty)
//! filesystem: `/dev`, `/dev/shm`, `/run`, the empty directories that hide
//! the host's hardware in `/proc` and `/sys`, and on a pure cgroup v1 host
//! the directory that holds `/sys/fs/cgroup`'s mounts.
//!
//! Why one: every superblock registers a memory-cgroup-aware shrinker, and
//! every memory cgroup on the host carries bookkeeping for the highest
//! shrinker id in use, so superblocks per VE cost memory that grows with the
//! number of VEs squared (docs/DENSITY.md, "Memory per VE"). Four tmpfs
//! instances per VE (five on pure v1) became one.
//!
//! How: the tmpfs gets one subdirectory per place, and each place is a bind
//! mount of its subdirectory with that place's own mount flags (`nosuid`,
//! `nodev`, `noexec`, read-only are per mount). A bind mount's root cannot
//! be left by `..`, so no place shows another; hard links and renames
//! between places fail with `EXDEV` as they did between separate
//! filesystems. The tmpfs is made here, in the VE's user namespace, as the
//! separate ones were: the VE's root owns its superblock and may remount it
//! (its size, say), as it could each of them before; nothing of the host's
//! is on it.
//!
//! What a VE sees differently:
//! * the places share one device number, one size and one inode count,
//!   `/run`'s as before (20% of the host's memory, 400k inodes): `df`
//!   shows the same totals and usage for `/dev/shm` and `/run`; `/dev/shm`
//!   is no longer half the host's memory on its own, nor `/dev` 4 MiB;
//! * in a VE without a memory limit, users who fill `/dev/shm` fill `/run`
//!   with it (each had its own size before); with a limit, the limit is
//!   reached first, as before;
//! * `stat` finds `/dev` and `/dev/shm` on one device, so a tool that tells
//!   mount points by device numbers alone (busybox `mountpoint`) takes
//!   `/dev/shm` for a plain directory; mountinfo, `findmnt` and systemd,
//!   which go by mount ids, see every place as the mount it is.
//!
//! None of it matters to the host: tmpfs pages and inodes are charged to
//! the VE's memory cgroup whatever the mount, and the VE's root could
//! always remount its own tmpfs with another size.
//!
//! The kernels Kennel supports (6.1) cannot bind a subdirectory of a
//! detached mount, so the tmpfs is attached for a moment at the VE's
//! `/dev`, its places are cloned from there, and it is unmounted again
//! before anything is mounted on `/dev`.

use std::os::fd::{AsFd, BorrowedFd, OwnedFd};

use rustix::fs::{chmodat, mkdirat, AtFlags, Mode};
use rustix::mount::{unmount, MountAttrFlags, UnmountFlags};

use super::mnt::{attach, clone_of, new_fs, open_target, Make};
use super::rootfs::VeRoot;
use crate::error::{Context, Result, RuntimeError};

/// The places on the VE's tmpfs, each a detached mount of its own
/// subdirectory, with its own flags, ready to be attached.
#[derive(Debug)]
pub struct Scratch {
    /// `/dev`: `nosuid`, `noexec` (the device nodes on it are bind mounts
    /// of the host's, with their own flags).
    pub dev: OwnedFd,
    /// `/dev/shm`: `nosuid`, `nodev`, mode 1777.
    pub shm: OwnedFd,
    /// `/run`: `nosuid`, `nodev`.
    pub run: OwnedFd,
    /// An empty read-only directory (mode 0555) to cover host hardware.
    pub hide: OwnedFd,
    /// On a pure cgroup v1 host: `/sys/fs/cgroup`, `nosuid`, `nodev`,
    /// `noexec` (made read-only once its mounts are in).
    pub cgroup: Option<OwnedFd>,
}

const NOSUID: MountAttrFlags = MountAttrFlags::MOUNT_ATTR_NOSUID;
const NODEV: MountAttrFlags = MountAttrFlags::MOUNT_ATTR_NODEV;
const NOEXEC: MountAttrFlags = MountAttrFlags::MOUNT_ATTR_NOEXEC;
const RDONLY: MountAttrFlags = MountAttrFlags::MOUNT_ATTR_RDONLY;

/// One place: its subdirectory, mode and mount flags.
struct Place {
    dir: &'static str,
    mode: u32,
    attrs: MountAttrFlags,
}

const DEV: Place = Place {
    dir: "dev",
    mode: 0o755,
    attrs: NOSUID.union(NOEXEC),
};
const SHM: Place = Place {
    dir: "shm",
    mode: 0o1777,
    attrs: NOSUID.union(NODEV),
};
const RUN: Place = Place {
    dir: "run",
    mode: 0o755,
    attrs: NOSUID.union(NODEV),
};
const HIDE: Place = Place {
    dir: "hide",
    mode: 0o555,
    attrs: NOSUID.union(NODEV).union(NOEXEC).union(RDONLY),
};
const CGROUP: Place = Place {
    dir: "cgroup",
    mode: 0o755,
    attrs: NOSUID.union(NODEV).union(NOEXEC),
};

/// Where the tmpfs is attached for a moment (below the VE's root).
const TRANSIENT: &str = "dev";

impl Scratch {
    /// Makes the VE's tmpfs and its places; `cgroup_dir`: whether
    /// `/sys/fs/cgroup` needs one (a pure cgroup v1 host).
    pub fn new(root: &VeRoot, cgroup_dir: bool) -> Result<Self> {
        let r = root.fd.as_fd();
        // `/run`'s sizes as they were (systemd's own for /run; journald
        // sizes its runtime journal from it), which also bound /dev/shm
        // now (half the host's memory before); the VE's memory limit
        // bounds all of it long before.
        let fs = new_fs(
            "tmpfs",
            &[],
            &[("mode", "0755"), ("size", "20%"), ("nr_inodes", "400k")],
            NOSUID,
        )?;
        let target = open_target(r, TRANSIENT, Make::Dir(0o755))?
            .ok_or_else(|| RuntimeError::Setup(format!("/{TRANSIENT} missing")))?;
        attach(fs.as_fd(), target.as_fd(), "the VE's tmpfs")?;
        let made = open_target(r, TRANSIENT, Make::Nothing).and_then(|top| {
            let top = top.ok_or_else(|| RuntimeError::Setup("the VE's tmpfs vanished".into()))?;
            let place = |p: &Place| make_place(top.as_fd(), p);
            Ok(Self {
                dev: place(&DEV)?,
                shm: place(&SHM)?,
                run: place(&RUN)?,
                hide: place(&HIDE)?,
                cgroup: if cgroup_dir {
                    Some(place(&CGROUP)?)
                } else {
                    None
                },
            })
        });
        // Gone from the tree whatever happened: the places hold the
        // filesystem now. By its path below the VE's root: a directory
        // with a mount on it cannot be renamed or replaced meanwhile.
        rustix::process::fchdir(r).ctx(|| "enter the VE's root".into())?;
        unmount(TRANSIENT, UnmountFlags::DETACH | UnmountFlags::NOFOLLOW)
            .ctx(|| "detach the VE's tmpfs from its setup place".into())?;
        made
    }
}

/// Makes `p`'s subdirectory below `top` and returns a detached mount of it
/// with `p`'s flags.
fn make_place(top: BorrowedFd<'_>, p: &Place) -> Result<OwnedFd> {
    let mode = Mode::from_raw_mode(p.mode);
    mkdirat(top, p.dir, mode).ctx(|| format!("create the VE's tmpfs place {}", p.dir))?;
    // Exactly this mode, whatever the umask.
    chmodat(top, p.dir, mode, AtFlags::empty())
        .ctx(|| format!("set the mode of the VE's tmpfs place {}", p.dir))?;
    let m = clone_of(top, p.dir)?;
    kennel_sys::mount::set_attrs(m.as_fd(), p.attrs).map_err(|source| RuntimeError::Sys {
        what: format!("set the mount flags of the VE's tmpfs place {}", p.dir),
        source,
    })?;
    Ok(m)
}

//! The device nodes of opt-in features (`/dev/net/tun`, `/dev/fuse`).
//!
//! Binding the host's own nodes would make a VE depend on their modes
//! (0600 on a host without udev, where the VE's root, an unprivileged uid
//! on the host, cannot open them), and a VE cannot make usable nodes
//! itself. So the monitor makes them: nodes mode 0666 on a small tmpfs
//! created in the host's user namespace (where device nodes work),
//! attached at `<run>/devices` inside the VE's mount namespace only, and
//! handed to the VE as descriptors with "go"; the VE binds them into its
//! `/dev`, and `pivot_root` drops the tmpfs with the rest of the host's
//! tree.

use std::os::fd::{AsFd, OwnedFd};
use std::path::{Path, PathBuf};

use rustix::fs::{chmodat, makedev, mknodat, AtFlags, FileType, Mode};
use rustix::mount::{
    fsconfig_create, fsconfig_set_string, fsmount, fsopen, move_mount, FsMountFlags, FsOpenFlags,
    MountAttrFlags, MoveMountFlags,
};

use crate::error::{Context, Result};
use crate::features::{Feature, Features};

/// (feature, node name, major, minor, where it goes below the VE's /dev).
pub const FEATURE_NODES: &[(Feature, &str, u32, u32, &str)] = &[
    (Feature::Tun, "tun", 10, 200, "net/tun"),
    (Feature::Fuse, "fuse", 10, 229, "fuse"),
];

/// Where the nodes are, in the VE's mount namespace until `pivot_root`.
pub fn dir(run_dir: &Path) -> PathBuf {
    run_dir.join("devices")
}

/// A detached tmpfs holding the nodes `features` need; `None` when they
/// need none. Call in the host's user namespace.
pub(super) fn make(features: &Features) -> Result<Option<OwnedFd>> {
    let wanted: Vec<_> = FEATURE_NODES
        .iter()
        .filter(|(f, ..)| features.has(*f))
        .collect();
    if wanted.is_empty() {
        return Ok(None);
    }
    let fs = fsopen("tmpfs", FsOpenFlags::FSOPEN_CLOEXEC).ctx(|| "open tmpfs".into())?;
    for (k, v) in [("size", "4k"), ("nr_inodes", "8"), ("mode", "0755")] {
        fsconfig_set_string(&fs, k, v).ctx(|| format!("tmpfs option {k}"))?;
    }
    fsconfig_create(&fs).ctx(|| "create the device tmpfs".into())?;
    let mnt = fsmount(
        &fs,
        FsMountFlags::FSMOUNT_CLOEXEC,
        MountAttrFlags::MOUNT_ATTR_NOSUID | MountAttrFlags::MOUNT_ATTR_NOEXEC,
    )
    .ctx(|| "mount the device tmpfs".into())?;
    for (_, name, major, minor, _) in wanted {
        mknodat(
            &mnt,
            *name,
            FileType::CharacterDevice,
            Mode::from_raw_mode(0o666),
            makedev(*major, *minor),
        )
        .ctx(|| format!("make the VE's {name} device"))?;
        // The monitor's umask took write access from others.
        chmodat(&mnt, *name, Mode::from_raw_mode(0o666), AtFlags::empty())
            .ctx(|| format!("chmod the VE's {name} device"))?;
    }
    Ok(Some(mnt))
}

/// Attaches `nodes` at [`dir`] (call inside the VE's mount namespace)
/// and opens each node there, for the VE to bind (`O_PATH`).
pub(super) fn attach(nodes: &OwnedFd, run_dir: &Path, features: &Features) -> Result<Vec<OwnedFd>> {
    let target = dir(run_dir);
    move_mount(
        nodes.as_fd(),
        "",
        rustix::fs::CWD,
        &target,
        MoveMountFlags::MOVE_MOUNT_F_EMPTY_PATH,
    )
    .ctx(|| format!("mount the VE's devices at {}", target.display()))?;
    FEATURE_NODES
        .iter()
        .filter(|(f, ..)| features.has(*f))
        .map(|(_, name, ..)| {
            rustix::fs::open(
                target.join(name),
                rustix::fs::OFlags::PATH | rustix::fs::OFlags::CLOEXEC,
                Mode::empty(),
            )
            .ctx(|| format!("open the VE's {name} device"))
        })
        .collect()
}

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

/// A device node an opt-in feature gives the VE.
#[derive(Debug)]
pub struct FeatureNode {
    pub feature: Feature,
    /// Its name on the monitor's tmpfs.
    pub name: &'static str,
    pub major: u32,
    pub minor: u32,
    /// Where it goes below the VE's `/dev`.
    pub at: &'static str,
}

/// Every feature's node, in the order they are made, sent and bound.
pub const FEATURE_NODES: &[FeatureNode] = &[
    FeatureNode {
        feature: Feature::Tun,
        name: "tun",
        major: 10,
        minor: 200,
        at: "net/tun",
    },
    FeatureNode {
        feature: Feature::Fuse,
        name: "fuse",
        major: 10,
        minor: 229,
        at: "fuse",
    },
];

/// The nodes `features` need, in [`FEATURE_NODES`]' order.
pub fn wanted(features: &Features) -> impl Iterator<Item = &'static FeatureNode> + '_ {
    FEATURE_NODES.iter().filter(|n| features.has(n.feature))
}

/// Where the nodes are, in the VE's mount namespace until `pivot_root`.
pub fn dir(run_dir: &Path) -> PathBuf {
    run_dir.join("devices")
}

/// A detached tmpfs holding the nodes `features` need; `None` when they
/// need none. Call in the host's user namespace.
pub(super) fn make(features: &Features) -> Result<Option<OwnedFd>> {
    let wanted: Vec<_> = wanted(features).collect();
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
    for node in wanted {
        let name = node.name;
        mknodat(
            &mnt,
            name,
            FileType::CharacterDevice,
            Mode::from_raw_mode(0o666),
            makedev(node.major, node.minor),
        )
        .ctx(|| format!("make the VE's {name} device"))?;
        // The monitor's umask took write access from others.
        chmodat(&mnt, name, Mode::from_raw_mode(0o666), AtFlags::empty())
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
    wanted(features)
        .map(|node| {
            let name = node.name;
            rustix::fs::open(
                target.join(name),
                rustix::fs::OFlags::PATH | rustix::fs::OFlags::CLOEXEC,
                Mode::empty(),
            )
            .ctx(|| format!("open the VE's {name} device"))
        })
        .collect()
}

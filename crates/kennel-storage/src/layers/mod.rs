//! A VE's own writable layer, and the mount that puts it over the VE's
//! template.
//!
//! The VE's root is an overlayfs mount made by the host (so it is owned by
//! the initial user namespace and the VE cannot unmount or reshape it):
//!
//! * lower: the template tree, shared and read-only;
//! * upper/work: the VE's own directories, holding only what the VE changed.
//!
//! The template is owned by host uid 0 on disk but each VE's root is a
//! different host uid. Three ways to reconcile that, tried in this order
//! (see docs/ARCHITECTURE.md, "Storage"):
//!
//! 1. [`LayerMode::Idmapped`]: the lower layer is an idmapped mount
//!    (`mount_setattr(MOUNT_ATTR_IDMAP)`) using the VE's user namespace, so
//!    template files appear owned by the VE's root. Nothing is copied; the
//!    upper layer stores files with the VE's host ids.
//! 2. [`LayerMode::Shifted`]: where the template's filesystem cannot be
//!    idmapped, the VE's upper layer gets a metadata-only copy of every
//!    template inode with shifted ownership (overlayfs `metacopy=on`), made
//!    once at create time (`shifted.rs`). File data still comes from the
//!    shared template.
//!
//! `idmap.rs` tells which one a state root's filesystem allows.

mod idmap;
mod shifted;

pub use idmap::{idmap_supported, mapping_userns};
pub use shifted::prepare_shifted;

use std::os::fd::{AsFd, BorrowedFd, OwnedFd};
use std::path::{Path, PathBuf};

use rustix::fs::CWD;
use rustix::mount::{
    fsconfig_set_string, move_mount, open_tree, MountAttrFlags, MoveMountFlags, OpenTreeFlags,
};
use serde::{Deserialize, Serialize};

use crate::error::{io_err, Result, StorageError};

/// How a VE's root reconciles template ownership with the VE's ids.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum LayerMode {
    Idmapped,
    Shifted,
}

impl LayerMode {
    pub fn as_str(self) -> &'static str {
        match self {
            LayerMode::Idmapped => "idmapped",
            LayerMode::Shifted => "shifted",
        }
    }
}

/// The VE's own layer directories.
#[derive(Debug, Clone)]
pub struct VeLayers {
    dir: PathBuf,
}

impl VeLayers {
    pub fn new(dir: impl Into<PathBuf>) -> Self {
        VeLayers { dir: dir.into() }
    }

    pub fn upper(&self) -> PathBuf {
        self.dir.join("upper")
    }

    pub fn work(&self) -> PathBuf {
        self.dir.join("work")
    }

    /// Creates the empty upper directory owned by the VE's root (`owner`)
    /// and overlayfs's work directory.
    pub fn create(&self, owner: (u32, u32)) -> Result<()> {
        let upper = self.upper();
        crate::util::mkdir_mode(&upper, 0o755)?;
        std::os::unix::fs::chown(&upper, Some(owner.0), Some(owner.1))
            .map_err(io_err("chown", &upper))?;
        crate::util::mkdir_mode(&self.work(), 0o700)
    }
}

/// Everything needed to mount a VE's root.
#[derive(Debug)]
pub struct RootMount<'a> {
    /// The template's tree.
    pub template: &'a Path,
    pub layers: &'a VeLayers,
    pub mode: LayerMode,
    /// An empty directory where the idmapped template is attached.
    pub lower_mountpoint: &'a Path,
    /// An empty directory where the VE's root is mounted.
    pub target: &'a Path,
}

/// Mounts the VE's root at `m.target` in the caller's mount namespace.
/// `userns` is the VE's user namespace (needed for [`LayerMode::Idmapped`]).
/// The root is `nodev`: no device node in a template or a VE's files is
/// ever usable.
pub fn mount_root(m: &RootMount<'_>, userns: Option<BorrowedFd<'_>>) -> Result<()> {
    let lower: PathBuf = match m.mode {
        LayerMode::Idmapped => {
            let userns = userns.ok_or_else(|| {
                StorageError::Unsupported("an idmapped root needs the VE's user namespace".into())
            })?;
            attach_idmapped(m.template, userns, m.lower_mountpoint)?;
            m.lower_mountpoint.to_path_buf()
        }
        LayerMode::Shifted => m.template.to_path_buf(),
    };
    mount_overlay(&lower, m.layers, m.mode == LayerMode::Shifted, m.target)
}

/// Attaches an idmapped, read-only clone of `src` at `at`.
fn attach_idmapped(src: &Path, userns: BorrowedFd<'_>, at: &Path) -> Result<()> {
    let tree = open_tree(
        CWD,
        src,
        OpenTreeFlags::OPEN_TREE_CLONE | OpenTreeFlags::OPEN_TREE_CLOEXEC,
    )
    .map_err(|e| io_err("clone mount of", src)(e.into()))?;
    kennel_sys::mount::set_idmap(tree.as_fd(), userns, true).map_err(|e| {
        if idmap::is_unsupported(&e) {
            StorageError::Unsupported(format!(
                "the filesystem of {} does not support idmapped mounts ({e})",
                src.display()
            ))
        } else {
            io_err("idmap", src)(e)
        }
    })?;
    move_mount(
        tree.as_fd(),
        "",
        CWD,
        at,
        MoveMountFlags::MOVE_MOUNT_F_EMPTY_PATH,
    )
    .map_err(|e| io_err("attach idmapped template at", at)(e.into()))
}

pub(crate) fn mount_overlay(
    lower: &Path,
    layers: &VeLayers,
    metacopy: bool,
    target: &Path,
) -> Result<()> {
    let fs = open_overlay().map_err(|e| io_err("open overlay filesystem for", target)(e.into()))?;
    let set = |k: &str, v: &Path| -> Result<()> {
        fsconfig_set_string(fs.as_fd(), k, v).map_err(|e| io_err("configure overlay", v)(e.into()))
    };
    set("lowerdir", lower)?;
    set("upperdir", &layers.upper())?;
    set("workdir", &layers.work())?;
    if metacopy {
        for (k, v) in [("redirect_dir", "on"), ("metacopy", "on")] {
            fsconfig_set_string(fs.as_fd(), k, v)
                .map_err(|e| io_err("configure overlay", target)(e.into()))?;
        }
    }
    crate::blockmount::create_and_attach(
        fs.as_fd(),
        MountAttrFlags::MOUNT_ATTR_NODEV,
        target,
        "mount overlay for",
    )
}

/// `fsopen("overlay")`, retried while the module loads (see
/// [`crate::blockmount::open_fs`]).
fn open_overlay() -> rustix::io::Result<OwnedFd> {
    crate::blockmount::open_fs("overlay")
}

/// Mounts, read-only at `target`, the tree a VE saw when the layer
/// `upper` (a snapshot's, say) was its own: `upper` over the template.
/// Nothing in it can run, be a device or raise privileges on the host.
pub fn mount_read_only_view(
    upper: &Path,
    template: &Path,
    mode: LayerMode,
    target: &Path,
) -> Result<()> {
    let fs = open_overlay().map_err(|e| io_err("open overlay filesystem for", target)(e.into()))?;
    let cfg = |k: &str, v: &str| -> Result<()> {
        fsconfig_set_string(fs.as_fd(), k, v)
            .map_err(|e| io_err("configure overlay", target)(e.into()))
    };
    let lower = format!("{}:{}", upper.display(), template.display());
    cfg("lowerdir", &lower)?;
    if mode == LayerMode::Shifted {
        cfg("redirect_dir", "follow")?;
        cfg("metacopy", "on")?;
    }
    crate::blockmount::create_and_attach(
        fs.as_fd(),
        MountAttrFlags::MOUNT_ATTR_RDONLY
            | MountAttrFlags::MOUNT_ATTR_NODEV
            | MountAttrFlags::MOUNT_ATTR_NOSUID
            | MountAttrFlags::MOUNT_ATTR_NOEXEC,
        target,
        "mount overlay for",
    )
}

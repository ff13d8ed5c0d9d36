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
//!    once at create time. File data still comes from the shared template.
//! 3. [`LayerMode::Plain`]: a VE without a user namespace needs neither.

use std::fs;
use std::io;
use std::os::fd::{AsFd, BorrowedFd, OwnedFd};
use std::path::{Path, PathBuf};

use rustix::fs::{Mode, OFlags, CWD};
use rustix::mount::{
    fsconfig_create, fsconfig_set_string, fsmount, fsopen, move_mount, open_tree, FsMountFlags,
    FsOpenFlags, MountAttrFlags, MoveMountFlags, OpenTreeFlags,
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
        if matches!(
            e.raw_os_error(),
            Some(libc::EINVAL) | Some(libc::EOPNOTSUPP) | Some(libc::ENOSYS)
        ) {
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

fn mount_overlay(lower: &Path, layers: &VeLayers, metacopy: bool, target: &Path) -> Result<()> {
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
    fsconfig_create(fs.as_fd()).map_err(|e| io_err("create overlay for", target)(e.into()))?;
    let mnt = fsmount(
        fs.as_fd(),
        FsMountFlags::FSMOUNT_CLOEXEC,
        MountAttrFlags::MOUNT_ATTR_NODEV,
    )
    .map_err(|e| io_err("mount overlay for", target)(e.into()))?;
    move_mount(
        mnt.as_fd(),
        "",
        CWD,
        target,
        MoveMountFlags::MOVE_MOUNT_F_EMPTY_PATH,
    )
    .map_err(|e| io_err("attach overlay at", target)(e.into()))
}

/// `fsopen("overlay")`. When overlayfs is a module, the first user loads
/// it; a second caller racing with that load can get ENODEV although the
/// module is a moment away, so retry briefly.
fn open_overlay() -> rustix::io::Result<OwnedFd> {
    for _ in 0..50 {
        match fsopen("overlay", FsOpenFlags::FSOPEN_CLOEXEC) {
            Err(rustix::io::Errno::NODEV) => {
                std::thread::sleep(std::time::Duration::from_millis(20))
            }
            other => return other,
        }
    }
    fsopen("overlay", FsOpenFlags::FSOPEN_CLOEXEC)
}

/// A user namespace whose only purpose is to carry the id mapping
/// `0 -> base` of `size` ids, for idmapping mounts outside a running VE.
pub fn mapping_userns(base: u32, size: u32) -> Result<OwnedFd> {
    use kennel_sys::clone::{clone3, CloneOptions, Forked};
    let (rd, wr) = rustix::pipe::pipe_with(rustix::pipe::PipeFlags::CLOEXEC)
        .map_err(|e| io_err("pipe", "")(e.into()))?;
    let child = clone3(&CloneOptions {
        flags: libc::CLONE_NEWUSER as u64,
        pidfd: true,
        cgroup: None,
    })
    .map_err(io_err("create user namespace", ""))?;
    let (pid, pidfd) = match child {
        Forked::Child => {
            drop(wr);
            // Wait until the parent has what it needs, then leave.
            let mut b = [0u8; 1];
            let _ = rustix::io::read(&rd, &mut b);
            kennel_sys::process::exit_child(0)
        }
        Forked::Parent { pid, pidfd } => (pid, pidfd),
    };
    drop(rd);
    let result = (|| {
        let map = format!("0 {base} {size}\n");
        for f in ["uid_map", "gid_map"] {
            let p = format!("/proc/{pid}/{f}");
            fs::write(&p, &map).map_err(io_err("write", &p))?;
        }
        let p = format!("/proc/{pid}/ns/user");
        rustix::fs::open(&p, OFlags::RDONLY | OFlags::CLOEXEC, Mode::empty())
            .map_err(|e| io_err("open", &p)(e.into()))
    })();
    drop(wr);
    if let Some(pidfd) = pidfd {
        let _ = rustix::process::waitid(
            rustix::process::WaitId::PidFd(pidfd.as_fd()),
            rustix::process::WaitIdOptions::EXITED,
        );
    }
    result
}

/// True if `path`'s filesystem can be idmapped here.
pub fn idmap_supported(path: &Path) -> Result<bool> {
    let ns = mapping_userns(1_000_000, 65536)?;
    let tree = open_tree(
        CWD,
        path,
        OpenTreeFlags::OPEN_TREE_CLONE | OpenTreeFlags::OPEN_TREE_CLOEXEC,
    )
    .map_err(|e| io_err("clone mount of", path)(e.into()))?;
    match kennel_sys::mount::set_idmap(tree.as_fd(), ns.as_fd(), true) {
        Ok(()) => Ok(true),
        Err(e)
            if matches!(
                e.raw_os_error(),
                Some(libc::EINVAL) | Some(libc::EOPNOTSUPP) | Some(libc::ENOSYS)
            ) =>
        {
            Ok(false)
        }
        Err(e) => Err(io_err("idmap", path)(e)),
    }
}

/// Prepares a [`LayerMode::Shifted`] upper layer: mounts the overlay with
/// `metacopy=on` in a private mount namespace of a child process and
/// changes the owner of every entry by `+base`, which copies up metadata
/// only. Runs once, at create time.
pub fn prepare_shifted(
    template: &Path,
    layers: &VeLayers,
    scratch: &Path,
    base: u32,
) -> Result<()> {
    use kennel_sys::clone::{clone3, CloneOptions, Forked};
    crate::util::mkdir_mode(scratch, 0o700)?;
    let child = clone3(&CloneOptions {
        flags: libc::CLONE_NEWNS as u64,
        pidfd: true,
        cgroup: None,
    })
    .map_err(io_err("fork for", scratch))?;
    match child {
        Forked::Child => {
            let ok = (|| -> Result<()> {
                rustix::mount::mount_change(
                    "/",
                    rustix::mount::MountPropagationFlags::PRIVATE
                        | rustix::mount::MountPropagationFlags::REC,
                )
                .map_err(|e| io_err("make private", "/")(e.into()))?;
                mount_overlay(template, layers, true, scratch)?;
                shift_tree(scratch, base).map_err(io_err("shift ownership in", scratch))
            })();
            if let Err(e) = &ok {
                eprintln!("kennel: {e}");
            }
            kennel_sys::process::exit_child(if ok.is_ok() { 0 } else { 1 })
        }
        Forked::Parent { pidfd, .. } => {
            let status = pidfd
                .and_then(|fd| {
                    rustix::process::waitid(
                        rustix::process::WaitId::PidFd(fd.as_fd()),
                        rustix::process::WaitIdOptions::EXITED,
                    )
                    .ok()
                    .flatten()
                })
                .and_then(|s| s.exit_status());
            let _ = fs::remove_dir(scratch);
            if status == Some(0) {
                Ok(())
            } else {
                Err(StorageError::Tool(format!(
                    "could not prepare a shifted layer for {} (see the message above)",
                    layers.dir.display()
                )))
            }
        }
    }
}

/// lchown every entry below (and including) `dir` by `+base`.
fn shift_tree(dir: &Path, base: u32) -> io::Result<()> {
    use std::os::unix::fs::MetadataExt;
    let mut stack = vec![dir.to_path_buf()];
    while let Some(p) = stack.pop() {
        let md = p.symlink_metadata()?;
        std::os::unix::fs::lchown(
            &p,
            Some(md.uid().saturating_add(base)),
            Some(md.gid().saturating_add(base)),
        )?;
        // chown(2) clears set-user-ID and set-group-ID bits: put them back.
        if !md.file_type().is_symlink() && md.mode() & 0o6000 != 0 {
            use std::os::unix::fs::PermissionsExt;
            fs::set_permissions(&p, fs::Permissions::from_mode(md.mode() & 0o7777))?;
        }
        if md.is_dir() {
            for e in fs::read_dir(&p)? {
                stack.push(e?.path());
            }
        }
    }
    Ok(())
}

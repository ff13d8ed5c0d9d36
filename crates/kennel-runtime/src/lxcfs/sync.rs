//! Binding a (re)started lxcfs's files into the running VEs.
//!
//! A VE's binds of lxcfs's files hold the FUSE filesystem they were made
//! from. When lxcfs dies, the kernel aborts that filesystem's connection and
//! every read of them fails (ENOTCONN); a new lxcfs mounts a new filesystem,
//! which no existing bind refers to. So after lxcfs starts, `kennel
//! lxcfs-sync` (the service's `ExecStartPost`) puts a bind of the new
//! lxcfs's file on top of each dead one in every running VE, and on top of
//! the kernel's own file in a VE that started while lxcfs was down. A live
//! lxcfs file, or anything else the VE mounted there, is left as it is.
//!
//! Stacking needs no unmount, which could only name the dead mount by a
//! path in the VE's tree (the VE's to redirect): each restart of lxcfs adds
//! one mount per file, and the VE's stop removes them with its mount
//! namespace.
//!
//! The work runs in the inside helper ([`crate::inside`]): as the VE's
//! root, in its user and mount namespaces, under its seccomp filter, and
//! with no host descriptor but the detached read-only copies of lxcfs's
//! files, the very ones a start binds into the VE. Before it attaches one,
//! the helper checks the place: the file's directory must be the VE's
//! procfs (or sysfs), reached without a symlink.

use std::os::fd::{AsFd, BorrowedFd, OwnedFd};
use std::path::Path;

use crate::child::mnt::{attach, open_target, Make};
use crate::error::Result;
use crate::inside::{self, InsideVe, Pending};

/// `statfs` types of procfs and sysfs.
const PROC_SUPER_MAGIC: i64 = 0x9fa0;
const SYSFS_MAGIC: i64 = 0x6265_6572;

/// What one VE got.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct Synced {
    /// lxcfs files bound now (on a dead bind or the kernel's file).
    pub bound: usize,
    /// Files whose lxcfs bind was live already.
    pub live: usize,
}

/// Starts binding the lxcfs served at `dir` into the running VE whose
/// init is `init_pid` (started at `init_start`), wherever the VE's file is
/// a dead lxcfs bind or the kernel's own (see the module doc); the answer
/// is a [`Synced`]. Helpers for many VEs can work at once. Each gets copies
/// of its own: a detached mount can be attached once only.
pub fn sync_into(
    init_pid: i32,
    init_start: u64,
    seccomp: &[kennel_sys::seccomp::SockFilter],
    dir: &Path,
) -> Result<Pending> {
    let copies = super::read_only_copies(dir);
    if copies.is_empty() {
        return Err(crate::RuntimeError::Setup(format!(
            "lxcfs does not serve at {}: start it first",
            dir.display()
        )));
    }
    let keep: Vec<BorrowedFd<'_>> = copies.iter().map(|(_, m)| m.as_fd()).collect();
    let ve = InsideVe {
        init_pid,
        init_start,
        seccomp,
        uts: false,
        keep: &keep,
    };
    inside::spawn(&ve, || {
        let root = inside::ve_root()?;
        let mut done = Synced::default();
        for (rel, copy) in &copies {
            match place(root.as_fd(), rel)? {
                Some((target, Found::Dead | Found::Kernel)) => {
                    attach(copy.as_fd(), target.as_fd(), &format!("lxcfs /{rel}"))
                        .map_err(|e| e.to_string())?;
                    done.bound += 1;
                }
                Some((_, Found::Live)) => done.live += 1,
                Some((_, Found::Other)) | None => {}
            }
        }
        Ok(done)
    })
}

/// What is at a file's place in the VE.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Found {
    /// An lxcfs bind whose daemon is gone.
    Dead,
    /// The kernel's own file.
    Kernel,
    /// A live FUSE file (the new lxcfs's, bound already).
    Live,
    /// Something the VE mounted there: left alone.
    Other,
}

/// The file `rel` below the VE's `root`, and what it is; `None` when it is
/// missing or its directory is not the VE's procfs or sysfs.
fn place(root: BorrowedFd<'_>, rel: &str) -> std::result::Result<Option<(OwnedFd, Found)>, String> {
    let (parent, kernel) = match rel.rsplit_once('/') {
        Some((p, _)) if p.starts_with("proc") => (p, PROC_SUPER_MAGIC),
        Some((p, _)) => (p, SYSFS_MAGIC),
        None => return Ok(None),
    };
    let open = |path: &str| open_target(root, path, Make::Nothing).map_err(|e| e.to_string());
    let Some(dir) = open(parent)? else {
        return Ok(None);
    };
    if !rustix::fs::fstatfs(&dir).is_ok_and(|st| fs_type(&st) == kernel) {
        return Ok(None);
    }
    let Some(file) = open(rel)? else {
        return Ok(None);
    };
    let found = match rustix::fs::fstatfs(&file) {
        // An aborted FUSE connection answers nothing but errors.
        Err(_) => Found::Dead,
        Ok(st) if super::is_fuse(&st) => Found::Live,
        Ok(st) if fs_type(&st) == kernel => Found::Kernel,
        Ok(_) => Found::Other,
    };
    Ok(Some((file, found)))
}

#[allow(clippy::unnecessary_cast)] // `f_type`'s type differs between architectures
fn fs_type(st: &rustix::fs::StatFs) -> i64 {
    st.f_type as i64
}

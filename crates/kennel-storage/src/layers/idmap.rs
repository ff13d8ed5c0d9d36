//! Id mappings for mounts outside a running VE: a user namespace that only
//! carries a mapping, and the probe for filesystems that can be idmapped.

use std::fs;
use std::io;
use std::os::fd::{AsFd, OwnedFd};
use std::path::Path;

use rustix::fs::{Mode, OFlags, CWD};
use rustix::mount::{open_tree, OpenTreeFlags};

use crate::error::{io_err, Result};

/// The errors by which `mount_setattr(MOUNT_ATTR_IDMAP)` says a filesystem
/// (or kernel) cannot be idmapped, as opposed to a real failure.
pub(super) fn is_unsupported(e: &io::Error) -> bool {
    matches!(
        e.raw_os_error(),
        Some(libc::EINVAL) | Some(libc::EOPNOTSUPP) | Some(libc::ENOSYS)
    )
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
        Err(e) if is_unsupported(&e) => Ok(false),
        Err(e) => Err(io_err("idmap", path)(e)),
    }
}

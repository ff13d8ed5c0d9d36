//! The fallback where the template's filesystem cannot be idmapped: a
//! metadata-only copy of the template in the VE's upper layer, with every
//! owner shifted into the VE's id range.

use std::fs;
use std::io;
use std::os::fd::AsFd;
use std::path::Path;

use super::{mount_overlay, VeLayers};
use crate::error::{io_err, Result, StorageError};

/// Prepares a [`super::LayerMode::Shifted`] upper layer: mounts the overlay with
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
                Err(StorageError::Layer(format!(
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

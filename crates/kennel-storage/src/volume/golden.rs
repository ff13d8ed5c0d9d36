//! New disks cloned from an empty one.
//!
//! `mkfs.ext4` writes a few MiB of metadata and syncs it: tens of
//! milliseconds per new disk, more on a busy host, and every disk of one
//! size holds the same bytes. So the pool keeps one empty disk per size
//! and inode count (`<pool>/.golden/<bytes>-<inodes>.img`), made once, and
//! a new VE's disk is a reflink clone of it: one `FICLONE`, its blocks
//! shared until the VE writes.
//!
//! The golden disk's `upper` directory belongs to the host's root; the
//! first mount gives it to the VE's root ([`super::Volume::mount_detached`]). A VE
//! can never own anything as the host's root, so that tells a fresh disk
//! from one the VE changed. Clones share the golden disk's filesystem
//! UUID, as snapshots and clones of one disk share theirs: Kennel mounts
//! disks by path, never by UUID.

use std::fs;
use std::os::fd::AsFd;
use std::path::{Path, PathBuf};

use super::{DiskSize, Volume};
use crate::error::{io_err, Result};

/// The empty disk of `size` in the pool at `pool`, made if missing.
pub(crate) fn golden(pool: &Path, size: DiskSize) -> Result<PathBuf> {
    let dir = pool.join(".golden");
    let path = dir.join(format!("{}-{}.img", size.bytes, size.inodes));
    if path.is_file() {
        return Ok(path);
    }
    fs::create_dir_all(&dir).map_err(io_err("create", &dir))?;
    // One maker at a time; the others find it made.
    let lock = fs::File::create(dir.join(".lock")).map_err(io_err("create", &dir))?;
    rustix::fs::flock(lock.as_fd(), rustix::fs::FlockOperation::LockExclusive)
        .map_err(|e| io_err("lock", &dir)(e.into()))?;
    if path.is_file() {
        return Ok(path);
    }
    sweep(&dir);
    let tmp = dir.join(format!(".tmp-{}.img", std::process::id()));
    let _ = fs::remove_file(&tmp);
    let made = Volume::new(&dir)
        .make_image(&tmp, size, (0, 0))
        .and_then(|()| {
            fs::File::open(&tmp)
                .and_then(|f| f.sync_all())
                .map_err(io_err("sync", &tmp))
        })
        .and_then(|()| fs::rename(&tmp, &path).map_err(io_err("rename", &tmp)));
    if made.is_err() {
        let _ = fs::remove_file(&tmp);
    }
    made.map(|()| path)
}

/// Removes golden disks a crashed maker left half-made.
fn sweep(dir: &Path) {
    let Ok(rd) = fs::read_dir(dir) else { return };
    for e in rd.flatten() {
        let name = e.file_name().to_string_lossy().into_owned();
        let pid = name
            .strip_prefix(".tmp-")
            .and_then(|r| r.strip_suffix(".img"))
            .and_then(|p| p.parse::<u32>().ok());
        if let Some(pid) = pid {
            if !Path::new(&format!("/proc/{pid}")).exists() {
                let _ = fs::remove_file(e.path());
            }
        }
    }
}

//! Which block devices an I/O limit is written for: the disks under a
//! VE's files.
//!
//! The io controller (v2 `io.max`, v1 `blkio.throttle.*`) takes limits
//! per whole disk, named `MAJOR:MINOR`; a partition is refused. A file's
//! `st_dev` names the filesystem's device, which may be a partition (then
//! its disk is meant) or have no device at all (tmpfs, overlayfs, NFS,
//! btrfs's anonymous numbers): there, no I/O limit can hold, and the
//! caller says so rather than pretend.

use std::fs;
use std::path::Path;

use crate::error::{CgroupError, Result};

/// A block device, `MAJOR:MINOR`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub struct BlockDevice {
    pub major: u32,
    pub minor: u32,
}

impl std::fmt::Display for BlockDevice {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}:{}", self.major, self.minor)
    }
}

/// The disks of `files`, each a device number (`st_dev`) and the path it
/// names in errors (deduplicated), or [`CgroupError::NoBlockDevice`] for
/// one on a filesystem without a block device.
pub fn disks_of(files: &[(u64, &Path)]) -> Result<Vec<BlockDevice>> {
    let mut out = Vec::new();
    for (dev, p) in files {
        let (major, minor) = (libc::major(*dev), libc::minor(*dev));
        let disk =
            disk_of(BlockDevice { major, minor }).ok_or_else(|| CgroupError::NoBlockDevice {
                path: p.to_path_buf(),
            })?;
        if !out.contains(&disk) {
            out.push(disk);
        }
    }
    out.sort();
    Ok(out)
}

/// The whole disk of `dev` (itself unless it is a partition), if the
/// kernel knows it as a block device.
fn disk_of(dev: BlockDevice) -> Option<BlockDevice> {
    let sys = Path::new("/sys/dev/block").join(dev.to_string());
    if !sys.exists() {
        return None;
    }
    if !sys.join("partition").exists() {
        return Some(dev);
    }
    // /sys/dev/block/M:m links to .../block/DISK/PARTITION.
    let parent = fs::canonicalize(&sys).ok()?.parent()?.join("dev");
    parse_dev(&fs::read_to_string(parent).ok()?)
}

/// `8:0\n` as in sysfs `dev` files.
fn parse_dev(text: &str) -> Option<BlockDevice> {
    let (a, b) = text.trim().split_once(':')?;
    Some(BlockDevice {
        major: a.parse().ok()?,
        minor: b.parse().ok()?,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sysfs_dev_files() {
        assert_eq!(
            parse_dev("254:16\n"),
            Some(BlockDevice {
                major: 254,
                minor: 16
            })
        );
        for bad in ["", "254", "a:b", "1:2:3"] {
            assert_eq!(parse_dev(bad), None, "{bad:?}");
        }
    }

    #[test]
    fn a_tmpfs_has_no_disk() {
        // /dev/shm is a tmpfs on every Linux host.
        use std::os::unix::fs::MetadataExt;
        let shm = Path::new("/dev/shm");
        let dev = fs::metadata(shm).expect("/dev/shm").dev();
        assert!(matches!(
            disks_of(&[(dev, shm)]),
            Err(CgroupError::NoBlockDevice { .. })
        ));
    }
}

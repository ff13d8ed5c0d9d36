//! Growing and shrinking a VE's disk.
//!
//! Growing a running VE's disk: the image file grows (sparse: free),
//! the loop device is told (`LOOP_SET_CAPACITY`), and ext4 grows online
//! (`EXT4_IOC_RESIZE_FS`), so `df` inside shows the new size at once. The
//! kernel asks for CAP_SYS_RESOURCE for that last step; where the host
//! withholds it (a sandbox, this project's CI), the new size is kept and
//! the filesystem grows offline at the next start, and the caller says
//! so.
//!
//! Shrinking needs the VE stopped: `resize2fs` moves the data down, and
//! first tells how small the filesystem can get, so a disk the data does
//! not fit in is refused before anything changes.

use std::fs;
use std::os::fd::AsFd;

use rustix::fs::{Mode, OFlags};

use super::Volume;
use crate::error::{io_err, Result, StorageError};

/// How a grow went.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Grown {
    /// The running VE sees the new size now.
    Online,
    /// The VE is stopped, or the kernel refused to grow its filesystem
    /// online: the next start does it.
    AtNextStart,
}

impl Volume {
    /// Grows the disk to `bytes`, and its filesystem with it if its VE
    /// is `running`.
    pub fn grow(&self, bytes: u64, running: bool) -> Result<Grown> {
        let image = self.image();
        let old = self.size()?;
        if bytes < old {
            return Err(StorageError::Layer(
                "internal: grow to a smaller size".into(),
            ));
        }
        // Recorded before the image changes: if anything below fails or
        // the command dies, the next start grows the filesystem to what
        // the image is.
        fs::write(self.grow_pending(), b"").map_err(io_err("write", self.grow_pending()))?;
        let f = fs::OpenOptions::new()
            .write(true)
            .open(&image)
            .map_err(io_err("open", &image))?;
        f.set_len(bytes).map_err(io_err("grow", &image))?;
        f.sync_all().map_err(io_err("sync", &image))?;
        if !running {
            return Ok(Grown::AtNextStart);
        }
        let root = self.open_running()?;
        let dev = rustix::fs::fstat(&root)
            .map_err(|e| io_err("stat the filesystem of", &image)(e.into()))?
            .st_dev;
        let node = device_node(dev)?;
        let loopdev = rustix::fs::open(&node, OFlags::RDONLY | OFlags::CLOEXEC, Mode::empty())
            .map_err(|e| io_err("open", &node)(e.into()))?;
        kennel_sys::blockdev::loop_set_capacity(loopdev.as_fd())
            .map_err(io_err("set the capacity of", &node))?;
        match kennel_sys::blockdev::ext4_resize(root.as_fd(), bytes / 4096) {
            Ok(()) => {
                let _ = fs::remove_file(self.grow_pending());
                Ok(Grown::Online)
            }
            Err(e) if e.raw_os_error() == Some(libc::EPERM) => Ok(Grown::AtNextStart),
            Err(e) => Err(io_err("grow the filesystem on", &image)(e)),
        }
    }

    /// Grows the filesystem to the image's size if a grow was left for
    /// the start. The disk is not mounted; where the kernel still has its
    /// filesystem all the same (something on the host holds the stopped
    /// VE's files), the start gets that one back and the grow waits for a
    /// later start: an offline tool on a live filesystem corrupts it.
    pub(crate) fn finish_pending_grow(&self) -> Result<()> {
        if !self.grow_pending().exists() || self.backing_loop().is_some() {
            return Ok(());
        }
        let image = self.image();
        crate::tools::fsck_ext4(&image)?;
        crate::tools::resize_ext4_offline(&image, self.size()?)?;
        let _ = fs::remove_file(self.grow_pending());
        Ok(())
    }

    /// Shrinks the disk of a stopped VE to `bytes`, if its data fits.
    pub fn shrink(&self, bytes: u64) -> Result<()> {
        let image = self.image();
        self.refuse_if_in_use("shrink the disk")?;
        self.finish_pending_grow()?;
        crate::tools::fsck_ext4(&image)?;
        let min = crate::tools::ext4_min_size(&image)?;
        // resize2fs's minimum is tight; leave room to boot and log in.
        let need = min.saturating_add(min / 20).max(super::MIN_DISK);
        if bytes < need {
            return Err(StorageError::Refused(format!(
                "the data does not fit in {}: the disk can shrink to {} at the least",
                crate::units::bytes(bytes),
                crate::units::bytes(need.div_ceil(1 << 20) << 20)
            )));
        }
        crate::tools::resize_ext4_offline(&image, bytes)?;
        let f = fs::OpenOptions::new()
            .write(true)
            .open(&image)
            .map_err(io_err("open", &image))?;
        f.set_len(bytes).map_err(io_err("shrink", &image))?;
        f.sync_all().map_err(io_err("sync", &image))
    }
}

/// The `/dev` node of block device `dev`, by its name in sysfs (hosts
/// without udev have no `/dev/block`).
fn device_node(dev: u64) -> Result<String> {
    let link = format!(
        "/sys/dev/block/{}:{}",
        rustix::fs::major(dev),
        rustix::fs::minor(dev)
    );
    let target = fs::read_link(&link).map_err(io_err("read", &link))?;
    let name = target
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .filter(|n| n.starts_with("loop"))
        .ok_or_else(|| StorageError::Layer(format!("{link} is not a loop device")))?;
    Ok(format!("/dev/{name}"))
}

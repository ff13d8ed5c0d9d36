//! The storage pool: where the VEs' disk images live.
//!
//! A VE's disk is a sparse ext4 image (see [`crate::volume`]); a snapshot
//! or a clone of it is a reflink copy, one `FICLONE`, whatever the VE
//! holds. So the pool must be a filesystem with reflinks. `kennel storage
//! init` finds or makes one, in this order:
//!
//! 1. a block device the operator names: Kennel makes XFS on it;
//! 2. the pool directory itself, when its filesystem already clones
//!    (an XFS or btrfs state root);
//! 3. otherwise (the common ext4 root) a sparse XFS image in the state
//!    root on a loop device, sized like Incus' default loop pool: a fifth
//!    of the free space, at least 5 GiB, at most 30 GiB.
//!
//! The record ([`record`]) is written before anything is made. After a
//! host reboot the first command that needs the pool mounts it again
//! ([`Pool::open`]).

pub mod record;

use std::fs;
use std::os::fd::AsFd;
use std::path::{Path, PathBuf};

use rustix::mount::MountAttrFlags;

pub use record::{PoolRecord, PoolSource};

use crate::blockmount::{is_mount_root, mount_image, unmount, ImageMount};
use crate::error::{io_err, Result, StorageError};

const GIB: u64 = 1 << 30;

/// What `kennel storage init` asks for.
#[derive(Debug, Clone)]
pub struct PoolRequest {
    /// The directory that holds the volumes.
    pub path: PathBuf,
    /// Where a loop pool's image goes.
    pub image: PathBuf,
    /// A loop pool's size (default: a fifth of the free space, 5-30 GiB).
    pub size: Option<u64>,
    /// A block device to make the pool on instead.
    pub device: Option<PathBuf>,
}

/// An initialised, mounted pool.
#[derive(Debug, Clone)]
pub struct Pool {
    pub record: PoolRecord,
}

/// Space in the pool.
#[derive(Debug, Clone, Copy, Default, serde::Serialize)]
pub struct PoolUsage {
    pub size: u64,
    pub used: u64,
    pub free: u64,
}

impl Pool {
    /// The pool recorded in `record_file`, mounted; `None` if there is
    /// none yet.
    pub fn open(record_file: &Path) -> Result<Option<Pool>> {
        match PoolRecord::load(record_file)? {
            Some(r) if r.ready => {
                let pool = Pool { record: r };
                pool.ensure_mounted()?;
                Ok(Some(pool))
            }
            Some(_) => Err(StorageError::Layer(format!(
                "the storage pool was not fully made (see {}): run `kennel storage init` again",
                record_file.display()
            ))),
            None => Ok(None),
        }
    }

    /// Makes the pool `req` describes, or returns the existing one
    /// (`made` is false then). Idempotent; a pool whose making was cut
    /// short is taken down and made again.
    pub fn init(record_file: &Path, req: &PoolRequest) -> Result<(Pool, bool)> {
        if let Some(r) = PoolRecord::load(record_file)? {
            if r.ready {
                if let Some(dev) = &req.device {
                    if r.source
                        != (PoolSource::Device {
                            device: dev.clone(),
                        })
                    {
                        return Err(StorageError::Refused(format!(
                            "a storage pool already exists at {}; it stays (moving VEs to another pool is not supported)",
                            r.path.display()
                        )));
                    }
                }
                let pool = Pool { record: r };
                pool.ensure_mounted()?;
                return Ok((pool, false));
            }
            Pool { record: r }.take_down(record_file)?;
        }
        fs::create_dir_all(&req.path).map_err(io_err("create", &req.path))?;
        let source = match &req.device {
            Some(dev) => PoolSource::Device {
                device: dev.clone(),
            },
            None if clones(&req.path) => PoolSource::Dir,
            None => PoolSource::Loop {
                image: req.image.clone(),
                size: match req.size {
                    Some(s) => s,
                    None => default_size(&req.image)?,
                },
            },
        };
        let mut record = PoolRecord {
            path: req.path.clone(),
            source,
            ready: false,
        };
        // Recorded first: a crash from here on leaves a record that says
        // what to take down.
        record.save(record_file)?;
        let pool = Pool {
            record: record.clone(),
        };
        if let Err(e) = pool.make() {
            let _ = pool.take_down(record_file);
            return Err(e);
        }
        record.ready = true;
        record.save(record_file)?;
        Ok((Pool { record }, true))
    }

    fn make(&self) -> Result<()> {
        match &self.record.source {
            PoolSource::Dir => Ok(()),
            PoolSource::Loop { image, size } => {
                if *size < GIB {
                    return Err(StorageError::Refused(
                        "a pool needs at least 1G: give a larger --size".into(),
                    ));
                }
                let f = fs::OpenOptions::new()
                    .write(true)
                    .create_new(true)
                    .open(image)
                    .map_err(io_err("create", image))?;
                f.set_len(*size).map_err(io_err("size", image))?;
                drop(f);
                crate::tools::mkfs_xfs(image)?;
                self.ensure_mounted()
            }
            PoolSource::Device { device } => {
                refuse_used_device(device)?;
                crate::tools::mkfs_xfs(device)?;
                self.ensure_mounted()
            }
        }
    }

    /// Mounts the pool if it is not (after a reboot).
    pub fn ensure_mounted(&self) -> Result<()> {
        let path = &self.record.path;
        let attrs = MountAttrFlags::MOUNT_ATTR_NOSUID
            | MountAttrFlags::MOUNT_ATTR_NODEV
            | MountAttrFlags::MOUNT_ATTR_NOEXEC;
        match &self.record.source {
            PoolSource::Dir => Ok(()),
            PoolSource::Loop { image, .. } => {
                if is_mount_root(path) {
                    return Ok(());
                }
                // Two commands after a reboot: one mounts, the other waits
                // on the image's lock and then finds it mounted.
                let f = fs::File::open(image).map_err(io_err("open", image))?;
                rustix::fs::flock(f.as_fd(), rustix::fs::FlockOperation::LockExclusive)
                    .map_err(|e| io_err("lock", image)(e.into()))?;
                if is_mount_root(path) {
                    return Ok(());
                }
                mount_image(
                    &ImageMount {
                        image,
                        fstype: "xfs",
                        read_only: false,
                        // Space the VEs' disks free goes back to the host.
                        flags: &["discard"],
                        attrs,
                        remember: true,
                    },
                    path,
                )
            }
            PoolSource::Device { device } => {
                if is_mount_root(path) {
                    return Ok(());
                }
                mount_device(device, path, attrs)
            }
        }
    }

    /// Unmounts the pool and removes what Kennel made for it (the loop
    /// pool's image), then the record. The caller makes sure no VE is
    /// left in it.
    pub fn take_down(&self, record_file: &Path) -> Result<()> {
        if !matches!(self.record.source, PoolSource::Dir) {
            unmount(&self.record.path, false)?;
        }
        if let PoolSource::Loop { image, .. } = &self.record.source {
            let mut note = image.as_os_str().to_owned();
            note.push(".loop");
            let _ = fs::remove_file(std::path::PathBuf::from(note));
            match fs::remove_file(image) {
                Err(e) if e.kind() != std::io::ErrorKind::NotFound => {
                    return Err(io_err("remove", image)(e))
                }
                _ => {}
            }
        }
        if matches!(self.record.source, PoolSource::Dir) {
            // The empty disks new ones were cloned from (`volume/golden.rs`).
            let _ = fs::remove_dir_all(self.record.path.join(".golden"));
        }
        let _ = fs::remove_dir(&self.record.path);
        match fs::remove_file(record_file) {
            Err(e) if e.kind() != std::io::ErrorKind::NotFound => {
                Err(io_err("remove", record_file)(e))
            }
            _ => Ok(()),
        }
    }

    /// The pool's space, as its filesystem reports it.
    pub fn usage(&self) -> Result<PoolUsage> {
        let s = rustix::fs::statvfs(&self.record.path)
            .map_err(|e| io_err("statfs", &self.record.path)(e.into()))?;
        let size = s.f_blocks.saturating_mul(s.f_frsize);
        let free = s.f_bavail.saturating_mul(s.f_frsize);
        Ok(PoolUsage {
            size,
            used: size.saturating_sub(s.f_bfree.saturating_mul(s.f_frsize)),
            free,
        })
    }

    /// The directory of the volume `name` (a VE's uuid).
    pub fn volume_dir(&self, name: &str) -> PathBuf {
        self.record.path.join(name)
    }
}

/// Whether files in `dir` can be cloned (FICLONE).
fn clones(dir: &Path) -> bool {
    let a = dir.join(format!(".reflink-probe-{}", std::process::id()));
    let b = dir.join(format!(".reflink-probe-{}.clone", std::process::id()));
    let result = (|| -> std::io::Result<bool> {
        let src = fs::File::create(&a)?;
        std::io::Write::write_all(&mut &src, b"probe")?;
        let dst = fs::File::create(&b)?;
        Ok(rustix::fs::ioctl_ficlone(&dst, &src).is_ok())
    })();
    let _ = fs::remove_file(&a);
    let _ = fs::remove_file(&b);
    result.unwrap_or(false)
}

/// A fifth of the free space where `image` goes, 5-30 GiB.
fn default_size(image: &Path) -> Result<u64> {
    let dir = image.parent().unwrap_or(Path::new("/"));
    fs::create_dir_all(dir).map_err(io_err("create", dir))?;
    let s = rustix::fs::statvfs(dir).map_err(|e| io_err("statfs", dir)(e.into()))?;
    let free = s.f_bavail.saturating_mul(s.f_frsize);
    Ok((free / 5).clamp(5 * GIB, 30 * GIB) & !(GIB - 1))
}

/// Refuses a device that holds a filesystem or anything else that looks
/// like data: Kennel formats only empty devices.
fn refuse_used_device(device: &Path) -> Result<()> {
    use std::io::Read;
    let mut head = vec![0u8; 64 << 10];
    let mut f = fs::File::open(device).map_err(io_err("open", device))?;
    let n = f.read(&mut head).map_err(io_err("read", device))?;
    if head[..n].iter().any(|&b| b != 0) {
        return Err(StorageError::Refused(format!(
            "{} is not empty (it may hold a filesystem): wipe it first (`wipefs -a {}`) if its data may go",
            device.display(),
            device.display()
        )));
    }
    Ok(())
}

fn mount_device(device: &Path, target: &Path, attrs: MountAttrFlags) -> Result<()> {
    use rustix::mount::{fsconfig_set_flag, fsconfig_set_string};
    let fail = |e: rustix::io::Errno| io_err("mount", device)(e.into());
    let fs = crate::blockmount::open_fs("xfs").map_err(fail)?;
    fsconfig_set_string(fs.as_fd(), "source", device).map_err(fail)?;
    fsconfig_set_flag(fs.as_fd(), "discard").map_err(fail)?;
    crate::blockmount::create_and_attach(fs.as_fd(), attrs, target, "mount the pool at")?;
    rustix::mount::mount_change(target, rustix::mount::MountPropagationFlags::SHARED)
        .map_err(|e| io_err("share the mount at", target)(e.into()))
}

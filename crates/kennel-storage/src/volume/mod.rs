//! A VE's disk: one sparse ext4 image in the pool, mounted on a loop
//! device while the VE runs (in the VE's mount namespace only, see
//! [`Volume::mount_detached`]); the overlay's upper and work directories
//! live on it, over the shared template.
//!
//! Why an image per VE (docs/STORAGE.md has the figures):
//! * the limit is the filesystem's size, so it holds against anything
//!   root in the VE does, and `df`/`df -i` inside show the VE's own size
//!   and inodes with no help;
//! * it needs only loop devices and ext4, which every kernel has (this
//!   host has neither XFS nor ext4 project quotas);
//! * a snapshot or clone is one reflink of one file, a few milliseconds
//!   whatever the VE holds.
//!
//! The VE never sees a block device: it gets only the overlay. The image
//! is written by the kernel's ext4 alone, so its on-disk structures are
//! the kernel's, never the tenant's. A backup is never a raw image
//! (see [`crate::backup`]).
//!
//! Layout: `<pool>/<uuid>/disk.img`, `<pool>/<uuid>/snapshots/<name>/`.

mod golden;
mod reinstall;
mod resize;
pub mod shift;
pub mod snapshot;

use std::fs;
use std::os::fd::{AsFd, BorrowedFd, OwnedFd};
use std::path::{Path, PathBuf};

use rustix::mount::MountAttrFlags;

pub use resize::Grown;

use crate::blockmount::{
    mount_existing, mount_image, mount_image_detached, open_root, unmount, ImageMount,
};
use crate::error::{io_err, Result, StorageError};

/// A file in the volume's directory that says the image grew while the
/// VE ran but the kernel would not grow its filesystem online: the next
/// start does it, before mounting.
const GROW_PENDING: &str = "grow-pending";

/// The smallest disk: the ext4 journal and metadata need a few MiB.
pub const MIN_DISK: u64 = 32 << 20;

/// Work on a new disk's root, mounted.
pub type Prepare<'a> = &'a mut dyn FnMut(&Path) -> Result<()>;

/// A VE's disk.
#[derive(Debug, Clone)]
pub struct Volume {
    dir: PathBuf,
}

/// The size of a new disk.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct DiskSize {
    pub bytes: u64,
    pub inodes: u64,
}

impl DiskSize {
    pub fn validate(&self) -> Result<()> {
        if self.bytes < MIN_DISK {
            return Err(StorageError::Refused(format!(
                "a disk of {} bytes is too small: give at least 32M",
                self.bytes
            )));
        }
        if self.inodes < 1024 {
            return Err(StorageError::Refused(
                "a disk needs at least 1024 inodes (--disk-inodes)".into(),
            ));
        }
        Ok(())
    }
}

impl Volume {
    pub fn new(dir: impl Into<PathBuf>) -> Self {
        Volume { dir: dir.into() }
    }

    pub fn dir(&self) -> &Path {
        &self.dir
    }

    pub fn image(&self) -> PathBuf {
        self.dir.join("disk.img")
    }

    pub fn exists(&self) -> bool {
        self.image().is_file()
    }

    /// The image's size, which is the disk's.
    pub fn size(&self) -> Result<u64> {
        fs::metadata(self.image())
            .map(|m| m.len())
            .map_err(io_err("stat", self.image()))
    }

    /// Bytes the image takes in the pool.
    pub fn allocated(&self) -> u64 {
        use std::os::unix::fs::MetadataExt;
        fs::metadata(self.image())
            .map(|m| m.blocks() * 512)
            .unwrap_or(0)
    }

    /// Makes the volume: a clone of the pool's empty disk of `size` (see
    /// `golden.rs`), whose overlay `upper` and `work` directories are
    /// there already. `prepare`, if given, fills the upper (a shifted
    /// layer) on a mount of the new disk at `scratch`; without it no mount
    /// is needed. On failure the caller removes the directory.
    pub fn create(
        &self,
        size: DiskSize,
        owner: (u32, u32),
        scratch: &Path,
        prepare: Option<Prepare<'_>>,
    ) -> Result<()> {
        size.validate()?;
        let pool = self.dir.parent().unwrap_or(Path::new("/"));
        let golden = golden::golden(pool, size)?;
        fs::create_dir(&self.dir).map_err(io_err("create", &self.dir))?;
        let src = fs::File::open(&golden).map_err(io_err("open", &golden))?;
        let dst = fs::OpenOptions::new()
            .write(true)
            .create_new(true)
            .open(self.image())
            .map_err(io_err("create", self.image()))?;
        rustix::fs::ioctl_ficlone(&dst, &src).map_err(|e| io_err("clone", &golden)(e.into()))?;
        match prepare {
            None => Ok(()),
            Some(prepare) => self.with_mounted(&self.image(), scratch, &mut |root| {
                let dir = fs::File::open(root).map_err(io_err("open", root))?;
                give_upper(dir.as_fd(), &self.image(), owner)?;
                prepare(root)
            }),
        }
    }

    /// A sparse image at `path` with a fresh ext4 of `size` and the
    /// overlay's two directories, made by `mkfs` from a skeleton.
    pub(crate) fn make_image(&self, path: &Path, size: DiskSize, owner: (u32, u32)) -> Result<()> {
        let f = fs::OpenOptions::new()
            .write(true)
            .create_new(true)
            .open(path)
            .map_err(io_err("create", path))?;
        f.set_len(size.bytes).map_err(io_err("size", path))?;
        drop(f);
        let skel = self.dir.join(format!(".skel-{}", std::process::id()));
        let made = (|| {
            fs::create_dir(&skel).map_err(io_err("create", &skel))?;
            crate::layers::VeLayers::new(&skel).create(owner)?;
            crate::tools::mkfs_ext4(path, size.inodes, Some(&skel))
        })();
        let _ = fs::remove_dir_all(&skel);
        made
    }

    /// Mounts `image` at `scratch`, runs `work` on it, unmounts.
    pub(crate) fn with_mounted(
        &self,
        image: &Path,
        scratch: &Path,
        work: &mut dyn FnMut(&Path) -> Result<()>,
    ) -> Result<()> {
        fs::create_dir_all(scratch).map_err(io_err("create", scratch))?;
        mount_image(&ext4(image, false), scratch)?;
        let result = work(scratch);
        let unmounted = unmount(scratch, false);
        let _ = fs::remove_dir(scratch);
        result.and(unmounted)
    }

    /// Mounts the disk for a start of the VE whose root is `owner`, after
    /// finishing a grow the kernel refused online. The mount is detached,
    /// in no namespace: the VE's setup attaches it in the VE's own, so a
    /// running VE's disk never is in the host's mount table (each start
    /// copies that table, and each mount in it would make every later
    /// start dearer). It goes with the VE's namespace.
    pub fn mount_detached(&self, owner: (u32, u32)) -> Result<OwnedFd> {
        self.sweep();
        self.finish_pending_grow()?;
        let image = self.image();
        let mnt = mount_image_detached(&ImageMount {
            remember: true,
            ..ext4(&image, false)
        })?;
        give_upper(mnt.as_fd(), &image, owner)?;
        Ok(mnt)
    }

    /// The running VE's disk: a new mount of the filesystem its start
    /// mounted (the kernel's one instance, through the loop device that
    /// backs the image), opened at its root for work on the filesystem.
    /// Fails when the disk is not mounted.
    pub fn open_running(&self) -> Result<OwnedFd> {
        let image = self.image();
        let mnt = mount_existing(&ImageMount {
            remember: true,
            ..ext4(&image, false)
        })?
        .ok_or_else(|| {
            StorageError::Layer(format!(
                "the disk {} is not mounted (its VE is not running)",
                image.display()
            ))
        })?;
        open_root(mnt.as_fd(), &image)
    }

    /// The loop device that still backs the image, if any: while it
    /// does, the kernel has the disk's ext4, even with the VE stopped
    /// (something on the host may hold the VE's files: a shell whose
    /// directory is in `/proc/PID/root`, an `nsenter`, a backup agent).
    /// Every loop device is looked at, not only the one Kennel remembers.
    pub(crate) fn backing_loop(&self) -> Option<String> {
        let image = self.image();
        let rd = fs::read_dir("/sys/block").ok()?;
        rd.flatten().find_map(|e| {
            let name = e.file_name().to_string_lossy().into_owned();
            if !name.starts_with("loop") {
                return None;
            }
            let file = fs::read_to_string(e.path().join("loop/backing_file")).ok()?;
            (Path::new(file.trim_end_matches('\n')) == image).then(|| format!("/dev/{name}"))
        })
    }

    /// Refuses work on the image itself (`what`: fsck, resize, a copy)
    /// while the kernel still has its filesystem: two writers would
    /// corrupt it. A stop that just ended lets its loop device go within
    /// moments; that much is waited for.
    pub(crate) fn refuse_if_in_use(&self, what: &str) -> Result<()> {
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(2);
        loop {
            let Some(dev) = self.backing_loop() else {
                return Ok(());
            };
            if std::time::Instant::now() >= deadline {
                return Err(StorageError::InUse(format!(
                    "cannot {what}: the disk {} is still in use by the kernel ({dev} backs it) although its VE is stopped; a process on the host holds the VE's files (a shell or program whose directory is in /proc/PID/root of the VE, an nsenter, a backup agent): end it and retry",
                    self.image().display()
                )));
            }
            std::thread::sleep(std::time::Duration::from_millis(50));
        }
    }

    /// Unmounts a disk an earlier Kennel mounted at `at` in the host's
    /// namespace (a VE started before an upgrade). Detached: a VE's dying
    /// namespace may hold it a moment longer, and the loop device goes
    /// with its last user.
    pub fn unmount(at: &Path) -> Result<()> {
        unmount(at, true)
    }

    /// Removes the volume and its snapshots. The files in it are Kennel's
    /// (images and records, never a VE's tree), so a plain recursive
    /// removal is safe.
    pub fn destroy(&self) -> Result<()> {
        match fs::remove_dir_all(&self.dir) {
            Err(e) if e.kind() != std::io::ErrorKind::NotFound => {
                Err(io_err("remove", &self.dir)(e))
            }
            _ => Ok(()),
        }
    }

    fn grow_pending(&self) -> PathBuf {
        self.dir.join(GROW_PENDING)
    }
}

/// Gives a fresh disk's `upper` (owned by the host's root, see
/// `golden.rs`) to the VE's root `owner`; leaves any other owner alone.
/// `root` is the disk's root, mounted by Kennel (the VE not yet running).
fn give_upper(root: BorrowedFd<'_>, image: &Path, owner: (u32, u32)) -> Result<()> {
    use rustix::fs::{Gid, Mode, OFlags, Uid};
    let fd = rustix::fs::openat(
        root,
        "upper",
        OFlags::RDONLY | OFlags::DIRECTORY | OFlags::NOFOLLOW | OFlags::CLOEXEC,
        Mode::empty(),
    )
    .map_err(|e| io_err("open the disk's upper directory of", image)(e.into()))?;
    let st = rustix::fs::fstat(&fd)
        .map_err(|e| io_err("stat the disk's upper directory of", image)(e.into()))?;
    if (st.st_uid, st.st_gid) == (0, 0) {
        rustix::fs::fchown(
            &fd,
            Some(Uid::from_raw(owner.0)),
            Some(Gid::from_raw(owner.1)),
        )
        .map_err(|e| io_err("chown the disk's upper directory of", image)(e.into()))?;
    }
    Ok(())
}

/// How Kennel mounts a VE's ext4: never a device node or a set-user-id
/// program from it on the host's side (the VE sees it only through its
/// overlay, whose own flags apply there).
pub(crate) fn ext4<'a>(image: &'a Path, read_only: bool) -> ImageMount<'a> {
    ImageMount {
        image,
        fstype: "ext4",
        read_only,
        // A sparse image reads zeros where nothing was written: its inode
        // tables need no zeroing (which would fill the image), and freed
        // blocks go back to the pool as holes. Nor are its block bitmaps
        // read ahead at mount by the kernel's lazy-init thread: with a
        // thousand VEs starting that was a fifth of their disks' mount
        // cost, for allocations an idle VE never makes.
        flags: if read_only {
            &["noload"]
        } else {
            &["noinit_itable", "no_prefetch_block_bitmaps", "discard"]
        },
        attrs: MountAttrFlags::MOUNT_ATTR_NODEV | MountAttrFlags::MOUNT_ATTR_NOSUID,
        remember: false,
    }
}

impl Volume {
    /// Mounts the disk at `scratch`, runs `work` on its root, unmounts.
    pub fn mount_at_scratch(
        &self,
        scratch: &Path,
        work: &mut dyn FnMut(&Path) -> Result<()>,
    ) -> Result<()> {
        self.with_mounted(&self.image(), scratch, work)
    }
}

//! Snapshots of a VE's disk: reflink copies of its image.
//!
//! A snapshot of a running VE must be of one moment. The order:
//! 1. `syncfs` while the VE runs, so that little is left to write later;
//! 2. the caller freezes the VE's cgroup (no process of it runs);
//! 3. `FIFREEZE` the VE's ext4: the rest of its dirty data and journal
//!    reach the image and writes stop;
//! 4. `FICLONE` the image: the copy shares every block, a few ms;
//! 5. `FITHAW`, then the caller thaws the cgroup.
//!
//! The VE is frozen for steps 3-4 only ([`Taken::frozen`]). Every step
//! after 2 thaws on failure. A snapshot is built under a temporary name
//! and renamed into place, so a crash leaves no half-made snapshot under
//! its name ([`crate::staging::sweep`] removes the leftovers).

use std::fs;
use std::os::fd::AsFd;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use serde::{Deserialize, Serialize};

use super::Volume;
use crate::error::{io_err, Result, StorageError};

/// A snapshot's record, `meta.json` beside its image.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct SnapshotMeta {
    pub name: String,
    /// RFC 3339.
    pub created: String,
    /// How long the VE was frozen, if it ran.
    #[serde(default)]
    pub frozen_ms: Option<f64>,
    /// The disk's size then.
    pub size: u64,
    /// The VE's configuration then.
    pub ve_conf: String,
}

/// What taking a snapshot did.
#[derive(Debug, Clone, Copy)]
pub struct Taken {
    pub frozen: Option<Duration>,
    pub total: Duration,
}

/// A running VE's side of a snapshot: its freezer (its disk is reached
/// with [`Volume::open_running`]).
pub struct Running<'a> {
    /// Freezes (`true`) or thaws (`false`) every process of the VE.
    pub freeze: &'a mut dyn FnMut(bool) -> Result<()>,
}

impl std::fmt::Debug for Running<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Running").finish_non_exhaustive()
    }
}

/// Checks a snapshot name: it becomes a directory name.
pub fn validate_name(name: &str) -> Result<()> {
    let ok = !name.is_empty()
        && name.len() <= 64
        && name
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"._-".contains(&b))
        && name.as_bytes()[0].is_ascii_alphanumeric();
    if ok {
        Ok(())
    } else {
        Err(StorageError::Refused(format!(
            "invalid snapshot name '{}': use 1-64 characters a-z, A-Z, 0-9, '.', '_' or '-', starting with a letter or digit",
            crate::shown::shown(name.as_bytes())
        )))
    }
}

impl Volume {
    pub fn snapshots_dir(&self) -> PathBuf {
        self.dir.join("snapshots")
    }

    pub fn snapshot_dir(&self, name: &str) -> PathBuf {
        self.snapshots_dir().join(name)
    }

    pub fn snapshot_image(&self, name: &str) -> PathBuf {
        self.snapshot_dir(name).join("disk.img")
    }

    /// Takes snapshot `name` of the disk; `running` if the VE runs.
    pub fn snapshot(
        &self,
        name: &str,
        ve_conf: &str,
        running: Option<Running<'_>>,
    ) -> Result<(SnapshotMeta, Taken)> {
        validate_name(name)?;
        let dir = self.snapshots_dir();
        fs::create_dir_all(&dir).map_err(io_err("create", &dir))?;
        crate::staging::sweep(&dir);
        let dest = self.snapshot_dir(name);
        if dest.exists() {
            return Err(StorageError::Refused(format!(
                "the VE already has a snapshot '{name}': delete it first or choose another name"
            )));
        }
        let building = crate::staging::building(&dir, name);
        fs::create_dir(&building).map_err(io_err("create", &building))?;
        let made = self.snapshot_into(&building, name, ve_conf, running);
        let result = made.and_then(|(meta, taken)| {
            fs::rename(&building, &dest).map_err(io_err("rename", &building))?;
            Ok((meta, taken))
        });
        if result.is_err() {
            let _ = fs::remove_dir_all(&building);
        }
        result
    }

    fn snapshot_into(
        &self,
        building: &Path,
        name: &str,
        ve_conf: &str,
        running: Option<Running<'_>>,
    ) -> Result<(SnapshotMeta, Taken)> {
        let start = Instant::now();
        let size = self.size()?;
        let frozen = self.clone_image_to(&building.join("disk.img"), running)?;
        let meta = SnapshotMeta {
            name: name.to_string(),
            created: humantime::format_rfc3339_seconds(std::time::SystemTime::now()).to_string(),
            frozen_ms: frozen.map(|d| d.as_secs_f64() * 1000.0),
            size,
            ve_conf: ve_conf.to_string(),
        };
        let text = serde_json::to_string_pretty(&meta)
            .map_err(|e| StorageError::Layer(format!("encode the snapshot record: {e}")))?;
        let file = building.join("meta.json");
        fs::write(&file, text).map_err(io_err("write", &file))?;
        Ok((
            meta,
            Taken {
                frozen,
                total: start.elapsed(),
            },
        ))
    }

    /// Clones the disk image to `dest` (a new file), consistently if the
    /// VE runs; returns how long it was frozen.
    pub fn clone_image_to(
        &self,
        dest: &Path,
        running: Option<Running<'_>>,
    ) -> Result<Option<Duration>> {
        if running.is_none() {
            self.refuse_if_in_use("copy the disk of a stopped VE")?;
        }
        let src = fs::File::open(self.image()).map_err(io_err("open", self.image()))?;
        let dst = fs::OpenOptions::new()
            .write(true)
            .create_new(true)
            .open(dest)
            .map_err(io_err("create", dest))?;
        let clone = || -> Result<()> {
            rustix::fs::ioctl_ficlone(&dst, &src).map_err(|e| {
                StorageError::Layer(format!(
                    "cannot clone {} ({}): the pool's filesystem must have reflinks (XFS or btrfs; `kennel storage init` makes one)",
                    self.image().display(),
                    std::io::Error::from(e)
                ))
            })
        };
        let frozen = match running {
            None => {
                clone()?;
                None
            }
            Some(r) => {
                let root = self.open_running()?;
                Some(frozen_while(root, &self.image(), r, clone)?)
            }
        };
        dst.sync_all().map_err(io_err("sync", dest))?;
        Ok(frozen)
    }

    /// The snapshots, oldest first.
    pub fn snapshots(&self) -> Result<Vec<SnapshotMeta>> {
        let dir = self.snapshots_dir();
        let rd = match fs::read_dir(&dir) {
            Ok(rd) => rd,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(Vec::new()),
            Err(e) => return Err(io_err("read", &dir)(e)),
        };
        let mut out = Vec::new();
        for e in rd.flatten() {
            let name = e.file_name().to_string_lossy().into_owned();
            if name.starts_with('.') {
                continue;
            }
            out.push(self.snapshot_meta(&name)?);
        }
        out.sort_by(|a, b| a.created.cmp(&b.created).then(a.name.cmp(&b.name)));
        Ok(out)
    }

    pub fn snapshot_meta(&self, name: &str) -> Result<SnapshotMeta> {
        validate_name(name)?;
        let file = self.snapshot_dir(name).join("meta.json");
        let text = fs::read_to_string(&file).map_err(|e| {
            if e.kind() == std::io::ErrorKind::NotFound {
                StorageError::Refused(format!(
                    "the VE has no snapshot '{name}' (see `kennel snapshot list`)"
                ))
            } else {
                io_err("read", &file)(e)
            }
        })?;
        serde_json::from_str(&text).map_err(|e| {
            StorageError::Layer(format!(
                "the snapshot record {} is unreadable: {e}",
                file.display()
            ))
        })
    }

    /// Deletes snapshot `name`.
    pub fn delete_snapshot(&self, name: &str) -> Result<()> {
        self.snapshot_meta(name)?;
        let dir = self.snapshots_dir();
        let trash = crate::staging::deleting(&dir, name);
        fs::rename(self.snapshot_dir(name), &trash).map_err(io_err("rename", &trash))?;
        fs::remove_dir_all(&trash).map_err(io_err("remove", &trash))
    }

    /// Makes the disk what snapshot `name` holds; the VE is stopped. The
    /// snapshot stays. Returns its record.
    pub fn rollback(&self, name: &str) -> Result<SnapshotMeta> {
        let meta = self.snapshot_meta(name)?;
        self.sweep();
        let tmp = self
            .dir
            .join(format!(".disk.img.rollback-{}", std::process::id()));
        let _ = fs::remove_file(&tmp);
        let src = fs::File::open(self.snapshot_image(name))
            .map_err(io_err("open", self.snapshot_image(name)))?;
        let dst = fs::OpenOptions::new()
            .write(true)
            .create_new(true)
            .open(&tmp)
            .map_err(io_err("create", &tmp))?;
        let done = rustix::fs::ioctl_ficlone(&dst, &src)
            .map_err(|e| io_err("clone", &tmp)(e.into()))
            .and_then(|()| dst.sync_all().map_err(io_err("sync", &tmp)))
            // The one step that changes the VE: atomic.
            .and_then(|()| fs::rename(&tmp, self.image()).map_err(io_err("rename", &tmp)));
        if done.is_err() {
            let _ = fs::remove_file(&tmp);
        }
        done?;
        let _ = fs::remove_file(self.grow_pending());
        Ok(meta)
    }

    /// Mounts snapshot `name`'s filesystem read-only at `at`.
    pub fn mount_snapshot(&self, name: &str, at: &Path) -> Result<()> {
        self.snapshot_meta(name)?;
        fs::create_dir_all(at).map_err(io_err("create", at))?;
        let image = self.snapshot_image(name);
        crate::blockmount::mount_image(&super::ext4(&image, true), at)
    }
}

/// Runs `clone` with the VE and its filesystem frozen; thaws whatever
/// happens and returns how long that took.
fn frozen_while(
    root: rustix::fd::OwnedFd,
    image: &Path,
    r: Running<'_>,
    clone: impl FnOnce() -> Result<()>,
) -> Result<Duration> {
    // Most dirty data goes now, while the VE still runs.
    rustix::fs::syncfs(&root).map_err(|e| io_err("sync the filesystem of", image)(e.into()))?;
    (r.freeze)(true)?;
    let start = Instant::now();
    let result = kennel_sys::blockdev::fs_freeze(root.as_fd())
        .map_err(io_err("freeze the filesystem of", image))
        .and_then(|()| {
            let cloned = clone();
            let thawed = kennel_sys::blockdev::fs_thaw(root.as_fd())
                .map_err(io_err("thaw the filesystem of", image));
            cloned.and(thawed)
        });
    let frozen = start.elapsed();
    let thawed = (r.freeze)(false);
    result.and(thawed).map(|()| frozen)
}

impl Volume {
    /// Thaws the disk if a command died with it frozen. A frozen
    /// filesystem outlives its last mount, so this works after its VE has
    /// stopped too.
    pub fn thaw_leftover(&self) {
        if let Ok(root) = self.open_running() {
            // EINVAL when it is not frozen: nothing to do.
            let _ = kennel_sys::blockdev::fs_thaw(root.as_fd());
        }
    }
}

impl Volume {
    /// A copy of the disk taken now (consistently, if `running`), for
    /// [`Volume::read_copy`]; and how long the VE was frozen.
    pub fn take_copy(&self, running: Option<Running<'_>>) -> Result<(DiskCopy, Option<Duration>)> {
        self.sweep();
        let path = self
            .dir
            .join(format!(".disk.img.copy-{}", std::process::id()));
        let _ = fs::remove_file(&path);
        let copy = DiskCopy { path };
        let frozen = self.clone_image_to(&copy.path, running)?;
        Ok((copy, frozen))
    }

    /// Runs `work` on a read-only mount (at `scratch`) of `copy`; the copy
    /// goes after. Needs no lock on the VE: nothing but this reads it.
    pub fn read_copy(
        &self,
        copy: DiskCopy,
        scratch: &Path,
        work: &mut dyn FnMut(&Path) -> Result<()>,
    ) -> Result<()> {
        fs::create_dir_all(scratch).map_err(io_err("create", scratch))?;
        crate::blockmount::mount_image(&super::ext4(&copy.path, true), scratch)?;
        let done = work(scratch);
        let unmounted = crate::blockmount::unmount(scratch, false);
        let _ = fs::remove_dir(scratch);
        done.and(unmounted)
    }

    /// [`Volume::take_copy`] then [`Volume::read_copy`].
    pub fn with_copy(
        &self,
        running: Option<Running<'_>>,
        scratch: &Path,
        work: &mut dyn FnMut(&Path) -> Result<()>,
    ) -> Result<Option<Duration>> {
        let (copy, frozen) = self.take_copy(running)?;
        self.read_copy(copy, scratch, work).map(|()| frozen)
    }
}

/// A reflink copy of a disk, removed when dropped (a crash leaves it to
/// [`Volume::sweep`]).
#[derive(Debug)]
pub struct DiskCopy {
    path: PathBuf,
}

impl Drop for DiskCopy {
    fn drop(&mut self) {
        let _ = fs::remove_file(&self.path);
    }
}

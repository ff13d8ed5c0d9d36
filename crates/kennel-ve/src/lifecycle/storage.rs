//! The storage pool and each VE's disk, as the other commands use them:
//! where a VE's layer is, mounting its disk for a start and unmounting it
//! at the teardown. `kennel-storage` owns the pool and the disks
//! (`pool`, `volume`); this file only says which VE has which.

use std::os::fd::OwnedFd;
use std::path::PathBuf;

use kennel_storage::pool::{Pool, PoolRequest};
use kennel_storage::volume::{DiskSize, Volume};

use super::Kennel;
use crate::config::{Backend, VeConfig};
use crate::error::{io, Result, VeError};
use crate::host_config::{BYTES_PER_INODE, DEFAULT_DISK};
use crate::id::VeId;
use crate::units::Size;

impl Kennel {
    /// The backend new VEs get.
    pub(crate) fn default_backend(&self) -> Result<Backend> {
        match self.host.storage.backend.as_deref() {
            Some(b) => Backend::parse(b),
            None => Ok(Backend::Image),
        }
    }

    fn pool_request(&self, size: Option<u64>, device: Option<PathBuf>) -> PoolRequest {
        PoolRequest {
            path: self
                .host
                .storage
                .pool
                .clone()
                .unwrap_or_else(|| self.paths.default_pool()),
            image: self.paths.pool_image(),
            size: size.or(self.host.storage.pool_size.map(Size::bytes)),
            device,
        }
    }

    /// `kennel storage init`: makes the pool, or finds it made (`false`).
    pub fn storage_init(&self, size: Option<u64>, device: Option<PathBuf>) -> Result<(Pool, bool)> {
        let _host = self.lock_host()?;
        Ok(Pool::init(
            &self.paths.storage_record(),
            &self.pool_request(size, device),
        )?)
    }

    /// The pool, mounted; made with the defaults if there is none yet (a
    /// default that needs no setup).
    pub(crate) fn pool(&self) -> Result<Pool> {
        if let Some(p) = Pool::open(&self.paths.storage_record())? {
            return Ok(p);
        }
        Ok(Pool::init(&self.paths.storage_record(), &self.pool_request(None, None))?.0)
    }

    /// `kennel storage remove`: takes the pool down, if no VE has a disk
    /// in it; returns where it was.
    pub fn storage_remove(&self) -> Result<Option<PathBuf>> {
        let _host = self.lock_host()?;
        let Some(record) = kennel_storage::pool::PoolRecord::load(&self.paths.storage_record())?
        else {
            return Ok(None);
        };
        let users: Vec<String> = self
            .ids()?
            .into_iter()
            .filter(|id| {
                self.config(id)
                    .map_or(true, |c| c.storage.backend == Backend::Image)
            })
            .map(|id| id.to_string())
            .collect();
        if !users.is_empty() {
            return Err(VeError::BadInput(format!(
                "the storage pool holds the disks of VE {}: destroy them first",
                users.join(", ")
            )));
        }
        let path = record.path.clone();
        Pool { record }.take_down(&self.paths.storage_record())?;
        Ok(Some(path))
    }

    /// The pool an existing VE's disk is in, mounted; an error if it is
    /// gone (never a new, empty one).
    pub(crate) fn require_pool(&self) -> Result<Pool> {
        self.existing_pool()?.ok_or_else(|| {
            VeError::BadInput(format!(
                "the storage pool is gone ({} is missing): restore it, or the VEs from backups",
                self.paths.storage_record().display()
            ))
        })
    }

    /// The pool, if one was made (`kennel storage`).
    pub fn existing_pool(&self) -> Result<Option<Pool>> {
        Ok(Pool::open(&self.paths.storage_record())?)
    }

    /// The disk of VE `cfg`, if it has one (the `image` backend).
    pub(crate) fn volume_of(&self, cfg: &VeConfig) -> Option<Volume> {
        if cfg.storage.backend != Backend::Image {
            return None;
        }
        let pool = cfg
            .storage
            .pool
            .clone()
            .unwrap_or_else(|| self.paths.default_pool());
        Some(Volume::new(pool.join(&cfg.uuid)))
    }

    /// The disk of VE `cfg`, or a clear error for a VE without one.
    pub(crate) fn require_volume(&self, cfg: &VeConfig, what: &str) -> Result<Volume> {
        self.volume_of(cfg).ok_or_else(|| {
            VeError::BadInput(format!(
                "VE {} keeps its files in a directory (storage backend `dir`), which has no {what}: only VEs with a disk of their own (backend `image`, the default) do",
                cfg.id
            ))
        })
    }

    /// Where VE `cfg`'s overlay upper and work directories are while it
    /// runs: on its mounted disk, or in its directory.
    pub(crate) fn layers_dir(&self, cfg: &VeConfig) -> PathBuf {
        match cfg.storage.backend {
            Backend::Image => self.paths.ve_disk(&cfg.id),
            Backend::Dir => self.paths.ve_layers(&cfg.id),
        }
    }

    /// Mounts VE `cfg`'s disk for a start, detached (see
    /// `Volume::mount_detached`); `None` for `dir`.
    pub(crate) fn mount_disk(&self, cfg: &VeConfig) -> Result<Option<OwnedFd>> {
        let Some(vol) = self.volume_of(cfg) else {
            return Ok(None);
        };
        // After a host reboot, the first start mounts the pool again.
        if self.existing_pool()?.is_none() {
            return Err(VeError::BadInput(format!(
                "VE {}'s disk is in a storage pool that is gone ({} is missing): restore the pool, or the VE from a backup",
                cfg.id,
                self.paths.storage_record().display()
            )));
        }
        if !vol.exists() {
            return Err(VeError::BadInput(format!(
                "VE {}'s disk {} is missing: restore it from a backup (`kennel restore`)",
                cfg.id,
                vol.image().display()
            )));
        }
        let at = self.paths.ve_disk(&cfg.id);
        // Mounted in the host's namespace by a Kennel before this one.
        Volume::unmount(&at)?;
        // Where the VE's setup attaches it, in the VE's namespace.
        std::fs::create_dir_all(&at).map_err(io(format!("create {}", at.display())))?;
        Ok(Some(vol.mount_detached((
            cfg.idmap.uid_base,
            cfg.idmap.gid_base,
        ))?))
    }

    /// The teardown's part for VE `id`'s disk. The disk itself goes with
    /// the VE's mount namespace; left to do: a freeze a dead snapshot
    /// left, and a disk an earlier Kennel mounted in the host's namespace.
    pub(crate) fn unmount_disk(&self, id: &VeId) -> Result<()> {
        let at = self.paths.ve_disk(id);
        // Only after a snapshot that died with the disk frozen: no work on
        // an ordinary stop.
        if self.paths.ve_run(id).join(super::FREEZING_FILE).exists() {
            self.thaw_disk(id);
        }
        Volume::unmount(&at)?;
        let _ = std::fs::remove_dir(&at);
        Ok(())
    }
}

impl Kennel {
    /// Removes what crashed creates and destroys left in the staging
    /// directory, with the disks their configurations name.
    pub(crate) fn sweep_ves(&self) {
        self.sweep_scratch();
        self.sweep_dir(&self.staging_dir());
    }

    /// Removes the leftovers of crashed builds and deletions in `dir`.
    pub(crate) fn sweep_dir(&self, dir: &std::path::Path) {
        kennel_storage::staging::sweep_with(dir, &|dir| {
            let Ok(text) = std::fs::read_to_string(dir.join("ve.conf")) else {
                return;
            };
            if let Ok(cfg) = toml::from_str::<VeConfig>(&text) {
                if let Some(vol) = self.volume_of(&cfg) {
                    // Only a disk no finished VE uses: a crashed clone
                    // or restore copies a config, never a uuid in use.
                    if !self.uuid_in_use(&cfg.uuid, dir) {
                        let _ = vol.destroy();
                    }
                }
            }
        });
    }

    /// Unmounts and removes the scratch mount points of commands that
    /// died (a restore's new disk, a backup's copy), so that no loop
    /// device or pool space stays held by them.
    pub(crate) fn sweep_scratch(&self) {
        let dir = self.paths.run.join("scratch");
        let Ok(rd) = std::fs::read_dir(&dir) else {
            return;
        };
        for e in rd.flatten() {
            let name = e.file_name().to_string_lossy().into_owned();
            let pid = name
                .rsplit_once('-')
                .and_then(|(_, p)| p.parse::<u32>().ok());
            if let Some(pid) = pid {
                if !std::path::Path::new(&format!("/proc/{pid}")).exists() {
                    let _ = Volume::unmount(&e.path());
                    let _ = std::fs::remove_dir(e.path());
                }
            }
        }
    }

    /// Whether a VE other than the one in `except` has `uuid`: the VE
    /// its claim names, if it still has it; every VE without an index.
    /// Host lock held.
    fn uuid_in_use(&self, uuid: &str, except: &std::path::Path) -> bool {
        let by = |id: &VeId| {
            self.paths.ve_dir(id) != except
                && match self.config(id) {
                    Ok(c) => c.uuid == uuid,
                    // A crashed build's claim: no VE has the disk.
                    Err(VeError::NoSuchVe(_)) => false,
                    // Unreadable: it might be its disk; kept.
                    Err(_) => true,
                }
        };
        if uuid::Uuid::parse_str(uuid).is_err() {
            // Not a disk Kennel named: never removed by a sweep.
            return true;
        }
        match self.existing_claims() {
            Ok(Some(claims)) => claims.holder_of_uuid(uuid).is_some_and(|id| by(&id)),
            _ => self.ids().map_or(true, |ids| ids.iter().any(by)),
        }
    }
}

impl Kennel {
    /// Thaws VE `id`'s disk if a snapshot left it frozen.
    pub(crate) fn thaw_disk(&self, id: &VeId) {
        if let Ok(cfg) = self.config(id) {
            if let Some(vol) = self.volume_of(&cfg) {
                vol.thaw_leftover();
            }
        }
    }
}

/// The disk a new VE gets: what `create` asks, else the host's `[storage]`
/// settings, else 10G with one inode per 16K.
pub(crate) fn disk_size(
    host: &crate::host_config::HostStorage,
    disk: Option<Size>,
    inodes: Option<u64>,
) -> Result<DiskSize> {
    let bytes = disk.or(host.disk).map_or(DEFAULT_DISK, Size::bytes);
    let inodes = inodes
        .or(if disk.is_some() {
            None
        } else {
            host.disk_inodes
        })
        .unwrap_or(bytes / BYTES_PER_INODE);
    let size = DiskSize { bytes, inodes };
    size.validate()?;
    Ok(size)
}

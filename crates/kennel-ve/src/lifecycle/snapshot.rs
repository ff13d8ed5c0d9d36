//! `kennel snapshot`: create, list, roll back to, mount and delete
//! snapshots of a VE's disk (`kennel_storage::volume::snapshot` takes
//! them; this file freezes the VE around it and keeps the VE's state).

use std::fs;
use std::os::unix::ffi::OsStringExt;
use std::path::{Path, PathBuf};
use std::time::Duration;

use kennel_storage::volume::snapshot::{Running, SnapshotMeta, Taken};
use kennel_storage::volume::Volume;

use super::status::VeState;
use super::{Kennel, FREEZING_FILE};
use crate::config::VeConfig;
use crate::error::{io, Result, VeError};
use crate::id::VeId;

/// The longest a VE may take to freeze before the snapshot gives up.
const FREEZE_TIMEOUT: Duration = Duration::from_secs(5);

impl Kennel {
    /// Takes snapshot `name` of VE `id`, running or not.
    pub fn snapshot_create(&self, id: &VeId, name: &str) -> Result<(SnapshotMeta, Taken)> {
        let (_lock, cfg) = self.lock_config(id)?;
        let vol = self.require_volume(&cfg, "snapshots")?;
        self.require_pool()?;
        self.sweep_scratch();
        let conf = cfg.to_toml()?;
        let running = self.settle(id)? != VeState::Stopped;
        if !running {
            return Ok(vol.snapshot(name, &conf, None)?);
        }
        self.with_frozen_disk(&cfg, |r| Ok(vol.snapshot(name, &conf, Some(r))?))
    }

    /// Runs `take` with the running VE `cfg`'s freezer and disk, leaving
    /// a marker while the VE may be frozen (a crash in between is undone
    /// by the next command, see `repair_freeze`).
    pub(crate) fn with_frozen_disk<T>(
        &self,
        cfg: &VeConfig,
        take: impl FnOnce(Running<'_>) -> Result<T>,
    ) -> Result<T> {
        let id = &cfg.id;
        let host = self.cgroups()?;
        let cg = self.ve_cgroup(id)?.cgroup(host);
        let marker = self.paths.ve_run(id).join(FREEZING_FILE);
        fs::write(&marker, std::process::id().to_string())
            .map_err(io(format!("write {}", marker.display())))?;
        let mut freeze = |on: bool| -> kennel_storage::Result<()> {
            cg.freeze(on, FREEZE_TIMEOUT)
                .map_err(|e| kennel_storage::StorageError::Layer(e.to_string()))
        };
        let result = take(Running {
            freeze: &mut freeze,
        });
        let _ = fs::remove_file(&marker);
        result
    }

    /// VE `id`'s snapshots, oldest first.
    pub fn snapshot_list(&self, id: &VeId) -> Result<Vec<SnapshotMeta>> {
        let cfg = self.config(id)?;
        let vol = self.require_volume(&cfg, "snapshots")?;
        self.require_pool()?;
        Ok(vol.snapshots()?)
    }

    /// Makes VE `id`'s disk what snapshot `name` holds. A running VE is
    /// stopped first and started again after.
    pub fn snapshot_rollback(&self, id: &VeId, name: &str, timeout: Duration) -> Result<bool> {
        let (_lock, mut cfg) = self.lock_config(id)?;
        let vol = self.require_volume(&cfg, "snapshots")?;
        self.require_pool()?;
        // Checked before the VE stops: a wrong name stops nothing.
        vol.snapshot_meta(name)?;
        self.refuse_mounted_snapshots(id, None)?;
        let was_running = self.settle(id)? != VeState::Stopped;
        if was_running {
            self.stop_locked(id, cfg.init.kind, Some(timeout))?;
        }
        let meta = vol.rollback(name)?;
        // The disk is the snapshot's, its size too.
        if cfg.storage.disk.map(|d| d.bytes()) != Some(meta.size) {
            cfg.storage.disk = Some(crate::units::Size(meta.size));
            cfg.save(&self.paths.ve_config(id))?;
        }
        if was_running {
            self.start_locked(&cfg)?;
        }
        Ok(was_running)
    }

    /// Deletes snapshot `name` of VE `id`.
    pub fn snapshot_delete(&self, id: &VeId, name: &str) -> Result<()> {
        let (_lock, cfg) = self.lock_config(id)?;
        let vol = self.require_volume(&cfg, "snapshots")?;
        self.require_pool()?;
        self.refuse_mounted_snapshots(id, Some(name))?;
        Ok(vol.delete_snapshot(name)?)
    }

    /// Mounts snapshot `name` of VE `id` read-only at `target`: the VE's
    /// whole tree as it was (its template below its layer then).
    pub fn snapshot_mount(&self, id: &VeId, name: &str, target: &Path) -> Result<()> {
        let (_lock, cfg) = self.lock_config(id)?;
        let vol = self.require_volume(&cfg, "snapshots")?;
        self.require_pool()?;
        vol.snapshot_meta(name)?;
        let target = empty_dir(target)?;
        let place = self.snapshot_mount_dir(id, name);
        if place.join("target").exists() {
            return Err(VeError::BadInput(format!(
                "snapshot '{name}' of VE {id} is already mounted: `kennel snapshot umount {id} {name}` first"
            )));
        }
        let template =
            kennel_storage::template::Store::new(self.paths.templates()).get(&cfg.template)?;
        let disk = place.join("disk");
        fs::create_dir_all(&disk).map_err(io(format!("create {}", disk.display())))?;
        vol.mount_snapshot(name, &disk)?;
        let mounted = kennel_storage::layers::mount_read_only_view(
            &disk.join("upper"),
            &template.rootfs,
            cfg.storage.layer,
            &target,
        )
        .map_err(VeError::from)
        .and_then(|()| {
            fs::write(place.join("target"), target.as_os_str().as_encoded_bytes())
                .map_err(io(format!("write {}", place.display())))
        });
        if let Err(e) = mounted {
            let _ = Volume::unmount(&target);
            let _ = Volume::unmount(&disk);
            let _ = fs::remove_dir_all(&place);
            return Err(e);
        }
        Ok(())
    }

    /// Unmounts snapshot `name` of VE `id`; returns where it was.
    pub fn snapshot_umount(&self, id: &VeId, name: &str) -> Result<PathBuf> {
        let _lock = self.lock_ve(id)?;
        kennel_storage::volume::snapshot::validate_name(name)?;
        let place = self.snapshot_mount_dir(id, name);
        let target = fs::read(place.join("target")).map_err(|_| {
            VeError::BadInput(format!("snapshot '{name}' of VE {id} is not mounted"))
        })?;
        let target = PathBuf::from(std::ffi::OsString::from_vec(target));
        Volume::unmount(&target)?;
        Volume::unmount(&place.join("disk"))?;
        fs::remove_dir_all(&place).map_err(io(format!("remove {}", place.display())))?;
        Ok(target)
    }

    fn snapshot_mount_dir(&self, id: &VeId, name: &str) -> PathBuf {
        self.paths
            .run
            .join("snapshots")
            .join(id.as_str())
            .join(name)
    }

    /// Refuses while a snapshot of VE `id` (`name`, or any) is mounted.
    pub(crate) fn refuse_mounted_snapshots(&self, id: &VeId, name: Option<&str>) -> Result<()> {
        let dir = self.paths.run.join("snapshots").join(id.as_str());
        let mounted: Vec<String> = match fs::read_dir(&dir) {
            Ok(rd) => rd
                .flatten()
                .filter(|e| e.path().join("target").exists())
                .map(|e| e.file_name().to_string_lossy().into_owned())
                .filter(|n| name.is_none_or(|want| want == n))
                .collect(),
            Err(_) => Vec::new(),
        };
        match mounted.first() {
            None => Ok(()),
            Some(n) => Err(VeError::BadInput(format!(
                "snapshot '{n}' of VE {id} is mounted: `kennel snapshot umount {id} {n}` first"
            ))),
        }
    }
}

/// `target` as an absolute path to an existing empty directory.
fn empty_dir(target: &Path) -> Result<PathBuf> {
    let abs = std::path::absolute(target).map_err(io(format!("resolve {}", target.display())))?;
    let md = fs::symlink_metadata(&abs).map_err(|_| {
        VeError::BadInput(format!(
            "{} is not a directory: make an empty directory to mount the snapshot on",
            abs.display()
        ))
    })?;
    let empty = md.is_dir()
        && fs::read_dir(&abs)
            .map(|mut rd| rd.next().is_none())
            .unwrap_or(false);
    if !empty {
        return Err(VeError::BadInput(format!(
            "{} is not an empty directory: give an empty directory to mount the snapshot on",
            abs.display()
        )));
    }
    Ok(abs)
}

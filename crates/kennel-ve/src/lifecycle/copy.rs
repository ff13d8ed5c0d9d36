//! `kennel clone`, `reinstall` and `rename`: a VE's files copied to a new
//! VE, made fresh, or moved to a new id.
//!
//! A new VE (a clone; a restore, in `backup.rs`) is built as `create`
//! builds one: its configuration is written into a staging directory
//! before its disk exists (so a crash leaves something the sweep can
//! remove, disk included), and the directory is renamed into place last.
//! What must differ between two VEs always does: the id range (every file
//! moves to the new one), the uuid, the MACs, the hostname; addresses and
//! port forwards are never copied, and a copy is not started at the host's
//! boot until an operator marks it (`kennel set --onboot yes`).

use std::fs;
use std::time::Duration;

use kennel_storage::backup::ids::IdShift;
use kennel_storage::layers::{prepare_shifted, LayerMode, VeLayers};
use kennel_storage::staging;
use kennel_storage::volume::Volume;

use super::status::VeState;
use super::Kennel;
use crate::claims::thing::things_of;
use crate::config::{validate_hostname, VeConfig};
use crate::error::{io, Result, VeError};
use crate::id::VeId;

/// The file a rename writes beside `ve.conf` before it moves the
/// directory (see [`Kennel::finish_rename`]).
pub(crate) const RENAMED_CONF: &str = "ve.conf.renamed";

impl Kennel {
    /// The configuration of a copy of `src` as VE `new_id`: its own id
    /// range, uuid, MACs and hostname, no address. Host lock held.
    pub(crate) fn config_for_copy(
        &self,
        src: &VeConfig,
        new_id: &VeId,
        hostname: Option<String>,
    ) -> Result<VeConfig> {
        if self.paths.ve_dir(new_id).exists() {
            return Err(VeError::Exists(new_id.to_string()));
        }
        let hostname = hostname.unwrap_or_else(|| new_id.to_string());
        validate_hostname(&hostname)?;
        let mut cfg = src.clone();
        cfg.id = new_id.clone();
        cfg.uuid = uuid::Uuid::new_v4().to_string();
        cfg.hostname = hostname;
        cfg.created = humantime::format_rfc3339_seconds(std::time::SystemTime::now()).to_string();
        cfg.idmap = self.claims()?.allocate()?;
        cfg.network = src.network.for_copy()?;
        // A copy starts with the host only once an operator says so: a
        // clone made to try something, or a restore beside the original,
        // must not boot unasked. Its order stays (a rank, no right).
        cfg.boot.onboot = false;
        if cfg.storage.backend == crate::config::Backend::Image {
            cfg.storage.pool = Some(self.pool()?.record.path);
        }
        Ok(cfg)
    }

    /// Builds VE `cfg` under a staging name: its configuration first,
    /// then `fill` makes its disk; renamed into place when all is done.
    pub(crate) fn build_new_ve(
        &self,
        cfg: &VeConfig,
        fill: impl FnOnce(&std::path::Path) -> Result<()>,
    ) -> Result<()> {
        let staging = self.make_ve_dirs()?;
        self.sweep_ves();
        // Claimed before its configuration exists (see `crate::claims`).
        let claims = self.claims()?;
        let things = things_of(cfg, &claims.grid());
        claims.take(&cfg.id, &things)?;
        let building = staging::building(&staging, cfg.id.as_str());
        let dest = self.paths.ve_dir(&cfg.id);
        let build = || -> Result<()> {
            fs::create_dir(&building).map_err(io(format!("create {}", building.display())))?;
            cfg.save(&building.join("ve.conf"))?;
            fill(&building)?;
            fs::rename(&building, &dest).map_err(io(format!(
                "rename {} to {}",
                building.display(),
                dest.display()
            )))
        };
        let built = build();
        if built.is_err() {
            if let Some(vol) = self.volume_of(cfg) {
                let _ = vol.destroy();
            }
            let _ = kennel_storage::remove::remove_tree(&building);
            if let Err(e) = claims.release(&cfg.id, &things) {
                tracing::warn!("VE {}: {e}", cfg.id);
            }
        }
        built
    }

    /// `kennel clone`: VE `new_id`, a copy of VE `id` (running or not).
    pub fn clone_ve(&self, id: &VeId, new_id: &VeId, hostname: Option<String>) -> Result<VeConfig> {
        let (_lock, src) = self.lock_config(id)?;
        let vol = self.require_volume(&src, "clones")?;
        let _new_lock = self.lock_ve(new_id)?;
        let cfg = {
            let _host = self.lock_host()?;
            let cfg = self.config_for_copy(&src, new_id, hostname)?;
            // The new VE's directory exists (staged) before the host lock
            // goes: no other create can take its id or its range.
            let running = self.settle(id)? != VeState::Stopped;
            let new_vol = self.volume_of(&cfg).ok_or_else(|| {
                VeError::BadInput("internal: a clone of a VE with a disk has none".into())
            })?;
            self.build_new_ve(&cfg, |_| {
                fs::create_dir(new_vol.dir())
                    .map_err(io(format!("create {}", new_vol.dir().display())))?;
                if running {
                    self.with_frozen_disk(&src, |r| {
                        Ok(vol.clone_image_to(&new_vol.image(), Some(r))?)
                    })?;
                } else {
                    vol.clone_image_to(&new_vol.image(), None)?;
                }
                self.move_ids(&new_vol, &src, &cfg)
            })?;
            cfg
        };
        Ok(cfg)
    }

    /// Moves every file on `vol` (a copy of `from`'s disk) to the ids of
    /// `to`.
    fn move_ids(&self, vol: &Volume, from: &VeConfig, to: &VeConfig) -> Result<()> {
        let shift = |c: &VeConfig| IdShift {
            uid_base: c.idmap.uid_base,
            gid_base: c.idmap.gid_base,
        };
        let scratch = self.paths.scratch(&format!("ids-{}", to.id));
        let (a, b) = (shift(from), shift(to));
        vol.mount_at_scratch(&scratch, &mut |root| {
            kennel_storage::volume::shift::shift_tree(&root.join("upper"), a, b).map(drop)
        })?;
        Ok(())
    }

    /// `kennel reinstall`: VE `id` gets its template's files again (and
    /// keeps its own at `keep`); configuration and id stay. A running VE
    /// is stopped first and started again after.
    pub fn reinstall(&self, id: &VeId, keep: &[String], timeout: Duration) -> Result<bool> {
        let (_lock, cfg) = self.lock_config(id)?;
        let vol = self.require_volume(&cfg, "reinstall")?;
        self.require_pool()?;
        let keep = kennel_storage::prune::parse_keep(keep)?;
        if !keep.is_empty() && cfg.storage.layer == LayerMode::Shifted {
            return Err(VeError::BadInput(format!(
                "VE {id} has a shifted layer (its template's filesystem cannot be idmapped): reinstall it without --keep"
            )));
        }
        let template =
            kennel_storage::template::Store::new(self.paths.templates()).get(&cfg.template)?;
        self.refuse_mounted_snapshots(id, None)?;
        let was_running = self.settle(id)? != VeState::Stopped;
        if was_running {
            self.stop_locked(id, cfg.init.kind, Some(timeout))?;
        }
        let scratch = self.paths.scratch(&format!("reinstall-{id}"));
        if keep.is_empty() {
            let size = kennel_storage::volume::DiskSize {
                bytes: vol.size()?,
                inodes: cfg
                    .storage
                    .disk_inodes
                    .unwrap_or(vol.size()? / crate::host_config::BYTES_PER_INODE),
            };
            let owner = (cfg.idmap.uid_base, cfg.idmap.gid_base);
            let shift_dir = self.paths.scratch(&format!("shift-{id}"));
            vol.replace_with_empty(size, owner, &scratch, &mut |root| {
                if cfg.storage.layer == LayerMode::Shifted {
                    prepare_shifted(
                        &template.rootfs,
                        &VeLayers::new(root),
                        &shift_dir,
                        cfg.idmap.uid_base,
                    )?;
                }
                Ok(())
            })?;
        } else {
            vol.replace_keeping(&keep, &scratch)?;
        }
        if was_running {
            self.start_locked(&cfg)?;
        }
        Ok(was_running)
    }

    /// `kennel rename`: VE `id`, stopped, becomes VE `new_id`.
    pub fn rename(&self, id: &VeId, new_id: &VeId) -> Result<VeConfig> {
        let (_lock, cfg) = self.lock_config(id)?;
        let _new_lock = self.lock_ve(new_id)?;
        let _host = self.lock_host()?;
        if self.paths.ve_dir(new_id).exists() {
            return Err(VeError::Exists(new_id.to_string()));
        }
        if self.settle(id)? != VeState::Stopped {
            return Err(VeError::Running(id.to_string()));
        }
        self.refuse_mounted_snapshots(id, None)?;
        // Journaled: the claims follow the VE to its new id, even if this
        // command dies half-way (the next one settles it).
        let claims = self.claims()?;
        claims.begin_rename(id, new_id)?;
        let moved = self.rename_locked(id, new_id, cfg);
        claims.settle_rename()?;
        moved
    }

    /// The moves of a rename; host lock held, rename journaled.
    fn rename_locked(&self, id: &VeId, new_id: &VeId, mut cfg: VeConfig) -> Result<VeConfig> {
        let old_dir = self.paths.ve_dir(id);
        cfg.id = new_id.clone();
        // The new configuration first, beside the old; then the one
        // rename that moves the VE; then the new configuration in place.
        // `finish_rename` completes or undoes a rename cut short.
        cfg.save(&old_dir.join(RENAMED_CONF))?;
        let new_dir = self.paths.ve_dir(new_id);
        fs::rename(&old_dir, &new_dir).map_err(io(format!("rename {}", old_dir.display())))?;
        self.finish_rename(new_id);
        // What a stopped VE keeps in its run directory (its last exit,
        // its monitor's log) follows it.
        let _ = fs::rename(self.paths.ve_run(id), self.paths.ve_run(new_id));
        Ok(cfg)
    }

    /// Completes (in the renamed directory) or undoes (in the old one) a
    /// rename that was cut short.
    pub(crate) fn finish_rename(&self, id: &VeId) {
        let dir = self.paths.ve_dir(id);
        let renamed = dir.join(RENAMED_CONF);
        let Ok(text) = fs::read_to_string(&renamed) else {
            return;
        };
        let for_here = VeConfig::parse(&text, id, &renamed).is_ok();
        if for_here {
            let _ = fs::rename(&renamed, dir.join("ve.conf"));
        } else {
            let _ = fs::remove_file(&renamed);
        }
    }
}

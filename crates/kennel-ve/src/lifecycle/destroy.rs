//! `kennel destroy`: remove a VE and everything it wrote.

use std::fs;

use super::status::VeState;
use super::Kennel;
use crate::claims::thing::things_of;
use crate::error::{io, Result, VeError};
use crate::id::VeId;
use kennel_storage::remove::remove_tree;
use kennel_storage::staging;

impl Kennel {
    /// Deletes VE `id`. A running VE is refused unless `force`, which kills
    /// it first.
    pub fn destroy(&self, id: &VeId, force: bool) -> Result<()> {
        let (_lock, cfg) = self.lock_config(id)?;
        self.refuse_mounted_snapshots(id, None)?;
        let state = self.settle(id)?;
        if state != VeState::Stopped {
            if !force {
                return Err(VeError::Running(id.to_string()));
            }
            self.stop_locked(id, cfg.init.kind, None)?;
        }
        let dir = self.paths.ve_dir(id);
        // Rename first: a crash half-way leaves a `.ID.deleted-PID`
        // directory that the next create or destroy sweeps, never a
        // half-deleted VE under its id. The tree is the VE's own making
        // (any depth, any names, links to host paths): removed by
        // descriptor, never followed out of it.
        let trash = staging::deleting(&self.staging_dir(), id.as_str());
        fs::create_dir_all(self.staging_dir())
            .map_err(io(format!("create {}", self.staging_dir().display())))?;
        fs::rename(&dir, &trash).map_err(io(format!("rename {}", dir.display())))?;
        // The disk before the directory whose configuration names it.
        if let Some(vol) = self.volume_of(&cfg) {
            vol.destroy()?;
        }
        remove_tree(&trash)?;
        let _ = fs::remove_dir_all(self.paths.ve_run(id));
        // The VE is gone: its claims go (see `crate::claims`). Should that
        // fail (the host lock busy for long), they are stale, which the
        // next command that meets them sweeps: the destroy stands.
        let released = self.lock_host().and_then(|host| {
            if let Some(claims) = self.existing_claims()? {
                claims.release(id, &things_of(&cfg, &claims.grid()))?;
            }
            self.sweep_ves();
            Ok(host)
        });
        if let Err(e) = released {
            tracing::warn!("VE {id} is destroyed; its claims are left for later: {e}");
        }
        Ok(())
    }
}

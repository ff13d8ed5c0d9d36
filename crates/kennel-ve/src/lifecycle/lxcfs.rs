//! `kennel lxcfs-sync`: a (re)started lxcfs's files bound into every
//! running VE (see `kennel_runtime::lxcfs::sync`).

use std::time::{Duration, Instant};

use super::Kennel;
use crate::error::{Result, VeError};
use crate::id::VeId;

/// How many VEs' helpers work at once.
const PARALLEL: usize = 64;
/// How often a waiting sync probes lxcfs.
const POLL: Duration = Duration::from_millis(100);

/// One VE's outcome.
#[derive(Debug)]
pub struct VeSynced {
    pub id: VeId,
    pub result: Result<kennel_runtime::lxcfs::Synced>,
}

impl Kennel {
    /// Waits up to `wait` for lxcfs to serve (its service runs this right
    /// after starting it, before it has mounted), then binds its files
    /// into every running VE. A VE that fails does not stop the others.
    pub fn lxcfs_sync(&self, wait: Duration) -> Result<Vec<VeSynced>> {
        let dir = self.host.lxcfs_dir().ok_or_else(|| {
            VeError::BadInput(
                "lxcfs is off on this host (lxcfs_dir = \"none\" in kennel.toml): nothing to sync"
                    .into(),
            )
        })?;
        let deadline = Instant::now() + wait;
        while let Err(why) = kennel_runtime::lxcfs::probe(&dir) {
            if Instant::now() >= deadline {
                return Err(VeError::HostUnsupported(format!(
                    "{why}: start lxcfs first (systemctl start lxcfs)"
                )));
            }
            std::thread::sleep(POLL);
        }
        // A VE whose state cannot be read is reported, and the others go on.
        let mut out = Vec::new();
        let mut running = Vec::new();
        for id in self.ids()? {
            match self.run_state(&id) {
                Ok(Some(run)) => running.push((id, run)),
                Ok(None) => {}
                Err(e) => out.push(VeSynced { id, result: Err(e) }),
            }
        }
        // In batches of helpers working at once, each batch bounded by one
        // helper's deadline and kill waits however many of its VEs stall
        // theirs (a FUSE file of their own).
        for batch in running.chunks(PARALLEL) {
            let mut started = Vec::new();
            let mut pending = Vec::new();
            for (id, run) in batch {
                let spawned = self.ve_seccomp(id).and_then(|seccomp| {
                    kennel_runtime::lxcfs::sync_into(run.init_pid, run.init_start, &seccomp, &dir)
                        .map_err(VeError::from)
                });
                match spawned {
                    Ok(p) => {
                        started.push(id.clone());
                        pending.push(p);
                    }
                    Err(e) => out.push(VeSynced {
                        id: id.clone(),
                        result: Err(e),
                    }),
                }
            }
            let answers = kennel_runtime::inside::answers(pending);
            for (id, result) in started.into_iter().zip(answers) {
                out.push(VeSynced {
                    id,
                    result: result.map_err(VeError::from),
                });
            }
        }
        Ok(out)
    }
}

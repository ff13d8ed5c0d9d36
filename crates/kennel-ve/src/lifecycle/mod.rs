//! The VE lifecycle: the library API behind every `kennel` command.
//!
//! Every command goes through [`Kennel`], which knows the state root, the
//! host settings and where the monitor program is. Commands that change a
//! VE take its lock; allocations (ids, id ranges) also take the host lock.
//! Whether a VE runs is always asked of the kernel (see
//! `kennel_runtime::state`), never taken from a file alone.

mod backup;
pub mod batch;
mod check;
mod copy;
mod cpus;
mod create;
mod destroy;
mod envelope;
mod exec;
mod lxcfs;
mod network;
pub mod pools;
mod ptys;
mod set;
mod snapshot;
mod start;
pub mod stat;
mod status;
mod stop;
mod storage;
mod teardown;
mod templates;

use std::fs;
use std::path::{Path, PathBuf};
use std::sync::OnceLock;

use kennel_cgroup::CgroupRecord;

pub use backup::{
    BackupRequest, BackupTarget, Progress, Quiet, RestoreRequest, RestoreSource, Restored,
};
pub use check::{Check, CheckLevel, Sizing};
pub use create::CreateRequest;
pub use exec::ExecRequest;
pub use lxcfs::VeSynced;
pub use set::{SetRequest, UserPassword};
pub use status::{VeState, VeStatus};
pub use stop::StopOutcome;

use crate::config::VeConfig;
use crate::error::{io, Result, VeError};
use crate::host_config::HostConfig;
use crate::id::VeId;
use crate::lock::{Lock, WAIT};
use crate::paths::Paths;

/// The programs Kennel runs: itself (for the teardown the monitor calls)
/// and the monitor.
#[derive(Debug, Clone)]
pub struct Executables {
    pub kennel: PathBuf,
    pub monitor: PathBuf,
}

impl Executables {
    /// `kennel-monitor` next to the running `kennel`.
    pub fn beside_current() -> Result<Self> {
        let kennel = std::env::current_exe().map_err(io("find the kennel executable"))?;
        let monitor = kennel.with_file_name("kennel-monitor");
        Ok(Executables { kennel, monitor })
    }
}

/// One Kennel state root on this host.
#[derive(Debug)]
pub struct Kennel {
    paths: Paths,
    host: HostConfig,
    exe: Executables,
    cgroups: OnceLock<kennel_cgroup::Host>,
    /// The uuid the VE a command works on must have ([`Kennel::expect_uuid`]).
    expected_uuid: std::sync::Mutex<Option<String>>,
}

/// Makes sure `dir` exists as a real directory that only root can enter:
/// configurations, logs and the monitors' sockets live below it.
fn private_dir(dir: &Path) -> Result<()> {
    use std::os::unix::fs::{MetadataExt, PermissionsExt};
    fs::create_dir_all(dir).map_err(io(format!("create {}", dir.display())))?;
    let md = fs::symlink_metadata(dir).map_err(io(format!("stat {}", dir.display())))?;
    if !md.is_dir() {
        return Err(VeError::BadInput(format!(
            "{} is not a directory: Kennel keeps its state there",
            dir.display()
        )));
    }
    if md.uid() != 0 || md.gid() != 0 {
        std::os::unix::fs::chown(dir, Some(0), Some(0))
            .map_err(io(format!("chown {}", dir.display())))?;
    }
    if md.mode() & 0o7777 != 0o700 {
        fs::set_permissions(dir, fs::Permissions::from_mode(0o700))
            .map_err(io(format!("chmod {}", dir.display())))?;
    }
    Ok(())
}

impl Kennel {
    /// Opens the state root (`None`: the default one). Fails unless run as
    /// root.
    pub fn open(root: Option<&Path>, exe: Executables) -> Result<Self> {
        if !rustix::process::geteuid().is_root() {
            return Err(VeError::NotRoot);
        }
        if let Some(r) = root {
            let s = r.to_string_lossy();
            if !r.is_absolute() || s.contains([':', ',', '\n']) {
                return Err(VeError::BadInput(format!(
                    "invalid state root '{s}': use an absolute path without ':' or ','"
                )));
            }
        }
        let paths = Paths::new(root);
        for d in [&paths.lib, &paths.run] {
            private_dir(d)?;
        }
        let host = HostConfig::load(&paths)?;
        Ok(Kennel {
            paths,
            host,
            exe,
            cgroups: OnceLock::new(),
            expected_uuid: std::sync::Mutex::new(None),
        })
    }

    pub fn paths(&self) -> &Paths {
        &self.paths
    }

    /// The host's cgroup hierarchies (detected once).
    pub fn cgroups(&self) -> Result<&kennel_cgroup::Host> {
        if let Some(h) = self.cgroups.get() {
            return Ok(h);
        }
        let h = kennel_cgroup::Host::detect_cached(&self.paths.cgroup_hierarchies())?;
        Ok(self.cgroups.get_or_init(|| h))
    }

    fn cgroup_parent(&self) -> String {
        self.host.cgroup_parent(&self.paths)
    }

    /// The cgroup a start of VE `id` makes now: below today's
    /// `cgroup_parent`. Everything after the start goes by the record
    /// ([`Kennel::ve_cgroup`]).
    fn new_ve_cgroup(&self, id: &VeId) -> Result<CgroupRecord> {
        Ok(CgroupRecord::new(&format!(
            "{}/{}",
            self.cgroup_parent(),
            id
        ))?)
    }

    /// Where VE `id`'s cgroup was made, if a start recorded it: its
    /// record, or, for a VE started by a Kennel that kept none, its run
    /// state.
    ///
    /// Kennel only ever makes `PARENT/ID`: a record naming another cgroup
    /// (a damaged or hand-made file) is ignored with a warning rather than
    /// followed, so that no teardown kills or removes a cgroup that is not
    /// the VE's.
    pub(crate) fn recorded_cgroup(&self, id: &VeId) -> Result<Option<CgroupRecord>> {
        let rec = match CgroupRecord::load(&self.paths.ve_run(id))? {
            Some(rec) => Some(rec),
            None => match self.run_state(id)? {
                Some(run) => CgroupRecord::new(&run.cgroup).ok(),
                None => None,
            },
        };
        Ok(rec.filter(|r| {
            let ours = names_ve(r, id);
            if !ours {
                tracing::warn!(
                    "VE {id}: ignoring a cgroup record that names {}",
                    r.as_str()
                );
            }
            ours
        }))
    }

    /// VE `id`'s cgroup: where it was recorded, else where a start would
    /// make it now (for what a crashed start of an older Kennel left).
    pub(crate) fn ve_cgroup(&self, id: &VeId) -> Result<CgroupRecord> {
        match self.recorded_cgroup(id)? {
            Some(rec) => Ok(rec),
            None => self.new_ve_cgroup(id),
        }
    }

    fn monitor_cgroup(&self) -> String {
        format!("{}/_monitor", self.cgroup_parent())
    }

    /// What VE `cfg` may use: its own resources over the host's plan.
    pub(crate) fn resources_of(&self, cfg: &VeConfig) -> crate::resources::Resources {
        cfg.resources.over(&self.host.plan())
    }

    /// The configuration of VE `id`, or [`VeError::NoSuchVe`].
    pub fn config(&self, id: &VeId) -> Result<VeConfig> {
        self.require_ve(id)?;
        if self.paths.ve_dir(id).join(copy::RENAMED_CONF).exists() {
            self.finish_rename(id);
        }
        VeConfig::load(&self.paths.ve_config(id), id)
    }

    /// [`VeError::NoSuchVe`] unless VE `id` exists (without reading its
    /// configuration: `exec` needs none).
    pub(crate) fn require_ve(&self, id: &VeId) -> Result<()> {
        if self.paths.ve_config(id).exists() {
            Ok(())
        } else {
            Err(VeError::NoSuchVe(id.to_string()))
        }
    }

    /// Ids of all VEs, sorted (numbers numerically).
    pub fn ids(&self) -> Result<Vec<VeId>> {
        let dir = self.paths.ves();
        let rd = match fs::read_dir(&dir) {
            Ok(rd) => rd,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(Vec::new()),
            Err(e) => return Err(io(format!("read {}", dir.display()))(e)),
        };
        let mut ids: Vec<VeId> = rd
            .flatten()
            .filter_map(|e| VeId::parse(&e.file_name().to_string_lossy()).ok())
            .filter(|id| self.paths.ve_config(id).exists())
            .collect();
        ids.sort_by(|a, b| a.sort_key().cmp(&b.sort_key()));
        Ok(ids)
    }

    /// Locks VE `id` and then reads its configuration, so that what the
    /// command acts on is what no other command can change meanwhile.
    fn lock_config(&self, id: &VeId) -> Result<(Lock, VeConfig)> {
        if !self.paths.ve_config(id).exists() {
            return Err(VeError::NoSuchVe(id.to_string()));
        }
        let lock = self.lock_ve(id)?;
        Ok((lock, self.config(id)?))
    }

    /// A command that froze VE `id` for a snapshot and died before it
    /// thawed it left this file: thaw the VE and its disk. Call with the
    /// VE's lock held (the command that froze it held it, so it is gone).
    fn repair_freeze(&self, id: &VeId) {
        let marker = self.paths.ve_run(id).join(FREEZING_FILE);
        if !marker.exists() {
            return;
        }
        self.thaw_disk(id);
        if let (Ok(host), Ok(rec)) = (self.cgroups(), self.ve_cgroup(id)) {
            let cg = rec.cgroup(host);
            if cg.exists() {
                let _ = cg.freeze(false, std::time::Duration::from_secs(5));
            }
        }
        let _ = fs::remove_file(&marker);
    }

    fn lock_ve(&self, id: &VeId) -> Result<Lock> {
        let lock = Lock::acquire(&self.ve_lock_path(id), WAIT, id.as_str())?;
        self.check_expected_uuid(id)?;
        self.repair_freeze(id);
        Ok(lock)
    }

    /// From now on, the VE a command works on must be the one with
    /// `uuid` (`None`: any): the API service acts for a tenant on the VE
    /// it was granted, not on one made since under the same id. Checked
    /// under the VE's lock (and by `exec` and `console`, which take
    /// none); another VE is reported missing.
    pub fn expect_uuid(&self, uuid: Option<String>) {
        *self.expected_uuid.lock().unwrap_or_else(|e| e.into_inner()) = uuid;
    }

    pub(crate) fn check_expected_uuid(&self, id: &VeId) -> Result<()> {
        let expected = self
            .expected_uuid
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .clone();
        match expected {
            None => Ok(()),
            Some(want) => match self.config(id) {
                Ok(c) if c.uuid == want => Ok(()),
                Ok(_) | Err(VeError::NoSuchVe(_)) => Err(VeError::NoSuchVe(id.to_string())),
                Err(e) => Err(e),
            },
        }
    }

    /// For commands that work on a VE without its lock (`exec`,
    /// `status`): a freeze left by a command that died is undone if no
    /// command holds the lock now (one that does may be freezing the VE
    /// this very moment, for milliseconds).
    pub(crate) fn repair_freeze_unlocked(&self, id: &VeId) {
        if !self.paths.ve_run(id).join(FREEZING_FILE).exists() {
            return;
        }
        if let Some(_lock) = Lock::try_acquire(&self.ve_lock_path(id)) {
            self.repair_freeze(id);
        }
    }

    /// The lock every command that changes VE `id` holds.
    fn ve_lock_path(&self, id: &VeId) -> PathBuf {
        self.paths.locks().join(format!("ve-{id}"))
    }

    fn lock_host(&self) -> Result<Lock> {
        Lock::acquire(
            &self.paths.locks().join("host"),
            WAIT,
            "host (allocation lock)",
        )
    }
}

/// The run file that says a command froze the VE (a snapshot's few
/// milliseconds); [`Kennel::repair_freeze`] undoes it if that command died.
pub(crate) const FREEZING_FILE: &str = "freezing";

/// Whether a cgroup record names what Kennel makes for VE `id`: a cgroup
/// `id` below some parent.
fn names_ve(record: &CgroupRecord, id: &VeId) -> bool {
    record
        .as_str()
        .rsplit_once('/')
        .is_some_and(|(_, last)| last == id.as_str())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_a_ves_own_cgroup_record_is_followed() {
        let id = VeId::parse("101").expect("id");
        let rec = |s: &str| CgroupRecord::new(s).expect("record");
        assert!(names_ve(&rec("kennel/101"), &id));
        assert!(names_ve(&rec("a/b/kennel-0011aabb/101"), &id));
        for other in [
            "101",
            "kennel/1011",
            "kennel/101/init.scope",
            "system.slice",
            "x",
        ] {
            assert!(!names_ve(&rec(other), &id), "{other}");
        }
    }
}

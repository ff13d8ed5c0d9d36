//! `kennel status` and `kennel list`: what the kernel says about VEs.

use std::time::{Duration, Instant};

use kennel_cgroup::Usage;
use kennel_runtime::state::{ExitRecord, Liveness, RunState};

use super::Kennel;
use crate::config::VeConfig;
use crate::error::{Result, VeError};
use crate::id::VeId;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum VeState {
    Running,
    /// Running, but its monitor was killed: no console; `stop` still works.
    RunningWithoutMonitor,
    /// Init has ended and the monitor is tearing down.
    Stopping,
    Stopped,
}

impl VeState {
    pub fn as_str(self) -> &'static str {
        match self {
            VeState::Running => "running",
            VeState::RunningWithoutMonitor => "running (monitor lost)",
            VeState::Stopping => "stopping",
            VeState::Stopped => "stopped",
        }
    }

    pub fn is_running(self) -> bool {
        matches!(self, VeState::Running | VeState::RunningWithoutMonitor)
    }
}

/// A VE's configuration and live facts.
#[derive(Debug, Clone)]
pub struct VeStatus {
    pub config: VeConfig,
    pub state: VeState,
    pub run: Option<RunState>,
    pub usage: Usage,
    pub uptime_secs: Option<u64>,
    pub last_exit: Option<ExitRecord>,
}

impl Kennel {
    pub(crate) fn run_state(&self, id: &VeId) -> Result<Option<RunState>> {
        RunState::load(&self.paths.ve_run(id))
            .map_err(crate::error::io(format!("read the run state of VE {id}")))
    }

    /// The state of VE `id` as the kernel sees it.
    pub(crate) fn state_of(&self, id: &VeId) -> Result<(VeState, Option<RunState>)> {
        let run = self.run_state(id)?;
        let state = match run.as_ref().map(RunState::liveness) {
            None | Some(Liveness::Dead) => VeState::Stopped,
            Some(Liveness::Running) => VeState::Running,
            Some(Liveness::RunningWithoutMonitor) => VeState::RunningWithoutMonitor,
            Some(Liveness::Stopping) => VeState::Stopping,
        };
        Ok((state, run))
    }

    /// Like [`Kennel::state_of`], but first waits (briefly) for a monitor
    /// that is tearing down, and repairs what a crash left: a dead VE's
    /// cgroups and run state. The caller holds the VE's lock.
    pub(crate) fn settle(&self, id: &VeId) -> Result<VeState> {
        let deadline = Instant::now() + Duration::from_secs(15);
        loop {
            let (state, run) = self.state_of(id)?;
            match state {
                VeState::Stopping if Instant::now() < deadline => {
                    std::thread::sleep(Duration::from_millis(10))
                }
                VeState::Stopped => {
                    if run.is_some()
                        || self.recorded_cgroup(id)?.is_some()
                        || self.ve_cgroup(id)?.cgroup(self.cgroups()?).exists()
                    {
                        self.cleanup_host_side(id, None)?;
                    }
                    return Ok(VeState::Stopped);
                }
                other => return Ok(other),
            }
        }
    }

    /// Status of one VE.
    pub fn status(&self, id: &VeId) -> Result<VeStatus> {
        self.repair_freeze_unlocked(id);
        let config = self.config(id)?;
        self.status_of(id, config, Detail::Full)
    }

    /// The live facts of VE `id`, whose configuration is `config`, in
    /// `detail`.
    fn status_of(&self, id: &VeId, config: VeConfig, detail: Detail) -> Result<VeStatus> {
        let (state, run) = self.state_of(id)?;
        let usage = match (state.is_running(), detail) {
            (false, _) => Usage::default(),
            (true, Detail::Full) => self.ve_cgroup(id)?.cgroup(self.cgroups()?).usage(),
            (true, Detail::Listed { .. }) => self
                .ve_cgroup(id)?
                .cgroup(self.cgroups()?)
                .memory_and_tasks(),
        };
        let uptime_secs = run
            .as_ref()
            .filter(|_| state.is_running())
            .and_then(|r| match detail {
                Detail::Full => r.uptime_secs(),
                Detail::Listed { host_uptime } => host_uptime.map(|up| r.uptime_secs_at(up)),
            });
        let last_exit = (detail == Detail::Full)
            .then(|| ExitRecord::load(&self.paths.ve_run(id)).ok().flatten())
            .flatten();
        Ok(VeStatus {
            config,
            state,
            run: run.filter(|_| state.is_running()),
            usage,
            uptime_secs,
            last_exit,
        })
    }

    /// Status of every VE (without its last exit: see [`Kennel::status`]
    /// for that); a VE whose status cannot be read is reported to `warn`
    /// and left out, so one broken VE never hides the others.
    ///
    /// Each VE's status is its own few files (its configuration, run
    /// state and, running, its cgroup's counters): with thousands of VEs
    /// they are read by a few threads at once, in order of their ids.
    pub fn list(&self, warn: &mut dyn FnMut(&VeId, &VeError)) -> Result<Vec<VeStatus>> {
        let ids = self.listed_ids()?;
        let detail = Detail::Listed {
            host_uptime: kennel_runtime::procfs::uptime_secs(),
        };
        let threads = std::thread::available_parallelism()
            .map_or(1, |n| n.get())
            .clamp(1, LIST_THREADS);
        let per_thread = ids.len().div_ceil(threads).max(LIST_CHUNK_MIN);
        let results: Vec<Result<Option<VeStatus>>> = if ids.len() <= LIST_CHUNK_MIN {
            ids.iter().map(|id| self.listed(id, detail)).collect()
        } else {
            std::thread::scope(|scope| {
                let parts: Vec<_> = ids
                    .chunks(per_thread)
                    .map(|part| {
                        let read = scope.spawn(move || {
                            part.iter()
                                .map(|id| self.listed(id, detail))
                                .collect::<Vec<_>>()
                        });
                        (part.len(), read)
                    })
                    .collect();
                parts
                    .into_iter()
                    .flat_map(|(n, read)| match read.join() {
                        Ok(v) => v,
                        Err(_) => (0..n)
                            .map(|_| {
                                Err(VeError::BadInput(
                                    "internal: the thread reading its status failed".into(),
                                ))
                            })
                            .collect(),
                    })
                    .collect()
            })
        };
        let mut out = Vec::with_capacity(ids.len());
        for (id, r) in ids.iter().zip(results) {
            match r {
                Ok(Some(s)) => out.push(s),
                // Not a VE (an entry without a configuration), or
                // destroyed while listed.
                Ok(None) | Err(VeError::NoSuchVe(_)) => {}
                Err(e) => warn(id, &e),
            }
        }
        Ok(out)
    }

    /// The ids in the VE directory, sorted as [`Kennel::ids`] sorts them,
    /// without a stat of each (the status that follows reads each VE's
    /// configuration anyway).
    fn listed_ids(&self) -> Result<Vec<VeId>> {
        let dir = self.paths.ves();
        let rd = match std::fs::read_dir(&dir) {
            Ok(rd) => rd,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(Vec::new()),
            Err(e) => return Err(crate::error::io(format!("read {}", dir.display()))(e)),
        };
        let mut ids: Vec<VeId> = rd
            .flatten()
            .filter_map(|e| VeId::parse(&e.file_name().to_string_lossy()).ok())
            .collect();
        ids.sort_by(|a, b| a.sort_key().cmp(&b.sort_key()));
        Ok(ids)
    }

    /// [`Kennel::status`] for `list`: the configuration read at once (no
    /// stat before it); anything unusual takes the full path, with its
    /// repairs. `None`: no VE there.
    fn listed(&self, id: &VeId, detail: Detail) -> Result<Option<VeStatus>> {
        let config = match VeConfig::load(&self.paths.ve_config(id), id) {
            Ok(c) => c,
            Err(_)
                if !self.paths.ve_dir(id).join("ve.conf").exists()
                    && !self
                        .paths
                        .ve_dir(id)
                        .join(super::copy::RENAMED_CONF)
                        .exists() =>
            {
                return Ok(None)
            }
            Err(_) => return self.status(id).map(Some),
        };
        self.repair_freeze_unlocked(id);
        self.status_of(id, config, detail).map(Some)
    }
}

/// How much of a VE's status to read.
#[derive(Debug, Clone, Copy, PartialEq)]
enum Detail {
    /// `status`: everything, its last exit and OOM kills included.
    Full,
    /// `list`: what its columns show (no last exit, no OOM kills), with
    /// the host's uptime read once for all VEs.
    Listed { host_uptime: Option<f64> },
}

/// At most this many threads read statuses for `list`.
const LIST_THREADS: usize = 4;
/// Fewer VEs than this are read by one thread.
const LIST_CHUNK_MIN: usize = 64;

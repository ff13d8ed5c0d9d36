//! `kennel stat`: a running VE's counters (held, peak, limit, fails), read
//! through its recorded cgroup; and [`Kennel::sample`], what a metrics
//! scrape (kenneld's `/metrics`) reads of each VE.

pub use kennel_cgroup::{Accounting, Counter};

use std::os::unix::fs::MetadataExt;
use std::time::{Duration, Instant};

use super::status::VeState;
use super::Kennel;
use crate::config::VeConfig;
use crate::error::{Result, VeError};
use crate::id::VeId;

/// How long `kennel stat ID` may count a VE's open files.
const OPEN_FILES_WALK: Duration = Duration::from_secs(2);

impl Kennel {
    /// The counters of running VE `id`, with its open files.
    pub fn stat(&self, id: &VeId) -> Result<Accounting> {
        let mut a = self.counters(id)?;
        let cgroups = self.cgroups()?;
        let cgroup = self.ve_cgroup(id)?;
        a.open_files = Counter {
            held: cgroup
                .cgroup(cgroups)
                .open_files(Instant::now() + OPEN_FILES_WALK),
            // The limit is per process (RLIMIT_NOFILE): no kernel limit
            // or fail count exists per VE.
            limit: self.run_state(id)?.and_then(|r| r.nofile),
            ..Counter::default()
        };
        Ok(a)
    }

    /// The kernel's counters of running VE `id` (no walk of its processes).
    fn counters(&self, id: &VeId) -> Result<Accounting> {
        self.require_ve(id)?;
        match self.state_of(id)?.0 {
            VeState::Running | VeState::RunningWithoutMonitor => {}
            _ => return Err(VeError::NotRunning(id.to_string())),
        }
        Ok(self.ve_cgroup(id)?.cgroup(self.cgroups()?).accounting())
    }

    /// The counters of every running VE, in id order.
    pub fn stat_all(&self) -> Result<Vec<(VeId, Accounting)>> {
        let mut out = Vec::new();
        for id in self.ids()? {
            match self.counters(&id) {
                Ok(a) => out.push((id, a)),
                Err(VeError::NotRunning(_)) => {}
                Err(e) => return Err(e),
            }
        }
        Ok(out)
    }
}

/// One VE as a metrics scrape sees it ([`Kennel::sample`]).
#[derive(Debug, Clone)]
pub struct VeSample {
    pub id: VeId,
    /// Who may see it is decided by id and uuid (a VE made again under
    /// the same id is another VE).
    pub uuid: String,
    pub state: VeState,
    /// Running only.
    pub uptime_secs: Option<u64>,
    /// The kernel's counters, running only; without open files (a walk of
    /// the VE's processes: see [`Kennel::stat`]).
    pub counters: Option<Accounting>,
    /// Its network links, running only.
    pub links: Vec<VeLink>,
    /// Its disk image (backend `image`), running or not.
    pub disk: Option<DiskUse>,
}

/// A VE's network interface and the host end of its veth pair, whose
/// counters are the VE's, mirrored (what the host end receives, the VE
/// sent).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct VeLink {
    /// The interface inside the VE (`eth0`).
    pub inside: String,
    /// The host end (`kv101_eth0`).
    pub host: String,
}

/// A VE's disk image: the bytes it takes in the pool (sparse: what was
/// written) and its size (the VE's disk size).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct DiskUse {
    pub allocated: u64,
    pub size: u64,
}

impl Kennel {
    /// VE `id` for a metrics scrape: its state, uptime and counters, the
    /// host ends of its links (from its network record) and its disk
    /// image's size, from a few small files each and nothing that walks
    /// its processes, so that a scrape of every VE stays cheap. Reads
    /// only: unlike [`Kennel::status`], nothing a crash left is repaired.
    /// `host_uptime` is the host's (`/proc/uptime`), read once per scrape.
    /// `None`: no VE `id` (or no longer).
    pub fn sample(&self, id: &VeId, host_uptime: Option<f64>) -> Result<Option<VeSample>> {
        let conf = self.paths.ve_config(id);
        let config = match VeConfig::load(&conf, id) {
            Ok(c) => c,
            Err(_) if !conf.exists() => return Ok(None),
            Err(e) => return Err(e),
        };
        let (state, run) = self.state_of(id)?;
        let run = run.filter(|_| state.is_running());
        let (counters, links) = match &run {
            None => (None, Vec::new()),
            Some(_) => (
                Some(self.ve_cgroup(id)?.cgroup(self.cgroups()?).accounting()),
                self.links_of(id),
            ),
        };
        let uptime_secs = run.as_ref().and_then(|r| match host_uptime {
            Some(up) => Some(r.uptime_secs_at(up)),
            None => r.uptime_secs(),
        });
        let disk = self
            .volume_of(&config)
            .and_then(|v| std::fs::metadata(v.image()).ok())
            .map(|m| DiskUse {
                allocated: m.blocks() * 512,
                size: m.len(),
            });
        Ok(Some(VeSample {
            id: id.clone(),
            uuid: config.uuid,
            state,
            uptime_secs,
            counters,
            links,
            disk,
        }))
    }

    /// The links of running VE `id` that its network record says exist:
    /// those its recorded configuration plans (a link the record still
    /// holds from an earlier configuration is on its way out).
    fn links_of(&self, id: &VeId) -> Vec<VeLink> {
        let Some(rec) = kennel_net::reconcile::Record::load(&self.paths.ve_run(id)) else {
            return Vec::new();
        };
        kennel_net::plan::links(id.as_str(), &rec.network)
            .into_iter()
            .filter(|l| rec.links.contains(&l.host))
            .map(|l| VeLink {
                inside: l.inside,
                host: l.host,
            })
            .collect()
    }
}

/// Whether a VE hit a limit that cost it something since its start: the
/// OOM killer, a refused fork, a refused swap-out. Reaching the memory
/// limit itself is not counted: a healthy VE's page cache reclaims there
/// all the time (docs/RESOURCES.md).
pub fn hit_a_limit(a: &Accounting) -> bool {
    let rose = |n: Option<u64>| n.is_some_and(|n| n > 0);
    rose(a.oom_kills) || rose(a.processes.fails) || rose(a.swap.fails)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_costly_limits_flag_a_ve() {
        let mut a = Accounting::default();
        a.memory.fails = Some(1000);
        assert!(!hit_a_limit(&a), "page cache at the limit is normal");
        a.processes.fails = Some(1);
        assert!(hit_a_limit(&a));
        let b = Accounting {
            oom_kills: Some(2),
            ..Accounting::default()
        };
        assert!(hit_a_limit(&b));
    }
}

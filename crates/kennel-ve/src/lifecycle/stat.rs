//! `kennel stat`: a running VE's counters (held, peak, limit, fails), read
//! through its recorded cgroup.

pub use kennel_cgroup::{Accounting, Counter};

use std::time::{Duration, Instant};

use super::status::VeState;
use super::Kennel;
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

//! The host's envelope: limits on the cgroup parent Kennel makes for all
//! VEs, so that VEs whose plans add up to more than the host has (plans
//! are sold overcommitted) meet the OOM killer and the process limit of
//! Kennel's parent, never the host's own: the host keeps a reserve of
//! memory (2G, or a tenth of a host of more than 20G) and of processes (4096) for
//! itself; the process part follows `kernel.pid_max` at every start. On
//! cgroup v2 the VEs' cgroups together are capped too, below the kernel's
//! 65,535 memory cgroup ids (each VE may make 1,024 of its own: 64 VEs
//! could otherwise take every id, and the host could start no service).
//! Written only on Kennel's default parent: a configured one may
//! be a systemd unit's, whose limits are the unit's business
//! (`MemoryMax=`, `TasksMax=`).

use super::Kennel;

/// What all VEs together may use of `total`: all but 2G, or but a tenth
/// of a larger host; never less than half. In whole pages, as the kernel
/// keeps it.
pub fn memory_envelope(total: u64) -> u64 {
    let reserve = (total / 10).max(2 << 30);
    total.saturating_sub(reserve).max(total / 2) & !4095
}

/// Processes the host keeps for itself, out of `pid_max`.
pub fn pids_envelope(pid_max: u64) -> u64 {
    pid_max.saturating_sub(4096).max(pid_max / 2)
}

/// The kernel's memory cgroup ids (`MEM_CGROUP_ID_MAX`), shared by the
/// whole host.
const MEMORY_CGROUP_IDS: u64 = 65_535;

/// Cgroups all VEs together may hold below Kennel's parent on cgroup v2:
/// the host keeps 4,096 memory cgroup ids for its own services, and the
/// dying cgroups the kernel has yet to free.
pub const CGROUPS_ENVELOPE: u64 = MEMORY_CGROUP_IDS - 4096;

fn mem_total() -> Option<u64> {
    let text = std::fs::read_to_string("/proc/meminfo").ok()?;
    let kb: u64 = text
        .lines()
        .find_map(|l| l.strip_prefix("MemTotal:"))?
        .trim()
        .trim_end_matches("kB")
        .trim()
        .parse()
        .ok()?;
    Some(kb * 1024)
}

fn pid_max() -> Option<u64> {
    kennel_runtime::launch::exhausted::sysctl("kernel.pid_max")
}

impl Kennel {
    /// Puts the envelope on Kennel's default parent (see the module). A
    /// failure is a warning: VEs still have their own limits.
    pub(crate) fn apply_envelope(&self) {
        if self.host.cgroup_parent.is_some() {
            return;
        }
        let Ok(host) = self.cgroups() else { return };
        let parent = host.cgroup(&self.cgroup_parent());
        // Written once, when the parent is made (or by the first start
        // after an upgrade): not again on every start. But the process
        // part follows `kernel.pid_max` (the one read that finds the
        // parent made tells whether it is right): a
        // host raised for thousands of VEs must not keep the old cap, nor
        // a lowered one leave the VEs the host's last PIDs.
        if let Some(now) = parent.pids_limit() {
            let want = pid_max().map(pids_envelope).filter(|w| *w != now);
            if let Err(e) = want.map_or(Ok(()), |w| parent.set_tasks(w)) {
                tracing::warn!("the process limit on all VEs together was not updated: {e}");
            }
            // A parent made before the cap (an upgrade) gets it here.
            if let Err(e) = parent.cap_cgroups(CGROUPS_ENVELOPE) {
                tracing::warn!("the cgroup limit on all VEs together was not set: {e}");
            }
            return;
        }
        let limits = kennel_cgroup::Limits {
            memory: mem_total().map(memory_envelope),
            pids: pid_max().map(pids_envelope),
            ..Default::default()
        };
        let parent = host.cgroup(&self.cgroup_parent());
        // Made through its monitors' cgroup, as a start makes it: on v2 a
        // parent made as a leaf would get no controllers for its VEs.
        if let Err(e) = host
            .cgroup(&self.monitor_cgroup())
            .create()
            .and_then(|()| parent.apply_new_limits(&limits, kennel_cgroup::Part::All))
            .and_then(|()| parent.cap_cgroups(CGROUPS_ENVELOPE))
        {
            tracing::warn!("the limits on all VEs together were not set: {e}");
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_host_keeps_a_reserve() {
        const G: u64 = 1 << 30;
        assert_eq!(memory_envelope(16 * G), 14 * G, "2G of a small host");
        assert_eq!(
            memory_envelope(24 * G),
            (24 * G - 24 * G / 10) & !4095,
            "a tenth of a larger one"
        );
        assert_eq!(memory_envelope(3 * G), 3 * G / 2, "never below half");
        assert_eq!(pids_envelope(32768), 28672);
        assert_eq!(pids_envelope(4_194_304), 4_190_208);
        assert_eq!(pids_envelope(5000), 2500);
    }
}

//! What running VEs take from the host's shared kernel pools, and the
//! host settings a number of them needs.
//!
//! Measured on Linux 6.18 (docs/DENSITY.md has the census): an idle
//! busybox VE holds 3 PIDs (its init and getty, and its monitor), a Debian
//! VE with systemd 6 (systemd, journald, dbus, logind, agetty, monitor);
//! a VE on the `image` backend adds 2 kernel threads for its disk's ext4
//! (`jbd2/loopN-8` and an `ext4-rsv-conversion` rescuer), each a PID too.
//! Every one of those is a number in the host's PID space, which
//! `kernel.pid_max` bounds for the host and every VE together (32768 on
//! many hosts: about 6,000 busybox VEs). That is the pool a start is
//! checked against here ([`pid_room`]), like the pty reserve in `ptys`.
//!
//! The other pools need no ledger, for these reasons:
//! - inotify instances and watches, fanotify groups and namespaces of every
//!   kind are charged per user namespace *owner*, and each VE's namespace is
//!   owned by a host uid of its own (`kennel_runtime::launch` `owner`): each
//!   VE has the host's per-user limit to itself. Measured: a Debian VE's 8
//!   inotify instances leave host root's 128 whole.
//! - keys are charged per host uid, and each VE's ids are its own.
//! - nf_tables objects and netlink sockets live in the VE's own network
//!   namespace and are bounded only by memory (its cgroup's, mostly).
//! - loop devices: one per `image` VE; the kernel makes them on demand up
//!   to 2^20.
//! - `kernel.threads-max` is sized from memory at boot (192,735 on 24 GiB),
//!   far above `pid_max` unless `pid_max` is raised: checked with it.
//!
//! A clone the kernel refuses anyway (a pool filled between the check and
//! the fork, or by a VE growing to its `numproc`) is named by
//! `kennel_runtime::launch::exhausted`.

use std::fs;

use kennel_storage::InitKind;

use kennel_runtime::launch::exhausted::sysctl;

use super::check::{check, Check, CheckLevel};
use super::Kennel;
use crate::config::{Backend, VeConfig};
use crate::error::{Result, VeError};
use crate::id::VeId;

/// PIDs (and threads) an idle VE holds: its processes and monitor, and
/// the kernel threads of its disk.
pub fn ve_pids(init: InitKind, backend: Backend) -> u64 {
    let processes = match init {
        InitKind::Busybox => 3,
        // systemd measured; sysvinit and others assumed no smaller.
        InitKind::Systemd | InitKind::Sysvinit | InitKind::Unknown => 6,
    };
    let disk = match backend {
        Backend::Image => 2,
        Backend::Dir => 0,
    };
    processes + disk
}

/// inotify instances an idle VE's init takes (each VE of its own uid's
/// `user.max_inotify_instances`).
pub fn ve_inotify(init: InitKind) -> u64 {
    match init {
        InitKind::Busybox => 0,
        InitKind::Systemd | InitKind::Sysvinit | InitKind::Unknown => 8,
    }
}

/// PIDs the host keeps for itself (logins, `kennel exec`, starts under
/// way): a start that would leave fewer is refused.
pub const HOST_PIDS: u64 = 1024;

/// The largest `kernel.pid_max` (PID_MAX_LIMIT on 64-bit), and what
/// systemd sets by default.
pub const PID_MAX_LIMIT: u64 = 4_194_304;

/// A planned number of running VEs, as what they take together.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Plan {
    pub ves: u64,
    /// PIDs the VEs hold idle, together.
    pub pids: u64,
    /// The most inotify instances one of them takes.
    pub inotify: u64,
}

impl Plan {
    /// `n` VEs of one kind.
    pub fn uniform(n: u64, init: InitKind, backend: Backend) -> Self {
        Plan {
            ves: n,
            pids: n.saturating_mul(ve_pids(init, backend)),
            inotify: ve_inotify(init),
        }
    }

    /// Adds one VE.
    pub fn add(&mut self, init: InitKind, backend: Backend) {
        self.ves += 1;
        self.pids += ve_pids(init, backend);
        self.inotify = self.inotify.max(ve_inotify(init));
    }
}

/// The host's figures for the PID pool.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct PidPool {
    /// `kernel.pid_max`.
    pub pid_max: u64,
    /// `kernel.threads-max`.
    pub threads_max: u64,
    /// Threads on the host now, less those of the running VEs (`/proc/loadavg`).
    pub host_threads: u64,
}

/// The `kernel.pid_max` to recommend for `need` PIDs: twice that, at
/// least 65,536, a power of two, at most [`PID_MAX_LIMIT`].
pub fn pid_max_for(need: u64) -> u64 {
    need.saturating_mul(2)
        .max(65_536)
        .checked_next_power_of_two()
        .unwrap_or(PID_MAX_LIMIT)
        .min(PID_MAX_LIMIT)
}

/// How to keep a setting across reboots.
fn persist(key: &str, value: u64) -> String {
    format!("(and persist it: echo '{key} = {value}' >> /etc/sysctl.d/60-kennel.conf)")
}

/// The PID line of `kennel check` for `plan`: the host's own threads and
/// the VEs' PIDs, with [`HOST_PIDS`] to spare, must fit in `pid_max` and
/// `threads_max`.
pub fn pid_check(pool: PidPool, plan: Plan) -> Check {
    let need = pool
        .host_threads
        .saturating_add(plan.pids)
        .saturating_add(HOST_PIDS);
    let what = format!(
        "kernel.pid_max = {}, kernel.threads-max = {}; {} VEs hold about {} PIDs idle, the host {} (and keeps {HOST_PIDS} spare)",
        pool.pid_max, pool.threads_max, plan.ves, plan.pids, pool.host_threads
    );
    if need > pool.pid_max {
        let set = pid_max_for(need);
        let threads = if need > pool.threads_max {
            format!(" kernel.threads-max={}", need.saturating_mul(2))
        } else {
            String::new()
        };
        check(
            "pids",
            CheckLevel::Warn,
            format!(
                "{what}: too few for them, starts are refused past {} PIDs; set: sysctl -w kernel.pid_max={set}{threads} {}",
                pool.pid_max.saturating_sub(HOST_PIDS),
                persist("kernel.pid_max", set)
            ),
        )
    } else if need > pool.threads_max {
        let set = need.saturating_mul(2);
        check(
            "pids",
            CheckLevel::Warn,
            format!(
                "{what}: kernel.threads-max is too small for them; set: sysctl -w kernel.threads-max={set} {}",
                persist("kernel.threads-max", set)
            ),
        )
    } else {
        check("pids", CheckLevel::Ok, what)
    }
}

/// The inotify line: per VE, against its own uid's
/// `user.max_inotify_instances` (see the module doc).
pub fn inotify_check(max_instances: Option<u64>, plan: Plan) -> Check {
    let Some(max) = max_instances else {
        return check("inotify", CheckLevel::Ok, "no inotify in this kernel");
    };
    let what = format!(
        "user.max_inotify_instances = {max}, for each VE's own uid (its user namespace's owner): an idle VE's init takes up to {}",
        plan.inotify
    );
    // Room for the services a VE adds to its init's own.
    let want = plan.inotify.saturating_mul(8).max(128);
    if plan.inotify > 0 && max < want {
        check(
            "inotify",
            CheckLevel::Warn,
            format!(
                "{what}: too few for a VE's services; set: sysctl -w user.max_inotify_instances={want} {}",
                persist("user.max_inotify_instances", want)
            ),
        )
    } else {
        check("inotify", CheckLevel::Ok, what)
    }
}

/// Whether a VE that holds `cost` PIDs idle may start: `None` if it fits,
/// else the one-line reason naming the setting.
pub fn pid_room(id: &str, cost: u64, pool: PidPool) -> Option<String> {
    let after = pool
        .host_threads
        .saturating_add(cost)
        .saturating_add(HOST_PIDS);
    let (name, max) = if pool.threads_max < pool.pid_max {
        ("kernel.threads-max", pool.threads_max)
    } else {
        ("kernel.pid_max", pool.pid_max)
    };
    if after <= max {
        return None;
    }
    let set = if name == "kernel.pid_max" {
        pid_max_for(after)
    } else {
        after.saturating_mul(2)
    };
    Some(format!(
        "VE {id} needs about {cost} PIDs, but {} of {name} = {max} are in use and the host keeps {HOST_PIDS}: raise it (sysctl -w {name}={set}), or stop VEs",
        pool.host_threads
    ))
}

/// The host's PID figures now; `host_threads` is every thread, VEs'
/// included (the caller subtracts the running VEs' if it wants the
/// host's own).
pub fn read_pid_pool() -> Option<PidPool> {
    let threads = fs::read_to_string("/proc/loadavg")
        .ok()
        .and_then(|t| kennel_runtime::launch::exhausted::loadavg_threads(&t))?;
    Some(PidPool {
        pid_max: sysctl("kernel.pid_max")?,
        threads_max: sysctl("kernel.threads-max")?,
        host_threads: threads,
    })
}

impl Kennel {
    /// Refuses to start VE `cfg` when its PIDs would leave the host fewer
    /// than [`HOST_PIDS`] (the host's threads are one read of
    /// `/proc/loadavg`, whatever the number of VEs). Not under a lock:
    /// starts racing for the last PIDs are what `HOST_PIDS` is for, and a
    /// clone that fails anyway is named by `launch::exhausted`.
    pub(crate) fn check_pid_room(&self, id: &VeId, cfg: &VeConfig) -> Result<()> {
        let Some(pool) = read_pid_pool() else {
            return Ok(());
        };
        let cost = ve_pids(cfg.init.kind, cfg.storage.backend);
        match pid_room(id.as_str(), cost, pool) {
            None => Ok(()),
            Some(line) => Err(VeError::HostUnsupported(line)),
        }
    }
}

/// The lines `kennel check` shows for the shared pools beyond ptys.
pub(super) fn report(pool: Option<PidPool>, plan: Plan) -> Vec<Check> {
    vec![
        match pool {
            Some(p) => pid_check(p, plan),
            None => check(
                "pids",
                CheckLevel::Warn,
                "cannot read kernel.pid_max, kernel.threads-max and /proc/loadavg",
            ),
        },
        inotify_check(sysctl("user.max_inotify_instances"), plan),
    ]
}

#[cfg(test)]
mod tests {
    use super::*;

    fn pool(threads: u64) -> PidPool {
        PidPool {
            pid_max: 32_768,
            threads_max: 192_735,
            host_threads: threads,
        }
    }

    #[test]
    fn the_census_costs() {
        assert_eq!(ve_pids(InitKind::Busybox, Backend::Image), 5);
        assert_eq!(ve_pids(InitKind::Busybox, Backend::Dir), 3);
        assert_eq!(ve_pids(InitKind::Systemd, Backend::Image), 8);
    }

    #[test]
    fn five_thousand_busybox_ves_fit_in_32768_pids_but_not_debian_ones() {
        let busybox = Plan::uniform(5_000, InitKind::Busybox, Backend::Image);
        assert_eq!(pid_check(pool(200), busybox).level, CheckLevel::Ok);
        let debian = Plan::uniform(5_000, InitKind::Systemd, Backend::Image);
        let c = pid_check(pool(200), debian);
        assert_eq!(c.level, CheckLevel::Warn);
        assert!(
            c.detail.contains("sysctl -w kernel.pid_max=131072"),
            "{}",
            c.detail
        );
        assert!(c.detail.contains("/etc/sysctl.d/"), "{}", c.detail);
    }

    #[test]
    fn threads_max_is_named_when_it_is_the_smaller() {
        let p = PidPool {
            pid_max: PID_MAX_LIMIT,
            threads_max: 10_000,
            host_threads: 200,
        };
        let c = pid_check(p, Plan::uniform(5_000, InitKind::Busybox, Backend::Image));
        assert!(
            c.detail.contains("sysctl -w kernel.threads-max="),
            "{}",
            c.detail
        );
        let r = pid_room(
            "101",
            5,
            PidPool {
                host_threads: 9_000,
                ..p
            },
        );
        assert!(r.is_some_and(|l| l.contains("kernel.threads-max = 10000")));
    }

    #[test]
    fn a_start_is_refused_when_it_would_eat_the_hosts_spare() {
        assert_eq!(pid_room("101", 5, pool(20_000)), None);
        let line = pid_room("101", 5, pool(32_768 - HOST_PIDS - 4)).expect("refused");
        assert!(line.contains("kernel.pid_max = 32768"), "{line}");
        assert!(line.contains("sysctl -w kernel.pid_max=131072"), "{line}");
    }

    #[test]
    fn recommended_pid_max_is_bounded() {
        assert_eq!(pid_max_for(10), 65_536);
        assert_eq!(pid_max_for(40_000), 131_072);
        assert_eq!(pid_max_for(u64::MAX / 4), PID_MAX_LIMIT);
    }

    #[test]
    fn inotify_is_per_ve() {
        let debian = Plan::uniform(5_000, InitKind::Systemd, Backend::Image);
        assert_eq!(inotify_check(Some(128), debian).level, CheckLevel::Ok);
        assert_eq!(inotify_check(Some(16), debian).level, CheckLevel::Warn);
        let busybox = Plan::uniform(5_000, InitKind::Busybox, Backend::Image);
        assert_eq!(inotify_check(Some(16), busybox).level, CheckLevel::Ok);
    }
}

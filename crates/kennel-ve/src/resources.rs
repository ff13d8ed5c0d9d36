//! A VE's resources: what its plan allows. Names and units follow
//! OpenVZ's (`ram`/`memory`, `swap`, `cpus`, `cpulimit`, `cpuunits`,
//! `cpumask`, `numproc`, `numpty`, `numfile`, `ioprio`, `iolimit`,
//! `iopslimit`).
//!
//! Every field may be absent: the host's default plan (`kennel.toml`,
//! `[default_plan]`) fills it in ([`Resources::over`]). Limits that can be
//! lifted take `unlimited`, written on purpose; nothing is unlimited by
//! default.

use std::fmt;

use serde::{Deserialize, Serialize};

use crate::cpuset::CpuSet;
use crate::error::{Result, VeError};
use crate::limit::Limit;
use crate::units::{Size, MAX_CPUS};

/// The least memory a VE may be given.
pub const MIN_MEMORY: u64 = 16 << 20;

/// Ptys of a VE that sets none: consoles, `kennel enter`, ssh sessions
/// and terminal multiplexers of a small server.
pub const DEFAULT_NUMPTY: u32 = 16;
/// The most ptys one VE may be given (the console needs one, `kennel
/// enter` another).
pub const NUMPTY_RANGE: std::ops::RangeInclusive<u32> = 2..=65536;

/// Open files per process: from 64 (less breaks shells) to the kernel's
/// default `fs.nr_open`.
pub const NOFILE_RANGE: std::ops::RangeInclusive<u64> = 64..=1_048_576;

/// CPU time as a percentage of one CPU (`150%` = one and a half CPUs),
/// as OpenVZ's `cpulimit`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub struct Percent(u32);

impl Percent {
    /// The most: every CPU a VE may have.
    pub const MAX: u32 = MAX_CPUS as u32 * 100;

    /// `50%` or `50`: 1 to [`Percent::MAX`].
    pub fn parse(s: &str) -> Result<Self> {
        let t = s.trim();
        let n = t.strip_suffix('%').unwrap_or(t).trim();
        match n.parse::<u32>() {
            Ok(v) if (1..=Self::MAX).contains(&v) => Ok(Percent(v)),
            _ => Err(VeError::BadInput(format!(
                "invalid CPU limit '{s}': give a percentage of one CPU from 1% to {}% (e.g. 50%, 150%)",
                Self::MAX
            ))),
        }
    }

    pub fn get(self) -> u32 {
        self.0
    }
}

impl fmt::Display for Percent {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}%", self.0)
    }
}

impl TryFrom<String> for Percent {
    type Error = VeError;
    fn try_from(s: String) -> Result<Self> {
        Percent::parse(&s)
    }
}

impl From<Percent> for String {
    fn from(p: Percent) -> String {
        p.to_string()
    }
}

/// A relative weight against other VEs, 1 to 10000, 100 for an even
/// share (cgroup v2's `cpu.weight` and `io.weight` scale).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(try_from = "u64", into = "u64")]
pub struct Weight(u16);

impl Weight {
    pub const DEFAULT: Weight = Weight(100);

    pub fn new(v: u64, what: &str) -> Result<Self> {
        match u16::try_from(v) {
            Ok(w) if (1..=10_000).contains(&w) => Ok(Weight(w)),
            _ => Err(VeError::BadInput(format!(
                "invalid {what} {v}: give a weight from 1 to 10000 (100 is an even share)"
            ))),
        }
    }

    pub fn parse(s: &str, what: &str) -> Result<Self> {
        let v = s.trim().parse::<u64>().map_err(|_| {
            VeError::BadInput(format!(
                "invalid {what} '{s}': give a weight from 1 to 10000 (100 is an even share)"
            ))
        })?;
        Self::new(v, what)
    }

    pub fn get(self) -> u16 {
        self.0
    }
}

impl TryFrom<u64> for Weight {
    type Error = VeError;
    fn try_from(v: u64) -> Result<Self> {
        Weight::new(v, "weight")
    }
}

impl From<Weight> for u64 {
    fn from(w: Weight) -> u64 {
        u64::from(w.0)
    }
}

/// What a VE may use. Absent fields come from the host's default plan.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Resources {
    /// RAM (memory cgroup limit).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub memory: Option<Limit<Size>>,
    /// Swap on top of `memory` (0 for none).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub swap: Option<Size>,
    /// CPU time, in CPUs (1.5 = one and a half CPUs).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub cpus: Option<f64>,
    /// CPU time as a percentage of one CPU.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub cpu_limit: Option<Limit<Percent>>,
    /// Share of CPU time against other VEs when CPUs are busy.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub cpu_weight: Option<Weight>,
    /// The host CPUs the VE runs on (absent: all).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub cpumask: Option<CpuSet>,
    /// Processes and threads.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub numproc: Option<Limit<u64>>,
    /// Ptys the VE may have open, its console included (default
    /// [`DEFAULT_NUMPTY`]).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub numpty: Option<u32>,
    /// Open files per process (the hard `RLIMIT_NOFILE`).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub nofile: Option<u64>,
    /// Share of disk time against other VEs.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub io_weight: Option<Weight>,
    /// Disk bandwidth, bytes per second, reads and writes each.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub io_limit: Option<Limit<Size>>,
    /// Disk operations per second, reads and writes each.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub iops_limit: Option<Limit<u64>>,
}

impl Resources {
    /// Kennel's default plan, for a host whose `kennel.toml` sets none:
    /// sized so that a small host (2 CPUs, 24 GiB) stays alive whatever
    /// its VEs do. One CPU's time at most leaves the host another; 1G of
    /// memory each lets 22 VEs fill their limits at once; 512 processes
    /// each lets 60 VEs reach theirs within the default `pid_max`
    /// (32768). Disk bandwidth is left open: Kennel cannot know the
    /// disk's (docs/RESOURCES.md).
    pub fn builtin_plan() -> Resources {
        Resources {
            memory: Some(Limit::Max(Size(1 << 30))),
            swap: Some(Size(512 << 20)),
            cpus: None,
            cpu_limit: Some(Limit::Max(Percent(100))),
            cpu_weight: Some(Weight::DEFAULT),
            cpumask: None,
            numproc: Some(Limit::Max(512)),
            numpty: Some(DEFAULT_NUMPTY),
            nofile: Some(524_288),
            io_weight: Some(Weight::DEFAULT),
            io_limit: Some(Limit::Unlimited),
            iops_limit: Some(Limit::Unlimited),
        }
    }

    /// These resources, with what they leave out taken from `plan`.
    pub fn over(&self, plan: &Resources) -> Resources {
        Resources {
            memory: self.memory.or(plan.memory),
            swap: self.swap.or(plan.swap),
            cpus: self.cpus.or(plan.cpus),
            cpu_limit: self.cpu_limit.or(plan.cpu_limit),
            cpu_weight: self.cpu_weight.or(plan.cpu_weight),
            cpumask: self.cpumask.clone().or_else(|| plan.cpumask.clone()),
            numproc: self.numproc.or(plan.numproc),
            numpty: self.numpty.or(plan.numpty),
            nofile: self.nofile.or(plan.nofile),
            io_weight: self.io_weight.or(plan.io_weight),
            io_limit: self.io_limit.or(plan.io_limit),
            iops_limit: self.iops_limit.or(plan.iops_limit),
        }
    }

    pub fn validate(&self) -> Result<()> {
        if let Some(Limit::Max(m)) = self.memory {
            if m.bytes() < MIN_MEMORY {
                return Err(VeError::BadInput(format!(
                    "memory {m} is too small: a VE needs at least 16M"
                )));
            }
        }
        if self.swap.is_some_and(|s| s.bytes() > 0) && self.memory.is_none() {
            return Err(VeError::BadInput(
                "--swap needs --memory (swap is counted on top of memory)".into(),
            ));
        }
        if self.numproc == Some(Limit::Max(0)) {
            return Err(VeError::BadInput("numproc must be at least 1".into()));
        }
        if let Some(n) = self.numpty {
            if !NUMPTY_RANGE.contains(&n) {
                return Err(VeError::BadInput(format!(
                    "numpty {n} is out of range: give {} to {} (the console takes one)",
                    NUMPTY_RANGE.start(),
                    NUMPTY_RANGE.end()
                )));
            }
        }
        if let Some(n) = self.nofile {
            if !NOFILE_RANGE.contains(&n) {
                return Err(VeError::BadInput(format!(
                    "nofile {n} is out of range: give {} to {} open files per process",
                    NOFILE_RANGE.start(),
                    NOFILE_RANGE.end()
                )));
            }
        }
        if let Some(c) = self.cpus {
            if !(c.is_finite() && c > 0.0 && c <= MAX_CPUS) {
                return Err(VeError::BadInput(format!(
                    "invalid CPU count {c}: give a number above 0, at most {MAX_CPUS}"
                )));
            }
        }
        if self.iops_limit == Some(Limit::Max(0)) || self.io_limit == Some(Limit::Max(Size(0))) {
            return Err(VeError::BadInput(
                "an I/O limit of 0 would stop the VE's disk: give a rate, or unlimited".into(),
            ));
        }
        Ok(())
    }

    /// The VE's pty limit.
    pub fn numpty(&self) -> u32 {
        self.numpty.unwrap_or(DEFAULT_NUMPTY)
    }

    /// The cgroup limits these resources mean (those the cgroup writers
    /// know so far: memory, swap, CPU time and weight, CPUs, processes).
    pub fn limits(&self) -> kennel_cgroup::Limits {
        let memory = self.memory.and_then(|m| m.max().map(|s| s.bytes()));
        let by_limit = self
            .cpu_limit
            .and_then(|l| l.max().map(|p| f64::from(p.get()) / 100.0));
        let cpu = match (self.cpus, by_limit) {
            (Some(a), Some(b)) => Some(a.min(b)),
            (a, b) => a.or(b),
        };
        kennel_cgroup::Limits {
            memory,
            swap: memory.map(|_| self.swap.map_or(0, Size::bytes)),
            cpu: cpu.map(kennel_cgroup::CpuLimit::from_cpus),
            pids: self.numproc.and_then(|n| n.max().copied()),
            cpu_weight: self.cpu_weight.map(Weight::get),
            cpuset: self.cpumask.as_ref().map(CpuSet::to_string),
            io: None,
            io_weight: self.io_weight.map(Weight::get),
        }
    }

    /// The disk limits, on the disks that hold `files` (the VE's own
    /// layer and its template: each a device number and the path it names
    /// in errors); `None` when both are unlimited.
    pub fn io_limits(
        &self,
        files: &[(u64, &std::path::Path)],
    ) -> Result<Option<kennel_cgroup::IoLimits>> {
        let bps = self.io_limit.and_then(|l| l.max().map(|s| s.bytes()));
        let iops = self.iops_limit.and_then(|l| l.max().copied());
        if bps.is_none() && iops.is_none() {
            return Ok(None);
        }
        Ok(Some(kennel_cgroup::IoLimits {
            devices: kennel_cgroup::disks_of(files)?,
            bps,
            iops,
        }))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_builtin_plan_limits_everything_that_can_hurt_the_host() {
        let p = Resources::builtin_plan();
        p.validate().expect("valid");
        let l = p.limits();
        assert!(l.memory.is_some() && l.pids.is_some() && l.cpu.is_some());
    }

    #[test]
    fn percentages() {
        assert_eq!(Percent::parse("50%").map(Percent::get).ok(), Some(50));
        assert_eq!(Percent::parse(" 150 ").map(Percent::get).ok(), Some(150));
        assert_eq!(
            Percent::parse("50%").map(|p| p.to_string()).ok().as_deref(),
            Some("50%")
        );
        for bad in ["0", "0%", "-5%", "50.5%", "%", "", "409601%", "lots"] {
            assert!(Percent::parse(bad).is_err(), "{bad:?}");
        }
    }

    #[test]
    fn weights() {
        assert_eq!(
            Weight::parse("500", "cpu weight").map(Weight::get).ok(),
            Some(500)
        );
        for bad in ["0", "10001", "-1", "1.5", "x"] {
            assert!(Weight::parse(bad, "cpu weight").is_err(), "{bad:?}");
        }
    }

    #[test]
    fn a_plan_fills_what_a_ve_leaves_out() {
        let plan = Resources {
            memory: Some(Limit::Max(Size(1 << 30))),
            swap: Some(Size(512 << 20)),
            cpu_limit: Some(Limit::Max(Percent(100))),
            numproc: Some(Limit::Max(512)),
            ..Resources::default()
        };
        let ve = Resources {
            memory: Some(Limit::Unlimited),
            numproc: Some(Limit::Max(64)),
            ..Resources::default()
        };
        let r = ve.over(&plan);
        assert_eq!(
            r.memory,
            Some(Limit::Unlimited),
            "unlimited on purpose stays"
        );
        assert_eq!(r.numproc, Some(Limit::Max(64)));
        assert_eq!(r.cpu_limit, Some(Limit::Max(Percent(100))), "from the plan");
        let l = r.limits();
        assert_eq!((l.memory, l.swap, l.pids), (None, None, Some(64)));
        assert_eq!(l.cpu, Some(kennel_cgroup::CpuLimit::from_cpus(1.0)));
    }

    #[test]
    fn the_tighter_of_cpus_and_cpu_limit_holds() {
        let r = Resources {
            cpus: Some(2.0),
            cpu_limit: Some(Limit::Max(Percent(50))),
            ..Resources::default()
        };
        assert_eq!(
            r.limits().cpu,
            Some(kennel_cgroup::CpuLimit::from_cpus(0.5))
        );
    }

    #[test]
    fn old_ve_conf_values_still_read() {
        let r: Resources =
            toml::from_str("memory = \"512M\"\nswap = \"256M\"\ncpus = 1.5\nnumproc = 100")
                .expect("decode");
        assert_eq!(r.memory, Some(Limit::Max(Size(512 << 20))));
        assert_eq!(r.numproc, Some(Limit::Max(100)));
        let full: Resources = toml::from_str(
            "memory = \"unlimited\"\ncpu_limit = \"50%\"\ncpu_weight = 300\ncpumask = \"0-1\"\nnofile = 65536\nio_weight = 400\nio_limit = \"50M\"\niops_limit = 1000",
        )
        .expect("decode");
        assert_eq!(
            toml::from_str::<Resources>(&toml::to_string(&full).expect("encode")).expect("again"),
            full
        );
        full.validate().expect("valid");
    }

    #[test]
    fn bad_plans_are_refused() {
        for text in [
            "memory = \"8M\"",
            "swap = \"1G\"",
            "numproc = 0",
            "nofile = 10",
            "iops_limit = 0",
            "io_limit = \"0\"",
            "numpty = 1",
        ] {
            let r: Resources = toml::from_str(text).expect(text);
            assert!(r.validate().is_err(), "{text}");
        }
        for text in ["cpu_weight = 0", "cpumask = \"9-1\"", "cpu_limit = \"0%\""] {
            assert!(toml::from_str::<Resources>(text).is_err(), "{text}");
        }
    }
}

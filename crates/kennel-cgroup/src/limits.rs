//! The resource model, written in each hierarchy's own dialect.

use std::fs;
use std::path::Path;

use crate::error::{io_err, CgroupError, Result};
use crate::host::{Hierarchy, HierarchyKind, Host};
use crate::tree::Part;

/// A CPU bandwidth limit: `quota_us` of CPU time per `period_us`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct CpuLimit {
    pub quota_us: u64,
    pub period_us: u64,
}

impl CpuLimit {
    /// The standard 100 ms period.
    pub const PERIOD_US: u64 = 100_000;

    /// `cpus` CPUs' worth of time (1.5 = one and a half CPUs).
    pub fn from_cpus(cpus: f64) -> Self {
        let quota = (cpus * Self::PERIOD_US as f64).round().max(1000.0) as u64;
        CpuLimit {
            quota_us: quota,
            period_us: Self::PERIOD_US,
        }
    }
}

/// Limits for one cgroup. `None` means unlimited.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Limits {
    /// Memory in bytes (RAM, page cache and kernel memory).
    pub memory: Option<u64>,
    /// Swap in bytes on top of `memory`. Needs `memory` on cgroup v1.
    pub swap: Option<u64>,
    pub cpu: Option<CpuLimit>,
    /// Processes and threads.
    pub pids: Option<u64>,
    /// Share of CPU time against sibling cgroups, 1 to 10000 with 100 for
    /// an even share (v2's `cpu.weight` scale).
    pub cpu_weight: Option<u16>,
    /// Host CPUs to run on, in the kernel's list format (`0-1,3`).
    pub cpuset: Option<String>,
    /// Disk bandwidth and operations.
    pub io: Option<IoLimits>,
    /// Share of disk time against sibling cgroups, on the `cpu_weight`
    /// scale. Only a scheduler that shares by weight honours it (BFQ, or
    /// v2's io.cost where the host set it up); elsewhere nothing is written.
    pub io_weight: Option<u16>,
}

/// Where a weight of disk time goes, if this kernel has a place for it:
/// the file and the value in its own range (BFQ's is 1 to 1000).
fn io_weight_file(dir: &Path, weight: u16) -> Option<(&'static str, String)> {
    let bfq = u64::from(weight).clamp(1, 1000);
    [
        ("io.weight", format!("default {weight}")),
        ("io.bfq.weight", format!("default {bfq}")),
        ("blkio.bfq.weight", bfq.to_string()),
    ]
    .into_iter()
    .find(|(f, _)| dir.join(f).exists())
}

/// Disk limits on some block devices, reads and writes each.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct IoLimits {
    pub devices: Vec<crate::BlockDevice>,
    /// Bytes per second.
    pub bps: Option<u64>,
    /// Operations per second.
    pub iops: Option<u64>,
}

impl IoLimits {
    /// v2's `io.max` line for `dev`.
    fn v2_line(&self, dev: crate::BlockDevice) -> String {
        let v = |n: Option<u64>| v2_max(n);
        format!(
            "{dev} rbps={} wbps={} riops={} wiops={}",
            v(self.bps),
            v(self.bps),
            v(self.iops),
            v(self.iops)
        )
    }

    /// v1's `blkio.throttle.*` files and values for `dev` (0: none).
    fn v1_lines(&self, dev: crate::BlockDevice) -> [(&'static str, String); 4] {
        let v = |n: Option<u64>| format!("{dev} {}", n.unwrap_or(0));
        [
            ("blkio.throttle.read_bps_device", v(self.bps)),
            ("blkio.throttle.write_bps_device", v(self.bps)),
            ("blkio.throttle.read_iops_device", v(self.iops)),
            ("blkio.throttle.write_iops_device", v(self.iops)),
        ]
    }
}

/// v1's `cpu.shares` for a v2 `cpu.weight` (100 = 1024, the default of
/// each; the kernel takes 2 to 262144).
pub(crate) fn shares(weight: u16) -> u64 {
    (u64::from(weight) * 1024 / 100).clamp(2, 262_144)
}

fn write(dir: &Path, file: &str, value: &str) -> Result<()> {
    let path = dir.join(file);
    fs::write(&path, value).map_err(io_err("write", path))
}

fn missing(controller: &'static str) -> CgroupError {
    CgroupError::MissingController {
        controller,
        hint: " on this host: mount it (cgroup v1) or enable it in the parent's \
               cgroup.subtree_control (cgroup v2)"
            .into(),
    }
}

pub(crate) fn v2_max(v: Option<u64>) -> String {
    v.map_or_else(|| "max".to_string(), |n| n.to_string())
}

/// The v1 memory controller's limit on TCP socket buffers.
pub(crate) const KMEM_TCP: &str = "memory.kmem.tcp.limit_in_bytes";

pub(crate) fn v1_max(v: Option<u64>) -> String {
    v.map_or_else(|| "-1".to_string(), |n| n.to_string())
}

/// The CFS period a v1 cpu cgroup has when it is made (the kernel's
/// `default_cfs_period()`, 100 ms).
const V1_NEW_CGROUP_PERIOD_US: u64 = 100_000;

/// Writes `limits` into the new cgroup `rel` of every hierarchy of `part`
/// that holds the controllers. A controller without a limit is left alone:
/// a new cgroup is unlimited already.
pub(crate) fn apply_new(host: &Host, rel: &Path, limits: &Limits, part: Part) -> Result<()> {
    let dir_of = |h: &Hierarchy| h.mount_point.join(rel);
    // A controller in a hierarchy outside `part` is someone else's job.
    let of = |c: &str| host.hierarchy_for(c).map(|h| (part.covers(h), h));
    let mem_needed = limits.memory.is_some() || limits.swap.is_some();
    match of("memory") {
        Some((false, _)) => {}
        Some(_) if !mem_needed => {}
        Some((true, h)) => {
            let d = dir_of(h);
            if h.kind == HierarchyKind::V2 {
                write(&d, "memory.max", &v2_max(limits.memory))?;
                if d.join("memory.swap.max").exists() {
                    write(&d, "memory.swap.max", &v2_max(limits.swap))?;
                }
            } else {
                // memsw must always be >= the memory limit: open it up first.
                let memsw = d.join("memory.memsw.limit_in_bytes");
                let has_memsw = memsw.exists();
                if has_memsw {
                    write(&d, "memory.memsw.limit_in_bytes", "-1")?;
                }
                write(&d, "memory.limit_in_bytes", &v1_max(limits.memory))?;
                // v1 charges socket buffers to a memory cgroup only once its
                // TCP limit is set (v2 always does): without it a VE could
                // hold the host's whole `tcp_mem` in its queues.
                if limits.memory.is_some() && d.join(KMEM_TCP).exists() {
                    write(&d, KMEM_TCP, &v1_max(limits.memory))?;
                }
                if has_memsw {
                    let total = match (limits.memory, limits.swap) {
                        (Some(m), Some(s)) => Some(m.saturating_add(s)),
                        _ => None,
                    };
                    write(&d, "memory.memsw.limit_in_bytes", &v1_max(total))?;
                }
            }
        }
        None if mem_needed => return Err(missing("memory")),
        None => {}
    }
    let cpu_needed = limits.cpu.is_some() || limits.cpu_weight.is_some();
    match of("cpu") {
        Some((false, _)) => {}
        Some(_) if !cpu_needed => {}
        Some((true, h)) => {
            let d = dir_of(h);
            let v2 = h.kind == HierarchyKind::V2;
            if let Some(c) = limits.cpu {
                if v2 {
                    write(&d, "cpu.max", &format!("{} {}", c.quota_us, c.period_us))?;
                } else {
                    // Each write checks the bandwidth of every task group
                    // on the host: a new cgroup has the default period.
                    if c.period_us != V1_NEW_CGROUP_PERIOD_US {
                        write(&d, "cpu.cfs_period_us", &c.period_us.to_string())?;
                    }
                    write(&d, "cpu.cfs_quota_us", &c.quota_us.to_string())?;
                }
            }
            if let Some(w) = limits.cpu_weight {
                if v2 {
                    write(&d, "cpu.weight", &w.to_string())?;
                } else {
                    write(&d, "cpu.shares", &shares(w).to_string())?;
                }
            }
        }
        None if cpu_needed => return Err(missing("cpu")),
        None => {}
    }
    match (of("io").or_else(|| of("blkio")), &limits.io) {
        (Some((true, h)), Some(io)) => {
            let d = dir_of(h);
            for &dev in &io.devices {
                if h.kind == HierarchyKind::V2 {
                    write(&d, "io.max", &io.v2_line(dev))?;
                } else {
                    for (file, line) in io.v1_lines(dev) {
                        write(&d, file, &line)?;
                    }
                }
            }
        }
        (None, Some(_)) => return Err(missing("io")),
        _ => {}
    }
    if let (Some((true, h)), Some(w)) = (of("io").or_else(|| of("blkio")), limits.io_weight) {
        let d = dir_of(h);
        if let Some((file, value)) = io_weight_file(&d, w) {
            write(&d, file, &value)?;
        }
    }
    match (of("cpuset"), &limits.cpuset) {
        (Some((true, h)), Some(cpus)) => write(&dir_of(h), "cpuset.cpus", cpus)?,
        (None, Some(_)) => return Err(missing("cpuset")),
        _ => {}
    }
    match of("pids") {
        Some((false, _)) => {}
        Some(_) if limits.pids.is_none() => {}
        Some((true, h)) => write(&dir_of(h), "pids.max", &v2_max(limits.pids))?,
        None if limits.pids.is_some() => return Err(missing("pids")),
        None => {}
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cpus_to_quota() {
        assert_eq!(CpuLimit::from_cpus(1.0).quota_us, 100_000);
        assert_eq!(CpuLimit::from_cpus(1.5).quota_us, 150_000);
        assert_eq!(
            CpuLimit::from_cpus(0.001).quota_us,
            1000,
            "kernel minimum is 1 ms"
        );
    }

    #[test]
    fn io_lines_in_each_dialect() {
        let dev = crate::BlockDevice {
            major: 254,
            minor: 0,
        };
        let io = IoLimits {
            devices: vec![dev],
            bps: Some(20 << 20),
            iops: None,
        };
        assert_eq!(
            io.v2_line(dev),
            "254:0 rbps=20971520 wbps=20971520 riops=max wiops=max"
        );
        let v1 = io.v1_lines(dev);
        assert_eq!(
            v1[1],
            ("blkio.throttle.write_bps_device", "254:0 20971520".into())
        );
        assert_eq!(
            v1[3],
            ("blkio.throttle.write_iops_device", "254:0 0".into())
        );
    }

    #[test]
    fn io_weight_goes_where_the_kernel_has_a_place() {
        let d = tempfile::tempdir().expect("tempdir");
        assert_eq!(
            io_weight_file(d.path(), 400),
            None,
            "no scheduler file: nothing"
        );
        fs::write(d.path().join("blkio.bfq.weight"), "100").expect("write");
        assert_eq!(
            io_weight_file(d.path(), 4000),
            Some(("blkio.bfq.weight", "1000".into())),
            "BFQ's range is 1-1000"
        );
        fs::write(d.path().join("io.weight"), "default 100").expect("write");
        assert_eq!(
            io_weight_file(d.path(), 400),
            Some(("io.weight", "default 400".into()))
        );
    }

    #[test]
    fn weights_to_shares() {
        assert_eq!(shares(100), 1024);
        assert_eq!(shares(500), 5120);
        assert_eq!(shares(1), 10);
        assert_eq!(shares(10_000), 102_400);
    }

    #[test]
    fn unlimited_spellings() {
        assert_eq!(v2_max(None), "max");
        assert_eq!(v1_max(None), "-1");
        assert_eq!(v2_max(Some(5)), "5");
    }
}

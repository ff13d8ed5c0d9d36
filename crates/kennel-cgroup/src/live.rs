//! Changing a running VE's limits: every controller's file written to the
//! whole new state, in an order the kernel accepts, with what each file
//! held before kept in a [`Journal`]. A refused write (memory below what
//! the VE uses on v1, a CPU the host lacks) puts back what was written
//! and returns the kernel's reason; a later step of the same change that
//! fails (saving `ve.conf`) undoes it all through the journal.
//!
//! Disk limits are not changed live yet: they take effect at the next
//! start.

use std::fs;
use std::path::PathBuf;

use crate::error::{CgroupError, Result};
use crate::host::HierarchyKind;
use crate::limits::{v1_max, v2_max, CpuLimit, Limits, KMEM_TCP};
use crate::tree::Cgroup;

/// Writes made to a running cgroup, each with the text its file held
/// before.
#[derive(Debug, Default)]
#[must_use = "a journal that is dropped cannot undo its change"]
pub struct Journal {
    done: Vec<(PathBuf, String)>,
}

impl Journal {
    /// Puts every written file back, the last first.
    pub fn undo(self) {
        for (path, old) in self.done.into_iter().rev() {
            let _ = fs::write(&path, old.trim_end());
        }
    }

    /// How many files the change wrote.
    pub fn len(&self) -> usize {
        self.done.len()
    }

    pub fn is_empty(&self) -> bool {
        self.done.is_empty()
    }
}

impl Cgroup<'_> {
    /// The files and values that put `limits` in force here, in order;
    /// no limit is written as the file's "unlimited".
    fn live_writes(&self, limits: &Limits) -> Vec<(PathBuf, String)> {
        let host = self.host();
        let mut w = Vec::new();
        if let Some(h) = host.hierarchy_for("memory") {
            let d = self.dir(h);
            if h.kind == HierarchyKind::V2 {
                w.push((d.join("memory.max"), v2_max(limits.memory)));
                if d.join("memory.swap.max").exists() {
                    w.push((d.join("memory.swap.max"), v2_max(limits.swap)));
                }
            } else {
                let memsw = d.join("memory.memsw.limit_in_bytes");
                let has_memsw = memsw.exists();
                // memsw may never be below memory: open it, then close it.
                if has_memsw {
                    w.push((memsw.clone(), "-1".into()));
                }
                w.push((d.join("memory.limit_in_bytes"), v1_max(limits.memory)));
                if d.join(KMEM_TCP).exists() {
                    w.push((d.join(KMEM_TCP), v1_max(limits.memory)));
                }
                if has_memsw {
                    let total = limits
                        .memory
                        .zip(limits.swap)
                        .map(|(m, s)| m.saturating_add(s));
                    w.push((memsw, v1_max(total)));
                }
            }
        }
        if let Some(h) = host.hierarchy_for("cpu") {
            let d = self.dir(h);
            let weight = limits.cpu_weight.unwrap_or(100);
            if h.kind == HierarchyKind::V2 {
                let max = match limits.cpu {
                    Some(c) => format!("{} {}", c.quota_us, c.period_us),
                    None => format!("max {}", CpuLimit::PERIOD_US),
                };
                w.push((d.join("cpu.max"), max));
                w.push((d.join("cpu.weight"), weight.to_string()));
            } else {
                let (quota, period) = match limits.cpu {
                    Some(c) => (c.quota_us.to_string(), c.period_us),
                    None => ("-1".into(), CpuLimit::PERIOD_US),
                };
                w.push((d.join("cpu.cfs_period_us"), period.to_string()));
                w.push((d.join("cpu.cfs_quota_us"), quota));
                w.push((
                    d.join("cpu.shares"),
                    crate::limits::shares(weight).to_string(),
                ));
            }
        }
        if let Some(h) = host.hierarchy_for("cpuset") {
            let d = self.dir(h);
            // No mask: all the parent's CPUs, named (v2 refuses an empty
            // list on most kernels once a list was set).
            let parents = if h.kind == HierarchyKind::V2 {
                "cpuset.cpus.effective"
            } else {
                "cpuset.cpus"
            };
            let cpus = match &limits.cpuset {
                Some(c) => Some(c.clone()),
                None => d
                    .parent()
                    .and_then(|p| fs::read_to_string(p.join(parents)).ok())
                    .map(|s| s.trim().to_string()),
            };
            if let Some(c) = cpus {
                w.push((d.join("cpuset.cpus"), c));
            }
        }
        if let Some(h) = host.hierarchy_for("pids") {
            w.push((self.dir(h).join("pids.max"), v2_max(limits.pids)));
        }
        w
    }

    /// Puts `limits` in force on this running cgroup (see the module).
    pub fn change_limits(&self, limits: &Limits) -> Result<Journal> {
        let mut journal = Journal::default();
        for (path, value) in self.live_writes(limits) {
            let old = match fs::read_to_string(&path) {
                Ok(old) => old,
                Err(source) => {
                    journal.undo();
                    return Err(CgroupError::Io {
                        op: "read",
                        path,
                        source,
                    });
                }
            };
            if old.trim() == value.trim() {
                continue;
            }
            if let Err(source) = fs::write(&path, &value) {
                journal.undo();
                return Err(CgroupError::Refused {
                    path,
                    value,
                    source,
                });
            }
            journal.done.push((path, old));
        }
        Ok(journal)
    }
}

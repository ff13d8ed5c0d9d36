//! What a VE's monitor watches its memory cgroups through, on cgroup v2.
//!
//! The kernel has 65,535 memory cgroup ids for the whole host. A VE's
//! live cgroups are capped (`cgroup.max.descendants`, see
//! [`crate::Cgroup::cap_cgroups`]), but a removed cgroup keeps its id
//! while it is *dying*: while any page charged to it (a tmpfs page, a
//! page in swap) is still there. The cap does not count those, so a
//! tenant that removes its cgroups with one such page each could hold
//! every id, and then no VE starts and no unit of the host's systemd
//! either. `cgroup.stat` counts them (`nr_dying_descendants`); the
//! monitor reads it on a timer, asks the kernel to reclaim
//! (`memory.reclaim`: page cache is what holds most dying cgroups of an
//! honest VE) and ends a VE that stays over its budget (kennel-monitor's
//! `guard`).

use std::os::fd::OwnedFd;

use rustix::fs::{Mode, OFlags};

use crate::error::{io_err, Result};
use crate::host::HierarchyKind;
use crate::tree::Cgroup;

/// The VE cgroup's files the monitor is handed.
#[derive(Debug)]
pub struct MemoryWatch {
    /// `cgroup.stat`, read.
    pub stat: OwnedFd,
    /// `memory.reclaim`, written (Linux 5.19 and later).
    pub reclaim: Option<OwnedFd>,
}

impl Cgroup<'_> {
    /// Opens the files the VE's monitor watches this cgroup's memory
    /// cgroups through; `None` where memory is cgroup v1 (a VE makes no
    /// memory cgroups there: the hierarchy is not delegated).
    pub fn open_memory_watch(&self) -> Result<Option<MemoryWatch>> {
        let Some(h) = self
            .host()
            .hierarchy_for("memory")
            .filter(|h| h.kind == HierarchyKind::V2)
        else {
            return Ok(None);
        };
        let dir = self.dir(h);
        let open = |name: &str, access: OFlags| -> std::io::Result<OwnedFd> {
            let p = dir.join(name);
            Ok(rustix::fs::open(
                &p,
                access | OFlags::NOFOLLOW | OFlags::CLOEXEC,
                Mode::empty(),
            )?)
        };
        let stat = open("cgroup.stat", OFlags::RDONLY)
            .map_err(io_err("open", &dir.join("cgroup.stat")))?;
        let reclaim = open("memory.reclaim", OFlags::WRONLY).ok();
        Ok(Some(MemoryWatch { stat, reclaim }))
    }
}

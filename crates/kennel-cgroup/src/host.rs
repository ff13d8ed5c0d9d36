//! Discovering the host's cgroup hierarchies.

use std::fs;
use std::path::{Path, PathBuf};

use crate::error::{io_err, CgroupError, Result};
use crate::mountinfo::cgroup_mounts;
use crate::tree::Cgroup;

/// Where cgroup hierarchies are mounted by convention, and where a VE sees
/// them.
pub const CGROUP_ROOT: &str = "/sys/fs/cgroup";

/// What kind of hierarchy a mount is.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum HierarchyKind {
    /// A cgroup v1 hierarchy, with its controllers and optional `name=`.
    V1 { name: Option<String> },
    /// The cgroup v2 (unified) hierarchy.
    V2,
}

/// One mounted cgroup hierarchy.
#[derive(Debug, Clone)]
pub struct Hierarchy {
    /// Where the hierarchy is mounted on the host.
    pub mount_point: PathBuf,
    pub kind: HierarchyKind,
    /// Controllers bound to it (v1), or offered by its root (v2).
    pub controllers: Vec<String>,
}

impl Hierarchy {
    /// Path of this hierarchy below `/sys/fs/cgroup`: empty for a pure v2
    /// host, `memory`, `unified`, ... otherwise. `None` if it is mounted
    /// somewhere else (such mounts are joined but not shown inside VEs).
    pub fn subdir(&self) -> Option<&Path> {
        self.mount_point.strip_prefix(CGROUP_ROOT).ok()
    }

    pub fn has_controller(&self, c: &str) -> bool {
        self.controllers.iter().any(|x| x == c)
    }

    /// This hierarchy's line in `/proc/PID/cgroup` matches `field` (the
    /// controller list, `name=...`, or empty for v2).
    pub(crate) fn matches_proc_field(&self, field: &str) -> bool {
        match &self.kind {
            HierarchyKind::V2 => field.is_empty(),
            HierarchyKind::V1 { name } => {
                let mut want: Vec<String> = self.controllers.clone();
                if let Some(n) = name {
                    want.push(format!("name={n}"));
                }
                let mut have: Vec<&str> = field.split(',').filter(|s| !s.is_empty()).collect();
                have.sort_unstable();
                want.sort_unstable();
                have == want.iter().map(String::as_str).collect::<Vec<_>>()
            }
        }
    }
}

/// V1 controllers we know; superblock options that are not one of these
/// (rw, xattr, noprefix, ...) are mount flags, not controllers.
const V1_CONTROLLERS: &[&str] = &[
    "blkio",
    "cpu",
    "cpuacct",
    "cpuset",
    "devices",
    "freezer",
    "hugetlb",
    "memory",
    "net_cls",
    "net_prio",
    "perf_event",
    "pids",
    "rdma",
    "misc",
];

/// The cgroup hierarchies mounted on this host.
#[derive(Debug, Clone)]
pub struct Host {
    hierarchies: Vec<Hierarchy>,
}

impl Host {
    /// Reads the hierarchies from `/proc/self/mountinfo` (see
    /// [`Host::detect_cached`] for commands that run often).
    pub fn detect() -> Result<Self> {
        let text = fs::read_to_string("/proc/self/mountinfo")
            .map_err(io_err("read", "/proc/self/mountinfo"))?;
        let mut hierarchies: Vec<Hierarchy> = Vec::new();
        for m in cgroup_mounts(&text) {
            let h = if m.fstype == "cgroup2" {
                let mount_point = PathBuf::from(&m.mount_point);
                Hierarchy {
                    controllers: Host::v2_controllers(&mount_point),
                    mount_point,
                    kind: HierarchyKind::V2,
                }
            } else {
                let mut name = None;
                let mut controllers = Vec::new();
                for o in m.super_options.split(',') {
                    if let Some(n) = o.strip_prefix("name=") {
                        name = Some(n.to_string());
                    } else if V1_CONTROLLERS.contains(&o) {
                        controllers.push(o.to_string());
                    }
                }
                Hierarchy {
                    mount_point: m.mount_point.into(),
                    kind: HierarchyKind::V1 { name },
                    controllers,
                }
            };
            // The same hierarchy may be mounted twice; keep the first mount,
            // preferring one below /sys/fs/cgroup.
            if let Some(prev) = hierarchies
                .iter_mut()
                .find(|p| p.kind == h.kind && p.controllers == h.controllers)
            {
                if prev.subdir().is_none() && h.subdir().is_some() {
                    *prev = h;
                }
                continue;
            }
            hierarchies.push(h);
        }
        Host::from_hierarchies(hierarchies)
    }

    /// A host with these hierarchies; at least one.
    pub(crate) fn from_hierarchies(hierarchies: Vec<Hierarchy>) -> Result<Self> {
        if hierarchies.is_empty() {
            return Err(CgroupError::NotMounted);
        }
        Ok(Host { hierarchies })
    }

    /// The controllers the v2 hierarchy at `mount_point` offers.
    pub(crate) fn v2_controllers(mount_point: &Path) -> Vec<String> {
        fs::read_to_string(mount_point.join("cgroup.controllers"))
            .unwrap_or_default()
            .split_whitespace()
            .map(str::to_string)
            .collect()
    }

    pub fn hierarchies(&self) -> &[Hierarchy] {
        &self.hierarchies
    }

    /// True if the host has the unified hierarchy (pure v2, or hybrid):
    /// then a VE gets only that (see `Cgroup::delegate`).
    pub fn has_v2(&self) -> bool {
        self.hierarchies.iter().any(|h| h.kind == HierarchyKind::V2)
    }

    /// A short description: `v2`, `v1` or `hybrid (v1 + v2)`.
    pub fn layout_name(&self) -> &'static str {
        let v1 = self.hierarchies.iter().any(|h| h.kind != HierarchyKind::V2);
        match (v1, self.has_v2()) {
            (false, _) => "v2",
            (true, false) => "v1",
            (true, true) => "hybrid (v1 + v2)",
        }
    }

    /// The hierarchy that holds `controller`: a v1 hierarchy bound to it,
    /// else the unified one if it offers it.
    pub fn hierarchy_for(&self, controller: &str) -> Option<&Hierarchy> {
        self.hierarchies
            .iter()
            .find(|h| matches!(h.kind, HierarchyKind::V1 { .. }) && h.has_controller(controller))
            .or_else(|| {
                self.hierarchies
                    .iter()
                    .find(|h| h.kind == HierarchyKind::V2 && h.has_controller(controller))
            })
    }

    /// The cgroup at `rel` (e.g. `kennel/101`) in every hierarchy.
    pub fn cgroup(&self, rel: &str) -> Cgroup<'_> {
        Cgroup::new(self, rel)
    }
}

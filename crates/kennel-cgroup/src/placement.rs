//! Entering a cgroup without the kernel's global cgroup lock.

use std::os::fd::{BorrowedFd, OwnedFd, RawFd};
use std::path::PathBuf;

use rustix::fs::{open, Mode, OFlags};

use crate::error::{io_err, Result};
use crate::host::{Hierarchy, HierarchyKind};

/// Everything a new process needs to enter a cgroup in every hierarchy
/// without the global cgroup lock.
///
/// Moving a process with `cgroup.procs` takes the kernel's
/// `cgroup_threadgroup_rwsem` for writing, which waits for an RCU grace
/// period (10-20 ms) on every first move after a quiet spell. Two ways
/// avoid it, and a start uses both:
///
/// * cgroup v2: the parent creates the child directly in the cgroup with
///   `clone3(CLONE_INTO_CGROUP)` ([`Placement::clone_into`]);
/// * cgroup v1: the single-threaded child moves *itself* by writing `0` to
///   each hierarchy's `tasks` file ([`Placement::join_self`]), which the
///   kernel does without that lock. The files are opened by root, or by
///   the VE's root once [`crate::Cgroup::delegate`] handed them over.
#[derive(Debug)]
pub struct Placement {
    clone_into: Option<OwnedFd>,
    tasks: Vec<(PathBuf, OwnedFd)>,
}

impl Placement {
    pub(crate) fn open(targets: &[(&Hierarchy, PathBuf)]) -> Result<Self> {
        let mut clone_into = None;
        let mut tasks = Vec::new();
        for (h, dir) in targets {
            if h.kind == HierarchyKind::V2 {
                if clone_into.is_none() {
                    let fd = open(
                        dir,
                        OFlags::PATH | OFlags::DIRECTORY | OFlags::CLOEXEC,
                        Mode::empty(),
                    )
                    .map_err(|e| io_err("open", dir)(e.into()))?;
                    clone_into = Some(fd);
                }
            } else {
                let p = dir.join("tasks");
                let fd = open(&p, OFlags::WRONLY | OFlags::CLOEXEC, Mode::empty())
                    .map_err(|e| io_err("open", &p)(e.into()))?;
                tasks.push((p, fd));
            }
        }
        Ok(Placement { clone_into, tasks })
    }

    /// The cgroup v2 directory to pass to `clone3(CLONE_INTO_CGROUP)`.
    pub fn clone_into(&self) -> Option<BorrowedFd<'_>> {
        use std::os::fd::AsFd;
        self.clone_into.as_ref().map(|f| f.as_fd())
    }

    /// The descriptors this placement holds (to keep them across a
    /// close-everything-else).
    pub fn raw_fds(&self) -> impl Iterator<Item = RawFd> + '_ {
        use std::os::fd::AsRawFd;
        self.clone_into
            .iter()
            .chain(self.tasks.iter().map(|(_, f)| f))
            .map(|f| f.as_raw_fd())
    }

    /// Moves the calling thread (which must be its process's only thread)
    /// into the cgroup of every v1 hierarchy.
    pub fn join_self(&self) -> Result<()> {
        for (p, fd) in &self.tasks {
            rustix::io::write(fd, b"0").map_err(|e| io_err("join", p)(e.into()))?;
        }
        Ok(())
    }
}

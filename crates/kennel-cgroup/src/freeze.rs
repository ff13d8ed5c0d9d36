//! Freezing a VE: every process in its cgroup stops where it is, so that a
//! snapshot of its disk is of one moment.
//!
//! cgroup v2 freezes a cgroup and its descendants through `cgroup.freeze`
//! (a core file: the hybrid layout's cgroup2 has it too) and says when it
//! is done in `cgroup.events`; v1 has the `freezer` controller, whose
//! `freezer.state` reads FROZEN when it is done. The VE cannot undo
//! either: on v2 it writes only below its own cgroup (a parent's freeze
//! holds over a child's), and on v1 it is given no freezer.

use std::fs;
use std::path::PathBuf;
use std::time::{Duration, Instant};

use crate::error::{io_err, CgroupError, Result};
use crate::host::HierarchyKind;
use crate::tree::Cgroup;

/// How the VE is frozen.
enum Freezer {
    V2(PathBuf),
    V1(PathBuf),
}

impl Cgroup<'_> {
    fn freezer(&self) -> Option<Freezer> {
        let hs = self.host().hierarchies();
        let v2 = hs
            .iter()
            .filter(|h| h.kind == HierarchyKind::V2)
            .map(|h| self.dir(h).join("cgroup.freeze"))
            .find(|f| f.exists());
        if let Some(f) = v2 {
            // On the hybrid layout the VE's processes join the cgroup2
            // tree as well, so freezing there freezes them all.
            return Some(Freezer::V2(f));
        }
        hs.iter()
            .filter(|h| h.has_controller("freezer") && h.kind != HierarchyKind::V2)
            .map(|h| self.dir(h).join("freezer.state"))
            .find(|f| f.exists())
            .map(Freezer::V1)
    }

    /// Freezes (`true`) or thaws every process of the cgroup, and waits up
    /// to `timeout` until the kernel says they all are.
    pub fn freeze(&self, frozen: bool, timeout: Duration) -> Result<()> {
        let Some(f) = self.freezer() else {
            return Err(CgroupError::Unsupported(
                "no freezer for the VE's cgroup: the host has neither cgroup v2 nor the v1 freezer controller".into(),
            ));
        };
        let deadline = Instant::now() + timeout;
        let done = || -> bool {
            match &f {
                Freezer::V2(file) => {
                    let events = file.with_file_name("cgroup.events");
                    let want = if frozen { "frozen 1" } else { "frozen 0" };
                    fs::read_to_string(events).is_ok_and(|t| t.lines().any(|l| l == want))
                }
                Freezer::V1(file) => {
                    let want = if frozen { "FROZEN" } else { "THAWED" };
                    fs::read_to_string(file).is_ok_and(|t| t.trim() == want)
                }
            }
        };
        let (file, value) = match &f {
            Freezer::V2(file) => (file, if frozen { "1" } else { "0" }),
            Freezer::V1(file) => (file, if frozen { "FROZEN" } else { "THAWED" }),
        };
        fs::write(file, value).map_err(io_err("write", file))?;
        while !done() {
            if Instant::now() > deadline {
                if frozen {
                    let _ = fs::write(
                        file,
                        if matches!(f, Freezer::V2(_)) {
                            "0"
                        } else {
                            "THAWED"
                        },
                    );
                }
                return Err(CgroupError::FreezeTimeout { path: file.clone() });
            }
            std::thread::sleep(Duration::from_millis(1));
        }
        Ok(())
    }
}

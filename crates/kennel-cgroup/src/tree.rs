//! One Kennel-made cgroup across every mounted hierarchy.

use std::fs;
use std::io;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use crate::error::{io_err, mkdir_err, CgroupError, Result};
use crate::host::{Hierarchy, HierarchyKind, Host};
use crate::limits::{self, Limits};
use crate::placement::Placement;
use crate::walk;

/// Controllers Kennel enables for its cgroups on cgroup v2.
const V2_CONTROLLERS: &[&str] = &["cpu", "cpuset", "io", "memory", "pids"];

/// Files a delegated cgroup's owner may write (cgroup v2, see
/// Documentation/admin-guide/cgroup-v2.rst "Delegation"); the kernel lists
/// more in /sys/kernel/cgroup/delegate. On v1 owning the directory is
/// enough to create and fill sub-cgroups (moving a process needs write
/// access to the destination only); `tasks` lets the VE's init move itself
/// in (see [`Placement::join_self`]).
const V2_DELEGATE: &[&str] = &["cgroup.procs", "cgroup.threads", "cgroup.subtree_control"];
const V1_DELEGATE: &[&str] = &["tasks"];

// On cgroup v1 a VE shapes (makes sub-cgroups in) at most the named
// hierarchies, systemd's, and only on a pure v1 host (on a hybrid one,
// systemd tracks its units in the bounded cgroup2 subtree): never one
// with a controller. v1 has no limit on
// how many cgroups a subtree may hold, and every cgroup of the memory
// controller takes one of the host's 65,535 memory cgroup ids: one VE
// could leave no VE room to start and the host's own systemd none for its
// units. The others are no better: the freezer (frozen tasks ignore
// SIGKILL: an unkillable VE), cpuset (`cpuset.sched_relax_domain_level`
// and `sched_load_balance` rebuild the host's scheduler domains), and
// every sub-cgroup costs the host time at the VE's stop. systemd in a VE
// needs none of them: it tracks its units in its named hierarchy (and, on
// a hybrid host, in the delegated cgroup2 subtree, which is bounded) and
// carries on without controllers it cannot use.
//
// Nor a named hierarchy where a cgroup2 one exists: v1 cannot bound its
// count either, and a v1 cgroup costs the host some 6 KiB its memory
// cgroup is not charged for (measured: 20,000 cost 122 MiB of slab, 7.6
// MiB charged). On a pure v1 host systemd needs its named hierarchy, so
// there it is delegated (SECURITY.md says what that costs).
//
// In a named hierarchy a VE may set `notify_on_release` on the cgroups it
// makes: if the host configured a `release_agent` there, the host runs it
// when they empty (`kennel check` warns).

/// On cgroup v2 a VE's cgroup (`<parent>/<id>`) stays the host's: it
/// holds the limits, and enables every controller but cpuset for the one
/// cgroup below it, `ve`, which is all the VE gets (its init, its cgroup
/// namespace's root, its delegation). A VE given cpuset could make cpuset
/// partitions: on 6.1-6.5 kernels each flip from an invalid partition back
/// to a member rebuilds the host's scheduler domains, walking every task
/// under global locks. Its limits still hold below: processes in `ve` are
/// confined by the nearest cgroup with cpuset, the VE's.
pub const VE_DELEGATED: &str = "ve";

/// Controllers a VE's delegated cgroup never gets (see [`VE_DELEGATED`]).
const V2_NOT_DELEGATED: &[&str] = &["cpuset"];

/// Limits on the cgroup tree a VE may build below its own (cgroup v2):
/// enough for systemd (a Debian VE uses a few dozen) and a few nested
/// containers, and bounded so that the host can always walk and remove it
/// and the VEs together do not run the host out of memory cgroup ids
/// (65,535; `kennel check` reports how many are used).
const V2_MAX_DEPTH: &str = "32";
const V2_MAX_DESCENDANTS: &str = "1024";

/// Which of a host's hierarchies an operation touches. A start makes the
/// [`Part::Early`] part before the VE's init exists, and the
/// [`Part::Late`] part in parallel with the rest of the start (see
/// `kennel_runtime::launch`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Part {
    All,
    /// cgroup v2 (the VE's init is cloned straight into it) and the v1
    /// memory hierarchy (so that everything the VE allocates from its
    /// first moment is charged to it).
    Early,
    /// The other v1 hierarchies.
    Late,
}

impl Part {
    pub(crate) fn covers(self, h: &Hierarchy) -> bool {
        let early = h.kind == HierarchyKind::V2 || h.has_controller("memory");
        match self {
            Part::All => true,
            Part::Early => early,
            Part::Late => !early,
        }
    }
}

/// Resource usage of a cgroup.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Usage {
    /// Memory charged, in bytes.
    pub memory: Option<u64>,
    /// Processes and threads.
    pub tasks: Option<u64>,
    /// Processes the OOM killer of its memory limit killed since it was
    /// made.
    pub oom_kills: Option<u64>,
}

/// The cgroup `rel` in every hierarchy of a [`Host`].
#[derive(Debug, Clone)]
pub struct Cgroup<'h> {
    host: &'h Host,
    rel: PathBuf,
}

impl<'h> Cgroup<'h> {
    pub(crate) fn new(host: &'h Host, rel: &str) -> Self {
        Cgroup {
            host,
            rel: PathBuf::from(rel.trim_start_matches('/')),
        }
    }

    pub(crate) fn dir(&self, h: &Hierarchy) -> PathBuf {
        h.mount_point.join(&self.rel)
    }

    pub(crate) fn host(&self) -> &'h Host {
        self.host
    }

    pub fn exists(&self) -> bool {
        self.host.hierarchies().iter().any(|h| self.dir(h).is_dir())
    }

    /// Creates the cgroup (and missing parents) in every hierarchy. On v2,
    /// enables Kennel's controllers in every parent Kennel created; on v1,
    /// fills new cpusets with their parent's CPUs and memory nodes.
    pub fn create(&self) -> Result<()> {
        self.create_part(Part::All)
    }

    /// [`Cgroup::create`] for the hierarchies of `part` only.
    pub fn create_part(&self, part: Part) -> Result<()> {
        for h in self.host.hierarchies().iter().filter(|h| part.covers(h)) {
            let leaf = self.dir(h);
            // Usually only the leaf is missing: one mkdir per hierarchy.
            match fs::create_dir(&leaf) {
                Ok(()) => {
                    // On v2 the parent's controllers too, as the walk below
                    // enables them: another start may have made the parent
                    // a moment ago and not enabled them yet (parallel
                    // starts on a fresh root), and the leaf would get no
                    // limits' files. Two reads when they are there.
                    if h.kind == HierarchyKind::V2 {
                        if let Some(parent) = leaf.parent().filter(|p| *p != h.mount_point) {
                            enable_v2_controllers(parent, &[])?;
                        }
                    }
                    self.created(h, &leaf, Made::Leaf)?;
                    continue;
                }
                Err(e) if e.kind() == io::ErrorKind::AlreadyExists => continue,
                Err(e) if e.kind() == io::ErrorKind::NotFound => {}
                Err(e) => return Err(mkdir_err(&leaf)(e)),
            }
            let mut path = h.mount_point.clone();
            let comps: Vec<_> = self.rel.components().collect();
            for (i, c) in comps.iter().enumerate() {
                path.push(c);
                let made = if i + 1 < comps.len() {
                    Made::Parent
                } else {
                    Made::Leaf
                };
                match fs::create_dir(&path) {
                    Ok(()) => self.created(h, &path, made)?,
                    Err(e) if e.kind() == io::ErrorKind::AlreadyExists => {}
                    Err(e) => return Err(mkdir_err(&path)(e)),
                }
                if i + 1 < comps.len() && h.kind == HierarchyKind::V2 {
                    enable_v2_controllers(&path, &[])?;
                }
            }
        }
        Ok(())
    }

    /// A v1 cpuset starts with no CPUs and no memory nodes: give it its
    /// parent's. A parent Kennel makes gets `cgroup.clone_children`, so
    /// that the kernel copies them into each VE's cgroup at its mkdir:
    /// writing `cpuset.cpus` checks every sibling and rebuilds the
    /// scheduler's domains, 5% of a start with 5,000 VEs running. A leaf
    /// whose parent Kennel did not make (or an older Kennel made) is
    /// still filled by hand.
    ///
    /// Starts on a fresh root race here: one makes the parent and has not
    /// filled it yet when another makes its leaf below it, and copies
    /// nothing (a cpuset without CPUs refuses every task: ENOSPC). So a
    /// leaf or parent is filled from the nearest ancestor that is,
    /// filling the ones between on the way (the same values, whoever
    /// writes them first).
    fn created(&self, h: &Hierarchy, dir: &Path, made: Made) -> Result<()> {
        if !h.has_controller("cpuset") || h.kind == HierarchyKind::V2 {
            return Ok(());
        }
        fill_cpuset(dir, &h.mount_point)?;
        if let Made::Parent = made {
            let flag = dir.join("cgroup.clone_children");
            fs::write(&flag, "1").map_err(io_err("write", flag))?;
        }
        Ok(())
    }

    /// Writes the limits that are set into a cgroup just created (which is
    /// unlimited until now).
    pub fn apply_new_limits(&self, limits: &Limits, part: Part) -> Result<()> {
        limits::apply_new(self.host, &self.rel, limits, part)
    }

    /// Where the VE's processes go in hierarchy `h`: [`VE_DELEGATED`] below
    /// this cgroup on cgroup v2, this cgroup itself on v1.
    fn ve_dir(&self, h: &Hierarchy) -> PathBuf {
        let d = self.dir(h);
        if h.kind == HierarchyKind::V2 {
            d.join(VE_DELEGATED)
        } else {
            d
        }
    }

    /// A new VE cgroup in the hierarchies of `part`: created, limited and
    /// delegated to the VE's root (`owner`): on v2 its [`VE_DELEGATED`]
    /// cgroup.
    pub fn prepare(&self, limits: &Limits, owner: (u32, u32), part: Part) -> Result<()> {
        self.create_part(part)?;
        self.apply_new_limits(limits, part)?;
        for h in self.host.hierarchies().iter().filter(|h| part.covers(h)) {
            if h.kind == HierarchyKind::V2 {
                enable_v2_controllers(&self.dir(h), V2_NOT_DELEGATED)?;
                let inner = self.ve_dir(h);
                match fs::create_dir(&inner) {
                    Err(e) if e.kind() != io::ErrorKind::AlreadyExists => {
                        return Err(io_err("create", inner)(e))
                    }
                    _ => {}
                }
            }
        }
        self.delegate(owner.0, owner.1, part)
    }

    /// Hands the VE's part of the cgroup to `uid`/`gid` (the VE's root)
    /// so that the VE can manage its own sub-cgroups, while the limit
    /// files stay root's.
    fn delegate(&self, uid: u32, gid: u32, part: Part) -> Result<()> {
        let mut extra = None;
        let has_v2 = self.host.has_v2();
        for h in self.host.hierarchies().iter().filter(|h| part.covers(h)) {
            let d = self.ve_dir(h);
            let (shapeable, files): (bool, Vec<&str>) = if h.kind == HierarchyKind::V2 {
                for (f, v) in [
                    ("cgroup.max.depth", V2_MAX_DEPTH),
                    ("cgroup.max.descendants", V2_MAX_DESCENDANTS),
                ] {
                    let p = d.join(f);
                    fs::write(&p, v).map_err(io_err("write", p))?;
                }
                let extra = extra.get_or_insert_with(|| {
                    fs::read_to_string("/sys/kernel/cgroup/delegate").unwrap_or_default()
                });
                (
                    true,
                    V2_DELEGATE
                        .iter()
                        .copied()
                        .chain(extra.split_whitespace())
                        .collect(),
                )
            } else {
                // See the note on v1 at the top.
                (h.controllers.is_empty() && !has_v2, V1_DELEGATE.to_vec())
            };
            if shapeable {
                chown(&d, uid, gid)?;
            }
            for f in files {
                let p = d.join(f);
                match std::os::unix::fs::chown(&p, Some(uid), Some(gid)) {
                    Err(e) if e.kind() != io::ErrorKind::NotFound => {
                        return Err(io_err("chown", p)(e))
                    }
                    _ => {}
                }
            }
        }
        Ok(())
    }

    /// How a new process gets into this cgroup without waiting; see
    /// [`Placement`].
    pub fn placement(&self) -> Result<Placement> {
        self.placement_part(Part::All)
    }

    /// [`Cgroup::placement`] for the hierarchies of `part` only.
    pub fn placement_part(&self, part: Part) -> Result<Placement> {
        self.placement_in(part, |h| self.dir(h))
    }

    /// How a VE's init gets into its cgroups ([`Cgroup::prepare`]d) in the
    /// hierarchies of `part`.
    pub fn ve_placement_part(&self, part: Part) -> Result<Placement> {
        self.placement_in(part, |h| self.ve_dir(h))
    }

    fn placement_in(&self, part: Part, dir: impl Fn(&Hierarchy) -> PathBuf) -> Result<Placement> {
        let targets: Vec<(&Hierarchy, PathBuf)> = self
            .host
            .hierarchies()
            .iter()
            .filter(|h| part.covers(h))
            .map(|h| (h, dir(h)))
            .collect();
        Placement::open(&targets)
    }

    /// Like [`Cgroup::placement`], but into the cgroups that process
    /// `peer` is in, which must lie inside this cgroup. Used by `exec`: on
    /// cgroup v2 a VE whose init enabled controllers cannot take processes
    /// in its top cgroup, so new processes join init's own (leaf) cgroup.
    pub fn placement_beside(&self, peer: i32) -> Result<Placement> {
        let proc_path = format!("/proc/{peer}/cgroup");
        let text = fs::read_to_string(&proc_path).map_err(io_err("read", &proc_path))?;
        let mut targets = Vec::new();
        for h in self.host.hierarchies() {
            let mut target = self.ve_dir(h);
            for line in text.lines() {
                let mut parts = line.splitn(3, ':');
                let (_, field, path) = (parts.next(), parts.next(), parts.next());
                let (Some(field), Some(path)) = (field, path) else {
                    continue;
                };
                if !h.matches_proc_field(field) {
                    continue;
                }
                let rel = Path::new(path.trim_start_matches('/'));
                let own = if h.kind == HierarchyKind::V2 {
                    self.rel.join(VE_DELEGATED)
                } else {
                    self.rel.clone()
                };
                if rel.starts_with(&own) && !path.contains("/../") {
                    target = h.mount_point.join(rel);
                }
                break;
            }
            targets.push((h, target));
        }
        Placement::open(&targets)
    }

    /// Sets the process limit of this cgroup and all below it to `max`
    /// (`pids.max`, where the cgroup exists in the hierarchy that holds
    /// `pids`): Kennel's parent of all VEs follows `kernel.pid_max`.
    pub fn set_tasks(&self, max: u64) -> Result<()> {
        let Some(h) = self.host.hierarchy_for("pids") else {
            return Ok(());
        };
        let file = self.dir(h).join("pids.max");
        fs::write(&file, max.to_string()).map_err(io_err("write", &file))
    }

    /// Caps the cgroups below this one at `max` (`cgroup.max.descendants`)
    /// where the memory controller is cgroup v2: there every cgroup a VE
    /// makes with memory enabled takes one of the kernel's 65,535 memory
    /// cgroup ids, which the host shares. On v1 a VE makes no memory
    /// cgroups (the hierarchy is not delegated to it). One read when the
    /// cap is already right.
    pub fn cap_cgroups(&self, max: u64) -> Result<()> {
        let Some(h) = self
            .host
            .hierarchy_for("memory")
            .filter(|h| h.kind == HierarchyKind::V2)
        else {
            return Ok(());
        };
        cap_file(&self.dir(h).join("cgroup.max.descendants"), max)
    }

    /// The process limit written on this cgroup (`pids.max`, when it is
    /// a number, not `max`): one read.
    pub fn pids_limit(&self) -> Option<u64> {
        let h = self.host.hierarchy_for("pids")?;
        fs::read_to_string(self.dir(h).join("pids.max"))
            .ok()?
            .trim()
            .parse()
            .ok()
    }

    /// Memory and task counts, and OOM kills.
    pub fn usage(&self) -> Usage {
        Usage {
            oom_kills: self.oom_kills(),
            ..self.memory_and_tasks()
        }
    }

    /// Memory and task counts only (what `list` shows: a file fewer to
    /// read per VE).
    pub fn memory_and_tasks(&self) -> Usage {
        let read = |h: Option<&Hierarchy>, v1: &str, v2: &str| -> Option<u64> {
            let h = h?;
            let f = if h.kind == HierarchyKind::V2 { v2 } else { v1 };
            fs::read_to_string(self.dir(h).join(f))
                .ok()?
                .trim()
                .parse()
                .ok()
        };
        Usage {
            memory: read(
                self.host.hierarchy_for("memory"),
                "memory.usage_in_bytes",
                "memory.current",
            ),
            tasks: read(
                self.host.hierarchy_for("pids"),
                "pids.current",
                "pids.current",
            ),
            oom_kills: None,
        }
    }

    /// Descriptors open in this cgroup's processes (and its descendants'),
    /// counted in `/proc/PID/fd`; `None` when the count did not finish by
    /// `deadline` (a VE may hold millions). Threads share their process's
    /// table: each process is counted once.
    pub fn open_files(&self, deadline: Instant) -> Option<u64> {
        let mut pids = std::collections::BTreeSet::new();
        self.for_each_pid(deadline, &mut |pid| {
            pids.insert(pid);
        })
        .ok()?;
        let mut total = 0u64;
        for pid in pids {
            let Ok(dir) = fs::read_dir(format!("/proc/{pid}/fd")) else {
                continue; // gone meanwhile, or a thread id of v1's tasks
            };
            for _ in dir {
                total += 1;
                if total.is_multiple_of(4096) && Instant::now() >= deadline {
                    return None;
                }
            }
        }
        (Instant::now() < deadline).then_some(total)
    }

    /// Calls `f` with every PID in this cgroup and its descendants, in
    /// every hierarchy, giving up at `deadline`.
    fn for_each_pid(&self, deadline: Instant, f: &mut dyn FnMut(i32)) -> Result<()> {
        for h in self.host.hierarchies() {
            let d = self.dir(h);
            walk::for_each_pid(&d, deadline, f).map_err(|e| self.walk_err(e, d))?;
        }
        Ok(())
    }

    /// A walk that ran out of time is a busy cgroup.
    fn walk_err(&self, e: io::Error, dir: PathBuf) -> CgroupError {
        if e.kind() == io::ErrorKind::TimedOut {
            CgroupError::Busy { path: dir }
        } else {
            io_err("walk", dir)(e)
        }
    }

    /// Kills every process in the cgroup (a repair path: normally killing
    /// the VE's init ends its whole PID namespace). On cgroup v2 the kernel
    /// does it (`cgroup.kill`); otherwise each process is pinned with a
    /// pidfd and checked to still be in this cgroup before it is killed, so
    /// a reused PID is never hit.
    pub fn kill_all(&self) -> Result<()> {
        for h in self.host.hierarchies() {
            let k = self.dir(h).join("cgroup.kill");
            if h.kind == HierarchyKind::V2 && k.exists() {
                let _ = fs::write(&k, "1");
            }
        }
        let deadline = Instant::now() + Duration::from_secs(5);
        loop {
            let mut found = false;
            self.for_each_pid(deadline, &mut |pid| {
                found = true;
                self.kill_if_member(pid);
            })?;
            if !found {
                return Ok(());
            }
            if Instant::now() > deadline {
                return Err(CgroupError::Busy {
                    path: self.rel.clone(),
                });
            }
            std::thread::sleep(Duration::from_millis(10));
        }
    }

    fn kill_if_member(&self, pid: i32) {
        use rustix::process::{pidfd_open, pidfd_send_signal, Pid, PidfdFlags, Signal};
        let Some(p) = Pid::from_raw(pid) else { return };
        let Ok(fd) = pidfd_open(p, PidfdFlags::empty()) else {
            return;
        };
        let rel = format!("/{}", self.rel.display());
        let below = format!("{rel}/");
        // Lines are "ID:CONTROLLERS:PATH"; the path may itself hold ':'.
        let member = fs::read_to_string(format!("/proc/{pid}/cgroup")).is_ok_and(|t| {
            t.lines().any(|l| {
                l.splitn(3, ':')
                    .nth(2)
                    .is_some_and(|path| path == rel || path.starts_with(&below))
            })
        });
        if member {
            let _ = pidfd_send_signal(&fd, Signal::KILL);
        }
    }

    /// Removes the cgroup and everything below it in every hierarchy,
    /// waiting up to `timeout` for exiting processes to leave.
    pub fn remove(&self, timeout: Duration) -> Result<()> {
        let deadline = Instant::now() + timeout;
        for h in self.host.hierarchies() {
            let d = self.dir(h);
            loop {
                match walk::remove_tree(&d, deadline) {
                    Ok(()) => break,
                    Err(e)
                        if e.raw_os_error() == Some(libc::EBUSY) && Instant::now() < deadline =>
                    {
                        std::thread::sleep(Duration::from_millis(5));
                    }
                    Err(e) if e.raw_os_error() == Some(libc::EBUSY) => {
                        return Err(CgroupError::Busy { path: d })
                    }
                    Err(e) => return Err(self.walk_err(e, d)),
                }
            }
        }
        Ok(())
    }

    /// How many processes the OOM killer of this cgroup's memory limit
    /// killed since it was made (v2 `memory.events`, v1
    /// `memory.oom_control`), if the kernel counts them.
    pub fn oom_kills(&self) -> Option<u64> {
        let h = self.host.hierarchy_for("memory")?;
        let file = if h.kind == HierarchyKind::V2 {
            "memory.events"
        } else {
            "memory.oom_control"
        };
        let text = fs::read_to_string(self.dir(h).join(file)).ok()?;
        text.lines()
            .find_map(|l| l.strip_prefix("oom_kill "))
            .and_then(|n| n.trim().parse().ok())
    }

    /// Removes the cgroup where it is empty (no process, no child): a
    /// parent Kennel made that no VE uses any more. Never kills, and
    /// leaves it where something still runs or lives below.
    pub fn remove_if_unused(&self) {
        for h in self.host.hierarchies() {
            let _ = fs::remove_dir(self.dir(h));
        }
    }
}

fn chown(path: &Path, uid: u32, gid: u32) -> Result<()> {
    std::os::unix::fs::chown(path, Some(uid), Some(gid)).map_err(io_err("chown", path))
}

/// What [`Cgroup::create_part`] just made: a parent of the cgroup it was
/// asked for, or that cgroup.
#[derive(Clone, Copy)]
enum Made {
    Parent,
    Leaf,
}

/// Whether a new v1 cpuset already has memory nodes (its parent's,
/// copied by the kernel under `cgroup.clone_children`).
fn cpuset_filled(dir: &Path) -> bool {
    fs::read_to_string(dir.join("cpuset.mems")).is_ok_and(|v| !v.trim().is_empty())
}

/// Gives v1 cpuset `dir` CPUs and memory nodes if it has none: its
/// parent's, after filling the parent the same way (up to `top`, the
/// hierarchy's root, which always has them).
fn fill_cpuset(dir: &Path, top: &Path) -> Result<()> {
    if cpuset_filled(dir) {
        return Ok(());
    }
    let Some(parent) = dir.parent().filter(|p| p.starts_with(top)) else {
        return Ok(());
    };
    if parent != top {
        fill_cpuset(parent, top)?;
    }
    copy_cpuset(parent, dir)
}

fn copy_cpuset(parent: &Path, child: &Path) -> Result<()> {
    for f in ["cpuset.cpus", "cpuset.mems"] {
        let src = parent.join(f);
        let v = fs::read_to_string(&src).map_err(io_err("read", &src))?;
        let dst = child.join(f);
        fs::write(&dst, v.trim()).map_err(io_err("write", dst))?;
    }
    Ok(())
}

/// Writes `max` into the limit `file` unless it holds it already (one
/// read then); a cgroup that does not exist (yet) is left alone.
fn cap_file(file: &Path, max: u64) -> Result<()> {
    let want = max.to_string();
    match fs::read_to_string(file) {
        Ok(v) if v.trim() == want => Ok(()),
        Ok(_) => fs::write(file, want).map_err(io_err("write", file)),
        Err(_) => Ok(()),
    }
}

/// Enables Kennel's controllers but `except` for the children of `dir`.
fn enable_v2_controllers(dir: &Path, except: &[&str]) -> Result<()> {
    let avail = fs::read_to_string(dir.join("cgroup.controllers")).unwrap_or_default();
    let enabled = fs::read_to_string(dir.join("cgroup.subtree_control")).unwrap_or_default();
    let want: Vec<String> = V2_CONTROLLERS
        .iter()
        .filter(|c| !except.contains(c))
        .filter(|c| avail.split_whitespace().any(|a| a == **c))
        .filter(|c| !enabled.split_whitespace().any(|a| a == **c))
        .map(|c| format!("+{c}"))
        .collect();
    if want.is_empty() {
        return Ok(());
    }
    let p = dir.join("cgroup.subtree_control");
    fs::write(&p, want.join(" ")).map_err(io_err("write", p))
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The state parallel starts on a fresh root can meet: a parent made
    /// but not filled yet, and a leaf below it. Filling the leaf fills the
    /// parent first. Runs where a v1 cpuset hierarchy is mounted (and as
    /// root), in cgroups of its own.
    #[test]
    fn a_leaf_below_an_unfilled_parent_is_filled_with_it() {
        let top = Path::new("/sys/fs/cgroup/cpuset");
        if !top.join("cpuset.mems").exists() || !rustix::process::geteuid().is_root() {
            eprintln!("skipped: no v1 cpuset hierarchy, or not root");
            return;
        }
        let base = top.join(format!("kennel-fill-test-{}", std::process::id()));
        let parent = base.join("p");
        let leaf = parent.join("leaf");
        fs::create_dir_all(&leaf).expect("mkdir");
        let before = (cpuset_filled(&parent), cpuset_filled(&leaf));
        let filled = fill_cpuset(&leaf, top);
        let after = (
            cpuset_filled(&base),
            cpuset_filled(&parent),
            cpuset_filled(&leaf),
        );
        for d in [&leaf, &parent, &base] {
            let _ = fs::remove_dir(d);
        }
        filled.expect("fill");
        assert_eq!(before, (false, false), "new v1 cpusets start empty here");
        assert_eq!(after, (true, true, true));
    }
}

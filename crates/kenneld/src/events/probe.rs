//! Looking at one VE as the kernel and the state root have it now: does
//! it exist (and with which uuid), which run is it in, in what state, and
//! its three counters whose rise is an event.
//!
//! This is `kennel status` reduced to what events need, because it is
//! done for every running VE every second: what did not change is not read
//! again (the configuration for the uuid, the state file, the cgroup
//! record: each only when its file changed, or once a run), so a look at
//! a running VE is a `stat` of its state file, two small reads of `/proc`
//! (is it alive) and one read of each of its three counter files.
//! `Kennel::list` would also parse each configuration and read memory
//! and task counts, and `Kennel::stat` some twenty cgroup files and a
//! walk of every process's descriptors. The state is decided as the
//! library decides it (`RunState::liveness`), and the counters are read
//! from the same kernel files as `kennel_cgroup::Accounting` reads for
//! `oom_kills`, `processes.fails` and `swap.fails`, through the VE's
//! recorded cgroup. Nothing here repairs or writes: kenneld only watches.

use std::collections::HashMap;
use std::fs;
use std::io;
use std::os::fd::OwnedFd;
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use kennel_cgroup::keyed;
use kennel_cgroup::{CgroupRecord, HierarchyKind};
use kennel_runtime::state::{ExitRecord, Liveness, RunState, STATE_FILE};
use kennel_ve::config::VeConfig;
use kennel_ve::lifecycle::VeState;
use kennel_ve::{Kennel, VeId};
use rustix::fs::{AtFlags, Mode, OFlags};

use super::facts::{self, Observed, ReadCounts, Run, VeFacts};

#[derive(Debug, thiserror::Error)]
pub enum ProbeError {
    #[error("read {path}: {source}")]
    Io { path: PathBuf, source: io::Error },
    #[error("{0}")]
    Config(#[from] kennel_ve::VeError),
}

fn io_at(path: &Path) -> impl FnOnce(io::Error) -> ProbeError + '_ {
    move |source| ProbeError::Io {
        path: path.to_path_buf(),
        source,
    }
}

/// The identity of a file's content: a new file (written by rename) or
/// a changed one differs.
type Stamp = (u64, i64, i64, u64);

fn stamp(m: &fs::Metadata) -> Stamp {
    (m.ino(), m.mtime(), m.mtime_nsec(), m.size())
}

/// Which run of a VE: its init's PID and start time.
type RunKey = (i32, u64);

/// Where a running VE's counters are: found once a run (its cgroup
/// record is read once, and then only these files).
#[derive(Debug, Clone, Default)]
struct CounterFiles {
    /// v2 `memory.events`, v1 `memory.oom_control`: `oom_kill N`.
    oom: Option<At>,
    /// v2 `memory.swap.events` (`fail N`), v1 `memory.memsw.failcnt`
    /// (a number).
    swap: Option<(At, bool)>,
    /// The VE's pids cgroup.
    pids: Option<At>,
    /// Its `pids.events` counts the whole VE (Linux 6.11 and later on v2:
    /// there is a `pids.events.local`).
    pids_whole: bool,
    v2: bool,
}

/// A cgroup hierarchy's root, held open: a VE's counter files are opened
/// relative to it, which spares the kernel the walk from `/` through
/// `/sys/fs/cgroup/...` for each of them (the largest part of what
/// reading a counter cost, measured).
#[derive(Debug)]
struct Root {
    fd: OwnedFd,
    mount: PathBuf,
}

impl Root {
    fn open(mount: &Path) -> io::Result<Arc<Root>> {
        let fd = rustix::fs::open(
            mount,
            OFlags::PATH | OFlags::DIRECTORY | OFlags::CLOEXEC,
            Mode::empty(),
        )?;
        Ok(Arc::new(Root {
            fd,
            mount: mount.to_path_buf(),
        }))
    }
}

/// A file or directory below a hierarchy's root.
#[derive(Debug, Clone)]
struct At {
    root: Arc<Root>,
    /// Relative (a checked cgroup record's path, and names Kennel knows).
    rel: PathBuf,
}

impl At {
    fn join(&self, name: &str) -> At {
        At {
            root: Arc::clone(&self.root),
            rel: self.rel.join(name),
        }
    }

    fn path(&self) -> PathBuf {
        self.root.mount.join(&self.rel)
    }

    fn read(&self) -> Option<String> {
        let fd = rustix::fs::openat(
            &self.root.fd,
            &self.rel,
            OFlags::RDONLY | OFlags::CLOEXEC,
            Mode::empty(),
        )
        .ok()?;
        read_fd(&fd)
    }

    /// Whether it is a directory without subdirectories: its link count
    /// is 2 (one more per subdirectory).
    fn is_leaf(&self) -> bool {
        rustix::fs::statat(&self.root.fd, &self.rel, AtFlags::empty())
            .is_ok_and(|st| st.st_nlink == 2)
    }
}

/// What is remembered of a VE between looks.
#[derive(Debug, Default)]
struct Cached {
    /// Its uuid, and the configuration file it was read from.
    uuid: Option<(Stamp, String)>,
    /// Its run state, and the file it was read from (`None`: none).
    run: Option<(Option<Stamp>, Option<RunState>)>,
    counters: Option<(RunKey, Option<CounterFiles>)>,
}

#[derive(Debug)]
pub struct Prober {
    kennel: Arc<Kennel>,
    cache: HashMap<VeId, Cached>,
    /// The hierarchies' roots, by mount point, opened when first needed.
    roots: HashMap<PathBuf, Arc<Root>>,
}

impl Prober {
    pub fn new(kennel: Arc<Kennel>) -> Self {
        Prober {
            kennel,
            cache: HashMap::new(),
            roots: HashMap::new(),
        }
    }

    /// The ids in the VE directory (a name that is no id is no VE).
    pub fn ids(&self) -> io::Result<Vec<VeId>> {
        let dir = self.kennel.paths().ves();
        match fs::read_dir(&dir) {
            Ok(rd) => Ok(rd
                .flatten()
                .filter_map(|e| VeId::parse(&e.file_name().to_string_lossy()).ok())
                .collect()),
            Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(Vec::new()),
            Err(e) => Err(e),
        }
    }

    pub fn run_dir(&self, id: &VeId) -> PathBuf {
        self.kennel.paths().ve_run(id)
    }

    /// VE `id` now (`None`: there is none); `before`: what was seen
    /// last, which says whether its exit record is needed. `recheck`:
    /// also whether its configuration changed (a VE made again under
    /// its id); else a uuid already read is taken as it is. `counters`:
    /// read them (else they are unknown).
    pub fn observe(
        &mut self,
        id: &VeId,
        before: Option<&VeFacts>,
        recheck: bool,
        counters: bool,
    ) -> Result<Option<Observed>, ProbeError> {
        let Some(uuid) = self.uuid(id, recheck)? else {
            self.cache.remove(id);
            return Ok(None);
        };
        let run_dir = self.run_dir(id);
        let run = self.run_state(id, &run_dir)?;
        let state = match run.as_ref().map(RunState::liveness) {
            None | Some(Liveness::Dead) => VeState::Stopped,
            Some(Liveness::Running) => VeState::Running,
            Some(Liveness::RunningWithoutMonitor) => VeState::RunningWithoutMonitor,
            Some(Liveness::Stopping) => VeState::Stopping,
        };
        let run = run.filter(|_| state != VeState::Stopped);
        let counts = match &run {
            Some(r) => match self.counter_files(id, &run_dir, r) {
                Some(files) if counters => files.read(),
                _ => ReadCounts::default(),
            },
            None => {
                if let Some(c) = self.cache.get_mut(id) {
                    c.counters = None;
                }
                ReadCounts::default()
            }
        };
        let state = state.as_str().to_string();
        let run = run.map(|r| Run {
            init_pid: r.init_pid,
            started_at: r.started_at,
        });
        let exit = if facts::needs_exit(before, &state, run.as_ref()) {
            ExitRecord::load(&run_dir).ok().flatten()
        } else {
            None
        };
        Ok(Some(Observed {
            uuid,
            state,
            run,
            counts,
            exit,
        }))
    }

    /// VE `id`'s uuid, from its configuration when that changed.
    fn uuid(&mut self, id: &VeId, recheck: bool) -> Result<Option<String>, ProbeError> {
        let known = self.cache.get(id).and_then(|c| c.uuid.as_ref());
        if let (false, Some((_, uuid))) = (recheck, known) {
            return Ok(Some(uuid.clone()));
        }
        let path = self.kennel.paths().ve_config(id);
        let meta = match fs::metadata(&path) {
            Ok(m) => m,
            Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(None),
            Err(e) => return Err(io_at(&path)(e)),
        };
        let now = stamp(&meta);
        if let Some((s, uuid)) = known {
            if *s == now {
                return Ok(Some(uuid.clone()));
            }
        }
        let uuid = match VeConfig::load(&path, id) {
            Ok(cfg) => cfg.uuid,
            // Destroyed meanwhile.
            Err(_) if !path.exists() => return Ok(None),
            Err(e) => return Err(e.into()),
        };
        self.cache.entry(id.clone()).or_default().uuid = Some((now, uuid.clone()));
        Ok(Some(uuid))
    }

    /// VE `id`'s run state, read again only when its file changed.
    fn run_state(&mut self, id: &VeId, run_dir: &Path) -> Result<Option<RunState>, ProbeError> {
        let path = run_dir.join(STATE_FILE);
        let now = match fs::metadata(&path) {
            Ok(m) => Some(stamp(&m)),
            Err(e) if e.kind() == io::ErrorKind::NotFound => None,
            Err(e) => return Err(io_at(&path)(e)),
        };
        let cached = self.cache.entry(id.clone()).or_default();
        if let Some((s, run)) = &cached.run {
            if *s == now {
                return Ok(run.clone());
            }
        }
        let run = match now {
            Some(_) => RunState::load(run_dir).map_err(io_at(&path))?,
            None => None,
        };
        cached.run = Some((now, run.clone()));
        Ok(run)
    }

    /// Where the counters of VE `id`, in run `run`, are.
    fn counter_files(&mut self, id: &VeId, run_dir: &Path, run: &RunState) -> Option<CounterFiles> {
        let key = (run.init_pid, run.init_start);
        if let Some((k, files)) = self.cache.get(id).and_then(|c| c.counters.as_ref()) {
            if *k == key {
                return files.clone();
            }
        }
        let files = self.find_counter_files(id, run_dir, run);
        self.cache.entry(id.clone()).or_default().counters = Some((key, files.clone()));
        files
    }

    fn find_counter_files(
        &mut self,
        id: &VeId,
        run_dir: &Path,
        run: &RunState,
    ) -> Option<CounterFiles> {
        // As the library finds a VE's cgroup: its record, else its run
        // state's; only one that is the VE's own (`PARENT/ID`).
        let rec = CgroupRecord::load(run_dir)
            .ok()
            .flatten()
            .or_else(|| CgroupRecord::new(&run.cgroup).ok())
            .filter(|r| {
                r.as_str()
                    .rsplit_once('/')
                    .is_some_and(|(_, last)| last == id.as_str())
            })?;
        let kennel = Arc::clone(&self.kennel);
        let host = kennel.cgroups().ok()?;
        let mut files = CounterFiles::default();
        if let Some(h) = host.hierarchy_for("memory") {
            let dir = self.below(&h.mount_point, rec.as_str())?;
            files.v2 = h.kind == HierarchyKind::V2;
            if files.v2 {
                files.oom = Some(dir.join("memory.events"));
                files.swap = Some((dir.join("memory.swap.events"), true));
            } else {
                files.oom = Some(dir.join("memory.oom_control"));
                files.swap = Some((dir.join("memory.memsw.failcnt"), false));
            }
        }
        if let Some(h) = host.hierarchy_for("pids") {
            let dir = self.below(&h.mount_point, rec.as_str())?;
            files.pids_whole = dir.join("pids.events.local").path().exists();
            files.pids = Some(dir);
        }
        Some(files)
    }

    /// `rel` below the hierarchy mounted at `mount`.
    fn below(&mut self, mount: &Path, rel: &str) -> Option<At> {
        let root = match self.roots.get(mount) {
            Some(r) => Arc::clone(r),
            None => match Root::open(mount) {
                Ok(r) => {
                    self.roots.insert(mount.to_path_buf(), Arc::clone(&r));
                    r
                }
                Err(e) => {
                    tracing::debug!("events: cannot open {}: {e}", mount.display());
                    return None;
                }
            },
        };
        Some(At {
            root,
            rel: PathBuf::from(rel),
        })
    }

    /// The counter files of VE `id`, in run `run`, if the kernel
    /// announces every change of them: cgroup v2's `memory.events`,
    /// `memory.swap.events` and `pids.events` (v1's do not announce).
    pub fn notifying_files(&mut self, id: &VeId, run: &Run) -> Vec<PathBuf> {
        let Some((key, Some(files))) = self.cache.get(id).and_then(|c| c.counters.clone()) else {
            return Vec::new();
        };
        if key.0 != run.init_pid || !files.v2 || !files.pids_whole {
            return Vec::new();
        }
        let mut out = Vec::new();
        out.extend(files.oom.map(|f| f.path()));
        out.extend(files.swap.map(|(f, _)| f.path()));
        out.extend(files.pids.map(|d| d.join("pids.events").path()));
        out
    }
}

impl CounterFiles {
    fn read(&self) -> ReadCounts {
        ReadCounts {
            oom: self
                .oom
                .as_ref()
                .and_then(At::read)
                .and_then(|t| keyed(&t, "oom_kill")),
            swap: self.swap.as_ref().and_then(|(f, v2)| {
                let t = f.read()?;
                if *v2 {
                    keyed(&t, "fail")
                } else {
                    t.trim().parse().ok()
                }
            }),
            numproc: self
                .pids
                .as_ref()
                .and_then(|d| pids_fails(d, self.pids_whole)),
        }
    }
}

/// A small kernel file; `None` if it is not there (any more). One
/// `read` does for these (the kernel makes the whole text at once), with
/// no `stat` for a size, which a cgroup file does not have: this is done
/// thousands of times a second on a large host.
fn read(path: &Path) -> Option<String> {
    let fd = rustix::fs::open(path, OFlags::RDONLY | OFlags::CLOEXEC, Mode::empty()).ok()?;
    read_fd(&fd)
}

fn read_fd(fd: &OwnedFd) -> Option<String> {
    let mut buf = [0u8; 1024];
    let mut n = 0;
    while n < buf.len() {
        match rustix::io::read(fd, &mut buf[n..]) {
            Ok(0) => break,
            Ok(k) => {
                n += k;
                if n < buf.len() {
                    break;
                }
            }
            Err(rustix::io::Errno::INTR) => {}
            Err(_) => return None,
        }
    }
    String::from_utf8(buf[..n].to_vec()).ok()
}

/// Forks refused at the VE's process limit: its `pids.events` `max`,
/// summed over its sub-cgroups unless `whole` (as
/// `kennel_cgroup::Accounting` counts them: before Linux 6.11, a refused
/// fork is counted in the forking process's cgroup). A cgroup directory's
/// link count is 2 and one per sub-cgroup: only a VE that has some is
/// walked.
fn pids_fails(ve: &At, whole: bool) -> Option<u64> {
    let mut total = ve
        .join("pids.events")
        .read()
        .and_then(|t| keyed(&t, "max"))?;
    if whole || ve.is_leaf() {
        return Some(total);
    }
    let own = |d: &Path| read(&d.join("pids.events")).and_then(|t| keyed(&t, "max"));
    total += kennel_cgroup::sum_below(&ve.path(), own);
    Some(total)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keyed_values() {
        let events = "low 0\nhigh 0\nmax 17\noom 2\noom_kill 3\n";
        assert_eq!(keyed(events, "oom_kill"), Some(3));
        assert_eq!(keyed(events, "max"), Some(17));
        assert_eq!(keyed(events, "oom"), Some(2), "a key, not a prefix");
        assert_eq!(keyed(events, "fail"), None);
    }

    #[test]
    fn refused_forks_are_summed_below_the_ve_on_kernels_that_count_there() {
        let d = tempfile::tempdir().unwrap();
        let hierarchy = Root::open(d.path()).unwrap();
        let at = |rel: &str| At {
            root: Arc::clone(&hierarchy),
            rel: PathBuf::from(rel),
        };
        let ve = d.path().join("ve");
        fs::create_dir_all(ve.join("a/b")).unwrap();
        fs::write(ve.join("pids.events"), "max 2\n").unwrap();
        fs::write(ve.join("a/pids.events"), "max 3\n").unwrap();
        fs::write(ve.join("a/b/pids.events"), "max 5\n").unwrap();
        assert_eq!(pids_fails(&at("ve"), false), Some(10));
        assert_eq!(
            pids_fails(&at("ve"), true),
            Some(2),
            "6.11 and later: the VE's own"
        );
        assert_eq!(pids_fails(&at("ve/a/b"), false), Some(5), "no sub-cgroups");
        assert_eq!(pids_fails(&at("gone"), false), None);
    }
}

//! `state.json` in a VE's run directory: which processes make up a running
//! VE. Written once by the monitor when the VE has started; the kernel
//! decides whether it is still true ([`RunState::liveness`]).

use std::fs;
use std::io;
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use crate::procfs;

pub const STATE_FILE: &str = "state.json";
pub const PENDING_STATE_FILE: &str = "state.json.pending";
pub const EXIT_FILE: &str = "exit.json";
pub const MONITOR_SOCKET: &str = "monitor.sock";
pub const SECCOMP_FILE: &str = "seccomp.bpf";

/// A running VE's processes.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
pub struct RunState {
    pub init_pid: i32,
    /// Start time of init in clock ticks since boot (guards PID reuse).
    pub init_start: u64,
    pub monitor_pid: i32,
    pub monitor_start: u64,
    /// RFC 3339 time the VE started.
    pub started_at: String,
    /// The VE's cgroup below each hierarchy.
    pub cgroup: String,
    /// The hard open-files limit its start gave it (for `exec`; absent in
    /// the state of a VE an older Kennel started).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub nofile: Option<u64>,
    /// The host CPUs its start pinned it to, if any (the kernel's list
    /// format): later starts spread over the least used.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cpuset: Option<String>,
}

/// A state file written but not yet in place.
#[derive(Debug)]
pub struct PendingState {
    tmp: PathBuf,
    dest: PathBuf,
}

impl PendingState {
    pub fn commit(self) -> io::Result<()> {
        fs::rename(&self.tmp, &self.dest)
    }
}

/// What the kernel says about a recorded VE.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Liveness {
    /// Init and its monitor are alive.
    Running,
    /// Init is alive but its monitor is gone (killed): still running, but
    /// the console is lost and teardown falls to the next command.
    RunningWithoutMonitor,
    /// Init is gone but the monitor is still tearing down.
    Stopping,
    /// Neither is alive: the record is stale.
    Dead,
}

/// How the VE's init ended, written by `kennel` when the monitor hands the
/// VE's teardown to it.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
pub struct ExitRecord {
    pub at: String,
    /// `exited 0`, `killed by SIGKILL`, `reboot`, ...
    pub how: String,
}

impl RunState {
    pub fn load(run_dir: &Path) -> io::Result<Option<Self>> {
        load_json(&run_dir.join(STATE_FILE))
    }

    /// Writes the state under a temporary name; [`PendingState::commit`]
    /// makes it the VE's state with one rename.
    pub fn save_pending(&self, run_dir: &Path) -> io::Result<PendingState> {
        let tmp = run_dir.join(PENDING_STATE_FILE);
        fs::write(
            &tmp,
            serde_json::to_vec_pretty(self).map_err(io::Error::other)?,
        )?;
        Ok(PendingState {
            tmp,
            dest: run_dir.join(STATE_FILE),
        })
    }

    pub fn liveness(&self) -> Liveness {
        let init = procfs::is_live_process(self.init_pid, self.init_start);
        let monitor = procfs::is_live_process(self.monitor_pid, self.monitor_start);
        match (init, monitor) {
            (true, true) => Liveness::Running,
            (true, false) => Liveness::RunningWithoutMonitor,
            (false, true) => Liveness::Stopping,
            (false, false) => Liveness::Dead,
        }
    }

    /// Seconds the VE has been up, from init's start time.
    pub fn uptime_secs(&self) -> Option<u64> {
        Some(self.uptime_secs_at(procfs::uptime_secs()?))
    }

    /// [`RunState::uptime_secs`] with the host's uptime `up` read once
    /// for many VEs (`list`).
    pub fn uptime_secs_at(&self, up: f64) -> u64 {
        let started = self.init_start as f64 / procfs::ticks_per_sec() as f64;
        (up - started).max(0.0) as u64
    }
}

impl ExitRecord {
    pub fn load(run_dir: &Path) -> io::Result<Option<Self>> {
        load_json(&run_dir.join(EXIT_FILE))
    }

    pub fn save(&self, run_dir: &Path) -> io::Result<()> {
        save_json(&run_dir.join(EXIT_FILE), self)
    }
}

fn load_json<T: for<'de> Deserialize<'de>>(path: &Path) -> io::Result<Option<T>> {
    match fs::read(path) {
        Ok(b) => serde_json::from_slice(&b).map(Some).map_err(|e| {
            io::Error::new(
                io::ErrorKind::InvalidData,
                format!("{}: {e}", path.display()),
            )
        }),
        Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(None),
        Err(e) => Err(e),
    }
}

/// Writes `value` to `path` atomically (temporary file + rename).
fn save_json<T: Serialize>(path: &Path, value: &T) -> io::Result<()> {
    let tmp: PathBuf = path.with_extension(format!("tmp-{}", std::process::id()));
    let bytes = serde_json::to_vec_pretty(value).map_err(io::Error::other)?;
    fs::write(&tmp, bytes)?;
    fs::rename(&tmp, path)
}

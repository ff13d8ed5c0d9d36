use std::io;

/// Errors from starting, joining or talking to a VE.
#[derive(Debug, thiserror::Error)]
pub enum RuntimeError {
    /// A system call failed; `what` says what Kennel was doing.
    #[error("{what}: {source}")]
    Sys {
        what: String,
        #[source]
        source: io::Error,
    },
    /// The VE's setup inside its namespaces failed; the message comes from
    /// the VE's side of the start.
    #[error("VE setup failed: {0}")]
    Setup(String),
    #[error(transparent)]
    Cgroup(#[from] kennel_cgroup::CgroupError),
    #[error(transparent)]
    Storage(#[from] kennel_storage::StorageError),
    #[error("seccomp: {0}")]
    Seccomp(String),
    /// The VE is not running (its init is gone).
    #[error("the VE is not running")]
    NotRunning,
    /// The monitor's console socket does not answer.
    #[error("cannot reach the VE's monitor at {path}: {source} (restart the VE to get its console back)")]
    MonitorUnreachable {
        path: std::path::PathBuf,
        #[source]
        source: io::Error,
    },
    /// Another `kennel console` is attached.
    #[error("the console is in use by another `kennel console` (detach it first)")]
    ConsoleBusy,
    /// The monitor, or a process it talks to, did not follow the protocol
    /// (it died mid-way, or runs another Kennel version).
    #[error("{0}")]
    Protocol(String),
    /// The kernel did not give what it promises (a pidfd after
    /// `CLONE_PIDFD`, a readable `/proc/PID/stat`).
    #[error("unexpected kernel behaviour: {0}")]
    Kernel(String),
    /// A command to run in a VE did not get as far as its exec in time: the
    /// VE stalled it (a frozen cgroup, say).
    #[error("the command did not start in the VE within {0} s: the VE stalled it (a frozen cgroup?); nothing runs")]
    ExecStalled(u64),
    /// A command Kennel ran in a VE for itself did not end in time (the
    /// VE chose what runs there); it was killed.
    #[error("the command Kennel ran in the VE did not end within {0} s: it was killed")]
    CommandTimedOut(u64),
    /// A command in a VE did not end within that many seconds of SIGKILL:
    /// stuck in the kernel (a filesystem the VE serves itself, say).
    #[error("the command in the VE did not end within {0} s of SIGKILL (stuck in the kernel, e.g. on a FUSE filesystem the VE serves): it was left behind")]
    Unkillable(u64),
    /// A command to run in a VE could not be run there, and why.
    #[error("{message}")]
    CannotRun {
        why: crate::join::NotRun,
        message: String,
    },
    /// A helper that works inside a VE's namespaces failed or took too long.
    #[error("{0}")]
    Inside(String),
    /// Changing the capability sets failed.
    #[error("{0}")]
    Capabilities(String),
    /// A fork or namespace the kernel refused because a host-wide pool is
    /// used up: the line names the setting to raise
    /// (`launch::exhausted`).
    #[error("{0}")]
    HostPool(String),
}

pub type Result<T, E = RuntimeError> = std::result::Result<T, E>;

/// Adds "what Kennel was doing" to an I/O error.
pub(crate) trait Context<T> {
    fn ctx(self, what: impl FnOnce() -> String) -> Result<T>;
}

impl<T> Context<T> for io::Result<T> {
    fn ctx(self, what: impl FnOnce() -> String) -> Result<T> {
        self.map_err(|source| RuntimeError::Sys {
            what: what(),
            source,
        })
    }
}

impl<T> Context<T> for rustix::io::Result<T> {
    fn ctx(self, what: impl FnOnce() -> String) -> Result<T> {
        self.map_err(|e| RuntimeError::Sys {
            what: what(),
            source: e.into(),
        })
    }
}

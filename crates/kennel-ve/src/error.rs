//! Errors of the VE library, each with the exit status the CLI uses
//! (documented in docs/CLI.md, "Exit status").

use kennel_runtime::join::NotRun;
use kennel_runtime::RuntimeError;
use kennel_storage::StorageError;

/// The class of an error: what the CLI's exit status says.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ErrorKind {
    /// 1: an unexpected failure (I/O, kernel).
    Internal,
    /// 2: bad input (id, size, hostname, option values).
    BadInput,
    /// 3: not run as root.
    NotRoot,
    /// 4: no such VE.
    NoSuchVe,
    /// 5: a VE with that id already exists.
    Exists,
    /// 6: the VE is running (and the command needs it stopped).
    Running,
    /// 7: the VE is not running (and the command needs it running).
    NotRunning,
    /// 9: no such template, a template could not be made, or it is in use.
    Template,
    /// 10: the host lacks a kernel feature or tool Kennel needs.
    HostUnsupported,
    /// 11: another kennel command holds the VE's lock.
    Busy,
    /// 12: the VE failed to start.
    StartFailed,
    /// 126: a command to run in a VE could not be run (as a shell says).
    CannotRun,
    /// 127: a command to run in a VE was not found there.
    CommandNotFound,
}

impl ErrorKind {
    pub fn exit_code(self) -> i32 {
        match self {
            ErrorKind::Internal => 1,
            ErrorKind::BadInput => 2,
            ErrorKind::NotRoot => 3,
            ErrorKind::NoSuchVe => 4,
            ErrorKind::Exists => 5,
            ErrorKind::Running => 6,
            ErrorKind::NotRunning => 7,
            ErrorKind::Template => 9,
            ErrorKind::HostUnsupported => 10,
            ErrorKind::Busy => 11,
            ErrorKind::StartFailed => 12,
            ErrorKind::CannotRun => NotRun::Failed.exit_status(),
            ErrorKind::CommandNotFound => NotRun::NotFound.exit_status(),
        }
    }
}

#[derive(Debug, thiserror::Error)]
pub enum VeError {
    #[error("kennel must run as root (try: sudo kennel ...)")]
    NotRoot,
    #[error("VE {0} does not exist (see `kennel list --all`)")]
    NoSuchVe(String),
    #[error("VE {0} already exists (pick another id, or `kennel destroy {0}` first)")]
    Exists(String),
    #[error("VE {0} is running (stop it first: `kennel stop {0}`)")]
    Running(String),
    #[error("VE {0} is already running")]
    AlreadyRunning(String),
    #[error("VE {0} is not running (start it: `kennel start {0}`)")]
    NotRunning(String),
    #[error("{0}")]
    BadInput(String),
    #[error("VE {0} is busy: another kennel command is working on it (try again)")]
    Busy(String),
    #[error("VE {id} failed to start: {reason}")]
    StartFailed { id: String, reason: String },
    #[error("{0}")]
    HostUnsupported(String),
    #[error("template '{name}' is used by VE {}: destroy {} first", users.join(", "), if users.len() == 1 { "it" } else { "them" })]
    TemplateInUse { name: String, users: Vec<String> },
    #[error("VE {0}'s monitor is gone, and the console with it: restart the VE to get it back")]
    MonitorLost(String),
    #[error(transparent)]
    Storage(#[from] StorageError),
    #[error(transparent)]
    Runtime(#[from] RuntimeError),
    #[error(transparent)]
    Cgroup(#[from] kennel_cgroup::CgroupError),
    #[error(transparent)]
    Net(#[from] kennel_net::NetError),
    #[error("{what}: {source}")]
    Io {
        what: String,
        #[source]
        source: std::io::Error,
    },
}

impl VeError {
    pub fn kind(&self) -> ErrorKind {
        match self {
            VeError::NotRoot => ErrorKind::NotRoot,
            VeError::NoSuchVe(_) => ErrorKind::NoSuchVe,
            VeError::Exists(_) => ErrorKind::Exists,
            VeError::Running(_) | VeError::AlreadyRunning(_) => ErrorKind::Running,
            VeError::NotRunning(_) => ErrorKind::NotRunning,
            VeError::BadInput(_) => ErrorKind::BadInput,
            VeError::Busy(_) => ErrorKind::Busy,
            VeError::StartFailed { .. } => ErrorKind::StartFailed,
            VeError::HostUnsupported(_) => ErrorKind::HostUnsupported,
            VeError::TemplateInUse { .. } => ErrorKind::Template,
            VeError::MonitorLost(_) => ErrorKind::Internal,
            VeError::Storage(e) => match e {
                StorageError::NoSuchTemplate(_)
                | StorageError::TemplateExists(_)
                | StorageError::UnknownSource(_)
                | StorageError::Archive { .. }
                | StorageError::Tool(_)
                | StorageError::Metadata { .. } => ErrorKind::Template,
                StorageError::Layer(_) => ErrorKind::Internal,
                StorageError::BadTemplateName(_)
                | StorageError::Backup(_)
                | StorageError::Refused(_) => ErrorKind::BadInput,
                StorageError::InUse(_) => ErrorKind::Busy,
                StorageError::Unsupported(_) => ErrorKind::HostUnsupported,
                StorageError::Io { .. } | StorageError::Remove { .. } => ErrorKind::Internal,
            },
            VeError::Runtime(RuntimeError::NotRunning) => ErrorKind::NotRunning,
            VeError::Runtime(RuntimeError::CannotRun { why, .. }) => match why {
                NotRun::NotFound => ErrorKind::CommandNotFound,
                NotRun::Failed => ErrorKind::CannotRun,
            },
            VeError::Runtime(RuntimeError::ConsoleBusy) => ErrorKind::Busy,
            VeError::Runtime(RuntimeError::HostPool(_)) => ErrorKind::HostUnsupported,
            VeError::Cgroup(
                kennel_cgroup::CgroupError::MissingController { .. }
                | kennel_cgroup::CgroupError::NotMounted,
            ) => ErrorKind::HostUnsupported,
            VeError::Net(kennel_net::NetError::BadInput(_)) => ErrorKind::BadInput,
            VeError::Net(kennel_net::NetError::Host(_)) => ErrorKind::HostUnsupported,
            VeError::Runtime(_) | VeError::Cgroup(_) | VeError::Io { .. } | VeError::Net(_) => {
                ErrorKind::Internal
            }
        }
    }
}

pub type Result<T, E = VeError> = std::result::Result<T, E>;

pub(crate) fn io(what: impl Into<String>) -> impl FnOnce(std::io::Error) -> VeError {
    let what = what.into();
    move |source| VeError::Io { what, source }
}

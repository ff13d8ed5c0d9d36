//! The error of a netlink request.

use std::io;

use rustix::io::Errno;

/// What went wrong with a netlink request. Every variant names the
/// operation (`op`, e.g. "create veth kv101.0").
#[derive(Debug, thiserror::Error)]
pub enum NetlinkError {
    /// The kernel refused the request (a negative code in `NLMSG_ERROR` or
    /// `NLMSG_DONE`). `message` is the kernel's extended ack text, when it
    /// gave one (e.g. "Attribute failed policy validation").
    #[error("{op}: {}{}", io::Error::from_raw_os_error(*errno), ext_ack(message))]
    Kernel {
        op: String,
        errno: i32,
        message: Option<String>,
    },
    /// The socket itself failed (creating, sending, receiving, entering the
    /// namespace).
    #[error("{op}: {source}")]
    Io {
        op: String,
        #[source]
        source: io::Error,
    },
    /// The kernel's reply could not be understood, or lacked what the
    /// request must return.
    #[error("{op}: {detail}")]
    Protocol { op: String, detail: String },
}

fn ext_ack(message: &Option<String>) -> String {
    match message {
        Some(m) => format!(": {m}"),
        None => String::new(),
    }
}

impl NetlinkError {
    /// The errno of a kernel refusal or of a failed socket call; `None` for
    /// protocol errors.
    pub fn errno(&self) -> Option<i32> {
        match self {
            Self::Kernel { errno, .. } => Some(*errno),
            Self::Io { source, .. } => source.raw_os_error(),
            Self::Protocol { .. } => None,
        }
    }

    /// Whether the kernel refused the request with `errno` (socket
    /// failures never match).
    pub(super) fn is_kernel(&self, errno: Errno) -> bool {
        matches!(self, Self::Kernel { errno: e, .. } if *e == errno.raw_os_error())
    }

    pub(super) fn io(op: &str, source: io::Error) -> Self {
        Self::Io {
            op: op.to_owned(),
            source,
        }
    }

    pub(super) fn protocol(op: &str, detail: impl Into<String>) -> Self {
        Self::Protocol {
            op: op.to_owned(),
            detail: detail.into(),
        }
    }
}

//! The errors of Kennel's networking.

use std::io;

use crate::netlink::NetlinkError;

#[derive(Debug, thiserror::Error)]
pub enum NetError {
    /// A value the operator gave is wrong; the text says what to give.
    #[error("{0}")]
    BadInput(String),
    /// The host lacks something the configuration needs (a bridge, an
    /// uplink, a tool).
    #[error("{0}")]
    Host(String),
    #[error("{what}: {source}")]
    Io {
        what: String,
        #[source]
        source: io::Error,
    },
    #[error(transparent)]
    Netlink(#[from] NetlinkError),
    /// `nft` or `tc` refused a change; `detail` is its first line.
    #[error("{tool}: {what}: {detail}")]
    Tool {
        tool: &'static str,
        what: String,
        detail: String,
    },
}

pub type Result<T> = std::result::Result<T, NetError>;

pub(crate) fn io_err(what: impl Into<String>) -> impl FnOnce(io::Error) -> NetError {
    let what = what.into();
    move |source| NetError::Io { what, source }
}

//! A small synchronous rtnetlink client: links, addresses, routes and proxy
//! neighbours, in the caller's network namespace or in another one.
//!
//! Why this wrapper exists:
//!
//! - It is the one place that touches the netlink crates
//!   (`netlink-packet-route`, `netlink-packet-core`, `netlink-sys`). Those
//!   crates change their API often (renamed variants, reshaped messages);
//!   the rest of Kennel sees only the small API here, so an upgrade is
//!   fixed in this module alone.
//! - It is synchronous (blocking `send`/`recv` on one socket) because its
//!   caller, the per-VE monitor, is a tiny single-threaded process with no
//!   async runtime. The `rtnetlink` crate would bring tokio.
//!
//! Every request carries `NLM_F_REQUEST|NLM_F_ACK` and a fresh sequence
//! number; replies are read until the matching acknowledgement, error or
//! `NLMSG_DONE`, and messages of other sequence numbers are skipped. A
//! kernel refusal becomes [`NetlinkError::Kernel`] with the errno and the
//! operation's text; "not there" answers of lookups and deletions become
//! `None`/`false` instead.
//!
//! ```no_run
//! # fn main() -> kennel_net::netlink::Result<()> {
//! use kennel_net::netlink::Netlink;
//! let mut nl = Netlink::open()?;
//! if let Some(index) = nl.link_index("lo")? {
//!     nl.set_up(index)?;
//! }
//! # Ok(())
//! # }
//! ```

mod address;
mod error;
mod link;
mod neigh;
mod route;
mod socket;

pub use error::NetlinkError;
pub use link::{LinkInfo, VethEnd};
pub use route::Route;
pub use socket::Netlink;

/// The result of a netlink request.
pub type Result<T> = std::result::Result<T, NetlinkError>;

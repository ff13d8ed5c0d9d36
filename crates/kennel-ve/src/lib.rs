//! What a Kennel VE is, and its lifecycle.
//!
//! * [`id`], [`units`], [`config`]: the VE's identity and its one
//!   human-readable TOML configuration file.
//! * [`paths`]: where everything lives below the state root.
//! * [`lock`]: a per-VE lock and a host lock for allocations.
//! * [`idmap`]: each VE's own 65,536-id range on the host.
//! * [`lifecycle`]: create, start, stop, exec, console, destroy, status and
//!   the teardown the monitor calls when a VE ends. This is the library
//!   API that the `kennel` CLI (and later the API server) calls.

mod claims;
pub mod config;
pub mod cpuset;
mod error;
pub mod host_config;
pub mod id;
pub mod lifecycle;
pub mod limit;
pub mod lock;
pub mod paths;
pub mod resources;
pub mod units;

pub use error::{ErrorKind, Result, VeError};
pub use id::VeId;
pub use lifecycle::Kennel;

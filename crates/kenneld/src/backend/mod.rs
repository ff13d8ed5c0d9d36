//! How the service changes things: never in its own process.
//!
//! A start forks the VE's monitor with a raw `clone3`, and its child then
//! does ordinary Rust work; in a multi-threaded process (this one) a lock
//! another thread held at the fork would stay held in that child for
//! ever (crates/kennel-ve/src/lifecycle/batch). So every change runs in a
//! single-threaded `kennel` process, the CLI's own code:
//!
//! * start, stop and kill go to warm **batch workers** (`kennel
//!   __batch-worker OP`, [`workers`]), started ahead and reused: a
//!   request pays neither an exec nor the state root's checks;
//! * everything else runs the matching `kennel` command ([`cli`]), with
//!   arguments built from the typed request, never from a shell line.
//!
//! So the API and the CLI cannot disagree: they are the same code. A
//! change is finished even if its client goes away: it runs, holding its
//! claim, to its audit line, in a task of its own ([`detached`]); and a
//! VE never depends on the service: its monitor is the VE's, not ours.

pub mod changes;
pub mod cli;
pub mod workers;

pub use changes::{detached, Changes};
pub use cli::KennelCli;
pub use workers::Workers;

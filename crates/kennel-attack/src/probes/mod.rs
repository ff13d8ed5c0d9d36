//! The probes, by area; `main` maps subcommand names to them.

pub mod devices;
pub mod exe;
pub mod fuse;
pub mod kernel;
pub mod mounts;
pub mod net;
pub mod procs;
pub mod res;
pub mod walk;

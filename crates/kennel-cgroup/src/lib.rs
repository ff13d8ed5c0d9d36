//! Kennel's cgroups: where a VE's cgroups are created, limited, delegated,
//! joined, read and removed, on cgroup v1, v2 and the hybrid layout.
//!
//! The cgroup filesystem is the API, so this crate is a thin typed layer over
//! its files (see `../shared/docs/crates.md`): [`Host`] discovers the mounted
//! hierarchies once, [`Cgroup`] is one Kennel-made cgroup across all of them,
//! and [`Limits`] is the resource model that [`Cgroup::apply_limits`] writes
//! in the dialect of whichever hierarchy holds each controller.
//!
//! Kennel only ever writes inside cgroups it created itself.

mod error;
mod host;
mod limits;
mod mountinfo;
mod placement;
mod tree;
mod walk;

pub use error::{CgroupError, Result};
pub use host::{Hierarchy, HierarchyKind, Host};
pub use limits::{CpuLimit, Limits};
pub use placement::Placement;
pub use tree::{Cgroup, Part, Usage};

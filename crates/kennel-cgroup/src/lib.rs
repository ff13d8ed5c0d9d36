//! Kennel's cgroups: where a VE's cgroups are created, limited, delegated,
//! joined, read and removed, on cgroup v1, v2 and the hybrid layout.
//!
//! The cgroup filesystem is the API, so this crate is a thin typed layer over
//! its files, written by hand as the project's crate notes chose (the files
//! are the API, and placement and delegation are Kennel's own policy): [`Host`] discovers the
//! mounted hierarchies once, [`Cgroup`] is one Kennel-made cgroup across all
//! of them, [`Limits`] is the resource model that [`Cgroup::prepare`] writes
//! in the dialect of whichever hierarchy holds each controller, and
//! [`Placement`] puts a new process into a cgroup without the kernel's
//! global lock. A VE's cgroup is found through its [`CgroupRecord`],
//! written before the cgroup is made and removed after it is gone.
//!
//! Kennel writes only inside cgroups it created, with one exception: on
//! cgroup v2, a `cgroup_parent` below an existing cgroup (a systemd unit's)
//! needs the controllers enabled in that cgroup's `cgroup.subtree_control`.

mod accounting;
mod error;
mod freeze;
mod host;
mod host_cache;
mod io_devices;
mod limits;
mod live;
mod mountinfo;
mod placement;
mod record;
mod tree;
mod walk;

pub use accounting::{keyed, sum_below, Accounting, Counter, CpuUsage, IoUsage};
pub use error::{CgroupError, Result};
pub use host::{Hierarchy, HierarchyKind, Host};
pub use io_devices::{disks_of, BlockDevice};
pub use limits::{CpuLimit, IoLimits, Limits};
pub use live::Journal;
pub use placement::Placement;
pub use record::{CgroupRecord, RECORD_FILE};
pub use tree::{Cgroup, Part, Usage};

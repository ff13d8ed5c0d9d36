//! Kennel's runtime: everything that happens in processes, in the order a
//! VE starts.
//!
//! * [`launch`]: the start path as seen from the host. `kennel start` forks
//!   the VE's monitor and makes the VE's v1 cgroups meanwhile; the monitor
//!   clones the VE's init into new user, PID, UTS and IPC namespaces (and
//!   its cgroup v2), writes its id maps, mounts its root inside the VE's
//!   own mount namespace, and finally becomes the small `kennel-monitor`
//!   program.
//! * [`child`]: the start path as seen from inside the VE, one module per
//!   step: mount and network namespaces and root ([`child::rootfs`]), `/proc` and `/sys`
//!   ([`child::kernfs`]), cgroupfs ([`child::cgroupfs`]), `/dev` and the
//!   console ([`child::dev`]), `pivot_root` ([`child::pivot`]), and the last
//!   steps before exec'ing init ([`child::finish`]).
//! * [`policy`]: the capability bounding set and seccomp filter shared by a
//!   VE's init and every process `kennel exec` starts in it.
//! * [`join`]: `kennel exec` / `enter`: entering a running VE.
//! * [`inside`]: host work on a VE's files, done as the VE's root inside
//!   its namespaces by a short-lived helper that holds no host descriptor.
//! * [`devpts`]: each VE's pty instance, made from the host so that the VE
//!   cannot raise its limit.
//! * [`features`]: the opt-in features a VE may be given.
//! * [`console`] and [`pty`]: attaching a terminal to a VE.
//! * [`state`]: what a running VE's run directory records, and how the
//!   kernel is asked whether it is still true ([`procfs`]).

pub mod child;
pub mod console;
pub mod devpts;
mod error;
pub mod features;
pub mod inside;
pub mod join;
pub mod launch;
pub mod live;
pub mod lxcfs;
pub mod policy;
pub mod procfs;
pub mod pty;
pub mod spec;
pub mod state;
mod sync;

pub use error::{Result, RuntimeError};

//! The start path inside the VE: the code the VE's future init runs between
//! `clone3` and `execve`, one module per step, in this order:
//!
//! 0. join the VE's v1 cgroups (see `kennel_cgroup::Placement`);
//! 1. [`rootfs`]: become the VE's root user, take a private mount namespace
//!    and cgroup namespace, and open the VE's root (mounted by the monitor).
//! 2. [`kernfs`]: `/proc` (with masked and read-only parts) and `/sys`.
//! 3. [`dev`]: a tmpfs `/dev` with the host's harmless device nodes, a
//!    private devpts, the console pty, `/dev/shm`; and `/run`.
//! 4. [`cgroupfs`]: the VE's own view of every cgroup hierarchy.
//! 5. [`pivot`]: `pivot_root` into the VE's root and drop the host's tree.
//! 6. [`finish`]: hostname, keyring, loopback, console handover,
//!    capabilities, seccomp, and exec of init.
//!
//! Steps 2-4 happen before `pivot_root` because the kernel only lets a user
//! namespace mount a new procfs or sysfs while a fully visible one is in its
//! mount namespace. Every mount target is opened below the VE's root with
//! `openat2(RESOLVE_BENEATH | RESOLVE_NO_SYMLINKS)`, so a symlink planted in
//! the VE's files can never redirect a mount.

pub mod cgroupfs;
pub mod dev;
pub mod finish;
pub mod kernfs;
mod mnt;
pub mod pivot;
pub mod rootfs;

use std::os::fd::{AsFd, OwnedFd};

use crate::error::Result;
use crate::spec::StartSpec;
use crate::sync;

/// Runs the VE side of a start in the freshly cloned child; never returns.
pub(crate) fn run(
    spec: &StartSpec,
    host: &kennel_cgroup::Host,
    place: &kennel_cgroup::Placement,
    sock: OwnedFd,
) -> ! {
    let err = match setup(spec, host, place, &sock) {
        Ok(never) => match never {},
        Err(e) => e,
    };
    sync::send_error(sock.as_fd(), &err.to_string());
    // SAFETY: _exit ends this forked child without running the parent's
    // destructors (whose resources the parent still owns).
    unsafe { libc::_exit(1) }
}

fn setup(
    spec: &StartSpec,
    host: &kennel_cgroup::Host,
    place: &kennel_cgroup::Placement,
    sock: &OwnedFd,
) -> Result<std::convert::Infallible> {
    // Into the VE's cgroups (v1) while the monitor works on the host side;
    // cgroup v2 placement happened at clone time.
    place.join_self()?;
    sync::wait_go(sock.as_fd())
        .map_err(|e| crate::RuntimeError::Setup(format!("waiting for the monitor: {e}")))?;
    let root = rootfs::enter(spec)?;
    kernfs::mount_proc(&root)?;
    kernfs::mount_sys(&root)?;
    let console = dev::mount_dev(&root)?;
    dev::mount_run(&root)?;
    cgroupfs::mount(&root, host)?;
    pivot::pivot(&root)?;
    finish::exec_init(spec, sock, console)
}

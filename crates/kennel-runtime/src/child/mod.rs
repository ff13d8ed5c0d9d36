//! The start path inside the VE: the code the VE's future init runs between
//! `clone3` and `execve`, one module per step, in this order:
//!
//! 1. [`rootfs`]: take its own mount and network namespaces; the monitor
//!    mounts the VE's root into that mount namespace and hands over a
//!    descriptor of it; become the VE's root user.
//! 2. [`scratch`]: the VE's one tmpfs, whose places become `/dev`,
//!    `/dev/shm`, `/run`, the covers of host hardware and (pure v1)
//!    `/sys/fs/cgroup`; then [`kernfs`]: `/proc` (with masked and
//!    read-only parts) and `/sys`.
//! 3. [`dev`]: a tmpfs `/dev` with the host's harmless device nodes (and
//!    those of opt-in features), the devpts instance the host made for the
//!    VE, the console pty, `/dev/shm`; and `/run`. With the `nesting`
//!    feature, an unmasked procfs and sysfs ([`kernfs::mount_unmasked`]).
//! 4. join the rest of the VE's v1 cgroups (see `kennel_cgroup::Part`;
//!    `kennel start` makes them while steps 1-3 run; the memory cgroup was
//!    joined first thing), take the cgroup namespace, and mount
//!    [`cgroupfs`]: the VE's own view of every hierarchy.
//! 5. [`pivot`]: `pivot_root` into the VE's root and drop the host's tree.
//! 6. [`finish`]: hostname, keyring, loopback, the VE's network files
//!    (`kennel_net::guest`), console handover, capabilities, seccomp, and
//!    exec of init. (The VE's links are made meanwhile by the monitor.)
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
pub(crate) mod mnt;
pub mod pivot;
pub mod rootfs;
pub mod scratch;

use std::os::fd::{AsFd, OwnedFd};

use crate::error::{Context, Result};
use crate::spec::StartSpec;
use crate::sync;

/// Runs the VE side of a start in the freshly cloned child; never returns.
pub(crate) fn run(
    spec: &StartSpec,
    host: &kennel_cgroup::Host,
    early: &kennel_cgroup::Placement,
    sock: OwnedFd,
) -> ! {
    // Cloned with setuid fix-ups off (`launch::owner`): back on, before
    // anything else.
    if let Err(e) = crate::launch::owner_child_reset() {
        sync::send_error(sock.as_fd(), &format!("reset the secure bits: {e}"));
        kennel_sys::process::exit_child(1)
    }
    // Until init runs, the VE dies with its monitor (which the start
    // kills on any failure). A monitor that died before this line is
    // noticed at the next message: the socket is closed.
    if let Err(e) =
        rustix::process::set_parent_process_death_signal(Some(rustix::process::Signal::KILL))
    {
        sync::send_error(sock.as_fd(), &format!("set the parent-death signal: {e}"));
        kennel_sys::process::exit_child(1)
    }
    let err = match setup(spec, host, early, &sock) {
        Ok(never) => match never {},
        Err(e) => e,
    };
    sync::send_error(sock.as_fd(), &err.to_string());
    kennel_sys::process::exit_child(1)
}

fn setup(
    spec: &StartSpec,
    host: &kennel_cgroup::Host,
    early: &kennel_cgroup::Placement,
    sock: &OwnedFd,
) -> Result<std::convert::Infallible> {
    // Charged to the VE from here on (v1 memory; v2 came with the clone).
    early.join_self()?;
    rootfs::private_namespaces()?;
    sync::send_ready(sock.as_fd()).ctx(|| "tell the monitor".into())?;
    // The network namespace (owned by the VE's user namespace) is the
    // costliest: made here while the monitor mounts the root.
    kennel_sys::ns::unshare_namespaces(rustix::thread::UnshareFlags::NEWNET)
        .ctx(|| "create the VE's network namespace".into())?;
    sync::send_net_ready(sock.as_fd()).ctx(|| "tell the monitor".into())?;
    let go = sync::Go::wait(sock.as_fd())
        .map_err(|e| crate::RuntimeError::Setup(format!("waiting for the monitor: {e}")))?;
    let root = rootfs::VeRoot { fd: go.root };
    rootfs::become_root()?;
    // The kernel clears the parent-death signal on every change of the
    // effective ids: set it again. A monitor that died in between is seen
    // at the next message (its socket is closed).
    rustix::process::set_parent_process_death_signal(Some(rustix::process::Signal::KILL))
        .ctx(|| "set the parent-death signal".into())?;
    tracing::debug!("ve: go");
    let scratch = scratch::Scratch::new(&root, !host.has_v2())?;
    tracing::debug!("ve: tmpfs");
    let mut hider = kernfs::Hider::new(scratch.hide);
    kernfs::mount_proc(&root, &mut hider)?;
    tracing::debug!("ve: /proc");
    kernfs::mount_sys(&root, &mut hider)?;
    tracing::debug!("ve: /sys");
    if let Some(dir) = &spec.lxcfs {
        let n = kernfs::mount_lxcfs(&root, dir);
        tracing::debug!("ve: {n} lxcfs files");
    }
    let places = dev::DevPlaces {
        dev: scratch.dev,
        shm: scratch.shm,
    };
    let console = dev::mount_dev(&root, places, go.devpts, &go.nodes, &spec.features)?;
    tracing::debug!("ve: /dev");
    if spec.features.has(crate::features::Feature::Nesting) {
        kernfs::mount_unmasked(&root)?;
    }
    dev::mount_run(&root, scratch.run)?;
    tracing::debug!("ve: /run");
    // Into the VE's v1 cgroups once `kennel start` has made them (the v2
    // one was joined at clone time); then the cgroup namespace rooted there.
    sync::wait_cgroups_ready(sock.as_fd()).ctx(|| "wait for the VE's cgroups".into())?;
    spec.cgroup
        .cgroup(host)
        .ve_placement_part(kennel_cgroup::Part::Late)?
        .join_self()?;
    kennel_sys::ns::unshare_namespaces(rustix::thread::UnshareFlags::NEWCGROUP)
        .ctx(|| "create the VE's cgroup namespace".into())?;
    tracing::debug!("ve: cgroups joined");
    cgroupfs::mount(&root, host, scratch.cgroup)?;
    tracing::debug!("ve: cgroupfs");
    pivot::pivot(&root)?;
    tracing::debug!("ve: pivoted");
    finish::exec_init(spec, sock, console)
}

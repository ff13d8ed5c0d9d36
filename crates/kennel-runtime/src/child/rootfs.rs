//! Step 1: the VE's identity and mount namespace.

use std::os::fd::OwnedFd;

use kennel_sys::ns::unshare_namespaces as unshare;
use rustix::mount::{mount_change, MountPropagationFlags};
use rustix::thread::{set_thread_groups, set_thread_res_gid, set_thread_res_uid, UnshareFlags};

use crate::error::{Context, Result};

/// The VE's root: a mount the monitor made directly in the VE's own mount
/// namespace (so it is not locked, as `pivot_root` requires), held as a
/// descriptor: the child never needs to walk the host's paths to it.
#[derive(Debug)]
pub struct VeRoot {
    pub fd: OwnedFd,
}

/// Unshares the mount namespace: a copy of the host's, made private so that
/// nothing propagates in from the host. Needs no id mapping yet: the
/// creator of a user namespace holds every capability in it from the start.
pub fn private_namespaces() -> Result<()> {
    unshare(UnshareFlags::NEWNS).ctx(|| "create the VE's mount namespace".into())?;
    mount_change(
        "/",
        MountPropagationFlags::PRIVATE | MountPropagationFlags::REC,
    )
    .ctx(|| "make the VE's mounts private".into())
}

/// Becomes uid/gid 0 of the VE's user namespace (the monitor has written
/// the id maps by now), so everything created from here on belongs to
/// the VE.
pub fn become_root() -> Result<()> {
    let zero_u = rustix::process::Uid::ROOT;
    let zero_g = rustix::process::Gid::ROOT;
    set_thread_res_gid(zero_g, zero_g, zero_g).ctx(|| "become gid 0 in the VE".into())?;
    set_thread_res_uid(zero_u, zero_u, zero_u).ctx(|| "become uid 0 in the VE".into())?;
    set_thread_groups(&[]).ctx(|| "drop supplementary groups".into())
}

//! Step 1: the VE's identity and mount namespace.

use std::os::fd::OwnedFd;

use kennel_sys::ns::unshare_namespaces as unshare;
use rustix::fs::{Mode, OFlags};
use rustix::mount::{mount_bind_recursive, mount_change, MountPropagationFlags};
use rustix::thread::{set_thread_groups, set_thread_res_gid, set_thread_res_uid, UnshareFlags};

use crate::error::{Context, Result};
use crate::spec::StartSpec;

/// The VE's root, bind-mounted onto itself (a mount the VE's namespace
/// owns, as `pivot_root` requires) and opened as a descriptor.
#[derive(Debug)]
pub struct VeRoot {
    pub fd: OwnedFd,
}

/// Becomes uid/gid 0 of the VE's user namespace, unshares the mount and
/// cgroup namespaces (the monitor has already put this process in the VE's
/// cgroups), and opens the VE's root.
pub fn enter(spec: &StartSpec) -> Result<VeRoot> {
    // Host root is not mapped in the VE: switch to the VE's own root first,
    // so everything created from here on belongs to the VE.
    let zero_u = rustix::process::Uid::ROOT;
    let zero_g = rustix::process::Gid::ROOT;
    set_thread_res_gid(zero_g, zero_g, zero_g).ctx(|| "become gid 0 in the VE".into())?;
    set_thread_res_uid(zero_u, zero_u, zero_u).ctx(|| "become uid 0 in the VE".into())?;
    set_thread_groups(&[]).ctx(|| "drop supplementary groups".into())?;
    unshare(UnshareFlags::NEWNS | UnshareFlags::NEWCGROUP)
        .ctx(|| "create the VE's mount and cgroup namespaces".into())?;
    mount_change(
        "/",
        MountPropagationFlags::PRIVATE | MountPropagationFlags::REC,
    )
    .ctx(|| "make the VE's mounts private".into())?;
    let target = spec.root_mountpoint();
    mount_bind_recursive(&target, &target)
        .ctx(|| format!("bind the VE's root {}", target.display()))?;
    let fd = rustix::fs::open(
        &target,
        OFlags::PATH | OFlags::DIRECTORY | OFlags::CLOEXEC,
        Mode::empty(),
    )
    .ctx(|| format!("open the VE's root {}", target.display()))?;
    Ok(VeRoot { fd })
}

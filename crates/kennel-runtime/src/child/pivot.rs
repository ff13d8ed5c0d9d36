//! Step 5: make the VE's root the root, and let go of the host's tree.

use std::os::fd::AsFd;

use rustix::mount::{mount_change, unmount, MountPropagationFlags, UnmountFlags};
use rustix::process::{chdir, fchdir, pivot_root};

use super::rootfs::VeRoot;
use crate::error::{Context, Result};

pub fn pivot(root: &VeRoot) -> Result<()> {
    fchdir(root.fd.as_fd()).ctx(|| "enter the VE's root".into())?;
    // pivot_root(".", ".") stacks the old root on top of the new one; the
    // lazy unmount then drops the whole host tree from this namespace.
    pivot_root(".", ".").ctx(|| "pivot_root into the VE's root".into())?;
    unmount(".", UnmountFlags::DETACH).ctx(|| "detach the host's root".into())?;
    chdir("/").ctx(|| "chdir /".into())?;
    // systemd and friends expect a shared root (services with private
    // mount namespaces still see later mounts).
    mount_change(
        "/",
        MountPropagationFlags::SHARED | MountPropagationFlags::REC,
    )
    .ctx(|| "make the VE's root shared".into())?;
    Ok(())
}

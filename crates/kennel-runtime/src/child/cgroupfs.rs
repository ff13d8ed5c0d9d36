//! Step 4: the VE's view of the cgroup hierarchies.
//!
//! The VE is in its own cgroup namespace rooted at its Kennel cgroup, so a
//! fresh cgroup mount shows only the VE's subtree. Wherever the host has a
//! cgroup2 hierarchy (pure v2, or hybrid) the VE gets just
//! that, at /sys/fs/cgroup, and its systemd runs in unified mode there:
//! that subtree is bounded (`cgroup.max.*`), while v1 can bound nothing a
//! VE makes (see `kennel_cgroup`'s delegation note); the v1 controllers
//! still confine the VE from outside. Only on a pure v1 host does it get
//! a read-only place of the VE's tmpfs ([`super::scratch`]) holding one
//! mount per v1 hierarchy (its systemd in legacy mode). A cgroup mount,
//! v1 or v2, makes no superblock of its own: the kernel shares the
//! hierarchy's one superblock among all its mounts, whatever the cgroup
//! namespace (the VE's `/sys/fs/cgroup` has the host's device number).

use std::os::fd::{AsFd, OwnedFd};

use kennel_cgroup::{HierarchyKind, Host};
use rustix::fs::{mkdirat, openat, symlinkat, Mode, OFlags};

use super::kernfs::mount_and_open;
use super::mnt::{new_fs, NOSUID_NODEV_NOEXEC};
use super::rootfs::VeRoot;
use crate::error::{Context, Result, RuntimeError};

/// `place`: `/sys/fs/cgroup`'s place on the VE's tmpfs
/// ([`super::scratch`]), needed on a pure v1 host only.
pub fn mount(root: &VeRoot, host: &Host, place: Option<OwnedFd>) -> Result<()> {
    let r = root.fd.as_fd();
    if host.has_v2() {
        let fs = new_fs("cgroup2", &[], &[], NOSUID_NODEV_NOEXEC)?;
        mount_and_open(r, "sys/fs/cgroup", fs, 0o755)?;
        return Ok(());
    }
    let place = place.ok_or_else(|| {
        RuntimeError::Setup("no place on the VE's tmpfs for /sys/fs/cgroup".into())
    })?;
    let cg = mount_and_open(r, "sys/fs/cgroup", place, 0o755)?;
    let dir = openat(
        cg.as_fd(),
        ".",
        OFlags::RDONLY | OFlags::DIRECTORY | OFlags::CLOEXEC,
        Mode::empty(),
    )
    .ctx(|| "open /sys/fs/cgroup".into())?;
    for h in host.hierarchies() {
        let HierarchyKind::V1 { name } = &h.kind else {
            continue;
        };
        let Some(sub) = h
            .subdir()
            .and_then(|s| s.to_str())
            .filter(|s| !s.is_empty() && !s.contains('/'))
        else {
            continue;
        };
        mkdirat(dir.as_fd(), sub, Mode::from_raw_mode(0o755))
            .ctx(|| format!("create /sys/fs/cgroup/{sub}"))?;
        let flags: Vec<&str> = if h.controllers.is_empty() {
            vec!["none"]
        } else {
            h.controllers.iter().map(String::as_str).collect()
        };
        let strings: Vec<(&str, &str)> = name.iter().map(|n| ("name", n.as_str())).collect();
        let fs = new_fs("cgroup", &flags, &strings, NOSUID_NODEV_NOEXEC)?;
        mount_and_open(cg.as_fd(), sub, fs, 0o755)?;
        // cpu,cpuacct style mounts get one symlink per controller.
        if sub.contains(',') {
            for c in sub.split(',') {
                let _ = symlinkat(sub, dir.as_fd(), c);
            }
        }
    }
    kennel_sys::mount::set_readonly(cg.as_fd()).map_err(|source| RuntimeError::Sys {
        what: "make /sys/fs/cgroup read-only".into(),
        source,
    })?;
    Ok(())
}

//! Reaching into a running VE from the host, for live changes: its
//! namespaces and root as descriptors (checked to belong to the VE's init,
//! not to a process that reused its PID), and its hostname.

use std::os::fd::{AsFd, OwnedFd};

use rustix::fs::{Mode, OFlags};
use rustix::thread::{move_into_link_name_space, LinkNameSpaceType};

use crate::error::{Context, Result, RuntimeError};
use crate::procfs;

/// Opens `/proc/PID/WHAT` of the VE's init (`ns/net`, `root`), and checks
/// afterwards that PID still is that init, so the descriptor is the VE's.
pub fn open_of_init(pid: i32, start: u64, what: &str) -> Result<OwnedFd> {
    let flags = if what == "root" {
        OFlags::PATH | OFlags::DIRECTORY | OFlags::CLOEXEC
    } else {
        OFlags::RDONLY | OFlags::CLOEXEC
    };
    let fd = rustix::fs::open(format!("/proc/{pid}/{what}"), flags, Mode::empty())
        .ctx(|| format!("open the VE's {what}"))?;
    if !procfs::is_live_process(pid, start) {
        return Err(RuntimeError::NotRunning);
    }
    Ok(fd)
}

/// Sets the hostname in the VE's UTS namespace (the one of `uts`, from
/// [`open_of_init`]). A short-lived thread joins the namespace, so the
/// caller's own stays as it was.
pub fn set_hostname(uts: &OwnedFd, name: &str) -> Result<()> {
    let name = name.to_string();
    std::thread::scope(|s| {
        s.spawn(|| -> Result<()> {
            move_into_link_name_space(
                uts.as_fd(),
                Some(LinkNameSpaceType::HostNameAndNISDomainName),
            )
            .ctx(|| "enter the VE's UTS namespace".into())?;
            rustix::system::sethostname(name.as_bytes()).ctx(|| "set the VE's hostname".into())
        })
        .join()
        .unwrap_or_else(|_| Err(RuntimeError::Kernel("the hostname thread panicked".into())))
    })
}

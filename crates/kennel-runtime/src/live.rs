//! Reaching into a running VE from the host, for live changes: its
//! namespaces as descriptors, checked to belong to the VE's init, not to a
//! process that reused its PID. (Work on the VE's files goes through
//! [`crate::inside`], never through `/proc/PID/root`.)

use std::os::fd::OwnedFd;

use rustix::fs::{Mode, OFlags};

use crate::error::{Context, Result, RuntimeError};
use crate::procfs;

/// Opens `/proc/PID/ns/NS` of the VE's init (`net`), and checks afterwards
/// that PID still is that init, so the descriptor is the VE's.
pub fn open_ns_of_init(pid: i32, start: u64, ns: &str) -> Result<OwnedFd> {
    let fd = rustix::fs::open(
        format!("/proc/{pid}/ns/{ns}"),
        OFlags::RDONLY | OFlags::CLOEXEC,
        Mode::empty(),
    )
    .ctx(|| format!("open the VE's {ns} namespace"))?;
    if !procfs::is_live_process(pid, start) {
        return Err(RuntimeError::NotRunning);
    }
    Ok(fd)
}

/// Changes the pty limit of a running VE: through the devpts mount its
/// monitor holds (see [`crate::devpts`]), taken with `pidfd_getfd` once
/// the monitor is known to be the one that started with the VE.
pub fn set_numpty(
    monitor_pid: i32,
    monitor_start: u64,
    opts: crate::devpts::DevptsOptions,
) -> Result<()> {
    use std::os::fd::AsFd;
    let monitor = procfs::pin_live(monitor_pid, monitor_start)?;
    let mount = rustix::process::pidfd_getfd(
        &monitor,
        crate::launch::MONITOR_FD_DEVPTS,
        rustix::process::PidfdGetfdFlags::empty(),
    )
    .ctx(|| "take the VE's devpts from its monitor".into())?;
    let fs = rustix::fs::fstatfs(&mount).ctx(|| "look at the VE's devpts".into())?;
    if fs.f_type as i64 != crate::devpts::DEVPTS_SUPER_MAGIC {
        return Err(RuntimeError::Protocol(
            "the VE's monitor holds no devpts (started by an older Kennel?): restart the VE to change its pty limit".into(),
        ));
    }
    crate::devpts::set_max(mount.as_fd(), opts)
}

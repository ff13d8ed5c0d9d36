//! What the monitor hands to the `kennel-monitor` program: the VE's pidfd,
//! the console pty, the console socket and the VE's devpts at fixed
//! descriptor numbers, and
//! a process detached from the caller of `kennel start`.

use std::ffi::CString;
use std::os::fd::{AsRawFd, OwnedFd, RawFd};

use rustix::fs::{Mode, OFlags};
use rustix::net::{AddressFamily, SocketFlags, SocketType};

use crate::error::{Context, Result};
use crate::spec::StartSpec;
use crate::state::MONITOR_SOCKET;

/// Descriptor numbers the monitor program finds its inheritance at.
pub const MONITOR_FD_PIDFD: RawFd = 3;
pub const MONITOR_FD_CONSOLE: RawFd = 4;
pub const MONITOR_FD_CONSOLE_PEER: RawFd = 5;
pub const MONITOR_FD_SOCKET: RawFd = 6;
/// A mount of the VE's devpts, for `kennel set --numpty` (see
/// [`crate::devpts`]).
pub const MONITOR_FD_DEVPTS: RawFd = 7;

/// What the monitor program inherits.
pub(super) struct Handover {
    pub(super) init_pid: i32,
    pub(super) pidfd: OwnedFd,
    pub(super) master: OwnedFd,
    pub(super) peer: OwnedFd,
    pub(super) socket: OwnedFd,
    pub(super) devpts: OwnedFd,
}

/// The monitor must not keep the caller's terminal, session or files.
/// Standard error goes to `log` (the VE's monitor.log).
pub(super) fn detach_from_caller(keep: &[RawFd], log: &std::path::Path) -> Result<()> {
    let _ = rustix::process::setsid();
    let null = rustix::fs::open("/dev/null", OFlags::RDWR | OFlags::CLOEXEC, Mode::empty())
        .ctx(|| "open /dev/null".into())?;
    let log = rustix::fs::open(
        log,
        OFlags::WRONLY | OFlags::CREATE | OFlags::APPEND | OFlags::CLOEXEC,
        Mode::from_raw_mode(0o600),
    )
    .ctx(|| format!("open {}", log.display()))?;
    for (fd, src) in [(0, &null), (1, &null), (2, &log)] {
        kennel_sys::fd::dup_onto(src.as_raw_fd(), fd)
            .ctx(|| "redirect the monitor's standard streams".into())?;
    }
    drop(null);
    drop(log);
    kennel_sys::fd::close_all_from(3, keep).ctx(|| "close inherited descriptors".into())?;
    for sig in [
        libc::SIGHUP,
        libc::SIGINT,
        libc::SIGQUIT,
        libc::SIGTERM,
        libc::SIGPIPE,
        libc::SIGTSTP,
        libc::SIGTTIN,
        libc::SIGTTOU,
    ] {
        kennel_sys::signal::ignore(sig);
    }
    rustix::process::umask(rustix::fs::Mode::from_raw_mode(0o022));
    Ok(())
}

/// The monitor's control socket (console attach), root-only.
pub(super) fn listen(spec: &StartSpec) -> Result<OwnedFd> {
    use rustix::net::{bind, listen as sock_listen, socket_with, SocketAddrUnix};
    let path = spec.run_dir.join(MONITOR_SOCKET);
    let _ = std::fs::remove_file(&path);
    let s = socket_with(
        AddressFamily::UNIX,
        SocketType::STREAM,
        SocketFlags::CLOEXEC,
        None,
    )
    .ctx(|| "create the monitor socket".into())?;
    let addr = SocketAddrUnix::new(&path).ctx(|| format!("socket path {}", path.display()))?;
    bind(&s, &addr).ctx(|| format!("bind {}", path.display()))?;
    std::fs::set_permissions(&path, std::os::unix::fs::PermissionsExt::from_mode(0o600))
        .ctx(|| format!("chmod {}", path.display()))?;
    sock_listen(&s, 4).ctx(|| "listen on the monitor socket".into())?;
    Ok(s)
}

/// Becomes the `kennel-monitor` program; returns only on failure.
pub(super) fn exec_monitor(spec: &StartSpec, h: &Handover) -> std::io::Error {
    let fds = [
        (h.pidfd.as_raw_fd(), MONITOR_FD_PIDFD),
        (h.master.as_raw_fd(), MONITOR_FD_CONSOLE),
        (h.peer.as_raw_fd(), MONITOR_FD_CONSOLE_PEER),
        (h.socket.as_raw_fd(), MONITOR_FD_SOCKET),
        (h.devpts.as_raw_fd(), MONITOR_FD_DEVPTS),
    ];
    // Move everything above the target range first so dup2 never clobbers
    // a source (just above it: a low descriptor limit must not break this).
    let above = fds.iter().map(|(_, t)| *t).max().unwrap_or(2) + 1;
    let mut moved = Vec::new();
    for (src, _) in fds {
        match kennel_sys::fd::dup_above(src, above) {
            Ok(d) => moved.push(d),
            Err(e) => return e,
        }
    }
    for (d, (_, target)) in moved.iter().zip(fds) {
        if let Err(e) = kennel_sys::fd::dup_onto(*d, target) {
            return e;
        }
    }
    let exe = match CString::new(spec.monitor_exe.as_os_str().as_encoded_bytes()) {
        Ok(e) => e,
        Err(_) => return std::io::Error::other("monitor path has a NUL byte"),
    };
    let mut args = vec![exe.clone(), c"--id".to_owned()];
    args.extend(CString::new(spec.id.as_str()).ok());
    args.push(c"--".to_owned());
    args.extend(
        spec.monitor_args
            .iter()
            .filter_map(|a| CString::new(a.as_str()).ok()),
    );
    let env = [c"PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin".to_owned()];
    kennel_sys::process::execve(&exe, &args, &env)
}

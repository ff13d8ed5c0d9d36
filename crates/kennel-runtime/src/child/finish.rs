//! Step 6: the last things before init runs.

use std::ffi::CString;
use std::os::fd::{AsFd, AsRawFd, OwnedFd};

use super::dev::Console;
use crate::error::{Context, Result, RuntimeError};
use crate::spec::StartSpec;
use crate::sync;

pub fn exec_init(
    spec: &StartSpec,
    sock: &OwnedFd,
    console: Console,
) -> Result<std::convert::Infallible> {
    rustix::system::sethostname(spec.hostname.as_bytes()).ctx(|| "set the hostname".into())?;
    tracing::debug!("ve: hostname");
    kennel_sys::keyring::join_new_session_keyring()
        .ctx(|| "create the VE's session keyring".into())?;
    kennel_net::loopback_up().ctx(|| "bring up the VE's loopback".into())?;
    tracing::debug!("ve: keyring, lo");
    sync::send_console(sock.as_fd(), console.master.as_fd(), console.peer.as_fd())
        .ctx(|| "hand the console to the monitor".into())?;
    drop(console.master);
    // The console is init's stdin, stdout and stderr.
    rustix::process::setsid().ctx(|| "start a session".into())?;
    for fd in 0..3 {
        kennel_sys::fd::dup_onto(console.peer.as_raw_fd(), fd)
            .ctx(|| "connect init to the console".into())?;
    }
    drop(console.peer);
    kennel_sys::fd::close_all_from(3, &[sock.as_raw_fd()])
        .ctx(|| "close inherited descriptors".into())?;
    // Only now, with no host descriptor left to reach through /proc.
    write_guest_files(spec);
    kennel_sys::signal::reset_all().ctx(|| "reset signal handlers".into())?;
    crate::policy::caps::drop_bounding()?;
    let path = CString::new(spec.init.path.as_str())
        .map_err(|_| RuntimeError::Setup("init path has a NUL byte".into()))?;
    let mut argv: Vec<CString> = vec![path.clone()];
    for a in &spec.init.args {
        argv.push(
            CString::new(a.as_str())
                .map_err(|_| RuntimeError::Setup("init argument has a NUL byte".into()))?,
        );
    }
    let envp: Vec<CString> = spec
        .init
        .env
        .iter()
        .filter_map(|e| CString::new(e.as_str()).ok())
        .collect();
    // From here the VE outlives its monitor (see `super::run`).
    rustix::process::set_parent_process_death_signal(None)
        .ctx(|| "clear the parent-death signal".into())?;
    kennel_sys::seccomp::install(&spec.seccomp).ctx(|| "install the seccomp filter".into())?;
    let err = kennel_sys::process::execve(&path, &argv, &envp);
    Err(RuntimeError::Setup(format!(
        "cannot run the VE's init {}: {err}",
        spec.init.path
    )))
}

/// Writes the VE's own view of its name and network into its files
/// (`kennel_net::guest`). Runs after `pivot_root`, as the VE's root: every
/// path is the VE's own, and whatever the VE put in place of a file other
/// than a regular file (a symlink, a FIFO) is left alone. A failure here
/// does not stop the VE: it is noted on the VE's console (its stderr by
/// then).
fn write_guest_files(spec: &StartSpec) {
    let Ok(root) = rustix::fs::open(
        "/",
        rustix::fs::OFlags::PATH | rustix::fs::OFlags::DIRECTORY | rustix::fs::OFlags::CLOEXEC,
        rustix::fs::Mode::empty(),
    ) else {
        return;
    };
    let view = kennel_net::guest::GuestView {
        ve: &spec.id,
        hostname: &spec.hostname,
        net: &spec.network,
    };
    let target = kennel_net::guest::Root { fd: root.as_fd() };
    if let Err(e) = kennel_net::guest::apply(&target, &view) {
        tracing::warn!("VE {}: network files: {e}", spec.id);
    }
}

//! Step 6: the last things before init runs.

use std::ffi::CString;
use std::fs;
use std::io::Write;
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
    sync_etc_hostname(&spec.hostname);
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
    kennel_sys::seccomp::install(&spec.seccomp).ctx(|| "install the seccomp filter".into())?;
    let err = kennel_sys::process::execve(&path, &argv, &envp);
    Err(RuntimeError::Setup(format!(
        "cannot run the VE's init {}: {err}",
        spec.init.path
    )))
}

/// Keeps `/etc/hostname` in the VE equal to its configured hostname, so
/// that an init that reads it (systemd) agrees with Kennel. Runs after
/// `pivot_root`: every path here is the VE's own.
fn sync_etc_hostname(hostname: &str) {
    let p = std::path::Path::new("/etc/hostname");
    if !p.parent().is_some_and(|d| d.is_dir()) {
        return;
    }
    let want = format!("{hostname}\n");
    if fs::read(p).is_ok_and(|cur| cur == want.as_bytes()) {
        return;
    }
    let tmp = std::path::Path::new("/etc/.hostname.kennel");
    let ok = fs::File::create(tmp)
        .and_then(|mut f| f.write_all(want.as_bytes()))
        .is_ok();
    if ok && fs::rename(tmp, p).is_err() {
        let _ = fs::remove_file(tmp);
    }
}

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
        // SAFETY: dup2 onto 0..2 replaces this process's standard streams;
        // no Rust object owns those descriptors in this child.
        let ret = unsafe { libc::dup2(console.peer.as_raw_fd(), fd) };
        if ret < 0 {
            return Err(std::io::Error::last_os_error())
                .ctx(|| "connect init to the console".into());
        }
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
    let argv_p: Vec<*const libc::c_char> = argv
        .iter()
        .map(|a| a.as_ptr())
        .chain(Some(std::ptr::null()))
        .collect();
    let envp_p: Vec<*const libc::c_char> = envp
        .iter()
        .map(|a| a.as_ptr())
        .chain(Some(std::ptr::null()))
        .collect();
    kennel_sys::seccomp::install(&spec.seccomp).ctx(|| "install the seccomp filter".into())?;
    // SAFETY: argv and envp are NULL-terminated arrays of pointers to
    // NUL-terminated strings that stay alive across the call; execve only
    // returns on failure.
    unsafe { libc::execve(path.as_ptr(), argv_p.as_ptr(), envp_p.as_ptr()) };
    let err = std::io::Error::last_os_error();
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

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
    sync_etc_hostname(&spec.hostname);
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

/// Keeps `/etc/hostname` in the VE equal to its configured hostname, so
/// that an init that reads it (systemd) agrees with Kennel. Runs after
/// `pivot_root`, as the VE's root: every path here is the VE's own, and
/// the VE may have made any of them a symlink, a FIFO or a huge file, so
/// nothing is followed, nothing blocks and at most a few bytes are read.
/// Anything odd is left alone.
fn sync_etc_hostname(hostname: &str) {
    use rustix::fs::{fstat, open, openat, renameat, unlinkat, AtFlags, FileType, Mode, OFlags};
    let flags = OFlags::NOFOLLOW | OFlags::CLOEXEC;
    let Ok(etc) = open(
        "/etc",
        flags | OFlags::DIRECTORY | OFlags::RDONLY,
        Mode::empty(),
    ) else {
        return;
    };
    let want = format!("{hostname}\n");
    match openat(
        &etc,
        "hostname",
        flags | OFlags::RDONLY | OFlags::NONBLOCK,
        Mode::empty(),
    ) {
        Ok(fd) => {
            let regular = fstat(&fd)
                .is_ok_and(|st| FileType::from_raw_mode(st.st_mode) == FileType::RegularFile);
            if !regular {
                return;
            }
            let mut buf = [0u8; 256];
            let n = rustix::io::read(&fd, &mut buf).unwrap_or(0);
            if buf.get(..n) == Some(want.as_bytes()) {
                return;
            }
        }
        Err(rustix::io::Errno::NOENT) => {}
        Err(_) => return,
    }
    let tmp = ".hostname.kennel";
    let _ = unlinkat(&etc, tmp, AtFlags::empty());
    let Ok(fd) = openat(
        &etc,
        tmp,
        flags | OFlags::WRONLY | OFlags::CREATE | OFlags::EXCL,
        Mode::from_raw_mode(0o644),
    ) else {
        return;
    };
    let written = rustix::io::write(&fd, want.as_bytes()) == Ok(want.len());
    drop(fd);
    if !written || renameat(&etc, tmp, &etc, "hostname").is_err() {
        let _ = unlinkat(&etc, tmp, AtFlags::empty());
    }
}

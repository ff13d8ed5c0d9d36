//! Leaving a forked child, exec'ing, and signalling by number.

use std::ffi::CString;
use std::io;
use std::os::fd::{AsRawFd, BorrowedFd};

/// Ends a forked child at once, without running the destructors or exit
/// handlers of the state it copied from its parent (which the parent still
/// owns).
pub fn exit_child(code: i32) -> ! {
    // SAFETY: _exit(2) takes no pointers and never returns.
    unsafe { libc::_exit(code) }
}

fn pointers(strings: &[CString]) -> Vec<*const libc::c_char> {
    strings
        .iter()
        .map(|s| s.as_ptr())
        .chain(Some(std::ptr::null()))
        .collect()
}

/// `execve(2)`: replaces the process with `path`. Returns only on failure.
pub fn execve(path: &CString, argv: &[CString], env: &[CString]) -> io::Error {
    let (a, e) = (pointers(argv), pointers(env));
    // SAFETY: `a` and `e` are NULL-terminated arrays of pointers to
    // NUL-terminated strings owned by `argv` and `env`, which outlive the
    // call; execve only returns on failure.
    unsafe { libc::execve(path.as_ptr(), a.as_ptr(), e.as_ptr()) };
    io::Error::last_os_error()
}

/// Like [`execve`], but a `file` without a slash is searched in the `PATH`
/// of `env` (not the caller's, as `execvpe(3)` would). Returns only on
/// failure, with the most telling error (EACCES over ENOENT).
pub fn execve_search(file: &str, argv: &[CString], env: &[CString]) -> io::Error {
    if file.contains('/') {
        return match CString::new(file) {
            Ok(p) => execve(&p, argv, env),
            Err(_) => io::Error::from_raw_os_error(libc::ENOENT),
        };
    }
    let path = env
        .iter()
        .find_map(|e| e.to_bytes().strip_prefix(b"PATH="))
        .map(|p| String::from_utf8_lossy(p).into_owned())
        .unwrap_or_else(|| "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin".into());
    let mut err = io::Error::from_raw_os_error(libc::ENOENT);
    for dir in path.split(':').filter(|d| !d.is_empty()) {
        let Ok(full) = CString::new(format!("{dir}/{file}")) else {
            continue;
        };
        let e = execve(&full, argv, env);
        match e.raw_os_error() {
            Some(libc::ENOENT) | Some(libc::ENOTDIR) => {}
            Some(libc::EACCES) => err = e,
            _ => return e,
        }
    }
    err
}

/// Sends signal number `sig` (any, including real-time signals that
/// rustix's `Signal` does not name) to the process behind `pidfd`.
pub fn pidfd_send_signal(pidfd: BorrowedFd<'_>, sig: i32) -> io::Result<()> {
    // SAFETY: pidfd_send_signal(2) with a NULL siginfo and no flags takes
    // no pointers; the descriptor is borrowed for the call.
    let ret = unsafe {
        libc::syscall(
            libc::SYS_pidfd_send_signal,
            pidfd.as_raw_fd(),
            sig,
            std::ptr::null::<libc::siginfo_t>(),
            0,
        )
    };
    crate::check(ret).map(drop)
}

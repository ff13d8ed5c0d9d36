//! Signal dispositions across exec: ignored signals stay ignored and the
//! blocked mask survives, so everything Kennel runs inside a VE starts from
//! a clean slate.

use std::io;

/// Restores the default action for every catchable signal and unblocks all
/// signals.
pub fn reset_all() -> io::Result<()> {
    for sig in 1..=libc::SIGRTMAX() {
        if sig == libc::SIGKILL || sig == libc::SIGSTOP {
            continue;
        }
        // SAFETY: SIG_DFL is always a valid disposition; signals the kernel
        // refuses (glibc-reserved RT signals) just return an error we ignore.
        unsafe { libc::signal(sig, libc::SIG_DFL) };
    }
    // SAFETY: an empty set is initialised by sigemptyset before use.
    let mut set: libc::sigset_t = unsafe { std::mem::zeroed() };
    // SAFETY: `set` is a valid sigset_t.
    unsafe { libc::sigemptyset(&mut set) };
    // SAFETY: `set` is initialised; the old mask is not needed (NULL).
    let ret = unsafe { libc::sigprocmask(libc::SIG_SETMASK, &set, std::ptr::null_mut()) };
    crate::check(ret as libc::c_long).map(drop)
}

/// Ignores `sig` (used by the monitor for SIGHUP, SIGINT, SIGPIPE, ...).
pub fn ignore(sig: i32) {
    // SAFETY: SIG_IGN is a valid disposition for any catchable signal.
    unsafe { libc::signal(sig, libc::SIG_IGN) };
}

/// The real-time signal number `SIGRTMIN + n` as the C library numbers it.
pub fn rtmin_plus(n: i32) -> i32 {
    libc::SIGRTMIN() + n
}

/// Blocks `sigs` for the calling thread and returns a signalfd that
/// reports them (for a poll loop without signal handlers).
pub fn signalfd_for(sigs: &[i32]) -> io::Result<std::os::fd::OwnedFd> {
    use std::os::fd::FromRawFd;
    // SAFETY: zeroed sigset_t is immediately initialised by sigemptyset.
    let mut set: libc::sigset_t = unsafe { std::mem::zeroed() };
    // SAFETY: `set` is a valid sigset_t for all calls below.
    unsafe { libc::sigemptyset(&mut set) };
    for &s in sigs {
        // SAFETY: as above; invalid numbers just return an error.
        unsafe { libc::sigaddset(&mut set, s) };
    }
    // SAFETY: `set` is initialised; the old mask is not needed.
    let ret = unsafe { libc::sigprocmask(libc::SIG_BLOCK, &set, std::ptr::null_mut()) };
    crate::check(ret as libc::c_long)?;
    // SAFETY: -1 asks for a new descriptor; `set` is initialised.
    let fd = unsafe { libc::signalfd(-1, &set, libc::SFD_CLOEXEC | libc::SFD_NONBLOCK) };
    crate::check(fd as libc::c_long)?;
    // SAFETY: signalfd returned a new descriptor that we now own.
    Ok(unsafe { std::os::fd::OwnedFd::from_raw_fd(fd) })
}

/// Unblocks `sigs` for the calling thread (after [`signalfd_for`]).
pub fn unblock(sigs: &[i32]) -> io::Result<()> {
    // SAFETY: zeroed sigset_t is immediately initialised by sigemptyset.
    let mut set: libc::sigset_t = unsafe { std::mem::zeroed() };
    // SAFETY: `set` is a valid sigset_t for all calls below.
    unsafe { libc::sigemptyset(&mut set) };
    for &s in sigs {
        // SAFETY: as above; invalid numbers just return an error.
        unsafe { libc::sigaddset(&mut set, s) };
    }
    // SAFETY: `set` is initialised; the old mask is not needed.
    let ret = unsafe { libc::sigprocmask(libc::SIG_UNBLOCK, &set, std::ptr::null_mut()) };
    crate::check(ret as libc::c_long).map(drop)
}

/// Reads one pending signal number from a signalfd, if any.
pub fn read_signalfd(fd: std::os::fd::BorrowedFd<'_>) -> Option<i32> {
    use std::os::fd::AsRawFd;
    // SAFETY: signalfd_siginfo is plain old data.
    let mut info: libc::signalfd_siginfo = unsafe { std::mem::zeroed() };
    let len = std::mem::size_of::<libc::signalfd_siginfo>();
    // SAFETY: reads at most `len` bytes into `info`, which is `len` bytes.
    let n = unsafe { libc::read(fd.as_raw_fd(), std::ptr::addr_of_mut!(info).cast(), len) };
    (n as usize == len).then_some(info.ssi_signo as i32)
}

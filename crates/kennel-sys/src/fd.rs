//! File-descriptor hygiene: close everything a child must not inherit.

use std::io;
use std::os::fd::RawFd;

/// Closes every file descriptor from `first` upwards except those in `keep`.
///
/// Used before exec'ing anything inside a VE so that no host descriptor
/// leaks into it.
pub fn close_all_from(first: RawFd, keep: &[RawFd]) -> io::Result<()> {
    let mut keep: Vec<RawFd> = keep.iter().copied().filter(|&fd| fd >= first).collect();
    keep.sort_unstable();
    keep.dedup();
    let mut lo = first;
    for &k in &keep {
        if k > lo {
            close_range(lo as u32, (k - 1) as u32)?;
        }
        lo = k + 1;
    }
    close_range(lo as u32, u32::MAX)
}

fn close_range(first: u32, last: u32) -> io::Result<()> {
    // SAFETY: close_range(2) only closes descriptors of this process; callers
    // own every descriptor in the range by construction (they are about to
    // exec or are a freshly forked child), so no live Rust object is left
    // holding a closed descriptor that it will use again.
    let ret = unsafe { libc::syscall(libc::SYS_close_range, first, last, 0) };
    crate::check(ret).map(drop)
}

/// Makes `dst` (0, 1, 2 or another fixed number) refer to what `src`
/// refers to, without close-on-exec: `dup2(2)`.
pub fn dup_onto(src: RawFd, dst: RawFd) -> io::Result<()> {
    // SAFETY: dup2 only changes this process's descriptor table; callers use
    // it for standard streams and fixed hand-over numbers that no Rust
    // object owns.
    let ret = unsafe { libc::dup2(src, dst) };
    crate::check(ret as libc::c_long).map(drop)
}

/// A close-on-exec duplicate of `src` numbered at least `min`.
pub fn dup_above(src: RawFd, min: RawFd) -> io::Result<RawFd> {
    // SAFETY: F_DUPFD_CLOEXEC creates a new descriptor; the caller becomes
    // responsible for it.
    let ret = unsafe { libc::fcntl(src, libc::F_DUPFD_CLOEXEC, min) };
    crate::check(ret as libc::c_long).map(|fd| fd as RawFd)
}

/// Waits until `fd` is readable (or hung up); `false` on timeout.
pub fn wait_readable(
    fd: std::os::fd::BorrowedFd<'_>,
    timeout: std::time::Duration,
) -> io::Result<bool> {
    use rustix::event::{poll, PollFd, PollFlags, Timespec};
    let deadline = std::time::Instant::now() + timeout;
    loop {
        let left = deadline.saturating_duration_since(std::time::Instant::now());
        let ts = Timespec {
            tv_sec: left.as_secs() as i64,
            tv_nsec: left.subsec_nanos() as i64,
        };
        let mut fds = [PollFd::new(&fd, PollFlags::IN)];
        match poll(&mut fds, Some(&ts)) {
            Ok(n) => return Ok(n > 0),
            Err(rustix::io::Errno::INTR) => continue,
            Err(e) => return Err(e.into()),
        }
    }
}

/// Writes all of `data` to `fd`, which may be non-blocking (a pty master):
/// waits for room instead of failing with `EAGAIN`.
pub fn write_all(fd: std::os::fd::BorrowedFd<'_>, mut data: &[u8]) -> io::Result<()> {
    use rustix::event::{poll, PollFd, PollFlags};
    use rustix::io::Errno;
    while !data.is_empty() {
        match rustix::io::write(fd, data) {
            Ok(n) => data = data.get(n..).unwrap_or_default(),
            Err(Errno::INTR) => {}
            Err(Errno::AGAIN) => {
                let mut p = [PollFd::new(&fd, PollFlags::OUT)];
                let _ = poll(&mut p, None);
            }
            Err(e) => return Err(e.into()),
        }
    }
    Ok(())
}

//! Namespace changes of the calling process.

use std::io;

use rustix::thread::UnshareFlags;

/// Unshares the namespaces in `flags` (only `CLONE_NEW*` flags).
///
/// rustix marks `unshare` unsafe because `CLONE_FILES`, `CLONE_FS` and
/// `CLONE_SYSVSEM` change state that Rust code may share between threads;
/// those flags are refused here.
pub fn unshare_namespaces(flags: UnshareFlags) -> io::Result<()> {
    let unsafe_flags = UnshareFlags::FILES | UnshareFlags::FS | UnshareFlags::SYSVSEM;
    if flags.intersects(unsafe_flags) {
        return Err(io::Error::from_raw_os_error(libc::EINVAL));
    }
    // SAFETY: only namespace flags are passed (checked above); new
    // namespaces do not invalidate any memory or descriptor Rust code holds.
    unsafe { rustix::thread::unshare_unsafe(flags) }.map_err(io::Error::from)
}

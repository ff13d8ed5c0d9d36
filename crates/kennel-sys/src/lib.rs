//! Raw Linux system calls that neither `rustix` nor `nix` wrap (or wrap in a way
//! that does not fit Kennel), each behind a small safe function.
//!
//! This is the only Kennel crate that contains `unsafe` code for system calls;
//! every `unsafe` block carries a `// SAFETY:` comment that says why the call
//! is sound. Keep this crate small: if a well-kept crate grows a wrapper for
//! one of these calls, use it and delete the code here.

pub mod blockdev;
pub mod clone;
pub mod fd;
pub mod keyring;
pub mod mount;
pub mod netif;
pub mod ns;
pub mod process;
pub mod seccomp;
pub mod signal;

use std::io;

/// Turns a raw `-1`-on-error return value into an `io::Result`.
pub(crate) fn check(ret: libc::c_long) -> io::Result<libc::c_long> {
    if ret < 0 {
        Err(io::Error::last_os_error())
    } else {
        Ok(ret)
    }
}

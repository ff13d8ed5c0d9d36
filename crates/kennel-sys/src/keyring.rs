//! Kernel keyrings are not namespaced: a VE gets a fresh session keyring so
//! that it never shares the host's.

use std::io;

const KEYCTL_JOIN_SESSION_KEYRING: libc::c_long = 1;

/// Replaces the calling process's session keyring with a new anonymous one.
pub fn join_new_session_keyring() -> io::Result<()> {
    // SAFETY: keyctl(KEYCTL_JOIN_SESSION_KEYRING, NULL) takes no pointers
    // other than the NULL name and only changes this process's keyring.
    let ret = unsafe {
        libc::syscall(
            libc::SYS_keyctl,
            KEYCTL_JOIN_SESSION_KEYRING,
            std::ptr::null::<libc::c_char>(),
        )
    };
    crate::check(ret).map(drop)
}

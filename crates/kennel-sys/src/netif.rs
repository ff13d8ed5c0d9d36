//! Bringing an interface up with the classic `SIOCSIFFLAGS` ioctl.
//!
//! A VE's loopback must be up before its init runs. Netlink would do, but a
//! synchronous ioctl on a throw-away socket costs a few microseconds on the
//! start path and needs no netlink machinery.

use std::io;
use std::os::fd::AsRawFd;

use rustix::net::{socket, AddressFamily, SocketType};

/// Sets `IFF_UP` on the interface `name` in the caller's network namespace.
pub fn set_up(name: &str) -> io::Result<()> {
    let sock = socket(AddressFamily::INET, SocketType::DGRAM, None)?;
    // SAFETY: `ifreq` is plain old data; all-zero is a valid value.
    let mut req: libc::ifreq = unsafe { std::mem::zeroed() };
    let bytes = name.as_bytes();
    if bytes.len() >= req.ifr_name.len() {
        return Err(io::Error::from_raw_os_error(libc::ENAMETOOLONG));
    }
    for (dst, &src) in req.ifr_name.iter_mut().zip(bytes) {
        *dst = src as libc::c_char;
    }
    // SAFETY: SIOCGIFFLAGS reads the NUL-terminated name from `req` and
    // writes the flags into its union; `req` lives across the call.
    let ret = unsafe { libc::ioctl(sock.as_raw_fd(), libc::SIOCGIFFLAGS, &mut req) };
    crate::check(ret as libc::c_long)?;
    // SAFETY: the kernel just filled `ifru_flags`, the active union member.
    unsafe { req.ifr_ifru.ifru_flags |= libc::IFF_UP as libc::c_short };
    // SAFETY: as above; SIOCSIFFLAGS reads the name and the flags.
    let ret = unsafe { libc::ioctl(sock.as_raw_fd(), libc::SIOCSIFFLAGS, &req) };
    crate::check(ret as libc::c_long).map(drop)
}

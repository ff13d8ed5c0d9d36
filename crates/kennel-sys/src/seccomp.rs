//! Installing an already compiled seccomp BPF program.
//!
//! libseccomp compiles Kennel's policy once per start; the VE's init and
//! every `kennel exec` then load the same program with one prctl, which is
//! much cheaper than compiling it again.

use std::io;

/// One classic-BPF instruction (`struct sock_filter`).
pub type SockFilter = libc::sock_filter;

/// Size in bytes of one [`SockFilter`] in its serialised form.
pub const INSN_LEN: usize = 8;

/// Installs `prog` as a seccomp filter for the calling thread and its future
/// children. The caller needs `CAP_SYS_ADMIN` in its user namespace or
/// `no_new_privs`.
pub fn install(prog: &[SockFilter]) -> io::Result<()> {
    let len = u16::try_from(prog.len()).map_err(|_| io::Error::from_raw_os_error(libc::E2BIG))?;
    let fprog = libc::sock_fprog {
        len,
        filter: prog.as_ptr().cast_mut(),
    };
    // SAFETY: `fprog` points at `len` valid instructions that outlive the
    // call; the kernel copies the program before returning.
    let ret = unsafe {
        libc::prctl(
            libc::PR_SET_SECCOMP,
            libc::SECCOMP_MODE_FILTER,
            std::ptr::addr_of!(fprog),
        )
    };
    crate::check(ret as libc::c_long).map(drop)
}

/// Parses a program serialised as by `seccomp_export_bpf` (native endian,
/// 8 bytes per instruction).
pub fn parse(bytes: &[u8]) -> io::Result<Vec<SockFilter>> {
    if bytes.is_empty() || !bytes.len().is_multiple_of(INSN_LEN) {
        return Err(io::Error::new(
            io::ErrorKind::InvalidData,
            "seccomp program has a truncated instruction",
        ));
    }
    Ok(bytes
        .chunks_exact(INSN_LEN)
        .map(|c| libc::sock_filter {
            code: u16::from_ne_bytes([c[0], c[1]]),
            jt: c[2],
            jf: c[3],
            k: u32::from_ne_bytes([c[4], c[5], c[6], c[7]]),
        })
        .collect())
}

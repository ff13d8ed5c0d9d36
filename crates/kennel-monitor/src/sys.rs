//! The monitor's system calls, made directly: every `unsafe` of the
//! monitor's own logic is here, each with its SAFETY comment.
//!
//! Why not `rustix`, as everywhere else in Kennel: the monitor is built in
//! the same Cargo build as `kennel`, whose dependencies turn on rustix's
//! `std` feature, and Cargo unifies features: rustix's descriptors would be
//! `std`'s, whose `Drop` calls the C library's `close`. The monitor runs
//! without the C library (see [`crate::rt`]), so it makes the dozen calls
//! it needs itself, with the kernel's numbers and structures from
//! `linux-raw-sys` (rustix's own source of them). x86-64 only, as the
//! program's entry point.

use core::arch::asm;
use core::ffi::{c_char, CStr};
use core::fmt;

use linux_raw_sys::general as g;
use linux_raw_sys::net as n;

/// An error number from the kernel.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Errno(pub u32);

impl Errno {
    pub const INTR: Errno = Errno(linux_raw_sys::errno::EINTR);
    pub const AGAIN: Errno = Errno(linux_raw_sys::errno::EAGAIN);

    /// A system call's return value: a negative error number, or a result.
    fn check(ret: isize) -> Result<usize> {
        if (-4095..0).contains(&ret) {
            Err(Errno(ret.unsigned_abs() as u32))
        } else {
            Ok(ret as usize)
        }
    }
}

impl fmt::Display for Errno {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "errno {}", self.0)
    }
}

pub type Result<T> = core::result::Result<T, Errno>;

/// A descriptor this process owns: closed when dropped.
#[derive(Debug)]
pub struct Fd(i32);

impl Fd {
    /// Takes ownership of descriptor `raw`.
    ///
    /// # Safety
    /// `raw` must be open and owned by nothing else in this process.
    pub unsafe fn from_raw(raw: i32) -> Fd {
        Fd(raw)
    }

    pub fn raw(&self) -> i32 {
        self.0
    }
}

impl Drop for Fd {
    fn drop(&mut self) {
        // SAFETY: the descriptor is this value's own (`from_raw`, `accept`)
        // and is closed once, here.
        let _ = unsafe { syscall1(g::__NR_close, self.0 as usize) };
    }
}

// SAFETY (for the syscallN functions): the caller passes arguments that are
// valid for system call `nr` (pointers to live memory of the sizes the call
// reads or writes). The `syscall` instruction clobbers rcx and r11 only,
// which are declared.
unsafe fn syscall1(nr: u32, a: usize) -> isize {
    let ret: isize;
    // SAFETY: see above.
    unsafe {
        asm!("syscall", inlateout("rax") nr as isize => ret, in("rdi") a,
             lateout("rcx") _, lateout("r11") _, options(nostack));
    }
    ret
}

unsafe fn syscall3(nr: u32, a: usize, b: usize, c: usize) -> isize {
    let ret: isize;
    // SAFETY: see above `syscall1`.
    unsafe {
        asm!("syscall", inlateout("rax") nr as isize => ret, in("rdi") a, in("rsi") b,
             in("rdx") c, lateout("rcx") _, lateout("r11") _, options(nostack));
    }
    ret
}

unsafe fn syscall5(nr: u32, a: usize, b: usize, c: usize, d: usize, e: usize) -> isize {
    let ret: isize;
    // SAFETY: see above `syscall1`.
    unsafe {
        asm!("syscall", inlateout("rax") nr as isize => ret, in("rdi") a, in("rsi") b,
             in("rdx") c, in("r10") d, in("r8") e, lateout("rcx") _, lateout("r11") _,
             options(nostack));
    }
    ret
}

unsafe fn syscall6(nr: u32, a: usize, b: usize, c: usize, d: usize, e: usize, f: usize) -> isize {
    let ret: isize;
    // SAFETY: see above `syscall1`.
    unsafe {
        asm!("syscall", inlateout("rax") nr as isize => ret, in("rdi") a, in("rsi") b,
             in("rdx") c, in("r10") d, in("r8") e, in("r9") f, lateout("rcx") _,
             lateout("r11") _, options(nostack));
    }
    ret
}

/// Reads into `buf`; 0 is the end of the file.
pub fn read(fd: &Fd, buf: &mut [u8]) -> Result<usize> {
    // SAFETY: `buf` is writable for its length.
    Errno::check(unsafe {
        syscall3(
            g::__NR_read,
            fd.0 as usize,
            buf.as_mut_ptr() as usize,
            buf.len(),
        )
    })
}

/// Writes `buf` to descriptor `fd` (the monitor's error output, fd 2).
pub fn write_raw(fd: i32, buf: &[u8]) -> Result<usize> {
    // SAFETY: `buf` is readable for its length; writing to a descriptor
    // number that is not open fails with EBADF and changes nothing.
    Errno::check(unsafe { syscall3(g::__NR_write, fd as usize, buf.as_ptr() as usize, buf.len()) })
}

/// Sends `buf` on a connected socket, without SIGPIPE.
pub fn send(fd: &Fd, buf: &[u8]) -> Result<usize> {
    // SAFETY: `buf` is readable for its length; no address is passed.
    Errno::check(unsafe {
        syscall6(
            g::__NR_sendto,
            fd.0 as usize,
            buf.as_ptr() as usize,
            buf.len(),
            n::MSG_NOSIGNAL as usize,
            0,
            0,
        )
    })
}

/// One descriptor's worth of `SCM_RIGHTS` control message.
#[repr(C)]
struct OneFdMessage {
    len: usize,
    level: i32,
    kind: i32,
    fd: i32,
    /// `CMSG_SPACE` rounds the data up to the header's alignment.
    _pad: i32,
}

/// Sends `data` with a copy of descriptor `passed` (`SCM_RIGHTS`), without
/// SIGPIPE.
pub fn send_with_fd(fd: &Fd, data: &[u8], passed: &Fd) -> Result<usize> {
    let mut cmsg = OneFdMessage {
        // CMSG_LEN(sizeof(int)): the header and the descriptor.
        len: core::mem::offset_of!(OneFdMessage, fd) + core::mem::size_of::<i32>(),
        level: n::SOL_SOCKET as i32,
        kind: n::SCM_RIGHTS as i32,
        fd: passed.0,
        _pad: 0,
    };
    let mut iov = g::iovec {
        iov_base: data.as_ptr() as *mut _,
        iov_len: data.len() as _,
    };
    let msg = n::msghdr {
        msg_name: core::ptr::null_mut(),
        msg_namelen: 0,
        // linux-raw-sys's `net` leaves iovec opaque; `general` has its fields.
        msg_iov: (&mut iov as *mut g::iovec).cast(),
        msg_iovlen: 1,
        msg_control: (&mut cmsg as *mut OneFdMessage).cast(),
        msg_controllen: core::mem::size_of::<OneFdMessage>(),
        msg_flags: 0,
    };
    // SAFETY: `msg` points at one iovec over `data` (read only: the kernel
    // does not write through a send's iovec) and at a control message laid
    // out as CMSG_SPACE(sizeof(int)) (16-byte header, the descriptor,
    // padding), all alive for the call.
    Errno::check(unsafe {
        syscall3(
            g::__NR_sendmsg,
            fd.0 as usize,
            &msg as *const n::msghdr as usize,
            n::MSG_NOSIGNAL as usize,
        )
    })
}

/// Accepts a connection on a listening socket; the new descriptor is
/// close-on-exec.
pub fn accept(fd: &Fd) -> Result<Fd> {
    // SAFETY: no address buffers are passed.
    let raw = Errno::check(unsafe {
        syscall6(
            g::__NR_accept4,
            fd.0 as usize,
            0,
            0,
            g::O_CLOEXEC as usize,
            0,
            0,
        )
    })?;
    Ok(Fd(raw as i32))
}

/// Puts `fd` in non-blocking mode.
pub fn set_nonblocking(fd: &Fd) -> Result<()> {
    let on: i32 = 1;
    // SAFETY: FIONBIO reads one int through the pointer, which is alive.
    Errno::check(unsafe {
        syscall3(
            g::__NR_ioctl,
            fd.0 as usize,
            linux_raw_sys::ioctl::FIONBIO as usize,
            &on as *const i32 as usize,
        )
    })
    .map(drop)
}

/// Marks `fd` close-on-exec.
pub fn set_cloexec(fd: &Fd) -> Result<()> {
    // SAFETY: F_SETFD takes an integer argument.
    Errno::check(unsafe {
        syscall3(
            g::__NR_fcntl,
            fd.0 as usize,
            g::F_SETFD as usize,
            g::FD_CLOEXEC as usize,
        )
    })
    .map(drop)
}

/// Waits at most `timeout_ms` (forever: `None`) for an event on `fds`.
pub fn poll(fds: &mut [g::pollfd], timeout_ms: Option<u64>) -> Result<usize> {
    // ppoll writes the time left back into the timeout: it is mutable.
    let mut ts = timeout_ms.map(|ms| g::__kernel_timespec {
        tv_sec: (ms / 1000) as _,
        tv_nsec: ((ms % 1000) * 1_000_000) as _,
    });
    let ts_ptr = ts
        .as_mut()
        .map_or(0, |t| t as *mut g::__kernel_timespec as usize);
    // SAFETY: `fds` is writable for its length (the kernel sets revents),
    // the timeout is alive and writable or null, and no signal mask is
    // passed.
    Errno::check(unsafe {
        syscall5(
            g::__NR_ppoll,
            fds.as_mut_ptr() as usize,
            fds.len(),
            ts_ptr,
            0,
            0,
        )
    })
}

/// A pollfd for `fd` and `events` (`POLLIN` or none).
pub fn pollfd(fd: &Fd, events: u32) -> g::pollfd {
    g::pollfd {
        fd: fd.0,
        events: events as i16,
        revents: 0,
    }
}

pub const POLLIN: u32 = g::POLLIN;

/// Milliseconds on the monotonic clock.
pub fn now_ms() -> u64 {
    let mut ts = g::__kernel_timespec {
        tv_sec: 0,
        tv_nsec: 0,
    };
    // SAFETY: the kernel writes one timespec into `ts`. (The system call,
    // not the vDSO: finding the vDSO needs the auxiliary vector, and the
    // monitor reads the clock only while console output flows.)
    let _ = unsafe {
        syscall3(
            g::__NR_clock_gettime,
            g::CLOCK_MONOTONIC as usize,
            &mut ts as *mut g::__kernel_timespec as usize,
            0,
        )
    };
    (ts.tv_sec as u64) * 1000 + (ts.tv_nsec as u64) / 1_000_000
}

/// How a child ended, as `waitid` reports it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Ended {
    Exited(i32),
    Signal(i32),
    /// A report that is neither (the kernel does not send one).
    Other,
}

/// `siginfo_t` as `waitid` fills it for a child (`_sigchld`).
#[repr(C)]
struct ChildInfo {
    signo: i32,
    errno: i32,
    code: i32,
    _pad: i32,
    pid: i32,
    uid: u32,
    status: i32,
    _rest: [u8; 100],
}
const _: () = assert!(core::mem::size_of::<ChildInfo>() == 128);

/// Waits for the child that `pidfd` refers to to end, and reaps it.
pub fn wait_pidfd(pidfd: &Fd) -> Result<Ended> {
    let mut info = ChildInfo {
        signo: 0,
        errno: 0,
        code: 0,
        _pad: 0,
        pid: 0,
        uid: 0,
        status: 0,
        _rest: [0; 100],
    };
    // SAFETY: the kernel writes one siginfo_t (128 bytes) into `info`; no
    // rusage is asked for.
    Errno::check(unsafe {
        syscall5(
            g::__NR_waitid,
            g::P_PIDFD as usize,
            pidfd.0 as usize,
            &mut info as *mut ChildInfo as usize,
            g::WEXITED as usize,
            0,
        )
    })?;
    Ok(match info.code as u32 {
        g::CLD_EXITED => Ended::Exited(info.status),
        g::CLD_KILLED | g::CLD_DUMPED => Ended::Signal(info.status),
        _ => Ended::Other,
    })
}

/// Replaces this process with `path`; returns only on failure.
///
/// `argv` and `envp` are null-terminated arrays of C strings.
pub fn execve(path: &CStr, argv: &[*const c_char], envp: *const *const c_char) -> Errno {
    if argv.last().is_none_or(|p| !p.is_null()) {
        return Errno(linux_raw_sys::errno::EINVAL);
    }
    // SAFETY: `path` is a C string, `argv` ends in a null pointer (checked
    // above) after C strings the caller keeps alive, and `envp` is the
    // environment the kernel gave this process (null-terminated).
    let ret = unsafe {
        syscall3(
            g::__NR_execve,
            path.as_ptr() as usize,
            argv.as_ptr() as usize,
            envp as usize,
        )
    };
    Errno::check(ret).err().unwrap_or(Errno(0))
}

/// Makes `len` bytes at page-aligned `addr` read-only.
///
/// # Safety
/// Nothing may write to that memory afterwards (the program's RELRO
/// region, which nothing writes once loaded).
pub unsafe fn protect_read_only(addr: usize, len: usize) -> Result<()> {
    // SAFETY: the caller's contract; mprotect changes no memory's contents.
    Errno::check(unsafe { syscall3(g::__NR_mprotect, addr, len, g::PROT_READ as usize) }).map(drop)
}

/// Ends the process.
pub fn exit(code: i32) -> ! {
    // SAFETY: exit_group takes an integer and does not return.
    unsafe {
        asm!("syscall", in("rax") g::__NR_exit_group as usize, in("rdi") code as usize,
             options(noreturn, nostack));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_pipe_round_trip_through_read_and_poll() {
        let mut fds = [0i32; 2];
        // SAFETY: pipe2 writes two descriptors into `fds`.
        let r = unsafe {
            syscall3(
                g::__NR_pipe2,
                fds.as_mut_ptr() as usize,
                g::O_CLOEXEC as usize,
                0,
            )
        };
        Errno::check(r).expect("pipe2");
        // SAFETY: both were just made and are owned by nothing else.
        let (rd, wr) = unsafe { (Fd::from_raw(fds[0]), Fd::from_raw(fds[1])) };
        let mut p = [pollfd(&rd, POLLIN)];
        assert_eq!(
            poll(&mut p, Some(10)).expect("poll"),
            0,
            "nothing to read yet"
        );
        assert_eq!(write_raw(wr.raw(), b"hey").expect("write"), 3);
        assert_eq!(poll(&mut p, Some(1000)).expect("poll"), 1);
        let mut buf = [0u8; 8];
        assert_eq!(read(&rd, &mut buf).expect("read"), 3);
        assert_eq!(&buf[..3], b"hey");
        set_nonblocking(&rd).expect("nonblocking");
        assert_eq!(read(&rd, &mut buf), Err(Errno::AGAIN));
        set_cloexec(&rd).expect("cloexec");
    }

    #[test]
    fn a_descriptor_crosses_a_socket_with_its_message() {
        use rustix::net::{
            recvmsg, socketpair, AddressFamily, RecvAncillaryBuffer, RecvAncillaryMessage,
            RecvFlags, SocketFlags, SocketType,
        };
        use std::os::fd::{AsRawFd, IntoRawFd};
        let (a, b) = socketpair(
            AddressFamily::UNIX,
            SocketType::STREAM,
            SocketFlags::CLOEXEC,
            None,
        )
        .expect("socketpair");
        let (prd, pwr) = rustix::pipe::pipe().expect("pipe");
        // SAFETY: both were just made and are handed over whole.
        let (a, passed) = unsafe {
            (
                Fd::from_raw(a.into_raw_fd()),
                Fd::from_raw(pwr.into_raw_fd()),
            )
        };
        assert_eq!(send_with_fd(&a, b"OK\x05\0\0\0", &passed).expect("send"), 6);
        drop(passed);
        let mut data = [0u8; 16];
        let mut space = [std::mem::MaybeUninit::uninit(); rustix::cmsg_space!(ScmRights(2))];
        let mut anc = RecvAncillaryBuffer::new(&mut space);
        let mut iov = [std::io::IoSliceMut::new(&mut data)];
        let got = recvmsg(&b, &mut iov, &mut anc, RecvFlags::CMSG_CLOEXEC).expect("recvmsg");
        assert_eq!(got.bytes, 6);
        assert!(!got.flags.contains(rustix::net::ReturnFlags::CTRUNC));
        let fds: Vec<_> = anc
            .drain()
            .flat_map(|m| match m {
                RecvAncillaryMessage::ScmRights(fds) => fds.collect::<Vec<_>>(),
                _ => Vec::new(),
            })
            .collect();
        assert_eq!(fds.len(), 1, "exactly one descriptor");
        // It is the pipe's write end: what is written arrives.
        rustix::io::write(&fds[0], b"x").expect("write through it");
        let mut one = [0u8; 1];
        assert_eq!(rustix::io::read(&prd, &mut one).expect("read"), 1);
        assert_eq!(data[..2], *b"OK");
        assert!(prd.as_raw_fd() >= 0);
    }

    #[test]
    fn a_childs_exit_and_its_killing_signal_are_read_through_its_pidfd() {
        use std::os::fd::IntoRawFd;
        use std::process::Command;
        let cases = [
            ("exit 77", Ended::Exited(77)),
            ("kill -9 $$", Ended::Signal(9)),
            ("exit 0", Ended::Exited(0)),
        ];
        for (script, want) in cases {
            let child = Command::new("/bin/sh")
                .args(["-c", script])
                .spawn()
                .expect("spawn");
            let pid = rustix::process::Pid::from_raw(child.id() as i32).expect("pid");
            let pidfd = rustix::process::pidfd_open(pid, rustix::process::PidfdFlags::empty())
                .expect("pidfd_open");
            // SAFETY: just opened, handed over whole.
            let pidfd = unsafe { Fd::from_raw(pidfd.into_raw_fd()) };
            assert_eq!(wait_pidfd(&pidfd).expect("waitid"), want, "{script}");
            std::mem::forget(child); // reaped above
        }
    }

    #[test]
    fn the_clock_moves_forward() {
        let a = now_ms();
        let mut none: [g::pollfd; 0] = [];
        poll(&mut none, Some(20)).expect("sleep");
        assert!(now_ms() >= a + 19);
    }

    #[test]
    fn errors_are_negative_returns() {
        assert_eq!(Errno::check(-4), Err(Errno::INTR));
        assert_eq!(Errno::check(7), Ok(7));
        let mut buf = [0u8; 1];
        // SAFETY: -1 is no descriptor; the call fails.
        assert!(read(&unsafe { Fd::from_raw(-1) }, &mut buf).is_err());
    }
}

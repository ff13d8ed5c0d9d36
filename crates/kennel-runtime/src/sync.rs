//! The messages that cross process boundaries during a start, and the two
//! primitives (a message with descriptors attached) they are made of:
//!
//! * VE child -> monitor, over a `SOCK_SEQPACKET` pair: "ready" once it has
//!   its own mount namespace, then "net" once it has its own network
//!   namespace (for the VE's links);
//! * monitor -> VE child: "go" with a descriptor of the VE's root, which the
//!   monitor has mounted into the child's mount namespace, and its devpts
//!   instance (made by the host, see `crate::devpts`); later "cg" once
//!   the VE's v1 cgroups exist (they are made in parallel);
//! * VE child -> monitor: either an error text, or the console pty (master
//!   and peer descriptors); then end-of-file when `execve` of init closes
//!   the child's close-on-exec end;
//! * monitor -> `kennel start`, over a pipe: one line, `ok PID` or
//!   `err MESSAGE`.

use std::io::{self, IoSlice, IoSliceMut};
use std::mem::MaybeUninit;
use std::os::fd::{AsFd, BorrowedFd, OwnedFd};
use std::time::Duration;

use rustix::net::{
    recvmsg, sendmsg, RecvAncillaryBuffer, RecvAncillaryMessage, RecvFlags, SendAncillaryBuffer,
    SendAncillaryMessage, SendFlags,
};

const GO: &[u8] = b"go";
const READY: &[u8] = b"R";
const NET_READY: &[u8] = b"N";
const CGROUPS: &[u8] = b"cg";
const ERR_PREFIX: &[u8] = b"E";
const CONSOLE: &[u8] = b"C";

/// The most descriptors one message carries: "go" (the VE's root, its
/// devpts, every feature's device node).
const MAX_FDS: usize = 2 + crate::launch::devnodes::FEATURE_NODES.len();

/// A new channel between two processes of a start or an exec: a
/// close-on-exec `SOCK_SEQPACKET` pair (messages keep their bounds).
pub(crate) fn channel() -> io::Result<(OwnedFd, OwnedFd)> {
    rustix::net::socketpair(
        rustix::net::AddressFamily::UNIX,
        rustix::net::SocketType::SEQPACKET,
        rustix::net::SocketFlags::CLOEXEC,
        None,
    )
    .map_err(io::Error::from)
}

/// Sends one message with up to [`MAX_FDS`] descriptors attached.
pub(crate) fn send_msg(
    sock: BorrowedFd<'_>,
    data: &[u8],
    fds: &[BorrowedFd<'_>],
) -> io::Result<()> {
    let mut space = [MaybeUninit::uninit(); rustix::cmsg_space!(ScmRights(MAX_FDS))];
    let mut anc = SendAncillaryBuffer::new(&mut space);
    if !fds.is_empty() && !anc.push(SendAncillaryMessage::ScmRights(fds)) {
        return Err(io::Error::from_raw_os_error(libc::E2BIG));
    }
    sendmsg(sock, &[IoSlice::new(data)], &mut anc, SendFlags::NOSIGNAL)?;
    Ok(())
}

/// Receives one message into `buf` and the descriptors attached to it
/// (close-on-exec). Zero bytes means the other end is gone.
pub(crate) fn recv_msg(sock: BorrowedFd<'_>, buf: &mut [u8]) -> io::Result<(usize, Vec<OwnedFd>)> {
    let mut space = [MaybeUninit::uninit(); rustix::cmsg_space!(ScmRights(MAX_FDS))];
    let mut anc = RecvAncillaryBuffer::new(&mut space);
    let mut iov = [IoSliceMut::new(buf)];
    let n = recvmsg(sock, &mut iov, &mut anc, RecvFlags::CMSG_CLOEXEC)?.bytes;
    let mut fds = Vec::new();
    for m in anc.drain() {
        if let RecvAncillaryMessage::ScmRights(r) = m {
            fds.extend(r);
        }
    }
    Ok((n, fds))
}

fn gone() -> io::Error {
    io::Error::new(io::ErrorKind::BrokenPipe, "the monitor went away")
}

/// What the VE child sent.
#[derive(Debug)]
pub(crate) enum FromChild {
    Ready,
    NetReady,
    Console {
        master: OwnedFd,
        peer: OwnedFd,
    },
    Error(String),
    /// The child exec'd its init (or died without a word).
    Eof,
}

/// Monitor -> child: "go", with what the monitor made for the VE.
#[derive(Debug)]
pub(crate) struct Go {
    /// The VE's root, mounted in the child's mount namespace.
    pub(crate) root: OwnedFd,
    /// The (detached) pty instance the host made for the VE.
    pub(crate) devpts: OwnedFd,
    /// The device nodes of its features, in `launch::devnodes` order.
    pub(crate) nodes: Vec<OwnedFd>,
}

impl Go {
    pub(crate) fn send(&self, sock: BorrowedFd<'_>) -> io::Result<()> {
        let mut fds = vec![self.root.as_fd(), self.devpts.as_fd()];
        fds.extend(self.nodes.iter().map(|n| n.as_fd()));
        send_msg(sock, GO, &fds)
    }

    /// Blocks until the monitor says go.
    pub(crate) fn wait(sock: BorrowedFd<'_>) -> io::Result<Self> {
        let mut buf = [0u8; 8];
        let (n, fds) = recv_msg(sock, &mut buf)?;
        let mut fds = fds.into_iter();
        match (&buf[..n] == GO, fds.next(), fds.next()) {
            (true, Some(root), Some(devpts)) => Ok(Go {
                root,
                devpts,
                nodes: fds.collect(),
            }),
            _ => Err(gone()),
        }
    }
}

/// Monitor -> child: the VE's v1 cgroups exist now.
pub(crate) fn send_cgroups_ready(sock: BorrowedFd<'_>) -> io::Result<()> {
    send_msg(sock, CGROUPS, &[])
}

/// Blocks until the monitor says the VE's cgroups exist.
pub(crate) fn wait_cgroups_ready(sock: BorrowedFd<'_>) -> io::Result<()> {
    let mut buf = [0u8; 8];
    match recv_msg(sock, &mut buf)? {
        (n, _) if &buf[..n] == CGROUPS => Ok(()),
        _ => Err(gone()),
    }
}

/// Child -> monitor: the child has its own mount namespace, ready for the
/// root mount.
pub(crate) fn send_ready(sock: BorrowedFd<'_>) -> io::Result<()> {
    send_msg(sock, READY, &[])
}

/// Child -> monitor: the child has its own network namespace.
pub(crate) fn send_net_ready(sock: BorrowedFd<'_>) -> io::Result<()> {
    send_msg(sock, NET_READY, &[])
}

pub(crate) fn send_error(sock: BorrowedFd<'_>, msg: &str) {
    let mut m = ERR_PREFIX.to_vec();
    m.extend_from_slice(msg.as_bytes());
    m.truncate(4000);
    let _ = send_msg(sock, &m, &[]);
}

pub(crate) fn send_console(
    sock: BorrowedFd<'_>,
    master: BorrowedFd<'_>,
    peer: BorrowedFd<'_>,
) -> io::Result<()> {
    send_msg(sock, CONSOLE, &[master, peer])
}

/// Receives the child's next message, waiting at most `timeout`.
pub(crate) fn recv_from_child(sock: BorrowedFd<'_>, timeout: Duration) -> io::Result<FromChild> {
    if !wait_readable(sock, timeout)? {
        return Err(io::Error::new(
            io::ErrorKind::TimedOut,
            "the VE did not finish its setup in time",
        ));
    }
    let mut buf = [0u8; 4096];
    let (n, mut fds) = recv_msg(sock, &mut buf)?;
    let data = &buf[..n];
    if n == 0 {
        return Ok(FromChild::Eof);
    }
    if let Some(text) = data.strip_prefix(ERR_PREFIX) {
        return Ok(FromChild::Error(String::from_utf8_lossy(text).into_owned()));
    }
    if data == READY {
        return Ok(FromChild::Ready);
    }
    if data == NET_READY {
        return Ok(FromChild::NetReady);
    }
    if data == CONSOLE && fds.len() == 2 {
        if let (Some(peer), Some(master)) = (fds.pop(), fds.pop()) {
            return Ok(FromChild::Console { master, peer });
        }
    }
    Err(io::Error::new(
        io::ErrorKind::InvalidData,
        "unexpected message from the VE",
    ))
}

/// Waits until `fd` is readable (or hung up); false on timeout.
pub(crate) fn wait_readable(fd: BorrowedFd<'_>, timeout: Duration) -> io::Result<bool> {
    kennel_sys::fd::wait_readable(fd, timeout)
}

/// Writes the one-line report to `kennel start`.
pub(crate) fn report<Fd: AsFd>(pipe: Fd, line: &str) {
    let mut s = line.replace('\n', " ");
    s.push('\n');
    let _ = rustix::io::write(pipe, s.as_bytes());
}

/// Reads the one-line report (up to end-of-file).
pub(crate) fn read_report<Fd: AsFd>(pipe: Fd, timeout: Duration) -> io::Result<String> {
    let mut out = Vec::new();
    let mut buf = [0u8; 1024];
    loop {
        if !wait_readable(pipe.as_fd(), timeout)? {
            return Err(io::Error::new(
                io::ErrorKind::TimedOut,
                "no answer from the VE's monitor",
            ));
        }
        let n = rustix::io::read(pipe.as_fd(), &mut buf)?;
        if n == 0 {
            break;
        }
        out.extend_from_slice(&buf[..n]);
        if out.contains(&b'\n') {
            break;
        }
    }
    Ok(String::from_utf8_lossy(&out).trim().to_string())
}

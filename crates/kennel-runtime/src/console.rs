//! `kennel console`: attaching the user's terminal to a VE's console.
//!
//! The VE's monitor owns the console pty. On attach it hands the pty
//! master over its socket (`SCM_RIGHTS`) together with the recent console
//! output it kept, and stops reading the console until the client goes
//! away; the client then talks to the pty directly. One client at a time.
//!
//! Wire format (monitor -> client), first message: 2 bytes `OK` + u32 LE
//! length of the backlog, with the master descriptor attached; then the
//! backlog bytes. A monitor that already has a client sends `BUSY`.

use std::os::fd::{AsFd, OwnedFd};
use std::path::Path;

use rustix::net::{connect, socket_with, AddressFamily, SocketAddrUnix, SocketFlags, SocketType};

use crate::error::{Context, Result, RuntimeError};
use crate::pty::{self, RelayEnd, RelayOptions, TerminalMode};
use crate::state::MONITOR_SOCKET;

/// The default detach key: Ctrl-] (as telnet and virsh console).
pub const DEFAULT_ESCAPE: u8 = 0x1d;

pub const HELLO_OK: &[u8; 2] = b"OK";
pub const HELLO_BUSY: &[u8; 4] = b"BUSY";

/// Attaches stdin/stdout to the console of the VE whose run directory is
/// `run_dir` until the user types `escape` or the VE stops. `on_connect`
/// runs once the monitor has handed the console over.
pub fn attach(run_dir: &Path, escape: u8, on_connect: &mut dyn FnMut()) -> Result<RelayEnd> {
    let path = run_dir.join(MONITOR_SOCKET);
    let sock = socket_with(
        AddressFamily::UNIX,
        SocketType::STREAM,
        SocketFlags::CLOEXEC,
        None,
    )
    .ctx(|| "create a socket".into())?;
    let addr = SocketAddrUnix::new(&path).ctx(|| format!("socket path {}", path.display()))?;
    connect(&sock, &addr).map_err(|e| RuntimeError::MonitorUnreachable {
        path: path.clone(),
        source: e.into(),
    })?;
    let (master, backlog_len) = hello(sock.as_fd())?;
    on_connect();
    let stdout = rustix::stdio::stdout();
    let mut left = backlog_len;
    let mut buf = [0u8; 4096];
    while left > 0 {
        let n = rustix::io::read(&sock, &mut buf[..left.min(4096)])
            .ctx(|| "read the console backlog".into())?;
        if n == 0 {
            break;
        }
        let _ = rustix::io::write(stdout, &buf[..n]);
        left -= n;
    }
    let stdin = rustix::stdio::stdin();
    pty::copy_winsize(stdin, master.as_fd());
    let sigfd = kennel_sys::signal::signalfd_for(&[
        libc::SIGWINCH,
        libc::SIGTERM,
        libc::SIGHUP,
        libc::SIGINT,
    ])
    .ctx(|| "set up signal handling".into())?;
    let raw = TerminalMode::session(stdin);
    let end = pty::relay(
        master.as_fd(),
        &RelayOptions {
            until: None,
            signals: Some(sigfd.as_fd()),
            escape: Some(escape),
        },
    )
    .ctx(|| "relay the console".into());
    drop(raw);
    drop(master);
    drop(sock);
    end
}

fn hello(sock: std::os::fd::BorrowedFd<'_>) -> Result<(OwnedFd, usize)> {
    let mut head = [0u8; 6];
    let (n, mut fds) =
        crate::sync::recv_msg(sock, &mut head).ctx(|| "talk to the VE's monitor".into())?;
    let fd = fds.pop();
    if n >= 4 && &head[..4] == HELLO_BUSY {
        return Err(RuntimeError::ConsoleBusy);
    }
    match (fd, &head[..2] == HELLO_OK && n == 6) {
        (Some(fd), true) => Ok((
            fd,
            u32::from_le_bytes([head[2], head[3], head[4], head[5]]) as usize,
        )),
        _ => Err(RuntimeError::Protocol(
            "unexpected answer from the VE's monitor".into(),
        )),
    }
}

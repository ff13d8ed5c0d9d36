//! The monitor's poll loop.

use std::io::IoSlice;
use std::mem::MaybeUninit;
use std::os::fd::{AsFd, BorrowedFd, OwnedFd};

use rustix::event::{poll, PollFd, PollFlags};
use rustix::io::Errno;
use rustix::net::{
    accept_with, sendmsg, SendAncillaryBuffer, SendAncillaryMessage, SendFlags, SocketFlags,
};
use rustix::process::{waitid, WaitId, WaitIdOptions};

use crate::ring::Ring;

/// How fast the monitor takes a VE's console output into its ring, with
/// the same amount as the burst: a console needs little, and the monitor's
/// CPU time is not charged to the VE. A VE that writes faster blocks on
/// its own console (the pty fills), as on a slow serial line.
const CONSOLE_BYTES_PER_SEC: usize = 64 * 1024;

pub(crate) struct Inherited {
    pub pidfd: OwnedFd,
    pub master: OwnedFd,
    /// Never used, only held: while one peer stays open the console never
    /// hangs up, whatever the VE's processes do with theirs.
    pub peer: OwnedFd,
    pub listener: OwnedFd,
}

/// Runs until the VE's init has ended and been reaped; returns how it
/// ended (`exited N`, `signal N`).
pub(crate) fn run(fds: Inherited, id: &str, mut ring: Ring) -> String {
    let _ = rustix::io::ioctl_fionbio(&fds.master, true);
    let mut client: Option<OwnedFd> = None;
    let mut budget = CONSOLE_BYTES_PER_SEC;
    let mut refill = std::time::Instant::now() + std::time::Duration::from_secs(1);
    loop {
        let now = std::time::Instant::now();
        if now >= refill {
            budget = CONSOLE_BYTES_PER_SEC;
            refill = now + std::time::Duration::from_secs(1);
        }
        // The console is read here only while no client has it, and
        // within its budget.
        let third = client.as_ref().unwrap_or(&fds.master);
        let third_events = if client.is_none() && budget == 0 {
            PollFlags::empty()
        } else {
            PollFlags::IN
        };
        let wait = (client.is_none() && budget == 0)
            .then(|| rustix::event::Timespec::try_from(refill.saturating_duration_since(now)).ok())
            .flatten();
        let mut pfds = [
            PollFd::new(&fds.pidfd, PollFlags::IN),
            PollFd::new(&fds.listener, PollFlags::IN),
            PollFd::new(third, third_events),
        ];
        match poll(&mut pfds, wait.as_ref()) {
            Ok(_) => {}
            Err(Errno::INTR) => continue,
            Err(e) => {
                eprintln!("kennel-monitor: VE {id}: poll: {e}");
                std::thread::sleep(std::time::Duration::from_millis(100));
                continue;
            }
        }
        let rev = pfds.map(|p| p.revents());
        if !rev[0].is_empty() {
            return reap(fds.pidfd.as_fd());
        }
        if !rev[1].is_empty() {
            if let Ok(conn) = accept_with(&fds.listener, SocketFlags::CLOEXEC) {
                if client.is_some() {
                    let _ = rustix::net::send(&conn, b"BUSY", SendFlags::NOSIGNAL);
                } else if lend_console(conn.as_fd(), fds.master.as_fd(), ring.as_slices()) {
                    client = Some(conn);
                }
            }
        }
        if !rev[2].is_empty() {
            match &client {
                Some(c) => {
                    // The client only ever closes its end; any readiness
                    // here means it is gone.
                    let mut buf = [0u8; 64];
                    match rustix::io::read(c, &mut buf) {
                        Ok(0) | Err(_) => client = None,
                        Ok(_) => {}
                    }
                }
                None => {
                    if let Ok(n) = ring.read_from(&fds.master, budget) {
                        budget -= n;
                    }
                }
            }
        }
    }
}

/// Sends the console master and the backlog (in its ring's two pieces) to
/// a `kennel console` client.
fn lend_console(conn: BorrowedFd<'_>, master: BorrowedFd<'_>, backlog: (&[u8], &[u8])) -> bool {
    let mut hello = [0u8; 6];
    hello[..2].copy_from_slice(b"OK");
    hello[2..].copy_from_slice(&((backlog.0.len() + backlog.1.len()) as u32).to_le_bytes());
    let fds = [master];
    let mut space = [MaybeUninit::uninit(); rustix::cmsg_space!(ScmRights(1))];
    let mut anc = SendAncillaryBuffer::new(&mut space);
    anc.push(SendAncillaryMessage::ScmRights(&fds));
    if sendmsg(conn, &[IoSlice::new(&hello)], &mut anc, SendFlags::NOSIGNAL).is_err() {
        return false;
    }
    for mut rest in [backlog.0, backlog.1] {
        while !rest.is_empty() {
            match rustix::net::send(conn, rest, SendFlags::NOSIGNAL) {
                Ok(n) => rest = &rest[n..],
                Err(Errno::INTR) => {}
                Err(_) => return false,
            }
        }
    }
    true
}

fn reap(pidfd: BorrowedFd<'_>) -> String {
    loop {
        match waitid(WaitId::PidFd(pidfd), WaitIdOptions::EXITED) {
            Ok(Some(st)) => {
                if let Some(code) = st.exit_status() {
                    return format!("exited {code}");
                }
                if let Some(sig) = st.terminating_signal() {
                    return format!("signal {sig}");
                }
                return "ended".into();
            }
            Ok(None) => continue,
            Err(Errno::INTR) => continue,
            Err(e) => return format!("unknown ({e})"),
        }
    }
}

//! The standard streams of a command run in a VE without a pty.
//!
//! The caller's own descriptors never enter the VE: a descriptor that
//! reached a VE process stays usable there after `kennel exec` returned,
//! for as long as any process of the VE keeps it. Were it the
//! administrator's terminal, the VE could type into it and read the next
//! keystrokes (a sudo password); were it a file or pipe, the VE could keep
//! writing into it. So the command's stdin, stdout and stderr are always
//! pipes made here, and `kennel exec` relays them to and from its own
//! streams only while the command runs (as `lxc-attach` does for
//! terminals, and Incus for everything). Once the command has ended,
//! whatever it left in the pipes is copied out and the pipes are closed:
//! a VE process that kept them gets end-of-file and `EPIPE`.
//!
//! [`Ends::Capture`] is the same for commands Kennel itself runs (`chpasswd`):
//! a fixed input, and the output kept (bounded) instead of printed.

use std::os::fd::{AsFd, AsRawFd, BorrowedFd, OwnedFd, RawFd};

use rustix::event::{poll, PollFd, PollFlags, Timespec};
use rustix::io::Errno;
use rustix::pipe::{pipe_with, PipeFlags};

use crate::error::{Context, Result};

/// Buffer for one read; also the most of the caller's input held while the
/// command does not read it.
const CHUNK: usize = 64 * 1024;
/// The most copied out of one stream after the command ended.
const DRAIN_MAX: usize = 2 << 20;
/// The most output [`Ends::Capture`] keeps.
const CAPTURE_MAX: usize = 64 * 1024;

/// The child's ends: they become its descriptors 0, 1 and 2.
#[derive(Debug)]
pub(super) struct ChildEnds {
    pub(super) stdin: OwnedFd,
    pub(super) stdout: OwnedFd,
    pub(super) stderr: OwnedFd,
}

impl ChildEnds {
    /// Puts the ends at 0, 1 and 2 (in the child, right after the fork).
    pub(super) fn install(&self) -> std::io::Result<()> {
        for (fd, to) in [(&self.stdin, 0), (&self.stdout, 1), (&self.stderr, 2)] {
            kennel_sys::fd::dup_onto(fd.as_raw_fd(), to)?;
        }
        Ok(())
    }
}

/// The parent's ends.
#[derive(Debug)]
pub(super) struct ParentEnds {
    stdin: Option<OwnedFd>,
    stdout: Option<OwnedFd>,
    stderr: Option<OwnedFd>,
}

/// Three pipes, close-on-exec; the parent's ends are non-blocking.
pub(super) fn pipes() -> Result<(ParentEnds, ChildEnds)> {
    let make = || pipe_with(PipeFlags::CLOEXEC).ctx(|| "create a pipe".into());
    let (in_r, in_w) = make()?;
    let (out_r, out_w) = make()?;
    let (err_r, err_w) = make()?;
    for fd in [&in_w, &out_r, &err_r] {
        set_nonblocking(fd.as_fd()).ctx(|| "make a pipe non-blocking".into())?;
    }
    Ok((
        ParentEnds {
            stdin: Some(in_w),
            stdout: Some(out_r),
            stderr: Some(err_r),
        },
        ChildEnds {
            stdin: in_r,
            stdout: out_w,
            stderr: err_w,
        },
    ))
}

/// A pipe whose read end stands in for 0, 1 and 2 in a child that will
/// get a pty later, so that the caller's terminal is gone from the child
/// from its first instruction on.
pub(super) fn placeholder() -> Result<ChildEnds> {
    let (r, w) = pipe_with(PipeFlags::CLOEXEC).ctx(|| "create a pipe".into())?;
    drop(w);
    let dup = |fd: &OwnedFd| fd.try_clone().ctx(|| "duplicate a pipe".into());
    Ok(ChildEnds {
        stdin: dup(&r)?,
        stdout: dup(&r)?,
        stderr: r,
    })
}

fn set_nonblocking(fd: BorrowedFd<'_>) -> rustix::io::Result<()> {
    let flags = rustix::fs::fcntl_getfl(fd)?;
    rustix::fs::fcntl_setfl(fd, flags | rustix::fs::OFlags::NONBLOCK)
}

/// Where the relay takes input from and puts output.
#[derive(Debug)]
pub(super) enum Ends<'a> {
    /// The caller's standard streams.
    Caller,
    /// Fixed input; output kept in `out`.
    Capture {
        input: &'a [u8],
        out: &'a mut Vec<u8>,
    },
}

/// What the relay also watches.
#[derive(Debug)]
pub(super) struct Watch<'a> {
    /// The command's pidfd: readable once it ended.
    pub(super) child: BorrowedFd<'a>,
    /// Signals to forward to the command's process group.
    pub(super) signals: BorrowedFd<'a>,
    /// The command's PID (its process group's id).
    pub(super) pid: rustix::process::Pid,
    /// When to give up on the command (Kennel's own commands).
    pub(super) deadline: Option<std::time::Instant>,
}

/// Relays until the command ends, then copies out what it left in the
/// pipes and closes them.
pub(super) fn relay(mut ends: ParentEnds, mut io: Ends<'_>, watch: &Watch<'_>) -> Result<()> {
    let caller_in = rustix::stdio::stdin();
    let mut pending: Vec<u8> = match &io {
        Ends::Capture { input, .. } => input.to_vec(),
        Ends::Caller => Vec::new(),
    };
    let mut caller_in_open = matches!(io, Ends::Caller);
    if pending.is_empty() && !caller_in_open {
        ends.stdin = None;
    }
    let mut buf = vec![0u8; CHUNK];
    loop {
        // Slots: 0 child, 1 signals, 2 stdout, 3 stderr, 4 child stdin, 5 caller stdin.
        let mut slots = vec![0, 1];
        let mut fds = vec![
            PollFd::new(&watch.child, PollFlags::IN),
            PollFd::new(&watch.signals, PollFlags::IN),
        ];
        if let Some(fd) = &ends.stdout {
            slots.push(2);
            fds.push(PollFd::new(fd, PollFlags::IN));
        }
        if let Some(fd) = &ends.stderr {
            slots.push(3);
            fds.push(PollFd::new(fd, PollFlags::IN));
        }
        if let (Some(fd), false) = (&ends.stdin, pending.is_empty()) {
            slots.push(4);
            fds.push(PollFd::new(fd, PollFlags::OUT));
        }
        if caller_in_open && pending.len() < CHUNK && ends.stdin.is_some() {
            slots.push(5);
            fds.push(PollFd::new(&caller_in, PollFlags::IN));
        }
        // Checked on every round, not only when nothing is ready: a VE
        // that keeps its pipes busy must not outlast the deadline.
        if watch
            .deadline
            .is_some_and(|d| std::time::Instant::now() >= d)
        {
            return Err(crate::RuntimeError::CommandTimedOut(
                super::CAPTURE_TIMEOUT.as_secs(),
            ));
        }
        let timeout = watch.deadline.map(|d| {
            let left = d.saturating_duration_since(std::time::Instant::now());
            Timespec {
                tv_sec: left.as_secs() as i64,
                tv_nsec: left.subsec_nanos().into(),
            }
        });
        match poll(&mut fds, timeout.as_ref()) {
            Ok(0) if watch.deadline.is_some() => {
                return Err(crate::RuntimeError::CommandTimedOut(
                    super::CAPTURE_TIMEOUT.as_secs(),
                ))
            }
            Ok(_) => {}
            Err(Errno::INTR) => continue,
            Err(e) => return Err(e).ctx(|| "relay the command's streams".into()),
        }
        let ready: Vec<usize> = slots
            .iter()
            .zip(&fds)
            .filter(|(_, p)| !p.revents().is_empty())
            .map(|(slot, _)| *slot)
            .collect();
        drop(fds);
        for slot in ready {
            match slot {
                0 => {
                    drain(&mut ends, &mut io, &mut buf);
                    return Ok(());
                }
                1 => forward_signals(watch),
                2 => copy_out(&mut ends.stdout, &mut io, 1, &mut buf),
                3 => copy_out(&mut ends.stderr, &mut io, 2, &mut buf),
                4 => feed(&mut ends.stdin, &mut pending, caller_in_open),
                5 => {
                    match rustix::io::read(caller_in, &mut buf[..CHUNK - pending.len()]) {
                        Ok(0) => caller_in_open = false,
                        Ok(n) => pending.extend_from_slice(&buf[..n]),
                        Err(Errno::INTR | Errno::AGAIN) => {}
                        Err(_) => caller_in_open = false,
                    }
                    if !caller_in_open && pending.is_empty() {
                        ends.stdin = None; // end-of-file for the command
                    }
                }
                _ => {}
            }
        }
    }
}

/// Writes what the command may take of `pending`; closes its stdin once
/// everything is written and no more input comes.
fn feed(stdin: &mut Option<OwnedFd>, pending: &mut Vec<u8>, more: bool) {
    let Some(fd) = stdin else { return };
    match rustix::io::write(&*fd, pending) {
        Ok(n) => {
            pending.drain(..n);
        }
        Err(Errno::INTR | Errno::AGAIN) => {}
        // The command closed its stdin: what is left goes nowhere.
        Err(_) => {
            pending.clear();
            *stdin = None;
            return;
        }
    }
    if pending.is_empty() && !more {
        *stdin = None;
    }
}

/// Copies what the command wrote on one stream (`to`: 1 or 2).
fn copy_out(from: &mut Option<OwnedFd>, io: &mut Ends<'_>, to: RawFd, buf: &mut [u8]) {
    let Some(fd) = from else { return };
    match rustix::io::read(&*fd, &mut *buf) {
        Ok(0) => *from = None,
        Ok(n) => {
            if !put(io, to, &buf[..n]) {
                // Our reader went away (`| head`): so does the command's,
                // which then gets EPIPE as in any pipeline.
                *from = None;
            }
        }
        Err(Errno::INTR | Errno::AGAIN) => {}
        Err(_) => *from = None,
    }
}

fn put(io: &mut Ends<'_>, to: RawFd, data: &[u8]) -> bool {
    match io {
        Ends::Caller => {
            let fd = if to == 1 {
                rustix::stdio::stdout()
            } else {
                rustix::stdio::stderr()
            };
            kennel_sys::fd::write_all(fd, data).is_ok()
        }
        Ends::Capture { out, .. } => {
            let room = CAPTURE_MAX.saturating_sub(out.len());
            out.extend_from_slice(&data[..data.len().min(room)]);
            true
        }
    }
}

/// After the command ended: what it wrote before is in the pipes already
/// (a write completes before the writer can exit); copy that out, but
/// never wait for what its leftovers might still write, and take at most
/// [`DRAIN_MAX`] (more than a pipe holds) from a leftover that keeps
/// writing.
fn drain(ends: &mut ParentEnds, io: &mut Ends<'_>, buf: &mut [u8]) {
    ends.stdin = None;
    for (slot, to) in [(&mut ends.stdout, 1), (&mut ends.stderr, 2)] {
        for _ in 0..DRAIN_MAX / CHUNK {
            let Some(fd) = slot.as_ref() else { break };
            let mut p = [PollFd::new(fd, PollFlags::IN)];
            let zero = Timespec {
                tv_sec: 0,
                tv_nsec: 0,
            };
            if !matches!(poll(&mut p, Some(&zero)), Ok(1)) {
                break;
            }
            copy_out(slot, io, to, buf);
        }
        *slot = None;
    }
}

/// Forwards interrupt and termination signals to the command's process
/// group, as a terminal would: the command leads a session of its own, so
/// the caller's terminal reaches only `kennel exec`.
fn forward_signals(watch: &Watch<'_>) {
    while let Some(sig) = kennel_sys::signal::read_signalfd(watch.signals) {
        if [libc::SIGINT, libc::SIGQUIT, libc::SIGTERM, libc::SIGHUP].contains(&sig) {
            let sig = rustix::process::Signal::from_named_raw(sig)
                .unwrap_or(rustix::process::Signal::TERM);
            // Before its setsid the child has no group yet.
            if rustix::process::kill_process_group(watch.pid, sig).is_err() {
                let _ = rustix::process::pidfd_send_signal(watch.child, sig);
            }
        }
    }
}

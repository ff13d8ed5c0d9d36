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
//! a VE process that kept them gets end-of-file and `EPIPE`. The command's
//! end of its output pipes stays open in `kennel exec` too until then: the
//! command's exit ends the relay (its pidfd), and does not first wake it
//! with end-of-file.
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

    /// The command's stdout and stderr ends; its stdin end is closed (so
    /// that writing to a command that closed its stdin fails at once).
    pub(super) fn into_outputs(self) -> (OwnedFd, OwnedFd) {
        (self.stdout, self.stderr)
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

/// For a pipe end just made: it has no other status flag to keep (and
/// `F_SETFL` leaves the access mode alone), so no `F_GETFL` first.
fn set_nonblocking(fd: BorrowedFd<'_>) -> rustix::io::Result<()> {
    rustix::fs::fcntl_setfl(fd, rustix::fs::OFlags::NONBLOCK)
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

/// What one polled descriptor of the relay is.
#[derive(Debug, Clone, Copy)]
enum Slot {
    /// The command's pidfd.
    Child,
    Signals,
    /// The command's stdout and stderr (read).
    Stdout,
    Stderr,
    /// The command's stdin (written).
    Stdin,
    /// Our own stdin.
    CallerIn,
}

/// How a relay ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Ending {
    /// The command ended.
    Exited,
    /// The operator's second signal killed it (it may take a while to
    /// be gone).
    Killed,
}

/// Relays until the command ends (or is killed), then copies out what it
/// left in the pipes and closes them.
pub(super) fn relay(mut ends: ParentEnds, mut io: Ends<'_>, watch: &Watch<'_>) -> Result<Ending> {
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
    let mut signalled = false;
    loop {
        let mut slots = vec![Slot::Child, Slot::Signals];
        let mut fds = vec![
            PollFd::new(&watch.child, PollFlags::IN),
            PollFd::new(&watch.signals, PollFlags::IN),
        ];
        if let Some(fd) = &ends.stdout {
            slots.push(Slot::Stdout);
            fds.push(PollFd::new(fd, PollFlags::IN));
        }
        if let Some(fd) = &ends.stderr {
            slots.push(Slot::Stderr);
            fds.push(PollFd::new(fd, PollFlags::IN));
        }
        if let (Some(fd), false) = (&ends.stdin, pending.is_empty()) {
            slots.push(Slot::Stdin);
            fds.push(PollFd::new(fd, PollFlags::OUT));
        }
        if caller_in_open && pending.len() < CHUNK && ends.stdin.is_some() {
            slots.push(Slot::CallerIn);
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
        let ready: Vec<Slot> = slots
            .iter()
            .zip(&fds)
            .filter(|(_, p)| !p.revents().is_empty())
            .map(|(slot, _)| *slot)
            .collect();
        drop(fds);
        for slot in ready {
            match slot {
                Slot::Child => {
                    drain(&mut ends, &mut io, &mut buf);
                    return Ok(Ending::Exited);
                }
                Slot::Signals => {
                    if forward_signals(watch, &mut signalled) {
                        drain(&mut ends, &mut io, &mut buf);
                        return Ok(Ending::Killed);
                    }
                }
                Slot::Stdout => copy_out(&mut ends.stdout, &mut io, 1, &mut buf),
                Slot::Stderr => copy_out(&mut ends.stderr, &mut io, 2, &mut buf),
                Slot::Stdin => feed(&mut ends.stdin, &mut pending, caller_in_open),
                Slot::CallerIn => {
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
/// the caller's terminal reaches only `kennel exec`. The first is passed
/// on; a later one, once `signalled`, is SIGKILL (a command that ignores
/// signals holds no one's terminal). Returns whether it killed.
fn forward_signals(watch: &Watch<'_>, signalled: &mut bool) -> bool {
    let mut killed = false;
    while let Some(sig) = kennel_sys::signal::read_signalfd(watch.signals) {
        if [libc::SIGINT, libc::SIGQUIT, libc::SIGTERM, libc::SIGHUP].contains(&sig) {
            let sig = if *signalled {
                killed = true;
                rustix::process::Signal::KILL
            } else {
                rustix::process::Signal::from_named_raw(sig)
                    .unwrap_or(rustix::process::Signal::TERM)
            };
            *signalled = true;
            // Before its setsid the child has no group yet.
            if rustix::process::kill_process_group(watch.pid, sig).is_err() {
                let _ = rustix::process::pidfd_send_signal(watch.child, sig);
            }
        }
    }
    killed
}

#[cfg(test)]
mod tests {
    use super::*;

    fn pipe() -> (OwnedFd, OwnedFd) {
        let (r, w) = pipe_with(PipeFlags::CLOEXEC).expect("pipe");
        set_nonblocking(r.as_fd()).expect("nonblocking");
        set_nonblocking(w.as_fd()).expect("nonblocking");
        (r, w)
    }

    #[test]
    fn captured_output_is_bounded() {
        let mut out = Vec::new();
        let mut io = Ends::Capture {
            input: b"",
            out: &mut out,
        };
        assert!(put(&mut io, 1, &[b'x'; 50_000]));
        assert!(put(&mut io, 2, &[b'y'; 50_000]));
        assert_eq!(out.len(), CAPTURE_MAX);
        assert_eq!(out[CAPTURE_MAX - 1], b'y');
    }

    #[test]
    fn feeding_closes_stdin_once_all_is_written() {
        let (r, w) = pipe();
        let mut stdin = Some(w);
        let mut pending = b"hello".to_vec();
        feed(&mut stdin, &mut pending, true);
        assert!(pending.is_empty() && stdin.is_some(), "more may come");
        pending.extend_from_slice(b" world");
        feed(&mut stdin, &mut pending, false);
        assert!(
            stdin.is_none(),
            "no more input: end-of-file for the command"
        );
        let mut buf = [0u8; 64];
        let n = rustix::io::read(&r, &mut buf).expect("read");
        assert_eq!(&buf[..n], b"hello world");
    }

    #[test]
    fn feeding_a_command_that_closed_its_stdin_drops_the_input() {
        let (r, w) = pipe();
        drop(r);
        let mut stdin = Some(w);
        let mut pending = b"lost".to_vec();
        feed(&mut stdin, &mut pending, true);
        assert!(stdin.is_none() && pending.is_empty());
    }

    #[test]
    fn a_full_pipe_keeps_the_rest_pending() {
        let (_r, w) = pipe();
        let mut stdin = Some(w);
        let mut pending = vec![b'z'; 1 << 20];
        feed(&mut stdin, &mut pending, false);
        assert!(!pending.is_empty() && pending.len() < 1 << 20);
        assert!(stdin.is_some(), "still waiting for the command to read");
    }

    #[test]
    fn drain_takes_what_is_there_and_never_waits() {
        let (out_r, out_w) = pipe();
        let (err_r, _err_w_kept_open) = pipe();
        rustix::io::write(&out_w, b"last words").expect("write");
        let mut ends = ParentEnds {
            stdin: None,
            stdout: Some(out_r),
            stderr: Some(err_r),
        };
        let mut out = Vec::new();
        let mut io = Ends::Capture {
            input: b"",
            out: &mut out,
        };
        let mut buf = vec![0u8; CHUNK];
        let t = std::time::Instant::now();
        drain(&mut ends, &mut io, &mut buf);
        assert!(t.elapsed() < std::time::Duration::from_secs(1));
        assert_eq!(out, b"last words");
        assert!(ends.stdout.is_none() && ends.stderr.is_none());
    }
}

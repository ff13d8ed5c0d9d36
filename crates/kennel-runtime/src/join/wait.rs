//! How `kennel exec` waits for the command it started in a VE, and ends
//! it: the operator's signals keep working (the first is passed on, a
//! second kills), a hung-up session is killed after [`HANGUP_GRACE`], and
//! a command stuck in the kernel beyond SIGKILL is left after
//! [`KILLED_WAIT`]. No command a VE runs can hold the operator's terminal
//! or a `kennel` process.

use std::os::fd::BorrowedFd;
use std::time::Instant;

use rustix::process::Pid;

use super::{NotRun, HANGUP_GRACE, KILLED_WAIT};
use crate::error::{Context, Result, RuntimeError};

/// The signals the operator may send `kennel exec`: passed on to the
/// command (SIGWINCH: its window size).
pub(super) const FORWARDED: &[i32] = &[
    libc::SIGINT,
    libc::SIGQUIT,
    libc::SIGTERM,
    libc::SIGHUP,
    libc::SIGWINCH,
];

/// Unblocks signals when dropped.
pub(super) struct Unblock(pub(super) &'static [i32]);

impl Drop for Unblock {
    fn drop(&mut self) {
        let _ = kennel_sys::signal::unblock(self.0);
    }
}

/// The command running in the VE, as its parent sees it.
pub(super) struct Command<'a> {
    /// Its PID (in our namespace), also its process group's and session's.
    pub(super) pid: Pid,
    pub(super) fd: BorrowedFd<'a>,
    /// The operator's signals to `kennel` (see [`FORWARDED`]).
    pub(super) signals: BorrowedFd<'a>,
}

/// What the parent did to the command before waiting for it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum After {
    /// Nothing: it ended, or runs on.
    Nothing,
    /// Passed on an operator's signal: the next one kills it.
    Signalled,
    /// Hung up on it (the escape key): killed after [`HANGUP_GRACE`].
    HungUp,
    Killed,
}

impl Command<'_> {
    /// `sig` to the command's process group (or, before its `setsid`, to
    /// the command itself).
    pub(super) fn signal(&self, sig: rustix::process::Signal) {
        if rustix::process::kill_process_group(self.pid, sig).is_err() {
            let _ = rustix::process::pidfd_send_signal(self.fd, sig);
        }
    }

    pub(super) fn kill(&self) {
        self.signal(rustix::process::Signal::KILL);
        let _ = rustix::process::pidfd_send_signal(self.fd, rustix::process::Signal::KILL);
    }

    /// Waits for the command to end and returns its exit status. The
    /// operator's signals still work meanwhile: the first is passed on,
    /// any later one kills the command, so that a command that ignores
    /// them (a shell the VE replaced) holds no one's terminal. A killed
    /// command is waited for [`KILLED_WAIT`] at most.
    pub(super) fn wait(&self, after: After) -> Result<i32> {
        let mut state = after;
        let mut deadline = match after {
            After::HungUp => Some(Instant::now() + HANGUP_GRACE),
            After::Killed => Some(Instant::now() + KILLED_WAIT),
            After::Nothing | After::Signalled => None,
        };
        loop {
            let left = deadline.map(|d| d.saturating_duration_since(Instant::now()));
            let timeout = left.and_then(|l| rustix::event::Timespec::try_from(l).ok());
            let mut fds = [
                rustix::event::PollFd::new(&self.fd, rustix::event::PollFlags::IN),
                rustix::event::PollFd::new(&self.signals, rustix::event::PollFlags::IN),
            ];
            match rustix::event::poll(&mut fds, timeout.as_ref()) {
                Ok(_) | Err(rustix::io::Errno::INTR) => {}
                Err(e) => return Err(e).ctx(|| "wait for the command".into()),
            }
            if !fds[0].revents().is_empty() {
                return wait_status(self.fd);
            }
            while let Some(sig) = kennel_sys::signal::read_signalfd(self.signals) {
                if sig == libc::SIGWINCH {
                    continue;
                }
                if state == After::Nothing {
                    if let Some(s) = rustix::process::Signal::from_named_raw(sig) {
                        self.signal(s);
                    }
                    state = After::Signalled;
                } else if state != After::Killed {
                    self.kill();
                    state = After::Killed;
                    deadline = Some(Instant::now() + KILLED_WAIT);
                }
            }
            if deadline.is_some_and(|d| Instant::now() >= d) {
                if state == After::Killed {
                    return Err(RuntimeError::Unkillable(KILLED_WAIT.as_secs()));
                }
                self.kill();
                state = After::Killed;
                deadline = Some(Instant::now() + KILLED_WAIT);
            }
        }
    }
}

/// Reaps the child and turns its end into a shell-style exit status.
fn wait_status(child_fd: BorrowedFd<'_>) -> Result<i32> {
    let st = rustix::process::waitid(
        rustix::process::WaitId::PidFd(child_fd),
        rustix::process::WaitIdOptions::EXITED,
    )
    .ctx(|| "wait for the command".into())?
    .ok_or_else(|| RuntimeError::Kernel("waitid found no exited command".into()))?;
    if let Some(code) = st.exit_status() {
        return Ok(code);
    }
    if let Some(sig) = st.terminating_signal() {
        return Ok(128 + sig);
    }
    Ok(NotRun::Failed.exit_status())
}

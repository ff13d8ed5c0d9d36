//! Relaying a terminal to a pty master: `kennel enter`, `kennel exec -t`
//! and `kennel console`.

use std::io;
use std::os::fd::{BorrowedFd, OwnedFd};

use rustix::event::{poll, PollFd, PollFlags};
use rustix::io::Errno;
use rustix::termios::{tcgetattr, tcgetwinsize, tcsetattr, tcsetwinsize, OptionalActions, Termios};

/// Puts a terminal in raw mode until dropped.
#[derive(Debug)]
pub struct RawTerminal {
    fd: OwnedFd,
    saved: Termios,
}

impl RawTerminal {
    /// Raw mode on `fd` if it is a terminal; `None` otherwise.
    pub fn enable(fd: BorrowedFd<'_>) -> Option<Self> {
        let saved = tcgetattr(fd).ok()?;
        let mut raw = saved.clone();
        raw.make_raw();
        tcsetattr(fd, OptionalActions::Now, &raw).ok()?;
        let fd = fd.try_clone_to_owned().ok()?;
        Some(RawTerminal { fd, saved })
    }
}

impl Drop for RawTerminal {
    fn drop(&mut self) {
        let _ = tcsetattr(&self.fd, OptionalActions::Now, &self.saved);
    }
}

/// Copies the window size of `from` (the user's terminal) to `to` (a pty).
pub fn copy_winsize(from: BorrowedFd<'_>, to: BorrowedFd<'_>) {
    if let Ok(ws) = tcgetwinsize(from) {
        let _ = tcsetwinsize(to, ws);
    }
}

/// Why a relay ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RelayEnd {
    /// The pty's other side closed (the program exited).
    Hangup,
    /// The user typed the escape key.
    Detached,
    /// The watched process (`until`) ended and the pty was drained.
    Exited,
    /// A signal from `signals` arrived that asks us to stop.
    Signal(i32),
}

/// What a relay watches besides the terminal and the pty.
#[derive(Debug, Default)]
pub struct RelayOptions<'a> {
    /// Stop (after draining) when this pidfd becomes readable.
    pub until: Option<BorrowedFd<'a>>,
    /// A signalfd: SIGWINCH resizes the pty, others end the relay.
    pub signals: Option<BorrowedFd<'a>>,
    /// A key that detaches (e.g. 0x1d, Ctrl-]).
    pub escape: Option<u8>,
}

/// Copies stdin to `master` and `master` to stdout until one side ends.
pub fn relay(master: BorrowedFd<'_>, opts: &RelayOptions<'_>) -> io::Result<RelayEnd> {
    let stdin = rustix::stdio::stdin();
    let stdout = rustix::stdio::stdout();
    let mut buf = [0u8; 16 * 1024];
    let mut stdin_open = true;
    let mut child_done = false;
    loop {
        let mut fds = Vec::with_capacity(4);
        fds.push(PollFd::new(&master, PollFlags::IN));
        if stdin_open {
            fds.push(PollFd::new(&stdin, PollFlags::IN));
        }
        let until_idx = match opts.until.as_ref().filter(|_| !child_done) {
            Some(u) => {
                fds.push(PollFd::new(u, PollFlags::IN));
                Some(fds.len() - 1)
            }
            None => None,
        };
        let sig_idx = match opts.signals.as_ref() {
            Some(s) => {
                fds.push(PollFd::new(s, PollFlags::IN));
                Some(fds.len() - 1)
            }
            None => None,
        };
        // Once the program ended, only drain what it left in the pty.
        let timeout = if child_done {
            Some(&rustix::event::Timespec {
                tv_sec: 0,
                tv_nsec: 50_000_000,
            })
        } else {
            None
        };
        match poll(&mut fds, timeout) {
            Ok(0) => return Ok(RelayEnd::Exited),
            Ok(_) => {}
            Err(Errno::INTR) => continue,
            Err(e) => return Err(e.into()),
        }
        let rev: Vec<PollFlags> = fds.iter().map(|f| f.revents()).collect();
        drop(fds);
        if !rev[0].is_empty() {
            match rustix::io::read(master, &mut buf) {
                Ok(0) | Err(Errno::IO) => {
                    return Ok(if child_done {
                        RelayEnd::Exited
                    } else {
                        RelayEnd::Hangup
                    })
                }
                Ok(n) => kennel_sys::fd::write_all(stdout, &buf[..n])?,
                Err(Errno::INTR) | Err(Errno::AGAIN) => {}
                Err(e) => return Err(e.into()),
            }
        }
        if stdin_open && !rev[1].is_empty() {
            match rustix::io::read(stdin, &mut buf) {
                Ok(0) => stdin_open = false,
                Ok(n) => {
                    let data = &buf[..n];
                    if let Some(esc) = opts.escape {
                        if let Some(pos) = data.iter().position(|&b| b == esc) {
                            kennel_sys::fd::write_all(master, &data[..pos])?;
                            return Ok(RelayEnd::Detached);
                        }
                    }
                    kennel_sys::fd::write_all(master, data)?;
                }
                Err(Errno::INTR) | Err(Errno::AGAIN) => {}
                Err(_) => stdin_open = false,
            }
        }
        if let Some(i) = until_idx {
            if !rev[i].is_empty() {
                child_done = true;
            }
        }
        if let (Some(i), Some(sfd)) = (sig_idx, opts.signals) {
            if !rev[i].is_empty() {
                while let Some(sig) = kennel_sys::signal::read_signalfd(sfd) {
                    if sig == libc::SIGWINCH {
                        copy_winsize(stdin, master);
                    } else {
                        return Ok(RelayEnd::Signal(sig));
                    }
                }
            }
        }
    }
}

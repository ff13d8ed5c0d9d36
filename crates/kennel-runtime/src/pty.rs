//! Relaying a terminal to a pty master: `kennel enter`, `kennel exec -t`
//! and `kennel console`.

use std::io;
use std::os::fd::{BorrowedFd, OwnedFd};

use rustix::event::{poll, PollFd, PollFlags};
use rustix::io::Errno;
use rustix::termios::{tcgetattr, tcgetwinsize, tcsetattr, tcsetwinsize, OptionalActions, Termios};

/// A terminal's mode, changed until dropped: raw for a relay, quiet for a
/// password prompt. The descriptor is duplicated before the change, so
/// that a change is never left without a way to undo it.
#[derive(Debug)]
pub struct TerminalMode {
    fd: OwnedFd,
    saved: Termios,
    /// Undo what a VE's output may have left on the terminal (see
    /// [`TerminalMode::session`]).
    session: bool,
}

/// What a VE's program may have left switched on in the operator's
/// terminal: DECSTR (soft reset: cursor, charsets, margins, attributes),
/// then the alternate screen, the cursor, mouse reporting and bracketed
/// paste, which a soft reset leaves alone.
const TERMINAL_RESET: &[u8] =
    b"\x1b[!p\x1b[?1049l\x1b[?25h\x1b[?1000l\x1b[?1002l\x1b[?1003l\x1b[?1006l\x1b[?2004l";

impl TerminalMode {
    /// Raw mode for a session with a VE's program (`enter`, `exec -t`,
    /// `console`). When it ends, what the VE left is undone: input the
    /// terminal has queued (its answers to the VE's queries, which would
    /// otherwise reach the operator's shell as typed commands) is thrown
    /// away, and modes the VE switched on are reset.
    pub fn session(fd: BorrowedFd<'_>) -> Option<Self> {
        Self::change(fd, Termios::make_raw, true)
    }

    /// For typing a password: no echo, no line editing and no signal keys
    /// (Ctrl-C arrives as a byte, and the caller ends so that the mode is
    /// always put back); reads return each key. `None` if `fd` is not a
    /// terminal.
    pub fn password(fd: BorrowedFd<'_>) -> Option<Self> {
        use rustix::termios::{LocalModes, SpecialCodeIndex};
        Self::change(
            fd,
            |t| {
                t.local_modes
                    .remove(LocalModes::ECHO | LocalModes::ICANON | LocalModes::ISIG);
                t.special_codes[SpecialCodeIndex::VMIN] = 1;
                t.special_codes[SpecialCodeIndex::VTIME] = 0;
            },
            false,
        )
    }

    fn change(fd: BorrowedFd<'_>, how: impl FnOnce(&mut Termios), session: bool) -> Option<Self> {
        let saved = tcgetattr(fd).ok()?;
        let fd = fd.try_clone_to_owned().ok()?;
        let mut changed = saved.clone();
        how(&mut changed);
        tcsetattr(&fd, OptionalActions::Now, &changed).ok()?;
        Some(TerminalMode { fd, saved, session })
    }
}

impl Drop for TerminalMode {
    fn drop(&mut self) {
        if self.session {
            let out = rustix::stdio::stdout();
            if rustix::termios::isatty(out) {
                let _ = kennel_sys::fd::write_all(out, TERMINAL_RESET);
            }
            let _ = rustix::termios::tcflush(&self.fd, rustix::termios::QueueSelector::IFlush);
        }
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

/// Most of the user's input held while the VE does not read its pty;
/// input beyond it is dropped (the VE is not reading it anyway).
const PENDING_MAX: usize = 64 * 1024;

/// Once the program ended, what is left in the pty is copied out for at
/// most this long and this much: a process it left behind that keeps
/// writing must not keep the relay, and the user's keystrokes, going.
const DRAIN_TIME: std::time::Duration = std::time::Duration::from_millis(100);
const DRAIN_MAX: usize = 1 << 20;

/// Copies stdin to `master` and `master` to stdout until one side ends.
///
/// Writes to the pty never block: a VE that stops reading its terminal
/// (its input queue full) cannot keep the relay from seeing the escape
/// key or a signal. Input waits in a bounded buffer meanwhile. Once the
/// watched program (`until`) ended, no more input is read at all, and the
/// output it left is drained within [`DRAIN_TIME`] and [`DRAIN_MAX`].
pub fn relay(master: BorrowedFd<'_>, opts: &RelayOptions<'_>) -> io::Result<RelayEnd> {
    let stdin = rustix::stdio::stdin();
    let stdout = rustix::stdio::stdout();
    rustix::io::ioctl_fionbio(master, true)?;
    let mut buf = [0u8; 16 * 1024];
    let mut pending: Vec<u8> = Vec::new();
    let mut stdin_open = true;
    let mut child_done = false;
    let mut drain_end = std::time::Instant::now();
    let mut drained = 0usize;
    loop {
        let mut slots = Vec::with_capacity(4);
        let mut fds = Vec::with_capacity(4);
        let toward_ve = if pending.is_empty() {
            PollFlags::IN
        } else {
            PollFlags::IN | PollFlags::OUT
        };
        slots.push(Slot::Master);
        fds.push(PollFd::new(&master, toward_ve));
        if stdin_open && !child_done {
            slots.push(Slot::Stdin);
            fds.push(PollFd::new(&stdin, PollFlags::IN));
        }
        if let Some(u) = opts.until.as_ref().filter(|_| !child_done) {
            slots.push(Slot::Until);
            fds.push(PollFd::new(u, PollFlags::IN));
        }
        if let Some(s) = opts.signals.as_ref() {
            slots.push(Slot::Signals);
            fds.push(PollFd::new(s, PollFlags::IN));
        }
        // Once the program ended, only drain what it left in the pty.
        let left = drain_end.saturating_duration_since(std::time::Instant::now());
        if child_done && (left.is_zero() || drained >= DRAIN_MAX) {
            return Ok(RelayEnd::Exited);
        }
        let timeout = child_done.then_some(rustix::event::Timespec {
            tv_sec: 0,
            tv_nsec: left.subsec_nanos().into(),
        });
        match poll(&mut fds, timeout.as_ref()) {
            Ok(0) => return Ok(RelayEnd::Exited),
            Ok(_) => {}
            Err(Errno::INTR) => continue,
            Err(e) => return Err(e.into()),
        }
        let ready: Vec<(Slot, PollFlags)> = slots
            .iter()
            .zip(&fds)
            .map(|(s, f)| (*s, f.revents()))
            .filter(|(_, r)| !r.is_empty())
            .collect();
        drop(fds);
        for (slot, rev) in ready {
            match slot {
                Slot::Master => {
                    if rev.contains(PollFlags::OUT) {
                        flush(master, &mut pending)?;
                    }
                    if rev.intersects(PollFlags::IN | PollFlags::HUP | PollFlags::ERR) {
                        match rustix::io::read(master, &mut buf) {
                            Ok(0) | Err(Errno::IO) => {
                                return Ok(if child_done {
                                    RelayEnd::Exited
                                } else {
                                    RelayEnd::Hangup
                                })
                            }
                            Ok(n) => {
                                drained += if child_done { n } else { 0 };
                                kennel_sys::fd::write_all(stdout, &buf[..n])?
                            }
                            Err(Errno::INTR) | Err(Errno::AGAIN) => {}
                            Err(e) => return Err(e.into()),
                        }
                    }
                }
                Slot::Stdin => match rustix::io::read(stdin, &mut buf) {
                    Ok(0) => stdin_open = false,
                    Ok(n) => {
                        let data = &buf[..n];
                        let esc = opts.escape.and_then(|e| data.iter().position(|&b| b == e));
                        let keep = esc.unwrap_or(n);
                        let room = PENDING_MAX.saturating_sub(pending.len());
                        pending.extend_from_slice(&data[..keep.min(room)]);
                        flush(master, &mut pending)?;
                        if esc.is_some() {
                            return Ok(RelayEnd::Detached);
                        }
                    }
                    Err(Errno::INTR) | Err(Errno::AGAIN) => {}
                    Err(_) => stdin_open = false,
                },
                Slot::Until => {
                    child_done = true;
                    drain_end = std::time::Instant::now() + DRAIN_TIME;
                }
                Slot::Signals => {
                    if let Some(sfd) = opts.signals {
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
    }
}

/// Which descriptor a poll entry is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Slot {
    Master,
    Stdin,
    Until,
    Signals,
}

/// Writes as much of `pending` to the (non-blocking) pty as it takes now.
fn flush(master: BorrowedFd<'_>, pending: &mut Vec<u8>) -> io::Result<()> {
    while !pending.is_empty() {
        match rustix::io::write(master, pending) {
            Ok(n) => {
                pending.drain(..n);
            }
            Err(Errno::INTR) => {}
            Err(Errno::AGAIN) => break,
            // The VE side is gone: its hang-up ends the relay.
            Err(Errno::IO) => {
                pending.clear();
                break;
            }
            Err(e) => return Err(e.into()),
        }
    }
    Ok(())
}

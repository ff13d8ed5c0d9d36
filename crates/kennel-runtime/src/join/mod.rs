//! Entering a running VE: `kennel exec`, `kennel enter`, and the commands
//! Kennel itself runs in a VE (`chpasswd`).
//!
//! ```text
//! kennel exec ─ setns(pidfd, PID) ─ clone3 into init's cgroup ─► child.rs: leave the caller,
//!   │                                                             enter the VE, close every host
//!   │                                                             descriptor, then look up the
//!   │                                                             working directory and pty
//!   │                                                             inside the VE, caps, seccomp,
//!   │                                                             execve
//!   ├─ channel (message.rs): the pty master or why it failed; end of file = exec'd
//!   └─ relays the pty (crate::pty) or the pipes (stdio.rs) until the command ends;
//!      returns its exit status
//! ```
//!
//! What crosses into the VE is only what Kennel made for the command: pipes
//! or a pty of the VE's own devpts, never a descriptor of the caller's
//! (docs/SECURITY.md, "Entering a VE"). The child is not dumpable until it
//! execs, so nothing in the VE can ptrace it or open its `/proc/PID/exe`
//! (the kennel binary) or its descriptors meanwhile. A VE that stalls the
//! child before its exec (a frozen cgroup, a FIFO where a device should
//! be) makes `kennel exec` fail after [`SETUP_TIMEOUT`], not hang.

mod child;
mod message;
mod stdio;
mod wait;

use std::os::fd::{AsFd, BorrowedFd, OwnedFd};
use std::time::{Duration, Instant};

use kennel_cgroup::Cgroup;
use kennel_sys::clone::{clone3, CloneOptions, Forked};
use rustix::process::Pid;
use rustix::thread::{move_into_thread_name_spaces, ThreadNameSpaceType};

use self::message::FromJoin;
use self::wait::{After, Command, Unblock, FORWARDED};
use crate::error::{Context, Result, RuntimeError};
use crate::procfs;
use crate::pty::{self, RelayEnd, RelayOptions, TerminalMode};

/// Why a command did not run in a VE. `kennel exec` reports it with a
/// shell's exit statuses ([`NotRun::exit_status`]), as `env` does.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum NotRun {
    /// No such command (127).
    NotFound,
    /// Found, or never looked for, but it could not be run (126): not
    /// executable, or the way into the VE failed.
    Failed,
}

impl NotRun {
    /// The exit status a shell gives for it.
    pub fn exit_status(self) -> i32 {
        match self {
            NotRun::NotFound => 127,
            NotRun::Failed => 126,
        }
    }
}

/// How long a command may take to end after a hangup (the escape key)
/// before it is killed.
pub const HANGUP_GRACE: Duration = Duration::from_secs(2);

/// How long a killed command may take to be gone. A process in a VE can
/// be stuck in the kernel beyond SIGKILL (in a FUSE request the VE's own
/// daemon never answers): `kennel` then leaves it and says so.
pub const KILLED_WAIT: Duration = Duration::from_secs(5);

/// How long the child may take from the fork to its exec.
pub const SETUP_TIMEOUT: Duration = Duration::from_secs(10);

/// How long a command Kennel runs for itself ([`Stdio::Capture`], e.g.
/// `chpasswd`) may take: the VE chose what runs, and must not hold the
/// caller (and the VE's lock) for ever.
pub const CAPTURE_TIMEOUT: Duration = Duration::from_secs(30);

/// The command's working directory inside the VE.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Cwd {
    /// `exec -w DIR`: the command does not run elsewhere.
    Required(String),
    /// `enter`: the VE root's home if it is usable, else `/`.
    Preferred(String),
}

/// The command's standard streams.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Stdio {
    /// Pipes, relayed to and from the caller's own streams.
    Relay,
    /// A pty of the VE's devpts, relayed to the caller's terminal;
    /// `escape` (a byte typed there) ends the session and hangs up on
    /// the command.
    Terminal { escape: Option<u8> },
    /// Pipes fed with `input`; the output (both streams, bounded) is
    /// returned instead of printed.
    Capture { input: Vec<u8> },
}

impl Stdio {
    pub fn is_terminal(&self) -> bool {
        matches!(self, Stdio::Terminal { .. })
    }
}

/// One command to run in a VE.
#[derive(Debug)]
pub struct JoinSpec<'a> {
    pub init_pid: i32,
    pub init_start: u64,
    pub cgroup: Cgroup<'a>,
    pub seccomp: &'a [kennel_sys::seccomp::SockFilter],
    pub argv: Vec<String>,
    pub env: Vec<String>,
    pub cwd: Cwd,
    pub stdio: Stdio,
    /// The VE's hard open-files limit.
    pub nofile: u64,
}

/// How the command ended.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Outcome {
    /// Its exit status (128+N if killed by signal N).
    pub status: i32,
    /// Its output, with [`Stdio::Capture`].
    pub output: Vec<u8>,
}

/// Runs the command and waits for it.
pub fn exec(spec: &JoinSpec<'_>) -> Result<Outcome> {
    let init = procfs::pin_live(spec.init_pid, spec.init_start)?;
    let (ours, theirs) = crate::sync::channel().ctx(|| "create a socket pair".into())?;
    let (parent_ends, child_ends) = if spec.stdio.is_terminal() {
        (None, stdio::placeholder()?)
    } else {
        let (p, c) = stdio::pipes()?;
        (Some(p), c)
    };
    // Block the signals we forward before forking; the child unblocks all.
    let sigfd =
        kennel_sys::signal::signalfd_for(FORWARDED).ctx(|| "set up signal handling".into())?;
    // Those signals work again once we return.
    let _unblock = Unblock(FORWARDED);
    let place = spec.cgroup.placement_beside(spec.init_pid)?;
    let fork = fork_into_pid_ns(
        init.as_fd(),
        &CloneOptions {
            flags: 0,
            pidfd: true,
            cgroup: place.clone_into(),
        },
    )
    .map_err(|e| fork_error(e, spec))?;
    let (child_pid, child_fd) = match fork {
        Forked::Child => child::run(&child::Child {
            spec,
            place: &place,
            init: init.as_fd(),
            channel: theirs.as_fd(),
            stdio: &child_ends,
        }),
        Forked::Parent { pid, pidfd } => (
            Pid::from_raw(pid).ok_or_else(|| RuntimeError::Kernel("no pid from clone3".into()))?,
            pidfd.ok_or_else(|| RuntimeError::Kernel("no pidfd from clone3".into()))?,
        ),
    };
    drop((theirs, place));
    // The command's ends of its output pipes stay open here until it has
    // ended: its exit then wakes this process once (the pidfd), not first
    // with end-of-file on the pipes and again when it is gone (measured:
    // ~4% of an `exec`). The pidfd, never end-of-file, ends the relay.
    let _outputs = child_ends.into_outputs();
    let command = Command {
        pid: child_pid,
        fd: child_fd.as_fd(),
        signals: sigfd.as_fd(),
    };
    let ran = run_parent(spec, ours.as_fd(), parent_ends, &command);
    let after = match &ran {
        Ok((_, after)) => *after,
        Err(_) => {
            command.kill();
            After::Killed
        }
    };
    let status = command.wait(after);
    let (output, _) = ran?;
    Ok(Outcome {
        status: status?,
        output,
    })
}

/// Forks a child that is in the PID namespace of `init`. The namespace is
/// joined for children only around the fork and left at once in the
/// parent: every later child of this process (the helper of
/// `crate::inside`, `nft`, `tc`) must be the host's, not a process the VE
/// can see and signal.
fn fork_into_pid_ns(init: BorrowedFd<'_>, opts: &CloneOptions<'_>) -> std::io::Result<Forked> {
    let own = rustix::fs::open(
        "/proc/self/ns/pid",
        rustix::fs::OFlags::RDONLY | rustix::fs::OFlags::CLOEXEC,
        rustix::fs::Mode::empty(),
    )?;
    move_into_thread_name_spaces(init, ThreadNameSpaceType::PROCESS_ID)?;
    let forked = clone3(opts);
    if let Ok(Forked::Child) = forked {
        return forked;
    }
    if let Err(e) = move_into_thread_name_spaces(own.as_fd(), ThreadNameSpaceType::PROCESS_ID) {
        // Never go on with the VE's namespace for our children.
        if let Ok(Forked::Parent {
            pidfd: Some(fd), ..
        }) = &forked
        {
            let _ = rustix::process::pidfd_send_signal(fd, rustix::process::Signal::KILL);
            let _ = rustix::process::waitid(
                rustix::process::WaitId::PidFd(fd.as_fd()),
                rustix::process::WaitIdOptions::EXITED,
            );
        }
        return Err(e.into());
    }
    forked
}

/// A fork into the VE's cgroups that fails for a reason the operator can
/// act on.
fn fork_error(e: std::io::Error, spec: &JoinSpec<'_>) -> RuntimeError {
    if e.raw_os_error() == Some(libc::EAGAIN) {
        return RuntimeError::Sys {
            what: format!(
                "start a process in the VE (init pid {}): its process limit is reached",
                spec.init_pid
            ),
            source: e,
        };
    }
    RuntimeError::Sys {
        what: "fork".into(),
        source: e,
    }
}

/// The parent's side: wait for the child's exec, then relay. Returns the
/// captured output ([`Stdio::Capture`]) and what the relay did to the
/// command.
fn run_parent(
    spec: &JoinSpec<'_>,
    channel: BorrowedFd<'_>,
    ends: Option<stdio::ParentEnds>,
    command: &Command<'_>,
) -> Result<(Vec<u8>, After)> {
    let master = await_exec(channel)?;
    let mut output = Vec::new();
    let after = match (&spec.stdio, ends, master) {
        (Stdio::Terminal { escape }, _, Some(master)) => {
            relay_terminal(master.as_fd(), command, *escape)?
        }
        (Stdio::Relay, Some(ends), _) | (Stdio::Capture { .. }, Some(ends), _) => {
            let io = match &spec.stdio {
                Stdio::Capture { input } => stdio::Ends::Capture {
                    input,
                    out: &mut output,
                },
                _ => stdio::Ends::Caller,
            };
            let deadline = matches!(spec.stdio, Stdio::Capture { .. })
                .then(|| Instant::now() + CAPTURE_TIMEOUT);
            let watch = stdio::Watch {
                child: command.fd,
                signals: command.signals,
                pid: command.pid,
                deadline,
            };
            match stdio::relay(ends, io, &watch)? {
                stdio::Ending::Exited => After::Nothing,
                stdio::Ending::Killed => After::Killed,
            }
        }
        _ => {
            return Err(RuntimeError::Protocol(
                "the joining process sent no pty".into(),
            ))
        }
    };
    Ok((output, after))
}

/// Waits for the child to exec (end of file on the channel), within
/// [`SETUP_TIMEOUT`]. Returns the pty master it sent, if any.
fn await_exec(channel: BorrowedFd<'_>) -> Result<Option<OwnedFd>> {
    let deadline = Instant::now() + SETUP_TIMEOUT;
    let mut master = None;
    loop {
        let left = deadline.saturating_duration_since(Instant::now());
        if !kennel_sys::fd::wait_readable(channel, left).ctx(|| "wait for the command".into())? {
            return Err(RuntimeError::ExecStalled(SETUP_TIMEOUT.as_secs()));
        }
        match FromJoin::recv(channel).ctx(|| "wait for the command".into())? {
            FromJoin::Pty(fd) => master = Some(fd),
            FromJoin::Failed { why, message } => {
                return Err(RuntimeError::CannotRun { why, message })
            }
            FromJoin::Eof => return Ok(master),
        }
    }
}

/// With a pty: raw terminal, relay until the command ends, the operator
/// types `escape` (then the command is hung up on) or signals `kennel`
/// (passed on).
fn relay_terminal(
    master: BorrowedFd<'_>,
    command: &Command<'_>,
    escape: Option<u8>,
) -> Result<After> {
    let stdin = rustix::stdio::stdin();
    pty::copy_winsize(stdin, master);
    let raw = TerminalMode::session(stdin);
    let end = pty::relay(
        master,
        &RelayOptions {
            until: Some(command.fd),
            signals: Some(command.signals),
            escape,
        },
    )
    .ctx(|| "relay the terminal".into())?;
    drop(raw);
    Ok(match end {
        RelayEnd::Detached => {
            command.signal(rustix::process::Signal::HUP);
            After::HungUp
        }
        RelayEnd::Signal(sig) => {
            if let Some(s) = rustix::process::Signal::from_named_raw(sig) {
                command.signal(s);
            }
            After::Signalled
        }
        RelayEnd::Hangup | RelayEnd::Exited => After::Nothing,
    })
}

//! Entering a running VE: `kennel exec` and `kennel enter`.
//!
//! ```text
//! kennel exec ──setns(pidfd, PID)──fork into init's cgroup──► child: join the v1 cgroups,
//!      │                                   setns(pidfd, USER|MNT|UTS|IPC|NET|CGROUP),
//!      │                                   uid/gid 0 of the VE, [pty from the VE's devpts],
//!      │                                   close host fds, caps, seccomp, execvp
//!      └── waits (relaying the pty) and exits with the command's status
//! ```
//!
//! The child is not dumpable until it execs, so nothing in the VE can
//! ptrace it or open its `/proc/PID/exe` (the kennel binary) or its file
//! descriptors in the meantime. With a pty, the command's standard streams
//! are a pty of the VE's own devpts: no host terminal ever enters the VE.

use std::ffi::CString;
use std::os::fd::{AsFd, AsRawFd, BorrowedFd};

use kennel_cgroup::{Cgroup, Placement};
use kennel_sys::clone::{clone3, CloneOptions, Forked};
use rustix::fs::{Mode, OFlags};
use rustix::process::{pidfd_open, Pid, PidfdFlags};
use rustix::thread::{move_into_thread_name_spaces, ThreadNameSpaceType};

use crate::error::{Context, Result, RuntimeError};
use crate::pty::{self, RawTerminal, RelayEnd, RelayOptions};
use crate::{procfs, sync};

/// Exit status kennel uses when it could not start the command (like
/// `env`): 126 cannot run it, 127 not found.
pub const EXIT_CANNOT_RUN: i32 = 126;
pub const EXIT_NOT_FOUND: i32 = 127;

/// One command to run in a VE.
#[derive(Debug)]
pub struct JoinSpec<'a> {
    pub init_pid: i32,
    pub init_start: u64,
    pub cgroup: Cgroup<'a>,
    pub seccomp: &'a [kennel_sys::seccomp::SockFilter],
    pub argv: Vec<String>,
    pub env: Vec<String>,
    pub cwd: String,
    /// Give the command a pty from the VE and relay this terminal to it.
    pub tty: bool,
}

/// Runs the command and returns its exit status (128+N if killed by
/// signal N).
pub fn exec(spec: &JoinSpec<'_>) -> Result<i32> {
    let pid = Pid::from_raw(spec.init_pid).ok_or(RuntimeError::NotRunning)?;
    let pidfd = pidfd_open(pid, PidfdFlags::empty()).map_err(|_| RuntimeError::NotRunning)?;
    // Checked after pidfd_open: from here on the pidfd pins this process.
    if !procfs::is_same_process(spec.init_pid, spec.init_start) {
        return Err(RuntimeError::NotRunning);
    }
    move_into_thread_name_spaces(pidfd.as_fd(), ThreadNameSpaceType::PROCESS_ID)
        .ctx(|| "join the VE's PID namespace".into())?;
    let pair = if spec.tty {
        Some(
            rustix::net::socketpair(
                rustix::net::AddressFamily::UNIX,
                rustix::net::SocketType::SEQPACKET,
                rustix::net::SocketFlags::CLOEXEC,
                None,
            )
            .ctx(|| "create a socket pair".into())?,
        )
    } else {
        None
    };
    // Block the signals we forward before forking; the child unblocks all.
    let sigfd = kennel_sys::signal::signalfd_for(&[
        libc::SIGINT,
        libc::SIGQUIT,
        libc::SIGTERM,
        libc::SIGHUP,
        libc::SIGWINCH,
    ])
    .ctx(|| "set up signal handling".into())?;
    let place = spec.cgroup.placement_beside(spec.init_pid)?;
    let fork = clone3(&CloneOptions {
        flags: 0,
        pidfd: true,
        cgroup: place.clone_into(),
    })
    .ctx(|| "fork".into())?;
    match fork {
        Forked::Child => {
            drop(sigfd);
            let sock = pair.map(|(_, theirs)| theirs);
            let err = child(
                spec,
                &place,
                pidfd.as_fd(),
                sock.as_ref().map(|s| s.as_fd()),
            );
            let code = if err.kind() == std::io::ErrorKind::NotFound {
                EXIT_NOT_FOUND
            } else {
                EXIT_CANNOT_RUN
            };
            let _ = rustix::io::write(
                rustix::stdio::stderr(),
                format!("kennel: {err}\n").as_bytes(),
            );
            kennel_sys::process::exit_child(code)
        }
        Forked::Parent {
            pid: child_pid,
            pidfd: child_fd,
        } => {
            let child_fd =
                child_fd.ok_or_else(|| RuntimeError::Kernel("no pidfd from clone3".into()))?;
            let result = match pair {
                Some((ours, theirs)) => {
                    drop(theirs);
                    parent_tty(ours.as_fd(), child_fd.as_fd(), sigfd.as_fd())
                }
                None => {
                    let child = Pid::from_raw(child_pid)
                        .ok_or_else(|| RuntimeError::Kernel("no child pid from clone3".into()))?;
                    parent_plain(child, child_fd.as_fd(), sigfd.as_fd())
                }
            };
            let status = wait_status(child_fd.as_fd());
            result?;
            status
        }
    }
}

/// The child: becomes a process of the VE and execs the command. Returns
/// only with the error that stopped it.
fn child(
    spec: &JoinSpec<'_>,
    place: &Placement,
    pidfd: BorrowedFd<'_>,
    sock: Option<BorrowedFd<'_>>,
) -> std::io::Error {
    match child_setup(spec, place, pidfd, sock) {
        Ok(never) => match never {},
        Err(e) => e,
    }
}

fn child_setup(
    spec: &JoinSpec<'_>,
    place: &Placement,
    pidfd: BorrowedFd<'_>,
    sock: Option<BorrowedFd<'_>>,
) -> std::io::Result<std::convert::Infallible> {
    use std::io::{Error, ErrorKind};
    let wrap = |what: &str, e: std::io::Error| Error::new(e.kind(), format!("{what}: {e}"));
    rustix::process::set_dumpable_behavior(rustix::process::DumpableBehavior::NotDumpable)?;
    // Keys are reached by possession: never take the caller's session
    // keyring (a sudo session's, a service's) into the VE.
    kennel_sys::keyring::join_new_session_keyring()?;
    place.join_self().map_err(|e| Error::other(e.to_string()))?;
    crate::procfs::lift_oom_protection().map_err(|e| wrap("reset the OOM score adjustment", e))?;
    let all = ThreadNameSpaceType::USER
        | ThreadNameSpaceType::MOUNT
        | ThreadNameSpaceType::HOST_NAME_AND_NIS_DOMAIN_NAME
        | ThreadNameSpaceType::INTER_PROCESS_COMMUNICATION
        | ThreadNameSpaceType::NETWORK
        | ThreadNameSpaceType::CONTROL_GROUP;
    move_into_thread_name_spaces(pidfd, all)
        .map_err(|e| wrap("join the VE's namespaces", e.into()))?;
    let (zu, zg) = (rustix::process::Uid::ROOT, rustix::process::Gid::ROOT);
    rustix::thread::set_thread_res_gid(zg, zg, zg)?;
    rustix::thread::set_thread_res_uid(zu, zu, zu)?;
    rustix::thread::set_thread_groups(&[])?;
    if rustix::process::chdir(spec.cwd.as_str()).is_err() {
        rustix::process::chdir("/")?;
    }
    if let Some(sock) = sock {
        let master = rustix::fs::open(
            "/dev/pts/ptmx",
            OFlags::RDWR | OFlags::NOCTTY | OFlags::CLOEXEC,
            Mode::empty(),
        )
        .map_err(|e| wrap("open the VE's /dev/pts/ptmx", e.into()))?;
        rustix::pty::unlockpt(&master)?;
        let peer = rustix::pty::ioctl_tiocgptpeer(
            &master,
            rustix::pty::OpenptFlags::RDWR | rustix::pty::OpenptFlags::CLOEXEC,
        )?;
        sync::send_msg(sock, b"M", &[master.as_fd()])?;
        drop(master);
        rustix::process::setsid()?;
        rustix::process::ioctl_tiocsctty(&peer)?;
        for fd in 0..3 {
            kennel_sys::fd::dup_onto(peer.as_raw_fd(), fd)?;
        }
    }
    if sock.is_none() {
        // A new session without a controlling terminal: a host terminal
        // passed in as stdin/stdout/stderr can then be read and written,
        // but not used to inject input (TIOCSTI needs it to be the
        // controlling terminal) or reopened as /dev/tty.
        rustix::process::setsid()?;
    }
    kennel_sys::fd::close_all_from(3, &[])?;
    kennel_sys::signal::reset_all()?;
    crate::policy::caps::drop_bounding().map_err(|e| Error::other(e.to_string()))?;
    let argv: Vec<CString> = spec
        .argv
        .iter()
        .map(|a| CString::new(a.as_str()))
        .collect::<Result<_, _>>()
        .map_err(|_| Error::new(ErrorKind::InvalidInput, "argument with a NUL byte"))?;
    if argv.is_empty() {
        return Err(Error::new(ErrorKind::InvalidInput, "no command"));
    }
    let env: Vec<CString> = spec
        .env
        .iter()
        .filter_map(|e| CString::new(e.as_str()).ok())
        .collect();
    kennel_sys::seccomp::install(spec.seccomp)?;
    let e = kennel_sys::process::execve_search(&spec.argv[0], &argv, &env);
    Err(Error::new(
        e.kind(),
        format!("cannot run {}: {e}", spec.argv[0]),
    ))
}

/// Without a pty: forward interrupt and termination signals to the
/// child's process group, as a terminal would (the child leads a session
/// of its own, so a terminal's Ctrl-C reaches only us), and wait. The
/// child is not reaped before this returns, so its PID, which is also the
/// group's id, cannot be reused meanwhile.
fn parent_plain(child: Pid, child_fd: BorrowedFd<'_>, sigfd: BorrowedFd<'_>) -> Result<()> {
    use rustix::event::{poll, PollFd, PollFlags};
    loop {
        let mut fds = [
            PollFd::new(&child_fd, PollFlags::IN),
            PollFd::new(&sigfd, PollFlags::IN),
        ];
        match poll(&mut fds, None) {
            Ok(_) => {}
            Err(rustix::io::Errno::INTR) => continue,
            Err(e) => return Err(e).ctx(|| "wait for the command".into()),
        }
        if !fds[0].revents().is_empty() {
            return Ok(());
        }
        while let Some(sig) = kennel_sys::signal::read_signalfd(sigfd) {
            if [libc::SIGINT, libc::SIGQUIT, libc::SIGTERM, libc::SIGHUP].contains(&sig) {
                let sig = rustix::process::Signal::from_named_raw(sig)
                    .unwrap_or(rustix::process::Signal::TERM);
                // Before its setsid the child has no group yet.
                if rustix::process::kill_process_group(child, sig).is_err() {
                    let _ = rustix::process::pidfd_send_signal(child_fd, sig);
                }
            }
        }
    }
}

/// With a pty: raw terminal, relay until the command ends.
fn parent_tty(sock: BorrowedFd<'_>, child_fd: BorrowedFd<'_>, sigfd: BorrowedFd<'_>) -> Result<()> {
    let master = match sync::wait_readable(sock, std::time::Duration::from_secs(30)) {
        Ok(true) => sync::recv_msg(sock, &mut [0u8; 8])
            .ctx(|| "receive the pty".into())?
            .1
            .pop(),
        _ => None,
    };
    let Some(master) = master else {
        // The child failed before it had a pty; its message is on stderr.
        return Ok(());
    };
    let stdin = rustix::stdio::stdin();
    pty::copy_winsize(stdin, master.as_fd());
    let raw = RawTerminal::enable(stdin);
    let end = pty::relay(
        master.as_fd(),
        &RelayOptions {
            until: Some(child_fd),
            signals: Some(sigfd),
            escape: None,
        },
    )
    .ctx(|| "relay the terminal".into())?;
    drop(raw);
    if let RelayEnd::Signal(sig) = end {
        if let Some(s) = rustix::process::Signal::from_named_raw(sig) {
            let _ = rustix::process::pidfd_send_signal(child_fd, s);
        }
    }
    Ok(())
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
    Ok(EXIT_CANNOT_RUN)
}

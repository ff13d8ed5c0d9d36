//! Host work on a running VE's files, done by the VE's own root inside the
//! VE's namespaces.
//!
//! Reading or writing a VE's file as the host's root lets the VE choose
//! what is read or written: it can bind `/proc/kallsyms` or `/proc/kmsg`
//! over its `/etc/hosts`, and the host's root reads the kernel's real
//! symbol addresses or drains the host's kernel log into the VE. Resolving
//! paths with `RESOLVE_IN_ROOT` stops symlinks, not mounts. So the work
//! (`kennel set`: the hostname, the VE's network files) runs in a
//! short-lived helper that
//!
//! * forks from `kennel`, is not dumpable (nothing in the VE can ptrace it
//!   or read its memory), and joins none of the VE's cgroups or its PID
//!   namespace (the VE cannot see or signal it);
//! * joins the VE's user and mount (and UTS) namespaces through a pidfd of
//!   its init, and closes every descriptor but its answer channel before
//!   it looks up a single path;
//! * becomes uid and gid 0 *of the VE*, under the VE's seccomp filter.
//!
//! Whatever the VE prepared, the helper reads and writes with exactly the
//! VE's own privileges: nothing the VE could not do itself. It answers
//! with one message (JSON, bounded), and is killed if it takes longer than
//! [`TIMEOUT`] (a FIFO or a stalled FUSE file cannot hang `kennel set`);
//! one stuck in the kernel beyond SIGKILL (a FUSE request the VE's daemon
//! read and never answers) is left behind after
//! [`KILLED_WAIT`](crate::join::KILLED_WAIT).

use std::os::fd::{AsFd, AsRawFd, BorrowedFd, OwnedFd};
use std::time::{Duration, Instant};

use kennel_sys::clone::{clone3, CloneOptions, Forked};
use rustix::process::Signal;
use rustix::thread::{move_into_thread_name_spaces, ThreadNameSpaceType};
use serde::de::DeserializeOwned;
use serde::Serialize;

use crate::error::{Context, Result, RuntimeError};
use crate::procfs;
use crate::sync::{recv_msg, send_msg};

/// How long the helper may take.
pub const TIMEOUT: Duration = Duration::from_secs(10);
/// The longest answer read from the helper.
const ANSWER_MAX: usize = 256 * 1024;

/// The running VE to work in.
#[derive(Debug, Clone)]
pub struct InsideVe<'a> {
    pub init_pid: i32,
    pub init_start: u64,
    /// The VE's seccomp program.
    pub seccomp: &'a [kennel_sys::seccomp::SockFilter],
    /// Also join the VE's UTS namespace (to set its hostname).
    pub uts: bool,
    /// Descriptors the helper keeps (every other one is closed before it
    /// looks up a path): only what the work hands to the VE itself, such
    /// as detached mounts of lxcfs's files.
    pub keep: &'a [BorrowedFd<'a>],
}

/// Runs `work` as the VE's root inside VE `ve`'s namespaces and returns
/// its answer. `work` runs in a forked child: it must not rely on threads
/// or on anything but its own memory.
pub fn run<T, F>(ve: &InsideVe<'_>, work: F) -> Result<T>
where
    T: Serialize + DeserializeOwned,
    F: FnOnce() -> std::result::Result<T, String>,
{
    spawn(ve, work)?.answer()
}

/// A helper at work; [`Pending::answer`] collects what it says. Several
/// can work at once (one per VE), each within its own [`TIMEOUT`], from
/// this single thread.
#[derive(Debug)]
pub struct Pending {
    helper: OwnedFd,
    channel: OwnedFd,
    deadline: Instant,
}

/// Forks the helper of [`run`] and returns at once.
pub fn spawn<T, F>(ve: &InsideVe<'_>, work: F) -> Result<Pending>
where
    T: Serialize,
    F: FnOnce() -> std::result::Result<T, String>,
{
    let init = procfs::pin_live(ve.init_pid, ve.init_start)?;
    let (ours, theirs) = crate::sync::channel().ctx(|| "create a socket pair".into())?;
    let fork = clone3(&CloneOptions {
        flags: 0,
        pidfd: true,
        cgroup: None,
    })
    .ctx(|| "fork a helper".into())?;
    let helper = match fork {
        Forked::Child => {
            drop(ours);
            let answer = match enter(ve, init.as_fd(), theirs.as_fd()) {
                Ok(()) => work().and_then(|t| serde_json::to_vec(&t).map_err(|e| e.to_string())),
                Err(e) => Err(e),
            };
            let msg = match answer {
                Ok(mut json) => {
                    json.insert(0, b'+');
                    json
                }
                Err(e) => format!("-{e}").into_bytes(),
            };
            let code = i32::from(send_msg(theirs.as_fd(), &msg, &[]).is_err());
            kennel_sys::process::exit_child(code)
        }
        Forked::Parent { pidfd, .. } => {
            pidfd.ok_or_else(|| RuntimeError::Kernel("no pidfd from clone3".into()))?
        }
    };
    Ok(Pending {
        helper,
        channel: ours,
        deadline: Instant::now() + TIMEOUT,
    })
}

impl Pending {
    /// The helper's answer, once it gave one or its time ran out (then it
    /// is killed).
    pub fn answer<T: DeserializeOwned>(self) -> Result<T> {
        answers(vec![self]).pop().unwrap_or_else(|| {
            Err(RuntimeError::Inside(
                "the helper in the VE ended without an answer".into(),
            ))
        })
    }
}

/// The answers of helpers working at once, in their order. Bounded as one
/// helper is: each within its own deadline, then the late ones killed
/// together and waited for together ([`crate::join::KILLED_WAIT`], twice),
/// however many of them a VE stalled.
pub fn answers<T: DeserializeOwned>(pending: Vec<Pending>) -> Vec<Result<T>> {
    let received: Vec<(OwnedFd, Result<Vec<u8>>)> = pending
        .into_iter()
        .map(|p| {
            let answer = receive(p.channel.as_fd(), p.deadline);
            if answer.is_err() {
                let _ = rustix::process::pidfd_send_signal(&p.helper, Signal::KILL);
            }
            (p.helper, answer)
        })
        .collect();
    // Bounded: a helper stuck in the kernel (a FUSE request the VE never
    // answers) ignores even SIGKILL; it is then left to its fate.
    let mut gone = vec![false; received.len()];
    for round in 0..2 {
        let until = Instant::now() + crate::join::KILLED_WAIT;
        for ((helper, _), gone) in received.iter().zip(gone.iter_mut()) {
            if *gone {
                continue;
            }
            let left = until.saturating_duration_since(Instant::now());
            *gone = matches!(
                kennel_sys::fd::wait_readable(helper.as_fd(), left),
                Ok(true)
            );
            if !*gone && round == 0 {
                let _ = rustix::process::pidfd_send_signal(helper, Signal::KILL);
            }
        }
    }
    received
        .into_iter()
        .zip(gone)
        .map(|((helper, answer), gone)| {
            if !gone {
                return Err(RuntimeError::Unkillable(crate::join::KILLED_WAIT.as_secs()));
            }
            let _ = rustix::process::waitid(
                rustix::process::WaitId::PidFd(helper.as_fd()),
                rustix::process::WaitIdOptions::EXITED,
            );
            parse(&answer?)
        })
        .collect()
}

/// A helper's message: `+` and its JSON answer, or `-` and an error.
fn parse<T: DeserializeOwned>(bytes: &[u8]) -> Result<T> {
    match bytes.split_first() {
        Some((b'+', json)) => serde_json::from_slice(json).map_err(|e| {
            RuntimeError::Inside(format!("unreadable answer from the VE helper: {e}"))
        }),
        Some((b'-', msg)) => Err(RuntimeError::Inside(
            String::from_utf8_lossy(msg).into_owned(),
        )),
        _ => Err(RuntimeError::Inside(
            "the helper in the VE ended without an answer".into(),
        )),
    }
}

/// The helper's way in: see the module doc. Returns an error text.
fn enter(
    ve: &InsideVe<'_>,
    init: BorrowedFd<'_>,
    channel: BorrowedFd<'_>,
) -> std::result::Result<(), String> {
    let fail = |what: &str| {
        let what = what.to_string();
        move |e: rustix::io::Errno| format!("{what}: {e}")
    };
    rustix::process::set_dumpable_behavior(rustix::process::DumpableBehavior::NotDumpable)
        .map_err(fail("make the helper undumpable"))?;
    rustix::process::set_parent_process_death_signal(Some(Signal::KILL))
        .map_err(fail("set the parent-death signal"))?;
    let mut ns = ThreadNameSpaceType::USER | ThreadNameSpaceType::MOUNT;
    if ve.uts {
        ns |= ThreadNameSpaceType::HOST_NAME_AND_NIS_DOMAIN_NAME;
    }
    move_into_thread_name_spaces(init, ns).map_err(fail("join the VE's namespaces"))?;
    let keep: Vec<i32> = std::iter::once(channel.as_raw_fd())
        .chain(ve.keep.iter().map(|fd| fd.as_raw_fd()))
        .collect();
    if keep.iter().any(|&fd| fd < 3) {
        return Err("a kept descriptor is a standard stream".into());
    }
    // Standard streams the helper cannot use (a pipe's read end, its
    // writer gone): a file it opens later never takes 0-2, where a stray
    // message would land in it.
    let (dead, writer) =
        rustix::pipe::pipe_with(rustix::pipe::PipeFlags::CLOEXEC).map_err(fail("create a pipe"))?;
    drop(writer);
    for fd in 0..3 {
        kennel_sys::fd::dup_onto(dead.as_raw_fd(), fd)
            .map_err(|e| format!("replace the standard streams: {e}"))?;
    }
    drop(dead);
    kennel_sys::fd::close_all_from(3, &keep)
        .map_err(|e| format!("close inherited descriptors: {e}"))?;
    let (zu, zg) = (rustix::process::Uid::ROOT, rustix::process::Gid::ROOT);
    rustix::thread::set_thread_res_gid(zg, zg, zg)
        .and_then(|()| rustix::thread::set_thread_res_uid(zu, zu, zu))
        .and_then(|()| rustix::thread::set_thread_groups(&[]))
        .map_err(fail("become the VE's root"))?;
    // The change of ids cleared it.
    rustix::process::set_parent_process_death_signal(Some(Signal::KILL))
        .map_err(fail("set the parent-death signal"))?;
    kennel_sys::seccomp::install(ve.seccomp).map_err(|e| format!("install seccomp: {e}"))
}

/// The helper's one message, by `deadline`.
fn receive(channel: BorrowedFd<'_>, deadline: Instant) -> Result<Vec<u8>> {
    let left = deadline.saturating_duration_since(Instant::now());
    if !kennel_sys::fd::wait_readable(channel, left).ctx(|| "wait for the VE helper".into())? {
        return Err(RuntimeError::Inside(format!(
            "the helper working in the VE took more than {} s (the VE stalled it): nothing was changed there",
            TIMEOUT.as_secs()
        )));
    }
    let mut buf = vec![0u8; ANSWER_MAX];
    let (n, _) = recv_msg(channel, &mut buf).ctx(|| "read the VE helper's answer".into())?;
    buf.truncate(n);
    Ok(buf)
}

/// A descriptor of `/` in the helper (the VE's root).
pub fn ve_root() -> std::result::Result<OwnedFd, String> {
    rustix::fs::open(
        "/",
        rustix::fs::OFlags::PATH | rustix::fs::OFlags::DIRECTORY | rustix::fs::OFlags::CLOEXEC,
        rustix::fs::Mode::empty(),
    )
    .map_err(|e| format!("open the VE's root: {e}"))
}

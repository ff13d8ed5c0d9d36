//! The joining child: from the fork to the `execve` of the command, in this
//! order.
//!
//! 1. [`leave_the_caller`], still on the host: not dumpable, its command
//!    line (the administrator's, readable in the VE) blanked, the standard
//!    streams replaced by Kennel's pipes (the caller's terminal and files
//!    are gone from the first instruction), a new session keyring, the
//!    VE's resource limits and OOM floor (which need the host's
//!    privileges), init's v1 cgroups.
//! 2. [`enter_the_ve`]: `setns` into all of init's namespaces, then every
//!    descriptor but the standard streams and the channel to `kennel exec`
//!    is closed, *before* anything is looked up by path: a host directory
//!    still open here could be reached through `/proc/self/fd/N/..` from
//!    a symlink the VE planted (runc's CVE-2024-21626). Then uid and gid 0
//!    of the VE.
//! 3. [`set_working_directory`] and [`take_a_pty`]: both looked up below
//!    the VE's root with `openat2(RESOLVE_IN_ROOT | RESOLVE_NO_MAGICLINKS)`
//!    as the VE's root, and checked (a directory; a devpts `ptmx`) before
//!    use.
//! 4. [`become_the_command`]: signals, capability bounding set, seccomp,
//!    `execve` (the path searched inside the VE).

use std::convert::Infallible;
use std::ffi::CString;
use std::io::{Error, ErrorKind};
use std::os::fd::{AsFd, AsRawFd, BorrowedFd, OwnedFd};

use kennel_cgroup::Placement;
use rustix::fs::{Mode, OFlags, ResolveFlags};
use rustix::thread::{move_into_thread_name_spaces, ThreadNameSpaceType};

use super::message::FromJoin;
use super::stdio::ChildEnds;
use super::{Cwd, JoinSpec, NotRun};

/// Device number of `ptmx` in a devpts instance.
const PTMX: (u32, u32) = (5, 2);

const IN_ROOT: ResolveFlags = ResolveFlags::IN_ROOT.union(ResolveFlags::NO_MAGICLINKS);

/// Why the command could not run, as `kennel exec` reports it.
struct Failure {
    why: NotRun,
    message: String,
}

fn failed(what: &str) -> impl FnOnce(Error) -> Failure + '_ {
    move |e| Failure {
        why: NotRun::Failed,
        message: format!("{what}: {e}"),
    }
}

/// What the child needs, borrowed from the parent's state at the fork.
pub(super) struct Child<'a> {
    pub(super) spec: &'a JoinSpec<'a>,
    pub(super) place: &'a Placement,
    pub(super) init: BorrowedFd<'a>,
    pub(super) channel: BorrowedFd<'a>,
    pub(super) stdio: &'a ChildEnds,
}

/// Runs in the forked child; never returns.
pub(super) fn run(child: &Child<'_>) -> ! {
    let failure = match setup(child) {
        Ok(never) => match never {},
        Err(f) => f,
    };
    let _ = FromJoin::Failed {
        why: failure.why,
        message: failure.message,
    }
    .send(child.channel);
    kennel_sys::process::exit_child(failure.why.exit_status())
}

fn setup(child: &Child<'_>) -> Result<Infallible, Failure> {
    leave_the_caller(child)?;
    enter_the_ve(child)?;
    let root = rustix::fs::open(
        "/",
        OFlags::PATH | OFlags::DIRECTORY | OFlags::CLOEXEC,
        Mode::empty(),
    )
    .map_err(|e| failed("open the VE's root")(e.into()))?;
    set_working_directory(root.as_fd(), &child.spec.cwd)?;
    if child.spec.stdio.is_terminal() {
        take_a_pty(root.as_fd(), child.channel)?;
    } else {
        // A session of its own: signals from the caller's terminal reach
        // only `kennel exec`, which forwards them.
        rustix::process::setsid().map_err(|e| failed("start a session")(e.into()))?;
    }
    drop(root);
    become_the_command(child.spec)
}

fn leave_the_caller(child: &Child<'_>) -> Result<(), Failure> {
    rustix::process::set_dumpable_behavior(rustix::process::DumpableBehavior::NotDumpable)
        .map_err(|e| failed("make the process undumpable")(e.into()))?;
    // Named as the command it becomes: what the VE sees in its PID
    // namespace until the exec is the command, not the host's tool.
    name_after(
        child
            .spec
            .argv
            .first()
            .map(String::as_str)
            .unwrap_or("exec"),
    );
    // The VE can read the command line of any process in its PID
    // namespace, this one's included (unlike its memory or environment).
    crate::procfs::blank_own_cmdline();
    child
        .stdio
        .install()
        .map_err(failed("connect the standard streams"))?;
    // Keys are reached by possession: never take the caller's session
    // keyring (a sudo session's, a service's) into the VE.
    kennel_sys::keyring::join_new_session_keyring().map_err(failed("create a session keyring"))?;
    crate::policy::rlimits::apply(child.spec.nofile)
        .map_err(failed("set the VE's resource limits"))?;
    child.place.join_self().map_err(|e| Failure {
        why: NotRun::Failed,
        message: e.to_string(),
    })?;
    crate::procfs::lift_oom_protection().map_err(failed("reset the OOM score adjustment"))
}

/// Sets this process's name (`comm`, 15 bytes) to `command`'s base name.
fn name_after(command: &str) {
    let base = command.rsplit('/').next().unwrap_or(command);
    let short: String = base.chars().filter(|c| *c != '\0').take(15).collect();
    if let Ok(name) = std::ffi::CString::new(short) {
        let _ = rustix::thread::set_name(&name);
    }
}

fn enter_the_ve(child: &Child<'_>) -> Result<(), Failure> {
    let all = ThreadNameSpaceType::USER
        | ThreadNameSpaceType::MOUNT
        | ThreadNameSpaceType::HOST_NAME_AND_NIS_DOMAIN_NAME
        | ThreadNameSpaceType::INTER_PROCESS_COMMUNICATION
        | ThreadNameSpaceType::NETWORK
        | ThreadNameSpaceType::CONTROL_GROUP;
    move_into_thread_name_spaces(child.init, all)
        .map_err(|e| failed("join the VE's namespaces")(e.into()))?;
    // Every host descriptor goes now: init's pidfd, the cgroup
    // directories, whatever the caller left open.
    kennel_sys::fd::close_all_from(3, &[child.channel.as_raw_fd()])
        .map_err(failed("close inherited descriptors"))?;
    let (zu, zg) = (rustix::process::Uid::ROOT, rustix::process::Gid::ROOT);
    rustix::thread::set_thread_res_gid(zg, zg, zg)
        .and_then(|()| rustix::thread::set_thread_res_uid(zu, zu, zu))
        .and_then(|()| rustix::thread::set_thread_groups(&[]))
        .map_err(|e| failed("become the VE's root")(e.into()))
}

/// Opens `path` below the VE's `root` as a directory (no magic links;
/// symlinks and `..` stay inside the root).
fn open_dir_in(root: BorrowedFd<'_>, path: &str) -> std::io::Result<OwnedFd> {
    let rel = path.trim_start_matches('/');
    let rel = if rel.is_empty() { "." } else { rel };
    Ok(rustix::fs::openat2(
        root,
        rel,
        OFlags::PATH | OFlags::DIRECTORY | OFlags::CLOEXEC,
        Mode::empty(),
        IN_ROOT,
    )?)
}

fn set_working_directory(root: BorrowedFd<'_>, cwd: &Cwd) -> Result<(), Failure> {
    let (path, required) = match cwd {
        Cwd::Required(p) => (p.as_str(), true),
        Cwd::Preferred(p) => (p.as_str(), false),
    };
    let dir = match open_dir_in(root, path) {
        Ok(d) => d,
        Err(_) if !required => open_dir_in(root, "/").map_err(failed("open /"))?,
        Err(e) => return Err(failed(&format!("working directory {} in the VE", path))(e)),
    };
    rustix::process::fchdir(&dir).map_err(|e| failed("change directory")(e.into()))
}

/// Allocates the command's pty from the VE's own devpts, hands the master
/// to `kennel exec`, and makes the peer the controlling terminal and the
/// standard streams.
fn take_a_pty(root: BorrowedFd<'_>, channel: BorrowedFd<'_>) -> Result<(), Failure> {
    let master = rustix::fs::openat2(
        root,
        "dev/pts/ptmx",
        OFlags::RDWR | OFlags::NOCTTY | OFlags::NONBLOCK | OFlags::CLOEXEC,
        Mode::empty(),
        IN_ROOT,
    )
    .map_err(|e| failed("open the VE's /dev/pts/ptmx")(e.into()))?;
    check_ptmx(master.as_fd()).map_err(failed("the VE's /dev/pts/ptmx"))?;
    rustix::pty::unlockpt(&master).map_err(|e| failed("unlock the pty")(e.into()))?;
    let peer = rustix::pty::ioctl_tiocgptpeer(
        &master,
        rustix::pty::OpenptFlags::RDWR
            | rustix::pty::OpenptFlags::NOCTTY
            | rustix::pty::OpenptFlags::CLOEXEC,
    )
    .map_err(|e| failed("open the pty's peer")(e.into()))?;
    FromJoin::Pty(master)
        .send(channel)
        .map_err(failed("hand over the pty"))?;
    rustix::process::setsid().map_err(|e| failed("start a session")(e.into()))?;
    rustix::process::ioctl_tiocsctty(&peer)
        .map_err(|e| failed("take the pty as terminal")(e.into()))?;
    for fd in 0..3 {
        kennel_sys::fd::dup_onto(peer.as_raw_fd(), fd).map_err(failed("connect the pty"))?;
    }
    Ok(())
}

/// What the VE left at /dev/pts/ptmx must be a devpts `ptmx`: not a FIFO
/// that blocks, not another device bound there.
fn check_ptmx(fd: BorrowedFd<'_>) -> std::io::Result<()> {
    let st = rustix::fs::fstat(fd)?;
    let fs = rustix::fs::fstatfs(fd)?;
    let is_char =
        rustix::fs::FileType::from_raw_mode(st.st_mode) == rustix::fs::FileType::CharacterDevice;
    let dev = (rustix::fs::major(st.st_rdev), rustix::fs::minor(st.st_rdev));
    if is_char && dev == PTMX && fs.f_type as i64 == crate::devpts::DEVPTS_SUPER_MAGIC {
        Ok(())
    } else {
        Err(Error::new(
            ErrorKind::InvalidData,
            "is not a devpts ptmx (the VE replaced it)",
        ))
    }
}

fn become_the_command(spec: &JoinSpec<'_>) -> Result<Infallible, Failure> {
    kennel_sys::signal::reset_all().map_err(failed("reset signal handling"))?;
    crate::policy::caps::drop_bounding().map_err(|e| Failure {
        why: NotRun::Failed,
        message: e.to_string(),
    })?;
    let bad = |what: &str| Failure {
        why: NotRun::Failed,
        message: format!("{what} with a NUL byte"),
    };
    let argv: Vec<CString> = spec
        .argv
        .iter()
        .map(|a| CString::new(a.as_str()))
        .collect::<Result<_, _>>()
        .map_err(|_| bad("an argument"))?;
    let Some(file) = spec.argv.first() else {
        return Err(Failure {
            why: NotRun::Failed,
            message: "no command".into(),
        });
    };
    let env: Vec<CString> = spec
        .env
        .iter()
        .map(|e| CString::new(e.as_str()))
        .collect::<Result<_, _>>()
        .map_err(|_| bad("an environment variable"))?;
    kennel_sys::seccomp::install(spec.seccomp).map_err(failed("install the seccomp filter"))?;
    let e = kennel_sys::process::execve_search(file, &argv, &env);
    let why = if e.kind() == ErrorKind::NotFound {
        NotRun::NotFound
    } else {
        NotRun::Failed
    };
    Err(Failure {
        why,
        message: format!("cannot run {}: {e}", file),
    })
}

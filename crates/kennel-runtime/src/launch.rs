//! Starting a VE, as seen from the host.
//!
//! ```text
//! kennel start ──fork──► monitor ──clone3(NEWUSER|NEWPID|NEWUTS|NEWIPC|NEWNET)──► VE init
//!      │                   │ private mount ns; id maps; cgroups;       │ waits for "go"
//!      │                   │ idmapped template + overlay root ──go──►  │ child::* steps
//!      │                   │ ◄──console pty── ◄──EOF on exec──────────  │ execve(/sbin/init)
//!      │ ◄──"ok PID"────── │ back to the host mount ns; state.json
//!      exit 0              exec kennel-monitor (pidfd, console, socket)
//! ```
//!
//! The monitor does the host-side work in a private mount namespace, so
//! the VE's mounts never appear in the host's: they live only in the VE's
//! own namespace and vanish with it.

use std::ffi::CString;
use std::os::fd::{AsFd, AsRawFd, BorrowedFd, OwnedFd, RawFd};
use std::time::{Duration, Instant};

use kennel_cgroup::{Host, Part, Placement};
use kennel_storage::layers::{mount_root, RootMount, VeLayers};
use kennel_sys::clone::{clone3, CloneOptions, Forked};
use rustix::fs::{Mode, OFlags};
use rustix::net::{socketpair, AddressFamily, SocketFlags, SocketType};
use rustix::pipe::{pipe_with, PipeFlags};
use rustix::process::{waitid, Signal, WaitId, WaitIdOptions};
use rustix::thread::{move_into_link_name_space, LinkNameSpaceType};

use crate::error::{Context, Result, RuntimeError};
use crate::procfs;
use crate::spec::StartSpec;
use crate::state::{RunState, MONITOR_SOCKET};
use crate::sync::{self, FromChild};

/// How long the monitor and the VE may take from fork to exec of init.
const SETUP_TIMEOUT: Duration = Duration::from_secs(30);

/// The time left until `deadline`.
fn left(deadline: Instant) -> Duration {
    deadline.saturating_duration_since(Instant::now())
}

/// Descriptor numbers the monitor program finds its inheritance at.
pub const MONITOR_FD_PIDFD: RawFd = 3;
pub const MONITOR_FD_CONSOLE: RawFd = 4;
pub const MONITOR_FD_CONSOLE_PEER: RawFd = 5;
pub const MONITOR_FD_SOCKET: RawFd = 6;

/// A started VE.
#[derive(Debug, Clone)]
pub struct Started {
    pub init_pid: i32,
    pub monitor_pid: i32,
}

/// Starts the VE described by `spec`, whose cgroups (`cgroup`, and the
/// monitors' `monitor_cgroup`) already exist with their limits. Returns
/// once the VE's init is running. The caller must be single-threaded.
pub fn start(spec: &StartSpec, host: &Host) -> Result<Started> {
    let ve_cg = host.cgroup(&spec.cgroup);
    host.cgroup(&spec.monitor_cgroup).create()?;
    // The early part must exist before init is cloned (see `Part`); the
    // rest (most of the v1 hierarchies on a hybrid host) is made below
    // while the monitor and the VE get going.
    ve_cg.prepare(&spec.limits, spec.idmap.root(), Part::Early)?;
    let ve_place = ve_cg.placement_part(Part::Early)?;
    let (rd, wr) = pipe_with(PipeFlags::CLOEXEC).ctx(|| "create a pipe".into())?;
    let (cg_rd, cg_wr) = pipe_with(PipeFlags::CLOEXEC).ctx(|| "create a pipe".into())?;
    let monitor_place = host.cgroup(&spec.monitor_cgroup).placement()?;
    tracing::debug!("start: forking the monitor");
    let fork = clone3(&CloneOptions {
        flags: 0,
        pidfd: true,
        cgroup: monitor_place.clone_into(),
    })
    .ctx(|| "fork the VE's monitor".into())?;
    match fork {
        Forked::Child => {
            drop(rd);
            drop(cg_wr);
            monitor_main(spec, host, &monitor_place, &ve_place, wr, cg_rd)
        }
        Forked::Parent { pid, pidfd } => {
            drop(wr);
            drop(cg_rd);
            let monitor = pidfd.ok_or_else(|| RuntimeError::Other("no pidfd".into()))?;
            let prepared = ve_cg.prepare(&spec.limits, spec.idmap.root(), Part::Late);
            tracing::debug!("start: v1 cgroups ready");
            let note = match &prepared {
                Ok(()) => CGROUPS_READY.to_string(),
                Err(e) => e.to_string(),
            };
            let _ = rustix::io::write(&cg_wr, note.as_bytes());
            drop(cg_wr);
            let outcome = await_report(&rd).and_then(|init_pid| {
                prepared?;
                Ok(init_pid)
            });
            match outcome {
                Ok(init_pid) => Ok(Started {
                    init_pid,
                    monitor_pid: pid,
                }),
                Err(e) => {
                    // Whatever state the monitor is in, it goes, and the VE
                    // with it (its parent-death signal); the caller then
                    // removes the cgroups.
                    let _ = rustix::process::pidfd_send_signal(&monitor, Signal::KILL);
                    let _ = waitid(WaitId::PidFd(monitor.as_fd()), WaitIdOptions::EXITED);
                    Err(e)
                }
            }
        }
    }
}

/// The monitor's report: the VE's init PID, or why the start failed.
fn await_report(rd: &OwnedFd) -> Result<i32> {
    // The monitor keeps to SETUP_TIMEOUT itself; this is the backstop.
    let line = sync::read_report(rd, SETUP_TIMEOUT + Duration::from_secs(5))
        .ctx(|| "wait for the VE's monitor".into())?;
    if let Some(rest) = line.strip_prefix("ok ") {
        rest.trim()
            .parse()
            .map_err(|_| RuntimeError::Other(format!("bad report from the monitor: {line}")))
    } else if let Some(msg) = line.strip_prefix("err ") {
        Err(RuntimeError::Setup(msg.to_string()))
    } else {
        Err(RuntimeError::Setup(
            "the VE's monitor exited without a report".into(),
        ))
    }
}

/// What `kennel start` writes to the monitor once the VE's v1 cgroups are
/// ready (anything else is the reason they are not).
const CGROUPS_READY: &str = "y";

/// The monitor: join its cgroups, set the VE up from the host side, then become
/// `kennel-monitor`. Never returns.
fn monitor_main(
    spec: &StartSpec,
    host: &Host,
    place: &Placement,
    ve_place: &Placement,
    report: OwnedFd,
    cgroups: OwnedFd,
) -> ! {
    match prepare_and_launch(spec, host, place, ve_place, &report, &cgroups) {
        Ok(handover) => {
            sync::report(&report, &format!("ok {}", handover.init_pid));
            drop(report);
            // Off the start's critical path: the monitor's own v1 cgroups.
            if let Err(e) = place.join_self() {
                eprintln!("kennel: monitor of VE {}: {e}", spec.id);
            }
            let err = exec_monitor(spec, &handover);
            // The VE runs but nobody watches it: end it rather than leave an
            // orphan, and let the next command tidy up.
            let _ = rustix::process::pidfd_send_signal(
                handover.pidfd.as_fd(),
                rustix::process::Signal::KILL,
            );
            eprintln!(
                "kennel: cannot run the monitor {}: {err}",
                spec.monitor_exe.display()
            );
            kennel_sys::process::exit_child(1)
        }
        Err(e) => {
            sync::report(&report, &format!("err {e}"));
            kennel_sys::process::exit_child(1)
        }
    }
}

/// What the monitor program inherits.
struct Handover {
    init_pid: i32,
    pidfd: OwnedFd,
    master: OwnedFd,
    peer: OwnedFd,
    socket: OwnedFd,
}

fn prepare_and_launch(
    spec: &StartSpec,
    host: &Host,
    place: &Placement,
    ve_place: &Placement,
    report: &OwnedFd,
    cgroups: &OwnedFd,
) -> Result<Handover> {
    let deadline = Instant::now() + SETUP_TIMEOUT;
    // From here on only the report pipe and the monitor's cgroup files are
    // open.
    let keep: Vec<RawFd> = [report.as_raw_fd(), cgroups.as_raw_fd()]
        .into_iter()
        .chain(place.raw_fds())
        .chain(ve_place.raw_fds())
        .collect();
    detach_from_caller(&keep, &spec.run_dir.join("monitor.log"))?;
    tracing::debug!("monitor: detached, in its cgroup");
    let host_mnt = rustix::fs::open(
        "/proc/self/ns/mnt",
        OFlags::RDONLY | OFlags::CLOEXEC,
        Mode::empty(),
    )
    .ctx(|| "open the host's mount namespace".into())?;
    let (ours, theirs) = socketpair(
        AddressFamily::UNIX,
        SocketType::SEQPACKET,
        SocketFlags::CLOEXEC,
        None,
    )
    .ctx(|| "create the start channel".into())?;
    // The network namespace is unshared by the child itself, in parallel
    // with the host-side work below (it is the costliest namespace).
    let flags =
        (libc::CLONE_NEWUSER | libc::CLONE_NEWPID | libc::CLONE_NEWUTS | libc::CLONE_NEWIPC) as u64;
    let child = clone3(&CloneOptions {
        flags,
        pidfd: true,
        cgroup: ve_place.clone_into(),
    })
    .ctx(|| "create the VE's namespaces".into())?;
    let (pid, pidfd) = match child {
        Forked::Child => {
            drop(ours);
            crate::child::run(spec, host, ve_place, theirs)
        }
        Forked::Parent { pid, pidfd } => (
            pid,
            pidfd.ok_or_else(|| RuntimeError::Other("no pidfd".into()))?,
        ),
    };
    drop(theirs);
    tracing::debug!("monitor: cloned init {pid}");
    let kill_child = |e: RuntimeError| {
        let _ = rustix::process::pidfd_send_signal(pidfd.as_fd(), Signal::KILL);
        let _ = waitid(WaitId::PidFd(pidfd.as_fd()), WaitIdOptions::EXITED);
        e
    };
    let channels = Channels {
        sock: ours.as_fd(),
        cgroups: cgroups.as_fd(),
        deadline,
    };
    host_side(spec, pid, &channels, host_mnt.as_fd()).map_err(&kill_child)?;
    // While the VE sets itself up: the console socket, and the state file
    // under a temporary name.
    let socket = listen(spec).map_err(&kill_child)?;
    let me = rustix::process::getpid().as_raw_nonzero().get();
    // Without start times a reused PID could be taken for the VE's.
    let start_time = |p: i32| {
        procfs::start_time(p)
            .ok_or_else(|| RuntimeError::Other(format!("no start time in /proc/{p}/stat")))
    };
    let state = RunState {
        init_pid: pid,
        init_start: start_time(pid).map_err(&kill_child)?,
        monitor_pid: me,
        monitor_start: start_time(me).map_err(&kill_child)?,
        started_at: humantime::format_rfc3339_seconds(std::time::SystemTime::now()).to_string(),
        cgroup: spec.cgroup.clone(),
    };
    let pending = state
        .save_pending(&spec.run_dir)
        .ctx(|| format!("write {}", spec.run_dir.display()))
        .map_err(&kill_child)?;
    let console = wait_for_exec(&channels).map_err(&kill_child)?;
    tracing::debug!("monitor: init exec'd");
    pending
        .commit()
        .ctx(|| format!("write {}", spec.run_dir.display()))
        .map_err(&kill_child)?;
    Ok(Handover {
        init_pid: pid,
        pidfd,
        master: console.0,
        peer: console.1,
        socket,
    })
}

/// What the monitor hears the start's progress on.
struct Channels<'a> {
    /// The VE's side of the start.
    sock: BorrowedFd<'a>,
    /// `kennel start`'s note that the v1 cgroups are made.
    cgroups: BorrowedFd<'a>,
    /// When the monitor gives up (before `kennel start` does).
    deadline: Instant,
}

/// The host side of the start: id maps; then, once the child has its own
/// mount namespace, the VE's root mounted straight into it (so the VE's
/// mounts never exist in the host's namespace); then "go".
fn host_side(
    spec: &StartSpec,
    pid: i32,
    ch: &Channels<'_>,
    host_mnt: BorrowedFd<'_>,
) -> Result<()> {
    let sock = ch.sock;
    for (file, line) in [
        ("uid_map", spec.idmap.uid_line()),
        ("gid_map", spec.idmap.gid_line()),
    ] {
        let p = format!("/proc/{pid}/{file}");
        std::fs::write(&p, line).ctx(|| format!("write {p}"))?;
    }
    tracing::debug!("monitor: id maps written");
    let lower = spec.lower_mountpoint();
    let target = spec.root_mountpoint();
    for d in [&lower, &target] {
        std::fs::create_dir_all(d).ctx(|| format!("create {}", d.display()))?;
    }
    let open_ns = |ns: &str| {
        rustix::fs::open(
            format!("/proc/{pid}/ns/{ns}"),
            OFlags::RDONLY | OFlags::CLOEXEC,
            Mode::empty(),
        )
        .ctx(|| format!("open the VE's {ns} namespace"))
    };
    let userns = open_ns("user")?;
    match sync::recv_from_child(sock, left(ch.deadline))
        .ctx(|| "wait for the VE's mount namespace".into())?
    {
        FromChild::Ready => {}
        FromChild::Error(msg) => return Err(RuntimeError::Setup(msg)),
        _ => return Err(RuntimeError::Setup("the VE ended during its setup".into())),
    }
    let ve_mnt = open_ns("mnt")?;
    move_into_link_name_space(ve_mnt.as_fd(), Some(LinkNameSpaceType::Mount))
        .ctx(|| "enter the VE's mount namespace".into())?;
    let layers = VeLayers::new(&spec.root.layers_dir);
    let mounted = mount_root(
        &RootMount {
            template: &spec.root.template,
            layers: &layers,
            mode: spec.root.mode,
            lower_mountpoint: &lower,
            target: &target,
        },
        Some(userns.as_fd()),
    )
    .map_err(RuntimeError::from)
    .and_then(|()| {
        rustix::fs::open(
            &target,
            OFlags::PATH | OFlags::DIRECTORY | OFlags::CLOEXEC,
            Mode::empty(),
        )
        .ctx(|| "open the VE's root".into())
    });
    // Back home whatever happened: nothing else may run in the VE's namespace.
    move_into_link_name_space(host_mnt, Some(LinkNameSpaceType::Mount))
        .ctx(|| "return to the host's mount namespace".into())?;
    let root = mounted?;
    tracing::debug!("monitor: root mounted");
    sync::send_go(sock, root.as_fd()).ctx(|| "release the VE".into())?;
    // The VE joins its v1 cgroups late in its setup; tell it when `kennel
    // start` has made them.
    let note = sync::read_report(ch.cgroups, left(ch.deadline))
        .ctx(|| "wait for the VE's cgroups".into())?;
    if note != CGROUPS_READY {
        return Err(RuntimeError::Setup(format!("cgroups: {note}")));
    }
    sync::send_cgroups_ready(sock).ctx(|| "tell the VE its cgroups are ready".into())
}

/// Waits for the child's console and then the end-of-file that its exec
/// of init causes.
fn wait_for_exec(ch: &Channels<'_>) -> Result<(OwnedFd, OwnedFd)> {
    let mut console = None;
    loop {
        match sync::recv_from_child(ch.sock, left(ch.deadline))
            .ctx(|| "wait for the VE's setup".into())?
        {
            FromChild::Console { master, peer } => console = Some((master, peer)),
            FromChild::Error(msg) => return Err(RuntimeError::Setup(msg)),
            FromChild::Eof => break,
            FromChild::Ready => {}
        }
    }
    console.ok_or_else(|| RuntimeError::Setup("the VE's init ended before it started".into()))
}

/// The monitor must not keep the caller's terminal, session or files.
/// Standard error goes to `log` (the VE's monitor.log).
fn detach_from_caller(keep: &[RawFd], log: &std::path::Path) -> Result<()> {
    let _ = rustix::process::setsid();
    let null = rustix::fs::open("/dev/null", OFlags::RDWR | OFlags::CLOEXEC, Mode::empty())
        .ctx(|| "open /dev/null".into())?;
    let log = rustix::fs::open(
        log,
        OFlags::WRONLY | OFlags::CREATE | OFlags::APPEND | OFlags::CLOEXEC,
        Mode::from_raw_mode(0o600),
    )
    .ctx(|| format!("open {}", log.display()))?;
    for (fd, src) in [(0, &null), (1, &null), (2, &log)] {
        kennel_sys::fd::dup_onto(src.as_raw_fd(), fd)
            .ctx(|| "redirect the monitor's standard streams".into())?;
    }
    drop(null);
    drop(log);
    kennel_sys::fd::close_all_from(3, keep).ctx(|| "close inherited descriptors".into())?;
    for sig in [
        libc::SIGHUP,
        libc::SIGINT,
        libc::SIGQUIT,
        libc::SIGTERM,
        libc::SIGPIPE,
        libc::SIGTSTP,
        libc::SIGTTIN,
        libc::SIGTTOU,
    ] {
        kennel_sys::signal::ignore(sig);
    }
    rustix::process::umask(rustix::fs::Mode::from_raw_mode(0o022));
    Ok(())
}

/// The monitor's control socket (console attach), root-only.
fn listen(spec: &StartSpec) -> Result<OwnedFd> {
    use rustix::net::{bind, listen as sock_listen, socket_with, SocketAddrUnix};
    let path = spec.run_dir.join(MONITOR_SOCKET);
    let _ = std::fs::remove_file(&path);
    let s = socket_with(
        AddressFamily::UNIX,
        SocketType::STREAM,
        SocketFlags::CLOEXEC,
        None,
    )
    .ctx(|| "create the monitor socket".into())?;
    let addr = SocketAddrUnix::new(&path).ctx(|| format!("socket path {}", path.display()))?;
    bind(&s, &addr).ctx(|| format!("bind {}", path.display()))?;
    std::fs::set_permissions(&path, std::os::unix::fs::PermissionsExt::from_mode(0o600))
        .ctx(|| format!("chmod {}", path.display()))?;
    sock_listen(&s, 4).ctx(|| "listen on the monitor socket".into())?;
    Ok(s)
}

/// Becomes the `kennel-monitor` program; returns only on failure.
fn exec_monitor(spec: &StartSpec, h: &Handover) -> std::io::Error {
    let fds = [
        (h.pidfd.as_raw_fd(), MONITOR_FD_PIDFD),
        (h.master.as_raw_fd(), MONITOR_FD_CONSOLE),
        (h.peer.as_raw_fd(), MONITOR_FD_CONSOLE_PEER),
        (h.socket.as_raw_fd(), MONITOR_FD_SOCKET),
    ];
    // Move everything above the target range first so dup2 never clobbers
    // a source.
    let mut moved = Vec::new();
    for (src, _) in fds {
        match kennel_sys::fd::dup_above(src, 100) {
            Ok(d) => moved.push(d),
            Err(e) => return e,
        }
    }
    for (d, (_, target)) in moved.iter().zip(fds) {
        if let Err(e) = kennel_sys::fd::dup_onto(*d, target) {
            return e;
        }
    }
    let exe = match CString::new(spec.monitor_exe.as_os_str().as_encoded_bytes()) {
        Ok(e) => e,
        Err(_) => return std::io::Error::other("monitor path has a NUL byte"),
    };
    let mut args = vec![exe.clone(), c"--id".to_owned()];
    args.extend(CString::new(spec.id.as_str()).ok());
    args.push(c"--".to_owned());
    args.extend(
        spec.monitor_args
            .iter()
            .filter_map(|a| CString::new(a.as_str()).ok()),
    );
    let env = [c"PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin".to_owned()];
    kennel_sys::process::execve(&exe, &args, &env)
}

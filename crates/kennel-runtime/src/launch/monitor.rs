//! The monitor's part of a start, from the fork by `kennel start` until it
//! becomes the `kennel-monitor` program: clone the VE's init, write its id
//! maps, mount its root, and see its setup through to the exec of init.

use std::os::fd::{AsFd, AsRawFd, BorrowedFd, OwnedFd, RawFd};
use std::time::Instant;

use kennel_cgroup::{Host, Placement};
use kennel_storage::layers::{mount_root, RootMount, VeLayers};
use kennel_sys::clone::{CloneOptions, Forked};
use rustix::fs::{Mode, OFlags};
use rustix::process::{waitid, Signal, WaitId, WaitIdOptions};
use rustix::thread::{move_into_link_name_space, LinkNameSpaceType};

use super::handover::{detach_from_caller, exec_monitor, listen, Handover};
use super::{left, CGROUPS_READY, SETUP_TIMEOUT};
use crate::error::{Context, Result, RuntimeError};
use crate::procfs;
use crate::spec::StartSpec;
use crate::state::RunState;
use crate::sync::{self, FromChild};

/// The monitor: join its cgroups, set the VE up from the host side, then become
/// `kennel-monitor`. Never returns.
pub(super) fn run(
    spec: &StartSpec,
    host: &Host,
    place: &Placement,
    ve_place: &Placement,
    disk: Option<BorrowedFd<'_>>,
    report: OwnedFd,
    cgroups: OwnedFd,
) -> ! {
    let fds = Fds {
        report: report.as_fd(),
        cgroups: cgroups.as_fd(),
        disk,
    };
    match prepare_and_launch(spec, host, place, ve_place, fds) {
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

/// What the monitor inherits from `kennel start`.
#[derive(Clone, Copy)]
struct Fds<'a> {
    /// Where the monitor reports the start's outcome.
    report: BorrowedFd<'a>,
    /// Where `kennel start` says that the v1 cgroups are made.
    cgroups: BorrowedFd<'a>,
    /// The VE's disk, mounted detached (`None`: its files are in a
    /// directory).
    disk: Option<BorrowedFd<'a>>,
}

fn prepare_and_launch(
    spec: &StartSpec,
    host: &Host,
    place: &Placement,
    ve_place: &Placement,
    fds: Fds<'_>,
) -> Result<Handover> {
    let deadline = Instant::now() + SETUP_TIMEOUT;
    // From here on only the report pipe, the monitor's cgroup files and
    // the VE's disk are open.
    let keep: Vec<RawFd> = [fds.report.as_raw_fd(), fds.cgroups.as_raw_fd()]
        .into_iter()
        .chain(fds.disk.map(|d| d.as_raw_fd()))
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
    let (ours, theirs) = crate::sync::channel().ctx(|| "create the start channel".into())?;
    // Inherited by the VE's init; only possible out here (see there).
    procfs::lift_oom_protection().ctx(|| "reset the OOM score adjustment".into())?;
    crate::policy::rlimits::apply(spec.nofile).ctx(|| "set the VE's resource limits".into())?;
    // From the host's user and mount namespaces: see `crate::devpts`.
    let devpts = crate::devpts::new_instance(spec.devpts)?;
    // The network namespace is unshared by the child itself, in parallel
    // with the host-side work below (it is the costliest namespace).
    let flags =
        (libc::CLONE_NEWUSER | libc::CLONE_NEWPID | libc::CLONE_NEWUTS | libc::CLONE_NEWIPC) as u64;
    // Owned by the VE's own host uid: see `super::owner`.
    let child = super::owner::clone_as(
        spec.idmap.uid_base,
        &CloneOptions {
            flags,
            pidfd: true,
            cgroup: ve_place.clone_into(),
        },
    )?;
    let (pid, pidfd) = match child {
        Forked::Child => {
            drop(ours);
            crate::child::run(spec, host, ve_place, theirs)
        }
        Forked::Parent { pid, pidfd } => (
            pid,
            pidfd.ok_or_else(|| RuntimeError::Kernel("no pidfd from clone3".into()))?,
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
        cgroups: fds.cgroups,
        deadline,
    };
    let devpts_copy = devpts
        .try_clone()
        .ctx(|| "keep the VE's devpts".into())
        .map_err(&kill_child)?;
    let mounts = HostMounts {
        host_mnt: host_mnt.as_fd(),
        disk: fds.disk,
    };
    host_side(spec, pid, &channels, mounts, devpts_copy).map_err(&kill_child)?;
    // While the VE sets itself up: the console socket, and the state file
    // under a temporary name.
    let socket = listen(spec).map_err(&kill_child)?;
    let me = rustix::process::getpid().as_raw_nonzero().get();
    // Without start times a reused PID could be taken for the VE's.
    let start_time = |p: i32| {
        procfs::start_time(p)
            .ok_or_else(|| RuntimeError::Kernel(format!("no start time in /proc/{p}/stat")))
    };
    let state = RunState {
        init_pid: pid,
        init_start: start_time(pid).map_err(&kill_child)?,
        monitor_pid: me,
        monitor_start: start_time(me).map_err(&kill_child)?,
        started_at: humantime::format_rfc3339_seconds(std::time::SystemTime::now()).to_string(),
        cgroup: spec.cgroup.as_str().to_string(),
        nofile: Some(spec.nofile),
        cpuset: spec.limits.cpuset.clone(),
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
        devpts,
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

/// The mounts the host side works with.
struct HostMounts<'a> {
    /// The host's mount namespace, to return to.
    host_mnt: BorrowedFd<'a>,
    /// The VE's disk, detached, attached in the VE's namespace.
    disk: Option<BorrowedFd<'a>>,
}

/// The host side of the start: id maps; then, once the child has its own
/// mount namespace, the VE's disk attached and its root mounted straight
/// into it (so neither ever exists in the host's namespace); then "go"; then, once the
/// child has its own network namespace, the VE's links, addresses and
/// firewall (`kennel_net`), while the child mounts its /proc, /sys, /dev.
fn host_side(
    spec: &StartSpec,
    pid: i32,
    ch: &Channels<'_>,
    mounts: HostMounts<'_>,
    devpts: OwnedFd,
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
    let nodes = super::devnodes::make(&spec.features)?;
    let devices = super::devnodes::dir(&spec.run_dir);
    for d in [&lower, &target, &devices] {
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
    let net_target = kennel_net::Target {
        ve: &spec.id,
        run_dir: &spec.run_dir,
        host: &spec.host_net,
    };
    // Leftovers of an earlier run go while the VE gets going.
    let has_network = spec.network.has_links();
    if has_network {
        kennel_net::reconcile::teardown(net_target)
            .map_err(|e| RuntimeError::Setup(format!("network: {e}")))?;
    }
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
    let mounted = attach_disk(mounts.disk, &spec.root.layers_dir)
        .and_then(|()| {
            mount_root(
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
        })
        .and_then(|()| match &nodes {
            Some(n) => super::devnodes::attach(n, &spec.run_dir, &spec.features),
            None => Ok(Vec::new()),
        })
        .and_then(|nodes| {
            let root = rustix::fs::open(
                &target,
                OFlags::PATH | OFlags::DIRECTORY | OFlags::CLOEXEC,
                Mode::empty(),
            )
            .ctx(|| "open the VE's root".into())?;
            Ok((root, nodes))
        });
    // Back home whatever happened: nothing else may run in the VE's namespace.
    move_into_link_name_space(mounts.host_mnt, Some(LinkNameSpaceType::Mount))
        .ctx(|| "return to the host's mount namespace".into())?;
    let (root, nodes) = mounted?;
    tracing::debug!("monitor: root mounted");
    sync::Go {
        root,
        devpts,
        nodes,
    }
    .send(sock)
    .ctx(|| "release the VE".into())?;
    // While the VE mounts its /proc, /sys and /dev: its links.
    if has_network {
        match sync::recv_from_child(sock, left(ch.deadline))
            .ctx(|| "wait for the VE's network namespace".into())?
        {
            FromChild::NetReady => {}
            FromChild::Error(msg) => return Err(RuntimeError::Setup(msg)),
            _ => return Err(RuntimeError::Setup("the VE ended during its setup".into())),
        }
        let netns = open_ns("net")?;
        kennel_net::reconcile::start(net_target, netns.as_fd(), &spec.network)
            .map_err(|e| RuntimeError::Setup(format!("network: {e}")))?;
        tracing::debug!("monitor: network");
    }
    // The VE joins its v1 cgroups late in its setup; tell it when `kennel
    // start` has made them.
    let note = sync::read_report(ch.cgroups, left(ch.deadline))
        .ctx(|| "wait for the VE's cgroups".into())?;
    if note != CGROUPS_READY {
        return Err(RuntimeError::Setup(format!("cgroups: {note}")));
    }
    sync::send_cgroups_ready(sock).ctx(|| "tell the VE its cgroups are ready".into())
}

/// Attaches the VE's disk (detached until now) at `at` in the mount
/// namespace the monitor is in, the VE's: its overlay's upper and work
/// directories are on it. The disk is then in no namespace but the VE's,
/// and goes with it.
fn attach_disk(disk: Option<BorrowedFd<'_>>, at: &std::path::Path) -> Result<()> {
    let Some(disk) = disk else {
        return Ok(());
    };
    rustix::mount::move_mount(
        disk,
        "",
        rustix::fs::CWD,
        at,
        rustix::mount::MoveMountFlags::MOVE_MOUNT_F_EMPTY_PATH,
    )
    .ctx(|| format!("attach the VE's disk at {}", at.display()))
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
            FromChild::Ready | FromChild::NetReady => {}
        }
    }
    console.ok_or_else(|| RuntimeError::Setup("the VE's init ended before it started".into()))
}

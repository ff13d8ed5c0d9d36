//! Starting a VE, as seen from the host.
//!
//! ```text
//! kennel start ──fork──► monitor ──clone3(NEWUSER|NEWPID|NEWUTS|NEWIPC)──► VE init
//!   v1 cgroups   │         │ id maps                                     │ own mount + net ns
//!   ──"y"──────► │         │ in the VE's mount ns: its disk, idmapped +  │
//!                │         │ template, overlay root ──"go" + root fd──► │ child::* steps
//!                │         │ ──"cg" (v1 cgroups ready)────────────────► │
//!                │         │ ◄──console pty── ◄──EOF on exec──────────  │ execve(/sbin/init)
//!      ◄──"ok PID"──────── │ state.json
//!      exit 0              exec kennel-monitor (pidfd, console, socket)
//! ```
//!
//! The monitor attaches the VE's disk (mounted detached by `kennel start`)
//! and mounts the VE's root from inside the VE's own mount
//! namespace (entered with `setns` and left again at once), so the VE's
//! mounts never appear in the host's: they vanish with the VE. [`start`]
//! is `kennel start`'s side, `monitor.rs` the monitor's until it becomes
//! `kennel-monitor`, `handover.rs` what it passes to that program.

pub mod devnodes;
pub mod exhausted;
mod handover;
mod monitor;
mod owner;

use std::os::fd::{AsFd, BorrowedFd, OwnedFd};
use std::time::{Duration, Instant};

use kennel_cgroup::{Host, Part};
use kennel_sys::clone::{clone3, CloneOptions, Forked};
use rustix::pipe::{pipe_with, PipeFlags};
use rustix::process::{waitid, Signal, WaitId, WaitIdOptions};

use crate::error::{Context, Result, RuntimeError};
use crate::spec::StartSpec;
use crate::sync;

pub use handover::{
    MONITOR_FD_CONSOLE, MONITOR_FD_CONSOLE_PEER, MONITOR_FD_DEVPTS, MONITOR_FD_PIDFD,
    MONITOR_FD_SOCKET,
};
pub(crate) use owner::child_reset as owner_child_reset;

/// How long the monitor and the VE may take from fork to exec of init.
const SETUP_TIMEOUT: Duration = Duration::from_secs(30);

/// The time left until `deadline`.
fn left(deadline: Instant) -> Duration {
    deadline.saturating_duration_since(Instant::now())
}

/// A started VE.
#[derive(Debug, Clone)]
pub struct Started {
    pub init_pid: i32,
    pub monitor_pid: i32,
}

/// Starts the VE described by `spec`, whose cgroups (`cgroup`, and the
/// monitors' `monitor_cgroup`) already exist with their limits. `disk` is
/// the VE's disk, mounted detached, which the monitor attaches at
/// `spec.root.layers_dir` in the VE's mount namespace. Returns once the
/// VE's init is running. The caller must be single-threaded.
pub fn start(spec: &StartSpec, host: &Host, disk: Option<BorrowedFd<'_>>) -> Result<Started> {
    let ve_cg = spec.cgroup.cgroup(host);
    host.cgroup(&spec.monitor_cgroup).create()?;
    // The early part must exist before init is cloned (see `Part`); the
    // rest (most of the v1 hierarchies on a hybrid host) is made below
    // while the monitor and the VE get going.
    ve_cg.prepare(&spec.limits, spec.idmap.root(), Part::Early)?;
    let ve_place = ve_cg.ve_placement_part(Part::Early)?;
    let (rd, wr) = pipe_with(PipeFlags::CLOEXEC).ctx(|| "create a pipe".into())?;
    let (cg_rd, cg_wr) = pipe_with(PipeFlags::CLOEXEC).ctx(|| "create a pipe".into())?;
    let monitor_place = host.cgroup(&spec.monitor_cgroup).placement()?;
    tracing::debug!("start: forking the monitor");
    let fork = clone3(&CloneOptions {
        flags: 0,
        pidfd: true,
        cgroup: monitor_place.clone_into(),
    })
    .map_err(|e| exhausted::clone_error(e, "fork the VE's monitor", None))?;
    match fork {
        Forked::Child => {
            drop(rd);
            drop(cg_wr);
            monitor::run(spec, host, &monitor_place, &ve_place, disk, wr, cg_rd)
        }
        Forked::Parent { pid, pidfd } => {
            drop(wr);
            drop(cg_rd);
            let monitor =
                pidfd.ok_or_else(|| RuntimeError::Kernel("no pidfd from clone3".into()))?;
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
            .map_err(|_| RuntimeError::Protocol(format!("bad report from the monitor: {line}")))
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

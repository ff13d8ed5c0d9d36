//! `kennel stop`, `kill` and `restart`.

use std::os::fd::{AsFd, OwnedFd};
use std::time::{Duration, Instant};

use kennel_storage::InitKind;
use rustix::process::{pidfd_open, pidfd_send_signal, Pid, PidfdFlags, Signal};

use super::status::VeState;
use super::Kennel;
use crate::error::{io, Result, VeError};
use crate::id::VeId;

/// How long the monitor gets to tear down after init ended.
const TEARDOWN_WAIT: Duration = Duration::from_secs(15);

/// How a stop went.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum StopOutcome {
    /// Init shut down by itself within the timeout.
    Clean,
    /// The timeout passed and the VE was killed.
    Killed,
}

impl Kennel {
    /// Asks the VE's init to shut down, waits up to `timeout`, then kills.
    pub fn stop(&self, id: &VeId, timeout: Duration) -> Result<StopOutcome> {
        let (_lock, cfg) = self.lock_config(id)?;
        self.stop_locked(id, cfg.init.kind, Some(timeout))
    }

    /// Kills the VE at once (SIGKILL to init ends its whole PID namespace).
    pub fn kill(&self, id: &VeId) -> Result<()> {
        let (_lock, cfg) = self.lock_config(id)?;
        self.stop_locked(id, cfg.init.kind, None).map(drop)
    }

    /// Stop (if running) and start again.
    pub fn restart(&self, id: &VeId, timeout: Duration) -> Result<kennel_runtime::launch::Started> {
        let (_lock, cfg) = self.lock_config(id)?;
        match self.stop_locked(id, cfg.init.kind, Some(timeout)) {
            Ok(_) | Err(VeError::NotRunning(_)) => {}
            Err(e) => return Err(e),
        }
        self.start_locked(&cfg)
    }

    /// `timeout: None` kills without asking.
    pub(crate) fn stop_locked(
        &self,
        id: &VeId,
        init: InitKind,
        timeout: Option<Duration>,
    ) -> Result<StopOutcome> {
        let state = self.settle(id)?;
        // A VE between a reboot and its delayed restart is stopped for
        // good by a stop or kill.
        let cancelled = self.take_pending_restart(id);
        if state == VeState::Stopped {
            if cancelled {
                return Ok(StopOutcome::Clean);
            }
            return Err(VeError::NotRunning(id.to_string()));
        }
        let Some(run) = self.run_state(id)? else {
            return Err(VeError::NotRunning(id.to_string()));
        };
        let init_fd = open_pidfd(run.init_pid, run.init_start);
        let monitor_fd = open_pidfd(run.monitor_pid, run.monitor_start);
        let mut outcome = StopOutcome::Clean;
        if let Some(fd) = &init_fd {
            let deadline = Instant::now() + timeout.unwrap_or_default();
            let asked = match timeout {
                Some(t) if !t.is_zero() => {
                    // A failed request (init already gone, telinit broken)
                    // just means the kill comes sooner.
                    if let Err(e) = self.ask_to_shut_down(id, fd, init, deadline) {
                        tracing::warn!("VE {id}: {e}");
                    }
                    wait_exit(fd, deadline.saturating_duration_since(Instant::now()))
                }
                _ => false,
            };
            if !asked {
                outcome = StopOutcome::Killed;
                // So that the teardown tells this kill from the OOM killer's.
                let _ = std::fs::write(
                    self.paths
                        .ve_run(id)
                        .join(super::teardown::KILL_REQUESTED_FILE),
                    b"",
                );
                let _ = pidfd_send_signal(fd, Signal::KILL);
                if !wait_exit(fd, Duration::from_secs(10)) {
                    return Err(VeError::Io {
                        what: format!("stop VE {id}"),
                        source: std::io::Error::other("its init did not die 10 s after SIGKILL"),
                    });
                }
            }
        }
        match &monitor_fd {
            Some(m) if wait_exit(m, TEARDOWN_WAIT) => {}
            // No monitor (it was killed) or it hangs: tear down here.
            _ => self.cleanup_host_side(
                id,
                Some(if outcome == StopOutcome::Killed {
                    "killed by kennel"
                } else {
                    "stopped"
                }),
            )?,
        }
        // The monitor may have left a busy cgroup behind in a corner case.
        self.settle(id)?;
        Ok(outcome)
    }

    /// Sends the shutdown request each init understands.
    fn ask_to_shut_down(
        &self,
        id: &VeId,
        init_fd: &OwnedFd,
        kind: InitKind,
        deadline: Instant,
    ) -> Result<()> {
        let sig = match kind {
            // systemd: SIGRTMIN+3 = poweroff (systemd.io/CONTAINER_INTERFACE).
            InitKind::Systemd => kennel_sys::signal::rtmin_plus(3),
            // busybox init: SIGUSR2 = poweroff.
            InitKind::Busybox => libc::SIGUSR2,
            // sysvinit has no poweroff signal: run `telinit 0` inside.
            InitKind::Sysvinit => return self.telinit_zero(id, deadline),
            InitKind::Unknown => libc::SIGTERM,
        };
        // By number: real-time signals have no rustix name.
        kennel_sys::process::pidfd_send_signal(init_fd.as_fd(), sig)
            .map_err(io(format!("signal VE {id}'s init")))
    }

    /// Runs the VE's own `/sbin/telinit 0` through `kennel exec`, with no
    /// terminal and no stream of the caller's (it is the VE's program), for
    /// no longer than until `deadline`.
    fn telinit_zero(&self, id: &VeId, deadline: Instant) -> Result<()> {
        use std::process::{Command, Stdio};
        let mut child = Command::new(&self.exe.kennel)
            .args(
                self.paths
                    .custom_root
                    .iter()
                    .flat_map(|r| ["--root".into(), r.clone().into_os_string()]),
            )
            .args(["exec", "-T", id.as_str(), "--", "/sbin/telinit", "0"])
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .map_err(io("run telinit 0"))?;
        while Instant::now() < deadline {
            if child
                .try_wait()
                .map_err(io("wait for telinit 0"))?
                .is_some()
            {
                return Ok(());
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        let _ = child.kill();
        let _ = child.wait();
        Ok(())
    }
}

/// A pidfd for `pid` if it is still the process that started at `start`.
fn open_pidfd(pid: i32, start: u64) -> Option<OwnedFd> {
    let fd = pidfd_open(Pid::from_raw(pid)?, PidfdFlags::empty()).ok()?;
    kennel_runtime::procfs::is_same_process(pid, start).then_some(fd)
}

/// Waits until the process behind `fd` has exited; false on timeout.
fn wait_exit(fd: &OwnedFd, timeout: Duration) -> bool {
    kennel_sys::fd::wait_readable(fd.as_fd(), timeout).unwrap_or(false)
}

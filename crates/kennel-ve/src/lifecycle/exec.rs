//! `kennel exec`, `kennel enter`, `kennel console`, and the commands Kennel
//! runs in a VE for the operator (`kennel set --userpasswd`).

use kennel_cgroup::CgroupRecord;
use kennel_runtime::features::Features;
use kennel_runtime::join::{Cwd, JoinSpec, Outcome, Stdio};
use kennel_runtime::state::SECCOMP_FILE;

use super::status::VeState;
use super::Kennel;
use crate::error::{Result, VeError};
use crate::id::VeId;

/// A command to run in a VE.
#[derive(Debug, Clone)]
pub struct ExecRequest {
    pub argv: Vec<String>,
    /// Extra `KEY=value` on top of the defaults.
    pub env: Vec<String>,
    pub cwd: Cwd,
    pub stdio: Stdio,
    /// `TERM` to pass with a terminal (the user's terminal type).
    pub term: Option<String>,
}

const PATH: &str = "PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin";

impl Kennel {
    /// Runs a command in VE `id`; returns how it ended.
    pub fn exec(&self, id: &VeId, req: &ExecRequest) -> Result<Outcome> {
        self.repair_freeze_unlocked(id);
        // A VE that does not exist is reported as such, not as stopped.
        self.require_ve(id)?;
        self.check_expected_uuid(id)?;
        // Whether its init still runs (with or without its monitor) is
        // checked once, where `join::exec` pins it.
        let run = self
            .run_state(id)?
            .ok_or_else(|| VeError::NotRunning(id.to_string()))?;
        let seccomp = self.ve_seccomp(id)?;
        let mut env = vec![
            PATH.to_string(),
            "HOME=/root".into(),
            "container=kennel".into(),
        ];
        if req.stdio.is_terminal() {
            env.push(format!("TERM={}", req.term.as_deref().unwrap_or("xterm")));
        }
        for e in &req.env {
            let key = e.split('=').next().unwrap_or_default();
            env.retain(|x| x.split('=').next() != Some(key));
            env.push(e.clone());
        }
        let host = self.cgroups()?;
        let spec = JoinSpec {
            init_pid: run.init_pid,
            init_start: run.init_start,
            // The run state holds the cgroup's record as the start made it.
            cgroup: CgroupRecord::new(&run.cgroup)?.cgroup(host),
            seccomp: &seccomp,
            argv: req.argv.clone(),
            env,
            cwd: req.cwd.clone(),
            stdio: req.stdio.clone(),
            nofile: run
                .nofile
                .unwrap_or(kennel_runtime::policy::rlimits::DEFAULT_NOFILE),
        };
        match kennel_runtime::join::exec(&spec) {
            Err(kennel_runtime::RuntimeError::NotRunning) => {
                Err(VeError::NotRunning(id.to_string()))
            }
            other => Ok(other?),
        }
    }

    /// The seccomp program VE `id` runs under: the one its start wrote, or
    /// (for a VE started by a Kennel that wrote none, before features
    /// existed) the default one. Never compiled from the saved features:
    /// `kennel set --features` changes those before the VE restarts.
    pub(crate) fn ve_seccomp(&self, id: &VeId) -> Result<Vec<kennel_sys::seccomp::SockFilter>> {
        let path = self.paths.ve_run(id).join(SECCOMP_FILE);
        match std::fs::read(&path) {
            Ok(b) => kennel_sys::seccomp::parse(&b)
                .map_err(crate::error::io("read the VE's seccomp program")),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                Ok(kennel_runtime::policy::seccomp::compile(
                    kennel_runtime::policy::seccomp::FilterOptions::for_features(
                        &Features::default(),
                    ),
                )?)
            }
            Err(e) => Err(crate::error::io(format!("read {}", path.display()))(e)),
        }
    }

    /// The login shell to use for `kennel enter`: the VE root's shell from
    /// its /etc/passwd is not trusted blindly; bash if present, else sh.
    pub fn enter_argv(&self) -> Vec<String> {
        vec![
            "/bin/sh".into(),
            "-c".into(),
            "if [ -x /bin/bash ]; then exec /bin/bash -l; else exec /bin/sh -l; fi".into(),
        ]
    }

    /// Attaches the caller's terminal to VE `id`'s console.
    pub fn console(
        &self,
        id: &VeId,
        escape: u8,
        on_connect: &mut dyn FnMut(),
    ) -> Result<kennel_runtime::pty::RelayEnd> {
        self.config(id)?;
        self.check_expected_uuid(id)?;
        let (state, _) = self.state_of(id)?;
        match state {
            VeState::Running => {}
            VeState::RunningWithoutMonitor => return Err(VeError::MonitorLost(id.to_string())),
            _ => return Err(VeError::NotRunning(id.to_string())),
        }
        Ok(kennel_runtime::console::attach(
            &self.paths.ve_run(id),
            escape,
            on_connect,
        )?)
    }
}

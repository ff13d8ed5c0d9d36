//! `kennel start`.

use std::fs;
use std::os::fd::{AsFd, OwnedFd};
use std::path::Path;
use std::time::Duration;

use kennel_cgroup::CgroupRecord;
use kennel_runtime::spec::{IdMap, InitSpec, RootSpec, StartSpec};
use kennel_runtime::state::SECCOMP_FILE;
use kennel_storage::template::Store;

use super::status::VeState;
use super::Kennel;
use crate::config::VeConfig;
use crate::error::{io, Result, VeError};
use crate::id::VeId;

/// The environment of every VE's init (systemd's container interface).
fn init_env(cfg: &VeConfig) -> Vec<String> {
    vec![
        "container=kennel".into(),
        format!("container_uuid={}", cfg.uuid),
        "PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin".into(),
        "TERM=linux".into(),
    ]
}

/// Kernel features every start needs, checked up front so that a host
/// without them gets one clear line (exit status 10) instead of a failed
/// start half-way. Once per process: a batch worker starts hundreds.
fn preflight() -> Result<()> {
    static MISSING: std::sync::OnceLock<Option<String>> = std::sync::OnceLock::new();
    match MISSING.get_or_init(missing_feature) {
        None => Ok(()),
        Some(what) => Err(VeError::HostUnsupported(what.clone())),
    }
}

/// What [`preflight`] finds missing, if anything.
fn missing_feature() -> Option<String> {
    let userns = fs::read_to_string("/proc/sys/user/max_user_namespaces")
        .ok()
        .and_then(|s| s.trim().parse::<u64>().ok());
    if userns == Some(0) {
        return Some(
            "user namespaces are disabled on this host: set `sysctl user.max_user_namespaces=100000` (every VE runs in its own)".into(),
        );
    }
    // Also loads the overlay module if it is one.
    if let Err(e) = rustix::mount::fsopen("overlay", rustix::mount::FsOpenFlags::FSOPEN_CLOEXEC) {
        if e == rustix::io::Errno::NODEV {
            return Some(
                "overlayfs is not available in this kernel: load it with `modprobe overlay` (VE roots are overlay mounts)".into(),
            );
        }
    }
    None
}

/// The device of the filesystem a VE's layer is on: its disk's (`disk`,
/// detached) or the directory's.
fn layers_dev(disk: Option<&OwnedFd>, dir: &Path) -> Result<u64> {
    match disk {
        Some(fd) => rustix::fs::fstat(fd)
            .map(|st| st.st_dev)
            .map_err(|e| io(format!("stat the disk of {}", dir.display()))(e.into())),
        None => dev_of(dir),
    }
}

fn dev_of(p: &Path) -> Result<u64> {
    use std::os::unix::fs::MetadataExt;
    fs::metadata(p)
        .map(|m| m.dev())
        .map_err(io(format!("stat {}", p.display())))
}

impl Kennel {
    /// Starts VE `id` and returns once its init runs.
    pub fn start(&self, id: &VeId) -> Result<kennel_runtime::launch::Started> {
        let (_lock, cfg) = self.lock_config(id)?;
        self.start_locked(&cfg)
    }

    /// Starts a VE whose lock the caller holds.
    pub(crate) fn start_locked(&self, cfg: &VeConfig) -> Result<kennel_runtime::launch::Started> {
        let id = &cfg.id;
        match self.settle(id)? {
            VeState::Stopped => {}
            VeState::Running | VeState::RunningWithoutMonitor => {
                return Err(VeError::AlreadyRunning(id.to_string()))
            }
            VeState::Stopping => return Err(VeError::Busy(id.to_string())),
        }
        preflight()?;
        // This start supersedes a restart a rebooted VE waits for, and a
        // kill marker a stop left behind would misname its next ending.
        self.take_pending_restart(id);
        let _ = fs::remove_file(
            self.paths
                .ve_run(id)
                .join(super::teardown::KILL_REQUESTED_FILE),
        );
        if !self.exe.monitor.is_file() {
            return Err(VeError::HostUnsupported(format!(
                "the monitor program {} is missing: install kennel-monitor next to kennel",
                self.exe.monitor.display()
            )));
        }
        tracing::debug!("start: VE {id} is stopped");
        // Before anything is made: see `super::pools`.
        self.check_pid_room(id, cfg)?;
        let template = Store::new(self.paths.templates()).get(&cfg.template)?;
        let host = self.cgroups()?;
        let run_dir = self.paths.ve_run(id);
        fs::create_dir_all(&run_dir).map_err(io(format!("create {}", run_dir.display())))?;
        // Recorded before anything is made: whatever happens next, the
        // teardown finds this cgroup (not one below a `cgroup_parent`
        // changed meanwhile).
        let cg_record = self.new_ve_cgroup(id)?;
        cg_record.save(&run_dir)?;
        let cg = cg_record.cgroup(host);
        let resources = self.resources_of(cfg);
        if let Err(e) = self.take_ptys(id, u64::from(resources.numpty())) {
            // Nothing was made.
            let _ = CgroupRecord::remove(&run_dir);
            return Err(e);
        }
        let fail = |e: VeError| -> VeError {
            // The start killed its monitor, and the VE's setup dies with it;
            // anything that still got into the cgroups goes too.
            let _ = cg.kill_all();
            if cg.remove(Duration::from_secs(2)).is_ok() {
                let _ = CgroupRecord::remove(&run_dir);
            }
            let _ = self.teardown_network(id);
            let _ = self.unmount_disk(id);
            self.release_ptys(id);
            super::teardown::clear_run_files(&run_dir);
            match e {
                VeError::Runtime(kennel_runtime::RuntimeError::Setup(reason)) => {
                    VeError::StartFailed {
                        id: id.to_string(),
                        reason,
                    }
                }
                other => other,
            }
        };
        let prepared = (|| -> Result<(StartSpec, Option<OwnedFd>)> {
            let disk = self.mount_disk(cfg)?;
            let layers_dir = self.layers_dir(cfg);
            let io_files = [
                (
                    layers_dev(disk.as_ref(), &layers_dir)?,
                    layers_dir.as_path(),
                ),
                (dev_of(&template.rootfs)?, template.rootfs.as_path()),
            ];
            let seccomp = kennel_runtime::policy::seccomp::cached(
                &self.paths.run.join("seccomp"),
                kennel_runtime::policy::seccomp::FilterOptions::for_features(&cfg.features),
            )?;
            tracing::debug!("start: seccomp compiled");
            // For `kennel exec`; rewritten only when the policy changed.
            let sp = run_dir.join(SECCOMP_FILE);
            let bytes = kennel_runtime::policy::seccomp::to_bytes(&seccomp);
            if fs::read(&sp).ok().as_deref() != Some(bytes.as_slice()) {
                fs::write(&sp, bytes).map_err(io(format!("write {}", sp.display())))?;
            }
            let spec = StartSpec {
                id: id.to_string(),
                hostname: cfg.hostname.clone(),
                idmap: IdMap {
                    uid_base: cfg.idmap.uid_base,
                    gid_base: cfg.idmap.gid_base,
                    size: cfg.idmap.size,
                },
                root: RootSpec {
                    template: template.rootfs.clone(),
                    layers_dir: layers_dir.clone(),
                    mode: cfg.storage.layer,
                },
                init: InitSpec {
                    path: cfg.init.path.clone(),
                    args: Vec::new(),
                    env: init_env(cfg),
                },
                cgroup: cg_record.clone(),
                limits: kennel_cgroup::Limits {
                    io: resources.io_limits(&io_files)?,
                    cpuset: self.cpuset_for(id, &resources),
                    ..resources.limits()
                },
                monitor_cgroup: self.monitor_cgroup(),
                run_dir: run_dir.clone(),
                seccomp,
                monitor_exe: self.exe.monitor.clone(),
                monitor_args: self.teardown_command(id),
                network: cfg.network.clone(),
                host_net: self.host.network.clone(),
                features: cfg.features.clone(),
                devpts: kennel_runtime::devpts::DevptsOptions {
                    gid: cfg.idmap.gid_base + kennel_runtime::devpts::TTY_GID,
                    max: resources.numpty(),
                },
                nofile: resources
                    .nofile
                    .unwrap_or(kennel_runtime::policy::rlimits::DEFAULT_NOFILE),
                lxcfs: self.lxcfs_for_start(id),
            };
            Ok((spec, disk))
        })();
        let (spec, disk) = prepared.map_err(fail)?;
        self.apply_envelope();
        kennel_runtime::launch::start(&spec, host, disk.as_ref().map(AsFd::as_fd))
            .map_err(|e| fail(e.into()))
    }

    /// Where lxcfs serves, for this start; a host that expects it but
    /// where it is down gets a warning, and the VE starts with the
    /// kernel's own /proc (`kennel check` says so too).
    fn lxcfs_for_start(&self, id: &VeId) -> Option<std::path::PathBuf> {
        let dir = self.host.lxcfs_dir()?;
        match kennel_runtime::lxcfs::probe(&dir) {
            Ok(()) => Some(dir),
            Err(why) => {
                // Once per process: a batch worker starts hundreds.
                static WARNED: std::sync::atomic::AtomicBool =
                    std::sync::atomic::AtomicBool::new(false);
                if WARNED.swap(true, std::sync::atomic::Ordering::Relaxed) {
                    tracing::debug!("VE {id} sees the host's /proc values: {why}");
                } else {
                    tracing::warn!("VE {id} sees the host's /proc values: {why} (start lxcfs)");
                }
                None
            }
        }
    }

    /// The command the monitor runs when the VE's init ends.
    fn teardown_command(&self, id: &VeId) -> Vec<String> {
        let mut v = vec![self.exe.kennel.to_string_lossy().into_owned()];
        if let Some(r) = &self.paths.custom_root {
            v.push("--root".into());
            v.push(r.to_string_lossy().into_owned());
        }
        v.push("__ve-exited".into());
        v.push(id.to_string());
        v
    }
}

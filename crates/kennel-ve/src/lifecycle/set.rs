//! `kennel set`: changes a VE's settings, saved, and applied at once to a
//! running VE where that can be done live (network, hostname and the VE's
//! files, the pty limit, a user's password); features apply from the
//! next start; the boot settings at the host's next boot or shutdown.

use std::net::IpAddr;

use ipnet::IpNet;
use kennel_net::model::{Forward, Netif, RateLimit};
use kennel_runtime::features::Features;
use kennel_runtime::join::{Cwd, Stdio};

use super::exec::ExecRequest;
use super::status::VeState;
use super::Kennel;
use crate::config::{validate_hostname, VeConfig};
use crate::error::{Result, VeError};
use crate::id::VeId;

/// What `kennel set` changes; `None`/empty leaves a setting as it is.
#[derive(Debug, Clone, Default)]
pub struct SetRequest {
    pub hostname: Option<String>,
    pub ip_add: Vec<IpNet>,
    /// Addresses to remove, or `all`.
    pub ip_del: Vec<String>,
    /// Interfaces to add or replace (by name), and whether each one's MAC
    /// was given: a replaced interface keeps its MAC unless one is.
    pub netif_add: Vec<(Netif, bool)>,
    pub netif_del: Vec<String>,
    pub rate: Option<RateLimit>,
    pub nameservers: Option<Vec<IpAddr>>,
    pub searchdomains: Option<Vec<String>>,
    /// `Some(None)` turns NAT off.
    pub nat_via: Option<Option<String>>,
    pub forward_add: Vec<Forward>,
    pub forward_del: Vec<Forward>,
    /// Resources given (live; the rest stays as it is).
    pub resources: crate::resources::Resources,
    /// The VE's opt-in features (from its next start).
    pub features: Option<Features>,
    /// A password to set with the VE's own `chpasswd` (first of all).
    pub userpasswd: Option<UserPassword>,
    /// The disk's new size: grown live, shrunk while stopped.
    pub disk: Option<crate::units::Size>,
    /// Inodes are fixed when a disk is made: only the same count passes.
    pub disk_inodes: Option<u64>,
    /// Started at the host's boot (`kennel boot`) or not.
    pub onboot: Option<bool>,
    /// The VE's boot order; `Some(None)` removes it.
    pub boot_order: Option<Option<u32>>,
}

/// A user and the password to give it. Never printed: its `Debug` hides
/// the password.
#[derive(Clone, Default)]
pub struct UserPassword {
    pub user: String,
    pub password: String,
}

impl std::fmt::Debug for UserPassword {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "UserPassword {{ user: {:?}, password: <hidden> }}",
            self.user
        )
    }
}

impl UserPassword {
    /// Checks what `chpasswd` could misread: a user name must be a plain
    /// name, the password one line.
    pub fn new(user: &str, password: &str) -> Result<Self> {
        let user_ok = !user.is_empty()
            && user.len() <= 32
            && user
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || b"._-".contains(&b))
            && !user.starts_with('-');
        if !user_ok {
            return Err(VeError::BadInput(format!(
                "invalid user name '{}' for --userpasswd: use letters, digits, '.', '_' and '-'",
                user.escape_default()
            )));
        }
        if password.is_empty() || password.contains(['\n', '\r', '\0']) {
            return Err(VeError::BadInput(
                "invalid password for --userpasswd: it must be one non-empty line".into(),
            ));
        }
        Ok(UserPassword {
            user: user.into(),
            password: password.into(),
        })
    }
}

impl SetRequest {
    pub fn is_empty(&self) -> bool {
        self.hostname.is_none()
            && self.ip_add.is_empty()
            && self.ip_del.is_empty()
            && self.netif_add.is_empty()
            && self.netif_del.is_empty()
            && self.rate.is_none()
            && self.nameservers.is_none()
            && self.searchdomains.is_none()
            && self.nat_via.is_none()
            && self.forward_add.is_empty()
            && self.forward_del.is_empty()
            && self.resources == crate::resources::Resources::default()
            && self.features.is_none()
            && self.userpasswd.is_none()
            && self.disk.is_none()
            && self.disk_inodes.is_none()
            && self.onboot.is_none()
            && self.boot_order.is_none()
    }

    /// `cfg` with the request applied (not yet checked against others).
    fn apply_to(&self, cfg: &VeConfig) -> Result<VeConfig> {
        let mut c = cfg.clone();
        let n = &mut c.network;
        if let Some(h) = &self.hostname {
            validate_hostname(h)?;
            c.hostname = h.clone();
        }
        for d in &self.ip_del {
            if d == "all" {
                n.ips.clear();
                continue;
            }
            let addr = kennel_net::model::parse_ve_address(d)?.addr();
            let before = n.ips.len();
            n.ips.retain(|i| i.addr() != addr);
            if n.ips.len() == before {
                return Err(VeError::BadInput(format!(
                    "VE {} has no routed address {addr} (see `kennel config {}`)",
                    cfg.id, cfg.id
                )));
            }
        }
        for a in &self.ip_add {
            n.ips.retain(|i| i.addr() != a.addr());
            n.ips.push(*a);
        }
        for d in &self.netif_del {
            let before = n.netifs.len();
            n.netifs.retain(|i| &i.name != d);
            if n.netifs.len() == before {
                return Err(VeError::BadInput(format!(
                    "VE {} has no bridged interface {d}",
                    cfg.id
                )));
            }
        }
        for (a, mac_given) in &self.netif_add {
            let mut a = a.clone();
            if let Some(existing) = n.netifs.iter_mut().find(|i| i.name == a.name) {
                if !mac_given {
                    a.mac = existing.mac;
                }
                *existing = a;
            } else {
                n.netifs.push(a);
            }
        }
        if let Some(r) = self.rate {
            n.rate = r;
        }
        if let Some(ns) = &self.nameservers {
            n.nameservers = ns.clone();
        }
        if let Some(sd) = &self.searchdomains {
            n.searchdomains = sd.clone();
        }
        if let Some(nat) = &self.nat_via {
            n.nat_via = nat.clone();
        }
        for f in &self.forward_del {
            let before = n.forwards.len();
            n.forwards.retain(|g| {
                !(g.proto == f.proto && g.host_port == f.host_port && g.host_addr == f.host_addr)
            });
            if n.forwards.len() == before {
                return Err(VeError::BadInput(format!(
                    "VE {} has no port forward {f}",
                    cfg.id
                )));
            }
        }
        for f in &self.forward_add {
            n.forwards.retain(|g| {
                !(g.proto == f.proto && g.host_port == f.host_port && g.host_addr == f.host_addr)
            });
            n.forwards.push(*f);
        }
        n.validate()?;
        c.resources = self.resources.over(&c.resources);
        if let Some(f) = &self.features {
            c.features = f.clone();
        }
        c.resources.validate()?;
        if let Some(on) = self.onboot {
            c.boot.onboot = on;
        }
        if let Some(order) = self.boot_order {
            c.boot.order = order;
        }
        if self.disk.is_some() || self.disk_inodes.is_some() {
            if c.storage.backend != crate::config::Backend::Image {
                return Err(VeError::BadInput(format!(
                    "VE {} keeps its files in a directory (storage backend `dir`), which has no disk size",
                    cfg.id
                )));
            }
            if let Some(d) = self.disk {
                kennel_storage::volume::DiskSize {
                    bytes: d.bytes(),
                    inodes: c.storage.disk_inodes.unwrap_or(1024),
                }
                .validate()?;
                c.storage.disk = Some(d);
            }
            if let Some(n) = self.disk_inodes {
                if Some(n) != c.storage.disk_inodes {
                    return Err(VeError::BadInput(format!(
                        "VE {}'s inodes are fixed when its disk is made ({}); they grow with --disk in proportion",
                        cfg.id,
                        c.storage.disk_inodes.map_or("unknown".into(), |n| n.to_string())
                    )));
                }
            }
        }
        Ok(c)
    }
}

impl Kennel {
    /// `kennel set`: checks, applies to the running VE (if it runs), saves.
    /// Returns the saved configuration and notes for the operator (files
    /// in the VE that were left alone, what waits for the next start).
    ///
    /// Every check comes before the first effect, and the effects that can
    /// be undone come first: a refused change leaves `ve.conf` and the VE
    /// as they were. A password, once set, stays.
    pub fn set(&self, id: &VeId, req: &SetRequest) -> Result<(VeConfig, Vec<String>)> {
        if req.is_empty() {
            return Err(VeError::BadInput(
                "nothing to set: give at least one option (see `kennel set --help`)".into(),
            ));
        }
        let (_lock, cfg) = self.lock_config(id)?;
        let new = req.apply_to(&cfg)?;
        let running = match self.settle(id)? {
            VeState::Stopped => false,
            VeState::Running | VeState::RunningWithoutMonitor => true,
            VeState::Stopping => return Err(VeError::Busy(id.to_string())),
        };
        if req.userpasswd.is_some() && !running {
            return Err(VeError::NotRunning(id.to_string()));
        }
        if new.network != cfg.network {
            let _host = self.lock_host()?;
            self.check_network(id, &new.network, &self.claims()?)?;
        }
        let mut notes = Vec::new();
        let ptys =
            if running && self.resources_of(&new).numpty() != self.resources_of(&cfg).numpty() {
                self.change_ptys_live(id, &cfg, &new, &mut notes)?
            } else {
                None
            };
        let limits = if running {
            match self.change_limits_live(id, &cfg, &new, &mut notes) {
                Ok(j) => j,
                Err(e) => {
                    if let Some(change) = ptys {
                        Self::undo_ptys(change);
                    }
                    return Err(e);
                }
            }
        } else {
            None
        };
        let applied = (|| {
            if new.storage.disk != cfg.storage.disk {
                self.change_disk(&cfg, &new, running, &mut notes)?;
            }
            if let Some(up) = &req.userpasswd {
                self.set_password(id, up)?;
            }
            self.save_and_apply_network(id, &cfg, &new, running)
        })();
        if let Err(e) = applied {
            if let Some(journal) = limits {
                journal.undo();
            }
            if let Some(change) = ptys {
                Self::undo_ptys(change);
            }
            return Err(e);
        }
        if running {
            // The rest is saved and applied: the VE's own files are the
            // VE's business, and their failure a note, not an error.
            if new.hostname != cfg.hostname || new.network != cfg.network {
                match self.apply_files_live(&cfg, &new) {
                    Ok(skipped) => notes.extend(skipped),
                    Err(e) => notes.push(format!(
                        "VE {id}'s hostname and files were not updated inside it (saved for its next start): {e}"
                    )),
                }
            }
            if new.features != cfg.features {
                notes.push(format!(
                    "features {} take effect at VE {id}'s next start (kennel restart {id})",
                    new.features.to_list()
                ));
            }
        }
        Ok((new, notes))
    }

    /// Grows a VE's disk (live if it runs) or shrinks it (stopped only).
    fn change_disk(
        &self,
        old: &VeConfig,
        new: &VeConfig,
        running: bool,
        notes: &mut Vec<String>,
    ) -> Result<()> {
        let id = &old.id;
        let vol = self.require_volume(old, "disk size")?;
        self.require_pool()?;
        let want = new.storage.disk.map_or(0, |d| d.bytes());
        let have = vol.size()?;
        if want > have {
            let grown = vol.grow(want, running)?;
            if running && grown == kennel_storage::volume::Grown::AtNextStart {
                notes.push(format!(
                    "VE {id}'s disk grows at its next start: this host's kernel refuses to grow a mounted filesystem (Kennel lacks CAP_SYS_RESOURCE)"
                ));
            }
        } else if want < have {
            if running {
                return Err(VeError::Running(id.to_string()));
            }
            vol.shrink(want)?;
        }
        Ok(())
    }

    /// The new limits of a running VE, written at once (all or none: see
    /// `kennel_cgroup::Journal`). Disk limits and `nofile` wait for its
    /// next start (a note says so).
    fn change_limits_live(
        &self,
        id: &VeId,
        old: &VeConfig,
        new: &VeConfig,
        notes: &mut Vec<String>,
    ) -> Result<Option<kennel_cgroup::Journal>> {
        let (was, will) = (self.resources_of(old), self.resources_of(new));
        if (was.io_limit, was.iops_limit, was.io_weight, was.nofile)
            != (will.io_limit, will.iops_limit, will.io_weight, will.nofile)
        {
            notes.push(format!(
                "disk limits and nofile take effect at VE {id}'s next start (kennel restart {id})"
            ));
        }
        // The CPUs its start picked stay unless cpus or cpumask change.
        let run = self.run_state(id)?;
        let current = run.as_ref().and_then(|r| r.cpuset.clone());
        let cpuset = if (was.cpus, &was.cpumask) == (will.cpus, &will.cpumask) {
            current.clone()
        } else {
            self.cpuset_for(id, &will)
        };
        let limits = kennel_cgroup::Limits {
            cpuset: cpuset.clone(),
            ..will.limits()
        };
        let before = kennel_cgroup::Limits {
            cpuset: current.clone(),
            ..was.limits()
        };
        if limits == before {
            return Ok(None);
        }
        let cg = self.ve_cgroup(id)?;
        let journal = cg
            .cgroup(self.cgroups()?)
            .change_limits(&limits)
            .map_err(|e| VeError::BadInput(format!("VE {id}: {e}; its limits are as they were")))?;
        if let (Some(mut run), true) = (run, cpuset != current) {
            // For the next pick of another VE's CPUs.
            run.cpuset = cpuset;
            let dir = self.paths.ve_run(id);
            if let Err(e) = run.save_pending(&dir).and_then(|p| p.commit()) {
                journal.undo();
                return Err(crate::error::io(format!("update the run state of VE {id}"))(e));
            }
        }
        Ok(Some(journal))
    }

    /// The network change and the save, under the host lock: no other VE
    /// may take these addresses meanwhile.
    fn save_and_apply_network(
        &self,
        id: &VeId,
        old: &VeConfig,
        new: &VeConfig,
        running: bool,
    ) -> Result<()> {
        let _host = self.lock_host()?;
        let claims = self.claims()?;
        self.check_network(id, &new.network, &claims)?;
        // Claimed before the configuration holds them, released after it
        // no longer does (see `crate::claims`).
        let added = self.claim_network(&claims, old, new)?;
        let saved = (|| {
            if running && new.network != old.network {
                self.apply_network_live(old, new)?;
            }
            new.save(&self.paths.ve_config(id))
        })();
        match saved {
            Ok(()) => self.release_network(&claims, old, new),
            Err(_) => {
                if let Err(e) = claims.release(id, &added) {
                    tracing::warn!("VE {id}: {e}");
                }
            }
        }
        saved
    }

    /// The new pty limit of a running VE, through the devpts mount its
    /// monitor holds. The reserve's ledger keeps the larger of the old and
    /// the new limit until the VE's next start: a lower limit stops new
    /// ptys, but those the VE holds stay open (and undoing the change
    /// always fits). Without a monitor, a note: the limit and the ledger
    /// change at the next start.
    fn change_ptys_live(
        &self,
        id: &VeId,
        old: &VeConfig,
        new: &VeConfig,
        notes: &mut Vec<String>,
    ) -> Result<Option<PtyChange>> {
        let (state, run) = self.state_of(id)?;
        let run = match (state, run) {
            (VeState::Running, Some(run)) => run,
            _ => {
                notes.push(format!(
                    "VE {id}'s monitor is gone: its pty limit changes at its next start"
                ));
                return Ok(None);
            }
        };
        let change = PtyChange {
            old: self.resources_of(old).numpty(),
            new: self.resources_of(new).numpty(),
            gid: new.idmap.gid_base + kennel_runtime::devpts::TTY_GID,
            monitor: (run.monitor_pid, run.monitor_start),
        };
        self.take_ptys(id, u64::from(change.old.max(change.new)))?;
        if let Err(e) = change.apply(change.new) {
            let _ = self.take_ptys(id, u64::from(change.old));
            return Err(e.into());
        }
        Ok(Some(change))
    }

    /// Puts the old pty limit back, live (best effort: the `set` is
    /// failing for another reason). The ledger keeps the larger limit: the
    /// VE may have opened ptys up to it meanwhile.
    fn undo_ptys(change: PtyChange) {
        let _ = change.apply(change.old);
    }

    /// Sets a password with the VE's own `chpasswd`, fed on its standard
    /// input: the password is in no command line, environment or log, and
    /// the VE's files are changed by the VE's own tool.
    fn set_password(&self, id: &VeId, up: &UserPassword) -> Result<()> {
        let input = format!("{}:{}\n", up.user, up.password).into_bytes();
        let out = self.exec(
            id,
            &ExecRequest {
                argv: vec!["chpasswd".into()],
                env: Vec::new(),
                cwd: Cwd::Preferred("/".into()),
                stdio: Stdio::Capture { input },
                term: None,
            },
        );
        let out = match out {
            Err(VeError::Runtime(kennel_runtime::RuntimeError::CannotRun {
                why: kennel_runtime::join::NotRun::NotFound,
                ..
            })) => {
                return Err(VeError::BadInput(format!(
                    "VE {id} has no chpasswd (install its passwd package, or set the password inside the VE)"
                )))
            }
            other => other?,
        };
        if out.status != 0 {
            let said = String::from_utf8_lossy(&out.output);
            let said: String = said
                .split_whitespace()
                .collect::<Vec<_>>()
                .join(" ")
                .chars()
                .filter(|c| !c.is_control())
                .take(200)
                .collect();
            return Err(VeError::BadInput(format!(
                "chpasswd in VE {id} failed (exit status {}) for user {}: {said}",
                out.status, up.user
            )));
        }
        Ok(())
    }
}

/// A running VE's pty limit being changed by `kennel set`.
#[derive(Debug, Clone, Copy)]
struct PtyChange {
    old: u32,
    new: u32,
    /// The host gid of the VE's `tty` group (the instance's `gid=`).
    gid: u32,
    /// The VE's monitor, which holds its devpts: PID and start time.
    monitor: (i32, u64),
}

impl PtyChange {
    fn apply(&self, max: u32) -> kennel_runtime::Result<()> {
        let opts = kennel_runtime::devpts::DevptsOptions { gid: self.gid, max };
        kennel_runtime::live::set_numpty(self.monitor.0, self.monitor.1, opts)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn user_names_and_passwords_chpasswd_cannot_misread() {
        assert!(UserPassword::new("root", "s3cret: with spaces").is_ok());
        assert!(UserPassword::new("www-data.2_x", "p").is_ok());
        for bad in ["", "-root", "ro ot", "root:x", "a/b", &"u".repeat(33)] {
            assert!(UserPassword::new(bad, "p").is_err(), "{bad:?}");
        }
        for bad in ["", "two\nlines", "cr\r", "nul\0"] {
            assert!(UserPassword::new("root", bad).is_err(), "{bad:?}");
        }
    }

    #[test]
    fn a_password_never_shows_in_debug_output() {
        let up = UserPassword::new("root", "hunter2").expect("valid");
        assert!(!format!("{up:?}").contains("hunter2"));
    }

    #[test]
    fn boot_settings_are_set_and_cleared() {
        let mut cfg = crate::config::tests::sample();
        cfg.boot = Default::default();
        let on = SetRequest {
            onboot: Some(true),
            boot_order: Some(Some(30)),
            ..Default::default()
        };
        assert!(!on.is_empty());
        let new = on.apply_to(&cfg).expect("valid");
        assert!(new.boot.onboot);
        assert_eq!(new.boot.order, Some(30));
        assert_eq!(new.hostname, cfg.hostname, "the rest stays");
        let only_off = SetRequest {
            onboot: Some(false),
            ..Default::default()
        };
        let off = only_off.apply_to(&new).expect("valid");
        assert!(!off.boot.onboot);
        assert_eq!(off.boot.order, Some(30), "the order stays");
        let cleared = SetRequest {
            boot_order: Some(None),
            ..Default::default()
        }
        .apply_to(&off)
        .expect("valid");
        assert_eq!(cleared.boot, Default::default());
    }

    #[test]
    fn numpty_and_features_are_set_and_checked() {
        let cfg = crate::config::tests::sample();
        let req = SetRequest {
            resources: crate::resources::Resources {
                numpty: Some(128),
                ..Default::default()
            },
            features: Some(Features::parse_list("fuse").expect("fuse")),
            ..Default::default()
        };
        let new = req.apply_to(&cfg).expect("valid");
        assert_eq!(new.resources.numpty(), 128);
        assert_eq!(new.resources.memory, cfg.resources.memory, "the rest stays");
        assert_eq!(new.features.to_list(), "fuse");
        assert_eq!(new.hostname, cfg.hostname, "the rest stays");
        for n in [0, 1, 65537] {
            let req = SetRequest {
                resources: crate::resources::Resources {
                    numpty: Some(n),
                    ..Default::default()
                },
                ..Default::default()
            };
            assert!(req.apply_to(&cfg).is_err(), "numpty {n}");
        }
    }
}

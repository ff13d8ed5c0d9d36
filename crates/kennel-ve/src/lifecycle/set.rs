//! `kennel set`: changes a VE's settings, saved, and applied at once to a
//! running VE where that can be done live (network, hostname and the VE's
//! files, the pty limit, a user's password); features apply from the
//! next start.

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
    /// The VE's pty limit (live).
    pub numpty: Option<u32>,
    /// The VE's opt-in features (from its next start).
    pub features: Option<Features>,
    /// A password to set with the VE's own `chpasswd` (first of all).
    pub userpasswd: Option<UserPassword>,
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
            && self.numpty.is_none()
            && self.features.is_none()
            && self.userpasswd.is_none()
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
        if let Some(p) = self.numpty {
            c.resources.numpty = Some(p);
        }
        if let Some(f) = &self.features {
            c.features = f.clone();
        }
        c.resources.validate()?;
        Ok(c)
    }
}

impl Kennel {
    /// `kennel set`: checks, applies to the running VE (if it runs), saves.
    /// Returns the saved configuration and notes for the operator (files
    /// in the VE that were left alone, what waits for the next start).
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
        if let Some(up) = &req.userpasswd {
            if !running {
                return Err(VeError::NotRunning(id.to_string()));
            }
            self.set_password(id, up)?;
        }
        let new_ptys = (running && new.resources.numpty() != cfg.resources.numpty())
            .then(|| new.resources.numpty());
        if let Some(n) = new_ptys {
            self.take_ptys(id, u64::from(n))?;
        }
        let saved = self.save_and_apply_network(id, &cfg, &new, running);
        if let Err(e) = saved {
            if new_ptys.is_some() {
                let _ = self.take_ptys(id, u64::from(cfg.resources.numpty()));
            }
            return Err(e);
        }
        let mut notes = Vec::new();
        if running {
            if new.hostname != cfg.hostname || new.network != cfg.network {
                notes.extend(self.apply_files_live(&cfg, &new)?);
            }
            if new_ptys.is_some() {
                notes.extend(self.set_numpty_live(id, &new)?);
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
        self.check_network(id, &new.network)?;
        if running && new.network != old.network {
            self.apply_network_live(old, new)?;
        }
        new.save(&self.paths.ve_config(id))
    }

    /// The new pty limit of a running VE, through the devpts mount its
    /// monitor holds. Without a monitor, a note: it applies at the next
    /// start.
    fn set_numpty_live(&self, id: &VeId, new: &VeConfig) -> Result<Vec<String>> {
        let opts = kennel_runtime::devpts::DevptsOptions {
            gid: new.idmap.gid_base + kennel_runtime::devpts::TTY_GID,
            max: new.resources.numpty(),
        };
        let (state, run) = self.state_of(id)?;
        match (state, run) {
            (VeState::Running, Some(run)) => {
                kennel_runtime::live::set_numpty(run.monitor_pid, run.monitor_start, opts)?;
                Ok(Vec::new())
            }
            _ => Ok(vec![format!(
                "VE {id}'s monitor is gone: its pty limit changes at its next start"
            )]),
        }
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
            Err(VeError::Runtime(kennel_runtime::RuntimeError::CannotRun { code: 127, .. })) => {
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

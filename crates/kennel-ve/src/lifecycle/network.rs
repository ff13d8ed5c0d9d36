//! A VE's network from the lifecycle's side: checks that span VEs (an
//! address belongs to one VE only), `kennel set` (saved, and applied live
//! to a running VE), and the host-side teardown when a VE ends.

use std::net::IpAddr;
use std::os::fd::AsFd;

use ipnet::IpNet;
use kennel_net::model::{Forward, Netif, RateLimit};
use kennel_net::netlink::Netlink;
use kennel_net::reconcile::{self, check_bridge};
use kennel_net::{Target, VeNetwork};

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
    pub netif_add: Vec<Netif>,
    pub netif_del: Vec<String>,
    pub rate: Option<RateLimit>,
    pub nameservers: Option<Vec<IpAddr>>,
    pub searchdomains: Option<Vec<String>>,
    /// `Some(None)` turns NAT off.
    pub nat_via: Option<Option<String>>,
    pub forward_add: Vec<Forward>,
    pub forward_del: Vec<Forward>,
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
        for a in &self.netif_add {
            if let Some(existing) = n.netifs.iter_mut().find(|i| i.name == a.name) {
                *existing = a.clone();
            } else {
                n.netifs.push(a.clone());
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
        Ok(c)
    }
}

impl Kennel {
    /// Checks `net` for VE `id` against the host and the other VEs: every
    /// address is free, every bridge and uplink exists. Call with the host
    /// lock held.
    pub(crate) fn check_network(&self, id: &VeId, net: &VeNetwork) -> Result<()> {
        net.validate()?;
        if !net.has_links() && net.nat_via.is_none() {
            return Ok(());
        }
        for other in self.ids()? {
            if &other == id {
                continue;
            }
            let Ok(cfg) = self.config(&other) else {
                continue;
            };
            let theirs: Vec<IpAddr> = cfg.network.all_ips().collect();
            if let Some(ip) = net.all_ips().find(|a| theirs.contains(a)) {
                return Err(VeError::BadInput(format!(
                    "address {ip} is already used by VE {other}: give another, or remove it there first (kennel set {other} --ip-del {ip})"
                )));
            }
        }
        let mut nl = Netlink::open().map_err(kennel_net::NetError::from)?;
        for n in &net.netifs {
            check_bridge(&mut nl, &n.bridge)?;
        }
        if let Some(up) = &net.nat_via {
            if nl
                .link_index(up)
                .map_err(kennel_net::NetError::from)?
                .is_none()
            {
                return Err(VeError::BadInput(format!(
                    "unknown uplink {up}: name the host interface VEs reach the outside through"
                )));
            }
        }
        Ok(())
    }

    /// `kennel set`: checks, applies to the running VE (if it runs), saves.
    pub fn set(&self, id: &VeId, req: &SetRequest) -> Result<VeConfig> {
        if req.is_empty() {
            return Err(VeError::BadInput(
                "nothing to set: give at least one option (see `kennel set --help`)".into(),
            ));
        }
        let (_lock, cfg) = self.lock_config(id)?;
        let new = req.apply_to(&cfg)?;
        // Held until saved: no other VE may take these addresses meanwhile.
        let _host = self.lock_host()?;
        self.check_network(id, &new.network)?;
        if self.settle(id)? == VeState::Running {
            self.apply_live(&cfg, &new)?;
        }
        new.save(&self.paths.ve_config(id))?;
        Ok(new)
    }

    /// Makes the running VE match `new` (from `old`); on failure, puts back
    /// what it can of `old` and reports the failure.
    fn apply_live(&self, old: &VeConfig, new: &VeConfig) -> Result<()> {
        let id = &new.id;
        let run = self
            .run_state(id)?
            .ok_or_else(|| VeError::NotRunning(id.to_string()))?;
        let live = |what: &str| {
            kennel_runtime::live::open_of_init(run.init_pid, run.init_start, what)
                .map_err(VeError::from)
        };
        let run_dir = self.paths.ve_run(id);
        let target = Target {
            ve: id.as_str(),
            run_dir: &run_dir,
            host: &self.host.network,
        };
        if new.network != old.network {
            let netns = live("ns/net")?;
            if let Err(e) = reconcile::reconcile(target, Some(netns.as_fd()), &new.network) {
                let _ = reconcile::reconcile(target, Some(netns.as_fd()), &old.network);
                return Err(e.into());
            }
        }
        if new.hostname != old.hostname {
            kennel_runtime::live::set_hostname(&live("ns/uts")?, &new.hostname)?;
        }
        let root = live("root")?;
        let view = kennel_net::guest::GuestView {
            ve: id.as_str(),
            hostname: &new.hostname,
            net: &new.network,
        };
        let target = kennel_net::guest::Root {
            fd: root.as_fd(),
            owner: Some((new.idmap.uid_base, new.idmap.gid_base)),
        };
        kennel_net::guest::apply(&target, &view)?;
        Ok(())
    }

    /// Removes the host side of VE `id`'s network (links, proxy entries,
    /// nftables tables). For a VE that is not running.
    pub(crate) fn teardown_network(&self, id: &VeId) -> Result<()> {
        let run_dir = self.paths.ve_run(id);
        reconcile::teardown(Target {
            ve: id.as_str(),
            run_dir: &run_dir,
            host: &self.host.network,
        })?;
        Ok(())
    }
}

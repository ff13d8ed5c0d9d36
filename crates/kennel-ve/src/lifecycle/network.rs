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
        Ok(c)
    }
}

/// What one VE's network may not share with another's (`theirs`, of VE
/// `other`): addresses, MACs, forwarded host ports.
fn check_against(net: &VeNetwork, theirs: &VeNetwork, other: &VeId) -> Result<()> {
    let their_ips: Vec<IpAddr> = theirs.all_ips().collect();
    if let Some(ip) = net.all_ips().find(|a| their_ips.contains(a)) {
        return Err(VeError::BadInput(format!(
            "address {ip} is already used by VE {other}: give another, or remove it there first (kennel set {other} --ip-del {ip})"
        )));
    }
    if let Some(n) = net
        .netifs
        .iter()
        .find(|n| theirs.netifs.iter().any(|t| t.mac == n.mac))
    {
        return Err(VeError::BadInput(format!(
            "MAC {} is already used by VE {other}: give another, or leave mac= out to get a new one",
            n.mac
        )));
    }
    for f in &net.forwards {
        let clash = theirs.forwards.iter().any(|g| {
            g.proto == f.proto
                && g.host_port == f.host_port
                && (g.host_addr.is_none() || f.host_addr.is_none() || g.host_addr == f.host_addr)
        });
        if clash {
            return Err(VeError::BadInput(format!(
                "host port {} {} is already forwarded to VE {other}: pick another port",
                f.proto.as_str(),
                f.host_port
            )));
        }
    }
    Ok(())
}

impl Kennel {
    /// Checks `net` for VE `id` against the host and the other VEs: every
    /// address is free, every bridge and uplink exists. Call with the host
    /// lock held.
    pub(crate) fn check_network(&self, id: &VeId, net: &VeNetwork) -> Result<()> {
        net.validate()?;
        if net.is_empty() {
            return Ok(());
        }
        for other in self.ids()? {
            if &other == id {
                continue;
            }
            let cfg = self.config(&other).map_err(|e| {
                VeError::BadInput(format!(
                    "cannot read the configuration of VE {other} ({e}); fix it first: its addresses must not be given to another VE"
                ))
            })?;
            check_against(net, &cfg.network, &other)?;
        }
        let mut nl = Netlink::open().map_err(kennel_net::NetError::from)?;
        for ip in net.all_ips() {
            if nl
                .is_local_address(ip)
                .map_err(kennel_net::NetError::from)?
            {
                return Err(VeError::BadInput(format!(
                    "address {ip} is one of this host's own: give the VE an address of its own"
                )));
            }
        }
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
    /// Returns the saved configuration and notes for the operator (files
    /// in the VE that were left alone).
    pub fn set(&self, id: &VeId, req: &SetRequest) -> Result<(VeConfig, Vec<String>)> {
        if req.is_empty() {
            return Err(VeError::BadInput(
                "nothing to set: give at least one option (see `kennel set --help`)".into(),
            ));
        }
        let (_lock, cfg) = self.lock_config(id)?;
        let new = req.apply_to(&cfg)?;
        // Held until saved: no other VE may take these addresses meanwhile.
        let host_lock = self.lock_host()?;
        self.check_network(id, &new.network)?;
        let running = match self.settle(id)? {
            VeState::Stopped => false,
            VeState::Running | VeState::RunningWithoutMonitor => true,
            VeState::Stopping => return Err(VeError::Busy(id.to_string())),
        };
        if !running {
            new.save(&self.paths.ve_config(id))?;
            return Ok((new, Vec::new()));
        }
        if new.network != cfg.network {
            self.apply_network_live(&cfg, &new)?;
        }
        new.save(&self.paths.ve_config(id))?;
        drop(host_lock);
        let notes = self.apply_files_live(&cfg, &new)?;
        Ok((new, notes))
    }

    /// The network part of a live change, under the VE's network lock and
    /// only while its init lives (its teardown takes the same lock). On
    /// failure it puts back `old` as far as it can and reports the failure.
    fn apply_network_live(&self, old: &VeConfig, new: &VeConfig) -> Result<()> {
        let id = &new.id;
        let _net = self.lock_network(id)?;
        let run = self
            .run_state(id)?
            .ok_or_else(|| VeError::NotRunning(id.to_string()))?;
        let netns = kennel_runtime::live::open_of_init(run.init_pid, run.init_start, "ns/net")?;
        let run_dir = self.paths.ve_run(id);
        let target = Target {
            ve: id.as_str(),
            run_dir: &run_dir,
            host: &self.host.network,
        };
        if let Err(e) = reconcile::reconcile(target, Some(netns.as_fd()), &new.network) {
            if let Err(back) = reconcile::reconcile(target, Some(netns.as_fd()), &old.network) {
                tracing::warn!("VE {id}: putting the network back failed too: {back}");
            }
            return Err(e.into());
        }
        Ok(())
    }

    /// The hostname and the VE's own files, for a running VE.
    fn apply_files_live(&self, old: &VeConfig, new: &VeConfig) -> Result<Vec<String>> {
        let id = &new.id;
        let Some(run) = self.run_state(id)? else {
            return Ok(Vec::new());
        };
        let live = |what: &str| {
            kennel_runtime::live::open_of_init(run.init_pid, run.init_start, what)
                .map_err(VeError::from)
        };
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
        let skipped = kennel_net::guest::apply(&target, &view)?;
        Ok(skipped
            .into_iter()
            .map(|f| format!("{f} in VE {id} is not a regular file (a symlink?): left as it is"))
            .collect())
    }

    fn lock_network(&self, id: &VeId) -> Result<crate::lock::Lock> {
        crate::lock::Lock::acquire(
            &self.paths.locks().join(format!("net-{id}")),
            std::time::Duration::from_secs(20),
            id.as_str(),
        )
    }

    /// Removes the host side of VE `id`'s network (links, proxy entries,
    /// nftables tables). For a VE that is not running.
    pub(crate) fn teardown_network(&self, id: &VeId) -> Result<()> {
        // Waits for a live `kennel set` to finish, whose additions are in
        // the record by then.
        let _net = self.lock_network(id)?;
        let run_dir = self.paths.ve_run(id);
        reconcile::teardown(Target {
            ve: id.as_str(),
            run_dir: &run_dir,
            host: &self.host.network,
        })?;
        Ok(())
    }
}

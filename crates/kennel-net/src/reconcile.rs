//! Makes the host side and the inside of a VE's network what its
//! configuration says, from whatever it was: one code path for a start
//! (from nothing), a live `kennel set` (from the running configuration)
//! and a teardown (to nothing).
//!
//! What exists on the host is recorded in `net.json` in the VE's run
//! directory *before* it is made, so that a teardown after any failure or
//! crash removes exactly what may exist: the host ends of the VE's links
//! (which take their routes, addresses and qdiscs with them), the proxy
//! neighbour entries on the uplinks, and the VE's nftables tables.
//!
//! Order on a start: links are made down; the firewall goes in; only then
//! does anything come up, so no packet of the VE ever passes unfiltered.

use std::collections::BTreeSet;
use std::net::IpAddr;
use std::os::fd::BorrowedFd;
use std::path::Path;

use ipnet::IpNet;
use serde::{Deserialize, Serialize};

use crate::error::{io_err, NetError, Result};
use crate::firewall;
use crate::model::VeNetwork;
use crate::names;
use crate::netlink::{Netlink, Route, VethEnd};
use crate::plan::{self, LinkKind, GATEWAY4, GATEWAY6, HOST_END_MAC};
use crate::shaping;

/// The host's network settings for VEs (`[network]` in `kennel.toml`).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct HostNet {
    /// Where routed VE addresses are answered for (proxy ARP/NDP):
    /// `detect` (the default: the interface whose own network holds the
    /// address, if any), `none`, or interface names.
    #[serde(default = "detect")]
    pub neighbour_devs: Vec<String>,
}

fn detect() -> Vec<String> {
    vec!["detect".into()]
}

impl HostNet {
    pub fn with_defaults() -> Self {
        HostNet {
            neighbour_devs: detect(),
        }
    }
}

/// A proxy neighbour entry Kennel made.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
pub struct Proxy {
    pub dev: String,
    pub addr: IpAddr,
}

/// What exists on the host for a VE (`net.json`).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Record {
    /// The configuration last applied in full.
    pub network: VeNetwork,
    /// Host ends of links that may exist.
    pub links: BTreeSet<String>,
    pub proxies: BTreeSet<Proxy>,
}

pub const RECORD_FILE: &str = "net.json";

impl Record {
    pub fn load(run_dir: &Path) -> Option<Record> {
        let text = std::fs::read_to_string(run_dir.join(RECORD_FILE)).ok()?;
        serde_json::from_str(&text).ok()
    }

    fn save(&self, run_dir: &Path) -> Result<()> {
        let path = run_dir.join(RECORD_FILE);
        let tmp = run_dir.join(".net.json.new");
        let text = serde_json::to_string(self).map_err(|e| NetError::BadInput(e.to_string()))?;
        std::fs::write(&tmp, text).map_err(io_err(format!("write {}", tmp.display())))?;
        std::fs::rename(&tmp, &path).map_err(io_err(format!("write {}", path.display())))
    }
}

/// Whose network, and where its record lives.
#[derive(Debug, Clone, Copy)]
pub struct Target<'a> {
    pub ve: &'a str,
    pub run_dir: &'a Path,
    pub host: &'a HostNet,
}

/// Brings VE `t.ve`'s network from what its record says to `new`.
/// `netns` is the VE's network namespace; it is needed whenever `new` has
/// links.
pub fn reconcile(t: Target<'_>, netns: Option<BorrowedFd<'_>>, new: &VeNetwork) -> Result<()> {
    let old = Record::load(t.run_dir).unwrap_or_default();
    let old_links = plan::links(t.ve, &old.network);
    let new_links = plan::links(t.ve, new);
    let mut host = Netlink::open()?;
    for l in &new_links {
        if let LinkKind::Bridged { bridge, .. } = &l.kind {
            check_bridge(&mut host, bridge)?;
        }
    }
    let proxies = wanted_proxies(&mut host, t, &old, new)?;
    let new_names = link_names(&new_links, new);
    // Everything that may exist from here until success.
    let mut record = Record {
        network: old.network.clone(),
        links: old
            .links
            .iter()
            .cloned()
            .chain(new_names.iter().cloned())
            .collect(),
        proxies: old.proxies.union(&proxies).cloned().collect(),
    };
    record.save(t.run_dir)?;

    let mut inside: Option<Netlink> = None;
    let ve_side = |inside: &mut Option<Netlink>| -> Result<()> {
        if inside.is_none() {
            let fd = netns.ok_or_else(|| {
                NetError::BadInput(
                    "the VE is not running: its links can only be made by a start".into(),
                )
            })?;
            *inside = Some(Netlink::open_in(fd)?);
        }
        Ok(())
    };

    // Links that go (or must be made again).
    for o in &old_links {
        if !new_links
            .iter()
            .any(|n| n.host == o.host && !n.differs_in_kind(o))
        {
            host.delete_link(&o.host)?;
            host.delete_link(&names::ifb_link(&o.host))?;
        }
    }
    // New links, down.
    let mut fresh = Vec::new();
    for n in &new_links {
        if old_links
            .iter()
            .any(|o| o.host == n.host && !n.differs_in_kind(o))
        {
            continue;
        }
        ve_side(&mut inside)?;
        let fd = netns.ok_or_else(|| NetError::BadInput("no network namespace".into()))?;
        let host_mac = matches!(n.kind, LinkKind::Bridged { .. }).then_some(HOST_END_MAC);
        let idx = host.create_veth(
            &VethEnd {
                name: &n.host,
                mac: host_mac,
                mtu: None,
            },
            &VethEnd {
                name: &n.inside,
                mac: n.mac.map(|m| m.0),
                mtu: None,
            },
            fd,
        )?;
        host.set_addr_gen_mode_none(idx)?;
        match &n.kind {
            LinkKind::Routed => {
                host.add_address(idx, IpNet::from(IpAddr::V4(GATEWAY4)), false)?;
                let gw6 = IpNet::new(IpAddr::V6(GATEWAY6), 64)
                    .map_err(|e| NetError::BadInput(e.to_string()))?;
                host.add_address(idx, gw6, true)?;
            }
            LinkKind::Bridged { bridge, .. } => {
                let br = check_bridge(&mut host, bridge)?;
                host.set_master(idx, br)?;
            }
        }
        fresh.push((n, idx));
    }
    // The firewall before anything comes up.
    if new != &old.network || !fresh.is_empty() {
        firewall::apply(&firewall::render(t.ve, new))?;
    }
    // Up, addressed and routed.
    for n in &new_links {
        let was = old_links
            .iter()
            .find(|o| o.host == n.host && !n.differs_in_kind(o));
        let host_idx = match fresh.iter().find(|(f, _)| f.host == n.host) {
            Some((_, idx)) => *idx,
            None => host.link_index(&n.host)?.ok_or_else(|| {
                NetError::Host(format!("the VE's link {} is gone: restart the VE", n.host))
            })?,
        };
        let (old_ips, old_gws): (&[IpNet], &[IpAddr]) = match was {
            Some(o) => (&o.ips, &o.gateways),
            None => (&[], &[]),
        };
        let routed = n.kind == LinkKind::Routed;
        let ip_changes = old_ips != n.ips.as_slice() || old_gws != n.gateways.as_slice();
        if ip_changes || was.is_none() {
            ve_side(&mut inside)?;
        }
        if let Some(nl) = inside.as_mut().filter(|_| ip_changes || was.is_none()) {
            let idx = nl
                .link_index(&n.inside)?
                .ok_or_else(|| NetError::Host(format!("the VE has no interface {}", n.inside)))?;
            // New addresses before old ones go: a link that loses its last
            // IPv4 address loses its IPv4 routes too.
            for ip in n.ips.iter().filter(|a| !old_ips.contains(a)) {
                nl.add_address(idx, *ip, true)?;
            }
            for gone in old_ips.iter().filter(|a| !n.ips.contains(a)) {
                nl.del_address(idx, *gone)?;
                if routed {
                    host.del_route(&host_route(gone.addr(), host_idx))?;
                }
            }
            for gw in old_gws.iter().filter(|g| !n.gateways.contains(g)) {
                nl.del_route(&default_route(*gw, idx))?;
            }
            if was.is_none() {
                nl.set_up(idx)?;
                host.set_up(host_idx)?;
            }
            // All of them, again: replacing is harmless, and an address
            // change may have taken one away.
            for gw in &n.gateways {
                nl.add_route(&default_route(*gw, idx))?;
            }
            if routed {
                for ip in n
                    .ips
                    .iter()
                    .filter(|a| was.is_none() || !old_ips.contains(a))
                {
                    host.add_route(&host_route(ip.addr(), host_idx))?;
                }
            }
        }
        let rate_changed = was.is_none() || new.rate != old.network.rate;
        if rate_changed && !(new.rate.is_empty() && old.network.rate.is_empty()) {
            shaping::apply(&n.host, &new.rate)?;
        }
    }
    // Proxy neighbours: the new ones, then drop the old.
    for p in proxies.difference(&old.proxies) {
        let dev = host
            .link_index(&p.dev)?
            .ok_or_else(|| NetError::Host(format!("uplink {} is gone", p.dev)))?;
        host.add_proxy_neigh(dev, p.addr)?;
    }
    for p in old.proxies.difference(&proxies) {
        if let Some(dev) = host.link_index(&p.dev)? {
            host.del_proxy_neigh(dev, p.addr)?;
        }
    }
    record = Record {
        network: new.clone(),
        links: new_names,
        proxies,
    };
    if record == Record::default() {
        remove_record(t.run_dir);
        Ok(())
    } else {
        record.save(t.run_dir)
    }
}

/// Removes everything the record (or, without one, the names) says may
/// exist for the VE. Used when the VE has ended; tolerant of what is
/// already gone.
pub fn teardown(t: Target<'_>) -> Result<()> {
    let mut host = Netlink::open()?;
    let record = Record::load(t.run_dir);
    let mut links: BTreeSet<String> = record.as_ref().map(|r| r.links.clone()).unwrap_or_default();
    if record.is_none() {
        for p in [names::LINK_PREFIX, names::IFB_PREFIX] {
            let prefix = format!("{p}{}-", t.ve);
            links.extend(host.links_with_prefix(&prefix)?.into_iter().map(|l| l.name));
        }
    }
    for l in &links {
        host.delete_link(l)?;
    }
    for p in record.iter().flat_map(|r| r.proxies.iter()) {
        if let Some(dev) = host.link_index(&p.dev)? {
            host.del_proxy_neigh(dev, p.addr)?;
        }
    }
    if record.is_some() || !links.is_empty() {
        firewall::remove(t.ve)?;
    }
    remove_record(t.run_dir);
    Ok(())
}

/// The host links of `links`: the veth ends, and the `ifb` of each when
/// the VE's egress is shaped.
fn link_names(links: &[crate::plan::LinkPlan], net: &VeNetwork) -> BTreeSet<String> {
    let mut out = BTreeSet::new();
    for l in links {
        out.insert(l.host.clone());
        if net.rate.egress.is_some() {
            out.insert(names::ifb_link(&l.host));
        }
    }
    out
}

fn remove_record(run_dir: &Path) {
    let _ = std::fs::remove_file(run_dir.join(RECORD_FILE));
}

fn host_route(addr: IpAddr, dev: u32) -> Route {
    Route {
        dst: plan::host_route(addr),
        dev,
        gateway: None,
        onlink: false,
    }
}

fn default_route(gw: IpAddr, dev: u32) -> Route {
    let dst = match gw {
        IpAddr::V4(_) => IpNet::V4(ipnet::Ipv4Net::default()),
        IpAddr::V6(_) => IpNet::V6(ipnet::Ipv6Net::default()),
    };
    Route {
        dst,
        dev,
        gateway: Some(gw),
        onlink: true,
    }
}

/// The bridge's index; a clear error when it is missing or no bridge.
pub fn check_bridge(host: &mut Netlink, bridge: &str) -> Result<u32> {
    match host.link(bridge)? {
        Some(l) if l.kind.as_deref() == Some("bridge") => Ok(l.index),
        Some(_) => Err(NetError::BadInput(format!(
            "{bridge} is not a bridge: name a Linux bridge (ip link add {bridge} type bridge)"
        ))),
        None => Err(NetError::BadInput(format!(
            "unknown bridge {bridge}: create it first (ip link add {bridge} type bridge) or name another"
        ))),
    }
}

/// The proxy entries `new`'s routed addresses need: kept where they were,
/// found by route lookup (`detect`) or on the listed interfaces otherwise.
fn wanted_proxies(
    host: &mut Netlink,
    t: Target<'_>,
    old: &Record,
    new: &VeNetwork,
) -> Result<BTreeSet<Proxy>> {
    let mut out = BTreeSet::new();
    let devs = &t.host.neighbour_devs;
    if devs.iter().any(|d| d == "none") {
        return Ok(out);
    }
    for ip in new.ips.iter().map(IpNet::addr) {
        let kept: Vec<&Proxy> = old.proxies.iter().filter(|p| p.addr == ip).collect();
        if !kept.is_empty() {
            out.extend(kept.into_iter().cloned());
            continue;
        }
        if devs.iter().any(|d| d == "detect") {
            // Only where the address is on the link's own network: a LAN
            // neighbour there may ask for it; behind a gateway none will.
            if let Some(idx) = host.route_dev_on_link(ip)? {
                if let Some(name) = link_name(host, idx)? {
                    let ours = name.starts_with(names::LINK_PREFIX) || name == "lo";
                    if !ours {
                        out.insert(Proxy {
                            dev: name,
                            addr: ip,
                        });
                    }
                }
            }
        } else {
            for d in devs {
                out.insert(Proxy {
                    dev: d.clone(),
                    addr: ip,
                });
            }
        }
    }
    Ok(out)
}

fn link_name(host: &mut Netlink, index: u32) -> Result<Option<String>> {
    Ok(host
        .links_with_prefix("")?
        .into_iter()
        .find(|l| l.index == index)
        .map(|l| l.name))
}

/// For `kennel check`: which of the routed model's host switches are off.
pub fn routed_model_needs() -> Vec<String> {
    let mut out = Vec::new();
    let read = |p: &str| {
        std::fs::read_to_string(p)
            .map(|s| s.trim().to_string())
            .ok()
    };
    if read("/proc/sys/net/ipv4/ip_forward").as_deref() != Some("1") {
        out.push("net.ipv4.ip_forward=1 (routed VEs reach other hosts only through it)".into());
    }
    if read("/proc/sys/net/ipv6/conf/all/forwarding").as_deref() != Some("1") {
        out.push("net.ipv6.conf.all.forwarding=1 (the same for IPv6)".into());
    }
    if read("/proc/sys/net/ipv6/conf/all/proxy_ndp").as_deref() != Some("1") {
        out.push(
            "net.ipv6.conf.all.proxy_ndp=1 (the LAN finds routed IPv6 addresses through it)".into(),
        );
    }
    out
}

//! Makes the host side and the inside of a VE's network what a
//! configuration says: one code path for a start, a live `kennel set` and
//! a teardown.
//!
//! It converges rather than replays a diff: every wanted link, address,
//! route and proxy entry is (re)applied with replace semantics, the
//! firewall is always rendered whole, and only removals are computed, from
//! the record of what may exist. So running it again after a failure at
//! any point, or from a record that is ahead of reality, ends in the same
//! state.
//!
//! The record (`net.json` in the VE's run directory) is written *before*
//! anything is made, with the union of what existed and what is about to,
//! so that a teardown after any failure or crash removes everything that
//! may exist: the host ends of the VE's links (which take their routes,
//! addresses and qdiscs with them), the proxy neighbour
//! entries on the uplinks, and the VE's nftables tables.
//!
//! Order for a new link: made down; the firewall goes in; only then does
//! anything come up, so no packet of the VE ever passes unfiltered.

use std::collections::{BTreeMap, BTreeSet};
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
use crate::plan::{self, LinkKind, LinkPlan, GATEWAY4, GATEWAY6, HOST_END_MAC};
use crate::shaping;

/// The host's network settings for VEs (`[network]` in `kennel.toml`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct HostNet {
    /// Where routed VE addresses are answered for (proxy ARP/NDP):
    /// `detect` (the default: the interface whose own network holds the
    /// address, if any), `none`, or interface names.
    #[serde(default = "detect")]
    pub neighbour_devs: Vec<String>,
    /// The most connections the host tracks for one VE with NAT or port
    /// forwards, each way: those it opens, and those opened to it (0: no
    /// bound); see `firewall::nat`.
    #[serde(default = "nat_conntrack_max")]
    pub nat_conntrack_max: u32,
}

fn detect() -> Vec<String> {
    vec!["detect".into()]
}

/// 16384 connections each way: up to about 12 MiB of the host's memory
/// for both (an entry takes 256 bytes, its extensions up to about 128
/// more), an eighth of the kernel's default `nf_conntrack_max` on hosts of
/// more than 4 GiB.
pub const NAT_CONNTRACK_MAX: u32 = 16384;

fn nat_conntrack_max() -> u32 {
    NAT_CONNTRACK_MAX
}

impl Default for HostNet {
    fn default() -> Self {
        HostNet {
            neighbour_devs: detect(),
            nat_conntrack_max: NAT_CONNTRACK_MAX,
        }
    }
}

/// A proxy neighbour entry Kennel made.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
pub struct Proxy {
    pub dev: String,
    pub addr: IpAddr,
}

/// What may exist on the host for a VE (`net.json`).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Record {
    /// The configuration being or last applied; its addresses and routes
    /// may exist.
    pub network: VeNetwork,
    /// Host ends of the VE's links that may exist.
    pub links: BTreeSet<String>,
    pub proxies: BTreeSet<Proxy>,
    /// Whether the VE's NAT table may exist.
    #[serde(default)]
    pub nat: bool,
}

pub const RECORD_FILE: &str = "net.json";

impl Record {
    pub fn load(run_dir: &Path) -> Option<Record> {
        Record::read(run_dir).ok().flatten()
    }

    /// The record in `run_dir`: `Ok(None)` when there is none, `Err` when
    /// one is there that cannot be read (damaged, or another version's).
    fn read(run_dir: &Path) -> std::result::Result<Option<Record>, String> {
        let path = run_dir.join(RECORD_FILE);
        let text = match std::fs::read_to_string(&path) {
            Ok(text) => text,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
            Err(e) => return Err(format!("{}: {e}", path.display())),
        };
        serde_json::from_str(&text)
            .map(Some)
            .map_err(|e| format!("{}: {e}", path.display()))
    }

    fn save(&self, run_dir: &Path) -> Result<()> {
        let path = run_dir.join(RECORD_FILE);
        let tmp = run_dir.join(".net.json.new");
        let text = serde_json::to_string(self)
            .map_err(|e| io_err("encode net.json")(std::io::Error::other(e)))?;
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

/// Makes `net` for a starting VE in its network namespace `netns`. The
/// caller has run [`teardown`] first (it needs no namespace, so the
/// monitor does it while the VE gets going): nothing of the VE's exists.
pub fn start(t: Target<'_>, netns: BorrowedFd<'_>, net: &VeNetwork) -> Result<()> {
    converge(t, Some(netns), net, Firewall::Create)
}

/// How the firewall gets to its new state.
enum Firewall {
    /// Created: nothing of the VE's exists (a start).
    Create,
    /// Replaced whole, whatever existed.
    Replace,
}

/// Makes VE `t.ve`'s network `new`, removing what the record says exists
/// beyond it. `netns` is the VE's network namespace; it is needed whenever
/// `new` has links.
pub fn reconcile(t: Target<'_>, netns: Option<BorrowedFd<'_>>, new: &VeNetwork) -> Result<()> {
    converge(t, netns, new, Firewall::Replace)
}

fn converge(
    t: Target<'_>,
    netns: Option<BorrowedFd<'_>>,
    new: &VeNetwork,
    fw: Firewall,
) -> Result<()> {
    let old = Record::load(t.run_dir).unwrap_or_default();
    let new_links = plan::links(t.ve, new);
    let mut host = Netlink::open()?;
    let mut bridges = BTreeMap::new();
    for l in &new_links {
        if let LinkKind::Bridged { bridge, .. } = &l.kind {
            bridges.insert(bridge.clone(), check_bridge(&mut host, bridge)?);
        }
    }
    // A link of that name that Kennel did not make for this VE (another
    // state root's VE with the same id) is never taken over, nor recorded.
    for l in &new_links {
        if !old.links.contains(&l.host) && host.link_index(&l.host)?.is_some() {
            return Err(NetError::Host(format!(
                "host interface {} exists but is not VE {}'s (another Kennel root with a VE {}?): remove it or use another id",
                l.host, t.ve, t.ve
            )));
        }
    }
    // Likewise its filter table (before the record: a refused start's
    // teardown must not take the other VE's table).
    if matches!(fw, Firewall::Create) && !new_links.is_empty() {
        firewall::refuse_foreign_table(t.ve)?;
    }
    let proxies = wanted_proxies(&mut host, t, &old, new)?;
    let new_names = link_names(&new_links);
    Record {
        network: new.clone(),
        links: old.links.union(&new_names).cloned().collect(),
        proxies: old.proxies.union(&proxies).cloned().collect(),
        nat: old.nat || firewall::needs_nat(&old.network) || firewall::needs_nat(new),
    }
    .save(t.run_dir)?;
    tracing::debug!("net: planned");

    // Links that go, or must be made again (another kind, name or MAC).
    let old_links = plan::links(t.ve, &old.network);
    let kept = |n: &LinkPlan| {
        old_links
            .iter()
            .any(|o| o.host == n.host && !n.differs_in_kind(o))
    };
    for name in &old.links {
        let replaced = new_links.iter().any(|n| &n.host == name && !kept(n));
        if !new_names.contains(name) || replaced {
            host.delete_link(name)?;
        }
    }
    // A kept bridged link must be on its bridge: the record may be ahead
    // of a change that a crash cut short.
    for n in &new_links {
        if let LinkKind::Bridged { bridge, .. } = &n.kind {
            let on = host.link(&n.host)?.and_then(|l| l.master);
            if on.is_some() && on != bridges.get(bridge).copied() {
                host.delete_link(&n.host)?;
            }
        }
    }
    // New links, down.
    let mut inside: Option<Netlink> = None;
    for n in &new_links {
        if host.link_index(&n.host)?.is_some() {
            continue;
        }
        let fd = netns.ok_or_else(|| {
            NetError::BadInput("the VE is not running: its links are made when it starts".into())
        })?;
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
                refuse_router_messages(&n.host);
            }
            LinkKind::Bridged { bridge, .. } => {
                if let Some(br) = bridges.get(bridge) {
                    host.set_master(idx, *br)?;
                }
            }
        }
    }
    tracing::debug!("net: links made");
    // The firewall, whole, before anything comes up.
    match fw {
        Firewall::Create => firewall::create(t.ve, new, t.host)?,
        Firewall::Replace => firewall::apply(
            t.ve,
            new,
            old.nat || firewall::needs_nat(&old.network),
            t.host,
        )?,
    }
    tracing::debug!("net: firewall");
    // Up, addressed and routed: everything wanted, again (replacing is
    // harmless); what went away, removed.
    let old_of = |n: &LinkPlan| old_links.iter().find(|o| o.host == n.host && kept(n));
    for n in &new_links {
        let host_idx = host
            .link_index(&n.host)?
            .ok_or_else(|| NetError::Host(format!("the VE's link {} vanished", n.host)))?;
        if inside.is_none() {
            let fd = netns.ok_or_else(|| {
                NetError::BadInput(
                    "the VE is not running: its network applies when it starts".into(),
                )
            })?;
            inside = Some(Netlink::open_in(fd)?);
        }
        let Some(nl) = inside.as_mut() else { continue };
        let idx = nl
            .link_index(&n.inside)?
            .ok_or_else(|| NetError::Host(format!("the VE has no interface {}", n.inside)))?;
        // New addresses before old ones go: a link that loses its last
        // IPv4 address loses its IPv4 routes too.
        for ip in &n.ips {
            nl.add_address(idx, *ip, true)?;
        }
        let routed = n.kind == LinkKind::Routed;
        if let Some(o) = old_of(n) {
            for gone in o.ips.iter().filter(|a| !n.ips.contains(a)) {
                nl.del_address(idx, *gone)?;
                if routed {
                    host.del_route(&host_route(gone.addr(), host_idx))?;
                }
            }
            for gw in o.gateways.iter().filter(|g| !n.gateways.contains(g)) {
                nl.del_route(&default_route(*gw, idx))?;
            }
        }
        nl.set_up(idx)?;
        host.set_up(host_idx)?;
        for gw in &n.gateways {
            nl.add_route(&default_route(*gw, idx))?;
        }
        if routed {
            for ip in &n.ips {
                host.add_route(&host_route(ip.addr(), host_idx))?;
            }
        }
        let shaped = new.rate.ingress.is_some() || old.network.rate.ingress.is_some();
        if shaped && (old_of(n).is_none() || new.rate.ingress != old.network.rate.ingress) {
            shaping::apply(&n.host, &new.rate)?;
        }
    }
    tracing::debug!("net: addresses and routes");
    // Proxy neighbours: all wanted (again), then drop the old.
    let mut index_of = BTreeMap::new();
    for p in &proxies {
        let dev = match index_of.get(&p.dev) {
            Some(i) => *i,
            None => {
                let Some(i) = host.link_index(&p.dev)? else {
                    // An uplink that went away: nothing to answer on.
                    tracing::warn!(
                        "VE {}: uplink {} is gone; no proxy entry for {}",
                        t.ve,
                        p.dev,
                        p.addr
                    );
                    continue;
                };
                index_of.insert(p.dev.clone(), i);
                i
            }
        };
        host.add_proxy_neigh(dev, p.addr)?;
    }
    for p in old.proxies.difference(&proxies) {
        if let Some(dev) = host.link_index(&p.dev)? {
            host.del_proxy_neigh(dev, p.addr)?;
        }
    }
    let record = Record {
        network: new.clone(),
        links: new_names,
        proxies,
        nat: firewall::needs_nat(new),
    };
    if record == Record::default() {
        remove_record(t.run_dir);
        Ok(())
    } else {
        record.save(t.run_dir)
    }
}

/// Removes everything the record says exists for the VE. For a VE that
/// has ended, or before a start (what a crashed run left); tolerant of
/// what is already gone.
///
/// Without a record nothing of the VE's exists: the record is written
/// before anything is made and removed after everything went. So nothing
/// is searched for by name: a link named like the VE's without a record
/// is not Kennel's (another state root's VE with the same id), and it is
/// left alone, where a search by the VE's prefix removed it. A search was
/// also a dump of every link on the host, one per running VE, on every
/// start. A record that is there but cannot be read is the one case
/// where the VE's objects are searched for by name.
pub fn teardown(t: Target<'_>) -> Result<()> {
    let record = match Record::read(t.run_dir) {
        Ok(Some(record)) => record,
        Ok(None) => return Ok(()),
        Err(why) => {
            tracing::warn!(
                "network record unreadable ({why}): removing VE {}'s links by name",
                t.ve
            );
            return teardown_by_name(t);
        }
    };
    let mut host = Netlink::open()?;
    for l in &record.links {
        host.delete_link(l)?;
    }
    for p in &record.proxies {
        if let Some(dev) = host.link_index(&p.dev)? {
            host.del_proxy_neigh(dev, p.addr)?;
        }
    }
    // `nat` holds whether a NAT table may exist even when the network
    // last applied needs none (a change that removed NAT, cut short).
    firewall::remove(t.ve, record.nat || firewall::needs_nat(&record.network))?;
    remove_record(t.run_dir);
    Ok(())
}

/// [`teardown`] without a readable record: the links named after the VE
/// (`_` cannot be in a VE id, so `kv101_` is VE 101's alone) and both of
/// its tables. Its proxy entries are not known by name.
fn teardown_by_name(t: Target<'_>) -> Result<()> {
    let mut host = Netlink::open()?;
    let prefix = format!("{}{}{}", names::LINK_PREFIX, t.ve, names::SEPARATOR);
    for l in host.links_with_prefix(&prefix)? {
        host.delete_link(&l.name)?;
    }
    // A NAT table may exist or not; without nft (never needed where no VE
    // has NAT) only the filter table can be, and goes.
    if let Err(e) = firewall::remove(t.ve, true) {
        tracing::warn!("VE {}'s NAT table: {e}", t.ve);
        firewall::remove(t.ve, false)?;
    }
    remove_record(t.run_dir);
    Ok(())
}

/// A routed link's host end never learns routes or redirects from the VE
/// (the firewall drops them too; this holds even without it). Per link,
/// in the host's namespace: no host-wide setting changes.
fn refuse_router_messages(link: &str) {
    for key in ["accept_ra", "accept_redirects"] {
        let _ = std::fs::write(format!("/proc/sys/net/ipv6/conf/{link}/{key}"), "0");
    }
    let _ = std::fs::write(
        format!("/proc/sys/net/ipv4/conf/{link}/accept_redirects"),
        "0",
    );
}

/// The host ends of `links`.
fn link_names(links: &[LinkPlan]) -> BTreeSet<String> {
    links.iter().map(|l| l.host.clone()).collect()
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
        if !devs.iter().any(|d| d == "detect") {
            for d in devs {
                out.insert(Proxy {
                    dev: d.clone(),
                    addr: ip,
                });
            }
            continue;
        }
        // Only where the address is on the link's own network: a LAN
        // neighbour there may ask for it; behind a gateway none will.
        let Some(idx) = host.route_dev_on_link(ip)? else {
            continue;
        };
        // That one link by its index, not a dump of all: the host's
        // namespace holds a link per running VE.
        if let Some(link) = host.link_by_index(idx)? {
            let ours = link.name.starts_with(names::LINK_PREFIX) || link.name == "lo";
            if !ours {
                out.insert(Proxy {
                    dev: link.name,
                    addr: ip,
                });
            }
        }
    }
    Ok(out)
}

/// For `kennel check`: the routed model's host switches that are off, as
/// `key=1` to set.
pub fn routed_model_needs() -> Vec<String> {
    let read = |p: &str| {
        std::fs::read_to_string(p)
            .map(|s| s.trim().to_string())
            .ok()
    };
    [
        ("net.ipv4.ip_forward", "/proc/sys/net/ipv4/ip_forward"),
        (
            "net.ipv6.conf.all.forwarding",
            "/proc/sys/net/ipv6/conf/all/forwarding",
        ),
        (
            "net.ipv6.conf.all.proxy_ndp",
            "/proc/sys/net/ipv6/conf/all/proxy_ndp",
        ),
    ]
    .into_iter()
    .filter(|(_, path)| read(path).as_deref() != Some("1"))
    .map(|(key, _)| format!("{key}=1"))
    .collect()
}

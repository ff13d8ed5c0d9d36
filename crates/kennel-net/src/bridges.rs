//! What `kennel check` reads about the bridges VEs are on: whether the
//! host would route what a bridged VE sends to it on a bridge where the
//! host has no address of its own.
//!
//! Frames a VE sends to the bridge's own MAC go up to the host's IP
//! stack, which routes them when forwarding is on for them, with or
//! without an address on the bridge. A bridge whose ports are all VE host
//! ends has their MAC (`fe:ff:ff:ff:ff:ff`, the lowest of its ports'), and
//! the host may answer ARP there for its own addresses: every VE on it can
//! find the host. Routed VEs need forwarding on, so a bridge
//! the operator meant as a switch alone quietly makes the host its VEs'
//! router, past every filter but the VEs' own.
//!
//! The VE's filter cannot tell these frames apart: the same frames are
//! right on a bridge where the host is the VEs' gateway, and the bridge's
//! MAC and addresses change without Kennel. So `kennel check` says which
//! bridges route without an address, and which switch turns it off
//! (`kennel check`'s `hardening` decides; this module only reads).

use std::fs;

use crate::error::Result;
use crate::names::LINK_PREFIX;
use crate::netlink::Netlink;

/// A bridge with VE ports (links named `kv*`), as the host treats what
/// arrives on it for the IP stack.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct VeBridge {
    pub name: String,
    /// The host has an IPv4 address on it.
    pub ipv4_address: bool,
    /// The host has an IPv6 address on it other than a link-local one
    /// (which the kernel gives every interface with IPv6 on).
    pub ipv6_address: bool,
    /// `net.ipv4.conf.BR.forwarding` is 1: IPv4 arriving on it is routed.
    pub ipv4_forwarding: bool,
    /// IPv6 is on for it (`net.ipv6.conf.BR.disable_ipv6` = 0) while
    /// `net.ipv6.conf.all.forwarding` is 1: IPv6 arriving on it is routed
    /// (IPv6 forwarding is one switch for every interface; its
    /// per-interface `forwarding` only chooses host or router behaviour).
    pub ipv6_forwarding: bool,
}

fn sysctl_is_1(path: &str) -> bool {
    fs::read_to_string(path).is_ok_and(|s| s.trim() == "1")
}

/// Every bridge of the caller's network namespace with at least one VE
/// port. Sysctls are read from `/proc/sys/net`, which shows the reader's
/// own network namespace.
pub fn ve_bridges() -> Result<Vec<VeBridge>> {
    let mut nl = Netlink::open()?;
    let links = nl.links_with_prefix("")?;
    let all_v6_forwarding = sysctl_is_1("/proc/sys/net/ipv6/conf/all/forwarding");
    let mut out = Vec::new();
    for br in links.iter().filter(|l| l.kind.as_deref() == Some("bridge")) {
        let has_ve = links
            .iter()
            .any(|l| l.master == Some(br.index) && l.name.starts_with(LINK_PREFIX));
        if !has_ve {
            continue;
        }
        let addrs = nl.addresses(br.index)?;
        let ipv6_on =
            fs::read_to_string(format!("/proc/sys/net/ipv6/conf/{}/disable_ipv6", br.name))
                .is_ok_and(|s| s.trim() == "0");
        out.push(VeBridge {
            name: br.name.clone(),
            ipv4_address: addrs.iter().any(|a| a.addr().is_ipv4()),
            ipv6_address: addrs.iter().any(|a| match a.addr() {
                std::net::IpAddr::V6(v6) => v6.segments()[0] & 0xffc0 != 0xfe80,
                std::net::IpAddr::V4(_) => false,
            }),
            ipv4_forwarding: sysctl_is_1(&format!(
                "/proc/sys/net/ipv4/conf/{}/forwarding",
                br.name
            )),
            ipv6_forwarding: ipv6_on && all_v6_forwarding,
        });
    }
    Ok(out)
}

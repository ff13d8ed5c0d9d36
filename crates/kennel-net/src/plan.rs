//! From a VE's network configuration to the links it needs: one veth pair
//! per VE interface, named on the host after the VE and the interface.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

use ipnet::IpNet;

use crate::model::{Mac, VeNetwork, ROUTED_IFNAME};
use crate::names;

/// The VE's IPv4 gateway on a routed link: a link-local address the host
/// end holds, the same on every VE's link (as Incus's routed NICs do).
pub const GATEWAY4: Ipv4Addr = Ipv4Addr::new(169, 254, 0, 1);
/// The IPv6 one.
pub const GATEWAY6: Ipv6Addr = Ipv6Addr::new(0xfe80, 0, 0, 0, 0, 0, 0, 1);
/// The host end's MAC on bridges: high, so that it becomes the bridge's
/// own address (the lowest of its ports', when none is set) only on a
/// bridge of VE ports alone; `crate::bridges` says what follows.
pub const HOST_END_MAC: [u8; 6] = [0xfe, 0xff, 0xff, 0xff, 0xff, 0xff];

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum LinkKind {
    Routed,
    Bridged { bridge: String, dhcp: bool },
}

/// One veth pair of a VE.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LinkPlan {
    /// Host end (`kv101_eth0`).
    pub host: String,
    /// VE end (`eth0`).
    pub inside: String,
    pub kind: LinkKind,
    /// The VE end's MAC (bridged), or the kernel's choice (routed).
    pub mac: Option<Mac>,
    pub ips: Vec<IpNet>,
    /// Default routes inside the VE, through this link.
    pub gateways: Vec<IpAddr>,
}

impl LinkPlan {
    /// Whether the VE end must be made again (rather than adjusted) to go
    /// from `self` to `other`.
    pub fn differs_in_kind(&self, other: &LinkPlan) -> bool {
        self.inside != other.inside || self.kind != other.kind || self.mac != other.mac
    }

    pub fn ips4(&self) -> impl Iterator<Item = IpNet> + '_ {
        self.ips.iter().copied().filter(|n| n.addr().is_ipv4())
    }

    pub fn ips6(&self) -> impl Iterator<Item = IpNet> + '_ {
        self.ips.iter().copied().filter(|n| n.addr().is_ipv6())
    }
}

/// Every link VE `ve` needs for `net`.
pub fn links(ve: &str, net: &VeNetwork) -> Vec<LinkPlan> {
    let mut out = Vec::new();
    if !net.ips.is_empty() {
        let mut gateways = Vec::new();
        if net.ips.iter().any(|n| n.addr().is_ipv4()) {
            gateways.push(IpAddr::V4(GATEWAY4));
        }
        if net.ips.iter().any(|n| n.addr().is_ipv6()) {
            gateways.push(IpAddr::V6(GATEWAY6));
        }
        out.push(LinkPlan {
            host: names::host_link(ve, ROUTED_IFNAME),
            inside: ROUTED_IFNAME.into(),
            kind: LinkKind::Routed,
            mac: None,
            ips: net.ips.clone(),
            gateways,
        });
    }
    for n in &net.netifs {
        out.push(LinkPlan {
            host: names::host_link(ve, &n.name),
            inside: n.name.clone(),
            kind: LinkKind::Bridged {
                bridge: n.bridge.clone(),
                dhcp: n.dhcp,
            },
            mac: Some(n.mac),
            ips: n.ips.clone(),
            gateways: n.gateways.clone(),
        });
    }
    out
}

/// A host route for one VE address: the address alone (/32, /128).
pub fn host_route(addr: IpAddr) -> IpNet {
    IpNet::from(addr)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::{parse_ve_address, Netif};

    #[test]
    fn routed_and_bridged() {
        let net = VeNetwork {
            ips: vec![
                parse_ve_address("192.0.2.11").unwrap(),
                parse_ve_address("2001:db8::11").unwrap(),
            ],
            netifs: vec![
                Netif::parse("eth1,bridge=br0,ip=198.51.100.5/24,gw=198.51.100.1").unwrap(),
            ],
            ..Default::default()
        };
        let l = links("101", &net);
        assert_eq!(l.len(), 2);
        assert_eq!(l[0].host, "kv101_eth0");
        assert_eq!(
            l[0].gateways,
            vec![IpAddr::V4(GATEWAY4), IpAddr::V6(GATEWAY6)]
        );
        assert_eq!(l[1].host, "kv101_eth1");
        assert!(matches!(l[1].kind, LinkKind::Bridged { .. }));
        assert!(links("101", &VeNetwork::default()).is_empty());
    }
}

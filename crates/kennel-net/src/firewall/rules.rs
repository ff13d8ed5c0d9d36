//! The VE's `netdev` table as nf_tables sees it: chains of rules made of
//! expressions (load a field into a register, compare, look up in a set,
//! give a verdict). Pure data, built here and encoded by [`super::nfnl`].
//!
//! Per VE link `i`, with policy drop on what the VE sends:
//!
//! ```text
//! chain from_i (ingress of the host end, policy drop)
//!   ether type { 8021q, 8021ad }                       drop
//!   ether saddr != MAC                                 drop     (bridged)
//!   arp sender MAC != MAC                              drop     (bridged)
//!   icmpv6 type { router-advert, redirect, renumbering } drop
//!   icmp type { redirect, router-advert }              drop
//!   udp sport { 67, 547 }                              drop     (no DHCP server)
//!   meta protocol { ip, arp }                          accept   (dhcp=yes)
//!   arp (Ethernet/IPv4) sender IP { 0.0.0.0, own IPv4 } accept
//!   ip saddr { own IPv4 }                              accept
//!   ip6 saddr { own IPv6 }                             jump v6_i
//!   ip6 saddr link-local (fe80::/10; bridged: EUI-64)  jump v6_i
//!   ip6 saddr :: icmpv6 type { NS, MLDv2 report }      accept   (DAD)
//! chain v6_i (a source the VE may use)
//!   icmpv6 neighbour advert, target { own IPv6 }       accept
//!   icmpv6 neighbour advert, target link-local         accept
//!   icmpv6 neighbour advert                            drop
//!                                                      accept
//! chain to_i (egress of a bridged host end, policy accept)
//!   ether daddr multicast or broadcast                 accept
//!   ether daddr != MAC                                 drop
//! ```

use std::net::{IpAddr, Ipv6Addr};

use crate::model::VeNetwork;
use crate::plan::{self, LinkKind, LinkPlan};

/// Hook priority: before anything of the host's (conntrack is -200).
pub const PRIORITY: i32 = -500;

pub const ETH_P_IP: u16 = 0x0800;
pub const ETH_P_ARP: u16 = 0x0806;
pub const ETH_P_IPV6: u16 = 0x86dd;
const ETH_P_8021Q: u16 = 0x8100;
const ETH_P_8021AD: u16 = 0x88a8;
/// ARP header start for Ethernet and IPv4: hardware type 1, protocol
/// 0x0800, address lengths 6 and 4.
const ARP_ETHER_IPV4: [u8; 6] = [0, 1, 8, 0, 6, 4];
const IPPROTO_ICMP: u8 = 1;
const IPPROTO_UDP: u8 = 17;
const IPPROTO_ICMPV6: u8 = 58;
const ND_NEIGHBOR_SOLICIT: u8 = 135;
const ND_NEIGHBOR_ADVERT: u8 = 136;
const ND_ROUTER_ADVERT: u8 = 134;
const ND_REDIRECT: u8 = 137;
const ROUTER_RENUMBERING: u8 = 138;
const MLD2_LISTENER_REPORT: u8 = 143;
const ICMP_REDIRECT: u8 = 5;
const ICMP_ROUTER_ADVERT: u8 = 9;

/// Where a payload field starts.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Base {
    Link,
    Network,
    Transport,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum MetaKey {
    /// The frame's ethertype (2 bytes, network order).
    Protocol,
    /// The transport protocol (1 byte).
    L4Proto,
}

/// What a set's keys are, so that `nft list` shows them as such.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum KeyKind {
    EtherType,
    IcmpType,
    Icmp6Type,
    Port,
    Ipv4,
    Ipv6,
}

impl KeyKind {
    /// nft's data type number (`src/datatype.h` of nftables).
    pub fn nft_type(self) -> u32 {
        match self {
            KeyKind::Ipv4 => 7,
            KeyKind::Ipv6 => 8,
            KeyKind::EtherType => 10,
            KeyKind::Port => 13,
            KeyKind::IcmpType => 14,
            KeyKind::Icmp6Type => 29,
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Verdict {
    Accept,
    Drop,
    Jump(String),
}

/// One expression; all of them work on register 1.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Expr {
    Meta(MetaKey),
    Payload {
        base: Base,
        offset: u32,
        len: u32,
    },
    /// Compare the register with `data` (equal, or not).
    Cmp {
        eq: bool,
        data: Vec<u8>,
    },
    /// Register &= mask.
    Mask(Vec<u8>),
    /// Is the register one of `keys` (all of one length)?
    Lookup {
        keys: Vec<Vec<u8>>,
        kind: KeyKind,
    },
    Verdict(Verdict),
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Hook {
    Ingress,
    Egress,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Chain {
    pub name: String,
    /// A base chain's hook and device; `None` for a regular chain.
    pub hook: Option<(Hook, String)>,
    pub policy_accept: bool,
    pub rules: Vec<Vec<Expr>>,
}

fn meta_eq(key: MetaKey, data: &[u8]) -> [Expr; 2] {
    [
        Expr::Meta(key),
        Expr::Cmp {
            eq: true,
            data: data.to_vec(),
        },
    ]
}

fn proto(p: u16) -> [Expr; 2] {
    meta_eq(MetaKey::Protocol, &p.to_be_bytes())
}

fn l4(p: u8) -> [Expr; 2] {
    meta_eq(MetaKey::L4Proto, &[p])
}

fn load(base: Base, offset: u32, len: u32) -> Expr {
    Expr::Payload { base, offset, len }
}

fn one_of(kind: KeyKind, keys: impl IntoIterator<Item = Vec<u8>>) -> Expr {
    Expr::Lookup {
        keys: keys.into_iter().collect(),
        kind,
    }
}

fn rule(parts: impl IntoIterator<Item = Expr>, v: Verdict) -> Vec<Expr> {
    parts.into_iter().chain([Expr::Verdict(v)]).collect()
}

fn ip_bytes(a: IpAddr) -> Vec<u8> {
    match a {
        IpAddr::V4(v) => v.octets().to_vec(),
        IpAddr::V6(v) => v.octets().to_vec(),
    }
}

/// The link-local address the kernel gives an interface with `mac`
/// (modified EUI-64, RFC 4291).
pub fn eui64_link_local(mac: [u8; 6]) -> Ipv6Addr {
    let b = [
        mac[0] ^ 2,
        mac[1],
        mac[2],
        0xff,
        0xfe,
        mac[3],
        mac[4],
        mac[5],
    ];
    let word = |i: usize| u16::from_be_bytes([b[i], b[i + 1]]);
    Ipv6Addr::new(0xfe80, 0, 0, 0, word(0), word(2), word(4), word(6))
}

/// Matches a 16-byte address loaded in the register against the VE's
/// link-local one: its EUI-64 address on a bridge (`mac`), any in
/// fe80::/10 on a routed link.
fn link_local(mac: Option<[u8; 6]>) -> Vec<Expr> {
    match mac {
        Some(m) => vec![Expr::Cmp {
            eq: true,
            data: eui64_link_local(m).octets().to_vec(),
        }],
        None => {
            let mut mask = vec![0u8; 16];
            mask[0] = 0xff;
            mask[1] = 0xc0;
            let mut net = vec![0u8; 16];
            net[0] = 0xfe;
            net[1] = 0x80;
            vec![
                Expr::Mask(mask),
                Expr::Cmp {
                    eq: true,
                    data: net,
                },
            ]
        }
    }
}

/// Every chain of VE `ve`'s netdev table for `net` (empty: no table).
pub fn chains(ve: &str, net: &VeNetwork) -> Vec<Chain> {
    let mut out = Vec::new();
    for (i, l) in plan::links(ve, net).iter().enumerate() {
        out.push(from_ve(i, l));
        out.push(v6_sources(i, l));
        if let Some(to) = to_ve(i, l) {
            out.push(to);
        }
    }
    out
}

fn from_ve(i: usize, l: &LinkPlan) -> Chain {
    use Base::{Link, Network, Transport};
    let mut rules = vec![rule(
        [
            load(Link, 12, 2),
            one_of(
                KeyKind::EtherType,
                [ETH_P_8021Q, ETH_P_8021AD].map(|t| t.to_be_bytes().to_vec()),
            ),
        ],
        Verdict::Drop,
    )];
    let mac = l.mac.map(|m| m.0);
    if let Some(m) = mac {
        rules.push(rule(
            [
                load(Link, 6, 6),
                Expr::Cmp {
                    eq: false,
                    data: m.to_vec(),
                },
            ],
            Verdict::Drop,
        ));
        let mut arp: Vec<Expr> = proto(ETH_P_ARP).into();
        arp.extend([
            load(Network, 8, 6),
            Expr::Cmp {
                eq: false,
                data: m.to_vec(),
            },
        ]);
        rules.push(rule(arp, Verdict::Drop));
    }
    // A VE is never a router nor a DHCP server for its neighbours.
    for (p, kind, types) in [
        (
            IPPROTO_ICMPV6,
            KeyKind::Icmp6Type,
            vec![ND_ROUTER_ADVERT, ND_REDIRECT, ROUTER_RENUMBERING],
        ),
        (
            IPPROTO_ICMP,
            KeyKind::IcmpType,
            vec![ICMP_REDIRECT, ICMP_ROUTER_ADVERT],
        ),
    ] {
        let mut r: Vec<Expr> = l4(p).into();
        r.extend([
            load(Transport, 0, 1),
            one_of(kind, types.into_iter().map(|t| vec![t])),
        ]);
        rules.push(rule(r, Verdict::Drop));
    }
    let mut dhcp_server: Vec<Expr> = l4(IPPROTO_UDP).into();
    dhcp_server.extend([
        load(Transport, 0, 2),
        one_of(
            KeyKind::Port,
            [67u16, 547].map(|p| p.to_be_bytes().to_vec()),
        ),
    ]);
    rules.push(rule(dhcp_server, Verdict::Drop));
    let own4: Vec<Vec<u8>> = l.ips4().map(|n| ip_bytes(n.addr())).collect();
    if matches!(l.kind, LinkKind::Bridged { dhcp: true, .. }) {
        // The lease is unknown here: any IPv4 source and ARP claim; the
        // MAC is still enforced (documented in SECURITY.md).
        rules.push(rule(
            [
                Expr::Meta(MetaKey::Protocol),
                one_of(
                    KeyKind::EtherType,
                    [ETH_P_IP, ETH_P_ARP].map(|t| t.to_be_bytes().to_vec()),
                ),
            ],
            Verdict::Accept,
        ));
    } else if !own4.is_empty() {
        // Only Ethernet/IPv4 ARP, whose sender address is at bytes 14-17:
        // other lengths would put it elsewhere for a receiver.
        let mut arp: Vec<Expr> = proto(ETH_P_ARP).into();
        arp.extend([
            load(Network, 0, 6),
            Expr::Cmp {
                eq: true,
                data: ARP_ETHER_IPV4.to_vec(),
            },
            load(Network, 14, 4),
            one_of(KeyKind::Ipv4, own4.iter().cloned().chain([vec![0; 4]])),
        ]);
        rules.push(rule(arp, Verdict::Accept));
        let mut ip: Vec<Expr> = proto(ETH_P_IP).into();
        ip.extend([load(Network, 12, 4), one_of(KeyKind::Ipv4, own4)]);
        rules.push(rule(ip, Verdict::Accept));
    }
    let v6 = Verdict::Jump(format!("v6_{i}"));
    let own6: Vec<Vec<u8>> = l.ips6().map(|n| ip_bytes(n.addr())).collect();
    if !own6.is_empty() {
        let mut r: Vec<Expr> = proto(ETH_P_IPV6).into();
        r.extend([load(Network, 8, 16), one_of(KeyKind::Ipv6, own6)]);
        rules.push(rule(r, v6.clone()));
    }
    let mut ll: Vec<Expr> = proto(ETH_P_IPV6).into();
    ll.push(load(Network, 8, 16));
    ll.extend(link_local(mac));
    rules.push(rule(ll, v6));
    // Duplicate-address detection and multicast listener reports come
    // from the unspecified address.
    let mut dad: Vec<Expr> = proto(ETH_P_IPV6).into();
    dad.extend([
        load(Network, 8, 16),
        Expr::Cmp {
            eq: true,
            data: vec![0; 16],
        },
    ]);
    dad.extend(l4(IPPROTO_ICMPV6));
    dad.extend([
        load(Transport, 0, 1),
        one_of(
            KeyKind::Icmp6Type,
            [vec![ND_NEIGHBOR_SOLICIT], vec![MLD2_LISTENER_REPORT]],
        ),
    ]);
    rules.push(rule(dad, Verdict::Accept));
    Chain {
        name: format!("from_{i}"),
        hook: Some((Hook::Ingress, l.host.clone())),
        policy_accept: false,
        rules,
    }
}

/// IPv6 from a source the VE may use: only neighbour adverts need a
/// look, at their target.
fn v6_sources(i: usize, l: &LinkPlan) -> Chain {
    use Base::Transport;
    let advert = || -> Vec<Expr> {
        let mut r: Vec<Expr> = l4(IPPROTO_ICMPV6).into();
        r.extend([
            load(Transport, 0, 1),
            Expr::Cmp {
                eq: true,
                data: vec![ND_NEIGHBOR_ADVERT],
            },
        ]);
        r
    };
    let mut rules = Vec::new();
    let own6: Vec<Vec<u8>> = l.ips6().map(|n| ip_bytes(n.addr())).collect();
    if !own6.is_empty() {
        let mut r = advert();
        r.extend([load(Transport, 8, 16), one_of(KeyKind::Ipv6, own6)]);
        rules.push(rule(r, Verdict::Accept));
    }
    let mut r = advert();
    r.push(load(Transport, 8, 16));
    r.extend(link_local(l.mac.map(|m| m.0)));
    rules.push(rule(r, Verdict::Accept));
    rules.push(rule(advert(), Verdict::Drop));
    rules.push(rule([], Verdict::Accept));
    Chain {
        name: format!("v6_{i}"),
        hook: None,
        policy_accept: true,
        rules,
    }
}

/// What a bridge may deliver to a bridged VE: frames for its MAC,
/// broadcast and multicast.
fn to_ve(i: usize, l: &LinkPlan) -> Option<Chain> {
    let mac = l.mac?;
    Some(Chain {
        name: format!("to_{i}"),
        hook: Some((Hook::Egress, l.host.clone())),
        policy_accept: true,
        rules: vec![
            rule(
                [
                    load(Base::Link, 0, 1),
                    Expr::Mask(vec![1]),
                    Expr::Cmp {
                        eq: true,
                        data: vec![1],
                    },
                ],
                Verdict::Accept,
            ),
            rule(
                [
                    load(Base::Link, 0, 6),
                    Expr::Cmp {
                        eq: false,
                        data: mac.0.to_vec(),
                    },
                ],
                Verdict::Drop,
            ),
        ],
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::{parse_ve_address, Netif};

    #[test]
    fn routed_link() {
        let net = VeNetwork {
            ips: vec![
                parse_ve_address("192.0.2.11").unwrap(),
                parse_ve_address("2001:db8::11").unwrap(),
            ],
            ..Default::default()
        };
        let c = chains("101", &net);
        assert_eq!(c.len(), 2, "from_0 and v6_0, no egress chain");
        assert_eq!(c[0].hook, Some((Hook::Ingress, "kv101_eth0".into())));
        assert!(!c[0].policy_accept);
        // The IPv4 source rule holds exactly the VE's address.
        let ip_rule = c[0]
            .rules
            .iter()
            .find(|r| {
                r.contains(&Expr::Payload {
                    base: Base::Network,
                    offset: 12,
                    len: 4,
                })
            })
            .unwrap();
        assert!(ip_rule.contains(&Expr::Lookup {
            keys: vec![vec![192, 0, 2, 11]],
            kind: KeyKind::Ipv4
        }));
        assert_eq!(ip_rule.last(), Some(&Expr::Verdict(Verdict::Accept)));
        // Every rule ends in a verdict, and every register load is 1-16 bytes.
        for ch in &c {
            for r in &ch.rules {
                assert!(matches!(r.last(), Some(Expr::Verdict(_))), "{r:?}");
            }
        }
    }

    #[test]
    fn bridged_link_filters_mac_both_ways() {
        let net = VeNetwork {
            netifs: vec![
                Netif::parse("eth1,bridge=br0,mac=02:00:00:00:01:02,ip=198.51.100.5/24").unwrap(),
            ],
            ..Default::default()
        };
        let c = chains("101", &net);
        assert_eq!(c.len(), 3);
        let mac = vec![2, 0, 0, 0, 1, 2];
        assert!(c[0].rules[1].contains(&Expr::Cmp {
            eq: false,
            data: mac.clone()
        }));
        assert_eq!(c[2].hook, Some((Hook::Egress, "kv101_eth1".into())));
        assert!(c[2].rules[1].contains(&Expr::Cmp {
            eq: false,
            data: mac
        }));
        assert_eq!(
            eui64_link_local([2, 0, 0, 0, 1, 2]).to_string(),
            "fe80::ff:fe00:102"
        );
    }

    #[test]
    fn no_links_no_chains() {
        assert!(chains("101", &VeNetwork::default()).is_empty());
    }
}

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
//!   more than the egress rate                          drop     (with --rate)
//!   tcp from { own IPv4 } or { own IPv6 }              accept   (the common case)
//!   icmpv6 with an unreadable header (fragments)       drop     (chain icmp6_i)
//!   icmpv6 type { MLD query, router-advert, redirect, renumbering } drop
//!   icmp type { redirect, router-advert }, igmp query  drop
//!   udp sport { 67, 547 }, udp dport { 68, 546 }       drop     (no DHCP server)
//!   meta protocol { ip, arp }                          accept   (dhcp=yes)
//!   arp (Ethernet/IPv4) sender IP { 0.0.0.0, own IPv4 } accept
//!   ip saddr { own IPv4 }                              accept
//!   ip6 saddr { own IPv6 }                             jump v6_i
//!   ip6 saddr link-local (fe80::/10; bridged: EUI-64)  jump v6_i
//!   ip6 saddr :: NS for its own addresses, MLDv2 report accept   (DAD)
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
const IPPROTO_TCP: u8 = 6;
const IPPROTO_UDP: u8 = 17;
const IPPROTO_ICMPV6: u8 = 58;
const ND_NEIGHBOR_SOLICIT: u8 = 135;
const ND_NEIGHBOR_ADVERT: u8 = 136;
const ND_ROUTER_ADVERT: u8 = 134;
const ND_REDIRECT: u8 = 137;
const ROUTER_RENUMBERING: u8 = 138;
const MLD2_LISTENER_REPORT: u8 = 143;
const ICMP_REDIRECT: u8 = 5;
const IPPROTO_IGMP: u8 = 2;
const IGMP_MEMBERSHIP_QUERY: u8 = 0x11;
const MLD_LISTENER_QUERY: u8 = 130;
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
    /// Back to the chain that jumped here.
    Return,
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
    /// True while more than `bytes_per_sec` pass (a policer whose bucket
    /// holds `burst` bytes and, as nf_tables' limit does, one second).
    Limit {
        bytes_per_sec: u64,
        burst: u32,
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
    [Expr::Meta(key), is(data)]
}

/// The register equals `data`.
fn is(data: &[u8]) -> Expr {
    Expr::Cmp {
        eq: true,
        data: data.to_vec(),
    }
}

/// The register differs from `data`.
fn is_not(data: &[u8]) -> Expr {
    Expr::Cmp {
        eq: false,
        data: data.to_vec(),
    }
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
        Some(m) => vec![is(&eui64_link_local(m).octets())],
        None => {
            let mut mask = vec![0u8; 16];
            mask[0] = 0xff;
            mask[1] = 0xc0;
            let mut net = vec![0u8; 16];
            net[0] = 0xfe;
            net[1] = 0x80;
            vec![Expr::Mask(mask), is(&net)]
        }
    }
}

/// Every chain of VE `ve`'s netdev table for `net` (empty: no table).
pub fn chains(ve: &str, net: &VeNetwork) -> Vec<Chain> {
    let mut out = Vec::new();
    let limit = net.rate.egress.map(|r| r.bits_per_sec() / 8);
    for (i, l) in plan::links(ve, net).iter().enumerate() {
        out.push(from_ve(i, l, limit));
        out.push(icmp6_header(i));
        out.push(v6_sources(i, l));
        if let Some(to) = to_ve(i, l) {
            out.push(to);
        }
    }
    out
}

/// An ICMPv6 packet whose header cannot be read (a fragment, or a first
/// fragment that ends before it) is dropped: the type checks that follow
/// could not see it. Neighbour discovery is never fragmented (RFC 6980).
fn icmp6_header(i: usize) -> Chain {
    Chain {
        name: format!("icmp6_{i}"),
        hook: None,
        policy_accept: true,
        rules: vec![
            rule(
                [load(Base::Transport, 0, 1), Expr::Mask(vec![0]), is(&[0])],
                Verdict::Return,
            ),
            rule([], Verdict::Drop),
        ],
    }
}

fn from_ve(i: usize, l: &LinkPlan, limit: Option<u64>) -> Chain {
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
        rules.push(rule([load(Link, 6, 6), is_not(&m)], Verdict::Drop));
        let mut arp: Vec<Expr> = proto(ETH_P_ARP).into();
        arp.extend([load(Network, 8, 6), is_not(&m)]);
        rules.push(rule(arp, Verdict::Drop));
    }
    // The egress rate: a policer here, where nothing can skip the filter
    // (a tc redirect on ingress would take packets past it).
    if let Some(bytes) = limit {
        rules.push(rule(
            [Expr::Limit {
                bytes_per_sec: bytes,
                burst: (bytes / 100).max(64 << 10) as u32,
            }],
            Verdict::Drop,
        ));
    }
    // The common case first: TCP from the VE's own addresses, which none
    // of the checks below concern.
    let own4: Vec<Vec<u8>> = l.ips4().map(|n| ip_bytes(n.addr())).collect();
    let own6: Vec<Vec<u8>> = l.ips6().map(|n| ip_bytes(n.addr())).collect();
    let dhcp = matches!(l.kind, LinkKind::Bridged { dhcp: true, .. });
    for (p, offset, kind, own) in [
        (ETH_P_IP, 12, KeyKind::Ipv4, &own4),
        (ETH_P_IPV6, 8, KeyKind::Ipv6, &own6),
    ] {
        if own.is_empty() || (dhcp && p == ETH_P_IP) {
            continue;
        }
        let mut r: Vec<Expr> = proto(p).into();
        r.extend(l4(IPPROTO_TCP));
        let len = if p == ETH_P_IP { 4 } else { 16 };
        r.extend([
            load(Network, offset, len),
            one_of(kind, own.iter().cloned()),
        ]);
        rules.push(rule(r, Verdict::Accept));
    }
    let mut icmp6: Vec<Expr> = l4(IPPROTO_ICMPV6).into();
    icmp6.push(Expr::Verdict(Verdict::Jump(format!("icmp6_{i}"))));
    rules.push(icmp6);
    // A VE is never a router, a multicast querier nor a DHCP server for
    // its neighbours.
    for (p, kind, types) in [
        (
            IPPROTO_ICMPV6,
            KeyKind::Icmp6Type,
            vec![
                MLD_LISTENER_QUERY,
                ND_ROUTER_ADVERT,
                ND_REDIRECT,
                ROUTER_RENUMBERING,
            ],
        ),
        (
            IPPROTO_ICMP,
            KeyKind::IcmpType,
            vec![ICMP_REDIRECT, ICMP_ROUTER_ADVERT],
        ),
        (IPPROTO_IGMP, KeyKind::IcmpType, vec![IGMP_MEMBERSHIP_QUERY]),
    ] {
        let mut r: Vec<Expr> = l4(p).into();
        r.extend([
            load(Transport, 0, 1),
            one_of(kind, types.into_iter().map(|t| vec![t])),
        ]);
        rules.push(rule(r, Verdict::Drop));
    }
    // DHCP server replies, whatever their source port: to a client port.
    for offset in [0, 2] {
        let ports: [u16; 2] = if offset == 0 { [67, 547] } else { [68, 546] };
        let mut r: Vec<Expr> = l4(IPPROTO_UDP).into();
        r.extend([
            load(Transport, offset, 2),
            one_of(KeyKind::Port, ports.map(|p| p.to_be_bytes().to_vec())),
        ]);
        rules.push(rule(r, Verdict::Drop));
    }
    if dhcp {
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
            is(&ARP_ETHER_IPV4),
            load(Network, 14, 4),
            one_of(KeyKind::Ipv4, own4.iter().cloned().chain([vec![0; 4]])),
        ]);
        rules.push(rule(arp, Verdict::Accept));
        let mut ip: Vec<Expr> = proto(ETH_P_IP).into();
        ip.extend([load(Network, 12, 4), one_of(KeyKind::Ipv4, own4)]);
        rules.push(rule(ip, Verdict::Accept));
    }
    let v6 = Verdict::Jump(format!("v6_{i}"));
    if !own6.is_empty() {
        let mut r: Vec<Expr> = proto(ETH_P_IPV6).into();
        r.extend([load(Network, 8, 16), one_of(KeyKind::Ipv6, own6.clone())]);
        rules.push(rule(r, v6.clone()));
    }
    let mut ll: Vec<Expr> = proto(ETH_P_IPV6).into();
    ll.push(load(Network, 8, 16));
    ll.extend(link_local(mac));
    rules.push(rule(ll, v6));
    // From the unspecified address: duplicate-address detection of the
    // VE's own addresses (never a neighbour's), and listener reports.
    let unspecified = || -> Vec<Expr> {
        let mut r: Vec<Expr> = proto(ETH_P_IPV6).into();
        r.extend([load(Network, 8, 16), is(&[0; 16])]);
        r.extend(l4(IPPROTO_ICMPV6));
        r.push(load(Transport, 0, 1));
        r
    };
    let solicit = || -> Vec<Expr> {
        let mut r = unspecified();
        r.extend([is(&[ND_NEIGHBOR_SOLICIT]), load(Transport, 8, 16)]);
        r
    };
    if !own6.is_empty() {
        let mut r = solicit();
        r.push(one_of(KeyKind::Ipv6, own6));
        rules.push(rule(r, Verdict::Accept));
    }
    let mut r = solicit();
    r.extend(link_local(mac));
    rules.push(rule(r, Verdict::Accept));
    let mut r = unspecified();
    r.push(is(&[MLD2_LISTENER_REPORT]));
    rules.push(rule(r, Verdict::Accept));
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
        r.extend([load(Transport, 0, 1), is(&[ND_NEIGHBOR_ADVERT])]);
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
                [load(Base::Link, 0, 1), Expr::Mask(vec![1]), is(&[1])],
                Verdict::Accept,
            ),
            rule([load(Base::Link, 0, 6), is_not(&mac.0)], Verdict::Drop),
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
        assert_eq!(c.len(), 3, "from_0, icmp6_0 and v6_0, no egress chain");
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
        assert_eq!(c.len(), 4);
        let mac = vec![2, 0, 0, 0, 1, 2];
        assert!(c[0].rules[1].contains(&Expr::Cmp {
            eq: false,
            data: mac.clone()
        }));
        assert_eq!(c[3].hook, Some((Hook::Egress, "kv101_eth1".into())));
        assert!(c[3].rules[1].contains(&Expr::Cmp {
            eq: false,
            data: mac
        }));
        assert_eq!(
            eui64_link_local([2, 0, 0, 0, 1, 2]).to_string(),
            "fe80::ff:fe00:102"
        );
    }

    #[test]
    fn an_egress_rate_is_a_policer_after_the_drops() {
        let net = VeNetwork {
            ips: vec![parse_ve_address("192.0.2.11").unwrap()],
            rate: crate::model::RateLimit::parse("egress=8mbit").unwrap(),
            ..Default::default()
        };
        let c = chains("101", &net);
        let at =
            |f: &dyn Fn(&Expr) -> bool| c[0].rules.iter().position(|r| r.iter().any(f)).unwrap();
        let limit = at(&|e| {
            matches!(
                e,
                Expr::Limit {
                    bytes_per_sec: 1_000_000,
                    ..
                }
            )
        });
        let accept_ip = at(&|e| {
            *e == Expr::Payload {
                base: Base::Network,
                offset: 12,
                len: 4,
            }
        });
        let vlan = at(&|e| {
            *e == Expr::Payload {
                base: Base::Link,
                offset: 12,
                len: 2,
            }
        });
        assert!(vlan < limit && limit < accept_ip);
    }

    #[test]
    fn no_links_no_chains() {
        assert!(chains("101", &VeNetwork::default()).is_empty());
    }
}

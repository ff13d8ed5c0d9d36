//! What the VE's `netdev` table holds: per VE link `i`, a chain on the
//! ingress of the host end (policy drop: what the VE sends) and, on a
//! bridge, one on its egress (what the bridge delivers to the VE). IPv6
//! has chains of its own ([`super::ipv6`], which also argues why the
//! checks below read the same transport header as the receivers).
//!
//! ```text
//! chain from_i (ingress of the host end, policy drop)
//!   ether type { 8021q, 8021ad }                         drop
//!   ether saddr != MAC                                   drop     (bridged)
//!   arp sender MAC != MAC                                drop     (bridged)
//!   more than the egress rate                            drop     (with --rate)
//!   tcp, ip saddr { own IPv4 }                           accept   (the common case)
//!   ip6 nexthdr tcp, ip6 saddr { own IPv6 }              accept   (the same in IPv6)
//!   meta protocol ip6                                    goto ip6_i
//!   ip protocol { ah, eigrp, ospf, pim, vrrp }           drop
//!   ip frag-off not 0, ip saddr { own IPv4 }             accept   (a non-first fragment)
//!   icmp type { redirect, router-advert }                drop
//!   igmp type != { v1, v2, v3 report, leave }            drop
//!   udp sport 67, udp dport 68                           drop     (no DHCP server)
//!   udp sport or dport { routers' ports }                drop     (RIP, HSRP, ...)
//!   arp (Ethernet/IPv4), meta protocol ip                accept   (dhcp=yes)
//!   arp (Ethernet/IPv4) sender IP { own IPv4 }           accept
//!   arp (Ethernet/IPv4) sender IP 0.0.0.0,
//!       target IP { own IPv4 }                           accept   (probe, RFC 5227)
//!   ip saddr { own IPv4 }                                accept
//! chain to_i (egress of a bridged host end, policy accept)
//!   ether daddr multicast or broadcast                   accept
//!   ether daddr != MAC                                   drop
//! ```
//!
//! A VE is never a router, a multicast router or querier, a first-hop
//! redundancy peer, nor a DHCP server for its neighbours: what routing and
//! redundancy protocols send is dropped ([`NEVER_SENT`], [`ROUTER_PORTS`],
//! the same in IPv6), and of IGMP only what a host sends passes
//! (membership reports and leaves: no queries, PIMv1, DVMRP, mtrace or
//! multicast router discovery). The protocol is in every IPv4 fragment's
//! header, so that drop comes before later fragments are let through.
//! Tunnels (IPIP, 6in4, GRE) pass: customers run them to remote endpoints,
//! and what they carry is for the endpoint that accepts them.
//!
//! An ARP probe (sender 0.0.0.0) asks whether its target is in use, and a
//! host checking that address for itself takes one from another MAC as a
//! conflict (RFC 5227, 2.1.1): the VE may probe its own addresses only.
//! With `dhcp=yes` the host does not know the VE's IPv4 addresses, so any
//! source, claim and probe passes (the MAC is still its own).
//!
//! IPv4 has no extension headers: nf_tables and receivers find the
//! transport header after the IP header's options. Ports and ICMP and IGMP
//! types are in the first 8 bytes of a datagram's payload, which only a
//! fragment at offset 0 carries (others start at 8 or more; a first
//! fragment carries 0 or a multiple of 8 bytes, so one too short for them
//! holds none of them, and they come from another first fragment, checked
//! too). Later fragments hold only data: they are accepted on their source
//! before the transport checks, which would read that data (on kernels
//! before a 2026 fix, a transport load of 4 bytes or less on them does).
//!
//! The link-layer addresses a VE announces are its MAC on a bridge: the
//! frame's source, ARP's sender hardware address, and the neighbour
//! discovery options ([`super::ipv6`]). On a routed link they are not
//! checked: the host end is the VE's only neighbour, and a wrong address
//! there only misdirects the host's frames for the VE's own addresses on
//! that link (a neighbour entry is per interface).

use crate::model::VeNetwork;
use crate::plan::{self, LinkKind, LinkPlan};

use super::expr::{
    ip_bytes, is, is_not, l4, load, none_of_bytes, one_of, one_of_bytes, proto, rule, Base, Chain,
    Expr, Hook, KeyKind, MetaKey, Verdict, ETH_P_ARP, ETH_P_IP, ETH_P_IPV6,
};
use super::ipv6;

const ETH_P_8021Q: u16 = 0x8100;
const ETH_P_8021AD: u16 = 0x88a8;
/// ARP header start for Ethernet and IPv4: hardware type 1, protocol
/// 0x0800, address lengths 6 and 4.
const ARP_ETHER_IPV4: [u8; 6] = [0, 1, 8, 0, 6, 4];
pub const IPPROTO_ICMP: u8 = 1;
pub const IPPROTO_IGMP: u8 = 2;
pub const IPPROTO_TCP: u8 = 6;
pub const IPPROTO_UDP: u8 = 17;
pub const IPPROTO_AH: u8 = 51;
pub const IPPROTO_EIGRP: u8 = 88;
pub const IPPROTO_OSPF: u8 = 89;
pub const IPPROTO_PIM: u8 = 103;
pub const IPPROTO_VRRP: u8 = 112;
/// IP protocols (IPv4 protocol, IPv6 next header) a VE never sends: AH,
/// which nf_tables does not look behind (nor do the checks here), and
/// routing and first-hop redundancy protocols (EIGRP, OSPF, PIM, VRRP and
/// CARP, which shares VRRP's number).
pub const NEVER_SENT: [u8; 5] = [
    IPPROTO_AH,
    IPPROTO_EIGRP,
    IPPROTO_OSPF,
    IPPROTO_PIM,
    IPPROTO_VRRP,
];
/// UDP ports of routing and first-hop redundancy protocols, dropped as
/// source or destination, IPv4 and IPv6: RIP (520), RIPng (521), HSRP
/// (1985; 2029 over IPv6), GLBP (3222), Babel (6696). A router takes
/// their messages only to (and, for RIP, from) these ports.
pub const ROUTER_PORTS: [u16; 6] = [520, 521, 1985, 2029, 3222, 6696];
const ICMP_REDIRECT: u8 = 5;
const ICMP_ROUTER_ADVERT: u8 = 9;
/// The IGMP a host sends (RFC 1112, 2236, 3376): membership reports of
/// versions 1, 2 and 3, and leaves. Everything else is a router's or a
/// tool's: queries (0x11), DVMRP (0x13), PIMv1 (0x14), mtrace (0x1e,
/// 0x1f), multicast router discovery (0x30-0x32).
const IGMP_HOST: [u8; 4] = [0x12, 0x16, 0x17, 0x22];

/// Every chain of VE `ve`'s netdev table for `net` (empty: no table).
pub fn chains(ve: &str, net: &VeNetwork) -> Vec<Chain> {
    let mut out = Vec::new();
    let limit = net.rate.egress.map(|r| r.bits_per_sec() / 8);
    for (i, l) in plan::links(ve, net).iter().enumerate() {
        out.push(from_ve(i, l, limit));
        out.extend(ipv6::chains(i, l));
        if let Some(to) = to_ve(i, l) {
            out.push(to);
        }
    }
    out
}

/// Whether the link takes any IPv4 source (the lease is unknown here).
fn dhcp(l: &LinkPlan) -> bool {
    matches!(l.kind, LinkKind::Bridged { dhcp: true, .. })
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
    if let Some(m) = l.mac.map(|m| m.0) {
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
    let own4: Vec<Vec<u8>> = l.ips4().map(|n| ip_bytes(n.addr())).collect();
    let own6: Vec<Vec<u8>> = l.ips6().map(|n| ip_bytes(n.addr())).collect();
    let dhcp = dhcp(l);
    let from_own4 = |r: &mut Vec<Expr>| {
        r.extend([load(Network, 12, 4), one_of(KeyKind::Ipv4, own4.clone())]);
    };
    // The common case first: TCP from the VE's own addresses, which none
    // of the checks below concern. In IPv6 only right after the IPv6
    // header (see `ipv6`: with extension headers, what a receiver reads
    // as the transport header must be checked first).
    if !own4.is_empty() && !dhcp {
        let mut r: Vec<Expr> = proto(ETH_P_IP).into();
        r.extend(l4(IPPROTO_TCP));
        from_own4(&mut r);
        rules.push(rule(r, Verdict::Accept));
    }
    if !own6.is_empty() {
        let mut r: Vec<Expr> = proto(ETH_P_IPV6).into();
        r.extend([load(Network, 6, 1), is(&[IPPROTO_TCP])]);
        r.extend([load(Network, 8, 16), one_of(KeyKind::Ipv6, own6)]);
        rules.push(rule(r, Verdict::Accept));
    }
    let mut r: Vec<Expr> = proto(ETH_P_IPV6).into();
    r.push(Expr::Verdict(Verdict::Goto(ipv6::entry(i))));
    rules.push(r);
    // The protocol is in every fragment's header: none of them passes.
    let mut r: Vec<Expr> = proto(ETH_P_IP).into();
    r.extend([
        Expr::Meta(MetaKey::L4Proto),
        one_of_bytes(KeyKind::InetProto, &NEVER_SENT),
    ]);
    rules.push(rule(r, Verdict::Drop));
    // IPv4 fragments after the first hold no transport header (and on
    // kernels before 2026 a short transport load would read their data):
    // their source is all there is to check.
    if !own4.is_empty() || dhcp {
        let mut r: Vec<Expr> = proto(ETH_P_IP).into();
        r.extend([
            load(Network, 6, 2),
            Expr::Mask(vec![0x1f, 0xff]),
            is_not(&[0, 0]),
        ]);
        if !dhcp {
            from_own4(&mut r);
        }
        rules.push(rule(r, Verdict::Accept));
    }
    for (p, types) in [
        (
            IPPROTO_ICMP,
            one_of_bytes(KeyKind::IcmpType, &[ICMP_REDIRECT, ICMP_ROUTER_ADVERT]),
        ),
        (IPPROTO_IGMP, none_of_bytes(KeyKind::IgmpType, &IGMP_HOST)),
    ] {
        let mut r: Vec<Expr> = proto(ETH_P_IP).into();
        r.extend(l4(p));
        r.extend([load(Transport, 0, 1), types]);
        rules.push(rule(r, Verdict::Drop));
    }
    // DHCP server replies, whatever their source port: to a client port.
    for (offset, port) in [(0, 67u16), (2, 68)] {
        let mut r: Vec<Expr> = proto(ETH_P_IP).into();
        r.extend(l4(IPPROTO_UDP));
        r.extend([load(Transport, offset, 2), is(&port.to_be_bytes())]);
        rules.push(rule(r, Verdict::Drop));
    }
    for r in router_ports(IPPROTO_UDP) {
        let mut with: Vec<Expr> = proto(ETH_P_IP).into();
        with.extend(r);
        rules.push(with);
    }
    // Only Ethernet/IPv4 ARP, whose sender addresses are at bytes 8-17
    // and target address at 24-27 (where the checks above and below read
    // them): other lengths would put them elsewhere for a receiver.
    let arp = || -> Vec<Expr> {
        let mut r: Vec<Expr> = proto(ETH_P_ARP).into();
        r.extend([load(Network, 0, 6), is(&ARP_ETHER_IPV4)]);
        r
    };
    if dhcp {
        rules.push(rule(arp(), Verdict::Accept));
        rules.push(rule(proto(ETH_P_IP), Verdict::Accept));
    } else if !own4.is_empty() {
        let mut r = arp();
        r.extend([load(Network, 14, 4), one_of(KeyKind::Ipv4, own4.clone())]);
        rules.push(rule(r, Verdict::Accept));
        let mut r = arp();
        r.extend([
            load(Network, 14, 4),
            is(&[0; 4]),
            load(Network, 24, 4),
            one_of(KeyKind::Ipv4, own4.clone()),
        ]);
        rules.push(rule(r, Verdict::Accept));
        let mut r: Vec<Expr> = proto(ETH_P_IP).into();
        from_own4(&mut r);
        rules.push(rule(r, Verdict::Accept));
    }
    Chain {
        name: format!("from_{i}"),
        hook: Some((Hook::Ingress, l.host.clone())),
        policy_accept: false,
        rules,
    }
}

/// Rules that drop transport protocol `p` (UDP) from or to
/// [`ROUTER_PORTS`] (for IPv4 and IPv6: the caller adds the family).
pub fn router_ports(p: u8) -> Vec<Vec<Expr>> {
    let ports: Vec<Vec<u8>> = ROUTER_PORTS
        .iter()
        .map(|p| p.to_be_bytes().to_vec())
        .collect();
    [0, 2]
        .into_iter()
        .map(|offset| {
            let mut r: Vec<Expr> = l4(p).into();
            r.extend([
                load(Base::Transport, offset, 2),
                one_of(KeyKind::Port, ports.clone()),
            ]);
            rule(r, Verdict::Drop)
        })
        .collect()
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

    fn find<'a>(c: &'a Chain, e: &Expr) -> &'a Vec<Expr> {
        c.rules
            .iter()
            .find(|r| r.contains(e))
            .unwrap_or_else(|| panic!("no rule with {e:?} in {}", c.name))
    }

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
        assert!(c.iter().all(|c| c.name != "to_0"), "no egress chain");
        assert!(c.iter().all(|c| c.name != "nd6_0"), "no options check");
        assert_eq!(c[0].hook, Some((Hook::Ingress, "kv101_eth0".into())));
        assert!(!c[0].policy_accept);
        // The last IPv4 rule accepts exactly the VE's address.
        let ip_rule = c[0].rules.last().unwrap();
        assert!(ip_rule.contains(&one_of(KeyKind::Ipv4, [vec![192, 0, 2, 11]])));
        assert_eq!(ip_rule.last(), Some(&Expr::Verdict(Verdict::Accept)));
        // Every rule ends in a verdict; every jump goes to a chain here.
        for ch in &c {
            for r in &ch.rules {
                match r.last() {
                    Some(Expr::Verdict(Verdict::Jump(to) | Verdict::Goto(to))) => {
                        assert!(c.iter().any(|c| &c.name == to), "{to}")
                    }
                    Some(Expr::Verdict(_)) => {}
                    _ => panic!("{r:?}"),
                }
            }
        }
    }

    #[test]
    fn arp_probes_only_for_its_own_addresses() {
        let net = VeNetwork {
            netifs: vec![Netif::parse("eth1,bridge=br0,ip=198.51.100.5/24").unwrap()],
            ..Default::default()
        };
        let c = chains("101", &net);
        let probe = find(&c[0], &is(&[0; 4]));
        let target = probe.iter().position(|e| {
            *e == Expr::Payload {
                base: Base::Network,
                offset: 24,
                len: 4,
            }
        });
        assert!(target.is_some(), "the target is checked: {probe:?}");
        assert!(probe.contains(&one_of(KeyKind::Ipv4, [vec![198, 51, 100, 5]])));
        // With dhcp=yes the addresses are unknown: any Ethernet/IPv4 ARP
        // passes.
        let net = VeNetwork {
            netifs: vec![Netif::parse("eth1,bridge=br0,dhcp=yes").unwrap()],
            ..Default::default()
        };
        let c = chains("101", &net);
        assert!(!c[0].rules.iter().any(|r| r.contains(&is(&[0; 4]))));
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
        let mac = vec![2, 0, 0, 0, 1, 2];
        assert!(c[0].rules[1].contains(&is_not(&mac)));
        let to = c.iter().find(|c| c.name == "to_0").unwrap();
        assert_eq!(to.hook, Some((Hook::Egress, "kv101_eth1".into())));
        assert!(to.rules[1].contains(&is_not(&mac)));
    }

    #[test]
    fn multicast_routers_are_dropped() {
        let net = VeNetwork {
            ips: vec![parse_ve_address("192.0.2.11").unwrap()],
            ..Default::default()
        };
        let c = chains("101", &net);
        let igmp = find(&c[0], &is(&[IPPROTO_IGMP]));
        assert!(igmp.contains(&none_of_bytes(KeyKind::IgmpType, &[0x12, 0x16, 0x17, 0x22])));
        assert_eq!(igmp.last(), Some(&Expr::Verdict(Verdict::Drop)));
    }

    #[test]
    fn routing_protocols_are_dropped() {
        let net = VeNetwork {
            ips: vec![parse_ve_address("192.0.2.11").unwrap()],
            ..Default::default()
        };
        let c = chains("101", &net);
        let protos = find(&c[0], &one_of_bytes(KeyKind::InetProto, &NEVER_SENT));
        assert_eq!(protos.last(), Some(&Expr::Verdict(Verdict::Drop)));
        for p in [51, 88, 89, 103, 112] {
            assert!(NEVER_SENT.contains(&p), "{p}");
        }
        // Tunnels pass: IPIP, 6in4, GRE.
        for p in [4, 41, 47] {
            assert!(!NEVER_SENT.contains(&p), "{p}");
        }
        let ports = one_of(
            KeyKind::Port,
            ROUTER_PORTS.iter().map(|p| p.to_be_bytes().to_vec()),
        );
        let both: Vec<&Vec<Expr>> = c[0].rules.iter().filter(|r| r.contains(&ports)).collect();
        assert_eq!(both.len(), 2, "source and destination port");
        for (r, offset) in both.iter().zip([0, 2]) {
            assert!(r.contains(&load(Base::Transport, offset, 2)));
            assert!(r.contains(&is(&[IPPROTO_UDP])));
            assert_eq!(r.last(), Some(&Expr::Verdict(Verdict::Drop)));
        }
        // Before the accepts: the drops come first.
        let at = |r: &Vec<Expr>| c[0].rules.iter().position(|x| x == r).unwrap();
        assert!(at(both[1]) < c[0].rules.len() - 3);
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

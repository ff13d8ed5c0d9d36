//! The IPv6 chains of a VE link `i`: what [`super::rules`]' `from_i` sends
//! here (all IPv6 but TCP right after the IPv6 header) ends in accept or
//! drop.
//!
//! ```text
//! chain ip6_i
//!   exthdr frag exists                                   goto frag6_i
//!   meta l4proto (known)                                 goto l4v6_i
//!                                                        drop     (a chain nf_tables cannot walk)
//! chain frag6_i (a fragment)
//!   frag nexthdr { icmpv6, extension headers }           drop
//!   frag frag-off not 0                                  goto src6_i  (not the first: data only)
//!   frag nexthdr udp, 8 bytes of udp header              goto l4v6_i
//!   frag nexthdr udp                                     drop     (a first fragment cut short)
//!                                                        goto l4v6_i
//! chain l4v6_i (the transport header, where receivers find it)
//!   meta l4proto { ah, eigrp, ospf, pim, vrrp,
//!                  mobility, hip, shim6, 253, 254 }      drop
//!   meta l4proto icmpv6                                  jump icmp6_i
//!   udp sport 547, udp dport 546                         drop     (no DHCPv6 server)
//!   udp sport or dport { routers' ports }                drop     (RIPng, HSRP, ...)
//!                                                        goto src6_i
//! chain icmp6_i
//!   icmpv6 type { mld-query, router-advert, redirect,
//!                 renumbering, inverse ND solicit, -advert,
//!                 mrd-advert, -solicit, -terminate }     drop
//!   icmpv6 type { router-solicit, nd-solicit, nd-advert } goto nd6_i (bridged)
//!   icmpv6 type (there is one)                           return
//!                                                        drop     (too short for a type)
//! chain nd6_i (bridged: the only link-layer address is the VE's MAC)
//!   ip6 nexthdr != icmpv6                                drop
//!   RS, NS, NA without options                           return
//!   RS, NS with [source MAC], NA with [target MAC]       return
//!   NS with [nonce] (duplicate address detection)        return
//!                                                        drop
//! chain src6_i (where the VE's IPv6 may come from)
//!   ip6 saddr { own IPv6 }                               goto v6_i
//!   ip6 saddr link-local (fe80::/10; bridged: EUI-64)    goto v6_i
//!   ip6 saddr :: NS for its own addresses, MLDv2 report  accept   (DAD)
//!                                                        drop
//! chain v6_i (a source the VE may use)
//!   icmpv6 neighbour advert, target { own IPv6 }         accept
//!   icmpv6 neighbour advert, target link-local           accept
//!   icmpv6 neighbour advert                              drop
//!                                                        accept
//! ```
//!
//! # What the checks read is what receivers read
//!
//! The drops that look past the IPv6 header (ICMPv6 types, neighbour
//! advert targets and options, UDP ports, the transport protocol) read the
//! transport header where nf_tables finds it: at the end of the extension
//! headers it walks (`ipv6_find_hdr`: hop-by-hop, routing, fragment and
//! destination options; it stops at AH). A receiver walks the same headers
//! of the packet it reassembled. Both find the same transport header:
//!
//! * a chain nf_tables cannot walk (cut short, or a non-first fragment
//!   whose fragment header names another extension header) has no
//!   transport protocol, and is dropped. A receiver cannot walk it either:
//!   the rest of a first fragment's chain could only come from later
//!   fragments, and RFC 7112 (which Linux keeps) discards such a fragment;
//!   here it goes anyway;
//! * the extension headers nf_tables does not walk are dropped: AH, and
//!   those it does not know (mobility, HIP, shim6, experiments: the rest
//!   of IANA's list), which a receiver could walk past. ESP is opaque:
//!   only a receiver holding its key reads what it carries;
//! * a fragment header must name the upper-layer protocol itself, and not
//!   ICMPv6. That header then starts the fragmentable part (offset 0), and
//!   every later fragment starts at 8 or more (offsets count 8 bytes), so
//!   none of them can replace a UDP header's ports, even at a receiver
//!   that takes overlapping fragments (RFC 5722 forbids it; Linux drops
//!   them). A first fragment of UDP must hold the whole UDP header. An
//!   extension header in the fragmentable part could instead put the
//!   upper-layer header past byte 8, within reach of a later fragment;
//! * later fragments hold no header: their source is all that is checked
//!   (no transport check sees them: before a 2026 fix a transport-header
//!   load of 4 bytes or less on them reads the IPv6 header instead of
//!   failing). No fragment of ICMPv6 passes: neighbour discovery must not
//!   be fragmented (RFC 6980), and nothing else in ICMPv6 a VE needs
//!   exceeds 1280 bytes (echo replies to larger pings do: those go
//!   unanswered);
//! * unfragmented, nf_tables reads the transport header at the same
//!   offset; it may read bytes past the payload length (a frame's
//!   padding), where a receiver finds the header cut short and drops it.
//!
//! Neighbour discovery options are checked at fixed offsets, so a
//! solicitation or advert may have none or exactly the one Linux sends
//! (RFC 4861: source or target link-layer address; RFC 7527: the nonce of
//! a DAD probe, which has no source address option), and no extension
//! header (the payload length is then the message's). A receiver that
//! kept the first or the last of repeated options would learn a MAC.

use std::net::Ipv6Addr;

use super::expr::{
    ip_bytes, is, is_not, l4, l4_known, load, one_of, one_of_bytes, readable, rule, Base, Chain,
    Expr, KeyKind, Verdict,
};
use super::rules::{router_ports, IPPROTO_AH, IPPROTO_UDP, NEVER_SENT};
use crate::plan::LinkPlan;

/// Extension header and protocol numbers (IANA).
const NEXTHDR_HOP: u8 = 0;
const NEXTHDR_ROUTING: u8 = 43;
const NEXTHDR_FRAGMENT: u8 = 44;
const NEXTHDR_ICMPV6: u8 = 58;
const NEXTHDR_NONE: u8 = 59;
const NEXTHDR_DEST: u8 = 60;
/// Extension headers nf_tables does not walk: mobility, HIP, shim6, and
/// the two for experiments.
const NEXTHDR_UNWALKED: [u8; 5] = [135, 139, 140, 253, 254];

const ND_ROUTER_SOLICIT: u8 = 133;
const ND_ROUTER_ADVERT: u8 = 134;
const ND_NEIGHBOR_SOLICIT: u8 = 135;
const ND_NEIGHBOR_ADVERT: u8 = 136;
const ND_REDIRECT: u8 = 137;
const ROUTER_RENUMBERING: u8 = 138;
/// Inverse neighbour discovery (RFC 3122): solicitation, advertisement.
const INVERSE_ND: [u8; 2] = [141, 142];
const MLD_LISTENER_QUERY: u8 = 130;
const MLD2_LISTENER_REPORT: u8 = 143;
/// Multicast router discovery (RFC 4286).
const MRD: [u8; 3] = [151, 152, 153];
/// Neighbour discovery options (RFC 4861, RFC 7527), one 8-byte unit.
const OPT_SOURCE_LL: [u8; 2] = [1, 1];
const OPT_TARGET_LL: [u8; 2] = [2, 1];
const OPT_NONCE: [u8; 2] = [14, 1];

/// The chain `from_i` sends IPv6 to.
pub fn entry(i: usize) -> String {
    format!("ip6_{i}")
}

fn name(what: &str, i: usize) -> String {
    format!("{what}_{i}")
}

fn goto(what: &str, i: usize) -> Verdict {
    Verdict::Goto(name(what, i))
}

/// The IPv6 chains of link `i`.
pub fn chains(i: usize, l: &LinkPlan) -> Vec<Chain> {
    let mac = l.mac.map(|m| m.0);
    let own6: Vec<Vec<u8>> = l.ips6().map(|n| ip_bytes(n.addr())).collect();
    let mut out = vec![
        Chain::regular(entry(i), headers(i)),
        Chain::regular(name("frag6", i), fragments(i)),
        Chain::regular(name("l4v6", i), transport(i)),
        Chain::regular(name("icmp6", i), icmp6(i, mac.is_some())),
    ];
    if let Some(m) = mac {
        out.push(Chain::regular(name("nd6", i), nd_options(m)));
    }
    out.push(Chain::regular(name("src6", i), sources(i, mac, &own6)));
    out.push(Chain::regular(name("v6", i), adverts(mac, own6)));
    out
}

fn headers(i: usize) -> Vec<Vec<Expr>> {
    vec![
        rule(
            [
                Expr::Exthdr {
                    kind: NEXTHDR_FRAGMENT,
                    offset: 0,
                    len: 1,
                    present: true,
                },
                is(&[1]),
            ],
            goto("frag6", i),
        ),
        rule(l4_known(), goto("l4v6", i)),
        rule([], Verdict::Drop),
    ]
}

/// A field of the fragment header.
fn frag(offset: u32, len: u32) -> Expr {
    Expr::Exthdr {
        kind: NEXTHDR_FRAGMENT,
        offset,
        len,
        present: false,
    }
}

fn fragments(i: usize) -> Vec<Vec<Expr>> {
    let mut not_upper = vec![
        NEXTHDR_HOP,
        NEXTHDR_ROUTING,
        NEXTHDR_FRAGMENT,
        IPPROTO_AH,
        NEXTHDR_ICMPV6,
        NEXTHDR_NONE,
        NEXTHDR_DEST,
    ];
    not_upper.extend(NEXTHDR_UNWALKED);
    let udp = || [frag(0, 1), is(&[IPPROTO_UDP])];
    let mut first_udp: Vec<Expr> = udp().into();
    first_udp.extend(readable(Base::Transport, 0, 8));
    vec![
        rule(
            [frag(0, 1), one_of_bytes(KeyKind::InetProto, &not_upper)],
            Verdict::Drop,
        ),
        // The offset (13 bits, then 2 reserved and the M flag).
        rule(
            [frag(2, 2), Expr::Mask(vec![0xff, 0xf8]), is_not(&[0, 0])],
            goto("src6", i),
        ),
        rule(first_udp, goto("l4v6", i)),
        rule(udp(), Verdict::Drop),
        rule([], goto("l4v6", i)),
    ]
}

fn transport(i: usize) -> Vec<Vec<Expr>> {
    let mut unwanted = NEVER_SENT.to_vec();
    unwanted.extend(NEXTHDR_UNWALKED);
    let mut rules = vec![
        rule(
            [
                Expr::Meta(super::expr::MetaKey::L4Proto),
                one_of_bytes(KeyKind::InetProto, &unwanted),
            ],
            Verdict::Drop,
        ),
        rule(l4(NEXTHDR_ICMPV6), Verdict::Jump(name("icmp6", i))),
    ];
    // DHCPv6 server replies, whatever their source port: to a client port.
    for (offset, port) in [(0, 547u16), (2, 546)] {
        let mut r: Vec<Expr> = l4(IPPROTO_UDP).into();
        r.extend([load(Base::Transport, offset, 2), is(&port.to_be_bytes())]);
        rules.push(rule(r, Verdict::Drop));
    }
    rules.extend(router_ports(IPPROTO_UDP));
    rules.push(rule([], goto("src6", i)));
    rules
}

fn icmp6(i: usize, bridged: bool) -> Vec<Vec<Expr>> {
    let mut never = vec![
        MLD_LISTENER_QUERY,
        ND_ROUTER_ADVERT,
        ND_REDIRECT,
        ROUTER_RENUMBERING,
    ];
    never.extend(INVERSE_ND);
    never.extend(MRD);
    let ty = || load(Base::Transport, 0, 1);
    let mut rules = vec![rule(
        [ty(), one_of_bytes(KeyKind::Icmp6Type, &never)],
        Verdict::Drop,
    )];
    if bridged {
        rules.push(rule(
            [
                ty(),
                one_of_bytes(
                    KeyKind::Icmp6Type,
                    &[ND_ROUTER_SOLICIT, ND_NEIGHBOR_SOLICIT, ND_NEIGHBOR_ADVERT],
                ),
            ],
            goto("nd6", i),
        ));
    }
    rules.push(rule(readable(Base::Transport, 0, 1), Verdict::Return));
    rules.push(rule([], Verdict::Drop));
    rules
}

/// Neighbour discovery from a bridged VE whose MAC is `mac`.
fn nd_options(mac: [u8; 6]) -> Vec<Vec<Expr>> {
    use Base::{Network, Transport};
    // `ty` with an IPv6 payload (the message, without extension headers)
    // of `len` bytes.
    let msg = |ty: &[u8], len: u16| -> Vec<Expr> {
        let mut r = vec![load(Transport, 0, 1)];
        r.push(if ty.len() == 1 {
            is(ty)
        } else {
            one_of_bytes(KeyKind::Icmp6Type, ty)
        });
        r.extend([load(Network, 4, 2), is(&len.to_be_bytes())]);
        r
    };
    let option = |ty: u8, len: u16, at: u32, opt: [u8; 2], with_mac: bool| -> Vec<Expr> {
        let mut r = msg(&[ty], len);
        if with_mac {
            let mut want = opt.to_vec();
            want.extend(mac);
            r.extend([load(Transport, at, 8), is(&want)]);
        } else {
            r.extend([load(Transport, at, 2), is(&opt)]);
        }
        rule(r, Verdict::Return)
    };
    vec![
        rule(
            [load(Network, 6, 1), is_not(&[NEXTHDR_ICMPV6])],
            Verdict::Drop,
        ),
        rule(msg(&[ND_ROUTER_SOLICIT], 8), Verdict::Return),
        rule(
            msg(&[ND_NEIGHBOR_SOLICIT, ND_NEIGHBOR_ADVERT], 24),
            Verdict::Return,
        ),
        option(ND_ROUTER_SOLICIT, 16, 8, OPT_SOURCE_LL, true),
        option(ND_NEIGHBOR_SOLICIT, 32, 24, OPT_SOURCE_LL, true),
        option(ND_NEIGHBOR_ADVERT, 32, 24, OPT_TARGET_LL, true),
        option(ND_NEIGHBOR_SOLICIT, 32, 24, OPT_NONCE, false),
        rule([], Verdict::Drop),
    ]
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

fn sources(i: usize, mac: Option<[u8; 6]>, own6: &[Vec<u8>]) -> Vec<Vec<Expr>> {
    use Base::{Network, Transport};
    let mut rules = Vec::new();
    if !own6.is_empty() {
        rules.push(rule(
            [
                load(Network, 8, 16),
                one_of(KeyKind::Ipv6, own6.iter().cloned()),
            ],
            goto("v6", i),
        ));
    }
    let mut ll = vec![load(Network, 8, 16)];
    ll.extend(link_local(mac));
    rules.push(rule(ll, goto("v6", i)));
    // From the unspecified address: duplicate-address detection of the
    // VE's own addresses (never a neighbour's), and listener reports.
    let unspecified = || -> Vec<Expr> {
        let mut r = vec![load(Network, 8, 16), is(&[0; 16])];
        r.extend(l4(NEXTHDR_ICMPV6));
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
        r.push(one_of(KeyKind::Ipv6, own6.iter().cloned()));
        rules.push(rule(r, Verdict::Accept));
    }
    let mut r = solicit();
    r.extend(link_local(mac));
    rules.push(rule(r, Verdict::Accept));
    let mut r = unspecified();
    r.push(is(&[MLD2_LISTENER_REPORT]));
    rules.push(rule(r, Verdict::Accept));
    rules.push(rule([], Verdict::Drop));
    rules
}

/// IPv6 from a source the VE may use: only neighbour adverts need a
/// look, at their target.
fn adverts(mac: Option<[u8; 6]>, own6: Vec<Vec<u8>>) -> Vec<Vec<Expr>> {
    use Base::Transport;
    let advert = || -> Vec<Expr> {
        let mut r: Vec<Expr> = l4(NEXTHDR_ICMPV6).into();
        r.extend([load(Transport, 0, 1), is(&[ND_NEIGHBOR_ADVERT])]);
        r
    };
    let mut rules = Vec::new();
    if !own6.is_empty() {
        let mut r = advert();
        r.extend([load(Transport, 8, 16), one_of(KeyKind::Ipv6, own6)]);
        rules.push(rule(r, Verdict::Accept));
    }
    let mut r = advert();
    r.push(load(Transport, 8, 16));
    r.extend(link_local(mac));
    rules.push(rule(r, Verdict::Accept));
    rules.push(rule(advert(), Verdict::Drop));
    rules.push(rule([], Verdict::Accept));
    rules
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::{Netif, VeNetwork};
    use crate::plan;

    fn bridged() -> Vec<Chain> {
        let net = VeNetwork {
            netifs: vec![Netif::parse(
                "eth1,bridge=br0,mac=02:00:00:00:01:02,ip=198.51.100.5/24,ip=2001:db8:1::5/64",
            )
            .unwrap()],
            ..Default::default()
        };
        chains(0, &plan::links("101", &net)[0])
    }

    fn chain<'a>(c: &'a [Chain], name: &str) -> &'a Chain {
        c.iter().find(|c| c.name == name).unwrap()
    }

    #[test]
    fn every_path_ends_in_a_verdict() {
        let c = bridged();
        for name in [
            "ip6_0", "frag6_0", "l4v6_0", "icmp6_0", "nd6_0", "src6_0", "v6_0",
        ] {
            let last = chain(&c, name).rules.last().unwrap();
            assert_eq!(last.len(), 1, "{name} ends in a bare verdict: {last:?}");
        }
    }

    #[test]
    fn fragments_carry_only_upper_layers_but_icmpv6() {
        let c = bridged();
        let f = &chain(&c, "frag6_0").rules;
        let Some(Expr::Lookup { keys, .. }) = f[0].get(1) else {
            panic!("{:?}", f[0])
        };
        for p in [0, 43, 44, 51, 58, 59, 60, 135, 139, 140, 253, 254] {
            assert!(keys.contains(&vec![p]), "{p}");
        }
        assert!(!keys.contains(&vec![IPPROTO_UDP]));
        assert_eq!(f[1].last(), Some(&Expr::Verdict(goto("src6", 0))));
    }

    #[test]
    fn nd_options_carry_its_mac() {
        let c = bridged();
        let nd = &chain(&c, "nd6_0").rules;
        let want = |opt: [u8; 2]| {
            let mut v = opt.to_vec();
            v.extend([2, 0, 0, 0, 1, 2]);
            is(&v)
        };
        assert!(nd.iter().any(|r| r.contains(&want(OPT_SOURCE_LL))));
        assert!(nd.iter().any(|r| r.contains(&want(OPT_TARGET_LL))));
        assert!(nd.iter().any(|r| r.contains(&is(&OPT_NONCE))));
        // A routed link has no options chain.
        let net = VeNetwork {
            ips: vec![crate::model::parse_ve_address("2001:db8::11").unwrap()],
            ..Default::default()
        };
        let routed = chains(0, &plan::links("101", &net)[0]);
        assert!(routed.iter().all(|c| c.name != "nd6_0"));
        assert!(!chain(&routed, "icmp6_0")
            .rules
            .iter()
            .any(|r| r.contains(&Expr::Verdict(goto("nd6", 0)))));
    }

    #[test]
    fn routers_messages_are_dropped() {
        let c = bridged();
        let l4 = &chain(&c, "l4v6_0").rules;
        let Some(Expr::Lookup { keys, not, .. }) = l4[0].get(1) else {
            panic!("{:?}", l4[0])
        };
        assert!(!not);
        for p in [51, 88, 89, 103, 112, 135, 139, 140, 253, 254] {
            assert!(keys.contains(&vec![p]), "{p}");
        }
        // Tunnels pass: IPv6 in IPv6, IPv4 in IPv6, GRE.
        for p in [41, 4, 47] {
            assert!(!keys.contains(&vec![p]), "{p}");
        }
        let ports = l4
            .iter()
            .filter(|r| {
                r.iter().any(|e| {
                    matches!(
                        e,
                        Expr::Lookup {
                            kind: KeyKind::Port,
                            ..
                        }
                    )
                })
            })
            .count();
        assert_eq!(ports, 2, "source and destination port");
        let icmp = &chain(&c, "icmp6_0").rules[0];
        let Some(Expr::Lookup { keys, .. }) = icmp.get(1) else {
            panic!("{icmp:?}")
        };
        for t in [130, 134, 137, 138, 141, 142, 151, 152, 153] {
            assert!(keys.contains(&vec![t]), "{t}");
        }
    }

    #[test]
    fn eui64() {
        assert_eq!(
            eui64_link_local([2, 0, 0, 0, 1, 2]).to_string(),
            "fe80::ff:fe00:102"
        );
    }
}

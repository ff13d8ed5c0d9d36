//! The host's nftables objects of one VE: a `netdev` table `kennel-ID`
//! whose chains hook the host end of each of the VE's links, and, with NAT
//! or port forwards, an `ip` table of the same name.
//!
//! * from the VE (ingress of the host end): policy drop; only the VE's own
//!   source addresses, ARP that claims only them (and, bridged, only its
//!   MAC), IPv6 neighbour adverts only for its own targets;
//! * to a bridged VE (egress of the host end): only frames for its MAC,
//!   broadcast and multicast, so it never sees other VEs' unicast.
//!
//! A table per VE is replaced in one `nft -f` transaction (`add`, `delete`,
//! define) and removed whole; nothing outside it is ever listed, flushed
//! or reordered. The rules are generated as nft's own text, not JSON:
//! every value in them has been validated (addresses, MACs, names of at
//! most 15 safe characters), and the text is what an operator reads back
//! with `nft list table netdev kennel-101`.

use std::fmt::Write as _;
use std::io::Write as _;
use std::net::IpAddr;
use std::process::{Command, Stdio};

use crate::error::{NetError, Result};
use crate::model::{Proto, VeNetwork};
use crate::names;
use crate::plan::{self, LinkKind, LinkPlan};

/// Hook priority: before anything of the host's (conntrack is -200).
const PRIORITY: i32 = -500;

/// ICMPv6 neighbour-advert target address: transport header bits 64-191.
const ND_TARGET: &str = "@th,64,128";
/// fe80::/10 as the 128-bit integer range `@th` compares with.
const LINK_LOCAL_RANGE: &str =
    "0xfe800000000000000000000000000000-0xfebfffffffffffffffffffffffffffff";

/// The whole nft script that makes VE `ve`'s tables what `net` needs
/// (removing them when it needs none), whatever exists now.
pub fn render(ve: &str, net: &VeNetwork) -> String {
    let table = names::table(ve);
    let mut s = String::new();
    // `add` then `delete` makes both idempotent; the definitions follow in
    // the same transaction, so no packet ever sees the VE unfiltered.
    for family in ["netdev", "ip"] {
        let _ = writeln!(
            s,
            "add table {family} {table}\ndelete table {family} {table}"
        );
    }
    s.push_str(&render_tables(ve, net));
    s
}

/// The nft script that creates VE `ve`'s tables for `net`, failing if
/// either exists. For a start, after the teardown of any earlier run: a
/// deletion in a transaction makes the kernel wait for an RCU grace
/// period (10-20 ms here), a creation alone does not.
pub fn render_create(ve: &str, net: &VeNetwork) -> String {
    let table = names::table(ve);
    let tables = render_tables(ve, net);
    let mut s = String::new();
    for family in ["netdev", "ip"] {
        if tables.contains(&format!("table {family} {table} {{")) {
            let _ = writeln!(s, "create table {family} {table}");
        }
    }
    s.push_str(&tables);
    s
}

/// The definitions of VE `ve`'s tables.
fn render_tables(ve: &str, net: &VeNetwork) -> String {
    let table = names::table(ve);
    let mut s = String::new();
    let links = plan::links(ve, net);
    if !links.is_empty() {
        let _ = writeln!(s, "table netdev {table} {{");
        for (i, l) in links.iter().enumerate() {
            render_from_ve(&mut s, i, l);
            if matches!(l.kind, LinkKind::Bridged { .. }) {
                render_to_ve(&mut s, i, l);
            }
        }
        s.push_str("}\n");
    }
    render_nat(&mut s, &table, net);
    s
}

fn set_of<T: ToString>(items: impl IntoIterator<Item = T>) -> Option<String> {
    let v: Vec<String> = items.into_iter().map(|i| i.to_string()).collect();
    (!v.is_empty()).then(|| format!("{{ {} }}", v.join(", ")))
}

fn nd_target(addr: IpAddr) -> Option<String> {
    match addr {
        IpAddr::V6(a) => Some(format!("0x{:032x}", u128::from(a))),
        IpAddr::V4(_) => None,
    }
}

fn render_from_ve(s: &mut String, i: usize, l: &LinkPlan) {
    let dev = &l.host;
    let _ = writeln!(
        s,
        "  chain from_{i} {{\n    comment \"what VE link {inside} sends\"\n    type filter hook ingress device \"{dev}\" priority {PRIORITY}; policy drop;",
        inside = l.inside
    );
    // Tagged frames would be judged by their inner packet and then carry
    // their tag onto the bridge.
    s.push_str("    ether type { 8021q, 8021ad } drop\n");
    if let Some(mac) = l.mac {
        let _ = writeln!(s, "    ether saddr != {mac} drop");
        let _ = writeln!(s, "    arp saddr ether != {mac} drop");
    }
    // A VE is never a router nor a DHCP server for its neighbours.
    s.push_str("    icmpv6 type { nd-router-advert, nd-redirect, router-renumbering } drop\n");
    s.push_str("    icmp type { redirect, router-advertisement } drop\n");
    s.push_str("    udp sport { 67, 547 } drop\n");
    let dhcp = matches!(l.kind, LinkKind::Bridged { dhcp: true, .. });
    if dhcp {
        // The lease is unknown here: any IPv4 source and ARP claim; the
        // MAC is still enforced (documented in SECURITY.md).
        s.push_str("    meta protocol { ip, arp } accept\n");
    } else if let Some(v4) = set_of(l.ips4().map(|n| n.addr())) {
        let claims = set_of(
            l.ips4()
                .map(|n| n.addr().to_string())
                .chain(["0.0.0.0".into()]),
        )
        .unwrap_or_default();
        let _ = writeln!(s, "    arp saddr ip {claims} accept");
        let _ = writeln!(s, "    ip saddr {v4} accept");
    }
    // IPv6: its own addresses, and its link-local one: on a bridge only
    // the one its MAC gives (EUI-64), on a routed link any (the link is
    // the VE's alone); `::` for duplicate-address detection.
    let link_local = match l.mac {
        Some(mac) => eui64_link_local(mac.0).to_string(),
        None => "fe80::/10".to_string(),
    };
    let own6: Vec<IpAddr> = l.ips6().map(|n| n.addr()).collect();
    let sources = set_of(
        own6.iter()
            .map(|a| a.to_string())
            .chain([link_local.clone()]),
    )
    .unwrap_or_default();
    let _ = writeln!(
        s,
        "    meta protocol ip6 ip6 saddr != {{ {} , :: }} drop",
        sources.trim_start_matches("{ ").trim_end_matches(" }")
    );
    let targets = set_of(
        own6.iter()
            .copied()
            .chain(l.mac.map(|m| IpAddr::V6(eui64_link_local(m.0))))
            .filter_map(nd_target)
            .chain(l.mac.is_none().then(|| LINK_LOCAL_RANGE.to_string())),
    )
    .unwrap_or_default();
    let _ = writeln!(
        s,
        "    icmpv6 type nd-neighbor-advert {ND_TARGET} {targets} accept"
    );
    s.push_str("    icmpv6 type nd-neighbor-advert drop\n");
    let _ = writeln!(s, "    ip6 saddr {sources} accept");
    // Duplicate-address detection and multicast listener reports.
    s.push_str(
        "    ip6 saddr :: icmpv6 type { nd-neighbor-solicit, mld2-listener-report } accept\n",
    );
    s.push_str("  }\n");
}

/// The link-local address the kernel gives an interface with `mac`
/// (modified EUI-64, RFC 4291).
fn eui64_link_local(mac: [u8; 6]) -> std::net::Ipv6Addr {
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
    std::net::Ipv6Addr::new(0xfe80, 0, 0, 0, word(0), word(2), word(4), word(6))
}

fn render_to_ve(s: &mut String, i: usize, l: &LinkPlan) {
    let Some(mac) = l.mac else { return };
    let _ = writeln!(
        s,
        "  chain to_{i} {{\n    comment \"what the bridge delivers to VE link {inside}\"\n    type filter hook egress device \"{dev}\" priority {PRIORITY}; policy accept;\n    ether daddr & 01:00:00:00:00:00 == 01:00:00:00:00:00 accept\n    ether daddr != {mac} drop\n  }}",
        inside = l.inside,
        dev = l.host,
    );
}

fn render_nat(s: &mut String, table: &str, net: &VeNetwork) {
    if net.nat_via.is_none() && net.forwards.is_empty() {
        return;
    }
    let v4: Vec<IpAddr> = net.all_ips().filter(IpAddr::is_ipv4).collect();
    let Some(first) = v4.first() else { return };
    let _ = writeln!(s, "table ip {table} {{");
    if let (Some(up), Some(set)) = (&net.nat_via, set_of(v4.iter())) {
        let _ = writeln!(
            s,
            "  chain postrouting {{\n    type nat hook postrouting priority srcnat; policy accept;\n    oifname \"{up}\" ip saddr {set} masquerade\n  }}"
        );
    }
    if !net.forwards.is_empty() {
        s.push_str(
            "  chain prerouting {\n    type nat hook prerouting priority dstnat; policy accept;\n",
        );
        for f in &net.forwards {
            // Only traffic to the host itself: never traffic passing
            // through to another VE or beyond.
            let dst = f.host_addr.map_or_else(
                || "fib daddr type local ".to_string(),
                |a| format!("ip daddr {a} "),
            );
            let proto = match f.proto {
                Proto::Tcp => "tcp",
                Proto::Udp => "udp",
            };
            let _ = writeln!(
                s,
                "    {dst}{proto} dport {} dnat to {first}:{}",
                f.host_port, f.ve_port
            );
        }
        s.push_str("  }\n");
    }
    s.push_str("}\n");
}

/// Runs `script` as one nft transaction.
pub fn apply(script: &str) -> Result<()> {
    Pending::spawn(script, "apply the VE's firewall")?.wait()
}

/// Removes VE `ve`'s tables, whichever exist.
pub fn remove(ve: &str) -> Result<()> {
    Pending::spawn(
        &render(ve, &VeNetwork::default()),
        "remove the VE's firewall",
    )?
    .wait()
}

/// An nft transaction running in its own process, so the caller can do
/// other work meanwhile. Dropped without [`Pending::wait`] (an error on
/// the way), it still waits: a transaction must never land after the
/// teardown that was to remove it.
#[derive(Debug)]
pub struct Pending {
    child: Option<std::process::Child>,
    what: &'static str,
}

impl Drop for Pending {
    fn drop(&mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = c.wait();
        }
    }
}

impl Pending {
    pub fn spawn(script: &str, what: &'static str) -> Result<Pending> {
        let mut child = Command::new("nft")
            .args(["-f", "-"])
            .stdin(Stdio::piped())
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .map_err(|e| {
                NetError::Host(format!(
                    "cannot run nft ({e}): install nftables (apt install nftables); Kennel filters VE traffic with it"
                ))
            })?;
        // The script is a few KiB at most: it fits the pipe, so writing it
        // all before nft reads cannot block.
        if let Some(mut stdin) = child.stdin.take() {
            stdin
                .write_all(script.as_bytes())
                .map_err(crate::error::io_err("write to nft"))?;
        }
        Ok(Pending {
            child: Some(child),
            what,
        })
    }

    /// Waits for nft; its first error line on failure.
    pub fn wait(mut self) -> Result<()> {
        let Some(child) = self.child.take() else {
            return Ok(());
        };
        let out = child
            .wait_with_output()
            .map_err(crate::error::io_err("wait for nft"))?;
        if out.status.success() {
            return Ok(());
        }
        let text = String::from_utf8_lossy(&out.stderr);
        let detail = text
            .lines()
            .find(|l| l.contains("Error"))
            .or_else(|| text.lines().next())
            .unwrap_or("failed")
            .trim()
            .to_string();
        Err(NetError::Tool {
            tool: "nft",
            what: self.what.into(),
            detail,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::{parse_ve_address, Forward, Netif};

    #[test]
    fn routed_rules() {
        let net = VeNetwork {
            ips: vec![
                parse_ve_address("192.0.2.11").unwrap(),
                parse_ve_address("2001:db8::11").unwrap(),
            ],
            ..Default::default()
        };
        let s = render("101", &net);
        assert!(
            s.starts_with("add table netdev kennel-101\ndelete table netdev kennel-101\n"),
            "{s}"
        );
        assert!(
            s.contains("hook ingress device \"kv101_eth0\" priority -500; policy drop;"),
            "{s}"
        );
        assert!(
            s.contains("arp saddr ip { 192.0.2.11, 0.0.0.0 } accept"),
            "{s}"
        );
        assert!(s.contains("ip saddr { 192.0.2.11 } accept"), "{s}");
        assert!(
            s.contains("ip6 saddr { 2001:db8::11, fe80::/10 } accept"),
            "{s}"
        );
        assert!(s.contains("0x20010db8000000000000000000000011"), "{s}");
        assert!(
            !s.contains("egress"),
            "no egress chain for routed links: {s}"
        );
        assert!(!s.contains("table ip kennel-101 {"), "{s}");
    }

    #[test]
    fn bridged_rules_filter_mac_both_ways() {
        let net = VeNetwork {
            netifs: vec![
                Netif::parse("eth1,bridge=br0,mac=02:00:00:00:00:07,ip=198.51.100.5/24").unwrap(),
            ],
            ..Default::default()
        };
        let s = render("101", &net);
        assert!(s.contains("ether saddr != 02:00:00:00:00:07 drop"), "{s}");
        assert!(s.contains("hook egress device \"kv101_eth1\""), "{s}");
        assert!(s.contains("ether daddr != 02:00:00:00:00:07 drop"), "{s}");
        assert!(s.contains("ip saddr { 198.51.100.5 } accept"), "{s}");
    }

    #[test]
    fn nat_and_forwards() {
        let net = VeNetwork {
            ips: vec![parse_ve_address("10.0.0.11").unwrap()],
            nat_via: Some("uplink0".into()),
            forwards: vec![Forward::parse("tcp:8080:80").unwrap()],
            ..Default::default()
        };
        let s = render("101", &net);
        assert!(
            s.contains("oifname \"uplink0\" ip saddr { 10.0.0.11 } masquerade"),
            "{s}"
        );
        assert!(s.contains("tcp dport 8080 dnat to 10.0.0.11:80"), "{s}");
    }

    #[test]
    fn create_script_creates_only_what_is_needed() {
        let net = VeNetwork {
            ips: vec![parse_ve_address("192.0.2.11").unwrap()],
            ..Default::default()
        };
        let s = render_create("101", &net);
        assert!(
            s.starts_with("create table netdev kennel-101\ntable netdev kennel-101 {"),
            "{s}"
        );
        assert!(!s.contains("delete") && !s.contains("table ip"), "{s}");
    }

    #[test]
    fn empty_network_only_removes() {
        let s = render("101", &VeNetwork::default());
        assert_eq!(
            s,
            "add table netdev kennel-101\ndelete table netdev kennel-101\nadd table ip kennel-101\ndelete table ip kennel-101\n"
        );
    }
}

//! The VE's `ip` table for NAT and port forwards (opt-in), as nft's own
//! text: what an operator reads back with `nft list table ip kennel-101`.
//! Every value in it has been validated (addresses, names of at most 15
//! safe characters).
//!
//! ```text
//! table ip kennel-101 {
//!   chain postrouting   (srcnat)  oifname UPLINK ip saddr { VE } masquerade
//!   chain prerouting    (dstnat)  [fib daddr type local | ip daddr A] PROTO dport P dnat to VE:Q
//!   chain conntrack     (filter, prerouting, dstnat + 10)
//!     iifname { VE's links } ip saddr { VE } ct state new ct count over MAX drop   (from it)
//!     ip daddr { VE } ct state new ct count over MAX drop                          (to it)
//! }
//! ```
//!
//! A NAT table turns connection tracking on for IPv4 in the host's
//! namespace, and the VE's flows through the host (masqueraded, forwarded
//! to it, or to the host itself) become entries in the host's table,
//! whose size `nf_conntrack_max` bounds for the whole host. The entries
//! are charged to no memory cgroup: the kernel allocates them from a slab
//! cache without accounting, in softirq context (20,000 of them for a
//! VE's flows, sent from the VE's memory cgroup, left that cgroup's kernel
//! memory as it was). So one VE could fill the table and stop every other
//! flow the host tracks.
//!
//! The `conntrack` chain bounds the VE's entries at `nat_conntrack_max`
//! (`[network]` in kennel.toml) in each direction, with two `ct count`
//! lists (one per rule): flows the VE opens, and flows opened to it (its
//! port forwards, other VEs, the LAN). Others can open flows to the VE at
//! will, so one list for both would let them fill it and cut every new
//! flow of the VE's own; apart, a flood to the VE only stops new flows to
//! it. A flow counts as the VE's own only when it arrives from the VE's
//! links (its host ends; on a bridge, the bridge) with the VE's address,
//! so that a packet from the uplink with that source counts for nothing
//! here; another port of the same bridge that may send from the VE's
//! address (a `dhcp=yes` VE, a LAN host bridged in) does count.
//! The rules run after conntrack made the new entry and after DNAT (so a
//! forwarded flow has the VE's address), in prerouting, where the entry is
//! not confirmed yet: dropping the packet frees it. Packets of flows
//! already tracked pass whatever the count.
//!
//! What the count does not hold: TCP connections in TIME_WAIT or CLOSE
//! (the kernel's `nf_conncount` leaves them out; they live 120 s and 10 s
//! by default), so a VE that opens and closes connections quickly keeps up
//! to its connection rate times 120 s more, and so does whoever opens and
//! closes connections to it.
//!
//! VEs without NAT or forwards get nothing here: any `ct` expression would
//! turn connection tracking on for the whole host namespace.

use std::fmt::Write as _;
use std::net::IpAddr;

use crate::model::{Proto, VeNetwork};
use crate::plan::{self, LinkKind};

/// Whether `net` has a NAT table.
pub fn needs_nat(net: &VeNetwork) -> bool {
    net.nat_via.is_some() || !net.forwards.is_empty()
}

/// The nft script that makes VE `ve`'s `ip` table what `net` needs:
/// `add` then `delete` (both idempotent), then its definition, if any.
/// `ct_max` bounds the VE's tracked connections each way (0: no bound).
pub fn render_replace(ve: &str, net: &VeNetwork, ct_max: u32) -> String {
    let table = crate::names::table(ve);
    let mut s = format!("add table ip {table}\ndelete table ip {table}\n");
    render(&mut s, ve, &table, net, ct_max);
    s
}

fn render(s: &mut String, ve: &str, table: &str, net: &VeNetwork, ct_max: u32) {
    if !needs_nat(net) {
        return;
    }
    let v4: Vec<IpAddr> = net.all_ips().filter(IpAddr::is_ipv4).collect();
    let (Some(first), Some(set)) = (v4.first(), set_of(v4.iter())) else {
        return;
    };
    let _ = writeln!(s, "table ip {table} {{");
    if let Some(up) = &net.nat_via {
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
    let links = plan::links(ve, net);
    let from = set_of(links.iter().map(|l| match &l.kind {
        LinkKind::Routed => format!("\"{}\"", l.host),
        LinkKind::Bridged { bridge, .. } => format!("\"{bridge}\""),
    }));
    if let (true, Some(from)) = (ct_max > 0, from) {
        let bound = format!("ct state new ct count over {ct_max} drop");
        let _ = writeln!(
            s,
            "  chain conntrack {{\n    type filter hook prerouting priority dstnat + 10; policy accept;\n    iifname {from} ip saddr {set} {bound}\n    ip daddr {set} {bound}\n  }}"
        );
    }
    s.push_str("}\n");
}

fn set_of<T: ToString>(items: impl IntoIterator<Item = T>) -> Option<String> {
    let v: Vec<String> = items.into_iter().map(|i| i.to_string()).collect();
    (!v.is_empty()).then(|| format!("{{ {} }}", v.join(", ")))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::{parse_ve_address, Forward};

    fn nat() -> VeNetwork {
        VeNetwork {
            ips: vec![parse_ve_address("10.0.0.11").unwrap()],
            nat_via: Some("uplink0".into()),
            forwards: vec![
                Forward::parse("tcp:8080:80").unwrap(),
                Forward::parse("udp:198.51.100.1:53:53").unwrap(),
            ],
            ..Default::default()
        }
    }

    #[test]
    fn nat_and_forwards() {
        let s = render_replace("101", &nat(), 0);
        assert!(
            s.starts_with("add table ip kennel-101\ndelete table ip kennel-101\n"),
            "{s}"
        );
        assert!(
            s.contains("oifname \"uplink0\" ip saddr { 10.0.0.11 } masquerade"),
            "{s}"
        );
        assert!(
            s.contains("fib daddr type local tcp dport 8080 dnat to 10.0.0.11:80"),
            "{s}"
        );
        assert!(
            s.contains("ip daddr 198.51.100.1 udp dport 53 dnat to 10.0.0.11:53"),
            "{s}"
        );
        assert!(!s.contains("ct "), "no bound asked for: {s}");
    }

    #[test]
    fn the_ves_connections_are_bounded() {
        let s = render_replace("101", &nat(), 5000);
        assert!(
            s.contains("hook prerouting priority dstnat + 10;")
                && s.contains("    iifname { \"kv101_eth0\" } ip saddr { 10.0.0.11 } ct state new ct count over 5000 drop\n")
                && s.contains("    ip daddr { 10.0.0.11 } ct state new ct count over 5000 drop\n"),
            "{s}"
        );
        // Two rules, two lists: flows to the VE never fill the list of
        // the flows it opens.
        assert_eq!(s.matches("ct count").count(), 2, "{s}");
        // On a bridge, the VE's flows arrive from the bridge.
        let mut bridged = nat();
        bridged.ips.clear();
        bridged.netifs =
            vec![crate::model::Netif::parse("eth1,bridge=br7,ip=10.0.0.12/24").unwrap()];
        let s = render_replace("101", &bridged, 5000);
        assert!(
            s.contains("iifname { \"br7\" } ip saddr { 10.0.0.12 } ct state new"),
            "{s}"
        );
    }

    #[test]
    fn no_nat_only_removes() {
        assert_eq!(
            render_replace("101", &VeNetwork::default(), 5000),
            "add table ip kennel-101\ndelete table ip kennel-101\n"
        );
    }
}

//! Identity on the network, at the receivers: forged IPv4 sources, ARP
//! claims and probes for a neighbour's address, a foreign MAC, VLAN tags,
//! router adverts, sniffing a neighbour's traffic (routed and bridged),
//! and a VE that rewrites its own firewall, routes and forwarding. Kennel
//! runs in a network lab (`common::netlab`); `network.rs` proves these
//! filters at length, these cases make the raw attempts.

use std::time::Duration;

use super::frames::{self, hex, ip4, mac, Mac};
use super::lab::{args, case, Case, Lab, LabOptions, Verdict, ATT};

pub const ATT_MAC: &str = "02:00:00:00:0a:01";
pub const NB_MAC: &str = "02:00:00:00:0a:02";

pub fn options() -> LabOptions {
    LabOptions {
        net: true,
        bridge: true,
        attacker: args(&[
            "--ip",
            "192.0.2.11",
            "--netif",
            &format!("eth1,bridge=br0,mac={ATT_MAC},ip=198.51.100.21/24"),
        ]),
        neighbour: args(&[
            "--ip",
            "192.0.2.12",
            "--netif",
            &format!("eth1,bridge=br0,mac={NB_MAC},ip=198.51.100.22/24"),
        ]),
    }
}

fn link_mac(out: &[u8]) -> Mac {
    let text = String::from_utf8_lossy(out);
    let m = text
        .split_whitespace()
        .skip_while(|w| *w != "link/ether")
        .nth(1)
        .unwrap_or("00:00:00:00:00:00");
    mac(m)
}

fn net(l: &Lab) -> &common_netlab::NetLab {
    l.net.as_ref().expect("network lab")
}

use super::common::netlab as common_netlab;

fn gateway_mac(l: &Lab) -> Mac {
    link_mac(
        &net(l)
            .host_cmd(&["ip", "-o", "link", "show", &format!("kv{ATT}_eth0")])
            .stdout,
    )
}

fn lan1_mac(l: &Lab) -> Mac {
    link_mac(&net(l).lan(&["ip", "-o", "link", "show", "lan1"]).stdout)
}

fn eth0_mac(l: &Lab) -> Mac {
    let (_, m) = l.sh(ATT, "cat /sys/class/net/eth0/address", 10);
    mac(&m)
}

fn send(l: &Lab, iface: &str, frame: &[u8], n: u32) -> Result<(), String> {
    l.blocked(&["send-frame", iface, &hex(frame), &n.to_string()])
        .map(|_| ())
}

/// Counts at the LAN (`bridge`: its bridge port) for `expr` after `f`.
fn counted(
    l: &Lab,
    bridge: bool,
    expr: &str,
    f: impl FnOnce() -> Result<(), String>,
) -> Result<u64, String> {
    net(l).watch(bridge, expr);
    f()?;
    std::thread::sleep(Duration::from_millis(200));
    Ok(net(l).count(bridge, expr))
}

fn none(n: u64, what: &str) -> Result<(), String> {
    if n == 0 {
        Ok(())
    } else {
        Err(format!("{n} {what} reached the receiver"))
    }
}

fn sniff_case(l: &Lab, iface: &str, own: &str, target: &str) -> Result<(), String> {
    let mut c = l.root.cmd();
    c.args([
        "exec",
        ATT,
        "--",
        super::lab::TOOL,
        "sniff",
        iface,
        "2500",
        own,
        target,
    ]);
    let sniffer = std::thread::spawn(move || {
        let (st, out, err) = super::common::output_within(&mut c, super::common::secs(30));
        super::lab::parse(st, &out, &err)
    });
    std::thread::sleep(Duration::from_millis(400));
    let pinged = net(l).lan_pings(target);
    let _ = net(l).lan(&[
        "/bin/busybox",
        "ping",
        "-c",
        "3",
        "-i",
        "0.2",
        "-W",
        "1",
        target,
    ]);
    match sniffer.join().map_err(|_| "sniffer panicked".to_string())? {
        Verdict::Blocked(_) if pinged => Ok(()),
        Verdict::Blocked(_) => Err(format!(
            "control: the LAN could not ping the neighbour {target}"
        )),
        v => Err(format!("{v:?}")),
    }
}

pub const CASES: &[Case] = &[
    case("forged_ipv4_source_routed", |l: &mut Lab| {
        let (gw, own) = (gateway_mac(l), eth0_mac(l));
        let ctl = counted(l, false, "ip saddr 192.0.2.11 udp dport 9", || {
            send(l, "eth0", &frames::udp4(gw, own, ip4("192.0.2.11"), ip4("192.0.2.100")), 3)
        })?;
        if ctl == 0 {
            return Err("control: the VE's own address did not reach the LAN".into());
        }
        let n = counted(l, false, "ip saddr 192.0.2.12 udp dport 9", || {
            send(l, "eth0", &frames::udp4(gw, own, ip4("192.0.2.12"), ip4("192.0.2.100")), 3)?;
            send(l, "eth0", &frames::udp4(gw, own, ip4("192.0.2.1"), ip4("192.0.2.100")), 3)
        })?;
        none(n, "packets with the neighbour's source")
    }),
    case("forged_ipv4_source_bridged", |l| {
        let (lan, own) = (lan1_mac(l), mac(ATT_MAC));
        let ctl = counted(l, true, "ip saddr 198.51.100.21 udp dport 9", || {
            send(l, "eth1", &frames::udp4(lan, own, ip4("198.51.100.21"), ip4("198.51.100.100")), 3)
        })?;
        if ctl == 0 {
            return Err("control: the VE's own address did not reach the bridge".into());
        }
        let n = counted(l, true, "ip saddr 198.51.100.22 udp dport 9", || {
            send(l, "eth1", &frames::udp4(lan, own, ip4("198.51.100.22"), ip4("198.51.100.100")), 3)
        })?;
        none(n, "packets with the neighbour's source")
    }),
    case("forged_arp_reply_routed", |l| {
        let (gw, own) = (gateway_mac(l), eth0_mac(l));
        send(l, "eth0", &frames::arp(2, own, ip4("192.0.2.12"), gw, ip4("169.254.0.1"), gw), 3)?;
        send(l, "eth0", &frames::arp(1, own, ip4("192.0.2.12"), [0; 6], ip4("169.254.0.1"), [0xff; 6]), 3)?;
        let neigh = net(l).host_cmd(&["ip", "neigh", "show", "192.0.2.12"]);
        let text = String::from_utf8_lossy(&neigh.stdout);
        if text.contains(&format!("kv{ATT}")) {
            return Err(format!("the host learned the neighbour's address on the attacker's link: {text}"));
        }
        Ok(())
    }),
    case("forged_arp_claim_bridged", |l| {
        let own = mac(ATT_MAC);
        let n = counted(l, true, &format!("ether saddr {ATT_MAC} arp saddr ip 198.51.100.22"), || {
            send(l, "eth1", &frames::arp(2, own, ip4("198.51.100.22"), [0xff; 6], ip4("198.51.100.22"), [0xff; 6]), 3)?;
            send(l, "eth1", &frames::arp(1, own, ip4("198.51.100.22"), [0; 6], ip4("198.51.100.100"), [0xff; 6]), 3)
        })?;
        none(n, "ARP claims of the neighbour's address")
    }),
    case("arp_probe_sender_zero_for_neighbours_address", |l| {
        let own = mac(ATT_MAC);
        let n = counted(l, true, &format!("ether saddr {ATT_MAC} arp saddr ip 0.0.0.0"), || {
            send(l, "eth1", &frames::arp(1, own, [0; 4], [0; 6], ip4("198.51.100.22"), [0xff; 6]), 3)
        })?;
        none(n, "ARP probes (sender 0.0.0.0) for the neighbour's address")
    }),
    case("forged_mac_bridged", |l| {
        let lan = lan1_mac(l);
        let n = counted(l, true, "ether saddr 02:66:66:66:66:66", || {
            send(l, "eth1", &frames::udp4(lan, mac("02:66:66:66:66:66"), ip4("198.51.100.21"), ip4("198.51.100.100")), 3)?;
            send(l, "eth1", &frames::udp4(lan, mac(NB_MAC), ip4("198.51.100.21"), ip4("198.51.100.100")), 3)
        })?;
        let nb = counted(l, true, &format!("ether saddr {NB_MAC} udp dport 9"), || Ok(()))?;
        none(n + nb, "frames from a foreign or the neighbour's MAC")
    }),
    case("vlan_tagged_frames", |l| {
        let lan = lan1_mac(l);
        let n = counted(l, true, "vlan id 5", || {
            let f = frames::udp4(lan, mac(ATT_MAC), ip4("198.51.100.21"), ip4("198.51.100.100"));
            send(l, "eth1", &frames::tagged(&f, 5), 3)
        })?;
        none(n, "VLAN-tagged frames")
    }),
    case("router_advert_bridged", |l| {
        let n = counted(l, true, "icmpv6 type nd-router-advert", || {
            send(l, "eth1", &frames::router_advert(mac(ATT_MAC)), 3)
        })?;
        none(n, "router adverts")
    }),
    case("sniff_neighbour_bridged", |l| sniff_case(l, "eth1", ATT_MAC, "198.51.100.22")),
    case("sniff_neighbour_routed", |l| {
        let own = {
            let m = eth0_mac(l);
            m.iter().map(|b| format!("{b:02x}")).collect::<Vec<_>>().join(":")
        };
        sniff_case(l, "eth0", &own, "192.0.2.12")
    }),
    case("nft_flush_in_own_netns", |l| {
        l.blocked(&["nft-flush"])?;
        let (lan, own) = (lan1_mac(l), mac(ATT_MAC));
        let n = counted(l, true, "ip saddr 198.51.100.23 udp dport 9", || {
            send(l, "eth1", &frames::udp4(lan, own, ip4("198.51.100.23"), ip4("198.51.100.100")), 3)
        })?;
        none(n, "forged packets after the VE flushed its ruleset")
    }),
    case("routes_addresses_forwarding_inside", |l| {
        l.sh(
            ATT,
            "ip addr add 192.0.2.1/32 dev eth0; ip addr add 192.0.2.12/32 dev eth0; ip route add 192.0.2.0/25 dev eth0; \
             ip route add 198.51.100.0/25 dev eth1; echo 1 > /proc/sys/net/ipv4/ip_forward; ip link set eth0 promisc on; \
             ping -c 2 -W 1 192.0.2.100; true",
            15,
        );
        if !net(l).lan_pings("192.0.2.12") {
            return Err("the LAN lost the neighbour after the attacker claimed its address".into());
        }
        Ok(())
    })
    .restarts(),
];

//! What a hostile VE forges on a bridge, frame by frame (`forge.py`, run
//! with the VE root's rights on its own interface), against what the
//! LAN's port on the same bridge receives: every forged frame carries a
//! mark (its IPv6 flow label or IPv4 ID) that the LAN counts. Each test
//! has frames that must arrive, as controls.

use std::io::{BufRead, BufReader};
use std::process::{Command, Stdio};
use std::time::Duration;

use super::common::netlab::{as_ve_root, forge, NetLab, BUSYBOX, PYTHON};
use super::common::TestRoot;
use super::{done, lab_and_root};

const VE_MAC: &str = "02:00:00:00:01:02";
const VE_V4: &str = "198.51.100.21";
const VE_V6: &str = "2001:db8:b::21";
const LAN_V6: &str = "2001:db8:b::100";

/// The names forged frames use (Python).
const PRELUDE: &str = "IF = 'eth1'; M = '02:00:00:00:01:02'; X = '02:66:66:66:66:66'\n\
    LL = 'fe80::ff:fe00:102'; G = '2001:db8:b::21'; V4 = '198.51.100.21'; ALL = 'ff02::1'\n\
    LAN = '2001:db8:b::100'; SNM = 'ff02::1:ff00:100'";

/// The names packets from a routed VE (192.0.2.11, 2001:db8::11) to the
/// LAN (`lan0`) use (Python).
const ROUTED_PRELUDE: &str = "V4 = '192.0.2.11'; G = '2001:db8::11'\n\
    LAN4 = '192.0.2.100'; LAN = '2001:db8::100'; X = '02:66:66:66:66:66'";

/// A bridged VE 102 with an IPv4 and an IPv6 address on `br0`, whose LAN
/// port `lan1` has 198.51.100.100 and 2001:db8:b::100. The bridge does no
/// multicast snooping, which would drop some malformed multicast itself:
/// what arrives is what the VE's filter let through.
fn bridged(tag: &str) -> (NetLab, TestRoot, i32) {
    let (lab, root) = lab_and_root(tag);
    lab.add_bridge();
    let br = lab.host_cmd(&[
        "ip",
        "link",
        "set",
        "br0",
        "type",
        "bridge",
        "mcast_snooping",
        "0",
    ]);
    assert!(br.status.success());
    let lan = lab.lan(&[
        "ip",
        "-6",
        "addr",
        "add",
        &format!("{LAN_V6}/64"),
        "dev",
        "lan1",
        "nodad",
    ]);
    assert!(lan.status.success());
    root.start_busybox(
        "102",
        &[
            "--netif",
            &format!("eth1,bridge=br0,mac={VE_MAC},ip={VE_V4}/24,ip={VE_V6}/64"),
        ],
    );
    let pid = root.init_pid("102");
    (lab, root, pid)
}

/// One forged case: its name, a Python list of packets (`F` is the mark
/// to put in each), whether they are IPv6 (marked by flow label) or IPv4
/// (by IP ID), and whether they must arrive.
struct Case {
    name: &'static str,
    packets: String,
    v6: bool,
    arrives: bool,
}

fn v6(name: &'static str, packets: impl Into<String>, arrives: bool) -> Case {
    Case {
        name,
        packets: packets.into(),
        v6: true,
        arrives,
    }
}

fn v4(name: &'static str, packets: impl Into<String>, arrives: bool) -> Case {
    Case {
        name,
        packets: packets.into(),
        v6: false,
        arrives,
    }
}

/// Sends every case from VE `pid`, then checks what reached the LAN.
fn check(lab: &NetLab, pid: i32, cases: &[Case]) {
    check_at(lab, pid, cases, true);
}

/// Sends every case from VE `pid` (`bridged`: frames on its `eth1`;
/// otherwise whole IP packets through its own routes, to the host end of
/// its routed link), then checks what reached the LAN (the bridge's LAN
/// port, or the uplink's).
fn check_at(lab: &NetLab, pid: i32, cases: &[Case], bridged: bool) {
    let mut code = if bridged { PRELUDE } else { ROUTED_PRELUDE }.to_string();
    let mut marks = Vec::new();
    for (i, c) in cases.iter().enumerate() {
        let mark = 0x100 + i as u32;
        let expr = if c.v6 {
            format!("ip6 flowlabel {mark}")
        } else {
            format!("ip id {mark}")
        };
        lab.watch(bridged, &expr);
        if bridged {
            code.push_str(&format!("\nF = {mark}\nsend(IF, M, *{})", c.packets));
        } else {
            code.push_str(&format!("\nF = {mark}\nsend_routed(*{})", c.packets));
        }
        marks.push(expr);
    }
    forge(pid, &code);
    std::thread::sleep(Duration::from_millis(300));
    let wrong: Vec<String> = cases
        .iter()
        .zip(&marks)
        .filter_map(|(c, expr)| {
            let n = lab.count(bridged, expr);
            (c.arrives != (n > 0)).then(|| {
                let want = if c.arrives { "arrive" } else { "be dropped" };
                format!("{}: {n} frames arrived, should {want}", c.name)
            })
        })
        .collect();
    assert!(wrong.is_empty(), "{}", wrong.join("\n"));
}

/// An ARP probe (sender 0.0.0.0) for a neighbour's address makes the
/// neighbour's own check of it fail (RFC 5227): a VE may probe only its
/// own addresses; and the sender hardware address is its MAC.
#[test]
fn arp_probes_only_for_the_ves_own_addresses() {
    let (lab, root, pid) = bridged("arp");
    let probe_lan = "arp saddr ip 0.0.0.0 arp daddr ip 198.51.100.100";
    let probe_own = "arp saddr ip 0.0.0.0 arp daddr ip 198.51.100.21";
    let other_mac = "arp saddr ether 02:66:66:66:66:66";
    for w in [probe_lan, probe_own, other_mac] {
        lab.watch(true, w);
    }
    forge(
        pid,
        &format!(
            "{PRELUDE}\nZ = '00:00:00:00:00:00'\nsend(IF, M, \
             arp(1, M, '0.0.0.0', Z, '198.51.100.100'), arp(1, M, '0.0.0.0', Z, V4), \
             arp(1, X, V4, Z, '198.51.100.100'), arp(2, X, V4, M, '198.51.100.100'))"
        ),
    );
    // The tool a VE's root would use, too.
    root.sh("102", "arping -D -c 2 -w 2 -I eth1 198.51.100.100; true");
    std::thread::sleep(Duration::from_millis(300));
    assert!(
        lab.count(true, probe_own) > 0,
        "a probe for its own address"
    );
    assert_eq!(
        lab.count(true, probe_lan),
        0,
        "a probe for the LAN's address"
    );
    assert_eq!(lab.count(true, other_mac), 0, "another sender MAC");
    done(root, &lab);
}

/// Extension headers and fragments cannot carry a router advert, a
/// DHCPv6 reply or a neighbour advert past the checks; legitimate
/// extension headers and fragmented UDP still pass.
#[test]
fn ipv6_headers_cannot_hide_what_is_dropped() {
    let (lab, root, pid) = bridged("v6hdr");
    let cases = [
        v6(
            "router advert",
            "[ipv6(LL, ALL, 58, icmp6(LL, ALL, 134, bytes(12)), flow=F)]",
            false,
        ),
        v6(
            "router advert behind hop-by-hop and destination options",
            "[ipv6(LL, ALL, 0, opts(60) + opts(58) + icmp6(LL, ALL, 134, bytes(12)), flow=F)]",
            false,
        ),
        v6(
            "router advert behind shim6, which nf_tables does not walk",
            "[ipv6(LL, ALL, 140, bytes([58, 0]) + bytes(6) + icmp6(LL, ALL, 134, bytes(12)), flow=F)]",
            false,
        ),
        v6(
            "router advert behind AH",
            "[ipv6(LL, ALL, 51, bytes([58, 4]) + bytes(22) + icmp6(LL, ALL, 134, bytes(12)), flow=F)]",
            false,
        ),
        v6(
            "a header chain cut short",
            "[ipv6(LL, ALL, 0, opts(60) + bytes([60, 0]), flow=F)]",
            false,
        ),
        v6(
            "router advert whose header chain ends in the second fragment",
            "[ipv6(LL, ALL, 44, frag(60, 0, True, 1) + opts(60), flow=F), \
              ipv6(LL, ALL, 44, frag(60, 8, False, 1) + opts(58) + icmp6(LL, ALL, 134, bytes(12)), flow=F)]",
            false,
        ),
        v6(
            "DHCPv6 reply whose UDP header is in the second fragment",
            "[ipv6(LL, ALL, 44, frag(60, 0, True, 2) + opts(17), flow=F), \
              ipv6(LL, ALL, 44, frag(60, 8, False, 2) + udp6(LL, ALL, 547, 546, bytes(8)), flow=F)]",
            false,
        ),
        v6(
            "DHCPv6 reply written over a harmless UDP header by an overlapping fragment",
            "[ipv6(LL, ALL, 44, frag(60, 0, True, 3) + opts(60) + opts(17) + udp6(LL, ALL, 1234, 5678, bytes(8)), flow=F), \
              ipv6(LL, ALL, 44, frag(60, 8, False, 3) + opts(17) + udp6(LL, ALL, 547, 546, bytes(8)), flow=F)]",
            false,
        ),
        v6(
            "a first UDP fragment without the UDP header",
            "[ipv6(LL, ALL, 44, frag(17, 0, True, 4), flow=F)]",
            false,
        ),
        v6(
            "a fragmented neighbour advert",
            "[ipv6(G, ALL, 44, frag(58, 0, True, 5) + icmp6(G, ALL, 136, bytes(4) + a6(G))[:8], flow=F), \
              ipv6(G, ALL, 44, frag(58, 8, False, 5) + a6(LAN), flow=F)]",
            false,
        ),
        v6(
            "control: a listener report behind a router alert",
            "[ipv6(LL, 'ff02::16', 0, opts(58, router_alert=True) + icmp6(LL, 'ff02::16', 143, bytes(4)), hlim=1, flow=F)]",
            true,
        ),
        v6(
            "control: UDP behind destination options",
            "[ipv6(G, ALL, 60, opts(17) + udp6(G, ALL, 1234, 5678, b'x'), flow=F)]",
            true,
        ),
        v6(
            "control: UDP in two fragments",
            "[ipv6(G, ALL, 44, frag(17, 0, True, 6) + udp6(G, ALL, 1234, 5678, bytes(16))[:16], flow=F), \
              ipv6(G, ALL, 44, frag(17, 16, False, 6) + bytes(8), flow=F)]",
            true,
        ),
    ];
    check(&lab, pid, &cases);
    // Control: the VE's kernel fragments a large datagram; the LAN gets
    // it whole.
    let mut rx = Command::new("ip")
        .args(["netns", "exec", &lab.lan, PYTHON, "-c"])
        .arg(
            "import socket\ns = socket.socket(socket.AF_INET6, socket.SOCK_DGRAM)\n\
             s.bind(('::', 5353)); s.settimeout(10); print('ready', flush=True)\n\
             print(len(s.recv(65535)))",
        )
        .stdout(Stdio::piped())
        .spawn()
        .unwrap();
    let mut lines = BufReader::new(rx.stdout.take().unwrap()).lines();
    assert_eq!(lines.next().unwrap().unwrap(), "ready");
    forge(
        pid,
        &format!(
            "s = socket.socket(socket.AF_INET6, socket.SOCK_DGRAM)\n\
             s.sendto(bytes(3000), ('{LAN_V6}', 5353))"
        ),
    );
    let got = lines.next().and_then(Result::ok).unwrap_or_default();
    let _ = rx.wait();
    assert_eq!(got, "3000", "a fragmented datagram from the VE");
    done(root, &lab);
}

/// On a bridge, neighbour discovery may announce only the VE's MAC: no
/// solicitation, advert or router solicitation with another link-layer
/// address passes, in any position; a DAD probe may carry its nonce.
#[test]
fn neighbour_discovery_announces_only_the_ves_mac() {
    let (lab, root, pid) = bridged("ndopt");
    // Control first: the VE's kernel resolves the LAN's address (its
    // solicitations carry its own MAC) and gets answers.
    let ping = root.sh(
        "102",
        &format!("ping -c 1 -W 3 {LAN_V6} >/dev/null && echo ok; true"),
    );
    assert_eq!(ping.trim(), "ok", "the VE reaches the LAN over IPv6");
    let ns = |opts: &str| -> String {
        format!("[ipv6(G, SNM, 58, icmp6(G, SNM, 135, bytes(4) + a6(LAN){opts}), flow=F)]")
    };
    let cases = [
        v6(
            "solicitation with another source MAC",
            ns(" + nd_opt(1, mac(X))"),
            false,
        ),
        v6(
            "solicitation with its MAC, then another",
            ns(" + nd_opt(1, mac(M)) + nd_opt(1, mac(X))"),
            false,
        ),
        v6(
            "advert with another target MAC",
            "[ipv6(G, ALL, 58, icmp6(G, ALL, 136, bytes([0x20, 0, 0, 0]) + a6(G) + nd_opt(2, mac(X))), flow=F)]",
            false,
        ),
        v6(
            "router solicitation with another source MAC",
            "[ipv6(LL, 'ff02::2', 58, icmp6(LL, 'ff02::2', 133, bytes(4) + nd_opt(1, mac(X))), flow=F)]",
            false,
        ),
        v6(
            "advert behind a destination options header",
            "[ipv6(G, ALL, 60, opts(58) + icmp6(G, ALL, 136, bytes([0x20, 0, 0, 0]) + a6(G) + nd_opt(2, mac(M))), flow=F)]",
            false,
        ),
        v6(
            "control: solicitation with its MAC",
            ns(" + nd_opt(1, mac(M))"),
            true,
        ),
        v6("control: solicitation without options", ns(""), true),
        v6(
            "control: advert with its MAC",
            "[ipv6(G, ALL, 58, icmp6(G, ALL, 136, bytes([0x20, 0, 0, 0]) + a6(G) + nd_opt(2, mac(M))), flow=F)]",
            true,
        ),
        v6(
            "control: router solicitation with its MAC",
            "[ipv6(LL, 'ff02::2', 58, icmp6(LL, 'ff02::2', 133, bytes(4) + nd_opt(1, mac(M))), flow=F)]",
            true,
        ),
        v6(
            "control: a DAD probe for its address, with a nonce",
            "[ipv6('::', 'ff02::1:ff00:21', 58, icmp6('::', 'ff02::1:ff00:21', 135, bytes(4) + a6(G) + nd_opt(14, bytes(6))), flow=F)]",
            true,
        ),
    ];
    check(&lab, pid, &cases);
    done(root, &lab);
}

/// A VE is no multicast router: multicast router discovery (IGMP and
/// ICMPv6) and PIM (IPv4 and IPv6) from it are dropped; membership
/// reports still pass.
#[test]
fn multicast_router_messages_are_dropped() {
    let (lab, root, pid) = bridged("mrd");
    let cases = [
        v6(
            "MRD advertisement (ICMPv6 151)",
            "[ipv6(LL, ALL, 58, icmp6(LL, ALL, 151, bytes(4)), hlim=1, flow=F)]",
            false,
        ),
        v6(
            "MRD solicitation (ICMPv6 152)",
            "[ipv6(LL, ALL, 58, icmp6(LL, ALL, 152), hlim=1, flow=F)]",
            false,
        ),
        v6(
            "MRD termination (ICMPv6 153)",
            "[ipv6(LL, ALL, 58, icmp6(LL, ALL, 153), hlim=1, flow=F)]",
            false,
        ),
        v6(
            "PIM hello over IPv6",
            "[ipv6(LL, 'ff02::d', 103, msg4(0x20, bytes(8)), hlim=1, flow=F)]",
            false,
        ),
        v4(
            "MRD advertisement (IGMP 0x30)",
            "[ipv4(V4, '224.0.0.1', 2, msg4(0x30, bytes(4)), ident=F)]",
            false,
        ),
        v4(
            "MRD solicitation (IGMP 0x31)",
            "[ipv4(V4, '224.0.0.1', 2, msg4(0x31), ident=F)]",
            false,
        ),
        v4(
            "MRD termination (IGMP 0x32)",
            "[ipv4(V4, '224.0.0.1', 2, msg4(0x32), ident=F)]",
            false,
        ),
        v4(
            "PIM hello over IPv4",
            "[ipv4(V4, '224.0.0.13', 103, msg4(0x20, bytes(8)), ident=F)]",
            false,
        ),
        v4(
            "control: an IGMPv3 membership report",
            "[ipv4(V4, '224.0.0.22', 2, msg4(0x22, bytes(4)), ident=F)]",
            true,
        ),
        v6(
            "control: an echo request to all nodes",
            "[ipv6(G, ALL, 58, icmp6(G, ALL, 128, bytes(4)), flow=F)]",
            true,
        ),
    ];
    check(&lab, pid, &cases);
    done(root, &lab);
}

/// Routing and first-hop redundancy protocols from a bridged VE never
/// reach its neighbours (a VE is no router for them): RIP, RIPng, OSPF,
/// EIGRP, VRRP, HSRP, GLBP, Babel, PIMv1, DVMRP, mtrace, inverse
/// neighbour discovery, IPv4 and IPv6, whatever the headers before them.
/// Tunnels pass (customers run them to remote endpoints), and so does
/// what hosts send: membership reports and leaves, ordinary UDP.
#[test]
fn routing_protocols_from_a_bridged_ve_are_dropped() {
    let (lab, root, pid) = bridged("routers");
    let rip = "bytes([2, 2, 0, 0, 0, 2, 0, 0]) + a4('0.0.0.0') + bytes(8) + struct.pack('!I', 1)";
    let cases = [
        v4(
            "PIMv1 query (IGMP 0x14)",
            "[ipv4(V4, '224.0.0.2', 2, msg4(0x14, bytes(4)), ident=F)]",
            false,
        ),
        v4(
            "DVMRP probe (IGMP 0x13)",
            "[ipv4(V4, '224.0.0.4', 2, msg4(0x13, bytes(8)), ident=F)]",
            false,
        ),
        v4(
            "mtrace request (IGMP 0x1f)",
            "[ipv4(V4, '224.0.0.2', 2, msg4(0x1f, bytes(20)), ident=F)]",
            false,
        ),
        v4(
            "mtrace response (IGMP 0x1e)",
            "[ipv4(V4, '224.0.1.32', 2, msg4(0x1e, bytes(20)), ident=F)]",
            false,
        ),
        v4(
            "VRRPv2 advert, priority 255 (protocol 112)",
            "[ipv4(V4, '224.0.0.18', 112, bytes([0x21, 1, 255, 1, 0, 1, 0, 0]) + a4('198.51.100.1'), ttl=255, ident=F)]",
            false,
        ),
        v4(
            "RIPv2 response (UDP 520)",
            format!("[ipv4(V4, '224.0.0.9', 17, udp4(V4, '224.0.0.9', 520, 520, {rip}), ident=F)]"),
            false,
        ),
        v4(
            "RIP response to a query's port (from UDP 520)",
            format!("[ipv4(V4, '198.51.100.100', 17, udp4(V4, '198.51.100.100', 520, 40000, {rip}), ident=F)]"),
            false,
        ),
        v4(
            "OSPFv2 hello (protocol 89)",
            "[ipv4(V4, '224.0.0.5', 89, bytes([2, 1, 0, 44]) + a4(V4) + bytes(36), ident=F)]",
            false,
        ),
        v4(
            "a later fragment of OSPF",
            "[ipv4(V4, '224.0.0.5', 89, bytes(16), frag=1, ident=F)]",
            false,
        ),
        v4(
            "EIGRP hello (protocol 88)",
            "[ipv4(V4, '224.0.0.10', 88, bytes([2, 5]) + bytes(18), ident=F)]",
            false,
        ),
        v4(
            "HSRP hello (UDP 1985)",
            "[ipv4(V4, '224.0.0.2', 17, udp4(V4, '224.0.0.2', 1985, 1985, bytes(20)), ident=F)]",
            false,
        ),
        v4(
            "GLBP hello (UDP 3222)",
            "[ipv4(V4, '224.0.0.102', 17, udp4(V4, '224.0.0.102', 3222, 3222, bytes(20)), ident=F)]",
            false,
        ),
        v4(
            "Babel hello (UDP 6696)",
            "[ipv4(V4, '224.0.0.111', 17, udp4(V4, '224.0.0.111', 6696, 6696, bytes(12)), ident=F)]",
            false,
        ),
        v6(
            "RIPng response (UDP 521)",
            "[ipv6(LL, 'ff02::9', 17, udp6(LL, 'ff02::9', 521, 521, bytes([2, 1, 0, 0]) + bytes(20)), flow=F)]",
            false,
        ),
        v6(
            "RIPng in a first fragment",
            "[ipv6(LL, 'ff02::9', 44, frag(17, 0, True, 7) + udp6(LL, 'ff02::9', 521, 521, bytes(24))[:16], flow=F)]",
            false,
        ),
        v6(
            "OSPFv3 hello (next header 89)",
            "[ipv6(LL, 'ff02::5', 89, bytes([3, 1, 0, 36]) + bytes(32), flow=F)]",
            false,
        ),
        v6(
            "OSPFv3 behind destination options",
            "[ipv6(LL, 'ff02::5', 60, opts(89) + bytes([3, 1, 0, 36]) + bytes(32), flow=F)]",
            false,
        ),
        v6(
            "VRRPv3 advert (next header 112)",
            "[ipv6(LL, 'ff02::12', 112, bytes([0x31, 1, 255, 1, 0, 100, 0, 0]) + a6('fe80::1'), flow=F)]",
            false,
        ),
        v6(
            "EIGRP for IPv6 (next header 88)",
            "[ipv6(LL, 'ff02::a', 88, bytes(20), flow=F)]",
            false,
        ),
        v6(
            "HSRP for IPv6 (UDP 2029)",
            "[ipv6(LL, 'ff02::66', 17, udp6(LL, 'ff02::66', 2029, 2029, bytes(20)), flow=F)]",
            false,
        ),
        v6(
            "Babel (UDP 6696)",
            "[ipv6(LL, 'ff02::1:6', 17, udp6(LL, 'ff02::1:6', 6696, 6696, bytes(12)), flow=F)]",
            false,
        ),
        v6(
            "inverse neighbour solicitation (ICMPv6 141) with another MAC",
            "[ipv6(LL, ALL, 58, icmp6(LL, ALL, 141, bytes(4) + nd_opt(1, mac(X))), flow=F)]",
            false,
        ),
        v6(
            "inverse neighbour advert (ICMPv6 142)",
            "[ipv6(LL, ALL, 58, icmp6(LL, ALL, 142, bytes(4) + nd_opt(1, mac(M))), flow=F)]",
            false,
        ),
        v4(
            "control: an IGMPv1 report",
            "[ipv4(V4, '239.1.2.3', 2, msg4(0x12, a4('239.1.2.3')), ident=F)]",
            true,
        ),
        v4(
            "control: an IGMPv2 report",
            "[ipv4(V4, '239.1.2.3', 2, msg4(0x16, a4('239.1.2.3')), ident=F)]",
            true,
        ),
        v4(
            "control: an IGMPv2 leave",
            "[ipv4(V4, '224.0.0.2', 2, msg4(0x17, a4('239.1.2.3')), ident=F)]",
            true,
        ),
        v4(
            "control: an IGMPv3 report",
            "[ipv4(V4, '224.0.0.22', 2, msg4(0x22, bytes(4)), ident=F)]",
            true,
        ),
        v4(
            "control: UDP to port 5000",
            "[ipv4(V4, '198.51.100.100', 17, udp4(V4, '198.51.100.100', 40000, 5000, b'x'), ident=F)]",
            true,
        ),
        v4(
            "control: a later fragment of UDP",
            "[ipv4(V4, '198.51.100.100', 17, bytes(16), frag=1, ident=F)]",
            true,
        ),
        v4(
            "control: IPIP (tunnels pass)",
            "[ipv4(V4, '198.51.100.100', 4, ipv4('10.0.0.1', '10.0.0.2', 17, udp4('10.0.0.1', '10.0.0.2', 1, 2))[1], ident=F)]",
            true,
        ),
        v4(
            "control: 6in4 (protocol 41)",
            "[ipv4(V4, '198.51.100.100', 41, ipv6('2001:db8:ff::1', '2001:db8:ff::2', 59, b'')[1], ident=F)]",
            true,
        ),
        v4(
            "control: GRE",
            "[ipv4(V4, '198.51.100.100', 47, bytes([0, 0, 8, 0]) + ipv4('10.0.0.1', '10.0.0.2', 17, udp4('10.0.0.1', '10.0.0.2', 1, 2))[1], ident=F)]",
            true,
        ),
        v6(
            "control: UDP to port 5000",
            "[ipv6(G, LAN, 17, udp6(G, LAN, 40000, 5000, b'x'), flow=F)]",
            true,
        ),
        v6(
            "control: IPv6 in IPv6",
            "[ipv6(G, LAN, 41, ipv6('2001:db8:ff::1', '2001:db8:ff::2', 59, b'')[1], flow=F)]",
            true,
        ),
        v6(
            "control: GRE over IPv6",
            "[ipv6(G, LAN, 47, bytes([0, 0, 0x86, 0xdd]) + ipv6('2001:db8:ff::1', '2001:db8:ff::2', 59, b'')[1], flow=F)]",
            true,
        ),
    ];
    check(&lab, pid, &cases);
    done(root, &lab);
}

/// The same from a routed VE, whose only neighbour is the host: routing
/// protocols sent through the host to the LAN are dropped at the host
/// end; ordinary UDP and tunnels get through.
#[test]
fn routing_protocols_from_a_routed_ve_are_dropped() {
    let (lab, root) = lab_and_root("routers-r");
    root.start_busybox("101", &["--ip", "192.0.2.11", "--ip", "2001:db8::11"]);
    let pid = root.init_pid("101");
    // The host learns the LAN's IPv6 neighbour from the LAN's own
    // solicitation (its link-local address may still be tentative, which
    // keeps it from soliciting itself).
    assert!(lab
        .lan(&[BUSYBOX, "ping", "-c", "1", "-W", "2", "2001:db8::1"])
        .status
        .success());
    let cases = [
        v4(
            "OSPFv2 (protocol 89)",
            "[ipv4(V4, LAN4, 89, bytes([2, 1, 0, 44]) + a4(V4) + bytes(36), ttl=64, ident=F)]",
            false,
        ),
        v4(
            "VRRPv2 (protocol 112)",
            "[ipv4(V4, LAN4, 112, bytes([0x21, 1, 255, 1, 0, 1, 0, 0]) + a4(V4), ttl=64, ident=F)]",
            false,
        ),
        v4(
            "EIGRP (protocol 88)",
            "[ipv4(V4, LAN4, 88, bytes(20), ttl=64, ident=F)]",
            false,
        ),
        v4(
            "RIPv2 (UDP 520)",
            "[ipv4(V4, LAN4, 17, udp4(V4, LAN4, 520, 520, bytes(24)), ttl=64, ident=F)]",
            false,
        ),
        v4(
            "HSRP (UDP 1985)",
            "[ipv4(V4, LAN4, 17, udp4(V4, LAN4, 1985, 1985, bytes(20)), ttl=64, ident=F)]",
            false,
        ),
        v4(
            "PIMv1 (IGMP 0x14)",
            "[ipv4(V4, LAN4, 2, msg4(0x14, bytes(4)), ttl=64, ident=F)]",
            false,
        ),
        v4(
            "mtrace request (IGMP 0x1f)",
            "[ipv4(V4, LAN4, 2, msg4(0x1f, bytes(20)), ttl=64, ident=F)]",
            false,
        ),
        v6(
            "RIPng (UDP 521)",
            "[ipv6(G, LAN, 17, udp6(G, LAN, 521, 521, bytes(24)), flow=F)]",
            false,
        ),
        v6(
            "OSPFv3 (next header 89)",
            "[ipv6(G, LAN, 89, bytes([3, 1, 0, 36]) + bytes(32), flow=F)]",
            false,
        ),
        v6(
            "VRRPv3 (next header 112)",
            "[ipv6(G, LAN, 112, bytes([0x31, 1, 255, 1, 0, 100, 0, 0]) + a6(G), flow=F)]",
            false,
        ),
        v6(
            "inverse neighbour solicitation (ICMPv6 141)",
            "[ipv6(G, LAN, 58, icmp6(G, LAN, 141, bytes(4) + nd_opt(1, mac(X))), flow=F)]",
            false,
        ),
        v4(
            "control: UDP to port 5000",
            "[ipv4(V4, LAN4, 17, udp4(V4, LAN4, 40000, 5000, b'x'), ttl=64, ident=F)]",
            true,
        ),
        v4(
            "control: GRE",
            "[ipv4(V4, LAN4, 47, bytes([0, 0, 8, 0]) + ipv4('10.0.0.1', '10.0.0.2', 17, udp4('10.0.0.1', '10.0.0.2', 1, 2))[1], ttl=64, ident=F)]",
            true,
        ),
        v4(
            "control: IPIP",
            "[ipv4(V4, LAN4, 4, ipv4('10.0.0.1', '10.0.0.2', 17, udp4('10.0.0.1', '10.0.0.2', 1, 2))[1], ttl=64, ident=F)]",
            true,
        ),
        v4(
            "control: 6in4",
            "[ipv4(V4, LAN4, 41, ipv6('2001:db8:ff::1', '2001:db8:ff::2', 59, b'')[1], ttl=64, ident=F)]",
            true,
        ),
        v6(
            "control: UDP to port 5000",
            "[ipv6(G, LAN, 17, udp6(G, LAN, 40000, 5000, b'x'), flow=F)]",
            true,
        ),
        v6(
            "control: IPv6 in IPv6",
            "[ipv6(G, LAN, 41, ipv6('2001:db8:ff::1', '2001:db8:ff::2', 59, b'')[1], flow=F)]",
            true,
        ),
    ];
    check_at(&lab, pid, &cases, false);
    done(root, &lab);
}

/// Connections the host tracks, in the lab's host namespace (none when
/// connection tracking never started there).
fn tracked(lab: &NetLab) -> u64 {
    let out = lab.host_cmd(&["cat", "/proc/sys/net/netfilter/nf_conntrack_count"]);
    String::from_utf8_lossy(&out.stdout)
        .trim()
        .parse()
        .unwrap_or(0)
}

/// Python that opens `flows` UDP flows (source ports from 20000) to the
/// LAN's port `port`, one packet each.
fn udp_flows(src: &str, port: u16, flows: u16) -> String {
    format!(
        "for p in range(20000, 20000 + {flows}):\n\
         \x20   s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)\n\
         \x20   s.bind(('{src}', p)); s.sendto(b'x', ('192.0.2.100', {port})); s.close()\n"
    )
}

/// One VE's NAT cannot fill the host's connection table: the flows the
/// host tracks for it are bounded (`nat_conntrack_max`), each VE on its
/// own, and flows that were answered keep working. A VE without NAT makes
/// the host track nothing at all.
#[test]
fn nat_connections_are_bounded_per_ve() {
    let (lab, root) = lab_and_root("ct");
    std::fs::create_dir_all(root.dir.join("lib")).unwrap();
    std::fs::write(
        root.dir.join("lib/kennel.toml"),
        "[network]\nnat_conntrack_max = 40\n",
    )
    .unwrap();
    root.start_busybox("101", &["--ip", "192.0.2.11"]);
    root.sh("101", "ping -c 2 -W 1 192.0.2.100 >/dev/null");
    assert_eq!(tracked(&lab), 0, "a VE without NAT made the host track it");
    assert!(!lab.host_ruleset().contains(" ct "));

    root.start_busybox("102", &["--ip", "203.0.113.12", "--nat-via", "up0"]);
    root.start_busybox("103", &["--ip", "203.0.113.13", "--nat-via", "up0"]);
    lab.watch(false, "ip saddr 192.0.2.1 udp dport 9");
    lab.watch(false, "ip saddr 192.0.2.1 udp dport 10");
    let server = Command::new("ip")
        .args(["netns", "exec", &lab.lan, BUSYBOX, "nc", "-l", "-p", "7000"])
        .stdout(Stdio::piped())
        .spawn()
        .unwrap();
    std::thread::sleep(Duration::from_millis(200));
    // 102: a TCP connection, then 100 UDP flows, then more on the
    // connection.
    forge(
        root.init_pid("102"),
        &format!(
            "t = socket.create_connection(('192.0.2.100', 7000)); t.sendall(b'before\\n')\n\
             {}t.sendall(b'after\\n'); t.close()",
            udp_flows("203.0.113.12", 9, 100)
        ),
    );
    forge(root.init_pid("103"), &udp_flows("203.0.113.13", 10, 10));
    std::thread::sleep(Duration::from_millis(300));
    // 40 flows of 102's: the connection and 39 of the UDP ones.
    assert_eq!(lab.count(false, "ip saddr 192.0.2.1 udp dport 9"), 39);
    let got = server.wait_with_output().unwrap();
    assert_eq!(
        String::from_utf8_lossy(&got.stdout),
        "before\nafter\n",
        "an answered flow goes on over the bound"
    );
    // Control: another VE's flows have their own bound.
    assert_eq!(lab.count(false, "ip saddr 192.0.2.1 udp dport 10"), 10);
    let n = tracked(&lab);
    assert!((50..=60).contains(&n), "the host tracks {n} connections");
    done(root, &lab);
}

/// Python that counts the UDP datagrams arriving on `port` until none has
/// come for a second: prints `ready`, then the count.
const COUNT_UDP: &str = "import socket, sys\n\
    s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)\n\
    s.bind(('0.0.0.0', int(sys.argv[1]))); print('ready', flush=True)\n\
    n = 0\n\
    s.settimeout(20)\n\
    try:\n\
    \x20   while True:\n\
    \x20       s.recv(100); n += 1; s.settimeout(1)\n\
    except socket.timeout:\n\
    \x20   pass\n\
    print(n, flush=True)";

/// Flows opened *to* a NAT VE (through its port forward, from the LAN
/// and from another VE) have a bound of their own: a flood of them stops
/// new flows to the VE beyond the bound, never the VE's own new flows.
#[test]
fn floods_to_a_nat_ve_never_cut_its_own_flows() {
    let (lab, root) = lab_and_root("ct-in");
    std::fs::create_dir_all(root.dir.join("lib")).unwrap();
    std::fs::write(
        root.dir.join("lib/kennel.toml"),
        "[network]\nnat_conntrack_max = 40\n",
    )
    .unwrap();
    root.start_busybox(
        "102",
        &[
            "--ip",
            "203.0.113.12",
            "--nat-via",
            "up0",
            "--forward",
            "udp:7000:7000",
        ],
    );
    root.start_busybox("103", &["--ip", "192.0.2.13"]);
    let pid = root.init_pid("102");
    // The receiver in VE 102, with the VE root's rights.
    let mut rx = as_ve_root(pid)
        .args([PYTHON, "-c"])
        .arg(COUNT_UDP)
        .arg("7000")
        .stdout(Stdio::piped())
        .spawn()
        .unwrap();
    let mut lines = BufReader::new(rx.stdout.take().unwrap()).lines();
    assert_eq!(lines.next().unwrap().unwrap(), "ready");
    // 60 flows from the LAN through the forward, 30 from VE 103 to 102's
    // address: 90 new flows to it.
    let lan = lab.lan(&[
        PYTHON,
        "-c",
        "import socket\n\
         for p in range(30000, 30060):\n\
         \x20   s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)\n\
         \x20   s.bind(('192.0.2.100', p)); s.sendto(b'x', ('192.0.2.1', 7000)); s.close()",
    ]);
    assert!(
        lan.status.success(),
        "{}",
        String::from_utf8_lossy(&lan.stderr)
    );
    forge(
        root.init_pid("103"),
        "for p in range(20000, 20030):\n\
         \x20   s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)\n\
         \x20   s.bind(('192.0.2.13', p)); s.sendto(b'x', ('203.0.113.12', 7000)); s.close()",
    );
    // Then the VE's own: 30 new flows to the LAN, all of them through.
    lab.watch(false, "ip saddr 192.0.2.1 udp dport 9");
    forge(pid, &udp_flows("203.0.113.12", 9, 30));
    std::thread::sleep(Duration::from_millis(300));
    assert_eq!(
        lab.count(false, "ip saddr 192.0.2.1 udp dport 9"),
        30,
        "the VE's own new flows, after 90 flows to it"
    );
    let got = lines.next().and_then(Result::ok).unwrap_or_default();
    let _ = rx.wait();
    assert_eq!(got, "40", "flows to the VE beyond the bound are dropped");
    done(root, &lab);
}

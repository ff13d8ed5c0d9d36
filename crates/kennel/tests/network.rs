//! VE networking with real links and real packets, in namespaces each test
//! makes (see `common::netlab`): Kennel runs in one that plays the host, a
//! second plays the LAN. Nothing here touches the machine's own network
//! namespace.
#![allow(clippy::expect_used, clippy::unwrap_used)]

mod common;
#[path = "network/hostile.rs"]
mod hostile;

use std::fs;
use std::time::Duration;

use common::netlab::{NetLab, BUSYBOX};
use common::{wait_for, TestRoot};

/// A TCP service in VE `id` on `port` that answers every connection with
/// `reply` (busybox nc, restarted after each connection).
fn serve(root: &TestRoot, id: &str, port: u16, reply: &str) {
    root.sh(
        id,
        // `-ll`: one listener that forks per connection, so a second
        // fetch never lands in the gap before a restarted `nc -l` listens.
        &format!("(nc -ll -p {port} -e echo {reply}) >/dev/null 2>&1 &"),
    );
    std::thread::sleep(Duration::from_millis(200));
}

/// VE `id` serves `reply` on port 80, and the LAN gets it from `ip`.
fn assert_lan_reaches(root: &TestRoot, lab: &NetLab, id: &str, ip: &str, reply: &str) {
    serve(root, id, 80, reply);
    assert_eq!(lab.lan_fetch(ip, 80), reply, "VE {id} at {ip} from the LAN");
}

fn assert_no_leaks(lab: &NetLab) {
    let leaks = lab.leaks();
    assert!(leaks.is_empty(), "left on the host:\n{}", leaks.join("\n"));
}

/// A network lab and a Kennel root that runs in its host namespace
/// (dropped in the reverse order: the root's VEs go before the lab).
fn lab_and_root(tag: &str) -> (NetLab, TestRoot) {
    let lab = NetLab::new(tag);
    let root = TestRoot::in_netns(&format!("net-{tag}"), &lab.host);
    (lab, root)
}

/// Kills VE `id`'s monitor and init at once, as a crash would: no
/// teardown runs. Only processes this test started, by PID.
fn crash(root: &TestRoot, id: &str) {
    let (monitor, init) = (root.monitor_pid(id), root.init_pid(id));
    for pid in [monitor, init] {
        let _ = std::process::Command::new("kill")
            .args(["-9", &pid.to_string()])
            .status();
    }
    assert!(wait_for(Duration::from_secs(5), || !common::pid_alive(
        init
    )));
}

/// Ends a test: every VE destroyed, nothing left in the host namespace.
fn done(root: TestRoot, lab: &NetLab) {
    root.finish();
    assert_no_leaks(lab);
}

/// The routed model: the LAN reaches the VE's TCP service over IPv4 and
/// IPv6 (proxy ARP/NDP on the uplink), the host reaches it without any
/// help, and nothing the VE forges gets to the receiver.
#[test]
fn routed_ve_is_reachable_and_cannot_spoof() {
    let (lab, root) = lab_and_root("routed");
    root.start_busybox(
        "101",
        &[
            "--ip",
            "192.0.2.11",
            "--ip",
            "2001:db8::11",
            "--nameserver",
            "192.0.2.1",
        ],
    );
    serve(&root, "101", 80, "hello-101");
    assert_eq!(
        lab.lan_fetch("192.0.2.11", 80),
        "hello-101",
        "IPv4 from the LAN"
    );
    assert_eq!(
        lab.lan_fetch("2001:db8::11", 80),
        "hello-101",
        "IPv6 from the LAN"
    );
    let host = lab.host_cmd(&[BUSYBOX, "ping", "-c", "1", "-W", "2", "192.0.2.11"]);
    assert!(host.status.success(), "the host reaches its VE");
    // Inside: its addresses, a default route via the host, its resolver.
    let addrs = root.sh("101", "ip addr show eth0");
    assert!(
        addrs.contains("192.0.2.11/32") && addrs.contains("2001:db8::11/128"),
        "{addrs}"
    );
    assert!(root
        .sh("101", "ip route")
        .contains("default via 169.254.0.1 dev eth0"));
    assert!(root
        .sh("101", "cat /etc/resolv.conf")
        .contains("nameserver 192.0.2.1"));

    // Forged sources: a foreign address, the host's, a LAN neighbour's.
    lab.watch(false, "ip saddr 192.0.2.11");
    lab.watch(false, "ip saddr 192.0.2.50");
    lab.watch(false, "ip saddr 192.0.2.1");
    lab.watch(false, "ip6 saddr 2001:db8::50");
    root.sh(
        "101",
        "ip addr add 192.0.2.50/32 dev eth0; ip -6 addr add 2001:db8::50/128 dev eth0 nodad; \
         ping -c 2 -W 1 -I 192.0.2.50 192.0.2.100; ping -c 2 -W 1 -I 2001:db8::50 2001:db8::100; \
         ip addr add 192.0.2.1/32 dev eth0; ping -c 2 -W 1 -I 192.0.2.1 192.0.2.100; \
         ping -c 2 -W 1 192.0.2.100; true",
    );
    assert!(
        lab.count(false, "ip saddr 192.0.2.11") > 0,
        "the VE's own address passes (control)"
    );
    for forged in [
        "ip saddr 192.0.2.50",
        "ip saddr 192.0.2.1",
        "ip6 saddr 2001:db8::50",
    ] {
        assert_eq!(lab.count(false, forged), 0, "{forged} reached the LAN");
    }
    // A forged ARP claim never reaches the host's neighbour table (while
    // the VE's own address is in it).
    root.sh(
        "101",
        "ip addr add 192.0.2.77/32 dev eth0; arping -c 2 -s 192.0.2.77 -I eth0 169.254.0.1; true",
    );
    let own = lab.host_cmd(&["ip", "neigh", "show", "192.0.2.11"]);
    assert!(
        !String::from_utf8_lossy(&own.stdout).trim().is_empty(),
        "control: the VE's own address is known"
    );
    let neigh = lab.host_cmd(&["ip", "neigh", "show", "192.0.2.77"]);
    assert!(
        String::from_utf8_lossy(&neigh.stdout).trim().is_empty(),
        "the host learned a forged ARP claim"
    );
    root.ok(&["stop", "101"]);
    assert_no_leaks(&lab);
    done(root, &lab);
}

/// Two routed VEs reach each other through the host; one that takes the
/// other's address gets nothing through to it.
#[test]
fn two_ves_reach_each_other_but_not_as_each_other() {
    let (lab, root) = lab_and_root("pair");
    root.start_busybox("101", &["--ip", "192.0.2.11"]);
    root.start_busybox("102", &["--ip", "192.0.2.12"]);
    serve(&root, "102", 80, "hello-102");
    let got = root.sh("101", "nc 192.0.2.12 80 </dev/null");
    assert_eq!(got.trim(), "hello-102");
    // 101 poses as the LAN client towards 102: nothing arrives; as itself
    // it does. Counted in 102's own network namespace.
    let pid = root.init_pid("102").to_string();
    let in_102 = |args: &[&str]| {
        let out = std::process::Command::new("nsenter")
            .args(["--target", &pid, "--net", "--", "nft"])
            .args(args)
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8_lossy(&out.stdout).into_owned()
    };
    in_102(&["add table ip rx; add chain ip rx c { type filter hook prerouting priority 0; }; add rule ip rx c ip saddr 192.0.2.100 counter; add rule ip rx c ip saddr 192.0.2.11 counter"]);
    root.sh(
        "101",
        "ip addr add 192.0.2.100/32 dev eth0; ping -c 2 -W 1 -I 192.0.2.100 192.0.2.12; ping -c 2 -W 1 192.0.2.12; true",
    );
    let counters = in_102(&["list", "table", "ip", "rx"]);
    assert!(
        counters.contains("ip saddr 192.0.2.100 counter packets 0 "),
        "a forged packet reached VE 102:\n{counters}"
    );
    assert!(
        !counters.contains("ip saddr 192.0.2.11 counter packets 0 "),
        "control: genuine packets arrive:\n{counters}"
    );
    done(root, &lab);
}

/// The bridged model: the VE's interface joins a bridge with a fixed MAC;
/// the LAN on the bridge reaches it; a changed MAC, a foreign address or
/// a forged ARP claim gets nothing onto the bridge.
#[test]
fn bridged_ve_is_reachable_and_filtered() {
    let (lab, root) = lab_and_root("bridge");
    lab.add_bridge();
    root.start_busybox(
        "102",
        &[
            "--netif",
            "eth1,bridge=br0,mac=02:00:00:00:01:02,ip=198.51.100.21/24",
        ],
    );
    assert_lan_reaches(&root, &lab, "102", "198.51.100.21", "hello-bridged");
    let link = root.sh("102", "ip link show eth1");
    assert!(link.contains("02:00:00:00:01:02"), "{link}");
    let master = lab.host_cmd(&["ip", "link", "show", "kv102_eth1"]);
    assert!(String::from_utf8_lossy(&master.stdout).contains("master br0"));

    lab.watch(true, "ether saddr 02:00:00:00:01:02");
    lab.watch(true, "ether saddr 02:66:66:66:66:66");
    lab.watch(true, "ip saddr 198.51.100.50");
    lab.watch(true, "arp saddr ip 198.51.100.77");
    root.sh(
        "102",
        "ping -c 2 -W 1 198.51.100.100; \
         ip addr add 198.51.100.50/24 dev eth1; ping -c 2 -W 1 -I 198.51.100.50 198.51.100.100; \
         ip addr add 198.51.100.77/32 dev eth1; arping -c 2 -U -s 198.51.100.77 -I eth1 198.51.100.77; \
         ip link set eth1 address 02:66:66:66:66:66; ping -c 2 -W 1 198.51.100.100; \
         ip link set eth1 address 02:00:00:00:01:02; true",
    );
    assert!(
        lab.count(true, "ether saddr 02:00:00:00:01:02") > 0,
        "its own MAC passes (control)"
    );
    for forged in [
        "ether saddr 02:66:66:66:66:66",
        "ip saddr 198.51.100.50",
        "arp saddr ip 198.51.100.77",
    ] {
        assert_eq!(lab.count(true, forged), 0, "{forged} reached the bridge");
    }
    done(root, &lab);
}

/// nft and iptables (nft and legacy) run with the VE's privileges work on
/// the VE's own stack: they take effect there and leave the host's
/// ruleset byte-identical. (The busybox template has no firewall tools:
/// the host's binaries run in the VE's user and network namespaces, with
/// exactly the VE root's rights.)
#[test]
fn firewall_rules_inside_a_ve_stay_inside() {
    let (lab, root) = lab_and_root("fw");
    root.start_busybox("101", &["--ip", "192.0.2.11"]);
    serve(&root, "101", 80, "open");
    serve(&root, "101", 81, "open81");
    serve(&root, "101", 82, "open82");
    // Control: every port answers before the VE closes it.
    for (port, reply) in [(80, "open"), (81, "open81"), (82, "open82")] {
        assert_eq!(lab.lan_fetch("192.0.2.11", port), reply);
    }
    let host_before = lab.host_ruleset();
    let machine_ruleset = || {
        let out = std::process::Command::new("nft")
            .args(["list", "ruleset"])
            .output()
            .unwrap();
        String::from_utf8_lossy(&out.stdout).into_owned()
    };
    let machine_before = machine_ruleset();
    let pid = root.init_pid("101");
    let xt = root.dir.join("xt");
    fs::create_dir(&xt).unwrap();
    fs::set_permissions(&xt, std::os::unix::fs::PermissionsExt::from_mode(0o777)).unwrap();
    let lock = xt.join("xtables.lock");
    let as_ve = |cmd: &[&str]| {
        let mut c = common::netlab::as_ve_root(pid);
        // iptables-legacy wants a lock file the VE's root may create.
        c.env("XTABLES_LOCKFILE", &lock).args(cmd);
        let out = c.output().unwrap();
        assert!(
            out.status.success(),
            "{cmd:?}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
    };
    as_ve(&["nft", "add table inet vefw; add chain inet vefw in { type filter hook input priority 0; }; add rule inet vefw in tcp dport 80 drop"]);
    as_ve(&[
        "iptables-nft",
        "-A",
        "INPUT",
        "-p",
        "tcp",
        "--dport",
        "81",
        "-j",
        "DROP",
    ]);
    as_ve(&[
        "iptables-legacy",
        "-A",
        "INPUT",
        "-p",
        "tcp",
        "--dport",
        "82",
        "-j",
        "DROP",
    ]);
    for port in [80, 81, 82] {
        assert_eq!(
            lab.lan_fetch("192.0.2.11", port),
            "",
            "port {port} is closed by the VE's rule"
        );
    }
    assert_eq!(
        lab.host_ruleset(),
        host_before,
        "the host's ruleset changed"
    );
    let machine_after = machine_ruleset();
    assert_eq!(
        machine_after, machine_before,
        "the machine's ruleset changed"
    );
    done(root, &lab);
}

/// Addresses come and go on a running VE (and are saved); rates are set
/// live and hold within 15% (iperf3 both ways, steady state), keep the
/// VE's filter in force, and go again.
#[test]
fn live_addresses_and_rates() {
    let (lab, root) = lab_and_root("live");
    root.start_busybox("101", &["--ip", "192.0.2.11"]);
    serve(&root, "101", 80, "live");
    root.ok(&[
        "set",
        "101",
        "--ip-add",
        "192.0.2.12/32",
        "--ip-add",
        "2001:db8::12",
    ]);
    root.ok(&["set", "101", "--ip-del", "192.0.2.11"]);
    assert_eq!(lab.lan_fetch("192.0.2.12", 80), "live");
    assert_eq!(lab.lan_fetch("2001:db8::12", 80), "live");
    assert_eq!(
        lab.lan_fetch("192.0.2.11", 80),
        "",
        "a removed address no longer reaches the VE"
    );
    let list = root.ok(&["list", "-H", "-o", "id,ip"]);
    assert_eq!(
        list.split_whitespace().collect::<Vec<_>>(),
        ["101", "192.0.2.12,2001:db8::12"]
    );
    // Saved: a restart keeps them.
    root.ok(&["restart", "101"]);
    assert_lan_reaches(&root, &lab, "101", "192.0.2.12", "again");

    root.ok(&["set", "101", "--rate", "20mbit"]);
    let pid = root.init_pid("101").to_string();
    let netns = format!("--net=/proc/{pid}/ns/net");
    for reverse in [false, true] {
        let server = lab.lan(&["iperf3", "-s", "-1", "-D", "-p", "5299"]);
        assert!(server.status.success());
        std::thread::sleep(Duration::from_millis(300));
        let mut args = vec![
            netns.as_str(),
            "iperf3",
            "-c",
            "192.0.2.100",
            "-p",
            "5299",
            // The egress policer's bucket holds a second of traffic: the
            // first two seconds are not the steady rate.
            "-O",
            "2",
            "-t",
            "3",
            "-J",
        ];
        if reverse {
            args.push("-R");
        }
        let out = std::process::Command::new("nsenter")
            .args(&args)
            .output()
            .unwrap();
        let v: serde_json::Value = serde_json::from_slice(&out.stdout).expect("iperf3 json");
        let bps = v["end"]["sum_received"]["bits_per_second"]
            .as_f64()
            .unwrap();
        let dir = if reverse { "into" } else { "out of" };
        assert!(
            (17e6..=23e6).contains(&bps),
            "{dir} the VE: {bps:.0} bit/s for a 20mbit rate"
        );
    }
    // With a rate, the VE's filter still holds.
    lab.watch(false, "ip saddr 192.0.2.50");
    root.sh(
        "101",
        "ip addr add 192.0.2.50/32 dev eth0; ping -c 2 -W 1 -I 192.0.2.50 192.0.2.100; true",
    );
    assert_eq!(
        lab.count(false, "ip saddr 192.0.2.50"),
        0,
        "a forged source passed under a rate"
    );
    root.ok(&["set", "101", "--rate", "none"]);
    let q = lab.host_cmd(&["tc", "qdisc", "show", "dev", "kv101_eth0"]);
    assert!(!String::from_utf8_lossy(&q.stdout).contains("tbf"));
    assert!(
        !lab.host_ruleset().contains("limit"),
        "the egress policer went with the rate"
    );
    done(root, &lab);
}

/// Stop and destroy remove every link, route, proxy entry and nft table,
/// and 200 start/stop cycles leave nothing behind.
#[test]
fn start_stop_cycles_leave_nothing() {
    let (lab, root) = lab_and_root("cycles");
    root.busybox();
    root.ok(&[
        "create",
        "101",
        "--template",
        "busybox",
        "--ip",
        "192.0.2.11",
        "--ip",
        "2001:db8::11",
        "--rate",
        "50mbit",
    ]);
    // The host's own rules, which Kennel must never flush or reorder.
    let own = lab.host_cmd(&[
        "nft",
        "add table inet hostfw; add chain inet hostfw input { type filter hook input priority 0; }; \
         add rule inet hostfw input tcp dport 22 accept; add rule inet hostfw input tcp dport 80 accept",
    ]);
    assert!(own.status.success());
    let host_rules = lab.host_ruleset();
    // 200 here; fewer in the cgroup v2 VM, whose emulated CPU is slow.
    let default = if std::env::var_os("KP_GUEST").is_some() {
        20
    } else {
        200
    };
    let cycles: u32 = std::env::var("KENNEL_NET_CYCLES")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default);
    for i in 0..cycles {
        root.ok(&["start", "101"]);
        if i == 0 {
            assert!(
                !lab.leaks().is_empty(),
                "a running VE has host objects (control)"
            );
        }
        // Both ways a VE ends: a clean stop (busybox init takes a second
        // to power off), and a kill; the teardown is the same.
        root.ok(&[if i % 10 == 0 { "stop" } else { "kill" }, "101"]);
        assert!(
            wait_for(Duration::from_secs(5), || lab.leaks().is_empty()),
            "cycle {i}: {:?}",
            lab.leaks()
        );
    }
    root.ok(&["start", "101"]);
    root.ok(&["destroy", "--force", "101"]);
    assert_no_leaks(&lab);
    assert_eq!(
        lab.host_ruleset(),
        host_rules,
        "the host's own rules changed"
    );
    root.finish();
}

/// Bad input is refused with one clear line and changes nothing.
#[test]
fn bad_network_input_is_refused() {
    let (lab, root) = lab_and_root("bad");
    root.busybox();
    root.ok(&[
        "create",
        "101",
        "--template",
        "busybox",
        "--ip",
        "192.0.2.11",
    ]);
    let cases: &[(&[&str], &str)] = &[
        (
            &["create", "102", "-t", "busybox", "--ip", "192.0.2.300"],
            "invalid address",
        ),
        (
            &["create", "102", "-t", "busybox", "--ip", "192.0.2.11"],
            "already used by VE 101",
        ),
        (
            &[
                "create",
                "102",
                "-t",
                "busybox",
                "--netif",
                "eth1,bridge=nosuch",
            ],
            "unknown bridge nosuch",
        ),
        (
            &[
                "create",
                "102",
                "-t",
                "busybox",
                "--ip",
                "192.0.2.12",
                "--rate",
                "100",
            ],
            "invalid rate",
        ),
        (
            &[
                "create",
                "102",
                "-t",
                "busybox",
                "--netif",
                "eth1,bridge=up0",
            ],
            "not a bridge",
        ),
        (
            &[
                "create",
                "102",
                "-t",
                "busybox",
                "--netif",
                "eth1,bridg=br0",
            ],
            "unknown key",
        ),
        (
            &["set", "101", "--ip-del", "192.0.2.99"],
            "has no routed address",
        ),
        (&["set", "101", "--rate", "fast"], "invalid rate"),
        (&["set", "101", "--ip-add", "127.0.0.1"], "invalid address"),
        (
            &["set", "101", "--ip-add", "192.0.2.255/24"],
            "invalid address 192.0.2.255/24: it is the broadcast address of 192.0.2.0/24",
        ),
        (
            &[
                "create",
                "102",
                "-t",
                "busybox",
                "--netif",
                "eth1,bridge=br0,ip=198.51.100.0/24",
            ],
            "network address of 198.51.100.0/24",
        ),
        (
            &["set", "101", "--nameserver", "dns.example"],
            "invalid --nameserver",
        ),
        (
            &["set", "101", "--forward-add", "tcp:80"],
            "invalid port forward",
        ),
        (&["set", "101"], "nothing to set"),
        (
            &["set", "101", "--ip-add", "192.0.2.1"],
            "one of this host's own",
        ),
        (
            &[
                "create",
                "102",
                "-t",
                "busybox",
                "--netif",
                "eth1,bridge=br0,mac=02:00:00:00:00:09",
            ],
            "already used by VE 103",
        ),
    ];
    let conf = root.dir.join("lib/ve/101/ve.conf");
    let before = fs::read_to_string(&conf).expect("ve.conf");
    assert!(lab
        .host_cmd(&["ip", "link", "add", "br0", "type", "bridge"])
        .status
        .success());
    root.ok(&[
        "create",
        "103",
        "--template",
        "busybox",
        "--netif",
        "eth1,bridge=br0,mac=02:00:00:00:00:09",
    ]);
    for (args, want) in cases {
        let err = root.fails(args, 2);
        assert!(err.contains(want), "{args:?}: {err}");
    }
    assert_eq!(
        fs::read_to_string(&conf).unwrap(),
        before,
        "ve.conf changed"
    );
    assert!(
        root.run(&["status", "102"]).status.code() != Some(0),
        "no VE 102 was left"
    );
    // Changing a bridged interface keeps its MAC unless one is given.
    root.ok(&[
        "set",
        "103",
        "--netif",
        "eth1,bridge=br0,ip=198.51.100.23/24",
    ]);
    assert_eq!(
        root.config("103")["network"]["netifs"][0]["mac"],
        "02:00:00:00:00:09"
    );
    // A running VE keeps its network when a change is refused.
    root.ok(&["start", "101"]);
    serve(&root, "101", 80, "still");
    root.fails(&["set", "101", "--netif", "eth1,bridge=nosuch"], 2);
    assert_eq!(lab.lan_fetch("192.0.2.11", 80), "still");
    done(root, &lab);
}

/// Kennel writes the VE's name and network into the VE's files, and a
/// VE that made them symlinks to host paths gets no host file written.
#[test]
fn guest_files_never_follow_the_ves_symlinks() {
    let (lab, root) = lab_and_root("files");
    root.start_busybox(
        "101",
        &[
            "--ip",
            "192.0.2.11",
            "--nameserver",
            "192.0.2.53",
            "--hostname",
            "web0",
        ],
    );
    root.sh("101", "mkdir -p /etc/network /etc/systemd/network");
    root.ok(&[
        "set",
        "101",
        "--hostname",
        "web1",
        "--searchdomain",
        "example.net",
    ]);
    assert_eq!(root.sh("101", "hostname").trim(), "web1");
    assert_eq!(root.sh("101", "cat /etc/hostname").trim(), "web1");
    let resolv = root.sh("101", "cat /etc/resolv.conf");
    assert!(
        resolv.contains("search example.net") && resolv.contains("nameserver 192.0.2.53"),
        "{resolv}"
    );
    assert!(root
        .sh("101", "cat /etc/hosts")
        .contains("192.0.2.11\tweb1"));
    let ifaces = root.sh("101", "cat /etc/network/interfaces");
    assert!(
        ifaces.contains("up ip addr replace 192.0.2.11/32 dev eth0"),
        "{ifaces}"
    );
    let networkd = root.sh("101", "cat /etc/systemd/network/10-kennel-eth0.network");
    assert!(networkd.contains("Address=192.0.2.11/32"), "{networkd}");
    // Files as the VE's root owns them.
    assert_eq!(
        root.sh("101", "stat -c %u:%g /etc/resolv.conf").trim(),
        "0:0"
    );

    // Symlinks to host files, absolute and by `..`.
    let canary = root.dir.join("canary");
    fs::write(&canary, "host file\n").unwrap();
    let c = canary.display();
    root.sh(
        "101",
        &format!(
            "for f in hostname resolv.conf hosts network/interfaces systemd/network/10-kennel-eth0.network; do \
             rm -f /etc/$f; ln -s {c} /etc/$f; done; ln -sf ../../../../../../../..{c} /etc/hosts"
        ),
    );
    root.ok(&[
        "set",
        "101",
        "--nameserver",
        "192.0.2.54",
        "--ip-add",
        "192.0.2.12",
    ]);
    root.ok(&["restart", "101"]);
    root.ok(&["set", "101", "--hostname", "web2"]);
    assert_eq!(
        fs::read_to_string(&canary).unwrap(),
        "host file\n",
        "a host file was written"
    );
    assert_eq!(
        root.sh(
            "101",
            "[ -L /etc/resolv.conf ] && [ -L /etc/hosts ] && echo links"
        )
        .trim(),
        "links"
    );
    // The network itself still follows the configuration.
    assert_lan_reaches(&root, &lab, "101", "192.0.2.12", "files");
    done(root, &lab);
}

/// A reboot inside the VE brings it back with the same network.
#[test]
fn network_survives_a_reboot_inside() {
    let (lab, root) = lab_and_root("reboot");
    root.start_busybox("101", &["--ip", "192.0.2.11"]);
    let before = root.init_pid("101");
    let _ = root.run(&["exec", "101", "--", "reboot"]);
    assert!(
        wait_for(Duration::from_secs(10), || {
            let s = root.status("101");
            s["running"] == true && s["init_pid"].as_i64() != Some(before as i64)
        }),
        "the VE came back"
    );
    assert_lan_reaches(&root, &lab, "101", "192.0.2.11", "rebooted");
    done(root, &lab);
}

/// Opt-in NAT and port forwarding: a VE whose address the LAN cannot
/// route to reaches the LAN as the host, and the LAN reaches its service
/// through a host port.
#[test]
fn nat_and_port_forwarding() {
    let (lab, root) = lab_and_root("nat");
    // 203.0.113.0/24 is unknown to the LAN: replies only come back by NAT.
    root.start_busybox(
        "101",
        &[
            "--ip",
            "203.0.113.11",
            "--nat-via",
            "up0",
            "--forward",
            "tcp:192.0.2.1:8080:80",
        ],
    );
    serve(&root, "101", 80, "forwarded");
    assert_eq!(lab.lan_fetch("192.0.2.1", 8080), "forwarded");
    // A forward with no host address takes traffic to the host only, not
    // traffic passing through to another VE's same port.
    root.ok(&["set", "101", "--forward-add", "tcp:9090:80"]);
    root.start_busybox("102", &["--ip", "192.0.2.12"]);
    serve(&root, "102", 9090, "ve-102");
    assert_eq!(lab.lan_fetch("192.0.2.1", 9090), "forwarded");
    assert_eq!(lab.lan_fetch("192.0.2.12", 9090), "ve-102");
    // The same host port cannot go to two VEs.
    let err = root.fails(&["set", "102", "--forward-add", "tcp:9090:22"], 2);
    assert!(err.contains("already forwarded to VE 101"), "{err}");
    lab.lan(&[
        BUSYBOX,
        "sh",
        "-c",
        "(echo from-lan | busybox nc -l -p 7000) >/dev/null 2>&1 &",
    ]);
    std::thread::sleep(Duration::from_millis(200));
    let got = root.sh("101", "nc -w 2 192.0.2.100 7000 </dev/null; true");
    assert_eq!(got.trim(), "from-lan");
    root.ok(&[
        "set",
        "101",
        "--nat-via",
        "none",
        "--forward-del",
        "tcp:192.0.2.1:8080:80",
    ]);
    assert_eq!(lab.lan_fetch("192.0.2.1", 8080), "");
    done(root, &lab);
}

/// A VE that died without its teardown (monitor and init killed) leaves
/// host objects that the next command removes, and it starts again.
#[test]
fn a_ve_killed_without_teardown_starts_again() {
    let (lab, root) = lab_and_root("crash");
    root.start_busybox("101", &["--ip", "192.0.2.11", "--forward", "tcp:8080:80"]);
    crash(&root, "101");
    assert!(
        !lab.leaks().is_empty(),
        "the host objects are still there (control)"
    );
    root.ok(&["start", "101"]);
    assert_lan_reaches(&root, &lab, "101", "192.0.2.11", "again");
    assert_eq!(lab.lan_fetch("192.0.2.1", 8080), "again");
    done(root, &lab);
}

/// A VE that died without its teardown, whose network record is then
/// found damaged, starts again: its links are found by name, and nothing
/// is left once it is destroyed.
#[test]
fn a_crashed_ve_with_an_unreadable_record_starts_again() {
    let (lab, root) = lab_and_root("badrec");
    root.start_busybox("101", &["--ip", "192.0.2.12"]);
    crash(&root, "101");
    let record = root.dir.join("run/ve/101/net.json");
    std::fs::write(&record, "{ damaged").expect("damage the record");
    root.ok(&["start", "101"]);
    assert_lan_reaches(&root, &lab, "101", "192.0.2.12", "again");
    done(root, &lab);
}

/// A change that removed a VE's port forwards and was cut short leaves a
/// record whose network needs no NAT while its NAT table may exist: the
/// record says so (`nat`), and the VE's stop removes the table.
#[test]
fn a_nat_table_the_record_may_hold_goes_with_the_ve() {
    let (lab, root) = lab_and_root("natrec");
    root.start_busybox("101", &["--ip", "192.0.2.13", "--forward", "tcp:8081:80"]);
    let record_path = root.dir.join("run/ve/101/net.json");
    let mut record: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(&record_path).expect("read the record"))
            .expect("parse the record");
    assert_eq!(record["nat"], true, "{record}");
    // As a `set` that dropped the forward would have left it.
    record["network"]["forwards"] = serde_json::json!([]);
    std::fs::write(&record_path, record.to_string()).expect("write the record");
    let before = lab.host_cmd(&["nft", "list", "table", "ip", "kennel-101"]);
    assert!(before.status.success(), "the NAT table exists (control)");
    root.ok(&["stop", "101"]);
    let after = lab.host_cmd(&["nft", "list", "table", "ip", "kennel-101"]);
    assert!(!after.status.success(), "the NAT table outlived the VE");
    done(root, &lab);
}

/// A host link or filter table that has a VE's name but is not the VE's
/// (another state root's VE with the same id) is never taken: the start is
/// refused, naming it, and it stays. (A start no longer lists every
/// host link to find the VE's leftovers: only its record says what they
/// are.)
#[test]
fn a_foreign_link_or_table_with_the_ves_name_is_refused_and_kept() {
    let (lab, root) = lab_and_root("foreign");
    let made = lab.host_cmd(&[
        "ip",
        "link",
        "add",
        "kv101_eth0",
        "type",
        "veth",
        "peer",
        "name",
        "foreign0",
    ]);
    assert!(made.status.success(), "{made:?}");
    root.create_busybox("101", &["--ip", "192.0.2.11"]);
    let out = root.run(&["start", "101"]);
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success(), "{out:?}");
    assert!(
        err.contains("host interface kv101_eth0 exists but is not VE 101's"),
        "{err}"
    );
    assert_eq!(root.status("101")["state"], "stopped");
    let kept = lab.host_cmd(&["ip", "link", "show", "kv101_eth0"]);
    assert!(kept.status.success(), "the foreign link was removed");
    let _ = lab.host_cmd(&["ip", "link", "del", "kv101_eth0"]);
    // Nor its filter table: a start would have replaced the other VE's
    // filter, and its stop removed it.
    let made = lab.host_cmd(&["nft", "add", "table", "netdev", "kennel-101"]);
    assert!(made.status.success(), "{made:?}");
    let out = root.run(&["start", "101"]);
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success(), "{out:?}");
    assert!(
        err.contains("table netdev kennel-101 exists but is not VE 101's"),
        "{err}"
    );
    let kept = lab.host_cmd(&["nft", "list", "table", "netdev", "kennel-101"]);
    assert!(kept.status.success(), "the foreign table was removed");
    let _ = lab.host_cmd(&["nft", "delete", "table", "netdev", "kennel-101"]);
    root.ok(&["start", "101"]);
    done(root, &lab);
}

/// With `dhcp=yes` a bridged VE gets a lease from a DHCP server on the
/// LAN; its MAC is still the only one it may use.
#[test]
fn bridged_ve_may_use_dhcp_where_allowed() {
    let lab = NetLab::new("dhcp");
    lab.add_bridge();
    let conf = std::env::temp_dir().join(format!("{}-udhcpd.conf", lab.lan));
    let leases = std::env::temp_dir().join(format!("{}-leases", lab.lan));
    fs::write(
        &conf,
        format!(
            "start 198.51.100.150\nend 198.51.100.160\ninterface lan1\nlease_file {}\npidfile {}.pid\n",
            leases.display(),
            leases.display()
        ),
    )
    .unwrap();
    fs::write(&leases, "").unwrap();
    let server = std::process::Command::new("ip")
        .args(["netns", "exec", &lab.lan, BUSYBOX, "udhcpd", "-f"])
        .arg(&conf)
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .spawn()
        .unwrap();
    struct Kill(std::process::Child);
    impl Drop for Kill {
        fn drop(&mut self) {
            let _ = self.0.kill();
            let _ = self.0.wait();
        }
    }
    let _server = Kill(server);
    let root = TestRoot::in_netns("net-dhcp", &lab.host);
    root.start_busybox(
        "102",
        &["--netif", "eth1,bridge=br0,mac=02:00:00:00:01:03,dhcp=yes"],
    );
    let got = root.sh("102", "udhcpc -i eth1 -n -q -t 5 -s /bin/true 2>&1; true");
    assert!(got.contains("lease of 198.51.100.15"), "no lease: {got}");
    let mac = root.sh("102", "ip link set eth1 address 02:66:66:66:66:67; udhcpc -i eth1 -n -q -t 3 -s /bin/true 2>&1; true");
    assert!(!mac.contains("obtained"), "a lease for a forged MAC: {mac}");
    done(root, &lab);
    for f in [conf, leases.clone(), leases.with_extension("pid")] {
        let _ = fs::remove_file(f);
    }
}

/// A Debian VE boots systemd to `running` with its network: ifupdown's
/// boot-time `ifup -a` runs Kennel's block without a failure, the LAN
/// reaches both addresses, and the resolver is set.
#[test]
fn debian_ve_boots_with_its_network() {
    let tarball = common::debian_tarball();
    let (lab, root) = lab_and_root("debian");
    root.ok(&["template", "import", "debian-12", tarball.to_str().unwrap()]);
    root.ok(&[
        "create",
        "200",
        "--template",
        "debian-12",
        "--ip",
        "192.0.2.20",
        "--ip",
        "2001:db8::20",
        "--nameserver",
        "192.0.2.1",
    ]);
    root.ok(&["start", "200"]);
    let (state, failed) = root.systemd_state("200");
    assert_eq!(state, "running", "failed units:\n{failed}");
    assert!(lab.lan_pings("192.0.2.20"));
    assert!(lab.lan_pings("2001:db8::20"));
    assert!(root
        .sh("200", "cat /etc/resolv.conf")
        .contains("nameserver 192.0.2.1"));
    let ifaces = root.sh("200", "cat /etc/network/interfaces");
    assert!(ifaces.contains("iface eth0 inet manual"), "{ifaces}");
    // ifupdown agrees: bringing eth0 down and up again keeps it working.
    root.sh("200", "ifdown eth0; ifup eth0");
    assert!(lab.lan_pings("192.0.2.20"), "after ifdown/ifup");
    assert!(root
        .sh("200", "ls /etc/systemd/network")
        .contains("10-kennel-eth0.network"));
    done(root, &lab);
}

/// The host's `nft flush ruleset` removes a VE's filter with every other
/// table: `kennel check` names the VE, and a restart restores its filter.
#[test]
fn a_flushed_filter_is_reported_and_restored_by_a_restart() {
    let (lab, root) = lab_and_root("flush");
    root.start_busybox("101", &["--ip", "192.0.2.11"]);
    assert!(!root.ok(&["check"]).contains("VE filters"));
    assert!(lab.host_cmd(&["nft", "flush", "ruleset"]).status.success());
    let out = root.run(&["check"]);
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(
        text.contains("VE filters") && text.contains("restart VE 101"),
        "{text}"
    );
    root.ok(&["restart", "101"]);
    assert!(lab.host_ruleset().contains("kennel-101"));
    done(root, &lab);
}

/// The line of `kennel check` named `name`.
fn check_line(root: &TestRoot, name: &str) -> String {
    let out = root.run(&["check"]);
    let text = String::from_utf8_lossy(&out.stdout).into_owned();
    text.lines()
        .find(|l| l.get(6..).is_some_and(|rest| rest.starts_with(name)))
        .unwrap_or_else(|| panic!("no {name} line in:\n{text}"))
        .to_string()
}

/// A bridge the host has no address on, with VE ports only, takes their
/// host ends' MAC; with forwarding on (routed VEs need it), the host
/// routes what a VE there sends to that MAC. `kennel check` names the
/// bridge and the switches that stop it; once they are set, nothing gets
/// through, while routed VEs still reach the LAN and the bridge still
/// carries its VEs' traffic.
#[test]
fn a_bridge_without_a_host_address_is_no_router_once_check_is_followed() {
    let (lab, root) = lab_and_root("br-router");
    let made = lab.host_cmd(&[
        "sh",
        "-ec",
        "ip link add br9 type bridge; ip link set br9 up",
    ]);
    assert!(made.status.success());
    for (id, n) in [("107", 7), ("108", 8)] {
        root.start_busybox(
            id,
            &[
                "--netif",
                &format!("eth1,bridge=br9,mac=02:00:00:00:0{n}:0{n},ip=203.0.113.{n}/24,ip=2001:db8:7::{n}/64"),
            ],
        );
    }
    root.start_busybox("101", &["--ip", "192.0.2.11"]);
    let line = check_line(&root, "bridge routing");
    assert!(
        line.starts_with("warn")
            && line.contains("no address on br9 ")
            && line.contains(
                "sysctl -w net.ipv4.conf.br9.forwarding=0 net.ipv6.conf.br9.disable_ipv6=1 "
            ),
        "{line}"
    );
    // UDP from VE 107 to the LAN, in frames to the host ends' MAC.
    let pid = root.init_pid("107");
    let send = |mark: u32| {
        common::netlab::forge(
            pid,
            &format!(
                "F = {mark}; B = 'fe:ff:ff:ff:ff:ff'; M = '02:00:00:00:07:07'\n\
                 send_to('eth1', M, B, ipv4('203.0.113.7', '192.0.2.100', 17, \
                 udp4('203.0.113.7', '192.0.2.100', 1234, 9, b'x'), ttl=64, ident=F))\n\
                 send_to('eth1', M, B, ipv6('2001:db8:7::7', '2001:db8::100', 17, \
                 udp6('2001:db8:7::7', '2001:db8::100', 1234, 9, b'x'), hlim=64, flow=F))"
            ),
        );
        std::thread::sleep(Duration::from_millis(300));
        let v4 = format!("ip id {mark}");
        let v6 = format!("ip6 flowlabel {mark}");
        (lab.count(false, &v4), lab.count(false, &v6))
    };
    // The host learns the LAN's IPv6 neighbour from the LAN's own
    // solicitation (its link-local address may still be tentative, which
    // keeps it from soliciting itself).
    assert!(lab
        .lan(&[BUSYBOX, "ping", "-c", "1", "-W", "2", "2001:db8::1"])
        .status
        .success());
    for mark in [0x201, 0x202] {
        lab.watch(false, &format!("ip id {mark}"));
        lab.watch(false, &format!("ip6 flowlabel {mark}"));
    }
    let (v4, v6) = send(0x201);
    assert!(v4 > 0 && v6 > 0, "routed by the host before: {v4} {v6}");
    // What `kennel check` says to set, in the lab's host namespace.
    let set = lab.host_cmd(&[
        "sysctl",
        "-qw",
        "net.ipv4.conf.br9.forwarding=0",
        "net.ipv6.conf.br9.disable_ipv6=1",
    ]);
    assert!(set.status.success());
    let line = check_line(&root, "bridge routing");
    assert!(line.starts_with("ok"), "{line}");
    assert_eq!(send(0x202), (0, 0), "routed by the host after");
    // Controls: a routed VE still reaches the LAN; the bridge still
    // carries IPv4 and IPv6 between its VEs.
    lab.watch(false, "ip saddr 192.0.2.11 udp dport 9");
    common::netlab::forge(
        root.init_pid("101"),
        "socket.socket(socket.AF_INET, socket.SOCK_DGRAM).sendto(b'x', ('192.0.2.100', 9))",
    );
    std::thread::sleep(Duration::from_millis(300));
    assert!(lab.count(false, "ip saddr 192.0.2.11 udp dport 9") > 0);
    let ping = root.sh(
        "107",
        "ping -c 1 -W 3 203.0.113.8 >/dev/null && ping -c 1 -W 3 2001:db8:7::8 >/dev/null && echo ok; true",
    );
    assert_eq!(ping.trim(), "ok", "VE 107 reaches VE 108 across br9");
    done(root, &lab);
}

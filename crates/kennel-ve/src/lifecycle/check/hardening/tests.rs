//! The decisions, from given values: nothing on the machine is changed.

use super::*;
use crate::lifecycle::ptys::UNRESERVED_PTYS;

fn rule(sysctl: &str) -> &'static SysctlRule {
    SYSCTL_RULES
        .iter()
        .find(|r| r.sysctl == sysctl)
        .expect("a rule")
}

fn value(v: &str) -> Result<Option<String>, String> {
    Ok(Some(v.to_string()))
}

#[test]
fn recommended_sysctls_are_ok_and_others_name_the_fix() {
    let cases: &[(&str, &[&str], &[&str], &str)] = &[
        (
            "kernel.unprivileged_bpf_disabled",
            &["1", "2"],
            &["0", "3"],
            "=2",
        ),
        ("vm.unprivileged_userfaultfd", &["0"], &["1"], "=0"),
        ("kernel.dmesg_restrict", &["1"], &["0"], "=1"),
        ("kernel.kptr_restrict", &["1", "2"], &["0"], "=1"),
        ("fs.protected_symlinks", &["1"], &["0"], "=1"),
        ("fs.protected_hardlinks", &["1"], &["0"], "=1"),
        ("fs.protected_fifos", &["1", "2"], &["0"], "=1"),
        ("fs.protected_regular", &["1", "2"], &["0"], "=1"),
        (
            "fs.file-max",
            &["9223372036854775807"],
            &["2466239"],
            "=9223372036854775807",
        ),
    ];
    assert_eq!(cases.len(), SYSCTL_RULES.len(), "every rule is tested");
    for (sysctl, good, bad, set) in cases {
        let r = rule(sysctl);
        for v in *good {
            let c = sysctl_check(r, value(v));
            assert_eq!(c.level, CheckLevel::Ok, "{sysctl} = {v}: {}", c.detail);
            assert!(
                c.detail.starts_with(&format!("{sysctl} = {v}")),
                "{}",
                c.detail
            );
        }
        for v in bad.iter().chain(&["junk"]) {
            let c = sysctl_check(r, value(v));
            assert_eq!(c.level, CheckLevel::Warn, "{sysctl} = {v}");
            assert!(
                c.detail.contains(&format!("sysctl -w {sysctl}{set} ")),
                "the fix is named: {}",
                c.detail
            );
        }
    }
}

#[test]
fn a_missing_sysctl_is_a_missing_feature_and_an_unreadable_one_a_warning() {
    let r = rule("vm.unprivileged_userfaultfd");
    assert_eq!(sysctl_check(r, Ok(None)).level, CheckLevel::Ok);
    let c = sysctl_check(r, Err("Permission denied".into()));
    assert_eq!(c.level, CheckLevel::Warn);
    assert!(
        c.detail.contains("sysctl -w vm.unprivileged_userfaultfd=0"),
        "{}",
        c.detail
    );
}

#[test]
fn conntrack_warns_when_nearly_full() {
    assert_eq!(conntrack_check(None, None, 0).level, CheckLevel::Ok);
    let c = conntrack_check(Some(262_144), Some(1000), 200_000);
    assert_eq!(c.level, CheckLevel::Ok);
    assert!(
        c.detail.contains("the VEs' own tables hold 200000 (47 MiB"),
        "{}",
        c.detail
    );
    assert!(
        c.detail.contains("net.netfilter.nf_conntrack_max = 262144"),
        "{}",
        c.detail
    );
    let c = conntrack_check(Some(1000), Some(900), 0);
    assert_eq!(c.level, CheckLevel::Warn);
    assert!(
        c.detail
            .contains("sysctl -w net.netfilter.nf_conntrack_max=65536 "),
        "{}",
        c.detail
    );
    let c = conntrack_check(Some(100_000), Some(80_000), 0);
    assert!(
        c.detail.contains("nf_conntrack_max=200000 "),
        "{}",
        c.detail
    );
}

#[test]
fn keys_are_informational() {
    let c = keys_check(Some(200), Some(20_000));
    assert_eq!(c.level, CheckLevel::Ok);
    assert!(
        c.detail.contains("kernel.keys.maxkeys = 200") && c.detail.contains("13107200 keys"),
        "{}",
        c.detail
    );
    assert_eq!(keys_check(None, None).level, CheckLevel::Ok);
}

#[test]
fn the_initial_mount_namespace_is_told_by_pid_1_or_its_fixed_inode() {
    let other = 0xF000_0123;
    assert_eq!(
        mount_ns_check(Some(7), Some(7), false).level,
        CheckLevel::Ok
    );
    assert_eq!(
        mount_ns_check(Some(other), Some(7), true).level,
        CheckLevel::Warn
    );
    // PID 1's namespace unreadable: the fixed inode still tells.
    assert_eq!(
        mount_ns_check(Some(INITIAL_MNT_NS_INO), None, true).level,
        CheckLevel::Ok
    );
    let c = mount_ns_check(Some(other), None, true);
    assert_eq!(c.level, CheckLevel::Warn);
    assert!(c.detail.contains("nsenter -t 1 -m"), "{}", c.detail);
    // An older kernel and no PID 1: cannot tell.
    let c = mount_ns_check(Some(other), None, false);
    assert_eq!(c.level, CheckLevel::Warn);
    assert!(c.detail.starts_with("cannot tell"), "{}", c.detail);
}

#[test]
fn a_release_agent_is_named_with_its_hierarchy() {
    let none = [("memory".to_string(), "\n".to_string())];
    assert_eq!(release_agent_check(&none, true).level, CheckLevel::Ok);
    assert_eq!(release_agent_check(&[], false).level, CheckLevel::Ok);
    let set = [
        ("memory".to_string(), String::new()),
        (
            "name=systemd".to_string(),
            "/usr/lib/agent\x1b[2J\n".to_string(),
        ),
    ];
    let c = release_agent_check(&set, true);
    assert_eq!(c.level, CheckLevel::Warn);
    assert!(
        c.detail
            .contains("name=systemd runs '/usr/lib/agent\\x1b[2J'")
            && !c.detail.contains("memory"),
        "{}",
        c.detail
    );
}

#[test]
fn the_pty_reserve_covers_the_ves_and_the_host() {
    let defaults = PtyLimits {
        max: 4096,
        reserve: 1024,
    };
    // 13 VEs x 64 + 128 = 960: the kernel's defaults do.
    assert_eq!(pty_needs(defaults, 13 * 64), None);
    assert_eq!(pty_check(Some(defaults), 13, 13 * 64).level, CheckLevel::Ok);
    // 100 VEs: 6528 reserved, and room above it.
    assert_eq!(
        pty_needs(defaults, 100 * 64),
        Some(PtyLimits {
            max: 6528 + UNRESERVED_PTYS,
            reserve: 6528
        })
    );
    let c = pty_check(Some(defaults), 100, 100 * 64);
    assert_eq!(c.level, CheckLevel::Warn);
    assert!(
        c.detail
            .contains("sysctl -w kernel.pty.reserve=6528 kernel.pty.max=7552 "),
        "{}",
        c.detail
    );
    // A reserve that leaves nothing above it.
    let tight = PtyLimits {
        max: 1100,
        reserve: 1024,
    };
    assert_eq!(
        pty_needs(tight, 0),
        Some(PtyLimits {
            max: 2048,
            reserve: 1024
        })
    );
    // Larger values than needed are kept, never lowered.
    let big = PtyLimits {
        max: 100_000,
        reserve: 50_000,
    };
    assert_eq!(pty_needs(big, 640), None);
    assert_eq!(pty_check(None, 1, 64).level, CheckLevel::Warn);
}

#[test]
fn memory_cgroup_ids_are_a_shared_pool() {
    let text =
        "#subsys_name\thierarchy\tnum_cgroups\tenabled\ncpuset\t3\t1\t1\nmemory\t4\t60000\t1\n";
    assert_eq!(memory_cgroups(text), Some(60000));
    assert_eq!(memcg_check(Some(60000), 0).level, CheckLevel::Warn);
    assert_eq!(memcg_check(Some(150), 0).level, CheckLevel::Ok);
    assert_eq!(memcg_check(None, 0).level, CheckLevel::Ok);
    // 60,000 VEs more would not fit.
    assert_eq!(memcg_check(Some(150), 60_000).level, CheckLevel::Warn);
}

#[test]
fn neighbour_tables_are_one_pool_for_every_namespace() {
    let text =
        "entries  allocs   destroys\n000003e8 000001de 000001f8\n000003e8 000000f2 000000d7\n";
    assert_eq!(stat_entries(text), Some(1000));
    assert_eq!(stat_entries("entries\n"), None);
    // Not visible here (outside the host's initial network namespace).
    assert_eq!(
        neigh_check(&ARP_TABLE, None, None, 10).level,
        CheckLevel::Ok
    );
    let c = neigh_check(&ARP_TABLE, Some(1024), Some(100), 2);
    assert_eq!(c.level, CheckLevel::Ok, "{}", c.detail);
    assert!(
        c.detail
            .starts_with("100 of net.ipv4.neigh.default.gc_thresh3 = 1024 entries in use"),
        "{}",
        c.detail
    );
    // 80% full: four times what is in use, as a power of two.
    let c = neigh_check(&ARP_TABLE, Some(1024), Some(900), 2);
    assert_eq!(c.level, CheckLevel::Warn);
    assert!(
        c.detail.contains("nearly full")
            && c.detail
                .contains("set: sysctl -w net.ipv4.neigh.default.gc_thresh3=4096 "),
        "{}",
        c.detail
    );
    // Too small for the VEs' own neighbours, though hardly used yet.
    let c = neigh_check(&NDP_TABLE, Some(1024), Some(10), 300);
    assert_eq!(c.level, CheckLevel::Warn);
    assert!(
        c.detail.contains("too small for 300 VEs")
            && c.detail
                .contains("set: sysctl -w net.ipv6.neigh.default.gc_thresh3=8192 "),
        "{}",
        c.detail
    );
    assert_eq!(
        neigh_check(&NDP_TABLE, Some(1024), Some(10), 128).level,
        CheckLevel::Ok
    );
    // Never lowered: at least twice the current value.
    assert_eq!(neigh_recommended(100_000, 90_000, 0), 524_288);
    assert_eq!(neigh_recommended(u64::MAX, u64::MAX, u64::MAX), u64::MAX);
}

#[test]
fn br_netfilter_puts_bridged_traffic_in_the_hosts_pools() {
    let some = |v: &str| Some(v.to_string());
    assert_eq!(bridge_nf_check(None, None).level, CheckLevel::Ok);
    assert_eq!(bridge_nf_check(some("0"), some("0")).level, CheckLevel::Ok);
    for (v4, v6) in [
        (some("1"), some("0")),
        (some("0"), some("1")),
        (some("1"), some("1")),
    ] {
        let c = bridge_nf_check(v4, v6);
        assert_eq!(c.level, CheckLevel::Warn);
        assert!(
            c.detail.contains(
                "set: sysctl -w net.bridge.bridge-nf-call-iptables=0 net.bridge.bridge-nf-call-ip6tables=0 "
            ) && c.detail.contains("unless the host filters bridged traffic with iptables on purpose"),
            "{}",
            c.detail
        );
    }
}

#[test]
fn a_bridge_without_a_host_address_must_not_route() {
    use kennel_net::bridges::VeBridge;
    let switch = |name: &str| VeBridge {
        name: name.into(),
        ipv4_address: false,
        ipv6_address: false,
        ipv4_forwarding: true,
        ipv6_forwarding: true,
    };
    assert_eq!(bridge_routing_check(Ok(vec![])).level, CheckLevel::Ok);
    assert_eq!(
        bridge_routing_check(Err("no netlink".into())).level,
        CheckLevel::Warn
    );
    let c = bridge_routing_check(Ok(vec![switch("br9")]));
    assert_eq!(c.level, CheckLevel::Warn);
    assert!(
        c.detail.contains("no address on br9")
            && c.detail.contains(
                "set: sysctl -w net.ipv4.conf.br9.forwarding=0 net.ipv6.conf.br9.disable_ipv6=1 "
            ),
        "{}",
        c.detail
    );
    // The host's gateway bridge: it routes on purpose.
    let gateway = VeBridge {
        ipv4_address: true,
        ipv6_address: true,
        ..switch("br0")
    };
    assert_eq!(
        bridge_routing_check(Ok(vec![gateway.clone()])).level,
        CheckLevel::Ok
    );
    // An address of one family: the other is still turned off.
    let v4_only = VeBridge {
        ipv6_address: false,
        ..gateway.clone()
    };
    assert_eq!(
        bridge_routing_fixes(&v4_only),
        ["net.ipv6.conf.br0.disable_ipv6=1"]
    );
    // Already off: nothing to say.
    let off = VeBridge {
        ipv4_forwarding: false,
        ipv6_forwarding: false,
        ..switch("br9")
    };
    assert!(bridge_routing_fixes(&off).is_empty());
    // A VLAN bridge's name, as sysctl(8) takes it.
    assert_eq!(
        bridge_routing_fixes(&switch("br0.7")),
        [
            "net.ipv4.conf.br0/7.forwarding=0",
            "net.ipv6.conf.br0/7.disable_ipv6=1"
        ]
    );
    let c = bridge_routing_check(Ok(vec![gateway, switch("br9"), switch("br8")]));
    assert!(
        c.detail.contains("no address on br9, br8 ")
            && c.detail
                .contains("net.ipv6.conf.br9.disable_ipv6=1 net.ipv4.conf.br8.forwarding=0"),
        "{}",
        c.detail
    );
}

#[test]
fn fuse_servers_need_a_timeout_where_ves_have_fuse() {
    assert_eq!(fuse_check(Some(0), 0).level, CheckLevel::Ok);
    let c = fuse_check(Some(0), 2);
    assert_eq!(c.level, CheckLevel::Warn);
    assert!(
        c.detail.contains("fs.fuse.max_request_timeout=600"),
        "{}",
        c.detail
    );
    assert_eq!(fuse_check(Some(600), 2).level, CheckLevel::Ok);
    assert_eq!(fuse_check(None, 1).level, CheckLevel::Warn);
}

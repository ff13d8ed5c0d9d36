//! The rtnetlink wrapper against the real kernel (needs root).
//!
//! Every test works only inside network namespaces it makes itself: a
//! short-lived thread unshares a new one and hands back an fd of it; the
//! namespace (and every link in it) goes when that fd and the sockets in it
//! are closed. The machine's own namespace is never touched: sockets come
//! from `Netlink::open_in`, or from `Netlink::open` on a thread that has
//! entered a test namespace.
#![allow(clippy::expect_used)] // test code: a failed expectation is a failed test

use std::fs::{self, File};
use std::net::IpAddr;
use std::os::fd::{AsFd, BorrowedFd, OwnedFd};
use std::process::Command;
use std::thread;
use std::time::{Duration, Instant};

use ipnet::IpNet;
use kennel_net::netlink::{LinkInfo, Netlink, NetlinkError, Route, VethEnd};
use rustix::io::Errno;
use rustix::thread::{move_into_link_name_space, LinkNameSpaceType, UnshareFlags};

/// A new, empty network namespace; it lives as long as the fd (and the
/// sockets opened in it).
fn netns() -> OwnedFd {
    thread::spawn(|| {
        kennel_sys::ns::unshare_namespaces(UnshareFlags::NEWNET).expect("unshare a netns");
        OwnedFd::from(File::open("/proc/thread-self/ns/net").expect("open own netns"))
    })
    .join()
    .expect("netns thread")
}

/// Runs `f` on a thread inside `ns`.
fn in_ns<T: Send>(ns: BorrowedFd<'_>, f: impl FnOnce() -> T + Send) -> T {
    thread::scope(|s| {
        s.spawn(move || {
            move_into_link_name_space(ns, Some(LinkNameSpaceType::Network)).expect("setns");
            f()
        })
        .join()
        .expect("thread in netns")
    })
}

/// `ip ARGS` inside `ns`; its standard output.
fn ip(ns: BorrowedFd<'_>, args: &[&str]) -> String {
    let out = in_ns(ns, || {
        Command::new("ip").args(args).output().expect("run ip")
    });
    assert!(
        out.status.success(),
        "ip {args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

fn own_netns() -> String {
    fs::read_link("/proc/thread-self/ns/net")
        .expect("read own netns")
        .display()
        .to_string()
}

fn end(name: &str) -> VethEnd<'_> {
    VethEnd {
        name,
        mac: None,
        mtu: None,
    }
}

fn net(text: &str) -> IpNet {
    text.parse().expect("network")
}

fn ipa(text: &str) -> IpAddr {
    text.parse().expect("address")
}

/// A veth pair with both ends in `ns`, both up; the index of `name`.
fn veth_up(nl: &mut Netlink, ns: BorrowedFd<'_>, name: &str, peer: &str) -> u32 {
    let index = nl
        .create_veth(&end(name), &end(peer), ns)
        .expect("create veth");
    let peer_index = nl.link_index(peer).expect("peer").expect("peer exists");
    nl.set_up(index).expect("up");
    nl.set_up(peer_index).expect("peer up");
    index
}

fn kernel_errno(result: Result<impl std::fmt::Debug, NetlinkError>) -> i32 {
    let err = result.expect_err("the kernel should refuse");
    assert!(matches!(err, NetlinkError::Kernel { .. }), "{err:?}");
    err.errno().expect("errno")
}

#[test]
fn open_in_keeps_the_caller_namespace_and_open_uses_the_current_one() {
    let ns = netns();
    let before = own_netns();
    let mut nl = Netlink::open_in(ns.as_fd()).expect("open_in");
    assert_eq!(own_netns(), before, "open_in moved the calling thread");

    // A fresh namespace has only `lo`, down.
    let lo = nl.link("lo").expect("link lo").expect("lo exists");
    assert_eq!(
        lo,
        LinkInfo {
            index: 1,
            name: "lo".into(),
            kind: None,
            mac: Some([0; 6]),
            master: None,
            up: false,
        }
    );
    assert_eq!(nl.link_index("nothere0").expect("lookup"), None);
    let all = nl.links_with_prefix("").expect("dump");
    assert_eq!(all.len(), 1, "{all:?}");

    // open() on a thread inside the namespace works there.
    let index = in_ns(ns.as_fd(), || {
        let mut inside = Netlink::open().expect("open");
        inside
            .create_veth(&end("ko0"), &end("ko1"), ns.as_fd())
            .expect("create veth from open()")
    });
    assert_eq!(nl.link_index("ko0").expect("lookup"), Some(index));
    assert!(format!("{nl:?}").starts_with("Netlink"));
}

#[test]
fn veth_pair_across_namespaces() {
    let host_ns = netns();
    let peer_ns = netns();
    let mut host = Netlink::open_in(host_ns.as_fd()).expect("open host");
    let mut peer = Netlink::open_in(peer_ns.as_fd()).expect("open peer");

    let host_mac = [0x02, 0x4b, 0x4e, 0, 0, 0x01];
    let peer_mac = [0x02, 0x4b, 0x4e, 0, 0, 0x02];
    let index = host
        .create_veth(
            &VethEnd {
                name: "kt101.0",
                mac: Some(host_mac),
                mtu: Some(1400),
            },
            &VethEnd {
                name: "eth0",
                mac: Some(peer_mac),
                mtu: Some(1400),
            },
            peer_ns.as_fd(),
        )
        .expect("create veth");

    let h = host.link("kt101.0").expect("lookup").expect("host end");
    assert_eq!(h.index, index);
    assert_eq!(h.kind.as_deref(), Some("veth"));
    assert_eq!(h.mac, Some(host_mac));
    assert_eq!(h.master, None);
    assert!(!h.up);
    assert_eq!(host.link("eth0").expect("lookup"), None);

    let p = peer.link("eth0").expect("lookup").expect("peer end");
    assert_eq!(p.kind.as_deref(), Some("veth"));
    assert_eq!(p.mac, Some(peer_mac));
    assert_eq!(peer.link("kt101.0").expect("lookup"), None);
    assert!(ip(peer_ns.as_fd(), &["-o", "link", "show", "eth0"]).contains("mtu 1400"));
    assert!(ip(host_ns.as_fd(), &["-o", "link", "show", "kt101.0"]).contains("mtu 1400"));

    let listed = host.links_with_prefix("kt101.").expect("dump");
    assert_eq!(listed, vec![h]);
    assert!(host.links_with_prefix("eth").expect("dump").is_empty());

    // The same host name again: EEXIST, with the operation in the text.
    let err = host
        .create_veth(&end("kt101.0"), &end("eth1"), peer_ns.as_fd())
        .expect_err("duplicate host name");
    assert_eq!(err.errno(), Some(Errno::EXIST.raw_os_error()));
    assert!(
        err.to_string()
            .starts_with("create veth kt101.0: File exists (os error 17)"),
        "{err}"
    );
    // The same peer name in the peer namespace: EEXIST too, and nothing
    // is left behind on the host side.
    let errno = kernel_errno(host.create_veth(&end("kt101.1"), &end("eth0"), peer_ns.as_fd()));
    assert_eq!(errno, Errno::EXIST.raw_os_error());
    assert_eq!(host.link_index("kt101.1").expect("lookup"), None);

    // Deleting one end removes the pair.
    assert!(host.delete_link("kt101.0").expect("delete"));
    assert_eq!(host.link_index("kt101.0").expect("lookup"), None);
    assert_eq!(peer.link_index("eth0").expect("lookup"), None);
    assert!(!host.delete_link("kt101.0").expect("delete again"));
}

#[test]
fn addresses_v4_and_v6() {
    let ns = netns();
    let mut nl = Netlink::open_in(ns.as_fd()).expect("open");
    let index = veth_up(&mut nl, ns.as_fd(), "ka0", "ka1");

    let wanted = [
        net("10.1.2.3/24"),
        net("192.0.2.7/32"),
        net("169.254.1.1/16"),
        net("2001:db8::5/64"),
        net("2001:db8:1::7/128"),
    ];
    for _ in 0..2 {
        for addr in wanted {
            nl.add_address(index, addr, true)
                .unwrap_or_else(|e| panic!("add {addr}: {e}"));
        }
    }
    let listed = nl.addresses(index).expect("list");
    for addr in wanted {
        let n = listed.iter().filter(|a| **a == addr).count();
        assert_eq!(n, 1, "{addr} in {listed:?}");
    }
    // The peer's addresses are not reported for this link.
    assert!(listed.iter().all(|a| !a.addr().is_loopback()));

    let v4 = ip(ns.as_fd(), &["-o", "-4", "addr", "show", "dev", "ka0"]);
    assert!(
        v4.contains("inet 10.1.2.3/24 brd 10.1.2.255 scope global"),
        "{v4}"
    );
    assert!(!v4.contains("192.0.2.7/32 brd"), "{v4}");
    assert!(
        v4.contains("inet 169.254.1.1/16 brd 169.254.255.255 scope link"),
        "{v4}"
    );
    let v6 = ip(ns.as_fd(), &["-o", "-6", "addr", "show", "dev", "ka0"]);
    for line in v6.lines().filter(|l| l.contains("2001:db8")) {
        assert!(line.contains("scope global"), "{line}");
        assert!(line.contains("nodad"), "{line}");
        assert!(!line.contains("tentative"), "{line}");
    }

    for addr in wanted {
        assert!(nl.del_address(index, addr).expect("del"), "{addr}");
        assert!(!nl.del_address(index, addr).expect("del again"), "{addr}");
    }
    let left = nl.addresses(index).expect("list");
    assert!(
        left.iter().all(|a| !wanted.contains(a)),
        "left behind: {left:?}"
    );
}

#[test]
fn routes_add_lookup_delete() {
    let ns = netns();
    let mut nl = Netlink::open_in(ns.as_fd()).expect("open");
    let dev = veth_up(&mut nl, ns.as_fd(), "kr0", "kr1");
    nl.add_address(dev, net("10.9.0.1/24"), false)
        .expect("addr");
    nl.add_address(dev, net("2001:db8:9::1/64"), true)
        .expect("addr6");

    assert_eq!(nl.route_dev(ipa("10.9.0.5")).expect("get"), Some(dev));
    assert_eq!(nl.route_dev(ipa("198.51.100.9")).expect("get"), None);
    assert_eq!(nl.route_dev(ipa("2001:db8:ffff::1")).expect("get"), None);

    let routes = [
        Route {
            dst: net("198.51.100.0/24"),
            dev,
            gateway: None,
            onlink: false,
        },
        Route {
            dst: net("203.0.113.0/24"),
            dev,
            gateway: Some(ipa("10.9.0.254")),
            onlink: false,
        },
        Route {
            dst: net("192.0.2.0/24"),
            dev,
            gateway: Some(ipa("100.64.0.1")),
            onlink: true,
        },
        Route {
            dst: net("2001:db8:1::/64"),
            dev,
            gateway: None,
            onlink: false,
        },
        Route {
            dst: net("2001:db8:2::/64"),
            dev,
            gateway: Some(ipa("fe80::1")),
            onlink: false,
        },
    ];
    for _ in 0..2 {
        for route in &routes {
            nl.add_route(route)
                .unwrap_or_else(|e| panic!("add {route:?}: {e}"));
        }
    }
    for probe in [
        "198.51.100.9",
        "203.0.113.1",
        "192.0.2.200",
        "2001:db8:1::1",
        "2001:db8:2::2",
    ] {
        assert_eq!(nl.route_dev(ipa(probe)).expect("get"), Some(dev), "{probe}");
    }
    let table = ip(ns.as_fd(), &["route", "show", "198.51.100.0/24"]);
    assert!(table.contains("proto static scope link"), "{table}");
    let table = ip(ns.as_fd(), &["route", "show", "192.0.2.0/24"]);
    assert!(table.contains("onlink"), "{table}");

    // A gateway off the link needs onlink.
    let err = nl
        .add_route(&Route {
            dst: net("192.0.2.0/25"),
            dev,
            gateway: Some(ipa("100.64.0.1")),
            onlink: false,
        })
        .expect_err("gateway off the link");
    assert_eq!(err.errno(), Some(Errno::NETUNREACH.raw_os_error()));
    // The kernel's extended ack text ("Nexthop has invalid gateway") is kept.
    assert!(
        matches!(&err, NetlinkError::Kernel { message: Some(m), .. } if err.to_string().ends_with(m.as_str())),
        "{err:?}"
    );

    for route in &routes {
        assert!(nl.del_route(route).expect("del"), "{route:?}");
        assert!(!nl.del_route(route).expect("del again"), "{route:?}");
    }
    assert_eq!(nl.route_dev(ipa("198.51.100.9")).expect("get"), None);
    assert_eq!(nl.route_dev(ipa("2001:db8:1::1")).expect("get"), None);

    // Routes someone else made (proto boot) are not deleted.
    ip(ns.as_fd(), &["route", "add", "198.18.0.0/24", "dev", "kr0"]);
    let theirs = Route {
        dst: net("198.18.0.0/24"),
        dev,
        gateway: None,
        onlink: false,
    };
    assert!(!nl.del_route(&theirs).expect("del"));
    assert_eq!(nl.route_dev(ipa("198.18.0.1")).expect("get"), Some(dev));
}

#[test]
fn proxy_neighbours_v4_and_v6() {
    let ns = netns();
    let mut nl = Netlink::open_in(ns.as_fd()).expect("open");
    let dev = veth_up(&mut nl, ns.as_fd(), "kn0", "kn1");
    let other = nl.link_index("kn1").expect("lookup").expect("kn1");
    assert!(nl.proxy_neighs().expect("list").is_empty());

    let entries = [
        (dev, ipa("10.0.0.5")),
        (dev, ipa("2001:db8::5")),
        (other, ipa("10.0.0.6")),
    ];
    for _ in 0..2 {
        for (d, a) in entries {
            nl.add_proxy_neigh(d, a).expect("add proxy");
        }
    }
    let mut listed = nl.proxy_neighs().expect("list");
    listed.sort();
    let mut expected = entries.to_vec();
    expected.sort();
    assert_eq!(listed, expected);
    let shown = ip(ns.as_fd(), &["-6", "neigh", "show", "proxy"]);
    assert!(shown.contains("2001:db8::5 dev kn0 proxy"), "{shown}");

    for (d, a) in entries {
        assert!(nl.del_proxy_neigh(d, a).expect("del"), "{a}");
        assert!(!nl.del_proxy_neigh(d, a).expect("del again"), "{a}");
    }
    assert!(nl.proxy_neighs().expect("list").is_empty());
}

#[test]
fn set_master_to_a_bridge() {
    let ns = netns();
    let mut nl = Netlink::open_in(ns.as_fd()).expect("open");
    ip(ns.as_fd(), &["link", "add", "kbr0", "type", "bridge"]);
    let br = nl.link("kbr0").expect("lookup").expect("bridge");
    assert_eq!(br.kind.as_deref(), Some("bridge"));
    assert!(!br.up);
    nl.set_up(br.index).expect("bridge up");
    assert!(nl.link("kbr0").expect("lookup").expect("bridge").up);

    let port = nl
        .create_veth(&end("kb0"), &end("kb1"), ns.as_fd())
        .expect("veth");
    nl.set_master(port, br.index).expect("set master");
    let info = nl.link("kb0").expect("lookup").expect("port");
    assert_eq!(info.master, Some(br.index));
    assert_eq!(nl.link("kb1").expect("lookup").expect("peer").master, None);
    let shown = ip(ns.as_fd(), &["-o", "link", "show", "kb0"]);
    assert!(shown.contains("master kbr0"), "{shown}");

    // No such master: the kernel says EINVAL.
    let err = nl.set_master(port, 999_999).expect_err("no such master");
    assert_eq!(err.errno(), Some(Errno::INVAL.raw_os_error()));
    assert!(nl.delete_link("kbr0").expect("delete bridge"));
    assert_eq!(nl.link("kb0").expect("lookup").expect("port").master, None);
}

#[test]
fn addr_gen_mode_none_leaves_no_link_local() {
    let ns = netns();
    let mut nl = Netlink::open_in(ns.as_fd()).expect("open");
    let control = nl
        .create_veth(&end("kg0"), &end("kg1"), ns.as_fd())
        .expect("control veth");
    let subject = nl
        .create_veth(&end("kg2"), &end("kg3"), ns.as_fd())
        .expect("subject veth");
    let subject_peer = nl.link_index("kg3").expect("lookup").expect("kg3");
    nl.set_addr_gen_mode_none(subject).expect("addr gen mode");
    for name in ["kg0", "kg1", "kg2", "kg3"] {
        let index = nl.link_index(name).expect("lookup").expect("link");
        nl.set_up(index).expect("up");
    }
    assert!(nl.link("kg2").expect("lookup").expect("kg2").up);

    // The kernel adds link-locals when the carrier comes up (deferred
    // work): wait for the control pair and the subject's own peer to get
    // theirs, then the subject must have none.
    let link_local = |nl: &mut Netlink, index: u32| {
        nl.addresses(index)
            .expect("list")
            .iter()
            .any(|a| matches!(a.addr(), IpAddr::V6(v6) if v6.segments()[0] == 0xfe80))
    };
    let deadline = Instant::now() + Duration::from_secs(10);
    while !(link_local(&mut nl, control) && link_local(&mut nl, subject_peer)) {
        assert!(
            Instant::now() < deadline,
            "no link-local on the control links"
        );
        thread::sleep(Duration::from_millis(50));
    }
    assert!(!link_local(&mut nl, subject), "{:?}", nl.addresses(subject));
    let shown = ip(ns.as_fd(), &["-d", "-o", "link", "show", "kg2"]);
    assert!(shown.contains("addrgenmode none"), "{shown}");
}

#[test]
fn dumps_span_several_datagrams() {
    let ns = netns();
    let mut nl = Netlink::open_in(ns.as_fd()).expect("open");
    for i in 0..60 {
        let (a, b) = (format!("kd{i}a"), format!("kd{i}b"));
        nl.create_veth(&end(&a), &end(&b), ns.as_fd())
            .expect("veth");
    }
    let links = nl.links_with_prefix("kd").expect("dump");
    assert_eq!(links.len(), 120);
    assert!(links.iter().all(|l| l.kind.as_deref() == Some("veth")));
    // The socket still pairs requests and replies after a long dump.
    assert_eq!(nl.link("lo").expect("lookup").expect("lo").index, 1);
}

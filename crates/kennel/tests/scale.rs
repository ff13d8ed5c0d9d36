//! What many VEs on one host must never share, now that commands on one
//! VE check the claims index instead of reading every VE's configuration
//! (`kennel_ve::claims`): addresses, MACs, forwarded ports and id ranges
//! stay one VE's each, across `set`, `rename` and `destroy`, and a state
//! root made before the index gets one. No timing here:
//! `bench/ops-scale.sh` measures the cost.
#![allow(clippy::expect_used, clippy::unwrap_used)]

mod common;

use std::collections::BTreeSet;
use std::fs;

use common::netlab::NetLab;
use common::TestRoot;

fn uid_base(root: &TestRoot, id: &str) -> u64 {
    root.config(id)["idmap"]["uid_base"]
        .as_u64()
        .expect("uid_base")
}

/// The arguments of a quick create (`--storage dir`) of VE `id`.
fn create<'a>(id: &'a str, extra: &[&'a str]) -> Vec<&'a str> {
    let mut a = vec!["create", id, "-t", "busybox", "--storage", "dir"];
    a.extend_from_slice(extra);
    a
}

/// `args` is refused (exit 2) with a message naming `holder`.
fn refused(root: &TestRoot, args: &[&str], want: &str) {
    let err = root.fails(args, 2);
    assert!(err.contains(want), "{args:?}: {err}");
}

#[test]
fn addresses_macs_and_ports_stay_one_ves() {
    let lab = NetLab::new("scale");
    let root = TestRoot::in_netns("scale", &lab.host);
    lab.add_bridge();
    root.busybox();
    root.ok(&create(
        "101",
        &[
            "--ip",
            "192.0.2.11",
            "--ip",
            "2001:db8::11",
            "--ip",
            "192.0.2.13",
            "--netif",
            "eth1,bridge=br0,mac=02:00:00:00:00:09",
        ],
    ));
    root.ok(&["set", "101", "--forward-add", "tcp:9090:80"]);
    let taken = "already used by VE 101";
    refused(&root, &create("102", &["--ip", "192.0.2.11"]), taken);
    refused(&root, &create("102", &["--ip", "2001:db8::11"]), taken);
    refused(
        &root,
        &create("102", &["--netif", "eth1,bridge=br0,mac=02:00:00:00:00:09"]),
        taken,
    );
    root.ok(&create("102", &["--ip", "192.0.2.12"]));
    refused(
        &root,
        &["set", "102", "--forward-add", "tcp:9090:22"],
        "already forwarded to VE 101",
    );
    refused(&root, &["set", "102", "--ip-add", "192.0.2.11"], taken);
    refused(
        &root,
        &[
            "set",
            "102",
            "--netif-add",
            "eth1,bridge=br0,mac=02:00:00:00:00:09",
        ],
        taken,
    );
    // A set that gives an address up frees it; one that takes it holds it.
    root.ok(&["set", "101", "--ip-del", "192.0.2.11"]);
    root.ok(&["set", "102", "--ip-add", "192.0.2.11"]);
    refused(
        &root,
        &["set", "101", "--ip-add", "192.0.2.11"],
        "already used by VE 102",
    );
    // A port forward given up is free again.
    root.ok(&["set", "101", "--forward-del", "tcp:9090:80"]);
    root.ok(&["set", "102", "--forward-add", "tcp:9090:22"]);
    // Destroy frees everything the VE held.
    root.ok(&["destroy", "102"]);
    root.ok(&[
        "set",
        "101",
        "--ip-add",
        "192.0.2.11",
        "--forward-add",
        "tcp:9090:80",
    ]);
    // A renamed VE keeps what it held, under its new id.
    root.ok(&["rename", "101", "201"]);
    refused(
        &root,
        &create("103", &["--ip", "192.0.2.11"]),
        "already used by VE 201",
    );
    refused(
        &root,
        &create("103", &["--netif", "eth1,bridge=br0,mac=02:00:00:00:00:09"]),
        "already used by VE 201",
    );
    root.ok(&["destroy", "201"]);
    root.ok(&create(
        "103",
        &[
            "--ip",
            "192.0.2.11",
            "--netif",
            "eth1,bridge=br0,mac=02:00:00:00:00:09",
        ],
    ));
    root.finish();
    drop(lab);
}

#[test]
fn a_state_root_without_an_index_gets_one() {
    let root = TestRoot::new("scale-build");
    root.busybox();
    let create = |id: &str, extra: &[&str]| {
        let mut a = vec!["create", id, "-t", "busybox", "--storage", "dir"];
        a.extend_from_slice(extra);
        root.ok(&a);
    };
    create("101", &["--ip", "192.0.2.21"]);
    create("102", &[]);
    // What a Kennel before the index left: VEs and no claims.
    let claims = root.dir.join("lib/claims");
    fs::remove_dir_all(&claims).expect("remove the index");
    // A VE whose configuration cannot be read stops the build, as it
    // stopped the scans before: its range and addresses must stay its own.
    let conf = root.dir.join("lib/ve/102/ve.conf");
    let saved = fs::read_to_string(&conf).expect("read");
    fs::write(&conf, "not toml").expect("write");
    refused(
        &root,
        &["create", "103", "-t", "busybox", "--storage", "dir"],
        "cannot read the configuration of VE 102",
    );
    assert!(!claims.join("complete").exists());
    fs::write(&conf, saved).expect("write");
    refused(
        &root,
        &["create", "103", "-t", "busybox", "--ip", "192.0.2.21"],
        "already used by VE 101",
    );
    assert!(
        fs::read_link(claims.join("complete")).is_ok(),
        "index built"
    );
    create("103", &[]);
    let bases: BTreeSet<u64> = ["101", "102", "103"]
        .iter()
        .map(|id| uid_base(&root, id))
        .collect();
    assert_eq!(bases.len(), 3, "id ranges are never shared: {bases:?}");
    root.finish();
}

#[test]
fn id_ranges_are_never_shared_and_the_lowest_is_reused() {
    let root = TestRoot::new("scale-ranges");
    root.busybox();
    let create = |id: &str| root.ok(&["create", id, "-t", "busybox", "--storage", "dir"]);
    for i in 1..=6 {
        create(&format!("r{i}"));
    }
    let base = |id: &str| uid_base(&root, id);
    let lowest = base("r1");
    for i in 1..=6u64 {
        assert_eq!(base(&format!("r{i}")), lowest + (i - 1) * 65536);
    }
    // Freed ranges are given again, lowest first; none twice.
    root.ok(&["destroy", "r2"]);
    root.ok(&["destroy", "r5"]);
    create("n1");
    create("n2");
    create("n3");
    assert_eq!(base("n1"), lowest + 65536);
    assert_eq!(base("n2"), lowest + 4 * 65536);
    assert_eq!(base("n3"), lowest + 6 * 65536);
    // A rename keeps its range and frees nothing.
    root.ok(&["rename", "r3", "m3"]);
    create("n4");
    let all: Vec<u64> = ["r1", "m3", "r4", "r6", "n1", "n2", "n3", "n4"]
        .iter()
        .map(|id| base(id))
        .collect();
    let distinct: BTreeSet<u64> = all.iter().copied().collect();
    assert_eq!(distinct.len(), all.len(), "{all:?}");
    root.finish();
}

/// A create of an id whose destroy is still under way waits for it: the
/// destroy releases that id's claims last, and must not release the new
/// VE's (hostile review of issue 10: a tenant slows its own destroy with
/// many files, and its address went to a third VE as well).
#[test]
fn a_create_during_a_destroy_of_its_id_keeps_its_claims() {
    let root = TestRoot::new("scale-race");
    root.busybox();
    let ip = ["--ip", "192.0.2.50"];
    root.ok(&create("hx", &ip));
    // Enough files that the destroy takes a while to remove them.
    root.with_upper("hx", |upper| {
        for d in 0..60 {
            let dir = upper.join(format!("d{d}"));
            fs::create_dir_all(&dir).expect("mkdir");
            for f in 0..1000 {
                fs::File::create(dir.join(f.to_string())).expect("create");
            }
        }
    });
    let mut destroy = root
        .cmd()
        .args(["destroy", "hx"])
        .spawn()
        .expect("spawn destroy");
    let gone = common::wait_for(common::secs(20), || !root.dir.join("lib/ve/hx").exists());
    assert!(gone, "the destroy never moved the VE away");
    // It waits for the destroy (20 s at most, then "busy", exit 11: a
    // slow emulated host takes longer to remove the files).
    let mut tries = 0;
    loop {
        let out = root.run(&create("hx", &ip));
        if out.status.success() {
            break;
        }
        tries += 1;
        assert!(out.status.code() == Some(11) && tries < 10, "{out:?}");
    }
    assert!(destroy.wait().expect("wait").success(), "destroy failed");
    refused(&root, &create("hy", &ip), "already used by VE hx");
    assert_eq!(
        fs::read_link(root.dir.join("lib/claims/addr/192.0.2.50"))
            .expect("the new VE's address claim")
            .to_string_lossy(),
        "hx"
    );
    root.ok(&["destroy", "hx"]);
    root.finish();
}

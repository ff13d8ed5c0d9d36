//! `/metrics` with real VEs: each VE's series with plausible values, a
//! stopped VE's state, what a tenant's token sees, who may scrape without
//! a token, and the network series of a VE's interface (in a network
//! namespace the test owns, where kenneld runs too).

use std::collections::HashMap;
use std::os::fd::AsFd;

use crate::common::netlab::{NetLab, BUSYBOX};
use crate::common::TestRoot;
use crate::service::{Answer, Service};

/// The samples of an answer: `name{labels}` (as written) → value.
fn samples(a: &Answer) -> HashMap<String, f64> {
    assert_eq!(a.status, 200, "{a:?}");
    assert!(
        a.content_type.starts_with("application/openmetrics-text"),
        "{a:?}"
    );
    assert!(a.text.ends_with("# EOF\n"), "the answer is whole");
    a.text
        .lines()
        .filter(|l| !l.starts_with('#'))
        .filter_map(|l| {
            let (k, v) = l.rsplit_once(' ')?;
            Some((k.to_string(), v.parse().ok()?))
        })
        .collect()
}

/// The value of `name` for VE `ve`.
fn of(s: &HashMap<String, f64>, name: &str, ve: &str) -> Option<f64> {
    s.get(&format!("{name}{{ve=\"{ve}\"}}")).copied()
}

/// The VEs any series of `s` is about.
fn ves(s: &HashMap<String, f64>) -> Vec<String> {
    let mut v: Vec<String> = s
        .keys()
        .filter_map(|k| Some(k.split_once("ve=\"")?.1.split_once('"')?.0.to_string()))
        .collect();
    v.sort();
    v.dedup();
    v
}

#[test]
fn metrics_show_each_ves_series_to_whom_may_see_it() {
    let root = TestRoot::new("api-metrics");
    root.start_busybox("101", &["--storage", "dir", "--numproc", "64"]);
    root.create_busybox("102", &["--storage", "dir"]);
    // A disk of its own (backend `image`): its use is counted too.
    root.start_busybox("103", &[]);
    let svc = Service::start(&root);

    // Tokenless from loopback, by default: everything.
    let all = samples(&svc.get("/metrics", None));
    assert_eq!(ves(&all), ["101", "102", "103"]);
    for ve in ["101", "103"] {
        assert_eq!(of(&all, "kennel_ve_running", ve), Some(1.0), "{ve}");
        let memory = of(&all, "kennel_ve_memory_bytes", ve).unwrap_or(0.0);
        assert!(memory > 0.0, "VE {ve} holds memory: {memory}");
        let procs = of(&all, "kennel_ve_processes", ve).unwrap_or(0.0);
        assert!(procs >= 1.0, "VE {ve} runs its init: {procs}");
        assert!(
            of(&all, "kennel_ve_cpu_seconds_total", ve).is_some(),
            "{ve}"
        );
        assert!(of(&all, "kennel_ve_uptime_seconds", ve).is_some(), "{ve}");
        assert_eq!(of(&all, "kennel_ve_oom_kills_total", ve), Some(0.0), "{ve}");
    }
    assert_eq!(of(&all, "kennel_ve_processes_limit", "101"), Some(64.0));
    let size = of(&all, "kennel_ve_disk_size_bytes", "103").unwrap_or(0.0);
    let used = of(&all, "kennel_ve_disk_allocated_bytes", "103").unwrap_or(0.0);
    assert!(size > 0.0 && used > 0.0 && used <= size, "{used} of {size}");
    assert_eq!(
        of(&all, "kennel_ve_disk_size_bytes", "101"),
        None,
        "a `dir` VE has no disk"
    );
    // A stopped VE: its state, and no counters.
    assert_eq!(of(&all, "kennel_ve_running", "102"), Some(0.0));
    assert_eq!(of(&all, "kennel_ve_memory_bytes", "102"), None);
    // The host and kenneld.
    assert_eq!(all.get("kennel_host_ves"), Some(&3.0));
    assert_eq!(all.get("kennel_host_ves_running"), Some(&2.0));
    assert!(
        all.get("kennel_host_memory_available_bytes")
            .unwrap_or(&0.0)
            > &0.0
    );
    assert!(all.contains_key("kennel_host_load1"));
    assert!(all
        .keys()
        .any(|k| k.starts_with("kenneld_build_info{version=")));

    // A tenant's token: its VEs' series, nothing of the host.
    let acme = svc.token(&root, &["--tenant", "acme", "--ves", "101,102"]);
    let mine = samples(&svc.get("/metrics", Some(&acme)));
    assert_eq!(ves(&mine), ["101", "102"]);
    assert!(
        !mine.keys().any(|k| k.starts_with("kennel_host_")),
        "{mine:?}"
    );
    assert_eq!(
        mine.keys().filter(|k| k.starts_with("kenneld_")).count(),
        1,
        "of kenneld, only its build: {mine:?}"
    );
    assert_eq!(of(&mine, "kennel_ve_running", "101"), Some(1.0));
    // A viewer of the whole host: everything.
    let viewer = svc.token(&root, &["--role", "viewer"]);
    assert_eq!(
        ves(&samples(&svc.get("/metrics", Some(&viewer)))),
        ["101", "102", "103"]
    );
    // A wrong token is refused, as everywhere.
    let wrong = svc.get("/metrics", Some("kt_nope"));
    assert_eq!(wrong.status, 401, "{wrong:?}");
    assert_eq!(wrong.body["code"], "unauthorized");

    // Each answer is read after its question: a VE stopped is seen so.
    root.ok(&["stop", "101"]);
    let after = samples(&svc.get("/metrics", None));
    assert_eq!(of(&after, "kennel_ve_running", "101"), Some(0.0));
    assert_eq!(after.get("kennel_host_ves_running"), Some(&1.0));
    assert_eq!(of(&after, "kennel_ve_memory_bytes", "101"), None);

    drop(svc);
    root.finish();
}

#[test]
fn with_metrics_token_always_loopback_shows_a_token_too() {
    let root = TestRoot::new("api-metrics-token");
    root.create_busybox("101", &["--storage", "dir"]);
    let svc = Service::start_with(&root, &["--metrics-token-always"]);
    let refused = svc.get("/metrics", None);
    assert_eq!(refused.status, 401, "{refused:?}");
    assert_eq!(refused.body["code"], "unauthorized", "JSON, as elsewhere");
    let viewer = svc.token(&root, &["--role", "viewer"]);
    let s = samples(&svc.get("/metrics", Some(&viewer)));
    assert_eq!(of(&s, "kennel_ve_running", "101"), Some(0.0));
    // Root on the Unix socket needs none.
    assert_eq!(svc.unix("GET", "/metrics").0, 200);
    drop(svc);
    root.finish();
}

/// The (bytes, packets) a link of this thread's network namespace
/// received and sent.
fn host_end(link: &str) -> [(u64, u64); 2] {
    let dev = std::fs::read_to_string("/proc/thread-self/net/dev").expect("net/dev");
    let line = dev
        .lines()
        .find_map(|l| l.trim_start().strip_prefix(&format!("{link}:")))
        .unwrap_or_else(|| panic!("no {link} in\n{dev}"));
    let n: Vec<u64> = line
        .split_whitespace()
        .map(|f| f.parse().expect("a number"))
        .collect();
    [(n[0], n[1]), (n[8], n[9])]
}

/// Datagrams sent one way to the VE.
const DATAGRAMS: usize = 20;

/// A VE's interface as the VE sees it: what the host sends it, it
/// received. kenneld runs in the lab's host namespace (where the VE's
/// host end is): this test's thread moves there, and what it starts
/// (kenneld, the client's connections, `ping`) starts there too.
#[test]
fn a_ves_interface_is_counted_as_the_ve_sees_it() {
    let lab = NetLab::new("metrics");
    let host = lab.host.clone();
    let run = std::thread::spawn(move || {
        let ns = std::fs::File::open(format!("/run/netns/{host}")).expect("the lab's namespace");
        rustix::thread::move_into_link_name_space(
            ns.as_fd(),
            Some(rustix::thread::LinkNameSpaceType::Network),
        )
        .expect("setns");
        let root = TestRoot::in_netns("api-metrics-net", &host);
        root.start_busybox("101", &["--storage", "dir", "--ip", "192.0.2.11"]);
        let svc = Service::start(&root);
        let ping = std::process::Command::new(BUSYBOX)
            .args(["ping", "-c", "5", "-A", "-w", "10", "192.0.2.11"])
            .output()
            .expect("ping");
        assert!(ping.status.success(), "{ping:?}");
        // One way only: datagrams of 1,200 bytes to a port nobody
        // listens on (the VE answers each with an error of at most 576).
        let udp_before = samples(&svc.get("/metrics", None));
        let udp = std::net::UdpSocket::bind("0.0.0.0:0").expect("udp");
        for _ in 0..DATAGRAMS {
            udp.send_to(&[7u8; 1200], "192.0.2.11:9").expect("send");
        }
        std::thread::sleep(std::time::Duration::from_millis(200));
        let before = host_end("kv101_eth0");
        let s = samples(&svc.get("/metrics", None));
        let after = host_end("kv101_eth0");
        let eth0 = |name: &str| {
            s.get(&format!("{name}{{ve=\"101\",interface=\"eth0\"}}"))
                .copied()
                .unwrap_or(0.0)
        };
        // Five echo requests in, five replies out (and maybe neighbour
        // discovery besides), each at least 84 bytes; what the host end
        // sent, the VE received, and the other way round.
        for (dir, host_dir) in [("receive", 1), ("transmit", 0)] {
            let packets = eth0(&format!("kennel_ve_network_{dir}_packets_total"));
            let bytes = eth0(&format!("kennel_ve_network_{dir}_bytes_total"));
            assert!(packets >= 5.0, "{dir}: {packets} packets\n{s:?}");
            assert!(bytes >= 5.0 * 84.0, "{dir}: {bytes} bytes");
            let (b0, b1) = (before[host_dir].0 as f64, after[host_dir].0 as f64);
            assert!(
                b0 <= bytes && bytes <= b1,
                "{dir}: {bytes} bytes, host end {b0}..{b1}"
            );
            let (p0, p1) = (before[host_dir].1 as f64, after[host_dir].1 as f64);
            assert!(
                p0 <= packets && packets <= p1,
                "{dir}: {packets}, host end {p0}..{p1}"
            );
        }
        // Across the datagrams, the VE received more than it sent. The
        // margin is half of what they make: the VE may send something of
        // its own meanwhile (IPv6 neighbour and router chatter).
        let grew = |name: &str| {
            let key = format!("{name}{{ve=\"101\",interface=\"eth0\"}}");
            s.get(&key).copied().unwrap_or(0.0) - udp_before.get(&key).copied().unwrap_or(0.0)
        };
        let received = grew("kennel_ve_network_receive_bytes_total");
        let sent = grew("kennel_ve_network_transmit_bytes_total");
        assert!(
            received >= sent + DATAGRAMS as f64 * (1200.0 - 576.0) / 2.0,
            "the datagrams came in: {received} received, {sent} sent"
        );
        assert!(
            !s.keys().any(|k| k.contains("interface=\"kv")),
            "labelled by the VE's name for it"
        );
        drop(svc);
        root.finish();
    });
    let result = run.join();
    let leaks = lab.leaks();
    if let Err(e) = result {
        std::panic::resume_unwind(e);
    }
    assert!(leaks.is_empty(), "left on the host:\n{}", leaks.join("\n"));
}

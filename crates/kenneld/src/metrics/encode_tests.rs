//! Tests of the encoding: a VE's series, a stopped VE, a limited view,
//! label escaping, and the shape of the answer.

use std::collections::{BTreeMap, HashMap, HashSet};
use std::sync::Arc;
use std::time::Duration;

use kennel_ve::lifecycle::stat::{Accounting, Counter, DiskUse, VeLink};
use kennel_ve::lifecycle::VeState;
use kennel_ve::VeId;

use super::super::{HostFacts, ProcessFacts};
use super::*;

fn id(s: &str) -> VeId {
    VeId::parse(s).expect("id")
}

fn running(ve: &str, uuid: &str) -> VeSample {
    let mut a = Accounting {
        memory: Counter {
            held: Some(1 << 20),
            peak: Some(2 << 20),
            limit: Some(64 << 20),
            fails: Some(0),
        },
        processes: Counter {
            held: Some(3),
            peak: Some(5),
            limit: None,
            fails: Some(0),
        },
        oom_kills: Some(2),
        ..Accounting::default()
    };
    a.swap.held = Some(0);
    a.cpu.usage_ns = Some(1_500_000_000);
    VeSample {
        id: id(ve),
        uuid: uuid.into(),
        state: VeState::Running,
        uptime_secs: Some(42),
        counters: Some(a),
        links: vec![VeLink {
            inside: "eth0".into(),
            host: format!("kv{ve}_eth0"),
        }],
        disk: None,
    }
}

fn stopped(ve: &str, uuid: &str) -> VeSample {
    VeSample {
        id: id(ve),
        uuid: uuid.into(),
        state: VeState::Stopped,
        uptime_secs: None,
        counters: None,
        links: Vec::new(),
        disk: Some(DiskUse {
            allocated: 4096,
            size: 1 << 30,
        }),
    }
}

fn snapshot(ves: Vec<VeSample>) -> Arc<Snapshot> {
    let links: HashMap<String, LinkCounters> = ves
        .iter()
        .flat_map(|s| s.links.iter())
        .map(|l| {
            let c = LinkCounters {
                rx_bytes: 5000,
                rx_packets: 40,
                tx_bytes: 7000,
                tx_packets: 50,
            };
            (l.host.clone(), c)
        })
        .collect();
    Arc::new(Snapshot {
        ves,
        links,
        host: Some(HostFacts {
            memory_available: Some(8 << 30),
            memory_total: Some(16 << 30),
            load: Some([0.5, 0.25, 0.125]),
        }),
        process: Some(ProcessFacts {
            start_time_secs: Some(1.7e9),
            cpu_secs: Some(0.5),
            resident_bytes: Some(10 << 20),
        }),
        took: Duration::from_millis(12),
    })
}

fn text(snap: Arc<Snapshot>, view: View) -> String {
    encode(snap, view, 7).expect("encode")
}

fn has(text: &str, line: &str) -> bool {
    text.lines().any(|l| l == line)
}

/// The format's shape: every sample after its family's TYPE, each
/// family declared once, `# EOF` last.
fn well_formed(text: &str) {
    assert!(text.ends_with("# EOF\n"), "{text}");
    let mut declared = HashSet::new();
    let mut current = String::new();
    for l in text.lines() {
        if let Some(rest) = l.strip_prefix("# TYPE ") {
            let name = rest.split(' ').next().unwrap_or_default().to_string();
            assert!(declared.insert(name.clone()), "{name} declared twice");
            current = name;
        } else if !l.starts_with('#') {
            let metric = l.split(['{', ' ']).next().unwrap_or_default();
            assert!(
                metric == current || metric == format!("{current}_total"),
                "{metric} outside its family ({current})"
            );
        }
    }
}

#[test]
fn a_running_ves_series() {
    let t = text(snapshot(vec![running("101", "u1")]), View::All);
    well_formed(&t);
    for line in [
        "kennel_ve_running{ve=\"101\"} 1",
        "kennel_ve_uptime_seconds{ve=\"101\"} 42",
        "kennel_ve_cpu_seconds_total{ve=\"101\"} 1.5",
        "kennel_ve_memory_bytes{ve=\"101\"} 1048576",
        "kennel_ve_memory_peak_bytes{ve=\"101\"} 2097152",
        "kennel_ve_memory_limit_bytes{ve=\"101\"} 67108864",
        "kennel_ve_memory_fails_total{ve=\"101\"} 0",
        "kennel_ve_processes{ve=\"101\"} 3",
        "kennel_ve_oom_kills_total{ve=\"101\"} 2",
        // The host end received 5000: the VE sent it.
        "kennel_ve_network_transmit_bytes_total{ve=\"101\",interface=\"eth0\"} 5000",
        "kennel_ve_network_receive_bytes_total{ve=\"101\",interface=\"eth0\"} 7000",
        "kennel_ve_network_receive_packets_total{ve=\"101\",interface=\"eth0\"} 50",
        "# TYPE kennel_ve_cpu_seconds counter",
        "# UNIT kennel_ve_cpu_seconds seconds",
        "kennel_host_ves 1",
        "kennel_host_ves_running 1",
        "kennel_host_memory_available_bytes 8589934592",
        "kennel_host_load1 0.5",
        "kenneld_scrapes_total 7",
    ] {
        assert!(has(&t, line), "missing {line:?} in\n{t}");
    }
    assert!(t.contains(&format!(
        "kenneld_build_info{{version=\"{}\"}} 1\n",
        env!("CARGO_PKG_VERSION")
    )));
    // Unlimited and uncounted: no sample, never a zero.
    assert!(!t.contains("kennel_ve_processes_limit"), "{t}");
    assert!(!t.contains("kennel_ve_kernel_memory_limit"), "{t}");
    assert!(!t.contains("kennel_ve_io_"), "no I/O counted: {t}");
}

#[test]
fn a_stopped_ve_has_state_zero_and_its_disk_only() {
    let t = text(
        snapshot(vec![running("101", "u1"), stopped("102", "u2")]),
        View::All,
    );
    well_formed(&t);
    assert!(has(&t, "kennel_ve_running{ve=\"102\"} 0"), "{t}");
    assert!(has(&t, "kennel_ve_disk_size_bytes{ve=\"102\"} 1073741824"));
    assert!(has(&t, "kennel_ve_disk_allocated_bytes{ve=\"102\"} 4096"));
    let of_102: Vec<&str> = t.lines().filter(|l| l.contains("ve=\"102\"")).collect();
    assert_eq!(of_102.len(), 3, "{of_102:?}");
    assert!(has(&t, "kennel_host_ves 2"));
    assert!(has(&t, "kennel_host_ves_running 1"));
    // Samples of one family are together, in the VEs' order.
    let running: Vec<&str> = t
        .lines()
        .filter(|l| l.starts_with("kennel_ve_running{"))
        .collect();
    assert_eq!(
        running,
        [
            "kennel_ve_running{ve=\"101\"} 1",
            "kennel_ve_running{ve=\"102\"} 0"
        ]
    );
}

#[test]
fn a_limited_view_shows_its_ves_and_nothing_of_the_host() {
    let snap = snapshot(vec![
        running("101", "u1"),
        running("102", "u2"),
        stopped("103", "u3"),
    ]);
    let mut granted = BTreeMap::new();
    granted.insert(id("101"), "u1".to_string());
    // 102 was destroyed and made again: another VE under its id.
    granted.insert(id("102"), "old".to_string());
    let t = text(snap, View::Only(granted));
    well_formed(&t);
    assert!(has(&t, "kennel_ve_running{ve=\"101\"} 1"), "{t}");
    assert!(!t.contains("ve=\"102\""), "{t}");
    assert!(!t.contains("ve=\"103\""), "{t}");
    assert!(!t.contains("kennel_host_"), "{t}");
    let own: Vec<&str> = t.lines().filter(|l| l.starts_with("kenneld_")).collect();
    assert_eq!(own.len(), 1, "only the build: {own:?}");
}

#[test]
fn label_values_are_escaped() {
    let mut ve = running("101", "u1");
    ve.links[0].inside = "a\"b\\c\nd".into();
    let t = text(snapshot(vec![ve]), View::All);
    well_formed(&t);
    assert!(
        t.contains("{ve=\"101\",interface=\"a\\\"b\\\\c\\nd\"} 7000\n"),
        "{t}"
    );
}

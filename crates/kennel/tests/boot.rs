//! The host's boot and shutdown with real VEs: `kennel set --onboot
//! --boot-order` marks them, `kennel boot` starts the marked ones group by
//! group (highest order first, those without one last), `kennel shutdown`
//! stops every running VE cleanly in the reverse order, and a VE that
//! fails at boot keeps none of the others down.
#![allow(clippy::expect_used)] // test code: a failed expectation is a failed test

mod common;

use std::fs;
use std::process::Output;

use common::TestRoot;

fn text(b: &[u8]) -> String {
    String::from_utf8_lossy(b).into_owned()
}

fn state(root: &TestRoot, id: &str) -> String {
    root.status(id)["state"]
        .as_str()
        .expect("state")
        .to_string()
}

/// Where `line` is in `out`'s lines; panics if it is not there.
fn at(lines: &[&str], line: &str) -> usize {
    lines
        .iter()
        .position(|l| *l == line || l.starts_with(&format!("{line} ")))
        .unwrap_or_else(|| panic!("no line {line:?} in {lines:#?}"))
}

/// When VE `id`'s init started, in clock ticks since the host's boot.
fn init_started(root: &TestRoot, id: &str) -> u64 {
    let stat = fs::read_to_string(format!("/proc/{}/stat", root.init_pid(id))).expect("stat");
    // After the command name, which ends with the last ')': field 22.
    let rest = &stat[stat.rfind(')').expect("comm") + 2..];
    rest.split(' ')
        .nth(19)
        .and_then(|s| s.parse().ok())
        .expect("starttime")
}

/// The errors on stderr (not warnings such as lxcfs's).
fn errors(out: &Output) -> Vec<String> {
    text(&out.stderr)
        .lines()
        .filter(|l| l.starts_with("kennel: ") && !l.starts_with("kennel: warning: "))
        .map(str::to_string)
        .collect()
}

#[test]
fn onboot_ves_start_in_boot_order_and_stop_in_the_reverse() {
    let root = TestRoot::new("boot-order");
    root.busybox();
    // `hi` has a disk of its own (the default), the others a directory.
    root.ok(&["create", "hi", "--template", "busybox"]);
    for id in ["mid1", "mid2", "last", "off"] {
        root.ok(&["create", id, "--template", "busybox", "--storage", "dir"]);
    }
    assert_eq!(
        root.config("hi")["boot"],
        serde_json::json!({"onboot": false, "order": null}),
        "a new VE is not started at boot"
    );
    root.ok(&["set", "hi", "--onboot", "yes", "--boot-order", "30"]);
    root.ok(&["set", "mid1", "--onboot", "yes", "--boot-order", "10"]);
    root.ok(&["set", "mid2", "--boot-order", "10", "--onboot", "yes"]);
    root.ok(&["set", "last", "--onboot", "yes"]);
    // An order alone does not start a VE at boot.
    root.ok(&["set", "off", "--boot-order", "20"]);
    assert_eq!(
        root.config("hi")["boot"],
        serde_json::json!({"onboot": true, "order": 30})
    );
    assert_eq!(
        root.config("off")["boot"],
        serde_json::json!({"onboot": false, "order": 20})
    );
    let conf = root.ok(&["config", "hi"]);
    assert!(
        conf.contains("[boot]\nonboot = true\norder = 30\n"),
        "{conf}"
    );
    let listed = root.ok(&["list", "--all", "-o", "id,onboot,bootorder", "-H"]);
    let rows: Vec<Vec<&str>> = listed
        .lines()
        .map(|l| l.split_whitespace().collect())
        .collect();
    for want in [
        ["hi", "yes", "30"],
        ["mid1", "yes", "10"],
        ["last", "yes", "-"],
        ["off", "no", "20"],
    ] {
        assert!(rows.iter().any(|r| r == &want), "{want:?} in {listed}");
    }

    let out = root.run(&["boot"]);
    assert!(out.status.success(), "{out:?}");
    assert!(errors(&out).is_empty(), "{}", text(&out.stderr));
    let stdout = text(&out.stdout);
    let lines: Vec<&str> = stdout.lines().collect();
    // Each group is done before the next begins.
    let order = [
        at(&lines, "Boot order 30: starting 1 VE"),
        at(&lines, "Started VE hi"),
        at(&lines, "Boot order 10: starting 2 VEs"),
        at(&lines, "Started VE mid1").max(at(&lines, "Started VE mid2")),
        at(&lines, "No boot order: starting 1 VE"),
        at(&lines, "Started VE last"),
    ];
    assert!(order.windows(2).all(|w| w[0] < w[1]), "{stdout}");
    assert!(
        lines
            .last()
            .is_some_and(|l| l.starts_with("started 4 of 4 VEs in ")),
        "{stdout}"
    );
    for id in ["hi", "mid1", "mid2", "last"] {
        assert_eq!(state(&root, id), "running", "{id}");
    }
    assert_eq!(state(&root, "off"), "stopped", "not onboot");
    // The kernel's clock agrees (ticks of 10 ms: a group may start within
    // the same tick as the one before).
    let hi = init_started(&root, "hi");
    let mid = init_started(&root, "mid1").min(init_started(&root, "mid2"));
    let last = init_started(&root, "last");
    assert!(hi <= mid && mid <= last, "{hi} {mid} {last}");

    // A second boot finds them running.
    let again = root.ok(&["boot"]);
    assert!(
        again.lines().last().is_some_and(
            |l| l.starts_with("started 0 of 0 VEs in ") && l.ends_with("; 4 skipped (running)")
        ),
        "{again}"
    );

    // The shutdown stops every running VE, marked or not, the VEs without
    // an order first, then the lowest order.
    root.ok(&["start", "off"]);
    let out = root.run(&["shutdown", "--timeout", "20"]);
    assert!(out.status.success(), "{out:?}");
    assert!(errors(&out).is_empty(), "{}", text(&out.stderr));
    let stdout = text(&out.stdout);
    let lines: Vec<&str> = stdout.lines().collect();
    let order = [
        at(&lines, "No boot order: stopping 1 VE"),
        at(&lines, "Stopped VE last"),
        at(&lines, "Boot order 10: stopping 2 VEs"),
        at(&lines, "Stopped VE mid1").max(at(&lines, "Stopped VE mid2")),
        at(&lines, "Boot order 20: stopping 1 VE"),
        at(&lines, "Stopped VE off"),
        at(&lines, "Boot order 30: stopping 1 VE"),
        at(&lines, "Stopped VE hi"),
    ];
    assert!(order.windows(2).all(|w| w[0] < w[1]), "{stdout}");
    assert!(
        lines
            .last()
            .is_some_and(|l| l.starts_with("stopped 5 of 5 VEs in ")),
        "{stdout}"
    );
    let mut ended = Vec::new();
    for id in ["last", "mid1", "mid2", "off", "hi"] {
        let st = root.status(id);
        assert_eq!(st["state"], "stopped", "{id}");
        // Shut down by its init, not killed.
        assert_eq!(st["last_exit"]["how"], "powered off", "{id}: {st}");
        ended.push(st["last_exit"]["at"].as_str().expect("at").to_string());
    }
    // RFC 3339 times in seconds sort as text.
    assert!(ended.windows(2).all(|w| w[0] <= w[1]), "{ended:?}");
    assert!(
        root.cgroup_dirs("hi").iter().all(|d| !d.exists()),
        "the VEs' cgroups are gone"
    );
    // Nothing left to stop is no failure.
    let none = root.ok(&["shutdown"]);
    assert!(none.trim().starts_with("stopped 0 of 0 VEs in "), "{none}");

    // The settings come off as they went on.
    root.ok(&["set", "hi", "--onboot", "no", "--boot-order", "none"]);
    assert_eq!(
        root.config("hi")["boot"],
        serde_json::json!({"onboot": false, "order": null})
    );
    assert!(!root.ok(&["config", "hi"]).contains("[boot]"));
    root.finish();
}

#[test]
fn a_ve_that_fails_at_boot_keeps_none_of_the_others_down() {
    let root = TestRoot::new("boot-fail");
    root.busybox();
    for id in ["ok1", "bad", "ok2", "broken"] {
        root.ok(&["create", id, "--template", "busybox", "--storage", "dir"]);
    }
    for (id, order) in [("ok1", "5"), ("bad", "5"), ("ok2", "none"), ("broken", "9")] {
        root.ok(&["set", id, "--onboot", "yes", "--boot-order", order]);
    }
    // A VE whose template went away fails after its lock and checks, as a
    // real failure would; one whose configuration cannot be read might be
    // one to start, so it is a failure too.
    let conf = |id: &str| root.dir.join(format!("lib/ve/{id}/ve.conf"));
    let bad = fs::read_to_string(conf("bad")).expect("ve.conf");
    fs::write(
        conf("bad"),
        bad.replace("template = \"busybox\"", "template = \"gone\""),
    )
    .expect("write ve.conf");
    let broken = fs::read_to_string(conf("broken")).expect("ve.conf");
    fs::write(conf("broken"), "id = [").expect("write ve.conf");

    let out = root.run(&["boot"]);
    let errs = errors(&out);
    assert_eq!(errs.len(), 2, "one line per failed VE: {errs:?}");
    assert!(
        errs.iter()
            .any(|l| l.starts_with("kennel: VE bad: template 'gone' does not exist")),
        "{errs:?}"
    );
    assert!(
        errs.iter()
            .any(|l| l.starts_with("kennel: VE broken: ") && l.contains("ve.conf")),
        "{errs:?}"
    );
    // Failures of two kinds (no template: 9, bad input: 2): 1.
    assert_eq!(out.status.code(), Some(1), "{}", text(&out.stderr));
    let stdout = text(&out.stdout);
    assert!(
        stdout
            .lines()
            .last()
            .is_some_and(|l| l.starts_with("started 2 of 4 VEs in ") && l.ends_with("; 2 failed")),
        "{stdout}"
    );
    assert_eq!(state(&root, "ok1"), "running");
    assert_eq!(
        state(&root, "ok2"),
        "running",
        "the next group still started"
    );
    assert_eq!(state(&root, "bad"), "stopped");
    for d in root.cgroup_dirs("bad") {
        assert!(!d.exists(), "{} left behind", d.display());
    }

    // One kind of failure keeps its exit status.
    fs::write(conf("broken"), &broken).expect("write ve.conf");
    root.ok(&["set", "broken", "--onboot", "no"]);
    let out = root.run(&["-q", "boot"]);
    assert_eq!(out.status.code(), Some(9), "{}", text(&out.stderr));
    assert!(out.stdout.is_empty(), "-q: errors only: {out:?}");

    root.ok(&["shutdown", "--timeout", "20"]);
    for id in ["ok1", "ok2"] {
        assert_eq!(state(&root, id), "stopped", "{id}");
    }
    fs::write(conf("bad"), &bad).expect("write ve.conf");
    root.finish();
}

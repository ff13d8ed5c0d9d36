//! `kennel check` on this host: the kernel hardening Kennel relies on is
//! reported line by line, as what the machine's own settings say. Read
//! only: no test changes a sysctl.
#![allow(clippy::expect_used)] // test code: a failed expectation is a failed test

mod common;

use std::fs;

use common::TestRoot;

/// Whether a sysctl's value is as Kennel recommends.
type Good = fn(i64) -> bool;

/// The sysctls `kennel check` reports, with the values it recommends.
const RECOMMENDED: &[(&str, Good)] = &[
    ("kernel.unprivileged_bpf_disabled", |v| v == 1 || v == 2),
    ("vm.unprivileged_userfaultfd", |v| v == 0),
    ("kernel.dmesg_restrict", |v| v == 1),
    ("kernel.kptr_restrict", |v| v >= 1),
    ("fs.protected_symlinks", |v| v == 1),
    ("fs.protected_hardlinks", |v| v == 1),
    ("fs.protected_fifos", |v| v >= 1),
    ("fs.protected_regular", |v| v >= 1),
];

fn sysctl(name: &str) -> Option<i64> {
    fs::read_to_string(format!("/proc/sys/{}", name.replace('.', "/")))
        .ok()?
        .trim()
        .parse()
        .ok()
}

/// The one line whose detail starts with or mentions `what`.
fn line_about<'a>(lines: &[&'a str], what: &str) -> &'a str {
    let found: Vec<&&str> = lines.iter().filter(|l| l.contains(what)).collect();
    assert_eq!(found.len(), 1, "one line about {what}: {lines:#?}");
    found[0]
}

#[test]
fn check_reports_the_hosts_kernel_hardening() {
    let root = TestRoot::new("check");
    root.busybox();
    root.ok(&["create", "101", "--template", "busybox"]);
    root.ok(&["create", "102", "--template", "busybox"]);
    let out = root.run(&["check"]);
    let text = String::from_utf8_lossy(&out.stdout).into_owned();
    let lines: Vec<&str> = text.lines().collect();
    assert!(
        lines
            .iter()
            .all(|l| l.starts_with("ok    ") || l.starts_with("warn  ") || l.starts_with("FAIL  ")),
        "every line is `ok`, `warn` or `FAIL`, a name and a detail: {text}"
    );
    for (name, good) in RECOMMENDED {
        let line = line_about(&lines, &format!("{name} "));
        match sysctl(name) {
            Some(v) if good(v) => assert!(
                line.starts_with("ok ") && line.contains(&format!("{name} = {v}")),
                "{name} = {v} is as recommended: {line}"
            ),
            Some(v) => assert!(
                line.starts_with("warn ")
                    && line.contains(&format!("{name} = {v}"))
                    && line.contains(&format!("sysctl -w {name}=")),
                "{name} = {v} is a warning naming the sysctl to set: {line}"
            ),
            None => assert!(
                line.starts_with("ok ") || line.starts_with("warn "),
                "{line}"
            ),
        }
    }
    // Conntrack, when loaded; key quotas, informational.
    if let Some(max) = sysctl("net.netfilter.nf_conntrack_max") {
        let line = line_about(&lines, "nf_conntrack_max");
        assert!(line.contains(&format!("= {max}")), "{line}");
    }
    let keys = line_about(&lines, "kernel.keys.maxkeys");
    assert!(keys.starts_with("ok "), "{keys}");
    // Both pty limits, counting the two configured VEs.
    let ptys = line_about(&lines, "kernel.pty.reserve");
    let (max, reserve) = (
        sysctl("kernel.pty.max").expect("pty.max"),
        sysctl("kernel.pty.reserve").expect("pty.reserve"),
    );
    assert!(
        ptys.contains(&format!(
            "kernel.pty.max = {max}, kernel.pty.reserve = {reserve}"
        )) && ptys.contains("the 2 VEs may hold 128 (their numpty)"),
        "{ptys}"
    );
    let needed = 2 * 64 + 128;
    if reserve >= needed && max >= needed + 1024 {
        assert!(ptys.starts_with("ok "), "{ptys}");
    } else {
        assert!(ptys.contains("sysctl -w kernel.pty.reserve="), "{ptys}");
    }
    // The tests run in the host's initial mount namespace.
    let mnt = line_about(&lines, "mount namespace");
    let own = fs::read_link("/proc/self/ns/mnt").expect("own mount ns");
    if fs::read_link("/proc/1/ns/mnt").is_ok_and(|init| init == own)
        || own.to_string_lossy() == format!("mnt:[{}]", 0xEFFF_FFF8u64)
    {
        assert!(mnt.starts_with("ok "), "{mnt}");
    }
    // A v1 hierarchy with a release agent would be named.
    let agent = line_about(&lines, "release_agent ");
    assert!(
        agent.starts_with("ok ") || agent.starts_with("warn "),
        "{agent}"
    );
    // Hardening is never a failure, and warnings alone exit 0.
    for what in ["sysctl -w", "release_agent ", "mount namespace"] {
        for l in lines.iter().filter(|l| l.contains(what)) {
            assert!(!l.starts_with("FAIL"), "{l}");
        }
    }
    if !lines.iter().any(|l| l.starts_with("FAIL")) {
        assert_eq!(out.status.code(), Some(0), "{text}");
    }
    root.finish();
}

//! What an idle VE costs the host, in the things that grow with the number
//! of VEs: superblocks (each registers a shrinker, and every memory cgroup
//! on the host carries bookkeeping for every shrinker: docs/DENSITY.md,
//! "Memory per VE") and the monitor's own pages, whose console backlog
//! stays bounded whatever the VE writes.
#![allow(clippy::expect_used, clippy::unwrap_used)] // test code

mod common;

use std::collections::BTreeSet;
use std::fs;

use common::TestRoot;

/// The superblocks (`major:minor`) a process's mount namespace shows, by
/// mount point.
fn superblocks(pid: i32) -> Vec<(String, String, String)> {
    fs::read_to_string(format!("/proc/{pid}/mountinfo"))
        .expect("mountinfo")
        .lines()
        .filter_map(|l| {
            let f: Vec<&str> = l.split_whitespace().collect();
            let sep = f.iter().position(|x| *x == "-")?;
            Some((
                f[2].to_string(),
                f[4].to_string(),
                f.get(sep + 1)?.to_string(),
            ))
        })
        .collect()
}

fn smaps_rollup(pid: i32, key: &str) -> u64 {
    fs::read_to_string(format!("/proc/{pid}/smaps_rollup"))
        .expect("smaps_rollup")
        .lines()
        .find_map(|l| {
            l.strip_prefix(key)?
                .strip_prefix(':')?
                .trim()
                .strip_suffix("kB")?
                .trim()
                .parse()
                .ok()
        })
        .expect("field in smaps_rollup")
}

#[test]
fn a_ve_makes_few_superblocks() {
    let root = TestRoot::new("density-sb");
    root.start_busybox("101", &[]);
    let host: BTreeSet<String> = superblocks(std::process::id() as i32)
        .into_iter()
        .map(|(dev, _, _)| dev)
        .collect();
    let ve = superblocks(root.init_pid("101"));
    let own: BTreeSet<&str> = ve
        .iter()
        .filter(|(dev, _, _)| !host.contains(dev))
        .map(|(dev, _, _)| dev.as_str())
        .collect();
    // The root (overlay), /proc, /sys, one tmpfs covering host hardware in
    // both, /dev, /dev/pts, /dev/shm, /run; and on a pure cgroup v1 host a
    // tmpfs holding /sys/fs/cgroup's mounts.
    let want = if common::cgroup2_mount().is_some() {
        8
    } else {
        9
    };
    assert!(
        own.len() <= want,
        "a VE makes {} superblocks, at most {want} expected: {ve:?}",
        own.len()
    );
    // One filesystem hides the host's hardware directories in /proc and in
    // /sys, and it is empty and read-only in both.
    let hidden: Vec<&(String, String, String)> = ve
        .iter()
        .filter(|(_, at, fs)| {
            fs == "tmpfs" && (at.starts_with("/proc/") || at.starts_with("/sys/firmware"))
        })
        .collect();
    assert!(!hidden.is_empty(), "host hardware is hidden: {ve:?}");
    let devs: BTreeSet<&str> = hidden.iter().map(|(dev, _, _)| dev.as_str()).collect();
    assert_eq!(devs.len(), 1, "one filesystem hides them all: {hidden:?}");
    for (_, at, _) in &hidden {
        let out = root.sh(
            "101",
            &format!("ls -A {at} | wc -l; touch {at}/x 2>/dev/null && echo WRITABLE; true"),
        );
        assert_eq!(out.trim(), "0", "{at} is empty and read-only");
    }
    root.finish();
}

#[test]
fn the_monitor_stays_small_and_its_backlog_bounded() {
    let root = TestRoot::new("density-mon");
    root.start_busybox("101", &[]);
    let mon = root.monitor_pid("101");
    let threads = fs::read_to_string(format!("/proc/{mon}/status"))
        .expect("status")
        .lines()
        .find(|l| l.starts_with("Threads:"))
        .map(|l| l.split_whitespace().nth(1).unwrap_or("").to_string());
    assert_eq!(threads.as_deref(), Some("1"), "the monitor has one thread");
    let before = smaps_rollup(mon, "Private_Dirty");
    assert!(
        before <= 128,
        "an idle monitor keeps {before} KiB of private dirty pages"
    );
    // 96 KiB on the console (the monitor takes 64 KiB/s of it): the
    // backlog keeps the last 16 KiB and the monitor grows by no more.
    root.sh(
        "101",
        "head -c 98304 /dev/zero | tr '\\0' x > /dev/console & sleep 3; kill $! 2>/dev/null; true",
    );
    let after = smaps_rollup(mon, "Private_Dirty");
    assert!(
        after <= before + 16 + 8,
        "the monitor grew from {before} to {after} KiB with a full backlog"
    );
    root.finish();
}

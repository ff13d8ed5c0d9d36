//! The hostile-tenant attack suite: root inside a VE attempts one attack
//! per case and the case asserts that it failed; after every case the lab
//! checks the host (name, host-wide sysctls, clock, mount table, cgroup
//! knobs, canary files and process, the kennel binary, and the lab's
//! routes and ruleset) and the neighbour VE (init, canary file, canary
//! process, name). See `lab.rs` for the harness and `kennel-attack` for
//! the raw system calls the attacks make.
//!
//! One test per area: it runs each case, prints `case NAME: ok` or
//! `case NAME: FAILED: ...`, and fails at the end with the list. Cases
//! that only make sense on one cgroup layout say so and are skipped on
//! the other.
//!
//! ```sh
//! cargo build -p kennel-attack            # `cargo test --workspace` builds it too
//! cargo test -p kennel --test security -- --nocapture
//! KENNEL_SECURITY_CASE=set_hostname cargo test -p kennel --test security host_tools -- --nocapture
//! KENNEL_CGROUP2_VM=../shared/tools/cgroup2-vm/run.sh tests/v2/run.sh security
//! ```
//!
//! Some cases exhaust pools the whole machine shares (the ptys outside
//! the host's reserve, inotify instances and watches where a VE's are
//! charged to the host's root): they hold them for well under a second
//! once taken, then let go.
#![allow(clippy::expect_used, clippy::unwrap_used)]

#[path = "../common/mod.rs"]
mod common;

mod frames;
mod fs;
mod host;
mod host_tools;
mod kernel;
mod lab;
mod network;
mod processes;
mod resources;
mod storage;
mod terminals;

use lab::{run_area, LabOptions};

#[test]
fn filesystems_mounts_and_devices() {
    run_area("fs", LabOptions::default(), fs::CASES);
}

#[test]
fn host_wide_system_calls() {
    run_area("kernel", LabOptions::default(), kernel::CASES);
}

#[test]
fn processes_and_cgroups() {
    run_area("procs", LabOptions::default(), processes::CASES);
}

#[test]
fn host_tools_on_planted_paths() {
    run_area("tools", LabOptions::default(), host_tools::CASES);
}

#[test]
fn terminals_and_streams() {
    run_area("terms", LabOptions::default(), terminals::CASES);
}

#[test]
fn shared_pools_and_limits() {
    run_area("res", LabOptions::default(), resources::CASES);
}

#[test]
fn disks_snapshots_and_backups() {
    run_area("stor", storage::options(), storage::CASES);
}

#[test]
fn network_identity() {
    run_area("net", network::options(), network::CASES);
}

/// At least 60 distinct attacks, each name once.
#[test]
fn the_suite_has_over_100_cases() {
    let all: Vec<&str> = [
        fs::CASES,
        kernel::CASES,
        processes::CASES,
        host_tools::CASES,
        terminals::CASES,
        resources::CASES,
        network::CASES,
        storage::CASES,
    ]
    .iter()
    .flat_map(|c| c.iter().map(|c| c.name))
    .collect();
    let mut uniq = all.clone();
    uniq.sort();
    uniq.dedup();
    assert_eq!(uniq.len(), all.len(), "duplicate case names");
    // README.md says "over 100".
    assert!(all.len() > 100, "{} cases", all.len());
}

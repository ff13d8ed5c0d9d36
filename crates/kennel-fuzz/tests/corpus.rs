//! Replays every file of `fuzz/corpus/<target>/` through its target, so
//! that each `cargo test` run checks all the fuzzer ever found (and the
//! seeds) without a fuzzer.
#![allow(clippy::expect_used)] // test code: a failed expectation is a failed test

use std::fs;
use std::panic::{catch_unwind, AssertUnwindSafe};
use std::path::PathBuf;

use kennel_fuzz::TARGETS;

fn fuzz_dir() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../fuzz")
}

fn body(name: &str) -> fn(&[u8]) {
    match TARGETS.iter().find(|(n, _)| *n == name) {
        Some((_, f)) => *f,
        None => panic!("no target {name}"),
    }
}

/// Runs every corpus file of `name`; fails naming each file that panics.
fn replay(name: &str) {
    if matches!(name, "tarball" | "backup") && !rustix::process::geteuid().is_root() {
        eprintln!("{name}: skipped, imports and restores need root (members are chowned)");
        return;
    }
    let dir = fuzz_dir().join("corpus").join(name);
    let mut files: Vec<PathBuf> = fs::read_dir(&dir)
        .unwrap_or_else(|e| panic!("{}: {e}", dir.display()))
        .map(|e| e.expect("read the corpus").path())
        .collect();
    files.sort();
    assert!(!files.is_empty(), "{} holds no seed", dir.display());
    let run = body(name);
    let failed: Vec<String> = files
        .iter()
        .filter(|f| {
            let data = fs::read(f).expect("read a corpus file");
            catch_unwind(AssertUnwindSafe(|| run(&data))).is_err()
        })
        .map(|f| f.display().to_string())
        .collect();
    assert!(failed.is_empty(), "{name}: these inputs fail: {failed:#?}");
    eprintln!("{name}: {} inputs replayed", files.len());
}

macro_rules! replays {
    ($($name:ident),* $(,)?) => {
        $(
            #[test]
            fn $name() {
                replay(stringify!($name));
            }
        )*

        /// Every target has a test above, a corpus and a fuzz_targets file.
        #[test]
        fn every_target_is_replayed() {
            let tested = [$(stringify!($name)),*];
            for (name, _) in TARGETS {
                assert!(tested.contains(name), "{name} has no replay test");
                let bin = fuzz_dir().join("fuzz_targets").join(format!("{name}.rs"));
                assert!(bin.is_file(), "{} is missing", bin.display());
            }
            let corpora: Vec<String> = fs::read_dir(fuzz_dir().join("corpus"))
                .expect("read fuzz/corpus")
                .map(|e| e.expect("read fuzz/corpus").file_name().to_string_lossy().into_owned())
                .collect();
            for c in &corpora {
                assert!(TARGETS.iter().any(|(n, _)| n == c), "corpus {c} has no target");
            }
        }
    };
}

replays!(tarball, backup, ve_conf, host_conf, units, address, rate, forward, netif);

//! Many VEs at once: `kennel start|stop|kill ID...` and `--all` run in
//! parallel worker processes; a VE that fails is reported on a line of its
//! own and the others go on; the exit status says that one failed; a
//! summary ends the output. Timing is for bench/start-many.sh.
#![allow(clippy::expect_used)] // test code: a failed expectation is a failed test

mod common;

use std::fs;
use std::process::Output;

use common::TestRoot;

fn text(b: &[u8]) -> String {
    String::from_utf8_lossy(b).into_owned()
}

/// The lines of stderr that are errors (not warnings such as lxcfs's).
fn errors(out: &Output) -> Vec<String> {
    text(&out.stderr)
        .lines()
        .filter(|l| l.starts_with("kennel: ") && !l.starts_with("kennel: warning: "))
        .map(str::to_string)
        .collect()
}

fn state(root: &TestRoot, id: &str) -> String {
    root.status(id)["state"]
        .as_str()
        .expect("state")
        .to_string()
}

/// `id` from the busybox template, with a disk of its own (the default)
/// or its layer in a directory.
fn create(root: &TestRoot, id: &str, dir: bool) {
    let mut args = vec!["create", id, "--template", "busybox"];
    if dir {
        args.extend(["--storage", "dir"]);
    }
    root.ok(&args);
}

#[test]
fn one_failing_ve_does_not_stop_the_others() {
    let root = TestRoot::new("par-fail");
    root.busybox();
    for (id, dir) in [("a", true), ("b", false), ("c", true), ("bad", true)] {
        create(&root, id, dir);
    }
    // A VE whose template went away: its start fails after its lock and
    // checks, as a real failure would.
    let conf = root.dir.join("lib/ve/bad/ve.conf");
    let text_conf = fs::read_to_string(&conf).expect("ve.conf");
    fs::write(
        &conf,
        text_conf.replace("template = \"busybox\"", "template = \"gone\""),
    )
    .expect("write ve.conf");

    let out = root.run(&["start", "a", "bad", "b", "nosuch", "c", "--parallel", "3"]);
    let errs = errors(&out);
    assert_eq!(errs.len(), 2, "one line per failed VE: {errs:?}");
    assert!(
        errs.iter()
            .any(|l| l.starts_with("kennel: VE bad: template 'gone' does not exist")),
        "{errs:?}"
    );
    assert!(
        errs.iter()
            .any(|l| l.starts_with("kennel: VE nosuch does not exist")),
        "{errs:?}"
    );
    // Two failures of different kinds (no template: 9, no VE: 4): 1.
    assert_eq!(out.status.code(), Some(1), "{}", text(&out.stderr));
    let stdout = text(&out.stdout);
    for id in ["a", "b", "c"] {
        assert!(
            stdout.contains(&format!("Started VE {id} (init pid ")),
            "{stdout}"
        );
        assert_eq!(state(&root, id), "running");
    }
    let summary = stdout.lines().last().expect("a summary");
    assert!(
        summary.starts_with("started 3 of 5 VEs in ") && summary.ends_with(" s; 2 failed"),
        "{summary}"
    );
    // The failed start left nothing: no run state, no cgroup.
    assert_eq!(state(&root, "bad"), "stopped");
    assert!(!root.dir.join("run/ve/bad/state.json").exists());
    for d in root.cgroup_dirs("bad") {
        assert!(!d.exists(), "{} left behind", d.display());
    }

    // Failures of one kind keep that kind's exit status.
    let out = root.run(&["start", "a", "b"]);
    assert_eq!(out.status.code(), Some(6), "{}", text(&out.stderr));
    assert_eq!(errors(&out).len(), 2, "{}", text(&out.stderr));

    // Bad input is refused before anything is done.
    root.fails(&["kill", "a", "../b"], 2);
    assert_eq!(state(&root, "a"), "running");
    root.finish();
}

#[test]
fn all_starts_the_stopped_and_stops_the_running() {
    let root = TestRoot::new("par-all");
    root.busybox();
    let ids = ["v1", "v2", "v3", "v4", "v5"];
    for (i, id) in ids.iter().enumerate() {
        create(&root, id, i % 2 == 0);
    }
    root.ok(&["start", "v2"]);
    let init_v2 = root.init_pid("v2");

    let out = root.ok(&["start", "--all", "--parallel", "2"]);
    assert!(
        out.lines()
            .last()
            .is_some_and(|l| l.starts_with("started 4 of 4 VEs in ")
                && l.ends_with(" s; 1 skipped (running)")),
        "{out}"
    );
    for id in ids {
        assert_eq!(state(&root, id), "running", "{id}");
    }
    assert_eq!(root.init_pid("v2"), init_v2, "a running VE is left alone");

    root.ok(&["kill", "v3"]);
    let out = root.ok(&["stop", "--all", "--timeout", "10"]);
    assert!(
        out.lines()
            .last()
            .is_some_and(|l| l.starts_with("stopped 4 of 4 VEs in ")
                && l.ends_with(" s; 1 skipped (not running)")),
        "{out}"
    );
    for id in ids {
        assert_eq!(state(&root, id), "stopped", "{id}");
    }

    root.ok(&["-q", "start", "--all"]);
    let out = root.run(&["-q", "kill", "--all"]);
    assert!(out.status.success() && out.stdout.is_empty(), "{out:?}");
    for id in ids {
        assert_eq!(state(&root, id), "stopped", "{id}");
    }
    // Nothing to do is no failure.
    let out = root.ok(&["stop", "--all"]);
    assert!(
        out.trim().starts_with("stopped 0 of 0 VEs in ")
            && out.trim().ends_with("; 5 skipped (not running)"),
        "{out}"
    );
    root.finish();
}

#[test]
fn stop_and_kill_of_several() {
    let root = TestRoot::new("par-stop");
    root.busybox();
    for id in ["s1", "s2", "s3"] {
        create(&root, id, id != "s2");
    }
    root.ok(&["start", "s1", "s2", "s3"]);
    for id in ["s1", "s2", "s3"] {
        assert_eq!(state(&root, id), "running", "{id}");
    }
    // A VE that is not running is that VE's failure, not the others'.
    root.ok(&["kill", "s3"]);
    let out = root.run(&["stop", "s1", "s3", "s2", "--timeout", "10"]);
    assert_eq!(out.status.code(), Some(7), "{}", text(&out.stderr));
    let errs = errors(&out);
    assert_eq!(errs.len(), 1, "{errs:?}");
    assert!(
        errs[0].starts_with("kennel: VE s3 is not running"),
        "{errs:?}"
    );
    let stdout = text(&out.stdout);
    assert!(stdout.contains("Stopped VE s1") && stdout.contains("Stopped VE s2"));
    assert!(
        stdout
            .lines()
            .last()
            .is_some_and(|l| l.ends_with("; 1 failed")),
        "{stdout}"
    );
    for id in ["s1", "s2", "s3"] {
        assert_eq!(state(&root, id), "stopped", "{id}");
    }
    // Each VE keeps its own lock: one id twice is done once.
    root.ok(&["start", "s1", "s1", "s2"]);
    let out = root.ok(&["kill", "s1", "s2", "s2"]);
    assert!(
        out.lines()
            .last()
            .is_some_and(|l| l.starts_with("killed 2 of 2 VEs")),
        "{out}"
    );
    root.finish();
}

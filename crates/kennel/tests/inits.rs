//! `kennel stop` asks each kind of init to shut down the way it expects:
//! systemd (SIGRTMIN+3, see systemd.rs), busybox (SIGUSR2, see
//! lifecycle.rs), sysvinit (`telinit 0` inside the VE) and anything else
//! (SIGTERM); then kills after the timeout.

#![allow(clippy::expect_used)] // test code: a failed expectation is a failed test

mod common;

use std::fs;
use std::os::unix::fs::PermissionsExt;
use std::process::Command;
use std::time::Instant;

use common::TestRoot;

/// A template made of the busybox one with a shell script as init.
fn scripted_template(
    root: &TestRoot,
    name: &str,
    init: &str,
    telinit: Option<&str>,
    inittab: bool,
) {
    root.busybox();
    let tree = root.dir.join(format!("tree-{name}"));
    let st = Command::new("cp")
        .arg("-a")
        .arg(root.dir.join("lib/templates/busybox/rootfs"))
        .arg(&tree)
        .status()
        .expect("cp");
    assert!(st.success());
    fs::remove_file(tree.join("sbin/init")).expect("rm init");
    fs::write(tree.join("sbin/init"), init).expect("write init");
    fs::set_permissions(tree.join("sbin/init"), fs::Permissions::from_mode(0o755)).expect("chmod");
    let _ = fs::remove_file(tree.join("sbin/telinit"));
    if let Some(t) = telinit {
        fs::write(tree.join("sbin/telinit"), t).expect("write telinit");
        fs::set_permissions(tree.join("sbin/telinit"), fs::Permissions::from_mode(0o755))
            .expect("chmod");
    }
    if !inittab {
        fs::remove_file(tree.join("etc/inittab")).expect("rm inittab");
    }
    let tar = root.dir.join(format!("{name}.tar"));
    let st = Command::new("tar")
        .arg("-C")
        .arg(&tree)
        .arg("-cf")
        .arg(&tar)
        .arg(".")
        .status()
        .expect("tar");
    assert!(st.success());
    root.ok(&["template", "import", name, tar.to_str().expect("path")]);
}

const SYSV_INIT: &str = "#!/bin/sh\ntrap 'exit 0' USR1\nwhile :; do sleep 1 & wait $!; done\n";
const SYSV_TELINIT: &str = "#!/bin/sh\n[ \"$1\" = 0 ] && kill -USR1 1\n";
const PLAIN_INIT: &str = "#!/bin/sh\ntrap 'exit 0' TERM\nwhile :; do sleep 1 & wait $!; done\n";
const STUBBORN_INIT: &str = "#!/bin/sh\ntrap '' TERM\nwhile :; do sleep 1 & wait $!; done\n";

#[test]
fn sysvinit_is_stopped_with_telinit() {
    let root = TestRoot::new("init-sysv");
    scripted_template(&root, "sysv", SYSV_INIT, Some(SYSV_TELINIT), true);
    root.ok(&["create", "101", "--template", "sysv"]);
    assert_eq!(root.config("101")["init"]["kind"], "sysvinit");
    root.ok(&["start", "101"]);
    let out = root.ok(&["stop", "101", "--timeout", "20"]);
    assert!(
        out.contains("Stopped VE 101"),
        "telinit 0 shut it down without a kill: {out}"
    );
    assert_eq!(
        root.status("101")["last_exit"]["how"],
        "init exited with status 0"
    );
    root.finish();
}

#[test]
fn other_inits_get_sigterm_then_sigkill() {
    let root = TestRoot::new("init-other");
    scripted_template(&root, "plain", PLAIN_INIT, None, false);
    scripted_template(&root, "stubborn", STUBBORN_INIT, None, false);
    root.ok(&["create", "101", "--template", "plain"]);
    root.ok(&["create", "102", "--template", "stubborn"]);
    assert_eq!(root.config("101")["init"]["kind"], "unknown");
    root.ok(&["start", "101"]);
    root.ok(&["start", "102"]);
    assert!(root
        .ok(&["stop", "101", "--timeout", "20"])
        .contains("Stopped VE 101"));
    let t0 = Instant::now();
    let out = root.ok(&["stop", "102", "--timeout", "1"]);
    assert!(
        out.contains("Killed VE 102"),
        "an init that ignores the request is killed after the timeout: {out}"
    );
    assert!(t0.elapsed() < common::secs(10));
    assert_eq!(root.status("102")["state"], "stopped");
    root.finish();
}

/// An init that runs out of its VE's memory is killed by the OOM killer
/// of the VE's own limit, and `status` says so; a kill by `kennel kill`
/// says that instead.
#[test]
fn an_init_killed_by_its_memory_limit_is_reported_as_such() {
    let root = TestRoot::new("init-oom");
    scripted_template(
        &root,
        "bomb",
        "#!/bin/sh\nsleep 1\nx=aaaaaaaaaaaaaaaa\nwhile :; do x=$x$x; done\n",
        None,
        false,
    );
    root.ok(&[
        "create",
        "101",
        "--template",
        "bomb",
        "--memory",
        "32M",
        "--swap",
        "0",
    ]);
    root.ok(&["start", "101"]);
    assert!(
        common::wait_for(common::secs(30), || root.status("101")["state"]
            == "stopped"),
        "the bomb outlived its limit"
    );
    let how = root.status("101")["last_exit"]["how"].clone();
    assert_eq!(how, "killed by the OOM killer of its own memory limit");
    root.ok(&["create", "102", "--template", "bomb", "--memory", "1G"]);
    root.ok(&["start", "102"]);
    root.ok(&["kill", "102"]);
    assert!(common::wait_for(common::secs(10), || {
        root.status("102")["last_exit"]["how"] == "killed by kennel"
    }));
    root.finish();
}

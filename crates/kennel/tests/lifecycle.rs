//! The VE lifecycle end to end: create, start, stop, restart, kill,
//! destroy; VEs outliving the CLI; repair after crashes; concurrency; and
//! that a stopped VE leaves nothing on the host.
#![allow(clippy::expect_used)] // test code: a failed expectation is a failed test

mod common;

use std::fs;

use common::{pid_alive, wait_for, TestRoot};

#[test]
fn full_lifecycle_leaves_nothing_behind() {
    let root = TestRoot::new("life");
    root.busybox();
    root.ok(&[
        "create",
        "101",
        "--template",
        "busybox",
        "--hostname",
        "web1",
        "--memory",
        "64M",
        "--cpus",
        "0.5",
        "--numproc",
        "64",
    ]);
    let conf = fs::read_to_string(root.dir.join("lib/ve/101/ve.conf")).expect("ve.conf");
    assert!(
        conf.contains("hostname = \"web1\"") && conf.contains("memory = \"64M\""),
        "{conf}"
    );
    assert!(
        root.ok(&["list"]).trim().lines().count() <= 1,
        "a stopped VE is not in the default list"
    );
    assert!(root.ok(&["list", "--all"]).contains("101"));
    root.ok(&["start", "101"]);
    // The VE outlives the CLI that started it.
    let st = root.status("101");
    assert_eq!(st["state"], "running");
    let (init, monitor) = (root.init_pid("101"), root.monitor_pid("101"));
    assert!(pid_alive(init) && pid_alive(monitor));
    let list = root.ok(&["list", "-o", "id,state,hostname,procs,memory"]);
    assert!(
        list.contains("101") && list.contains("running") && list.contains("web1"),
        "{list}"
    );
    let json: serde_json::Value =
        serde_json::from_str(&root.ok(&["list", "--json"])).expect("json");
    assert!(json[0]["procs"].as_u64().expect("procs") >= 2);
    assert!(
        root.cgroup_dirs("101").iter().all(|d| d.is_dir()),
        "the VE has a cgroup in every hierarchy"
    );
    root.ok(&["stop", "101", "--timeout", "20"]);
    assert!(
        !pid_alive(init) && !pid_alive(monitor),
        "init and monitor are gone"
    );
    assert!(
        root.cgroup_dirs("101").iter().all(|d| !d.exists()),
        "the VE's cgroups are gone"
    );
    let st = root.status("101");
    assert_eq!(st["state"], "stopped");
    assert_eq!(
        st["last_exit"]["how"], "powered off",
        "busybox init was asked to power off"
    );
    root.ok(&["restart", "101"]);
    let init2 = root.init_pid("101");
    assert_ne!(init, init2);
    root.ok(&["restart", "101", "--timeout", "10"]);
    assert_ne!(
        init2,
        root.init_pid("101"),
        "restart of a running VE starts a new init"
    );
    root.ok(&["kill", "101"]);
    assert_eq!(root.status("101")["state"], "stopped");
    root.ok(&["destroy", "101"]);
    assert!(!root.dir.join("lib/ve/101").exists());
    root.fails(&["status", "101"], 4);
    root.finish();
}

#[test]
fn a_ve_that_powers_off_or_reboots_itself() {
    let root = TestRoot::new("life-self");
    root.start_busybox("101", &[]);
    let init = root.init_pid("101");
    // reboot inside: the monitor tears down and starts the VE again.
    let _ = root.run(&["exec", "101", "--", "reboot"]);
    assert!(
        wait_for(common::secs(15), || !pid_alive(init)),
        "old init ends"
    );
    assert!(
        wait_for(common::secs(15), || root.status("101")["init_pid"]
            .as_i64()
            .is_some_and(|p| p as i32 != init)),
        "the VE came back after its reboot"
    );
    let init2 = root.init_pid("101");
    // poweroff inside: the VE stops and the monitor cleans up.
    let _ = root.run(&["exec", "101", "--", "poweroff"]);
    assert!(
        wait_for(common::secs(15), || root.status("101")["state"]
            == "stopped"),
        "VE stopped by itself"
    );
    assert!(!pid_alive(init2));
    assert_eq!(root.status("101")["last_exit"]["how"], "powered off");
    assert!(
        root.cgroup_dirs("101").iter().all(|d| !d.exists()),
        "the monitor removed the VE's cgroups"
    );
    root.finish();
}

/// The busybox template boots straight to its login prompt: init and the
/// console's getty, no boot script (each is an exec whose C library
/// start-up costs the host's CPU). A tenant's own `/etc/rc.local` runs
/// once at boot when the inittab line the template leaves commented is
/// enabled.
#[test]
fn the_busybox_boot_runs_init_and_getty_and_rc_local_on_request() {
    let root = TestRoot::new("life-bootscript");
    root.start_busybox("101", &[]);
    // Init's first child is the getty: a boot script, had one run (and
    // ended), would have taken PID 2.
    let getty_pid = || {
        let procs = root.sh("101", "ps -o pid,comm");
        let pid = procs
            .lines()
            .find_map(|l| l.trim().strip_suffix(" getty"))
            .map(|p| p.trim().to_string());
        (pid, procs)
    };
    let (pid, procs) = getty_pid();
    assert_eq!(pid.as_deref(), Some("2"), "{procs}");
    root.sh(
        "101",
        "printf '#!/bin/sh\\necho ran >> /root/booted\\n' > /etc/rc.local && chmod +x /etc/rc.local \
         && sed -i 's|^#::sysinit:/etc/rc.local|::sysinit:/etc/rc.local|' /etc/inittab",
    );
    root.ok(&["restart", "101"]);
    assert!(
        wait_for(common::secs(10), || root
            .sh("101", "cat /root/booted 2>/dev/null; true")
            == "ran\n"),
        "rc.local ran once at boot"
    );
    // The PID check above sees a boot script: this one took PID 2.
    let (pid, procs) = getty_pid();
    assert_eq!(pid.as_deref(), Some("3"), "{procs}");
    root.finish();
}

/// A VE that reboots in a loop is started again ever more slowly (the
/// host's CPU for its teardown and start is not charged to it), and a stop
/// between a reboot and the delayed restart stops it for good (found by a
/// hostile-tenant review: `stop` said "not running" and the restart came).
#[test]
fn a_reboot_loop_backs_off_and_stop_ends_it() {
    let root = TestRoot::new("life-rebootloop");
    root.busybox();
    root.ok(&["create", "101", "--template", "busybox"]);
    root.ok(&["start", "101"]);
    root.sh(
        "101",
        "printf '::sysinit:/bin/sh -c \"sleep 0.2; reboot -f\"\\n' > /etc/inittab",
    );
    root.ok(&["restart", "101"]);
    let reboots = || {
        std::fs::read_to_string(root.dir.join("run/ve/101/reboots"))
            .map(|t| t.split_whitespace().count())
            .unwrap_or(0)
    };
    assert!(
        wait_for(common::secs(30), || reboots() >= 7),
        "the VE rebooted {} times",
        reboots()
    );
    // Now it waits seconds between a reboot and its restart: stop it.
    assert!(
        wait_for(common::secs(10), || root.status("101")["state"]
            == "stopped"),
        "a delayed restart shows as stopped"
    );
    root.ok(&["stop", "101"]);
    std::thread::sleep(common::secs(5));
    assert_eq!(root.status("101")["state"], "stopped", "the stop won");
    root.finish();
}

#[test]
fn killed_monitor_and_stale_state_are_repaired() {
    let root = TestRoot::new("life-repair");
    root.start_busybox("101", &[]);
    let init = root.init_pid("101");
    let monitor = root.monitor_pid("101");
    // SIGKILL the monitor: the VE keeps running without it.
    rustix::process::kill_process(
        rustix::process::Pid::from_raw(monitor).expect("pid"),
        rustix::process::Signal::KILL,
    )
    .expect("kill monitor");
    assert!(wait_for(common::secs(5), || !pid_alive(monitor)));
    assert_eq!(root.status("101")["state"], "running (monitor lost)");
    assert_eq!(
        root.sh("101", "echo alive").trim(),
        "alive",
        "exec still works"
    );
    root.fails(&["console", "101"], 1);
    // stop cleans up what the monitor would have.
    root.ok(&["stop", "101", "--timeout", "10"]);
    assert!(!pid_alive(init));
    assert!(root.cgroup_dirs("101").iter().all(|d| !d.exists()));
    // A stale state file (PIDs of a previous boot) reads as stopped, and
    // start repairs it.
    let run = root.dir.join("run/ve/101");
    fs::create_dir_all(&run).expect("mkdir");
    fs::write(run.join("state.json"), r#"{"init_pid": 999999, "init_start": 1, "monitor_pid": 999998, "monitor_start": 1, "started_at": "x", "cgroup": "x"}"#)
        .expect("write");
    assert_eq!(root.status("101")["state"], "stopped");
    root.ok(&["start", "101"]);
    // Half-made VEs and half-deleted ones from crashed commands are swept.
    let stale = root.dir.join("lib/ve-staging/.102.tmp-999999");
    fs::create_dir_all(stale.join("fs")).expect("mkdir");
    let trash = root.dir.join("lib/ve-staging/.103.deleted-999999");
    fs::create_dir_all(&trash).expect("mkdir");
    root.ok(&["create", "102", "--template", "busybox"]);
    assert!(
        !stale.exists() && !trash.exists(),
        "leftovers of crashed commands are swept"
    );
    assert!(!root.ok(&["list", "--all"]).contains("103"));
    root.finish();
}

#[test]
fn concurrent_commands_do_not_corrupt_a_ve() {
    let root = TestRoot::new("life-race");
    root.busybox();
    root.ok(&["create", "101", "--template", "busybox"]);
    let codes = race(&root, &["start", "101"]);
    assert_eq!(
        codes.iter().filter(|c| **c == Some(0)).count(),
        1,
        "exactly one start wins: {codes:?}"
    );
    assert!(
        codes
            .iter()
            .all(|c| matches!(c, Some(0) | Some(6) | Some(11))),
        "the others are refused cleanly: {codes:?}"
    );
    let monitors = common::processes()
        .into_iter()
        .filter(|p| {
            fs::read(format!("/proc/{p}/cmdline"))
                .map(|c| {
                    String::from_utf8_lossy(&c).contains("kennel-monitor")
                        && String::from_utf8_lossy(&c).contains(&*root.dir.to_string_lossy())
                })
                .unwrap_or(false)
        })
        .count();
    assert_eq!(monitors, 1, "one VE, one monitor");
    // Concurrent creates of one id: one wins, the config stays valid.
    let codes = race(&root, &["create", "102", "--template", "busybox"]);
    assert_eq!(
        codes.iter().filter(|c| **c == Some(0)).count(),
        1,
        "{codes:?}"
    );
    root.ok(&["config", "102"]);
    root.finish();
}

/// Runs `kennel ARGS` four times at once; their exit statuses.
fn race(root: &TestRoot, args: &[&str]) -> Vec<Option<i32>> {
    let children: Vec<_> = (0..4)
        .map(|_| {
            root.cmd()
                .args(args)
                .stdout(std::process::Stdio::null())
                .stderr(std::process::Stdio::null())
                .spawn()
                .expect("spawn")
        })
        .collect();
    children
        .into_iter()
        .map(|c| c.wait_with_output().expect("wait").status.code())
        .collect()
}

#[test]
fn start_stop_cycles_leave_no_trace() {
    let root = TestRoot::new("life-cycles");
    root.start_busybox("101", &[]);
    root.ok(&["kill", "101"]);
    for _ in 0..20 {
        root.ok(&["start", "101"]);
        root.ok(&["kill", "101"]);
    }
    let leaks = root.leaks(&[]);
    assert!(leaks.is_empty(), "{leaks:?}");
    root.finish();
}

#[test]
fn cgroup_parent_matches() {
    let root = TestRoot::new("life-cg");
    root.start_busybox("101", &[]);
    let pid = root.init_pid("101");
    let cg = fs::read_to_string(format!("/proc/{pid}/cgroup")).expect("cgroup");
    assert!(
        cg.contains(&format!("{}/101", root.cgroup_parent())),
        "{cg}"
    );
    root.finish();
}

/// A running VE's cgroup is found through what its start recorded: a
/// `cgroup_parent` changed meanwhile moves only later starts, and neither
/// the old parent nor the new one keeps anything of the VE after it ends,
/// whether it is stopped or dies without its monitor.
#[test]
fn changing_cgroup_parent_while_a_ve_runs_leaves_nothing_behind() {
    let root = TestRoot::new("life-cgmove");
    root.start_busybox("101", &[]);
    root.start_busybox("102", &[]);
    let old = root.cgroup_parent();
    let new = format!("{old}-moved");
    let in_hierarchies = |parent: &str, rel: &str| -> Vec<std::path::PathBuf> {
        common::cgroup_mounts()
            .into_iter()
            .map(|m| m.join(parent).join(rel))
            .filter(|d| d.is_dir())
            .collect()
    };
    fs::write(
        root.dir.join("lib/kennel.toml"),
        format!("cgroup_parent = \"{new}\"\n"),
    )
    .expect("write kennel.toml");
    // Its own usage, and commands run in its own cgroups.
    let json: serde_json::Value =
        serde_json::from_str(&root.ok(&["list", "--json", "-o", "id,procs"])).expect("json");
    assert!(json[0]["procs"].as_u64().is_some_and(|n| n >= 2), "{json}");
    assert_eq!(root.sh("101", "echo in").trim(), "in");
    // Stopped, and ended without its monitor (the next command repairs).
    root.ok(&["stop", "101"]);
    let _ = std::process::Command::new("kill")
        .args(["-9", &root.monitor_pid("102").to_string()])
        .status();
    let init = root.init_pid("102");
    let _ = std::process::Command::new("kill")
        .args(["-9", &init.to_string()])
        .status();
    assert!(wait_for(common::secs(10), || !pid_alive(init)));
    // (A stop of a VE that is no longer running says so, and repairs.)
    let _ = root.run(&["stop", "102"]);
    for id in ["101", "102"] {
        let left = in_hierarchies(&old, id);
        assert!(left.is_empty(), "left behind: {left:?}");
        assert!(in_hierarchies(&new, id).is_empty());
    }
    // The old parent went with its last VE.
    let left = in_hierarchies(&old, "");
    assert!(left.is_empty(), "left behind: {left:?}");
    // The next start goes below the new parent.
    root.ok(&["start", "101"]);
    assert!(!in_hierarchies(&new, "101").is_empty());
    root.ok(&["stop", "101"]);
    assert!(in_hierarchies(&new, "101").is_empty());
    for d in in_hierarchies(&new, "") {
        let _ = fs::remove_dir(d.join("_monitor"));
        let _ = fs::remove_dir(&d);
    }
    root.finish();
}

/// A state root on a tmpfs of its own, for a test whose VE writes a huge
/// tree: this host's ext4 (mounted with `discard`) takes milliseconds per
/// removed directory whoever removes it, and the test is about the walk.
/// Dropped (also when the test fails), it destroys the root's VEs and
/// unmounts. In the cgroup v2 VM the test filesystem is already in RAM
/// (and its 6.1 kernel cannot idmap a tmpfs): nothing is mounted there.
struct TmpfsRoot<'a> {
    root: &'a TestRoot,
    mounted: bool,
}

impl<'a> TmpfsRoot<'a> {
    fn mount(root: &'a TestRoot) -> Self {
        if std::env::var_os("KP_GUEST").is_some() {
            return TmpfsRoot {
                root,
                mounted: false,
            };
        }
        rustix::mount::mount(
            "kennel-test",
            &root.dir,
            "tmpfs",
            rustix::mount::MountFlags::NOSUID | rustix::mount::MountFlags::NODEV,
            Some(c"mode=0755"),
        )
        .expect("mount a tmpfs on the test root");
        TmpfsRoot {
            root,
            mounted: true,
        }
    }
}

impl Drop for TmpfsRoot<'_> {
    fn drop(&mut self) {
        if !self.mounted {
            return;
        }
        let list = self.root.run(&["list", "--all", "--json", "-o", "id"]);
        let v: serde_json::Value = serde_json::from_slice(&list.stdout).unwrap_or_default();
        for ve in v.as_array().into_iter().flatten() {
            let _ = self
                .root
                .run(&["destroy", "--force", ve["id"].as_str().unwrap_or("")]);
        }
        let _ = rustix::mount::unmount(&self.root.dir, rustix::mount::UnmountFlags::DETACH);
    }
}

/// Files below `dir` (a small tree) owned by a host uid in `range`.
fn owned_by(dir: &std::path::Path, range: std::ops::Range<u32>, out: &mut Vec<String>) {
    use std::os::unix::fs::MetadataExt;
    for e in fs::read_dir(dir).into_iter().flatten().flatten() {
        let Ok(md) = e.metadata() else { continue };
        if range.contains(&md.uid()) {
            out.push(e.path().display().to_string());
        }
        if md.is_dir() {
            owned_by(&e.path(), range.clone(), out);
        }
    }
}

#[test]
fn destroy_removes_a_hostile_tree_and_nothing_else() {
    let root = TestRoot::new("life-deep");
    let tmpfs = TmpfsRoot::mount(&root);
    // Host files the VE's tree points at.
    let canary = root.dir.join("canary.txt");
    let canary_dir = root.dir.join("canary-dir");
    fs::write(&canary, "keep me").expect("write canary");
    fs::create_dir(&canary_dir).expect("mkdir canary");
    fs::write(canary_dir.join("inside"), "keep me too").expect("write canary");
    // A directory layer: its removal by descriptor is what is tested (a
    // disk image goes as one file).
    root.start_busybox("101", &["--storage", "dir"]);
    let base = root.config("101")["idmap"]["uid_base"]
        .as_u64()
        .expect("uid base") as u32;
    // 100,000 levels (more than the host's descriptor limit), built 201 at
    // a time from the top down: a new 201-level chain, and the tree so far
    // moved to its bottom. No path the VE uses passes PATH_MAX, and the
    // shell never asks for its deep working directory. Hostile entries go
    // along: names with newlines, escape sequences and bytes that are not
    // UTF-8, symlinks to the host's files and to /, a FIFO, unreadable
    // modes.
    let script = format!(
        r#"set -e
hostile() {{
    printf x > "$(printf 'name\n\033[31mred\033]0;title\007\377\376')"
    ln -s {file} to-host-file
    ln -s {dir} to-host-dir
    ln -s / to-root
    ln -s ../../../../../../../../.. up
    mkfifo fifo
    mkdir locked
    printf secret > locked/secret
    chmod 000 locked/secret locked
}}
mkdir /deep
cd /deep
p=d; i=1
while [ $i -lt 200 ]; do p=$p/d; i=$((i+1)); done
mkdir -p x/$p
n=1
while [ $n -lt 500 ]; do
    mkdir -p y/$p
    if [ $((n % 50)) -eq 0 ]; then (cd y/$p && hostile); fi
    mv x y/$p/x
    mv y x
    n=$((n+1))
done
(cd x && hostile)
echo levels $((n * 201))"#,
        file = canary.display(),
        dir = canary_dir.display()
    );
    let t0 = std::time::Instant::now();
    assert_eq!(root.sh("101", &script).trim(), "levels 100500");
    eprintln!("the VE built 100,500 levels in {:?}", t0.elapsed());
    assert!(root.dir.join("lib/ve/101/fs/upper/deep").is_dir());
    root.ok(&["kill", "101"]);
    let t0 = std::time::Instant::now();
    root.ok(&["destroy", "101"]);
    let took = t0.elapsed();
    eprintln!("destroy took {took:?}");
    assert!(took < common::secs(60), "destroy took {took:?}");
    // Nothing of the VE remains: no directory, no trash, no file of its ids.
    let left: Vec<_> = fs::read_dir(root.dir.join("lib/ve"))
        .expect("ls lib/ve")
        .flatten()
        .map(|e| e.file_name())
        .collect();
    assert!(left.is_empty(), "{left:?}");
    let mut owned = Vec::new();
    owned_by(&root.dir, base..base + 65536, &mut owned);
    assert!(owned.is_empty(), "files of the VE's ids remain: {owned:?}");
    // The host's files it pointed at are intact.
    assert_eq!(fs::read_to_string(&canary).expect("canary"), "keep me");
    assert_eq!(
        fs::read_to_string(canary_dir.join("inside")).expect("canary"),
        "keep me too"
    );
    assert_eq!(fs::read_dir(&canary_dir).expect("ls").count(), 1);
    drop(tmpfs);
    root.finish();
}

//! What a VE may be given on top of the defaults, and the limits that come
//! with it: the pty limit (`--numpty`, live), the VE's own resource limits,
//! the opt-in features (`--features tun,fuse,nesting,keyring`), and
//! `kennel set --userpasswd`. Each feature works when asked for and is
//! absent otherwise.
#![allow(clippy::expect_used)] // test code: a failed expectation is a failed test

mod common;

use std::process::Command;
use std::time::Duration;

use common::TestRoot;

/// How many ptys the VE can hold open at once (up to 7): each try opens
/// k of them together from /dev/ptmx in a subshell.
const OPEN_PTYS: &str = "n=0; for k in 1 2 3 4 5 6 7; do r=''; i=3; \
    while [ $i -lt $((3+k)) ]; do r=\"$r $i<>/dev/ptmx\"; i=$((i+1)); done; \
    if (eval \"exec $r\") 2>/dev/null; then n=$k; else break; fi; done; echo OPENED=$n";

fn opened(out: &str) -> u32 {
    out.lines()
        .find_map(|l| l.strip_prefix("OPENED="))
        .and_then(|n| n.trim().parse().ok())
        .unwrap_or_else(|| panic!("no count in {out:?}"))
}

#[test]
fn numpty_limits_the_ves_ptys_and_changes_live() {
    let root = TestRoot::new("feat-numpty");
    root.start_busybox("101", &["--numpty", "4"]);
    // The console holds one of the four.
    assert_eq!(opened(&root.sh("101", OPEN_PTYS)), 3);
    // The VE cannot lift its own limit: the instance belongs to the host.
    let remount = root.sh(
        "101",
        "mount -o remount,max=4096 /dev/pts 2>&1; grep ' /dev/pts ' /proc/mounts",
    );
    assert!(remount.contains("max=4 "), "{remount}");
    root.ok(&["set", "101", "--numpty", "7"]);
    assert_eq!(opened(&root.sh("101", OPEN_PTYS)), 6);
    assert_eq!(
        root.config("101")["resources"]["numpty"].as_u64(),
        Some(7),
        "saved"
    );
    // A `set` that fails after the pty change (no such user) puts the old
    // limit back, live, in ve.conf and in the host's pty ledger.
    root.fails(
        &[
            "set",
            "101",
            "--numpty",
            "5",
            "--userpasswd",
            "nosuchuser:pw",
        ],
        2,
    );
    assert_eq!(opened(&root.sh("101", OPEN_PTYS)), 6, "the old limit, live");
    assert_eq!(root.config("101")["resources"]["numpty"].as_u64(), Some(7));
    let ledger: Vec<String> = std::fs::read_dir(root.dir.join("run/ptys"))
        .expect("the pty ledger")
        .flatten()
        .map(|e| e.file_name().to_string_lossy().into_owned())
        .collect();
    assert_eq!(ledger, ["101=7"]);
    root.ok(&["restart", "101"]);
    assert_eq!(
        opened(&root.sh("101", OPEN_PTYS)),
        6,
        "kept across a restart"
    );
    for bad in ["1", "abc", "100000"] {
        let err = root.fails(&["set", "101", "--numpty", bad], 2);
        assert!(err.contains("numpty"), "{err}");
    }
    root.finish();
}

#[test]
fn ptys_beyond_the_hosts_reserve_are_refused_at_start() {
    let root = TestRoot::new("feat-ptypool");
    root.busybox();
    root.ok(&[
        "create",
        "101",
        "--template",
        "busybox",
        "--numpty",
        "65536",
    ]);
    let err = root.fails(&["start", "101"], 10);
    assert!(err.contains("kernel.pty.reserve"), "{err}");
    assert_eq!(root.status("101")["state"], "stopped");
    // Within the reserve it starts.
    root.ok(&["set", "101", "--numpty", "64"]);
    root.ok(&["start", "101"]);
    root.finish();
}

/// `/proc/PID/limits` line of `name`: (soft, hard).
fn limit(limits: &str, name: &str) -> (String, String) {
    let line = limits
        .lines()
        .find(|l| l.starts_with(name))
        .unwrap_or_else(|| panic!("no {name} in {limits}"));
    let f: Vec<&str> = line[name.len()..].split_whitespace().collect();
    (f[0].to_string(), f[1].to_string())
}

#[test]
fn ve_processes_get_the_ves_own_resource_limits() {
    let root = TestRoot::new("feat-rlimits");
    root.busybox();
    root.ok(&["create", "101", "--template", "busybox"]);
    // Whatever the caller had: lower limits here (raising needs
    // CAP_SYS_RESOURCE, which root on this host lacks; where it has it,
    // the real-time priority is raised too).
    let run = |args: &str| {
        let out = Command::new("/bin/sh")
            .arg("-c")
            .arg(format!(
                "ulimit -r 99 2>/dev/null; ulimit -Sn 100; ulimit -l 64; exec \"$0\" --root \"$1\" {args}"
            ))
            .arg(common::KENNEL)
            .arg(&root.dir)
            .output()
            .expect("run");
        assert!(out.status.success(), "{out:?}");
        String::from_utf8_lossy(&out.stdout).into_owned()
    };
    run("start 101");
    let init = std::fs::read_to_string(format!("/proc/{}/limits", root.init_pid("101")))
        .expect("init's limits");
    let exec = run("exec 101 -- cat /proc/self/limits");
    for limits in [&init, &exec] {
        assert_eq!(
            limit(limits, "Max realtime priority"),
            ("0".into(), "0".into())
        );
        assert_eq!(limit(limits, "Max nice priority"), ("0".into(), "0".into()));
        assert_eq!(limit(limits, "Max core file size").0, "0");
        let (soft, _) = limit(limits, "Max open files");
        assert_eq!(soft, "1024", "{limits}");
        let (soft, hard) = limit(limits, "Max locked memory");
        assert!(soft.parse::<u64>().expect("memlock") <= 8 << 20, "{limits}");
        assert!(hard.parse::<u64>().expect("memlock") <= 8 << 20, "{limits}");
    }
    // Nor can the VE raise them.
    let raise = root.sh("101", "ulimit -r 10 2>/dev/null && echo RAISED; ulimit -r");
    assert_eq!(raise.trim(), "0", "{raise}");
    root.finish();
}

/// Copies the test-only `kennel-attack` toolbox (built next to `kennel`)
/// into VE `id` as /kennel-attack.
fn install_toolbox(root: &TestRoot, id: &str) {
    let tool = std::path::Path::new(common::KENNEL).with_file_name("kennel-attack");
    assert!(tool.exists(), "build it: cargo build -p kennel-attack");
    let out = root
        .cmd()
        .args(["exec", id, "--", "/bin/sh", "-c"])
        .arg("cat > /kennel-attack && chmod 755 /kennel-attack")
        .stdin(std::fs::File::open(&tool).expect("open kennel-attack"))
        .output()
        .expect("copy kennel-attack");
    assert!(out.status.success(), "{out:?}");
}

/// The verdict line of `kennel-attack ARGS` in VE `id`.
fn probe(root: &TestRoot, id: &str, args: &str) -> String {
    let out = root.run(&[
        "exec",
        id,
        "--",
        "/bin/sh",
        "-c",
        &format!("/kennel-attack {args}"),
    ]);
    String::from_utf8_lossy(&out.stdout)
        .lines()
        .last()
        .unwrap_or_default()
        .to_string()
}

#[test]
fn fuse_feature_gives_working_fuse_mounts() {
    let root = TestRoot::new("feat-fuse");
    root.start_busybox("101", &["--features", "fuse"]);
    install_toolbox(&root, "101");
    root.sh("101", "mkdir -p /mnt/f");
    let v = probe(&root, "101", "fuse-hello /mnt/f");
    assert!(v.starts_with("WORKS"), "{v}");
    // The mount is the VE's own: the host sees nothing of it.
    let mi = std::fs::read_to_string("/proc/self/mountinfo").expect("mountinfo");
    assert!(!mi.contains("kennel-fuse"), "{mi}");
    // Without the feature: no /dev/fuse, and no way to make one.
    root.ok(&["create", "102", "--template", "busybox"]);
    root.ok(&["start", "102"]);
    install_toolbox(&root, "102");
    root.sh("102", "mkdir -p /mnt/f");
    let v = probe(&root, "102", "fuse-hello /mnt/f");
    assert!(v.starts_with("BLOCKED"), "{v}");
    let v = probe(&root, "102", "mknod-open c 10 229");
    assert!(v.starts_with("BLOCKED"), "{v}");
    root.finish();
}

/// VEs that stall their lxcfs-sync helper (a FUSE mount over /proc whose
/// server never answers) delay the sync by one helper's deadline, not one
/// each: the helpers work at once. The other VEs are synced, and the
/// command says which VEs failed.
#[test]
fn stalled_ves_hold_lxcfs_sync_for_one_deadline() {
    let root = TestRoot::new("feat-lxstall");
    let lxcfs = common::Lxcfs::start(&root);
    for id in ["101", "102"] {
        root.start_busybox(id, &["--features", "fuse"]);
        install_toolbox(&root, id);
        let v = probe(&root, id, "fuse-stall /proc");
        assert!(v.starts_with("WORKS"), "{v}");
    }
    root.start_busybox("103", &[]);
    let t0 = std::time::Instant::now();
    let out = root.run(&["lxcfs-sync"]);
    let took = t0.elapsed();
    let (stdout, stderr) = (
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr),
    );
    assert!(!out.status.success(), "{stdout} {stderr}");
    assert!(
        stdout.contains("VE 103: 0 lxcfs files bound, 8 live already"),
        "{stdout}"
    );
    assert!(
        stderr.contains("VE 101") && stderr.contains("VE 102"),
        "{stderr}"
    );
    // One helper's deadline and kill waits (20 s), not one per stalled VE.
    assert!(took < Duration::from_secs(27), "lxcfs-sync took {took:?}");
    for id in ["101", "102"] {
        root.ok(&["stop", id, "--timeout", "5"]);
    }
    drop(lxcfs);
    root.finish();
}

/// With FUSE a VE can make any access to a path wait in the kernel beyond
/// SIGKILL (its server reads the request and never answers). Host tools
/// that work in the VE must still return: `kennel set` saves its change
/// and says the VE's files were not updated, `kennel exec` gives up on a
/// command it cannot kill, and `kennel stop` ends it all.
#[test]
fn a_stalled_fuse_mount_cannot_hold_host_commands() {
    let root = TestRoot::new("feat-fusestall");
    root.start_busybox("101", &["--features", "fuse"]);
    install_toolbox(&root, "101");
    let v = probe(&root, "101", "fuse-stall /etc");
    assert!(v.starts_with("WORKS"), "{v}");
    let t0 = std::time::Instant::now();
    let out = root.run(&["set", "101", "--hostname", "stalled1"]);
    let took = t0.elapsed();
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{err}");
    assert!(err.contains("not updated"), "{err}");
    assert!(took < Duration::from_secs(40), "set took {took:?}");
    assert_eq!(root.config("101")["hostname"], "stalled1", "saved");
    // A command stuck on the mount: the operator's two Ctrl-C kill it, and
    // kennel gives up on it 5 s later.
    let mut c = root.cmd();
    c.args(["exec", "-T", "101", "--", "cat", "/etc/hostname"])
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::piped());
    let mut child = c.spawn().expect("spawn");
    // Stuck once its `cat` runs in the VE (a fixed wait raced a slow
    // emulated host: the Ctrl-Cs came before kennel exec took them).
    let stuck = common::wait_for(common::secs(20), || {
        std::fs::read_dir("/proc")
            .into_iter()
            .flatten()
            .flatten()
            .any(|e| {
                std::fs::read(e.path().join("cmdline")).is_ok_and(|c| c == b"cat\0/etc/hostname\0")
            })
    });
    assert!(stuck, "the command never ran in the VE");
    std::thread::sleep(Duration::from_millis(300));
    let pid = rustix::process::Pid::from_child(&child);
    for _ in 0..2 {
        let _ = rustix::process::kill_process(pid, rustix::process::Signal::INT);
        std::thread::sleep(Duration::from_millis(300));
    }
    let end = std::time::Instant::now() + Duration::from_secs(15);
    let status = loop {
        if let Some(st) = child.try_wait().expect("try_wait") {
            break st;
        }
        assert!(std::time::Instant::now() < end, "kennel exec hung");
        std::thread::sleep(Duration::from_millis(100));
    };
    let mut err = String::new();
    if let Some(mut e) = child.stderr.take() {
        use std::io::Read;
        let _ = e.read_to_string(&mut err);
    }
    assert!(!status.success() && err.contains("SIGKILL"), "{err}");
    let t0 = std::time::Instant::now();
    root.ok(&["stop", "101", "--timeout", "5"]);
    assert!(t0.elapsed() < Duration::from_secs(30));
    root.finish();
}

#[test]
fn keyring_calls_are_refused_unless_the_feature_is_given() {
    let root = TestRoot::new("feat-keyring");
    root.start_busybox("101", &[]);
    install_toolbox(&root, "101");
    let v = probe(&root, "101", "sys add_key keyctl request_key");
    assert!(v.starts_with("BLOCKED") && v.contains("ENOSYS"), "{v}");
    root.ok(&["set", "101", "--features", "keyring"]);
    root.ok(&["restart", "101"]);
    let v = probe(&root, "101", "sys add_key keyctl request_key");
    assert!(
        v.starts_with("ESCAPED") && v.contains("add_key: the call succeeded"),
        "with the feature the keyring calls work: {v}"
    );
    assert_eq!(
        root.config("101")["features"],
        serde_json::json!(["keyring"]),
        "saved"
    );
    root.finish();
}

/// A Debian VE (systemd, iproute2, util-linux, passwd) with `extra`
/// create options, running.
fn debian(root: &TestRoot, id: &str, extra: &[&str]) {
    if !root.dir.join("lib/templates/debian-12").exists() {
        let tarball = common::debian_tarball();
        root.ok(&[
            "template",
            "import",
            "debian-12",
            tarball.to_str().expect("path"),
        ]);
    }
    let mut args = vec!["create", id, "--template", "debian-12"];
    args.extend_from_slice(extra);
    root.ok(&args);
    root.ok(&["start", id]);
    let (state, failed) = root.systemd_state(id);
    assert!(
        state == "running" || state == "degraded",
        "{state}: {failed}"
    );
}

#[test]
fn tun_feature_gives_a_working_dev_net_tun() {
    let root = TestRoot::new("feat-tun");
    debian(&root, "201", &["--features", "tun"]);
    let out = root.sh(
        "201",
        "ip tuntap add dev tun7 mode tun && ip link set tun7 up && ip -o link show tun7",
    );
    assert!(out.contains("tun7"), "{out}");
    let host = Command::new("ip")
        .args(["-o", "link", "show"])
        .output()
        .expect("ip");
    assert!(
        !String::from_utf8_lossy(&host.stdout).contains("tun7"),
        "the VE's tun device is in its own network namespace"
    );
    // Without the feature there is no /dev/net/tun, and none can be made.
    root.ok(&["create", "202", "--template", "debian-12"]);
    root.ok(&["start", "202"]);
    let out = root.run(&[
        "exec",
        "202",
        "--",
        "/bin/sh",
        "-c",
        "ls /dev/net/tun || (mkdir -p /dev/net && mknod /dev/net/tun c 10 200 && ip tuntap add dev tun7 mode tun)",
    ]);
    assert!(!out.status.success(), "{out:?}");
    // Features change at the next start.
    let set = root.run(&["set", "202", "--features", "tun"]);
    assert!(set.status.success());
    assert!(
        String::from_utf8_lossy(&set.stderr).contains("next start"),
        "{set:?}"
    );
    root.ok(&["restart", "202"]);
    root.sh("202", "test -c /dev/net/tun");
    root.finish();
}

/// Runs a nested container in the VE: new user, PID, mount, UTS, IPC,
/// network and cgroup namespaces, its own /proc, in a cgroup subtree of
/// the VE's own (a systemd scope with delegation).
const NESTED: &str = "systemd-run --quiet --scope -p Delegate=yes -- \
    unshare --user --map-root-user --pid --fork --mount --mount-proc --uts --ipc --net --cgroup \
    /bin/sh -c 'hostname nested; echo PID1=$(cat /proc/1/comm) UTS=$(hostname) PROCS=$(ls /proc | grep -c \"^[0-9]\") CG=$(head -1 /proc/self/cgroup)'";

#[test]
fn nesting_feature_runs_a_container_inside_a_ve() {
    let root = TestRoot::new("feat-nest");
    debian(&root, "201", &["--features", "nesting"]);
    let out = root.sh("201", NESTED);
    assert!(out.contains("PID1=sh"), "{out}");
    assert!(out.contains("UTS=nested"), "{out}");
    assert!(out.ends_with(":/\n") || out.contains("CG=0::/"), "{out}");
    assert_eq!(
        root.sh("201", "hostname").trim(),
        "201",
        "the VE's own is unchanged"
    );
    // Without the feature the nested /proc cannot be mounted.
    root.ok(&["create", "202", "--template", "debian-12"]);
    root.ok(&["start", "202"]);
    let out = root.run(&["exec", "202", "--", "/bin/sh", "-c", NESTED]);
    assert!(!out.status.success(), "{out:?}");
    root.finish();
}

#[test]
fn userpasswd_sets_a_password_with_the_ves_own_chpasswd() {
    let root = TestRoot::new("feat-passwd");
    debian(&root, "201", &[]);
    let hash = |root: &TestRoot| {
        root.sh("201", "getent shadow root | cut -d: -f2")
            .trim()
            .to_string()
    };
    let before = hash(&root);
    // A slow chpasswd, so that the process list can be looked at meanwhile.
    root.sh(
        "201",
        "mv /usr/sbin/chpasswd /usr/sbin/chpasswd.real && \
         printf '#!/bin/sh\\nsleep 2\\nexec /usr/sbin/chpasswd.real \"$@\"\\n' > /usr/sbin/chpasswd && \
         chmod 755 /usr/sbin/chpasswd",
    );
    let secret = format!("Pw-{}-unique", std::process::id());
    let mut set = root
        .cmd()
        .args(["set", "201", "--userpasswd", &format!("root:{secret}")])
        .spawn()
        .expect("spawn");
    std::thread::sleep(Duration::from_millis(1000));
    for pid in common::processes() {
        for what in ["cmdline", "environ"] {
            let text = std::fs::read(format!("/proc/{pid}/{what}")).unwrap_or_default();
            assert!(
                !String::from_utf8_lossy(&text).contains(&secret),
                "the password is in /proc/{pid}/{what}"
            );
        }
    }
    assert!(set.wait().expect("wait").success());
    let after = hash(&root);
    assert_ne!(before, after);
    assert!(after.starts_with('$'), "{after}");
    let ok = Command::new("python3")
        .args([
            "-W",
            "ignore",
            "-c",
            "import crypt,sys; sys.exit(0 if crypt.crypt(sys.argv[1], sys.argv[2]) == sys.argv[2] else 1)",
            &secret,
            &after,
        ])
        .status()
        .expect("python3");
    assert!(ok.success(), "the password set is the one given");
    // Nothing of it in the VE's logs or Kennel's.
    let logs = root.sh(
        "201",
        &format!(
            "grep -rl -- '{secret}' /var/log /run/log /etc 2>/dev/null | grep -v shadow || true"
        ),
    );
    assert!(logs.trim().is_empty(), "{logs}");
    let grep = Command::new("grep")
        .args(["-rl", &secret])
        .arg(&root.dir)
        .output()
        .expect("grep");
    assert!(grep.stdout.is_empty(), "{grep:?}");
    // From standard input.
    let mut c = root
        .cmd()
        .args(["set", "201", "--userpasswd", "root"])
        .stdin(std::process::Stdio::piped())
        .spawn()
        .expect("spawn");
    use std::io::Write;
    c.stdin
        .take()
        .expect("stdin")
        .write_all(b"second-pass\n")
        .expect("write");
    assert!(c.wait().expect("wait").success());
    assert_ne!(hash(&root), after);
    // Bad input, each refused with one line.
    root.fails(&["set", "201", "--userpasswd", "root:"], 2);
    root.fails(&["set", "201", "--userpasswd", "no body:x"], 2);
    let err = root.fails(&["set", "201", "--userpasswd", "nosuchuser:x"], 2);
    assert!(err.contains("chpasswd"), "{err}");
    root.ok(&["stop", "201"]);
    root.fails(&["set", "201", "--userpasswd", "root:x"], 7);
    root.finish();
}

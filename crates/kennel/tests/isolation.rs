//! A running VE really is isolated: its own PID, mount, UTS, IPC, network,
//! cgroup and user namespaces; a masked /proc, read-only /sys, a minimal
//! /dev; a reduced capability bounding set and a seccomp filter; and
//! `kennel exec` lands in exactly the same confinement.
#![allow(clippy::expect_used)] // test code: a failed expectation is a failed test

mod common;

use std::fs;
use std::process::{Command, Stdio};

use common::TestRoot;

fn ns_of(pid: &str, ns: &str) -> String {
    fs::read_link(format!("/proc/{pid}/ns/{ns}"))
        .expect("ns link")
        .display()
        .to_string()
}

#[test]
fn ve_has_its_own_namespaces_and_ids() {
    let root = TestRoot::new("iso-ns");
    root.start_busybox("101", &["--hostname", "box1"]);
    let pid = root.init_pid("101").to_string();
    for ns in ["pid", "mnt", "uts", "ipc", "net", "cgroup", "user"] {
        assert_ne!(
            ns_of(&pid, ns),
            ns_of("self", ns),
            "VE shares the host's {ns} namespace"
        );
    }
    // PID namespace: the VE's init is PID 1 and no host process is visible.
    let ps = root.sh("101", "for p in /proc/[0-9]*; do echo ${p#/proc/}; done");
    let pids: Vec<u32> = ps.lines().filter_map(|l| l.parse().ok()).collect();
    assert!(pids.contains(&1));
    assert!(
        pids.len() < 10,
        "the VE sees only its own processes: {pids:?}"
    );
    assert_eq!(root.sh("101", "cat /proc/1/comm").trim(), "init");
    // UTS
    assert_eq!(root.sh("101", "hostname").trim(), "box1");
    assert_ne!(
        fs::read_to_string("/proc/sys/kernel/hostname")
            .expect("host name")
            .trim(),
        "box1"
    );
    // User namespace: root inside is the VE's base uid outside.
    let cfg = root.config("101");
    let base = cfg["idmap"]["uid_base"].as_u64().expect("uid base");
    assert_eq!(
        root.sh("101", "cat /proc/self/uid_map")
            .split_whitespace()
            .collect::<Vec<_>>(),
        ["0", &base.to_string(), "65536"]
    );
    let status = fs::read_to_string(format!("/proc/{pid}/status")).expect("status");
    let uid_line = status
        .lines()
        .find(|l| l.starts_with("Uid:"))
        .expect("Uid line");
    assert!(
        uid_line
            .split_whitespace()
            .skip(1)
            .all(|u| u == base.to_string()),
        "init runs as host uid {base}: {uid_line}"
    );
    root.sh("101", "echo data > /root/file");
    let md = root.with_upper("101", |u| {
        fs::metadata(u.join("root/file")).expect("file in the upper layer")
    });
    assert_eq!(
        std::os::unix::fs::MetadataExt::uid(&md) as u64,
        base,
        "VE files belong to the VE's host uid"
    );
    // Network: only loopback, and it is up.
    let links = root.sh("101", "ls /sys/class/net");
    assert_eq!(links.split_whitespace().collect::<Vec<_>>(), ["lo"]);
    assert!(root.sh("101", "ip -o link show lo").contains("UP"));
    // cgroup namespace: the VE sees itself at the root.
    assert!(
        root.sh("101", "cat /proc/self/cgroup")
            .lines()
            .all(|l| l.ends_with(":/")),
        "cgroup paths are the VE's own root"
    );
    // init's environment
    let env = fs::read(format!("/proc/{pid}/environ")).expect("environ");
    assert!(env.split(|&b| b == 0).any(|e| e == b"container=kennel"));
    // The VE's mounts never appear in the host's mount table, its disk
    // neither: only the host's own and the storage pool (STORAGE.md).
    let mi = fs::read_to_string("/proc/self/mountinfo").expect("mountinfo");
    let dir = root.dir.to_string_lossy().to_string();
    let pool = format!("{dir}/lib/pool ");
    let leaked: Vec<&str> = mi
        .lines()
        .filter(|l| l.contains(&dir) && !l.contains(&pool))
        .collect();
    assert!(
        leaked.is_empty(),
        "VE mounts leaked into the host: {leaked:?}"
    );
    root.finish();
}

#[test]
fn proc_sys_and_dev_are_confined() {
    let root = TestRoot::new("iso-fs");
    root.start_busybox("101", &[]);
    let out = root.sh(
        "101",
        "echo 1 > /proc/sys/kernel/domainname 2>/dev/null && echo procsys-writable; \
         echo 1 > /proc/sys/net/ipv4/ip_forward && echo net-writable; \
         touch /sys/x 2>/dev/null && echo sys-writable; \
         echo ok",
    );
    assert!(
        !out.contains("procsys-writable"),
        "/proc/sys must be read-only: {out}"
    );
    assert!(
        out.contains("net-writable"),
        "/proc/sys/net belongs to the VE: {out}"
    );
    assert!(
        !out.contains("sys-writable"),
        "/sys must be read-only: {out}"
    );
    assert_eq!(
        fs::read_to_string("/proc/sys/net/ipv4/ip_forward")
            .expect("read")
            .trim(),
        "0",
        "the host's forwarding is untouched"
    );
    // Masked /proc files read as empty; masked directories are empty.
    for f in ["kcore", "keys", "timer_list"] {
        if std::path::Path::new(&format!("/proc/{f}")).exists() {
            assert_eq!(
                root.sh("101", &format!("wc -c < /proc/{f}")).trim(),
                "0",
                "/proc/{f} is masked"
            );
        }
    }
    if std::path::Path::new("/sys/firmware").exists() {
        assert_eq!(root.sh("101", "ls -A /sys/firmware | wc -l").trim(), "0");
    }
    let dev: Vec<String> = root
        .sh("101", "ls -A /dev")
        .split_whitespace()
        .map(String::from)
        .collect();
    let want = [
        "console", "fd", "full", "null", "ptmx", "pts", "random", "shm", "stderr", "stdin",
        "stdout", "tty", "urandom", "zero",
    ];
    assert_eq!(dev, want, "/dev holds exactly the documented entries");
    assert!(root.sh("101", "head -c 4 /dev/urandom | wc -c").trim() == "4");
    // The console is the VE's own pty.
    assert!(
        root.sh("101", "ls -l /dev/console").contains("136,"),
        "console is a pty"
    );
    // Nothing can make usable device nodes.
    let mk = root.run(&[
        "exec",
        "101",
        "--",
        "/bin/sh",
        "-c",
        "mknod /tmp/sda b 8 0 && head -c1 /tmp/sda",
    ]);
    assert!(
        !mk.status.success(),
        "device nodes must be unusable in a VE"
    );
    root.finish();
}

#[test]
fn capabilities_and_seccomp_apply_to_init_and_exec() {
    let root = TestRoot::new("iso-sec");
    root.start_busybox("101", &[]);
    let pid = root.init_pid("101");
    let status = |s: &str, key: &str| -> String {
        s.lines()
            .find_map(|l| l.strip_prefix(key))
            .unwrap_or_default()
            .trim()
            .to_string()
    };
    let init_status = fs::read_to_string(format!("/proc/{pid}/status")).expect("status");
    let exec_status = root.sh("101", "cat /proc/self/status");
    let bnd = u64::from_str_radix(&status(&init_status, "CapBnd:"), 16).expect("hex");
    // CAP_SYS_MODULE (16), CAP_SYS_RAWIO (17), CAP_SYS_TIME (25), CAP_SYSLOG (34) are gone.
    for cap in [16, 17, 25, 34] {
        assert_eq!(
            bnd & (1 << cap),
            0,
            "capability {cap} must not be in the bounding set"
        );
    }
    // CAP_SYS_ADMIN (21) stays: systemd needs it (scoped to the VE's namespaces).
    assert_ne!(bnd & (1 << 21), 0);
    assert_eq!(
        status(&init_status, "CapBnd:"),
        status(&exec_status, "CapBnd:"),
        "exec has init's bounding set"
    );
    assert_eq!(
        status(&init_status, "Seccomp:"),
        "2",
        "init runs under a seccomp filter"
    );
    assert_eq!(
        status(&exec_status, "Seccomp:"),
        "2",
        "exec runs under a seccomp filter"
    );
    assert_eq!(
        status(&exec_status, "NoNewPrivs:"),
        "0",
        "setuid programs keep working"
    );
    // The filter in action: the host's kernel log is out of reach.
    let out = root.run(&["exec", "101", "--", "dmesg"]);
    assert!(!out.status.success());
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("not permitted"),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    root.finish();
}

#[test]
fn exec_joins_everything_and_leaks_no_descriptor() {
    let root = TestRoot::new("iso-exec");
    root.start_busybox("101", &[]);
    let same = root.sh("101", "for n in pid mnt uts ipc net cgroup user; do [ $(readlink /proc/self/ns/$n) = $(readlink /proc/1/ns/$n) ] || echo differs-$n; done; echo done");
    assert_eq!(
        same.trim(),
        "done",
        "exec shares every namespace with init: {same}"
    );
    assert_eq!(
        root.sh("101", "cat /proc/self/cgroup"),
        root.sh("101", "cat /proc/1/cgroup"),
        "exec joins init's cgroups"
    );
    // Only stdin, stdout, stderr (and ls's own directory) are open.
    let fds = root.sh("101", "ls /proc/self/fd");
    let fds: Vec<&str> = fds.split_whitespace().collect();
    assert!(
        fds.len() <= 4 && ["0", "1", "2"].iter().all(|f| fds.contains(f)),
        "descriptors open in an exec'd process: {fds:?}"
    );
    // stdin, stdout, stderr and the exit status pass through.
    let mut child = root
        .cmd()
        .args([
            "exec",
            "101",
            "--",
            "/bin/sh",
            "-c",
            "read x; echo out:$x; echo err:$x >&2; exit 7",
        ])
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .expect("spawn");
    use std::io::Write;
    child
        .stdin
        .take()
        .expect("stdin")
        .write_all(b"hello\n")
        .expect("write");
    let out = child.wait_with_output().expect("wait");
    assert_eq!(out.status.code(), Some(7));
    assert_eq!(String::from_utf8_lossy(&out.stdout), "out:hello\n");
    assert_eq!(String::from_utf8_lossy(&out.stderr), "err:hello\n");
    let nf = root.run(&["exec", "101", "--", "/no/such/program"]);
    assert_eq!(
        nf.status.code(),
        Some(127),
        "a missing program exits 127 like a shell"
    );
    // A signal-killed command reports 128+N.
    assert_eq!(
        root.run(&["exec", "101", "--", "/bin/sh", "-c", "kill -9 $$"])
            .status
            .code(),
        Some(137)
    );
    root.finish();
}

#[test]
fn two_ves_get_disjoint_id_ranges() {
    let root = TestRoot::new("iso-ids");
    root.start_busybox("101", &[]);
    root.start_busybox("102", &[]);
    let a = root.config("101")["idmap"]["uid_base"]
        .as_u64()
        .expect("base");
    let b = root.config("102")["idmap"]["uid_base"]
        .as_u64()
        .expect("base");
    assert!(a + 65536 <= b || b + 65536 <= a, "ranges overlap: {a} {b}");
    // Root of one VE is nobody in the other: a file made by 101's root
    // cannot be seen with that owner from 102 (different user namespaces).
    let pid101 = root.init_pid("101");
    let pid102 = root.init_pid("102");
    assert_ne!(
        ns_of(&pid101.to_string(), "user"),
        ns_of(&pid102.to_string(), "user")
    );
    root.finish();
}

/// Kennel writes /etc/hostname inside the VE as the VE's root, after the
/// VE had a chance to plant anything there: a FIFO must not hang the
/// start, a symlink must not be followed.
#[test]
fn a_planted_etc_hostname_is_left_alone() {
    let root = TestRoot::new("iso-hostname");
    root.start_busybox("101", &["--hostname", "box1"]);
    assert_eq!(root.sh("101", "cat /etc/hostname").trim(), "box1");
    root.sh("101", "rm /etc/hostname; mkfifo /etc/hostname");
    root.ok(&["restart", "101"]);
    assert_eq!(
        root.sh("101", "[ -p /etc/hostname ] && echo fifo").trim(),
        "fifo"
    );
    root.sh(
        "101",
        "rm /etc/hostname; echo keep > /root/target; ln -s /root/target /etc/hostname",
    );
    root.ok(&["restart", "101"]);
    assert_eq!(
        root.sh("101", "[ -L /etc/hostname ] && cat /root/target")
            .trim(),
        "keep",
        "the symlink is neither followed nor replaced"
    );
    assert_eq!(root.sh("101", "hostname").trim(), "box1");
    root.finish();
}

/// A caller shielded from the OOM killer (an sshd session at -1000, a
/// service) does not pass the shield on to the VE. Needs CAP_SYS_RESOURCE
/// to set up; the cgroup v2 VM run has it.
#[test]
fn ve_processes_are_not_shielded_from_the_oom_killer() {
    let root = TestRoot::new("iso-oom");
    root.busybox();
    root.ok(&["create", "101", "--template", "busybox"]);
    // `kennel ARGS` from a shell that first lowers its OOM score.
    let shielded = |args: &str| {
        let mut c = Command::new("/bin/sh");
        c.arg("-c").arg(format!(
            "echo -500 > /proc/self/oom_score_adj 2>/dev/null || exit 77; exec \"$0\" --root \"$1\" {args}"
        ))
        .arg(common::KENNEL)
        .arg(&root.dir)
        .stdin(Stdio::null());
        c.output().expect("run")
    };
    let out = shielded("start 101");
    if out.status.code() == Some(77) {
        eprintln!("skipped: lowering oom_score_adj needs CAP_SYS_RESOURCE");
        root.finish();
        return;
    }
    assert!(out.status.success(), "{out:?}");
    let init = root.init_pid("101");
    let adj = fs::read_to_string(format!("/proc/{init}/oom_score_adj")).expect("read");
    assert_eq!(adj.trim(), "0", "the VE's init");
    // Nor can the VE take the shield back: the kernel's floor moved too.
    let lower = |who: &str| {
        format!(
            "cat /proc/{who}/oom_score_adj; echo -1000 > /proc/{who}/oom_score_adj && echo LOWERED"
        )
    };
    let out = shielded(&format!("exec 101 -- /bin/sh -c '{}'", lower("self")));
    assert_eq!(String::from_utf8_lossy(&out.stdout).trim(), "0", "{out:?}");
    // (The VE's root may write init's value: raising it works.)
    let init = root.sh(
        "101",
        &format!("echo 5 > /proc/1/oom_score_adj; {} || true", lower("1")),
    );
    assert_eq!(init.trim(), "5");
    root.finish();
}

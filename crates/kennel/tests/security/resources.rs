//! Shared pools and limits: rlimits a caller passes on (RTPRIO, NOFILE),
//! descriptors, inotify instances and watches (counted per host user:
//! the VE's and the host's root must not share one pool), processes, and
//! console output the monitor relays.

use std::fs;
use std::process::{Command, Stdio};

use rustix::fs::inotify;

use super::common;
use super::lab::{case, Case, Lab, Layout, Verdict, ATT, NB, TOOL};

/// `prlimit LIMITS -- kennel --root R ARGS`.
fn under_prlimit(l: &Lab, limits: &[String], args: &[&str]) -> (Option<i32>, String, String) {
    let mut c = Command::new("prlimit");
    c.args(limits)
        .arg("--")
        .arg(common::KENNEL)
        .arg("--root")
        .arg(&l.root.dir)
        .args(args)
        .stdin(std::process::Stdio::null());
    let (st, out, err) = common::output_within(&mut c, common::secs(30));
    (st.and_then(|s| s.code()), out, err)
}

fn limits_line(limits: &str, name: &str) -> Vec<String> {
    limits
        .lines()
        .find(|l| l.starts_with(name))
        .map(|l| {
            l[name.len()..]
                .split_whitespace()
                .take(2)
                .map(str::to_string)
                .collect()
        })
        .unwrap_or_default()
}

fn holding_check(
    l: &Lab,
    args: &[&str],
    during: impl FnOnce() -> Result<(), String>,
) -> Result<(), String> {
    let h = l.hold(args, 60)?;
    let n = h.count;
    let r = during();
    // The neighbour must work while the attacker holds everything.
    let (ok, out) = l.sh(NB, "echo alive", 10);
    let v = h.release();
    if !ok || !out.contains("alive") {
        return Err(format!(
            "the neighbour could not run a command while {n} were held: {out}"
        ));
    }
    r.map_err(|e| format!("while the VE held {n}: {e}"))?;
    match v {
        Verdict::Blocked(_) => Ok(()),
        v => Err(format!("{v:?}")),
    }
}

pub const CASES: &[Case] = &[
    case(
        "rlimits_of_init_and_exec_whatever_the_caller_had",
        |l: &mut Lab| {
            // The most this host's root can pass on (it may lack
            // CAP_SYS_RESOURCE, and so any RTPRIO above its own).
            let mut limits = vec!["--nofile=4096:20000".to_string()];
            if Command::new("prlimit")
                .args(["--rtprio=99:99", "--", "true"])
                .stderr(Stdio::null())
                .status()
                .is_ok_and(|s| s.success())
            {
                limits.push("--rtprio=99:99".into());
                limits.push("--nice=40:40".into());
            } else {
                eprintln!(
                    "  (this host's root cannot raise RTPRIO: the caller passes on only NOFILE)"
                );
            }
            // Kennel raises NOFILE's hard limit to 524288 where the host's
            // root may (CAP_SYS_RESOURCE), else keeps the caller's 20000.
            let can_raise = Command::new("prlimit")
                .args(["--nofile=1024:20000", "--", "prlimit"])
                .args(["--nofile=1024:524288", "--", "true"])
                .stderr(Stdio::null())
                .status()
                .is_ok_and(|s| s.success());
            let nofile_hard = if can_raise { "524288" } else { "20000" };
            let _ = l.kennel(&["kill", ATT], 20);
            let (code, _, err) = under_prlimit(l, &limits, &["start", ATT]);
            if code != Some(0) {
                return Err(format!("start under prlimit: {err}"));
            }
            let init = l.root.init_pid(ATT);
            let lim = fs::read_to_string(format!("/proc/{init}/limits")).unwrap_or_default();
            let mut bad = Vec::new();
            for (name, want) in [
                ("Max realtime priority", ["0", "0"]),
                ("Max nice priority", ["0", "0"]),
                ("Max locked memory", ["8388608", "8388608"]),
                ("Max open files", ["1024", nofile_hard]),
            ] {
                if limits_line(&lim, name) != want {
                    bad.push(format!("init {name}: {:?}", limits_line(&lim, name)));
                }
            }
            if limits_line(&lim, "Max core file size")
                .first()
                .map(String::as_str)
                != Some("0")
            {
                bad.push(format!(
                    "init core: {:?}",
                    limits_line(&lim, "Max core file size")
                ));
            }
            for probe in [
                vec![TOOL, "rlimits"],
                vec![TOOL, "sys", "sched_fifo", "nice_negative"],
            ] {
                let mut a = vec!["exec", ATT, "--"];
                a.extend(probe);
                let (code, out, _) = under_prlimit(l, &limits, &a);
                if code != Some(0) {
                    bad.push(format!("exec: {}", out.lines().last().unwrap_or_default()));
                }
            }
            if bad.is_empty() {
                Ok(())
            } else {
                Err(bad.join("; "))
            }
        },
    )
    .restarts(),
    // No cpuset for a VE's own cgroups: with it a VE could flip cpuset
    // partitions, and on 6.1-6.5 kernels each flip from an invalid one back
    // to a member rebuilds the host's scheduler domains under global locks
    // (found by a hostile-tenant review of the resources). The VE's own
    // cgroup is one level below the one holding its limits, which enables
    // every controller but cpuset for it.
    case("cpuset_is_not_delegated", |l| {
        let host_has = common::cgroup2_mount()
            .and_then(|m| fs::read_to_string(m.join("cgroup.controllers")).ok())
            .is_some_and(|c| c.split_whitespace().any(|w| w == "cpuset"));
        let script = "cd /sys/fs/cgroup || exit 1
            echo \"controllers: $(cat cgroup.controllers)\"
            mkdir -p leaf
            for p in $(cat cgroup.procs); do echo $p > leaf/cgroup.procs; done 2>/dev/null
            echo +cpuset > cgroup.subtree_control 2>/dev/null && echo ENABLED
            for p in $(cat leaf/cgroup.procs); do echo $p > cgroup.procs; done 2>/dev/null
            rmdir leaf; true";
        let (ok, out) = l.sh(ATT, script, 30);
        if !ok {
            return Err(format!("the probe failed: {out}"));
        }
        let theirs = out
            .lines()
            .find_map(|l| l.strip_prefix("controllers: "))
            .unwrap_or_default();
        if theirs.split_whitespace().any(|c| c == "cpuset") || out.contains("ENABLED") {
            return Err(format!("the VE has cpuset: {out}"));
        }
        // Where the host has cpuset, the VE still gets the others.
        if host_has && !theirs.split_whitespace().any(|c| c == "memory") {
            return Err(format!("the VE lost its other controllers: {out}"));
        }
        Ok(())
    })
    .only(Layout::VeV2),
    case("fd_exhaustion", |l| {
        holding_check(l, &["fd-exhaust"], || {
            fs::File::open("/proc/self/status")
                .map(|_| ())
                .map_err(|e| format!("the host cannot open a file: {e}"))
        })
    }),
    case("inotify_instances_exhaustion", |l| {
        // Control: the host's root can make one now.
        inotify::init(inotify::CreateFlags::CLOEXEC).map_err(|e| format!("control: {e}"))?;
        holding_check(l, &["inotify-instances"], || {
            match inotify::init(inotify::CreateFlags::CLOEXEC) {
                Ok(_) => Ok(()),
                Err(e) => Err(format!(
                    "the host's root cannot make an inotify instance: {e}"
                )),
            }
        })
    }),
    case("inotify_watches_exhaustion", |l| {
        let fd = inotify::init(inotify::CreateFlags::CLOEXEC).map_err(|e| e.to_string())?;
        inotify::add_watch(&fd, "/var/tmp", inotify::WatchFlags::MODIFY)
            .map_err(|e| format!("control: {e}"))?;
        holding_check(l, &["inotify-watches"], || {
            match inotify::add_watch(&fd, "/tmp", inotify::WatchFlags::MODIFY) {
                Ok(_) => Ok(()),
                Err(e) => Err(format!("the host's root cannot add an inotify watch: {e}")),
            }
        })
    }),
    case("keys_exhaustion", |l| {
        // The kernel's key quota is per host user: whatever the VE may
        // hold must be charged to its own uid, never to the host's root.
        let root_keys = || -> u64 {
            fs::read_to_string("/proc/key-users")
                .unwrap_or_default()
                .lines()
                .find(|l| l.trim_start().starts_with("0:"))
                .and_then(|l| l.split_whitespace().nth(3)?.split('/').next()?.parse().ok())
                .unwrap_or(0)
        };
        let before = root_keys();
        holding_check(l, &["keys-exhaust"], || {
            let during = root_keys();
            if during > before + 10 {
                Err(format!(
                    "the host root's key quota went from {before} to {during}"
                ))
            } else {
                Ok(())
            }
        })?;
        // And the calls themselves are refused (ENOSYS, see kernel.rs).
        l.blocked(&["sys", "add_key"]).map(|_| ())
    }),
    case("fork_bomb", |l| {
        holding_check(l, &["fork-bomb"], || {
            Command::new("true")
                .status()
                .map(|_| ())
                .map_err(|e| format!("the host cannot fork: {e}"))
        })
    }),
    case("console_flood", |l| {
        // The monitor takes a console's output at 64 KiB/s: a VE writing as
        // fast as it can blocks on its own console, and the monitor (whose
        // CPU time is not charged to the VE) stays idle. Found by a
        // hostile-tenant review: before, it spent seconds a second.
        let mon = l.root.monitor_pid(ATT);
        let cpu = || -> u64 {
            let stat = fs::read_to_string(format!("/proc/{mon}/stat")).unwrap_or_default();
            let rest = stat.rsplit_once(')').map_or("", |(_, r)| r);
            let f: Vec<&str> = rest.split_whitespace().collect();
            // utime and stime: fields 14 and 15, here 11 and 12 after ')'.
            f.get(11).and_then(|v| v.parse::<u64>().ok()).unwrap_or(0)
                + f.get(12).and_then(|v| v.parse::<u64>().ok()).unwrap_or(0)
        };
        let before = cpu();
        let _ = l.sh(ATT, &format!("timeout 8 {TOOL} console-flood 64"), 30);
        let ticks = cpu().saturating_sub(before);
        let hz = 100; // USER_HZ
        if ticks > hz / 2 {
            return Err(format!(
                "the monitor spent {ticks} ticks (1/{hz} s) on 8 s of console flood"
            ));
        }
        let status = fs::read_to_string(format!("/proc/{mon}/status")).unwrap_or_default();
        let rss: u64 = status
            .lines()
            .find_map(|l| l.strip_prefix("VmRSS:"))
            .and_then(|v| v.split_whitespace().next()?.parse().ok())
            .unwrap_or(0);
        if rss > 16 * 1024 {
            return Err(format!("the monitor grew to {rss} KiB"));
        }
        let mut size = 0;
        for d in [
            l.root.dir.join("run"),
            l.root.dir.join(format!("lib/ve/{ATT}")),
        ] {
            let mut stack = vec![d];
            while let Some(d) = stack.pop() {
                for e in fs::read_dir(&d).into_iter().flatten().flatten() {
                    if e.file_name() == "fs" {
                        continue;
                    }
                    if let Ok(md) = fs::symlink_metadata(e.path()) {
                        if md.is_dir() {
                            stack.push(e.path());
                        } else {
                            size += md.len();
                        }
                    }
                }
            }
        }
        if size > 8 << 20 {
            return Err(format!("the VE's state on the host grew to {size} bytes"));
        }
        Ok(())
    }),
];

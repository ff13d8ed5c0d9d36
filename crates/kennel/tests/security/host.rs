//! What the host looks like, before and after each case: the checks that
//! an attack which "failed" really left the host as it was. Every probe
//! here only reads.

use std::collections::BTreeMap;
use std::fs;
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};

use super::common;

/// Host-wide knobs a VE must never move (those absent on this kernel are
/// skipped).
const SYSCTLS: &[&str] = &[
    "kernel/hostname",
    "kernel/domainname",
    "kernel/core_pattern",
    "kernel/modprobe",
    "kernel/sysrq",
    "kernel/panic",
    "kernel/ctrl-alt-del",
    "kernel/pid_max",
    "kernel/printk",
    "kernel/kptr_restrict",
    "kernel/dmesg_restrict",
    "kernel/randomize_va_space",
    "kernel/perf_event_paranoid",
    "kernel/unprivileged_bpf_disabled",
    "kernel/io_uring_disabled",
    "kernel/pty/max",
    "kernel/pty/reserve",
    "kernel/keys/maxkeys",
    "vm/overcommit_memory",
    "vm/unprivileged_userfaultfd",
    "vm/swappiness",
    "fs/file-max",
    "fs/nr_open",
    "fs/inotify/max_user_instances",
    "fs/inotify/max_user_watches",
    "user/max_user_namespaces",
    "net/ipv4/ip_forward",
    "net/ipv4/conf/all/forwarding",
    "net/ipv6/conf/all/forwarding",
    "net/ipv4/conf/all/proxy_arp",
];

/// Files of Kennel's cgroups (and each hierarchy's root) that act beyond
/// the VE.
const CGROUP_FILES: &[&str] = &[
    "release_agent",
    "notify_on_release",
    "cpuset.sched_load_balance",
    "cpuset.sched_relax_domain_level",
    "cpuset.cpus",
    "cpuset.mems",
    "cgroup.freeze",
];

/// Mount points whose appearance on the host would be an attack's work.
fn watched_mount_point(mp: &str) -> bool {
    [
        "/", "/proc", "/sys", "/dev", "/etc", "/usr", "/boot", "/root", "/bin", "/sbin", "/lib",
    ]
    .iter()
    .any(|p| mp == *p || (p.len() > 1 && mp.starts_with(&format!("{p}/"))))
        && !mp.starts_with("/proc/sys/fs/binfmt_misc")
}

#[derive(Debug, Clone, PartialEq)]
pub struct Snapshot {
    sysctls: BTreeMap<String, String>,
    cgroup_files: BTreeMap<String, String>,
    /// mount id -> "mount point, options, type, source"
    mounts: BTreeMap<String, String>,
    /// Seconds between the epoch and boot, by the realtime clock.
    boot_epoch: f64,
    canaries: BTreeMap<String, String>,
    kennel: (u64, u64, i64, i64),
    lab: Option<(String, String)>,
}

fn sysctl(path: &str) -> Option<String> {
    fs::read_to_string(format!("/proc/sys/{path}")).ok()
}

fn boot_epoch() -> f64 {
    let up: f64 = fs::read_to_string("/proc/uptime")
        .ok()
        .and_then(|s| s.split_whitespace().next()?.parse().ok())
        .unwrap_or(0.0);
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_secs_f64())
        .unwrap_or(0.0);
    now - up
}

fn mounts() -> BTreeMap<String, String> {
    let mi = fs::read_to_string("/proc/self/mountinfo").unwrap_or_default();
    mi.lines()
        .filter_map(|l| {
            let f: Vec<&str> = l.split(' ').collect();
            let mp = *f.get(4)?;
            let right = l.split(" - ").nth(1)?;
            Some((f[0].to_string(), format!("{mp} {} {right}", f.get(5)?)))
        })
        .collect()
}

/// Every file under `dir` (the host's canaries): owner, mode, contents.
fn canaries(dir: &Path) -> BTreeMap<String, String> {
    let mut out = BTreeMap::new();
    for e in fs::read_dir(dir).into_iter().flatten().flatten() {
        let p = e.path();
        let md = match fs::symlink_metadata(&p) {
            Ok(m) => m,
            Err(_) => continue,
        };
        let body = fs::read(&p).map(|b| format!("{:?}", b)).unwrap_or_default();
        out.insert(
            p.display().to_string(),
            format!("{}:{} {:o} {body}", md.uid(), md.gid(), md.mode()),
        );
    }
    out
}

/// The lines of `s` in order (a restarted VE's routes and tables come
/// back in another order).
fn sorted_lines(s: &str) -> String {
    let mut v: Vec<&str> = s.lines().collect();
    v.sort_unstable();
    v.join("\n")
}

/// Lines only in `a` (-) and only in `b` (+).
fn line_diff(a: &str, b: &str) -> String {
    let (la, lb): (Vec<&str>, Vec<&str>) = (a.lines().collect(), b.lines().collect());
    let mut out: Vec<String> = la
        .iter()
        .filter(|l| !lb.contains(l))
        .map(|l| format!("-{l}"))
        .collect();
    out.extend(
        lb.iter()
            .filter(|l| !la.contains(l))
            .map(|l| format!("+{l}")),
    );
    out.join(" ")
}

/// Text without nftables counters, which move with traffic.
pub fn without_counters(s: &str) -> String {
    let mut out = Vec::new();
    let mut skip = 0;
    for w in s.split_whitespace() {
        if skip > 0 {
            skip -= 1;
            continue;
        }
        if w == "packets" || w == "bytes" {
            skip = 1;
            continue;
        }
        out.push(w);
    }
    out.join(" ")
}

impl Snapshot {
    pub fn take(
        cgroup_dirs: &[PathBuf],
        canary_dir: &Path,
        lab: Option<&common::netlab::NetLab>,
    ) -> Self {
        let sysctls = SYSCTLS
            .iter()
            .filter_map(|p| Some((p.to_string(), sysctl(p)?)))
            .collect();
        let mut cgroup_files = BTreeMap::new();
        let mut dirs: Vec<PathBuf> = common::cgroup_mounts();
        dirs.extend(cgroup_dirs.iter().cloned());
        for d in dirs {
            for f in CGROUP_FILES {
                let p = d.join(f);
                if let Ok(v) = fs::read_to_string(&p) {
                    cgroup_files.insert(p.display().to_string(), v);
                }
            }
        }
        let md = fs::metadata(common::KENNEL).expect("kennel binary");
        let lab = lab.map(|l| {
            let routes = ["-4", "-6"]
                .iter()
                .map(|f| {
                    String::from_utf8_lossy(
                        &l.host_cmd(&["ip", f, "route", "show", "table", "all"])
                            .stdout,
                    )
                    .lines()
                    // Cached routes come and go with traffic.
                    // (and link-local addresses of the lab's links, which
                    // appear once their DAD ends).
                    .filter(|r| {
                        !r.contains(" cache") && !r.contains("expires") && !r.contains("fe80::")
                    })
                    .map(|r| format!("{r}\n"))
                    .collect::<String>()
                })
                .collect::<Vec<_>>()
                .join("");
            let routes = sorted_lines(&routes);
            let rules = l
                .host_ruleset()
                .lines()
                .map(|r| format!("{}\n", without_counters(r)))
                .collect::<String>();
            (routes, sorted_lines(&rules))
        });
        Snapshot {
            sysctls,
            cgroup_files,
            mounts: mounts(),
            boot_epoch: boot_epoch(),
            canaries: canaries(canary_dir),
            kennel: (md.len(), md.ino(), md.mtime(), md.ctime()),
            lab,
        }
    }

    /// What changed from `self` (before) to `now`.
    pub fn diff(&self, now: &Snapshot, ignore_mounts: &[String]) -> Vec<String> {
        let mut out = Vec::new();
        for (k, v) in &self.sysctls {
            if now.sysctls.get(k) != Some(v) {
                out.push(format!(
                    "host sysctl {k}: {v:?} -> {:?}",
                    now.sysctls.get(k)
                ));
            }
        }
        for (k, v) in &self.cgroup_files {
            match now.cgroup_files.get(k) {
                Some(n) if n != v => out.push(format!("host cgroup file {k}: {v:?} -> {n:?}")),
                _ => {}
            }
        }
        let ignored = |desc: &str| ignore_mounts.iter().any(|i| desc.contains(i.as_str()));
        for (id, desc) in &self.mounts {
            if !ignored(desc)
                && !now.mounts.contains_key(id)
                && watched_mount_point(desc.split(' ').next().unwrap_or(""))
            {
                out.push(format!("host mount gone: {desc}"));
            }
        }
        for (id, desc) in &now.mounts {
            let mp = desc.split(' ').next().unwrap_or("");
            if !self.mounts.contains_key(id) && watched_mount_point(mp) && !ignored(desc) {
                out.push(format!("new host mount: {desc}"));
            }
            if let Some(old) = self.mounts.get(id) {
                if old != desc && watched_mount_point(mp) {
                    out.push(format!("host mount changed: {old} -> {desc}"));
                }
            }
        }
        if (now.boot_epoch - self.boot_epoch).abs() > 2.0 {
            out.push(format!(
                "the host's clock moved by {:.1} s",
                now.boot_epoch - self.boot_epoch
            ));
        }
        if self.canaries != now.canaries {
            out.push(format!(
                "host canary files changed: {:?} -> {:?}",
                self.canaries, now.canaries
            ));
        }
        if self.kennel != now.kennel {
            out.push("the kennel binary changed (size, inode or times)".to_string());
        }
        if let (Some((r0, n0)), Some((r1, n1))) = (&self.lab, &now.lab) {
            if r0 != r1 {
                out.push(format!(
                    "the lab host's routes changed: {}",
                    line_diff(r0, r1)
                ));
            }
            if n0 != n1 {
                out.push(format!(
                    "the lab host's ruleset changed: {}",
                    line_diff(n0, n1)
                ));
            }
        }
        out
    }
}

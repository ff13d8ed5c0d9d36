//! A cgroup's counters, the way OpenVZ's beancounters show them: for each
//! resource what it holds now, its peak, its limit, and how often it hit
//! the limit. Read from the kernel's own files, in each hierarchy's
//! dialect; what a kernel does not count is `None`, never a guess.
//!
//! | | cgroup v2 | cgroup v1 |
//! |---|---|---|
//! | memory | `memory.current`, `.peak`, `.max`, `memory.events` `max` | `memory.usage_in_bytes`, `.max_usage_in_bytes`, `.limit_in_bytes`, `.failcnt` |
//! | swap | `memory.swap.current`, `.peak`, `.max`, `memory.swap.events` `fail` | `memsw` less memory (no peak of its own) |
//! | kernel memory | `memory.stat` `kernel` (held only) | `memory.kmem.*` |
//! | processes | `pids.current`, `.peak`, `.max`, `pids.events` `max` | the same |
//! | CPU | `cpu.stat` `usage_usec`, `nr_throttled`, `throttled_usec` | `cpuacct.usage`, `cpu.stat` `nr_throttled`, `throttled_time` |
//! | I/O | `io.stat` | `blkio.throttle.io_service_bytes_recursive`, `io_serviced_recursive` |
//! | OOM kills | `memory.events` `oom_kill` | `memory.oom_control` `oom_kill` |
//! | open files | `/proc/PID/fd` of each process (a walk) | the same |

use std::fs;

use crate::host::{Hierarchy, HierarchyKind};
use crate::tree::Cgroup;

/// One resource's counters. `limit` is `None` when unlimited (or unknown).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Counter {
    pub held: Option<u64>,
    pub peak: Option<u64>,
    pub limit: Option<u64>,
    /// How often the limit was hit since the cgroup was made.
    pub fails: Option<u64>,
}

/// CPU time used and how often the limit held the cgroup back.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct CpuUsage {
    pub usage_ns: Option<u64>,
    /// Periods in which the cgroup ran out of its quota.
    pub throttled: Option<u64>,
    pub throttled_ns: Option<u64>,
}

/// Disk I/O done, summed over devices.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct IoUsage {
    pub read_bytes: u64,
    pub write_bytes: u64,
    pub reads: u64,
    pub writes: u64,
}

/// Everything counted for one cgroup.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Accounting {
    pub memory: Counter,
    pub swap: Counter,
    pub kernel_memory: Counter,
    pub processes: Counter,
    pub cpu: CpuUsage,
    pub io: Option<IoUsage>,
    /// Processes the OOM killer of this cgroup's memory limit killed.
    pub oom_kills: Option<u64>,
    /// Open files (descriptors) of its processes, counted only on request
    /// ([`Cgroup::open_files`]): no kernel counter keeps them per cgroup.
    pub open_files: Counter,
}

/// A number from a cgroup file; `max` and v1's "no limit" values (-1,
/// or the page-rounded `LONG_MAX`) are `None`.
fn number(text: &str) -> Option<u64> {
    let t = text.trim();
    if t == "max" || t == "-1" {
        return None;
    }
    t.parse::<u64>().ok().filter(|&n| n < 1 << 62)
}

/// The value of `key` in a `key value` file (`memory.events`,
/// `cpu.stat`, `pids.events`, `memory.oom_control`, `memory.stat`).
pub fn keyed(text: &str, key: &str) -> Option<u64> {
    text.lines().find_map(|l| {
        let (k, v) = l.split_once(' ')?;
        (k == key).then(|| v.trim().parse().ok()).flatten()
    })
}

/// v2's `io.stat`: `MAJ:MIN rbytes=N wbytes=N rios=N wios=N ...` per
/// device.
fn parse_io_stat(text: &str) -> IoUsage {
    let mut io = IoUsage::default();
    for field in text.split_whitespace() {
        let Some((k, v)) = field.split_once('=') else {
            continue;
        };
        let v: u64 = v.parse().unwrap_or(0);
        match k {
            "rbytes" => io.read_bytes += v,
            "wbytes" => io.write_bytes += v,
            "rios" => io.reads += v,
            "wios" => io.writes += v,
            _ => {}
        }
    }
    io
}

/// v1's `blkio.throttle.io_service_*_recursive`: `MAJ:MIN Read N`,
/// `MAJ:MIN Write N` per device, then `Total N`: (reads, writes).
fn parse_blkio(text: &str) -> (u64, u64) {
    let (mut r, mut w) = (0, 0);
    for l in text.lines() {
        let mut f = l.split_whitespace();
        let (Some(_dev), Some(op), Some(n)) = (f.next(), f.next(), f.next()) else {
            continue;
        };
        let n: u64 = n.parse().unwrap_or(0);
        match op {
            "Read" => r += n,
            "Write" => w += n,
            _ => {}
        }
    }
    (r, w)
}

impl Cgroup<'_> {
    /// The cgroup's counters (see the module's table).
    pub fn accounting(&self) -> Accounting {
        let mut a = Accounting::default();
        let host = self.host();
        let read = |h: &Hierarchy, f: &str| fs::read_to_string(self.dir(h).join(f)).ok();
        if let Some(h) = host.hierarchy_for("memory") {
            let n = |f: &str| read(h, f).as_deref().and_then(number);
            if h.kind == HierarchyKind::V2 {
                let events = read(h, "memory.events").unwrap_or_default();
                a.memory = Counter {
                    held: n("memory.current"),
                    peak: n("memory.peak"),
                    limit: n("memory.max"),
                    fails: keyed(&events, "max"),
                };
                a.oom_kills = keyed(&events, "oom_kill");
                let swap_events = read(h, "memory.swap.events").unwrap_or_default();
                a.swap = Counter {
                    held: n("memory.swap.current"),
                    peak: n("memory.swap.peak"),
                    limit: n("memory.swap.max"),
                    fails: keyed(&swap_events, "fail"),
                };
                a.kernel_memory.held = keyed(&read(h, "memory.stat").unwrap_or_default(), "kernel");
            } else {
                a.memory = v1_counter(&|f| n(f), "memory");
                let memsw = v1_counter(&|f| n(f), "memory.memsw");
                a.swap = Counter {
                    held: memsw
                        .held
                        .zip(a.memory.held)
                        .map(|(t, m)| t.saturating_sub(m)),
                    peak: None,
                    limit: memsw
                        .limit
                        .zip(a.memory.limit)
                        .map(|(t, m)| t.saturating_sub(m)),
                    fails: memsw.fails,
                };
                a.kernel_memory = v1_counter(&|f| n(f), "memory.kmem");
                a.oom_kills = keyed(
                    &read(h, "memory.oom_control").unwrap_or_default(),
                    "oom_kill",
                );
            }
        }
        if let Some(h) = host.hierarchy_for("pids") {
            let n = |f: &str| read(h, f).as_deref().and_then(number);
            a.processes = Counter {
                held: n("pids.current"),
                peak: n("pids.peak"),
                limit: n("pids.max"),
                fails: pids_fails(&self.dir(h)),
            };
        }
        if let Some(h) = host.hierarchy_for("cpu") {
            let stat = read(h, "cpu.stat").unwrap_or_default();
            a.cpu.throttled = keyed(&stat, "nr_throttled");
            if h.kind == HierarchyKind::V2 {
                a.cpu.usage_ns = keyed(&stat, "usage_usec").map(|u| u * 1000);
                a.cpu.throttled_ns = keyed(&stat, "throttled_usec").map(|u| u * 1000);
            } else {
                a.cpu.throttled_ns = keyed(&stat, "throttled_time");
                a.cpu.usage_ns = host
                    .hierarchy_for("cpuacct")
                    .and_then(|h| read(h, "cpuacct.usage"))
                    .as_deref()
                    .and_then(number);
            }
        }
        a.io = self.io_usage();
        a
    }

    fn io_usage(&self) -> Option<IoUsage> {
        let host = self.host();
        if let Some(h) = host.hierarchy_for("io") {
            let text = fs::read_to_string(self.dir(h).join("io.stat")).ok()?;
            return Some(parse_io_stat(&text));
        }
        let h = host.hierarchy_for("blkio")?;
        let read = |f: &str| fs::read_to_string(self.dir(h).join(f)).ok();
        let (read_bytes, write_bytes) =
            parse_blkio(&read("blkio.throttle.io_service_bytes_recursive")?);
        let (reads, writes) = parse_blkio(&read("blkio.throttle.io_serviced_recursive")?);
        Some(IoUsage {
            read_bytes,
            write_bytes,
            reads,
            writes,
        })
    }
}

/// The most cgroups a VE's subtree walk reads: the v2 subtree bound
/// (1024 descendants) and the VE's own.
const MAX_SUBTREE: usize = 1025;

/// How often forks were refused at the VE's process limit. Linux 6.11 and
/// later count that in the cgroup whose limit was hit (and then also have
/// `pids.events.local`); before, in the cgroup of the forking process,
/// which in a systemd VE is one it made: there, the VE's whole subtree is
/// summed (bounded; the VE makes cgroups with `mkdir` only, so there are
/// no links to follow).
fn pids_fails(dir: &std::path::Path) -> Option<u64> {
    let own = |d: &std::path::Path| {
        fs::read_to_string(d.join("pids.events"))
            .ok()
            .and_then(|t| keyed(&t, "max"))
    };
    if dir.join("pids.events.local").exists() {
        return own(dir);
    }
    Some(own(dir)? + sum_below(dir, own))
}

/// `own` summed over the cgroups below `dir` (not `dir` itself), at most
/// the v2 subtree bound of them; one that cannot be read counts 0.
pub fn sum_below(dir: &std::path::Path, own: impl Fn(&std::path::Path) -> Option<u64>) -> u64 {
    let mut total = 0;
    let mut todo = vec![dir.to_path_buf()];
    let mut seen = 0;
    while let Some(d) = todo.pop() {
        let Ok(entries) = fs::read_dir(&d) else {
            continue;
        };
        for e in entries.flatten() {
            if seen >= MAX_SUBTREE {
                return total;
            }
            if e.file_type().is_ok_and(|t| t.is_dir()) {
                seen += 1;
                total += own(&e.path()).unwrap_or(0);
                todo.push(e.path());
            }
        }
    }
    total
}

/// A v1 memory counter family: `PREFIX.usage_in_bytes`,
/// `.max_usage_in_bytes`, `.limit_in_bytes`, `.failcnt`.
fn v1_counter(n: &dyn Fn(&str) -> Option<u64>, prefix: &str) -> Counter {
    Counter {
        held: n(&format!("{prefix}.usage_in_bytes")),
        peak: n(&format!("{prefix}.max_usage_in_bytes")),
        limit: n(&format!("{prefix}.limit_in_bytes")),
        fails: n(&format!("{prefix}.failcnt")),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn numbers_and_no_limits() {
        assert_eq!(number("4096\n"), Some(4096));
        assert_eq!(number("max\n"), None);
        assert_eq!(number("-1"), None);
        assert_eq!(
            number("9223372036854771712"),
            None,
            "v1's page-rounded LONG_MAX"
        );
        assert_eq!(number("junk"), None);
    }

    #[test]
    fn keyed_files() {
        let events = "low 0\nhigh 0\nmax 17\noom 2\noom_kill 2\noom_group_kill 0\n";
        assert_eq!(keyed(events, "max"), Some(17));
        assert_eq!(keyed(events, "oom_kill"), Some(2));
        assert_eq!(keyed(events, "oom"), Some(2), "a key, not a prefix");
        assert_eq!(keyed(events, "missing"), None);
        let oom_control = "oom_kill_disable 0\nunder_oom 0\noom_kill 3\n";
        assert_eq!(keyed(oom_control, "oom_kill"), Some(3));
    }

    #[test]
    fn io_stat_sums_devices() {
        let text = "254:0 rbytes=1024 wbytes=4096 rios=1 wios=2 dbytes=0 dios=0\n7:0 rbytes=1 wbytes=2 rios=3 wios=4 dbytes=0 dios=0\n";
        assert_eq!(
            parse_io_stat(text),
            IoUsage {
                read_bytes: 1025,
                write_bytes: 4098,
                reads: 4,
                writes: 6
            }
        );
    }

    #[test]
    fn refused_forks_are_summed_over_the_subtree_on_older_kernels() {
        let d = tempfile::tempdir().expect("tempdir");
        let root = d.path();
        fs::write(root.join("pids.events"), "max 2\n").expect("write");
        for (sub, n) in [
            ("init.scope", 3),
            ("system.slice", 0),
            ("system.slice/x.service", 5),
        ] {
            fs::create_dir_all(root.join(sub)).expect("mkdir");
            fs::write(root.join(sub).join("pids.events"), format!("max {n}\n")).expect("write");
        }
        assert_eq!(pids_fails(root), Some(10));
        // 6.11 and later: the VE's own count is already the whole story.
        fs::write(root.join("pids.events.local"), "max 0\n").expect("write");
        assert_eq!(pids_fails(root), Some(2));
        assert_eq!(pids_fails(&root.join("missing")), None);
    }

    #[test]
    fn blkio_sums_devices() {
        let text = "254:0 Read 100\n254:0 Write 300\n254:0 Sync 0\n254:0 Total 400\n7:1 Read 5\n7:1 Write 6\nTotal 411\n";
        assert_eq!(parse_blkio(text), (105, 306));
    }
}

//! What an idle VE costs the host, in the things that grow with the number
//! of VEs: superblocks (each registers a shrinker, and every memory cgroup
//! on the host carries bookkeeping for every shrinker: docs/DENSITY.md,
//! "Memory per VE") and the monitor's own pages, whose console backlog
//! stays bounded whatever the VE writes.
#![allow(clippy::expect_used, clippy::unwrap_used)] // test code

mod common;

use std::collections::BTreeSet;
use std::fs;

use common::TestRoot;

/// A mount as a process's mountinfo shows it.
#[derive(Debug)]
struct Mount {
    /// `major:minor` of its superblock.
    dev: String,
    /// The directory of the filesystem it shows.
    root: String,
    at: String,
    /// Its own flags (`ro,nosuid,...`).
    flags: String,
    fstype: String,
}

/// The mounts of a process's mount namespace.
fn mounts(pid: i32) -> Vec<Mount> {
    fs::read_to_string(format!("/proc/{pid}/mountinfo"))
        .expect("mountinfo")
        .lines()
        .filter_map(|l| {
            let f: Vec<&str> = l.split_whitespace().collect();
            let sep = f.iter().position(|x| *x == "-")?;
            Some(Mount {
                dev: f[2].to_string(),
                root: f[3].to_string(),
                at: f[4].to_string(),
                flags: f[5].to_string(),
                fstype: f.get(sep + 1)?.to_string(),
            })
        })
        .collect()
}

fn smaps_rollup(pid: i32, key: &str) -> u64 {
    fs::read_to_string(format!("/proc/{pid}/smaps_rollup"))
        .expect("smaps_rollup")
        .lines()
        .find_map(|l| {
            l.strip_prefix(key)?
                .strip_prefix(':')?
                .trim()
                .strip_suffix("kB")?
                .trim()
                .parse()
                .ok()
        })
        .expect("field in smaps_rollup")
}

#[test]
fn a_ve_makes_few_superblocks() {
    let root = TestRoot::new("density-sb");
    root.start_busybox("101", &[]);
    let host: BTreeSet<String> = mounts(std::process::id() as i32)
        .into_iter()
        .map(|m| m.dev)
        .collect();
    let ve = mounts(root.init_pid("101"));
    let own: BTreeSet<&str> = ve
        .iter()
        .filter(|m| !host.contains(&m.dev))
        .map(|m| m.dev.as_str())
        .collect();
    // The root (overlay), /proc, /sys, /dev/pts, and one tmpfs for the
    // rest (/dev, /dev/shm, /run, the covers of host hardware, and on a
    // pure cgroup v1 host /sys/fs/cgroup): cgroup mounts share the host's
    // superblocks. (The mqueue of the VE's IPC namespace, mounted nowhere,
    // is the sixth.)
    assert!(
        own.len() <= 5,
        "a VE makes {} superblocks, at most 5 expected: {ve:#?}",
        own.len()
    );
    let tmpfs: Vec<&Mount> = ve.iter().filter(|m| m.fstype == "tmpfs").collect();
    let devs: BTreeSet<&str> = tmpfs.iter().map(|m| m.dev.as_str()).collect();
    assert_eq!(devs.len(), 1, "one tmpfs for every place: {tmpfs:#?}");
    // Each place is its own directory of it, with its own flags.
    let place = |at: &str| {
        tmpfs
            .iter()
            .find(|m| m.at == at)
            .unwrap_or_else(|| panic!("{at} is a place of the VE's tmpfs: {tmpfs:#?}"))
    };
    for (at, dir, flags) in [
        ("/dev", "/dev", "rw,nosuid,noexec"),
        ("/dev/shm", "/shm", "rw,nosuid,nodev"),
        ("/run", "/run", "rw,nosuid,nodev"),
        ("/proc/acpi", "/hide", "ro,nosuid,nodev,noexec"),
        ("/sys/firmware", "/hide", "ro,nosuid,nodev,noexec"),
    ] {
        let m = place(at);
        assert_eq!(m.root, dir, "{at} shows the tmpfs's {dir}");
        assert!(m.flags.starts_with(flags), "{at}: {} not {flags}", m.flags);
    }
    // The covers of host hardware are empty and read-only; /dev/shm is
    // writable by all, sticky; a place's `..` leads where its mount point
    // is, not into the tmpfs; nothing links across places.
    let hidden: Vec<&&Mount> = tmpfs.iter().filter(|m| m.root == "/hide").collect();
    for m in &hidden {
        let out = root.sh(
            "101",
            &format!(
                "ls -A {at} | wc -l; touch {at}/x 2>/dev/null && echo WRITABLE; true",
                at = m.at
            ),
        );
        assert_eq!(out.trim(), "0", "{} is empty and read-only", m.at);
    }
    let out = root.sh(
        "101",
        "stat -c %a /dev/shm; ls -A /run/..; echo x > /dev/shm/f; \
         ln /dev/shm/f /run/f 2>/dev/null || echo NOLINK; rm /dev/shm/f; \
         ls -di /dev/shm/.. /dev",
    );
    let lines: Vec<&str> = out.lines().collect();
    assert_eq!(lines.first().copied(), Some("1777"), "/dev/shm: {out}");
    assert!(out.contains("bin"), "/run/.. is the VE's root: {out}");
    assert!(out.contains("NOLINK"), "no hard link across places: {out}");
    let inodes: Vec<&str> = lines
        .iter()
        .rev()
        .take(2)
        .filter_map(|l| l.split_whitespace().next())
        .collect();
    assert_eq!(inodes.len(), 2, "{out}");
    assert_eq!(inodes[0], inodes[1], "/dev/shm/.. is /dev: {out}");
    root.finish();
}

#[test]
fn the_monitor_stays_small_and_its_backlog_bounded() {
    let root = TestRoot::new("density-mon");
    root.start_busybox("101", &[]);
    let mon = root.monitor_pid("101");
    let threads = fs::read_to_string(format!("/proc/{mon}/status"))
        .expect("status")
        .lines()
        .find(|l| l.starts_with("Threads:"))
        .map(|l| l.split_whitespace().nth(1).unwrap_or("").to_string());
    assert_eq!(threads.as_deref(), Some("1"), "the monitor has one thread");
    // Its anonymous pages (heap, stack, written data): Private_Dirty would
    // also count the program's own pages while a fresh build of it is
    // still dirty in the page cache.
    let before = smaps_rollup(mon, "Anonymous");
    assert!(
        before <= 24,
        "an idle monitor keeps {before} KiB of anonymous pages (12 expected: \
         a page each of data, bss and stack)"
    );
    // No C library and no allocator: no heap, nothing mapped but the
    // program, its stack and the kernel's vDSO.
    let maps = fs::read_to_string(format!("/proc/{mon}/maps")).expect("maps");
    assert!(
        !maps.contains("[heap]") && !maps.contains(".so"),
        "the monitor maps a heap or a library:\n{maps}"
    );
    // 96 KiB on the console (the monitor takes 64 KiB/s of it): the
    // backlog keeps the last 16 KiB and the monitor grows by no more.
    root.sh(
        "101",
        "head -c 98304 /dev/zero | tr '\\0' x > /dev/console & sleep 3; kill $! 2>/dev/null; true",
    );
    let after = smaps_rollup(mon, "Anonymous");
    assert!(
        after <= before + 16,
        "the monitor grew from {before} to {after} KiB with a full backlog"
    );
    root.finish();
}

/// A VE that writes its console a byte at a time wakes its monitor at
/// most `CONSOLE_READS_PER_SEC` (100) times a second: the monitor's CPU is
/// charged to no VE (hostile review s5, finding 1: 200,000 wake-ups in
/// 5 s before).
#[test]
fn a_console_written_a_byte_at_a_time_wakes_the_monitor_boundedly() {
    let root = TestRoot::new("density-wake");
    root.start_busybox("101", &[]);
    let mon = root.monitor_pid("101");
    let switches = || {
        fs::read_to_string(format!("/proc/{mon}/status"))
            .expect("status")
            .lines()
            .find_map(|l| l.strip_prefix("voluntary_ctxt_switches:"))
            .and_then(|v| v.trim().parse::<u64>().ok())
            .expect("voluntary_ctxt_switches")
    };
    let before = switches();
    let t = std::time::Instant::now();
    root.sh(
        "101",
        "timeout 3 sh -c 'while :; do echo -n x; done > /dev/console'; true",
    );
    let secs = t.elapsed().as_secs() + 1;
    let woke = switches() - before;
    assert!(
        woke <= 100 * secs + 50,
        "the monitor woke {woke} times in about {secs} s of one-byte console writes"
    );
    // It still took the console's bytes: its backlog ends with them.
    let backlog = console_backlog(&root, "101");
    assert!(
        backlog.ends_with(b"xxxxxxxx"),
        "backlog ends: {:?}",
        String::from_utf8_lossy(&backlog[backlog.len().saturating_sub(40)..])
    );
    root.finish();
}

/// The backlog the monitor sends a `kennel console` client (after "OK"
/// and its length; the console's descriptor, sent alongside, is dropped
/// by a plain read).
fn console_backlog(root: &TestRoot, id: &str) -> Vec<u8> {
    use std::io::Read;
    let sock = root.dir.join("run/ve").join(id).join("monitor.sock");
    let mut conn = std::os::unix::net::UnixStream::connect(&sock).expect("connect");
    let mut hello = [0u8; 6];
    conn.read_exact(&mut hello).expect("hello");
    assert_eq!(&hello[..2], b"OK");
    let len = u32::from_le_bytes([hello[2], hello[3], hello[4], hello[5]]) as usize;
    let mut backlog = vec![0u8; len];
    conn.read_exact(&mut backlog).expect("backlog");
    backlog
}

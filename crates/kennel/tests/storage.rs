//! Storage end to end (issue 9): each VE's own disk in the pool, its
//! quota, growing and shrinking it, snapshots, backups and restores,
//! clones, reinstalls, renames, and what a storage command killed at any
//! moment leaves behind.
#![allow(clippy::expect_used, clippy::unwrap_used)] // test code: a failed expectation is a failed test

mod common;

use std::collections::BTreeSet;
use std::fs;
use std::os::unix::fs::MetadataExt;
use std::path::Path;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use common::{output_within, secs, TestRoot, KENNEL};
use serde_json::Value;

const MIB: u64 = 1 << 20;

/// `df -k /` or `df -i /` inside VE `id`: (total, used, available), in
/// KiB or inodes.
fn df(root: &TestRoot, id: &str, flag: &str) -> (u64, u64, u64) {
    let out = root.sh(id, &format!("df {flag} / | tail -n 1"));
    let f: Vec<u64> = out
        .split_whitespace()
        .skip(1)
        .take(3)
        .map(|w| w.parse().expect("df number"))
        .collect();
    assert_eq!(f.len(), 3, "df {flag}: {out}");
    (f[0], f[1], f[2])
}

/// Asserts that a disk of `bytes` shows as about that much in `df -k`
/// (ext4 keeps a few percent for itself).
fn assert_df_size(root: &TestRoot, id: &str, bytes: u64) {
    let (total, _, _) = df(root, id, "-k");
    let kib = bytes / 1024;
    assert!(
        total <= kib && total >= kib * 85 / 100,
        "VE {id}: df shows {total}K for a disk of {kib}K"
    );
}

/// Free bytes on the filesystem of the state root.
fn host_free(root: &TestRoot) -> u64 {
    let s = rustix::fs::statvfs(&root.dir).expect("statvfs");
    s.f_bavail * s.f_frsize
}

/// Bytes the pool's image takes on the host.
fn pool_allocated(root: &TestRoot) -> u64 {
    fs::metadata(root.dir.join("lib/pool.img")).map_or(0, |m| m.blocks() * 512)
}

/// Runs kennel with `args`; returns (exit code, stdout, stderr).
fn run3(root: &TestRoot, args: &[&str]) -> (Option<i32>, String, String) {
    let out = root.run(args);
    (
        out.status.code(),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

/// Asserts kennel `args` fails (any non-zero status) with a one-line
/// error; returns it.
fn fails_any(root: &TestRoot, args: &[&str]) -> String {
    let (code, _, err) = run3(root, args);
    assert!(
        code.is_some_and(|c| c != 0),
        "kennel {args:?} must fail: {code:?} {err}"
    );
    let lines: Vec<&str> = err.lines().filter(|l| !l.starts_with("==> ")).collect();
    assert!(
        lines.len() == 1 && lines[0].starts_with("kennel: "),
        "kennel {args:?}: one error line expected: {err:?}"
    );
    err
}

fn config_value(root: &TestRoot, id: &str) -> Value {
    root.config(id)
}

fn ve_ids(root: &TestRoot) -> Vec<String> {
    let v: Value =
        serde_json::from_str(&root.ok(&["list", "--all", "--json", "-o", "id"])).expect("json");
    v.as_array()
        .expect("array")
        .iter()
        .map(|e| e["id"].as_str().expect("id").to_string())
        .collect()
}

fn list_field(root: &TestRoot, id: &str, field: &str) -> Value {
    let v: Value =
        serde_json::from_str(&root.ok(&["list", "--all", "--json", "-o", &format!("id,{field}")]))
            .expect("json");
    v.as_array()
        .expect("array")
        .iter()
        .find(|e| e["id"] == id)
        .map(|e| e[field].clone())
        .unwrap_or_else(|| panic!("VE {id} not listed"))
}

/// Names in directory `dir` (hidden ones too).
fn entries(dir: &Path) -> BTreeSet<String> {
    fs::read_dir(dir)
        .map(|rd| {
            rd.flatten()
                .map(|e| e.file_name().to_string_lossy().into_owned())
                .collect()
        })
        .unwrap_or_default()
}

/// Mount points at or below `dir`.
fn mounts_under(dir: &Path) -> Vec<String> {
    let d = dir.to_string_lossy().to_string();
    fs::read_to_string("/proc/self/mountinfo")
        .unwrap_or_default()
        .lines()
        .filter_map(|l| l.split(' ').nth(4).map(str::to_string))
        .filter(|m| m == &d || m.starts_with(&format!("{d}/")))
        .collect()
}

/// Starts a writer in VE `id` that keeps rewriting a file until
/// [`stop_writer`].
fn start_writer(root: &TestRoot, id: &str) {
    root.sh(
        id,
        "(n=0; while :; do n=$((n+1)); dd if=/dev/zero of=/root/w.tmp bs=64k count=8 2>/dev/null; \
         mv /root/w.tmp /root/w; echo $n > /root/w.count; done) </dev/null >/dev/null 2>&1 & \
         echo $! > /root/writer.pid",
    );
}

fn stop_writer(root: &TestRoot, id: &str) {
    root.sh(id, "kill $(cat /root/writer.pid); rm -f /root/writer.pid");
}

/// The writer's count: it moves while the writer runs.
fn writer_count(root: &TestRoot, id: &str) -> u64 {
    root.sh(id, "cat /root/w.count 2>/dev/null || echo 0")
        .trim()
        .parse()
        .unwrap_or(0)
}

#[test]
fn a_full_disk_stops_the_ve_and_no_one_else() {
    let root = TestRoot::new("stor-fill");
    let t0 = Instant::now();
    root.start_busybox("101", &["--disk", "64M", "--disk-inodes", "2000"]);
    root.start_busybox("102", &["--disk", "64M"]);
    assert_df_size(&root, "101", 64 * MIB);
    let (inodes, iused, _) = df(&root, "101", "-i");
    assert_eq!(inodes, 2000, "df -i shows the VE's inodes");
    let (free0, pool0) = (host_free(&root), pool_allocated(&root));

    // Blocks: dd stops at the disk's end.
    let (code, out, err) = run3(
        &root,
        &[
            "exec",
            "101",
            "--",
            "/bin/sh",
            "-c",
            "dd if=/dev/zero of=/root/big bs=1M count=100",
        ],
    );
    assert_ne!(code, Some(0), "dd past the disk must fail: {out}{err}");
    assert!(err.contains("No space left on device"), "{err}");
    let size: u64 = root
        .sh("101", "stat -c %s /root/big")
        .trim()
        .parse()
        .expect("size");
    assert!(size <= 64 * MIB, "the VE wrote {size} bytes on a 64M disk");
    let (_, _, avail) = df(&root, "101", "-k");
    assert!(avail < 1024, "the full disk has {avail}K available");
    // The host only gave the VE its disk: the pool's image grew by at
    // most the disk, and the host's free space by about as much (other
    // tests write meanwhile: a generous bound).
    let grown = pool_allocated(&root).saturating_sub(pool0);
    assert!(
        grown <= 72 * MIB,
        "the pool image grew {grown} bytes for a 64M disk"
    );
    let dropped = free0.saturating_sub(host_free(&root));
    assert!(
        dropped < 64 * MIB + 512 * MIB,
        "the host lost {dropped} bytes to a 64M disk"
    );
    // The neighbour writes on.
    assert_eq!(
        root.sh("102", "echo hello > /root/n && cat /root/n").trim(),
        "hello"
    );
    root.sh("101", "rm -f /root/big");

    // Inodes: file creation stops at --disk-inodes.
    let (code, out, err) = run3(
        &root,
        &[
            "exec",
            "101",
            "--",
            "/bin/sh",
            "-c",
            "mkdir /root/i; i=0; while [ $i -lt 2500 ]; do touch /root/i/f$i || break; i=$((i+1)); done; echo made $i",
        ],
    );
    assert_eq!(code, Some(0), "{err}");
    let made: u64 = out
        .trim()
        .strip_prefix("made ")
        .and_then(|n| n.parse().ok())
        .expect("count");
    assert!(
        made < 2000 && made + iused + 1 >= 1990,
        "made {made} files with 2000 inodes ({iused} used before)"
    );
    assert!(err.contains("No space left on device"), "{err}");
    let (_, _, ifree) = df(&root, "101", "-i");
    assert_eq!(ifree, 0, "no inode left");
    assert_eq!(
        root.sh("102", "touch /root/m && echo ok").trim(),
        "ok",
        "the neighbour still makes files"
    );
    root.finish();
    eprintln!("fill: {:.1}s", t0.elapsed().as_secs_f64());
}

#[test]
fn the_disk_grows_under_a_writer_and_shrinks_while_stopped() {
    let root = TestRoot::new("stor-resize");
    let t0 = Instant::now();
    root.start_busybox("101", &["--disk", "64M"]);
    start_writer(&root, "101");
    assert!(
        common::wait_for(secs(5), || writer_count(&root, "101") > 0),
        "writer runs"
    );
    let (code, _, err) = run3(&root, &["set", "101", "--disk", "128M"]);
    assert_eq!(code, Some(0), "{err}");
    let (total, _, _) = df(&root, "101", "-k");
    let online = total > 100 * 1024;
    assert!(
        online || err.contains("next start"),
        "either the disk grew at once ({total}K) or the note says when: {err}"
    );
    assert_eq!(
        config_value(&root, "101")["storage"]["disk_bytes"],
        128 * MIB
    );
    let c = writer_count(&root, "101");
    assert!(
        common::wait_for(secs(5), || writer_count(&root, "101") > c),
        "the writer carries on"
    );
    // Shrinking a running VE is refused and changes nothing.
    root.fails(&["set", "101", "--disk", "100M"], 6);
    assert_eq!(
        config_value(&root, "101")["storage"]["disk_bytes"],
        128 * MIB
    );
    stop_writer(&root, "101");
    root.ok(&["restart", "101"]);
    assert_df_size(&root, "101", 128 * MIB);

    // 40M of data: shrinking below it is refused, naming the least size.
    let sum = root.sh(
        "101",
        "rm -f /root/w /root/w.count; dd if=/dev/urandom of=/root/data bs=1M count=40 2>/dev/null; md5sum /root/data",
    );
    root.ok(&["stop", "101"]);
    let err = root.fails(&["set", "101", "--disk", "40M"], 2);
    let least = err
        .split("shrink to ")
        .nth(1)
        .and_then(|s| s.split_whitespace().next())
        .unwrap_or_else(|| panic!("the error names the least size: {err}"))
        .to_string();
    assert_eq!(
        config_value(&root, "101")["storage"]["disk_bytes"],
        128 * MIB,
        "a refused shrink changes nothing"
    );
    root.ok(&["start", "101"]);
    assert_eq!(root.sh("101", "md5sum /root/data"), sum, "data intact");
    assert_df_size(&root, "101", 128 * MIB);
    root.ok(&["stop", "101"]);
    // The size the error named fits.
    root.ok(&["set", "101", "--disk", &least]);
    let bytes = config_value(&root, "101")["storage"]["disk_bytes"]
        .as_u64()
        .expect("disk_bytes");
    assert!(bytes < 128 * MIB && bytes > 40 * MIB, "{bytes}");
    root.ok(&["start", "101"]);
    assert_df_size(&root, "101", bytes);
    assert_eq!(root.sh("101", "md5sum /root/data"), sum, "data intact");
    root.finish();
    eprintln!("resize: {:.1}s", t0.elapsed().as_secs_f64());
}

/// A process that holds a directory of a stopped VE (its working
/// directory was in `/proc/PID/root`), killed when dropped.
struct Holder(std::process::Child);

impl Drop for Holder {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// Something on the host still holds a stopped VE's files (a shell whose
/// directory is in /proc/PID/root), so the kernel still has the VE's ext4:
/// no offline tool may touch the image then (hostile review: e2fsck and
/// resize2fs on a live filesystem corrupted it). A pending grow waits for
/// a later start, a shrink and a copy are refused (busy, exit 11), and the
/// disk is consistent afterwards.
#[test]
fn a_disk_still_held_on_the_host_is_never_worked_on_offline() {
    let root = TestRoot::new("stor-held");
    root.start_busybox("101", &["--disk", "64M"]);
    root.sh("101", "echo kept > /root/f");
    let init = root.init_pid("101");
    let holder = Holder(
        Command::new("sleep")
            .arg("600")
            .current_dir(format!("/proc/{init}/root/root"))
            .spawn()
            .expect("spawn the holder"),
    );
    root.ok(&["stop", "101"]);
    // Stopped: the grow waits for the next start either way.
    root.ok(&["set", "101", "--disk", "128M"]);
    for args in [
        &["set", "101", "--disk", "48M"][..],
        &["snapshot", "create", "101", "s1"],
        &["backup", "101", "-"],
    ] {
        let err = root.fails(args, 11);
        assert!(
            err.contains("still in use by the kernel"),
            "{args:?}: {err}"
        );
    }
    assert_eq!(
        config_value(&root, "101")["storage"]["disk_bytes"],
        128 * MIB,
        "the refused shrink changed nothing"
    );
    // The start gets the kernel's filesystem back, unresized.
    root.ok(&["start", "101"]);
    assert_eq!(root.sh("101", "cat /root/f").trim(), "kept");
    assert_df_size(&root, "101", 64 * MIB);
    root.sh("101", "echo more > /root/g");
    root.ok(&["stop", "101"]);
    drop(holder);
    // Nothing holds it now: the next start grows it, and the image is
    // sound.
    root.ok(&["start", "101"]);
    assert_df_size(&root, "101", 128 * MIB);
    assert_eq!(root.sh("101", "cat /root/f /root/g"), "kept\nmore\n");
    root.ok(&["stop", "101"]);
    let uuid = root.config("101")["uuid"]
        .as_str()
        .expect("uuid")
        .to_string();
    let image = root.dir.join("lib/pool").join(uuid).join("disk.img");
    assert!(
        common::wait_for(secs(5), || common::loop_devices_under(
            &image.to_string_lossy()
        )
        .is_empty()),
        "the disk's loop device goes after the stop"
    );
    let fsck = Command::new("e2fsck")
        .args(["-f", "-n"])
        .arg(&image)
        .output()
        .expect("e2fsck");
    assert!(
        fsck.status.success(),
        "e2fsck: {}{}",
        String::from_utf8_lossy(&fsck.stdout),
        String::from_utf8_lossy(&fsck.stderr)
    );
    root.finish();
}

#[test]
fn snapshots_are_of_one_moment_and_of_one_ve() {
    let root = TestRoot::new("stor-snap");
    let t0 = Instant::now();
    root.start_busybox("101", &["--disk", "64M"]);
    root.start_busybox("102", &["--disk", "64M"]);
    root.sh("102", "echo mine > /root/only102");
    start_writer(&root, "101");
    root.sh("101", "echo before > /root/marker");
    let out = root.ok(&["snapshot", "create", "101", "s1"]);
    let frozen: f64 = out
        .split("frozen ")
        .nth(1)
        .and_then(|s| s.split_whitespace().next())
        .and_then(|n| n.parse().ok())
        .unwrap_or_else(|| panic!("the frozen time is reported: {out}"));
    assert!(frozen > 0.0 && frozen < 5000.0, "{out}");
    root.sh("101", "echo after > /root/marker; echo new > /root/new");
    let c = writer_count(&root, "101");
    assert!(
        common::wait_for(secs(5), || writer_count(&root, "101") > c),
        "the VE runs on after its snapshot"
    );

    let list: Value =
        serde_json::from_str(&root.ok(&["snapshot", "list", "101", "--json"])).expect("json");
    let snaps = list.as_array().expect("array");
    assert_eq!(snaps.len(), 1, "{list}");
    assert_eq!(snaps[0]["name"], "s1");
    assert_eq!(snaps[0]["size"], 64 * MIB);
    assert!(snaps[0]["frozen_ms"].as_f64().is_some(), "{list}");

    // Mounted: the old tree, read-only.
    let mnt = root.dir.join("snapmnt");
    fs::create_dir(&mnt).expect("mkdir");
    root.ok(&["snapshot", "mount", "101", "s1", mnt.to_str().unwrap()]);
    assert_eq!(
        fs::read_to_string(mnt.join("root/marker")).expect("marker"),
        "before\n"
    );
    assert!(!mnt.join("root/new").exists());
    assert!(mnt.join("bin/busybox").exists(), "the template's files too");
    let w = fs::write(mnt.join("root/marker"), "x");
    assert_eq!(
        w.as_ref().err().and_then(|e| e.raw_os_error()),
        Some(30),
        "writing fails with EROFS: {w:?}"
    );
    assert!(fs::write(mnt.join("root/other"), "x").is_err());
    // Not while it is mounted.
    root.fails(&["snapshot", "rollback", "101", "s1"], 2);
    root.fails(&["snapshot", "delete", "101", "s1"], 2);
    root.ok(&["snapshot", "umount", "101", "s1"]);
    assert!(mounts_under(&mnt).is_empty());
    assert!(entries(&mnt).is_empty(), "nothing left on the mount point");
    root.fails(&["snapshot", "umount", "101", "s1"], 2);

    // Bad names and unknown snapshots: refused, nothing changes.
    let vol = root
        .dir
        .join("lib/pool")
        .join(config_value(&root, "101")["uuid"].as_str().unwrap());
    let before = (entries(&vol), entries(&vol.join("snapshots")));
    let long = "a".repeat(65);
    for bad in ["../x", "a/b", "", ".hidden", "x y", "-x", long.as_str()] {
        root.fails(&["snapshot", "create", "101", bad], 2);
        root.fails(&["snapshot", "rollback", "101", bad], 2);
        root.fails(&["snapshot", "delete", "101", bad], 2);
    }
    for args in [
        &["snapshot", "rollback", "101", "nope"][..],
        &["snapshot", "delete", "101", "nope"],
        &["snapshot", "mount", "101", "nope", mnt.to_str().unwrap()],
        &["snapshot", "umount", "101", "nope"],
        &["snapshot", "create", "101", "s1"],
    ] {
        root.fails(args, 2);
    }
    root.fails(&["snapshot", "create", "999", "s9"], 4);
    assert_eq!(
        (entries(&vol), entries(&vol.join("snapshots"))),
        before,
        "refused commands leave the pool as it was"
    );
    assert_eq!(root.status("101")["state"], "running");
    assert_eq!(root.sh("101", "cat /root/marker").trim(), "after");

    // A second VE's snapshot of the same name is its own.
    root.ok(&["snapshot", "create", "102", "s1"]);
    let mnt2 = root.dir.join("snapmnt2");
    fs::create_dir(&mnt2).expect("mkdir");
    root.ok(&["snapshot", "mount", "102", "s1", mnt2.to_str().unwrap()]);
    assert!(mnt2.join("root/only102").exists());
    assert!(!mnt2.join("root/marker").exists());
    assert!(!mnt2.join("root/w.count").exists());
    root.ok(&["snapshot", "umount", "102", "s1"]);

    // Rollback: the files of the snapshot's moment; the VE runs again.
    stop_writer(&root, "101");
    root.ok(&["snapshot", "rollback", "101", "s1"]);
    assert_eq!(root.status("101")["state"], "running");
    assert_eq!(root.sh("101", "cat /root/marker").trim(), "before");
    assert_eq!(
        root.sh("101", "[ -e /root/new ] && echo yes || echo no")
            .trim(),
        "no"
    );
    root.ok(&["snapshot", "delete", "101", "s1"]);
    let list: Value =
        serde_json::from_str(&root.ok(&["snapshot", "list", "101", "--json"])).expect("json");
    assert_eq!(list.as_array().map(Vec::len), Some(0));
    let list: Value =
        serde_json::from_str(&root.ok(&["snapshot", "list", "102", "--json"])).expect("json");
    assert_eq!(list.as_array().map(Vec::len), Some(1), "102's stays");
    root.finish();
    eprintln!("snapshots: {:.1}s", t0.elapsed().as_secs_f64());
}

/// Every path of the VE's tree with its owner, mode, size and links, and
/// the checksum of every regular file (not /proc, /sys, /dev, /run, /tmp,
/// nor what a boot or an exec writes).
const TREE: &str = r#"find / -xdev \( -path /proc -o -path /sys -o -path /dev -o -path /run -o -path /tmp -o -path /var/run -o -path /root/writer.pid \) -prune -o -print | sort | while IFS= read -r p; do
  if [ -d "$p" ] && [ ! -L "$p" ]; then stat -c '%n %u %g %a dir %h' "$p";
  else stat -c '%n %u %g %a %s %h' "$p"; fi
  if [ -f "$p" ] && [ ! -L "$p" ]; then md5sum "$p"; fi
  if [ -L "$p" ]; then echo "$p -> $(readlink "$p")"; fi
done"#;

fn tree(root: &TestRoot, id: &str) -> String {
    root.sh(id, TREE)
}

fn assert_same_tree(a: &str, b: &str, what: &str) {
    if a != b {
        let la: BTreeSet<&str> = a.lines().collect();
        let lb: BTreeSet<&str> = b.lines().collect();
        let only_a: Vec<_> = la.difference(&lb).collect();
        let only_b: Vec<_> = lb.difference(&la).collect();
        panic!("{what}: trees differ\nonly in the original: {only_a:#?}\nonly in the copy: {only_b:#?}");
    }
}

#[test]
fn a_backup_chain_restores_the_same_tree() {
    let root = TestRoot::new("stor-backup");
    let t0 = Instant::now();
    root.start_busybox("101", &["--disk", "128M"]);
    let bk = root.dir.join("backups");
    fs::create_dir(&bk).expect("mkdir");
    let file = |n: &str| bk.join(n).to_string_lossy().into_owned();
    root.sh(
        "101",
        "mkdir -p /data/d1 /home/user/sub; echo one > /data/a; echo keep > /data/keep; \
         ln /data/a /data/a.hard; ln -s a /data/a.sym; ln -s /nonexistent /data/dangling; \
         dd if=/dev/urandom of=/data/sparse bs=4k count=1 seek=2000 2>/dev/null; \
         echo suid > /data/suid; chmod 4755 /data/suid; echo u > /home/user/f; \
         chown -R 1000:1000 /home/user; chown 33:33 /data/d1; chmod 2750 /data/d1; \
         dd if=/dev/urandom of=/data/rand bs=1k count=300 2>/dev/null",
    );
    root.ok(&["backup", "101", &file("full.kbk")]);
    root.sh(
        "101",
        "echo two >> /data/a; rm /data/keep; echo new > /data/new; ln /data/new /data/new.hard; \
         ln -sfn new /data/a.sym; dd if=/dev/urandom of=/data/sparse2 bs=1k count=1 seek=50000 2>/dev/null; \
         chown 1000:100 /data/new; chmod 640 /data/new; echo x > /data/d1/x; chown 33:33 /data/d1/x",
    );
    root.ok(&[
        "backup",
        "101",
        &file("inc1.kbk"),
        "--since",
        &file("full.kbk"),
    ]);
    root.sh(
        "101",
        "rm /data/a.hard; echo three > /data/a; rm -rf /home/user/sub; mkdir /home/user/sub2; \
         echo y > /home/user/sub2/y; chown -R 1000:1000 /home/user/sub2; \
         dd if=/dev/zero of=/data/rand bs=1k count=10 seek=5 conv=notrunc 2>/dev/null; \
         mv /data/suid /data/suid2; chmod 4711 /data/suid2; chmod 600 /data/sparse",
    );
    root.ok(&[
        "backup",
        "101",
        &file("inc2.kbk"),
        "--since",
        &file("inc1.kbk"),
    ]);
    let v = root.ok(&["backup", "verify", &file("full.kbk")]);
    assert!(v.contains("a good full backup"), "{v}");
    for n in ["inc1.kbk", "inc2.kbk"] {
        let v = root.ok(&["backup", "verify", &file(n)]);
        assert!(v.contains("a good incremental backup"), "{v}");
    }

    root.ok(&["restore", &file("inc2.kbk"), "201"]);
    root.ok(&["start", "201"]);
    let orig = tree(&root, "101");
    assert!(orig.contains("/data/suid2 0 0 4711"), "{orig}");
    assert!(orig.contains("/home/user/sub2/y 1000 1000"), "{orig}");
    assert_same_tree(&orig, &tree(&root, "201"), "chain restore");
    // Still sparse.
    let blocks: u64 = root
        .sh("201", "stat -c %b /data/sparse")
        .trim()
        .parse()
        .expect("blocks");
    assert!(blocks * 512 < MIB, "the sparse file takes {blocks} blocks");
    assert_ne!(
        list_field(&root, "101", "uid_base"),
        list_field(&root, "201", "uid_base")
    );
    assert_ne!(
        list_field(&root, "101", "uuid"),
        list_field(&root, "201", "uuid")
    );

    // Through a pipe.
    let st = Command::new("bash")
        .arg("-c")
        .arg(format!(
            "set -o pipefail; {k} --root {r} backup 101 - | {k} --root {r} restore - 301",
            k = KENNEL,
            r = root.dir.display()
        ))
        .env_remove("KENNEL_ROOT")
        .stdout(Stdio::null())
        .status()
        .expect("bash");
    assert!(st.success(), "backup | restore");
    root.ok(&["start", "301"]);
    assert_same_tree(&orig, &tree(&root, "301"), "restore from a pipe");
    let bases: BTreeSet<String> = ["101", "201", "301"]
        .iter()
        .map(|id| list_field(&root, id, "uid_base").to_string())
        .collect();
    assert_eq!(bases.len(), 3, "three id ranges");
    root.finish();
    eprintln!("backups: {:.1}s", t0.elapsed().as_secs_f64());
}

#[test]
fn bad_backups_are_refused_and_leave_nothing() {
    let root = TestRoot::new("stor-badbk");
    let t0 = Instant::now();
    root.start_busybox("101", &["--disk", "64M"]);
    root.sh(
        "101",
        "dd if=/dev/urandom of=/root/rand bs=1k count=2000 2>/dev/null; echo a > /root/a",
    );
    let bk = root.dir.join("backups");
    fs::create_dir_all(bk.join("lonely")).expect("mkdir");
    let file = |n: &str| bk.join(n).to_string_lossy().into_owned();
    root.ok(&["backup", "101", &file("full.kbk")]);
    root.sh("101", "echo b > /root/b");
    root.ok(&[
        "backup",
        "101",
        &file("inc.kbk"),
        "--since",
        &file("full.kbk"),
    ]);
    let good = fs::read(bk.join("full.kbk")).expect("read");
    let mid = good.len() / 2;
    fs::write(bk.join("trunc.kbk"), &good[..mid]).expect("write");
    let mut bad = good.clone();
    bad[mid] ^= 0xff;
    fs::write(bk.join("corrupt.kbk"), &bad).expect("write");
    let junk: Vec<u8> = (0..200_000u32)
        .map(|i| (i.wrapping_mul(2_654_435_761) >> 13) as u8)
        .collect();
    fs::write(bk.join("junk.kbk"), &junk).expect("write");
    fs::write(bk.join("text.kbk"), "hello, not a backup\n").expect("write");
    fs::copy(bk.join("inc.kbk"), bk.join("lonely/inc.kbk")).expect("copy");

    let ves = root.dir.join("lib/ve");
    let pool = root.dir.join("lib/pool");
    let before = (
        entries(&ves),
        entries(&pool),
        mounts_under(&root.dir),
        common::loop_devices_under(&root.dir.to_string_lossy()),
        entries(&root.dir.join("run/scratch")),
    );
    for n in [
        "trunc.kbk",
        "corrupt.kbk",
        "junk.kbk",
        "text.kbk",
        "lonely/inc.kbk",
        "missing.kbk",
    ] {
        fails_any(&root, &["backup", "verify", &file(n)]);
        fails_any(&root, &["restore", &file(n), "401"]);
        let after = (
            entries(&ves),
            entries(&pool),
            mounts_under(&root.dir),
            common::loop_devices_under(&root.dir.to_string_lossy()),
            entries(&root.dir.join("run/scratch")),
        );
        assert_eq!(after, before, "{n}: the refused restore left something");
        assert_eq!(ve_ids(&root), ["101"]);
        root.fails(&["status", "401"], 4);
    }
    // A truncated backup on standard input too.
    let st = Command::new("bash")
        .arg("-c")
        .arg(format!(
            "{k} --root {r} restore - 401 < {f}",
            k = KENNEL,
            r = root.dir.display(),
            f = file("trunc.kbk")
        ))
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .expect("bash");
    assert!(!st.success());
    assert_eq!(ve_ids(&root), ["101"]);
    assert_eq!(entries(&pool), before.1);

    // A backup never overwrites a file.
    let names = entries(&bk);
    root.fails(&["backup", "101", &file("full.kbk")], 2);
    assert_eq!(fs::read(bk.join("full.kbk")).expect("read"), good);
    assert_eq!(entries(&bk), names, "no temporary file left");
    // The good chain still restores.
    root.ok(&["restore", &file("inc.kbk"), "401"]);
    root.ok(&["start", "401"]);
    assert_eq!(root.sh("401", "cat /root/a /root/b"), "a\nb\n");
    root.finish();
    eprintln!("bad backups: {:.1}s", t0.elapsed().as_secs_f64());
}

#[test]
fn clone_reinstall_and_rename() {
    let root = TestRoot::new("stor-clone");
    let t0 = Instant::now();
    root.start_busybox("101", &["--disk", "64M", "--hostname", "origin"]);
    root.sh(
        "101",
        "echo data > /root/f; mkdir -p /home/u; echo u > /home/u/f; chown -R 1000:1000 /home/u",
    );
    start_writer(&root, "101");
    root.ok(&["set", "101", "--onboot", "yes", "--boot-order", "7"]);
    root.ok(&["clone", "101", "102"]);
    let (a, b) = (config_value(&root, "101"), config_value(&root, "102"));
    assert_ne!(a["uuid"], b["uuid"]);
    // A copy starts with the host only once it is marked; its order stays.
    assert_eq!(a["boot"], serde_json::json!({"onboot": true, "order": 7}));
    assert_eq!(b["boot"], serde_json::json!({"onboot": false, "order": 7}));
    assert_ne!(a["idmap"]["uid_base"], b["idmap"]["uid_base"]);
    assert_eq!(b["hostname"], "102");
    assert!(
        b["network"]["ips"]
            .as_array()
            .is_none_or(|ips| ips.is_empty()),
        "{b}"
    );
    assert_eq!(b["storage"]["disk_bytes"], 64 * MIB);
    root.ok(&["start", "102"]);
    assert_eq!(root.sh("102", "cat /root/f").trim(), "data");
    assert_eq!(
        root.sh("102", "stat -c '%u:%g' /root/f /home/u/f"),
        "0:0\n1000:1000\n"
    );
    assert_eq!(root.sh("102", "hostname").trim(), "102");
    // On the host, the clone's files are its own range's.
    let base = b["idmap"]["uid_base"].as_u64().expect("uid_base");
    let md = root.with_upper("102", |u| fs::metadata(u.join("root/f")).expect("stat"));
    assert_eq!(md.uid() as u64, base);
    // The original runs on.
    let c = writer_count(&root, "101");
    assert!(common::wait_for(secs(5), || writer_count(&root, "101") > c));
    stop_writer(&root, "101");

    // Reinstall, keeping /root.
    root.sh(
        "101",
        "echo keep > /root/keep; echo drop > /etc/dropme; rm /bin/ls",
    );
    root.ok(&["reinstall", "101", "--keep", "/root"]);
    assert_eq!(root.status("101")["state"], "running");
    assert_eq!(root.sh("101", "cat /root/keep /root/f"), "keep\ndata\n");
    assert_eq!(
        root.sh(
            "101",
            "[ -e /etc/dropme ] && echo kept || echo gone; [ -e /home/u ] && echo kept || echo gone; ls / >/dev/null && echo ls"
        ),
        "gone\ngone\nls\n"
    );
    assert_eq!(config_value(&root, "101")["uuid"], a["uuid"]);
    // Without --keep: nothing of the VE's own.
    root.ok(&["reinstall", "102"]);
    assert_eq!(
        root.sh("102", "[ -e /root/f ] && echo kept || echo gone")
            .trim(),
        "gone"
    );

    // Rename: a stopped VE only, never onto another.
    root.fails(&["rename", "101", "105"], 6);
    root.ok(&["stop", "101"]);
    root.fails(&["rename", "101", "102"], 5);
    root.fails(&["rename", "101", "bad/id"], 2);
    root.ok(&["rename", "101", "105"]);
    assert_eq!(ve_ids(&root), ["102", "105"]);
    root.fails(&["status", "101"], 4);
    root.ok(&["start", "105"]);
    assert_eq!(root.sh("105", "cat /root/keep").trim(), "keep");
    assert_eq!(config_value(&root, "105")["uuid"], a["uuid"]);
    assert_eq!(
        config_value(&root, "105")["boot"],
        a["boot"],
        "a rename keeps it"
    );
    root.finish();
    eprintln!("clone: {:.1}s", t0.elapsed().as_secs_f64());
}

// ---------------------------------------------------------------------
// Crash safety: a storage command SIGKILLed at any moment.

/// Delays (ms) after which the command is killed.
const DELAYS: &[u64] = &[0, 2, 5, 10, 20, 35, 50, 75, 100, 150, 250];

/// Runs kennel `args` and SIGKILLs it (by its PID) after `delay` ms;
/// true if it had ended by then.
fn kill_after(root: &TestRoot, args: &[&str], delay: u64) -> bool {
    let mut child = root
        .cmd()
        .args(args)
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("spawn kennel");
    std::thread::sleep(Duration::from_millis(delay));
    let ended = child.try_wait().expect("try_wait").is_some();
    let _ = child.kill();
    let _ = child.wait();
    ended
}

/// Kennel `args`, given at most `t`; (succeeded, stdout + stderr).
fn within(root: &TestRoot, args: &[&str], t: Duration) -> (bool, String) {
    let (st, out, err) = output_within(root.cmd().args(args), t);
    (
        st.is_some_and(|s| s.success()),
        format!(
            "{}{out}{err}",
            if st.is_none() { "(timed out) " } else { "" }
        ),
    )
}

/// The ordinary commands after a kill: each must work, and the VE must
/// run unfrozen with a writable disk. Problems are collected (and the VE
/// thawed by hand so the next round means something).
fn after_kill(root: &TestRoot, id: &str, what: &str, problems: &mut Vec<String>) {
    let t = secs(12);
    let (ok, out) = within(root, &["list", "--all"], t);
    if !ok || !out.contains(id) {
        problems.push(format!("{what}: `kennel list --all` failed: {out}"));
    }
    let (ok, out) = within(root, &["snapshot", "list", id], t);
    if !ok {
        problems.push(format!("{what}: `kennel snapshot list {id}` failed: {out}"));
    }
    let (ok, out) = within(
        root,
        &[
            "exec",
            id,
            "--",
            "/bin/sh",
            "-c",
            "echo alive > /root/alive && cat /root/alive",
        ],
        t,
    );
    if !ok || out.trim() != "alive" {
        problems.push(format!(
            "{what}: `kennel exec {id}` (a write to its disk) did not answer: {out} [marker left: {}]",
            root.dir.join("run/ve").join(id).join("freezing").exists()
        ));
        force_thaw(root, id);
        let (ok, out) = within(root, &["exec", id, "--", "true"], t);
        assert!(
            ok,
            "{what}: VE {id} still stuck after a thaw by hand: {out}"
        );
    }
    let (ok, out) = within(root, &["status", id, "--json"], t);
    if !ok || !out.contains("\"running\"") {
        problems.push(format!("{what}: VE {id} does not run: {out}"));
    }
}

/// Thaws VE `id`'s disk and cgroup by hand (what Kennel should have
/// done), so that the test can go on and clean up.
fn force_thaw(root: &TestRoot, id: &str) {
    let disk = common::DiskView::of_running(root, id);
    let _ = Command::new("fsfreeze")
        .arg("-u")
        .arg(&disk.at)
        .stderr(Stdio::null())
        .status();
    for d in root.cgroup_dirs(id) {
        let _ = fs::write(d.join("cgroup.freeze"), "0");
        let _ = fs::write(d.join("freezer.state"), "THAWED");
    }
}

/// Unmounts what killed commands left mounted below the root's scratch
/// directory (what Kennel should have done), so that the root can go.
fn unmount_scratch(root: &TestRoot) -> Vec<String> {
    let mut left = mounts_under(&root.dir.join("run/scratch"));
    left.sort_by_key(|m| std::cmp::Reverse(m.len()));
    for m in &left {
        let _ = Command::new("umount").arg(m).status();
    }
    left
}

/// What a killed command may leave that the next ordinary command of the
/// same kind must sweep: hidden entries in the VE directory and pool
/// volumes no VE has.
fn leftovers(root: &TestRoot) -> Vec<String> {
    let mut out = Vec::new();
    // Builds and deletions are staged beside the VEs (lib/ve-staging).
    for dir in ["lib/ve", "lib/ve-staging"] {
        for e in entries(&root.dir.join(dir)) {
            if e.starts_with('.') {
                out.push(format!("{dir}/{e}"));
            }
        }
    }
    let uuids: BTreeSet<String> = ve_ids(root)
        .iter()
        .map(|id| config_value(root, id)["uuid"].as_str().unwrap().to_string())
        .collect();
    for e in entries(&root.dir.join("lib/pool")) {
        // `.golden` holds the empty disks new ones are cloned from.
        if !uuids.contains(&e) && e != ".golden" {
            out.push(format!("lib/pool/{e}"));
        }
    }
    for u in &uuids {
        for e in entries(&root.dir.join("lib/pool").join(u)) {
            // `disk.img.loop` remembers the image's loop device.
            if e != "disk.img" && e != "disk.img.loop" && e != "snapshots" {
                out.push(format!("lib/pool/{u}/{e}"));
            }
        }
    }
    out
}

/// Ends a crash test: what the next ordinary command did not sweep is a
/// problem (a staged VE, a disk no VE has); a scratch mount it left is
/// noted, and must be gone once every VE is destroyed. Then the host is
/// cleaned up (finish checks it) and the problems fail the test.
fn finish_crash_test(root: TestRoot, mut problems: Vec<String>, t0: Instant, name: &str) {
    for l in leftovers(&root) {
        problems.push(format!("left after the next ordinary command: {l}"));
    }
    for m in mounts_under(&root.dir.join("run/scratch")) {
        eprintln!("note ({name}): a scratch mount outlives the next ordinary command: {m}");
    }
    for id in ve_ids(&root) {
        let (ok, out) = within(&root, &["destroy", "--force", &id], secs(60));
        if !ok {
            problems.push(format!("destroy --force {id} failed: {out}"));
        }
    }
    for m in unmount_scratch(&root) {
        problems.push(format!(
            "scratch mount left after every VE was destroyed (unmounted by the test): {m}"
        ));
    }
    root.finish();
    eprintln!("{name}: {:.1}s", t0.elapsed().as_secs_f64());
    assert!(
        problems.is_empty(),
        "{name}: {} problems:\n{}",
        problems.len(),
        problems.join("\n")
    );
}

fn crash_root(name: &str) -> TestRoot {
    let root = TestRoot::new(name);
    root.start_busybox("101", &["--disk", "64M"]);
    root.sh(
        "101",
        "dd if=/dev/urandom of=/root/rand bs=1k count=3000 2>/dev/null; echo a > /root/a",
    );
    start_writer(&root, "101");
    root
}

#[test]
fn a_killed_snapshot_leaves_the_ve_running() {
    let root = crash_root("stor-crash-snap");
    let t0 = Instant::now();
    let mut problems = Vec::new();
    for &d in DELAYS {
        let name = format!("k{d}");
        let ended = kill_after(&root, &["snapshot", "create", "101", &name], d);
        after_kill(
            &root,
            "101",
            &format!("snapshot create killed at {d} ms (ended: {ended})"),
            &mut problems,
        );
        // A snapshot is listed whole or not at all.
        let (ok, out) = within(&root, &["snapshot", "list", "101", "--json"], secs(12));
        if ok && out.contains(&format!("\"{name}\"")) {
            let dir = root.dir.join(format!("m{d}"));
            fs::create_dir(&dir).expect("mkdir");
            let (ok, out) = within(
                &root,
                &["snapshot", "mount", "101", &name, dir.to_str().unwrap()],
                secs(12),
            );
            if !ok || !dir.join("root/a").exists() {
                problems.push(format!("snapshot {name} listed but not mountable: {out}"));
            }
            let _ = within(&root, &["snapshot", "umount", "101", &name], secs(12));
        }
    }
    // The next ordinary snapshot works, and the pool holds whole ones.
    let (ok, out) = within(&root, &["snapshot", "create", "101", "last"], secs(20));
    if !ok {
        problems.push(format!("the next snapshot create failed: {out}"));
    }
    after_kill(&root, "101", "after the last snapshot", &mut problems);
    stop_writer(&root, "101");
    finish_crash_test(root, problems, t0, "crash snapshot");
}

#[test]
fn a_killed_backup_leaves_the_ve_running() {
    let root = crash_root("stor-crash-backup");
    let t0 = Instant::now();
    let bk = root.dir.join("backups");
    fs::create_dir(&bk).expect("mkdir");
    let mut problems = Vec::new();
    for &d in DELAYS {
        let f = bk.join(format!("k{d}.kbk"));
        let ended = kill_after(&root, &["backup", "101", f.to_str().unwrap()], d);
        after_kill(
            &root,
            "101",
            &format!("backup killed at {d} ms (ended: {ended})"),
            &mut problems,
        );
        // A backup file is there whole or not at all.
        if f.exists() {
            let (ok, out) = within(&root, &["backup", "verify", f.to_str().unwrap()], secs(20));
            if !ok {
                problems.push(format!("{} is there but bad: {out}", f.display()));
            }
        }
        // The next ordinary backup works.
        let g = bk.join(format!("after{d}.kbk"));
        let (ok, out) = within(&root, &["backup", "101", g.to_str().unwrap()], secs(30));
        if !ok {
            problems.push(format!(
                "backup after one killed at {d} ms failed: {out} [marker: {}]",
                root.dir.join("run/ve/101/freezing").exists()
            ));
            after_kill(
                &root,
                "101",
                &format!("failed backup after {d} ms"),
                &mut problems,
            );
        }
    }
    let temps: Vec<String> = entries(&bk)
        .into_iter()
        .filter(|e| e.starts_with('.'))
        .collect();
    if !temps.is_empty() {
        eprintln!("note: killed backups left temporary files: {temps:?}");
    }
    stop_writer(&root, "101");
    finish_crash_test(root, problems, t0, "crash backup");
}

#[test]
fn a_killed_restore_leaves_nothing() {
    let root = crash_root("stor-crash-restore");
    let t0 = Instant::now();
    stop_writer(&root, "101");
    let f = root.dir.join("full.kbk");
    root.ok(&["backup", "101", f.to_str().unwrap()]);
    let mut problems = Vec::new();
    for (i, &d) in DELAYS.iter().enumerate() {
        let id = format!("{}", 201 + i);
        let ended = kill_after(&root, &["restore", f.to_str().unwrap(), &id], d);
        let what = format!("restore killed at {d} ms (ended: {ended})");
        after_kill(&root, "101", &what, &mut problems);
        // The new VE is whole or not there.
        let (code, _, err) = run3(&root, &["status", &id]);
        match code {
            Some(4) => {}
            Some(0) => {
                let (ok, out) = within(&root, &["start", &id], secs(20));
                let (ok2, out2) = within(&root, &["exec", &id, "--", "cat", "/root/a"], secs(12));
                if !ok || !ok2 || out2.trim() != "a" {
                    problems.push(format!(
                        "{what}: VE {id} is listed but broken: {out} {out2}"
                    ));
                }
                let _ = within(&root, &["destroy", "--force", &id], secs(30));
            }
            _ => problems.push(format!("{what}: status {id}: {code:?} {err}")),
        }
    }
    // The next ordinary restore sweeps what the killed ones left.
    let (ok, out) = within(&root, &["restore", f.to_str().unwrap(), "299"], secs(30));
    if !ok {
        problems.push(format!("the next restore failed: {out}"));
    }
    let (ok, out) = within(&root, &["start", "299"], secs(20));
    if !ok {
        problems.push(format!("the next restore does not start: {out}"));
    }
    finish_crash_test(root, problems, t0, "crash restore");
}

#[test]
fn a_killed_clone_leaves_nothing() {
    let root = crash_root("stor-crash-clone");
    let t0 = Instant::now();
    let mut problems = Vec::new();
    for (i, &d) in DELAYS.iter().enumerate() {
        let id = format!("{}", 201 + i);
        let ended = kill_after(&root, &["clone", "101", &id], d);
        let what = format!("clone killed at {d} ms (ended: {ended})");
        after_kill(&root, "101", &what, &mut problems);
        let (code, _, err) = run3(&root, &["status", &id]);
        match code {
            Some(4) => {}
            Some(0) => {
                let (ok, out) = within(&root, &["start", &id], secs(20));
                let (ok2, out2) = within(
                    &root,
                    &["exec", &id, "--", "stat", "-c", "%u", "/root/a"],
                    secs(12),
                );
                if !ok || !ok2 || out2.trim() != "0" {
                    problems.push(format!(
                        "{what}: VE {id} is listed but broken: {out} {out2}"
                    ));
                }
                let _ = within(&root, &["destroy", "--force", &id], secs(30));
            }
            _ => problems.push(format!("{what}: status {id}: {code:?} {err}")),
        }
    }
    let (ok, out) = within(&root, &["clone", "101", "299"], secs(30));
    if !ok {
        problems.push(format!("the next clone failed: {out}"));
    }
    stop_writer(&root, "101");
    finish_crash_test(root, problems, t0, "crash clone");
}

/// A backup is untrusted input (hostile review 1, 3): a restore brings the
/// VE's files, not its rights: its features, limits and interfaces are the
/// host's defaults unless the operator trusts the backup; a deleted
/// template file stays deleted (review 2: whiteouts); the backup file is
/// for root's eyes only.
#[test]
fn a_restore_takes_the_files_not_the_rights() {
    use std::os::unix::fs::PermissionsExt;
    let root = TestRoot::new("stor-rights");
    root.start_busybox(
        "101",
        &[
            "--disk",
            "96M",
            "--features",
            "tun",
            "--memory",
            "2G",
            "--numproc",
            "900",
        ],
    );
    root.sh("101", "echo mine > /root/f; rm /bin/true");
    let file = root.dir.join("full.kbk");
    let f = file.to_string_lossy().into_owned();
    root.ok(&["backup", "101", &f]);
    let mode = fs::metadata(&file).expect("backup").permissions().mode() & 0o777;
    assert_eq!(mode, 0o600, "a backup holds the tenant's files: root only");
    root.ok(&["restore", &f, "201"]);
    let c = config_value(&root, "201");
    assert!(
        c["features"].as_array().is_none_or(|a| a.is_empty()),
        "no feature comes from a backup: {c}"
    );
    assert_eq!(
        c["resources"]["memory_bytes"],
        1u64 << 30,
        "the host's plan: {c}"
    );
    assert_ne!(c["resources"]["numproc"], 900, "the host's plan: {c}");
    assert_eq!(
        c["storage"]["disk_bytes"],
        96u64 << 20,
        "the disk's size comes along"
    );
    root.ok(&["start", "201"]);
    assert_eq!(root.sh("201", "cat /root/f").trim(), "mine");
    assert_eq!(
        root.sh("201", "test -e /bin/true && echo back || echo gone")
            .trim(),
        "gone",
        "a template file deleted in the VE stays deleted"
    );
    // Addresses are rights too (they route the host's traffic): a VE
    // that was never started, made with one, comes back without it.
    root.ok(&[
        "create",
        "102",
        "--template",
        "busybox",
        "--ip",
        "192.0.2.77",
    ]);
    let f2 = root.dir.join("addr.kbk").to_string_lossy().into_owned();
    root.ok(&["backup", "102", &f2]);
    root.ok(&["restore", &f2, "202"]);
    let c = config_value(&root, "202");
    assert!(
        c["network"]["ips"].as_array().is_none_or(|a| a.is_empty()),
        "no address comes from an untrusted backup: {c}"
    );
    // Trusted on purpose: the backed-up VE's plan and features.
    root.ok(&["restore", &f, "301", "--trust-config"]);
    let c = config_value(&root, "301");
    assert_eq!(c["features"], serde_json::json!(["tun"]), "{c}");
    assert_eq!(c["resources"]["memory_bytes"], 2u64 << 30, "{c}");
    root.finish();
}

/// `--with-template` carries the template to a host that lacks it (here a
/// second state root): the restore makes it first, with the same digest.
#[test]
fn a_backup_with_its_template_restores_where_the_template_is_missing() {
    let a = TestRoot::new("stor-wt-a");
    a.start_busybox("101", &["--disk", "64M"]);
    a.sh("101", "echo moved > /root/f");
    let file = a.dir.join("with-template.kbk");
    let f = file.to_string_lossy().into_owned();
    let plain = a.dir.join("plain.kbk").to_string_lossy().into_owned();
    a.ok(&["backup", "101", &f, "--with-template"]);
    a.ok(&["backup", "101", &plain]);
    a.ok(&["backup", "verify", &f]);
    let b = TestRoot::new("stor-wt-b");
    let err = fails_any(&b, &["restore", &plain, "101"]);
    assert!(err.contains("template 'busybox'"), "{err}");
    // A template is shared by every VE made from it: made from a backup
    // only when the operator trusts it.
    let err = fails_any(&b, &["restore", &f, "101"]);
    assert!(err.contains("--trust-config"), "{err}");
    b.ok(&["restore", &f, "101", "--trust-config"]);
    b.ok(&["start", "101"]);
    assert_eq!(b.sh("101", "cat /root/f").trim(), "moved");
    let digest = |r: &TestRoot| {
        fs::read_to_string(r.dir.join("lib/templates/busybox/template.toml"))
            .expect("template.toml")
            .lines()
            .find(|l| l.starts_with("digest"))
            .map(str::to_string)
    };
    assert_eq!(digest(&a), digest(&b), "the same template");
    b.finish();
    a.finish();
}

/// A snapshot of a running Debian VE under a write load is of one moment:
/// rolled back, the VE boots, systemd reaches `running`, and the files
/// are those of the snapshot (the marker written before it, not after).
#[test]
fn a_debian_ve_rolls_back_to_a_snapshot_and_boots() {
    let tarball = common::debian_tarball();
    let root = TestRoot::new("stor-debian");
    root.ok(&[
        "template",
        "import",
        "debian-12",
        tarball.to_str().expect("path"),
    ]);
    root.ok(&[
        "create",
        "200",
        "--template",
        "debian-12",
        "--memory",
        "512M",
        "--disk",
        "2G",
    ]);
    root.ok(&["start", "200"]);
    let (state, failed) = root.systemd_state("200");
    assert_eq!(state, "running", "{failed}");
    root.sh(
        "200",
        "echo before > /root/marker; sync; \
         (while true; do dd if=/dev/zero of=/var/tmp/load bs=64k count=64 2>/dev/null; done) \
         >/dev/null 2>&1 &",
    );
    let out = root.ok(&["snapshot", "create", "200", "upgrade"]);
    assert!(out.contains("frozen"), "{out}");
    root.sh("200", "echo after > /root/marker; rm -f /etc/motd");
    root.ok(&["snapshot", "rollback", "200", "upgrade"]);
    let (state, failed) = root.systemd_state("200");
    assert_eq!(
        state, "running",
        "systemd after the rollback; failed units:\n{failed}"
    );
    assert_eq!(root.sh("200", "cat /root/marker").trim(), "before");
    assert!(root.sh("200", "ls /etc").contains("motd"));
    root.finish();
}

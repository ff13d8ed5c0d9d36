//! Shared helpers for Kennel's integration tests: a private state root per
//! test, running the real `kennel` binary, a pty for interactive commands,
//! the Debian template fixture, and the leak check every test ends with.
//!
//! Environment:
//! * `KENNEL_TEST_DIR`: where test roots live (default /var/tmp/kennel-tests;
//!   needs a filesystem with idmapped mounts, e.g. ext4).
//! * `KENNEL_TEST_CACHE`: where the Debian template tarball is kept between
//!   runs (default /var/tmp/kennel-test-cache).
#![allow(dead_code)]
// Test helpers: a failed expectation is a failed test.
#![allow(clippy::expect_used, clippy::unwrap_used)]

pub mod netlab;
pub mod pty;

use std::fs;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::{Duration, Instant};

use serde_json::Value;

pub const KENNEL: &str = env!("CARGO_BIN_EXE_kennel");

static SEQ: AtomicU32 = AtomicU32::new(0);

pub fn test_dir() -> PathBuf {
    std::env::var_os("KENNEL_TEST_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from("/var/tmp/kennel-tests"))
}

pub fn cache_dir() -> PathBuf {
    std::env::var_os("KENNEL_TEST_CACHE")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from("/var/tmp/kennel-test-cache"))
}

/// `secs` seconds, stretched inside the cgroup v2 VM, whose emulated CPU
/// runs several times slower than this host's.
pub fn secs(secs: u64) -> Duration {
    let factor = if std::env::var_os("KP_GUEST").is_some() {
        8
    } else {
        1
    };
    Duration::from_secs(secs * factor)
}

/// True on a pure cgroup v2 host (the cgroup2 VM).
pub fn pure_v2() -> bool {
    fs::read_to_string("/proc/self/mountinfo")
        .map(|m| {
            m.lines()
                .any(|l| l.contains(" /sys/fs/cgroup ") && l.contains(" - cgroup2 "))
        })
        .unwrap_or(false)
}

/// A private Kennel state root for one test.
pub struct TestRoot {
    pub dir: PathBuf,
    /// The network namespace (a name under /run/netns) every `kennel`
    /// command of this root runs in, when the test plays the host there.
    pub netns: Option<String>,
    finished: bool,
}

impl TestRoot {
    pub fn new(name: &str) -> Self {
        let n = SEQ.fetch_add(1, Ordering::SeqCst);
        let dir = test_dir().join(format!("{name}-{}-{n}", std::process::id()));
        let _ = fs::remove_dir_all(&dir);
        fs::create_dir_all(&dir).expect("create test root");
        TestRoot {
            dir,
            netns: None,
            finished: false,
        }
    }

    /// A root whose commands all run in network namespace `netns`.
    pub fn in_netns(name: &str, netns: &str) -> Self {
        let mut r = Self::new(name);
        r.netns = Some(netns.to_string());
        r
    }

    pub fn cmd(&self) -> Command {
        let mut c = match &self.netns {
            Some(ns) => {
                let mut c = Command::new("nsenter");
                c.arg(format!("--net=/run/netns/{ns}"))
                    .arg("--")
                    .arg(KENNEL);
                c
            }
            None => Command::new(KENNEL),
        };
        c.arg("--root")
            .arg(&self.dir)
            .stdin(Stdio::null())
            .env_remove("KENNEL_ROOT")
            .env_remove("KENNEL_LOG");
        c
    }

    pub fn run(&self, args: &[&str]) -> Output {
        self.cmd().args(args).output().expect("run kennel")
    }

    /// Runs and asserts success; returns stdout.
    pub fn ok(&self, args: &[&str]) -> String {
        let out = self.run(args);
        assert!(
            out.status.success(),
            "kennel {args:?} failed ({}):\nstdout: {}\nstderr: {}",
            out.status,
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8_lossy(&out.stdout).into_owned()
    }

    /// Runs and asserts the exit status `code`; returns stderr.
    pub fn fails(&self, args: &[&str], code: i32) -> String {
        let out = self.run(args);
        let err = String::from_utf8_lossy(&out.stderr).into_owned();
        assert_eq!(
            out.status.code(),
            Some(code),
            "kennel {args:?}: expected exit {code}, got {}; stderr: {err}",
            out.status
        );
        let errors: Vec<&str> = err.lines().filter(|l| !l.starts_with("==> ")).collect();
        assert_eq!(
            errors.len(),
            1,
            "errors are one line (besides progress): {err:?}"
        );
        assert!(errors[0].starts_with("kennel: "), "{err:?}");
        err
    }

    /// Makes the busybox template once for this root.
    pub fn busybox(&self) {
        if !self.dir.join("lib/templates/busybox").exists() {
            self.ok(&["template", "create", "busybox"]);
        }
    }

    /// Creates a busybox VE (`extra`: more `create` arguments).
    pub fn create_busybox(&self, id: &str, extra: &[&str]) {
        self.busybox();
        let mut args = vec!["create", id, "--template", "busybox"];
        args.extend_from_slice(extra);
        self.ok(&args);
    }

    /// Creates and starts a busybox VE.
    pub fn start_busybox(&self, id: &str, extra: &[&str]) {
        self.create_busybox(id, extra);
        self.ok(&["start", id]);
    }

    /// Runs `work` on VE `id`'s own layer as the host sees it: on its
    /// disk (backend `image`), else in its directory (backend `dir`). A
    /// running VE's disk is in no host mount (Kennel attaches it in the
    /// VE's namespace only), so it is mounted for `work` from the loop
    /// device that backs it, which gives back the VE's one filesystem.
    pub fn with_upper<T>(&self, id: &str, work: impl FnOnce(&Path) -> T) -> T {
        let dir = self.dir.join(format!("lib/ve/{id}/fs/upper"));
        if dir.is_dir() {
            return work(&dir);
        }
        let view = DiskView::of_running(self, id);
        work(&view.at.join("upper"))
    }

    /// `sh -c SCRIPT` inside VE `id`; asserts success, returns stdout.
    pub fn sh(&self, id: &str, script: &str) -> String {
        self.ok(&["exec", id, "--", "/bin/sh", "-c", script])
    }

    /// Waits for systemd in VE `id` to finish booting; returns
    /// `systemctl is-system-running` and the failed units. Boot takes well
    /// under a second natively; the cgroup v2 VM emulates its CPU and is
    /// many times slower.
    pub fn systemd_state(&self, id: &str) -> (String, String) {
        let wait = "i=0; until [ -S /run/systemd/private ] || [ $i -gt 2400 ]; do sleep 0.1; i=$((i+1)); done; \
                    timeout 240 systemctl is-system-running --wait";
        let state = self.run(&["exec", id, "--", "/bin/sh", "-c", wait]);
        let state = String::from_utf8_lossy(&state.stdout).trim().to_string();
        let failed = self.sh(id, "systemctl --failed --plain --no-legend --no-pager");
        (state, failed)
    }

    pub fn status(&self, id: &str) -> Value {
        serde_json::from_str(&self.ok(&["status", id, "--json"])).expect("status json")
    }

    pub fn init_pid(&self, id: &str) -> i32 {
        self.status(id)["init_pid"]
            .as_i64()
            .expect("running VE has an init pid") as i32
    }

    pub fn monitor_pid(&self, id: &str) -> i32 {
        self.status(id)["monitor_pid"]
            .as_i64()
            .expect("running VE has a monitor") as i32
    }

    pub fn config(&self, id: &str) -> Value {
        serde_json::from_str(&self.ok(&["config", id, "--json"])).expect("config json")
    }

    /// The cgroup parent Kennel uses for this root (mirrors
    /// `Paths::default_cgroup_parent`; `cgroup_parent_matches` checks it).
    pub fn cgroup_parent(&self) -> String {
        let mut h: u64 = 0xcbf2_9ce4_8422_2325;
        for b in self.dir.as_os_str().as_encoded_bytes() {
            h ^= *b as u64;
            h = h.wrapping_mul(0x0100_0000_01b3);
        }
        format!("kennel-{:08x}", h as u32)
    }

    /// `<hierarchy mount point>/<parent>` for every cgroup hierarchy.
    pub fn cgroup_dirs(&self, rel: &str) -> Vec<PathBuf> {
        cgroup_mounts()
            .into_iter()
            .map(|m| m.join(self.cgroup_parent()).join(rel))
            .collect()
    }

    /// Stops and destroys every VE, then checks that nothing of this root
    /// remains on the host: processes, mounts, cgroups. Panics on a leak.
    pub fn finish(mut self) {
        self.finished = true;
        let ranges = self.teardown();
        let leaks = self.leaks(&ranges);
        self.remove_cgroup_parent();
        let _ = fs::remove_dir_all(&self.dir);
        assert!(
            leaks.is_empty(),
            "leaks after the test:\n{}",
            leaks.join("\n")
        );
    }

    /// Kills and destroys all VEs; returns their id ranges.
    fn teardown(&self) -> Vec<(u64, u64)> {
        let mut ranges = Vec::new();
        let list = self.run(&["list", "--all", "--json", "-o", "id,state,uid_base"]);
        let v: Value = serde_json::from_slice(&list.stdout).unwrap_or(Value::Null);
        for ve in v.as_array().into_iter().flatten() {
            let id = ve["id"].as_str().unwrap_or_default().to_string();
            if let Some(b) = ve["uid_base"].as_u64() {
                ranges.push((b, b + 65536));
            }
            let _ = self.run(&["destroy", "--force", &id]);
        }
        // The pool goes once its disks have.
        let _ = self.run(&["storage", "remove"]);
        ranges
    }

    /// What this root left behind.
    pub fn leaks(&self, ranges: &[(u64, u64)]) -> Vec<String> {
        let mut out = Vec::new();
        let root = self.dir.to_string_lossy().to_string();
        // The storage pool stays while its record does (`kennel storage
        // remove` takes both down).
        let pool = self.dir.join("lib/storage.json").exists();
        let pool_mount = format!(" {root}/lib/pool ");
        let pool_image = format!("{root}/lib/pool.img");
        if let Ok(mi) = fs::read_to_string("/proc/self/mountinfo") {
            for l in mi.lines().filter(|l| l.contains(&root)) {
                if pool && l.contains(&pool_mount) {
                    continue;
                }
                out.push(format!("mount: {l}"));
            }
        }
        // An autoclear loop device goes with the last mount of its
        // filesystem, and a VE that another test starts at the same time
        // holds a copy of the host's mounts until it detaches the host's
        // root: give such a copy a moment before calling a device left.
        let stray = || -> Vec<String> {
            loop_devices_under(&root)
                .into_iter()
                .filter(|l| !(pool && l.ends_with(&pool_image)))
                .collect()
        };
        let deadline = Instant::now() + secs(5);
        let mut left = stray();
        while !left.is_empty() && Instant::now() < deadline {
            std::thread::sleep(Duration::from_millis(50));
            left = stray();
        }
        out.extend(left.into_iter().map(|l| format!("loop device: {l}")));
        let parent = self.cgroup_parent();
        for pid in processes() {
            if !pid_alive(pid) {
                continue; // a zombie waiting for the host's PID 1 to reap it
            }
            let cg = fs::read_to_string(format!("/proc/{pid}/cgroup")).unwrap_or_default();
            let cmd = fs::read(format!("/proc/{pid}/cmdline")).unwrap_or_default();
            if cg.contains(&parent) || String::from_utf8_lossy(&cmd).contains(&root) {
                out.push(format!(
                    "process {pid} ({}) still runs",
                    String::from_utf8_lossy(&cmd).replace('\0', " ")
                ));
            }
        }
        let _ = ranges;
        for d in self.cgroup_dirs("") {
            if let Ok(rd) = fs::read_dir(&d) {
                for e in rd.flatten() {
                    if e.file_type().map(|t| t.is_dir()).unwrap_or(false)
                        && e.file_name() != "_monitor"
                    {
                        out.push(format!("cgroup {} remains", e.path().display()));
                    }
                }
            }
            let procs = fs::read_to_string(d.join("_monitor/cgroup.procs")).unwrap_or_default();
            if !procs.trim().is_empty() {
                out.push(format!(
                    "monitor processes remain in {}: {}",
                    d.display(),
                    procs.trim()
                ));
            }
        }
        out
    }

    fn remove_cgroup_parent(&self) {
        for d in self.cgroup_dirs("") {
            let _ = fs::remove_dir(d.join("_monitor"));
            let _ = fs::remove_dir(&d);
        }
    }
}

impl Drop for TestRoot {
    fn drop(&mut self) {
        if !self.finished {
            // A failed test: clean up as well as we can, without asserting.
            self.teardown();
            self.remove_cgroup_parent();
            let _ = fs::remove_dir_all(&self.dir);
        }
    }
}

/// A running VE's disk mounted for a test to look at, outside the state
/// root; unmounted when dropped.
pub struct DiskView {
    pub at: PathBuf,
}

impl DiskView {
    /// Mounts the disk of VE `id` of `root`: while it runs, the kernel
    /// gives back the filesystem the VE has.
    pub fn of_running(root: &TestRoot, id: &str) -> DiskView {
        let cfg = root.config(id);
        let uuid = cfg["uuid"].as_str().expect("uuid");
        let pool = cfg["storage"]["pool"]
            .as_str()
            .map(PathBuf::from)
            .unwrap_or_else(|| root.dir.join("lib/pool"));
        let image = pool.join(uuid).join("disk.img");
        // The loop device that backs the disk while its VE runs; a
        // stopped VE's disk is looked at read-only.
        let index = fs::read_to_string(image.with_extension("img.loop")).unwrap_or_default();
        let backing =
            fs::read_to_string(format!("/sys/block/loop{}/loop/backing_file", index.trim()))
                .unwrap_or_default();
        // Never a set-user-id program or a device node of the tenant's,
        // in a directory only root enters.
        let (source, opts) = if Path::new(backing.trim()) == image {
            (
                PathBuf::from(format!("/dev/loop{}", index.trim())),
                "rw,nosuid,nodev,noexec",
            )
        } else {
            (image, "loop,ro,noload,nosuid,nodev,noexec")
        };
        static N: AtomicU32 = AtomicU32::new(0);
        let at = std::env::temp_dir().join(format!(
            "kennel-disk-view-{}-{}",
            std::process::id(),
            N.fetch_add(1, Ordering::Relaxed)
        ));
        std::os::unix::fs::DirBuilderExt::mode(&mut fs::DirBuilder::new(), 0o700)
            .create(&at)
            .expect("mkdir");
        let st = Command::new("mount")
            .args(["-t", "ext4", "-o", opts])
            .arg(&source)
            .arg(&at)
            .status()
            .expect("mount");
        assert!(
            st.success(),
            "mount {} at {}",
            source.display(),
            at.display()
        );
        DiskView { at }
    }
}

impl Drop for DiskView {
    fn drop(&mut self) {
        let _ = Command::new("umount").arg(&self.at).status();
        let _ = fs::remove_dir(&self.at);
    }
}

/// Loop devices whose backing file is below `dir` ("loopN: FILE").
pub fn loop_devices_under(dir: &str) -> Vec<String> {
    let Ok(rd) = fs::read_dir("/sys/block") else {
        return Vec::new();
    };
    rd.flatten()
        .filter_map(|e| {
            let name = e.file_name().to_string_lossy().into_owned();
            let file = fs::read_to_string(e.path().join("loop/backing_file")).ok()?;
            file.starts_with(dir)
                .then(|| format!("{name}: {}", file.trim()))
        })
        .collect()
}

/// Mount points of the host's cgroup hierarchies.
pub fn cgroup_mounts() -> Vec<PathBuf> {
    let mi = fs::read_to_string("/proc/self/mountinfo").unwrap_or_default();
    mi.lines()
        .filter_map(|l| {
            let (left, right) = l.split_once(" - ")?;
            let fstype = right.split(' ').next()?;
            (fstype == "cgroup" || fstype == "cgroup2")
                .then(|| PathBuf::from(left.split(' ').nth(4).unwrap_or("")))
        })
        .collect()
}

/// Where the host's cgroup2 is mounted, if it has one (pure v2, or the
/// unified hierarchy of a hybrid host).
pub fn cgroup2_mount() -> Option<PathBuf> {
    let mi = fs::read_to_string("/proc/self/mountinfo").unwrap_or_default();
    mi.lines().find_map(|l| {
        let (left, right) = l.split_once(" - ")?;
        let at = left.split(' ').nth(4)?;
        (right.split(' ').next()? == "cgroup2").then(|| PathBuf::from(at))
    })
}

/// Every process on the host, except this test process.
pub fn processes() -> Vec<i32> {
    let me = std::process::id() as i32;
    fs::read_dir("/proc")
        .into_iter()
        .flatten()
        .flatten()
        .filter_map(|e| e.file_name().to_string_lossy().parse::<i32>().ok())
        .filter(|&p| p != me)
        .collect()
}

/// Waits until `f` is true or `timeout` passes.
pub fn wait_for(timeout: Duration, mut f: impl FnMut() -> bool) -> bool {
    let end = Instant::now() + timeout;
    while Instant::now() < end {
        if f() {
            return true;
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    f()
}

pub fn pid_alive(pid: i32) -> bool {
    Path::new(&format!("/proc/{pid}")).exists()
        && !fs::read_to_string(format!("/proc/{pid}/stat"))
            .map(|s| s.contains(") Z "))
            .unwrap_or(false)
}

/// The Debian 12 template as a tarball, built once per machine (debootstrap,
/// about a minute) and kept in [`cache_dir`]. Tests import it, which also
/// exercises `template import` on a real distribution.
pub fn debian_tarball() -> PathBuf {
    let cache = cache_dir();
    fs::create_dir_all(&cache).expect("create test cache");
    let tarball = cache.join("debian-12.tar.zst");
    // The cache may be read-only (the cgroup v2 VM sees the host's).
    if tarball.exists() {
        return tarball;
    }
    let lock = fs::OpenOptions::new()
        .create(true)
        .truncate(false)
        .write(true)
        .open(cache.join(".lock"))
        .expect("lock file");
    rustix::fs::flock(&lock, rustix::fs::FlockOperation::LockExclusive).expect("lock cache");
    if tarball.exists() {
        return tarball;
    }
    let root = cache.join("build-root");
    let _ = fs::remove_dir_all(&root);
    fs::create_dir_all(root.join("lib/cache")).expect("mkdir");
    let debs = cache.join("debs");
    fs::create_dir_all(&debs).expect("mkdir debs");
    std::os::unix::fs::symlink(&debs, root.join("lib/cache/debootstrap")).expect("link deb cache");
    let st = Command::new(KENNEL)
        .args(["--root"])
        .arg(&root)
        .args(["template", "create", "debian-12"])
        .status()
        .expect("run kennel template create debian-12");
    assert!(
        st.success(),
        "building the Debian template failed (is debootstrap installed and the mirror reachable?)"
    );
    let tmp = cache.join("debian-12.tar.zst.tmp");
    let st = Command::new("tar")
        .args([
            "--zstd",
            "--numeric-owner",
            "--xattrs",
            "--xattrs-include=security.capability",
            "-C",
        ])
        .arg(root.join("lib/templates/debian-12/rootfs"))
        .args(["-cf"])
        .arg(&tmp)
        .arg(".")
        .status()
        .expect("run tar");
    assert!(st.success(), "tar of the Debian template failed");
    fs::rename(&tmp, &tarball).expect("rename tarball");
    let _ = Command::new(KENNEL)
        .arg("--root")
        .arg(&root)
        .args(["template", "remove", "debian-12"])
        .status();
    let _ = fs::remove_dir_all(&root);
    let mut f = fs::File::create(cache.join("README")).expect("readme");
    let _ = writeln!(f, "Kennel test cache: debian-12.tar.zst is made by the test suite (tests/common). Delete to rebuild.");
    tarball
}

/// Runs `cmd` (stdin as the command has it) for at most `timeout`,
/// collecting stdout and stderr; `None` for the status when it had to be
/// killed. For commands that an attacker may have made hang.
pub fn output_within(
    cmd: &mut Command,
    timeout: Duration,
) -> (Option<std::process::ExitStatus>, String, String) {
    use std::io::Read;
    let mut child = cmd
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("spawn");
    let mut out = child.stdout.take().expect("stdout");
    let mut err = child.stderr.take().expect("stderr");
    let t_out = std::thread::spawn(move || {
        let mut s = Vec::new();
        let _ = out.read_to_end(&mut s);
        s
    });
    let t_err = std::thread::spawn(move || {
        let mut s = Vec::new();
        let _ = err.read_to_end(&mut s);
        s
    });
    let end = Instant::now() + timeout;
    let status = loop {
        if let Some(st) = child.try_wait().expect("try_wait") {
            break Some(st);
        }
        if Instant::now() >= end {
            let _ = child.kill();
            let _ = child.wait();
            break None;
        }
        std::thread::sleep(Duration::from_millis(5));
    };
    // A process of the command that kept the pipes open (a daemon it
    // left behind) must not hang the caller: give up on its output.
    let join = |t: std::thread::JoinHandle<Vec<u8>>| {
        let end = Instant::now() + Duration::from_secs(2);
        while !t.is_finished() && Instant::now() < end {
            std::thread::sleep(Duration::from_millis(5));
        }
        if t.is_finished() {
            String::from_utf8_lossy(&t.join().unwrap_or_default()).into_owned()
        } else {
            String::new()
        }
    };
    (status, join(t_out), join(t_err))
}

/// An lxcfs of the test's own (never the host's: its own mount point and
/// pidfile below the test root), which the root's `kennel.toml` names.
/// Dropped, it is killed by PID and unmounted.
pub struct Lxcfs {
    child: std::process::Child,
    pub dir: PathBuf,
}

impl Lxcfs {
    pub fn start(root: &TestRoot) -> Self {
        let dir = root.dir.join("lxcfs");
        fs::create_dir_all(&dir).expect("mkdir lxcfs");
        let me = Lxcfs {
            child: Self::spawn(root, &dir),
            dir: dir.clone(),
        };
        let conf = root.dir.join("lib/kennel.toml");
        fs::create_dir_all(root.dir.join("lib")).expect("mkdir lib");
        let old = fs::read_to_string(&conf).unwrap_or_default();
        fs::write(&conf, format!("lxcfs_dir = \"{}\"\n{old}", dir.display()))
            .expect("write kennel.toml");
        me
    }

    fn spawn(root: &TestRoot, dir: &Path) -> std::process::Child {
        let child = std::process::Command::new("lxcfs")
            .args(["-f", "-l", "--enable-pidfd", "-p"])
            .arg(root.dir.join("lxcfs.pid"))
            .arg(dir)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("lxcfs (scripts/install-deps.sh installs it)");
        assert!(
            wait_for(secs(10), || dir.join("proc/meminfo").exists()),
            "lxcfs did not mount at {}",
            dir.display()
        );
        child
    }

    /// Makes this lxcfs's mount shared, as everything is on a systemd
    /// host (mounts made on a copy of it in a VE must not come back).
    pub fn make_shared(&self) {
        let st = std::process::Command::new("mount")
            .arg("--make-shared")
            .arg(&self.dir)
            .status()
            .expect("mount --make-shared");
        assert!(st.success(), "mount --make-shared {}", self.dir.display());
    }

    /// Mounts on or below this lxcfs's mount point other than its own.
    pub fn mounts_below(&self) -> Vec<String> {
        let dir = format!("{}/", self.dir.display());
        fs::read_to_string("/proc/self/mountinfo")
            .unwrap_or_default()
            .lines()
            .filter(|l| l.split(' ').nth(4).is_some_and(|m| m.starts_with(&dir)))
            .map(str::to_string)
            .collect()
    }

    /// Kills this lxcfs by its PID, as a crash would: its mount stays,
    /// dead (every access fails), as do the VEs' binds of its files.
    pub fn crash(&mut self) {
        self.signal("KILL");
        let _ = self.child.wait();
    }

    /// After [`Lxcfs::crash`]: what its service does next (unmount the
    /// dead mount, start lxcfs again at the same place).
    pub fn restart(&mut self, root: &TestRoot) {
        let _ = rustix::mount::unmount(&self.dir, rustix::mount::UnmountFlags::DETACH);
        self.child = Self::spawn(root, &self.dir);
    }
}

impl Lxcfs {
    /// Sends this lxcfs `signal` (e.g. STOP to stall it), by its PID.
    pub fn signal(&self, signal: &str) {
        let _ = std::process::Command::new("kill")
            .arg(format!("-{signal}"))
            .arg(self.child.id().to_string())
            .status();
    }
}

impl Drop for Lxcfs {
    fn drop(&mut self) {
        self.signal("CONT");
        // Its own PID (SIGTERM: lxcfs unmounts itself), then reaped.
        let _ = std::process::Command::new("kill")
            .arg(self.child.id().to_string())
            .status();
        let _ = self.child.wait();
        let _ = rustix::mount::unmount(&self.dir, rustix::mount::UnmountFlags::DETACH);
    }
}

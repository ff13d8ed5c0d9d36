//! Mounting kernel filesystems, remounting read-only parts read-write,
//! and taking the masks off host knobs. Everything runs in a private copy
//! of the VE's mount namespace (owned by the same user namespace, so the
//! kernel allows exactly what it would allow in the VE's own), which
//! leaves the VE usable for the next case.

use crate::sys::{self, ename};
use crate::verdict::{all, blocked, error, escaped, info, Verdict};

fn arg<'a>(args: &'a [String], i: usize, what: &str) -> Result<&'a str, Verdict> {
    args.get(i)
        .map(String::as_str)
        .ok_or_else(|| error(format!("missing argument: {what}")))
}

/// Enters a nested user namespace (root inside = the VE's root) with its
/// own mount and cgroup namespaces: the "from a nested user namespace"
/// variant of an attack.
fn nested_userns() -> Result<(), Verdict> {
    let (uid, gid) = (sys::getuid(), sys::getgid());
    sys::unshare(libc::CLONE_NEWUSER | libc::CLONE_NEWNS | libc::CLONE_NEWCGROUP)
        .map_err(|e| error(format!("unshare a nested user namespace: {}", ename(e))))?;
    sys::map_self_as_root(uid, gid).map_err(|e| error(format!("map ids: {}", ename(e))))
}

fn private_ns() -> Result<(), Verdict> {
    sys::private_mount_ns().map_err(|e| error(format!("private mount namespace: {}", ename(e))))
}

/// A private mount namespace, and a scratch directory to mount on.
fn private_scratch(name: &str) -> Result<String, Verdict> {
    private_ns()?;
    sys::scratch_dir(name).map_err(|e| error(format!("scratch dir: {}", ename(e))))
}

/// `mount-fs TYPE [SOURCE] [OPTIONS] [nested]`: mounting this filesystem
/// at all is the escape (debugfs, tracefs, securityfs, a block device).
pub fn mount_fs(args: &[String]) -> Verdict {
    let fstype = match arg(args, 0, "filesystem type") {
        Ok(t) => t,
        Err(v) => return v,
    };
    let source = args.get(1).map(String::as_str).unwrap_or(fstype);
    let data = args.get(2).map(String::as_str).filter(|s| !s.is_empty());
    let nested = args.iter().any(|a| a == "nested");
    if let Err(v) = if nested {
        nested_userns()
    } else {
        private_ns()
    } {
        return v;
    }
    let dir = match sys::scratch_dir("mnt") {
        Ok(d) => d,
        Err(e) => return error(format!("scratch dir: {}", ename(e))),
    };
    match sys::mount(Some(source), &dir, Some(fstype), 0, data) {
        Ok(()) => escaped(format!("mounted {fstype} from {source}")),
        Err(e) => blocked(format!("mount {fstype}: {}", ename(e))),
    }
}

/// `mount-proc`: a new procfs must show only the VE's processes.
pub fn mount_proc(args: &[String]) -> Verdict {
    let dir = match private_scratch("proc") {
        Ok(d) => d,
        Err(v) => return v,
    };
    if let Err(e) = sys::mount(Some("proc"), &dir, Some("proc"), 0, None) {
        return blocked(format!("mount proc: {}", ename(e)));
    }
    let foreign: Vec<String> = std::fs::read_dir(&dir)
        .into_iter()
        .flatten()
        .flatten()
        .filter_map(|e| e.file_name().to_str()?.parse::<u32>().ok())
        .filter_map(|p| {
            let comm = sys::read_text(&format!("{dir}/{p}/comm")).ok()?;
            let comm = comm.trim().to_string();
            (comm == "kthreadd" || args.contains(&comm)).then(|| format!("{p}:{comm}"))
        })
        .collect();
    if foreign.is_empty() {
        blocked("a new procfs mounted, showing only the VE's own processes")
    } else {
        escaped(format!(
            "a new procfs shows host processes: {}",
            foreign.join(" ")
        ))
    }
}

/// Host knobs under a sysfs mount that a VE must never open for writing.
const SYSFS_HOST_FILES: &[&str] = &[
    "kernel/mm/transparent_hugepage/enabled",
    "kernel/uevent_helper",
    "power/state",
    "kernel/profiling",
    "module/printk/parameters/time",
    "block/loop0/queue/scheduler",
];

/// `mount-sysfs`: a new sysfs, then write access to host knobs in it.
pub fn mount_sysfs(_: &[String]) -> Verdict {
    let dir = match private_scratch("sysfs") {
        Ok(d) => d,
        Err(v) => return v,
    };
    if let Err(e) = sys::mount(Some("sysfs"), &dir, Some("sysfs"), 0, None) {
        return blocked(format!("mount sysfs: {}", ename(e)));
    }
    info("a new sysfs mounted (the VE's network namespace's own)");
    let parts = SYSFS_HOST_FILES
        .iter()
        .filter(|f| std::path::Path::new(&format!("{dir}/{f}")).exists())
        .map(|f| (f.to_string(), open_for(&format!("{dir}/{f}"), false)))
        .collect();
    all(parts)
}

/// Opens `path` for writing (never writes) or reads a byte from it.
pub fn open_for(path: &str, read: bool) -> Verdict {
    let flags = if read {
        libc::O_RDONLY | libc::O_NONBLOCK
    } else {
        libc::O_WRONLY | libc::O_NONBLOCK
    };
    match sys::open(path, flags) {
        Err(e) => blocked(ename(e)),
        Ok(fd) if read => {
            let mut b = [0u8; 64];
            // SAFETY: b is a writable buffer of its length.
            let n = unsafe {
                libc::read(
                    std::os::fd::AsRawFd::as_raw_fd(&fd),
                    b.as_mut_ptr().cast(),
                    b.len(),
                )
            };
            if n > 0 {
                escaped(format!("read {n} bytes"))
            } else if n == 0 {
                blocked("opened, but it reads as empty")
            } else {
                blocked(format!("opened, read: {}", ename(sys::errno())))
            }
        }
        Ok(_) => escaped("opened for writing"),
    }
}

/// Unmounts whatever is stacked on `path` and on its parents below the
/// first level (the masks and read-only binds Kennel put there).
fn strip_mounts(path: &str) {
    let mut p = path.to_string();
    loop {
        for _ in 0..8 {
            if sys::umount2(&p, libc::MNT_DETACH).is_err() {
                break;
            }
        }
        match p.rsplit_once('/') {
            Some((parent, _)) if parent.matches('/').count() >= 2 => p = parent.to_string(),
            _ => break,
        }
    }
}

/// `unmask MODE PATH...` (MODE `r` or `w`): strip the masks and read-only
/// binds from each path, remount it read-write, then open it.
pub fn unmask(args: &[String]) -> Verdict {
    let read = match arg(args, 0, "mode r|w") {
        Ok("r") => true,
        Ok("w") => false,
        Ok(m) => return error(format!("mode {m}: r or w")),
        Err(v) => return v,
    };
    if let Err(v) = private_ns() {
        return v;
    }
    let mut parts = Vec::new();
    for path in &args[1..] {
        strip_mounts(path);
        let _ = sys::mount(None, path, None, libc::MS_REMOUNT | libc::MS_BIND, None);
        if !std::path::Path::new(path).exists() {
            parts.push((path.clone(), blocked("absent")));
            continue;
        }
        parts.push((path.clone(), open_for(path, read)));
    }
    all(parts)
}

/// `remount-rw MOUNTPOINT FILE`: make a read-only mount read-write (both
/// ways: the bind's flags and the superblock), then open FILE below it
/// for writing.
pub fn remount_rw(args: &[String]) -> Verdict {
    let (mp, file) = match (arg(args, 0, "mount point"), arg(args, 1, "file")) {
        (Ok(m), Ok(f)) => (m, f),
        (Err(v), _) | (_, Err(v)) => return v,
    };
    if let Err(v) = private_ns() {
        return v;
    }
    let bind = sys::mount(None, mp, None, libc::MS_REMOUNT | libc::MS_BIND, None);
    let sb = sys::mount(None, mp, None, libc::MS_REMOUNT, None);
    info(format!(
        "remount {mp}: bind {:?}, superblock {:?}",
        bind.map_err(ename),
        sb.map_err(ename)
    ));
    match open_for(file, false) {
        Verdict::Blocked(why) => blocked(format!("{file}: {why}")),
        Verdict::Escaped(what) => escaped(format!("{file}: {what} after remounting {mp}")),
        v => v,
    }
}

/// Mount options to try for a v1 cgroup hierarchy: named ones, the host's
/// controllers (a VE could only reuse existing hierarchies).
const CGROUP_V1_OPTIONS: &[&str] = &[
    "none,name=kattack",
    "none,name=systemd",
    "rdma",
    "memory",
    "pids",
    "cpuset",
    "freezer",
    "devices",
    "net_cls,net_prio",
    "perf_event",
    "misc",
];

/// `release-agent [nested]`: CVE-2022-0492. Mount a v1 hierarchy (any
/// that the kernel lets a user namespace mount) and set its
/// `release_agent`, or find one already visible.
pub fn release_agent(args: &[String]) -> Verdict {
    let nested = args.iter().any(|a| a == "nested");
    if let Err(v) = if nested {
        nested_userns()
    } else {
        private_ns()
    } {
        return v;
    }
    let mut parts = Vec::new();
    for opts in CGROUP_V1_OPTIONS {
        let dir = match sys::scratch_dir(&format!("cg-{}", parts.len())) {
            Ok(d) => d,
            Err(e) => return error(format!("scratch dir: {}", ename(e))),
        };
        let v = match sys::mount(Some("cgroup"), &dir, Some("cgroup"), 0, Some(opts)) {
            Err(e) => blocked(format!("mount: {}", ename(e))),
            Ok(()) => try_release_agent(&format!("{dir}/release_agent")),
        };
        parts.push((format!("cgroup {opts}"), v));
    }
    for e in std::fs::read_dir("/sys/fs/cgroup")
        .into_iter()
        .flatten()
        .flatten()
    {
        let f = e.path().join("release_agent");
        if f.exists() {
            let f = f.display().to_string();
            parts.push((f.clone(), try_release_agent(&f)));
        }
    }
    all(parts)
}

fn try_release_agent(path: &str) -> Verdict {
    if !std::path::Path::new(path).exists() {
        return blocked("mounted, but no release_agent (not the hierarchy's root)");
    }
    // The empty agent is what hosts have: a write that got through would
    // prove the permission without running anything.
    match sys::write_text(path, "\n") {
        Ok(()) => escaped("wrote release_agent"),
        Err(e) => blocked(format!("write release_agent: {}", ename(e))),
    }
}

/// `umount-force`: umount2(MNT_FORCE), on a tmpfs of our own.
pub fn umount_force(_: &[String]) -> Verdict {
    let dir = match private_scratch("force") {
        Ok(d) => d,
        Err(v) => return v,
    };
    if let Err(e) = sys::mount(Some("tmpfs"), &dir, Some("tmpfs"), 0, None) {
        return error(format!("mount a tmpfs: {}", ename(e)));
    }
    match sys::umount2(&dir, libc::MNT_FORCE) {
        Ok(()) => escaped("umount2(MNT_FORCE) accepted"),
        Err(e) => blocked(format!("umount2(MNT_FORCE): {}", ename(e))),
    }
}

//! lxcfs, the host's FUSE filesystem that shows each reader the limits of
//! its own PID namespace's cgroup in `/proc/meminfo`, `/proc/cpuinfo`,
//! `/proc/uptime` and the rest ([`FILES`]).
//! Kennel does not run it: the host's service does (Debian's `lxcfs`
//! package), and each start binds its files into the VE when it is up;
//! [`sync`] binds a restarted lxcfs's files into the running VEs.

mod sync;

use std::os::fd::{AsFd, OwnedFd};
use std::path::Path;

pub use sync::{sync_into, Synced};

/// The files lxcfs shows with a reader's own limits (its PID namespace's
/// init's cgroup), and where they go in the VE: `free`, `top`, `uptime`
/// and `nproc` then tell the VE's plan, not the host's.
pub const FILES: &[&str] = &[
    "proc/cpuinfo",
    "proc/diskstats",
    "proc/loadavg",
    "proc/meminfo",
    "proc/stat",
    "proc/swaps",
    "proc/uptime",
    "sys/devices/system/cpu/online",
];

/// Read-only detached copies of lxcfs's [`FILES`] (its mount at `dir` on
/// the host), ready to be attached in a VE, with where each goes. Empty
/// when no FUSE filesystem is mounted at `dir`: Kennel never binds
/// whatever else is there. A file lxcfs does not serve is left out.
pub(crate) fn read_only_copies(dir: &Path) -> Vec<(&'static str, OwnedFd)> {
    let Ok(lxcfs) = rustix::fs::open(
        dir,
        rustix::fs::OFlags::PATH | rustix::fs::OFlags::DIRECTORY | rustix::fs::OFlags::CLOEXEC,
        rustix::fs::Mode::empty(),
    ) else {
        return Vec::new();
    };
    if !rustix::fs::fstatfs(&lxcfs).is_ok_and(|st| is_fuse(&st)) {
        return Vec::new();
    }
    FILES
        .iter()
        .filter_map(|rel| {
            let m = crate::child::mnt::clone_of(lxcfs.as_fd(), rel).ok()?;
            // Private: never a peer of the host's lxcfs mount, whose
            // peers would receive what the VE mounts on its copy.
            // Read-only, as the kernel's own files are for the VE's root
            // (not locked: lxcfs refuses writes itself).
            kennel_sys::mount::set_readonly_private(m.as_fd()).ok()?;
            Some((*rel, m))
        })
        .collect()
}

/// `statfs` type of a FUSE filesystem.
pub(crate) const FUSE_SUPER_MAGIC: i64 = 0x6573_5546;

/// Whether a filesystem is a FUSE one (lxcfs is).
#[allow(clippy::unnecessary_cast)] // `f_type`'s type differs between architectures
pub(crate) fn is_fuse(st: &rustix::fs::StatFs) -> bool {
    st.f_type as i64 == FUSE_SUPER_MAGIC
}

/// How long lxcfs may take to answer the probe: a stalled daemon must
/// not hold `kennel start` (or `check`), whose VE then starts with the
/// kernel's own files.
pub const PROBE_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(1);

/// Whether lxcfs serves at `dir`: a FUSE mount whose `proc/meminfo`
/// answers within [`PROBE_TIMEOUT`] (a dead daemon leaves its mount,
/// which then fails every access; a stalled one answers nothing). `Err`
/// says why not. The access is made by a child process, killed if lxcfs
/// does not answer in time (a FUSE request ends with SIGKILL): this
/// process stays single-threaded for the fork of the start.
pub fn probe(dir: &Path) -> Result<(), String> {
    use kennel_sys::clone::{clone3, CloneOptions, Forked};
    // Most hosts without lxcfs have nothing mounted there: say so without
    // a child (about half a millisecond of every start).
    if !is_mount_point(dir) {
        return Err(format!("nothing is mounted at {}", dir.display()));
    }
    let forked = clone3(&CloneOptions {
        flags: 0,
        pidfd: true,
        cgroup: None,
    })
    .map_err(|e| format!("probe lxcfs: {e}"))?;
    let pidfd = match forked {
        Forked::Child => kennel_sys::process::exit_child(match probe_now(dir) {
            Ok(()) => 0,
            Err(Down::NotMounted) => 1,
            Err(Down::NoAnswer) => 2,
        }),
        Forked::Parent { pidfd, .. } => pidfd.ok_or("probe lxcfs: no pidfd")?,
    };
    let answered = kennel_sys::fd::wait_readable(pidfd.as_fd(), PROBE_TIMEOUT).unwrap_or(false);
    if !answered {
        let _ = rustix::process::pidfd_send_signal(&pidfd, rustix::process::Signal::KILL);
    }
    let status = rustix::process::waitid(
        rustix::process::WaitId::PidFd(pidfd.as_fd()),
        rustix::process::WaitIdOptions::EXITED,
    )
    .ok()
    .flatten()
    .and_then(|s| s.exit_status());
    match (answered, status) {
        (true, Some(0)) => Ok(()),
        (true, Some(1)) => Err(format!("nothing is mounted at {}", dir.display())),
        (true, _) => Err(format!("lxcfs at {} does not answer", dir.display())),
        (false, _) => Err(format!(
            "lxcfs at {} did not answer within {} s",
            dir.display(),
            PROBE_TIMEOUT.as_secs()
        )),
    }
}

/// Whether something is mounted at `dir`, as far as the kernel's mount
/// table knows: `statx` of the mount id, with `AT_STATX_DONT_SYNC` so that
/// a FUSE daemon, stalled or dead, is never asked. Missing: false.
/// Unsure (an error on a mounted FUSE root): true, and the probe's child
/// finds out.
fn is_mount_point(dir: &Path) -> bool {
    use rustix::fs::{statx, AtFlags, StatxFlags, CWD};
    let mnt_id = |p: &Path| {
        statx(
            CWD,
            p,
            AtFlags::STATX_DONT_SYNC | AtFlags::SYMLINK_NOFOLLOW,
            StatxFlags::MNT_ID,
        )
        .map(|st| st.stx_mnt_id)
    };
    let Some(parent) = dir.parent() else {
        return true;
    };
    match (mnt_id(dir), mnt_id(parent)) {
        (Err(rustix::io::Errno::NOENT), _) => false,
        (Ok(here), Ok(above)) => here != above,
        _ => true,
    }
}

/// Why lxcfs does not serve.
enum Down {
    NotMounted,
    NoAnswer,
}

/// The probe itself (in the child): lxcfs's FUSE mount, and an answer.
fn probe_now(dir: &Path) -> Result<(), Down> {
    match rustix::fs::statfs(dir) {
        Ok(st) if is_fuse(&st) => {}
        _ => return Err(Down::NotMounted),
    }
    rustix::fs::stat(dir.join("proc/meminfo"))
        .map(|_| ())
        .map_err(|_| Down::NoAnswer)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn mount_points_are_told_from_plain_directories() {
        assert!(is_mount_point(Path::new("/proc")));
        assert!(!is_mount_point(Path::new("/proc/self/nonexistent-dir")));
        let plain = std::env::temp_dir();
        let dir = plain.join(format!("kennel-mp-{}", std::process::id()));
        std::fs::create_dir_all(&dir).expect("mkdir");
        assert!(!is_mount_point(&dir));
        let _ = std::fs::remove_dir(&dir);
        assert_eq!(
            probe(Path::new("/nonexistent/lxcfs")),
            Err("nothing is mounted at /nonexistent/lxcfs".into())
        );
    }
}

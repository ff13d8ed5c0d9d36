//! lxcfs, the host's FUSE filesystem that shows each reader the limits of
//! its own PID namespace's cgroup in `/proc/meminfo`, `/proc/cpuinfo`,
//! `/proc/uptime` and the rest ([`crate::child::kernfs::LXCFS_FILES`]).
//! Kennel does not run it: the host's service does (Debian's `lxcfs`
//! package), and each start binds its files into the VE when it is up.

use std::path::Path;

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
    use std::os::fd::AsFd;
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

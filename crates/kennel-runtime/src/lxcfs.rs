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

/// Whether lxcfs serves at `dir`: a FUSE mount whose `proc/meminfo`
/// answers (a dead daemon leaves its mount, which then fails every
/// access). `Err` says why not.
pub fn probe(dir: &Path) -> Result<(), String> {
    let st = rustix::fs::statfs(dir).map_err(|e| format!("{}: {e}", dir.display()))?;
    if !is_fuse(&st) {
        return Err(format!("nothing is mounted at {}", dir.display()));
    }
    rustix::fs::stat(dir.join("proc/meminfo"))
        .map(|_| ())
        .map_err(|e| format!("lxcfs at {} does not answer: {e}", dir.display()))
}

use std::io;
use std::path::PathBuf;

/// Errors from reading or writing cgroup files.
#[derive(Debug, thiserror::Error)]
pub enum CgroupError {
    /// A cgroup file or directory could not be read, written or created.
    #[error("cgroup {op} {path}: {source}")]
    Io {
        op: &'static str,
        path: PathBuf,
        #[source]
        source: io::Error,
    },
    /// No cgroup hierarchy is mounted at all.
    #[error(
        "no cgroup filesystem is mounted (expected cgroup2 or cgroup v1 under /sys/fs/cgroup)"
    )]
    NotMounted,
    /// A controller Kennel needs for a limit is not available.
    #[error("the cgroup controller '{controller}' is not available{hint}")]
    MissingController {
        controller: &'static str,
        hint: String,
    },
    /// A VE's cgroup record holds no usable path (see `record`).
    #[error("the VE's cgroup record is damaged: {0}")]
    BadRecord(String),
    /// An I/O limit for files on a filesystem without a block device.
    #[error("{path} is on a filesystem without a block device (tmpfs, overlayfs, NFS, btrfs): no I/O limit can hold there; put the state root on a disk, or leave --io-limit and --iops-limit unlimited")]
    NoBlockDevice { path: PathBuf },
    /// The kernel refused a limit on a running cgroup (memory below what
    /// it uses, a CPU the host lacks); nothing was changed.
    #[error("the kernel refused {value:?} for {}: {source}", path.display())]
    Refused {
        path: PathBuf,
        value: String,
        #[source]
        source: io::Error,
    },
    /// A cgroup still had processes after they were killed.
    #[error("cgroup {path} still has processes")]
    Busy { path: PathBuf },
    /// The VE's processes did not all stop (one in uninterruptible
    /// sleep on slow I/O, say); it was thawed again.
    #[error("the VE did not freeze in time ({}): it runs on; try again", path.display())]
    FreezeTimeout { path: PathBuf },
    /// The kernel refused a new cgroup: a cgroup above it is at its cap of
    /// descendants (on cgroup v2 Kennel caps all VEs' cgroups together,
    /// below the kernel's memory cgroup ids).
    #[error("cannot create cgroup {}: the cgroups below a parent are at their cap (cgroup.max.descendants; all VEs' cgroups together may hold 61,439, the host keeps the rest of the kernel's 65,535 memory cgroup ids): stop VEs, or have them make fewer cgroups", path.display())]
    Full { path: PathBuf },
    #[error("{0}")]
    Unsupported(String),
}

pub type Result<T, E = CgroupError> = std::result::Result<T, E>;

/// [`io_err`] for a `mkdir` of a cgroup: the kernel says `EAGAIN` when an
/// ancestor is at its `cgroup.max.descendants`.
pub(crate) fn mkdir_err(path: impl Into<PathBuf>) -> impl FnOnce(io::Error) -> CgroupError {
    let path = path.into();
    move |source| {
        if source.kind() == io::ErrorKind::WouldBlock {
            CgroupError::Full { path }
        } else {
            CgroupError::Io {
                op: "create",
                path,
                source,
            }
        }
    }
}

pub(crate) fn io_err(
    op: &'static str,
    path: impl Into<PathBuf>,
) -> impl FnOnce(io::Error) -> CgroupError {
    let path = path.into();
    move |source| CgroupError::Io { op, path, source }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_refused_mkdir_at_the_cap_names_it() {
        let e = mkdir_err("/sys/fs/cgroup/k/101")(io::Error::from_raw_os_error(11));
        let text = e.to_string();
        assert!(
            matches!(e, CgroupError::Full { .. }) && text.contains("cgroup.max.descendants"),
            "{text}"
        );
        let other = mkdir_err("/x")(io::Error::from_raw_os_error(13));
        assert!(matches!(other, CgroupError::Io { op: "create", .. }));
    }
}

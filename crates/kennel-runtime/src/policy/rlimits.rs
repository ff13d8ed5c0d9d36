//! The resource limits (`setrlimit`) every process of a VE starts with.
//!
//! Limits are inherited across `fork` and `execve`, so without this a VE
//! would run with whatever the shell that typed `kennel start` or `kennel
//! exec` had: an administrator's `ulimit -r 99` (real-time priority) would
//! let the VE's processes run `SCHED_FIFO` and escape its CPU limit, a low
//! `ulimit -n` would break its servers. Kennel sets the same documented
//! values for the VE's init and for every `kennel exec`, on the host side,
//! before the process enters the VE's user namespace: raising a hard limit
//! needs `CAP_SYS_RESOURCE` in the host's namespace, which the VE never
//! has, so inside the VE every limit can only go down.
//!
//! On a host whose root lacks `CAP_SYS_RESOURCE` a hard limit above the
//! caller's cannot be set: it is then clamped to the caller's hard limit
//! (lowering always works, so the limits that guard the host — real-time
//! priority, nice, locked memory — always hold).

use rustix::process::{getrlimit, setrlimit, Resource, Rlimit};

/// Unlimited, in the table below.
const INF: Option<u64> = None;
const MIB: u64 = 1 << 20;

/// One limit: `(resource, soft, hard, why)`.
pub type Limit = (Resource, Option<u64>, Option<u64>, &'static str);

/// The VE's limits and why (docs/SECURITY.md has the same table).
pub const LIMITS: &[Limit] = &[
    (
        Resource::Rtprio,
        Some(0),
        Some(0),
        "real-time scheduling would let a VE escape its CPU limit and starve the host",
    ),
    (
        Resource::Nice,
        Some(0),
        Some(0),
        "a VE may lower its priority, never raise it above normal",
    ),
    (
        Resource::Memlock,
        Some(8 * MIB),
        Some(8 * MIB),
        "locked memory cannot be reclaimed or swapped (systemd's default)",
    ),
    (
        Resource::Nofile,
        Some(1024),
        Some(524_288),
        "systemd's defaults: a select()-safe soft limit, a hard limit servers may raise to",
    ),
    (
        Resource::Core,
        Some(0),
        INF,
        "no core files unless a program asks for them",
    ),
    (
        Resource::Nproc,
        INF,
        INF,
        "counted per host uid, and a VE's uids are its own: the pids cgroup (numproc) limits",
    ),
    (Resource::Stack, Some(8 * MIB), INF, "the usual default"),
    (
        Resource::Msgqueue,
        Some(819_200),
        Some(819_200),
        "the kernel's default for POSIX message queues",
    ),
    (Resource::Cpu, INF, INF, "the cpu cgroup limits CPU time"),
    (Resource::Fsize, INF, INF, "disk quotas limit files"),
    (Resource::Data, INF, INF, "the memory cgroup limits memory"),
    (Resource::As, INF, INF, "the memory cgroup limits memory"),
    (Resource::Rss, INF, INF, "no effect on Linux"),
    (Resource::Locks, INF, INF, "no effect on Linux"),
    (
        Resource::Rttime,
        INF,
        INF,
        "real-time scheduling is not allowed",
    ),
];

/// The soft and hard limit to ask for when the hard limit may not rise
/// above `current_hard`: lowering always works.
pub fn clamp(soft: Option<u64>, hard: Option<u64>, current_hard: Option<u64>) -> Rlimit {
    let min = |a: Option<u64>, b: Option<u64>| match (a, b) {
        (None, x) | (x, None) => x,
        (Some(a), Some(b)) => Some(a.min(b)),
    };
    let hard = min(hard, current_hard);
    Rlimit {
        current: min(soft, hard),
        maximum: hard,
    }
}

/// The hard open-files limit of a VE that sets none (its `nofile`).
pub const DEFAULT_NOFILE: u64 = 524_288;

/// Sets [`LIMITS`] on the calling process, with `nofile` as the hard
/// open-files limit (the VE's `nofile`; the soft one stays at most 1024),
/// and the pending-signal limit to the kernel's own default (`threads-max
/// / 2`). Must run before the process enters a user namespace.
pub fn apply(nofile: u64) -> std::io::Result<()> {
    let sigpending = crate::procfs::read_small("/proc/sys/kernel/threads-max")
        .and_then(|s| s.trim().parse::<u64>().ok())
        .map(|t| t / 2);
    let extra = (
        Resource::Sigpending,
        sigpending,
        sigpending,
        "the kernel's default",
    );
    for &(res, soft, hard, _) in LIMITS.iter().chain(std::iter::once(&extra)) {
        let (soft, hard) = if res == Resource::Nofile {
            (Some(nofile.min(1024)), Some(nofile))
        } else {
            (soft, hard)
        };
        let want = Rlimit {
            current: soft,
            maximum: hard,
        };
        match setrlimit(res, want) {
            Ok(()) => {}
            Err(rustix::io::Errno::PERM) => {
                setrlimit(res, clamp(soft, hard, getrlimit(res).maximum))?;
            }
            Err(e) => return Err(e.into()),
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn clamping_never_raises_past_the_hard_limit() {
        let r = clamp(Some(1024), Some(524_288), Some(20_000));
        assert_eq!((r.current, r.maximum), (Some(1024), Some(20_000)));
        let r = clamp(Some(50_000), INF, Some(20_000));
        assert_eq!((r.current, r.maximum), (Some(20_000), Some(20_000)));
        let r = clamp(INF, INF, INF);
        assert_eq!((r.current, r.maximum), (INF, INF));
        let r = clamp(Some(0), Some(0), Some(99));
        assert_eq!((r.current, r.maximum), (Some(0), Some(0)));
    }

    #[test]
    fn every_limit_is_consistent() {
        for (res, soft, hard, why) in LIMITS {
            assert!(!why.is_empty(), "{res:?} needs a reason");
            if let (Some(s), Some(h)) = (soft, hard) {
                assert!(s <= h, "{res:?}: soft above hard");
            }
        }
        let guarded = [Resource::Rtprio, Resource::Nice];
        for g in guarded {
            assert!(
                LIMITS.iter().any(|l| l.0 == g && l.2 == Some(0)),
                "{g:?} must be 0"
            );
        }
    }
}

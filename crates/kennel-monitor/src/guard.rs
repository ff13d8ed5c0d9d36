//! The guard over the VE's dying memory cgroups (cgroup v2; see
//! `kennel_cgroup::MemoryWatch` for why): every [`EVERY`], the VE's
//! `cgroup.stat` is read; over [`BUDGET`] dying cgroups, the kernel is asked
//! to reclaim in the VE ([`RECLAIM`]), which frees those that only page
//! cache held (an honest VE's, after its units come and go); still over it
//! at the next look, the VE is ended (its exit frees the tmpfs and swap
//! pages that hold the rest). One read of a small kernel file a VE
//! cannot write, per [`EVERY`]: nothing an idle host notices.

use std::os::fd::{AsFd, BorrowedFd, FromRawFd, OwnedFd, RawFd};
use std::time::{Duration, Instant};

/// How often the guard looks.
pub(crate) const EVERY: Duration = Duration::from_secs(10);

/// The most dying memory cgroups a VE may keep: as many as it may have
/// live ones (`cgroup.max.descendants`).
pub(crate) const BUDGET: u64 = 1024;

/// What one reclaim asks of the VE's cgroup.
const RECLAIM: &[u8] = b"64M";

/// Where `kennel start` hands the VE cgroup's `cgroup.stat` and
/// `memory.reclaim` (kennel-runtime's `launch::handover`).
const FD_STAT: RawFd = 8;
const FD_RECLAIM: RawFd = 9;

#[derive(Debug)]
pub(crate) struct Guard {
    stat: OwnedFd,
    reclaim: Option<OwnedFd>,
    next: Instant,
    /// Over the budget at the last look (and reclaimed since).
    over: bool,
}

impl Guard {
    /// The guard, if `kennel start` handed over the files (memory on
    /// cgroup v2).
    pub(crate) fn inherited() -> Option<Guard> {
        let stat = owned_if_open(FD_STAT)?;
        Some(Guard {
            stat,
            reclaim: owned_if_open(FD_RECLAIM),
            next: Instant::now() + EVERY,
            over: false,
        })
    }

    /// The descriptors, for close-on-exec before the teardown.
    pub(crate) fn fds(&self) -> impl Iterator<Item = BorrowedFd<'_>> {
        std::iter::once(self.stat.as_fd()).chain(self.reclaim.as_ref().map(|r| r.as_fd()))
    }

    /// How long until the next look.
    pub(crate) fn wait(&self, now: Instant) -> Duration {
        self.next.saturating_duration_since(now)
    }

    /// Looks if it is time; returns the dying count when the VE must end.
    pub(crate) fn look(&mut self, now: Instant) -> Option<u64> {
        if now < self.next {
            return None;
        }
        self.next = now + EVERY;
        let dying = self.dying()?;
        match verdict(dying, self.over) {
            Verdict::Fine => {
                self.over = false;
                None
            }
            Verdict::Reclaim => {
                self.over = true;
                if let Some(r) = &self.reclaim {
                    // EAGAIN when less than asked could be reclaimed.
                    let _ = rustix::io::write(r, RECLAIM);
                }
                None
            }
            Verdict::End => Some(dying),
        }
    }

    fn dying(&self) -> Option<u64> {
        let mut buf = [0u8; 512];
        let n = rustix::io::pread(&self.stat, &mut buf, 0).ok()?;
        dying_descendants(&buf[..n])
    }
}

/// What a look decides.
#[derive(Debug, PartialEq, Eq)]
enum Verdict {
    Fine,
    /// Over the budget: reclaim, look again.
    Reclaim,
    /// Over the budget twice, with a reclaim between.
    End,
}

fn verdict(dying: u64, over_before: bool) -> Verdict {
    match (dying > BUDGET, over_before) {
        (false, _) => Verdict::Fine,
        (true, false) => Verdict::Reclaim,
        (true, true) => Verdict::End,
    }
}

/// `nr_dying_descendants` in the text of a `cgroup.stat`.
fn dying_descendants(stat: &[u8]) -> Option<u64> {
    std::str::from_utf8(stat)
        .ok()?
        .lines()
        .find_map(|l| l.strip_prefix("nr_dying_descendants "))
        .and_then(|n| n.trim().parse().ok())
}

/// Takes descriptor `fd` if it is open.
fn owned_if_open(fd: RawFd) -> Option<OwnedFd> {
    // SAFETY: only borrowed for the check; `fcntl(F_GETFD)` on a closed
    // number fails with EBADF and touches nothing.
    let open = rustix::io::fcntl_getfd(unsafe { BorrowedFd::borrow_raw(fd) }).is_ok();
    // SAFETY: `kennel start` hands this number to the monitor and nothing
    // else in this process refers to it (the monitor opens nothing before
    // taking its inheritance).
    open.then(|| unsafe { OwnedFd::from_raw_fd(fd) })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_dying_count_is_read_from_cgroup_stat() {
        let text = b"nr_descendants 3\nnr_dying_descendants 1207\nnr_subsys_cgroup 4\n";
        assert_eq!(dying_descendants(text), Some(1207));
        assert_eq!(dying_descendants(b"nr_descendants 3\n"), None);
        assert_eq!(dying_descendants(b"nr_dying_descendants x\n"), None);
        assert_eq!(dying_descendants(&[0xff, 0xfe]), None);
    }

    #[test]
    fn a_ve_ends_only_when_a_reclaim_did_not_bring_it_within_budget() {
        assert_eq!(verdict(BUDGET, false), Verdict::Fine);
        assert_eq!(verdict(BUDGET + 1, false), Verdict::Reclaim);
        assert_eq!(verdict(BUDGET + 1, true), Verdict::End);
        // Back within budget after the reclaim: nothing happens.
        assert_eq!(verdict(10, true), Verdict::Fine);
    }
}

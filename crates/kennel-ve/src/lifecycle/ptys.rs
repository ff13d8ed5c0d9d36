//! The host's pty reserve, shared by the running VEs.
//!
//! Each VE's `/dev/pts` is an instance the host made (see
//! `kennel_runtime::devpts`): the VE cannot raise its `max` (`numpty`),
//! and its ptys may come from `kernel.pty.reserve`, which devpts
//! instances a VE mounts itself never reach. That is a guarantee only
//! while the running VEs' maxima, together, fit in the reserve: so a start
//! takes its VE's share under the host lock, and is refused (naming the
//! sysctl to raise) when the share would not fit. The host keeps
//! [`HOST_PTYS`] of the reserve for its own logins.
//!
//! `kennel set --numpty` on a running VE takes the larger of its old and
//! new limit until the VE's next start: a lower limit stops new ptys, but
//! those the VE holds stay open.
//!
//! The ledger is one empty file per running VE, `<run>/ptys/<id>=<n>`:
//! one directory read sums it, whatever the number of VEs. A VE's entry
//! goes with its teardown; an entry left by a crash is found stale (its VE
//! is not running) and dropped when a start would otherwise be refused.

use std::fs;
use std::path::PathBuf;

use kennel_runtime::launch::exhausted::sysctl;

use super::Kennel;
use crate::error::{io, Result, VeError};
use crate::id::VeId;
use crate::lock::Lock;

/// What the host keeps of `kernel.pty.reserve` for itself.
pub const HOST_PTYS: u64 = 128;

/// The reserve the running VEs may share: `kernel.pty.reserve` less
/// [`HOST_PTYS`]; `None` if the kernel does not say.
pub fn pty_budget() -> Option<u64> {
    sysctl("kernel.pty.reserve").map(|r| r.saturating_sub(HOST_PTYS))
}

/// The host's pty limits (`kernel.pty.max`, `kernel.pty.reserve`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PtyLimits {
    pub max: u64,
    pub reserve: u64,
}

/// Room above the reserve for devpts instances that do not draw on it
/// (those mounted inside VEs, other container managers').
pub const UNRESERVED_PTYS: u64 = 1024;

/// The pty limits this host needs, or `None` if `have` is enough.
///
/// Each VE's devpts is mounted from the host's initial mount namespace, so
/// its ptys may come from `kernel.pty.reserve` (ptys other devpts
/// instances cannot take), and is limited to the VE's `numpty`. So the
/// reserve must cover `ve_ptys` (the running VEs' numpty together) plus
/// [`HOST_PTYS`], and `kernel.pty.max` must leave [`UNRESERVED_PTYS`]
/// above it for everyone else.
pub fn pty_needs(have: PtyLimits, ve_ptys: u64) -> Option<PtyLimits> {
    let reserve = have.reserve.max(ve_ptys.saturating_add(HOST_PTYS));
    let max = have.max.max(reserve.saturating_add(UNRESERVED_PTYS));
    let need = PtyLimits { max, reserve };
    (need != have).then_some(need)
}

/// `(id, numpty)` from a ledger entry's name.
fn parse_entry(name: &str) -> Option<(&str, u64)> {
    let (id, n) = name.split_once('=')?;
    Some((id, n.parse().ok()?))
}

/// The sum of `entries`' shares, leaving out `except`.
pub fn ledger_sum<'a>(entries: impl Iterator<Item = &'a str>, except: &str) -> u64 {
    entries
        .filter_map(parse_entry)
        .filter(|(id, _)| *id != except)
        .map(|(_, n)| n)
        .sum()
}

impl Kennel {
    fn pty_ledger(&self) -> PathBuf {
        self.paths.run.join("ptys")
    }

    fn ledger_names(&self) -> Result<Vec<String>> {
        let dir = self.pty_ledger();
        match fs::read_dir(&dir) {
            Ok(rd) => Ok(rd
                .flatten()
                .filter_map(|e| e.file_name().into_string().ok())
                .collect()),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(Vec::new()),
            Err(e) => Err(io(format!("read {}", dir.display()))(e)),
        }
    }

    /// Records that VE `id` (starting, or changing its limit) holds `n`
    /// ptys of the reserve; refuses if the running VEs would then hold
    /// more than [`pty_budget`].
    pub(crate) fn take_ptys(&self, id: &VeId, n: u64) -> Result<()> {
        let _host = self.lock_host()?;
        let dir = self.pty_ledger();
        fs::create_dir_all(&dir).map_err(io(format!("create {}", dir.display())))?;
        // One read of the ledger serves the sum and the VE's own old entry
        // (with 5,000 VEs running, each read was 4% of a start).
        let mut names = self.ledger_names()?;
        if let Some(budget) = pty_budget() {
            if ledger_sum(names.iter().map(String::as_str), id.as_str()) + n > budget {
                self.drop_stale_entries(&names);
                names = self.ledger_names()?;
            }
            let others = ledger_sum(names.iter().map(String::as_str), id.as_str());
            if others + n > budget {
                let have = PtyLimits {
                    max: sysctl("kernel.pty.max").unwrap_or(0),
                    reserve: budget + HOST_PTYS,
                };
                let need = pty_needs(have, others + n).unwrap_or(have);
                return Err(VeError::HostUnsupported(format!(
                    "VE {id} needs {n} ptys, but the running VEs already hold {others} of the {budget} that kernel.pty.reserve leaves them: raise it (sysctl -w kernel.pty.reserve={} kernel.pty.max={}), or give VEs fewer (--numpty)",
                    need.reserve, need.max
                )));
            }
        }
        let entry = format!("{id}={n}");
        if names.contains(&entry) {
            return Ok(());
        }
        self.remove_entries_of(id, &names);
        let entry = dir.join(entry);
        fs::write(&entry, b"").map_err(io(format!("write {}", entry.display())))
    }

    /// Drops VE `id`'s entry (its teardown).
    pub(crate) fn release_ptys(&self, id: &VeId) {
        self.remove_entries_of(id, &self.ledger_names().unwrap_or_default());
    }

    /// Removes those of the ledger's `names` that are VE `id`'s.
    fn remove_entries_of(&self, id: &VeId, names: &[String]) {
        let dir = self.pty_ledger();
        for name in names {
            if parse_entry(name).is_some_and(|(v, _)| v == id.as_str()) {
                let _ = fs::remove_file(dir.join(name));
            }
        }
    }

    /// Entries whose VE no longer runs (a crash without teardown). A VE
    /// that is still starting has no state yet, but its start holds the
    /// VE's lock: an entry whose VE is locked is not stale.
    fn drop_stale_entries(&self, names: &[String]) {
        for name in names {
            let Some(id) = parse_entry(name).and_then(|(id, _)| VeId::parse(id).ok()) else {
                continue;
            };
            let Some(_idle) = Lock::try_acquire(&self.ve_lock_path(&id)) else {
                continue;
            };
            let running = self.state_of(&id).is_ok_and(|(s, _)| s.is_running());
            if !running {
                let _ = fs::remove_file(self.pty_ledger().join(name));
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sums_the_ledger_but_one_ve() {
        let names = ["101=64", "102=32", "bogus", "103=x", "104=8"];
        assert_eq!(ledger_sum(names.iter().copied(), "none"), 104);
        assert_eq!(ledger_sum(names.iter().copied(), "102"), 72);
    }
}

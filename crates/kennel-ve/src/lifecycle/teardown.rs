//! What happens on the host when a VE ends: `kennel __ve-exited`, which the
//! VE's monitor execs into once it has reaped init, and the same cleanup
//! when a command finds a VE that died without its monitor.
//!
//! Mounts and namespaces need no cleanup: they only ever existed in the
//! VE's own namespaces, which the kernel frees with the VE's last process.
//! What remains on the host is the VE's cgroups, its run directory, and
//! the host side of its network (links, proxy entries, nftables tables).

use std::fs;
use std::time::Duration;

use kennel_cgroup::CgroupRecord;
use kennel_runtime::state::{ExitRecord, MONITOR_SOCKET, PENDING_STATE_FILE, STATE_FILE};

use super::Kennel;
use crate::error::Result;
use crate::id::VeId;
use crate::lock::Lock;

impl Kennel {
    /// Called by the monitor (as the monitor's process) after the VE's
    /// init ended; `how` is the monitor's account (`exited 0`, `signal 9`).
    /// Does not take the VE lock: `kennel stop` holds it while it waits for
    /// exactly this. A VE that rebooted itself is started again.
    pub fn ve_exited(&self, id: &VeId, how: &str) -> Result<()> {
        let run_dir = self.paths.ve_run(id);
        let by_kennel = run_dir.join(KILL_REQUESTED_FILE).exists();
        let oom_kills = self
            .ve_cgroup(id)
            .ok()
            .and_then(|r| r.cgroup(self.cgroups().ok()?).oom_kills())
            .unwrap_or(0);
        let what = exit_words(how, by_kennel, oom_kills);
        self.cleanup_host_side(id, Some(&what))?;
        if what == "rebooted" {
            // A VE that reboots again and again is started again ever more
            // slowly: the teardown and start cost the host CPU time that
            // is not charged to the VE.
            let delay = self.note_reboot(id);
            // A stop, kill or start meanwhile takes this marker away, and
            // with it the restart (`take_pending_restart`).
            let marker = self.paths.ve_run(id).join(RESTART_PENDING_FILE);
            let _ = fs::write(&marker, b"");
            // Wait, but give up as soon as the restart was taken away.
            let until = std::time::Instant::now() + delay;
            while std::time::Instant::now() < until && marker.exists() {
                std::thread::sleep(std::time::Duration::from_millis(200));
            }
            // Start again unless a command is working on the VE right now
            // (it would have its own plan, e.g. a stop), or took the
            // restart away meanwhile.
            if let Some(_lock) = Lock::try_acquire(&self.ve_lock_path(id)) {
                if fs::remove_file(&marker).is_err() {
                    return Ok(());
                }
                let cfg = self.config(id)?;
                match self.start_locked(&cfg) {
                    Ok(_) | Err(crate::error::VeError::AlreadyRunning(_)) => {}
                    Err(e) => return Err(e),
                }
            }
        }
        Ok(())
    }

    /// Cancels the restart a rebooting VE waits for (see `ve_exited`);
    /// true if there was one. Call with the VE's lock held.
    pub(crate) fn take_pending_restart(&self, id: &VeId) -> bool {
        fs::remove_file(self.paths.ve_run(id).join(RESTART_PENDING_FILE)).is_ok()
    }

    /// Whether VE `id` rebooted and waits to be started again (a stop
    /// takes that restart away).
    pub(crate) fn restart_pending(&self, id: &VeId) -> bool {
        self.paths.ve_run(id).join(RESTART_PENDING_FILE).exists()
    }

    /// Records a reboot of VE `id` in its run directory and returns how
    /// long to wait before starting it again ([`reboot_delay`]).
    fn note_reboot(&self, id: &VeId) -> std::time::Duration {
        let path = self.paths.ve_run(id).join(REBOOTS_FILE);
        let now = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| d.as_secs());
        let mut history = recent_reboots(&fs::read_to_string(&path).unwrap_or_default(), now);
        history.push(now);
        let text: Vec<String> = history.iter().map(u64::to_string).collect();
        let _ = fs::write(&path, text.join("\n"));
        reboot_delay(history.len())
    }

    /// Removes the host-side remains of a VE that is no longer running:
    /// kills stragglers, removes its cgroups and run files, and records how
    /// it ended (`how`), keeping only `exit.json` and the monitor log.
    pub(crate) fn cleanup_host_side(&self, id: &VeId, how: Option<&str>) -> Result<()> {
        let run_dir = self.paths.ve_run(id);
        if let Some(how) = how {
            let rec = ExitRecord {
                at: humantime::format_rfc3339_seconds(std::time::SystemTime::now()).to_string(),
                how: how.to_string(),
            };
            if run_dir.is_dir() {
                let _ = rec.save(&run_dir);
            }
        }
        let host = self.cgroups()?;
        let record = self.ve_cgroup(id)?;
        let cg = record.cgroup(host);
        if cg.exists() && cg.remove(Duration::from_secs(2)).is_err() {
            cg.kill_all()?;
            cg.remove(Duration::from_secs(5))?;
        }
        // Only once the cgroup is gone: until then, the record is how the
        // next command finds it.
        CgroupRecord::remove(&run_dir)?;
        self.remove_old_cgroup_parent(&record);
        // After the cgroup is empty: no process of the VE holds its
        // network namespace any more.
        self.teardown_network(id)?;
        // No process of the VE is left to write to its disk.
        self.unmount_disk(id)?;
        self.release_ptys(id);
        clear_run_files(&run_dir);
        Ok(())
    }
}

impl Kennel {
    /// After the last VE that started below a `cgroup_parent` the host
    /// has since changed: the monitors' cgroup there, if empty, and the
    /// parent itself if it is the one Kennel names and makes by default
    /// (a configured parent may be a systemd unit's cgroup: not Kennel's
    /// to remove).
    fn remove_old_cgroup_parent(&self, record: &CgroupRecord) {
        let Some((parent, _)) = record.as_str().rsplit_once('/') else {
            return;
        };
        if parent == self.cgroup_parent() {
            return;
        }
        if let Ok(host) = self.cgroups() {
            host.cgroup(&format!("{parent}/_monitor"))
                .remove_if_unused();
            if parent == self.paths.default_cgroup_parent() {
                host.cgroup(parent).remove_if_unused();
            }
        }
    }
}

/// The run file `kennel stop`/`kill` writes before it sends init SIGKILL:
/// a SIGKILL without it came from the kernel (the OOM killer) or another
/// host process.
pub(crate) const KILL_REQUESTED_FILE: &str = "kill-requested";

/// Removes the files that say a VE runs (its state and monitor socket). The
/// rest of the run directory stays for the next start: the exit record,
/// the monitor's log, the seccomp program, the (empty) mount points.
pub(crate) fn clear_run_files(run_dir: &std::path::Path) {
    for f in [MONITOR_SOCKET, PENDING_STATE_FILE, KILL_REQUESTED_FILE] {
        let _ = fs::remove_file(run_dir.join(f));
    }
    // Last: the state file is what says "this VE ran".
    let _ = fs::remove_file(run_dir.join(STATE_FILE));
}

/// The run file that says a rebooted VE waits to be started again.
const RESTART_PENDING_FILE: &str = "restart-pending";

/// The run file that remembers a VE's recent reboots (seconds since 1970).
const REBOOTS_FILE: &str = "reboots";
/// How far back reboots count: well beyond the longest delay, so that a
/// VE that keeps rebooting stays at it rather than falling out of the
/// window and starting again at once.
const REBOOT_WINDOW_SECS: u64 = 900;
/// Reboots in the window that restart at once.
const FREE_REBOOTS: usize = 5;

/// The times (seconds since 1970) in a reboot history that fall in the
/// window before `now`; what is not a time, or lies ahead, is dropped.
fn recent_reboots(history: &str, now: u64) -> Vec<u64> {
    history
        .split_whitespace()
        .filter_map(|t| t.parse::<u64>().ok())
        .filter(|&t| t.saturating_add(REBOOT_WINDOW_SECS) >= now && t <= now)
        .collect()
}

/// How long to wait before starting a VE that rebooted `recent` times in
/// the last 15 minutes: at once for the first [`FREE_REBOOTS`], then 1,
/// 2, 4 ... seconds, at most 60.
pub fn reboot_delay(recent: usize) -> std::time::Duration {
    let over = recent.saturating_sub(FREE_REBOOTS);
    if over == 0 {
        return std::time::Duration::ZERO;
    }
    let secs = 1u64 << (over - 1).min(6);
    std::time::Duration::from_secs(secs.min(60))
}

/// How init ended, in words: [`describe_exit`], and for a SIGKILL whom it
/// came from: `kennel stop`/`kill` (`by_kennel`), else the OOM killer of
/// the VE's own memory limit if it killed anything in the VE.
fn exit_words(how: &str, by_kennel: bool, oom_kills: u64) -> String {
    let words = describe_exit(how);
    if words != describe_exit("signal 9") {
        return words;
    }
    if by_kennel {
        "killed by kennel".into()
    } else if oom_kills > 0 {
        "killed by the OOM killer of its own memory limit".into()
    } else {
        words
    }
}

/// Turns the monitor's `exited N` / `signal N` into words. In a PID
/// namespace, reboot(2) ends init with SIGHUP (restart) or SIGINT (power
/// off / halt).
fn describe_exit(how: &str) -> String {
    let mut w = how.split_whitespace();
    match (w.next(), w.next().and_then(|n| n.parse::<i32>().ok())) {
        (Some("exited"), Some(code)) => format!("init exited with status {code}"),
        (Some("signal"), Some(libc::SIGHUP)) => "rebooted".into(),
        (Some("signal"), Some(libc::SIGINT)) => "powered off".into(),
        (Some("signal"), Some(libc::SIGKILL)) => "killed (SIGKILL)".into(),
        (Some("signal"), Some(n)) => format!("init killed by signal {n}"),
        _ => how.to_string(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reboot_loops_back_off() {
        let d = |n| reboot_delay(n).as_secs();
        assert_eq!((d(1), d(5)), (0, 0));
        assert_eq!((d(6), d(7), d(8)), (1, 2, 4));
        assert_eq!((d(12), d(100)), (60, 60));
    }

    #[test]
    fn reboot_history_keeps_the_window() {
        let now = 10_000;
        let text = "8000 9099 9100 9999 junk 10000 10001 18446744073709551615";
        assert_eq!(recent_reboots(text, now), vec![9100, 9999, 10000]);
        assert!(recent_reboots("", now).is_empty());
    }

    /// A VE that reboots as soon as it starts reaches the longest delay
    /// and stays there.
    #[test]
    fn a_steady_reboot_loop_stays_at_the_longest_delay() {
        let (mut now, mut history, mut delays) = (1_000_000u64, String::new(), Vec::new());
        for _ in 0..60 {
            let mut recent = recent_reboots(&history, now);
            recent.push(now);
            let d = reboot_delay(recent.len()).as_secs();
            delays.push(d);
            history = recent
                .iter()
                .map(u64::to_string)
                .collect::<Vec<_>>()
                .join(" ");
            now += d + 1;
        }
        assert_eq!(&delays[..12], &[0, 0, 0, 0, 0, 1, 2, 4, 8, 16, 32, 60]);
        assert!(delays[12..].iter().all(|&d| d == 60), "{delays:?}");
    }

    #[test]
    fn who_sent_sigkill() {
        assert_eq!(exit_words("signal 9", true, 3), "killed by kennel");
        assert_eq!(
            exit_words("signal 9", false, 1),
            "killed by the OOM killer of its own memory limit"
        );
        assert_eq!(exit_words("signal 9", false, 0), "killed (SIGKILL)");
        assert_eq!(
            exit_words("exited 0", false, 5),
            "init exited with status 0"
        );
    }

    #[test]
    fn words_for_each_ending() {
        assert_eq!(describe_exit("exited 0"), "init exited with status 0");
        assert_eq!(describe_exit("signal 1"), "rebooted");
        assert_eq!(describe_exit("signal 2"), "powered off");
        assert_eq!(describe_exit("signal 9"), "killed (SIGKILL)");
        assert_eq!(describe_exit("weird"), "weird");
    }
}

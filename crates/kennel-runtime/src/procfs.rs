//! What Kennel reads from and writes to `/proc` about single processes:
//! whether a PID is still the process Kennel started (its start time), and
//! the OOM score adjustment a VE's processes must not inherit.

use std::fs;
use std::io::Read;

/// The two fields of `/proc/PID/stat` Kennel needs.
struct Stat {
    /// Field 3: `R`, `S`, ... `Z` for a zombie.
    state: char,
    /// Field 22: start time in clock ticks since boot.
    start: u64,
}

/// Reads a small `/proc` file: one buffer, no size probe (these files
/// report size 0, and `exec` reads several of them on its way).
pub(crate) fn read_small(path: &str) -> Option<String> {
    let mut text = Vec::with_capacity(4096);
    fs::File::open(path).ok()?.read_to_end(&mut text).ok()?;
    String::from_utf8(text).ok()
}

fn stat(pid: i32) -> Option<Stat> {
    parse_stat(&read_small(&format!("/proc/{pid}/stat"))?)
}

fn parse_stat(text: &str) -> Option<Stat> {
    // The command name (field 2) may contain spaces and ')': skip to the
    // last ')'.
    let rest = text.get(text.rfind(')')? + 2..)?;
    // `rest` starts at field 3.
    let mut fields = rest.split(' ');
    let state = fields.next()?.chars().next()?;
    let start = fields.nth(22 - 4)?.parse().ok()?;
    Some(Stat { state, start })
}

/// Start time of `pid` in clock ticks since boot, or `None` if there is no
/// such process.
pub fn start_time(pid: i32) -> Option<u64> {
    stat(pid).map(|s| s.start)
}

/// True if `pid` exists and started at `start` (so it was not reused).
pub fn is_same_process(pid: i32, start: u64) -> bool {
    pid > 0 && start_time(pid) == Some(start)
}

/// True if `pid` is the process that started at `start` and has not ended
/// (a zombie has: it only waits to be reaped).
pub fn is_live_process(pid: i32, start: u64) -> bool {
    pid > 0 && stat(pid).is_some_and(|s| s.start == start && s.state != 'Z')
}

/// A pidfd of `pid` if it is the live process that started at `start`:
/// checked after `pidfd_open`, so that from then on the descriptor pins
/// that process and no other can take its PID.
pub(crate) fn pin_live(pid: i32, start: u64) -> crate::error::Result<std::os::fd::OwnedFd> {
    use crate::error::RuntimeError;
    use rustix::process::{pidfd_open, Pid, PidfdFlags};
    let p = Pid::from_raw(pid).ok_or(RuntimeError::NotRunning)?;
    let fd = pidfd_open(p, PidfdFlags::empty()).map_err(|_| RuntimeError::NotRunning)?;
    if !is_live_process(pid, start) {
        return Err(RuntimeError::NotRunning);
    }
    Ok(fd)
}

/// Lifts a negative OOM score adjustment inherited from the caller (a
/// service with `OOMScoreAdjust=`, an sshd at -1000) to 0, so that no
/// process of a VE is shielded from the OOM killer; a positive one is kept.
///
/// Must run as the host's root, before any user namespace is entered: the
/// kernel also keeps a floor (`oom_score_adj_min`) that a process may
/// always return to, and only a writer with `CAP_SYS_RESOURCE` on the host
/// moves that floor. Hence the write even when the value does not change.
pub fn lift_oom_protection() -> std::io::Result<()> {
    let p = "/proc/self/oom_score_adj";
    let cur: i32 = fs::read_to_string(p)?.trim().parse().unwrap_or(0);
    fs::write(p, cur.max(0).to_string())
}

/// Fields 48 and 49 of `/proc/PID/stat`: where the command line starts
/// and ends in the process's memory.
fn arg_area(stat: &str) -> Option<(u64, u64)> {
    let rest = stat.get(stat.rfind(')')? + 2..)?;
    // `rest` starts at field 3.
    let mut f = rest.split(' ').skip(48 - 3);
    Some((f.next()?.parse().ok()?, f.next()?.parse().ok()?))
}

/// Where this process's command line lies in its memory.
fn own_arg_area() -> Option<(u64, u64)> {
    arg_area(&read_small("/proc/self/stat")?)
}

/// Overwrites `len` bytes at `offset` of this process's own command line
/// (what `ps` and `/proc/PID/cmdline` show to others) with `byte`. The
/// process's own copy of its arguments, taken at start, is not affected.
/// Best effort: a failure leaves the command line as it was.
pub fn overwrite_own_cmdline(spans: &[(usize, usize)], byte: u8) {
    if let Some(area) = own_arg_area() {
        overwrite_in(area, spans, byte);
    }
}

fn overwrite_in((start, end): (u64, u64), spans: &[(usize, usize)], byte: u8) {
    let Ok(mem) = fs::OpenOptions::new().write(true).open("/proc/self/mem") else {
        return;
    };
    for &(at, len) in spans {
        let from = start + at as u64;
        let len = len.min(end.saturating_sub(from) as usize);
        let _ = std::os::unix::fs::FileExt::write_all_at(&mem, &vec![byte; len], from);
    }
}

/// Blanks this process's whole command line (a child about to join a
/// VE's PID namespace, where the VE can read it: it holds the
/// administrator's `kennel` command).
pub fn blank_own_cmdline() {
    if let Some((start, end)) = own_arg_area() {
        overwrite_in((start, end), &[(0, end.saturating_sub(start) as usize)], 0);
    }
}

/// Seconds since boot, from `/proc/uptime`.
pub fn uptime_secs() -> Option<f64> {
    fs::read_to_string("/proc/uptime")
        .ok()?
        .split_whitespace()
        .next()?
        .parse()
        .ok()
}

/// Clock ticks per second (`_SC_CLK_TCK`).
pub fn ticks_per_sec() -> u64 {
    rustix::param::clock_ticks_per_second()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_stat_with_odd_comm() {
        let text = "123 (a b) c) Z 1 123 123 0 -1 4194560 100 0 0 0 0 0 0 0 20 0 1 0 98765 1000 10";
        let s = parse_stat(text).expect("parse");
        assert_eq!((s.state, s.start), ('Z', 98765));
    }

    #[test]
    fn finds_the_argument_area() {
        let mut fields: Vec<String> = (3..=52).map(|n| n.to_string()).collect();
        fields[48 - 3] = "1000".into();
        fields[49 - 3] = "1042".into();
        let stat = format!("42 (a) b) {}", fields.join(" "));
        assert_eq!(arg_area(&stat), Some((1000, 1042)));
        let own = fs::read_to_string("/proc/self/stat").expect("stat");
        assert!(arg_area(&own).is_some_and(|(s, e)| s > 0 && e > s));
    }

    #[test]
    fn own_process_is_same() {
        let me = std::process::id() as i32;
        let st = start_time(me).expect("own start time");
        assert!(is_same_process(me, st));
        assert!(is_live_process(me, st));
        assert!(!is_same_process(me, st + 1));
    }
}

//! A fork or namespace that the kernel refused for want of a shared pool,
//! named as the setting the operator raises.
//!
//! `clone3` says `EAGAIN` for four different limits: the host's PID space
//! (`kernel.pid_max`: every process of every VE takes a number there), its
//! thread table (`kernel.threads-max`), the cgroup's `pids.max` (a VE's
//! `numproc`, or the monitors' cgroup) and `RLIMIT_NPROC` (which root, the
//! real uid here, is exempt from). It says `ENOSPC` when a per-user
//! namespace count (`user.max_*_namespaces`, charged to the creating
//! namespace's owner: see `owner`) or the nesting depth is reached. Which
//! one it was is not in the errno: it is read from the host right after
//! the failure ([`HostFacts`]), and [`explain`] picks the pool that is
//! full. For namespaces the caller may also say which kind the kernel
//! refuses (found by trying each: `owner::refused_kind`). Anything else
//! keeps the plain system error.

use std::fs;
use std::io;

use crate::error::RuntimeError;

/// The host's PID and thread figures, read right after a refused clone.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct HostFacts {
    /// `kernel.pid_max`.
    pub pid_max: Option<u64>,
    /// `kernel.threads-max`.
    pub threads_max: Option<u64>,
    /// Threads (each holds a PID) on the host: `/proc/loadavg`'s total.
    pub threads: Option<u64>,
    /// The smallest of `user.max_{user,pid,uts,ipc}_namespaces`, and its
    /// name.
    pub ns_limit: Option<(&'static str, u64)>,
    /// The namespace kind found refused by trying each (its sysctl and
    /// value), when the caller tried.
    pub ns_refused: Option<(&'static str, u64)>,
}

/// Threads from `/proc/loadavg` (`0.00 0.01 0.05 1/123 4567`).
pub fn loadavg_threads(text: &str) -> Option<u64> {
    let field = text.split_whitespace().nth(3)?;
    field.split_once('/')?.1.parse().ok()
}

/// The number a sysctl (`kernel.pid_max`) holds now, if it reads as one.
pub fn sysctl(name: &str) -> Option<u64> {
    fs::read_to_string(format!("/proc/sys/{}", name.replace('.', "/")))
        .ok()?
        .trim()
        .parse()
        .ok()
}

/// The namespace kinds a VE's clone creates: their flag and sysctl.
pub const NS_KINDS: [(i32, &str); 4] = [
    (libc::CLONE_NEWUSER, "user.max_user_namespaces"),
    (libc::CLONE_NEWPID, "user.max_pid_namespaces"),
    (libc::CLONE_NEWUTS, "user.max_uts_namespaces"),
    (libc::CLONE_NEWIPC, "user.max_ipc_namespaces"),
];

impl HostFacts {
    /// Reads them from this host.
    pub fn read() -> Self {
        HostFacts {
            pid_max: sysctl("kernel.pid_max"),
            threads_max: sysctl("kernel.threads-max"),
            threads: fs::read_to_string("/proc/loadavg")
                .ok()
                .and_then(|t| loadavg_threads(&t)),
            ns_limit: NS_KINDS
                .iter()
                .filter_map(|(_, n)| Some((*n, sysctl(n)?)))
                .min_by_key(|(_, v)| *v),
            ns_refused: None,
        }
    }
}

/// Room left under a limit at which the pool counts as full: what a
/// start takes, and what else started meanwhile.
const SLACK: u64 = 64;

fn full(used: Option<u64>, max: Option<u64>) -> bool {
    matches!((used, max), (Some(u), Some(m)) if u.saturating_add(SLACK) >= m)
}

/// The one line for a clone that failed with `errno` while `what` (e.g.
/// "fork the VE's monitor"), or `None` if no shared pool explains it.
/// `owner` is the host uid the new user namespace is charged to.
pub fn explain(errno: i32, what: &str, facts: &HostFacts, owner: Option<u32>) -> Option<String> {
    match errno {
        libc::EAGAIN => Some(if full(facts.threads, facts.pid_max) {
            format!(
                "cannot {what}: the host's PIDs are used up ({} threads, kernel.pid_max = {}): raise it (sysctl -w kernel.pid_max=4194304, and persist it in /etc/sysctl.d/), or stop VEs",
                facts.threads.unwrap_or(0),
                facts.pid_max.unwrap_or(0)
            )
        } else if full(facts.threads, facts.threads_max) {
            format!(
                "cannot {what}: the host's thread table is full ({} threads, kernel.threads-max = {}): raise it (sysctl -w kernel.threads-max={}, and persist it in /etc/sysctl.d/), or stop VEs",
                facts.threads.unwrap_or(0),
                facts.threads_max.unwrap_or(0),
                facts.threads_max.unwrap_or(0).saturating_mul(2)
            )
        } else {
            format!(
                "cannot {what}: the process limit (pids.max) of the cgroup it is forked into is reached (a VE's is its numproc: kennel set ID --numproc; all VEs and their monitors together may hold kernel.pid_max less 1024 kept for the host: raise kernel.pid_max, or stop VEs), not the host's own PIDs"
            )
        }),
        libc::ENOSPC | libc::EUSERS => {
            let owner = owner.map_or_else(String::new, |u| format!(" for uid {u}"));
            if let Some((name, v)) = facts.ns_refused {
                return Some(format!(
                    "cannot {what}: the kernel's namespace count{owner} is at its limit ({name} = {v}): raise it (sysctl -w {name}={}, and persist it in /etc/sysctl.d/), or end what else holds that uid's namespaces (with none of its processes left, what the VE's last run left in the kernel: retry in a few minutes)",
                    v.saturating_mul(2).max(65536)
                ));
            }
            Some(match facts.ns_limit {
                Some((name, v)) => format!(
                    "cannot {what}: the kernel's namespace count{owner} is at its limit ({name} = {v} is the smallest of user.max_{{user,pid,uts,ipc}}_namespaces; or 32 nested user namespaces): raise it (sysctl -w {name}={}, and persist it in /etc/sysctl.d/)",
                    v.saturating_mul(2).max(65536)
                ),
                None => format!(
                    "cannot {what}: the kernel's namespace count{owner} is at its limit (user.max_*_namespaces), or namespaces are nested 32 deep"
                ),
            })
        }
        _ => None,
    }
}

/// `err` from a clone while `what`, as the pool it ran out of when one
/// explains it, else as a plain system error.
pub fn clone_error(err: io::Error, what: &str, owner: Option<u32>) -> RuntimeError {
    clone_error_with(err, what, owner, &HostFacts::read())
}

/// [`clone_error`] with the host's figures already read (and perhaps the
/// refused namespace kind found).
pub fn clone_error_with(
    err: io::Error,
    what: &str,
    owner: Option<u32>,
    facts: &HostFacts,
) -> RuntimeError {
    let explained = err
        .raw_os_error()
        .and_then(|errno| explain(errno, what, facts, owner));
    match explained {
        Some(line) => RuntimeError::HostPool(line),
        None => RuntimeError::Sys {
            what: what.to_string(),
            source: err,
        },
    }
}

/// The one line for a VE's console pty that the kernel refused with
/// `errno`. The VE's devpts is new then (none of its `numpty` in use), so
/// `ENOSPC` means the host's ptys: `nr` of `kernel.pty.max` = `max`.
pub fn explain_pty(errno: i32, what: &str, nr: Option<u64>, max: Option<u64>) -> Option<String> {
    if errno != libc::ENOSPC {
        return None;
    }
    let (nr, max) = (nr.unwrap_or(0), max.unwrap_or(0));
    let set = max.saturating_mul(2).max(8192);
    Some(format!(
        "cannot {what}: the host's ptys are used up ({nr} of kernel.pty.max = {max}, which kernel.pty.reserve is part of): raise them (sysctl -w kernel.pty.max={set} kernel.pty.reserve={}, and persist it in /etc/sysctl.d/), or stop VEs",
        set / 2
    ))
}

/// `err` from opening a VE's console pty while `what`, named as the
/// host's pty pool when that is what ran out.
pub fn pty_error(err: io::Error, what: &str) -> RuntimeError {
    let explained = err.raw_os_error().and_then(|errno| {
        explain_pty(
            errno,
            what,
            sysctl("kernel.pty.nr"),
            sysctl("kernel.pty.max"),
        )
    });
    match explained {
        Some(line) => RuntimeError::HostPool(line),
        None => RuntimeError::Sys {
            what: what.to_string(),
            source: err,
        },
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn facts(threads: u64, pid_max: u64, threads_max: u64) -> HostFacts {
        HostFacts {
            pid_max: Some(pid_max),
            threads_max: Some(threads_max),
            threads: Some(threads),
            ns_limit: Some(("user.max_pid_namespaces", 10)),
            ns_refused: None,
        }
    }

    #[test]
    fn reads_the_thread_count_of_loadavg() {
        assert_eq!(loadavg_threads("0.00 0.01 0.05 1/123 4567\n"), Some(123));
        assert_eq!(loadavg_threads("garbage"), None);
    }

    #[test]
    fn eagain_names_the_pool_that_is_full() {
        let pid = explain(libc::EAGAIN, "fork", &facts(32_760, 32_768, 200_000), None);
        assert!(pid.is_some_and(|l| l.contains("kernel.pid_max = 32768")));
        let thr = explain(libc::EAGAIN, "fork", &facts(9_990, 32_768, 10_000), None);
        assert!(thr.is_some_and(|l| l.contains("kernel.threads-max=20000")));
        let cg = explain(libc::EAGAIN, "fork", &facts(100, 32_768, 10_000), None);
        assert!(cg.is_some_and(|l| l.contains("pids.max") && !l.contains("pid_max =")));
    }

    #[test]
    fn enospc_names_the_smallest_namespace_limit() {
        let l = explain(libc::ENOSPC, "clone", &facts(1, 2, 3), Some(100_000)).expect("explained");
        assert!(l.contains("uid 100000"), "{l}");
        assert!(l.contains("sysctl -w user.max_pid_namespaces=65536"), "{l}");
        assert!(!l.contains('\n'));
    }

    #[test]
    fn enospc_names_the_kind_found_refused_over_the_smallest() {
        let mut f = facts(1, 2, 3);
        f.ns_refused = Some(("user.max_uts_namespaces", 96_367));
        let l = explain(libc::ENOSPC, "clone", &f, Some(7)).expect("explained");
        assert!(
            l.contains("(user.max_uts_namespaces = 96367)")
                && l.contains("sysctl -w user.max_uts_namespaces=192734")
                && !l.contains("max_pid"),
            "{l}"
        );
    }

    #[test]
    fn a_console_without_a_pty_names_the_hosts_pty_limits() {
        let l = explain_pty(libc::ENOSPC, "open the console", Some(4096), Some(4096))
            .expect("explained");
        assert!(
            l.contains("4096 of kernel.pty.max = 4096")
                && l.contains("sysctl -w kernel.pty.max=8192 kernel.pty.reserve=4096"),
            "{l}"
        );
        assert_eq!(explain_pty(libc::EIO, "open", None, None), None);
    }

    #[test]
    fn other_errors_are_not_explained() {
        assert_eq!(explain(libc::EPERM, "clone", &facts(1, 2, 3), None), None);
    }
}

//! Seeing and signalling processes outside the VE.

use crate::sys::{self, ename};
use crate::verdict::{blocked, escaped, Verdict};

fn comm(pid: i32) -> String {
    sys::read_text(&format!("/proc/{pid}/comm"))
        .map(|s| s.trim().to_string())
        .unwrap_or_default()
}

/// `procs-see COMM...`: no visible process is a kernel thread or carries
/// one of the given names (the host's and the neighbour's canaries).
pub fn procs_see(args: &[String]) -> Verdict {
    let pids = sys::pids();
    let foreign: Vec<String> = pids
        .iter()
        .map(|&p| (p, comm(p)))
        .filter(|(_, c)| c == "kthreadd" || args.contains(c))
        .map(|(p, c)| format!("{p}:{c}"))
        .collect();
    if foreign.is_empty() {
        blocked(format!(
            "{} processes visible, none outside the VE",
            pids.len()
        ))
    } else {
        escaped(format!("sees foreign processes: {}", foreign.join(" ")))
    }
}

/// `kill-scan MAX`: a signal 0 to every PID up to MAX: only processes
/// that /proc shows (the VE's own) may answer.
pub fn kill_scan(args: &[String]) -> Verdict {
    let max: i32 = args.first().and_then(|s| s.parse().ok()).unwrap_or(65536);
    let mut visible = sys::pids();
    visible.push(sys::getpid());
    let mut hidden = Vec::new();
    for pid in 1..=max {
        // SAFETY: signal 0 only checks that the process exists.
        let r = unsafe { libc::kill(pid, 0) };
        if (r == 0 || sys::errno() == libc::EPERM) && !visible.contains(&pid) {
            // A process that exited meanwhile is not a finding.
            if std::path::Path::new(&format!("/proc/{pid}")).exists() || r == 0 {
                let again = sys::pids();
                if !again.contains(&pid) {
                    hidden.push(pid);
                }
            }
        }
    }
    if hidden.is_empty() {
        blocked(format!("only the VE's own processes answer PIDs 1..{max}"))
    } else {
        escaped(format!("PIDs answer that /proc does not show: {hidden:?}"))
    }
}

/// `kill-all`: kill(-1, SIGKILL) reaches every process the caller may
/// signal; the suite checks that the host's and the neighbour's live on.
pub fn kill_all(_: &[String]) -> Verdict {
    // SAFETY: no pointers; ends processes of the caller's PID namespace.
    let r = unsafe { libc::kill(-1, libc::SIGKILL) };
    if r == 0 {
        blocked("kill(-1, SIGKILL) sent (to the VE's own processes)")
    } else {
        blocked(format!("kill(-1): {}", ename(sys::errno())))
    }
}

/// `ptrace-all`: PTRACE_ATTACH to every visible process but ourselves
/// and our ancestors: whatever it reaches is in the VE (the suite checks
/// that no host process got stopped); detaches at once.
pub fn ptrace_all(_: &[String]) -> Verdict {
    let mut attached = 0;
    let me = sys::getpid();
    for pid in sys::pids() {
        if pid == me || pid == 1 {
            continue;
        }
        // SAFETY: PTRACE_SEIZE takes no pointers here.
        let r = unsafe { libc::ptrace(libc::PTRACE_SEIZE, pid, 0, 0) };
        if r == 0 {
            attached += 1;
            // SAFETY: as above.
            unsafe { libc::ptrace(libc::PTRACE_DETACH, pid, 0, 0) };
        }
    }
    blocked(format!(
        "seized {attached} processes, all of them the VE's own"
    ))
}

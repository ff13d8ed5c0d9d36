//! The host's binaries and streams, as seen from inside: the
//! CVE-2019-5736 class (a host binary run inside the VE, then opened for
//! writing through /proc/PID/exe), and the standard streams of a
//! `kennel exec`.

use std::collections::HashMap;
use std::os::fd::{AsRawFd, OwnedFd};
use std::time::{Duration, Instant};

use crate::sys::{self, ename};
use crate::verdict::{blocked, error, escaped, info, Verdict};

/// True when `exe` (an O_PATH descriptor) is a file of the VE: the same
/// file is reachable at the path its link names.
fn is_ve_file(pid: i32, exe: &OwnedFd) -> bool {
    let Ok(target) = std::fs::read_link(format!("/proc/{pid}/exe")) else {
        return false;
    };
    let Some(t) = target.to_str() else {
        return false;
    };
    match (sys::lstat(t), sys::fstat(exe)) {
        (Ok(a), Ok(b)) => a.st_dev == b.st_dev && a.st_ino == b.st_ino,
        _ => false,
    }
}

/// `exe-race SECONDS`: for SECONDS, watch every process of the VE; for
/// each whose executable is not a file of the VE (a host binary that
/// entered), keep an O_PATH handle and try to reopen it for writing,
/// while it runs and after it exits (as the original exploit did). Never
/// writes a byte: opening for writing is the proof.
pub fn exe_race(args: &[String]) -> Verdict {
    let secs: u64 = args.first().and_then(|s| s.parse().ok()).unwrap_or(5);
    let me = sys::getpid();
    let end = Instant::now() + Duration::from_secs(secs);
    let mut handles: HashMap<i32, OwnedFd> = HashMap::new();
    let mut foreign = 0usize;
    let mut refused = HashMap::<String, usize>::new();
    while Instant::now() < end {
        for pid in sys::pids() {
            if pid == me || handles.contains_key(&pid) {
                continue;
            }
            match sys::open(&format!("/proc/{pid}/exe"), libc::O_PATH) {
                Ok(fd) if !is_ve_file(pid, &fd) => {
                    foreign += 1;
                    handles.insert(pid, fd);
                }
                Ok(_) => {}
                Err(e) => {
                    *refused
                        .entry(format!("open exe: {}", ename(e)))
                        .or_default() += 1
                }
            }
        }
        for fd in handles.values() {
            match sys::open(&format!("/proc/self/fd/{}", fd.as_raw_fd()), libc::O_WRONLY) {
                Ok(_) => return escaped("opened a host binary for writing through /proc/PID/exe"),
                Err(e) => {
                    *refused
                        .entry(format!("reopen for writing: {}", ename(e)))
                        .or_default() += 1
                }
            }
        }
        sys::sleep_ms(1);
    }
    info(format!(
        "{foreign} processes ran a binary from outside the VE"
    ));
    let mut why: Vec<String> = refused
        .into_iter()
        .map(|(k, n)| format!("{k} x{n}"))
        .collect();
    why.sort();
    blocked(format!(
        "{foreign} foreign executables seen, none writable ({})",
        why.join(", ")
    ))
}

/// `stdio`: the command's standard streams must be pipes (or sockets)
/// that kennel relays, never the caller's files or terminal; reopening
/// them through /proc/self/fd must not reach a host file either.
pub fn stdio(_: &[String]) -> Verdict {
    let mut bad = Vec::new();
    for fd in 0..3 {
        let path = format!("/proc/self/fd/{fd}");
        let Ok(l) = std::fs::read_link(&path) else {
            continue;
        };
        let l = l.display().to_string();
        info(format!("fd {fd}: {l}"));
        if !(l.starts_with("pipe:") || l.starts_with("socket:") || l == "/dev/null") {
            bad.push(format!("fd {fd} is {l}"));
        }
        // SAFETY: fd 0-2 are valid or not; isatty only queries.
        if unsafe { libc::isatty(fd) } == 1 && !l.starts_with("/dev/pts/") {
            bad.push(format!("fd {fd} is a host terminal"));
        }
    }
    if bad.is_empty() {
        blocked("stdin, stdout and stderr are pipes")
    } else {
        escaped(bad.join("; "))
    }
}

/// `reopen-stdio SECRET`: read what a host file passed as stdout or
/// stderr already holds (written before the command ran), by reopening
/// the stream through /proc/self/fd/N. (Stdin's contents are the
/// command's to read: not a finding.)
pub fn reopen_stdio(args: &[String]) -> Verdict {
    use std::io::Read;
    let Some(secret) = args.first() else {
        return error("usage: reopen-stdio SECRET");
    };
    for fd in 1..3 {
        let Ok(f) = sys::open(
            &format!("/proc/self/fd/{fd}"),
            libc::O_RDONLY | libc::O_NONBLOCK,
        ) else {
            continue;
        };
        let mut text = Vec::new();
        let _ = std::fs::File::from(f).take(1 << 20).read_to_end(&mut text);
        if String::from_utf8_lossy(&text).contains(secret.as_str()) {
            return escaped(format!("read the caller's file through fd {fd}"));
        }
    }
    blocked("no output stream reopens to the caller's file")
}

//! Where a directory really is: inside the VE's root, or somewhere on the
//! host. Walking `..` from a directory inside the root reaches the root
//! (the kernel stops `..` there); from a directory outside it, the walk
//! reaches a filesystem root that is not the VE's own.

use std::os::fd::{AsRawFd, OwnedFd};

use crate::sys::{self, ename, Res};
use crate::verdict::{all, blocked, error, escaped, Verdict};

const DIR: libc::c_int = libc::O_PATH | libc::O_DIRECTORY;

/// `Some(names)` when `start` lies outside the caller's root: the names
/// of the root that the walk reached instead.
pub fn outside_root(start: &OwnedFd) -> Res<Option<String>> {
    let root = sys::id_of(&sys::open("/", DIR)?)?;
    let mut cur = sys::openat(start.as_raw_fd(), ".", DIR)?;
    for _ in 0..4096 {
        let here = sys::id_of(&cur)?;
        if here == root {
            return Ok(None);
        }
        let up = sys::openat(cur.as_raw_fd(), "..", DIR)?;
        if sys::id_of(&up)? == here {
            return Ok(Some(names_of(&up)));
        }
        cur = up;
    }
    Ok(Some("a path deeper than 4096 levels".into()))
}

fn names_of(dir: &OwnedFd) -> String {
    let path = format!("/proc/self/fd/{}", dir.as_raw_fd());
    let mut names: Vec<String> = std::fs::read_dir(path)
        .into_iter()
        .flatten()
        .flatten()
        .map(|e| e.file_name().to_string_lossy().into_owned())
        .collect();
    names.sort();
    names.truncate(12);
    format!("a foreign root holding [{}]", names.join(" "))
}

/// `cwd-check`: is the working directory inside the VE?
pub fn cwd_check(_: &[String]) -> Verdict {
    let cwd = match sys::open(".", DIR) {
        Ok(fd) => fd,
        Err(e) => return blocked(format!("no usable working directory ({})", ename(e))),
    };
    match outside_root(&cwd) {
        Ok(None) => blocked(format!(
            "the working directory {} is inside the VE",
            std::env::current_dir()
                .map(|p| p.display().to_string())
                .unwrap_or_else(|_| "?".into())
        )),
        Ok(Some(what)) => escaped(format!("the working directory is outside the VE: {what}")),
        Err(e) => error(format!("walk up from the working directory: {}", ename(e))),
    }
}

/// `proc-scan`: can any process of the VE be used, through
/// /proc/PID/{cwd,root,fd/N}, as a door out of it?
pub fn proc_scan(_: &[String]) -> Verdict {
    let mut parts = Vec::new();
    let mut seen = 0;
    for pid in sys::pids() {
        let mut links = vec![format!("/proc/{pid}/cwd"), format!("/proc/{pid}/root")];
        if let Ok(rd) = std::fs::read_dir(format!("/proc/{pid}/fd")) {
            links.extend(rd.flatten().map(|e| e.path().display().to_string()));
        }
        for l in links {
            let Ok(fd) = sys::open(&l, DIR) else {
                continue;
            };
            seen += 1;
            if let Ok(Some(what)) = outside_root(&fd) {
                parts.push((l, escaped(what)));
            }
        }
    }
    if parts.is_empty() {
        blocked(format!(
            "{seen} directories of VE processes, all inside the VE"
        ))
    } else {
        all(parts)
    }
}

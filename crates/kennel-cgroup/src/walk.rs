//! Walking a cgroup tree that a VE shaped, from the host.
//!
//! A VE can nest cgroups as deep as it likes (cgroup v1 has no limit) and
//! name them with any bytes but `/` and NUL, so the walk never builds full
//! paths (which could pass PATH_MAX), keeps names as raw bytes, and holds
//! one directory descriptor at a time: it steps down by name with `openat`
//! and back up with `..`. Every walk has a deadline, so a VE that keeps
//! making cgroups cannot hold the host's teardown forever; and cgroups that
//! vanish or cannot list their processes mid-walk count as empty.

use std::ffi::{CStr, CString};
use std::fs::File;
use std::io::{self, Read};
use std::os::fd::{AsFd, BorrowedFd, OwnedFd};
use std::path::Path;
use std::time::Instant;

use rustix::fs::{openat, unlinkat, AtFlags, Dir, FileType, Mode, OFlags};
use rustix::io::Errno;

/// Errors that mean "this cgroup is gone, or lists no processes here":
/// removed under us (ENOENT, ENODEV), or a threaded v2 cgroup whose
/// `cgroup.procs` cannot be read (EOPNOTSUPP).
fn is_gone(e: &io::Error) -> bool {
    matches!(
        e.raw_os_error(),
        Some(libc::ENOENT) | Some(libc::ENODEV) | Some(libc::EOPNOTSUPP)
    )
}

fn past(deadline: Instant) -> io::Result<()> {
    if Instant::now() > deadline {
        return Err(io::Error::new(
            io::ErrorKind::TimedOut,
            "the cgroup tree kept changing",
        ));
    }
    Ok(())
}

fn open_dir(at: BorrowedFd<'_>, name: &CStr) -> io::Result<OwnedFd> {
    Ok(openat(
        at,
        name,
        OFlags::RDONLY | OFlags::DIRECTORY | OFlags::NOFOLLOW | OFlags::CLOEXEC,
        Mode::empty(),
    )?)
}

/// The name of a directory entry if it is a child cgroup.
fn child_name(e: &rustix::fs::DirEntry) -> Option<CString> {
    let name = e.file_name();
    let dots = name == c"." || name == c"..";
    (e.file_type() == FileType::Directory && !dots).then(|| name.to_owned())
}

/// The child cgroups of `dir` (none if it vanished meanwhile).
fn children(dir: BorrowedFd<'_>) -> io::Result<Vec<CString>> {
    let mut out = Vec::new();
    let mut read = || -> io::Result<()> {
        for e in Dir::read_from(dir)? {
            out.extend(child_name(&e?));
        }
        Ok(())
    };
    match read() {
        Err(e) if !is_gone(&e) => Err(e),
        _ => Ok(out),
    }
}

/// Visits every cgroup in the tree at `top` (pre-order), passing a
/// descriptor of its directory.
fn visit(
    top: &Path,
    deadline: Instant,
    f: &mut dyn FnMut(BorrowedFd<'_>) -> io::Result<()>,
) -> io::Result<()> {
    let mut cur = match File::open(top) {
        Ok(f) => OwnedFd::from(f),
        Err(e) if is_gone(&e) => return Ok(()),
        Err(e) => return Err(e),
    };
    f(cur.as_fd())?;
    // For each level: the children still to visit.
    let mut todo: Vec<Vec<CString>> = vec![children(cur.as_fd())?];
    loop {
        past(deadline)?;
        let Some(level) = todo.last_mut() else {
            return Ok(());
        };
        match level.pop() {
            Some(name) => match open_dir(cur.as_fd(), &name) {
                Ok(sub) => {
                    cur = sub;
                    f(cur.as_fd())?;
                    todo.push(children(cur.as_fd())?);
                }
                Err(e) if is_gone(&e) => {}
                Err(e) => return Err(e),
            },
            None => {
                todo.pop();
                if todo.is_empty() {
                    return Ok(());
                }
                cur = open_dir(cur.as_fd(), c"..")?;
            }
        }
    }
}

/// Calls `f` with each PID in each cgroup of the tree at `top`, cgroup by
/// cgroup (so that a caller killing them reaches a process that keeps
/// making cgroups in the first one it made).
pub(crate) fn for_each_pid(
    top: &Path,
    deadline: Instant,
    f: &mut dyn FnMut(i32),
) -> io::Result<()> {
    visit(top, deadline, &mut |dir| {
        let mut text = String::new();
        let read = openat(
            dir,
            c"cgroup.procs",
            OFlags::RDONLY | OFlags::CLOEXEC,
            Mode::empty(),
        )
        .map_err(io::Error::from)
        .and_then(|fd| File::from(fd).read_to_string(&mut text));
        match read {
            Err(e) if is_gone(&e) => return Ok(()),
            Err(e) => return Err(e),
            Ok(_) => {}
        }
        for pid in text.lines().filter_map(|l| l.trim().parse::<i32>().ok()) {
            if pid > 0 {
                f(pid);
            }
        }
        Ok(())
    })
}

/// The first child cgroup of `dir`, if any.
fn first_child(dir: BorrowedFd<'_>) -> io::Result<Option<CString>> {
    let find = || -> io::Result<Option<CString>> {
        for e in Dir::read_from(dir)? {
            if let Some(name) = child_name(&e?) {
                return Ok(Some(name));
            }
        }
        Ok(None)
    };
    match find() {
        Err(e) if is_gone(&e) => Ok(None),
        other => other,
    }
}

/// Removes the tree at `top`, children first (cgroup directories can only
/// be removed empty), visiting each directory once. A missing tree is fine;
/// EBUSY means processes are still inside.
pub(crate) fn remove_tree(top: &Path, deadline: Instant) -> io::Result<()> {
    let mut cur = match File::open(top) {
        Ok(f) => OwnedFd::from(f),
        Err(e) if is_gone(&e) => return Ok(()),
        Err(e) => return Err(e),
    };
    // Names from `top` down to `cur`.
    let mut names: Vec<CString> = Vec::new();
    loop {
        past(deadline)?;
        if let Some(name) = first_child(cur.as_fd())? {
            match open_dir(cur.as_fd(), &name) {
                Ok(sub) => {
                    cur = sub;
                    names.push(name);
                }
                // Removed under us: look again.
                Err(e) if is_gone(&e) => {}
                Err(e) => return Err(e),
            }
            continue;
        }
        // `cur` is a leaf: step up and remove it.
        let Some(name) = names.pop() else {
            drop(cur);
            return match std::fs::remove_dir(top) {
                Err(e) if is_gone(&e) => Ok(()),
                other => other,
            };
        };
        let parent = open_dir(cur.as_fd(), c"..")?;
        match unlinkat(&parent, name.as_c_str(), AtFlags::REMOVEDIR) {
            Ok(()) | Err(Errno::NOENT) => {}
            Err(e) => return Err(e.into()),
        }
        cur = parent;
    }
}

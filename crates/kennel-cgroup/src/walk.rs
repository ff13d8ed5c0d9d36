//! Walking a cgroup tree that a VE shaped, from the host.
//!
//! A VE can nest cgroups as deep as it likes (cgroup v1 has no limit), so
//! the walk never builds full paths (which could pass PATH_MAX) and never
//! holds more than one directory descriptor: it steps down by name with
//! `openat` and back up with `..`, keeping only the names in memory.

use std::fs::File;
use std::io::{self, Read};
use std::os::fd::{AsFd, BorrowedFd, OwnedFd};
use std::path::Path;

use rustix::fs::{openat, unlinkat, AtFlags, Dir, Mode, OFlags};
use rustix::io::Errno;

fn open_dir(at: BorrowedFd<'_>, name: &str) -> io::Result<OwnedFd> {
    Ok(openat(
        at,
        name,
        OFlags::RDONLY | OFlags::DIRECTORY | OFlags::NOFOLLOW | OFlags::CLOEXEC,
        Mode::empty(),
    )?)
}

/// The name of a directory entry if it is a child cgroup.
fn child_name(e: &rustix::fs::DirEntry) -> Option<String> {
    let name = e.file_name().to_string_lossy().into_owned();
    (e.file_type() == rustix::fs::FileType::Directory && name != "." && name != "..")
        .then_some(name)
}

/// The subdirectories (child cgroups) of `dir`, sorted.
fn children(dir: BorrowedFd<'_>) -> io::Result<Vec<String>> {
    let d = Dir::read_from(dir)?;
    let mut out = Vec::new();
    for e in d {
        out.extend(child_name(&e?));
    }
    out.sort_unstable();
    Ok(out)
}

/// Visits every cgroup in the tree at `top` (pre-order), passing a
/// descriptor of its directory.
fn visit(top: &Path, f: &mut dyn FnMut(BorrowedFd<'_>) -> io::Result<()>) -> io::Result<()> {
    let mut cur = match File::open(top) {
        Ok(f) => OwnedFd::from(f),
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(()),
        Err(e) => return Err(e),
    };
    f(cur.as_fd())?;
    // For each level: the children still to visit.
    let mut todo: Vec<Vec<String>> = vec![children(cur.as_fd())?];
    loop {
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
                Err(e) if e.raw_os_error() == Some(libc::ENOENT) => {}
                Err(e) => return Err(e),
            },
            None => {
                todo.pop();
                if todo.is_empty() {
                    return Ok(());
                }
                cur = open_dir(cur.as_fd(), "..")?;
            }
        }
    }
}

/// Appends the PIDs of every cgroup in the tree at `top`.
pub(crate) fn collect_pids(top: &Path, out: &mut Vec<i32>) -> crate::Result<()> {
    visit(top, &mut |dir| {
        let fd = match openat(
            dir,
            "cgroup.procs",
            OFlags::RDONLY | OFlags::CLOEXEC,
            Mode::empty(),
        ) {
            Ok(fd) => fd,
            Err(Errno::NOENT) => return Ok(()),
            Err(e) => return Err(e.into()),
        };
        let mut text = String::new();
        File::from(fd).read_to_string(&mut text)?;
        out.extend(
            text.lines()
                .filter_map(|l| l.trim().parse::<i32>().ok())
                .filter(|&p| p > 0),
        );
        Ok(())
    })
    .map_err(crate::error::io_err("read", top))
}

/// The first subdirectory (child cgroup) of `dir`, if any.
fn first_child(dir: BorrowedFd<'_>) -> io::Result<Option<String>> {
    let d = Dir::read_from(dir)?;
    for e in d {
        if let Some(name) = child_name(&e?) {
            return Ok(Some(name));
        }
    }
    Ok(None)
}

/// Removes the tree at `top`, children first (cgroup directories can only
/// be removed empty), visiting each directory once. A missing tree is fine;
/// EBUSY means processes are still inside.
pub(crate) fn remove_tree(top: &Path) -> io::Result<()> {
    let mut cur = match File::open(top) {
        Ok(f) => OwnedFd::from(f),
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(()),
        Err(e) => return Err(e),
    };
    // Names from `top` down to `cur`.
    let mut names: Vec<String> = Vec::new();
    loop {
        if let Some(name) = first_child(cur.as_fd())? {
            match open_dir(cur.as_fd(), &name) {
                Ok(sub) => {
                    cur = sub;
                    names.push(name);
                }
                // Removed under us: look again.
                Err(e) if e.raw_os_error() == Some(libc::ENOENT) => {}
                Err(e) => return Err(e),
            }
            continue;
        }
        // `cur` is a leaf: step up and remove it.
        let Some(name) = names.pop() else {
            drop(cur);
            return match std::fs::remove_dir(top) {
                Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(()),
                other => other,
            };
        };
        let parent = open_dir(cur.as_fd(), "..")?;
        match unlinkat(&parent, name.as_str(), AtFlags::REMOVEDIR) {
            Ok(()) | Err(Errno::NOENT) => {}
            Err(e) => return Err(e.into()),
        }
        cur = parent;
    }
}

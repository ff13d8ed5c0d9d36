//! Walking a tree a hostile tenant wrote, in a fixed order.
//!
//! The tree is a VE's upper layer: its root could have planted symlinks,
//! FIFOs, device nodes, mount points (through a bind mount it was given),
//! names of any bytes and depths of any size, and may still be changing
//! it (the caller usually hands over a read-only snapshot, but the walk
//! does not rely on it). So:
//!
//! * every step is one name relative to an open directory, resolved with
//!   `openat2(RESOLVE_BENEATH | RESOLVE_NO_SYMLINKS | RESOLVE_NO_MAGICLINKS
//!   | RESOLVE_NO_XDEV)`: no symlink is followed, no mount is entered
//!   (counted and skipped);
//! * only directories are opened here, with `O_NOFOLLOW | O_NONBLOCK`, and
//!   their `fstat` is what is recorded; every other entry is reported with
//!   its `lstat` and its parent's descriptor, for the writer to open (a
//!   regular file) or not (anything else);
//! * a path longer than [`MAX_PATH`] bytes is skipped and counted; so the
//!   depth is bounded too, and at most [`MAX_OPEN`] directories are held
//!   open: deeper, a parent's descriptor is dropped and opened again (and
//!   checked to be the same directory) when the walk comes back to it;
//! * an entry that vanished or changed type between listing and opening
//!   is counted, never followed;
//! * the order is deterministic: a directory, then its entries sorted by
//!   their bytes, each directory's contents right after it.

use std::ffi::CString;
use std::os::fd::{AsFd, BorrowedFd, OwnedFd};
use std::path::Path;

use rustix::fs::{fstat, openat2, statat, AtFlags, Dir, FileType, Mode, OFlags, ResolveFlags};
use rustix::io::Errno;

use super::meta::Meta;
use super::BackupError;
use crate::error::Result;
use crate::shown::shown;

/// Longest path (relative to the tree) backed up, in bytes.
pub const MAX_PATH: usize = 4096;

/// Directories held open at once, at most.
pub const MAX_OPEN: usize = 64;

/// One name, never a symlink, never another filesystem.
pub(crate) const STRICT: ResolveFlags = ResolveFlags::BENEATH
    .union(ResolveFlags::NO_SYMLINKS)
    .union(ResolveFlags::NO_MAGICLINKS)
    .union(ResolveFlags::NO_XDEV);

/// What the walk found.
pub(crate) enum Found<'a> {
    /// A directory (the tree's top has an empty path), open.
    Dir { fd: BorrowedFd<'a>, meta: Meta },
    /// Anything else, not opened: `name` in directory `parent`.
    Other {
        parent: BorrowedFd<'a>,
        name: &'a CString,
        meta: Meta,
    },
}

/// What the visitor wants done with a directory.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Descend {
    Yes,
    /// Its contents are left out (the directory was).
    No,
}

/// Entries the walk left out.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub(crate) struct WalkSkips {
    pub too_long: u64,
    pub mounts: u64,
    /// Vanished, or changed type, while the walk ran.
    pub changed: u64,
}

struct Frame {
    /// `None` while a deeper directory holds the walk (see [`MAX_OPEN`]).
    fd: Option<OwnedFd>,
    path: Vec<u8>,
    id: (u64, u64),
    names: Vec<CString>,
    next: usize,
}

fn tree_err(top: &Path, reason: String) -> BackupError {
    BackupError::Tree {
        path: top.to_path_buf(),
        reason,
    }
}

fn text(e: Errno) -> String {
    std::io::Error::from(e).to_string()
}

fn open_dir(at: BorrowedFd<'_>, name: &CString) -> rustix::io::Result<OwnedFd> {
    openat2(
        at,
        name.as_c_str(),
        OFlags::RDONLY | OFlags::DIRECTORY | OFlags::NOFOLLOW | OFlags::NONBLOCK | OFlags::CLOEXEC,
        Mode::empty(),
        STRICT,
    )
}

/// The names in directory `fd`, sorted by their bytes.
fn list(fd: BorrowedFd<'_>) -> rustix::io::Result<Vec<CString>> {
    let mut dir = Dir::read_from(fd)?;
    let mut names = Vec::new();
    while let Some(entry) = dir.read() {
        let entry = entry?;
        let name = entry.file_name();
        if name != c"." && name != c".." {
            names.push(name.to_owned());
        }
    }
    names.sort_unstable_by(|a, b| a.as_bytes().cmp(b.as_bytes()));
    Ok(names)
}

/// Walks the tree at `top`, calling `visit` with each entry's path
/// (relative, without a leading `/`) and what it is.
pub(crate) fn walk(
    top: &Path,
    mut visit: impl FnMut(&[u8], Found<'_>) -> Result<Descend>,
) -> Result<WalkSkips> {
    let root = rustix::fs::open(
        top,
        OFlags::RDONLY | OFlags::DIRECTORY | OFlags::NOFOLLOW | OFlags::NONBLOCK | OFlags::CLOEXEC,
        Mode::empty(),
    )
    .map_err(|e| tree_err(top, format!("cannot open it: {}", text(e))))?;
    let meta = Meta::from_stat(&fstat(&root).map_err(|e| tree_err(top, text(e)))?);
    let mut skips = WalkSkips::default();
    if visit(
        b"",
        Found::Dir {
            fd: root.as_fd(),
            meta,
        },
    )? == Descend::No
    {
        return Ok(skips);
    }
    let names =
        list(root.as_fd()).map_err(|e| tree_err(top, format!("cannot read it: {}", text(e))))?;
    let mut stack = vec![Frame {
        fd: None,
        path: Vec::new(),
        id: (meta.dev, meta.ino),
        names,
        next: 0,
    }];
    while let Some(frame) = stack.last_mut() {
        let Some(name) = frame.names.get(frame.next) else {
            stack.pop();
            continue;
        };
        frame.next += 1;
        // The top is `root`; a deeper directory may need opening again.
        if frame.fd.is_none() && !frame.path.is_empty() {
            match reopen(root.as_fd(), &frame.path, frame.id) {
                Some(fd) => frame.fd = Some(fd),
                None => {
                    skips.changed += 1;
                    stack.pop();
                    continue;
                }
            }
        }
        let parent = frame.fd.as_ref().map_or(root.as_fd(), |f| f.as_fd());
        let mut path = frame.path.clone();
        if !path.is_empty() {
            path.push(b'/');
        }
        path.extend_from_slice(name.as_bytes());
        if path.len() > MAX_PATH {
            skips.too_long += 1;
            continue;
        }
        let st = match statat(parent, name.as_c_str(), AtFlags::SYMLINK_NOFOLLOW) {
            Ok(st) => Meta::from_stat(&st),
            Err(Errno::NOENT) => {
                skips.changed += 1;
                continue;
            }
            Err(e) => {
                return Err(tree_err(
                    top,
                    format!("cannot inspect '{}': {}", shown(&path), text(e)),
                )
                .into())
            }
        };
        if st.file_type() != FileType::Directory {
            let name = name.clone();
            visit(
                &path,
                Found::Other {
                    parent,
                    name: &name,
                    meta: st,
                },
            )?;
            continue;
        }
        let fd = match open_dir(parent, name) {
            Ok(fd) => fd,
            Err(Errno::XDEV) => {
                skips.mounts += 1;
                continue;
            }
            Err(Errno::NOENT | Errno::NOTDIR | Errno::LOOP) => {
                skips.changed += 1;
                continue;
            }
            Err(e) => {
                return Err(
                    tree_err(top, format!("cannot open '{}': {}", shown(&path), text(e))).into(),
                )
            }
        };
        let meta = Meta::from_stat(&fstat(&fd).map_err(|e| tree_err(top, text(e)))?);
        if meta.dev != st.dev {
            skips.mounts += 1;
            continue;
        }
        if visit(
            &path,
            Found::Dir {
                fd: fd.as_fd(),
                meta,
            },
        )? == Descend::No
        {
            continue;
        }
        let names = list(fd.as_fd())
            .map_err(|e| tree_err(top, format!("cannot read '{}': {}", shown(&path), text(e))))?;
        if stack.len() >= MAX_OPEN {
            if let Some(f) = stack.last_mut() {
                f.fd = None;
            }
        }
        stack.push(Frame {
            fd: Some(fd),
            path,
            id: (meta.dev, meta.ino),
            names,
            next: 0,
        });
    }
    Ok(skips)
}

/// Opens directory `path` of the tree again, if it is still the one with
/// identity `id`.
fn reopen(root: BorrowedFd<'_>, path: &[u8], id: (u64, u64)) -> Option<OwnedFd> {
    let fd = openat2(
        root,
        path,
        OFlags::RDONLY | OFlags::DIRECTORY | OFlags::NOFOLLOW | OFlags::NONBLOCK | OFlags::CLOEXEC,
        Mode::empty(),
        STRICT,
    )
    .ok()?;
    let m = Meta::from_stat(&fstat(&fd).ok()?);
    ((m.dev, m.ino) == id).then_some(fd)
}

//! Walking a tree a hostile tenant wrote, in a fixed order, at any depth.
//!
//! The tree is a VE's upper layer (or a copy of one): its root could have
//! planted symlinks, FIFOs, device nodes, mount points (through a bind
//! mount it was given), names of any bytes and depths of any size, and
//! may still be changing it (the caller usually hands over a read-only
//! snapshot or a copy nothing runs in, but the walk does not rely on it).
//! Two callers share it, so they share its rules: the backup writer
//! ([`super::writer`]) and the id shift of a clone
//! ([`crate::volume::shift`]). So:
//!
//! * every step is one name relative to an open directory, resolved with
//!   `openat2(RESOLVE_BENEATH | RESOLVE_NO_SYMLINKS | RESOLVE_NO_MAGICLINKS
//!   | RESOLVE_NO_XDEV)`: no symlink is followed, no mount is entered
//!   (counted and skipped);
//! * only directories are opened here, with `O_NOFOLLOW | O_NONBLOCK`, and
//!   their `fstat` is what is recorded; every other entry is reported with
//!   its `lstat` and its parent's descriptor, for the visitor to open (a
//!   regular file) or not (anything else);
//! * the depth is not bounded, and no path is ever handed to the kernel
//!   whole (so a path longer than `PATH_MAX` is walked like any other):
//!   at most [`MAX_OPEN`] directories are held open (plus the one being
//!   opened). Deeper, a directory's descriptor is dropped when the walk
//!   goes into a subdirectory, and opened again from that subdirectory's
//!   `..` when the walk comes back — and used only if it is still the
//!   directory it was (same device and inode). A directory that moved
//!   meanwhile is not walked further (counted): the walk never resolves a
//!   name it did not list itself. Memory grows with the depth only by the
//!   names listed along the current path, which the walk needs anyway;
//! * a caller may bound the path length ([`WalkOptions::max_path`]): the
//!   backup does, at [`MAX_PATH`], because a restore makes each entry by
//!   its path below the destination and the kernel takes at most
//!   `PATH_MAX` bytes; longer paths are skipped and counted. The id shift
//!   does not: it must reach every inode;
//! * an entry that vanished or changed type between listing and opening
//!   is counted, never followed;
//! * the order is deterministic: a directory, then its entries sorted by
//!   their bytes, each directory's contents right after it.

use std::ffi::CString;
use std::os::fd::{AsFd, BorrowedFd, OwnedFd};
use std::path::Path;

use rustix::fs::{
    fstat, openat, openat2, statat, AtFlags, Dir, FileType, Mode, OFlags, ResolveFlags,
};
use rustix::io::Errno;

use super::meta::Meta;
use super::BackupError;
use crate::error::Result;
use crate::shown::shown;

/// Longest path (relative to the tree) a backup holds, in bytes.
pub const MAX_PATH: usize = 4096;

/// Directories held open at once, at most.
pub const MAX_OPEN: usize = 64;

/// One name, never a symlink, never another filesystem.
pub(crate) const STRICT: ResolveFlags = ResolveFlags::BENEATH
    .union(ResolveFlags::NO_SYMLINKS)
    .union(ResolveFlags::NO_MAGICLINKS)
    .union(ResolveFlags::NO_XDEV);

const DIR_FLAGS: OFlags = OFlags::RDONLY
    .union(OFlags::DIRECTORY)
    .union(OFlags::NOFOLLOW)
    .union(OFlags::NONBLOCK)
    .union(OFlags::CLOEXEC);

/// How far a walk goes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct WalkOptions {
    /// Entries whose path is longer (in bytes) are skipped and counted;
    /// `None`: no bound.
    pub max_path: Option<usize>,
}

impl WalkOptions {
    /// What a backup holds: paths a restore can make.
    pub const BACKUP: WalkOptions = WalkOptions {
        max_path: Some(MAX_PATH),
    };
    /// Every entry, whatever its depth.
    pub const EVERYTHING: WalkOptions = WalkOptions { max_path: None };
}

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
    /// Vanished, changed type or moved while the walk ran.
    pub changed: u64,
}

struct Frame {
    /// `None` while a deeper directory holds the walk (see [`MAX_OPEN`]).
    fd: Option<OwnedFd>,
    /// Its path's length in the walk's path buffer.
    path_len: usize,
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
    openat2(at, name.as_c_str(), DIR_FLAGS, Mode::empty(), STRICT)
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
    opts: WalkOptions,
    mut visit: impl FnMut(&[u8], Found<'_>) -> Result<Descend>,
) -> Result<WalkSkips> {
    let root = rustix::fs::open(top, DIR_FLAGS, Mode::empty())
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
        fd: Some(root),
        path_len: 0,
        id: (meta.dev, meta.ino),
        names,
        next: 0,
    }];
    // The path of the entry at hand; each frame's path is a prefix of it.
    let mut path: Vec<u8> = Vec::new();
    while let Some(frame) = stack.last_mut() {
        let Some(name) = frame.names.get(frame.next) else {
            let done = stack.pop().and_then(|f| f.fd);
            come_back(&mut stack, done, &mut skips);
            continue;
        };
        frame.next += 1;
        // The frame on top always holds its descriptor (see come_back).
        let Some(parent) = frame.fd.as_ref().map(|f| f.as_fd()) else {
            skips.changed += 1;
            stack.pop();
            continue;
        };
        path.truncate(frame.path_len);
        if frame.path_len > 0 {
            path.push(b'/');
        }
        path.extend_from_slice(name.as_bytes());
        if opts.max_path.is_some_and(|max| path.len() > max) {
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
        // Deep enough: this directory's descriptor waits for the walk to
        // come back (the first MAX_OPEN - 1 levels, the top's included,
        // keep theirs).
        if stack.len() >= MAX_OPEN {
            if let Some(f) = stack.last_mut() {
                f.fd = None;
            }
        }
        stack.push(Frame {
            fd: Some(fd),
            path_len: path.len(),
            id: (meta.dev, meta.ino),
            names,
            next: 0,
        });
    }
    Ok(skips)
}

/// After the walk left directory `child` (its descriptor, if it held
/// one): makes sure the directory the walk is back in holds a descriptor,
/// opening it again as `child`'s `..` if it is still the same directory.
/// If it is not (it moved), it and every ancestor without a descriptor are
/// left, each counted.
fn come_back(stack: &mut Vec<Frame>, child: Option<OwnedFd>, skips: &mut WalkSkips) {
    let Some(frame) = stack.last_mut() else {
        return;
    };
    if frame.fd.is_some() {
        return;
    }
    if let Some(fd) = child.and_then(|c| parent_of(c.as_fd(), frame.id)) {
        frame.fd = Some(fd);
        return;
    }
    while stack.last().is_some_and(|f| f.fd.is_none()) {
        stack.pop();
        skips.changed += 1;
    }
}

/// The directory holding `child`, if it is still the one with identity
/// `id`. `..` is never a symlink, and `child` is no mount's root (the
/// walk entered no mount), so this stays on the tree's filesystem; the
/// identity check makes it the very directory the walk listed.
fn parent_of(child: BorrowedFd<'_>, id: (u64, u64)) -> Option<OwnedFd> {
    let fd = openat(child, c"..", DIR_FLAGS, Mode::empty()).ok()?;
    let m = Meta::from_stat(&fstat(&fd).ok()?);
    ((m.dev, m.ino) == id).then_some(fd)
}

#[cfg(test)]
mod tests {
    use std::fs;
    use std::path::PathBuf;

    use rustix::fs::mkdirat;

    use super::*;

    fn scratch() -> tempfile::TempDir {
        tempfile::Builder::new()
            .prefix("kennel-walk-test")
            .tempdir_in(crate::test_dir())
            .expect("tempdir")
    }

    /// A chain of `depth` directories named `name` below `top`, made one
    /// level at a time (its paths may pass PATH_MAX); `file` is made in
    /// the directory at `at`.
    fn chain(top: &Path, name: &str, depth: usize, at: usize, file: &str) {
        let mut fd = rustix::fs::open(top, DIR_FLAGS, Mode::empty()).expect("open");
        for level in 0..=depth {
            if level == at {
                drop(
                    openat(
                        &fd,
                        file,
                        OFlags::CREATE | OFlags::WRONLY | OFlags::CLOEXEC,
                        Mode::from_raw_mode(0o644),
                    )
                    .expect("create"),
                );
            }
            if level == depth {
                break;
            }
            mkdirat(&fd, name, Mode::from_raw_mode(0o755)).expect("mkdir");
            fd = openat(&fd, name, DIR_FLAGS, Mode::empty()).expect("open");
        }
    }

    fn paths(top: &Path, opts: WalkOptions) -> (Vec<Vec<u8>>, WalkSkips) {
        let mut seen = Vec::new();
        let skips = walk(top, opts, |p, _| {
            seen.push(p.to_vec());
            Ok(Descend::Yes)
        })
        .expect("walk");
        (seen, skips)
    }

    /// Review finding 6: any depth, paths past PATH_MAX, in order, the
    /// walk coming back up through directories whose descriptors it let go.
    #[test]
    fn any_depth_is_walked_in_order() {
        let s = scratch();
        let name = "n".repeat(40);
        let depth = 3 * MAX_OPEN;
        chain(s.path(), &name, depth, depth / 2, "z-half-way");
        fs::write(s.path().join("z-top"), "").expect("write");
        // Descriptors of the tree's directories held, at most: counted
        // through /proc by identity (other tests' descriptors are not the
        // tree's; names this deep are past what /proc can print).
        let mut dirs = std::collections::HashSet::new();
        let mut most = 0;
        let mut seen = Vec::new();
        let skips = walk(s.path(), WalkOptions::EVERYTHING, |p, found| {
            seen.push(p.to_vec());
            if let Found::Dir { meta, .. } = found {
                dirs.insert((meta.dev, meta.ino));
            }
            let held = fs::read_dir("/proc/self/fd")
                .expect("fds")
                .filter_map(|e| fs::metadata(e.ok()?.path()).ok())
                .filter(|m| {
                    use std::os::unix::fs::MetadataExt;
                    dirs.contains(&(m.dev(), m.ino()))
                })
                .count();
            most = most.max(held);
            Ok(Descend::Yes)
        })
        .expect("walk");
        // The frames' descriptors and the directory just opened.
        assert!(most <= MAX_OPEN + 1, "{most} directories held open");
        assert!(most >= MAX_OPEN, "{most}: the count is wrong");
        assert_eq!(skips, WalkSkips::default());
        // The top, the chain, the file half way, the one at the top.
        assert_eq!(seen.len(), 1 + depth + 2);
        assert!(seen.iter().any(|p| p.len() > MAX_PATH + MAX_PATH / 2));
        let mut want: Vec<Vec<u8>> = vec![Vec::new()];
        let mut p = Vec::new();
        for level in 1..=depth {
            if level > 1 {
                p.push(b'/');
            }
            p.extend_from_slice(name.as_bytes());
            want.push(p.clone());
        }
        let half: Vec<u8> = want[depth / 2]
            .iter()
            .chain(b"/z-half-way")
            .copied()
            .collect();
        want.push(half);
        want.push(b"z-top".to_vec());
        assert_eq!(seen, want);

        // A backup's walk: the same, but for paths a restore cannot make.
        let (seen, skips) = paths(s.path(), WalkOptions::BACKUP);
        let fit = MAX_PATH / (name.len() + 1);
        assert_eq!(skips.too_long, 1);
        assert!(seen.iter().all(|p| p.len() <= MAX_PATH));
        assert_eq!(seen.len(), 1 + fit + 2, "{}", seen.len());
        assert_eq!(seen.last().map(|p| p.as_slice()), Some(&b"z-top"[..]));
    }

    /// A directory the walk let go of and that moved meanwhile is not
    /// walked further: `..` is used only if it is the directory listed.
    #[test]
    fn a_directory_moved_during_the_walk_is_left() {
        let s = scratch();
        let depth = MAX_OPEN + 30;
        chain(s.path(), "d", depth, depth, "bottom");
        fs::write(s.path().join("z-top"), "").expect("write");
        // Level MAX_OPEN + 8 (its descriptor let go) moves to the top
        // while the walk is below it.
        let moved_level = MAX_OPEN + 8;
        let moved: PathBuf = (0..moved_level).map(|_| "d").collect();
        let mut seen = Vec::new();
        let mut done = false;
        let skips = walk(s.path(), WalkOptions::EVERYTHING, |p, _| {
            seen.push(p.to_vec());
            if !done && p.len() == 2 * (MAX_OPEN + 20) - 1 {
                fs::rename(s.path().join(&moved), s.path().join("moved")).expect("rename");
                done = true;
            }
            Ok(Descend::Yes)
        })
        .expect("walk");
        assert!(done);
        // Levels MAX_OPEN - 1 to moved_level - 1 had let go of their
        // descriptors: the walk cannot come back to them.
        assert_eq!(skips.changed, (moved_level - (MAX_OPEN - 1)) as u64);
        assert!(!seen.iter().any(|p| p.starts_with(b"moved")));
        // The bottom was reached (the walk held it), the top finished.
        assert!(seen.iter().any(|p| p.ends_with(b"/bottom")));
        assert_eq!(seen.last().map(|p| p.as_slice()), Some(&b"z-top"[..]));
        let mut sorted = seen.clone();
        sorted.sort();
        sorted.dedup();
        assert_eq!(sorted.len(), seen.len(), "a path was visited twice");
    }
}

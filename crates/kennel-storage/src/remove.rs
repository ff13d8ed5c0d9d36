//! Removing a directory tree that a VE or an imported tarball shaped.
//!
//! A VE's upper directory holds whatever its root made; a template holds
//! whatever a tarball said. Either may be hostile, so removal assumes the
//! worst of the tree:
//!
//! * **Any depth.** A VE can nest directories 100,000 levels deep (more
//!   than the host's descriptor limit, and deep enough to overflow the
//!   stack of a recursive walker such as `std::fs::remove_dir_all`). The
//!   walk keeps one open directory per level and never more than
//!   [`MAX_OPEN`] levels: a directory found deeper than that is moved up,
//!   with `renameat2(RENAME_NOREPLACE)`, to the top of the tree being
//!   removed (an already-renamed trash directory), and removed from there
//!   later. Each move takes a subtree at least [`MAX_OPEN`] levels nearer
//!   the top, so no directory is moved twice. No recursion, no full paths
//!   (which could pass `PATH_MAX`).
//! * **Any names.** Names are raw bytes from `getdents`, used as they are
//!   (relative to a directory descriptor) and shown escaped in errors
//!   ([`crate::shown`]).
//! * **Never out of the tree.** Every directory is opened by name from its
//!   parent's descriptor with `openat2(RESOLVE_NO_SYMLINKS | RESOLVE_NO_XDEV)`:
//!   a symlink (to `/etc`, to a host file) is unlinked, never followed, and
//!   a mount point (one left by a failed debootstrap, a bind mount) stops
//!   the removal with an error instead of emptying another filesystem.
//!   FIFOs, sockets and device nodes are only ever unlinked, never opened.
//! * **Modes do not matter.** The host's root removes a `0000` directory as
//!   any other (`CAP_DAC_OVERRIDE`); a VE cannot set the immutable or
//!   append-only attributes (they need `CAP_LINUX_IMMUTABLE` on the host).
//! * **It ends.** Nothing else writes to a tree being removed (the VE is
//!   stopped, the template unused, and the tree was renamed first), and
//!   every step removes an entry, moves a directory nearer the top, or
//!   reads a directory again after entries were removed from it or moved
//!   into it; a directory that reads as empty and still cannot be removed
//!   is an error, not a retry. So the work is bounded by the size of the
//!   tree, and every failure is one clear error naming the tree, the entry
//!   and why.
//!
//! `kennel-cgroup`'s `walk.rs` walks cgroup trees the same way, but those
//! hold no files, cannot be renamed across levels and are removed leaf by
//! leaf with `..`: a different job.

use std::ffi::{CStr, CString, OsStr};
use std::os::fd::{AsFd, BorrowedFd, OwnedFd};
use std::os::unix::ffi::OsStrExt;
use std::path::{Path, PathBuf};

use rustix::fs::{
    openat2, renameat_with, statat, unlinkat, AtFlags, Dir, FileType, Mode, OFlags, RenameFlags,
    ResolveFlags,
};
use rustix::io::Errno;

use crate::error::{Result, StorageError};
use crate::shown::shown;

/// Directories held open at once, at most: the deepest level the walk goes
/// to before it moves a subtree up.
pub const MAX_OPEN: usize = 64;

/// What a removal did.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct Removed {
    /// Entries removed, of every kind, the top directory included.
    pub entries: u64,
    /// Subtrees moved up to the top because they were too deep.
    pub moved: u64,
}

/// One directory name, never a path: no symlink, no mount point.
const ONE_STEP: ResolveFlags = ResolveFlags::NO_SYMLINKS
    .union(ResolveFlags::NO_MAGICLINKS)
    .union(ResolveFlags::NO_XDEV)
    .union(ResolveFlags::BENEATH);

/// A directory being emptied.
struct Level {
    /// Reads its entries; owns the descriptor.
    dir: Dir,
    /// Its name in the level above.
    name: CString,
    /// Nothing was found since it was last read from the start.
    clean: bool,
}

/// What the next entry of the current directory asks for.
enum Step {
    Entry(CString, FileType),
    End,
}

struct Walk<'a> {
    /// The tree's path, for errors.
    top: &'a Path,
    /// The directory holding the top of the tree.
    base: BorrowedFd<'a>,
    levels: Vec<Level>,
    done: Removed,
    /// The next name tried for a subtree moved to the top.
    next_moved: u64,
}

/// Removes the tree at `path` (a directory or anything else) without
/// following a symlink, leaving the tree's filesystem, or being held up by
/// its depth or names. A missing `path` is not an error.
///
/// `path` itself should be a name only Kennel uses (a `.NAME.deleted-PID`
/// trash directory, a staging directory): subtrees that are too deep are
/// moved up into it.
pub fn remove_tree(path: &Path) -> Result<Removed> {
    let (Some(parent), Some(name)) = (path.parent(), path.file_name()) else {
        return Err(StorageError::Remove {
            path: path.to_path_buf(),
            reason: "not a directory Kennel made".into(),
        });
    };
    let parent = if parent.as_os_str().is_empty() {
        Path::new(".")
    } else {
        parent
    };
    let base = match rustix::fs::open(
        parent,
        OFlags::PATH | OFlags::DIRECTORY | OFlags::CLOEXEC,
        Mode::empty(),
    ) {
        Ok(fd) => fd,
        Err(Errno::NOENT) => return Ok(Removed::default()),
        Err(e) => return Err(fail(path, format!("cannot open its parent: {}", text(e)))),
    };
    remove_in(base.as_fd(), &c_name(name)?, path)
}

/// Removes entry `name` of directory `base` as [`remove_tree`] does;
/// `path` names it in errors.
pub(crate) fn remove_in(base: BorrowedFd<'_>, name: &CStr, path: &Path) -> Result<Removed> {
    let mut walk = Walk {
        top: path,
        base,
        levels: Vec::new(),
        done: Removed::default(),
        next_moved: 0,
    };
    walk.start(name.to_owned())?;
    walk.run()?;
    Ok(walk.done)
}

fn c_name(name: &OsStr) -> Result<CString> {
    CString::new(name.as_bytes()).map_err(|_| StorageError::Remove {
        path: PathBuf::from(name),
        reason: "a name with a NUL byte".into(),
    })
}

fn fail(top: &Path, reason: String) -> StorageError {
    StorageError::Remove {
        path: top.to_path_buf(),
        reason,
    }
}

fn text(e: Errno) -> String {
    std::io::Error::from(e).to_string()
}

fn open_dir(at: BorrowedFd<'_>, name: &CStr) -> rustix::io::Result<OwnedFd> {
    openat2(
        at,
        name,
        OFlags::RDONLY | OFlags::DIRECTORY | OFlags::NOFOLLOW | OFlags::CLOEXEC,
        Mode::empty(),
        ONE_STEP,
    )
}

impl Walk<'_> {
    /// Where an entry is, for an error message.
    fn at(&self, name: &CStr) -> String {
        match self.levels.len() {
            0 => format!("'{}'", shown(name.to_bytes())),
            n => format!("'{}' ({n} levels down)", shown(name.to_bytes())),
        }
    }

    fn err(&self, what: &str, name: &CStr, e: Errno) -> StorageError {
        let hint = match e {
            Errno::XDEV => ": it is a mount point; unmount it, then run the command again",
            Errno::PERM => " (an immutable or append-only file? see lsattr)",
            _ => "",
        };
        fail(
            self.top,
            format!("cannot {what} {}: {}{hint}", self.at(name), text(e)),
        )
    }

    /// The directory the current level is in (the base for the top).
    fn dir_fd(&self) -> Result<BorrowedFd<'_>> {
        match self.levels.last() {
            Some(l) => l
                .dir
                .fd()
                .map_err(|e| fail(self.top, format!("directory stream: {}", text(e)))),
            None => Ok(self.base),
        }
    }

    /// Opens the top, or removes it if it is not a directory.
    fn start(&mut self, name: CString) -> Result<()> {
        match open_dir(self.base, &name) {
            Ok(fd) => self.push(fd, name),
            Err(Errno::NOENT) => Ok(()),
            Err(Errno::NOTDIR | Errno::LOOP) => self.unlink(&name),
            Err(e) => Err(self.err("open", &name, e)),
        }
    }

    fn push(&mut self, fd: OwnedFd, name: CString) -> Result<()> {
        let dir = Dir::new(fd).map_err(|e| self.err("read", &name, e))?;
        self.levels.push(Level {
            dir,
            name,
            clean: false,
        });
        Ok(())
    }

    fn run(&mut self) -> Result<()> {
        while let Some(step) = self.next_step()? {
            match step {
                Step::Entry(name, kind) => self.remove_entry(name, kind)?,
                Step::End => self.finish_level()?,
            }
        }
        Ok(())
    }

    /// The next entry of the current directory; `None` when the top is gone.
    fn next_step(&mut self) -> Result<Option<Step>> {
        let Some(level) = self.levels.last_mut() else {
            return Ok(None);
        };
        loop {
            match level.dir.read() {
                None => return Ok(Some(Step::End)),
                Some(Ok(entry)) => {
                    let name = entry.file_name();
                    if name == c"." || name == c".." {
                        continue;
                    }
                    level.clean = false;
                    return Ok(Some(Step::Entry(name.to_owned(), entry.file_type())));
                }
                // Removed under us (a concurrent sweep of the same leftover).
                Some(Err(Errno::NOENT)) => return Ok(Some(Step::End)),
                Some(Err(e)) => {
                    let name = level.name.clone();
                    self.levels.pop();
                    return Err(self.err("read the directory", &name, e));
                }
            }
        }
    }

    /// Removes entry `name` of the current directory: unlinks it, or enters
    /// it, or moves it to the top if it is a directory too deep to enter.
    fn remove_entry(&mut self, name: CString, kind: FileType) -> Result<()> {
        let is_dir = match kind {
            FileType::Directory => true,
            // The filesystem did not say (d_type): ask, without following.
            FileType::Unknown => {
                match statat(self.dir_fd()?, name.as_c_str(), AtFlags::SYMLINK_NOFOLLOW) {
                    Ok(st) => FileType::from_raw_mode(st.st_mode) == FileType::Directory,
                    Err(Errno::NOENT) => return Ok(()),
                    Err(e) => return Err(self.err("inspect", &name, e)),
                }
            }
            _ => false,
        };
        if !is_dir {
            return self.unlink(&name);
        }
        if self.levels.len() >= MAX_OPEN {
            return self.move_to_top(&name);
        }
        match open_dir(self.dir_fd()?, &name) {
            Ok(fd) => self.push(fd, name),
            Err(Errno::NOENT) => Ok(()),
            // Not a directory after all: removed as a file, never followed.
            Err(Errno::NOTDIR | Errno::LOOP) => self.unlink(&name),
            Err(e) => Err(self.err("open", &name, e)),
        }
    }

    /// Unlinks the non-directory `name` of the current directory.
    fn unlink(&mut self, name: &CStr) -> Result<()> {
        match unlinkat(self.dir_fd()?, name, AtFlags::empty()) {
            Ok(()) => {
                self.done.entries += 1;
                Ok(())
            }
            Err(Errno::NOENT) => Ok(()),
            // A directory after all: it is read again from the start.
            Err(Errno::ISDIR) => {
                if let Some(l) = self.levels.last_mut() {
                    l.clean = false;
                }
                Ok(())
            }
            Err(e) => Err(self.err("remove", name, e)),
        }
    }

    /// Moves directory `name` of the current (deepest) level to the top of
    /// the tree, under a name of its own.
    fn move_to_top(&mut self, name: &CStr) -> Result<()> {
        let Some(top) = self.levels.first() else {
            return Ok(());
        };
        let top = top
            .dir
            .fd()
            .map_err(|e| fail(self.top, format!("directory stream: {}", text(e))))?;
        loop {
            let new = format!(".kennel-deep-{}", self.next_moved);
            self.next_moved += 1;
            match renameat_with(
                self.dir_fd()?,
                name,
                top,
                new.as_str(),
                RenameFlags::NOREPLACE,
            ) {
                Ok(()) => {
                    self.done.moved += 1;
                    return Ok(());
                }
                Err(Errno::EXIST) => continue,
                Err(Errno::NOENT) => return Ok(()),
                Err(e) => return Err(self.err("move up", name, e)),
            }
        }
    }

    /// The current directory was read to its end: remove it, or read it
    /// again if entries were moved into it or missed.
    fn finish_level(&mut self) -> Result<()> {
        let Some((level, above)) = self.levels.split_last_mut() else {
            return Ok(());
        };
        let parent = match above.last() {
            Some(l) => l
                .dir
                .fd()
                .map_err(|e| fail(self.top, format!("directory stream: {}", text(e))))?,
            None => self.base,
        };
        match unlinkat(parent, level.name.as_c_str(), AtFlags::REMOVEDIR) {
            Ok(()) => self.done.entries += 1,
            Err(Errno::NOENT) => {}
            Err(Errno::NOTEMPTY | Errno::EXIST) if !level.clean => {
                level.dir.rewind();
                level.clean = true;
                return Ok(());
            }
            Err(e) => {
                let name = level.name.clone();
                self.levels.pop();
                return Err(self.err("remove the directory", &name, e));
            }
        }
        self.levels.pop();
        Ok(())
    }
}

#[cfg(test)]
mod tests;

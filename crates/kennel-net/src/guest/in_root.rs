//! Reading and replacing files inside a VE's root from a descriptor of
//! that root, so that nothing the VE planted can lead outside it: every
//! path is resolved with `openat2(RESOLVE_IN_ROOT)` (symlinks and `..`
//! stay inside the root, magic links are refused), and a file is replaced
//! by a rename over it, never written through. Where the VE put something
//! other than a regular file (a symlink, a FIFO, a directory), Kennel
//! leaves it alone: that is the VE owner's choice.

use std::io::{Read, Write};
use std::os::fd::{AsFd, BorrowedFd, OwnedFd};

use rustix::fs::{
    fstat, openat, openat2, renameat, statat, unlinkat, AtFlags, FileType, Mode, OFlags,
    ResolveFlags,
};

use crate::error::{io_err, Result};

const IN_ROOT: ResolveFlags = ResolveFlags::IN_ROOT.union(ResolveFlags::NO_MAGICLINKS);

/// The most Kennel reads of a VE's file: these are a few lines each.
const READ_CAP: u64 = 256 << 10;

/// What a path in the VE holds, as far as Kennel cares.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Existing {
    Missing,
    Text(String),
    /// Anything Kennel leaves alone.
    Other,
}

/// Where the files go: the VE's root, as seen by a process that already
/// is the VE's root (so that what it creates is the VE root's).
#[derive(Debug)]
pub struct Root<'a> {
    pub fd: BorrowedFd<'a>,
}

fn split(path: &str) -> (&str, &str) {
    let p = path.trim_start_matches('/');
    match p.rsplit_once('/') {
        Some((dir, name)) => (dir, name),
        None => (".", p),
    }
}

impl Root<'_> {
    fn dir(&self, dir: &str) -> Result<OwnedFd> {
        openat2(
            self.fd,
            dir,
            OFlags::DIRECTORY | OFlags::RDONLY | OFlags::CLOEXEC,
            Mode::empty(),
            IN_ROOT,
        )
        .map_err(|e| io_err(format!("open /{dir} in the VE"))(e.into()))
    }

    /// Whether `path` exists (following links inside the root).
    pub fn exists(&self, path: &str) -> bool {
        openat2(
            self.fd,
            path.trim_start_matches('/'),
            OFlags::PATH | OFlags::CLOEXEC,
            Mode::empty(),
            IN_ROOT,
        )
        .is_ok()
    }

    /// What is at `path`: a regular file's text (at most `READ_CAP`
    /// bytes of UTF-8), nothing, or something Kennel leaves alone (a
    /// symlink, FIFO, device, directory, or a file it cannot read whole).
    /// The final component is never followed, and nothing but a regular
    /// file is ever opened for reading.
    pub fn read(&self, path: &str) -> Existing {
        let (dir, name) = split(path);
        let Ok(dirfd) = self.dir(dir) else {
            return Existing::Missing;
        };
        let flags = OFlags::NOFOLLOW | OFlags::CLOEXEC;
        let probe = match openat(&dirfd, name, flags | OFlags::PATH, Mode::empty()) {
            Ok(fd) => fd,
            Err(rustix::io::Errno::NOENT) => return Existing::Missing,
            Err(_) => return Existing::Other,
        };
        let regular = |fd: &OwnedFd| {
            fstat(fd)
                .ok()
                .filter(|st| FileType::from_raw_mode(st.st_mode) == FileType::RegularFile)
        };
        let Some(before) = regular(&probe) else {
            return Existing::Other;
        };
        let Ok(fd) = openat(
            &dirfd,
            name,
            flags | OFlags::RDONLY | OFlags::NONBLOCK | OFlags::NOCTTY,
            Mode::empty(),
        ) else {
            return Existing::Other;
        };
        // Still the same file (not swapped between the two opens).
        match regular(&fd) {
            Some(st) if st.st_ino == before.st_ino && st.st_dev == before.st_dev => {}
            _ => return Existing::Other,
        }
        if before.st_size as u64 > READ_CAP {
            return Existing::Other;
        }
        let mut text = String::new();
        match std::fs::File::from(fd)
            .take(READ_CAP)
            .read_to_string(&mut text)
        {
            Ok(_) => Existing::Text(text),
            Err(_) => Existing::Other,
        }
    }

    /// Replaces `path` with `contents` (mode 0644), atomically, when it is
    /// a regular file or missing; `Ok(false)` when something else is there.
    /// The directory must exist.
    pub fn write(&self, path: &str, contents: &str) -> Result<bool> {
        let (dir, name) = split(path);
        let dirfd = self.dir(dir)?;
        match statat(&dirfd, name, AtFlags::SYMLINK_NOFOLLOW) {
            Ok(st) if FileType::from_raw_mode(st.st_mode) != FileType::RegularFile => {
                return Ok(false)
            }
            Ok(_) | Err(rustix::io::Errno::NOENT) => {}
            Err(e) => return Err(io_err(format!("look at {path} in the VE"))(e.into())),
        }
        let tmp = format!(".{name}.kennel-new");
        let _ = unlinkat(&dirfd, tmp.as_str(), AtFlags::empty());
        let fd = openat(
            &dirfd,
            tmp.as_str(),
            OFlags::WRONLY | OFlags::CREATE | OFlags::EXCL | OFlags::NOFOLLOW | OFlags::CLOEXEC,
            Mode::from_raw_mode(0o644),
        )
        .map_err(|e| io_err(format!("create {path} in the VE"))(e.into()))?;
        let done = (|| -> std::io::Result<bool> {
            let mut f = std::fs::File::from(fd);
            f.write_all(contents.as_bytes())?;
            match renameat(&dirfd, tmp.as_str(), &dirfd, name) {
                Ok(()) => Ok(true),
                // A mount point (the VE bound something over the file):
                // the VE's choice, left alone like a symlink.
                Err(rustix::io::Errno::BUSY | rustix::io::Errno::XDEV) => {
                    let _ = unlinkat(&dirfd, tmp.as_str(), AtFlags::empty());
                    Ok(false)
                }
                Err(e) => Err(e.into()),
            }
        })();
        match done {
            Ok(written) => Ok(written),
            Err(e) => {
                let _ = unlinkat(&dirfd, tmp.as_str(), AtFlags::empty());
                Err(io_err(format!("write {path} in the VE"))(e))
            }
        }
    }

    /// Removes `path` (not following a final symlink); absent is fine.
    pub fn remove(&self, path: &str) -> Result<()> {
        let (dir, name) = split(path);
        let Ok(dirfd) = self.dir(dir) else {
            return Ok(());
        };
        match unlinkat(&dirfd, name, AtFlags::empty()) {
            Ok(()) | Err(rustix::io::Errno::NOENT) => Ok(()),
            Err(e) => Err(io_err(format!("remove {path} in the VE"))(e.into())),
        }
    }

    /// Names in directory `dir` (empty when it is missing).
    pub fn list(&self, dir: &str) -> Vec<String> {
        let Ok(fd) = self.dir(dir.trim_start_matches('/')) else {
            return Vec::new();
        };
        let Ok(d) = rustix::fs::Dir::read_from(fd.as_fd()) else {
            return Vec::new();
        };
        d.filter_map(|e| e.ok())
            .filter_map(|e| e.file_name().to_str().ok().map(str::to_string))
            .filter(|n| n != "." && n != "..")
            .collect()
    }
}

//! Moving every file of a copied layer (a clone) from one VE's host ids to
//! another's: owners, the root id of file capabilities and the ids in
//! POSIX ACLs, with the conversions of [`crate::backup::ids`].
//!
//! The tree is the copy of a VE's layer: its names, shapes and links are
//! the tenant's making. So the walk never follows a symlink (every step is
//! `openat` with `O_NOFOLLOW` below a directory descriptor), opens only
//! directories and regular files (FIFOs and device nodes are changed by
//! name, never opened), changes an inode with several names once, and is
//! bounded in depth. Nothing runs in the copy while it is walked.
//!
//! `chown` drops set-user-id bits and file capabilities, so each file's
//! mode and converted capability are written back after it.

use std::collections::HashSet;
use std::ffi::CString;
use std::os::fd::{AsFd, BorrowedFd, OwnedFd};
use std::path::Path;

use rustix::fs::{
    fchmod, fchown, fgetxattr, fsetxattr, fstat, openat, statat, AtFlags, Dir, FileType, Gid, Mode,
    OFlags, Uid, XattrFlags,
};
use rustix::io::Errno;

use crate::backup::ids::{convert_acl, convert_capability, Direction, IdShift};
use crate::error::{io_err, Result, StorageError};

/// Directories deeper than this are refused: each level holds a
/// descriptor.
const MAX_DEPTH: usize = 512;

const CAPABILITY: &str = "security.capability";
const ACLS: [&str; 2] = ["system.posix_acl_access", "system.posix_acl_default"];

/// What a shift changed.
#[derive(Debug, Default, Clone, Copy)]
pub struct Shifted {
    pub inodes: u64,
    /// Owners outside the old range (none a VE can make): left as they are.
    pub foreign: u64,
}

/// Moves every inode below `root` (a directory) from `from` to `to`.
pub fn shift_tree(root: &Path, from: IdShift, to: IdShift) -> Result<Shifted> {
    let fd = rustix::fs::open(
        root,
        OFlags::RDONLY | OFlags::DIRECTORY | OFlags::NOFOLLOW | OFlags::CLOEXEC,
        Mode::empty(),
    )
    .map_err(|e| io_err("open", root)(e.into()))?;
    let mut w = Walk {
        from,
        to,
        seen: HashSet::new(),
        report: Shifted::default(),
        root,
    };
    w.file(fd.as_fd())?;
    w.dir(fd, 0)?;
    Ok(w.report)
}

struct Walk<'a> {
    from: IdShift,
    to: IdShift,
    seen: HashSet<(u64, u64)>,
    report: Shifted,
    root: &'a Path,
}

impl Walk<'_> {
    fn err(&self, what: &str, e: Errno) -> StorageError {
        StorageError::Layer(format!(
            "move the ids of the copy in {}: {what}: {}",
            self.root.display(),
            std::io::Error::from(e)
        ))
    }

    fn moved(&self, uid: u32, gid: u32) -> Option<(u32, u32)> {
        let u = self.from.uid(u64::from(uid), Direction::ToRelative).ok()?;
        let g = self.from.gid(u64::from(gid), Direction::ToRelative).ok()?;
        Some((
            self.to.uid(u64::from(u), Direction::ToHost).ok()?,
            self.to.gid(u64::from(g), Direction::ToHost).ok()?,
        ))
    }

    fn dir(&mut self, dir: OwnedFd, depth: usize) -> Result<()> {
        if depth > MAX_DEPTH {
            return Err(StorageError::Layer(format!(
                "the VE's tree in {} is deeper than {MAX_DEPTH} directories",
                self.root.display()
            )));
        }
        let names: Vec<CString> = {
            let mut d = Dir::read_from(&dir).map_err(|e| self.err("read a directory", e))?;
            let mut v = Vec::new();
            while let Some(ent) = d.read() {
                let ent = ent.map_err(|e| self.err("read a directory", e))?;
                let n = ent.file_name();
                if n.to_bytes() != b"." && n.to_bytes() != b".." {
                    v.push(n.to_owned());
                }
            }
            v
        };
        for name in names {
            let st = statat(&dir, name.as_c_str(), AtFlags::SYMLINK_NOFOLLOW)
                .map_err(|e| self.err("stat", e))?;
            let ft = FileType::from_raw_mode(st.st_mode);
            match ft {
                FileType::Directory => {
                    let sub = openat(
                        &dir,
                        name.as_c_str(),
                        OFlags::RDONLY | OFlags::DIRECTORY | OFlags::NOFOLLOW | OFlags::CLOEXEC,
                        Mode::empty(),
                    )
                    .map_err(|e| self.err("open a directory", e))?;
                    self.file(sub.as_fd())?;
                    self.dir(sub, depth + 1)?;
                }
                FileType::RegularFile => {
                    if st.st_nlink > 1 && !self.seen.insert((st.st_dev, st.st_ino)) {
                        continue;
                    }
                    let f = openat(
                        &dir,
                        name.as_c_str(),
                        OFlags::RDONLY | OFlags::NOFOLLOW | OFlags::NONBLOCK | OFlags::CLOEXEC,
                        Mode::empty(),
                    )
                    .map_err(|e| self.err("open a file", e))?;
                    self.file(f.as_fd())?;
                }
                _ => {
                    // Symlinks, FIFOs, sockets, whiteouts: owner only, by
                    // name, never opened or followed.
                    if st.st_nlink > 1 && !self.seen.insert((st.st_dev, st.st_ino)) {
                        continue;
                    }
                    self.report.inodes += 1;
                    match self.moved(st.st_uid, st.st_gid) {
                        Some((u, g)) => rustix::fs::chownat(
                            &dir,
                            name.as_c_str(),
                            Some(Uid::from_raw(u)),
                            Some(Gid::from_raw(g)),
                            AtFlags::SYMLINK_NOFOLLOW,
                        )
                        .map_err(|e| self.err("chown", e))?,
                        None => self.report.foreign += 1,
                    }
                }
            }
        }
        Ok(())
    }

    /// An opened directory or regular file: owner, mode, capability, ACLs.
    fn file(&mut self, f: BorrowedFd<'_>) -> Result<()> {
        self.report.inodes += 1;
        let st = fstat(f).map_err(|e| self.err("stat", e))?;
        let Some((u, g)) = self.moved(st.st_uid, st.st_gid) else {
            self.report.foreign += 1;
            return Ok(());
        };
        let cap = read_xattr(f, CAPABILITY);
        let acls: Vec<(&str, Vec<u8>)> = ACLS
            .iter()
            .filter_map(|n| read_xattr(f, n).map(|v| (*n, v)))
            .collect();
        fchown(f, Some(Uid::from_raw(u)), Some(Gid::from_raw(g)))
            .map_err(|e| self.err("chown", e))?;
        // chown dropped set-user-id and set-group-id.
        fchmod(f, Mode::from_raw_mode(st.st_mode & 0o7777)).map_err(|e| self.err("chmod", e))?;
        let convert = |v: &[u8], acl: bool| {
            let rel = if acl {
                convert_acl(v, self.from, Direction::ToRelative)
            } else {
                convert_capability(v, self.from, Direction::ToRelative)
            };
            rel.and_then(|r| {
                if acl {
                    convert_acl(&r, self.to, Direction::ToHost)
                } else {
                    convert_capability(&r, self.to, Direction::ToHost)
                }
            })
        };
        for (name, v) in acls {
            // An ACL naming a stranger is dropped, not carried over.
            if let Ok(new) = convert(&v, true) {
                fsetxattr(f, name, &new, XattrFlags::empty())
                    .map_err(|e| self.err("set ACL", e))?;
            } else {
                let _ = rustix::fs::fremovexattr(f, name);
            }
        }
        if let Some(v) = cap {
            if let Ok(new) = convert(&v, false) {
                fsetxattr(f, CAPABILITY, &new, XattrFlags::empty())
                    .map_err(|e| self.err("set capability", e))?;
            }
        }
        Ok(())
    }
}

/// An extended attribute's value, if the file has it (at most 64 KiB).
fn read_xattr(f: BorrowedFd<'_>, name: &str) -> Option<Vec<u8>> {
    let mut buf = vec![0u8; 64 << 10];
    let n = fgetxattr(f, name, &mut buf).ok()?;
    buf.truncate(n);
    Some(buf)
}

//! Resolving and making paths below the destination.
//!
//! Every path is resolved by the kernel relative to a descriptor of the
//! destination: templates with `RESOLVE_IN_ROOT` (a symlink in a member's
//! path is followed as if the destination were `/`), layers with
//! `RESOLVE_BENEATH | RESOLVE_NO_SYMLINKS` (no symlink at all). Missing
//! directories of a member's name are made one at a time and count as
//! members.

use std::os::fd::{AsFd, BorrowedFd, OwnedFd};

use rustix::fs::{
    mkdirat, openat2, statat, unlinkat, AtFlags, FileType, Mode, OFlags, ResolveFlags, Timespec,
    Timestamps,
};
use rustix::io::Errno;

use super::member::Owner;
use super::UnpackLimits;

/// Templates: symlinks in a member's path are followed, inside the tree.
pub(super) const IN_TREE: ResolveFlags = ResolveFlags::IN_ROOT.union(ResolveFlags::NO_MAGICLINKS);

/// Layers: no symlink anywhere, no other filesystem.
pub(super) const STRICT: ResolveFlags = ResolveFlags::BENEATH
    .union(ResolveFlags::NO_SYMLINKS)
    .union(ResolveFlags::NO_MAGICLINKS)
    .union(ResolveFlags::NO_XDEV);

/// Why [`open_parent`] failed.
pub(super) enum ParentError {
    /// Making the missing directories would pass the member limit.
    Limit,
    Sys(Errno),
}

impl From<Errno> for ParentError {
    fn from(e: Errno) -> Self {
        ParentError::Sys(e)
    }
}

pub(crate) fn rel(comps: &[Vec<u8>]) -> Vec<u8> {
    if comps.is_empty() {
        b".".to_vec()
    } else {
        comps.join(&b'/')
    }
}

pub(crate) fn times(mtime: (i64, u32)) -> Timestamps {
    let t = Timespec {
        tv_sec: mtime.0,
        tv_nsec: mtime.1.into(),
    };
    Timestamps {
        last_access: t,
        last_modification: t,
    }
}

/// Sets the owner of entry `name` in `parent` without following it.
pub(super) fn chown_entry(
    parent: BorrowedFd<'_>,
    name: &[u8],
    owner: Owner,
) -> rustix::io::Result<()> {
    rustix::fs::chownat(parent, name, owner.0, owner.1, AtFlags::SYMLINK_NOFOLLOW)
}

/// Opens (creating missing directories) the directory `comps` inside
/// `root`, resolving every step inside the tree. Each directory it makes
/// counts as a member (`seen`): one long name would otherwise make
/// thousands of directories past the limit. Directories made for a
/// layer's names are given to `made_owner` (the VE's root).
pub(super) fn open_parent(
    root: BorrowedFd<'_>,
    comps: &[Vec<u8>],
    seen: &mut u64,
    limits: &UnpackLimits,
    resolve: ResolveFlags,
    made_owner: Option<Owner>,
) -> std::result::Result<OwnedFd, ParentError> {
    let flags = OFlags::PATH | OFlags::DIRECTORY | OFlags::CLOEXEC;
    match openat2(root, rel(comps), flags, Mode::empty(), resolve) {
        Err(Errno::NOENT) => {}
        other => return Ok(other?),
    }
    let mut dir = openat2(root, ".", flags, Mode::empty(), resolve)?;
    for (i, c) in comps.iter().enumerate() {
        match openat2(root, rel(&comps[..=i]), flags, Mode::empty(), resolve) {
            Ok(d) => dir = d,
            Err(Errno::NOENT) => {
                if *seen >= limits.max_entries {
                    return Err(ParentError::Limit);
                }
                match mkdirat(dir.as_fd(), c.as_slice(), Mode::from_raw_mode(0o755)) {
                    Ok(()) => {
                        *seen += 1;
                        if let Some(owner) = made_owner {
                            chown_entry(dir.as_fd(), c, owner)?;
                        }
                    }
                    Err(Errno::EXIST) => {}
                    Err(e) => return Err(e.into()),
                }
                dir = openat2(root, rel(&comps[..=i]), flags, Mode::empty(), resolve)?;
            }
            Err(e) => return Err(e.into()),
        }
    }
    Ok(dir)
}

/// Creates directory `name` in `parent`, replacing a non-directory.
pub(super) fn make_dir(parent: BorrowedFd<'_>, name: &[u8]) -> rustix::io::Result<()> {
    match statat(parent, name, AtFlags::SYMLINK_NOFOLLOW) {
        Ok(st) if FileType::from_raw_mode(st.st_mode) == FileType::Directory => return Ok(()),
        Ok(_) => unlinkat(parent, name, AtFlags::empty())?,
        Err(Errno::NOENT) => {}
        Err(e) => return Err(e),
    }
    mkdirat(parent, name, Mode::from_raw_mode(0o700))
}

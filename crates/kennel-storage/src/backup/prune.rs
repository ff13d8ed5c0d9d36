//! Removing what an incremental backup no longer lists.
//!
//! Every backup lists every path of the layer, so after an incremental is
//! unpacked over the tree its predecessors made, any entry it did not make
//! or keep was deleted (or renamed away) in the VE between the two
//! backups. The walk opens each directory by its path below the
//! destination with `RESOLVE_BENEATH | RESOLVE_NO_SYMLINKS | RESOLVE_NO_XDEV`
//! (one descriptor at a time, whatever the depth), and removes an
//! unlisted entry with [`crate::remove`], which never follows a symlink.

use std::collections::HashSet;
use std::ffi::CString;
use std::os::fd::{AsFd, BorrowedFd, OwnedFd};
use std::path::Path;

use rustix::fs::{openat2, statat, AtFlags, Dir, FileType, Mode, OFlags};

use super::walk::STRICT;
use super::BackupError;
use crate::error::Result;
use crate::remove::remove_in;
use crate::shown::shown;

fn err(dest: &Path, path: &[u8], e: impl std::fmt::Display) -> crate::StorageError {
    BackupError::Tree {
        path: dest.to_path_buf(),
        reason: format!("cannot prune '{}': {e}", shown(path)),
    }
    .into()
}

fn open(root: BorrowedFd<'_>, path: &[u8]) -> rustix::io::Result<OwnedFd> {
    let p: &[u8] = if path.is_empty() { b"." } else { path };
    openat2(
        root,
        p,
        OFlags::RDONLY | OFlags::DIRECTORY | OFlags::NOFOLLOW | OFlags::CLOEXEC,
        Mode::empty(),
        STRICT,
    )
}

/// Removes every entry below `dest` whose path is not in `listed`;
/// returns how many entries were removed.
pub(crate) fn prune(dest: &Path, listed: &HashSet<Vec<u8>>) -> Result<u64> {
    let root = rustix::fs::open(
        dest,
        OFlags::PATH | OFlags::DIRECTORY | OFlags::CLOEXEC,
        Mode::empty(),
    )
    .map_err(|e| err(dest, b"", std::io::Error::from(e)))?;
    let mut removed = 0;
    let mut todo: Vec<Vec<u8>> = vec![Vec::new()];
    while let Some(dir_path) = todo.pop() {
        let fd = open(root.as_fd(), &dir_path)
            .map_err(|e| err(dest, &dir_path, std::io::Error::from(e)))?;
        let mut names: Vec<CString> = Vec::new();
        let mut dir =
            Dir::read_from(&fd).map_err(|e| err(dest, &dir_path, std::io::Error::from(e)))?;
        while let Some(entry) = dir.read() {
            let entry = entry.map_err(|e| err(dest, &dir_path, std::io::Error::from(e)))?;
            let name = entry.file_name();
            if name != c"." && name != c".." {
                names.push(name.to_owned());
            }
        }
        for name in names {
            let mut path = dir_path.clone();
            if !path.is_empty() {
                path.push(b'/');
            }
            path.extend_from_slice(name.as_bytes());
            if !listed.contains(&path) {
                let shown_path = shown(&path);
                removed += remove_in(fd.as_fd(), &name, Path::new(&shown_path))?.entries;
                continue;
            }
            let st = statat(&fd, name.as_c_str(), AtFlags::SYMLINK_NOFOLLOW)
                .map_err(|e| err(dest, &path, std::io::Error::from(e)))?;
            if FileType::from_raw_mode(st.st_mode) == FileType::Directory {
                todo.push(path);
            }
        }
    }
    Ok(removed)
}

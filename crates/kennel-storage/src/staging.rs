//! Building under a temporary name and renaming into place, so that a
//! crash never leaves a half-made (or half-deleted) template or VE under
//! its real name.
//!
//! A directory `NAME` is built as `.NAME.tmp-PID` and deleted by first
//! renaming it to `.NAME.deleted-PID`; [`sweep`] removes such directories
//! whose process is gone.

use std::fs;
use std::path::{Path, PathBuf};

/// Where `name` below `dir` is built by this process.
pub fn building(dir: &Path, name: &str) -> PathBuf {
    dir.join(format!(".{name}.tmp-{}", std::process::id()))
}

/// Where `name` below `dir` goes while this process deletes it.
pub fn deleting(dir: &Path, name: &str) -> PathBuf {
    dir.join(format!(".{name}.deleted-{}", std::process::id()))
}

/// Removes the leftovers of crashed builds and deletions in `dir` (by
/// descriptor: they may be a VE's or a tarball's tree, see
/// [`crate::remove`]).
pub fn sweep(dir: &Path) {
    sweep_with(dir, &|_| {});
}

/// [`sweep`], calling `before_removing` on each leftover first (a VE's
/// leftover names a disk in the pool that goes with it).
pub fn sweep_with(dir: &Path, before_removing: &dyn Fn(&Path)) {
    let Ok(rd) = fs::read_dir(dir) else { return };
    for e in rd.flatten() {
        let name = e.file_name().to_string_lossy().into_owned();
        let Some(rest) = name.strip_prefix('.') else {
            continue;
        };
        let pid = rest
            .rsplit_once(".tmp-")
            .or_else(|| rest.rsplit_once(".deleted-"))
            .and_then(|(_, p)| p.parse::<i32>().ok());
        if let Some(pid) = pid {
            if !Path::new(&format!("/proc/{pid}")).exists() {
                before_removing(&e.path());
                if let Err(e) = crate::remove::remove_tree(&e.path()) {
                    tracing::warn!("{e}");
                }
            }
        }
    }
}

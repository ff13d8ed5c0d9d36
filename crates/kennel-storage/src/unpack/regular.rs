//! Regular files and hard links.
//!
//! A file is created with `O_CREAT | O_EXCL | O_NOFOLLOW` once whatever
//! was at its name is removed, so nothing is written through a symlink;
//! its owner, mode, attributes and times are applied once its content is
//! complete (writing data drops a file capability). A layer's sparse file
//! is written segment by segment at its offsets, possibly over several
//! members, and finished when a member of another path comes; a member
//! marked unchanged only takes new metadata, and its file must already be
//! in the tree. A hard link must name an entry inside the tree.

use std::io::{self, Read};
use std::os::fd::{AsFd, BorrowedFd};

use rustix::fs::{
    fchmod, fchown, fsetxattr, fstat, linkat, openat2, AtFlags, FileType, Mode, OFlags, XattrFlags,
};

use super::layer::{self, LayerRecords, OpenSparse};
use super::member::{Owner, Unpacker};
use super::paths::{rel, STRICT};
use super::{archive_err, clean_path, errno_err, refuse, Reason};
use crate::backup::BackupError;
use crate::error::Result;

impl Unpacker {
    /// A hard link member at `path`; `false` if it was not made (refused,
    /// or a link to a skipped metadata-only copy).
    pub(super) fn hard_link<R: Read>(
        &mut self,
        entry: &mut tar::Entry<'_, R>,
        p: BorrowedFd<'_>,
        file: &[u8],
        name: &str,
        path: &[u8],
    ) -> Result<bool> {
        let target = entry
            .link_name_bytes()
            .map(|t| t.into_owned())
            .unwrap_or_default();
        let target = match self.layer() {
            // A layer's links name members (`layer/...`).
            true => match target.strip_prefix(crate::backup::format::LAYER_PREFIX.as_bytes()) {
                Some(t) => t.to_vec(),
                None => {
                    refuse(
                        &mut self.report,
                        Reason::HardLink,
                        name,
                        "hard link target outside the layer",
                    );
                    return Ok(false);
                }
            },
            false => target,
        };
        let tcomps = match clean_path(&target, self.opts.flavor) {
            Ok(Some(c)) => c,
            Ok(None) => {
                refuse(
                    &mut self.report,
                    Reason::HardLink,
                    name,
                    "hard link to the root directory",
                );
                return Ok(false);
            }
            Err(why) => {
                refuse(
                    &mut self.report,
                    Reason::HardLink,
                    name,
                    &format!("hard link target {}", why.as_str()),
                );
                return Ok(false);
            }
        };
        if self.layer() && self.metacopies.contains(&tcomps.join(&b'/')) {
            self.skip_metacopy(path.to_vec());
            return Ok(false);
        }
        let (tparent_comps, tfile) = tcomps.split_at(tcomps.len() - 1);
        let tparent = match openat2(
            self.root.as_fd(),
            rel(tparent_comps),
            OFlags::PATH | OFlags::DIRECTORY | OFlags::CLOEXEC,
            Mode::empty(),
            self.resolve,
        ) {
            Ok(p) => p,
            Err(e) => {
                refuse(
                    &mut self.report,
                    Reason::HardLink,
                    name,
                    &format!(
                        "hard link target's directory is missing ({})",
                        io::Error::from(e)
                    ),
                );
                return Ok(false);
            }
        };
        self.remove_existing(p, file, name)?;
        if let Err(e) = linkat(
            tparent.as_fd(),
            tfile[0].as_slice(),
            p,
            file,
            AtFlags::empty(),
        ) {
            refuse(
                &mut self.report,
                Reason::HardLink,
                name,
                &format!("hard link failed ({})", io::Error::from(e)),
            );
            return Ok(false);
        }
        Ok(true)
    }

    /// A regular file with its data; `false` if it was refused.
    #[allow(clippy::too_many_arguments)]
    pub(super) fn file<R: Read>(
        &mut self,
        entry: &mut tar::Entry<'_, R>,
        p: BorrowedFd<'_>,
        file: &[u8],
        name: &str,
        path: &[u8],
        meta: layer::FileMeta,
        recs: &LayerRecords,
    ) -> Result<bool> {
        self.bytes = self.bytes.saturating_add(entry.size());
        if self.bytes > self.limits().max_bytes {
            return Err(archive_err(format!(
                "its files hold more than {} MiB: if the archive is genuine, raise import_max_size in kennel.toml",
                self.limits().max_bytes >> 20
            )));
        }
        let sparse = match recs.sparse_map(entry.size(), 0) {
            Ok(s) => s,
            Err(why) => {
                refuse(&mut self.report, Reason::Malformed, name, why);
                return Ok(false);
            }
        };
        self.remove_existing(p, file, name)?;
        let fd = rustix::fs::openat(
            p,
            file,
            OFlags::CREATE | OFlags::EXCL | OFlags::WRONLY | OFlags::NOFOLLOW | OFlags::CLOEXEC,
            Mode::from_raw_mode(0o600),
        )
        .map_err(|e| errno_err("create", name, e))?;
        let mut f = std::fs::File::from(fd);
        match sparse {
            None => {
                io::copy(entry, &mut f).map_err(|e| archive_err(format!("write '{name}': {e}")))?;
                self.report.xattrs_dropped +=
                    layer::finish_file(&f, &meta, self.opts.flavor, self.opts.ids)
                        .map_err(|e| errno_err("set the owner and mode of", name, e))?;
            }
            Some((segments, realsize)) => {
                // Its metadata waits for its last segment: writing data
                // drops a file capability.
                let next = layer::write_segments(entry, &f, &segments, realsize, 0)
                    .map_err(|e| archive_err(format!("write '{name}': {e}")))?;
                self.sparse = Some(OpenSparse {
                    path: path.to_vec(),
                    name: name.to_string(),
                    file: f,
                    next,
                    realsize,
                    meta,
                });
            }
        }
        Ok(true)
    }

    /// More segments of the sparse file the previous member began.
    pub(super) fn sparse_more<R: Read>(
        &mut self,
        entry: &mut tar::Entry<'_, R>,
        raw: &[u8],
        name: &str,
        recs: &LayerRecords,
    ) -> Result<()> {
        let Some(open) = self.sparse.as_mut() else {
            return Err(BackupError::Corrupt(format!(
                "'{name}' continues a sparse file that was not begun"
            ))
            .into());
        };
        if !same_path(raw, &open.path) {
            return Err(BackupError::Corrupt(format!(
                "'{name}' continues another file's segments"
            ))
            .into());
        }
        self.bytes = self.bytes.saturating_add(entry.size());
        if self.bytes > self.opts.limits.max_bytes {
            return Err(archive_err(format!(
                "its files hold more than {} MiB",
                self.opts.limits.max_bytes >> 20
            )));
        }
        let segments = recs
            .sparse_more_map(entry.size(), open.realsize, open.next)
            .map_err(|why| BackupError::Corrupt(format!("'{name}': {why}")))?;
        open.next = layer::write_segments(entry, &open.file, &segments, open.realsize, open.next)
            .map_err(|e| archive_err(format!("write '{name}': {e}")))?;
        Ok(())
    }

    /// Applies the metadata of a sparse file whose segments are all written.
    pub(super) fn end_sparse(&mut self) -> Result<()> {
        if let Some(open) = self.sparse.take() {
            self.report.xattrs_dropped +=
                layer::finish_file(&open.file, &open.meta, self.opts.flavor, self.opts.ids)
                    .map_err(|e| errno_err("set the owner and mode of", &open.name, e))?;
        }
        Ok(())
    }

    /// A member whose content is the one already in the tree: only its
    /// metadata is applied.
    pub(super) fn unchanged(
        &mut self,
        p: BorrowedFd<'_>,
        file: &[u8],
        name: &str,
        meta: &layer::FileMeta,
    ) -> Result<()> {
        let missing = || -> crate::StorageError {
            BackupError::Chain(format!(
                "'{name}' is unchanged since the previous backup, which holds no such file"
            ))
            .into()
        };
        let fd = openat2(
            p,
            file,
            OFlags::RDONLY | OFlags::NOFOLLOW | OFlags::NONBLOCK | OFlags::CLOEXEC,
            Mode::empty(),
            STRICT,
        )
        .map_err(|_| missing())?;
        let st = fstat(&fd).map_err(|e| errno_err("stat", name, e))?;
        if FileType::from_raw_mode(st.st_mode) != FileType::RegularFile {
            return Err(missing());
        }
        let f = std::fs::File::from(fd);
        self.report.xattrs_dropped += layer::finish_file(&f, meta, self.opts.flavor, self.opts.ids)
            .map_err(|e| errno_err("set the owner and mode of", name, e))?;
        self.report.unchanged += 1;
        Ok(())
    }
}

/// Whether member name `raw` names `path` (components joined by `/`).
pub(super) fn same_path(raw: &[u8], path: &[u8]) -> bool {
    raw.split(|&b| b == b'/')
        .filter(|c| !c.is_empty() && *c != b".")
        .eq(path.split(|&b| b == b'/'))
}

/// Templates keep only these extended attributes: file capabilities
/// (ping) and user attributes. `trusted.*` and security labels are never
/// taken from an untrusted archive.
pub(super) fn collect_xattrs<R: Read>(entry: &mut tar::Entry<'_, R>) -> Vec<(String, Vec<u8>)> {
    let mut out = Vec::new();
    if let Ok(Some(exts)) = entry.pax_extensions() {
        for ext in exts.flatten() {
            let Ok(key) = ext.key() else { continue };
            let Some(name) = key.strip_prefix("SCHILY.xattr.") else {
                continue;
            };
            if name == "security.capability" || name.starts_with("user.") {
                out.push((name.to_string(), ext.value_bytes().to_vec()));
            }
        }
    }
    out
}

/// Template attributes, as they are.
pub(crate) fn set_template_xattrs(f: &std::fs::File, xattrs: &[(String, Vec<u8>)]) {
    for (k, v) in xattrs {
        let _ = fsetxattr(f, k.as_str(), v, XattrFlags::empty());
    }
}

/// Sets owner then mode (chown clears set-user-ID bits).
pub(crate) fn owner_and_mode(f: &std::fs::File, owner: Owner, mode: u32) -> rustix::io::Result<()> {
    fchown(f, owner.0, owner.1)?;
    fchmod(f, Mode::from_raw_mode(mode))
}

//! Making a template's tree from a backup that holds it
//! (`kennel backup --with-template`), for a host that lacks the template.
//!
//! # Through the template import's unpacker
//!
//! The stream is the tenant's as much as the operator's: nothing
//! authenticates it, and a template is shared by every VE made from it, so
//! its `template/` members get exactly what a template tarball gets
//! ([`crate::unpack`], [`Flavor::Template`]): paths resolved below the
//! destination by the kernel, `..` refused, owners kept as they are but
//! only 0-65535, every device node skipped, only `security.capability`
//! and `user.*` attributes, names UTF-8, members and bytes bounded
//! ([`UnpackLimits`], over all the template's members). The layer's
//! members, the index and the end record are read past by
//! [`read_backup`], which hashes them: [`extract_template`] returns `Ok`
//! only once the end record's hash, the zstd checksums and the footer
//! check, so a truncated or altered stream is refused. What it wrote by
//! then is not taken back: the caller unpacks into a staging directory and
//! throws it away on an error (as [`crate::template::Store::create`] does).
//!
//! # Two choices the stream's format forces
//!
//! * **Names.** Members are named `template/<path>`, and hard links name
//!   their target the same way (a plain `tar x` of the stream gives a
//!   coherent `template/` directory). The unpacker is therefore rooted at
//!   a scratch directory made inside the destination, and takes the
//!   members with their full names; at the end the entries of
//!   `scratch/template` are renamed into the destination (never replacing
//!   anything) and the scratch directory, with whatever a forged member
//!   may have made beside `template/` in it, is removed. A hard link to a
//!   `layer/` name, or anything outside `template/`, finds nothing and is
//!   refused; a symlink in a member's path resolves inside the scratch
//!   directory, which is thrown away.
//! * **Sparse files.** The writer stores a template's sparse file as its
//!   data segments, as for a layer (`KENNEL.sparse`), which a template
//!   import has no reason to read: written as a plain file, it would be
//!   the wrong file. Such members (and only they: regular files with a
//!   sparse map, after their name and attributes were checked against the
//!   template's rules here) go to a second unpacker of the layer flavor
//!   with no id shift, which writes segments at their offsets. Its owner
//!   rule is the same (0-65535 kept as they are, with a zero shift), and
//!   the attributes it could take that a template must not (overlayfs's,
//!   ACLs) are refused with the member before it sees it. The bounds are
//!   checked over both unpackers' members and bytes here, and each also
//!   bounds the directories it makes for names, so a forged stream makes
//!   at most twice `max_entries` entries.
//!
//! # Chains
//!
//! The template is never incremental: a backup made with
//! `--with-template`, full or incremental, holds the whole template, so
//! the caller extracts it from any one backup of a chain that has it
//! ([`BackupManifest::template_included`]), and a chain needs it in one
//! backup only. [`super::restore_chain`] reads past the template's
//! members of every backup.

use std::ffi::CString;
use std::io::Read;
use std::os::fd::{AsFd, OwnedFd};
use std::path::Path;

use rustix::fs::{
    fchmod, fchown, fstat, futimens, mkdirat, openat2, renameat_with, Dir, Gid, Mode, OFlags,
    RenameFlags, Timespec, Timestamps, Uid,
};

use super::format::TEMPLATE_PREFIX;
use super::ids::IdShift;
use super::manifest::BackupManifest;
use super::meta::Meta;
use super::stream::{read_backup, Visitor};
use super::walk::STRICT;
use super::xattr_read::template_keeps;
use super::BackupError;
use crate::error::{io_err, Result, StorageError};
use crate::shown::shown;
use crate::unpack::layer::LayerRecords;
use crate::unpack::member::Unpacker;
use crate::unpack::{
    archive_err, clean_path, refuse, too_many, Flavor, Flow, Reason, UnpackLimits, UnpackOptions,
    UnpackReport,
};

/// What [`extract_template_report`] made.
#[derive(Debug, Clone)]
pub struct TemplateExtract {
    pub manifest: BackupManifest,
    /// The unpack of the template's members: what was made, and what was
    /// refused or skipped (for the operator).
    pub unpacked: UnpackReport,
}

/// Unpacks the template held by the backup stream `reader` into the
/// existing, empty directory `dest`, within `limits`; `progress` is given
/// the compressed bytes read so far. Returns the backup's manifest, once
/// the whole stream has been read and checked. On an error, `dest` holds
/// a partial tree to throw away.
pub fn extract_template<R: Read>(
    reader: R,
    dest: &Path,
    limits: &UnpackLimits,
    progress: &dyn Fn(u64),
) -> Result<BackupManifest> {
    extract_template_report(reader, dest, limits, progress).map(|t| t.manifest)
}

/// [`extract_template`], with what the unpack made and refused.
pub fn extract_template_report<R: Read>(
    reader: R,
    dest: &Path,
    limits: &UnpackLimits,
    progress: &dyn Fn(u64),
) -> Result<TemplateExtract> {
    let dest_fd = rustix::fs::open(
        dest,
        OFlags::RDONLY | OFlags::DIRECTORY | OFlags::CLOEXEC,
        Mode::empty(),
    )
    .map_err(|e| io_err("open", dest)(e.into()))?;
    let not_empty = std::fs::read_dir(dest)
        .map_err(io_err("read", dest))?
        .next()
        .is_some();
    if not_empty {
        return Err(StorageError::Layer(format!(
            "cannot make a template in {}: the directory is not empty",
            dest.display()
        )));
    }
    let scratch_name = format!(".kennel-extract-{}", uuid::Uuid::new_v4().simple());
    let scratch_c = CString::new(scratch_name.as_str())
        .map_err(|_| archive_err("a scratch name with a NUL byte"))?;
    let scratch = dest.join(&scratch_name);
    mkdirat(&dest_fd, scratch_c.as_c_str(), Mode::from_raw_mode(0o700))
        .map_err(|e| io_err("create", &scratch)(e.into()))?;
    let result = extract_into(reader, &scratch, dest_fd.as_fd(), limits, progress);
    let removed = crate::remove::remove_in(dest_fd.as_fd(), &scratch_c, &scratch);
    let (done, top) = result?;
    removed?;
    // Last, as every change in `dest` above changed its time.
    set_top(dest_fd.as_fd(), &top)
        .map_err(|e| io_err("set the owner and mode of", dest)(e.into()))?;
    Ok(done)
}

fn extract_into<R: Read>(
    reader: R,
    scratch: &Path,
    dest: std::os::fd::BorrowedFd<'_>,
    limits: &UnpackLimits,
    progress: &dyn Fn(u64),
) -> Result<(TemplateExtract, Meta)> {
    let opts = |flavor| UnpackOptions {
        limits: *limits,
        flavor,
        ids: IdShift::default(),
    };
    let mut x = Extractor {
        plain: Unpacker::new(scratch, &opts(Flavor::Template))?,
        sparse: Unpacker::new(scratch, &opts(Flavor::Layer))?,
        limits: *limits,
        members: 0,
        bytes: 0,
        own: UnpackReport::default(),
    };
    let summary = read_backup(reader, progress, &mut x)?;
    if summary.end.is_none() {
        return Err(BackupError::Truncated.into());
    }
    if !summary.manifest.template_included || summary.template_members == 0 {
        return Err(BackupError::NoTemplate.into());
    }
    // Files' metadata first, directories' modes and times last.
    let sparse = x.sparse.finish()?;
    let plain = x.plain.finish()?;
    let mut unpacked = merge(plain, &sparse);
    unpacked = merge(unpacked, &x.own);
    let top = move_up(scratch, dest)?;
    Ok((
        TemplateExtract {
            manifest: summary.manifest,
            unpacked,
        },
        top,
    ))
}

/// `a` with `b`'s counts added (and its first refusals, room allowing).
fn merge(mut a: UnpackReport, b: &UnpackReport) -> UnpackReport {
    a.entries += b.entries;
    a.devices += b.devices;
    a.refused_count += b.refused_count;
    let (x, y) = (&mut a.refused_by, &b.refused_by);
    x.paths += y.paths;
    x.through_symlink += y.through_symlink;
    x.hard_links += y.hard_links;
    x.foreign_owners += y.foreign_owners;
    x.malformed += y.malformed;
    a.whiteouts += b.whiteouts;
    a.unchanged += b.unchanged;
    a.metacopy += b.metacopy;
    a.xattrs_dropped += b.xattrs_dropped;
    for r in &b.refused {
        if a.refused.len() < crate::unpack::MAX_REFUSED {
            a.refused.push(r.clone());
        }
    }
    a
}

/// Renames every entry of `scratch/template` into `dest` (refusing to
/// replace anything); returns the status the template's top had.
fn move_up(scratch: &Path, dest: std::os::fd::BorrowedFd<'_>) -> Result<Meta> {
    let top = scratch.join("template");
    let s = rustix::fs::open(
        scratch,
        OFlags::PATH | OFlags::DIRECTORY | OFlags::CLOEXEC,
        Mode::empty(),
    )
    .map_err(|e| io_err("open", scratch)(e.into()))?;
    let tree: OwnedFd = openat2(
        &s,
        "template",
        OFlags::RDONLY | OFlags::DIRECTORY | OFlags::NOFOLLOW | OFlags::CLOEXEC,
        Mode::empty(),
        STRICT,
    )
    .map_err(|e| {
        StorageError::from(BackupError::Corrupt(format!(
            "its template is not a directory ({})",
            std::io::Error::from(e)
        )))
    })?;
    // Before the entries leave it (which changes its time).
    let st = Meta::from_stat(&fstat(&tree).map_err(|e| io_err("stat", &top)(e.into()))?);
    let mut names = Vec::new();
    let mut dir = Dir::read_from(&tree).map_err(|e| io_err("read", &top)(e.into()))?;
    while let Some(entry) = dir.read() {
        let entry = entry.map_err(|e| io_err("read", &top)(e.into()))?;
        let name = entry.file_name();
        if name != c"." && name != c".." {
            names.push(name.to_owned());
        }
    }
    for name in &names {
        renameat_with(
            &tree,
            name.as_c_str(),
            dest,
            name.as_c_str(),
            RenameFlags::NOREPLACE,
        )
        .map_err(|e| {
            StorageError::Layer(format!(
                "cannot move '{}' of the template into place: {}",
                shown(name.to_bytes()),
                std::io::Error::from(e)
            ))
        })?;
    }
    Ok(st)
}

/// Gives `dest` the template top's owner, mode and time.
fn set_top(dest: std::os::fd::BorrowedFd<'_>, st: &Meta) -> rustix::io::Result<()> {
    fchown(
        dest,
        Some(Uid::from_raw(st.uid)),
        Some(Gid::from_raw(st.gid)),
    )?;
    fchmod(dest, Mode::from_raw_mode(st.perm()))?;
    let mtime = Timespec {
        tv_sec: st.mtime.0,
        tv_nsec: st.mtime.1.into(),
    };
    futimens(
        dest,
        &Timestamps {
            last_access: mtime,
            last_modification: mtime,
        },
    )
}

struct Extractor {
    /// Everything but sparse files: the template import's flavor.
    plain: Unpacker,
    /// Sparse files' segments (see the module's documentation).
    sparse: Unpacker,
    limits: UnpackLimits,
    /// Template members and their stored bytes so far, over both.
    members: u64,
    bytes: u64,
    /// Members refused here, before either unpacker saw them.
    own: UnpackReport,
}

impl Visitor for Extractor {
    fn manifest(&mut self, m: &BackupManifest) -> Result<Flow> {
        if !m.template_included {
            return Err(BackupError::NoTemplate.into());
        }
        Ok(Flow::Continue)
    }

    fn template<R: Read>(&mut self, entry: &mut tar::Entry<'_, R>, rel: &[u8]) -> Result<()> {
        let raw = [TEMPLATE_PREFIX.as_bytes(), rel].concat();
        let name = shown(&raw);
        let recs = match LayerRecords::read(entry) {
            Ok(r) => r,
            Err(why) => {
                self.count(0)?;
                refuse(&mut self.own, Reason::Malformed, &name, why);
                return Ok(());
            }
        };
        if !recs.more {
            self.count(entry.size())?;
        } else {
            self.bytes = self.bytes.saturating_add(entry.size());
            self.check_bytes()?;
        }
        if recs.unchanged || recs.socket {
            refuse(
                &mut self.own,
                Reason::Malformed,
                &name,
                "a record a template does not have",
            );
            return Ok(());
        }
        if !(recs.more || recs.has_segments()) {
            return self.plain.member(entry, &raw);
        }
        if !entry.header().entry_type().is_file() {
            refuse(
                &mut self.own,
                Reason::Malformed,
                &name,
                "a sparse map on a member that is not a file",
            );
            return Ok(());
        }
        if let Err(why) = clean_path(rel, Flavor::Template) {
            refuse(&mut self.own, why.reason(), &name, why.as_str());
            return Ok(());
        }
        if recs.xattrs.iter().any(|(k, _)| !template_keeps(k)) {
            refuse(
                &mut self.own,
                Reason::Malformed,
                &name,
                "an attribute a template does not keep",
            );
            return Ok(());
        }
        self.sparse.member(entry, &raw)
    }
}

impl Extractor {
    /// One more member of `size` stored bytes, within the limits.
    fn count(&mut self, size: u64) -> Result<()> {
        self.members += 1;
        if self.members > self.limits.max_entries {
            return Err(too_many(&self.limits));
        }
        self.bytes = self.bytes.saturating_add(size);
        self.check_bytes()
    }

    fn check_bytes(&self) -> Result<()> {
        if self.bytes > self.limits.max_bytes {
            return Err(archive_err(format!(
                "its template's files hold more than {} MiB: if the backup is genuine, raise \
                 import_max_size in kennel.toml",
                self.limits.max_bytes >> 20
            )));
        }
        Ok(())
    }
}

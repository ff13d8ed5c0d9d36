//! Restoring a chain of backups — a full one, then its incrementals in
//! order — into an empty directory.
//!
//! Each backup goes through the same unpacker as a template import
//! ([`crate::unpack`], [`Flavor::Layer`]): paths resolved below the
//! destination with no symlink followed, members and bytes bounded, owners
//! and the ids in capabilities and ACLs moved into the new VE's range,
//! anything a backup cannot hold refused or skipped. An incremental is
//! unpacked over what the chain made so far (its unchanged members keep
//! the content and take the new metadata), and then every path it does
//! not list is removed ([`super::prune`]) — only once its end record has
//! been read and its hash checked, so a damaged increment deletes nothing.
//! The caller restores into a staging directory and commits it only when
//! [`restore_chain`] returns `Ok`: an error part way leaves a partial tree
//! that must be thrown away.
//!
//! A hostile member is refused or skipped, not an error: the backup is the
//! tenant's, and failing the whole restore on one forged member would let
//! a tenant's own data block the restore of that data, while refusing it
//! costs the tenant only the member. What is not made is never silent
//! though: [`RestoreReport::refusals`] counts it by reason over the whole
//! chain, and [`RestoreReport::refused_summary`] says it in one line for
//! the operator. A genuine backup of a VE made by Kennel normally has
//! none, but for the overlayfs attributes a restore does not take back
//! (renamed template directories, metadata-only copies of a shifted VE:
//! see [`super::xattr_policy`]).

use std::io::Read;
use std::path::Path;

use uuid::Uuid;

use super::ids::IdShift;
use super::manifest::{BackupKind, BackupManifest};
use super::prune::prune;
use super::stream::{read_backup, Visitor};
use super::BackupError;
use crate::error::Result;
use crate::unpack::member::Unpacker;
use crate::unpack::{Flavor, Flow, Refusals, UnpackLimits, UnpackOptions, UnpackReport};

/// Where the restored VE's ids start, and how much each backup may unpack.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct RestoreOptions {
    pub ids: IdShift,
    /// Applied to each backup of the chain.
    pub limits: UnpackLimits,
    /// `dest` already holds a shifted layer's metadata-only copies of the
    /// template (made for the new VE): the backup goes over them
    /// (directories merge, files replace, the backup's own metadata-only
    /// copies are skipped), instead of into an empty directory.
    pub over_prepared: bool,
}

/// What a restore did.
#[derive(Debug, Clone, Default)]
pub struct RestoreReport {
    /// The chain's manifests, in order.
    pub manifests: Vec<BackupManifest>,
    /// Each backup's unpack, in order.
    pub unpacked: Vec<UnpackReport>,
    /// Entries removed because an incremental no longer listed them.
    pub removed: u64,
}

impl RestoreReport {
    /// What the chain held that the restore did not make, by reason, over
    /// every backup of the chain.
    pub fn refusals(&self) -> Refusals {
        let mut all = Refusals::default();
        for u in &self.unpacked {
            all.add(&u.refusals());
        }
        all
    }

    /// One line saying what was refused or skipped, for the operator (a
    /// warning), or `None` if the restore made everything:
    /// "12 entries of the backup were refused or skipped (3 paths outside
    /// the layer, 2 device nodes, 7 owners outside the VE's ids)".
    pub fn refused_summary(&self) -> Option<String> {
        let r = self.refusals();
        let of = if self.unpacked.len() > 1 {
            "the backups"
        } else {
            "the backup"
        };
        let entries = r.entries();
        let mut line = String::new();
        if entries > 0 {
            let (noun, verb) = if entries == 1 {
                ("entry", "was")
            } else {
                ("entries", "were")
            };
            line = format!(
                "{entries} {noun} of {of} {verb} refused or skipped ({})",
                r.reasons("the layer").join(", ")
            );
        }
        if r.xattrs > 0 {
            let (noun, verb) = if r.xattrs == 1 {
                ("extended attribute", "was")
            } else {
                ("extended attributes", "were")
            };
            if line.is_empty() {
                line = format!("{} {noun} of {of} {verb} not restored", r.xattrs);
            } else {
                line.push_str(&format!("; {} {noun} {verb} not restored", r.xattrs));
            }
        }
        (!line.is_empty()).then_some(line)
    }
}

struct Restorer {
    unpacker: Unpacker,
    /// The id the next backup must name as its base (`None`: a full one).
    expect_base: Option<Uuid>,
    position: usize,
    manifest: Option<BackupManifest>,
    /// Paths of the layer read (continuation members of a sparse file
    /// not counted), and what the index says: a restore checks the index
    /// as `verify` does, so the two never disagree on a backup.
    paths: u64,
    index_entries: Option<u64>,
}

impl Visitor for Restorer {
    fn manifest(&mut self, m: &BackupManifest) -> Result<Flow> {
        let n = self.position + 1;
        match (self.expect_base, m.kind, &m.base) {
            (None, BackupKind::Full, _) => {}
            (None, BackupKind::Incremental, Some(b)) => {
                return Err(BackupError::Chain(format!(
                    "backup 1 is an incremental one (on {}); a chain starts with a full backup",
                    b.id
                ))
                .into())
            }
            (Some(_), BackupKind::Full, _) => {
                return Err(BackupError::Chain(format!(
                    "backup {n} is a full backup; only incrementals may follow the first"
                ))
                .into())
            }
            (Some(want), BackupKind::Incremental, Some(b)) if b.id == want => {}
            (Some(want), BackupKind::Incremental, Some(b)) => {
                return Err(BackupError::Chain(format!(
                    "backup {n} is an increment on {}, not on the backup before it ({want})",
                    b.id
                ))
                .into())
            }
            (_, BackupKind::Incremental, None) => {
                return Err(
                    BackupError::Corrupt("an incremental backup without a base".into()).into(),
                )
            }
        }
        self.unpacker
            .allow_unchanged(m.kind == BackupKind::Incremental);
        self.manifest = Some(m.clone());
        Ok(Flow::Continue)
    }

    fn layer<R: Read>(&mut self, entry: &mut tar::Entry<'_, R>, rel: &[u8]) -> Result<()> {
        let more = crate::unpack::layer::LayerRecords::read(entry).is_ok_and(|r| r.more);
        if !more {
            self.paths += 1;
        }
        self.unpacker.member(entry, rel)
    }

    fn index<R: Read>(&mut self, entry: &mut tar::Entry<'_, R>) -> Result<Flow> {
        let (_, entries) = super::index::parse(&mut std::io::BufReader::new(entry))
            .map_err(BackupError::Corrupt)?;
        self.index_entries = Some(entries.len() as u64);
        Ok(Flow::Continue)
    }
}

/// Restores the backups `readers` (a full one, then its incrementals in
/// order) into the existing, empty directory `dest`. `progress` is given
/// the compressed bytes read so far, over the whole chain.
pub fn restore_chain<R: Read>(
    readers: impl IntoIterator<Item = R>,
    dest: &Path,
    opts: &RestoreOptions,
    progress: &dyn Fn(u64),
) -> Result<RestoreReport> {
    let unpack = UnpackOptions {
        limits: opts.limits,
        flavor: Flavor::Layer,
        ids: opts.ids,
    };
    let not_empty = std::fs::read_dir(dest)
        .map_err(crate::error::io_err("read", dest))?
        .next()
        .is_some();
    if not_empty && !opts.over_prepared {
        return Err(crate::StorageError::Layer(format!(
            "cannot restore into {}: the directory is not empty",
            dest.display()
        )));
    }
    let mut report = RestoreReport::default();
    let mut expect_base = None;
    let mut before = 0u64;
    for (position, reader) in readers.into_iter().enumerate() {
        let mut r = Restorer {
            unpacker: Unpacker::new(dest, &unpack)?,
            expect_base,
            position,
            manifest: None,
            paths: 0,
            index_entries: None,
        };
        let last = std::cell::Cell::new(0);
        let summary = read_backup(
            reader,
            &|n| {
                last.set(n);
                progress(before + n)
            },
            &mut r,
        )?;
        before += last.get();
        if summary.end.is_none() {
            return Err(BackupError::Truncated.into());
        }
        if r.index_entries != Some(r.paths) {
            return Err(
                BackupError::Corrupt("the index does not list the layer's paths".into()).into(),
            );
        }
        let manifest = r.manifest.take().unwrap_or(summary.manifest);
        if manifest.kind == BackupKind::Incremental {
            report.removed += prune(dest, r.unpacker.listed())?;
        }
        report.unpacked.push(r.unpacker.finish()?);
        expect_base = Some(manifest.id);
        report.manifests.push(manifest);
    }
    if report.manifests.is_empty() {
        return Err(BackupError::Chain("no backup was given".into()).into());
    }
    Ok(report)
}

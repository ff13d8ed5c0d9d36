//! Checking a backup, and reading its manifest.
//!
//! [`verify`] reads a stream to its end as a restore would, without
//! writing anything: zstd's checksums, the tar structure, every member's
//! name and Kennel records, the index against the members, and the end
//! record's counts and hash. [`read_manifest`] stops after the first
//! member.
//!
//! A backup's `template/` members are checked as what a template import
//! accepts (`crate::unpack::Flavor::Template`) and the writer writes: a
//! clean UTF-8 name, no device node or socket, no Kennel record but the
//! sparse ones, only the template's attributes, hard links to `template/`
//! names. They are not in the index and not counted in
//! [`VerifyReport::entries`].

use std::fs::File;
use std::io::{BufReader, Read};
use std::path::Path;

use super::manifest::BackupManifest;
use super::stream::{read_backup, Visitor};
use super::{index, BackupError};
use crate::error::{io_err, Result};
use crate::shown::shown;
use crate::unpack::layer::LayerRecords;
use crate::unpack::{clean_path, Flavor, Flow};

use super::format::TEMPLATE_PREFIX;
use super::xattr_read::template_keeps;

/// What [`verify`] found.
#[derive(Debug, Clone)]
pub struct VerifyReport {
    pub manifest: BackupManifest,
    /// Tar members before the end record.
    pub members: u64,
    /// Paths of the layer (the index's entries).
    pub entries: u64,
    /// Bytes of file data the layer holds.
    pub layer_bytes: u64,
    /// Files whose content is in the base chain.
    pub unchanged: u64,
    /// Paths of the template the backup holds (none without one).
    pub template_entries: u64,
    /// SHA-256 of the tar stream before the end record.
    pub sha256: String,
}

#[derive(Default)]
struct Checker {
    paths: u64,
    template_paths: u64,
    unchanged: u64,
    index_entries: Option<u64>,
}

/// The paths template member `entry` adds (0 for a sparse file's next
/// segments), or why it is not one a backup writes.
fn template_fault<R: Read>(
    entry: &mut tar::Entry<'_, R>,
    rel: &[u8],
) -> std::result::Result<u64, String> {
    clean_path(rel, Flavor::Template).map_err(|why| why.as_str().to_string())?;
    let kind = entry.header().entry_type();
    if kind.is_character_special() || kind.is_block_special() {
        return Err("a device node".into());
    }
    if kind.is_hard_link() {
        let target = entry.link_name_bytes().unwrap_or_default();
        let ok = target
            .strip_prefix(TEMPLATE_PREFIX.as_bytes())
            .is_some_and(|t| matches!(clean_path(t, Flavor::Template), Ok(Some(_))));
        if !ok {
            return Err("a hard link to nothing in the template".into());
        }
    }
    let recs = LayerRecords::read(entry).map_err(str::to_string)?;
    if recs.unchanged || recs.socket {
        return Err("a record a template does not have".into());
    }
    if let Some((k, _)) = recs.xattrs.iter().find(|(k, _)| !template_keeps(k)) {
        return Err(format!(
            "an attribute a template does not keep ({})",
            shown(k)
        ));
    }
    if recs.more {
        recs.sparse_more_map(entry.size(), u64::MAX, 0)?;
        return Ok(0);
    }
    recs.sparse_map(entry.size(), 0)?;
    Ok(1)
}

impl Visitor for Checker {
    fn template<R: Read>(&mut self, entry: &mut tar::Entry<'_, R>, rel: &[u8]) -> Result<()> {
        let paths = template_fault(entry, rel).map_err(|why| {
            BackupError::Corrupt(format!("member 'template/{}': {why}", shown(rel)))
        })?;
        self.template_paths += paths;
        Ok(())
    }

    fn layer<R: Read>(&mut self, entry: &mut tar::Entry<'_, R>, rel: &[u8]) -> Result<()> {
        let bad = |why: &'static str| {
            BackupError::Corrupt(format!("member 'layer/{}': {why}", shown(rel)))
        };
        if let Err(why) = clean_path(rel, Flavor::Layer) {
            return Err(bad(why.as_str()).into());
        }
        let recs = LayerRecords::read(entry).map_err(bad)?;
        if recs.more {
            recs.sparse_more_map(entry.size(), u64::MAX, 0)
                .map_err(bad)?;
            return Ok(());
        }
        recs.sparse_map(entry.size(), 0).map_err(bad)?;
        self.unchanged += u64::from(recs.unchanged);
        self.paths += 1;
        Ok(())
    }

    fn index<R: Read>(&mut self, entry: &mut tar::Entry<'_, R>) -> Result<Flow> {
        let (_, entries) =
            index::parse(&mut BufReader::new(entry)).map_err(BackupError::Corrupt)?;
        self.index_entries = Some(entries.len() as u64);
        Ok(Flow::Continue)
    }
}

/// Reads the backup stream `reader` to its end and checks it; `progress`
/// is given the compressed bytes read so far.
pub fn verify<R: Read>(reader: R, progress: &dyn Fn(u64)) -> Result<VerifyReport> {
    let mut c = Checker::default();
    let s = read_backup(reader, progress, &mut c)?;
    let Some(end) = s.end else {
        return Err(BackupError::Truncated.into());
    };
    if c.index_entries != Some(c.paths) {
        return Err(
            BackupError::Corrupt("the index does not list the layer's paths".into()).into(),
        );
    }
    Ok(VerifyReport {
        manifest: s.manifest,
        members: s.members,
        entries: c.paths,
        layer_bytes: s.layer_bytes,
        unchanged: c.unchanged,
        template_entries: c.template_paths,
        sha256: end.sha256,
    })
}

struct ManifestOnly;

impl Visitor for ManifestOnly {
    fn manifest(&mut self, _m: &BackupManifest) -> Result<Flow> {
        Ok(Flow::Stop)
    }
}

/// The manifest of the backup in file `path` (its first member only).
pub fn read_manifest(path: &Path) -> Result<BackupManifest> {
    let f = File::open(path).map_err(io_err("open", path))?;
    manifest_of(f)
}

/// The manifest at the start of stream `r`.
pub(crate) fn manifest_of(r: impl Read) -> Result<BackupManifest> {
    Ok(read_backup(r, &|_| {}, &mut ManifestOnly)?.manifest)
}

/// The manifest at the start of the backup stream `r` (public form of
/// [`manifest_of`], for a restore from standard input).
pub fn manifest_of_stream(r: impl Read) -> Result<BackupManifest> {
    manifest_of(r)
}

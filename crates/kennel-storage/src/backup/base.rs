//! Reading a backup's index, as the next incremental backup needs it.
//!
//! Fast: the footer ([`super::footer`]) gives the offset of the frame that
//! begins with the index, so only that frame is decompressed, however
//! large the backup; the manifest (first frame) says whose index it is,
//! and the end record that follows the index must agree. A file without a
//! usable footer (copied through a pipe that cut it, written by another
//! tool) is read from its start instead, which is slower but finds the
//! same index.

use std::fs::File;
use std::io::{BufReader, Read, Seek, SeekFrom};
use std::path::Path;

use super::footer::{Footer, FOOTER_LEN};
use super::format::{END_NAME, INDEX_NAME};
use super::index::{self, BaseIndex};
use super::manifest::{BackupManifest, EndRecord};
use super::reader::manifest_of;
use super::stream::{read_backup, Visitor};
use super::BackupError;
use crate::error::{io_err, Result};
use crate::unpack::{for_each_member, Flow};

/// The index of the backup in file `path`.
pub fn read_index(path: &Path) -> Result<BaseIndex> {
    let mut f = File::open(path).map_err(io_err("open", path))?;
    let manifest = manifest_of(&mut f)?;
    let file_name = path
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default();
    let entries = match by_footer(&mut f, &manifest) {
        Some(entries) => entries,
        None => {
            f.seek(SeekFrom::Start(0)).map_err(io_err("seek", path))?;
            let mut v = IndexOnly::default();
            read_backup(BufReader::new(f), &|_| {}, &mut v)?;
            let (id, entries) = v.found.ok_or(BackupError::Truncated)?;
            if id != manifest.id {
                return Err(BackupError::Corrupt("the index is another backup's".into()).into());
            }
            entries
        }
    };
    Ok(BaseIndex {
        id: manifest.id,
        file_name,
        entries,
    })
}

type Entries = std::collections::HashMap<Vec<u8>, index::Stamp>;

/// The index found through the footer, or `None` if that does not work.
fn by_footer(f: &mut File, manifest: &BackupManifest) -> Option<Entries> {
    let len = f.seek(SeekFrom::End(0)).ok()?;
    let mut tail = [0u8; FOOTER_LEN];
    f.seek(SeekFrom::Start(len.checked_sub(FOOTER_LEN as u64)?))
        .ok()?;
    f.read_exact(&mut tail).ok()?;
    let footer = Footer::decode(&tail, len)?;
    f.seek(SeekFrom::Start(footer.index_frame)).ok()?;
    let frame = BufReader::new(f.take(footer.data_len - footer.index_frame));
    let decoder = zstd::stream::read::Decoder::with_buffer(frame).ok()?;
    let mut found: Option<(uuid::Uuid, Entries)> = None;
    let mut end: Option<EndRecord> = None;
    let mut rest = for_each_member(decoder, |entry| {
        let name = entry.path_bytes().into_owned();
        if found.is_none() && name == INDEX_NAME.as_bytes() {
            let parsed = index::parse(&mut BufReader::new(entry)).map_err(BackupError::Corrupt)?;
            found = Some(parsed);
            Ok(Flow::Continue)
        } else if found.is_some() && name == END_NAME.as_bytes() {
            let mut text = Vec::new();
            entry
                .take(1 << 20)
                .read_to_end(&mut text)
                .map_err(io_err("read", INDEX_NAME))?;
            end = serde_json::from_slice(&text).ok();
            Ok(Flow::Stop)
        } else {
            Err(BackupError::Corrupt("unexpected member".into()).into())
        }
    })
    .ok()?;
    // To the frame's end, so that its checksum is checked.
    std::io::copy(&mut rest, &mut std::io::sink()).ok()?;
    let (id, entries) = found?;
    (id == manifest.id && end?.id == manifest.id).then_some(entries)
}

#[derive(Default)]
struct IndexOnly {
    found: Option<(uuid::Uuid, Entries)>,
}

impl Visitor for IndexOnly {
    fn index<R: Read>(&mut self, entry: &mut tar::Entry<'_, R>) -> Result<Flow> {
        let parsed = index::parse(&mut BufReader::new(entry)).map_err(BackupError::Corrupt)?;
        self.found = Some(parsed);
        Ok(Flow::Stop)
    }
}

//! From the fuzzer's bytes to one or two backup files and the limits they
//! are restored under.
//!
//! Byte 0 says what the rest is:
//! * bit 0: `0` the tar stream inside a backup, made into a backup file
//!   here (below); `1` the backup file as it is (the zstd frames, their
//!   checksums and the footer get fuzzed too);
//! * bit 1: two backups, a full one and an incremental on it: bytes 1-2
//!   (little-endian) are the length of the first, the second is the rest;
//! * bit 2: tar streams only: mend every header's checksum and turn a link
//!   target starting with `@` into an absolute path to the directory
//!   holding the destination (as the tarball target does);
//! * bits 3-4: the member limit: 1, 16, 256 or 1000;
//! * bits 5-6: the byte limit: 0, 1 KiB, 64 KiB or 1 MiB;
//! * bit 7: tar streams only: leave the end record as it is.
//!
//! A tar stream is made into a backup file the way `write_backup` makes
//! one, so that a mutated stream is not refused for its checksums alone:
//! unless bit 7 is set, the end record (the first `kennel-end.json` after
//! the index) is rewritten with the manifest's id and the counts and
//! SHA-256 of what comes before it; then the stream is compressed into a
//! checksummed zstd frame, and a footer with the hash of the file is
//! appended.

use std::io::Write;
use std::path::Path;

use kennel_storage::unpack::UnpackLimits;
use sha2::{Digest, Sha256};

const BLOCK: u64 = 512;
const MANIFEST_NAME: &[u8] = b"kennel-backup.json";
const INDEX_NAME: &[u8] = b"kennel-index.jsonl";
const END_NAME: &[u8] = b"kennel-end.json";
const LAYER_PREFIX: &[u8] = b"layer/";

/// What one fuzz input asks for.
pub(crate) struct Input {
    /// The backup files, a full one first.
    pub files: Vec<Vec<u8>>,
    pub limits: UnpackLimits,
}

impl Input {
    /// `outside` replaces a link target's leading `@`.
    pub(crate) fn decode(data: &[u8], outside: &Path) -> Option<Input> {
        let (&ctl, body) = data.split_first()?;
        let limits = UnpackLimits {
            max_entries: [1, 16, 256, 1000][usize::from(ctl >> 3 & 3)],
            max_bytes: [0, 1 << 10, 64 << 10, 1 << 20][usize::from(ctl >> 5 & 3)],
        };
        let parts: Vec<&[u8]> = if ctl & 2 != 0 {
            let (len, rest) = body.split_first_chunk::<2>()?;
            let at = usize::from(u16::from_le_bytes(*len)).min(rest.len());
            let (a, b) = rest.split_at(at);
            vec![a, b]
        } else {
            vec![body]
        };
        let files = parts
            .into_iter()
            .map(|p| {
                if ctl & 1 != 0 {
                    return p.to_vec();
                }
                let mut tar = p.to_vec();
                if ctl & 4 != 0 {
                    crate::tarball::mend(&mut tar, outside.as_os_str().as_encoded_bytes());
                }
                if ctl & 0x80 == 0 {
                    tar = mend_end(tar);
                }
                seal(&tar)
            })
            .collect();
        Some(Input { files, limits })
    }
}

/// One tar member as the backup reader sees it.
struct Seen {
    name: Vec<u8>,
    is_file: bool,
    size: u64,
    header_at: u64,
    data_at: u64,
}

/// The members of `tar`, read by the same tar parser as the backup
/// reader's, up to the first it cannot read.
fn members(tar: &[u8]) -> (Vec<Seen>, Option<Vec<u8>>) {
    let mut out = Vec::new();
    let mut manifest = None;
    let mut archive = tar::Archive::new(tar);
    let Ok(entries) = archive.entries() else {
        return (out, manifest);
    };
    for e in entries {
        let Ok(mut e) = e else { break };
        let name = e.path_bytes().into_owned();
        if out.is_empty() && name == MANIFEST_NAME && e.size() <= 1 << 20 {
            let mut text = Vec::new();
            if std::io::Read::read_to_end(&mut e, &mut text).is_ok() {
                manifest = Some(text);
            }
        }
        out.push(Seen {
            name,
            is_file: e.header().entry_type().is_file(),
            size: e.size(),
            header_at: e.raw_header_position(),
            data_at: e.raw_file_position(),
        });
    }
    (out, manifest)
}

/// `tar` with its end record rewritten to match what precedes it (as it
/// is, if it has none where the reader looks for it).
fn mend_end(tar: Vec<u8>) -> Vec<u8> {
    let (seen, manifest) = members(&tar);
    let Some(index) = seen.iter().position(|m| m.name == INDEX_NAME) else {
        return tar;
    };
    let Some(end) = seen.get(index + 1).filter(|m| m.name == END_NAME) else {
        return tar;
    };
    // The layer: after the manifest, before the index.
    let layer_bytes: u64 = seen
        .get(1..index)
        .unwrap_or_default()
        .iter()
        .filter(|m| m.is_file && m.name.starts_with(LAYER_PREFIX))
        .fold(0u64, |n, m| n.saturating_add(m.size));
    let id = manifest
        .and_then(|t| serde_json::from_slice::<serde_json::Value>(&t).ok())
        .and_then(|v| v.get("id").cloned())
        .unwrap_or(serde_json::Value::Null);
    let Ok(header_at) = usize::try_from(end.header_at) else {
        return tar;
    };
    let Some(before) = tar.get(..header_at) else {
        return tar;
    };
    let record = serde_json::json!({
        "id": id,
        "members": index + 1,
        "layer_bytes": layer_bytes,
        "sha256": hex(&Sha256::digest(before)),
    });
    let Ok(json) = serde_json::to_vec(&record) else {
        return tar;
    };
    let mut header = tar::Header::new_ustar();
    if header.set_path("kennel-end.json").is_err() {
        return tar;
    }
    header.set_size(json.len() as u64);
    header.set_mode(0o644);
    header.set_entry_type(tar::EntryType::Regular);
    header.set_cksum();
    let after = end
        .data_at
        .saturating_add(end.size.div_ceil(BLOCK).saturating_mul(BLOCK));
    let rest = usize::try_from(after)
        .ok()
        .and_then(|a| tar.get(a..))
        .unwrap_or_default();
    let mut out = before.to_vec();
    out.extend_from_slice(header.as_bytes());
    out.extend_from_slice(&json);
    out.resize(out.len().div_ceil(512) * 512, 0);
    out.extend_from_slice(rest);
    out
}

/// The backup file holding tar stream `tar`: one checksummed zstd frame
/// and the footer.
fn seal(tar: &[u8]) -> Vec<u8> {
    let mut file = Vec::new();
    let compressed = zstd::stream::write::Encoder::new(&mut file, 1)
        .and_then(|mut enc| {
            enc.include_checksum(true)?;
            enc.write_all(tar)?;
            enc.finish().map(|_| ())
        })
        .is_ok();
    if !compressed {
        return Vec::new();
    }
    // Skippable frame, 64 bytes of payload: magic, version 1, reserved,
    // where the index's frame starts (in the one frame), the data's
    // length, and the SHA-256 of every byte before it.
    let mut footer = Vec::with_capacity(72);
    footer.extend_from_slice(&0x184D_2A5Eu32.to_le_bytes());
    footer.extend_from_slice(&64u32.to_le_bytes());
    footer.extend_from_slice(b"KNLBKIDX");
    footer.extend_from_slice(&1u32.to_le_bytes());
    footer.extend_from_slice(&0u32.to_le_bytes());
    footer.extend_from_slice(&0u64.to_le_bytes());
    footer.extend_from_slice(&(file.len() as u64).to_le_bytes());
    file.extend_from_slice(&footer);
    let sha = Sha256::digest(&file);
    file.extend_from_slice(&sha);
    file
}

fn hex(b: &[u8]) -> String {
    b.iter().map(|x| format!("{x:02x}")).collect()
}

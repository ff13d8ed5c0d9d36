//! What only a VE's layer has: Kennel's PAX records, converted
//! attributes, sparse files, and metadata applied last.
//!
//! Every record comes from the stream and is checked before it is used: a
//! time that does not parse, a size that is not a number, a sparse map
//! that overlaps, runs past the file's size, has too many segments or
//! does not add up to the member's data (`crate::backup::sparse_map`)
//! refuses the member. Attributes go through the backup's list and id
//! conversion (`crate::backup::xattr_policy`) with ids made the new VE's,
//! and replace the kept attributes the entry had (a directory that stopped
//! being opaque between two backups loses `trusted.overlay.opaque`).

use std::fs::File;
use std::io::{self, Read};
use std::os::fd::BorrowedFd;
use std::os::unix::fs::FileExt;

use rustix::fs::{flistxattr, fremovexattr, fsetxattr, futimens, XattrFlags};

use super::member::Owner;
use super::paths::times;
use super::regular::{owner_and_mode, set_template_xattrs};
use super::Flavor;
use crate::backup::format::{
    parse_pax_time, PAX_KIND, PAX_MTIME, PAX_REALSIZE, PAX_SPARSE, PAX_SPARSE_MORE, PAX_UNCHANGED,
    PAX_XATTR,
};
use crate::backup::ids::{Direction, IdShift};
use crate::backup::sparse_map::{parse_map, Segment};
use crate::backup::xattr_policy::{convert, kept, MAX_XATTRS};

/// Kennel's records of one member, and its attributes as stored.
#[derive(Debug, Default, Clone)]
pub(crate) struct LayerRecords {
    pub mtime: Option<(i64, u32)>,
    pub xattrs: Vec<(String, Vec<u8>)>,
    sparse: Option<Vec<u8>>,
    realsize: Option<u64>,
    /// More segments of the previous member's sparse file.
    pub more: bool,
    pub unchanged: bool,
    pub socket: bool,
}

fn flag(v: &[u8]) -> Result<bool, &'static str> {
    match v {
        b"1" => Ok(true),
        b"0" => Ok(false),
        _ => Err("a Kennel flag record is neither 0 nor 1"),
    }
}

impl LayerRecords {
    pub fn read<R: Read>(entry: &mut tar::Entry<'_, R>) -> Result<Self, &'static str> {
        let mut r = LayerRecords::default();
        let Ok(Some(exts)) = entry.pax_extensions() else {
            return Ok(r);
        };
        for ext in exts {
            let ext = ext.map_err(|_| "a malformed PAX record")?;
            let Ok(key) = ext.key() else { continue };
            let v = ext.value_bytes();
            match key {
                PAX_MTIME => r.mtime = Some(parse_pax_time(v).ok_or("a malformed mtime record")?),
                PAX_SPARSE => r.sparse = Some(v.to_vec()),
                PAX_REALSIZE => {
                    let text = std::str::from_utf8(v).map_err(|_| "a malformed realsize record")?;
                    r.realsize = Some(text.parse().map_err(|_| "a malformed realsize record")?);
                }
                PAX_SPARSE_MORE => r.more = flag(v)?,
                PAX_UNCHANGED => r.unchanged = flag(v)?,
                PAX_KIND => match v {
                    b"socket" => r.socket = true,
                    _ => return Err("an unknown kind record"),
                },
                k => {
                    if let Some(name) = k.strip_prefix(PAX_XATTR) {
                        r.xattrs.push((name.to_string(), v.to_vec()));
                    }
                }
            }
        }
        if r.more && (r.unchanged || r.realsize.is_some() || r.sparse.is_none()) {
            return Err("a sparse continuation with other records");
        }
        if r.sparse.is_some() != r.realsize.is_some() && !r.more {
            return Err("a sparse map without a size, or a size without a map");
        }
        if r.unchanged && r.sparse.is_some() {
            return Err("an unchanged member with data segments");
        }
        Ok(r)
    }

    /// Whether the member carries a sparse map (its file's segments may
    /// continue in the next members).
    pub fn has_segments(&self) -> bool {
        self.sparse.is_some()
    }

    /// The first member of a sparse file: its segments and apparent size;
    /// `None` for a plain file.
    pub fn sparse_map(
        &self,
        stored: u64,
        after: u64,
    ) -> Result<Option<(Vec<Segment>, u64)>, &'static str> {
        match (&self.sparse, self.realsize) {
            (Some(map), Some(real)) => Ok(Some((parse_map(map, real, stored, after)?, real))),
            _ => Ok(None),
        }
    }

    /// The segments of a continuation member.
    pub fn sparse_more_map(
        &self,
        stored: u64,
        realsize: u64,
        after: u64,
    ) -> Result<Vec<Segment>, &'static str> {
        let map = self
            .sparse
            .as_deref()
            .ok_or("a sparse continuation without a map")?;
        parse_map(map, realsize, stored, after)
    }
}

/// What is applied to a regular file once its content is written.
#[derive(Debug, Clone)]
pub(crate) struct FileMeta {
    pub owner: Owner,
    pub mode: u32,
    pub mtime: (i64, u32),
    /// As stored (templates: as they are; layers: converted when applied).
    pub xattrs: Vec<(String, Vec<u8>)>,
}

/// A sparse file whose later segments may come in the next members.
#[derive(Debug)]
pub(crate) struct OpenSparse {
    /// Its path in the tree (components joined by `/`).
    pub path: Vec<u8>,
    /// As messages show it.
    pub name: String,
    pub file: File,
    /// Where its last segment ended.
    pub next: u64,
    pub realsize: u64,
    pub meta: FileMeta,
}

/// Owner, mode, attributes and times of a file whose content is
/// complete; returns the attributes dropped.
pub(crate) fn finish_file(
    f: &File,
    meta: &FileMeta,
    flavor: Flavor,
    ids: IdShift,
) -> rustix::io::Result<u64> {
    owner_and_mode(f, meta.owner, meta.mode)?;
    let dropped = match flavor {
        Flavor::Template => {
            set_template_xattrs(f, &meta.xattrs);
            0
        }
        // After chmod: an ACL sets the group bits the mode had too.
        Flavor::Layer => apply_xattrs(std::os::fd::AsFd::as_fd(f), &meta.xattrs, ids),
    };
    let _ = futimens(f, &times(meta.mtime));
    Ok(dropped)
}

/// Makes the kept attributes of `fd` exactly `stored` (converted to the
/// VE's host ids); returns how many were dropped.
pub(crate) fn apply_xattrs(fd: BorrowedFd<'_>, stored: &[(String, Vec<u8>)], ids: IdShift) -> u64 {
    let mut dropped = 0;
    let mut want: Vec<(&str, Vec<u8>)> = Vec::new();
    for (k, v) in stored {
        if want.len() == MAX_XATTRS {
            dropped += 1;
            continue;
        }
        match convert(k, v, ids, Direction::ToHost) {
            Ok(v) => want.push((k, v)),
            Err(_) => dropped += 1,
        }
    }
    // Kept attributes the entry has but the member does not: inherited
    // (a default ACL) or left from an earlier backup of the chain.
    let mut list = vec![0u8; 64 << 10];
    if let Ok(n) = flistxattr(fd, &mut list[..]) {
        for raw in list[..n].split(|&b| b == 0) {
            let Ok(name) = std::str::from_utf8(raw) else {
                continue;
            };
            if kept(name).is_some() && !want.iter().any(|(k, _)| *k == name) {
                let _ = fremovexattr(fd, name);
            }
        }
    }
    for (k, v) in want {
        if fsetxattr(fd, k, &v, XattrFlags::empty()).is_err() {
            dropped += 1;
        }
    }
    dropped
}

/// Writes `segments` of the member's data at their offsets of `f`, which
/// is made `realsize` long; returns where the last one ends (`after`, where
/// the previous member's ended, if there are none).
pub(crate) fn write_segments<R: Read>(
    entry: &mut R,
    f: &File,
    segments: &[Segment],
    realsize: u64,
    after: u64,
) -> io::Result<u64> {
    if f.metadata()?.len() != realsize {
        f.set_len(realsize)?;
    }
    let mut buf = vec![0u8; 1 << 20];
    let mut end = after;
    for s in segments {
        let mut off = s.off;
        let mut left = s.len;
        while left > 0 {
            let want = buf.len().min(usize::try_from(left).unwrap_or(usize::MAX));
            let n = entry.read(&mut buf[..want])?;
            if n == 0 {
                return Err(io::Error::new(
                    io::ErrorKind::UnexpectedEof,
                    "the member ends inside a segment",
                ));
            }
            f.write_all_at(&buf[..n], off)?;
            off += n as u64;
            left -= n as u64;
        }
        end = off;
    }
    Ok(end)
}

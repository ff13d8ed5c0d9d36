//! The index member: every path of the layer with what identifies its
//! content, for the next incremental backup.
//!
//! JSON lines: a header line naming the backup, then one short object per
//! path (`p` path, `k` kind, `i` inode, `s` size, `m`/`c` mtime/ctime as
//! `[seconds, nanoseconds]`, `n` links). Paths are bytes, so they are
//! written through [`encode_path`]. A regular file whose inode, size,
//! mtime and ctime are those of its base entry has not been written since
//! (writing changes mtime, and every change to an inode — `utimensat`
//! included — changes ctime, which no user can set), so its content can
//! come from the base backup.

use std::collections::HashMap;
use std::io::{BufRead, Write};

use serde::{Deserialize, Serialize};
use uuid::Uuid;

use super::format::{decode_path, encode_path};
use super::meta::Meta;

/// What an entry is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum EntryKind {
    File,
    Dir,
    Symlink,
    Fifo,
    Socket,
    Whiteout,
}

/// What identifies one path's content.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Stamp {
    pub kind: EntryKind,
    pub ino: u64,
    pub size: u64,
    pub mtime: (i64, u32),
    pub ctime: (i64, u32),
    pub nlink: u64,
}

impl Stamp {
    pub(crate) fn of(kind: EntryKind, m: &Meta) -> Stamp {
        Stamp {
            kind,
            ino: m.ino,
            size: m.size,
            mtime: m.mtime,
            ctime: m.ctime,
            nlink: m.nlink,
        }
    }

    /// Whether a regular file with stamp `self` holds the content it held
    /// when `base` was taken.
    pub fn unchanged_since(&self, base: &Stamp) -> bool {
        self.kind == EntryKind::File
            && base.kind == EntryKind::File
            && (self.ino, self.size, self.mtime, self.ctime)
                == (base.ino, base.size, base.mtime, base.ctime)
    }
}

#[derive(Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
struct Header {
    kennel_index: u32,
    backup: String,
}

#[derive(Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
struct Line {
    p: String,
    k: EntryKind,
    i: u64,
    s: u64,
    m: (i64, u32),
    c: (i64, u32),
    n: u64,
}

/// Writes the header line.
pub(crate) fn write_header(out: &mut Vec<u8>, backup: Uuid) {
    let h = Header {
        kennel_index: 1,
        backup: backup.hyphenated().to_string(),
    };
    // Serialising plain fields into a Vec cannot fail.
    let _ = serde_json::to_writer(&mut *out, &h);
    out.push(b'\n');
}

/// Writes one path's line.
pub(crate) fn write_line(out: &mut Vec<u8>, path: &[u8], s: &Stamp) {
    let l = Line {
        p: encode_path(path),
        k: s.kind,
        i: s.ino,
        s: s.size,
        m: s.mtime,
        c: s.ctime,
        n: s.nlink,
    };
    let _ = serde_json::to_writer(&mut *out, &l);
    let _ = out.write_all(b"\n");
}

/// A backup's index, as the next incremental uses it.
#[derive(Debug, Clone)]
pub struct BaseIndex {
    /// The backup's id.
    pub id: Uuid,
    /// The backup's file name (for the incremental's manifest).
    pub file_name: String,
    pub entries: HashMap<Vec<u8>, Stamp>,
}

/// Most entries an index may list (a backup unpacks at most 4 million
/// members by default; an index is read whole into memory).
const MAX_ENTRIES: usize = 16_000_000;

/// Longest index line read (a path of 4096 bytes, each escaped, and the
/// numbers).
const MAX_LINE: usize = 3 * 4096 + 512;

/// Parses an index: the backup id of its header and its entries.
pub(crate) fn parse<R: BufRead>(r: &mut R) -> Result<(Uuid, HashMap<Vec<u8>, Stamp>), String> {
    let mut line = Vec::new();
    let mut read_line = |line: &mut Vec<u8>| -> Result<bool, String> {
        line.clear();
        let n = <&mut R as std::io::Read>::take(&mut *r, MAX_LINE as u64 + 1)
            .read_until(b'\n', line)
            .map_err(|e| format!("index: {e}"))?;
        if n > MAX_LINE {
            return Err("index: a line is too long".into());
        }
        Ok(n > 0)
    };
    if !read_line(&mut line)? {
        return Err("index: empty".into());
    }
    let h: Header = serde_json::from_slice(&line).map_err(|_| "index: bad header".to_string())?;
    if h.kennel_index != 1 {
        return Err(format!("index: version {}", h.kennel_index));
    }
    let id = Uuid::parse_str(&h.backup).map_err(|_| "index: bad backup id".to_string())?;
    let mut entries = HashMap::new();
    while read_line(&mut line)? {
        if entries.len() == MAX_ENTRIES {
            return Err("index: too many entries".into());
        }
        let l: Line = serde_json::from_slice(&line).map_err(|_| "index: bad line".to_string())?;
        let path = decode_path(&l.p).ok_or("index: bad path")?;
        let stamp = Stamp {
            kind: l.k,
            ino: l.i,
            size: l.s,
            mtime: l.m,
            ctime: l.c,
            nlink: l.n,
        };
        entries.insert(path, stamp);
    }
    Ok((id, entries))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn index_round_trips() {
        let id = Uuid::new_v4();
        let mut out = Vec::new();
        write_header(&mut out, id);
        let s = Stamp {
            kind: EntryKind::File,
            ino: 12,
            size: 1 << 44,
            mtime: (-5, 7),
            ctime: (1_700_000_000, 999_999_999),
            nlink: 3,
        };
        write_line(&mut out, b"a/\xffb%", &s);
        let (got_id, entries) = parse(&mut out.as_slice()).expect("parse");
        assert_eq!(got_id, id);
        assert_eq!(entries.get(&b"a/\xffb%"[..]), Some(&s));
        assert!(s.unchanged_since(&s));
        let mut touched = s;
        touched.ctime.1 -= 1;
        assert!(!touched.unchanged_since(&s));
        let mut dir = s;
        dir.kind = EntryKind::Dir;
        assert!(!dir.unchanged_since(&dir));
    }

    #[test]
    fn bad_indexes_are_refused() {
        assert!(parse(&mut &b""[..]).is_err());
        assert!(parse(&mut &b"{\"kennel_index\":1,\"backup\":\"x\"}\n"[..]).is_err());
        let mut long = b"{\"kennel_index\":1,\"backup\":\"".to_vec();
        long.extend(std::iter::repeat_n(b'a', MAX_LINE));
        assert!(parse(&mut long.as_slice()).is_err());
    }
}

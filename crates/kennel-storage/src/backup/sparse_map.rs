//! The map of a sparse file's data segments, as a PAX record.
//!
//! A sparse member stores only the file's data, segment after segment;
//! `KENNEL.sparse=off,len,off,len…` says where each goes and
//! `KENNEL.realsize` how long the file is. A file with more segments than
//! one member may carry ([`MAX_SEGMENTS`], which keeps the record far
//! below the reader's per-member metadata allowance) continues in further
//! members of the same path marked `KENNEL.sparse.more=1`, each starting
//! past the previous one's last segment. So a hostile map cannot make the
//! reader hold more than one member's segments, overlap two segments,
//! write past the file's size, or claim more data than the member holds:
//! [`parse_map`] refuses each.

use std::fmt::Write as _;

/// Segments one member may carry.
pub const MAX_SEGMENTS: usize = 4096;

/// A run of data at `off` in the file, `len` bytes long.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Segment {
    pub off: u64,
    pub len: u64,
}

/// The record's value for `segments`.
pub fn encode_map(segments: &[Segment]) -> String {
    let mut out = String::with_capacity(segments.len() * 16);
    for (i, s) in segments.iter().enumerate() {
        if i > 0 {
            out.push(',');
        }
        let _ = write!(out, "{},{}", s.off, s.len);
    }
    out
}

/// Parses and checks a map: at most [`MAX_SEGMENTS`] non-empty segments,
/// in order, none before `after` (where the previous member's data ended),
/// none past `realsize`, together exactly `stored` bytes (the member's
/// size).
pub fn parse_map(
    text: &[u8],
    realsize: u64,
    stored: u64,
    after: u64,
) -> Result<Vec<Segment>, &'static str> {
    let text = std::str::from_utf8(text).map_err(|_| "the sparse map is not text")?;
    let mut out = Vec::new();
    let mut fields = text
        .split(',')
        .filter(|f| !text.is_empty() || !f.is_empty());
    let mut next = after;
    let mut total: u64 = 0;
    while let Some(off) = fields.next() {
        let len = fields
            .next()
            .ok_or("the sparse map has an odd number of fields")?;
        let (off, len) = (number(off)?, number(len)?);
        if out.len() == MAX_SEGMENTS {
            return Err("the sparse map has too many segments");
        }
        if len == 0 {
            return Err("the sparse map has an empty segment");
        }
        if off < next {
            return Err("the sparse map's segments overlap or are out of order");
        }
        let end = off.checked_add(len).ok_or("the sparse map overflows")?;
        if end > realsize {
            return Err("the sparse map goes past the file's size");
        }
        total = total.checked_add(len).ok_or("the sparse map overflows")?;
        next = end;
        out.push(Segment { off, len });
    }
    if total != stored {
        return Err("the sparse map does not match the member's size");
    }
    Ok(out)
}

fn number(field: &str) -> Result<u64, &'static str> {
    if field.is_empty() || !field.bytes().all(|b| b.is_ascii_digit()) {
        return Err("the sparse map holds something other than numbers");
    }
    field
        .parse()
        .map_err(|_| "the sparse map holds a number too large")
}

#[cfg(test)]
mod tests {
    use super::*;

    fn seg(off: u64, len: u64) -> Segment {
        Segment { off, len }
    }

    #[test]
    fn maps_round_trip() {
        let m = vec![seg(0, 4096), seg(1 << 40, 1)];
        let t = encode_map(&m);
        assert_eq!(t, "0,4096,1099511627776,1");
        assert_eq!(parse_map(t.as_bytes(), (1 << 40) + 1, 4097, 0), Ok(m));
        assert_eq!(parse_map(b"", 1 << 44, 0, 0), Ok(vec![]));
    }

    #[test]
    fn hostile_maps_are_refused() {
        let r = |t: &[u8], real, stored, after| parse_map(t, real, stored, after).is_err();
        assert!(r(b"0,10,5,10", 100, 20, 0), "overlap");
        assert!(r(b"50,10,0,10", 100, 20, 0), "out of order");
        assert!(r(b"95,10", 100, 10, 0), "past realsize");
        assert!(r(b"0,10", 100, 11, 0), "size mismatch");
        assert!(r(b"0,10", 100, 9, 0), "size mismatch");
        assert!(r(b"0", 100, 0, 0), "odd");
        assert!(r(b"0,0", 100, 0, 0), "empty segment");
        assert!(r(b"0,-1", 100, 0, 0), "negative");
        assert!(r(b"18446744073709551615,2", u64::MAX, 2, 0), "overflow");
        assert!(r(b"0,10", 100, 10, 5), "before the previous member's end");
        assert!(r(b"0,,10", 100, 10, 0), "empty field");
        assert!(r(b"\xff", 100, 0, 0), "not text");
        let many: Vec<Segment> = (0..=MAX_SEGMENTS as u64).map(|i| seg(i * 2, 1)).collect();
        let t = encode_map(&many);
        assert!(r(t.as_bytes(), u64::MAX, many.len() as u64, 0), "too many");
        let enough = &many[..MAX_SEGMENTS];
        let t = encode_map(enough);
        assert!(parse_map(t.as_bytes(), u64::MAX, enough.len() as u64, 0).is_ok());
    }
}

//! The names and PAX records of the stream, and their encodings.
//!
//! Everything here is a pure function of its arguments, so the layout
//! described in [`super`] is pinned by unit tests rather than by the
//! writer's behaviour.

use std::fmt::Write as _;

/// The first member: the manifest.
pub const MANIFEST_NAME: &str = "kennel-backup.json";
/// Every entry of the layer is a member under this prefix.
pub const LAYER_PREFIX: &str = "layer/";
/// A backup made with the VE's template holds the template's tree under
/// this prefix, before the layer (see [`super`]).
pub const TEMPLATE_PREFIX: &str = "template/";
/// The member listing every path with its identity (for incrementals).
pub const INDEX_NAME: &str = "kennel-index.jsonl";
/// The last member: counts and the hash of everything before it.
pub const END_NAME: &str = "kennel-end.json";

/// The only format this code writes and reads.
pub const FORMAT_VERSION: u32 = 1;

pub const PAX_PATH: &str = "path";
pub const PAX_LINKPATH: &str = "linkpath";
pub const PAX_MTIME: &str = "mtime";
pub const PAX_SIZE: &str = "size";
pub const PAX_XATTR: &str = "SCHILY.xattr.";
/// `off,len,off,len…`: where the member's data goes in the file.
pub const PAX_SPARSE: &str = "KENNEL.sparse";
/// The apparent size of a sparse file.
pub const PAX_REALSIZE: &str = "KENNEL.realsize";
/// `1`: more data segments of the sparse file the previous member began.
pub const PAX_SPARSE_MORE: &str = "KENNEL.sparse.more";
/// `1`: the content is the one the base backup's chain holds.
pub const PAX_UNCHANGED: &str = "KENNEL.unchanged";
/// `socket`: a FIFO-typed member that is really a socket.
pub const PAX_KIND: &str = "KENNEL.kind";

/// Names up to this length fit a ustar header (no `path` record needed).
pub const USTAR_NAME_MAX: usize = 100;

/// Appends one PAX record (`LEN KEY=VALUE\n`, LEN counting itself).
pub fn push_pax_record(out: &mut Vec<u8>, key: &str, value: &[u8]) {
    let rest = key.len() + value.len() + 3; // ' ', '=', '\n'
    let mut len = rest + 1;
    while len != rest + digits(len) {
        len = rest + digits(len);
    }
    let _ = write!(DigitsOut(out), "{len} {key}=");
    out.extend_from_slice(value);
    out.push(b'\n');
}

fn digits(mut n: usize) -> usize {
    let mut d = 1;
    while n >= 10 {
        n /= 10;
        d += 1;
    }
    d
}

/// `write!` into a byte vector.
struct DigitsOut<'a>(&'a mut Vec<u8>);

impl std::fmt::Write for DigitsOut<'_> {
    fn write_str(&mut self, s: &str) -> std::fmt::Result {
        self.0.extend_from_slice(s.as_bytes());
        Ok(())
    }
}

/// A time as a PAX decimal: seconds, then nanoseconds if any.
pub fn pax_time(sec: i64, nsec: u32) -> String {
    let nsec = nsec.min(999_999_999);
    if nsec == 0 {
        return sec.to_string();
    }
    if sec >= 0 {
        return format!("{sec}.{nsec:09}");
    }
    // -1.25 s is sec -2, nsec 750 000 000: the decimal is of the real value.
    let whole = -(i128::from(sec) + 1);
    format!("-{whole}.{:09}", 1_000_000_000 - nsec)
}

/// Parses a PAX decimal time into seconds and nanoseconds (digits past
/// the ninth are cut, as the spec allows).
pub fn parse_pax_time(text: &[u8]) -> Option<(i64, u32)> {
    let text = std::str::from_utf8(text).ok()?;
    let (neg, body) = match text.strip_prefix('-') {
        Some(b) => (true, b),
        None => (false, text),
    };
    let (whole, frac) = body.split_once('.').unwrap_or((body, ""));
    if whole.is_empty() || !whole.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    if !frac.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    let whole: i64 = whole.parse().ok()?;
    let mut nsec: u32 = 0;
    for (i, b) in frac.bytes().take(9).enumerate() {
        nsec += u32::from(b - b'0') * 10u32.pow(8 - i as u32);
    }
    if !neg {
        return Some((whole, nsec));
    }
    if nsec == 0 {
        return Some((whole.checked_neg()?, 0));
    }
    Some((whole.checked_neg()?.checked_sub(1)?, 1_000_000_000 - nsec))
}

/// A path as index text: UTF-8 stays as it is, `%` and bytes that are not
/// UTF-8 become `%XX`. Reversible with [`decode_path`].
pub fn encode_path(raw: &[u8]) -> String {
    let mut out = String::with_capacity(raw.len());
    for chunk in raw.utf8_chunks() {
        for c in chunk.valid().chars() {
            if c == '%' {
                out.push_str("%25");
            } else {
                out.push(c);
            }
        }
        for b in chunk.invalid() {
            let _ = write!(out, "%{b:02X}");
        }
    }
    out
}

/// The bytes [`encode_path`] encoded; `None` for a malformed escape.
pub fn decode_path(text: &str) -> Option<Vec<u8>> {
    let b = text.as_bytes();
    let mut out = Vec::with_capacity(b.len());
    let mut i = 0;
    while i < b.len() {
        if b[i] == b'%' {
            let hex = std::str::from_utf8(b.get(i + 1..i + 3)?).ok()?;
            out.push(u8::from_str_radix(hex, 16).ok()?);
            i += 3;
        } else {
            out.push(b[i]);
            i += 1;
        }
    }
    Some(out)
}

/// SHA-256 as lower-case hex.
pub fn hex(bytes: &[u8]) -> String {
    let mut s = String::with_capacity(bytes.len() * 2);
    for b in bytes {
        let _ = write!(s, "{b:02x}");
    }
    s
}

#[cfg(test)]
mod tests {
    use super::*;

    fn record(key: &str, value: &[u8]) -> Vec<u8> {
        let mut v = Vec::new();
        push_pax_record(&mut v, key, value);
        v
    }

    #[test]
    fn pax_records_count_their_own_length() {
        assert_eq!(record("path", b"a"), b"9 path=a\n");
        // 9 bytes of text + 1 digit would be 10, which has 2 digits: 11.
        assert_eq!(record("mtime", b"1"), b"11 mtime=1\n");
        for n in 0..300 {
            let v = vec![b'x'; n];
            let r = record("k", &v);
            let sp = r.iter().position(|&b| b == b' ').expect("space");
            let len: usize = std::str::from_utf8(&r[..sp])
                .expect("digits")
                .parse()
                .expect("number");
            assert_eq!(len, r.len(), "value of {n} bytes");
        }
    }

    #[test]
    fn times_round_trip() {
        for (s, n) in [
            (0, 0),
            (1_700_000_000, 123_456_789),
            (5, 1),
            (-1, 0),
            (-2, 750_000_000),
            (-1, 1),
            (i64::MAX, 999_999_999),
            (i64::MIN + 1, 5),
        ] {
            let t = pax_time(s, n);
            assert_eq!(parse_pax_time(t.as_bytes()), Some((s, n)), "{t}");
        }
        assert_eq!(pax_time(-2, 750_000_000), "-1.250000000");
        assert_eq!(parse_pax_time(b"12.5"), Some((12, 500_000_000)));
        assert_eq!(parse_pax_time(b"1.1234567891"), Some((1, 123_456_789)));
        for bad in [
            &b""[..],
            b"-",
            b"1.x",
            b"x",
            b".5",
            b"1e9",
            b"99999999999999999999",
        ] {
            assert_eq!(parse_pax_time(bad), None, "{bad:?}");
        }
    }

    #[test]
    fn paths_round_trip() {
        for raw in [
            &b"etc/passwd"[..],
            b"100%",
            b"caf\xc3\xa9",
            b"\xff\xfe/%41",
            b"",
        ] {
            let t = encode_path(raw);
            assert_eq!(decode_path(&t).as_deref(), Some(raw), "{t}");
        }
        assert_eq!(encode_path(b"a%\xff"), "a%25%FF");
        assert_eq!(decode_path("%4"), None);
        assert_eq!(decode_path("%zz"), None);
    }
}

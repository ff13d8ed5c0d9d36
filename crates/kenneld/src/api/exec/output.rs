//! What a command run through `exec` wrote, bounded and encoded for a
//! JSON answer: the first [`MAX_STREAM`] bytes of each stream kept (the
//! rest read and dropped, so the command does not fail for it and costs
//! this service a fixed amount of memory), as text when they are UTF-8,
//! else as base64.
//!
//! Reading is bounded too: after [`MAX_READ`] bytes of a stream this
//! service stops reading it and closes its end, so the command's next
//! write there fails (`SIGPIPE`, `EPIPE`) as at the end of any pipeline.
//! Without that, a VE command writing without end (`cat /dev/zero`) had
//! `kennel exec` and this service copy well over a GiB a second each, on
//! the host's CPUs and outside the VE's cgroup, for its whole timeout
//! (up to an hour, for 8 commands of one tenant at once).

use serde::Serialize;
use tokio::io::{AsyncRead, AsyncReadExt};
use utoipa::ToSchema;

/// Output kept of each of stdout and stderr.
pub const MAX_STREAM: usize = 1 << 20;

/// Output read of each of stdout and stderr: beyond, the stream is
/// closed (the rest of a command's output is not worth host CPU).
pub const MAX_READ: u64 = 256 << 20;

/// How one output stream is given.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, ToSchema)]
#[serde(rename_all = "lowercase")]
pub enum Encoding {
    /// `data` is the bytes themselves (they were UTF-8).
    Utf8,
    /// `data` is the bytes in standard base64 (they were not UTF-8).
    Base64,
}

/// What the command wrote on one stream.
#[derive(Debug, Serialize, ToSchema)]
pub struct Output {
    pub data: String,
    pub encoding: Encoding,
    /// Bytes the command wrote in all (more than `data` holds when
    /// truncated). At most 256 MiB are read: then the stream is closed,
    /// and the command's next write to it fails (`SIGPIPE`/`EPIPE`).
    pub bytes: u64,
    /// Only the first 1 MiB is kept.
    pub truncated: bool,
}

/// Reads `from` to its end or [`MAX_READ`] bytes, whichever comes
/// first, keeping the first [`MAX_STREAM`] bytes; returns them and how
/// many were read in all. `from` is dropped (closed) on return.
pub(super) async fn bounded(from: impl AsyncRead + Unpin) -> std::io::Result<(Vec<u8>, u64)> {
    bounded_to(from, MAX_READ).await
}

async fn bounded_to(
    mut from: impl AsyncRead + Unpin,
    max_read: u64,
) -> std::io::Result<(Vec<u8>, u64)> {
    let mut kept = Vec::new();
    let mut total = 0u64;
    let mut buf = vec![0u8; 64 << 10];
    loop {
        if total >= max_read {
            return Ok((kept, total));
        }
        let want = usize::try_from(max_read - total).map_or(buf.len(), |m| m.min(buf.len()));
        let n = from.read(&mut buf[..want]).await?;
        if n == 0 {
            return Ok((kept, total));
        }
        total += n as u64;
        let room = MAX_STREAM.saturating_sub(kept.len());
        kept.extend_from_slice(&buf[..n.min(room)]);
    }
}

/// A stream's bytes as text when they are UTF-8 (a character cut by the
/// bound is dropped), else as base64.
pub(super) fn output((bytes, total): (Vec<u8>, u64)) -> Output {
    let truncated = total > bytes.len() as u64;
    let text = match std::str::from_utf8(&bytes) {
        Ok(s) => Some(s),
        // Only the end is cut mid-character.
        Err(e) if truncated && e.error_len().is_none() => {
            std::str::from_utf8(&bytes[..e.valid_up_to()]).ok()
        }
        Err(_) => None,
    };
    let (data, encoding) = match text {
        Some(s) => (s.to_string(), Encoding::Utf8),
        None => (base64(&bytes), Encoding::Base64),
    };
    Output {
        data,
        encoding,
        bytes: total,
        truncated,
    }
}

/// Standard base64 (RFC 4648), padded.
fn base64(bytes: &[u8]) -> String {
    const ALPHABET: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    let mut out = String::with_capacity(bytes.len().div_ceil(3) * 4);
    for chunk in bytes.chunks(3) {
        let b = [
            chunk[0],
            chunk.get(1).copied().unwrap_or(0),
            chunk.get(2).copied().unwrap_or(0),
        ];
        let n = (u32::from(b[0]) << 16) | (u32::from(b[1]) << 8) | u32::from(b[2]);
        for i in 0..4 {
            if i <= chunk.len() {
                out.push(char::from(ALPHABET[(n >> (18 - 6 * i)) as usize & 63]));
            } else {
                out.push('=');
            }
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn base64_is_the_standard_one() {
        for (plain, coded) in [
            ("", ""),
            ("f", "Zg=="),
            ("fo", "Zm8="),
            ("foo", "Zm9v"),
            ("foob", "Zm9vYg=="),
            ("fooba", "Zm9vYmE="),
            ("foobar", "Zm9vYmFy"),
        ] {
            assert_eq!(base64(plain.as_bytes()), coded);
        }
        assert_eq!(base64(&[0xff, 0xfe, 0x00]), "//4A");
    }

    #[tokio::test]
    async fn reading_stops_at_its_bound() {
        let endless = tokio::io::repeat(b'x');
        let (kept, total) = bounded_to(endless, 3 << 20).await.expect("read");
        assert_eq!((kept.len(), total), (MAX_STREAM, 3 << 20));
        let (kept, total) = bounded_to(&b"short"[..], 3 << 20).await.expect("read");
        assert_eq!((kept.as_slice(), total), (&b"short"[..], 5));
    }

    #[test]
    fn output_is_text_when_it_can_be() {
        let o = output((b"hi\n".to_vec(), 3));
        assert_eq!(
            (o.data.as_str(), o.encoding, o.truncated),
            ("hi\n", Encoding::Utf8, false)
        );
        let o = output((vec![0xff, b'a'], 2));
        assert_eq!((o.data.as_str(), o.encoding), ("/2E=", Encoding::Base64));
        // "é" cut in two by the bound: the text up to it.
        let o = output((vec![b'a', 0xc3], 10));
        assert_eq!(
            (o.data.as_str(), o.encoding, o.truncated),
            ("a", Encoding::Utf8, true)
        );
    }
}

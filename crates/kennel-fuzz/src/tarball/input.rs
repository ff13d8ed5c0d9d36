//! From the fuzzer's bytes to a template file and the limits it is
//! imported under.
//!
//! Byte 0 says what the rest is:
//! * bits 0-1: `0` a tar archive, `1` one to gzip, `2` one to zstd, `3`
//!   the file as it is (compressed or not: the decoders get fuzzed too);
//! * bit 2: before compressing, mend every header's checksum (mutations
//!   rarely keep it, and a bad one ends the archive there) and turn a link
//!   target starting with `@` into an absolute path to the directory
//!   holding the destination, so that links can aim at the real outside;
//! * bits 3-5: the member limit, 1 to 4096;
//! * bits 6-7: the byte limit, 0 to 1 MiB.

use std::io::Write;
use std::path::Path;

use kennel_storage::unpack::UnpackLimits;

const BLOCK: usize = 512;

/// What one fuzz input asks for.
pub(crate) struct Input {
    /// The file as `kennel template import` would read it.
    pub file: Vec<u8>,
    pub limits: UnpackLimits,
}

impl Input {
    /// `outside` replaces a link target's leading `@`.
    pub(crate) fn decode(data: &[u8], outside: &Path) -> Option<Input> {
        let (&ctl, body) = data.split_first()?;
        let limits = UnpackLimits {
            max_entries: [1, 2, 4, 8, 16, 64, 256, 4096][usize::from(ctl >> 3 & 7)],
            max_bytes: [0, 1 << 10, 64 << 10, 1 << 20][usize::from(ctl >> 6)],
        };
        let mut tar = body.to_vec();
        if ctl & 3 != 3 && ctl & 4 != 0 {
            mend(&mut tar, outside.as_os_str().as_encoded_bytes());
        }
        let file = match ctl & 3 {
            1 => {
                let mut gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
                gz.write_all(&tar).ok()?;
                gz.finish().ok()?
            }
            2 => zstd::encode_all(tar.as_slice(), 1).ok()?,
            _ => tar,
        };
        Some(Input { file, limits })
    }
}

/// Walks the archive's headers as a tar reader does, mending each: its
/// checksum, and a link target starting with `@` (`outside` then).
pub(crate) fn mend(tar: &mut [u8], outside: &[u8]) {
    let mut off: usize = 0;
    while let Some(h) = off.checked_add(BLOCK).and_then(|end| tar.get_mut(off..end)) {
        off += BLOCK;
        if h.iter().all(|&b| b == 0) {
            continue;
        }
        // Hard and symbolic links: the target field is bytes 157..257.
        if matches!(h[156], b'1' | b'2') && h[157] == b'@' {
            let rest: Vec<u8> = h[158..257].to_vec();
            let target: Vec<u8> = outside.iter().chain(&rest).copied().take(100).collect();
            h[157..257].fill(0);
            h[157..157 + target.len()].copy_from_slice(&target);
        }
        h[148..156].fill(b' ');
        let sum: u32 = h.iter().map(|&b| u32::from(b)).sum();
        h[148..156].copy_from_slice(format!("{sum:06o}\0 ").as_bytes());
        let Some(size) = size_of(h) else { return };
        let data = usize::try_from(size)
            .ok()
            .and_then(|n| n.div_ceil(BLOCK).checked_mul(BLOCK));
        match data.and_then(|n| off.checked_add(n)) {
            Some(o) => off = o,
            None => return,
        }
    }
}

/// The size field (bytes 124..136): octal, or GNU base-256.
fn size_of(h: &[u8]) -> Option<u64> {
    let field = &h[124..136];
    if field[0] & 0x80 != 0 {
        return field[4..]
            .iter()
            .try_fold(0u64, |n, &b| n.checked_mul(256)?.checked_add(u64::from(b)));
    }
    let digits: Vec<u8> = field
        .iter()
        .copied()
        .skip_while(|&b| b == b' ')
        .take_while(|b| (b'0'..=b'7').contains(b))
        .collect();
    if digits.is_empty() {
        return Some(0);
    }
    u64::from_str_radix(std::str::from_utf8(&digits).ok()?, 8).ok()
}

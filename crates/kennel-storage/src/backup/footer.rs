//! The footer: where the index is, and a hash of the compressed bytes.
//!
//! The compressed file is a sequence of zstd frames: the manifest, the
//! layer, then one frame that begins with the index member and holds the
//! end member and the tar end-of-archive. After them comes a zstd
//! *skippable* frame of fixed size, this footer, which any zstd reader
//! (`zstd -dc`) skips. It gives:
//!
//! * the offset of that last data frame, so [`super::read_index`] reads the
//!   last [`FOOTER_LEN`] bytes, seeks, and decompresses only the index's
//!   frame (a footer that does not add up is not an error there: the index
//!   is then found by reading the whole stream);
//! * the SHA-256 of every byte of the file before the hash itself. The end
//!   record's hash proves the *content* is the one written, but zstd
//!   tolerates some changes to its own bytes that leave the content alone
//!   (a window size in a frame header, for one); this hash makes any
//!   changed byte of the file a corruption that [`super::verify`] reports.

use sha2::{Digest, Sha256};

/// Skippable frame magic (the range is 0x184D2A50-0x184D2A5F).
const SKIPPABLE_MAGIC: u32 = 0x184D_2A5E;
const PAYLOAD_MAGIC: &[u8; 8] = b"KNLBKIDX";
const PAYLOAD_LEN: u32 = 64;

/// Bytes the footer takes at the end of the file.
pub const FOOTER_LEN: usize = 8 + PAYLOAD_LEN as usize;

/// Bytes at the end of the file the hash does not cover (itself).
pub const HASH_LEN: usize = 32;

/// Where things are in the compressed file.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Footer {
    /// Offset of the frame that begins with the index member.
    pub index_frame: u64,
    /// Offset of the footer itself: the length of the data frames.
    pub data_len: u64,
}

impl Footer {
    /// The footer's bytes; `sha` has hashed the data frames and is given
    /// the footer's own bytes before the hash.
    pub fn encode(&self, mut sha: Sha256) -> [u8; FOOTER_LEN] {
        let mut b = [0u8; FOOTER_LEN];
        b[0..4].copy_from_slice(&SKIPPABLE_MAGIC.to_le_bytes());
        b[4..8].copy_from_slice(&PAYLOAD_LEN.to_le_bytes());
        b[8..16].copy_from_slice(PAYLOAD_MAGIC);
        b[16..20].copy_from_slice(&1u32.to_le_bytes());
        // 20..24 reserved, zero.
        b[24..32].copy_from_slice(&self.index_frame.to_le_bytes());
        b[32..40].copy_from_slice(&self.data_len.to_le_bytes());
        sha.update(&b[..FOOTER_LEN - HASH_LEN]);
        b[FOOTER_LEN - HASH_LEN..].copy_from_slice(&sha.finalize());
        b
    }

    /// The footer of a file `file_len` bytes long whose last bytes are
    /// `b`, if they are one and it adds up (its hash is not checked).
    pub fn decode(b: &[u8; FOOTER_LEN], file_len: u64) -> Option<Footer> {
        let word = |at: usize| u32::from_le_bytes([b[at], b[at + 1], b[at + 2], b[at + 3]]);
        let quad = |at: usize| {
            let mut q = [0u8; 8];
            q.copy_from_slice(&b[at..at + 8]);
            u64::from_le_bytes(q)
        };
        if word(0) != SKIPPABLE_MAGIC || word(4) != PAYLOAD_LEN || &b[8..16] != PAYLOAD_MAGIC {
            return None;
        }
        if word(16) != 1 || word(20) != 0 {
            return None;
        }
        let f = Footer {
            index_frame: quad(24),
            data_len: quad(32),
        };
        (f.data_len.checked_add(FOOTER_LEN as u64) == Some(file_len) && f.index_frame < f.data_len)
            .then_some(f)
    }

    /// Whether `b`'s hash is `sha`'s (which hashed every byte before it).
    pub fn hash_matches(b: &[u8; FOOTER_LEN], sha: Sha256) -> bool {
        sha.finalize().as_slice() == &b[FOOTER_LEN - HASH_LEN..]
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn hashed(data: &[u8]) -> Sha256 {
        let mut s = Sha256::new();
        s.update(data);
        s
    }

    #[test]
    fn footers_round_trip_and_must_add_up() {
        let f = Footer {
            index_frame: 1000,
            data_len: 5000,
        };
        let data = vec![7u8; 5000];
        let b = f.encode(hashed(&data));
        let len = 5000 + FOOTER_LEN as u64;
        assert_eq!(Footer::decode(&b, len), Some(f));
        let mut all = hashed(&data);
        all.update(&b[..FOOTER_LEN - HASH_LEN]);
        assert!(Footer::hash_matches(&b, all));
        assert_eq!(Footer::decode(&b, len + 1), None, "appended to");
        for at in 0..FOOTER_LEN - HASH_LEN {
            let mut bad = b;
            bad[at] ^= 1;
            let mut all = hashed(&data);
            all.update(&bad[..FOOTER_LEN - HASH_LEN]);
            assert!(
                Footer::decode(&bad, len).is_none() || !Footer::hash_matches(&bad, all),
                "byte {at}"
            );
        }
        let past = Footer {
            index_frame: 6000,
            data_len: 5000,
        };
        assert_eq!(Footer::decode(&past.encode(Sha256::new()), len), None);
    }

    #[test]
    fn zstd_skips_the_footer() {
        let mut data = zstd::encode_all(&b"hello"[..], 3).expect("compress");
        let f = Footer {
            index_frame: 0,
            data_len: data.len() as u64,
        };
        let footer = f.encode(hashed(&data));
        data.extend_from_slice(&footer);
        assert_eq!(
            zstd::decode_all(data.as_slice()).expect("decompress"),
            b"hello"
        );
    }
}

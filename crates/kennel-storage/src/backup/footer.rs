//! The footer that lets the next incremental backup find a backup's index
//! without decompressing its data.
//!
//! The compressed file is a sequence of zstd frames: the manifest, the
//! layer, then one frame that begins with the index member and holds the
//! end member and the tar end-of-archive. After them comes a zstd
//! *skippable* frame of fixed size, this footer, giving the offset of that
//! last data frame. A streaming reader (`zstd -dc`, [`super::verify`])
//! skips the footer as zstd requires; [`super::read_index`] reads the last
//! [`FOOTER_LEN`] bytes, seeks, and decompresses only the index's frame.
//! A footer that is missing or does not add up is not an error: the index
//! is then found by reading the whole stream.

/// Skippable frame magic (the range is 0x184D2A50-0x184D2A5F).
const SKIPPABLE_MAGIC: u32 = 0x184D_2A5E;
const PAYLOAD_MAGIC: &[u8; 8] = b"KNLBKIDX";
const PAYLOAD_LEN: u32 = 32;

/// Bytes the footer takes at the end of the file.
pub const FOOTER_LEN: usize = 8 + PAYLOAD_LEN as usize;

/// Where things are in the compressed file.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Footer {
    /// Offset of the frame that begins with the index member.
    pub index_frame: u64,
    /// Offset of the footer itself: the length of the data frames.
    pub data_len: u64,
}

impl Footer {
    pub fn encode(&self) -> [u8; FOOTER_LEN] {
        let mut b = [0u8; FOOTER_LEN];
        b[0..4].copy_from_slice(&SKIPPABLE_MAGIC.to_le_bytes());
        b[4..8].copy_from_slice(&PAYLOAD_LEN.to_le_bytes());
        b[8..16].copy_from_slice(PAYLOAD_MAGIC);
        b[16..20].copy_from_slice(&1u32.to_le_bytes());
        // 20..24 reserved, zero.
        b[24..32].copy_from_slice(&self.index_frame.to_le_bytes());
        b[32..40].copy_from_slice(&self.data_len.to_le_bytes());
        b
    }

    /// The footer of a file `file_len` bytes long whose last bytes are
    /// `b`, if they are one and it adds up.
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
        if word(16) != 1 {
            return None;
        }
        let f = Footer {
            index_frame: quad(24),
            data_len: quad(32),
        };
        (f.data_len.checked_add(FOOTER_LEN as u64) == Some(file_len) && f.index_frame < f.data_len)
            .then_some(f)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn footers_round_trip_and_must_add_up() {
        let f = Footer {
            index_frame: 1000,
            data_len: 5000,
        };
        let b = f.encode();
        assert_eq!(Footer::decode(&b, 5000 + FOOTER_LEN as u64), Some(f));
        assert_eq!(
            Footer::decode(&b, 5001 + FOOTER_LEN as u64),
            None,
            "appended to"
        );
        let mut bad = b;
        bad[9] ^= 1;
        assert_eq!(Footer::decode(&bad, 5000 + FOOTER_LEN as u64), None);
        let past = Footer {
            index_frame: 6000,
            data_len: 5000,
        };
        assert_eq!(
            Footer::decode(&past.encode(), 5000 + FOOTER_LEN as u64),
            None
        );
    }

    #[test]
    fn zstd_skips_the_footer() {
        let mut data = zstd::encode_all(&b"hello"[..], 3).expect("compress");
        let len = data.len() as u64;
        data.extend_from_slice(
            &Footer {
                index_frame: 0,
                data_len: len,
            }
            .encode(),
        );
        assert_eq!(
            zstd::decode_all(data.as_slice()).expect("decompress"),
            b"hello"
        );
    }
}

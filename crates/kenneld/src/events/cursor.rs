//! A tenant's positions in the event stream, sealed.
//!
//! Every event has one place in one sequence over all VEs. A tenant that
//! saw the numbers of its own events would see the gaps between them: how
//! much happened meanwhile to VEs that are not its own. So a tenant's
//! token sees each position as an opaque cursor: the position encrypted
//! with AES-128 under a key only kenneld holds. The block is the position
//! and eight zero bytes, so a cursor a client made up is refused (a random
//! one opens to a zero tail once in 2^64) and numbers cannot be probed.
//! Host admins, who see every VE, see the numbers.
//!
//! The key is kept in `<lib>/api/cursor.key` (mode 0600), made on the
//! first start, so cursors outlive restarts as the journal's positions do.

use std::fs::{File, OpenOptions};
use std::io::{self, Read, Write};
use std::os::unix::fs::{DirBuilderExt, MetadataExt, OpenOptionsExt};
use std::path::Path;

use aes::cipher::{BlockDecrypt, BlockEncrypt, KeyInit};
use aes::Aes128;

const KEY_LEN: usize = 16;

/// Seals and opens tenants' cursors.
pub struct CursorKey(Aes128);

impl std::fmt::Debug for CursorKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("CursorKey(..)")
    }
}

impl CursorKey {
    pub fn from_bytes(key: [u8; KEY_LEN]) -> Self {
        CursorKey(Aes128::new(&key.into()))
    }

    /// The key kept at `path`, made (at random) when there is none.
    pub fn load_or_make(path: &Path) -> io::Result<Self> {
        match read_key(path) {
            Ok(key) => return Ok(Self::from_bytes(key)),
            Err(e) if e.kind() == io::ErrorKind::NotFound => {}
            Err(e) => return Err(e),
        }
        let mut key = [0u8; KEY_LEN];
        getrandom::fill(&mut key).map_err(io::Error::other)?;
        write_key(path, &key)?;
        Ok(Self::from_bytes(key))
    }

    /// `seq` as a tenant sees it: 32 hex digits.
    pub fn seal(&self, seq: u64) -> String {
        let mut block = [0u8; 16];
        block[..8].copy_from_slice(&seq.to_be_bytes());
        let mut block = block.into();
        self.0.encrypt_block(&mut block);
        block.iter().map(|b| format!("{b:02x}")).collect()
    }

    /// The position a cursor sealed here stands for; `None` for anything
    /// else.
    pub fn open(&self, cursor: &str) -> Option<u64> {
        let bytes = cursor.as_bytes();
        if bytes.len() != 32 {
            return None;
        }
        let mut block = [0u8; 16];
        for (i, pair) in bytes.chunks(2).enumerate() {
            let hex = std::str::from_utf8(pair).ok()?;
            block[i] = u8::from_str_radix(hex, 16).ok()?;
        }
        let mut block = block.into();
        self.0.decrypt_block(&mut block);
        let (seq, tail) = block.split_at(8);
        if tail.iter().any(|&b| b != 0) {
            return None;
        }
        Some(u64::from_be_bytes(seq.try_into().ok()?))
    }
}

fn read_key(path: &Path) -> io::Result<[u8; KEY_LEN]> {
    let mut f = OpenOptions::new()
        .read(true)
        .custom_flags(libc::O_NOFOLLOW | libc::O_CLOEXEC)
        .open(path)?;
    let meta = f.metadata()?;
    let mut key = [0u8; KEY_LEN];
    if !meta.is_file() || meta.len() != KEY_LEN as u64 || meta.uid() != 0 {
        return Err(damaged(path));
    }
    f.read_exact(&mut key).map_err(|_| damaged(path))?;
    Ok(key)
}

fn damaged(path: &Path) -> io::Error {
    io::Error::new(
        io::ErrorKind::InvalidData,
        format!(
            "{} is not a 16-byte key file of root's: remove it (a new key is made; tenants' event cursors then start over)",
            path.display()
        ),
    )
}

/// Writes the key beside `path` and moves it in place: a crash leaves
/// either no key or a whole one.
fn write_key(path: &Path, key: &[u8; KEY_LEN]) -> io::Result<()> {
    if let Some(dir) = path.parent() {
        std::fs::DirBuilder::new()
            .recursive(true)
            .mode(0o700)
            .create(dir)?;
    }
    let tmp = path.with_extension(format!("tmp-{}", std::process::id()));
    let _ = std::fs::remove_file(&tmp);
    let mut f: File = OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .custom_flags(libc::O_NOFOLLOW | libc::O_CLOEXEC)
        .open(&tmp)?;
    f.write_all(key)?;
    f.sync_all()?;
    std::fs::rename(&tmp, path)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_sealed_position_opens_to_itself_and_nothing_else_opens() {
        let k = CursorKey::from_bytes([7; 16]);
        for seq in [0, 1, 2, 41, u64::MAX] {
            let c = k.seal(seq);
            assert_eq!(c.len(), 32);
            assert_eq!(k.open(&c), Some(seq));
        }
        // Neighbours look unrelated.
        assert_ne!(k.seal(1)[..8], k.seal(2)[..8]);
        assert_eq!(k.open("0"), None);
        assert_eq!(k.open(&"0".repeat(32)), None);
        assert_eq!(k.open(&"zz".repeat(16)), None);
        assert_eq!(k.open(&"é".repeat(16)), None);
        // Another key's cursor is not this one's.
        assert_eq!(k.open(&CursorKey::from_bytes([8; 16]).seal(5)), None);
    }

    #[test]
    fn the_key_is_made_once_and_kept() {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("api/cursor.key");
        let c = CursorKey::load_or_make(&path).expect("made").seal(9);
        let mode = std::fs::metadata(&path).expect("kept").mode();
        assert_eq!(mode & 0o777, 0o600);
        assert_eq!(
            CursorKey::load_or_make(&path).expect("read").open(&c),
            Some(9)
        );
        std::fs::write(&path, b"short").expect("write");
        let e = CursorKey::load_or_make(&path).expect_err("damaged");
        assert!(e.to_string().contains("remove it"), "{e}");
    }
}

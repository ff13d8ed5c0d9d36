//! Reading a regular file's content for the stream, holes left out.
//!
//! A tar member's size is written before its data, but the tenant may be
//! changing the file while it is read: so exactly the promised bytes are
//! always written — zeros where the file came up short — and the file is
//! reported as changed. A file with holes (fewer blocks than its size
//! needs) is read as its data segments only, found with `SEEK_DATA` and
//! `SEEK_HOLE`, so a file of 16 TiB with one byte of data costs a few
//! system calls; segments come in batches of at most [`MAX_SEGMENTS`],
//! one member each.

use std::io::{self, Write};
use std::os::fd::BorrowedFd;

use rustix::fs::{seek, SeekFrom};
use rustix::io::{pread, Errno};

use super::sparse_map::{Segment, MAX_SEGMENTS};

/// Bytes read at a time.
pub(crate) const CHUNK: usize = 1 << 20;

/// Whether a file of `size` bytes in `blocks` 512-byte blocks has holes
/// worth looking for.
pub(crate) fn looks_sparse(size: u64, blocks: u64) -> bool {
    blocks.saturating_mul(512) < size
}

/// The data segments of a file, a batch at a time.
#[derive(Debug)]
pub(crate) struct Segments<'a> {
    fd: BorrowedFd<'a>,
    size: u64,
    pos: u64,
}

impl<'a> Segments<'a> {
    /// The segments of `fd`'s first `size` bytes.
    pub fn new(fd: BorrowedFd<'a>, size: u64) -> Self {
        Segments { fd, size, pos: 0 }
    }

    /// The next batch: empty when the file has no more data.
    pub fn next_batch(&mut self) -> io::Result<Vec<Segment>> {
        let mut out = Vec::new();
        while out.len() < MAX_SEGMENTS && self.pos < self.size {
            let start = match seek(self.fd, SeekFrom::Data(self.pos)) {
                Ok(s) => s,
                // No data past pos.
                Err(Errno::NXIO) => break,
                Err(e) => return Err(e.into()),
            };
            if start >= self.size {
                break;
            }
            let end = match seek(self.fd, SeekFrom::Hole(start)) {
                Ok(e) => e.min(self.size),
                Err(Errno::NXIO) => self.size,
                Err(e) => return Err(e.into()),
            };
            if end <= start {
                break;
            }
            out.push(Segment {
                off: start,
                len: end - start,
            });
            self.pos = end;
        }
        if out.len() < MAX_SEGMENTS {
            self.pos = self.size;
        }
        Ok(out)
    }
}

/// Which end of a copy failed.
#[derive(Debug)]
pub(crate) enum CopyFail {
    Read(io::Error),
    Write(io::Error),
}

/// Copies `len` bytes at `off` of `fd` to `w`, zeros past the file's end.
/// Returns whether the file came up short.
pub(crate) fn copy_range(
    fd: BorrowedFd<'_>,
    mut off: u64,
    len: u64,
    buf: &mut [u8],
    w: &mut impl Write,
    progress: &mut dyn FnMut(u64),
) -> Result<bool, CopyFail> {
    let mut left = len;
    let mut short = false;
    while left > 0 {
        let want = buf.len().min(usize::try_from(left).unwrap_or(usize::MAX));
        let n = if short {
            0
        } else {
            match pread(fd, &mut buf[..want], off) {
                Ok(n) => n,
                Err(Errno::INTR | Errno::AGAIN) => continue,
                Err(e) => return Err(CopyFail::Read(e.into())),
            }
        };
        let n = if n == 0 {
            short = true;
            buf[..want].fill(0);
            want
        } else {
            n
        };
        w.write_all(&buf[..n]).map_err(CopyFail::Write)?;
        progress(n as u64);
        off += n as u64;
        left -= n as u64;
    }
    Ok(short)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::fd::AsFd;
    use std::os::unix::fs::FileExt;

    #[test]
    fn huge_sparse_files_are_a_few_segments() {
        let dir = tempfile::tempdir_in(crate::test_dir()).expect("tempdir");
        let f = std::fs::OpenOptions::new()
            .read(true)
            .write(true)
            .create_new(true)
            .open(dir.path().join("s"))
            .expect("create");
        let size: u64 = 16 << 40;
        f.set_len(size - 4096).expect("truncate");
        f.write_all_at(b"x", 1 << 30).expect("write");
        f.write_all_at(b"y", size - 4097).expect("write");
        let meta = f.metadata().expect("stat");
        let blocks = std::os::unix::fs::MetadataExt::blocks(&meta);
        assert!(looks_sparse(meta.len(), blocks));
        let t = std::time::Instant::now();
        let mut s = Segments::new(f.as_fd(), meta.len());
        let batch = s.next_batch().expect("segments");
        assert!(s.next_batch().expect("more").is_empty());
        assert!(t.elapsed().as_millis() < 500);
        assert_eq!(batch.len(), 2, "{batch:?}");
        assert!(batch[0].off <= 1 << 30 && batch[0].off + batch[0].len > 1 << 30);
        assert!(batch[1].off + batch[1].len == meta.len());
        let mut out = Vec::new();
        let mut buf = vec![0u8; 4096];
        let short =
            copy_range(f.as_fd(), 1 << 30, 1, &mut buf, &mut out, &mut |_| {}).expect("copy");
        assert!(!short);
        assert_eq!(out, b"x");
        let short = copy_range(
            f.as_fd(),
            meta.len() - 1,
            3,
            &mut buf,
            &mut out,
            &mut |_| {},
        )
        .expect("copy");
        assert!(short);
        assert_eq!(out, b"xy\0\0", "the last byte, then zeros past the end");
    }
}

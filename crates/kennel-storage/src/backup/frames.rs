//! The writing end of the stream: tar bytes, hashed and counted, into
//! zstd frames, counted again.
//!
//! [`Frames`] compresses into one zstd frame at a time (checksummed, and
//! multithreaded if asked) and can end a frame and start the next, so the
//! index's frame can be found from the footer ([`super::footer`]);
//! [`Hashed`] sits above it and hashes every tar byte for the end record.

use std::io::{self, Write};

use sha2::{Digest, Sha256};

/// A writer that counts and hashes what goes through it (the compressed
/// bytes, for the footer).
pub(crate) struct Counting<W> {
    pub inner: W,
    pub count: u64,
    pub sha: Sha256,
}

impl<W: Write> Write for Counting<W> {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        let n = self.inner.write(buf)?;
        self.count += n as u64;
        self.sha.update(&buf[..n]);
        Ok(n)
    }

    fn flush(&mut self) -> io::Result<()> {
        self.inner.flush()
    }
}

/// How the stream is compressed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Compression {
    /// zstd level (1-19).
    pub level: i32,
    /// Worker threads; 0 is one per CPU.
    pub threads: u32,
}

impl Default for Compression {
    fn default() -> Self {
        Compression {
            level: 3,
            threads: 0,
        }
    }
}

type Encoder<W> = zstd::stream::write::Encoder<'static, Counting<W>>;

/// zstd frames, one at a time.
pub(crate) struct Frames<W: Write> {
    enc: Option<Encoder<W>>,
    how: Compression,
}

fn encoder<W: Write>(out: Counting<W>, how: Compression) -> io::Result<Encoder<W>> {
    let mut enc = zstd::stream::write::Encoder::new(out, how.level)?;
    enc.include_checksum(true)?;
    let threads = match how.threads {
        0 => std::thread::available_parallelism().map_or(1, |n| n.get() as u32),
        n => n,
    };
    if threads > 1 {
        enc.multithread(threads)?;
    }
    Ok(enc)
}

fn gone() -> io::Error {
    io::Error::other("the compressor was already finished")
}

impl<W: Write> Frames<W> {
    pub fn new(out: W, how: Compression) -> io::Result<Self> {
        let enc = encoder(
            Counting {
                inner: out,
                count: 0,
                sha: Sha256::new(),
            },
            how,
        )?;
        Ok(Frames {
            enc: Some(enc),
            how,
        })
    }

    /// Ends the current frame and starts another; returns the offset (in
    /// the compressed output) where the new frame begins.
    pub fn next_frame(&mut self) -> io::Result<u64> {
        let out = self.enc.take().ok_or_else(gone)?.finish()?;
        let at = out.count;
        self.enc = Some(encoder(out, self.how)?);
        Ok(at)
    }

    /// Ends the last frame; returns the output.
    pub fn finish(mut self) -> io::Result<Counting<W>> {
        self.enc.take().ok_or_else(gone)?.finish()
    }
}

impl<W: Write> Write for Frames<W> {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        self.enc.as_mut().ok_or_else(gone)?.write(buf)
    }

    fn flush(&mut self) -> io::Result<()> {
        self.enc.as_mut().ok_or_else(gone)?.flush()
    }
}

/// Hashes and counts the tar bytes written through it.
pub(crate) struct Hashed<W> {
    pub inner: W,
    pub sha: Sha256,
    pub count: u64,
}

impl<W: Write> Hashed<W> {
    pub fn new(inner: W) -> Self {
        Hashed {
            inner,
            sha: Sha256::new(),
            count: 0,
        }
    }
}

impl<W: Write> Write for Hashed<W> {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        let n = self.inner.write(buf)?;
        self.sha.update(&buf[..n]);
        self.count += n as u64;
        Ok(n)
    }

    fn flush(&mut self) -> io::Result<()> {
        self.inner.flush()
    }
}

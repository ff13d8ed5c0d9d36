//! The console backlog: the last bytes the VE wrote to its console.

use crate::sys::{self, Fd};

/// Bytes kept. Small on purpose: one monitor per VE.
pub(crate) const CAPACITY: usize = 16 * 1024;

/// The most taken from the console at a time.
pub(crate) const CHUNK: usize = 4096;

/// The backlog lives in memory given to it once (the program's bss, see
/// `crate::main`): its pages are touched only as bytes arrive (a VE that
/// shows a login prompt costs one), and the console is read straight into
/// it, with no buffer on the monitor's stack, whose every page stays.
#[derive(Debug)]
pub(crate) struct Ring<'a> {
    /// Filled up to its length, then overwritten in a circle.
    buf: &'a mut [u8],
    /// Bytes held, up to `buf.len()`.
    len: usize,
    /// Once full: where the oldest byte is (and the next read goes).
    head: usize,
}

impl<'a> Ring<'a> {
    pub(crate) fn new(buf: &'a mut [u8]) -> Self {
        Self {
            buf,
            len: 0,
            head: 0,
        }
    }

    /// Reads at most `max` bytes (and at most [`CHUNK`]) from `fd` into
    /// the backlog, dropping the oldest bytes past its size. Returns how
    /// many were read (0: end of file).
    pub(crate) fn read_from(&mut self, fd: &Fd, max: usize) -> sys::Result<usize> {
        let cap = self.buf.len();
        if self.len < cap {
            let want = max.min(CHUNK).min(cap - self.len);
            let n = sys::read(fd, &mut self.buf[self.len..self.len + want])?;
            self.len += n;
            return Ok(n);
        }
        let want = max.min(CHUNK).min(cap - self.head);
        let n = sys::read(fd, &mut self.buf[self.head..self.head + want])?;
        self.head = (self.head + n) % cap;
        Ok(n)
    }

    /// The backlog, oldest bytes first, in (at most) two pieces: sent as
    /// they are, without a copy.
    pub(crate) fn as_slices(&self) -> (&[u8], &[u8]) {
        let (newer, older) = self.buf[..self.len].split_at(self.head);
        (older, newer)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::fd::IntoRawFd;

    fn contents(r: &Ring) -> Vec<u8> {
        let (a, b) = r.as_slices();
        [a, b].concat()
    }

    fn pipe() -> (Fd, std::os::fd::OwnedFd) {
        let (rd, wr) = rustix::pipe::pipe().expect("pipe");
        // SAFETY: the read end was just made and is handed over whole.
        (unsafe { Fd::from_raw(rd.into_raw_fd()) }, wr)
    }

    /// Feeds `data` to the ring through a pipe, as a console would.
    fn feed(r: &mut Ring, data: &[u8]) {
        let (rd, wr) = pipe();
        let writer = {
            let data = data.to_vec();
            std::thread::spawn(move || {
                let mut rest = &data[..];
                while !rest.is_empty() {
                    let n = rustix::io::write(&wr, rest).expect("write");
                    rest = &rest[n..];
                }
            })
        };
        while r.read_from(&rd, usize::MAX).expect("read") > 0 {}
        writer.join().expect("writer");
    }

    #[test]
    fn keeps_the_tail() {
        let mut buf = vec![0u8; CAPACITY];
        let mut r = Ring::new(&mut buf);
        feed(&mut r, &vec![b'a'; CAPACITY]);
        feed(&mut r, b"xyz");
        let c = contents(&r);
        assert_eq!(c.len(), CAPACITY);
        assert_eq!(&c[CAPACITY - 3..], b"xyz");
        assert!(c[..CAPACITY - 3].iter().all(|&b| b == b'a'));
        feed(&mut r, &vec![b'b'; CAPACITY * 2 + 5]);
        assert!(contents(&r).iter().all(|&b| b == b'b'));
        let seq: Vec<u8> = (0..CAPACITY + 100).map(|i| (i % 251) as u8).collect();
        feed(&mut r, &seq);
        assert_eq!(contents(&r), seq[100..], "oldest first, in order");
    }

    #[test]
    fn reads_no_more_than_asked() {
        let mut buf = vec![0u8; CAPACITY];
        let mut r = Ring::new(&mut buf);
        let (rd, wr) = pipe();
        rustix::io::write(&wr, &[b'x'; CHUNK + 100]).expect("write");
        assert_eq!(r.read_from(&rd, 10).expect("read"), 10);
        assert_eq!(r.read_from(&rd, usize::MAX).expect("read"), CHUNK);
        assert_eq!(contents(&r).len(), 10 + CHUNK);
    }

    #[test]
    fn holds_no_more_than_its_memory() {
        let mut buf = vec![0u8; CAPACITY + 64];
        let (ring, guard) = buf.split_at_mut(CAPACITY);
        let mut r = Ring::new(ring);
        for n in [
            1,
            100,
            4096,
            CAPACITY - 1,
            CAPACITY,
            CAPACITY + 1,
            3 * CAPACITY,
        ] {
            feed(&mut r, &vec![b'x'; n]);
            assert!(contents(&r).len() <= CAPACITY);
        }
        assert!(guard.iter().all(|&b| b == 0), "nothing past its buffer");
    }
}

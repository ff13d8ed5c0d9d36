//! The console backlog: the last bytes the VE wrote to its console.

use std::os::fd::AsFd;

/// Bytes kept. Small on purpose: one monitor per VE.
pub(crate) const CAPACITY: usize = 16 * 1024;

/// The most taken from the console at a time.
pub(crate) const CHUNK: usize = 4096;

/// The backlog's memory is taken once, all of it ([`Ring::new`]): a ring
/// grown by doubling would copy itself four times on the way to
/// [`CAPACITY`] and leave the smaller buffers behind as dirty free chunks
/// in the monitor's heap. Its pages are touched only as bytes arrive (a VE
/// that shows a login prompt costs one), and the console is read straight
/// into it: no buffer on the monitor's stack, whose every page stays.
#[derive(Debug)]
pub(crate) struct Ring {
    /// Filled up to `CAPACITY` bytes, then overwritten in a circle.
    buf: Vec<u8>,
    /// Once full: where the oldest byte is (and the next read goes).
    head: usize,
}

impl Ring {
    /// Taken first thing in the monitor, before any other allocation: the
    /// backlog then starts on the heap's first page, beside the C
    /// library's thread block, so that a login prompt dirties no page of
    /// its own, and the small allocations after it share a page with the
    /// heap's top. (Untouched, its other pages cost nothing.)
    pub(crate) fn new() -> Self {
        Self {
            buf: Vec::with_capacity(CAPACITY),
            head: 0,
        }
    }

    /// Reads at most `max` bytes (and at most [`CHUNK`]) from `fd` into
    /// the backlog, dropping the oldest bytes past [`CAPACITY`]. Returns
    /// how many were read (0: end of file).
    pub(crate) fn read_from(&mut self, fd: impl AsFd, max: usize) -> rustix::io::Result<usize> {
        let len = self.buf.len();
        if len < CAPACITY {
            // Into the spare capacity as it is: zeroing it first would
            // dirty pages the console's bytes may never reach.
            let want = max.min(CHUNK).min(CAPACITY - len);
            let spare = &mut self.buf.spare_capacity_mut()[..want];
            let n = rustix::io::read(fd, spare)?.0.len();
            // SAFETY: the read initialised the first `n` bytes of the spare
            // capacity, and `len + n <= CAPACITY <= capacity`.
            unsafe { self.buf.set_len(len + n) };
            return Ok(n);
        }
        let want = max.min(CHUNK).min(CAPACITY - self.head);
        let n = rustix::io::read(fd, &mut self.buf[self.head..self.head + want])?;
        self.head = (self.head + n) % CAPACITY;
        Ok(n)
    }

    /// The backlog, oldest bytes first, in (at most) two pieces: sent as
    /// they are, without a copy that would leave another 16 KiB of dirty
    /// heap behind.
    pub(crate) fn as_slices(&self) -> (&[u8], &[u8]) {
        let (newer, older) = self.buf.split_at(self.head);
        (older, newer)
    }

    /// Bytes of memory the backlog holds.
    #[cfg(test)]
    fn allocated(&self) -> usize {
        self.buf.capacity()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::fd::OwnedFd;

    fn contents(r: &Ring) -> Vec<u8> {
        let (a, b) = r.as_slices();
        [a, b].concat()
    }

    /// Feeds `data` to the ring through a pipe, as a console would.
    fn feed(r: &mut Ring, data: &[u8]) {
        let (rd, wr): (OwnedFd, OwnedFd) = rustix::pipe::pipe().expect("pipe");
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
        let mut r = Ring::new();
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
        let mut r = Ring::new();
        let (rd, wr) = rustix::pipe::pipe().expect("pipe");
        rustix::io::write(&wr, &[b'x'; CHUNK + 100]).expect("write");
        assert_eq!(r.read_from(&rd, 10).expect("read"), 10);
        assert_eq!(r.read_from(&rd, usize::MAX).expect("read"), CHUNK);
        assert_eq!(contents(&r).len(), 10 + CHUNK);
    }

    #[test]
    fn takes_its_memory_once_and_never_more() {
        let mut r = Ring::new();
        let first = r.allocated();
        assert!(first >= CAPACITY, "the whole backlog at once: {first}");
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
            assert_eq!(r.allocated(), first, "no growth after {n} bytes");
            assert!(contents(&r).len() <= CAPACITY);
        }
    }
}

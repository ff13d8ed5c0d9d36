//! The console backlog: the last bytes the VE wrote to its console.

use std::collections::VecDeque;

/// Bytes kept. Small on purpose: one monitor per VE.
pub(crate) const CAPACITY: usize = 16 * 1024;

/// The backlog's memory is taken at the first byte, all of it at once: a
/// ring grown by doubling would copy itself four times on the way to
/// [`CAPACITY`] and leave the smaller buffers behind as dirty free chunks
/// in the monitor's heap. A VE that never writes to its console costs no
/// backlog at all (the pages of an untouched allocation are not there).
#[derive(Debug, Default)]
pub(crate) struct Ring {
    buf: VecDeque<u8>,
}

impl Ring {
    pub(crate) fn push(&mut self, data: &[u8]) {
        if data.is_empty() {
            return;
        }
        if self.buf.capacity() == 0 {
            self.buf.reserve_exact(CAPACITY);
        }
        let data = if data.len() > CAPACITY {
            &data[data.len() - CAPACITY..]
        } else {
            data
        };
        let over = (self.buf.len() + data.len()).saturating_sub(CAPACITY);
        self.buf.drain(..over);
        self.buf.extend(data);
    }

    /// The backlog, oldest bytes first, in (at most) two pieces: sent as
    /// they are, without a copy that would leave another 16 KiB of dirty
    /// heap behind.
    pub(crate) fn as_slices(&self) -> (&[u8], &[u8]) {
        self.buf.as_slices()
    }

    #[cfg(test)]
    fn contents(&self) -> Vec<u8> {
        let (a, b) = self.as_slices();
        [a, b].concat()
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

    #[test]
    fn keeps_the_tail() {
        let mut r = Ring::default();
        r.push(&vec![b'a'; CAPACITY]);
        r.push(b"xyz");
        let c = r.contents();
        assert_eq!(c.len(), CAPACITY);
        assert_eq!(&c[CAPACITY - 3..], b"xyz");
        r.push(&vec![b'b'; CAPACITY * 2]);
        assert!(r.contents().iter().all(|&b| b == b'b'));
    }

    #[test]
    fn takes_its_memory_once_and_never_more() {
        let mut r = Ring::default();
        r.push(b"");
        assert_eq!(r.allocated(), 0, "no backlog before the first byte");
        r.push(b"login: ");
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
            r.push(&vec![b'x'; n]);
            assert_eq!(r.allocated(), first, "no growth after a push of {n}");
            assert!(r.contents().len() <= CAPACITY);
        }
    }
}

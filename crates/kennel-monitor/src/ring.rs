//! The console backlog: the last bytes the VE wrote to its console.

use std::collections::VecDeque;

/// Bytes kept. Small on purpose: one monitor per VE.
pub(crate) const CAPACITY: usize = 16 * 1024;

#[derive(Debug, Default)]
pub(crate) struct Ring {
    buf: VecDeque<u8>,
}

impl Ring {
    pub(crate) fn push(&mut self, data: &[u8]) {
        let data = if data.len() > CAPACITY {
            &data[data.len() - CAPACITY..]
        } else {
            data
        };
        let over = (self.buf.len() + data.len()).saturating_sub(CAPACITY);
        self.buf.drain(..over);
        self.buf.extend(data);
    }

    pub(crate) fn contents(&self) -> Vec<u8> {
        self.buf.iter().copied().collect()
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
}

//! The monitor's command line, and the teardown command it becomes.

use core::ffi::{c_char, CStr};
use core::fmt::{self, Write as _};

use crate::sys::{Ended, Errno};

/// The most words the teardown command may have (`kennel [--root DIR]
/// __ve-exited ID` has at most five).
pub(crate) const MAX_TEARDOWN: usize = 16;

#[derive(Debug)]
pub(crate) struct Args<'a> {
    pub id: &'a CStr,
    teardown: [&'a CStr; MAX_TEARDOWN],
    teardown_len: usize,
}

impl<'a> Args<'a> {
    /// `--id ID -- TEARDOWN...`
    pub(crate) fn parse(mut it: impl Iterator<Item = &'a CStr>) -> Result<Self, &'static str> {
        let mut id = None;
        loop {
            match it.next().map(CStr::to_bytes) {
                Some(b"--id") => id = it.next(),
                Some(b"--") => break,
                Some(_) => return Err("unknown argument"),
                None => break,
            }
        }
        let mut teardown = [c""; MAX_TEARDOWN];
        let mut teardown_len = 0;
        for word in it {
            *teardown
                .get_mut(teardown_len)
                .ok_or("teardown command too long")? = word;
            teardown_len += 1;
        }
        let id = id.ok_or("missing --id")?;
        if teardown_len == 0 {
            return Err("missing teardown command after --");
        }
        Ok(Args {
            id,
            teardown,
            teardown_len,
        })
    }

    /// The teardown command's words.
    pub(crate) fn teardown(&self) -> &[&'a CStr] {
        &self.teardown[..self.teardown_len]
    }

    /// The teardown command's `argv`, with `--how HOW` added and the null
    /// at the end; [`Args::teardown`]'s first word is the program.
    pub(crate) fn teardown_argv(&self, how: &CStr) -> [*const c_char; MAX_TEARDOWN + 3] {
        let mut argv = [core::ptr::null(); MAX_TEARDOWN + 3];
        let words = self.teardown().iter().copied().chain([c"--how", how]);
        for (slot, word) in argv.iter_mut().zip(words) {
            *slot = word.as_ptr();
        }
        argv
    }
}

/// How init ended, in the words `kennel __ve-exited --how` reads
/// (`exited N`, `signal N`).
pub(crate) fn describe(ended: Result<Ended, Errno>, out: &mut Line) -> &CStr {
    let _ = match ended {
        Ok(Ended::Exited(code)) => write!(out, "exited {code}"),
        Ok(Ended::Signal(sig)) => write!(out, "signal {sig}"),
        Ok(Ended::Other) => write!(out, "ended"),
        Err(e) => write!(out, "unknown ({e})"),
    };
    out.as_c_str()
}

/// A short line built on the stack, kept NUL-terminated.
#[derive(Debug)]
pub(crate) struct Line {
    buf: [u8; 48],
    len: usize,
}

impl Line {
    pub(crate) fn new() -> Line {
        Line {
            buf: [0; 48],
            len: 0,
        }
    }

    pub(crate) fn as_c_str(&self) -> &CStr {
        CStr::from_bytes_until_nul(&self.buf).unwrap_or(c"")
    }
}

impl fmt::Write for Line {
    /// Keeps what fits, always leaving the final NUL.
    fn write_str(&mut self, s: &str) -> fmt::Result {
        let room = self.buf.len() - 1 - self.len;
        let n = s.len().min(room);
        self.buf[self.len..self.len + n].copy_from_slice(&s.as_bytes()[..n]);
        self.len += n;
        if n < s.len() {
            Err(fmt::Error)
        } else {
            Ok(())
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::ffi::CString;

    fn c(v: &[&str]) -> Vec<CString> {
        v.iter()
            .map(|x| CString::new(*x).expect("no NUL"))
            .collect()
    }

    #[test]
    fn parses() {
        let words = c(&["--id", "101", "--", "/k", "x"]);
        let a = Args::parse(words.iter().map(|w| w.as_c_str())).expect("parse");
        assert_eq!(a.id, c"101");
        assert_eq!(a.teardown(), &[c"/k", c"x"]);
        let argv = a.teardown_argv(c"exited 0");
        // SAFETY: the first four pointers are the C strings above.
        let got: Vec<&CStr> = argv[..4]
            .iter()
            .map(|p| unsafe { CStr::from_ptr(*p) })
            .collect();
        assert_eq!(got, [c"/k", c"x", c"--how", c"exited 0"]);
        assert!(argv[4..].iter().all(|p| p.is_null()), "null-terminated");
    }

    #[test]
    fn refuses_missing_parts() {
        for bad in [
            &["--id", "1"][..],
            &["--id", "1", "--"],
            &["--", "x"],
            &["--bogus"],
            &["--id"],
        ] {
            let words = c(bad);
            assert!(
                Args::parse(words.iter().map(|w| w.as_c_str())).is_err(),
                "{bad:?}"
            );
        }
        let long: Vec<String> = ["--id", "1", "--"]
            .iter()
            .map(|s| s.to_string())
            .chain((0..=MAX_TEARDOWN).map(|i| i.to_string()))
            .collect();
        let words: Vec<CString> = long
            .iter()
            .map(|s| CString::new(s.as_str()).expect("c"))
            .collect();
        assert_eq!(
            Args::parse(words.iter().map(|w| w.as_c_str())).err(),
            Some("teardown command too long")
        );
    }

    #[test]
    fn describes_how_init_ended_as_kennel_reads_it() {
        let cases = [
            (Ok(Ended::Exited(0)), c"exited 0"),
            (Ok(Ended::Exited(255)), c"exited 255"),
            (Ok(Ended::Signal(9)), c"signal 9"),
            (Ok(Ended::Other), c"ended"),
            (Err(Errno(10)), c"unknown (errno 10)"),
        ];
        for (ended, want) in cases {
            let mut line = Line::new();
            assert_eq!(describe(ended, &mut line), want);
        }
    }

    #[test]
    fn a_line_keeps_what_fits_and_its_nul() {
        let mut line = Line::new();
        assert!(write!(line, "{}", "x".repeat(100)).is_err());
        assert_eq!(line.as_c_str().to_bytes().len(), 47);
    }
}

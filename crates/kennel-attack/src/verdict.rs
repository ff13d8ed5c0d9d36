//! The one line every probe ends with, and its exit status: the suite
//! reads only this line (and the status), so a probe may print `INFO`
//! lines before it for a human reading a failure.

use std::fmt;

/// What an attack achieved.
#[derive(Debug)]
pub enum Verdict {
    /// The attack failed; the text says what stopped it.
    Blocked(String),
    /// The attack reached something it must not; the text says what.
    Escaped(String),
    /// The probe could not run (bad arguments, a missing file).
    Error(String),
    /// A feature probe: what an opt-in feature gives does work.
    Works(String),
}

impl Verdict {
    pub fn code(&self) -> i32 {
        match self {
            Verdict::Blocked(_) | Verdict::Works(_) => 0,
            Verdict::Escaped(_) => 1,
            Verdict::Error(_) => 2,
        }
    }
}

impl fmt::Display for Verdict {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Verdict::Blocked(s) => write!(f, "BLOCKED {s}"),
            Verdict::Escaped(s) => write!(f, "ESCAPED {s}"),
            Verdict::Error(s) => write!(f, "ERROR {s}"),
            Verdict::Works(s) => write!(f, "WORKS {s}"),
        }
    }
}

pub fn blocked(s: impl Into<String>) -> Verdict {
    Verdict::Blocked(s.into())
}

pub fn escaped(s: impl Into<String>) -> Verdict {
    Verdict::Escaped(s.into())
}

pub fn error(s: impl Into<String>) -> Verdict {
    Verdict::Error(s.into())
}

pub fn works(s: impl Into<String>) -> Verdict {
    Verdict::Works(s.into())
}

/// Several attempts: escaped if any escaped, else an error if any could
/// not run, else blocked (with every reason).
pub fn all(parts: Vec<(String, Verdict)>) -> Verdict {
    let pick = |want: fn(&Verdict) -> bool| -> Vec<String> {
        parts
            .iter()
            .filter(|(_, v)| want(v))
            .map(|(what, v)| format!("{what}: {}", inner(v)))
            .collect()
    };
    let esc = pick(|v| matches!(v, Verdict::Escaped(_)));
    if !esc.is_empty() {
        return Verdict::Escaped(esc.join("; "));
    }
    let err = pick(|v| matches!(v, Verdict::Error(_)));
    if !err.is_empty() {
        return Verdict::Error(err.join("; "));
    }
    Verdict::Blocked(pick(|_| true).join("; "))
}

fn inner(v: &Verdict) -> &str {
    match v {
        Verdict::Blocked(s) | Verdict::Escaped(s) | Verdict::Error(s) | Verdict::Works(s) => s,
    }
}

/// An informational line (not a verdict).
pub fn info(s: impl fmt::Display) {
    println!("INFO {s}");
}

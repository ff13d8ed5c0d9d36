//! Sizes (`512M`, `1.5G`) and CPU counts (`1`, `0.5`). No limit is
//! written as no value at all (the key is left out of `ve.conf`).
//!
//! Suffixes are binary (K = 1024), as in vzctl and the cgroup files;
//! `KiB`/`MiB`/... and `KB`/`MB`/... are accepted as the same.

use std::fmt;

use serde::{Deserialize, Serialize};

use crate::error::VeError;

/// A size in bytes, written and read as a human string.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub struct Size(pub u64);

const UNITS: &[(&str, u64)] = &[
    ("T", 1 << 40),
    ("G", 1 << 30),
    ("M", 1 << 20),
    ("K", 1 << 10),
];

/// The largest size taken, 8 EiB: beyond any host's memory or disk.
const MAX_BYTES: u64 = 1 << 63;

impl Size {
    pub fn parse(s: &str) -> Result<Self, VeError> {
        let bad = || {
            VeError::BadInput(format!(
                "invalid size '{s}': use a number with an optional unit K, M, G or T (e.g. 512M, 1.5G)"
            ))
        };
        let t = s.trim();
        if t.is_empty() {
            return Err(bad());
        }
        let upper = t.to_ascii_uppercase();
        let digits_end = upper
            .find(|c: char| !(c.is_ascii_digit() || c == '.'))
            .unwrap_or(upper.len());
        let (num, unit) = upper.split_at(digits_end);
        let unit = unit.trim();
        let unit = unit
            .strip_suffix("IB")
            .or_else(|| unit.strip_suffix('B'))
            .unwrap_or(unit);
        let mult = match unit {
            "" => 1,
            u => UNITS
                .iter()
                .find(|(n, _)| *n == u)
                .map(|(_, m)| *m)
                .ok_or_else(bad)?,
        };
        if num.is_empty() || num.matches('.').count() > 1 {
            return Err(bad());
        }
        // A whole number is taken exactly (a float rounds past 2^53).
        if !num.contains('.') {
            return num
                .parse::<u64>()
                .ok()
                .and_then(|n| n.checked_mul(mult))
                .filter(|&b| b <= MAX_BYTES)
                .map(Size)
                .ok_or_else(bad);
        }
        let v: f64 = num.parse().map_err(|_| bad())?;
        let bytes = v * mult as f64;
        if !bytes.is_finite() || bytes < 0.0 || bytes > MAX_BYTES as f64 || mult == 1 {
            return Err(bad());
        }
        Ok(Size(bytes.round() as u64))
    }

    pub fn bytes(self) -> u64 {
        self.0
    }
}

impl fmt::Display for Size {
    /// The largest unit that divides the size exactly (`512M`), else bytes.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for (name, m) in UNITS {
            if self.0 >= *m && self.0.is_multiple_of(*m) {
                return write!(f, "{}{name}", self.0 / m);
            }
        }
        write!(f, "{}", self.0)
    }
}

impl TryFrom<String> for Size {
    type Error = VeError;
    fn try_from(s: String) -> Result<Self, VeError> {
        Size::parse(&s)
    }
}

impl From<Size> for String {
    fn from(s: Size) -> String {
        s.to_string()
    }
}

/// A human size for display: `1.5G`, `23.4M` (not exact).
pub fn human(bytes: u64) -> String {
    for (name, m) in UNITS {
        if bytes >= *m {
            let v = bytes as f64 / *m as f64;
            return if v >= 100.0 {
                format!("{v:.0}{name}")
            } else {
                format!("{v:.1}{name}")
            };
        }
    }
    format!("{bytes}")
}

/// The most CPUs a VE may be given.
pub const MAX_CPUS: f64 = 4096.0;

/// A number of CPUs (fractions allowed), > 0.
pub fn parse_cpus(s: &str) -> Result<f64, VeError> {
    let v: f64 = s.trim().parse().map_err(|_| {
        VeError::BadInput(format!(
            "invalid CPU count '{s}': use a number such as 1, 2 or 0.5"
        ))
    })?;
    if !(v.is_finite() && v > 0.0 && v <= MAX_CPUS) {
        return Err(VeError::BadInput(format!(
            "invalid CPU count '{s}': it must be above 0 and at most {MAX_CPUS} (e.g. 0.5, 1, 4)"
        )));
    }
    Ok(v)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_sizes() {
        assert_eq!(Size::parse("512M").map(Size::bytes).ok(), Some(512 << 20));
        assert_eq!(Size::parse("512m").map(Size::bytes).ok(), Some(512 << 20));
        assert_eq!(Size::parse("1.5G").map(Size::bytes).ok(), Some(3 << 29));
        assert_eq!(Size::parse("2GiB").map(Size::bytes).ok(), Some(2 << 30));
        assert_eq!(Size::parse("4096").map(Size::bytes).ok(), Some(4096));
        assert_eq!(Size::parse("1K").map(Size::bytes).ok(), Some(1024));
        // Exact past 2^53, where a float would round (found by fuzzing).
        assert_eq!(
            Size::parse("7777777777777771716").map(Size::bytes).ok(),
            Some(7_777_777_777_777_771_716)
        );
        assert_eq!(Size::parse("8388608T").map(Size::bytes).ok(), Some(1 << 63));
        assert!(Size::parse("8388609T").is_err());
        for bad in ["", "M", "12X", "1.2.3G", "-5M", "1.5", "5 MB extra", "nan"] {
            assert!(Size::parse(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn displays_exactly() {
        assert_eq!(Size(512 << 20).to_string(), "512M");
        assert_eq!(Size(3 << 29).to_string(), "1536M");
        assert_eq!(Size(1000).to_string(), "1000");
        assert_eq!(human(1536 << 20), "1.5G");
    }

    #[test]
    fn round_trips() {
        for s in ["512M", "1G", "1536M", "12345"] {
            let v = Size::parse(s).expect("parse");
            assert_eq!(Size::parse(&v.to_string()).expect("reparse"), v);
        }
    }

    #[test]
    fn cpus() {
        assert_eq!(parse_cpus("1.5").ok(), Some(1.5));
        assert!(parse_cpus("0").is_err());
        assert!(parse_cpus("-1").is_err());
        assert!(parse_cpus("two").is_err());
    }
}

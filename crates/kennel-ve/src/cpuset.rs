//! A set of host CPUs (`--cpumask 0-1,3`), in the kernel's list format.

use std::collections::BTreeSet;
use std::fmt;

use serde::{Deserialize, Serialize};

use crate::error::VeError;

/// The highest CPU number taken (the kernel's `NR_CPUS` is at most 8192;
/// no host Kennel runs on has more than 4096).
pub const MAX_CPU: u32 = 4095;

/// Host CPUs by number, in order, never empty.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub struct CpuSet(BTreeSet<u32>);

impl CpuSet {
    /// Parses the kernel's list format: `0-3,8,10-11` (spaces around the
    /// commas allowed).
    pub fn parse(s: &str) -> Result<Self, VeError> {
        let bad = |why: &str| {
            VeError::BadInput(format!(
                "invalid CPU list '{s}': {why} (give CPU numbers and ranges, e.g. 0-1,3)"
            ))
        };
        let cpu = |t: &str| -> Result<u32, VeError> {
            let n: u32 = t
                .trim()
                .parse()
                .map_err(|_| bad(&format!("'{}' is not a CPU number", t.trim())))?;
            if n > MAX_CPU {
                return Err(bad(&format!("CPU {n} is above {MAX_CPU}")));
            }
            Ok(n)
        };
        let mut set = BTreeSet::new();
        for part in s.split(',') {
            match part.split_once('-') {
                Some((a, b)) => {
                    let (a, b) = (cpu(a)?, cpu(b)?);
                    if a > b {
                        return Err(bad(&format!("range {a}-{b} runs backwards")));
                    }
                    set.extend(a..=b);
                }
                None => {
                    set.insert(cpu(part)?);
                }
            }
        }
        Ok(CpuSet(set))
    }

    pub fn cpus(&self) -> impl Iterator<Item = u32> + '_ {
        self.0.iter().copied()
    }

    pub fn len(&self) -> usize {
        self.0.len()
    }

    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    /// True if every CPU of `self` is in `other` (e.g. the host's online
    /// CPUs).
    pub fn is_subset(&self, other: &CpuSet) -> bool {
        self.0.is_subset(&other.0)
    }
}

impl fmt::Display for CpuSet {
    /// The list form the kernel writes: runs as ranges (`0-1,4-7,9`).
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let mut parts = Vec::new();
        let mut it = self.0.iter().copied().peekable();
        while let Some(start) = it.next() {
            let mut end = start;
            while it.peek() == Some(&(end + 1)) {
                end += 1;
                it.next();
            }
            parts.push(if start == end {
                start.to_string()
            } else {
                format!("{start}-{end}")
            });
        }
        write!(f, "{}", parts.join(","))
    }
}

impl TryFrom<String> for CpuSet {
    type Error = VeError;
    fn try_from(s: String) -> Result<Self, VeError> {
        CpuSet::parse(&s)
    }
}

impl From<CpuSet> for String {
    fn from(c: CpuSet) -> String {
        c.to_string()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lists_and_ranges() {
        let s = CpuSet::parse("0-3, 8,10-11,2").expect("parse");
        assert_eq!(s.cpus().collect::<Vec<_>>(), vec![0, 1, 2, 3, 8, 10, 11]);
        assert_eq!(s.to_string(), "0-3,8,10-11");
        assert_eq!(CpuSet::parse("1").expect("one").to_string(), "1");
        assert_eq!(CpuSet::parse("4095").expect("max").len(), 1);
    }

    #[test]
    fn round_trips() {
        for s in ["0", "0-1", "0,2,4", "1-3,5-7,9"] {
            let c = CpuSet::parse(s).expect(s);
            assert_eq!(CpuSet::parse(&c.to_string()).expect("reparse"), c);
            assert_eq!(c.to_string(), s);
        }
    }

    #[test]
    fn bad_lists_are_refused() {
        for bad in [
            "", ",", "0-", "-1", "3-1", "a", "1,,2", "4096", "0-99999", "1.5",
        ] {
            assert!(CpuSet::parse(bad).is_err(), "{bad:?}");
        }
    }

    #[test]
    fn subsets() {
        let host = CpuSet::parse("0-1").expect("host");
        assert!(CpuSet::parse("1").expect("1").is_subset(&host));
        assert!(!CpuSet::parse("1-2").expect("1-2").is_subset(&host));
    }
}

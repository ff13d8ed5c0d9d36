//! VE ids: `[a-z0-9][a-z0-9-]{0,31}` (OpenVZ-style numbers such as `101`
//! are valid).

use std::fmt;

use serde::{Deserialize, Serialize};

use crate::error::VeError;

#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub struct VeId(String);

impl VeId {
    pub fn parse(s: &str) -> Result<Self, VeError> {
        let ok = !s.is_empty()
            && s.len() <= 32
            && s.bytes()
                .next()
                .is_some_and(|b| b.is_ascii_lowercase() || b.is_ascii_digit())
            && s.bytes()
                .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-');
        if ok {
            Ok(VeId(s.to_string()))
        } else {
            Err(VeError::BadInput(format!(
                "invalid VE id '{s}': use 1-32 characters a-z, 0-9 and '-', starting with a letter or digit (e.g. 101 or web-1)"
            )))
        }
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// Sort key: numeric ids in numeric order, before named ones.
    pub fn sort_key(&self) -> (u8, u64, &str) {
        match self.0.parse::<u64>() {
            Ok(n) => (0, n, ""),
            Err(_) => (1, 0, &self.0),
        }
    }
}

impl fmt::Display for VeId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl TryFrom<String> for VeId {
    type Error = VeError;
    fn try_from(s: String) -> Result<Self, VeError> {
        VeId::parse(&s)
    }
}

impl From<VeId> for String {
    fn from(v: VeId) -> String {
        v.0
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn accepts_and_refuses() {
        for ok in ["101", "a", "web-1", "0", "abcdefghijklmnopqrstuvwxyz012345"] {
            assert!(VeId::parse(ok).is_ok(), "{ok}");
        }
        for bad in [
            "",
            "-a",
            "A",
            "web_1",
            "a/b",
            "..",
            "abcdefghijklmnopqrstuvwxyz0123456",
            "é",
        ] {
            assert!(VeId::parse(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn numeric_sort() {
        let mut v: Vec<VeId> = ["101", "9", "web", "1000"]
            .iter()
            .map(|s| VeId::parse(s).expect("id"))
            .collect();
        v.sort_by(|a, b| a.sort_key().cmp(&b.sort_key()));
        let s: Vec<&str> = v.iter().map(|x| x.as_str()).collect();
        assert_eq!(s, ["9", "101", "1000", "web"]);
    }
}

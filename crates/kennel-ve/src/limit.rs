//! A resource limit that may be lifted on purpose: a value, or
//! `unlimited`. Whether a limit is given at all is a separate question
//! (`Option<Limit<T>>`): a VE that gives none gets the host's default plan,
//! so a VE never runs unlimited by accident, only when `unlimited` is
//! written.

use std::fmt;

use serde::{Deserialize, Deserializer, Serialize, Serializer};

use crate::error::VeError;

/// The word for no limit, on the command line and in `ve.conf`.
pub const UNLIMITED: &str = "unlimited";

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Limit<T> {
    Unlimited,
    Max(T),
}

impl<T> Limit<T> {
    /// Parses `unlimited` or, with `value`, a limit.
    pub fn parse(s: &str, value: impl FnOnce(&str) -> Result<T, VeError>) -> Result<Self, VeError> {
        if s.trim().eq_ignore_ascii_case(UNLIMITED) {
            Ok(Limit::Unlimited)
        } else {
            value(s).map(Limit::Max)
        }
    }

    /// The limit, `None` when unlimited.
    pub fn max(&self) -> Option<&T> {
        match self {
            Limit::Unlimited => None,
            Limit::Max(v) => Some(v),
        }
    }
}

impl<T: fmt::Display> fmt::Display for Limit<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Limit::Unlimited => f.write_str(UNLIMITED),
            Limit::Max(v) => v.fmt(f),
        }
    }
}

/// In `ve.conf`: the value as the value's own type writes it, or the
/// string `"unlimited"`.
#[derive(Serialize, Deserialize)]
#[serde(untagged)]
enum Repr<T> {
    Max(T),
    Word(String),
}

impl<T: Serialize> Serialize for Limit<T> {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        match self {
            Limit::Unlimited => s.serialize_str(UNLIMITED),
            Limit::Max(v) => v.serialize(s),
        }
    }
}

impl<'de, T: Deserialize<'de>> Deserialize<'de> for Limit<T> {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        match Repr::<T>::deserialize(d)? {
            Repr::Max(v) => Ok(Limit::Max(v)),
            Repr::Word(w) if w.eq_ignore_ascii_case(UNLIMITED) => Ok(Limit::Unlimited),
            Repr::Word(w) => Err(serde::de::Error::custom(format!(
                "invalid limit '{w}': give a value or \"{UNLIMITED}\""
            ))),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::units::Size;

    #[derive(Debug, PartialEq, Serialize, Deserialize)]
    struct Plan {
        memory: Limit<Size>,
        numproc: Limit<u64>,
    }

    #[test]
    fn values_and_unlimited_round_trip_through_toml() {
        for (memory, numproc) in [
            (Limit::Max(Size(1 << 30)), Limit::Max(512)),
            (Limit::Unlimited, Limit::Unlimited),
        ] {
            let plan = Plan { memory, numproc };
            let text = toml::to_string(&plan).expect("encode");
            assert_eq!(
                toml::from_str::<Plan>(&text).expect("decode"),
                plan,
                "{text}"
            );
        }
        let p: Plan = toml::from_str("memory = \"2G\"\nnumproc = \"Unlimited\"").expect("decode");
        assert_eq!(p.memory, Limit::Max(Size(2 << 30)));
        assert_eq!(p.numproc, Limit::Unlimited);
    }

    #[test]
    fn words_other_than_unlimited_are_refused() {
        assert!(toml::from_str::<Plan>("memory = \"lots\"\nnumproc = 5").is_err());
        assert!(toml::from_str::<Plan>("memory = \"1G\"\nnumproc = \"none\"").is_err());
        assert!(toml::from_str::<Plan>("memory = \"1G\"\nnumproc = -1").is_err());
    }

    #[test]
    fn parses_from_the_command_line() {
        let size = |s: &str| Limit::parse(s, Size::parse);
        assert_eq!(size("unlimited").ok(), Some(Limit::Unlimited));
        assert_eq!(size("512M").ok(), Some(Limit::Max(Size(512 << 20))));
        assert!(size("unlimitedish").is_err());
        assert_eq!(
            size("512M").map(|l| l.to_string()).ok().as_deref(),
            Some("512M")
        );
        assert_eq!(
            Limit::<Size>::Unlimited.to_string(),
            UNLIMITED,
            "printed as written"
        );
    }
}

//! Opt-in features a VE may be given (`kennel create --features`). Each
//! one widens what a VE can reach, for a reason customers ask for; each
//! risk is documented in docs/SECURITY.md ("Opt-in features").

use std::collections::BTreeSet;

use serde::{Deserialize, Serialize};

/// One opt-in feature.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Feature {
    /// `/dev/net/tun` inside: VPNs (OpenVPN, WireGuard-go, tailscale).
    Tun,
    /// `/dev/fuse` inside: FUSE mounts (sshfs, rclone).
    Fuse,
    /// Containers inside the VE: an unmasked procfs and sysfs beside the
    /// masked ones, so that nested PID and network namespaces can mount
    /// their own.
    Nesting,
    /// The kernel keyring system calls (`add_key`, `keyctl`,
    /// `request_key`), denied by default.
    Keyring,
}

impl Feature {
    pub const ALL: [Feature; 4] = [
        Feature::Tun,
        Feature::Fuse,
        Feature::Nesting,
        Feature::Keyring,
    ];

    pub fn name(self) -> &'static str {
        match self {
            Feature::Tun => "tun",
            Feature::Fuse => "fuse",
            Feature::Nesting => "nesting",
            Feature::Keyring => "keyring",
        }
    }

    pub fn parse(s: &str) -> Option<Self> {
        Feature::ALL.into_iter().find(|f| f.name() == s)
    }
}

/// The set of features a VE has.
#[derive(Debug, Clone, Default, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(transparent)]
pub struct Features(pub BTreeSet<Feature>);

impl Features {
    pub fn has(&self, f: Feature) -> bool {
        self.0.contains(&f)
    }

    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    /// `tun,fuse` (or `none`).
    pub fn to_list(&self) -> String {
        if self.0.is_empty() {
            return "none".into();
        }
        self.0
            .iter()
            .map(|f| f.name())
            .collect::<Vec<_>>()
            .join(",")
    }

    /// Parses `tun,fuse,...` or `none`; the error names the bad entry.
    pub fn parse_list(s: &str) -> Result<Self, UnknownFeature> {
        let mut set = BTreeSet::new();
        if s.trim() == "none" {
            return Ok(Features(set));
        }
        for part in s.split(',').map(str::trim) {
            set.insert(Feature::parse(part).ok_or_else(|| UnknownFeature(part.to_string()))?);
        }
        Ok(Features(set))
    }
}

/// A feature list named something that is no feature.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("unknown feature '{0}': use a comma-separated list of {names}, or none", names = Feature::ALL.map(Feature::name).join(", "))]
pub struct UnknownFeature(pub String);

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lists_round_trip() {
        let f = Features::parse_list("tun, fuse,tun").expect("parse");
        assert_eq!(f.to_list(), "tun,fuse");
        assert_eq!(Features::parse_list(&f.to_list()).expect("again"), f);
        assert!(Features::parse_list("none").expect("none").is_empty());
        let e = Features::parse_list("tun,bogus").expect_err("bogus");
        assert_eq!(e, UnknownFeature("bogus".into()));
        assert!(
            e.to_string().starts_with("unknown feature 'bogus': use"),
            "{e}"
        );
        assert!(Features::parse_list("").is_err());
    }
}

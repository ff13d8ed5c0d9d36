//! The manifest (first member) and the end record (last member).
//!
//! Both are typed structs with an explicit shape, so a reader refuses a
//! field it does not know (`deny_unknown_fields`) instead of carrying
//! opaque JSON around: what a backup says about itself is exactly what
//! these types can hold. The two fields the caller supplies (`ve_conf`,
//! `template`) are opaque to this crate but typed all the same.
//!
//! Fields added after the first release carry `#[serde(default)]`, so a
//! backup written before them still parses (strictness is about fields a
//! reader does not know, not about fields a writer did not know yet), and
//! are left out when they hold their default, so a backup that does not
//! use them still reads with an older kennel.

use serde::{Deserialize, Serialize};
use uuid::Uuid;

use super::format::FORMAT_VERSION;

/// What a backup says about itself.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct BackupManifest {
    /// [`FORMAT_VERSION`].
    pub format: u32,
    #[serde(with = "uuid_text")]
    pub id: Uuid,
    /// RFC 3339, UTC.
    pub created: String,
    pub kind: BackupKind,
    /// The backup this one is an increment on; set exactly for incrementals.
    pub base: Option<BaseRef>,
    /// The VE's configuration file, as the caller gave it.
    pub ve_conf: String,
    pub template: TemplateRef,
    /// The stream also holds the template's tree (`template/...`
    /// members), for a host that lacks it. Absent in backups made without
    /// it, and in backups made before the field existed: it is written
    /// only when true, so such a backup still reads with an older kennel.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub template_included: bool,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum BackupKind {
    Full,
    Incremental,
}

/// The backup an incremental builds on.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct BaseRef {
    #[serde(with = "uuid_text")]
    pub id: Uuid,
    /// The base's file name when this backup was made (a hint for humans
    /// and tools; the chain is checked by id).
    pub file: String,
}

/// The template the VE's layer lies on, as the caller names it.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TemplateRef {
    pub name: String,
    pub digest: String,
}

impl BackupManifest {
    /// Whether kind and base agree, and the version is this one.
    pub(crate) fn check(&self) -> Result<(), String> {
        if self.format != FORMAT_VERSION {
            return Err(format!(
                "format version {} (this kennel reads version {FORMAT_VERSION})",
                self.format
            ));
        }
        match (self.kind, &self.base) {
            (BackupKind::Full, None) | (BackupKind::Incremental, Some(_)) => Ok(()),
            (BackupKind::Full, Some(_)) => Err("a full backup that names a base".into()),
            (BackupKind::Incremental, None) => Err("an incremental backup without a base".into()),
        }
    }
}

/// The last member.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct EndRecord {
    #[serde(with = "uuid_text")]
    pub id: Uuid,
    /// Members before this one (PAX headers are part of their member).
    pub members: u64,
    /// Bytes of file data the layer members hold.
    pub layer_bytes: u64,
    /// SHA-256 (hex) of every byte of the tar stream before this member.
    pub sha256: String,
}

/// A uuid as its hyphenated text.
mod uuid_text {
    use serde::{Deserialize, Deserializer, Serializer};
    use uuid::Uuid;

    pub fn serialize<S: Serializer>(id: &Uuid, s: S) -> Result<S::Ok, S::Error> {
        s.collect_str(&id.hyphenated())
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Uuid, D::Error> {
        let text = String::deserialize(d)?;
        Uuid::parse_str(&text).map_err(serde::de::Error::custom)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn manifest() -> BackupManifest {
        BackupManifest {
            format: FORMAT_VERSION,
            id: Uuid::new_v4(),
            created: "2025-01-02T03:04:05Z".into(),
            kind: BackupKind::Incremental,
            base: Some(BaseRef {
                id: Uuid::new_v4(),
                file: "101-full.kbk".into(),
            }),
            ve_conf: "hostname = \"a\"\n".into(),
            template: TemplateRef {
                name: "debian-12".into(),
                digest: "sha256:00".into(),
            },
            template_included: false,
        }
    }

    #[test]
    fn the_template_flag_is_optional_and_written_only_when_set() {
        let mut m = manifest();
        let text = serde_json::to_string(&m).expect("json");
        assert!(!text.contains("template_included"), "{text}");
        // A backup from before the field: no such key.
        let back: BackupManifest = serde_json::from_str(&text).expect("parse");
        assert!(!back.template_included);
        m.template_included = true;
        let text = serde_json::to_string(&m).expect("json");
        assert!(text.contains("\"template_included\":true"), "{text}");
        let back: BackupManifest = serde_json::from_str(&text).expect("parse");
        assert_eq!(back, m);
        let wrong = text.replace("\"template_included\":true", "\"template_included\":1");
        assert!(serde_json::from_str::<BackupManifest>(&wrong).is_err());
    }

    #[test]
    fn manifests_round_trip_and_are_strict() {
        let m = manifest();
        let text = serde_json::to_string(&m).expect("json");
        assert!(text.contains("\"kind\":\"incremental\""), "{text}");
        let back: BackupManifest = serde_json::from_str(&text).expect("parse");
        assert_eq!(back, m);
        assert!(back.check().is_ok());
        let extra = text.replacen('{', "{\"meta\":1,", 1);
        assert!(serde_json::from_str::<BackupManifest>(&extra).is_err());
        let bad_id = text.replace(&m.id.to_string(), "not-a-uuid");
        assert!(serde_json::from_str::<BackupManifest>(&bad_id).is_err());
    }

    #[test]
    fn kind_and_base_must_agree() {
        let mut m = manifest();
        m.kind = BackupKind::Full;
        assert!(m.check().is_err());
        m.base = None;
        assert!(m.check().is_ok());
        m.format = 2;
        assert!(m.check().is_err());
    }
}

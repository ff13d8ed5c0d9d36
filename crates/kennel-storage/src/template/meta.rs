//! `template.toml`: what a template is and where it came from.

use std::fs;
use std::path::Path;

use serde::{Deserialize, Serialize};

use crate::error::{io_err, Result, StorageError};
use crate::init_kind::InitKind;

pub(crate) const FILE: &str = "template.toml";

/// Metadata of a template.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct TemplateMeta {
    pub name: String,
    /// RFC 3339 time of creation.
    pub created: String,
    /// Human-readable origin (`busybox-static 1.35.0`, `debootstrap bookworm ...`).
    pub source: String,
    /// The init system found at /sbin/init.
    pub init: InitKind,
    /// Bytes on disk and number of entries in the tree.
    pub size_bytes: u64,
    pub entries: u64,
    /// `PRETTY_NAME` from the tree's os-release, if any.
    #[serde(default)]
    pub os: String,
    /// [`super::digest::tree_digest`] of the tree; empty for templates
    /// made before digests (computed at their first backup).
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub digest: String,
}

impl TemplateMeta {
    pub(crate) fn load(path: &Path) -> Result<Self> {
        let text = fs::read_to_string(path).map_err(io_err("read", path))?;
        toml::from_str(&text).map_err(|e| StorageError::Metadata {
            path: path.to_path_buf(),
            reason: e.to_string(),
        })
    }

    pub(crate) fn save(&self, path: &Path) -> Result<()> {
        let text = toml::to_string_pretty(self).map_err(|e| StorageError::Metadata {
            path: path.to_path_buf(),
            reason: e.to_string(),
        })?;
        fs::write(path, text).map_err(io_err("write", path))
    }
}

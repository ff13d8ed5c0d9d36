//! What can be wrong with a backup, each as one line an operator can act on.
//!
//! Readers classify every failure of the stream into one of these, so the
//! CLI can say *truncated* (copy it again), *corrupt* (the bytes changed),
//! *not a Kennel backup* (wrong file) or *chain broken* (wrong order or a
//! missing increment) without parsing messages. Reasons that quote the
//! stream go through [`crate::shown`] first: none holds a newline.

use std::path::PathBuf;

#[derive(Debug, thiserror::Error)]
pub enum BackupError {
    /// The stream ended (at a frame boundary or inside one) before its end
    /// record.
    #[error("the backup is truncated: it ends before its end record")]
    Truncated,
    /// The bytes are not the ones written: a zstd checksum, a tar header,
    /// the end record's hash or counts do not match.
    #[error("the backup is corrupt: {0}")]
    Corrupt(String),
    /// Not zstd, not tar, or no Kennel manifest first.
    #[error("not a Kennel backup: {0}")]
    Foreign(String),
    /// A Kennel backup of another format version.
    #[error("the backup is format version {0}; this kennel reads version 1")]
    Version(u32),
    /// Backups given to a restore are not one chain in order.
    #[error("the backup chain is broken: {0}")]
    Chain(String),
    /// A template was asked of a backup made without one.
    #[error("the backup holds no template (it was made without --with-template)")]
    NoTemplate,
    /// The tree to back up cannot be read.
    #[error("cannot back up {path}: {reason}")]
    Tree { path: PathBuf, reason: String },
}

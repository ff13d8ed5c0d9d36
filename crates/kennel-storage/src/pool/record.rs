//! The pool's record, `<lib>/storage.json`: written before anything of the
//! pool is made, so that whatever happens next (a crash in mkfs, a failed
//! mount) the next command knows what there is to finish or remove, and a
//! later change of `kennel.toml` never strands an existing pool.

use std::fs;
use std::io::Write;
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use crate::error::{io_err, Result, StorageError};

/// Where the pool's filesystem comes from.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "lowercase")]
pub enum PoolSource {
    /// A directory on a filesystem that has reflinks (XFS, btrfs).
    Dir,
    /// A sparse XFS image in the state root, on a loop device.
    Loop { image: PathBuf, size: u64 },
    /// An XFS filesystem Kennel made on a block device the operator named.
    Device { device: PathBuf },
}

// No `deny_unknown_fields`: serde cannot have it with `flatten`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PoolRecord {
    /// The directory that holds the VEs' volumes (a mount point unless
    /// the source is `dir`).
    pub path: PathBuf,
    #[serde(flatten)]
    pub source: PoolSource,
    /// False until the pool is made: a record that says `false` is a
    /// pool whose making was cut short.
    pub ready: bool,
}

impl PoolRecord {
    pub fn load(file: &Path) -> Result<Option<PoolRecord>> {
        let text = match fs::read_to_string(file) {
            Ok(t) => t,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
            Err(e) => return Err(io_err("read", file)(e)),
        };
        serde_json::from_str(&text).map(Some).map_err(|e| {
            StorageError::Layer(format!(
                "the pool record {} is unreadable ({e}): restore it, or remove it and the pool by hand",
                file.display()
            ))
        })
    }

    /// Writes the record atomically (a temporary file, synced, renamed).
    pub fn save(&self, file: &Path) -> Result<()> {
        let tmp = file.with_extension("json.tmp");
        let text = serde_json::to_string_pretty(self)
            .map_err(|e| StorageError::Layer(format!("encode the pool record: {e}")))?;
        let mut f = fs::File::create(&tmp).map_err(io_err("create", &tmp))?;
        f.write_all(text.as_bytes())
            .and_then(|()| f.sync_all())
            .map_err(io_err("write", &tmp))?;
        fs::rename(&tmp, file).map_err(io_err("rename", &tmp))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn record_round_trips() {
        let r = PoolRecord {
            path: "/var/lib/kennel/pool".into(),
            source: PoolSource::Loop {
                image: "/var/lib/kennel/pool.img".into(),
                size: 5 << 30,
            },
            ready: true,
        };
        let text = serde_json::to_string(&r).unwrap_or_default();
        assert!(text.contains("\"kind\":\"loop\""), "{text}");
        let back: PoolRecord = serde_json::from_str(&text).unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(back, r);
    }
}

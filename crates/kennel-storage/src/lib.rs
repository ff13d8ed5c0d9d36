//! Kennel's storage: OS templates and the per-VE layers built on them.
//!
//! * [`template`]: the template store, and the three ways a template is
//!   made (busybox from the host, debootstrap, import of an untrusted
//!   tarball through [`unpack`]).
//! * [`layers`]: a VE's own writable layer (overlayfs upper and work
//!   directories) and the mount that puts it over the shared, read-only,
//!   idmapped template tree.
//!
//! A template is unpacked once and never written again; VEs only ever add
//! files to their own upper layer, so creating a VE copies nothing and VEs
//! of one template share its page cache.

pub mod backup;
mod blockmount;
mod error;
pub mod init_kind;
pub mod layers;
pub mod pool;
pub mod prune;
pub mod remove;
pub mod shown;
pub mod staging;
pub mod template;
mod tools;
mod tree;
mod units;
pub mod unpack;
mod util;
pub mod volume;

pub use error::{Result, StorageError};
pub use init_kind::InitKind;

/// Where tests make their trees: `KENNEL_TEST_DIR` (the cgroup v2 VM's
/// writable ext4) or `/var/tmp` (a disk filesystem with sparse files and
/// `trusted.*` attributes, unlike some `/tmp`s).
#[cfg(test)]
pub(crate) fn test_dir() -> std::path::PathBuf {
    let dir = std::env::var_os("KENNEL_TEST_DIR")
        .map(std::path::PathBuf::from)
        .unwrap_or_else(|| "/var/tmp".into());
    let _ = std::fs::create_dir_all(&dir);
    dir
}

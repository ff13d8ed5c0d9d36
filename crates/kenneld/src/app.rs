//! The service's shared state: one per process, behind an `Arc`.

use std::sync::Arc;

use kennel_ve::Kennel;

use crate::access::slots::Slots;
use crate::access::Access;
use crate::audit::Audit;
use crate::backend::{Changes, KennelCli, Workers};
use crate::error::{ApiError, ApiResult};
use crate::events::EventLog;
use crate::jobs::Jobs;

/// Backups kept of one VE at most, by default (`--backups-per-ve`).
pub const BACKUPS_PER_VE: u16 = 16;

/// Snapshots kept of one VE at most, by default (`--snapshots-per-ve`).
pub const SNAPSHOTS_PER_VE: u16 = 8;

/// What the service was told at its start.
#[derive(Debug, Clone)]
pub struct Settings {
    /// `/metrics` answers without a token to clients on loopback (the
    /// host itself); everyone else shows a token.
    pub metrics_open_on_loopback: bool,
    /// Where backups made through the API are kept (`--backup-dir`):
    /// the service's own directory, mode 0700, made on demand.
    pub backup_dir: std::path::PathBuf,
    /// The largest template tarball taken (`--max-upload`).
    pub max_upload: u64,
    /// Backups kept at most of one VE (`--backups-per-ve`): without a
    /// bound, one tenant's operator could fill the backup directory's
    /// filesystem and stop every other tenant's backups.
    pub backups_per_ve: usize,
    /// Snapshots a VE may have at most, taken through the API
    /// (`--snapshots-per-ve`). A snapshot is a reflink copy in the pool
    /// every disk shares: each one lets the VE hold up to its disk's size
    /// more of the pool by rewriting its files, so without a bound one
    /// tenant could fill the pool under every other tenant's disks.
    pub snapshots_per_ve: usize,
}

#[derive(Debug)]
pub struct App {
    /// Reads (list, status, counters) are done here, in-process, on
    /// blocking threads; nothing that forks is (see `backend`).
    pub kennel: Arc<Kennel>,
    pub cli: KennelCli,
    pub workers: Arc<Workers>,
    /// Changes in flight: one per VE, a bound over all.
    pub changes: Arc<Changes>,
    /// Backups in flight: one per VE, a few over all.
    pub backups: Arc<Changes>,
    pub access: Access,
    pub audit: Audit,
    pub events: Arc<EventLog>,
    pub jobs: Arc<Jobs>,
    /// Seals the event positions a tenant sees.
    pub cursors: crate::events::cursor::CursorKey,
    /// Event streams and terminal sessions held open, per token.
    pub slots: Arc<Slots>,
    pub settings: Settings,
}

pub type AppState = Arc<App>;

impl App {
    /// Runs `read` on the library on a blocking thread.
    pub async fn read<T, F>(&self, read: F) -> ApiResult<T>
    where
        T: Send + 'static,
        F: FnOnce(&Kennel) -> Result<T, kennel_ve::VeError> + Send + 'static,
    {
        let k = Arc::clone(&self.kennel);
        tokio::task::spawn_blocking(move || read(&k))
            .await
            .map_err(|e| ApiError::internal(format!("a read failed: {e}")))?
            .map_err(ApiError::from)
    }
}

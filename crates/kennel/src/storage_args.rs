//! The grammar of the storage commands: the pool, disks, snapshots,
//! backups, clones, reinstalls and renames (docs/STORAGE.md).

use std::path::PathBuf;

use clap::{Args, Subcommand};

/// A new VE's disk (`create`).
#[derive(Debug, Args, Default)]
pub struct DiskArgs {
    /// The VE's disk size, e.g. 20G (default 10G; `[storage] disk` in kennel.toml).
    #[arg(long, value_name = "SIZE")]
    pub disk: Option<String>,
    /// Inodes on the VE's disk, e.g. 2M (default one per 16K of disk).
    #[arg(long, value_name = "N")]
    pub disk_inodes: Option<String>,
    /// Where the VE's files live: image (a disk of its own; the default) or dir (no quota, no snapshots).
    #[arg(long, value_name = "BACKEND")]
    pub storage: Option<String>,
}

/// A disk change (`set`).
#[derive(Debug, Args, Default)]
pub struct SetDiskArgs {
    /// The disk's new size: grown at once on a running VE, shrunk while it is stopped.
    #[arg(long, value_name = "SIZE")]
    pub disk: Option<String>,
    /// Inodes (fixed when the disk is made; they grow with --disk).
    #[arg(long, value_name = "N")]
    pub disk_inodes: Option<String>,
}

#[derive(Debug, Subcommand)]
pub enum StorageCommand {
    /// Make the storage pool (idempotent): a loop-mounted XFS image in the
    /// state root, or the pool directory itself where its filesystem has
    /// reflinks, or XFS on an empty block device.
    Init {
        /// The loop pool's size (default a fifth of the free space, 5G-30G).
        #[arg(long, value_name = "SIZE")]
        size: Option<String>,
        /// Make the pool on this empty block device instead.
        #[arg(long, value_name = "DEVICE")]
        device: Option<PathBuf>,
    },
    /// Take the pool down (unmount it, remove its image); no VE may have a disk in it.
    Remove,
    /// Show the pool: where, its size, use, and the VEs' disks in it.
    Info {
        #[arg(long)]
        json: bool,
    },
}

#[derive(Debug, Subcommand)]
pub enum SnapshotCommand {
    /// Snapshot a VE's disk; a running VE is frozen for milliseconds (it says how long).
    Create { id: String, name: String },
    /// List a VE's snapshots.
    List {
        id: String,
        #[arg(long)]
        json: bool,
    },
    /// Make the VE's disk what the snapshot holds (a running VE is stopped and started again).
    Rollback {
        id: String,
        name: String,
        /// Seconds a running VE gets to shut down cleanly.
        #[arg(long, default_value_t = 30)]
        timeout: u64,
    },
    /// Mount the VE's tree as it was at the snapshot, read-only, on an empty directory.
    Mount {
        id: String,
        name: String,
        dir: PathBuf,
    },
    /// Unmount a snapshot mounted with `snapshot mount`.
    Umount { id: String, name: String },
    /// Delete a snapshot.
    Delete { id: String, name: String },
}

/// `kennel backup ID FILE` or `kennel backup verify FILE`.
#[derive(Debug, Args)]
#[command(args_conflicts_with_subcommands = true)]
pub struct BackupArgs {
    #[command(subcommand)]
    pub verify: Option<BackupCommand>,
    /// The VE to back up.
    pub id: Option<String>,
    /// Where the backup goes; `-` for standard output.
    pub file: Option<String>,
    /// Incremental: only what changed since this earlier backup of the VE.
    #[arg(long, value_name = "BACKUP")]
    pub since: Option<PathBuf>,
    /// Include the VE's template, for a host that lacks it.
    #[arg(long)]
    pub with_template: bool,
}

#[derive(Debug, Subcommand)]
pub enum BackupCommand {
    /// Check a backup (and, for an incremental, that its base is beside it).
    Verify { file: PathBuf },
}

#[derive(Debug, Args)]
pub struct RestoreArgs {
    /// The backup (the last of a chain; its bases are found beside it), or `-` for standard input (a full backup).
    pub file: String,
    /// The new VE's id.
    pub id: String,
    /// The new VE's hostname (default: the backed-up VE's).
    #[arg(long)]
    pub hostname: Option<String>,
    /// The new VE's disk size (default: the backed-up VE's, at most the pool's size).
    #[arg(long, value_name = "SIZE")]
    pub disk: Option<String>,
    /// Also take the backed-up VE's limits, features, interfaces, addresses (if no VE here has
    /// them) and its template (if carried and missing here) from the backup (a backup is
    /// untrusted input: only for backups you made yourself).
    #[arg(long)]
    pub trust_config: bool,
}

#[derive(Debug, Args)]
pub struct CloneArgs {
    pub id: String,
    pub new_id: String,
    /// The copy's hostname (default: the new id).
    #[arg(long)]
    pub hostname: Option<String>,
}

#[derive(Debug, Args)]
pub struct ReinstallArgs {
    pub id: String,
    /// Paths to carry over from the old files, comma-separated (e.g. /root,/home).
    #[arg(long, value_name = "PATHS")]
    pub keep: Option<String>,
    /// Seconds a running VE gets to shut down cleanly.
    #[arg(long, default_value_t = 30)]
    pub timeout: u64,
}

#[derive(Debug, Args)]
pub struct RenameArgs {
    pub id: String,
    pub new_id: String,
}

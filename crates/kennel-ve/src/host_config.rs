//! Host-wide settings in `<lib>/kennel.toml` (all optional).
//!
//! ```toml
//! # First host uid/gid given to VEs, and how many VEs may get a range.
//! idmap_base = 100000000
//! idmap_ranges = 60000
//! # Where VE cgroups go below each hierarchy's root (e.g. a Delegate=yes
//! # unit's cgroup on a systemd host: "system.slice/kennel.service").
//! cgroup_parent = "kennel"
//! # Bounds on one `kennel template import` (unpacked file contents, and
//! # members of the archive).
//! import_max_size = "64G"
//! import_max_entries = 4000000
//!
//! [network]
//! # Where the LAN is told that routed VE addresses are here (proxy ARP
//! # and NDP): "detect" (the interface the host routes the address
//! # through), "none", or interface names.
//! neighbour_devs = ["detect"]
//! ```

use std::fs;
use std::io;

use serde::Deserialize;

use crate::error::{Result, VeError};
use crate::paths::Paths;
use crate::units::Size;

/// Ids per VE: a full 16-bit range, as every distribution expects.
pub const IDS_PER_VE: u32 = 65536;
pub const DEFAULT_IDMAP_BASE: u32 = 100_000_000;
pub const DEFAULT_IDMAP_RANGES: u32 = 60_000;

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct HostConfig {
    #[serde(default = "default_base")]
    pub idmap_base: u32,
    #[serde(default = "default_ranges")]
    pub idmap_ranges: u32,
    #[serde(default)]
    pub cgroup_parent: Option<String>,
    #[serde(default)]
    pub import_max_size: Option<Size>,
    #[serde(default)]
    pub import_max_entries: Option<u64>,
    #[serde(default)]
    pub network: kennel_net::HostNet,
}

fn default_base() -> u32 {
    DEFAULT_IDMAP_BASE
}

fn default_ranges() -> u32 {
    DEFAULT_IDMAP_RANGES
}

impl HostConfig {
    pub fn load(paths: &Paths) -> Result<Self> {
        let p = paths.host_config();
        let cfg: HostConfig = match fs::read_to_string(&p) {
            Ok(t) => toml::from_str(&t)
                .map_err(|e| VeError::BadInput(format!("{}: {e}", p.display())))?,
            Err(e) if e.kind() == io::ErrorKind::NotFound => {
                toml::from_str("").map_err(|e| VeError::BadInput(e.to_string()))?
            }
            Err(e) => return Err(crate::error::io(format!("read {}", p.display()))(e)),
        };
        let end = cfg.idmap_base as u64 + cfg.idmap_ranges as u64 * IDS_PER_VE as u64;
        if cfg.idmap_base < IDS_PER_VE || end > u32::MAX as u64 {
            return Err(VeError::BadInput(format!(
                "{}: idmap_base must be at least {IDS_PER_VE} and idmap_base + idmap_ranges * {IDS_PER_VE} must stay below 2^32",
                p.display()
            )));
        }
        Ok(cfg)
    }

    /// What a tarball import may unpack to.
    pub fn unpack_limits(&self) -> kennel_storage::unpack::UnpackLimits {
        let d = kennel_storage::unpack::UnpackLimits::default();
        kennel_storage::unpack::UnpackLimits {
            max_bytes: self.import_max_size.map_or(d.max_bytes, Size::bytes),
            max_entries: self.import_max_entries.unwrap_or(d.max_entries),
        }
    }

    pub fn cgroup_parent(&self, paths: &Paths) -> String {
        self.cgroup_parent
            .clone()
            .map(|s| s.trim_matches('/').to_string())
            .filter(|s| !s.is_empty())
            .unwrap_or_else(|| paths.default_cgroup_parent())
    }
}

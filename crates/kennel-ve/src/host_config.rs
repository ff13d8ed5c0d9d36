//! Host-wide settings in `<lib>/kennel.toml` (all optional).
//!
//! ```toml
//! # First host uid/gid given to VEs, and how many VEs may get a range.
//! idmap_base = 100000000
//! idmap_ranges = 31000
//! # Where VE cgroups go below each hierarchy's root (e.g. a Delegate=yes
//! # unit's cgroup on a systemd host: "system.slice/kennel.service").
//! cgroup_parent = "kennel"
//! # Bounds on one `kennel template import` (unpacked file contents, and
//! # members of the archive).
//! import_max_size = "64G"
//! import_max_entries = 4000000
//!
//! # What a VE may use when its own configuration leaves it out (see
//! # docs/RESOURCES.md; "unlimited" only on purpose).
//! [default_plan]
//! memory = "1G"
//! swap = "512M"
//! cpu_limit = "100%"
//! numproc = 512
//!
//! [storage]
//! # Where new VEs' files go: "image" (a disk of its own in the pool, with
//! # its size and inodes; the default) or "dir" (no quota, no snapshots).
//! backend = "image"
//! # The pool (`kennel storage init`): a directory; on a filesystem without
//! # reflinks Kennel puts a loop-mounted XFS image there of `pool_size`
//! # (default a fifth of the free space, 5G-30G).
//! pool = "/var/lib/kennel/pool"
//! pool_size = "30G"
//! # A VE's disk when `create` gives no --disk / --disk-inodes (inodes
//! # default to one per 16K of disk).
//! disk = "10G"
//! disk_inodes = 655360
//!
//! [network]
//! # Where the LAN is told that routed VE addresses are here (proxy ARP
//! # and NDP): "detect" (the interface the host routes the address
//! # through), "none", or interface names.
//! neighbour_devs = ["detect"]
//! # Connections the host tracks for one VE's NAT and port forwards, in
//! # each direction (a new flow beyond is dropped; 0: no bound).
//! nat_conntrack_max = 16384
//! ```

use std::fs;
use std::io;
use std::path::Path;

use kennel_net::model::validate_ifname;
use serde::Deserialize;

use crate::error::{Result, VeError};
use crate::paths::Paths;
use crate::resources::Resources;
use crate::units::Size;

/// Ids per VE: a full 16-bit range, as every distribution expects.
pub const IDS_PER_VE: u32 = 65536;
pub const DEFAULT_IDMAP_BASE: u32 = 100_000_000;
/// As many ranges as fit below 2^31 from the default base.
pub const DEFAULT_IDMAP_RANGES: u32 = 31_000;
/// Where VEs' host ids must end: devpts before Linux 6.x (Debian 12's
/// 6.1 among them) reads its `uid=`/`gid=` options as signed ints, and a
/// VE's devpts gets its host ids there, so a VE above 2^31 could not
/// start on such a kernel.
pub const IDMAP_END: u64 = 1 << 31;

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
    /// Where the host's lxcfs is mounted (default `/var/lib/lxcfs`,
    /// Debian's); `"none"`: never bind it.
    #[serde(default)]
    pub lxcfs_dir: Option<String>,
    /// Resources for what a VE's configuration leaves out, over
    /// [`Resources::builtin_plan`].
    #[serde(default)]
    pub default_plan: Resources,
    #[serde(default)]
    pub network: kennel_net::HostNet,
    #[serde(default)]
    pub storage: HostStorage,
}

/// `[storage]`: the pool and new VEs' disks.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct HostStorage {
    #[serde(default)]
    pub backend: Option<String>,
    #[serde(default)]
    pub pool: Option<std::path::PathBuf>,
    #[serde(default)]
    pub pool_size: Option<Size>,
    #[serde(default)]
    pub disk: Option<Size>,
    #[serde(default)]
    pub disk_inodes: Option<u64>,
}

/// A new VE's disk when nothing says otherwise: ample for a distribution
/// and its packages, and sparse, so it costs the pool only what is
/// written.
pub const DEFAULT_DISK: u64 = 10 << 30;
/// Bytes of disk per inode when no count is given (ext4's own default).
pub const BYTES_PER_INODE: u64 = 16 << 10;

fn default_base() -> u32 {
    DEFAULT_IDMAP_BASE
}

fn default_ranges() -> u32 {
    DEFAULT_IDMAP_RANGES
}

impl HostConfig {
    pub fn load(paths: &Paths) -> Result<Self> {
        let p = paths.host_config();
        let text = match fs::read_to_string(&p) {
            Ok(t) => t,
            Err(e) if e.kind() == io::ErrorKind::NotFound => String::new(),
            Err(e) => return Err(crate::error::io(format!("read {}", p.display()))(e)),
        };
        Self::parse(&text, &p)
    }

    /// Checks `text` as the host's settings; `p` names the file in errors.
    /// [`HostConfig::load`] without the file (the fuzz targets).
    pub fn parse(text: &str, p: &Path) -> Result<Self> {
        let cfg: HostConfig =
            toml::from_str(text).map_err(|e| VeError::BadInput(format!("{}: {e}", p.display())))?;
        let end = cfg.idmap_base as u64 + cfg.idmap_ranges as u64 * IDS_PER_VE as u64;
        if cfg.idmap_base < IDS_PER_VE || end > IDMAP_END {
            return Err(VeError::BadInput(format!(
                "{}: idmap_base must be at least {IDS_PER_VE} and idmap_base + idmap_ranges * {IDS_PER_VE} must stay below 2^31 (2147483648: older kernels' devpts takes no higher id)",
                p.display()
            )));
        }
        if let Some(cg) = &cfg.cgroup_parent {
            // Relative to each hierarchy's root, and below it: plain names.
            let rel = cg.trim_matches('/');
            let plain = |c: &str| !matches!(c, "" | "." | "..") && !c.contains(char::is_control);
            if !rel.is_empty() && !rel.split('/').all(plain) {
                return Err(VeError::BadInput(format!(
                    "{}: invalid cgroup_parent {cg:?}: give a path below the cgroup root of plain names, without '.', '..' or empty parts (e.g. \"kennel\")",
                    p.display()
                )));
            }
        }
        if let Some(d) = cfg.lxcfs_dir.as_deref() {
            if d != "none" && !d.starts_with('/') {
                return Err(VeError::BadInput(format!(
                    "{}: lxcfs_dir {d:?} must be an absolute path (or \"none\")",
                    p.display()
                )));
            }
        }
        cfg.default_plan
            .validate()
            .map_err(|e| VeError::BadInput(format!("{}: [default_plan]: {e}", p.display())))?;
        if let Some(b) = cfg.storage.backend.as_deref() {
            crate::config::Backend::parse(b)
                .map_err(|e| VeError::BadInput(format!("{}: [storage]: {e}", p.display())))?;
        }
        if let Some(pool) = &cfg.storage.pool {
            if !pool.is_absolute() {
                return Err(VeError::BadInput(format!(
                    "{}: [storage] pool {} must be an absolute path",
                    p.display(),
                    pool.display()
                )));
            }
        }
        for d in &cfg.network.neighbour_devs {
            if d != "detect" && d != "none" {
                validate_ifname(d, "neighbour_devs interface")
                    .map_err(|e| VeError::BadInput(format!("{}: {e}", p.display())))?;
            }
        }
        Ok(cfg)
    }

    /// The host's plan: `[default_plan]` over Kennel's own defaults.
    pub fn plan(&self) -> Resources {
        self.default_plan.over(&Resources::builtin_plan())
    }

    /// Where lxcfs would be mounted, unless the host said `none`.
    pub fn lxcfs_dir(&self) -> Option<std::path::PathBuf> {
        match self.lxcfs_dir.as_deref() {
            Some("none") => None,
            Some(d) => Some(d.into()),
            None => Some("/var/lib/lxcfs".into()),
        }
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

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(text: &str) -> Result<HostConfig> {
        HostConfig::parse(text, Path::new("kennel.toml"))
    }

    #[test]
    fn defaults_and_documented_values() {
        let d = parse("").expect("empty");
        assert_eq!(d.idmap_base, DEFAULT_IDMAP_BASE);
        let end = u64::from(d.idmap_base) + u64::from(d.idmap_ranges) * u64::from(IDS_PER_VE);
        assert!(end <= IDMAP_END, "the default grid ends below 2^31");
        let c = parse("cgroup_parent = \"/system.slice/kennel.service/\"\n[network]\nneighbour_devs = [\"eth0\", \"none\"]")
            .expect("parse");
        assert_eq!(
            c.cgroup_parent(&Paths::new(None)),
            "system.slice/kennel.service"
        );
    }

    /// Ids from 2^31 up break VEs' devpts on older kernels (found by the
    /// cgroup v2 VM's 6.1 kernel).
    #[test]
    fn id_ranges_end_below_2_to_the_31() {
        assert!(parse("idmap_base = 2000000000\nidmap_ranges = 16").is_ok());
        let err = parse("idmap_base = 3000000000\nidmap_ranges = 16").expect_err("above 2^31");
        assert!(err.to_string().contains("below 2^31"), "{err}");
        assert!(parse("idmap_base = 100000000\nidmap_ranges = 60000").is_err());
    }

    /// Found by fuzzing: names the rest of Kennel cannot use were taken.
    #[test]
    fn refuses_unusable_names() {
        for bad in [
            "cgroup_parent = \"d//l\"",
            "cgroup_parent = \"../../x\"",
            "cgroup_parent = \"a/./b\"",
            "[network]\nneighbour_devs = [\"detrk]\"]",
            "[network]\nneighbour_devs = [\"\"]",
        ] {
            assert!(parse(bad).is_err(), "{bad}");
        }
    }
}

//! `kennel.toml`: the host's settings (id ranges, cgroup parent, import
//! limits, proxy neighbour interfaces).

use std::path::Path;

use kennel_net::model::validate_ifname;
use kennel_ve::host_config::{HostConfig, IDS_PER_VE};
use kennel_ve::paths::Paths;

/// The input is the whole file.
pub fn run(data: &[u8]) {
    let Some(text) = crate::text(data) else {
        return;
    };
    let Ok(cfg) = HostConfig::parse(text, Path::new("kennel.toml")) else {
        return;
    };
    // Every VE's range lies above the host's own ids and below 2^31.
    let end = u64::from(cfg.idmap_base) + u64::from(cfg.idmap_ranges) * u64::from(IDS_PER_VE);
    assert!(
        cfg.idmap_base >= IDS_PER_VE && end <= 1 << 31,
        "accepted id ranges {} + {} * {IDS_PER_VE}",
        cfg.idmap_base,
        cfg.idmap_ranges
    );
    // The cgroup parent stays below each hierarchy's root: a relative path
    // of plain names.
    let parent = cfg.cgroup_parent(&Paths::new(None));
    assert!(
        !parent.is_empty()
            && parent
                .split('/')
                .all(|c| !matches!(c, "" | "." | "..") && !c.contains(char::is_control)),
        "accepted cgroup_parent {:?} (used as {parent:?})",
        cfg.cgroup_parent
    );
    // Proxy neighbour interfaces: `detect`, `none` or interface names.
    for d in &cfg.network.neighbour_devs {
        assert!(
            d == "detect" || d == "none" || validate_ifname(d, "interface").is_ok(),
            "accepted neighbour_devs entry {d:?}"
        );
    }
    // The import limits read back as what was written.
    let limits = cfg.unpack_limits();
    if let Some(s) = cfg.import_max_size {
        assert_eq!(limits.max_bytes, s.bytes());
    }
}

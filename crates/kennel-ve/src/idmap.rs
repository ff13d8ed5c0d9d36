//! Each VE's own range of 65,536 host ids, so that root in one VE is
//! nobody on the host and nobody in any other VE.
//!
//! Ranges are recorded in each VE's configuration; allocation takes the
//! host lock and picks the lowest free range.

use std::collections::BTreeSet;

use crate::config::IdRange;
use crate::error::{Result, VeError};
use crate::host_config::{HostConfig, IDS_PER_VE};

/// Picks the lowest range not in `used` (uid bases of existing VEs).
pub fn allocate(host: &HostConfig, used: &[IdRange]) -> Result<IdRange> {
    let taken: BTreeSet<u32> = used.iter().map(|r| r.uid_base).collect();
    for i in 0..host.idmap_ranges {
        let base = host.idmap_base + i * IDS_PER_VE;
        if !taken.contains(&base) && !overlaps(base, used) {
            return Ok(IdRange {
                uid_base: base,
                gid_base: base,
                size: IDS_PER_VE,
            });
        }
    }
    Err(VeError::HostUnsupported(format!(
        "all {} id ranges are in use: raise idmap_ranges in kennel.toml",
        host.idmap_ranges
    )))
}

fn overlaps(base: u32, used: &[IdRange]) -> bool {
    let (a0, a1) = (base as u64, base as u64 + IDS_PER_VE as u64);
    used.iter().any(|r| {
        let (b0, b1) = (r.uid_base as u64, r.uid_base as u64 + r.size as u64);
        a0 < b1 && b0 < a1
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn host() -> HostConfig {
        HostConfig {
            idmap_base: 100_000,
            idmap_ranges: 3,
            cgroup_parent: None,
            import_max_size: None,
            import_max_entries: None,
            lxcfs_dir: None,
            default_plan: Default::default(),
            network: kennel_net::HostNet::default(),
            storage: Default::default(),
        }
    }

    fn r(base: u32) -> IdRange {
        IdRange {
            uid_base: base,
            gid_base: base,
            size: IDS_PER_VE,
        }
    }

    #[test]
    fn lowest_free_range() {
        assert_eq!(allocate(&host(), &[]).expect("alloc").uid_base, 100_000);
        assert_eq!(
            allocate(&host(), &[r(100_000)]).expect("alloc").uid_base,
            165_536
        );
        assert_eq!(
            allocate(&host(), &[r(165_536)]).expect("alloc").uid_base,
            100_000
        );
    }

    #[test]
    fn never_overlaps_odd_ranges() {
        // A hand-edited range straddling two slots blocks both.
        let odd = r(100_000 + 30_000);
        assert_eq!(
            allocate(&host(), &[odd]).expect("alloc").uid_base,
            100_000 + 2 * 65_536
        );
    }

    #[test]
    fn exhaustion_is_an_error() {
        assert!(allocate(&host(), &[r(100_000), r(165_536), r(231_072)]).is_err());
    }
}

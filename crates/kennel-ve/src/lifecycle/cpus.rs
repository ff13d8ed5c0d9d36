//! Which host CPUs a VE runs on. `--cpumask` names them; `--cpus N`
//! (fewer than the host has) lets Kennel pick N, the least used by the
//! running VEs' own picks, so that the VE's `nproc` (its affinity mask)
//! and `/proc/cpuinfo` (through lxcfs, its cpuset) say N, as OpenVZ's
//! `cpus` does. Its time is capped at N CPUs too (`Resources::limits`).

use std::collections::BTreeMap;

use kennel_runtime::state::Liveness;

use super::Kennel;
use crate::cpuset::CpuSet;
use crate::id::VeId;
use crate::resources::Resources;

/// The host's online CPUs.
pub(crate) fn online_cpus() -> Option<CpuSet> {
    CpuSet::parse(
        std::fs::read_to_string("/sys/devices/system/cpu/online")
            .ok()?
            .trim(),
    )
    .ok()
}

/// The `n` CPUs of `online` that the fewest VEs are pinned to (`load`:
/// VEs per CPU), lower numbers first among equals.
fn least_used(online: &CpuSet, load: &BTreeMap<u32, usize>, n: usize) -> Vec<u32> {
    let mut cpus: Vec<u32> = online.cpus().collect();
    cpus.sort_by_key(|c| (load.get(c).copied().unwrap_or(0), *c));
    cpus.truncate(n);
    cpus.sort_unstable();
    cpus
}

impl Kennel {
    /// The cpuset VE `id` starts with: its `cpumask`, or for `cpus`
    /// below the host's count that many of the least used CPUs; `None`:
    /// all of them.
    pub(crate) fn cpuset_for(&self, id: &VeId, r: &Resources) -> Option<String> {
        if let Some(mask) = &r.cpumask {
            self.note_pinned(id);
            return Some(mask.to_string());
        }
        let n = r.cpus?.ceil() as usize;
        let online = online_cpus()?;
        if n >= online.len() {
            return None;
        }
        let mut load = BTreeMap::new();
        for other in self.pinned() {
            if &other == id {
                continue;
            }
            let Ok(Some(run)) = self.run_state(&other) else {
                continue;
            };
            let Some(set) = run.cpuset.as_deref().and_then(|s| CpuSet::parse(s).ok()) else {
                continue;
            };
            if !matches!(
                run.liveness(),
                Liveness::Running | Liveness::RunningWithoutMonitor
            ) {
                continue;
            }
            for c in set.cpus() {
                *load.entry(c).or_insert(0) += 1;
            }
        }
        let picked = least_used(&online, &load, n);
        self.note_pinned(id);
        CpuSet::parse(
            &picked
                .iter()
                .map(u32::to_string)
                .collect::<Vec<_>>()
                .join(","),
        )
        .ok()
        .map(|s| s.to_string())
    }
}

impl Kennel {
    /// Where the VEs that were ever given CPUs of their own are noted (an
    /// empty file each), so that a pick reads the run state of those VEs
    /// only, not of every VE.
    fn pinned_dir(&self) -> std::path::PathBuf {
        self.paths.run.join("pinned")
    }

    fn note_pinned(&self, id: &VeId) {
        let dir = self.pinned_dir();
        let _ = std::fs::create_dir_all(&dir);
        let _ = std::fs::File::create(dir.join(id.as_str()));
    }

    /// The VEs noted as pinned; the notes of VEs that are gone are
    /// removed.
    fn pinned(&self) -> Vec<VeId> {
        let Ok(rd) = std::fs::read_dir(self.pinned_dir()) else {
            return Vec::new();
        };
        rd.flatten()
            .filter_map(|e| VeId::parse(&e.file_name().to_string_lossy()).ok())
            .filter(|id| {
                let exists = self.paths.ve_config(id).exists();
                if !exists {
                    let _ = std::fs::remove_file(self.pinned_dir().join(id.as_str()));
                }
                exists
            })
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn picks_the_least_used_cpus() {
        let online = CpuSet::parse("0-3").expect("cpus");
        let load = BTreeMap::from([(0, 2), (1, 0), (2, 1), (3, 0)]);
        assert_eq!(least_used(&online, &load, 2), vec![1, 3]);
        assert_eq!(least_used(&online, &load, 3), vec![1, 2, 3]);
        assert_eq!(least_used(&online, &BTreeMap::new(), 1), vec![0]);
    }
}

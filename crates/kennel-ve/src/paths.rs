//! Where Kennel keeps everything. One root moves all of it (`--root DIR`
//! or `KENNEL_ROOT`): `DIR/lib` and `DIR/run`; the default is
//! `/var/lib/kennel` and `/run/kennel`.
//!
//! ```text
//! <lib>/kennel.toml              host settings (optional)
//! <lib>/templates/<name>/        templates (kennel-storage)
//! <lib>/ve/<id>/ve.conf          a VE's configuration
//! <lib>/ve/<id>/fs/{upper,work}  its own layer
//! <lib>/ve-staging/              VEs being built or deleted (`.ID.tmp-PID`)
//! <lib>/claims/                  what each VE holds alone (`crate::claims`)
//! <lib>/storage.json            the storage pool's record
//! <lib>/pool/<uuid>/disk.img     a VE's disk (the `image` backend) and
//! <lib>/pool/<uuid>/snapshots/   its snapshots
//! <lib>/pool.img                 the pool's own image, where the state
//!                                root's filesystem has no reflinks
//! <lib>/cache/                   downloads (debootstrap packages)
//! <run>/ve/<id>/                 a running VE: state.json, monitor.sock,
//!                                seccomp.bpf, exit.json, mount points
//! <run>/ve/<id>/disk             its disk, mounted while it runs
//! <run>/locks/                   lock files
//! <run>/cgroup-hierarchies       the host's cgroup mounts, checked and reused
//! ```

use std::path::{Path, PathBuf};

use crate::id::VeId;

#[derive(Debug, Clone)]
pub struct Paths {
    pub lib: PathBuf,
    pub run: PathBuf,
    /// True when a custom root is in use (tests, second instances).
    pub custom_root: Option<PathBuf>,
}

impl Paths {
    pub fn new(root: Option<&Path>) -> Self {
        match root {
            Some(r) => Paths {
                lib: r.join("lib"),
                run: r.join("run"),
                custom_root: Some(r.to_path_buf()),
            },
            None => Paths {
                lib: PathBuf::from("/var/lib/kennel"),
                run: PathBuf::from("/run/kennel"),
                custom_root: None,
            },
        }
    }

    pub fn templates(&self) -> PathBuf {
        self.lib.join("templates")
    }

    pub fn ves(&self) -> PathBuf {
        self.lib.join("ve")
    }

    pub fn ve_dir(&self, id: &VeId) -> PathBuf {
        self.ves().join(id.as_str())
    }

    pub fn ve_config(&self, id: &VeId) -> PathBuf {
        self.ve_dir(id).join("ve.conf")
    }

    pub fn ve_layers(&self, id: &VeId) -> PathBuf {
        self.ve_dir(id).join("fs")
    }

    /// Where a starting VE's disk is attached, in the VE's own mount
    /// namespace only (the `image` backend); in the host's, an empty
    /// directory.
    pub fn ve_disk(&self, id: &VeId) -> PathBuf {
        self.ve_run(id).join("disk")
    }

    pub fn storage_record(&self) -> PathBuf {
        self.lib.join("storage.json")
    }

    pub fn default_pool(&self) -> PathBuf {
        self.lib.join("pool")
    }

    pub fn pool_image(&self) -> PathBuf {
        self.lib.join("pool.img")
    }

    /// Scratch mount points (a disk being made, a snapshot being read).
    pub fn scratch(&self, name: &str) -> PathBuf {
        self.run
            .join("scratch")
            .join(format!("{name}-{}", std::process::id()))
    }

    pub fn ve_run(&self, id: &VeId) -> PathBuf {
        self.run.join("ve").join(id.as_str())
    }

    /// The host's cgroup hierarchies as the last command found them
    /// (`kennel_cgroup::Host::detect_cached`).
    pub fn cgroup_hierarchies(&self) -> PathBuf {
        self.run.join("cgroup-hierarchies")
    }

    pub fn locks(&self) -> PathBuf {
        self.run.join("locks")
    }

    pub fn cache(&self) -> PathBuf {
        self.lib.join("cache")
    }

    pub fn host_config(&self) -> PathBuf {
        self.lib.join("kennel.toml")
    }

    /// The default cgroup parent: `kennel` for the default root, and
    /// `kennel-<hash>` for a custom one, so that two roots on one host (a
    /// test suite, say) never share cgroups.
    pub fn default_cgroup_parent(&self) -> String {
        match &self.custom_root {
            None => "kennel".into(),
            Some(r) => format!(
                "kennel-{:08x}",
                fnv1a(r.as_os_str().as_encoded_bytes()) as u32
            ),
        }
    }
}

fn fnv1a(data: &[u8]) -> u64 {
    let mut h: u64 = 0xcbf2_9ce4_8422_2325;
    for b in data {
        h ^= *b as u64;
        h = h.wrapping_mul(0x0100_0000_01b3);
    }
    h
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn roots_get_their_own_cgroups() {
        let a = Paths::new(Some(Path::new("/tmp/a")));
        let b = Paths::new(Some(Path::new("/tmp/b")));
        assert_ne!(a.default_cgroup_parent(), b.default_cgroup_parent());
        assert_eq!(Paths::new(None).default_cgroup_parent(), "kennel");
        assert_eq!(a.lib, Path::new("/tmp/a/lib"));
    }
}

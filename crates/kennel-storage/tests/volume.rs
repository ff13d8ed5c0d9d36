//! A pool and a VE's disk on this host, for real (root): loop devices,
//! ext4 and XFS. Every test takes down what it made.

use std::fs;
use std::path::{Path, PathBuf};

use kennel_storage::pool::{Pool, PoolRequest};
use kennel_storage::volume::{DiskSize, Grown, Volume};

struct Lab {
    dir: PathBuf,
    pool: Pool,
}

impl Lab {
    fn new(tag: &str) -> Lab {
        let base = std::env::var_os("KENNEL_TEST_DIR")
            .map(PathBuf::from)
            .unwrap_or_else(|| PathBuf::from("/var/tmp"));
        let dir = base.join(format!("kennel-storage-test-{tag}-{}", std::process::id()));
        let _ = fs::remove_dir_all(&dir);
        fs::create_dir_all(&dir).unwrap_or_else(|e| panic!("{e}"));
        let (pool, made) = Pool::init(
            &dir.join("storage.json"),
            &PoolRequest {
                path: dir.join("pool"),
                image: dir.join("pool.img"),
                size: Some(2 << 30),
                device: None,
            },
        )
        .unwrap_or_else(|e| panic!("{e}"));
        assert!(made);
        Lab { dir, pool }
    }
}

impl Drop for Lab {
    fn drop(&mut self) {
        let _ = Volume::unmount(&self.dir.join("mnt"));
        let _ = self.pool.take_down(&self.dir.join("storage.json"));
        let _ = fs::remove_dir_all(&self.dir);
    }
}

/// Mounts `vol` detached and attaches it at `at`, as a VE's start does in
/// the VE's namespace.
fn mount(vol: &Volume, at: &Path) {
    fs::create_dir_all(at).unwrap_or_else(|e| panic!("{e}"));
    let mnt = vol
        .mount_detached((100000, 100000))
        .unwrap_or_else(|e| panic!("{e}"));
    rustix::mount::move_mount(
        &mnt,
        "",
        rustix::fs::CWD,
        at,
        rustix::mount::MoveMountFlags::MOVE_MOUNT_F_EMPTY_PATH,
    )
    .unwrap_or_else(|e| panic!("{e}"));
}

fn df(path: &Path) -> (u64, u64) {
    let s = rustix::fs::statvfs(path).unwrap_or_else(|e| panic!("{e}"));
    (s.f_blocks * s.f_frsize, s.f_files)
}

#[test]
fn a_disk_has_its_size_grows_snapshots_and_shrinks() {
    let lab = Lab::new("disk");
    // Idempotent.
    let (_, made) = Pool::init(
        &lab.dir.join("storage.json"),
        &PoolRequest {
            path: lab.dir.join("pool"),
            image: lab.dir.join("pool.img"),
            size: None,
            device: None,
        },
    )
    .unwrap_or_else(|e| panic!("{e}"));
    assert!(!made);
    let vol = Volume::new(lab.pool.volume_dir("v1"));
    let size = DiskSize {
        bytes: 64 << 20,
        inodes: 4096,
    };
    vol.create(size, (100000, 100000), &lab.dir.join("scratch"), None)
        .unwrap_or_else(|e| panic!("{e}"));
    let at = lab.dir.join("mnt");
    mount(&vol, &at);
    // A fresh disk's layer goes to the VE's root at its first mount.
    let md = std::fs::metadata(at.join("upper")).unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(std::os::unix::fs::MetadataExt::uid(&md), 100000);
    let (bytes, inodes) = df(&at);
    assert!(bytes > 50 << 20 && bytes <= 64 << 20, "{bytes}");
    assert!((4096..5000).contains(&inodes), "{inodes}");
    fs::write(at.join("upper/a"), b"before").unwrap_or_else(|e| panic!("{e}"));
    let mut frozen = Vec::new();
    let (meta, taken) = vol
        .snapshot(
            "s1",
            "conf",
            Some(kennel_storage::volume::snapshot::Running {
                freeze: &mut |f| {
                    frozen.push(f);
                    Ok(())
                },
            }),
        )
        .unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(frozen, vec![true, false]);
    assert!(taken.frozen.is_some(), "{meta:?}");
    fs::write(at.join("upper/a"), b"after").unwrap_or_else(|e| panic!("{e}"));
    let grown = vol.grow(128 << 20, true).unwrap_or_else(|e| panic!("{e}"));
    if grown == Grown::Online {
        assert!(df(&at).0 > 100 << 20);
    }
    Volume::unmount(&at).unwrap_or_else(|e| panic!("{e}"));
    mount(&vol, &at);
    assert!(df(&at).0 > 100 << 20, "grown at the next mount");
    assert_eq!(fs::read(at.join("upper/a")).unwrap_or_default(), b"after");
    Volume::unmount(&at).unwrap_or_else(|e| panic!("{e}"));
    // Rollback and shrink while unmounted.
    vol.rollback("s1").unwrap_or_else(|e| panic!("{e}"));
    let err = vol.shrink(1 << 20).map(|_| ()).unwrap_err().to_string();
    assert!(err.contains("does not fit"), "{err}");
    vol.shrink(48 << 20).unwrap_or_else(|e| panic!("{e}"));
    mount(&vol, &at);
    assert_eq!(fs::read(at.join("upper/a")).unwrap_or_default(), b"before");
    assert!(df(&at).0 <= 48 << 20);
    Volume::unmount(&at).unwrap_or_else(|e| panic!("{e}"));
    vol.delete_snapshot("s1").unwrap_or_else(|e| panic!("{e}"));
    assert!(vol.snapshots().unwrap_or_default().is_empty());
    vol.destroy().unwrap_or_else(|e| panic!("{e}"));
}

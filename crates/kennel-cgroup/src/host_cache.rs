//! The host's cgroup hierarchies, remembered between commands.
//!
//! [`Host::detect`] reads `/proc/self/mountinfo`, whose size is the
//! host's mount count: every running VE with a disk of its own adds its
//! disk's mount, so with 5,000 of them one read takes about 10 ms, more
//! than a whole `kennel status`. The hierarchies themselves almost never
//! change, so the first command after boot writes what it found to a file
//! in the run directory, and later ones take it after checking, with one
//! `stat` each, that nothing it names has changed:
//!
//! * `/sys/fs/cgroup` is the same directory with the same modification
//!   time (mounting a new hierarchy there makes its mount point first);
//! * every hierarchy's mount point still is a cgroup filesystem of the
//!   recorded kind on the recorded device (a remount is a new superblock,
//!   hence a new device number).
//!
//! Anything else, or a file that does not parse, means a fresh
//! [`Host::detect`] and a new file. The file is written by root in
//! Kennel's private run directory; nothing a VE controls is read here.
//! The v2 controllers are read again each time: they change with
//! `cgroup.subtree_control` writes, and it is one small file.

use std::fs;
use std::io::Write;
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};

use crate::error::Result;
use crate::host::{Hierarchy, HierarchyKind, Host, CGROUP_ROOT};

/// `statfs` magic numbers of the two cgroup filesystems.
const CGROUP_SUPER_MAGIC: i64 = 0x0027_e0eb;
const CGROUP2_SUPER_MAGIC: i64 = 0x6367_7270;

/// What identifies `/sys/fs/cgroup` as it was: device, inode, mtime.
fn root_stamp() -> Option<String> {
    let m = fs::metadata(CGROUP_ROOT).ok()?;
    Some(format!(
        "{} {} {}.{}",
        m.dev(),
        m.ino(),
        m.mtime(),
        m.mtime_nsec()
    ))
}

/// The device of `path` if it is a cgroup filesystem of `kind`.
fn cgroup_dev(path: &Path, kind: &HierarchyKind) -> Option<u64> {
    let sfs = rustix::fs::statfs(path).ok()?;
    let want = match kind {
        HierarchyKind::V1 { .. } => CGROUP_SUPER_MAGIC,
        HierarchyKind::V2 => CGROUP2_SUPER_MAGIC,
    };
    #[allow(clippy::unnecessary_cast)] // f_type's width differs by target
    if sfs.f_type as i64 != want {
        return None;
    }
    fs::metadata(path).ok().map(|m| m.dev())
}

/// One line per hierarchy: `v1|v2 <dev> <name or -> <controllers or -> <mount point>`;
/// the first line is the stamp of `/sys/fs/cgroup`.
fn render(stamp: &str, host: &Host) -> Option<String> {
    let mut out = format!("{stamp}\n");
    for h in host.hierarchies() {
        let dev = cgroup_dev(&h.mount_point, &h.kind)?;
        let mp = h.mount_point.to_str()?;
        if mp.contains(['\n', ' ']) {
            return None;
        }
        let (kind, name, ctl) = match &h.kind {
            HierarchyKind::V1 { name } => (
                "v1",
                name.clone().unwrap_or_else(|| "-".into()),
                if h.controllers.is_empty() {
                    "-".into()
                } else {
                    h.controllers.join(",")
                },
            ),
            HierarchyKind::V2 => ("v2", "-".into(), "-".into()),
        };
        out.push_str(&format!("{kind} {dev} {name} {ctl} {mp}\n"));
    }
    Some(out)
}

/// The hierarchies in `text` if it still describes this host (`stamp` is
/// `/sys/fs/cgroup`'s now).
fn parse_valid(text: &str, stamp: &str) -> Option<Host> {
    let mut lines = text.lines();
    if lines.next()? != stamp {
        return None;
    }
    let mut hierarchies = Vec::new();
    for line in lines {
        let mut f = line.splitn(5, ' ');
        let (kind, dev, name, ctl, mp) = (f.next()?, f.next()?, f.next()?, f.next()?, f.next()?);
        let dev: u64 = dev.parse().ok()?;
        let mount_point = PathBuf::from(mp);
        let kind = match kind {
            "v1" => HierarchyKind::V1 {
                name: (name != "-").then(|| name.to_string()),
            },
            "v2" => HierarchyKind::V2,
            _ => return None,
        };
        if cgroup_dev(&mount_point, &kind)? != dev {
            return None;
        }
        let controllers = match kind {
            HierarchyKind::V2 => Host::v2_controllers(&mount_point),
            HierarchyKind::V1 { .. } if ctl == "-" => Vec::new(),
            HierarchyKind::V1 { .. } => ctl.split(',').map(str::to_string).collect(),
        };
        hierarchies.push(Hierarchy {
            mount_point,
            kind,
            controllers,
        });
    }
    Host::from_hierarchies(hierarchies).ok()
}

impl Host {
    /// The hierarchies, from `cache` if it still describes this host, else
    /// detected afresh and written to `cache` (best effort: a state root
    /// that cannot take the file only loses the shortcut).
    pub fn detect_cached(cache: &Path) -> Result<Self> {
        let Some(stamp) = root_stamp() else {
            return Host::detect();
        };
        if let Some(host) = fs::read_to_string(cache)
            .ok()
            .and_then(|t| parse_valid(&t, &stamp))
        {
            return Ok(host);
        }
        let host = Host::detect()?;
        if let Some(text) = render(&stamp, &host) {
            let _ = write_atomically(cache, &text);
        }
        Ok(host)
    }
}

/// Writes `text` to `path` by a rename, so that a reader never sees half.
fn write_atomically(path: &Path, text: &str) -> std::io::Result<()> {
    let dir = path.parent().unwrap_or(Path::new("."));
    let tmp = dir.join(format!(".cgroup-hierarchies-{}", std::process::id()));
    let mut f = fs::File::create(&tmp)?;
    f.write_all(text.as_bytes())?;
    drop(f);
    fs::rename(&tmp, path).inspect_err(|_| {
        let _ = fs::remove_file(&tmp);
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_cache_matches_what_detect_finds_and_a_changed_stamp_is_refused() {
        let Ok(host) = Host::detect() else {
            return; // no cgroups mounted here
        };
        let stamp = root_stamp().expect("stat /sys/fs/cgroup");
        let text = render(&stamp, &host).expect("render");
        let again = parse_valid(&text, &stamp).expect("the cache is valid now");
        assert_eq!(again.hierarchies().len(), host.hierarchies().len());
        for (a, b) in again.hierarchies().iter().zip(host.hierarchies()) {
            assert_eq!(a.mount_point, b.mount_point);
            assert_eq!(a.kind, b.kind);
            assert_eq!(a.controllers, b.controllers);
        }
        assert!(parse_valid(&text, "0 0 0.0").is_none());
    }

    #[test]
    fn a_cache_naming_another_device_or_garbage_is_refused() {
        let Some(stamp) = root_stamp() else { return };
        let Ok(host) = Host::detect() else { return };
        let Some(text) = render(&stamp, &host) else {
            return;
        };
        // Every device number off by one: as after a remount.
        let mut lines = text.lines();
        let mut forged = format!("{}\n", lines.next().unwrap_or_default());
        for l in lines {
            let mut f: Vec<String> = l.splitn(5, ' ').map(str::to_string).collect();
            f[1] = (f[1].parse::<u64>().unwrap_or(0) + 1).to_string();
            forged.push_str(&f.join(" "));
            forged.push('\n');
        }
        assert!(parse_valid(&forged, &stamp).is_none());
        assert!(parse_valid(&format!("{stamp}\nv3 1 - - /x\n"), &stamp).is_none());
        assert!(parse_valid(&format!("{stamp}\nv1 1\n"), &stamp).is_none());
    }

    #[test]
    fn detect_cached_writes_then_reads_the_file() {
        let Ok(host) = Host::detect() else { return };
        let dir = tempfile::tempdir().expect("tempdir");
        let cache = dir.path().join("cgroup-hierarchies");
        let first = Host::detect_cached(&cache).expect("detect");
        assert!(cache.exists());
        let second = Host::detect_cached(&cache).expect("from the cache");
        assert_eq!(first.hierarchies().len(), host.hierarchies().len());
        assert_eq!(second.hierarchies().len(), host.hierarchies().len());
        // A damaged file is replaced, not trusted.
        fs::write(&cache, "garbage").expect("write");
        let third = Host::detect_cached(&cache).expect("detect again");
        assert_eq!(third.hierarchies().len(), host.hierarchies().len());
        assert_ne!(fs::read_to_string(&cache).expect("read"), "garbage");
    }
}

//! Which init a root filesystem boots, and how that init wants to be asked
//! to shut down.

use std::fs;
use std::path::{Component, Path, PathBuf};

use serde::{Deserialize, Serialize};

/// The init system of a template (and so of the VEs made from it).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum InitKind {
    Systemd,
    Busybox,
    Sysvinit,
    /// Something else: stopped with SIGTERM, then killed.
    Unknown,
}

impl InitKind {
    pub fn as_str(self) -> &'static str {
        match self {
            InitKind::Systemd => "systemd",
            InitKind::Busybox => "busybox",
            InitKind::Sysvinit => "sysvinit",
            InitKind::Unknown => "unknown",
        }
    }

    /// Looks at `/sbin/init` of the tree at `root`, following symlinks
    /// *inside* that tree only.
    pub fn detect(root: &Path) -> InitKind {
        let Some(target) = resolve_in(root, Path::new("/sbin/init"), 16) else {
            return InitKind::Unknown;
        };
        let name = target.file_name().and_then(|n| n.to_str()).unwrap_or("");
        if name == "systemd" {
            return InitKind::Systemd;
        }
        if name == "busybox" {
            return InitKind::Busybox;
        }
        let host = root.join(target.strip_prefix("/").unwrap_or(&target));
        if let Ok(bytes) = fs::read(&host) {
            if contains(&bytes, b"BusyBox") {
                return InitKind::Busybox;
            }
            if contains(&bytes, b"systemd") && contains(&bytes, b"sd_notify") {
                return InitKind::Systemd;
            }
        }
        if root.join("etc/inittab").exists() {
            return InitKind::Sysvinit;
        }
        InitKind::Unknown
    }
}

fn contains(hay: &[u8], needle: &[u8]) -> bool {
    hay.windows(needle.len()).any(|w| w == needle)
}

/// Resolves `path` (absolute, as seen inside the tree) through symlinks,
/// treating `root` as `/`. Returns the final in-tree absolute path.
fn resolve_in(root: &Path, path: &Path, mut budget: u32) -> Option<PathBuf> {
    let mut cur = PathBuf::from("/");
    let mut rest: Vec<PathBuf> = path
        .components()
        .filter_map(|c| match c {
            Component::Normal(n) => Some(PathBuf::from(n)),
            Component::ParentDir => Some(PathBuf::from("..")),
            _ => None,
        })
        .rev()
        .collect();
    while let Some(c) = rest.pop() {
        if c == Path::new("..") {
            cur.pop();
            continue;
        }
        let next = cur.join(&c);
        let host = root.join(next.strip_prefix("/").ok()?);
        match fs::read_link(&host) {
            Ok(t) => {
                budget = budget.checked_sub(1)?;
                if t.is_absolute() {
                    cur = PathBuf::from("/");
                }
                for comp in t.components().rev() {
                    match comp {
                        Component::Normal(n) => rest.push(PathBuf::from(n)),
                        Component::ParentDir => rest.push(PathBuf::from("..")),
                        _ => {}
                    }
                }
            }
            Err(_) => cur = next,
        }
    }
    Some(cur)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::fs::symlink;

    #[test]
    fn detects_by_symlink_inside_tree() {
        let t = tempfile::tempdir().expect("tempdir");
        fs::create_dir_all(t.path().join("sbin")).expect("mkdir");
        fs::create_dir_all(t.path().join("lib/systemd")).expect("mkdir");
        fs::write(t.path().join("lib/systemd/systemd"), b"x").expect("write");
        symlink("/lib/systemd/systemd", t.path().join("sbin/init")).expect("symlink");
        assert_eq!(InitKind::detect(t.path()), InitKind::Systemd);
    }

    #[test]
    fn symlink_cannot_escape_tree() {
        let t = tempfile::tempdir().expect("tempdir");
        fs::create_dir_all(t.path().join("sbin")).expect("mkdir");
        symlink("../../../../bin/busybox", t.path().join("sbin/init")).expect("symlink");
        // Resolves to /bin/busybox inside the tree, which is missing there.
        assert_eq!(
            resolve_in(t.path(), Path::new("/sbin/init"), 8),
            Some(PathBuf::from("/bin/busybox"))
        );
    }

    #[test]
    fn missing_init_is_unknown() {
        let t = tempfile::tempdir().expect("tempdir");
        assert_eq!(InitKind::detect(t.path()), InitKind::Unknown);
    }
}

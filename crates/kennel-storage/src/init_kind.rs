//! Which init a root filesystem boots, and so how that init wants to be
//! asked to shut down.

use serde::{Deserialize, Serialize};

use crate::tree::Tree;

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

    /// Looks at `/sbin/init` of `tree`, resolved as the VE will resolve it.
    pub(crate) fn detect(tree: &Tree) -> InitKind {
        let Some(target) = tree.resolve("sbin/init") else {
            return InitKind::Unknown;
        };
        let name = target.rsplit('/').next().unwrap_or("");
        let bytes = tree.read("sbin/init").unwrap_or_default();
        classify(name, &bytes, tree.read("etc/inittab").is_some())
    }
}

/// The decision, from the name `/sbin/init` resolves to, its contents, and
/// whether `/etc/inittab` exists.
fn classify(name: &str, init: &[u8], has_inittab: bool) -> InitKind {
    let contains = |needle: &[u8]| init.windows(needle.len()).any(|w| w == needle);
    if name == "systemd" || (contains(b"systemd") && contains(b"sd_notify")) {
        InitKind::Systemd
    } else if name == "busybox" || contains(b"BusyBox") {
        InitKind::Busybox
    } else if has_inittab {
        InitKind::Sysvinit
    } else {
        InitKind::Unknown
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::fs;
    use std::os::unix::fs::symlink;

    #[test]
    fn classifies() {
        assert_eq!(classify("systemd", b"", false), InitKind::Systemd);
        assert_eq!(
            classify("init", b"...BusyBox v1...", true),
            InitKind::Busybox
        );
        assert_eq!(classify("init", b"#!/bin/sh", true), InitKind::Sysvinit);
        assert_eq!(classify("init", b"#!/bin/sh", false), InitKind::Unknown);
    }

    #[test]
    fn detects_through_symlinks_inside_the_tree_only() {
        let t = tempfile::tempdir().expect("tempdir");
        fs::create_dir_all(t.path().join("sbin")).expect("mkdir");
        fs::create_dir_all(t.path().join("lib/systemd")).expect("mkdir");
        fs::write(t.path().join("lib/systemd/systemd"), b"x").expect("write");
        symlink("/lib/systemd/systemd", t.path().join("sbin/init")).expect("symlink");
        let tree = Tree::open(t.path()).expect("tree");
        assert_eq!(InitKind::detect(&tree), InitKind::Systemd);
        // An absolute symlink that leaves the tree resolves inside it.
        fs::remove_file(t.path().join("sbin/init")).expect("rm");
        symlink("/bin/../../../../usr/bin/yes", t.path().join("sbin/init")).expect("symlink");
        assert_eq!(
            InitKind::detect(&tree),
            InitKind::Unknown,
            "nothing of the host's is read"
        );
    }
}

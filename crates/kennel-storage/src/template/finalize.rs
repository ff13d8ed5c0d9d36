//! The last step of every template build: make the tree fit to be shared
//! by many VEs, and describe it. The tree may come from an untrusted
//! tarball: everything here goes through [`Tree`], never through host
//! paths.

use std::path::Path;

use crate::error::Result;
use crate::init_kind::InitKind;
use crate::shown::shown;
use crate::template::meta::TemplateMeta;
use crate::tree::Tree;

/// Cleans `rootfs` and returns its metadata.
///
/// * `/dev` is emptied and every other device node removed: each VE gets
///   its own tmpfs `/dev`, and no device node belongs in a shared tree.
/// * `/etc/machine-id` is emptied so that every VE gets its own (systemd
///   takes it from `container_uuid`); `/etc/hostname` is reset.
/// * apt's downloaded packages and lists are dropped (apt-get update makes
///   them again inside a VE).
pub(crate) fn finish(name: &str, rootfs: &Path, source: String) -> Result<TemplateMeta> {
    let tree = Tree::open(rootfs)?;
    tree.empty_dir("dev")?;
    for d in ["var/cache/apt/archives", "var/lib/apt/lists"] {
        tree.remove_files_in(d)?;
    }
    for f in [
        "var/cache/apt/pkgcache.bin",
        "var/cache/apt/srcpkgcache.bin",
        "var/lib/dbus/machine-id",
    ] {
        tree.remove(f)?;
    }
    tree.rewrite("etc/machine-id", b"")?;
    tree.rewrite("etc/hostname", b"localhost\n")?;
    let stats = tree.sweep()?;
    Ok(TemplateMeta {
        name: name.to_string(),
        created: humantime::format_rfc3339_seconds(std::time::SystemTime::now()).to_string(),
        source,
        init: InitKind::detect(&tree),
        size_bytes: stats.bytes,
        entries: stats.entries,
        os: os_pretty_name(&tree),
        digest: super::digest::tree_digest(rootfs)?,
    })
}

fn os_pretty_name(tree: &Tree) -> String {
    for p in ["etc/os-release", "usr/lib/os-release"] {
        if let Some(bytes) = tree.read(p) {
            let line = bytes
                .split(|&b| b == b'\n')
                .find_map(|l| l.strip_prefix(b"PRETTY_NAME="));
            if let Some(v) = line {
                // Shown by `template list`: kept escaped and short, as the
                // tree's author wrote it.
                let v = v.strip_prefix(b"\"").unwrap_or(v);
                return shown(v.strip_suffix(b"\"").unwrap_or(v));
            }
        }
    }
    String::new()
}

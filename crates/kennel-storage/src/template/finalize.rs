//! The last step of every template build: make the tree fit to be shared
//! by many VEs, and describe it.

use std::fs;
use std::io;
use std::path::Path;

use crate::error::{io_err, Result};
use crate::init_kind::InitKind;
use crate::template::meta::TemplateMeta;
use crate::util::tree_size;

/// Cleans `rootfs` and returns its metadata.
///
/// * `/dev` is emptied: each VE gets its own tmpfs `/dev`, and device nodes
///   in a shared tree are a risk.
/// * `/etc/machine-id` is emptied so that every VE gets its own (systemd
///   takes it from `container_uuid`).
/// * apt's downloaded packages and lists are dropped (apt-get update makes
///   them again inside a VE).
pub(crate) fn finish(name: &str, rootfs: &Path, source: String) -> Result<TemplateMeta> {
    empty_dir(&rootfs.join("dev"))?;
    for p in ["var/cache/apt/archives", "var/lib/apt/lists"] {
        let d = rootfs.join(p);
        if d.is_dir() {
            remove_files_in(&d)?;
        }
    }
    for f in [
        "var/cache/apt/pkgcache.bin",
        "var/cache/apt/srcpkgcache.bin",
    ] {
        remove_if_exists(&rootfs.join(f))?;
    }
    let mid = rootfs.join("etc/machine-id");
    if mid.symlink_metadata().is_ok_and(|m| m.is_file()) {
        fs::write(&mid, "").map_err(io_err("write", &mid))?;
    }
    let dbus_mid = rootfs.join("var/lib/dbus/machine-id");
    if dbus_mid.symlink_metadata().is_ok_and(|m| m.is_file()) {
        remove_if_exists(&dbus_mid)?;
    }
    let hostname = rootfs.join("etc/hostname");
    if rootfs.join("etc").is_dir()
        && !hostname
            .symlink_metadata()
            .is_ok_and(|m| m.file_type().is_symlink())
    {
        fs::write(&hostname, "localhost\n").map_err(io_err("write", &hostname))?;
    }
    let init = InitKind::detect(rootfs);
    let (size_bytes, entries) = tree_size(rootfs);
    Ok(TemplateMeta {
        name: name.to_string(),
        created: humantime::format_rfc3339_seconds(std::time::SystemTime::now()).to_string(),
        source,
        init,
        size_bytes,
        entries,
        os: os_pretty_name(rootfs),
    })
}

fn os_pretty_name(rootfs: &Path) -> String {
    for p in ["etc/os-release", "usr/lib/os-release"] {
        let path = rootfs.join(p);
        // Never follow a symlink in the tree from the host side.
        if !path.symlink_metadata().is_ok_and(|m| m.is_file()) {
            continue;
        }
        if let Ok(text) = fs::read_to_string(&path) {
            for line in text.lines() {
                if let Some(v) = line.strip_prefix("PRETTY_NAME=") {
                    return v.trim_matches('"').to_string();
                }
            }
        }
    }
    String::new()
}

fn remove_if_exists(p: &Path) -> Result<()> {
    match fs::remove_file(p) {
        Err(e) if e.kind() != io::ErrorKind::NotFound => Err(io_err("remove", p)(e)),
        _ => Ok(()),
    }
}

/// Removes the files directly in `dir` (keeps subdirectories such as
/// apt's `partial/`).
fn remove_files_in(dir: &Path) -> Result<()> {
    for e in fs::read_dir(dir).map_err(io_err("read", dir))?.flatten() {
        if e.file_type().is_ok_and(|t| !t.is_dir()) && e.file_name() != "lock" {
            remove_if_exists(&e.path())?;
        }
    }
    Ok(())
}

/// Removes everything in `dir`, keeping `dir` itself (mode 0755).
fn empty_dir(dir: &Path) -> Result<()> {
    if dir.symlink_metadata().is_ok_and(|m| !m.is_dir()) {
        remove_if_exists(dir)?;
    }
    if dir.is_dir() {
        for e in fs::read_dir(dir).map_err(io_err("read", dir))?.flatten() {
            let p = e.path();
            if e.file_type().is_ok_and(|t| t.is_dir()) {
                fs::remove_dir_all(&p).map_err(io_err("remove", &p))?;
            } else {
                remove_if_exists(&p)?;
            }
        }
    }
    crate::util::mkdir_mode(dir, 0o755)
}

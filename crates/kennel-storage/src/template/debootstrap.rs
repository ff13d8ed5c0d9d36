//! A Debian template made with debootstrap, with systemd as init.

use std::fs;
use std::path::Path;
use std::process::{Command, Stdio};

use crate::error::{io_err, Result, StorageError};

/// Packages on top of debootstrap's minbase: systemd as init, D-Bus for
/// logind and hostnamectl, and the basic network tools.
const PACKAGES: &[&str] = &[
    "systemd",
    "systemd-sysv",
    "dbus",
    "iproute2",
    "iputils-ping",
    "ifupdown",
    "procps",
    "less",
    "ca-certificates",
];

/// The first Debian mirror in the host's apt sources.
pub(crate) fn host_mirror() -> Option<String> {
    if let Ok(t) = fs::read_to_string("/etc/apt/sources.list.d/debian.sources") {
        for line in t.lines() {
            if let Some(rest) = line.strip_prefix("URIs:") {
                if let Some(u) = rest.split_whitespace().next() {
                    return Some(u.to_string());
                }
            }
        }
    }
    if let Ok(t) = fs::read_to_string("/etc/apt/sources.list") {
        for line in t.lines() {
            let mut w = line.split_whitespace();
            if w.next() == Some("deb") {
                // skip an optional [options] block
                let next = w.find(|s| !s.starts_with('['));
                if let Some(u) = next {
                    return Some(u.to_string());
                }
            }
        }
    }
    None
}

pub(crate) fn build(
    rootfs: &Path,
    suite: &str,
    mirror: Option<&str>,
    cache_dir: &Path,
    progress: &mut dyn FnMut(&str),
) -> Result<String> {
    let mirror = match mirror {
        Some(m) => m.to_string(),
        None => host_mirror().ok_or_else(|| {
            StorageError::Tool(
                "no Debian mirror in /etc/apt/sources.list(.d): pass --mirror URL".into(),
            )
        })?,
    };
    if Command::new("debootstrap")
        .arg("--version")
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .is_err()
    {
        return Err(StorageError::Tool(
            "debootstrap is not installed: apt-get install debootstrap".into(),
        ));
    }
    fs::create_dir_all(cache_dir).map_err(io_err("create", cache_dir))?;
    progress(&format!(
        "debootstrap {suite} from {mirror} (about a minute; packages cached in {})",
        cache_dir.display()
    ));
    let log = rootfs.with_file_name("debootstrap.log");
    let log_file = fs::File::create(&log).map_err(io_err("create", &log))?;
    let log_err = log_file.try_clone().map_err(io_err("open", &log))?;
    let status = Command::new("debootstrap")
        .arg("--variant=minbase")
        .arg(format!("--include={}", PACKAGES.join(",")))
        .arg(format!("--cache-dir={}", cache_dir.display()))
        .arg(suite)
        .arg(rootfs)
        .arg(&mirror)
        .stdin(Stdio::null())
        .stdout(log_file)
        .stderr(log_err)
        .status()
        .map_err(io_err("run", "debootstrap"))?;
    if !status.success() {
        let tail: String = fs::read_to_string(&log)
            .unwrap_or_default()
            .lines()
            .rev()
            .take(3)
            .collect::<Vec<_>>()
            .into_iter()
            .rev()
            .collect::<Vec<_>>()
            .join(" | ");
        return Err(StorageError::Tool(format!(
            "debootstrap failed ({status}): {tail}"
        )));
    }
    let _ = fs::remove_file(&log);
    tune_for_containers(rootfs)?;
    Ok(format!("debootstrap --variant=minbase {suite} {mirror}"))
}

/// Settings that make a Debian tree boot cleanly as a VE.
fn tune_for_containers(rootfs: &Path) -> Result<()> {
    // An empty fstab: Kennel mounts the root and the API filesystems.
    let fstab = rootfs.join("etc/fstab");
    fs::write(
        &fstab,
        "# Kennel VE: the root and API filesystems are mounted by Kennel.\n",
    )
    .map_err(io_err("write", &fstab))?;
    Ok(())
}

//! The directory kenneld keeps backups in (`--backup-dir`): its own,
//! root's, mode 0700. Apart from the handlers because every path in it is
//! made here, from names checked here: a client names a backup, never a
//! path, and a name is one fixed-charset file name (no '/', no `..`).
//!
//! Each backup `NAME.kbk` (written by `kennel backup`) has a sidecar
//! `NAME.json` written by kenneld *before* the backup runs: which VE
//! (id and uuid) it is of, so a tenant sees only its own VEs' backups,
//! and which backup an incremental is on. A backup is listed once both
//! are there; `kennel backup`'s partial files (`.NAME.kbk.tmp-PID`) are
//! never named by the API.

use std::fs::{File, OpenOptions};
use std::io::{Read, Write};
use std::os::unix::fs::{DirBuilderExt, MetadataExt, OpenOptionsExt, PermissionsExt};
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

/// What `kennel backup` writes (docs/STORAGE.md).
pub const EXT: &str = ".kbk";

/// Backups listed at most (the oldest beyond are left out).
const MAX_LISTED: usize = 10_000;

/// A sidecar is a few hundred bytes; anything larger is not one.
const MAX_SIDECAR: u64 = 4096;

/// Free space a new backup leaves at least: this share of the
/// filesystem (percent) and this many bytes.
const RESERVE_PERCENT: u64 = 5;
const RESERVE_BYTES: u64 = 1 << 30;

/// What kenneld knows of a backup beside its file.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Sidecar {
    /// The VE's id then.
    pub ve: String,
    /// The VE's uuid: whose backup it is.
    pub uuid: String,
    /// RFC 3339.
    pub created: String,
    /// An incremental's base (a backup in this directory).
    pub since: Option<String>,
}

/// A backup in the directory.
#[derive(Debug, Clone)]
pub struct Entry {
    pub name: String,
    pub sidecar: Sidecar,
    pub size: u64,
}

/// Why a name is refused (a client's mistake: 400).
pub const NAME_RULE: &str =
    "a backup name is 1-128 characters a-z, A-Z, 0-9, '.', '_' or '-', starting with a letter or digit and ending in .kbk (as GET /v1/backups lists them)";

/// A backup's name: `[A-Za-z0-9][A-Za-z0-9._-]*\.kbk`, at most 128
/// bytes, without `..`.
pub fn valid_name(name: &str) -> bool {
    (EXT.len() + 1..=128).contains(&name.len())
        && name.ends_with(EXT)
        && name.as_bytes()[0].is_ascii_alphanumeric()
        && name
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"._-".contains(&b))
        && !name.contains("..")
}

fn sidecar_name(name: &str) -> String {
    format!("{}.json", name.strip_suffix(EXT).unwrap_or(name))
}

/// The UTC time as `20261207T221534Z` (`millis`: `20261207T221534.123Z`).
pub fn stamp(millis: bool) -> String {
    let now = std::time::SystemTime::now();
    let t = if millis {
        humantime::format_rfc3339_millis(now).to_string()
    } else {
        humantime::format_rfc3339_seconds(now).to_string()
    };
    t.chars().filter(|c| *c != '-' && *c != ':').collect()
}

/// A new backup's name: `<ve>-<uuid8>-<UTC time>.kbk`.
pub fn new_name(ve: &str, uuid: &str) -> String {
    let short: String = uuid
        .chars()
        .filter(char::is_ascii_alphanumeric)
        .take(8)
        .collect();
    format!("{ve}-{short}-{}{EXT}", stamp(true))
}

/// The directory, made (mode 0700) if missing. It must be a directory
/// of this user's, not a symlink; a looser mode is tightened.
pub fn ensure(dir: &Path) -> std::io::Result<()> {
    match std::fs::symlink_metadata(dir) {
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            std::fs::DirBuilder::new()
                .recursive(true)
                .mode(0o700)
                .create(dir)?;
        }
        Err(e) => return Err(e),
        Ok(_) => {}
    }
    let m = std::fs::symlink_metadata(dir)?;
    if !m.is_dir() || m.uid() != rustix::process::geteuid().as_raw() {
        return Err(std::io::Error::other(format!(
            "{} is not a directory of kenneld's own (a symlink, or another user's)",
            dir.display()
        )));
    }
    if m.mode() & 0o077 != 0 {
        std::fs::set_permissions(dir, std::fs::Permissions::from_mode(0o700))?;
    }
    Ok(())
}

/// Opens `dir/name` for reading, never through a symlink; it must be a
/// regular file.
pub fn open(dir: &Path, name: &str) -> std::io::Result<File> {
    let f = OpenOptions::new()
        .read(true)
        .custom_flags(libc::O_NOFOLLOW | libc::O_CLOEXEC | libc::O_NOCTTY)
        .open(dir.join(name))?;
    if !f.metadata()?.is_file() {
        return Err(std::io::Error::other(format!("{name} is not a file")));
    }
    Ok(f)
}

/// The sidecar of backup `name`; `None` if it has none.
pub fn sidecar(dir: &Path, name: &str) -> std::io::Result<Option<Sidecar>> {
    let f = match open(dir, &sidecar_name(name)) {
        Ok(f) => f,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
        Err(e) => return Err(e),
    };
    let mut text = String::new();
    f.take(MAX_SIDECAR).read_to_string(&mut text)?;
    serde_json::from_str(&text)
        .map(Some)
        .map_err(|e| std::io::Error::other(format!("{}: {e}", sidecar_name(name))))
}

/// Writes backup `name`'s sidecar (a new file; never through a symlink).
pub fn write_sidecar(dir: &Path, name: &str, s: &Sidecar) -> std::io::Result<()> {
    let mut f = OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .custom_flags(libc::O_NOFOLLOW | libc::O_CLOEXEC)
        .open(dir.join(sidecar_name(name)))?;
    f.write_all(
        serde_json::to_string(s)
            .map_err(std::io::Error::other)?
            .as_bytes(),
    )?;
    f.sync_all()
}

/// Backup `name` with its sidecar; `None` unless both are there.
pub fn entry(dir: &Path, name: &str) -> std::io::Result<Option<Entry>> {
    let Some(sidecar) = sidecar(dir, name)? else {
        return Ok(None);
    };
    let size = match open(dir, name) {
        Ok(f) => f.metadata()?.len(),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
        Err(e) => return Err(e),
    };
    Ok(Some(Entry {
        name: name.to_string(),
        sidecar,
        size,
    }))
}

/// Every complete backup, oldest first; none if the directory is not
/// made yet.
pub fn list(dir: &Path) -> std::io::Result<Vec<Entry>> {
    let rd = match std::fs::read_dir(dir) {
        Ok(rd) => rd,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(Vec::new()),
        Err(e) => return Err(e),
    };
    let mut out = Vec::new();
    for d in rd {
        let d = d?;
        let Some(name) = d.file_name().to_str().map(str::to_string) else {
            continue;
        };
        if !valid_name(&name) {
            continue;
        }
        // One bad sidecar hides its backup, not the list.
        match entry(dir, &name) {
            Ok(Some(e)) => out.push(e),
            Ok(None) => {}
            Err(e) => tracing::warn!("backup {name}: {e}"),
        }
    }
    out.sort_by(|a, b| (&a.sidecar.created, &a.name).cmp(&(&b.sidecar.created, &b.name)));
    let over = out.len().saturating_sub(MAX_LISTED);
    out.drain(..over);
    Ok(out)
}

/// Removes backup `name` and its sidecar (the file first: a sidecar
/// alone is listed as nothing).
pub fn remove(dir: &Path, name: &str) -> std::io::Result<()> {
    match std::fs::remove_file(dir.join(name)) {
        Err(e) if e.kind() != std::io::ErrorKind::NotFound => return Err(e),
        _ => {}
    }
    remove_sidecar(dir, name)
}

pub fn remove_sidecar(dir: &Path, name: &str) -> std::io::Result<()> {
    match std::fs::remove_file(dir.join(sidecar_name(name))) {
        Err(e) if e.kind() != std::io::ErrorKind::NotFound => Err(e),
        _ => Ok(()),
    }
}

/// The path `kennel` is given for backup `name` (checked).
pub fn path(dir: &Path, name: &str) -> PathBuf {
    dir.join(name)
}

/// Bytes `kennel backup` has written so far of backup `name` (its
/// partial file, `.NAME.tmp-PID`).
pub fn partial_size(dir: &Path, name: &str) -> u64 {
    let prefix = format!(".{name}.tmp-");
    std::fs::read_dir(dir)
        .into_iter()
        .flatten()
        .flatten()
        .filter(|d| {
            d.file_name()
                .to_str()
                .is_some_and(|n| n.starts_with(&prefix))
        })
        .filter_map(|d| d.metadata().ok())
        .map(|m| m.len())
        .max()
        .unwrap_or(0)
}

/// Refuses a new backup when the directory's filesystem has less than
/// [`RESERVE_PERCENT`] of its size or [`RESERVE_BYTES`] free: a backup's
/// size is not known before it is written, and a full disk there would
/// be the host's (the state root is often on it).
pub fn check_space(dir: &Path) -> std::io::Result<Result<(), String>> {
    let st = rustix::fs::statvfs(dir)?;
    let unit = st.f_frsize.max(1);
    let total = st.f_blocks.saturating_mul(unit);
    let free = st.f_bavail.saturating_mul(unit);
    let reserve = (total / 100 * RESERVE_PERCENT).max(RESERVE_BYTES);
    if free < reserve {
        return Ok(Err(format!(
            "the backup directory's filesystem has {} free, less than the {} kept free: delete old backups first",
            kennel_ve::units::human(free),
            kennel_ve::units::human(reserve)
        )));
    }
    Ok(Ok(()))
}

/// How many backups of the VE whose uuid is `uuid` the directory holds:
/// a sidecar with its backup file. Asked under the VE's backup claim, so
/// no backup of the VE is under way, and a sidecar alone is one a crash
/// left (it must not hold a place for ever: it cannot be deleted through
/// the API). A sidecar or file that cannot be read counts as one of it:
/// a bound that a broken file could lift would be none.
pub fn count_of(dir: &Path, uuid: &str) -> std::io::Result<usize> {
    let rd = match std::fs::read_dir(dir) {
        Ok(rd) => rd,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(0),
        Err(e) => return Err(e),
    };
    let mut n = 0;
    for d in rd {
        let d = d?;
        let Some(name) = d
            .file_name()
            .to_str()
            .and_then(|f| f.strip_suffix(".json"))
            .map(|stem| format!("{stem}{EXT}"))
        else {
            continue;
        };
        if !valid_name(&name) {
            continue;
        }
        match sidecar(dir, &name) {
            Ok(Some(s)) if s.uuid == uuid => match open(dir, &name) {
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
                _ => n += 1,
            },
            Ok(_) => {}
            Err(_) => n += 1,
        }
    }
    Ok(n)
}

/// Whether an incremental backup is on backup `name` (one under way
/// too: its sidecar is written first).
pub fn is_base(dir: &Path, name: &str) -> std::io::Result<bool> {
    for d in std::fs::read_dir(dir)? {
        let d = d?;
        let Some(stem) = d
            .file_name()
            .to_str()
            .and_then(|f| f.strip_suffix(".json"))
            .map(str::to_string)
        else {
            continue;
        };
        let other = format!("{stem}{EXT}");
        let on_it = matches!(sidecar(dir, &other), Ok(Some(s)) if s.since.as_deref() == Some(name));
        if valid_name(&other) && on_it {
            return Ok(true);
        }
    }
    Ok(false)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_are_one_plain_file_name() {
        assert!(valid_name("101-1a2b3c4d-20261207T221534.123Z.kbk"));
        assert!(valid_name(&new_name("web-1", "1a2b3c4d-5e6f")));
        for bad in [
            "",
            ".kbk",
            "../x.kbk",
            "a/b.kbk",
            "..kbk",
            "a..b.kbk",
            ".a.kbk",
            "a.kbk.tmp-1",
            "a.json",
            "-a.kbk",
            "a b.kbk",
            "a\n.kbk",
        ] {
            assert!(!valid_name(bad), "{bad:?}");
        }
        assert!(!valid_name(&format!("{}.kbk", "a".repeat(125))));
        assert_eq!(sidecar_name("a.kbk"), "a.json");
    }

    #[test]
    fn a_backup_is_listed_once_both_files_are_there_and_never_through_a_symlink() {
        let t = tempfile::tempdir().expect("tempdir");
        let dir = t.path().join("backups");
        ensure(&dir).expect("made");
        let mode = std::fs::metadata(&dir).map(|m| m.mode() & 0o777).ok();
        assert_eq!(mode, Some(0o700));
        let s = Sidecar {
            ve: "101".into(),
            uuid: "u".into(),
            created: "2026-12-07T00:00:00Z".into(),
            since: None,
        };
        write_sidecar(&dir, "a.kbk", &s).expect("sidecar");
        assert!(list(&dir).expect("list").is_empty(), "no file yet");
        std::fs::write(dir.join("a.kbk"), b"data").expect("file");
        let l = list(&dir).expect("list");
        assert_eq!((l.len(), l[0].size), (1, 4));
        std::os::unix::fs::symlink("/etc/passwd", dir.join("b.kbk")).expect("symlink");
        write_sidecar(&dir, "b.kbk", &s).expect("sidecar");
        assert!(open(&dir, "b.kbk").is_err(), "not followed");
        assert_eq!(list(&dir).expect("list").len(), 1);
        assert_eq!(count_of(&dir, "u").ok(), Some(2), "b (a symlink) counts");
        write_sidecar(&dir, "c.kbk", &s).expect("sidecar");
        assert_eq!(
            count_of(&dir, "u").ok(),
            Some(2),
            "a sidecar alone does not"
        );
        assert_eq!(count_of(&dir, "other").ok(), Some(0));
        remove(&dir, "a.kbk").expect("removed");
        assert_eq!(count_of(&dir, "u").ok(), Some(1));
        assert!(!dir.join("a.json").exists());
        let link = t.path().join("link");
        std::os::unix::fs::symlink(&dir, &link).expect("symlink");
        assert!(ensure(&link).is_err(), "a symlink is not the directory");
    }
}

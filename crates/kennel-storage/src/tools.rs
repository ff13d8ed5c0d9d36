//! The e2fsprogs and xfsprogs programs Kennel runs: no maintained Rust
//! crate makes, checks or resizes ext4 or XFS, and these are the tools
//! every distribution ships and every operator knows.

use std::path::Path;
use std::process::{Command, Stdio};

use crate::error::{Result, StorageError};

/// Runs `program args...` and returns its standard output; a failure
/// names the program and quotes the last line it printed.
pub(crate) fn run(program: &str, args: &[&str]) -> Result<String> {
    let out = Command::new(program)
        .args(args)
        .stdin(Stdio::null())
        .output()
        .map_err(|e| {
            StorageError::Tool(format!(
                "cannot run {program} ({e}): install it (scripts/install-deps.sh installs e2fsprogs and xfsprogs)"
            ))
        })?;
    if out.status.success() {
        return Ok(String::from_utf8_lossy(&out.stdout).into_owned());
    }
    let err = String::from_utf8_lossy(&out.stderr);
    let last = err
        .lines()
        .chain(String::from_utf8_lossy(&out.stdout).lines())
        .map(str::trim)
        .rfind(|l| !l.is_empty())
        .unwrap_or("no message")
        .to_string();
    Err(StorageError::Tool(format!(
        "{program} failed ({}): {}",
        out.status,
        crate::shown::shown(last.as_bytes())
    )))
}

/// Makes an ext4 filesystem of the whole of `image` with `inodes`
/// inodes: no reserved blocks (the VE's plan is all its own), no discard
/// at mkfs (the file is sparse already), lazy init (done by the kernel in
/// the background, not by create).
///
/// `populate`: a directory whose contents (owners and modes included)
/// become the new filesystem's (`mkfs -d`), so that a new disk needs no
/// mount to get its first directories.
pub(crate) fn mkfs_ext4(image: &Path, inodes: u64, populate: Option<&Path>) -> Result<()> {
    let path = image.to_string_lossy();
    let n = inodes.to_string();
    let dir = populate.map(|d| d.to_string_lossy().into_owned());
    let mut args = vec![
        "-q",
        "-F",
        "-m",
        "0",
        "-N",
        &n,
        "-b",
        "4096",
        "-E",
        "nodiscard,lazy_itable_init=1,lazy_journal_init=1",
    ];
    if let Some(d) = &dir {
        args.extend(["-d", d.as_str()]);
    }
    args.push(&path);
    run("mkfs.ext4", &args).map(drop)
}

/// Makes an XFS filesystem with reflinks (copy-on-write clones of files:
/// what makes a VE's snapshot one ioctl) on `target`.
pub(crate) fn mkfs_xfs(target: &Path) -> Result<()> {
    let path = target.to_string_lossy();
    run(
        "mkfs.xfs",
        &["-q", "-m", "reflink=1", "-s", "size=4096", "-K", &path],
    )
    .map(drop)
}

/// Checks the unmounted ext4 in `image`, repairing what is safe to.
pub(crate) fn fsck_ext4(image: &Path) -> Result<()> {
    let path = image.to_string_lossy();
    let out = Command::new("e2fsck")
        .args(["-f", "-p", &path])
        .stdin(Stdio::null())
        .output()
        .map_err(|e| StorageError::Tool(format!("cannot run e2fsck ({e})")))?;
    // 0: clean, 1: errors corrected.
    match out.status.code() {
        Some(0) | Some(1) => Ok(()),
        _ => Err(StorageError::Tool(format!(
            "the VE's filesystem {path} has errors e2fsck -p cannot repair: run `e2fsck -f {path}` by hand"
        ))),
    }
}

/// The smallest size, in bytes, the unmounted ext4 in `image` can shrink to.
pub(crate) fn ext4_min_size(image: &Path) -> Result<u64> {
    let path = image.to_string_lossy();
    let out = run("resize2fs", &["-P", &path])?;
    let blocks = out
        .lines()
        .find_map(|l| {
            l.rsplit_once(':')
                .and_then(|(_, n)| n.trim().parse::<u64>().ok())
        })
        .ok_or_else(|| StorageError::Tool(format!("resize2fs -P {path}: no size in its answer")))?;
    Ok(blocks.saturating_mul(4096))
}

/// Resizes the unmounted ext4 in `image` to `bytes`.
pub(crate) fn resize_ext4_offline(image: &Path, bytes: u64) -> Result<()> {
    let path = image.to_string_lossy();
    let size = format!("{}K", bytes / 1024);
    run("resize2fs", &[&path, &size]).map(drop)
}

//! A template's digest: one SHA-256 over its whole tree (names, types,
//! modes, owners, sizes, file contents, link targets), in a fixed order.
//! A backup names the template its VE's layer lies on by name and digest,
//! so a restore can tell whether this host's template of that name is the
//! same one.
//!
//! The tree may come from an untrusted tarball: it is walked through
//! descriptors like [`crate::tree`] does (no symlink followed, no other
//! filesystem entered, one directory open per level), and only regular
//! files are opened.

use std::ffi::CString;
use std::io::Read;
use std::os::fd::{AsFd, BorrowedFd, OwnedFd};
use std::path::Path;

use rustix::fs::{openat2, readlinkat, statat, AtFlags, Dir, FileType, Mode, OFlags, ResolveFlags};
use sha2::{Digest, Sha256};

use crate::error::{io_err, Result, StorageError};

const RESOLVE: ResolveFlags = ResolveFlags::NO_SYMLINKS
    .union(ResolveFlags::NO_XDEV)
    .union(ResolveFlags::BENEATH);

/// Levels walked at most: deeper directories count by name only.
const MAX_DEPTH: usize = 256;

/// The digest of the tree at `rootfs`, as `sha256:<hex>`.
pub fn tree_digest(rootfs: &Path) -> Result<String> {
    let root = rustix::fs::open(
        rootfs,
        OFlags::RDONLY | OFlags::DIRECTORY | OFlags::NOFOLLOW | OFlags::CLOEXEC,
        Mode::empty(),
    )
    .map_err(|e| io_err("open", rootfs)(e.into()))?;
    let mut h = Sha256::new();
    hash_dir(root.as_fd(), &mut h, 0).map_err(|e| {
        StorageError::Layer(format!(
            "digest of {}: {}",
            rootfs.display(),
            std::io::Error::from(e)
        ))
    })?;
    let out = h.finalize();
    Ok(format!(
        "sha256:{}",
        out.iter().map(|b| format!("{b:02x}")).collect::<String>()
    ))
}

fn hash_dir(dir: BorrowedFd<'_>, h: &mut Sha256, depth: usize) -> rustix::io::Result<()> {
    let mut names: Vec<CString> = Vec::new();
    let mut d = Dir::read_from(dir)?;
    while let Some(e) = d.read() {
        let n = e?.file_name().to_owned();
        if n.to_bytes() != b"." && n.to_bytes() != b".." {
            names.push(n);
        }
    }
    names.sort();
    for name in names {
        let st = statat(dir, name.as_c_str(), AtFlags::SYMLINK_NOFOLLOW)?;
        h.update(name.to_bytes_with_nul());
        h.update(st.st_mode.to_le_bytes());
        h.update(st.st_uid.to_le_bytes());
        h.update(st.st_gid.to_le_bytes());
        match FileType::from_raw_mode(st.st_mode) {
            FileType::Directory if depth < MAX_DEPTH => {
                if let Ok(sub) = openat2(
                    dir,
                    name.as_c_str(),
                    OFlags::RDONLY | OFlags::DIRECTORY | OFlags::NOFOLLOW | OFlags::CLOEXEC,
                    Mode::empty(),
                    RESOLVE,
                ) {
                    hash_dir(sub.as_fd(), h, depth + 1)?;
                }
                h.update(b"/end");
            }
            FileType::RegularFile => {
                h.update((st.st_size as u64).to_le_bytes());
                let f: OwnedFd = openat2(
                    dir,
                    name.as_c_str(),
                    OFlags::RDONLY | OFlags::NOFOLLOW | OFlags::NONBLOCK | OFlags::CLOEXEC,
                    Mode::empty(),
                    RESOLVE,
                )?;
                let mut file = std::fs::File::from(f);
                let mut buf = vec![0u8; 1 << 16];
                loop {
                    let n = file.read(&mut buf).map_err(|e| {
                        rustix::io::Errno::from_io_error(&e).unwrap_or(rustix::io::Errno::IO)
                    })?;
                    if n == 0 {
                        break;
                    }
                    h.update(&buf[..n]);
                }
            }
            FileType::Symlink => {
                h.update(readlinkat(dir, name.as_c_str(), Vec::new())?.to_bytes());
            }
            _ => {}
        }
    }
    Ok(())
}

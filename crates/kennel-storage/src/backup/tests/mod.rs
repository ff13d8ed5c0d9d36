//! Tests of backups on real trees (they run as root: owners of the VE
//! ranges, `trusted.*` attributes and device nodes need it).
//!
//! [`snapshot`] describes a tree with its owners made relative to a base,
//! so a tree backed up from one range and restored into another compares
//! equal when everything a backup keeps survived.

mod chain;
mod damage;
mod hostile;
mod overlay;
mod perf;
mod roundtrip;
mod template;

use std::collections::BTreeMap;
use std::fs;
use std::os::unix::ffi::OsStrExt;
use std::os::unix::fs::{FileTypeExt, MetadataExt};
use std::path::{Path, PathBuf};

use rustix::fs::{AtFlags, Timespec, Timestamps, CWD};
use sha2::{Digest, Sha256};

use super::ids::{Direction, IdShift};
use super::xattr_policy::{convert, kept};
use super::{write_backup, BackupReport, BackupRequest, BaseIndex, Compression, TemplateRef};

pub(super) const FROM: IdShift = IdShift {
    uid_base: 100_000,
    gid_base: 100_000,
};
pub(super) const TO: IdShift = IdShift {
    uid_base: 200_000,
    gid_base: 300_000,
};

pub(super) fn scratch() -> tempfile::TempDir {
    tempfile::Builder::new()
        .prefix("kennel-backup-test")
        .tempdir_in(crate::test_dir())
        .expect("tempdir")
}

/// Writes a backup of `tree` (ids of [`FROM`]) to `out`.
pub(super) fn backup_file(tree: &Path, base: Option<&BaseIndex>, out: &Path) -> BackupReport {
    let f = fs::File::create(out).expect("create backup file");
    let req = BackupRequest {
        tree,
        ids: FROM,
        ve_conf: "hostname = \"test\"\n".into(),
        template: TemplateRef {
            name: "busybox".into(),
            digest: "sha256:1234".into(),
        },
        base,
        compression: Compression::default(),
        template_tree: None,
    };
    write_backup(std::io::BufWriter::new(f), &req, &|_| {}).expect("backup")
}

/// Sets `path`'s times (not following a symlink).
pub(super) fn set_mtime(path: &Path, sec: i64, nsec: u32) {
    let t = Timespec {
        tv_sec: sec,
        tv_nsec: nsec.into(),
    };
    rustix::fs::utimensat(
        CWD,
        path,
        &Timestamps {
            last_access: t,
            last_modification: t,
        },
        AtFlags::SYMLINK_NOFOLLOW,
    )
    .expect("utimensat");
}

pub(super) fn own(path: &Path, uid: u32, gid: u32) {
    std::os::unix::fs::lchown(path, Some(uid), Some(gid)).expect("lchown");
}

/// What the tests compare of one entry.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) struct Seen {
    pub kind: &'static str,
    pub mode: u32,
    pub uid: u32,
    pub gid: u32,
    pub mtime: (i64, i64),
    pub nlink: u64,
    /// Regular files: hash of the data (of the data segments, for sparse
    /// files) and the segments; symlinks: the target.
    pub content: String,
    /// Kept attributes, ids made relative.
    pub xattrs: BTreeMap<String, Vec<u8>>,
    /// Another path of the same inode (the smallest), for hard links.
    pub link_group: Option<Vec<u8>>,
}

fn kind_of(ft: fs::FileType) -> &'static str {
    if ft.is_symlink() {
        "symlink"
    } else if ft.is_dir() {
        "dir"
    } else if ft.is_file() {
        "file"
    } else if ft.is_fifo() {
        "fifo"
    } else if ft.is_socket() {
        "socket"
    } else if ft.is_char_device() {
        "char"
    } else {
        "other"
    }
}

/// Data segments and a hash of their bytes.
pub(super) fn file_content(path: &Path) -> String {
    use std::os::fd::AsFd;
    use std::os::unix::fs::FileExt;
    let f = fs::File::open(path).expect("open");
    let size = f.metadata().expect("stat").len();
    let mut segs = super::content::Segments::new(f.as_fd(), size);
    let mut all = Vec::new();
    loop {
        let b = segs.next_batch().expect("segments");
        if b.is_empty() {
            break;
        }
        all.extend(b);
    }
    let mut sha = Sha256::new();
    let mut buf = vec![0u8; 1 << 16];
    let mut desc = format!("size {size}");
    for s in &all {
        let mut off = s.off;
        let end = s.off + s.len;
        // Zeros read from a data segment and a hole look alike: only the
        // data's bytes are hashed, the map is compared through st_blocks.
        while off < end {
            let n = buf.len().min((end - off) as usize);
            f.read_exact_at(&mut buf[..n], off).expect("read");
            sha.update(&buf[..n]);
            off += n as u64;
        }
    }
    if crate::backup::content::looks_sparse(size, f.metadata().expect("stat").blocks()) {
        desc.push_str(&format!(" segments {}", all.len()));
    }
    format!("{desc} sha {}", super::format::hex(&sha.finalize()))
}

pub(super) fn xattrs_of(path: &Path, ids: IdShift) -> BTreeMap<String, Vec<u8>> {
    let mut out = BTreeMap::new();
    let mut list = vec![0u8; 1 << 16];
    let Ok(n) = rustix::fs::llistxattr(path, &mut list[..]) else {
        return out;
    };
    for raw in list[..n].split(|&b| b == 0).filter(|s| !s.is_empty()) {
        let name = std::str::from_utf8(raw).expect("name");
        if kept(name).is_none() {
            continue;
        }
        let mut v = vec![0u8; 1 << 16];
        let len = rustix::fs::lgetxattr(path, name, &mut v[..]).expect("getxattr");
        let v = convert(name, &v[..len], ids, Direction::ToRelative).expect("convert");
        out.insert(name.to_string(), v);
    }
    out
}

/// Every entry below `top` (the top itself as the empty path).
pub(super) fn snapshot(top: &Path, ids: IdShift) -> BTreeMap<Vec<u8>, Seen> {
    let mut out = BTreeMap::new();
    let mut todo = vec![PathBuf::new()];
    while let Some(rel) = todo.pop() {
        let full = top.join(&rel);
        let m = fs::symlink_metadata(&full).expect("lstat");
        let kind = kind_of(m.file_type());
        let content = match kind {
            "file" => file_content(&full),
            "symlink" => format!("{:?}", fs::read_link(&full).expect("readlink")),
            "char" => format!("{}", m.rdev()),
            _ => String::new(),
        };
        let key = rel.as_os_str().as_bytes().to_vec();
        let xattrs = if kind == "file" || kind == "dir" {
            xattrs_of(&full, ids)
        } else {
            BTreeMap::new()
        };
        out.insert(
            key,
            Seen {
                kind,
                mode: m.mode() & 0o7777,
                uid: m.uid().wrapping_sub(ids.uid_base),
                gid: m.gid().wrapping_sub(ids.gid_base),
                mtime: (m.mtime(), m.mtime_nsec()),
                nlink: if kind == "dir" { 0 } else { m.nlink() },
                content,
                xattrs,
                link_group: None,
            },
        );
        if kind == "dir" {
            for e in fs::read_dir(&full).expect("read_dir") {
                todo.push(rel.join(e.expect("entry").file_name()));
            }
        }
    }
    // Link groups named by their smallest path.
    let mut by_ino: BTreeMap<u64, Vec<u8>> = BTreeMap::new();
    for (path, _) in out.iter() {
        let full = top.join(std::ffi::OsStr::from_bytes(path));
        let m = fs::symlink_metadata(&full).expect("lstat");
        if m.is_file() && m.nlink() > 1 {
            let e = by_ino.entry(m.ino()).or_insert_with(|| path.clone());
            if path < e {
                *e = path.clone();
            }
        }
    }
    for (path, seen) in out.iter_mut() {
        let full = top.join(std::ffi::OsStr::from_bytes(path));
        let m = fs::symlink_metadata(&full).expect("lstat");
        if m.is_file() && m.nlink() > 1 {
            seen.link_group = by_ino.get(&m.ino()).cloned();
        }
    }
    out
}

/// Asserts two snapshots are equal, naming the first difference.
pub(super) fn assert_same(want: &BTreeMap<Vec<u8>, Seen>, got: &BTreeMap<Vec<u8>, Seen>) {
    for (path, w) in want {
        let name = String::from_utf8_lossy(path);
        let g = got
            .get(path)
            .unwrap_or_else(|| panic!("'{name}' is missing"));
        assert_eq!(w, g, "'{name}' differs");
    }
    for path in got.keys() {
        assert!(
            want.contains_key(path),
            "'{}' should not be there",
            String::from_utf8_lossy(path)
        );
    }
}

/// Entries of directory `dir` (names), to check nothing else was made.
pub(super) fn names_in(dir: &Path) -> Vec<String> {
    let mut v: Vec<String> = fs::read_dir(dir)
        .expect("read_dir")
        .map(|e| e.expect("entry").file_name().to_string_lossy().into_owned())
        .collect();
    v.sort();
    v
}

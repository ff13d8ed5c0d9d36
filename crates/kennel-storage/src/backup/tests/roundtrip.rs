//! A tree with every kind of entry a VE's upper layer can hold, backed up
//! from one id range and restored into another.

use std::fs;
use std::os::unix::fs::{MetadataExt, PermissionsExt};
use std::path::Path;

use rustix::fs::{FileType, Mode, XattrFlags, CWD};

use super::*;
use crate::backup::{read_index, read_manifest, restore_chain, verify, BackupKind, RestoreOptions};

const CAP_V3: u32 = 0x0300_0000;
const CAP_V2: u32 = 0x0200_0000;

fn cap(rev: u32, rootid: Option<u32>) -> Vec<u8> {
    let mut v = (rev | 1).to_le_bytes().to_vec();
    v.extend_from_slice(&[0x00, 0x20, 0, 0, 0, 0, 0, 0]); // cap_net_raw
    v.extend_from_slice(&[0; 8]);
    if let Some(r) = rootid {
        v.extend_from_slice(&r.to_le_bytes());
    }
    v
}

fn acl(entries: &[(u16, u16, u32)]) -> Vec<u8> {
    let mut v = 2u32.to_le_bytes().to_vec();
    for (tag, perm, id) in entries {
        v.extend_from_slice(&tag.to_le_bytes());
        v.extend_from_slice(&perm.to_le_bytes());
        v.extend_from_slice(&id.to_le_bytes());
    }
    v
}

fn setx(path: &Path, name: &str, value: &[u8]) {
    rustix::fs::lsetxattr(path, name, value, XattrFlags::empty()).expect("setxattr");
}

fn mknod(path: &Path, ft: FileType, mode: u32, dev: u64) {
    rustix::fs::mknodat(CWD, path, ft, Mode::from_raw_mode(mode), dev).expect("mknod");
}

/// A sparse file of 16 TiB (ext4's largest) with two data segments.
pub(super) const SPARSE_SIZE: u64 = (16 << 40) - 4096;

/// Builds the test tree at `t`, owned by the [`FROM`] range.
pub(super) fn build_tree(t: &Path) {
    let b = FROM.uid_base;
    for d in ["a/b/c", "d", "o", "acld", "empty-dir"] {
        fs::create_dir_all(t.join(d)).expect("mkdir");
    }
    fs::write(t.join("a/file1"), "hello\n").expect("write");
    let deep: Vec<u8> = (0..100_000u32).map(|i| (i * 7 % 251) as u8).collect();
    fs::write(t.join("a/b/c/deep"), &deep).expect("write");
    fs::write(t.join("empty"), "").expect("write");
    fs::write(t.join("suid"), "#!/bin/sh\n").expect("write");
    fs::write(t.join(b"bytes-\xff\xfe".as_slice().to_os_str()), "odd name").expect("write");
    {
        use std::os::unix::fs::FileExt;
        let f = fs::File::create(t.join("sparse")).expect("create");
        f.set_len(SPARSE_SIZE).expect("truncate");
        f.write_all_at(&[b'A'; 65536], 1 << 20).expect("write");
        f.write_all_at(&[b'Z'; 4096], SPARSE_SIZE - 4096)
            .expect("write");
    }
    fs::write(t.join("h1"), "linked three times").expect("write");
    fs::hard_link(t.join("h1"), t.join("a/h2")).expect("link");
    fs::hard_link(t.join("h1"), t.join("d/h3")).expect("link");
    std::os::unix::fs::symlink("/etc/passwd", t.join("abs")).expect("symlink");
    std::os::unix::fs::symlink("a/file1", t.join("rel")).expect("symlink");
    std::os::unix::fs::symlink("nowhere", t.join("dangling")).expect("symlink");
    std::os::unix::fs::symlink("../../../../etc/", t.join("outside")).expect("symlink");
    mknod(&t.join("fifo"), FileType::Fifo, 0o640, 0);
    mknod(&t.join("wh"), FileType::CharacterDevice, 0, 0);
    mknod(&t.join("sock"), FileType::Socket, 0o755, 0);
    mknod(
        &t.join("null"),
        FileType::CharacterDevice,
        0o666,
        rustix::fs::makedev(1, 3),
    );
    fs::write(t.join("foreign"), "not the VE's").expect("write");
    fs::write(t.join("cap3"), "ping").expect("write");
    fs::write(t.join("cap2"), "ping").expect("write");
    fs::write(t.join("acl"), "acl").expect("write");
    // Owners first: chown drops capabilities and set-id bits.
    let mut all = Vec::new();
    let mut todo = vec![t.to_path_buf()];
    while let Some(p) = todo.pop() {
        if fs::symlink_metadata(&p).expect("lstat").is_dir() {
            for e in fs::read_dir(&p).expect("read_dir") {
                todo.push(e.expect("entry").path());
            }
        }
        all.push(p);
    }
    for p in &all {
        own(p, b, b);
    }
    own(&t.join("a/file1"), b + 1000, b + 1000);
    own(&t.join("foreign"), 5, 5);
    own(&t.join("fifo"), b + 33, b + 44);
    fs::set_permissions(t.join("suid"), fs::Permissions::from_mode(0o4755)).expect("chmod");
    fs::set_permissions(t.join("d"), fs::Permissions::from_mode(0o1777)).expect("chmod");
    fs::set_permissions(t.join("a/b"), fs::Permissions::from_mode(0o2750)).expect("chmod");
    fs::set_permissions(t.join("empty"), fs::Permissions::from_mode(0o600)).expect("chmod");
    setx(&t.join("o"), "trusted.overlay.opaque", b"y");
    setx(&t.join("a/file1"), "user.test", b"value");
    setx(
        &t.join("a/file1"),
        "trusted.overlay.origin",
        b"\x00\xfb\x21host-handle",
    );
    setx(
        &t.join("cap3"),
        "security.capability",
        &cap(CAP_V3, Some(b)),
    );
    setx(&t.join("cap2"), "security.capability", &cap(CAP_V2, None));
    setx(
        &t.join("acl"),
        "system.posix_acl_access",
        &acl(&[
            (1, 6, u32::MAX),
            (2, 4, b + 1000),
            (4, 4, u32::MAX),
            (8, 6, b + 50),
            (0x10, 6, u32::MAX),
            (0x20, 0, u32::MAX),
        ]),
    );
    setx(
        &t.join("acld"),
        "system.posix_acl_default",
        &acl(&[
            (1, 7, u32::MAX),
            (2, 5, b + 7),
            (4, 5, u32::MAX),
            (0x10, 7, u32::MAX),
            (0x20, 5, u32::MAX),
        ]),
    );
    // Times last, deepest first (a child's creation changes its parent).
    all.sort_by_key(|p| std::cmp::Reverse(p.components().count()));
    for (i, p) in all.iter().enumerate() {
        set_mtime(p, 1_600_000_000 + i as i64, 123_456_789 + i as u32);
    }
}

trait ToOsStr {
    fn to_os_str(&self) -> &std::ffi::OsStr;
}

impl ToOsStr for [u8] {
    fn to_os_str(&self) -> &std::ffi::OsStr {
        std::os::unix::ffi::OsStrExt::from_bytes(self)
    }
}

#[test]
fn a_tree_round_trips_into_another_range() {
    let s = scratch();
    let tree = s.path().join("tree");
    fs::create_dir(&tree).expect("mkdir");
    build_tree(&tree);
    let file = s.path().join("full.kbk");
    let t0 = std::time::Instant::now();
    let report = backup_file(&tree, None, &file);
    let took = t0.elapsed();
    assert!(took.as_secs() < 5, "backup took {took:?}");
    assert_eq!(report.skipped.devices, 1, "{report:?}");
    assert_eq!(report.skipped.foreign_owner, 1, "{report:?}");
    assert_eq!(
        report.skipped.xattrs, 1,
        "trusted.overlay.origin: {report:?}"
    );
    assert_eq!(report.manifest.kind, BackupKind::Full);
    assert!(
        report.layer_bytes < 1 << 20,
        "holes were stored: {report:?}"
    );

    let m = read_manifest(&file).expect("manifest");
    assert_eq!(m, report.manifest);
    let v = verify(fs::File::open(&file).expect("open"), &|_| {}).expect("verify");
    assert_eq!(v.sha256, report.sha256);
    assert_eq!(v.entries, report.entries);
    let idx = read_index(&file).expect("index");
    assert_eq!(idx.id, report.manifest.id);
    assert_eq!(idx.entries.len() as u64, report.entries);

    let dest = s.path().join("dest");
    fs::create_dir(&dest).expect("mkdir");
    let opts = RestoreOptions {
        over_prepared: false,
        ids: TO,
        limits: Default::default(),
    };
    let r = restore_chain(
        [fs::File::open(&file).expect("open")],
        &dest,
        &opts,
        &|_| {},
    )
    .expect("restore");
    assert_eq!(
        r.unpacked[0].refused_count, 0,
        "{:?}",
        r.unpacked[0].refused
    );
    assert_eq!(r.unpacked[0].whiteouts, 1);

    let mut want = snapshot(&tree, FROM);
    want.remove(&b"null"[..]);
    want.remove(&b"foreign"[..]);
    let got = snapshot(&dest, TO);
    assert_same(&want, &got);

    // Ids in attributes are the new range's, the host handle is gone.
    let mut v = [0u8; 64];
    let n =
        rustix::fs::getxattr(dest.join("cap3"), "security.capability", &mut v[..]).expect("cap");
    assert_eq!(&v[20..n], &TO.uid_base.to_le_bytes());
    let n =
        rustix::fs::getxattr(dest.join("acl"), "system.posix_acl_access", &mut v[..]).expect("acl");
    assert_eq!(
        &v[16..20],
        &(TO.uid_base + 1000).to_le_bytes(),
        "{:?}",
        &v[..n]
    );
    assert!(
        rustix::fs::getxattr(dest.join("a/file1"), "trusted.overlay.origin", &mut v[..]).is_err()
    );
    let top = fs::metadata(&dest).expect("stat");
    assert_eq!((top.uid(), top.gid()), (TO.uid_base, TO.gid_base));
    // The holes stayed holes.
    let sp = fs::metadata(dest.join("sparse")).expect("stat");
    assert_eq!(sp.len(), SPARSE_SIZE);
    assert!(sp.blocks() * 512 < 4 << 20, "{} blocks", sp.blocks());
    assert_eq!(fs::metadata(dest.join("h1")).expect("stat").nlink(), 3);
}

#[test]
fn many_segments_span_several_members() {
    use std::os::unix::fs::FileExt;
    let s = scratch();
    let tree = s.path().join("tree");
    fs::create_dir(&tree).expect("mkdir");
    let f = fs::File::create(tree.join("holes")).expect("create");
    let n = crate::backup::sparse_map::MAX_SEGMENTS as u64 * 2 + 5;
    for i in 0..n {
        f.write_all_at(&i.to_le_bytes(), i * 65536).expect("write");
    }
    f.set_len(n * 65536 + 1).expect("truncate");
    drop(f);
    own(&tree, FROM.uid_base, FROM.gid_base);
    own(&tree.join("holes"), FROM.uid_base, FROM.gid_base);
    let file = s.path().join("b.kbk");
    let report = backup_file(&tree, None, &file);
    assert_eq!(report.members, 2 + 1 + 3, "{report:?}");
    let dest = s.path().join("dest");
    fs::create_dir(&dest).expect("mkdir");
    let opts = RestoreOptions {
        over_prepared: false,
        ids: TO,
        limits: Default::default(),
    };
    restore_chain(
        [fs::File::open(&file).expect("open")],
        &dest,
        &opts,
        &|_| {},
    )
    .expect("restore");
    assert_same(&snapshot(&tree, FROM), &snapshot(&dest, TO));
}

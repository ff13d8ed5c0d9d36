//! Writes the seeds of `fuzz/corpus/backup/` (run as root, it chowns):
//!
//!     cargo test -p kennel-fuzz --test backup_seeds -- --ignored
//!
//! Two small trees (a full backup, then an incremental after a few
//! changes) are backed up by `write_backup`, and each backup is written as
//! inputs of the `backup` target (see `crates/kennel-fuzz/src/backup/input.rs`
//! for the control byte): as a file and as its tar stream, alone and as a
//! chain, whole, truncated and with a byte changed; and one tar stream
//! with hostile members added (a symlink to the outside and a file written
//! through it, `..`, a device node, a foreign owner, a hard link out).
//! The seeds are named after what they are; the fuzzer's finds, by SHA-1,
//! are not rewritten.
#![allow(clippy::expect_used, clippy::unwrap_used)] // test code

use std::fs;
use std::io::Read;
use std::os::unix::fs::{symlink, FileExt};
use std::path::{Path, PathBuf};

use kennel_storage::backup::{
    read_index, write_backup, BackupRequest, Compression, IdShift, TemplateRef,
};

const FROM: IdShift = IdShift {
    uid_base: 100_000,
    gid_base: 100_000,
};

/// Control bytes: tar or file, chain, mend headers, limits 1000 members
/// and 1 MiB.
const FILE: u8 = 1 | 3 << 3 | 3 << 5;
const TAR: u8 = 4 | 3 << 3 | 3 << 5;
const CHAIN: u8 = 2;
const KEEP_END: u8 = 0x80;

fn corpus() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../fuzz/corpus/backup")
}

fn lchown_all(top: &Path) {
    for e in walk(top) {
        std::os::unix::fs::lchown(&e, Some(FROM.uid_base), Some(FROM.gid_base)).expect("lchown");
    }
}

fn walk(top: &Path) -> Vec<PathBuf> {
    let mut out = vec![top.to_path_buf()];
    let mut i = 0;
    while i < out.len() {
        let p = out[i].clone();
        if fs::symlink_metadata(&p).expect("lstat").is_dir() {
            for e in fs::read_dir(&p).expect("read_dir") {
                out.push(e.expect("entry").path());
            }
        }
        i += 1;
    }
    out
}

fn backup(tree: &Path, base: Option<&Path>, out: &Path) -> Vec<u8> {
    let index = base.map(|b| read_index(b).expect("read the base's index"));
    let req = BackupRequest {
        tree,
        ids: FROM,
        ve_conf: "hostname = \"seed\"\n".into(),
        template: TemplateRef {
            name: "busybox".into(),
            digest: "sha256:00".into(),
        },
        base: index.as_ref(),
        template_tree: None,
        compression: Compression {
            level: 19,
            threads: 1,
        },
    };
    let f = fs::File::create(out).expect("create");
    let report = write_backup(std::io::BufWriter::new(f), &req, &|_| {}).expect("backup");
    assert_eq!(report.skipped.devices, 0, "{report:?}");
    fs::read(out).expect("read the backup")
}

/// The tar stream of a backup file, without the padding to a 10 KiB
/// record after its two zero blocks (smaller seeds).
fn tar_of(file: &[u8]) -> Vec<u8> {
    let mut tar = zstd::decode_all(file).expect("decompress");
    let data = tar.iter().rposition(|&b| b != 0).map_or(0, |i| i + 1);
    tar.truncate((data.div_ceil(512) + 2) * 512);
    tar
}

fn chain(ctl: u8, a: &[u8], b: &[u8]) -> Vec<u8> {
    let mut v = vec![ctl | CHAIN];
    v.extend_from_slice(&u16::try_from(a.len()).expect("small").to_le_bytes());
    v.extend_from_slice(a);
    v.extend_from_slice(b);
    v
}

fn one(ctl: u8, a: &[u8]) -> Vec<u8> {
    let mut v = vec![ctl];
    v.extend_from_slice(a);
    v
}

/// One ustar member, written raw (names `tar::Builder` refuses).
fn member(name: &[u8], kind: tar::EntryType, link: &[u8], uid: u64, data: &[u8]) -> Vec<u8> {
    let mut h = tar::Header::new_ustar();
    h.as_old_mut().name[..name.len()].copy_from_slice(name);
    h.as_old_mut().linkname[..link.len()].copy_from_slice(link);
    h.set_entry_type(kind);
    h.set_size(data.len() as u64);
    h.set_mode(if kind.is_dir() { 0o755 } else { 0o644 });
    h.set_uid(uid);
    h.set_gid(uid);
    h.set_mtime(1_700_000_000);
    if kind == tar::EntryType::Char {
        h.set_device_major(1).unwrap();
        h.set_device_minor(3).unwrap();
    }
    h.set_cksum();
    let mut v = h.as_bytes().to_vec();
    v.extend_from_slice(data);
    v.resize(v.len().div_ceil(512) * 512, 0);
    v
}

/// `tar` with `extra` inserted before its index member.
fn with_members(tar: &[u8], extra: &[u8]) -> Vec<u8> {
    let mut archive = tar::Archive::new(tar);
    let at = archive
        .entries()
        .expect("entries")
        .map(|e| e.expect("entry"))
        .find(|e| &*e.path_bytes() == b"kennel-index.jsonl")
        .map(|e| e.raw_header_position())
        .expect("an index");
    let at = usize::try_from(at).expect("small");
    let mut v = tar[..at].to_vec();
    v.extend_from_slice(extra);
    v.extend_from_slice(&tar[at..]);
    v
}

#[test]
#[ignore = "writes fuzz/corpus/backup/; run by hand as root"]
fn write_seeds() {
    let dir = tempfile::Builder::new()
        .prefix("kennel-fuzz-seeds")
        .tempdir_in("/var/tmp")
        .expect("tempdir");
    let tree = dir.path().join("tree");
    fs::create_dir(&tree).expect("mkdir");
    fs::write(tree.join("a"), "hello\n").expect("write");
    fs::create_dir(tree.join("d")).expect("mkdir");
    fs::write(tree.join("d/b"), "bee\n").expect("write");
    symlink("../a", tree.join("d/l")).expect("symlink");
    fs::hard_link(tree.join("a"), tree.join("d/h")).expect("link");
    rustix::fs::mknodat(
        rustix::fs::CWD,
        tree.join("p"),
        rustix::fs::FileType::Fifo,
        rustix::fs::Mode::from_raw_mode(0o600),
        0,
    )
    .expect("mkfifo");
    rustix::fs::mknodat(
        rustix::fs::CWD,
        tree.join("w"),
        rustix::fs::FileType::CharacterDevice,
        rustix::fs::Mode::from_raw_mode(0o600),
        0,
    )
    .expect("whiteout");
    let s = fs::File::create(tree.join("s")).expect("create");
    s.set_len(1 << 20).expect("set_len");
    s.write_all_at(b"xy", 1 << 19).expect("write");
    drop(s);
    rustix::fs::lsetxattr(
        tree.join("a").as_path(),
        "user.seed",
        b"1",
        rustix::fs::XattrFlags::empty(),
    )
    .expect("setxattr");
    lchown_all(&tree);
    let full_path = dir.path().join("full.kbk");
    let full = backup(&tree, None, &full_path);

    fs::write(tree.join("d/b"), "changed\n").expect("write");
    fs::remove_file(tree.join("p")).expect("rm");
    fs::write(tree.join("n"), "new\n").expect("write");
    // Only what changed: a chown changes the ctime, and the files left
    // alone become unchanged members of the incremental.
    for p in ["n", "d/b"] {
        std::os::unix::fs::lchown(tree.join(p), Some(FROM.uid_base), Some(FROM.gid_base))
            .expect("lchown");
    }
    let incr = backup(&tree, Some(&full_path), &dir.path().join("incr.kbk"));

    let (full_tar, incr_tar) = (tar_of(&full), tar_of(&incr));
    let mut truncated = full.clone();
    truncated.truncate(full.len() / 2);
    let mut flipped = full.clone();
    let mid = full.len() / 2;
    flipped[mid] ^= 0x20;
    let mut tar_cut = full_tar.clone();
    tar_cut.truncate(full_tar.len() / 2);

    let mut hostile = Vec::new();
    let reg = tar::EntryType::Regular;
    hostile.extend(member(b"layer/esc", tar::EntryType::Symlink, b"@", 0, b""));
    hostile.extend(member(b"layer/esc/canary", reg, b"", 0, b"overwritten\n"));
    hostile.extend(member(b"layer/esc/new", reg, b"", 0, b"made outside\n"));
    hostile.extend(member(b"layer/../up", reg, b"", 0, b"up\n"));
    hostile.extend(member(b"layer/dev", tar::EntryType::Char, b"", 0, b""));
    hostile.extend(member(b"layer/foreign", reg, b"", 70_000, b"x"));
    hostile.extend(member(
        b"layer/hl",
        tar::EntryType::Link,
        b"../canary",
        0,
        b"",
    ));
    let hostile_tar = with_members(&full_tar, &hostile);

    let seeds: [(&str, Vec<u8>); 12] = [
        ("full-file", one(FILE, &full)),
        ("full-tar", one(TAR, &full_tar)),
        // Headers not mended either: mending rewrites their checksums'
        // digits, which the kept end record's hash covers.
        ("full-tar-end-kept", one((TAR & !4) | KEEP_END, &full_tar)),
        ("incremental-alone-file", one(FILE, &incr)),
        ("chain-file", chain(FILE, &full, &incr)),
        ("chain-tar", chain(TAR, &full_tar, &incr_tar)),
        ("chain-reversed-file", chain(FILE, &incr, &full)),
        ("full-file-truncated", one(FILE, &truncated)),
        ("full-file-byte-changed", one(FILE, &flipped)),
        ("full-tar-truncated", one(TAR, &tar_cut)),
        ("hostile-tar", one(TAR, &hostile_tar)),
        (
            "chain-hostile-tar",
            chain(TAR, &full_tar, &with_members(&incr_tar, &hostile)),
        ),
    ];
    let out = corpus();
    fs::create_dir_all(&out).expect("mkdir corpus");
    for (name, data) in seeds {
        fs::write(out.join(name), data).expect("write a seed");
    }
    let mut check = Vec::new();
    fs::File::open(out.join("full-file"))
        .expect("open")
        .read_to_end(&mut check)
        .expect("read");
    assert_eq!(check[0], FILE);
}

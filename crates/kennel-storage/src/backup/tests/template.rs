//! Backups that hold their template (`--with-template`): the template
//! comes back out as it was (owners unshifted, through the template
//! import's rules), a restore of the layer ignores it, and a damaged or
//! forged stream is refused.

use std::fs;
use std::os::unix::fs::PermissionsExt;
use std::path::Path;

use rustix::fs::{FileType, Mode, XattrFlags, CWD};
use tar::EntryType;

use super::hostile::{craft_with, raw};
use super::*;
use crate::backup::{
    extract_template, extract_template_report, read_index, restore_chain, verify, BackupError,
    BackupKind, RestoreOptions, Skipped,
};
use crate::template::tree_digest;
use crate::unpack::UnpackLimits;
use crate::StorageError;

/// A v2 file capability (cap_net_raw), no root id.
fn cap_v2() -> Vec<u8> {
    let mut v = 0x0200_0001u32.to_le_bytes().to_vec();
    v.extend_from_slice(&[0x00, 0x20, 0, 0, 0, 0, 0, 0]);
    v.extend_from_slice(&[0; 8]);
    v
}

/// Builds a tiny template at `t`, owned by host ids (root, and 1000 for
/// a user's directory), with whole-second times (what a template import
/// keeps). Returns the paths a template must not get (a device node, a
/// file of a foreign owner, a socket), for the caller to remove from the
/// source before comparing.
pub(super) fn build_template(t: &Path) -> Vec<&'static str> {
    for d in ["etc", "usr/bin", "home/u", "var/log", "dev"] {
        fs::create_dir_all(t.join(d)).expect("mkdir");
    }
    fs::write(t.join("etc/os-release"), "PRETTY_NAME=\"Tiny\"\n").expect("write");
    fs::write(t.join("etc/machine-id"), "").expect("write");
    fs::write(t.join("etc/hostname"), "localhost\n").expect("write");
    fs::write(t.join("usr/bin/ping"), "#!/bin/true\n").expect("write");
    fs::write(t.join("usr/bin/a"), "linked").expect("write");
    fs::hard_link(t.join("usr/bin/a"), t.join("usr/bin/b")).expect("link");
    fs::write(t.join("home/u/notes"), "mine").expect("write");
    std::os::unix::fs::symlink("usr/bin", t.join("bin")).expect("symlink");
    {
        use std::os::unix::fs::FileExt;
        let f = fs::File::create(t.join("var/log/lastlog")).expect("create");
        f.set_len(64 << 20).expect("truncate");
        f.write_all_at(&[7u8; 4096], 1 << 20).expect("write");
    }
    rustix::fs::mknodat(
        CWD,
        t.join("dev/null"),
        FileType::CharacterDevice,
        Mode::from_raw_mode(0o666),
        rustix::fs::makedev(1, 3),
    )
    .expect("mknod");
    rustix::fs::mknodat(
        CWD,
        t.join("sock"),
        FileType::Socket,
        Mode::from_raw_mode(0o755),
        0,
    )
    .expect("mknod");
    fs::write(t.join("foreign"), "not a VE's").expect("write");
    own(&t.join("home/u"), 1000, 1000);
    own(&t.join("home/u/notes"), 1000, 1000);
    own(&t.join("foreign"), 70_000, 70_000);
    fs::set_permissions(t.join("usr/bin/ping"), fs::Permissions::from_mode(0o4755)).expect("chmod");
    let setx = |p: &str, k: &str, v: &[u8]| {
        rustix::fs::lsetxattr(t.join(p), k, v, XattrFlags::empty()).expect("setxattr")
    };
    setx("usr/bin/ping", "security.capability", &cap_v2());
    setx("etc/os-release", "user.origin", b"tiny");
    // Not a template's: dropped.
    setx("etc/hostname", "trusted.kennel-test", b"x");
    for p in [
        "",
        "etc",
        "etc/os-release",
        "etc/machine-id",
        "etc/hostname",
        "usr",
        "usr/bin",
        "usr/bin/ping",
        "usr/bin/a",
        "home",
        "home/u",
        "home/u/notes",
        "bin",
        "var",
        "var/log",
        "var/log/lastlog",
        "dev",
    ] {
        set_mtime(&t.join(p), 1_700_000_000, 0);
    }
    vec!["dev/null", "foreign", "sock"]
}

/// A small layer owned by the [`FROM`] range.
fn build_layer(l: &Path) {
    fs::create_dir_all(l.join("etc")).expect("mkdir");
    fs::write(l.join("etc/motd"), "hello from the VE\n").expect("write");
    for p in [l.to_path_buf(), l.join("etc"), l.join("etc/motd")] {
        own(&p, FROM.uid_base, FROM.gid_base);
    }
}

/// Writes a backup of `layer` holding `template` to `out`.
fn backup_with(
    layer: &Path,
    template: Option<&Path>,
    base: Option<&BaseIndex>,
    out: &Path,
) -> BackupReport {
    let f = fs::File::create(out).expect("create backup file");
    let req = BackupRequest {
        tree: layer,
        ids: FROM,
        ve_conf: String::new(),
        template: TemplateRef {
            name: "tiny".into(),
            digest: "sha256:ab".into(),
        },
        base,
        compression: Compression::default(),
        template_tree: template,
    };
    write_backup(std::io::BufWriter::new(f), &req, &|_| {}).expect("backup")
}

fn open(p: &Path) -> fs::File {
    fs::File::open(p).expect("open backup")
}

/// A template, a layer and a backup of both, in `s`.
fn setup(
    s: &Path,
) -> (
    std::path::PathBuf,
    std::path::PathBuf,
    std::path::PathBuf,
    BackupReport,
) {
    let (t, l, file) = (s.join("tmpl"), s.join("layer"), s.join("b.kbk"));
    fs::create_dir_all(&t).expect("mkdir");
    fs::create_dir_all(&l).expect("mkdir");
    let bad = build_template(&t);
    build_layer(&l);
    let report = backup_with(&l, Some(&t), None, &file);
    for p in bad {
        fs::remove_file(t.join(p)).expect("remove");
    }
    // Removing entries touched their directories' times.
    for p in ["", "dev"] {
        set_mtime(&t.join(p), 1_700_000_000, 0);
    }
    (t, l, file, report)
}

#[test]
fn a_backup_with_its_template_round_trips() {
    let s = scratch();
    let (t, l, file, report) = setup(s.path());
    assert!(report.manifest.template_included);
    let tw = report.template.clone().expect("template written");
    assert_eq!(tw.skipped.devices, 1, "{tw:?}");
    assert_eq!(tw.skipped.sockets, 1, "{tw:?}");
    assert_eq!(tw.skipped.foreign_owner, 1, "{tw:?}");
    assert_eq!(tw.skipped.xattrs, 1, "{tw:?}");
    assert_eq!(report.entries, 3, "the layer's entries only");
    assert_eq!(report.skipped, Skipped::default());

    // verify reads and checks the template's members too.
    let v = verify(open(&file), &|_| {}).expect("verify");
    assert!(v.manifest.template_included);
    assert_eq!(v.entries, 3);
    assert_eq!(v.template_entries, tw.entries);
    assert_eq!(v.members, report.members);

    // The index lists the layer only.
    let index = read_index(&file).expect("index");
    let mut paths: Vec<_> = index.entries.keys().cloned().collect();
    paths.sort();
    assert_eq!(
        paths,
        vec![b"".to_vec(), b"etc".to_vec(), b"etc/motd".to_vec()]
    );

    // The template comes back as it was, owners unshifted.
    let dest = s.path().join("made");
    fs::create_dir(&dest).expect("mkdir");
    let done = extract_template_report(open(&file), &dest, &UnpackLimits::default(), &|_| {})
        .expect("extract");
    assert_eq!(done.manifest.id, report.manifest.id);
    assert_eq!(
        done.unpacked.refused_count, 0,
        "{:?}",
        done.unpacked.refused
    );
    let base0 = IdShift::default();
    assert_same(&snapshot(&t, base0), &snapshot(&dest, base0));
    let made = snapshot(&dest, base0);
    assert_eq!(made[b"home/u/notes".as_slice()].uid, 1000);
    assert!(made[b"var/log/lastlog".as_slice()]
        .content
        .contains("segments 1"));
    assert_eq!(
        made[b"usr/bin/ping".as_slice()].xattrs["security.capability"],
        cap_v2()
    );
    assert_eq!(names_in(&dest).len(), names_in(&t).len(), "no scratch left");
    assert_eq!(
        tree_digest(&t).expect("digest"),
        tree_digest(&dest).expect("digest")
    );

    // A restore of the chain makes the layer and ignores the template.
    let restored = s.path().join("restored");
    fs::create_dir(&restored).expect("mkdir");
    let opts = RestoreOptions {
        ids: TO,
        ..Default::default()
    };
    let r = restore_chain([open(&file)], &restored, &opts, &|_| {}).expect("restore");
    assert_eq!(r.refusals().entries(), 0, "{:?}", r.refused_summary());
    assert_same(&snapshot(&l, FROM), &snapshot(&restored, TO));
}

#[test]
fn an_incremental_may_hold_the_template_and_a_chain_restores_past_it() {
    let s = scratch();
    let (_t, l, full, _) = setup(s.path());
    fs::write(l.join("etc/motd"), "changed\n").expect("write");
    own(&l.join("etc/motd"), FROM.uid_base, FROM.gid_base);
    let index = read_index(&full).expect("index");
    let inc = s.path().join("inc.kbk");
    // The incremental holds the template too (whole: never incremental).
    let rep = backup_with(&l, Some(&s.path().join("tmpl")), Some(&index), &inc);
    assert_eq!(rep.manifest.kind, BackupKind::Incremental);
    assert!(rep.manifest.template_included);
    let restored = s.path().join("restored");
    fs::create_dir(&restored).expect("mkdir");
    let opts = RestoreOptions {
        ids: TO,
        ..Default::default()
    };
    restore_chain([open(&full), open(&inc)], &restored, &opts, &|_| {}).expect("restore");
    assert_eq!(
        fs::read_to_string(restored.join("etc/motd")).expect("read"),
        "changed\n"
    );
    let dest = s.path().join("made");
    fs::create_dir(&dest).expect("mkdir");
    extract_template(open(&inc), &dest, &UnpackLimits::default(), &|_| {}).expect("extract");
    assert!(dest.join("usr/bin/ping").exists());
}

#[test]
fn a_truncated_or_damaged_backup_makes_no_template() {
    let s = scratch();
    let (_t, _l, file, _) = setup(s.path());
    let bytes = fs::read(&file).expect("read");
    for cut in [bytes.len() / 2, bytes.len() - 100, bytes.len() - 1] {
        let dest = s.path().join(format!("cut-{cut}"));
        fs::create_dir(&dest).expect("mkdir");
        let r = extract_template(&bytes[..cut], &dest, &UnpackLimits::default(), &|_| {});
        assert!(
            matches!(
                r,
                Err(StorageError::Backup(
                    BackupError::Truncated | BackupError::Corrupt(_)
                ))
            ),
            "cut at {cut}: {r:?}"
        );
    }
    // Bounded: a limit below the template's size stops it.
    let dest = s.path().join("small");
    fs::create_dir(&dest).expect("mkdir");
    let tight = UnpackLimits {
        max_bytes: 1 << 30,
        max_entries: 5,
    };
    assert!(extract_template(open(&file), &dest, &tight, &|_| {}).is_err());
}

#[test]
fn a_backup_without_a_template_has_none_to_give() {
    let s = scratch();
    let l = s.path().join("layer");
    fs::create_dir(&l).expect("mkdir");
    build_layer(&l);
    let file = s.path().join("b.kbk");
    let rep = backup_with(&l, None, None, &file);
    assert!(!rep.manifest.template_included);
    assert!(rep.template.is_none());
    let dest = s.path().join("made");
    fs::create_dir(&dest).expect("mkdir");
    let r = extract_template(open(&file), &dest, &UnpackLimits::default(), &|_| {});
    assert!(
        matches!(r, Err(StorageError::Backup(BackupError::NoTemplate))),
        "{r:?}"
    );
    // The manifest of such a backup has no template field at all (an
    // older kennel reads it).
    let text = fs::read(&file).expect("read");
    let tar = zstd::decode_all(&text[..text.len() - 72]).expect("zstd");
    let tar = String::from_utf8_lossy(&tar);
    assert!(!tar.contains("template_included"));
}

#[test]
fn forged_template_members_are_refused() {
    let s = scratch();
    let mut f = raw(b"template/../x", EntryType::Regular);
    f.data = b"escape".to_vec();
    let mut link = raw(b"template/l", EntryType::Link);
    link.link = Some(b"layer/secret".to_vec());
    let members = [
        raw(b"template/", EntryType::Directory),
        f,
        raw(b"template/ok", EntryType::Regular),
        link,
        raw(b"layer/", EntryType::Directory),
    ];
    let stream = craft_with(&members, true);
    let sandbox = s.path().join("sandbox");
    let dest = sandbox.join("dest");
    fs::create_dir_all(&dest).expect("mkdir");
    let done = extract_template_report(stream.as_slice(), &dest, &UnpackLimits::default(), &|_| {})
        .expect("extract");
    assert_eq!(
        done.unpacked.refused_by.paths, 1,
        "{:?}",
        done.unpacked.refused
    );
    assert_eq!(
        done.unpacked.refused_by.hard_links, 1,
        "{:?}",
        done.unpacked.refused
    );
    assert_eq!(
        names_in(&sandbox),
        vec!["dest".to_string()],
        "written outside"
    );
    assert_eq!(names_in(&dest), vec!["ok".to_string()]);
    // verify says what is wrong with it.
    let v = verify(stream.as_slice(), &|_| {});
    assert!(
        matches!(&v, Err(StorageError::Backup(BackupError::Corrupt(why))) if why.contains("'..'")),
        "{v:?}"
    );

    // Template members in a backup whose manifest does not say so, or
    // after the layer's, are not a backup Kennel writes.
    let plain = craft_with(
        &[
            raw(b"template/", EntryType::Directory),
            raw(b"layer/", EntryType::Directory),
        ],
        false,
    );
    assert!(verify(plain.as_slice(), &|_| {}).is_err());
    let restored = s.path().join("restored");
    fs::create_dir(&restored).expect("mkdir");
    assert!(restore_chain(
        [plain.as_slice()],
        &restored,
        &RestoreOptions::default(),
        &|_| {}
    )
    .is_err());
    let after = craft_with(
        &[
            raw(b"template/", EntryType::Directory),
            raw(b"layer/", EntryType::Directory),
            raw(b"template/late", EntryType::Regular),
        ],
        true,
    );
    assert!(verify(after.as_slice(), &|_| {}).is_err());
    let none = craft_with(&[raw(b"layer/", EntryType::Directory)], true);
    assert!(verify(none.as_slice(), &|_| {}).is_err());
}

//! What overlayfs puts in an upper layer, through a backup and a restore:
//! whiteouts (made by a real overlay mount, owned by host root) and
//! overlayfs's own attributes (written by a backup as they are, narrowed
//! by a restore).

use std::fs;
use std::os::unix::fs::{FileTypeExt, MetadataExt};
use std::path::{Path, PathBuf};

use rustix::fs::{FileType, Mode, XattrFlags, CWD};
use rustix::mount::{MountFlags, UnmountFlags};

use super::*;
use crate::backup::index::EntryKind;
use crate::backup::{read_index, restore_chain, verify, RestoreOptions, RestoreReport};

fn restore_one(file: &Path, dest: &Path) -> RestoreReport {
    fs::create_dir(dest).expect("mkdir");
    let opts = RestoreOptions {
        over_prepared: false,
        ids: TO,
        limits: Default::default(),
    };
    restore_chain([fs::File::open(file).expect("open")], dest, &opts, &|_| {}).expect("restore")
}

fn is_whiteout(path: &Path) -> bool {
    fs::symlink_metadata(path).is_ok_and(|m| m.file_type().is_char_device() && m.rdev() == 0)
}

fn owner(path: &Path) -> (u32, u32) {
    let m = fs::symlink_metadata(path).expect("lstat");
    (m.uid(), m.gid())
}

fn xattr(path: &Path, name: &str) -> Option<Vec<u8>> {
    let mut v = vec![0u8; 4096];
    let n = rustix::fs::lgetxattr(path, name, &mut v[..]).ok()?;
    v.truncate(n);
    Some(v)
}

fn setx(path: &Path, name: &str, value: &[u8]) {
    rustix::fs::lsetxattr(path, name, value, XattrFlags::empty()).expect("setxattr");
}

/// Review finding 2, at the unit level: a whiteout is kept whatever its
/// owner, and stored as the VE root's; no other kind is.
#[test]
fn whiteouts_are_kept_whatever_their_owner() {
    let s = scratch();
    let t = s.path().join("tree");
    fs::create_dir(&t).expect("mkdir");
    let b = FROM.uid_base;
    let node = |name: &str, ft, dev, uid, gid| {
        rustix::fs::mknodat(CWD, t.join(name), ft, Mode::empty(), dev).expect("mknod");
        own(&t.join(name), uid, gid);
    };
    node("wh-host-root", FileType::CharacterDevice, 0, 0, 0);
    node("wh-stranger", FileType::CharacterDevice, 0, 5, 7);
    node("wh-ve", FileType::CharacterDevice, 0, b + 3, b + 4);
    node("fifo-host-root", FileType::Fifo, 0, 0, 0);
    node(
        "null",
        FileType::CharacterDevice,
        rustix::fs::makedev(1, 3),
        b,
        b,
    );
    std::os::unix::fs::symlink("wh-ve", t.join("link-host-root")).expect("symlink");
    own(&t.join("link-host-root"), 0, 0);
    own(&t, b, b);

    let file = s.path().join("b.kbk");
    let report = backup_file(&t, None, &file);
    assert_eq!(report.skipped.foreign_owner, 2, "{report:?}");
    assert_eq!(report.skipped.devices, 1, "{report:?}");
    let idx = read_index(&file).expect("index");
    for name in ["wh-host-root", "wh-stranger", "wh-ve"] {
        let e = idx.entries.get(name.as_bytes()).expect("indexed");
        assert_eq!(e.kind, EntryKind::Whiteout, "{name}");
    }

    let dest = s.path().join("dest");
    let r = restore_one(&file, &dest);
    assert_eq!(r.unpacked[0].whiteouts, 3);
    assert_eq!(
        names_in(&dest),
        vec!["wh-host-root", "wh-stranger", "wh-ve"]
    );
    for name in ["wh-host-root", "wh-stranger", "wh-ve"] {
        assert!(is_whiteout(&dest.join(name)), "{name}");
        assert_eq!(
            owner(&dest.join(name)),
            (TO.uid_base, TO.gid_base),
            "{name}"
        );
    }
}

/// An overlay mount, detached if the test fails before unmounting it.
struct Overlay {
    target: PathBuf,
    mounted: bool,
}

impl Overlay {
    fn mount(lower: &Path, upper: &Path, work: &Path, target: &Path) -> Overlay {
        let opts = format!(
            "lowerdir={},upperdir={},workdir={}",
            lower.display(),
            upper.display(),
            work.display()
        );
        let opts = std::ffi::CString::new(opts).expect("options");
        rustix::mount::mount("overlay", target, "overlay", MountFlags::empty(), &*opts)
            .expect("mount overlay");
        Overlay {
            target: target.to_path_buf(),
            mounted: true,
        }
    }

    fn unmount(mut self) {
        rustix::mount::unmount(&self.target, UnmountFlags::empty()).expect("unmount");
        self.mounted = false;
    }
}

impl Drop for Overlay {
    fn drop(&mut self) {
        if self.mounted {
            let _ = rustix::mount::unmount(&self.target, UnmountFlags::DETACH);
        }
    }
}

/// Review finding 2: a whiteout made by overlayfs itself (an `rm` through
/// a real overlay mount: host root's, linked to the work directory's)
/// is backed up, restored, and still hides the template's file when the
/// restored layer is mounted over the template again.
#[test]
fn a_whiteout_made_by_overlayfs_survives_a_restore() {
    let s = scratch();
    let p = |n: &str| s.path().join(n);
    for d in ["lower/bin", "lower/gone-dir", "upper", "work", "merged"] {
        fs::create_dir_all(p(d)).expect("mkdir");
    }
    fs::write(p("lower/bin/true"), "template's true").expect("write");
    fs::write(p("lower/bin/false"), "template's false").expect("write");
    fs::write(p("lower/gone-dir/x"), "x").expect("write");
    fs::write(p("lower/etc-file"), "template's file").expect("write");
    // The template as a VE sees it (idmapped or shifted): the VE's files.
    let b = FROM.uid_base;
    for f in [
        "lower",
        "lower/bin",
        "lower/bin/true",
        "lower/bin/false",
        "lower/gone-dir",
        "lower/gone-dir/x",
        "lower/etc-file",
        "upper",
    ] {
        own(&p(f), b, b);
    }

    let ov = Overlay::mount(&p("lower"), &p("upper"), &p("work"), &p("merged"));
    fs::remove_file(p("merged/bin/true")).expect("rm through the overlay");
    fs::remove_file(p("merged/etc-file")).expect("rm through the overlay");
    fs::remove_dir_all(p("merged/gone-dir")).expect("rm -r through the overlay");
    ov.unmount();
    // What overlayfs made: whiteouts owned by the mounter, outside the
    // VE's ids (the case the backup used to drop).
    for w in ["upper/bin/true", "upper/etc-file", "upper/gone-dir"] {
        assert!(is_whiteout(&p(w)), "{w} is not a whiteout");
        assert_eq!(owner(&p(w)), (0, 0), "{w}");
    }
    assert_eq!(owner(&p("upper/bin")), (b, b), "copied up with its owner");

    let file = p("b.kbk");
    let report = backup_file(&p("upper"), None, &file);
    // (overlayfs's host-only attributes, `origin` and the like, are
    // dropped as ever.)
    let sk = report.skipped;
    assert_eq!(
        (sk.foreign_owner, sk.devices, sk.changed),
        (0, 0, 0),
        "{sk:?}"
    );
    assert_eq!(report.entries, 5, "top, bin, three whiteouts: {report:?}");
    verify(fs::File::open(&file).expect("open"), &|_| {}).expect("verify");
    let r = restore_one(&file, &p("restored"));
    assert_eq!(r.unpacked[0].whiteouts, 3, "{r:?}");
    assert_eq!(r.refused_summary(), None);
    for w in ["bin/true", "etc-file", "gone-dir"] {
        assert!(is_whiteout(&p("restored").join(w)), "{w} was lost");
    }

    // The restored layer over the template: the deleted files stay deleted.
    fs::create_dir(p("work2")).expect("mkdir");
    let ov = Overlay::mount(&p("lower"), &p("restored"), &p("work2"), &p("merged"));
    let seen = (
        p("merged/bin/true").symlink_metadata().is_ok(),
        p("merged/etc-file").symlink_metadata().is_ok(),
        p("merged/gone-dir").symlink_metadata().is_ok(),
        fs::read_to_string(p("merged/bin/false")).ok(),
    );
    ov.unmount();
    assert_eq!(
        seen,
        (false, false, false, Some("template's false".to_string()))
    );
}

/// Review finding 4, through the writer: a backup records overlayfs's
/// markers as they are; a restore keeps only `opaque=y`, drops redirects,
/// and skips metadata-only copies (and hard links to them), counting all.
#[test]
fn overlay_markers_are_backed_up_as_they_are_and_narrowed_on_restore() {
    let s = scratch();
    let t = s.path().join("tree");
    for d in ["renamed", "opaque-y", "opaque-x"] {
        fs::create_dir_all(t.join(d)).expect("mkdir");
    }
    // A metadata-only copy: the lower file's size, no data of its own.
    let mc = fs::File::create(t.join("mc")).expect("create");
    mc.set_len(4096).expect("truncate");
    drop(mc);
    fs::hard_link(t.join("mc"), t.join("mc-link")).expect("link");
    fs::write(t.join("plain"), "data").expect("write");
    for e in [
        "", "renamed", "opaque-y", "opaque-x", "mc", "mc-link", "plain",
    ] {
        own(&t.join(e), FROM.uid_base, FROM.gid_base);
    }
    setx(&t.join("mc"), "trusted.overlay.metacopy", b"");
    setx(&t.join("renamed"), "trusted.overlay.redirect", b"/old-name");
    setx(&t.join("opaque-y"), "trusted.overlay.opaque", b"y");
    setx(&t.join("opaque-x"), "trusted.overlay.opaque", b"x");

    let file = s.path().join("b.kbk");
    let report = backup_file(&t, None, &file);
    assert_eq!(report.skipped, Default::default(), "{report:?}");
    assert_eq!(report.entries, 7, "{report:?}");
    let idx = read_index(&file).expect("index");
    assert!(idx.entries.contains_key(&b"mc"[..]));

    let dest = s.path().join("dest");
    let r = restore_one(&file, &dest);
    let u = &r.unpacked[0];
    assert_eq!((u.metacopy, u.xattrs_dropped, u.refused_count), (2, 2, 0));
    assert_eq!(
        names_in(&dest),
        vec!["opaque-x", "opaque-y", "plain", "renamed"]
    );
    assert_eq!(
        xattr(&dest.join("renamed"), "trusted.overlay.redirect"),
        None
    );
    assert_eq!(
        xattr(&dest.join("opaque-y"), "trusted.overlay.opaque"),
        Some(b"y".to_vec())
    );
    assert_eq!(
        xattr(&dest.join("opaque-x"), "trusted.overlay.opaque"),
        None
    );
    assert_eq!(
        r.refused_summary().as_deref(),
        Some(
            "2 entries of the backup were refused or skipped (2 metadata-only copies of \
             template files); 2 extended attributes were not restored"
        )
    );
}

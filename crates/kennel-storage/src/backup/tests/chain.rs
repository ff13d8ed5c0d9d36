//! A full backup and two incrementals over a tree that changes in every
//! way between them, restored as a chain.

use std::fs;
use std::os::unix::fs::PermissionsExt;
use std::path::Path;

use super::roundtrip::build_tree;
use super::*;
use crate::backup::{read_index, restore_chain, BackupError, BackupKind, RestoreOptions};
use crate::StorageError;

fn owned_write(path: &Path, text: &str) {
    fs::write(path, text).expect("write");
    own(path, FROM.uid_base, FROM.gid_base);
}

fn owned_dir(path: &Path) {
    fs::create_dir(path).expect("mkdir");
    own(path, FROM.uid_base, FROM.gid_base);
}

fn open_all<P: AsRef<Path>>(files: &[P]) -> Vec<fs::File> {
    files
        .iter()
        .map(|f| fs::File::open(f).expect("open"))
        .collect()
}

fn restore<P: AsRef<Path>>(
    files: &[P],
    dest: &Path,
) -> crate::Result<crate::backup::RestoreReport> {
    let opts = RestoreOptions {
        over_prepared: false,
        ids: TO,
        limits: Default::default(),
    };
    restore_chain(open_all(files), dest, &opts, &|_| {})
}

#[test]
fn a_chain_restores_the_final_tree() {
    let s = scratch();
    let t = s.path().join("tree");
    fs::create_dir(&t).expect("mkdir");
    build_tree(&t);
    // Not backed up: leave them out of the comparisons.
    fs::remove_file(t.join("null")).expect("rm");
    fs::remove_file(t.join("foreign")).expect("rm");
    let f0 = s.path().join("0.kbk");
    let r0 = backup_file(&t, None, &f0);

    // Modifications, deletions, renames, kinds swapped.
    fs::write(t.join("a/file1"), "changed content\n").expect("write");
    fs::remove_file(t.join("empty")).expect("rm");
    fs::rename(t.join("a/b/c/deep"), t.join("deep-renamed")).expect("mv");
    fs::remove_file(t.join("rel")).expect("rm");
    owned_dir(&t.join("rel"));
    owned_write(&t.join("rel/inside"), "was a symlink");
    fs::remove_dir_all(t.join("a/b")).expect("rm");
    owned_write(&t.join("a/b"), "was a directory tree");
    fs::set_permissions(t.join("cap2"), fs::Permissions::from_mode(0o700)).expect("chmod");
    fs::hard_link(t.join("acl"), t.join("acl-link")).expect("link");
    let f1 = s.path().join("1.kbk");
    let base0 = read_index(&f0).expect("index");
    let r1 = backup_file(&t, Some(&base0), &f1);
    assert_eq!(r1.manifest.kind, BackupKind::Incremental);
    assert_eq!(
        r1.manifest.base.as_ref().map(|b| b.id),
        Some(r0.manifest.id)
    );
    assert!(r1.unchanged >= 3, "{r1:?}");
    assert!(r1.layer_bytes < r0.layer_bytes, "{r1:?} {r0:?}");

    fs::remove_dir_all(t.join("d")).expect("rm");
    rustix::fs::removexattr(t.join("o"), "trusted.overlay.opaque").expect("removexattr");
    owned_write(&t.join("o/new"), "new in the second increment");
    fs::remove_file(t.join("deep-renamed")).expect("rm");
    owned_dir(&t.join("deep-renamed"));
    fs::remove_dir_all(t.join("rel")).expect("rm");
    owned_write(&t.join("rel"), "now a file");
    let f2 = s.path().join("2.kbk");
    let base1 = read_index(&f1).expect("index");
    let r2 = backup_file(&t, Some(&base1), &f2);
    assert!(r2.unchanged >= 3, "{r2:?}");

    let dest = s.path().join("dest");
    fs::create_dir(&dest).expect("mkdir");
    let report = restore(&[&f0, &f1, &f2], &dest).expect("restore");
    assert!(report.removed > 0, "{report:?}");
    for u in &report.unpacked {
        assert_eq!(u.refused_count, 0, "{:?}", u.refused);
    }
    assert!(report.unpacked[2].unchanged > 0);
    assert_same(&snapshot(&t, FROM), &snapshot(&dest, TO));

    // The same chain, one step shorter, is the tree of the first increment
    // (checked in passing: the prefix restores without error).
    let dest1 = s.path().join("dest1");
    fs::create_dir(&dest1).expect("mkdir");
    restore(&[&f0, &f1], &dest1).expect("restore a prefix");
    assert!(dest1.join("a/b").is_file());
}

#[test]
fn broken_chains_are_refused() {
    let s = scratch();
    let t = s.path().join("tree");
    owned_dir(&t);
    owned_write(&t.join("x"), "x");
    let f0 = s.path().join("0.kbk");
    backup_file(&t, None, &f0);
    let f1 = s.path().join("1.kbk");
    backup_file(&t, Some(&read_index(&f0).expect("index")), &f1);
    let f2 = s.path().join("2.kbk");
    backup_file(&t, Some(&read_index(&f1).expect("index")), &f2);
    let other = s.path().join("other.kbk");
    backup_file(&t, None, &other);
    for chain in [
        vec![&f0, &f2],
        vec![&f1],
        vec![&f0, &f0],
        vec![&other, &f1],
        vec![&f0, &f2, &f1],
    ] {
        let dest = s.path().join("dest");
        let _ = fs::remove_dir_all(&dest);
        fs::create_dir(&dest).expect("mkdir");
        let e = restore(&chain, &dest).expect_err("a broken chain");
        assert!(
            matches!(e, StorageError::Backup(BackupError::Chain(_))),
            "{e}"
        );
        let text = e.to_string();
        assert!(text.starts_with("the backup chain is broken: "), "{text}");
        assert!(!text.contains('\n'));
    }
    let dest = s.path().join("dest");
    let _ = fs::remove_dir_all(&dest);
    fs::create_dir(&dest).expect("mkdir");
    let e = restore::<&Path>(&[], &dest).expect_err("empty");
    assert!(
        matches!(e, StorageError::Backup(BackupError::Chain(_))),
        "{e}"
    );
}

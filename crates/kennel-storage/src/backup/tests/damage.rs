//! Damaged and foreign input: each is told apart, in one line.

use std::fs;

use super::*;
use crate::backup::footer::FOOTER_LEN;
use crate::backup::{
    read_index, read_manifest, restore_chain, verify, BackupError, RestoreOptions,
};
use crate::StorageError;

fn sample(s: &tempfile::TempDir) -> Vec<u8> {
    let t = s.path().join("tree");
    fs::create_dir(&t).expect("mkdir");
    own(&t, FROM.uid_base, FROM.gid_base);
    for i in 0..40 {
        let p = t.join(format!("f{i}"));
        let data: Vec<u8> = (0..20_000u32)
            .map(|j| ((i * 31 + j * 7) % 253) as u8)
            .collect();
        fs::write(&p, data).expect("write");
        own(&p, FROM.uid_base, FROM.gid_base);
    }
    let f = s.path().join("b.kbk");
    backup_file(&t, None, &f);
    fs::read(&f).expect("read")
}

fn verdict(bytes: &[u8]) -> Result<(), StorageError> {
    verify(bytes, &|_| {}).map(|_| ())
}

fn one_line(e: &StorageError) -> String {
    let t = e.to_string();
    assert!(!t.contains('\n'), "{t}");
    t
}

#[test]
fn a_flipped_byte_is_corruption() {
    let s = scratch();
    let good = sample(&s);
    verdict(&good).expect("the original verifies");
    for at in (0..good.len()).step_by(3) {
        let mut bad = good.clone();
        bad[at] ^= 0x40;
        let e = verdict(&bad).expect_err("a flipped byte");
        let t = one_line(&e);
        // The first frame's magic number, flipped, makes it no zstd at all.
        let foreign = at < 4 && matches!(e, StorageError::Backup(BackupError::Foreign(_)));
        assert!(
            foreign || matches!(e, StorageError::Backup(BackupError::Corrupt(_))),
            "byte {at}: {t}"
        );
        if !at.is_multiple_of(300) {
            continue;
        }
        // A restore refuses it too.
        let dest = s.path().join(format!("dest{at}"));
        fs::create_dir(&dest).expect("mkdir");
        let opts = RestoreOptions {
            over_prepared: false,
            ids: TO,
            limits: Default::default(),
        };
        assert!(restore_chain([bad.as_slice()], &dest, &opts, &|_| {}).is_err());
    }
}

#[test]
fn a_cut_stream_is_truncated() {
    let s = scratch();
    let good = sample(&s);
    let data_len = good.len() - FOOTER_LEN;
    for cut in [10, 100, good.len() / 4, good.len() / 2, data_len - 200] {
        let e = verdict(&good[..cut]).expect_err("cut");
        let t = one_line(&e);
        assert!(
            matches!(e, StorageError::Backup(BackupError::Truncated)),
            "cut at {cut}: {t}"
        );
        assert_eq!(t, "the backup is truncated: it ends before its end record");
    }
    // Cut inside the last frame's checksum: the end record was read, but
    // the stream is still not the one written.
    let e = verdict(&good[..data_len - 2]).expect_err("cut");
    assert!(
        matches!(
            e,
            StorageError::Backup(BackupError::Corrupt(_) | BackupError::Truncated)
        ),
        "{e}"
    );
    // Without its footer, the content is whole but the file is not.
    let e = verdict(&good[..data_len]).expect_err("no footer");
    assert!(
        matches!(e, StorageError::Backup(BackupError::Corrupt(_))),
        "{e}"
    );
    for cut in [1, 20, FOOTER_LEN - 1] {
        assert!(
            verdict(&good[..good.len() - cut]).is_err(),
            "footer cut by {cut}"
        );
    }
    // The index is still found, from the stream.
    let f = s.path().join("nofooter.kbk");
    fs::write(&f, &good[..data_len]).expect("write");
    read_index(&f).expect("the index without the footer");
}

#[test]
fn foreign_input_is_not_a_backup() {
    let s = scratch();
    let cases: Vec<(&str, Vec<u8>)> = vec![
        ("empty", Vec::new()),
        ("text", b"hello, this is not a backup at all\n".to_vec()),
        (
            "zstd text",
            zstd::encode_all(&b"plain text, not tar"[..], 3).expect("zstd"),
        ),
        ("other tar", {
            let mut b = tar::Builder::new(Vec::new());
            let mut h = tar::Header::new_ustar();
            h.set_size(2);
            h.set_cksum();
            b.append_data(&mut h, "etc/hosts", &b"hi"[..])
                .expect("append");
            zstd::encode_all(b.into_inner().expect("tar").as_slice(), 3).expect("zstd")
        }),
    ];
    for (what, bytes) in cases {
        let e = verdict(&bytes).expect_err(what);
        let t = one_line(&e);
        assert!(
            matches!(e, StorageError::Backup(BackupError::Foreign(_))),
            "{what}: {t}"
        );
        assert!(t.starts_with("not a Kennel backup: "), "{t}");
        let f = s.path().join("foreign");
        fs::write(&f, &bytes).expect("write");
        assert!(read_manifest(&f).is_err());
        assert!(read_index(&f).is_err());
    }
}

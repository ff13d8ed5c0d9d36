//! A template made from a backup that holds it (`kennel backup
//! --with-template`), for a host that lacks the template the backup's
//! layer lies on.
//!
//! The tree comes out of the stream through the template import's
//! unpacker ([`crate::backup::extract_template_report`]): a backup is no
//! more trusted than a tarball, so it gets the same rules, and the end
//! record's hash is checked before the build goes on (a truncated or
//! altered backup fails it, and [`super::Store::create`] throws the
//! staging directory away). The usual last step follows
//! ([`super::finalize`]): device nodes removed, `/etc/machine-id` emptied,
//! the digest computed, the rename into place.
//!
//! The digest computed then is the template's own, not the one the backup
//! recorded: the two agree when the backed-up template was made by Kennel
//! (its tree had been through the same last step, and the digest covers
//! names, types, modes, owners, sizes, contents and link targets, all of
//! which the stream carries), and the build says so when they do not
//! (say, a template changed by hand since, or entries the backup skipped).

use std::fs::File;
use std::io::BufReader;
use std::os::unix::ffi::OsStrExt;
use std::path::Path;

use crate::backup::extract_template_report;
use crate::error::{io_err, Result};
use crate::shown::shown;
use crate::unpack::UnpackLimits;

/// What [`build`] made: the source's description, and the digest the
/// backup recorded for the template.
pub(crate) struct Built {
    pub source: String,
    pub recorded_digest: String,
}

pub(crate) fn build(
    rootfs: &Path,
    backup: &Path,
    limits: &UnpackLimits,
    progress: &mut dyn FnMut(&str),
) -> Result<Built> {
    let shown_path = shown(backup.as_os_str().as_bytes());
    progress(&format!("unpacking the template held by {shown_path}"));
    let f = File::open(backup).map_err(io_err("open", backup))?;
    let done = extract_template_report(BufReader::new(f), rootfs, limits, &|_| {})?;
    let r = &done.unpacked;
    if let Some(first) = r.refused.first() {
        progress(&format!(
            "refused {} unsafe entries (first: {first})",
            r.refused_count
        ));
    }
    if r.devices > 0 {
        progress(&format!(
            "skipped {} device nodes (VEs get their own /dev)",
            r.devices
        ));
    }
    Ok(Built {
        source: format!("from backup {shown_path}"),
        recorded_digest: done.manifest.template.digest,
    })
}

#[cfg(test)]
mod tests {
    use std::fs;
    use std::path::{Path, PathBuf};

    use crate::backup::{write_backup, BackupRequest, Compression, IdShift, TemplateRef};
    use crate::template::{Source, Store};
    use crate::unpack::UnpackLimits;

    fn scratch() -> tempfile::TempDir {
        tempfile::Builder::new()
            .prefix("kennel-template-test")
            .tempdir_in(crate::test_dir())
            .expect("tempdir")
    }

    /// A tarball of a tiny root filesystem, one directory owned by 1000.
    fn tarball(s: &Path) -> PathBuf {
        let t = s.join("src");
        for d in ["etc", "usr/bin", "home/u", "dev"] {
            fs::create_dir_all(t.join(d)).expect("mkdir");
        }
        fs::write(t.join("etc/os-release"), "PRETTY_NAME=\"Tiny 1\"\n").expect("write");
        fs::write(t.join("etc/machine-id"), "0123456789abcdef\n").expect("write");
        fs::write(t.join("usr/bin/tool"), "#!/bin/true\n").expect("write");
        fs::write(t.join("home/u/notes"), "mine").expect("write");
        std::os::unix::fs::symlink("usr/bin", t.join("bin")).expect("symlink");
        for p in ["home/u", "home/u/notes"] {
            std::os::unix::fs::lchown(t.join(p), Some(1000), Some(1000)).expect("chown");
        }
        let out = s.join("tiny.tar");
        let mut b = tar::Builder::new(fs::File::create(&out).expect("create"));
        b.follow_symlinks(false);
        b.append_dir_all(".", &t).expect("tar");
        b.finish().expect("tar");
        out
    }

    /// A template made from a backup that holds it is the template that
    /// was backed up: same digest, after the same last step.
    #[test]
    fn a_template_is_made_from_a_backup_that_holds_it() {
        let s = scratch();
        let here = Store::new(s.path().join("here"));
        let orig = here
            .create(
                "tiny",
                &Source::Tarball(tarball(s.path()), UnpackLimits::default()),
                &mut |_| {},
            )
            .expect("template");
        let layer = s.path().join("layer");
        fs::create_dir(&layer).expect("mkdir");
        std::os::unix::fs::lchown(&layer, Some(100_000), Some(100_000)).expect("chown");
        let file = s.path().join("101.kbk");
        let req = BackupRequest {
            tree: &layer,
            ids: IdShift {
                uid_base: 100_000,
                gid_base: 100_000,
            },
            ve_conf: String::new(),
            template: TemplateRef {
                name: "tiny".into(),
                digest: orig.meta.digest.clone(),
            },
            base: None,
            compression: Compression::default(),
            template_tree: Some(&orig.rootfs),
        };
        write_backup(fs::File::create(&file).expect("create"), &req, &|_| {}).expect("backup");

        let there = Store::new(s.path().join("there"));
        let mut said = Vec::new();
        let made = there
            .create(
                "tiny",
                &Source::Backup(file.clone(), UnpackLimits::default()),
                &mut |m| said.push(m.to_string()),
            )
            .expect("template from the backup");
        assert_eq!(made.meta.digest, orig.meta.digest, "{said:?}");
        assert!(!said.iter().any(|m| m.contains("differs")), "{said:?}");
        assert_eq!(made.meta.os, "Tiny 1");
        assert!(
            made.meta.source.starts_with("from backup "),
            "{}",
            made.meta.source
        );
        assert_eq!(
            fs::read(made.rootfs.join("etc/machine-id")).expect("read"),
            b""
        );
        use std::os::unix::fs::MetadataExt;
        let m = fs::symlink_metadata(made.rootfs.join("home/u/notes")).expect("lstat");
        assert_eq!((m.uid(), m.gid()), (1000, 1000));

        // A truncated backup makes nothing, and leaves nothing behind.
        let bytes = fs::read(&file).expect("read");
        let cut = s.path().join("cut.kbk");
        fs::write(&cut, &bytes[..bytes.len() - 200]).expect("write");
        let r = there.create(
            "cut",
            &Source::Backup(cut, UnpackLimits::default()),
            &mut |_| {},
        );
        assert!(r.is_err(), "{r:?}");
        let left: Vec<_> = fs::read_dir(s.path().join("there"))
            .expect("read_dir")
            .map(|e| e.expect("entry").file_name())
            .collect();
        assert_eq!(left, vec![std::ffi::OsString::from("tiny")]);
    }
}

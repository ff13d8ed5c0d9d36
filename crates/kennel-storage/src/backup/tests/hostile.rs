//! Streams crafted by hand by someone who knows the format (and so can
//! compute a valid end record): each hostile member is refused or skipped,
//! and nothing is ever written outside the destination.

use std::fs;
use std::io::Write;
use std::path::Path;

use sha2::{Digest, Sha256};
use tar::EntryType;
use uuid::Uuid;

use super::*;
use crate::backup::footer::Footer;
use crate::backup::format::{
    hex, push_pax_record, PAX_REALSIZE, PAX_SPARSE, PAX_SPARSE_MORE, PAX_UNCHANGED,
};
use crate::backup::manifest::{BackupKind, BackupManifest, EndRecord};
use crate::backup::tar_out::{pad, write_data_member, write_header, Member};
use crate::backup::{restore_chain, RestoreOptions, RestoreReport, TemplateRef, FORMAT_VERSION};

/// One crafted member: its header and data.
pub(super) struct Raw {
    pub(super) name: Vec<u8>,
    pub(super) kind: EntryType,
    pub(super) uid: u32,
    pub(super) link: Option<Vec<u8>>,
    pub(super) records: Vec<u8>,
    pub(super) data: Vec<u8>,
    pub(super) dev: Option<(u32, u32)>,
}

pub(super) fn raw(name: &[u8], kind: EntryType) -> Raw {
    Raw {
        name: name.to_vec(),
        kind,
        uid: 0,
        link: None,
        records: Vec::new(),
        data: Vec::new(),
        dev: None,
    }
}

/// A complete, well-formed backup stream around `members`.
fn craft(members: &[Raw]) -> Vec<u8> {
    craft_with(members, false)
}

/// [`craft`], for a backup whose manifest says whether it holds the
/// template.
pub(super) fn craft_with(members: &[Raw], template_included: bool) -> Vec<u8> {
    let id = Uuid::new_v4();
    let manifest = BackupManifest {
        format: FORMAT_VERSION,
        id,
        created: "2025-01-01T00:00:00Z".into(),
        kind: BackupKind::Full,
        base: None,
        ve_conf: String::new(),
        template: TemplateRef::default(),
        template_included,
    };
    let mut tar = Vec::new();
    let json = serde_json::to_vec(&manifest).expect("json");
    write_data_member(&mut tar, b"kennel-backup.json", &json).expect("manifest");
    let mut layer_bytes = 0;
    for m in members {
        let mut mem = Member::plain(&m.name, m.kind, m.data.len() as u64);
        mem.uid = m.uid;
        mem.gid = m.uid;
        mem.link = m.link.as_deref();
        mem.records = m.records.clone();
        let start = tar.len();
        write_header(&mut tar, &mem).expect("header");
        if let Some((major, minor)) = m.dev {
            // Patch the device numbers into the ustar header just written.
            let at = tar.len() - 512;
            let mut h = tar::Header::from_byte_slice(&tar[at..]).clone();
            h.set_device_major(major).expect("major");
            h.set_device_minor(minor).expect("minor");
            h.set_cksum();
            tar[at..].copy_from_slice(h.as_bytes());
        }
        let _ = start;
        tar.write_all(&m.data).expect("data");
        pad(&mut tar, m.data.len() as u64).expect("pad");
        if m.kind == EntryType::Regular && m.name.starts_with(b"layer/") {
            layer_bytes += m.data.len() as u64;
        }
    }
    // The index lists every layer path, as a real backup's does (a
    // restore checks it as `verify` does).
    let mut index = Vec::new();
    crate::backup::index::write_header(&mut index, id);
    let more = crate::backup::format::PAX_SPARSE_MORE.as_bytes();
    for m in members {
        let Some(path) = m.name.strip_prefix(b"layer/".as_slice()) else {
            continue;
        };
        if m.records.windows(more.len()).any(|w| w == more) {
            continue;
        }
        let stamp = crate::backup::index::Stamp {
            kind: crate::backup::index::EntryKind::File,
            ino: 0,
            size: 0,
            mtime: (0, 0),
            ctime: (0, 0),
            nlink: 1,
        };
        crate::backup::index::write_line(&mut index, path, &stamp);
    }
    write_data_member(&mut tar, b"kennel-index.jsonl", &index).expect("index");
    let end = EndRecord {
        id,
        members: 2 + members.len() as u64,
        layer_bytes,
        sha256: hex(&Sha256::digest(&tar)),
    };
    write_data_member(
        &mut tar,
        b"kennel-end.json",
        &serde_json::to_vec(&end).expect("json"),
    )
    .expect("end");
    tar.extend_from_slice(&[0; 1024]);
    let mut out = zstd::encode_all(tar.as_slice(), 3).expect("zstd");
    let footer = Footer {
        index_frame: 0,
        data_len: out.len() as u64,
    };
    let footer = footer.encode(Sha256::new().chain_update(&out));
    out.extend_from_slice(&footer);
    out
}

/// Restores `stream` into `sandbox/dest`; the sandbox must hold nothing
/// else afterwards.
fn restore_in(sandbox: &Path, stream: &[u8]) -> crate::Result<RestoreReport> {
    let _ = fs::remove_dir_all(sandbox);
    fs::create_dir_all(sandbox.join("dest")).expect("mkdir");
    let opts = RestoreOptions {
        over_prepared: false,
        ids: TO,
        limits: Default::default(),
    };
    let r = restore_chain([stream], &sandbox.join("dest"), &opts, &|_| {});
    assert_eq!(
        names_in(sandbox),
        vec!["dest".to_string()],
        "written outside dest"
    );
    r
}

fn refused(r: &crate::Result<RestoreReport>) -> u64 {
    match r {
        Ok(rep) => rep.unpacked.iter().map(|u| u.refused_count).sum(),
        Err(_) => 1,
    }
}

#[test]
fn a_crafted_stream_restores() {
    let s = scratch();
    let mut f = raw(b"layer/ok", EntryType::Regular);
    f.data = b"fine".to_vec();
    let r = restore_in(&s.path().join("box"), &craft(&[f])).expect("restore");
    assert_eq!(refused(&Ok(r)), 0);
    assert_eq!(
        fs::read(s.path().join("box/dest/ok")).expect("read"),
        b"fine"
    );
}

#[test]
fn traversal_is_refused() {
    let s = scratch();
    let sandbox = s.path().join("box");
    let mut up = raw(b"layer/../x", EntryType::Regular);
    up.data = b"up".to_vec();
    let r = restore_in(&sandbox, &craft(&[up]));
    assert!(refused(&r) > 0, "{r:?}");
    // Absolute names are not layer members at all.
    let mut abs = raw(b"/var/tmp/kennel-hostile-abs", EntryType::Regular);
    abs.data = b"abs".to_vec();
    assert!(restore_in(&sandbox, &craft(&[abs])).is_err());
    assert!(!Path::new("/var/tmp/kennel-hostile-abs").exists());
    // An absolute name under the prefix stays inside.
    let mut inside = raw(b"layer//var/tmp/kennel-hostile-in", EntryType::Regular);
    inside.data = b"in".to_vec();
    restore_in(&sandbox, &craft(&[inside])).expect("restore");
    assert!(!Path::new("/var/tmp/kennel-hostile-in").exists());
    assert!(sandbox.join("dest/var/tmp/kennel-hostile-in").exists());
}

#[test]
fn nothing_is_written_through_a_symlink() {
    let s = scratch();
    let sandbox = s.path().join("box");
    let target = s.path().join("victim");
    fs::create_dir(&target).expect("mkdir");
    let mut link = raw(b"layer/a", EntryType::Symlink);
    link.link = Some(target.as_os_str().as_encoded_bytes().to_vec());
    let mut through = raw(b"layer/a/x", EntryType::Regular);
    through.data = b"through".to_vec();
    let mut root_link = raw(b"layer/r", EntryType::Symlink);
    root_link.link = Some(b"/".to_vec());
    let mut through_root = raw(b"layer/r/var/tmp/kennel-hostile-root", EntryType::Regular);
    through_root.data = b"through".to_vec();
    let r = restore_in(&sandbox, &craft(&[link, through, root_link, through_root]));
    assert!(refused(&r) >= 2, "{r:?}");
    assert!(names_in(&target).is_empty());
    assert!(!Path::new("/var/tmp/kennel-hostile-root").exists());
    // Hard links must name members of the layer.
    let mut hl = raw(b"layer/pw", EntryType::Link);
    hl.link = Some(b"/etc/passwd".to_vec());
    let mut hl2 = raw(b"layer/pw2", EntryType::Link);
    hl2.link = Some(b"layer/../../../../etc/passwd".to_vec());
    let r = restore_in(&sandbox, &craft(&[hl, hl2]));
    assert_eq!(refused(&r), 2, "{r:?}");
}

#[test]
fn devices_owners_and_bad_records_are_refused() {
    let s = scratch();
    let sandbox = s.path().join("box");
    let mut null = raw(b"layer/null", EntryType::Char);
    null.dev = Some((1, 3));
    let mut wh = raw(b"layer/wh", EntryType::Char);
    wh.dev = Some((0, 0));
    let mut owner = raw(b"layer/owner", EntryType::Regular);
    owner.uid = 70_000;
    let mut sparse = raw(b"layer/sparse", EntryType::Regular);
    sparse.data = vec![1; 10];
    push_pax_record(&mut sparse.records, PAX_REALSIZE, b"100");
    push_pax_record(&mut sparse.records, PAX_SPARSE, b"95,10");
    let mut overlap = raw(b"layer/overlap", EntryType::Regular);
    overlap.data = vec![1; 20];
    push_pax_record(&mut overlap.records, PAX_REALSIZE, b"100");
    push_pax_record(&mut overlap.records, PAX_SPARSE, b"0,10,5,10");
    let r = restore_in(&sandbox, &craft(&[null, wh, owner, sparse, overlap])).expect("restore");
    let u = &r.unpacked[0];
    assert_eq!(u.devices, 1, "{u:?}");
    assert_eq!(u.whiteouts, 1, "{u:?}");
    assert_eq!(u.refused_count, 3, "{u:?}");
    assert_eq!(names_in(&sandbox.join("dest")), vec!["wh".to_string()]);

    // A PAX record of 2 MiB passes the per-member metadata allowance.
    let mut huge = raw(b"layer/huge", EntryType::Regular);
    push_pax_record(
        &mut huge.records,
        "SCHILY.xattr.user.big",
        &vec![b'x'; 2 << 20],
    );
    let e = restore_in(&sandbox, &craft(&[huge])).expect_err("huge record");
    assert!(e.to_string().contains("KiB"), "{e}");

    // "Unchanged" means nothing in a full backup.
    let mut unchanged = raw(b"layer/u", EntryType::Regular);
    push_pax_record(&mut unchanged.records, PAX_UNCHANGED, b"1");
    assert!(restore_in(&sandbox, &craft(&[unchanged])).is_err());
}

fn xattr_record(m: &mut Raw, name: &str, value: &[u8]) {
    push_pax_record(&mut m.records, &format!("SCHILY.xattr.{name}"), value);
}

fn xattr_of(path: &Path, name: &str) -> Option<Vec<u8>> {
    let mut v = vec![0u8; 4096];
    let n = rustix::fs::lgetxattr(path, name, &mut v[..]).ok()?;
    v.truncate(n);
    Some(v)
}

/// Review finding 4: a forged stream's overlayfs attributes. A redirect
/// is never restored, an opaque marker only as `y`, and a member marked
/// as a metadata-only copy is not made at all (nor a hard link to it, nor
/// its sparse continuation); on a directory the marker is only dropped.
#[test]
fn overlay_attributes_of_a_forged_stream_are_narrowed() {
    let s = scratch();
    let sandbox = s.path().join("box");
    let mut redirect = raw(b"layer/x", EntryType::Directory);
    xattr_record(
        &mut redirect,
        "trusted.overlay.redirect",
        b"/../../../../etc",
    );
    let mut opaque_x = raw(b"layer/o", EntryType::Directory);
    xattr_record(&mut opaque_x, "trusted.overlay.opaque", b"x");
    let mut opaque_y = raw(b"layer/y", EntryType::Directory);
    xattr_record(&mut opaque_y, "trusted.overlay.opaque", b"y");
    let mut meta_dir = raw(b"layer/md", EntryType::Directory);
    xattr_record(&mut meta_dir, "trusted.overlay.metacopy", b"");
    let mut metacopy = raw(b"layer/m", EntryType::Regular);
    xattr_record(&mut metacopy, "trusted.overlay.metacopy", b"");
    xattr_record(&mut metacopy, "trusted.overlay.redirect", b"/etc/shadow");
    let mut link = raw(b"layer/ml", EntryType::Link);
    link.link = Some(b"layer/m".to_vec());
    let mut sparse = raw(b"layer/ms", EntryType::Regular);
    xattr_record(&mut sparse, "trusted.overlay.metacopy", b"");
    sparse.data = vec![7; 10];
    push_pax_record(&mut sparse.records, PAX_REALSIZE, b"100");
    push_pax_record(&mut sparse.records, PAX_SPARSE, b"0,10");
    let mut more = raw(b"layer/ms", EntryType::Regular);
    more.data = vec![8; 10];
    push_pax_record(&mut more.records, PAX_SPARSE_MORE, b"1");
    push_pax_record(&mut more.records, PAX_SPARSE, b"50,10");
    let mut after = raw(b"layer/after", EntryType::Regular);
    after.data = b"made".to_vec();
    let r = restore_in(
        &sandbox,
        &craft(&[
            redirect, opaque_x, opaque_y, meta_dir, metacopy, link, sparse, more, after,
        ]),
    )
    .expect("restore");
    let u = &r.unpacked[0];
    assert_eq!(u.refused_count, 0, "{u:?}");
    assert_eq!(u.metacopy, 3, "m, ml, ms: {u:?}");
    assert_eq!(
        u.xattrs_dropped, 3,
        "redirect, opaque x, metacopy on md: {u:?}"
    );
    let dest = sandbox.join("dest");
    assert_eq!(names_in(&dest), vec!["after", "md", "o", "x", "y"]);
    assert_eq!(xattr_of(&dest.join("x"), "trusted.overlay.redirect"), None);
    assert_eq!(xattr_of(&dest.join("o"), "trusted.overlay.opaque"), None);
    assert_eq!(
        xattr_of(&dest.join("y"), "trusted.overlay.opaque"),
        Some(b"y".to_vec())
    );
    assert_eq!(xattr_of(&dest.join("md"), "trusted.overlay.metacopy"), None);
    assert_eq!(fs::read(dest.join("after")).expect("read"), b"made");
}

/// Review finding 5: what a restore refuses or skips is counted by
/// reason, over the chain, and said in one line.
#[test]
fn refusals_are_counted_by_reason_and_summed_up() {
    let s = scratch();
    let sandbox = s.path().join("box");
    let target = s.path().join("victim");
    fs::create_dir(&target).expect("mkdir");
    let mut members = Vec::new();
    for name in [
        &b"layer/../up"[..],
        b"layer/a/../../up2",
        b"layer/../../../etc/x",
    ] {
        members.push(raw(name, EntryType::Regular));
    }
    let mut link = raw(b"layer/s", EntryType::Symlink);
    link.link = Some(target.as_os_str().as_encoded_bytes().to_vec());
    members.push(link);
    members.push(raw(b"layer/s/through", EntryType::Regular));
    let mut outside = raw(b"layer/pw", EntryType::Link);
    outside.link = Some(b"/etc/passwd".to_vec());
    members.push(outside);
    for (name, dev) in [(&b"layer/sda"[..], (8, 0)), (b"layer/mem", (1, 1))] {
        let mut d = raw(name, EntryType::Char);
        d.dev = Some(dev);
        members.push(d);
    }
    for name in [&b"layer/o1"[..], b"layer/o2", b"layer/o3"] {
        let mut o = raw(name, EntryType::Regular);
        o.uid = 70_000;
        members.push(o);
    }
    let mut mc = raw(b"layer/mc", EntryType::Regular);
    xattr_record(&mut mc, "trusted.overlay.metacopy", b"");
    members.push(mc);
    let mut bad = raw(b"layer/bad", EntryType::Regular);
    push_pax_record(&mut bad.records, PAX_UNCHANGED, b"maybe");
    members.push(bad);
    let mut dropped = raw(b"layer/d", EntryType::Directory);
    xattr_record(&mut dropped, "trusted.overlay.redirect", b"/etc");
    members.push(dropped);
    let r = restore_in(&sandbox, &craft(&members)).expect("restore");
    assert!(names_in(&target).is_empty());
    let got = r.refusals();
    let want = crate::unpack::Refusals {
        refused: crate::unpack::RefusedBy {
            paths: 3,
            through_symlink: 1,
            hard_links: 1,
            foreign_owners: 3,
            malformed: 1,
        },
        devices: 2,
        metacopy: 1,
        xattrs: 1,
    };
    assert_eq!(got, want);
    assert_eq!(r.unpacked[0].refused_count, 9);
    assert_eq!(
        r.refused_summary().as_deref(),
        Some(
            "12 entries of the backup were refused or skipped (3 paths outside the layer, \
             1 path through a symlink, 1 hard link to nothing in the layer, 2 device nodes, \
             3 owners outside the VE's ids, 1 metadata-only copy of a template file, \
             1 malformed member); 1 extended attribute was not restored"
        )
    );

    // Nothing refused: no line. One kind: the words agree in number.
    let mut ok = raw(b"layer/ok", EntryType::Regular);
    ok.data = b"fine".to_vec();
    let r = restore_in(&sandbox, &craft(&[ok])).expect("restore");
    assert_eq!(r.refused_summary(), None);
    let mut one = raw(b"layer/one", EntryType::Regular);
    one.uid = 65_536;
    let r = restore_in(&sandbox, &craft(&[one])).expect("restore");
    assert_eq!(
        r.refused_summary().as_deref(),
        Some("1 entry of the backup was refused or skipped (1 owner outside the VE's ids)")
    );
}

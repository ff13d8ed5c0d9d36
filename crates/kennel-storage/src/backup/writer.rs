//! Writing a backup of a VE's upper layer.
//!
//! One pass over the tree ([`super::walk`]): each entry becomes one member
//! (or, for a sparse file of many segments, a few), its index line is
//! kept for the index member, and the stream is hashed as it is written.
//! What the tenant can make but a backup must not carry is skipped and
//! counted in [`Skipped`], never an error: a device node other than a
//! whiteout, an owner outside the VE's ids (and, for a directory, its
//! contents), a path too long, a mount point, a file that changed or
//! vanished during the walk, an attribute that is not kept. Only the
//! tree's top being unreadable or foreign, or the output failing, stops a
//! backup.
//!
//! The owner rule has one exception, by type: an overlayfs whiteout (char
//! 0/0) is kept whatever its owner. overlayfs makes whiteouts with the
//! mounter's credentials, so every real one is owned by host root, outside
//! any VE's range; skipping them as foreign would lose every deletion of a
//! template file, and a restore would bring the files back. A whiteout
//! carries nothing but its name (overlayfs reads only its type), so it is
//! stored as the VE root's (relative 0:0), which is what a restore gives
//! it. No other kind gets the exemption: a FIFO, socket, symlink or file
//! of a foreign owner is still skipped.
//!
//! Overlayfs's own attributes are written as they are (opaque, redirect,
//! metacopy markers), so `verify` and an inspection of the stream see the
//! layer as it was; what a restore may take back from them is narrower
//! and decided there (`crate::backup::xattr_policy`).
//!
//! # The template, when asked for
//!
//! With [`BackupRequest::template_tree`] set, the template's tree is
//! written first, as `template/...` members, by the same walk and the same
//! member code as the layer, so everything a layer member is careful about
//! (no symlink followed, bounded reads, sparse files as data segments,
//! hard links as link members to the first name, which here is a
//! `template/` name) holds for it too. What differs is what a *template*
//! is, and follows what a template import keeps
//! (`crate::unpack::Flavor::Template`), so that a template made from the
//! stream is the one a tarball of the same tree would make:
//!
//! * owners are written as they are: a template's files are owned by host
//!   ids 0-65535, which are what a VE sees through its id mapping, i.e.
//!   already VE-relative. An entry owned outside 0-65535 is skipped and
//!   counted as foreign (an import would refuse it);
//! * every device node is skipped, whiteouts included (a template is not an
//!   overlayfs layer), and so are sockets (nothing listens on them);
//! * only `security.capability` and `user.*` attributes are kept, byte for
//!   byte (a v3 capability's root id is a template's own, not shifted);
//! * names must be UTF-8 (an import refuses others): others are skipped;
//! * nothing goes into the index, which lists the layer only (an
//!   incremental compares the layer with its base, never the template),
//!   and the end record's `layer_bytes` counts the layer only. The
//!   template's members are counted in `members` and hashed like all
//!   others, so the end record covers them.

use std::collections::HashMap;
use std::io::{self, Write};
use std::os::fd::{AsFd, BorrowedFd, OwnedFd};
use std::path::Path;
use std::time::SystemTime;

use rustix::fs::{fstat, openat2, readlinkat, FileType, Mode, OFlags};
use rustix::io::Errno;
use sha2::Digest;
use tar::EntryType;
use uuid::Uuid;

use super::content::{copy_range, looks_sparse, CopyFail, Segments, CHUNK};
use super::footer::Footer;
use super::format::{
    hex, push_pax_record, END_NAME, FORMAT_VERSION, INDEX_NAME, LAYER_PREFIX, MANIFEST_NAME,
    PAX_KIND, PAX_REALSIZE, PAX_SPARSE, PAX_SPARSE_MORE, PAX_UNCHANGED, PAX_XATTR, TEMPLATE_PREFIX,
};
use super::frames::{Compression, Frames, Hashed};
use super::ids::{Direction, IdShift};
use super::index::{self, BaseIndex, EntryKind, Stamp};
use super::manifest::{BackupKind, BackupManifest, BaseRef, EndRecord, TemplateRef};
use super::meta::Meta;
use super::sparse_map::encode_map;
use super::tar_out::{pad, write_data_member, write_header, Member};
use super::walk::{walk, Descend, Found, WalkOptions, STRICT};
use super::xattr_read::{read_template_xattrs, read_xattrs};
use super::BackupError;
use crate::error::{Result, StorageError};
use crate::shown::shown;

/// What to back up, and what to say about it.
#[derive(Debug, Clone)]
pub struct BackupRequest<'a> {
    /// The VE's upper layer (ideally a read-only snapshot of it).
    pub tree: &'a Path,
    /// Where the VE's ids start on the host.
    pub ids: IdShift,
    /// The VE's configuration file, stored as it is.
    pub ve_conf: String,
    pub template: TemplateRef,
    /// The previous backup's index, for an incremental backup.
    pub base: Option<&'a BaseIndex>,
    pub compression: Compression,
    /// The template's root filesystem, to write into the stream before
    /// the layer (`kennel backup --with-template`); `None`: the layer only.
    pub template_tree: Option<&'a Path>,
}

/// Entries a backup left out, by reason.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct Skipped {
    /// Device nodes other than whiteouts (char 0/0).
    pub devices: u64,
    /// Entries owned by an id outside the VE's range (a directory's
    /// contents are left out with it and not counted); whiteouts are kept
    /// whatever their owner.
    pub foreign_owner: u64,
    /// Paths longer than [`super::walk::MAX_PATH`].
    pub too_long: u64,
    /// Mount points found in the tree.
    pub mounts: u64,
    /// Entries that vanished or changed type during the walk, and files
    /// that came up short while read (their missing bytes are zeros).
    pub changed: u64,
    /// Extended attributes dropped.
    pub xattrs: u64,
    /// Template entries whose names are not UTF-8 (a directory's contents
    /// are left out with it and not counted).
    pub names: u64,
    /// Sockets of the template.
    pub sockets: u64,
}

impl Skipped {
    fn add(&mut self, o: &Skipped) {
        self.devices += o.devices;
        self.foreign_owner += o.foreign_owner;
        self.too_long += o.too_long;
        self.mounts += o.mounts;
        self.changed += o.changed;
        self.xattrs += o.xattrs;
        self.names += o.names;
        self.sockets += o.sockets;
    }
}

/// What a backup wrote of the template (with [`BackupRequest::template_tree`]).
#[derive(Debug, Clone, Default)]
pub struct TemplateWritten {
    /// Tar members under `template/`.
    pub members: u64,
    /// Entries of the template written.
    pub entries: u64,
    /// Bytes of file data stored.
    pub bytes: u64,
    pub skipped: Skipped,
}

/// What a backup wrote.
#[derive(Debug, Clone)]
pub struct BackupReport {
    pub manifest: BackupManifest,
    /// Tar members, the end record excluded (the template's included).
    pub members: u64,
    /// Paths of the layer backed up.
    pub entries: u64,
    /// Bytes of file data stored.
    pub layer_bytes: u64,
    /// Regular files left to the base chain (incrementals).
    pub unchanged: u64,
    /// Bytes written to the output.
    pub compressed_bytes: u64,
    /// Of the tar stream before the end record.
    pub sha256: String,
    /// What the layer's walk left out.
    pub skipped: Skipped,
    /// What was written of the template, if it was asked for.
    pub template: Option<TemplateWritten>,
}

fn out_err(e: io::Error) -> StorageError {
    StorageError::Io {
        op: "write",
        path: "the backup stream".into(),
        source: e,
    }
}

fn tree_err(top: &Path, path: &[u8], e: impl std::fmt::Display) -> StorageError {
    BackupError::Tree {
        path: top.to_path_buf(),
        reason: format!("'{}': {e}", shown(path)),
    }
    .into()
}

/// Writes a backup of `req.tree` to `out`, calling `progress` with the
/// bytes of file data read so far.
pub fn write_backup<W: Write>(
    out: W,
    req: &BackupRequest<'_>,
    progress: &dyn Fn(u64),
) -> Result<BackupReport> {
    let manifest = BackupManifest {
        format: FORMAT_VERSION,
        id: Uuid::new_v4(),
        created: humantime::format_rfc3339_seconds(SystemTime::now()).to_string(),
        kind: if req.base.is_some() {
            BackupKind::Incremental
        } else {
            BackupKind::Full
        },
        base: req.base.map(|b| BaseRef {
            id: b.id,
            file: b.file_name.clone(),
        }),
        ve_conf: req.ve_conf.clone(),
        template: req.template.clone(),
        template_included: req.template_tree.is_some(),
    };
    let json = serde_json::to_vec_pretty(&manifest).map_err(|e| out_err(io::Error::other(e)))?;
    let frames = Frames::new(out, req.compression).map_err(out_err)?;
    let mut w = Layer {
        req,
        part: Part::Template,
        top: req.tree,
        tar: Hashed::new(frames),
        index: Vec::new(),
        links: HashMap::new(),
        buf: vec![0u8; CHUNK],
        done: 0,
        progress,
        report: Counts::default(),
    };
    index::write_header(&mut w.index, manifest.id);
    write_data_member(&mut w.tar, MANIFEST_NAME.as_bytes(), &json).map_err(out_err)?;
    w.tar.inner.next_frame().map_err(out_err)?;
    let template = match req.template_tree {
        Some(top) => {
            w.top = top;
            let walk_skips = walk(top, WalkOptions::BACKUP, |path, found| w.entry(path, found))?;
            let counts = std::mem::take(&mut w.report);
            w.links.clear();
            let mut skipped = counts.skipped;
            skipped.add(&walk_skips.into());
            Some(TemplateWritten {
                members: counts.members,
                entries: counts.entries,
                bytes: counts.layer_bytes,
                skipped,
            })
        }
        None => None,
    };
    w.part = Part::Layer;
    w.top = req.tree;
    let walk_skips = walk(req.tree, WalkOptions::BACKUP, |path, found| {
        w.entry(path, found)
    })?;
    let template_members = template.as_ref().map_or(0, |t| t.members);
    let index_frame = w.tar.inner.next_frame().map_err(out_err)?;
    write_data_member(&mut w.tar, INDEX_NAME.as_bytes(), &w.index).map_err(out_err)?;
    let members = w.report.members + template_members + 2;
    let sha256 = hex(&w.tar.sha.clone().finalize());
    let end = EndRecord {
        id: manifest.id,
        members,
        layer_bytes: w.report.layer_bytes,
        sha256: sha256.clone(),
    };
    let end = serde_json::to_vec(&end).map_err(|e| out_err(io::Error::other(e)))?;
    write_data_member(&mut w.tar, END_NAME.as_bytes(), &end).map_err(out_err)?;
    w.tar.write_all(&[0; 1024]).map_err(out_err)?;
    let mut counted = w.tar.inner.finish().map_err(out_err)?;
    let footer = Footer {
        index_frame,
        data_len: counted.count,
    };
    let footer = footer.encode(counted.sha.clone());
    counted.write_all(&footer).map_err(out_err)?;
    counted.flush().map_err(out_err)?;
    let mut skipped = w.report.skipped;
    skipped.add(&walk_skips.into());
    Ok(BackupReport {
        manifest,
        members,
        entries: w.report.entries,
        layer_bytes: w.report.layer_bytes,
        unchanged: w.report.unchanged,
        compressed_bytes: counted.count,
        sha256,
        skipped,
        template,
    })
}

impl From<super::walk::WalkSkips> for Skipped {
    fn from(w: super::walk::WalkSkips) -> Self {
        Skipped {
            too_long: w.too_long,
            mounts: w.mounts,
            changed: w.changed,
            ..Skipped::default()
        }
    }
}

/// Which tree a walk writes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Part {
    /// The template's: `template/` names, owners as they are, the
    /// template's attribute list, no index.
    Template,
    /// The VE's layer.
    Layer,
}

#[derive(Default)]
struct Counts {
    members: u64,
    entries: u64,
    layer_bytes: u64,
    unchanged: u64,
    skipped: Skipped,
}

/// The state of one backup's walk.
struct Layer<'r, 'p, W: Write> {
    req: &'r BackupRequest<'r>,
    part: Part,
    /// The tree being walked (for errors).
    top: &'r Path,
    tar: Hashed<Frames<W>>,
    /// The index member's text, written as the walk goes.
    index: Vec<u8>,
    /// First member name of each multiply-linked regular file.
    links: HashMap<(u64, u64), Vec<u8>>,
    buf: Vec<u8>,
    /// File data bytes read so far.
    done: u64,
    progress: &'p dyn Fn(u64),
    report: Counts,
}

/// A member's common header fields, ids already VE-relative.
struct Common {
    name: Vec<u8>,
    mode: u32,
    uid: u32,
    gid: u32,
    mtime: (i64, u32),
}

impl<W: Write> Layer<'_, '_, W> {
    /// `m`'s owner made VE-relative, or `None` (counted) if it is not the
    /// VE's.
    fn common(&mut self, path: &[u8], m: &Meta) -> Option<Common> {
        let ids = self.req.ids;
        let owner = match self.part {
            // A disk that never ran still has the top its golden image gave
            // it, the host's root's (`volume/golden.rs`): the VE's root's.
            Part::Layer if path.is_empty() && (m.uid, m.gid) == (0, 0) => (Ok(0), Ok(0)),
            Part::Layer => (
                ids.uid(u64::from(m.uid), Direction::ToRelative),
                ids.gid(u64::from(m.gid), Direction::ToRelative),
            ),
            // A template's owners are already what a VE sees.
            Part::Template => (
                IdShift::default().uid(u64::from(m.uid), Direction::ToRelative),
                IdShift::default().gid(u64::from(m.gid), Direction::ToRelative),
            ),
        };
        match owner {
            (Ok(uid), Ok(gid)) => Some(Common {
                name: [self.prefix(), path].concat(),
                mode: m.perm(),
                uid,
                gid,
                mtime: m.mtime,
            }),
            _ => {
                self.report.skipped.foreign_owner += 1;
                None
            }
        }
    }

    fn prefix(&self) -> &'static [u8] {
        match self.part {
            Part::Template => TEMPLATE_PREFIX.as_bytes(),
            Part::Layer => LAYER_PREFIX.as_bytes(),
        }
    }

    fn member<'a>(&self, c: &'a Common, kind: EntryType, size: u64) -> Member<'a> {
        Member {
            name: &c.name,
            kind,
            mode: c.mode,
            uid: c.uid,
            gid: c.gid,
            mtime: c.mtime,
            size,
            link: None,
            records: Vec::new(),
        }
    }

    fn put_header(&mut self, m: &Member<'_>) -> Result<()> {
        write_header(&mut self.tar, m).map_err(out_err)?;
        self.report.members += 1;
        Ok(())
    }

    fn indexed(&mut self, path: &[u8], kind: EntryKind, m: &Meta) {
        if self.part == Part::Layer {
            index::write_line(&mut self.index, path, &Stamp::of(kind, m));
        }
        self.report.entries += 1;
    }

    fn xattr_records(&mut self, fd: BorrowedFd<'_>) -> Vec<u8> {
        let (attrs, dropped) = match self.part {
            Part::Layer => read_xattrs(fd, self.req.ids),
            Part::Template => read_template_xattrs(fd),
        };
        self.report.skipped.xattrs += dropped;
        let mut records = Vec::new();
        for (k, v) in attrs {
            push_pax_record(&mut records, &format!("{PAX_XATTR}{k}"), &v);
        }
        records
    }

    fn entry(&mut self, path: &[u8], found: Found<'_>) -> Result<Descend> {
        if self.part == Part::Template && std::str::from_utf8(path).is_err() {
            // An import refuses such names (its parents' were checked
            // before them: only the last component can be at fault).
            self.report.skipped.names += 1;
            return Ok(Descend::No);
        }
        if self.part == Part::Template {
            if let Found::Other { meta, .. } = &found {
                match meta.file_type() {
                    FileType::Socket => {
                        self.report.skipped.sockets += 1;
                        return Ok(Descend::Yes);
                    }
                    FileType::CharacterDevice | FileType::BlockDevice => {
                        self.report.skipped.devices += 1;
                        return Ok(Descend::Yes);
                    }
                    _ => {}
                }
            }
        }
        match found {
            Found::Dir { fd, meta } => self.dir(path, fd, &meta),
            Found::Other { parent, name, meta } => {
                match meta.file_type() {
                    FileType::RegularFile => self.file(path, parent, name)?,
                    FileType::Symlink => self.symlink(path, parent, name, &meta)?,
                    FileType::Fifo => self.special(path, &meta, EntryKind::Fifo)?,
                    FileType::Socket => self.special(path, &meta, EntryKind::Socket)?,
                    FileType::CharacterDevice if meta.rdev == 0 => {
                        self.special(path, &meta, EntryKind::Whiteout)?
                    }
                    _ => self.report.skipped.devices += 1,
                }
                Ok(Descend::Yes)
            }
        }
    }

    fn dir(&mut self, path: &[u8], fd: BorrowedFd<'_>, meta: &Meta) -> Result<Descend> {
        let Some(c) = self.common(path, meta) else {
            if path.is_empty() {
                return Err(BackupError::Tree {
                    path: self.top.to_path_buf(),
                    reason: format!(
                        "its top is owned by {}:{}, outside the VE's ids",
                        meta.uid, meta.gid
                    ),
                }
                .into());
            }
            return Ok(Descend::No);
        };
        let mut m = self.member(&c, EntryType::Directory, 0);
        m.records = self.xattr_records(fd);
        self.put_header(&m)?;
        self.indexed(path, EntryKind::Dir, meta);
        Ok(Descend::Yes)
    }

    fn symlink(
        &mut self,
        path: &[u8],
        parent: BorrowedFd<'_>,
        name: &std::ffi::CStr,
        meta: &Meta,
    ) -> Result<()> {
        let target = match readlinkat(parent, name, Vec::new()) {
            Ok(t) => t,
            Err(Errno::NOENT | Errno::INVAL) => {
                self.report.skipped.changed += 1;
                return Ok(());
            }
            Err(e) => return Err(tree_err(self.top, path, io::Error::from(e))),
        };
        let Some(c) = self.common(path, meta) else {
            return Ok(());
        };
        let mut m = self.member(&c, EntryType::Symlink, 0);
        m.link = Some(target.as_bytes());
        self.put_header(&m)?;
        self.indexed(path, EntryKind::Symlink, meta);
        Ok(())
    }

    /// A FIFO, socket or whiteout: a header only, nothing opened.
    ///
    /// A whiteout is the one entry kept whatever its owner: overlayfs
    /// makes it with the mounter's credentials (host root), and its owner
    /// means nothing to overlayfs, only its type does. It is stored as
    /// owned by the VE's root (relative 0:0). Dropping it would bring the
    /// template's file back in a restored VE.
    fn special(&mut self, path: &[u8], meta: &Meta, kind: EntryKind) -> Result<()> {
        let c = if kind == EntryKind::Whiteout {
            Common {
                name: [self.prefix(), path].concat(),
                mode: meta.perm(),
                uid: 0,
                gid: 0,
                mtime: meta.mtime,
            }
        } else {
            let Some(c) = self.common(path, meta) else {
                return Ok(());
            };
            c
        };
        let tar_kind = match kind {
            EntryKind::Whiteout => EntryType::Char,
            _ => EntryType::Fifo,
        };
        let mut m = self.member(&c, tar_kind, 0);
        if kind == EntryKind::Socket {
            push_pax_record(&mut m.records, PAX_KIND, b"socket");
        }
        self.put_header(&m)?;
        self.indexed(path, kind, meta);
        Ok(())
    }

    fn file(&mut self, path: &[u8], parent: BorrowedFd<'_>, name: &std::ffi::CStr) -> Result<()> {
        let fd: OwnedFd = match openat2(
            parent,
            name,
            OFlags::RDONLY | OFlags::NOFOLLOW | OFlags::NONBLOCK | OFlags::CLOEXEC,
            Mode::empty(),
            STRICT,
        ) {
            Ok(fd) => fd,
            // Gone, or replaced by a symlink, a socket or a device.
            Err(Errno::NOENT | Errno::LOOP | Errno::NXIO | Errno::XDEV) => {
                self.report.skipped.changed += 1;
                return Ok(());
            }
            Err(e) => return Err(tree_err(self.top, path, io::Error::from(e))),
        };
        let meta =
            Meta::from_stat(&fstat(&fd).map_err(|e| tree_err(self.top, path, io::Error::from(e)))?);
        if meta.file_type() != FileType::RegularFile {
            self.report.skipped.changed += 1;
            return Ok(());
        }
        let Some(c) = self.common(path, &meta) else {
            return Ok(());
        };
        if meta.nlink > 1 {
            if let Some(first) = self.links.get(&(meta.dev, meta.ino)) {
                let first = first.clone();
                let mut m = self.member(&c, EntryType::Link, 0);
                m.link = Some(&first);
                self.put_header(&m)?;
                self.indexed(path, EntryKind::File, &meta);
                return Ok(());
            }
            self.links.insert((meta.dev, meta.ino), c.name.clone());
        }
        let records = self.xattr_records(fd.as_fd());
        let stamp = Stamp::of(EntryKind::File, &meta);
        let unchanged = self.part == Part::Layer
            && self
                .req
                .base
                .and_then(|b| b.entries.get(path))
                .is_some_and(|b| stamp.unchanged_since(b));
        if unchanged {
            let mut m = self.member(&c, EntryType::Regular, 0);
            m.records = records;
            push_pax_record(&mut m.records, PAX_UNCHANGED, b"1");
            self.put_header(&m)?;
            self.report.unchanged += 1;
        } else if looks_sparse(meta.size, meta.blocks) {
            self.sparse(path, &c, records, fd.as_fd(), meta.size)?;
        } else {
            let mut m = self.member(&c, EntryType::Regular, meta.size);
            m.records = records;
            self.put_header(&m)?;
            self.data(path, fd.as_fd(), 0, meta.size)?;
            pad(&mut self.tar, meta.size).map_err(out_err)?;
        }
        self.indexed(path, EntryKind::File, &meta);
        Ok(())
    }

    /// Copies a range of the file into the stream.
    fn data(&mut self, path: &[u8], fd: BorrowedFd<'_>, off: u64, len: u64) -> Result<()> {
        let progress = self.progress;
        let mut done = self.done;
        let short = copy_range(fd, off, len, &mut self.buf, &mut self.tar, &mut |n| {
            done += n;
            progress(done);
        })
        .map_err(|e| match e {
            CopyFail::Write(e) => out_err(e),
            CopyFail::Read(e) => tree_err(self.top, path, e),
        })?;
        self.done = done;
        self.report.layer_bytes += len;
        if short {
            self.report.skipped.changed += 1;
        }
        Ok(())
    }

    /// A file with holes: its data segments, in members of at most
    /// `MAX_SEGMENTS` segments each.
    fn sparse(
        &mut self,
        path: &[u8],
        c: &Common,
        records: Vec<u8>,
        fd: BorrowedFd<'_>,
        size: u64,
    ) -> Result<()> {
        let mut segments = Segments::new(fd, size);
        let mut xattrs = Some(records);
        let mut first = true;
        loop {
            let batch = segments
                .next_batch()
                .map_err(|e| tree_err(self.top, path, e))?;
            if !first && batch.is_empty() {
                break;
            }
            let mut records = xattrs.take().unwrap_or_default();
            if first {
                push_pax_record(&mut records, PAX_REALSIZE, size.to_string().as_bytes());
            } else {
                push_pax_record(&mut records, PAX_SPARSE_MORE, b"1");
            }
            first = false;
            push_pax_record(&mut records, PAX_SPARSE, encode_map(&batch).as_bytes());
            let stored: u64 = batch.iter().map(|s| s.len).sum();
            let mut m = self.member(c, EntryType::Regular, stored);
            m.records = records;
            self.put_header(&m)?;
            for s in &batch {
                self.data(path, fd, s.off, s.len)?;
            }
            pad(&mut self.tar, stored).map_err(out_err)?;
            if batch.len() < super::sparse_map::MAX_SEGMENTS {
                break;
            }
        }
        Ok(())
    }
}

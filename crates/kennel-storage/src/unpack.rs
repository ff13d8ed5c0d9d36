//! Unpacking an untrusted tar archive into a directory without ever writing
//! outside it.
//!
//! Written by hand on top of the `tar` crate's parser because its own
//! `unpack` resolves paths through the host's view of the tree. Here every
//! path is resolved by the kernel with `openat2(RESOLVE_IN_ROOT)` relative
//! to a descriptor of the destination, so:
//!
//! * absolute member names are taken relative to the destination;
//! * members whose names contain `..` are refused;
//! * symlinks in the archive are created as they are, and any later member
//!   that walks through one is resolved as if the destination were `/`, so
//!   it can never leave the tree;
//! * an existing entry is unlinked before a file is created (`O_EXCL`,
//!   `O_NOFOLLOW`), so nothing is ever written *through* a symlink;
//! * hard links must name a target inside the tree;
//! * device nodes are skipped (each VE gets its own `/dev`);
//! * members owned by a uid or gid outside the VE's 65536 ids are refused
//!   (inside a VE they would belong to nobody);
//! * everything refused or skipped is counted by reason
//!   ([`UnpackReport::refusals`]) and the first reasons kept with their
//!   names, so the caller can tell the operator what the archive held that
//!   was not made: a refusal is never silent, and never stops the unpack
//!   (the archive is the tenant's, and the rest of it is still theirs);
//! * the total size and the number of members are bounded
//!   ([`UnpackLimits`]; a directory made for a member's name counts as a
//!   member), so a small compressed file cannot fill the disk;
//! * the tar parser may read at most [`METADATA_ALLOWANCE`] bytes of
//!   headers, long names and PAX records per member (it keeps those in
//!   memory), so a small compressed file cannot exhaust memory either;
//! * member names reach messages (refusals, errors) only escaped and cut
//!   short ([`crate::shown`]): a name cannot write to the operator's
//!   terminal.
//!
//! The same unpacker restores a VE's own layer from a backup
//! ([`crate::backup`]): [`UnpackOptions`] picks the [`Flavor`], which only
//! widens what a member may be (ids shifted into the VE's range,
//! whiteouts, the backup's attributes, sparse and unchanged members) and
//! narrows how paths resolve (no symlink at all); everything above holds
//! for both. The loop over members ([`for_each_member`], with its
//! metadata budget) is shared with the backup reader, and the work on each
//! member is [`member::Unpacker`]'s.

pub(crate) mod layer;
pub(crate) mod member;
mod options;
mod paths;
mod regular;

pub use options::{Flavor, UnpackOptions};

use std::cell::Cell;
use std::io::{self, Read};
use std::path::Path;
use std::rc::Rc;

use rustix::io::Errno;

use crate::error::{Result, StorageError};

/// What an unpack did.
#[derive(Debug, Default, Clone)]
pub struct UnpackReport {
    /// Members written (files, directories, links, FIFOs).
    pub entries: u64,
    /// Device nodes skipped.
    pub devices: u64,
    /// Members refused, with the reason (at most [`MAX_REFUSED`] kept).
    pub refused: Vec<String>,
    /// Members refused: the sum of [`Self::refused_by`].
    pub refused_count: u64,
    /// Members refused, by reason.
    pub refused_by: RefusedBy,
    /// Layers: overlayfs whiteouts made.
    pub whiteouts: u64,
    /// Layers: members whose content was already in the tree.
    pub unchanged: u64,
    /// Layers: members skipped as overlayfs metadata-only copies
    /// (`trusted.overlay.metacopy`, see `crate::backup::xattr_policy`),
    /// and hard links to them.
    pub metacopy: u64,
    /// Layers: extended attributes not restored (not on the backup's
    /// list, an overlayfs attribute a restore does not take, malformed,
    /// ids outside the range, refused by the filesystem).
    pub xattrs_dropped: u64,
}

/// Members refused, by reason.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct RefusedBy {
    /// Names with a `..` component: they would leave the tree.
    pub paths: u64,
    /// Names whose directories cannot be used: a symlink on the way (a
    /// layer follows none), a file, a mount.
    pub through_symlink: u64,
    /// Hard links to nothing the tree holds: a name outside it (or the
    /// backup's layer), the root, a missing entry.
    pub hard_links: u64,
    /// Owners outside the VE's ids.
    pub foreign_owners: u64,
    /// Headers or records that do not parse or contradict each other;
    /// names with a NUL byte or (templates) not UTF-8.
    pub malformed: u64,
}

/// Why a member is refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Reason {
    Path,
    ThroughSymlink,
    HardLink,
    Owner,
    Malformed,
}

/// Everything an unpack (or a restore's unpacks) did not make, by reason.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct Refusals {
    pub refused: RefusedBy,
    /// Device nodes skipped.
    pub devices: u64,
    /// Metadata-only copies skipped (layers).
    pub metacopy: u64,
    /// Extended attributes not restored (layers).
    pub xattrs: u64,
}

impl Refusals {
    /// Members refused or skipped (attributes are not members).
    pub fn entries(&self) -> u64 {
        let r = &self.refused;
        r.paths
            + r.through_symlink
            + r.hard_links
            + r.foreign_owners
            + r.malformed
            + self.devices
            + self.metacopy
    }

    /// Adds `other`'s counts.
    pub fn add(&mut self, other: &Refusals) {
        let (a, b) = (&mut self.refused, &other.refused);
        a.paths += b.paths;
        a.through_symlink += b.through_symlink;
        a.hard_links += b.hard_links;
        a.foreign_owners += b.foreign_owners;
        a.malformed += b.malformed;
        self.devices += other.devices;
        self.metacopy += other.metacopy;
        self.xattrs += other.xattrs;
    }

    /// The non-zero member counts, each with its reason in words (for
    /// `tree`, say "the layer"), in a fixed order.
    pub fn reasons(&self, tree: &str) -> Vec<String> {
        let r = &self.refused;
        let plural =
            |n: u64, one: &str, many: &str| format!("{n} {}", if n == 1 { one } else { many });
        [
            (
                r.paths,
                format!("path outside {tree}"),
                format!("paths outside {tree}"),
            ),
            (
                r.through_symlink,
                "path through a symlink".to_string(),
                "paths through a symlink".to_string(),
            ),
            (
                r.hard_links,
                format!("hard link to nothing in {tree}"),
                format!("hard links to nothing in {tree}"),
            ),
            (
                self.devices,
                "device node".to_string(),
                "device nodes".to_string(),
            ),
            (
                r.foreign_owners,
                "owner outside the VE's ids".to_string(),
                "owners outside the VE's ids".to_string(),
            ),
            (
                self.metacopy,
                "metadata-only copy of a template file".to_string(),
                "metadata-only copies of template files".to_string(),
            ),
            (
                r.malformed,
                "malformed member".to_string(),
                "malformed members".to_string(),
            ),
        ]
        .into_iter()
        .filter(|(n, _, _)| *n > 0)
        .map(|(n, one, many)| plural(n, &one, &many))
        .collect()
    }
}

impl UnpackReport {
    /// What this unpack did not make, by reason.
    pub fn refusals(&self) -> Refusals {
        Refusals {
            refused: self.refused_by,
            devices: self.devices,
            metacopy: self.metacopy,
            xattrs: self.xattrs_dropped,
        }
    }
}

pub const MAX_REFUSED: usize = 20;

/// Bytes of headers, GNU long names and PAX records allowed per member.
pub const METADATA_ALLOWANCE: u64 = 1 << 20;

/// How much more the tar parser may read from the stream. The unpack loop
/// sets it before each step: one member's headers, then its data.
#[derive(Debug, Default)]
pub(crate) struct Budget {
    left: Cell<u64>,
    /// Bytes read from the stream so far.
    read: Cell<u64>,
    /// A read was refused: the stream went past the budget.
    exceeded: Cell<bool>,
}

/// The archive stream, read within a [`Budget`].
#[derive(Debug)]
pub(crate) struct Budgeted<R> {
    inner: R,
    budget: Rc<Budget>,
}

impl<R: Read> Read for Budgeted<R> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let left = self.budget.left.get();
        if left == 0 && !buf.is_empty() {
            self.budget.exceeded.set(true);
            return Err(io::Error::other("past the member's size"));
        }
        let want = buf.len().min(usize::try_from(left).unwrap_or(usize::MAX));
        let n = self.inner.read(&mut buf[..want])?;
        self.budget.left.set(left - n as u64);
        self.budget.read.set(self.budget.read.get() + n as u64);
        Ok(n)
    }
}

/// Owners a template's files may have: the ids a VE maps (0-65535).
pub(crate) const MAX_OWNER: u64 = 65535;

/// Bounds on what one archive may unpack to.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct UnpackLimits {
    /// Bytes of file contents.
    pub max_bytes: u64,
    /// Members of any kind, and directories made for their names.
    pub max_entries: u64,
}

impl Default for UnpackLimits {
    /// 64 GiB and 4 million members: ten times a large distribution image.
    fn default() -> Self {
        UnpackLimits {
            max_bytes: 64 << 30,
            max_entries: 4_000_000,
        }
    }
}

pub(crate) fn archive_err(reason: impl Into<String>) -> StorageError {
    StorageError::Archive {
        path: Default::default(),
        reason: reason.into(),
    }
}

pub(crate) fn errno_err(what: &str, name: &str, e: Errno) -> StorageError {
    archive_err(format!("{what} '{name}': {}", io::Error::from(e)))
}

/// Why a member name is refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum BadName {
    /// A `..` component: the name would leave the tree.
    DotDot,
    NotUtf8,
    Nul,
}

impl BadName {
    pub(crate) fn as_str(self) -> &'static str {
        match self {
            BadName::DotDot => "contains '..'",
            BadName::NotUtf8 => "is not valid UTF-8",
            BadName::Nul => "contains a NUL byte",
        }
    }

    pub(crate) fn reason(self) -> Reason {
        match self {
            BadName::DotDot => Reason::Path,
            BadName::NotUtf8 | BadName::Nul => Reason::Malformed,
        }
    }
}

/// Splits a member name into clean components. `Ok(None)` is the root
/// itself; `Err` carries the reason the name is refused. Templates' names
/// must be UTF-8; a layer's may be any bytes but NUL (a VE can make such
/// names).
pub(crate) fn clean_path(
    raw: &[u8],
    flavor: Flavor,
) -> std::result::Result<Option<Vec<Vec<u8>>>, BadName> {
    let mut out = Vec::new();
    for part in raw.split(|&b| b == b'/') {
        match part {
            b"" | b"." => continue,
            b".." => return Err(BadName::DotDot),
            p => {
                match flavor {
                    Flavor::Template => {
                        std::str::from_utf8(p).map_err(|_| BadName::NotUtf8)?;
                    }
                    Flavor::Layer if p.contains(&0) => return Err(BadName::Nul),
                    Flavor::Layer => {}
                }
                out.push(p.to_vec());
            }
        }
    }
    Ok(if out.is_empty() { None } else { Some(out) })
}

/// Unpacks the tar stream `reader` into the existing directory `dest`,
/// within `limits`, as a template.
pub fn unpack<R: Read>(reader: R, dest: &Path, limits: &UnpackLimits) -> Result<UnpackReport> {
    let opts = UnpackOptions {
        limits: *limits,
        ..UnpackOptions::default()
    };
    unpack_with(reader, dest, &opts)
}

/// Unpacks the tar stream `reader` into the existing directory `dest` as
/// `opts` say.
pub fn unpack_with<R: Read>(reader: R, dest: &Path, opts: &UnpackOptions) -> Result<UnpackReport> {
    let mut u = member::Unpacker::new(dest, opts)?;
    for_each_member(reader, |entry| {
        let raw = entry.path_bytes().into_owned();
        u.member(entry, &raw)?;
        Ok(Flow::Continue)
    })
    .map_err(Stopped::into_error)?;
    u.finish()
}

/// Whether [`for_each_member`] goes on.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Flow {
    Continue,
    Stop,
}

/// Why [`for_each_member`] stopped early.
#[derive(Debug)]
pub(crate) enum Stopped {
    /// The stream is not a tar archive, or a corrupt one, or a member's
    /// headers pass the [`METADATA_ALLOWANCE`].
    Parse(StorageError),
    /// The visitor failed.
    Visit(StorageError),
}

impl Stopped {
    pub(crate) fn into_error(self) -> StorageError {
        match self {
            Stopped::Parse(e) | Stopped::Visit(e) => e,
        }
    }
}

/// Calls `visit` with each member of the tar stream `reader`, reading at
/// most [`METADATA_ALLOWANCE`] bytes of headers per member and never past
/// a member's data; returns the stream where the archive ended (or where
/// `visit` stopped).
pub(crate) fn for_each_member<R: Read>(
    reader: R,
    mut visit: impl FnMut(&mut tar::Entry<'_, Budgeted<R>>) -> Result<Flow>,
) -> std::result::Result<R, Stopped> {
    let budget = Rc::new(Budget::default());
    let mut archive = tar::Archive::new(Budgeted {
        inner: reader,
        budget: Rc::clone(&budget),
    });
    let mut entries = archive
        .entries()
        .map_err(|e| Stopped::Parse(archive_err(format!("not a tar archive: {e}"))))?;
    // Where the previous member's data (padded) ends in the stream.
    let mut data_end: u64 = 0;
    loop {
        // What is left of the previous member's data, then the next headers.
        let unread = data_end.saturating_sub(budget.read.get());
        budget.left.set(unread.saturating_add(METADATA_ALLOWANCE));
        let Some(entry) = entries.next() else { break };
        let mut entry = entry.map_err(|e| {
            if budget.exceeded.get() {
                return Stopped::Parse(archive_err(format!(
                    "a member's headers (long name, PAX records) pass {} KiB",
                    METADATA_ALLOWANCE >> 10
                )));
            }
            // The reason may quote the archive's bytes: cut at a character.
            let why: String = e.to_string().chars().take(80).collect();
            Stopped::Parse(archive_err(format!(
                "not a tar archive, or a corrupt one ({why})"
            )))
        })?;
        let stored = entry
            .size()
            .max(entry.header().entry_size().unwrap_or(0))
            .div_ceil(512)
            .saturating_mul(512);
        data_end = budget.read.get().saturating_add(stored);
        budget.left.set(stored);
        if visit(&mut entry).map_err(Stopped::Visit)? == Flow::Stop {
            break;
        }
    }
    budget.left.set(u64::MAX);
    Ok(archive.into_inner().inner)
}

pub(crate) fn too_many(limits: &UnpackLimits) -> StorageError {
    archive_err(format!(
        "more than {} members: if the archive is genuine, raise import_max_entries in kennel.toml",
        limits.max_entries
    ))
}

pub(crate) fn refuse(report: &mut UnpackReport, reason: Reason, name: &str, why: &str) {
    report.refused_count += 1;
    let by = &mut report.refused_by;
    *match reason {
        Reason::Path => &mut by.paths,
        Reason::ThroughSymlink => &mut by.through_symlink,
        Reason::HardLink => &mut by.hard_links,
        Reason::Owner => &mut by.foreign_owners,
        Reason::Malformed => &mut by.malformed,
    } += 1;
    if report.refused.len() < MAX_REFUSED {
        report.refused.push(format!("'{name}': {why}"));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn clean_paths() {
        let t = Flavor::Template;
        assert_eq!(
            clean_path(b"./etc/passwd", t),
            Ok(Some(vec![b"etc".to_vec(), b"passwd".to_vec()]))
        );
        assert_eq!(
            clean_path(b"/abs//x/", t),
            Ok(Some(vec![b"abs".to_vec(), b"x".to_vec()]))
        );
        assert_eq!(clean_path(b"./", t), Ok(None));
        assert_eq!(clean_path(b"a/../../etc", t), Err(BadName::DotDot));
        assert!(clean_path(b"..", t).is_err());
        assert_eq!(clean_path(b"a/\xff", t), Err(BadName::NotUtf8));
        let l = Flavor::Layer;
        assert_eq!(
            clean_path(b"a/\xff", l),
            Ok(Some(vec![b"a".to_vec(), b"\xff".to_vec()]))
        );
        assert_eq!(clean_path(b"a/b\0c", l), Err(BadName::Nul));
        assert!(clean_path(b"x/../y", l).is_err());
    }

    /// Found by fuzzing: one member named a/b/c/.../z made every missing
    /// directory of its name, past the member limit.
    #[test]
    fn directories_made_for_a_name_count_as_members() {
        let mut b = tar::Builder::new(Vec::new());
        let mut h = tar::Header::new_gnu();
        h.set_size(1);
        h.set_mode(0o644);
        h.set_cksum();
        b.append_data(&mut h, "a/b/c/d/e/f/g/h", &b"x"[..])
            .expect("member");
        let tar = b.into_inner().expect("tar");
        let limits = |n| UnpackLimits {
            max_bytes: 1 << 20,
            max_entries: n,
        };
        for (n, ok) in [(7, false), (8, true)] {
            let d = tempfile::tempdir().expect("tempdir");
            let r = unpack(tar.as_slice(), d.path(), &limits(n));
            assert_eq!(r.is_ok(), ok, "limit {n}: {r:?}");
            let made = walk_count(d.path());
            assert!(made <= n, "{made} made under a limit of {n}");
        }
    }

    fn walk_count(dir: &Path) -> u64 {
        std::fs::read_dir(dir)
            .expect("read")
            .map(|e| {
                let p = e.expect("entry").path();
                1 + if p.is_dir() { walk_count(&p) } else { 0 }
            })
            .sum()
    }
}

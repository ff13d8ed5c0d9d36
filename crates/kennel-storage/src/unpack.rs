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
//! * the total size and the number of members are bounded
//!   ([`UnpackLimits`]; a directory made for a member's name counts as a
//!   member), so a small compressed file cannot fill the disk;
//! * the tar parser may read at most [`METADATA_ALLOWANCE`] bytes of
//!   headers, long names and PAX records per member (it keeps those in
//!   memory), so a small compressed file cannot exhaust memory either;
//! * member names reach messages (refusals, errors) only escaped and cut
//!   short ([`crate::shown`]): a name cannot write to the operator's
//!   terminal.

use std::cell::Cell;
use std::io::{self, Read};
use std::os::fd::{AsFd, BorrowedFd, OwnedFd};
use std::path::Path;
use std::rc::Rc;

use rustix::fs::{
    fchmod, fchown, fsetxattr, futimens, linkat, mkdirat, mknodat, openat2, statat, symlinkat,
    unlinkat, utimensat, AtFlags, FileType, Gid, Mode, OFlags, ResolveFlags, Timespec, Timestamps,
    Uid, XattrFlags,
};
use rustix::io::Errno;

use crate::error::{Result, StorageError};
use crate::shown::shown;

/// What an unpack did.
#[derive(Debug, Default, Clone)]
pub struct UnpackReport {
    /// Members written (files, directories, links, FIFOs).
    pub entries: u64,
    /// Device nodes skipped.
    pub devices: u64,
    /// Members refused, with the reason (at most [`MAX_REFUSED`] kept).
    pub refused: Vec<String>,
    pub refused_count: u64,
}

pub const MAX_REFUSED: usize = 20;

/// Bytes of headers, GNU long names and PAX records allowed per member.
pub const METADATA_ALLOWANCE: u64 = 1 << 20;

/// How much more the tar parser may read from the stream. The unpack loop
/// sets it before each step: one member's headers, then its data.
#[derive(Default)]
struct Budget {
    left: Cell<u64>,
    /// Bytes read from the stream so far.
    read: Cell<u64>,
    /// A read was refused: the stream went past the budget.
    exceeded: Cell<bool>,
}

/// The archive stream, read within a [`Budget`].
struct Budgeted<R> {
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
const MAX_OWNER: u64 = 65535;

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

const RESOLVE: ResolveFlags = ResolveFlags::IN_ROOT.union(ResolveFlags::NO_MAGICLINKS);

fn archive_err(reason: impl Into<String>) -> StorageError {
    StorageError::Archive {
        path: Default::default(),
        reason: reason.into(),
    }
}

fn errno_err(what: &str, name: &str, e: Errno) -> StorageError {
    archive_err(format!("{what} '{name}': {}", io::Error::from(e)))
}

/// Splits a member name into clean components. `Ok(None)` is the root
/// itself; `Err` carries the reason the name is refused.
pub(crate) fn clean_path(raw: &[u8]) -> std::result::Result<Option<Vec<String>>, &'static str> {
    let mut out = Vec::new();
    for part in raw.split(|&b| b == b'/') {
        match part {
            b"" | b"." => continue,
            b".." => return Err("contains '..'"),
            p => {
                let s = std::str::from_utf8(p).map_err(|_| "is not valid UTF-8")?;
                out.push(s.to_string());
            }
        }
    }
    Ok(if out.is_empty() { None } else { Some(out) })
}

/// A directory whose mode and times are applied once everything below it
/// has been written.
struct PendingDir {
    path: String,
    mode: u32,
    mtime: i64,
}

/// Unpacks the tar stream `reader` into the existing directory `dest`,
/// within `limits`.
pub fn unpack<R: Read>(reader: R, dest: &Path, limits: &UnpackLimits) -> Result<UnpackReport> {
    let root = rustix::fs::open(
        dest,
        OFlags::PATH | OFlags::DIRECTORY | OFlags::CLOEXEC,
        Mode::empty(),
    )
    .map_err(|e| errno_err("open", &dest.display().to_string(), e))?;
    let mut report = UnpackReport::default();
    let mut dirs: Vec<PendingDir> = Vec::new();
    let mut bytes: u64 = 0;
    let mut seen: u64 = 0;
    let budget = Rc::new(Budget::default());
    let mut archive = tar::Archive::new(Budgeted {
        inner: reader,
        budget: Rc::clone(&budget),
    });
    let mut entries = archive
        .entries()
        .map_err(|e| archive_err(format!("not a tar archive: {e}")))?;
    // Where the previous member's data (padded) ends in the stream.
    let mut data_end: u64 = 0;
    loop {
        // What is left of the previous member's data, then the next headers.
        let unread = data_end.saturating_sub(budget.read.get());
        budget.left.set(unread.saturating_add(METADATA_ALLOWANCE));
        let Some(entry) = entries.next() else { break };
        let mut entry = entry.map_err(|e| {
            if budget.exceeded.get() {
                return archive_err(format!(
                    "a member's headers (long name, PAX records) pass {} KiB",
                    METADATA_ALLOWANCE >> 10
                ));
            }
            // The reason may quote the archive's bytes: cut at a character.
            let why: String = e.to_string().chars().take(80).collect();
            archive_err(format!("not a tar archive, or a corrupt one ({why})"))
        })?;
        let stored = entry
            .size()
            .max(entry.header().entry_size().unwrap_or(0))
            .div_ceil(512)
            .saturating_mul(512);
        data_end = budget.read.get().saturating_add(stored);
        budget.left.set(stored);
        seen += 1;
        if seen > limits.max_entries {
            return Err(too_many(limits));
        }
        let raw = entry.path_bytes().into_owned();
        // The name as messages show it: escaped, bounded (crate::shown).
        let name = shown(&raw);
        let comps = match clean_path(&raw) {
            Ok(Some(c)) => c,
            Ok(None) => continue, // the root directory itself
            Err(why) => {
                refuse(&mut report, &name, why);
                continue;
            }
        };
        let kind = entry.header().entry_type();
        if kind.is_character_special() || kind.is_block_special() {
            report.devices += 1;
            continue;
        }
        let (parent_comps, file) = comps.split_at(comps.len() - 1);
        let file = &file[0];
        let parent = match open_parent(root.as_fd(), parent_comps, &mut seen, limits) {
            Ok(p) => p,
            Err(ParentError::Limit) => return Err(too_many(limits)),
            Err(ParentError::Sys(e)) => {
                refuse(
                    &mut report,
                    &name,
                    &format!("its parent cannot be used ({})", io::Error::from(e)),
                );
                continue;
            }
        };
        let h = entry.header();
        let mode = h.mode().unwrap_or(0o644) & 0o7777;
        // An unreadable owner is not taken as root's.
        let (Ok(uid), Ok(gid)) = (h.uid(), h.gid()) else {
            refuse(&mut report, &name, "its owner field is not a number");
            continue;
        };
        let mtime = h.mtime().unwrap_or(0) as i64;
        if uid > MAX_OWNER || gid > MAX_OWNER {
            refuse(
                &mut report,
                &name,
                &format!("owner {uid}:{gid} is outside the VE's ids 0-{MAX_OWNER}"),
            );
            continue;
        }
        // In range, so the casts are exact.
        let owner = (
            Some(Uid::from_raw(uid as u32)),
            Some(Gid::from_raw(gid as u32)),
        );
        if kind.is_dir() {
            make_dir(parent.as_fd(), file).map_err(|e| errno_err("mkdir", &name, e))?;
            chown_entry(parent.as_fd(), file, owner).map_err(|e| errno_err("chown", &name, e))?;
            dirs.push(PendingDir {
                path: comps.join("/"),
                mode,
                mtime,
            });
        } else if kind.is_symlink() {
            let Some(target) = entry.link_name_bytes() else {
                refuse(&mut report, &name, "symlink without a target");
                continue;
            };
            let target = target.into_owned();
            remove_existing(parent.as_fd(), file).map_err(|e| errno_err("replace", &name, e))?;
            symlinkat(target.as_slice(), parent.as_fd(), file.as_str())
                .map_err(|e| errno_err("symlink", &name, e))?;
            chown_entry(parent.as_fd(), file, owner).map_err(|e| errno_err("chown", &name, e))?;
            let _ = utimensat(
                parent.as_fd(),
                file.as_str(),
                &times(mtime),
                AtFlags::SYMLINK_NOFOLLOW,
            );
        } else if kind.is_hard_link() {
            let target = entry
                .link_name_bytes()
                .map(|t| t.into_owned())
                .unwrap_or_default();
            let tcomps = match clean_path(&target) {
                Ok(Some(c)) => c,
                Ok(None) => {
                    refuse(&mut report, &name, "hard link to the root directory");
                    continue;
                }
                Err(why) => {
                    refuse(&mut report, &name, &format!("hard link target {why}"));
                    continue;
                }
            };
            let (tparent_comps, tfile) = tcomps.split_at(tcomps.len() - 1);
            let tparent = match openat2(
                root.as_fd(),
                rel(tparent_comps),
                OFlags::PATH | OFlags::DIRECTORY | OFlags::CLOEXEC,
                Mode::empty(),
                RESOLVE,
            ) {
                Ok(p) => p,
                Err(e) => {
                    refuse(
                        &mut report,
                        &name,
                        &format!(
                            "hard link target's directory is missing ({})",
                            io::Error::from(e)
                        ),
                    );
                    continue;
                }
            };
            remove_existing(parent.as_fd(), file).map_err(|e| errno_err("replace", &name, e))?;
            if let Err(e) = linkat(
                tparent.as_fd(),
                tfile[0].as_str(),
                parent.as_fd(),
                file.as_str(),
                AtFlags::empty(),
            ) {
                refuse(
                    &mut report,
                    &name,
                    &format!("hard link failed ({})", io::Error::from(e)),
                );
                continue;
            }
        } else if kind.is_fifo() {
            remove_existing(parent.as_fd(), file).map_err(|e| errno_err("replace", &name, e))?;
            mknodat(
                parent.as_fd(),
                file.as_str(),
                FileType::Fifo,
                Mode::from_raw_mode(mode & 0o777),
                0,
            )
            .map_err(|e| errno_err("mkfifo", &name, e))?;
            chown_entry(parent.as_fd(), file, owner).map_err(|e| errno_err("chown", &name, e))?;
        } else if kind.is_file() || kind.is_contiguous() || kind == tar::EntryType::GNUSparse {
            bytes = bytes.saturating_add(entry.size());
            if bytes > limits.max_bytes {
                return Err(archive_err(format!(
                    "its files hold more than {} MiB: if the archive is genuine, raise import_max_size in kennel.toml",
                    limits.max_bytes >> 20
                )));
            }
            let xattrs = collect_xattrs(&mut entry);
            remove_existing(parent.as_fd(), file).map_err(|e| errno_err("replace", &name, e))?;
            let fd = rustix::fs::openat(
                parent.as_fd(),
                file.as_str(),
                OFlags::CREATE | OFlags::EXCL | OFlags::WRONLY | OFlags::NOFOLLOW | OFlags::CLOEXEC,
                Mode::from_raw_mode(0o600),
            )
            .map_err(|e| errno_err("create", &name, e))?;
            let mut f = std::fs::File::from(fd);
            io::copy(&mut entry, &mut f)
                .map_err(|e| archive_err(format!("write '{name}': {e}")))?;
            fchown(&f, owner.0, owner.1).map_err(|e| errno_err("chown", &name, e))?;
            // chmod after chown: chown clears set-user-ID bits.
            fchmod(&f, Mode::from_raw_mode(mode)).map_err(|e| errno_err("chmod", &name, e))?;
            for (k, v) in xattrs {
                let _ = fsetxattr(&f, k.as_str(), &v, XattrFlags::empty());
            }
            let _ = futimens(&f, &times(mtime));
        } else {
            // GNU volume labels, unknown types: nothing to create.
            continue;
        }
        report.entries += 1;
    }
    // Deepest first, so a read-only parent never blocks its children.
    dirs.sort_by_key(|d| std::cmp::Reverse(d.path.len()));
    for d in dirs {
        if let Ok(fd) = openat2(
            root.as_fd(),
            d.path.as_str(),
            OFlags::RDONLY | OFlags::DIRECTORY | OFlags::NOFOLLOW | OFlags::CLOEXEC,
            Mode::empty(),
            RESOLVE,
        ) {
            let _ = fchmod(&fd, Mode::from_raw_mode(d.mode));
            let _ = futimens(&fd, &times(d.mtime));
        }
    }
    Ok(report)
}

fn too_many(limits: &UnpackLimits) -> StorageError {
    archive_err(format!(
        "more than {} members: if the archive is genuine, raise import_max_entries in kennel.toml",
        limits.max_entries
    ))
}

/// Sets the owner of entry `name` in `parent` without following it.
fn chown_entry(
    parent: BorrowedFd<'_>,
    name: &str,
    owner: (Option<Uid>, Option<Gid>),
) -> rustix::io::Result<()> {
    rustix::fs::chownat(parent, name, owner.0, owner.1, AtFlags::SYMLINK_NOFOLLOW)
}

fn refuse(report: &mut UnpackReport, name: &str, why: &str) {
    report.refused_count += 1;
    if report.refused.len() < MAX_REFUSED {
        report.refused.push(format!("'{name}': {why}"));
    }
}

fn rel(comps: &[String]) -> String {
    if comps.is_empty() {
        ".".into()
    } else {
        comps.join("/")
    }
}

fn times(mtime: i64) -> Timestamps {
    let t = Timespec {
        tv_sec: mtime,
        tv_nsec: 0,
    };
    Timestamps {
        last_access: t,
        last_modification: t,
    }
}

/// Only these extended attributes are restored: file capabilities (ping)
/// and user attributes. `trusted.*` and security labels are never taken
/// from an untrusted archive.
fn collect_xattrs<R: Read>(entry: &mut tar::Entry<'_, R>) -> Vec<(String, Vec<u8>)> {
    let mut out = Vec::new();
    if let Ok(Some(exts)) = entry.pax_extensions() {
        for ext in exts.flatten() {
            let Ok(key) = ext.key() else { continue };
            let Some(name) = key.strip_prefix("SCHILY.xattr.") else {
                continue;
            };
            if name == "security.capability" || name.starts_with("user.") {
                out.push((name.to_string(), ext.value_bytes().to_vec()));
            }
        }
    }
    out
}

/// Why [`open_parent`] failed.
enum ParentError {
    /// Making the missing directories would pass the member limit.
    Limit,
    Sys(Errno),
}

impl From<Errno> for ParentError {
    fn from(e: Errno) -> Self {
        ParentError::Sys(e)
    }
}

/// Opens (creating missing directories) the directory `comps` inside
/// `root`, resolving every step inside the tree. Each directory it makes
/// counts as a member (`seen`): one long name would otherwise make
/// thousands of directories past the limit.
fn open_parent(
    root: BorrowedFd<'_>,
    comps: &[String],
    seen: &mut u64,
    limits: &UnpackLimits,
) -> std::result::Result<OwnedFd, ParentError> {
    let flags = OFlags::PATH | OFlags::DIRECTORY | OFlags::CLOEXEC;
    match openat2(root, rel(comps), flags, Mode::empty(), RESOLVE) {
        Err(Errno::NOENT) => {}
        other => return Ok(other?),
    }
    let mut dir = openat2(root, ".", flags, Mode::empty(), RESOLVE)?;
    for (i, c) in comps.iter().enumerate() {
        match openat2(root, rel(&comps[..=i]), flags, Mode::empty(), RESOLVE) {
            Ok(d) => dir = d,
            Err(Errno::NOENT) => {
                if *seen >= limits.max_entries {
                    return Err(ParentError::Limit);
                }
                match mkdirat(dir.as_fd(), c.as_str(), Mode::from_raw_mode(0o755)) {
                    Ok(()) => *seen += 1,
                    Err(Errno::EXIST) => {}
                    Err(e) => return Err(e.into()),
                }
                dir = openat2(root, rel(&comps[..=i]), flags, Mode::empty(), RESOLVE)?;
            }
            Err(e) => return Err(e.into()),
        }
    }
    Ok(dir)
}

/// Creates directory `name` in `parent`, replacing a non-directory.
fn make_dir(parent: BorrowedFd<'_>, name: &str) -> rustix::io::Result<()> {
    match statat(parent, name, AtFlags::SYMLINK_NOFOLLOW) {
        Ok(st) if FileType::from_raw_mode(st.st_mode) == FileType::Directory => return Ok(()),
        Ok(_) => unlinkat(parent, name, AtFlags::empty())?,
        Err(Errno::NOENT) => {}
        Err(e) => return Err(e),
    }
    mkdirat(parent, name, Mode::from_raw_mode(0o700))
}

/// Unlinks whatever is at `name` so that a new entry never writes through
/// an existing symlink. An empty directory is removed; a non-empty one is
/// an error.
fn remove_existing(parent: BorrowedFd<'_>, name: &str) -> rustix::io::Result<()> {
    match statat(parent, name, AtFlags::SYMLINK_NOFOLLOW) {
        Ok(st) if FileType::from_raw_mode(st.st_mode) == FileType::Directory => {
            unlinkat(parent, name, AtFlags::REMOVEDIR)
        }
        Ok(_) => unlinkat(parent, name, AtFlags::empty()),
        Err(Errno::NOENT) => Ok(()),
        Err(e) => Err(e),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn clean_paths() {
        assert_eq!(
            clean_path(b"./etc/passwd"),
            Ok(Some(vec!["etc".into(), "passwd".into()]))
        );
        assert_eq!(
            clean_path(b"/abs//x/"),
            Ok(Some(vec!["abs".into(), "x".into()]))
        );
        assert_eq!(clean_path(b"./"), Ok(None));
        assert!(clean_path(b"a/../../etc").is_err());
        assert!(clean_path(b"..").is_err());
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

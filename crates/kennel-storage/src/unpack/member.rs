//! Making one member of an archive inside the destination.
//!
//! [`Unpacker`] holds what lasts across members (the destination's
//! descriptor, the limits, the directories whose mode and times wait for
//! their contents, a sparse file still being written) and turns each
//! member into an entry of the tree. Every path is resolved by the kernel
//! below the destination's descriptor; see [`super`] for the rules.

use std::collections::HashSet;
use std::ffi::CString;
use std::io::{self, Read};
use std::os::fd::{AsFd, BorrowedFd, OwnedFd};
use std::path::Path;

use rustix::fs::{
    chmodat, fchmod, fchown, fsetxattr, fstat, futimens, linkat, mkdirat, mknodat, openat2, statat,
    symlinkat, unlinkat, utimensat, AtFlags, FileType, Gid, Mode, OFlags, ResolveFlags, Timespec,
    Timestamps, Uid, XattrFlags,
};
use rustix::io::Errno;

use super::layer::{self, LayerRecords, OpenSparse};
use super::{
    archive_err, clean_path, errno_err, refuse, too_many, Flavor, UnpackLimits, UnpackOptions,
    UnpackReport, MAX_OWNER,
};
use crate::backup::BackupError;
use crate::error::Result;
use crate::shown::shown;

/// Templates: symlinks in a member's path are followed, inside the tree.
const IN_TREE: ResolveFlags = ResolveFlags::IN_ROOT.union(ResolveFlags::NO_MAGICLINKS);

/// Layers: no symlink anywhere, no other filesystem.
const STRICT: ResolveFlags = ResolveFlags::BENEATH
    .union(ResolveFlags::NO_SYMLINKS)
    .union(ResolveFlags::NO_MAGICLINKS)
    .union(ResolveFlags::NO_XDEV);

pub(crate) type Owner = (Option<Uid>, Option<Gid>);

/// A directory whose mode and times are applied once everything below it
/// has been written.
struct PendingDir {
    path: Vec<u8>,
    mode: u32,
    mtime: (i64, u32),
}

/// Unpacks members, one call each, into one destination.
pub(crate) struct Unpacker {
    root: OwnedFd,
    opts: UnpackOptions,
    resolve: ResolveFlags,
    report: UnpackReport,
    dirs: Vec<PendingDir>,
    bytes: u64,
    seen: u64,
    /// Layers: the paths this archive made or kept.
    listed: HashSet<Vec<u8>>,
    /// Layers: whether a member may say its content is already there.
    allow_unchanged: bool,
    /// Layers: a sparse file whose next segments may follow.
    sparse: Option<OpenSparse>,
}

impl std::fmt::Debug for Unpacker {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Unpacker")
            .field("flavor", &self.opts.flavor)
            .field("seen", &self.seen)
            .finish_non_exhaustive()
    }
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

pub(crate) fn rel(comps: &[Vec<u8>]) -> Vec<u8> {
    if comps.is_empty() {
        b".".to_vec()
    } else {
        comps.join(&b'/')
    }
}

pub(crate) fn times(mtime: (i64, u32)) -> Timestamps {
    let t = Timespec {
        tv_sec: mtime.0,
        tv_nsec: mtime.1.into(),
    };
    Timestamps {
        last_access: t,
        last_modification: t,
    }
}

/// Sets the owner of entry `name` in `parent` without following it.
fn chown_entry(parent: BorrowedFd<'_>, name: &[u8], owner: Owner) -> rustix::io::Result<()> {
    rustix::fs::chownat(parent, name, owner.0, owner.1, AtFlags::SYMLINK_NOFOLLOW)
}

impl Unpacker {
    pub fn new(dest: &Path, opts: &UnpackOptions) -> Result<Self> {
        let root = rustix::fs::open(
            dest,
            OFlags::PATH | OFlags::DIRECTORY | OFlags::CLOEXEC,
            Mode::empty(),
        )
        .map_err(|e| errno_err("open", &dest.display().to_string(), e))?;
        Ok(Unpacker {
            root,
            opts: *opts,
            resolve: match opts.flavor {
                Flavor::Template => IN_TREE,
                Flavor::Layer => STRICT,
            },
            report: UnpackReport::default(),
            dirs: Vec::new(),
            bytes: 0,
            seen: 0,
            listed: HashSet::new(),
            allow_unchanged: false,
            sparse: None,
        })
    }

    fn layer(&self) -> bool {
        self.opts.flavor == Flavor::Layer
    }

    /// Lets members say their content is already in the tree (the archive
    /// is an increment on what the tree holds).
    pub fn allow_unchanged(&mut self, yes: bool) {
        self.allow_unchanged = yes;
    }

    /// The paths made or kept so far (layers).
    pub fn listed(&self) -> &HashSet<Vec<u8>> {
        &self.listed
    }

    fn limits(&self) -> &UnpackLimits {
        &self.opts.limits
    }

    /// Makes member `entry`, named `raw`.
    pub fn member<R: Read>(&mut self, entry: &mut tar::Entry<'_, R>, raw: &[u8]) -> Result<()> {
        // The name as messages show it: escaped, bounded (crate::shown).
        let name = shown(raw);
        let recs = if self.layer() {
            match LayerRecords::read(entry) {
                Ok(r) => r,
                Err(why) => {
                    self.end_sparse()?;
                    self.seen += 1;
                    if self.seen > self.limits().max_entries {
                        return Err(too_many(self.limits()));
                    }
                    refuse(&mut self.report, &name, why);
                    return Ok(());
                }
            }
        } else {
            LayerRecords::default()
        };
        if recs.more {
            return self.sparse_more(entry, raw, &name, &recs);
        }
        self.end_sparse()?;
        self.seen += 1;
        if self.seen > self.limits().max_entries {
            return Err(too_many(self.limits()));
        }
        let comps = match clean_path(raw, self.opts.flavor) {
            Ok(Some(c)) => c,
            Ok(None) => {
                // The root directory itself: a layer's top has an owner,
                // a mode and attributes of its own.
                if self.layer() && entry.header().entry_type().is_dir() {
                    self.root_member(entry, &name, &recs)?;
                }
                return Ok(());
            }
            Err(why) => {
                refuse(&mut self.report, &name, why);
                return Ok(());
            }
        };
        let kind = entry.header().entry_type();
        let whiteout = kind.is_character_special()
            && self.layer()
            && entry.header().device_major().ok().flatten() == Some(0)
            && entry.header().device_minor().ok().flatten() == Some(0);
        if (kind.is_character_special() || kind.is_block_special()) && !whiteout {
            self.report.devices += 1;
            return Ok(());
        }
        let (parent_comps, file) = comps.split_at(comps.len() - 1);
        let file = file[0].as_slice();
        let made_owner = self.layer().then(|| self.host_owner(0, 0)).flatten();
        let parent = match open_parent(
            self.root.as_fd(),
            parent_comps,
            &mut self.seen,
            &self.opts.limits,
            self.resolve,
            made_owner,
        ) {
            Ok(p) => p,
            Err(ParentError::Limit) => return Err(too_many(self.limits())),
            Err(ParentError::Sys(e)) => {
                refuse(
                    &mut self.report,
                    &name,
                    &format!("its parent cannot be used ({})", io::Error::from(e)),
                );
                return Ok(());
            }
        };
        let h = entry.header();
        let mode = h.mode().unwrap_or(0o644) & 0o7777;
        // An unreadable owner is not taken as root's.
        let (Ok(uid), Ok(gid)) = (h.uid(), h.gid()) else {
            refuse(&mut self.report, &name, "its owner field is not a number");
            return Ok(());
        };
        let mtime = recs.mtime.unwrap_or((h.mtime().unwrap_or(0) as i64, 0));
        let Some(owner) = self.host_owner(uid, gid) else {
            refuse(
                &mut self.report,
                &name,
                &format!("owner {uid}:{gid} is outside the VE's ids 0-{MAX_OWNER}"),
            );
            return Ok(());
        };
        let path = comps.join(&b'/');
        let p = parent.as_fd();
        if kind.is_dir() {
            make_dir(p, file).map_err(|e| errno_err("mkdir", &name, e))?;
            chown_entry(p, file, owner).map_err(|e| errno_err("chown", &name, e))?;
            if self.layer() {
                let fd = self.open_dir_in(p, file, &name)?;
                self.report.xattrs_dropped +=
                    layer::apply_xattrs(fd.as_fd(), &recs.xattrs, self.opts.ids);
            }
            self.dirs.push(PendingDir {
                path: path.clone(),
                mode,
                mtime,
            });
        } else if kind.is_symlink() {
            let Some(target) = entry.link_name_bytes() else {
                refuse(&mut self.report, &name, "symlink without a target");
                return Ok(());
            };
            let target = target.into_owned();
            self.remove_existing(p, file, &name)?;
            symlinkat(target.as_slice(), p, file).map_err(|e| errno_err("symlink", &name, e))?;
            chown_entry(p, file, owner).map_err(|e| errno_err("chown", &name, e))?;
            let _ = utimensat(p, file, &times(mtime), AtFlags::SYMLINK_NOFOLLOW);
        } else if kind.is_hard_link() {
            if !self.hard_link(entry, p, file, &name)? {
                return Ok(());
            }
        } else if kind.is_fifo() || whiteout {
            self.remove_existing(p, file, &name)?;
            let (ft, dev) = if whiteout {
                (FileType::CharacterDevice, 0)
            } else if recs.socket {
                (FileType::Socket, 0)
            } else {
                (FileType::Fifo, 0)
            };
            mknodat(p, file, ft, Mode::from_raw_mode(mode & 0o777), dev)
                .map_err(|e| errno_err("mknod", &name, e))?;
            chown_entry(p, file, owner).map_err(|e| errno_err("chown", &name, e))?;
            if self.layer() {
                // Exactly the mode (mknod's was cut by the umask), then the time.
                chmodat(p, file, Mode::from_raw_mode(mode), AtFlags::empty())
                    .map_err(|e| errno_err("chmod", &name, e))?;
                let _ = utimensat(p, file, &times(mtime), AtFlags::SYMLINK_NOFOLLOW);
            }
            if whiteout {
                self.report.whiteouts += 1;
            }
        } else if kind.is_file() || kind.is_contiguous() || kind == tar::EntryType::GNUSparse {
            let meta = layer::FileMeta {
                owner,
                mode,
                mtime,
                xattrs: if self.layer() {
                    recs.xattrs.clone()
                } else {
                    collect_xattrs(entry)
                },
            };
            if recs.unchanged {
                if !self.allow_unchanged {
                    return Err(BackupError::Corrupt(format!(
                        "'{name}' is marked unchanged in a backup that has no base"
                    ))
                    .into());
                }
                self.unchanged(p, file, &name, &meta)?;
            } else if !self.file(entry, p, file, &name, &path, meta, &recs)? {
                return Ok(());
            }
        } else {
            // GNU volume labels, unknown types: nothing to create.
            return Ok(());
        }
        if self.layer() {
            self.listed.insert(path);
        }
        self.report.entries += 1;
        Ok(())
    }

    /// The host owner of VE-relative (or, for templates, plain) ids.
    fn host_owner(&self, uid: u64, gid: u64) -> Option<Owner> {
        if uid > MAX_OWNER || gid > MAX_OWNER {
            return None;
        }
        let ids = self.opts.ids;
        let (uid, gid) = match self.opts.flavor {
            // In range, so the casts are exact.
            Flavor::Template => (uid as u32, gid as u32),
            Flavor::Layer => (
                ids.uid(uid, crate::backup::ids::Direction::ToHost).ok()?,
                ids.gid(gid, crate::backup::ids::Direction::ToHost).ok()?,
            ),
        };
        Some((Some(Uid::from_raw(uid)), Some(Gid::from_raw(gid))))
    }

    fn open_dir_in(&self, p: BorrowedFd<'_>, file: &[u8], name: &str) -> Result<OwnedFd> {
        openat2(
            p,
            file,
            OFlags::RDONLY | OFlags::DIRECTORY | OFlags::NOFOLLOW | OFlags::CLOEXEC,
            Mode::empty(),
            STRICT,
        )
        .map_err(|e| errno_err("open", name, e))
    }

    /// A layer's top: owner and attributes now, mode and times last.
    fn root_member<R: Read>(
        &mut self,
        entry: &mut tar::Entry<'_, R>,
        name: &str,
        recs: &LayerRecords,
    ) -> Result<()> {
        let h = entry.header();
        let (Ok(uid), Ok(gid)) = (h.uid(), h.gid()) else {
            refuse(&mut self.report, name, "its owner field is not a number");
            return Ok(());
        };
        let Some(owner) = self.host_owner(uid, gid) else {
            refuse(
                &mut self.report,
                name,
                &format!("owner {uid}:{gid} is outside the VE's ids"),
            );
            return Ok(());
        };
        let mode = h.mode().unwrap_or(0o755) & 0o7777;
        let mtime = recs.mtime.unwrap_or((h.mtime().unwrap_or(0) as i64, 0));
        let fd = self.open_dir_in(self.root.as_fd(), b".", name)?;
        fchown(&fd, owner.0, owner.1).map_err(|e| errno_err("chown", name, e))?;
        self.report.xattrs_dropped += layer::apply_xattrs(fd.as_fd(), &recs.xattrs, self.opts.ids);
        self.dirs.push(PendingDir {
            path: b".".to_vec(),
            mode,
            mtime,
        });
        Ok(())
    }

    /// A hard link member; `false` if it was refused.
    fn hard_link<R: Read>(
        &mut self,
        entry: &mut tar::Entry<'_, R>,
        p: BorrowedFd<'_>,
        file: &[u8],
        name: &str,
    ) -> Result<bool> {
        let target = entry
            .link_name_bytes()
            .map(|t| t.into_owned())
            .unwrap_or_default();
        let target = match self.layer() {
            // A layer's links name members (`layer/...`).
            true => match target.strip_prefix(crate::backup::format::LAYER_PREFIX.as_bytes()) {
                Some(t) => t.to_vec(),
                None => {
                    refuse(&mut self.report, name, "hard link target outside the layer");
                    return Ok(false);
                }
            },
            false => target,
        };
        let tcomps = match clean_path(&target, self.opts.flavor) {
            Ok(Some(c)) => c,
            Ok(None) => {
                refuse(&mut self.report, name, "hard link to the root directory");
                return Ok(false);
            }
            Err(why) => {
                refuse(&mut self.report, name, &format!("hard link target {why}"));
                return Ok(false);
            }
        };
        let (tparent_comps, tfile) = tcomps.split_at(tcomps.len() - 1);
        let tparent = match openat2(
            self.root.as_fd(),
            rel(tparent_comps),
            OFlags::PATH | OFlags::DIRECTORY | OFlags::CLOEXEC,
            Mode::empty(),
            self.resolve,
        ) {
            Ok(p) => p,
            Err(e) => {
                refuse(
                    &mut self.report,
                    name,
                    &format!(
                        "hard link target's directory is missing ({})",
                        io::Error::from(e)
                    ),
                );
                return Ok(false);
            }
        };
        self.remove_existing(p, file, name)?;
        if let Err(e) = linkat(
            tparent.as_fd(),
            tfile[0].as_slice(),
            p,
            file,
            AtFlags::empty(),
        ) {
            refuse(
                &mut self.report,
                name,
                &format!("hard link failed ({})", io::Error::from(e)),
            );
            return Ok(false);
        }
        Ok(true)
    }

    /// A regular file with its data; `false` if it was refused.
    #[allow(clippy::too_many_arguments)]
    fn file<R: Read>(
        &mut self,
        entry: &mut tar::Entry<'_, R>,
        p: BorrowedFd<'_>,
        file: &[u8],
        name: &str,
        path: &[u8],
        meta: layer::FileMeta,
        recs: &LayerRecords,
    ) -> Result<bool> {
        self.bytes = self.bytes.saturating_add(entry.size());
        if self.bytes > self.limits().max_bytes {
            return Err(archive_err(format!(
                "its files hold more than {} MiB: if the archive is genuine, raise import_max_size in kennel.toml",
                self.limits().max_bytes >> 20
            )));
        }
        let sparse = match recs.sparse_map(entry.size(), 0) {
            Ok(s) => s,
            Err(why) => {
                refuse(&mut self.report, name, why);
                return Ok(false);
            }
        };
        self.remove_existing(p, file, name)?;
        let fd = rustix::fs::openat(
            p,
            file,
            OFlags::CREATE | OFlags::EXCL | OFlags::WRONLY | OFlags::NOFOLLOW | OFlags::CLOEXEC,
            Mode::from_raw_mode(0o600),
        )
        .map_err(|e| errno_err("create", name, e))?;
        let mut f = std::fs::File::from(fd);
        match sparse {
            None => {
                io::copy(entry, &mut f).map_err(|e| archive_err(format!("write '{name}': {e}")))?;
                self.report.xattrs_dropped +=
                    layer::finish_file(&f, &meta, self.opts.flavor, self.opts.ids)
                        .map_err(|e| errno_err("set the owner and mode of", name, e))?;
            }
            Some((segments, realsize)) => {
                // Its metadata waits for its last segment: writing data
                // drops a file capability.
                let next = layer::write_segments(entry, &f, &segments, realsize, 0)
                    .map_err(|e| archive_err(format!("write '{name}': {e}")))?;
                self.sparse = Some(OpenSparse {
                    path: path.to_vec(),
                    name: name.to_string(),
                    file: f,
                    next,
                    realsize,
                    meta,
                });
            }
        }
        Ok(true)
    }

    /// More segments of the sparse file the previous member began.
    fn sparse_more<R: Read>(
        &mut self,
        entry: &mut tar::Entry<'_, R>,
        raw: &[u8],
        name: &str,
        recs: &LayerRecords,
    ) -> Result<()> {
        let Some(open) = self.sparse.as_mut() else {
            return Err(BackupError::Corrupt(format!(
                "'{name}' continues a sparse file that was not begun"
            ))
            .into());
        };
        let same = raw
            .strip_prefix(b"./")
            .unwrap_or(raw)
            .split(|&b| b == b'/')
            .filter(|c| !c.is_empty() && *c != b".")
            .eq(open.path.split(|&b| b == b'/'));
        if !same {
            return Err(BackupError::Corrupt(format!(
                "'{name}' continues another file's segments"
            ))
            .into());
        }
        self.bytes = self.bytes.saturating_add(entry.size());
        if self.bytes > self.opts.limits.max_bytes {
            return Err(archive_err(format!(
                "its files hold more than {} MiB",
                self.opts.limits.max_bytes >> 20
            )));
        }
        let segments = recs
            .sparse_more_map(entry.size(), open.realsize, open.next)
            .map_err(|why| BackupError::Corrupt(format!("'{name}': {why}")))?;
        open.next = layer::write_segments(entry, &open.file, &segments, open.realsize, open.next)
            .map_err(|e| archive_err(format!("write '{name}': {e}")))?;
        Ok(())
    }

    /// Applies the metadata of a sparse file whose segments are all written.
    fn end_sparse(&mut self) -> Result<()> {
        if let Some(open) = self.sparse.take() {
            self.report.xattrs_dropped +=
                layer::finish_file(&open.file, &open.meta, self.opts.flavor, self.opts.ids)
                    .map_err(|e| errno_err("set the owner and mode of", &open.name, e))?;
        }
        Ok(())
    }

    /// A member whose content is the one already in the tree: only its
    /// metadata is applied.
    fn unchanged(
        &mut self,
        p: BorrowedFd<'_>,
        file: &[u8],
        name: &str,
        meta: &layer::FileMeta,
    ) -> Result<()> {
        let missing = || -> crate::StorageError {
            BackupError::Chain(format!(
                "'{name}' is unchanged since the previous backup, which holds no such file"
            ))
            .into()
        };
        let fd = openat2(
            p,
            file,
            OFlags::RDONLY | OFlags::NOFOLLOW | OFlags::NONBLOCK | OFlags::CLOEXEC,
            Mode::empty(),
            STRICT,
        )
        .map_err(|_| missing())?;
        let st = fstat(&fd).map_err(|e| errno_err("stat", name, e))?;
        if FileType::from_raw_mode(st.st_mode) != FileType::RegularFile {
            return Err(missing());
        }
        let f = std::fs::File::from(fd);
        self.report.xattrs_dropped += layer::finish_file(&f, meta, self.opts.flavor, self.opts.ids)
            .map_err(|e| errno_err("set the owner and mode of", name, e))?;
        self.report.unchanged += 1;
        Ok(())
    }

    /// Unlinks whatever is at `file` so that a new entry never writes
    /// through an existing symlink. Templates remove an empty directory
    /// (a non-empty one is an error); layers remove a whole tree (a
    /// directory replaced by a file between two backups).
    fn remove_existing(&self, p: BorrowedFd<'_>, file: &[u8], name: &str) -> Result<()> {
        match statat(p, file, AtFlags::SYMLINK_NOFOLLOW) {
            Ok(st) if FileType::from_raw_mode(st.st_mode) == FileType::Directory => {
                if self.layer() {
                    let c =
                        CString::new(file).map_err(|_| archive_err("a name with a NUL byte"))?;
                    crate::remove::remove_in(p, &c, Path::new(&name))?;
                    Ok(())
                } else {
                    unlinkat(p, file, AtFlags::REMOVEDIR).map_err(|e| errno_err("replace", name, e))
                }
            }
            Ok(_) => unlinkat(p, file, AtFlags::empty()).map_err(|e| errno_err("replace", name, e)),
            Err(Errno::NOENT) => Ok(()),
            Err(e) => Err(errno_err("replace", name, e)),
        }
    }

    /// Applies the directories' modes and times, deepest first so that a
    /// read-only parent never blocks its children.
    pub fn finish(mut self) -> Result<UnpackReport> {
        self.end_sparse()?;
        self.dirs.sort_by_key(|d| std::cmp::Reverse(d.path.len()));
        for d in &self.dirs {
            if let Ok(fd) = openat2(
                self.root.as_fd(),
                d.path.as_slice(),
                OFlags::RDONLY | OFlags::DIRECTORY | OFlags::NOFOLLOW | OFlags::CLOEXEC,
                Mode::empty(),
                self.resolve,
            ) {
                let _ = fchmod(&fd, Mode::from_raw_mode(d.mode));
                let _ = futimens(&fd, &times(d.mtime));
            }
        }
        Ok(self.report)
    }
}

/// Templates keep only these extended attributes: file capabilities
/// (ping) and user attributes. `trusted.*` and security labels are never
/// taken from an untrusted archive.
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

/// Template attributes, as they are.
pub(crate) fn set_template_xattrs(f: &std::fs::File, xattrs: &[(String, Vec<u8>)]) {
    for (k, v) in xattrs {
        let _ = fsetxattr(f, k.as_str(), v, XattrFlags::empty());
    }
}

/// Sets owner then mode (chown clears set-user-ID bits).
pub(crate) fn owner_and_mode(f: &std::fs::File, owner: Owner, mode: u32) -> rustix::io::Result<()> {
    fchown(f, owner.0, owner.1)?;
    fchmod(f, Mode::from_raw_mode(mode))
}

/// Opens (creating missing directories) the directory `comps` inside
/// `root`, resolving every step inside the tree. Each directory it makes
/// counts as a member (`seen`): one long name would otherwise make
/// thousands of directories past the limit. Directories made for a
/// layer's names are given to `made_owner` (the VE's root).
fn open_parent(
    root: BorrowedFd<'_>,
    comps: &[Vec<u8>],
    seen: &mut u64,
    limits: &UnpackLimits,
    resolve: ResolveFlags,
    made_owner: Option<Owner>,
) -> std::result::Result<OwnedFd, ParentError> {
    let flags = OFlags::PATH | OFlags::DIRECTORY | OFlags::CLOEXEC;
    match openat2(root, rel(comps), flags, Mode::empty(), resolve) {
        Err(Errno::NOENT) => {}
        other => return Ok(other?),
    }
    let mut dir = openat2(root, ".", flags, Mode::empty(), resolve)?;
    for (i, c) in comps.iter().enumerate() {
        match openat2(root, rel(&comps[..=i]), flags, Mode::empty(), resolve) {
            Ok(d) => dir = d,
            Err(Errno::NOENT) => {
                if *seen >= limits.max_entries {
                    return Err(ParentError::Limit);
                }
                match mkdirat(dir.as_fd(), c.as_slice(), Mode::from_raw_mode(0o755)) {
                    Ok(()) => {
                        *seen += 1;
                        if let Some(owner) = made_owner {
                            chown_entry(dir.as_fd(), c, owner)?;
                        }
                    }
                    Err(Errno::EXIST) => {}
                    Err(e) => return Err(e.into()),
                }
                dir = openat2(root, rel(&comps[..=i]), flags, Mode::empty(), resolve)?;
            }
            Err(e) => return Err(e.into()),
        }
    }
    Ok(dir)
}

/// Creates directory `name` in `parent`, replacing a non-directory.
fn make_dir(parent: BorrowedFd<'_>, name: &[u8]) -> rustix::io::Result<()> {
    match statat(parent, name, AtFlags::SYMLINK_NOFOLLOW) {
        Ok(st) if FileType::from_raw_mode(st.st_mode) == FileType::Directory => return Ok(()),
        Ok(_) => unlinkat(parent, name, AtFlags::empty())?,
        Err(Errno::NOENT) => {}
        Err(e) => return Err(e),
    }
    mkdirat(parent, name, Mode::from_raw_mode(0o700))
}

//! Making one member of an archive inside the destination.
//!
//! [`Unpacker`] holds what lasts across members (the destination's
//! descriptor, the limits, the directories whose mode and times wait for
//! their contents, a sparse file still being written) and turns each
//! member into an entry of the tree: directories, symlinks, FIFOs,
//! sockets and whiteouts here, regular files and hard links in
//! [`super::regular`], paths in [`super::paths`]. Every path is resolved
//! by the kernel below the destination's descriptor; see [`super`] for
//! the rules.
//!
//! A layer's member that carries `trusted.overlay.metacopy` (any kind but
//! a directory, where overlayfs ignores the marker and it is only
//! dropped) is not made at all, and neither is a hard link to it: it has
//! no data of its own, and a restore does not let a stream make the
//! kernel read a template file in its place
//! (`crate::backup::xattr_policy`). Its path still counts as listed, so an
//! incremental restore does not prune what is there (a shifted VE's own
//! fresh metadata copy).

use std::collections::HashSet;
use std::ffi::CString;
use std::io::{self, Read};
use std::os::fd::{AsFd, BorrowedFd, OwnedFd};
use std::path::Path;

use rustix::fs::{
    chmodat, fchmod, fchown, futimens, mknodat, openat2, statat, symlinkat, unlinkat, utimensat,
    AtFlags, FileType, Gid, Mode, OFlags, ResolveFlags, Uid,
};
use rustix::io::Errno;

use super::layer::{self, LayerRecords, OpenSparse};
use super::paths::{chown_entry, make_dir, open_parent, times, ParentError, IN_TREE, STRICT};
use super::regular::collect_xattrs;
use super::{
    archive_err, clean_path, errno_err, refuse, too_many, Flavor, Reason, UnpackLimits,
    UnpackOptions, UnpackReport, MAX_OWNER,
};
use crate::backup::xattr_policy::is_metacopy;
use crate::backup::BackupError;
use crate::error::Result;
use crate::shown::shown;

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
    pub(super) root: OwnedFd,
    pub(super) opts: UnpackOptions,
    pub(super) resolve: ResolveFlags,
    pub(super) report: UnpackReport,
    dirs: Vec<PendingDir>,
    /// Bytes of file data so far.
    pub(super) bytes: u64,
    seen: u64,
    /// Layers: the paths this archive made or kept.
    pub(super) listed: HashSet<Vec<u8>>,
    /// Layers: the paths of metadata-only copies skipped.
    pub(super) metacopies: HashSet<Vec<u8>>,
    /// Layers: a skipped metadata-only copy whose sparse segments may
    /// continue in the next members (they are skipped too).
    skipped_sparse: Option<Vec<u8>>,
    /// Layers: whether a member may say its content is already there.
    pub(super) allow_unchanged: bool,
    /// Layers: a sparse file whose next segments may follow.
    pub(super) sparse: Option<OpenSparse>,
}

impl std::fmt::Debug for Unpacker {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Unpacker")
            .field("flavor", &self.opts.flavor)
            .field("seen", &self.seen)
            .finish_non_exhaustive()
    }
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
            metacopies: HashSet::new(),
            skipped_sparse: None,
            allow_unchanged: false,
            sparse: None,
        })
    }

    pub(super) fn layer(&self) -> bool {
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

    pub(super) fn limits(&self) -> &UnpackLimits {
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
                    refuse(&mut self.report, Reason::Malformed, &name, why);
                    return Ok(());
                }
            }
        } else {
            LayerRecords::default()
        };
        if recs.more {
            if let Some(skipped) = &self.skipped_sparse {
                if super::regular::same_path(raw, skipped) {
                    return Ok(());
                }
            }
            return self.sparse_more(entry, raw, &name, &recs);
        }
        self.skipped_sparse = None;
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
                refuse(&mut self.report, why.reason(), &name, why.as_str());
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
        if self.layer() && !kind.is_dir() && is_metacopy(&recs.xattrs) {
            let path = comps.join(&b'/');
            if recs.has_segments() {
                self.skipped_sparse = Some(path.clone());
            }
            self.skip_metacopy(path);
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
                    Reason::ThroughSymlink,
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
            refuse(
                &mut self.report,
                Reason::Malformed,
                &name,
                "its owner field is not a number",
            );
            return Ok(());
        };
        let mtime = recs.mtime.unwrap_or((h.mtime().unwrap_or(0) as i64, 0));
        let Some(owner) = self.host_owner(uid, gid) else {
            refuse(
                &mut self.report,
                Reason::Owner,
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
                refuse(
                    &mut self.report,
                    Reason::Malformed,
                    &name,
                    "symlink without a target",
                );
                return Ok(());
            };
            let target = target.into_owned();
            self.remove_existing(p, file, &name)?;
            symlinkat(target.as_slice(), p, file).map_err(|e| errno_err("symlink", &name, e))?;
            chown_entry(p, file, owner).map_err(|e| errno_err("chown", &name, e))?;
            let _ = utimensat(p, file, &times(mtime), AtFlags::SYMLINK_NOFOLLOW);
        } else if kind.is_hard_link() {
            if !self.hard_link(entry, p, file, &name, &path)? {
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

    /// Skips the metadata-only copy at `path` (whatever is there stays).
    pub(super) fn skip_metacopy(&mut self, path: Vec<u8>) {
        self.report.metacopy += 1;
        self.listed.insert(path.clone());
        self.metacopies.insert(path);
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
            refuse(
                &mut self.report,
                Reason::Malformed,
                name,
                "its owner field is not a number",
            );
            return Ok(());
        };
        let Some(owner) = self.host_owner(uid, gid) else {
            refuse(
                &mut self.report,
                Reason::Owner,
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

    /// Unlinks whatever is at `file` so that a new entry never writes
    /// through an existing symlink. Templates remove an empty directory
    /// (a non-empty one is an error); layers remove a whole tree (a
    /// directory replaced by a file between two backups).
    pub(super) fn remove_existing(&self, p: BorrowedFd<'_>, file: &[u8], name: &str) -> Result<()> {
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

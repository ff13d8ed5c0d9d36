//! Moving every file of a copied layer (a clone) from one VE's host ids to
//! another's: owners, the root id of file capabilities and the ids in
//! POSIX ACLs, with the conversions of [`crate::backup::ids`].
//!
//! The tree is the copy of a VE's layer: its names, shapes, depth and
//! links are the tenant's making. So it is walked by the backup's walker
//! ([`crate::backup::walk`]), the one walk of a tenant's tree in this
//! crate, with its rules: no symlink is ever followed (every step is one
//! name below a directory descriptor), no mount entered, only directories
//! opened by the walk; any depth and any path length, with at most
//! [`MAX_OPEN`](crate::backup::walk::MAX_OPEN) directories held open
//! (deeper ones are opened again from their child's `..` and checked to be
//! the same directory). A tree of any shape a tenant can make is shifted:
//! an earlier version held one descriptor per level and refused trees
//! deeper than 512 directories, which let a tenant make its VE
//! unclonable. Unlike a backup, the shift takes no path bound: a clone
//! must not keep a single inode with the old VE's ids.
//!
//! On each inode:
//!
//! * directories and regular files are changed through a descriptor (a
//!   regular file is opened here, `O_NOFOLLOW | O_NONBLOCK`, and checked
//!   to be the inode listed); symlinks, FIFOs, sockets, whiteouts and
//!   device nodes are changed by name with `AT_SYMLINK_NOFOLLOW`, never
//!   opened or followed;
//! * an inode with several names is changed once;
//! * an owner outside the old range (overlayfs's whiteouts are host
//!   root's) is left as it is and counted;
//! * `chown` drops set-user-id and set-group-id bits and file
//!   capabilities, so the mode and the converted capability are written
//!   back after it (a version 3 capability whose root id is not the old
//!   VE's is dropped, not carried over); an ACL naming an id outside the
//!   old range is dropped too: either would hand a right to a stranger.
//!
//! Nothing runs in the copy while it is shifted, so an entry that
//! vanishes or moves during the walk, or a mount inside the copy, is an
//! error: a partly shifted clone must not be used.

use std::collections::HashSet;
use std::ffi::CString;
use std::os::fd::{AsFd, BorrowedFd};
use std::path::Path;

use rustix::fs::{
    fchmod, fchown, fgetxattr, fremovexattr, fsetxattr, fstat, openat2, AtFlags, FileType, Gid,
    Mode, OFlags, Uid, XattrFlags,
};
use rustix::io::Errno;

use crate::backup::ids::{convert_acl, convert_capability, Direction, IdError, IdShift};
use crate::backup::walk::{walk, Descend, Found, WalkOptions, STRICT};
use crate::backup::BackupError;
use crate::error::{Result, StorageError};
use crate::shown::shown;

const CAPABILITY: &str = "security.capability";
const ACLS: [&str; 2] = ["system.posix_acl_access", "system.posix_acl_default"];

/// What a shift changed.
#[derive(Debug, Default, Clone, Copy)]
pub struct Shifted {
    pub inodes: u64,
    /// Owners outside the old range (whiteouts, owned by host root): left
    /// as they are.
    pub foreign: u64,
}

/// Moves every inode below `root` (a directory) from `from` to `to`.
pub fn shift_tree(root: &Path, from: IdShift, to: IdShift) -> Result<Shifted> {
    let mut s = Shift {
        from,
        to,
        seen: HashSet::new(),
        report: Shifted::default(),
        root,
    };
    let skips = walk(root, WalkOptions::EVERYTHING, |path, found| {
        s.visit(path, found)
    })
    .map_err(|e| match e {
        StorageError::Backup(BackupError::Tree { reason, .. }) => s.layer_err(&reason),
        other => other,
    })?;
    if skips.changed > 0 {
        return Err(s.layer_err(&format!(
            "{} entries vanished or moved during the walk",
            skips.changed
        )));
    }
    if skips.mounts > 0 {
        return Err(s.layer_err(&format!("{} mount points in the copy", skips.mounts)));
    }
    Ok(s.report)
}

struct Shift<'a> {
    from: IdShift,
    to: IdShift,
    /// Inodes with several names already changed.
    seen: HashSet<(u64, u64)>,
    report: Shifted,
    root: &'a Path,
}

impl Shift<'_> {
    fn layer_err(&self, why: &str) -> StorageError {
        StorageError::Layer(format!(
            "move the ids of the copy in {}: {why}",
            self.root.display()
        ))
    }

    fn err(&self, what: &str, path: &[u8], e: Errno) -> StorageError {
        self.layer_err(&format!(
            "{what} '{}': {}",
            shown(path),
            std::io::Error::from(e)
        ))
    }

    /// `uid:gid` moved from the old range to the new one, or `None` if it
    /// is not the old VE's.
    fn moved(&self, uid: u32, gid: u32) -> Option<(u32, u32)> {
        let u = self.from.uid(u64::from(uid), Direction::ToRelative).ok()?;
        let g = self.from.gid(u64::from(gid), Direction::ToRelative).ok()?;
        Some((
            self.to.uid(u64::from(u), Direction::ToHost).ok()?,
            self.to.gid(u64::from(g), Direction::ToHost).ok()?,
        ))
    }

    /// Whether inode `id` with `nlink` names is seen for the first time.
    fn first_time(&mut self, nlink: u64, id: (u64, u64)) -> bool {
        nlink <= 1 || self.seen.insert(id)
    }

    fn visit(&mut self, path: &[u8], found: Found<'_>) -> Result<Descend> {
        match found {
            Found::Dir { fd, .. } => self.opened(path, fd)?,
            Found::Other { parent, name, meta } => {
                if !self.first_time(meta.nlink, (meta.dev, meta.ino)) {
                    return Ok(Descend::Yes);
                }
                if meta.file_type() == FileType::RegularFile {
                    self.file(path, parent, name, (meta.dev, meta.ino))?;
                } else {
                    self.by_name(path, parent, name, meta.uid, meta.gid)?;
                }
            }
        }
        // A foreign directory's contents are the VE's all the same.
        Ok(Descend::Yes)
    }

    /// A regular file: opened (never followed) and checked to be the inode
    /// listed.
    fn file(
        &mut self,
        path: &[u8],
        parent: BorrowedFd<'_>,
        name: &CString,
        id: (u64, u64),
    ) -> Result<()> {
        let fd = openat2(
            parent,
            name.as_c_str(),
            OFlags::RDONLY
                | OFlags::NOFOLLOW
                | OFlags::NONBLOCK
                | OFlags::NOATIME
                | OFlags::CLOEXEC,
            Mode::empty(),
            STRICT,
        )
        .map_err(|e| self.err("open", path, e))?;
        let st = fstat(&fd).map_err(|e| self.err("stat", path, e))?;
        #[allow(clippy::unnecessary_cast, clippy::useless_conversion)]
        let same = (st.st_dev as u64, st.st_ino as u64) == id;
        if FileType::from_raw_mode(st.st_mode) != FileType::RegularFile || !same {
            return Err(self.layer_err(&format!("'{}' changed during the walk", shown(path))));
        }
        self.opened(path, fd.as_fd())
    }

    /// Symlinks, FIFOs, sockets, whiteouts, device nodes: the owner only,
    /// by name, never opened or followed.
    fn by_name(
        &mut self,
        path: &[u8],
        parent: BorrowedFd<'_>,
        name: &CString,
        uid: u32,
        gid: u32,
    ) -> Result<()> {
        self.report.inodes += 1;
        let Some((u, g)) = self.moved(uid, gid) else {
            self.report.foreign += 1;
            return Ok(());
        };
        rustix::fs::chownat(
            parent,
            name.as_c_str(),
            Some(Uid::from_raw(u)),
            Some(Gid::from_raw(g)),
            AtFlags::SYMLINK_NOFOLLOW,
        )
        .map_err(|e| self.err("chown", path, e))
    }

    /// An opened directory or regular file: owner, mode, capability, ACLs.
    fn opened(&mut self, path: &[u8], f: BorrowedFd<'_>) -> Result<()> {
        self.report.inodes += 1;
        let st = fstat(f).map_err(|e| self.err("stat", path, e))?;
        let Some((u, g)) = self.moved(st.st_uid, st.st_gid) else {
            self.report.foreign += 1;
            return Ok(());
        };
        // Read before the chown, which drops the capability.
        let cap = read_xattr(f, CAPABILITY);
        let acls: Vec<(&str, Vec<u8>)> = ACLS
            .iter()
            .filter_map(|n| read_xattr(f, n).map(|v| (*n, v)))
            .collect();
        fchown(f, Some(Uid::from_raw(u)), Some(Gid::from_raw(g)))
            .map_err(|e| self.err("chown", path, e))?;
        // chown dropped set-user-id and set-group-id.
        #[allow(clippy::unnecessary_cast)]
        let mode = st.st_mode as u32 & 0o7777;
        fchmod(f, Mode::from_raw_mode(mode)).map_err(|e| self.err("chmod", path, e))?;
        for (name, v) in acls {
            match self.convert(&v, convert_acl) {
                Ok(new) => fsetxattr(f, name, &new, XattrFlags::empty())
                    .map_err(|e| self.err("set the ACL of", path, e))?,
                // An ACL naming a stranger is dropped, not carried over.
                Err(_) => match fremovexattr(f, name) {
                    Ok(()) | Err(Errno::NODATA) => {}
                    Err(e) => return Err(self.err("remove the ACL of", path, e)),
                },
            }
        }
        if let Some(v) = cap {
            // A capability for a stranger's root stays dropped.
            if let Ok(new) = self.convert(&v, convert_capability) {
                fsetxattr(f, CAPABILITY, &new, XattrFlags::empty())
                    .map_err(|e| self.err("set the capability of", path, e))?;
            }
        }
        Ok(())
    }

    /// An attribute value's ids moved from the old range to the new one.
    fn convert(&self, v: &[u8], how: Conversion) -> std::result::Result<Vec<u8>, IdError> {
        how(v, self.from, Direction::ToRelative).and_then(|r| how(&r, self.to, Direction::ToHost))
    }
}

/// [`convert_acl`] or [`convert_capability`].
type Conversion = fn(&[u8], IdShift, Direction) -> std::result::Result<Vec<u8>, IdError>;

/// An extended attribute's value, if the file has it (at most 64 KiB).
fn read_xattr(f: BorrowedFd<'_>, name: &str) -> Option<Vec<u8>> {
    let mut buf = vec![0u8; 64 << 10];
    let n = fgetxattr(f, name, &mut buf).ok()?;
    buf.truncate(n);
    Some(buf)
}

#[cfg(test)]
mod tests {
    use std::fs;
    use std::os::fd::OwnedFd;
    use std::os::unix::fs::{MetadataExt, PermissionsExt};

    use rustix::fs::{mkdirat, mknodat, openat, statat, symlinkat};

    use super::*;

    const FROM: IdShift = IdShift {
        uid_base: 100_000,
        gid_base: 100_000,
    };
    const TO: IdShift = IdShift {
        uid_base: 200_000,
        gid_base: 200_000,
    };
    const DEPTH: usize = 600;
    /// Long enough that the deepest paths pass PATH_MAX (4096) several
    /// times over.
    const LEVEL: &str = "a-level-of-a-deep-tree";

    fn cap_v3(rootid: u32) -> Vec<u8> {
        let mut v = (0x0300_0000u32 | 1).to_le_bytes().to_vec();
        v.extend_from_slice(&[0x00, 0x20, 0, 0, 0, 0, 0, 0]); // cap_net_raw
        v.extend_from_slice(&[0; 8]);
        v.extend_from_slice(&rootid.to_le_bytes());
        v
    }

    /// user::rw- user:<user>:r-- group::r-- group:<group>:rw- mask::rw- other::---
    fn acl(user: u32, group: u32) -> Vec<u8> {
        let mut v = 2u32.to_le_bytes().to_vec();
        for (tag, perm, id) in [
            (1u16, 6u16, u32::MAX),
            (2, 4, user),
            (4, 4, u32::MAX),
            (8, 6, group),
            (0x10, 6, u32::MAX),
            (0x20, 0, u32::MAX),
        ] {
            v.extend_from_slice(&tag.to_le_bytes());
            v.extend_from_slice(&perm.to_le_bytes());
            v.extend_from_slice(&id.to_le_bytes());
        }
        v
    }

    fn own_at(dir: BorrowedFd<'_>, name: &str, uid: u32, gid: u32) {
        rustix::fs::chownat(
            dir,
            name,
            Some(Uid::from_raw(uid)),
            Some(Gid::from_raw(gid)),
            AtFlags::SYMLINK_NOFOLLOW,
        )
        .expect("chown");
    }

    fn file_at(dir: BorrowedFd<'_>, name: &str, uid: u32, gid: u32) -> OwnedFd {
        let fd = openat(
            dir,
            name,
            OFlags::CREATE | OFlags::WRONLY | OFlags::CLOEXEC,
            Mode::from_raw_mode(0o644),
        )
        .expect("create");
        fchown(&fd, Some(Uid::from_raw(uid)), Some(Gid::from_raw(gid))).expect("chown");
        fd
    }

    fn dir_fd(dir: BorrowedFd<'_>, name: &str) -> OwnedFd {
        openat(
            dir,
            name,
            OFlags::RDONLY | OFlags::DIRECTORY | OFlags::NOFOLLOW | OFlags::CLOEXEC,
            Mode::empty(),
        )
        .expect("open dir")
    }

    /// Owner of `name` in `dir`, not following it.
    fn owner_at(dir: BorrowedFd<'_>, name: &str) -> (u32, u32) {
        let st = statat(dir, name, AtFlags::SYMLINK_NOFOLLOW).expect("stat");
        (st.st_uid, st.st_gid)
    }

    fn xattr_at(dir: BorrowedFd<'_>, name: &str, attr: &str) -> Option<Vec<u8>> {
        let fd = openat(dir, name, OFlags::RDONLY | OFlags::CLOEXEC, Mode::empty()).ok()?;
        read_xattr(fd.as_fd(), attr)
    }

    /// The directory `depth` levels down the chain.
    fn level(top: &Path, depth: usize) -> OwnedFd {
        let mut fd = rustix::fs::open(top, OFlags::RDONLY | OFlags::DIRECTORY, Mode::empty())
            .expect("open top");
        for _ in 0..depth {
            fd = dir_fd(fd.as_fd(), LEVEL);
        }
        fd
    }

    /// Review finding 6: a tree 600 directories deep (paths far past
    /// PATH_MAX) with every kind of entry is shifted whole, each inode
    /// once, with set-user-id bits, capabilities and ACL ids carried over.
    #[test]
    fn a_deep_tree_with_every_kind_of_entry_is_shifted() {
        let (f, t) = (FROM.uid_base, TO.uid_base);
        let tmp = tempfile::Builder::new()
            .prefix("kennel-shift-test")
            .tempdir_in(crate::test_dir())
            .expect("tempdir");
        let top = tmp.path().join("upper");
        fs::create_dir(&top).expect("mkdir");
        rustix::fs::chown(&top, Some(Uid::from_raw(f)), Some(Gid::from_raw(f))).expect("chown");
        let root = level(&top, 0);
        let r = root.as_fd();

        // The usual kinds, at the top.
        let suid = file_at(r, "suid", f, f);
        fchmod(&suid, Mode::from_raw_mode(0o4755)).expect("chmod");
        fsetxattr(&suid, CAPABILITY, &cap_v3(f), XattrFlags::empty()).expect("cap");
        let stranger_cap = file_at(r, "stranger-cap", f, f);
        fsetxattr(&stranger_cap, CAPABILITY, &cap_v3(7), XattrFlags::empty()).expect("cap");
        let with_acl = file_at(r, "acl", f + 33, f + 44);
        fsetxattr(
            &with_acl,
            ACLS[0],
            &acl(f + 1000, f + 50),
            XattrFlags::empty(),
        )
        .expect("acl");
        let stranger_acl = file_at(r, "stranger-acl", f, f);
        fsetxattr(&stranger_acl, ACLS[0], &acl(5, f), XattrFlags::empty()).expect("acl");
        mkdirat(r, "acl-dir", Mode::from_raw_mode(0o2775)).expect("mkdir");
        own_at(r, "acl-dir", f, f + 7);
        let acl_dir = dir_fd(r, "acl-dir");
        fchmod(&acl_dir, Mode::from_raw_mode(0o2775)).expect("chmod");
        fsetxattr(&acl_dir, ACLS[1], &acl(f + 2, f + 3), XattrFlags::empty()).expect("acl");
        drop(file_at(r, "h1", f + 1, f + 2));
        rustix::fs::linkat(r, "h1", r, "h2", AtFlags::empty()).expect("link");
        rustix::fs::linkat(r, "h1", acl_dir.as_fd(), "h3", AtFlags::empty()).expect("link");
        symlinkat("/etc/passwd", r, "abs-link").expect("symlink");
        own_at(r, "abs-link", f + 5, f + 6);
        symlinkat("h1", r, "rel-link").expect("symlink");
        own_at(r, "rel-link", f, f);
        mknodat(r, "fifo", FileType::Fifo, Mode::from_raw_mode(0o640), 0).expect("fifo");
        own_at(r, "fifo", f + 8, f + 9);
        mknodat(r, "sock", FileType::Socket, Mode::from_raw_mode(0o755), 0).expect("socket");
        own_at(r, "sock", f, f);
        // overlayfs's whiteouts are host root's; one restored from a
        // backup is the VE root's.
        mknodat(r, "whiteout", FileType::CharacterDevice, Mode::empty(), 0).expect("whiteout");
        mknodat(
            r,
            "whiteout-ve",
            FileType::CharacterDevice,
            Mode::empty(),
            0,
        )
        .expect("mknod");
        own_at(r, "whiteout-ve", f, f);
        drop(file_at(r, "foreign", 5, 5));
        drop(file_at(r, "z-after-the-chain", f + 10, f + 10));

        // The chain, with a file after the subdirectory half way (listed
        // after it, so shifted once the walk comes back up) and one at
        // the bottom.
        let passwd_owner = fs::symlink_metadata("/etc/passwd").expect("stat").uid();
        let mut fd = level(&top, 0);
        for depth in 1..=DEPTH {
            mkdirat(fd.as_fd(), LEVEL, Mode::from_raw_mode(0o755)).expect("mkdir");
            own_at(fd.as_fd(), LEVEL, f + 1, f + 1);
            if depth == DEPTH / 2 {
                drop(file_at(fd.as_fd(), "zz-half-way", f + 20, f + 21));
            }
            fd = dir_fd(fd.as_fd(), LEVEL);
        }
        let bottom = file_at(fd.as_fd(), "bottom", f + 3, f + 4);
        fchmod(&bottom, Mode::from_raw_mode(0o6750)).expect("chmod");
        drop((
            bottom,
            fd,
            suid,
            stranger_cap,
            with_acl,
            stranger_acl,
            acl_dir,
        ));

        let report = shift_tree(&top, FROM, TO).expect("shift");
        // The top, 14 inodes at the top (h1, h2 and acl-dir/h3 are one),
        // the chain, two files in it.
        assert_eq!(report.inodes, 1 + 14 + DEPTH as u64 + 2, "{report:?}");
        // The root-owned whiteout and the stranger's file; nothing twice.
        assert_eq!(report.foreign, 2, "{report:?}");

        let r = root.as_fd();
        let top_meta = fs::metadata(&top).expect("stat");
        assert_eq!((top_meta.uid(), top_meta.gid()), (t, t));
        let meta = fs::metadata(top.join("suid")).expect("stat");
        assert_eq!((meta.uid(), meta.mode() & 0o7777), (t, 0o4755));
        assert_eq!(xattr_at(r, "suid", CAPABILITY), Some(cap_v3(t)));
        assert_eq!(xattr_at(r, "stranger-cap", CAPABILITY), None);
        assert_eq!(owner_at(r, "acl"), (t + 33, t + 44));
        assert_eq!(xattr_at(r, "acl", ACLS[0]), Some(acl(t + 1000, t + 50)));
        assert_eq!(xattr_at(r, "stranger-acl", ACLS[0]), None);
        assert_eq!(owner_at(r, "acl-dir"), (t, t + 7));
        let meta = fs::metadata(top.join("acl-dir")).expect("stat");
        assert_eq!(meta.permissions().mode() & 0o7777, 0o2775);
        assert_eq!(xattr_at(r, "acl-dir", ACLS[1]), Some(acl(t + 2, t + 3)));
        for name in ["h1", "h2", "acl-dir/h3"] {
            assert_eq!(owner_at(r, name), (t + 1, t + 2), "{name}");
        }
        assert_eq!(owner_at(r, "abs-link"), (t + 5, t + 6));
        assert_eq!(
            fs::symlink_metadata("/etc/passwd").expect("stat").uid(),
            passwd_owner,
            "a symlink was followed"
        );
        assert_eq!(owner_at(r, "rel-link"), (t, t));
        assert_eq!(owner_at(r, "fifo"), (t + 8, t + 9));
        assert_eq!(owner_at(r, "sock"), (t, t));
        assert_eq!(owner_at(r, "whiteout"), (0, 0));
        assert_eq!(owner_at(r, "whiteout-ve"), (t, t));
        assert_eq!(owner_at(r, "foreign"), (5, 5));
        assert_eq!(owner_at(r, "z-after-the-chain"), (t + 10, t + 10));
        let mut fd = level(&top, 0);
        for depth in 1..=DEPTH {
            assert_eq!(owner_at(fd.as_fd(), LEVEL), (t + 1, t + 1), "level {depth}");
            if depth == DEPTH / 2 {
                assert_eq!(owner_at(fd.as_fd(), "zz-half-way"), (t + 20, t + 21));
            }
            fd = dir_fd(fd.as_fd(), LEVEL);
        }
        assert_eq!(owner_at(fd.as_fd(), "bottom"), (t + 3, t + 4));
        let st = statat(fd.as_fd(), "bottom", AtFlags::empty()).expect("stat");
        assert_eq!(st.st_mode & 0o7777, 0o6750);

        // Shifting back restores the first range exactly.
        let back = shift_tree(&top, TO, FROM).expect("shift back");
        assert_eq!((back.inodes, back.foreign), (report.inodes, 2));
        assert_eq!(owner_at(r, "abs-link"), (f + 5, f + 6));
        assert_eq!(xattr_at(r, "suid", CAPABILITY), Some(cap_v3(f)));
    }
}

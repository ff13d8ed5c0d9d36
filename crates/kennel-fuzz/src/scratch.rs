//! Where one fuzz input is unpacked (a template tarball, or a chain of
//! backups), and what must hold afterwards.
//!
//! ```text
//! <tmpfs>/kennel-fuzz-XXXX/      the scratch directory
//!     canary                      must stay as it was
//!     inner/                      `@` in a link target stands for this path
//!         canary                  must stay as it was
//!         dest/                   the unpack destination
//! ```
//!
//! An escape of one or two `..`, or through an absolute path to `inner`,
//! lands next to a canary, where it is seen; the scratch directory lives
//! on tmpfs (`/dev/shm`) so that the fuzzer does no disk I/O.

use std::collections::HashSet;
use std::fs;
use std::os::fd::{AsFd, OwnedFd};
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};

use rustix::fs::{openat, statat, AtFlags, Dir, FileType, Mode, OFlags, CWD};

use std::io::Read;
use std::ops::RangeInclusive;

use tempfile::TempDir;

const CANARY: &[u8] = b"kennel fuzz canary\n";

/// What the unpacked tree may hold.
pub(crate) struct Rules {
    /// Names below the destination: the walk stops as soon as it passes
    /// them (a tree far past it could be deeper than the descriptors a
    /// walk may hold).
    pub max_names: u64,
    pub uids: RangeInclusive<u32>,
    pub gids: RangeInclusive<u32>,
    /// Overlayfs whiteouts (char 0/0) and sockets may be made (layers).
    pub layer: bool,
    /// Whether the unpack finished (for the messages).
    pub accepted: bool,
}

pub(crate) struct Scratch {
    dir: TempDir,
    canaries: Vec<(PathBuf, fs::Metadata)>,
}

impl Scratch {
    /// A new scratch directory in `$KENNEL_FUZZ_SCRATCH` (tests/fuzz.sh
    /// sets it, and removes what a crashed fuzzer left there), else in
    /// /dev/shm.
    pub(crate) fn new() -> Scratch {
        let shm = Path::new("/dev/shm");
        let base = match std::env::var_os("KENNEL_FUZZ_SCRATCH") {
            Some(dir) => PathBuf::from(dir),
            None if shm.is_dir() => shm.to_path_buf(),
            None => std::env::temp_dir(),
        };
        let dir = match tempfile::Builder::new()
            .prefix("kennel-fuzz-")
            .tempdir_in(&base)
        {
            Ok(d) => d,
            Err(e) => panic!("cannot make a scratch directory in {}: {e}", base.display()),
        };
        let mut canaries = Vec::new();
        for d in [dir.path().to_path_buf(), dir.path().join("inner")] {
            let c = d.join("canary");
            let made = fs::create_dir_all(d.join("dest")).and_then(|()| fs::write(&c, CANARY));
            let meta = made.and_then(|()| fs::symlink_metadata(&c));
            match meta {
                Ok(m) => canaries.push((c, m)),
                Err(e) => panic!("cannot prepare {}: {e}", d.display()),
            }
        }
        // Only inner/dest is used.
        if let Err(e) = fs::remove_dir(dir.path().join("dest")) {
            panic!("cannot prepare {}: {e}", dir.path().display());
        }
        Scratch { dir, canaries }
    }

    /// The directory that holds the destination (what `@` stands for).
    pub(crate) fn outside(&self) -> PathBuf {
        self.dir.path().join("inner")
    }

    pub(crate) fn dest(&self) -> PathBuf {
        self.outside().join("dest")
    }

    /// Panics unless the unpack (finished or not) kept to the destination
    /// and to `rules`; returns what the destination holds, for the caller
    /// to check against its byte limit.
    pub(crate) fn check(&self, rules: &Rules) -> Tree {
        self.check_outside();
        let mut tree = Tree::default();
        let dest = self.dest();
        // The destination itself: as it was made, or given the tree's top.
        match fs::symlink_metadata(&dest) {
            Ok(m) if (m.uid(), m.gid()) == (0, 0) => {}
            Ok(m) => assert!(
                rules.uids.contains(&m.uid()) && rules.gids.contains(&m.gid()),
                "the destination is owned by {}:{}, outside the VE's ids",
                m.uid(),
                m.gid()
            ),
            Err(e) => panic!("{}: {e}", dest.display()),
        }
        tree.walk(&dest, rules);
        tree
    }

    /// Nothing next to the destination or above it changed.
    fn check_outside(&self) {
        for (dir, expected) in [
            (self.dir.path().to_path_buf(), ["canary", "inner"]),
            (self.outside(), ["canary", "dest"]),
        ] {
            let mut names: Vec<String> = match fs::read_dir(&dir) {
                Ok(rd) => rd
                    .map(|e| match e {
                        Ok(e) => e.file_name().to_string_lossy().into_owned(),
                        Err(e) => panic!("read {}: {e}", dir.display()),
                    })
                    .collect(),
                Err(e) => panic!("read {}: {e}", dir.display()),
            };
            names.sort();
            assert_eq!(names, expected, "something was made in {}", dir.display());
        }
        for (path, before) in &self.canaries {
            let now = match fs::symlink_metadata(path) {
                Ok(m) => m,
                Err(e) => panic!("{}: {e}", path.display()),
            };
            let same = now.ino() == before.ino()
                && now.nlink() == 1
                && now.mode() == before.mode()
                && (now.uid(), now.gid()) == (before.uid(), before.gid())
                && now.mtime() == before.mtime()
                && fs::read(path).ok().as_deref() == Some(CANARY);
            assert!(same, "{} was changed or linked to", path.display());
        }
        match fs::symlink_metadata(self.dest()) {
            Ok(m) if m.is_dir() => {}
            other => panic!("the destination is no longer a directory: {other:?}"),
        }
    }

    /// Removes everything, as root can (unpacked directories may be
    /// read-only).
    pub(crate) fn remove(self) {
        let path = self.dir.path().to_path_buf();
        if let Err(e) = self.dir.close() {
            panic!("cannot remove {}: {e}", path.display());
        }
    }
}

/// What an unpacked tree holds.
#[derive(Default)]
pub(crate) struct Tree {
    /// Names below the destination (not the destination itself).
    pub names: u64,
    /// Sizes of its regular files, each inode once.
    pub bytes: u64,
    /// Layers: the least number of bytes that were written to its regular
    /// files (each inode once), sparse ones included: of a file with a
    /// hole, the pages it has (each holds a written byte; tmpfs allocates
    /// no page for a hole), else the larger of that and its non-zero bytes
    /// (a file without a hole may be a sparse one whose data covers every
    /// page, its zeros never written).
    pub written: u64,
    inodes: HashSet<u64>,
}

impl Tree {
    /// Walks `dir` without following symlinks, by descriptor: a tree made
    /// through symlinks can be deeper than a path can name.
    fn walk(&mut self, dir: &Path, rules: &Rules) {
        match open_dir(CWD, dir) {
            Ok(fd) => self.walk_fd(fd, &dir.display().to_string(), rules),
            Err(e) => panic!("open {}: {e}", dir.display()),
        }
    }

    fn walk_fd(&mut self, fd: OwnedFd, shown: &str, rules: &Rules) {
        let entries = match Dir::read_from(&fd) {
            Ok(d) => d,
            Err(e) => panic!("read {shown}: {e}"),
        };
        for e in entries {
            let e = match e {
                Ok(e) => e,
                Err(e) => panic!("read {shown}: {e}"),
            };
            let name = e.file_name();
            if name == c"." || name == c".." {
                continue;
            }
            let path = format!("{shown}/{}", name.to_string_lossy());
            let st = match statat(&fd, name, AtFlags::SYMLINK_NOFOLLOW) {
                Ok(st) => st,
                Err(e) => panic!("{path}: {e}"),
            };
            self.names += 1;
            assert!(
                self.names <= rules.max_names,
                "more names unpacked than the limit of {} (at {path}; accepted: {})",
                rules.max_names,
                rules.accepted
            );
            let t = FileType::from_raw_mode(st.st_mode);
            let whiteout = t == FileType::CharacterDevice && st.st_rdev == 0;
            let allowed = match t {
                FileType::BlockDevice => false,
                FileType::CharacterDevice => rules.layer && whiteout,
                FileType::Socket => rules.layer,
                _ => true,
            };
            assert!(
                allowed,
                "{path} is a device node or socket ({t:?}, rdev {:#x})",
                st.st_rdev
            );
            // A refused restore may stop while a sparse file waits for its
            // last segment: made 0600 by root, its owner and mode not set
            // yet. The caller throws such a tree away.
            let unfinished = rules.layer
                && !rules.accepted
                && t == FileType::RegularFile
                && (st.st_uid, st.st_gid) == (0, 0)
                && st.st_mode & 0o7777 == 0o600;
            assert!(
                unfinished || (rules.uids.contains(&st.st_uid) && rules.gids.contains(&st.st_gid)),
                "{path} is owned by {}:{}, outside the VE's ids (mode {:o}; accepted: {})",
                st.st_uid,
                st.st_gid,
                st.st_mode,
                rules.accepted
            );
            if t == FileType::RegularFile && self.inodes.insert(st.st_ino) {
                let size = u64::try_from(st.st_size).unwrap_or(u64::MAX);
                self.bytes = self.bytes.saturating_add(size);
                if rules.layer {
                    let held = u64::try_from(st.st_blocks)
                        .unwrap_or(u64::MAX)
                        .saturating_mul(512);
                    let pages = held.div_ceil(4096);
                    let least = if held < size {
                        pages
                    } else {
                        pages.max(non_zero(&fd, name, &path))
                    };
                    self.written = self.written.saturating_add(least);
                }
            }
            if t == FileType::Directory {
                match open_dir(&fd, name) {
                    Ok(sub) => self.walk_fd(sub, &path, rules),
                    Err(e) => panic!("open {path}: {e}"),
                }
            }
        }
    }
}

/// The non-zero bytes of the regular file `name` in `dir`.
fn non_zero<Fd: AsFd>(dir: Fd, name: &std::ffi::CStr, path: &str) -> u64 {
    let fd = match openat(
        dir,
        name,
        OFlags::RDONLY | OFlags::NOFOLLOW | OFlags::CLOEXEC,
        Mode::empty(),
    ) {
        Ok(fd) => fd,
        Err(e) => panic!("open {path}: {e}"),
    };
    let mut f = fs::File::from(fd);
    let mut buf = vec![0u8; 1 << 16];
    let mut count = 0u64;
    loop {
        match f.read(&mut buf) {
            Ok(0) => return count,
            Ok(n) => count += buf[..n].iter().filter(|&&b| b != 0).count() as u64,
            Err(e) => panic!("read {path}: {e}"),
        }
    }
}

fn open_dir<Fd: AsFd, P: rustix::path::Arg>(at: Fd, path: P) -> rustix::io::Result<OwnedFd> {
    openat(
        at,
        path,
        OFlags::RDONLY | OFlags::DIRECTORY | OFlags::NOFOLLOW | OFlags::CLOEXEC,
        Mode::empty(),
    )
}

//! Where one fuzz input is unpacked, and what must hold afterwards.
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

use kennel_storage::unpack::UnpackLimits;
use tempfile::TempDir;

const CANARY: &[u8] = b"kennel fuzz canary\n";

/// Highest uid and gid a VE maps.
const MAX_OWNER: u32 = 65535;

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
    /// and the limits. `accepted` says whether it finished.
    pub(crate) fn check(&self, limits: &UnpackLimits, accepted: bool) {
        self.check_outside();
        let mut tree = Tree {
            max_names: limits.max_entries,
            accepted,
            ..Tree::default()
        };
        tree.walk(&self.dest());
        assert!(
            tree.bytes <= limits.max_bytes,
            "{} bytes of files unpacked, past the limit of {} (accepted: {accepted})",
            tree.bytes,
            limits.max_bytes
        );
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
struct Tree {
    /// Names below the destination (not the destination itself).
    names: u64,
    /// The member limit, which also bounds the names: the walk stops as
    /// soon as it is passed (a tree far past it could be deeper than the
    /// descriptors a walk may hold).
    max_names: u64,
    accepted: bool,
    /// Sizes of its regular files, each inode once.
    bytes: u64,
    inodes: HashSet<u64>,
}

impl Tree {
    /// Walks `dir` without following symlinks, by descriptor: a tree made
    /// through symlinks can be deeper than a path can name.
    fn walk(&mut self, dir: &Path) {
        match open_dir(CWD, dir) {
            Ok(fd) => self.walk_fd(fd, &dir.display().to_string()),
            Err(e) => panic!("open {}: {e}", dir.display()),
        }
    }

    fn walk_fd(&mut self, fd: OwnedFd, shown: &str) {
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
                self.names <= self.max_names,
                "more names unpacked than the limit of {} members (at {path}; accepted: {})",
                self.max_names,
                self.accepted
            );
            let t = FileType::from_raw_mode(st.st_mode);
            assert!(
                !matches!(
                    t,
                    FileType::BlockDevice | FileType::CharacterDevice | FileType::Socket
                ),
                "{path} is a device node or socket"
            );
            assert!(
                st.st_uid <= MAX_OWNER && st.st_gid <= MAX_OWNER,
                "{path} is owned by {}:{}, outside the VE's ids",
                st.st_uid,
                st.st_gid
            );
            if t == FileType::RegularFile && self.inodes.insert(st.st_ino) {
                self.bytes += u64::try_from(st.st_size).unwrap_or(u64::MAX);
            }
            if t == FileType::Directory {
                match open_dir(&fd, name) {
                    Ok(sub) => self.walk_fd(sub, &path),
                    Err(e) => panic!("open {path}: {e}"),
                }
            }
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

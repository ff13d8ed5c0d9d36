//! A template's tree as seen from the host, touched only through a
//! descriptor of its root: every path is resolved by the kernel inside the
//! tree, so a symlink in an untrusted tree (`etc -> /etc`) can never make
//! the host read or write its own files.

use std::collections::HashSet;
use std::ffi::{CStr, CString};
use std::fs::File;
use std::io::Read;
use std::os::fd::{AsFd, BorrowedFd, OwnedFd};
use std::path::Path;

use rustix::fs::{
    openat, openat2, statat, unlinkat, AtFlags, FileType, Mode, OFlags, ResolveFlags,
};
use rustix::io::Errno;

use crate::error::{io_err, Result};
use crate::shown::shown;

/// Paths that must be exactly what they say: no symlink anywhere.
const STRICT: ResolveFlags = ResolveFlags::BENEATH
    .union(ResolveFlags::NO_SYMLINKS)
    .union(ResolveFlags::NO_MAGICLINKS);

/// Paths resolved the way the VE will see them: symlinks followed, but
/// with the tree as `/`.
const AS_IN_VE: ResolveFlags = ResolveFlags::IN_ROOT.union(ResolveFlags::NO_MAGICLINKS);

/// At most this much is read from a file of the tree.
const READ_LIMIT: u64 = 16 << 20;

#[derive(Debug)]
pub(crate) struct Tree {
    root: OwnedFd,
}

/// What a walk of the tree found.
#[derive(Debug, Default, Clone, Copy)]
pub(crate) struct TreeStats {
    pub bytes: u64,
    pub entries: u64,
    pub devices_removed: u64,
}

impl Tree {
    pub(crate) fn open(dir: &Path) -> Result<Self> {
        let root = rustix::fs::open(
            dir,
            OFlags::PATH | OFlags::DIRECTORY | OFlags::CLOEXEC,
            Mode::empty(),
        )
        .map_err(|e| io_err("open", dir)(e.into()))?;
        Ok(Tree { root })
    }

    /// Opens the regular file `rel`, resolved as inside the VE; `None` if
    /// it is missing or not a regular file (a FIFO is never opened for
    /// reading).
    fn open_regular(&self, rel: &str, resolve: ResolveFlags, flags: OFlags) -> Option<File> {
        let probe = openat2(
            &self.root,
            rel,
            OFlags::PATH | OFlags::CLOEXEC,
            Mode::empty(),
            resolve,
        )
        .ok()?;
        let st = rustix::fs::fstat(&probe).ok()?;
        if FileType::from_raw_mode(st.st_mode) != FileType::RegularFile {
            return None;
        }
        let fd = openat2(
            &self.root,
            rel,
            flags | OFlags::NOFOLLOW | OFlags::CLOEXEC | OFlags::NONBLOCK,
            Mode::empty(),
            resolve,
        )
        .ok()?;
        let st2 = rustix::fs::fstat(&fd).ok()?;
        (st2.st_ino == st.st_ino && st2.st_dev == st.st_dev).then(|| File::from(fd))
    }

    /// Up to 16 MiB of the regular file `rel`, as the VE would find it.
    pub(crate) fn read(&self, rel: &str) -> Option<Vec<u8>> {
        let f = self.open_regular(rel, AS_IN_VE, OFlags::RDONLY)?;
        let mut out = Vec::new();
        f.take(READ_LIMIT).read_to_end(&mut out).ok()?;
        Some(out)
    }

    /// Where `rel` leads inside the tree (through its symlinks), as a path
    /// relative to the root; `None` if it is missing.
    pub(crate) fn resolve(&self, rel: &str) -> Option<String> {
        let fd = openat2(
            &self.root,
            rel,
            OFlags::PATH | OFlags::CLOEXEC,
            Mode::empty(),
            AS_IN_VE,
        )
        .ok()?;
        let full = std::fs::read_link(format!(
            "/proc/self/fd/{}",
            std::os::fd::AsRawFd::as_raw_fd(&fd)
        ))
        .ok()?;
        let root = std::fs::read_link(format!(
            "/proc/self/fd/{}",
            std::os::fd::AsRawFd::as_raw_fd(&self.root)
        ))
        .ok()?;
        full.strip_prefix(&root)
            .ok()
            .map(|p| p.to_string_lossy().into_owned())
    }

    /// Replaces the contents of the regular file `rel` (no symlink on the
    /// way); does nothing if it is not one.
    pub(crate) fn rewrite(&self, rel: &str, content: &[u8]) -> Result<()> {
        use std::io::Write;
        let Some(mut f) = self.open_regular(rel, STRICT, OFlags::WRONLY) else {
            return Ok(());
        };
        rustix::fs::ftruncate(&f, 0).map_err(|e| io_err("truncate", rel)(e.into()))?;
        f.write_all(content).map_err(io_err("write", rel))
    }

    /// Removes the non-directory `rel` (no symlink on the way).
    pub(crate) fn remove(&self, rel: &str) -> Result<()> {
        let (parent, name) = match rel.rsplit_once('/') {
            Some(x) => x,
            None => (".", rel),
        };
        let Ok(dir) = openat2(
            &self.root,
            parent,
            OFlags::PATH | OFlags::DIRECTORY | OFlags::CLOEXEC,
            Mode::empty(),
            STRICT,
        ) else {
            return Ok(());
        };
        match unlinkat(&dir, name, AtFlags::empty()) {
            Ok(()) | Err(Errno::NOENT) | Err(Errno::ISDIR) => Ok(()),
            Err(e) => Err(io_err("remove", rel)(e.into())),
        }
    }

    /// Removes the files directly in directory `rel` (no symlink on the
    /// way), keeping subdirectories and `lock`.
    pub(crate) fn remove_files_in(&self, rel: &str) -> Result<()> {
        let Ok(dir) = openat2(
            &self.root,
            rel,
            OFlags::RDONLY | OFlags::DIRECTORY | OFlags::CLOEXEC,
            Mode::empty(),
            STRICT,
        ) else {
            return Ok(());
        };
        for name in dir_names(dir.as_fd(), rel)? {
            let st = statat(&dir, name.as_c_str(), AtFlags::SYMLINK_NOFOLLOW);
            if st.is_ok_and(|s| FileType::from_raw_mode(s.st_mode) != FileType::Directory)
                && name.as_bytes() != b"lock"
            {
                unlinkat(&dir, name.as_c_str(), AtFlags::empty())
                    .map_err(|e| io_err("remove", entry_path(rel, &name))(e.into()))?;
            }
        }
        Ok(())
    }

    /// Makes `rel` (a name in the tree's root) an empty directory, mode
    /// 0755, whatever it was: what it held is removed by descriptor
    /// ([`crate::remove`]), however deep.
    pub(crate) fn empty_dir(&self, rel: &str) -> Result<()> {
        let name = CString::new(rel).map_err(|_| io_err("create", rel)(Errno::INVAL.into()))?;
        crate::remove::remove_in(self.root.as_fd(), &name, Path::new(rel))?;
        rustix::fs::mkdirat(&self.root, name.as_c_str(), Mode::from_raw_mode(0o755))
            .map_err(|e| io_err("create", rel)(e.into()))?;
        let dir = openat2(
            &self.root,
            name.as_c_str(),
            OFlags::RDONLY | OFlags::DIRECTORY | OFlags::CLOEXEC,
            Mode::empty(),
            STRICT,
        )
        .map_err(|e| io_err("open", rel)(e.into()))?;
        rustix::fs::fchmod(&dir, Mode::from_raw_mode(0o755))
            .map_err(|e| io_err("chmod", rel)(e.into()))
    }

    /// Walks the whole tree: counts bytes and entries, and removes every
    /// device node (a VE gets its own /dev; a node in a shared tree is
    /// never wanted).
    ///
    /// An imported tree may be deep and wide: the walk holds one directory
    /// open at a time (down by name, up by `..`: nothing else changes the
    /// tree meanwhile), keeps names as raw bytes and recurses nowhere. It
    /// does not cross into another filesystem.
    pub(crate) fn sweep(&self) -> Result<TreeStats> {
        let mut stats = TreeStats::default();
        let mut seen = HashSet::new();
        let mut cur = openat(
            &self.root,
            c".",
            OFlags::RDONLY | OFlags::DIRECTORY | OFlags::CLOEXEC,
            Mode::empty(),
        )
        .map_err(|e| io_err("open", ".")(e.into()))?;
        // For each level from the root down to `cur`: the subdirectories
        // still to visit.
        let mut todo = vec![sweep_dir(cur.as_fd(), &mut stats, &mut seen)?];
        loop {
            let Some(level) = todo.last_mut() else {
                return Ok(stats);
            };
            match level.pop() {
                Some(name) => {
                    // Gone, or a mount point: nothing of it is counted.
                    if let Ok(sub) = open_subdir(cur.as_fd(), &name) {
                        cur = sub;
                        todo.push(sweep_dir(cur.as_fd(), &mut stats, &mut seen)?);
                    }
                }
                None => {
                    todo.pop();
                    if todo.is_empty() {
                        return Ok(stats);
                    }
                    cur = openat(
                        &cur,
                        c"..",
                        OFlags::RDONLY | OFlags::DIRECTORY | OFlags::CLOEXEC,
                        Mode::empty(),
                    )
                    .map_err(|e| io_err("open", "..")(e.into()))?;
                }
            }
        }
    }
}

/// `rel/name` for an error message, the name shown escaped.
fn entry_path(rel: &str, name: &CStr) -> String {
    format!("{rel}/{}", shown(name.to_bytes()))
}

/// Subdirectory `name` of `dir`, never through a symlink or into another
/// filesystem.
fn open_subdir(dir: BorrowedFd<'_>, name: &CStr) -> rustix::io::Result<OwnedFd> {
    openat2(
        dir,
        name,
        OFlags::RDONLY | OFlags::DIRECTORY | OFlags::NOFOLLOW | OFlags::CLOEXEC,
        Mode::empty(),
        ResolveFlags::NO_SYMLINKS | ResolveFlags::NO_XDEV | ResolveFlags::BENEATH,
    )
}

/// Counts the entries of `dir` into `stats`, removes its device nodes, and
/// returns the names of its subdirectories.
fn sweep_dir(
    dir: BorrowedFd<'_>,
    stats: &mut TreeStats,
    seen: &mut HashSet<(u64, u64)>,
) -> Result<Vec<CString>> {
    let mut subdirs = Vec::new();
    for name in dir_names(dir, ".")? {
        let Ok(st) = statat(dir, name.as_c_str(), AtFlags::SYMLINK_NOFOLLOW) else {
            continue;
        };
        stats.entries += 1;
        match FileType::from_raw_mode(st.st_mode) {
            FileType::Directory => subdirs.push(name),
            FileType::CharacterDevice | FileType::BlockDevice => {
                unlinkat(dir, name.as_c_str(), AtFlags::empty())
                    .map_err(|e| io_err("remove device node", shown(name.to_bytes()))(e.into()))?;
                stats.devices_removed += 1;
                stats.entries -= 1;
            }
            _ => {
                if st.st_nlink < 2 || seen.insert((st.st_dev, st.st_ino)) {
                    stats.bytes += st.st_blocks as u64 * 512;
                }
            }
        }
    }
    Ok(subdirs)
}

/// The names in directory `dir` (without `.` and `..`), as raw bytes;
/// `rel` names it in errors.
fn dir_names(dir: BorrowedFd<'_>, rel: &str) -> Result<Vec<CString>> {
    let fd = openat(
        dir,
        c".",
        OFlags::RDONLY | OFlags::DIRECTORY | OFlags::CLOEXEC,
        Mode::empty(),
    )
    .map_err(|e| io_err("open", rel)(e.into()))?;
    let mut out = Vec::new();
    let d = rustix::fs::Dir::new(fd).map_err(|e| io_err("read directory", rel)(e.into()))?;
    for entry in d {
        let entry = entry.map_err(|e| io_err("read directory", rel)(e.into()))?;
        let name = entry.file_name();
        if name != c"." && name != c".." {
            out.push(name.to_owned());
        }
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use std::os::unix::ffi::OsStrExt;
    use std::os::unix::fs::symlink;

    use super::*;

    fn tree() -> (tempfile::TempDir, Tree) {
        let dir = tempfile::tempdir().expect("tempdir");
        let t = Tree::open(dir.path()).expect("open");
        (dir, t)
    }

    #[test]
    fn sweep_counts_a_deep_tree_once_and_follows_no_link() {
        let (dir, t) = tree();
        let mut deep = dir.path().to_path_buf();
        for _ in 0..300 {
            deep.push("d");
        }
        std::fs::create_dir_all(&deep).expect("deep");
        std::fs::write(deep.join("f"), vec![1u8; 8192]).expect("file");
        std::fs::hard_link(deep.join("f"), dir.path().join("again")).expect("link");
        let odd = std::ffi::OsStr::from_bytes(b"odd-\xff");
        std::fs::create_dir(dir.path().join(odd)).expect("odd name");
        symlink("/", dir.path().join("escape")).expect("symlink");
        let stats = t.sweep().expect("sweep");
        // 300 d's, f, again, odd, escape.
        assert_eq!(stats.entries, 304);
        assert!(
            (8192..16384).contains(&stats.bytes),
            "a hard-linked file is counted once: {}",
            stats.bytes
        );
        assert_eq!(stats.devices_removed, 0);
    }

    #[test]
    fn sweep_removes_device_nodes() {
        if !rustix::process::geteuid().is_root() {
            return; // mknod needs root
        }
        let (dir, t) = tree();
        std::fs::create_dir(dir.path().join("dev")).expect("dev");
        rustix::fs::mknodat(
            rustix::fs::CWD,
            dir.path().join("dev/null"),
            FileType::CharacterDevice,
            Mode::from_raw_mode(0o666),
            rustix::fs::makedev(1, 3),
        )
        .expect("mknod");
        let stats = t.sweep().expect("sweep");
        assert_eq!((stats.devices_removed, stats.entries), (1, 1));
        assert!(!dir.path().join("dev/null").exists());
    }

    #[test]
    fn empty_dir_replaces_whatever_was_there_and_follows_no_link() {
        let (dir, t) = tree();
        let outside = tempfile::tempdir().expect("outside");
        std::fs::write(outside.path().join("keep"), b"x").expect("keep");
        symlink(outside.path(), dir.path().join("upper")).expect("symlink");
        t.empty_dir("upper").expect("over a symlink");
        assert!(
            outside.path().join("keep").exists(),
            "the link's target stays"
        );
        std::fs::create_dir_all(dir.path().join("work/a/b")).expect("work");
        std::fs::write(dir.path().join("work/a/b/f"), b"x").expect("f");
        t.empty_dir("work").expect("over a tree");
        for d in ["upper", "work"] {
            let p = dir.path().join(d);
            let meta = std::fs::symlink_metadata(&p).expect("made");
            assert!(meta.is_dir(), "{d}");
            assert_eq!(std::fs::read_dir(&p).expect("read").count(), 0, "{d}");
        }
    }
}

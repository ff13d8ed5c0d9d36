//! The walk on real trees in a temporary directory: deep, hostile names,
//! links out of the tree, special files, unreadable modes, mount points.

use super::*;
use std::fs;
use std::os::unix::fs::{symlink, PermissionsExt};
use std::os::unix::net::UnixListener;

use rustix::fs::{chmodat, linkat, mkdirat, mknodat, openat};

/// Host files a hostile tree points at; they must survive its removal.
struct Canaries {
    file: PathBuf,
    dir: PathBuf,
}

impl Canaries {
    fn new(base: &Path) -> Self {
        let file = base.join("canary.txt");
        fs::write(&file, "keep me").expect("write canary");
        let dir = base.join("canary-dir");
        fs::create_dir(&dir).expect("mkdir canary");
        fs::write(dir.join("inside"), "keep me too").expect("write canary");
        Canaries { file, dir }
    }

    fn assert_intact(&self) {
        assert_eq!(fs::read_to_string(&self.file).expect("canary"), "keep me");
        let names: Vec<_> = fs::read_dir(&self.dir)
            .expect("canary dir")
            .flatten()
            .map(|e| e.file_name())
            .collect();
        assert_eq!(names, ["inside"]);
        assert_eq!(
            fs::read_to_string(self.dir.join("inside")).expect("canary"),
            "keep me too"
        );
    }
}

fn mkdir(at: BorrowedFd<'_>, name: &[u8], mode: u32) -> OwnedFd {
    let name = CString::new(name).expect("name");
    mkdirat(at, name.as_c_str(), Mode::from_raw_mode(0o755)).expect("mkdir");
    let fd = openat(
        at,
        name.as_c_str(),
        OFlags::RDONLY | OFlags::DIRECTORY | OFlags::CLOEXEC,
        Mode::empty(),
    )
    .expect("open");
    chmodat(
        at,
        name.as_c_str(),
        Mode::from_raw_mode(mode),
        AtFlags::empty(),
    )
    .expect("chmod");
    fd
}

fn file(at: BorrowedFd<'_>, name: &[u8], mode: u32) {
    let name = CString::new(name).expect("name");
    let fd = openat(
        at,
        name.as_c_str(),
        OFlags::CREATE | OFlags::WRONLY | OFlags::CLOEXEC,
        Mode::from_raw_mode(mode),
    )
    .expect("create");
    rustix::io::write(&fd, b"data").expect("write");
}

/// Everything a hostile VE leaves in one directory.
fn hostile_entries(dir: BorrowedFd<'_>, canaries: &Canaries) {
    file(dir, b"\n\x1b[31mred\x1b]0;title\x07\xff\xfe", 0o644);
    file(dir, &[b'x'; 255], 0o000);
    linkat(
        dir,
        c"\n\x1b[31mred\x1b]0;title\x07\xff\xfe",
        dir,
        c"hardlink",
        AtFlags::empty(),
    )
    .expect("link");
    rustix::fs::symlinkat(canaries.file.as_os_str(), dir, c"to-host-file").expect("symlink");
    rustix::fs::symlinkat(canaries.dir.as_os_str(), dir, c"to-host-dir").expect("symlink");
    rustix::fs::symlinkat("../../../../../../../..", dir, c"up").expect("symlink");
    rustix::fs::symlinkat("/", dir, c"root\u{202e}").expect("symlink");
    mknodat(dir, c"fifo", FileType::Fifo, Mode::from_raw_mode(0o600), 0).expect("mkfifo");
    // A directory nobody may enter, holding a file nobody may read.
    let locked = mkdir(dir, b"locked", 0o755);
    file(locked.as_fd(), b"secret", 0o000);
    let sub = mkdir(locked.as_fd(), b"sub", 0o000);
    file(sub.as_fd(), b"deeper", 0o000);
    chmodat(dir, c"locked", Mode::from_raw_mode(0o000), AtFlags::empty()).expect("chmod");
}

/// A chain of `depth` directories below `top`, with hostile entries every
/// `every` levels.
fn deep_tree(top: &Path, depth: usize, every: usize, canaries: &Canaries) {
    fs::create_dir(top).expect("mkdir top");
    let _sock = UnixListener::bind(top.join("sock")).expect("socket");
    let mut cur: OwnedFd = rustix::fs::open(
        top,
        OFlags::RDONLY | OFlags::DIRECTORY | OFlags::CLOEXEC,
        Mode::empty(),
    )
    .expect("open top");
    for i in 0..depth {
        if i % every == 0 {
            hostile_entries(cur.as_fd(), canaries);
        }
        let next = mkdir(cur.as_fd(), b"d", if i % 7 == 0 { 0o000 } else { 0o755 });
        cur = next;
    }
    hostile_entries(cur.as_fd(), canaries);
}

#[test]
fn removes_a_deep_hostile_tree_and_nothing_else() {
    let t = tempfile::tempdir().expect("tempdir");
    let canaries = Canaries::new(t.path());
    let top = t.path().join(".1.deleted-1");
    let depth = 1200;
    deep_tree(&top, depth, 300, &canaries);
    let t0 = std::time::Instant::now();
    let done = remove_tree(&top).expect("remove");
    eprintln!("removed in {:?}: {done:?}", t0.elapsed());
    assert!(!top.exists() && !top.is_symlink(), "the tree is gone");
    canaries.assert_intact();
    assert!(
        done.moved as usize >= depth / MAX_OPEN - 1,
        "deep subtrees were moved up: {done:?}"
    );
    assert!(done.entries as usize > depth, "{done:?}");
    let left: Vec<_> = fs::read_dir(t.path())
        .expect("ls")
        .flatten()
        .map(|e| e.file_name())
        .collect();
    assert_eq!(left.len(), 2, "only the canaries are left: {left:?}");
}

#[test]
fn a_top_that_is_not_a_directory_is_removed_not_followed() {
    let t = tempfile::tempdir().expect("tempdir");
    let canaries = Canaries::new(t.path());
    assert_eq!(
        remove_tree(&t.path().join("missing")).expect("missing"),
        Removed::default()
    );
    assert_eq!(
        remove_tree(&t.path().join("missing/below")).expect("missing parent"),
        Removed::default()
    );
    for (name, target) in [("link-dir", &canaries.dir), ("link-file", &canaries.file)] {
        let link = t.path().join(name);
        symlink(target, &link).expect("symlink");
        remove_tree(&link).expect("remove link");
        assert!(!link.is_symlink());
    }
    let f = t.path().join("plain");
    fs::write(&f, "x").expect("write");
    fs::set_permissions(&f, fs::Permissions::from_mode(0o000)).expect("chmod");
    remove_tree(&f).expect("remove file");
    assert!(!f.exists());
    canaries.assert_intact();
}

#[test]
fn entries_moved_into_the_top_meanwhile_are_removed_too() {
    // A previous, interrupted removal left moved subtrees at the top.
    let t = tempfile::tempdir().expect("tempdir");
    let top = t.path().join("trash");
    fs::create_dir_all(top.join(".kennel-deep-0/a/b")).expect("mkdir");
    fs::create_dir_all(top.join(".kennel-deep-1")).expect("mkdir");
    let canaries = Canaries::new(t.path());
    deep_tree(&top.join("x"), 300, 100, &canaries);
    remove_tree(&top).expect("remove");
    assert!(!top.exists());
    canaries.assert_intact();
}

#[test]
fn a_mount_point_stops_the_removal() {
    // In a thread of its own with a private mount namespace, so that the
    // mount never exists on the host and goes with the thread.
    let t = tempfile::tempdir().expect("tempdir");
    let top = t.path().join("trash");
    let mnt = top.join("a/\x1b[2Jmnt");
    fs::create_dir_all(&mnt).expect("mkdir");
    let (top2, mnt2) = (top.clone(), mnt.clone());
    let err = std::thread::spawn(move || {
        use rustix::mount::{
            mount, mount_change, unmount, MountFlags, MountPropagationFlags, UnmountFlags,
        };
        kennel_sys::ns::unshare_namespaces(rustix::thread::UnshareFlags::NEWNS).expect("unshare");
        mount_change(
            "/",
            MountPropagationFlags::PRIVATE | MountPropagationFlags::REC,
        )
        .expect("make private");
        mount("none", &mnt2, "tmpfs", MountFlags::empty(), None).expect("mount tmpfs");
        fs::write(mnt2.join("other-filesystem"), "keep").expect("write");
        let err = remove_tree(&top2).expect_err("a mount point is not crossed");
        assert!(
            mnt2.join("other-filesystem").exists(),
            "nothing was removed from the other filesystem"
        );
        unmount(&mnt2, UnmountFlags::DETACH).expect("unmount");
        err.to_string()
    })
    .join()
    .expect("thread");
    assert!(err.contains("mount point"), "{err}");
    assert!(
        err.contains("\\x1b[2Jmnt"),
        "the name is shown escaped: {err}"
    );
    assert!(!err.contains('\x1b'), "{err:?}");
    // Unmounted, the rest goes.
    remove_tree(&top).expect("remove");
    assert!(!top.exists());
}

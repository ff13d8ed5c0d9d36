//! Templates: building, importing untrusted tarballs without ever writing
//! outside the template, and VEs that share a template instead of copying it.
#![allow(clippy::expect_used)] // test code: a failed expectation is a failed test

mod common;

use std::fs;
use std::io::Write;
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};
use std::process::Command;

use common::TestRoot;

/// A raw tar stream builder that writes names exactly as given (the `tar`
/// crate's builder refuses the hostile names these tests need).
#[derive(Default)]
struct RawTar(Vec<u8>);

impl RawTar {
    fn add(
        &mut self,
        name: impl AsRef<[u8]>,
        kind: tar::EntryType,
        data: &[u8],
        link: Option<&str>,
        mode: u32,
        uid: u64,
    ) -> &mut Self {
        let mut h = tar::Header::new_gnu();
        h.set_entry_type(kind);
        h.set_size(data.len() as u64);
        h.set_mode(mode);
        h.set_uid(uid);
        h.set_gid(uid);
        h.set_mtime(1_700_000_000);
        {
            let name = name.as_ref();
            let old = h.as_old_mut();
            old.name = [0; 100];
            old.name[..name.len()].copy_from_slice(name);
            if let Some(l) = link {
                old.linkname = [0; 100];
                old.linkname[..l.len()].copy_from_slice(l.as_bytes());
            }
        }
        if kind == tar::EntryType::Char {
            h.set_device_major(8).expect("major");
            h.set_device_minor(0).expect("minor");
        }
        h.set_cksum();
        self.0.extend_from_slice(h.as_bytes());
        self.0.extend_from_slice(data);
        self.0.resize(self.0.len().div_ceil(512) * 512, 0);
        self
    }

    fn file(&mut self, name: &str, data: &[u8]) -> &mut Self {
        self.add(name, tar::EntryType::Regular, data, None, 0o644, 0)
    }

    fn finish(&mut self) -> Vec<u8> {
        let mut v = self.0.clone();
        v.extend_from_slice(&[0u8; 1024]);
        v
    }
}

fn find_named(dir: &Path, name: &str, out: &mut Vec<PathBuf>) {
    for e in fs::read_dir(dir).into_iter().flatten().flatten() {
        let p = e.path();
        if e.file_name() == name {
            out.push(p.clone());
        }
        if e.file_type().map(|t| t.is_dir()).unwrap_or(false) {
            find_named(&p, name, out);
        }
    }
}

#[test]
fn hostile_tarball_writes_nothing_outside_the_template() {
    let root = TestRoot::new("tpl-hostile");
    // A directory outside the template that the archive aims at.
    let outside = root.dir.join("outside");
    fs::create_dir_all(&outside).expect("mkdir");
    let victim = outside.join("victim.txt");
    fs::write(&victim, "original").expect("write");
    let outside_s = outside.display().to_string();
    let mut t = RawTar::default();
    t.add("./", tar::EntryType::Directory, b"", None, 0o755, 0)
        .file("/abs-escape", b"absolute")
        .file("../dotdot-escape", b"x")
        .file("a/../../dotdot-escape2", b"x")
        .add(
            "link",
            tar::EntryType::Symlink,
            b"",
            Some(&outside_s),
            0o777,
            0,
        )
        .file("link/through-symlink", b"pwned")
        .add(
            "up",
            tar::EntryType::Symlink,
            b"",
            Some("../../../../../../../.."),
            0o777,
            0,
        )
        .file("up/through-up", b"pwned")
        .add(
            "hl",
            tar::EntryType::Link,
            b"",
            Some(&victim.display().to_string()[1..]),
            0o644,
            0,
        )
        .add(
            "hl2",
            tar::EntryType::Link,
            b"",
            Some("../../outside/victim.txt"),
            0o644,
            0,
        )
        .add("dev/sda", tar::EntryType::Char, b"", None, 0o666, 0)
        .add(
            "replaced",
            tar::EntryType::Symlink,
            b"",
            Some(&victim.display().to_string()),
            0o777,
            0,
        )
        .file("replaced", b"new content")
        .add("etc", tar::EntryType::Directory, b"", None, 0o755, 0)
        .add(
            "etc/owned",
            tar::EntryType::Regular,
            b"mine",
            None,
            0o4750,
            1000,
        )
        .add(
            "sbin/init",
            tar::EntryType::Symlink,
            b"",
            Some("/bin/busybox"),
            0o777,
            0,
        );
    let tarball = root.dir.join("hostile.tar");
    fs::write(&tarball, t.finish()).expect("write tar");
    let out = root.ok(&[
        "template",
        "import",
        "hostile",
        tarball.to_str().expect("path"),
    ]);
    assert!(out.contains("Imported template hostile"), "{out}");
    let rootfs = root.dir.join("lib/templates/hostile/rootfs");
    // Nothing escaped: the outside directory is exactly as before.
    let names: Vec<_> = fs::read_dir(&outside)
        .expect("ls")
        .flatten()
        .map(|e| e.file_name())
        .collect();
    assert_eq!(names, ["victim.txt"], "files appeared outside the template");
    assert_eq!(
        fs::read_to_string(&victim).expect("read"),
        "original",
        "a symlink was written through"
    );
    for name in [
        "dotdot-escape",
        "dotdot-escape2",
        "through-up",
        "abs-escape",
    ] {
        let mut found = Vec::new();
        find_named(&root.dir, name, &mut found);
        assert!(
            found.iter().all(|p| p.starts_with(&rootfs)),
            "{name} landed outside the template: {found:?}"
        );
    }
    assert!(!root.dir.join("lib/templates/dotdot-escape").exists());
    assert!(
        rootfs.join("abs-escape").is_file(),
        "absolute names land inside"
    );
    assert!(
        rootfs.join("up").is_symlink() && rootfs.join("through-up").is_file(),
        "symlinks resolve inside the template"
    );
    // "link/through-symlink" resolves to a directory that does not exist
    // inside the template: it is refused or lands inside, never outside.
    let mut found = Vec::new();
    find_named(&root.dir, "through-symlink", &mut found);
    assert!(found.iter().all(|p| p.starts_with(&rootfs)), "{found:?}");
    // Hard links never reach a file outside.
    for hl in ["hl", "hl2"] {
        if let Ok(md) = fs::metadata(rootfs.join(hl)) {
            assert_ne!(
                md.ino(),
                fs::metadata(&victim).expect("victim").ino(),
                "{hl} links to a host file"
            );
        }
    }
    // Device nodes are skipped; /dev is emptied for every template.
    assert!(!rootfs.join("dev/sda").exists());
    assert!(rootfs.join("replaced").is_file() && !rootfs.join("replaced").is_symlink());
    // Ownership and modes are kept (set-user-ID included).
    let md = fs::metadata(rootfs.join("etc/owned")).expect("owned");
    assert_eq!((md.uid(), md.mode() & 0o7777), (1000, 0o4750));
    root.finish();
}

#[test]
fn finishing_a_hostile_template_touches_nothing_outside_it() {
    // Kennel cleans every template it makes (empties /dev, resets
    // /etc/hostname and /etc/machine-id, drops apt lists). A tarball whose
    // etc and apt lists are symlinks to host directories must not lead
    // those steps out of the tree.
    let root = TestRoot::new("tpl-finish");
    let victim = root.dir.join("victim");
    fs::create_dir_all(victim.join("etc")).expect("mkdir");
    fs::create_dir_all(victim.join("lists")).expect("mkdir");
    fs::create_dir_all(victim.join("dev")).expect("mkdir");
    fs::write(victim.join("etc/hostname"), "host-name\n").expect("write");
    fs::write(victim.join("etc/machine-id"), "0123456789abcdef\n").expect("write");
    fs::write(victim.join("lists/keep"), "x").expect("write");
    fs::write(victim.join("dev/keep"), "x").expect("write");
    let v = |p: &str| victim.join(p).display().to_string();
    let mut t = RawTar::default();
    t.add(
        "etc",
        tar::EntryType::Symlink,
        b"",
        Some(&v("etc")),
        0o777,
        0,
    )
    .add(
        "var/lib/apt/lists",
        tar::EntryType::Symlink,
        b"",
        Some(&v("lists")),
        0o777,
        0,
    )
    .add(
        "dev",
        tar::EntryType::Symlink,
        b"",
        Some(&v("dev")),
        0o777,
        0,
    )
    .add(
        "sbin/init",
        tar::EntryType::Symlink,
        b"",
        Some("/dev/zero"),
        0o777,
        0,
    )
    .file("bin/sh", b"#!");
    let tarball = root.dir.join("finish.tar");
    fs::write(&tarball, t.finish()).expect("write tar");
    root.ok(&[
        "template",
        "import",
        "finish",
        tarball.to_str().expect("path"),
    ]);
    assert_eq!(
        fs::read_to_string(victim.join("etc/hostname")).expect("read"),
        "host-name\n"
    );
    assert_eq!(
        fs::read_to_string(victim.join("etc/machine-id")).expect("read"),
        "0123456789abcdef\n"
    );
    assert!(
        victim.join("lists/keep").exists() && victim.join("dev/keep").exists(),
        "nothing outside was removed"
    );
    let rootfs = root.dir.join("lib/templates/finish/rootfs");
    assert!(
        rootfs.join("dev").is_dir() && !rootfs.join("dev").is_symlink(),
        "the template's /dev is its own"
    );
    root.finish();
}

#[test]
fn tarballs_in_three_formats_make_bootable_templates() {
    let root = TestRoot::new("tpl-import");
    root.busybox();
    let tar = root.dir.join("bb.tar");
    let st = Command::new("tar")
        .args(["--numeric-owner", "-C"])
        .arg(root.dir.join("lib/templates/busybox/rootfs"))
        .args(["-cf"])
        .arg(&tar)
        .arg(".")
        .status()
        .expect("tar");
    assert!(st.success());
    let raw = fs::read(&tar).expect("read tar");
    let gz = root.dir.join("bb.tar.gz");
    let mut e = flate2::write::GzEncoder::new(
        fs::File::create(&gz).expect("create"),
        flate2::Compression::fast(),
    );
    e.write_all(&raw).expect("gz");
    e.finish().expect("gz finish");
    let zst = root.dir.join("bb.tar.zst");
    fs::write(&zst, zstd::encode_all(&raw[..], 3).expect("zstd")).expect("write zst");
    for (name, file) in [("bb-tar", &tar), ("bb-gz", &gz), ("bb-zst", &zst)] {
        root.ok(&["template", "import", name, file.to_str().expect("path")]);
        let id = format!("ve-{name}");
        root.ok(&["create", &id, "--template", name]);
        root.ok(&["start", &id]);
        assert_eq!(root.sh(&id, "echo booted").trim(), "booted");
        root.ok(&["destroy", "--force", &id]);
    }
    let list = root.ok(&["template", "list"]);
    assert!(
        list.contains("bb-zst") && list.contains("busybox"),
        "{list}"
    );
    // Not a tar archive at all.
    let junk = root.dir.join("junk.tar");
    fs::write(&junk, vec![0x42u8; 4096]).expect("write");
    root.fails(
        &["template", "import", "junk", junk.to_str().expect("path")],
        9,
    );
    assert!(
        !root.dir.join("lib/templates/junk").exists(),
        "a failed import leaves nothing"
    );
    root.finish();
}

#[test]
fn ves_share_their_template_instead_of_copying_it() {
    let root = TestRoot::new("tpl-share");
    root.busybox();
    root.ok(&["create", "101", "--template", "busybox", "--storage", "dir"]);
    let upper = root.dir.join("lib/ve/101/fs/upper");
    assert_eq!(
        fs::read_dir(&upper).expect("upper").count(),
        0,
        "a new VE's own layer is empty: nothing was copied"
    );
    root.ok(&["start", "101"]);
    root.start_busybox("102", &[]);
    let tpl_ino = fs::metadata(root.dir.join("lib/templates/busybox/rootfs/bin/busybox"))
        .expect("template busybox")
        .ino();
    for id in ["101", "102"] {
        let ino: u64 = root
            .sh(id, "stat -c %i /bin/busybox")
            .trim()
            .parse()
            .expect("inode");
        assert_eq!(
            ino, tpl_ino,
            "VE {id} reads the template's own file (shared page cache)"
        );
    }
    // Writes stay in the VE's own layer; the template and the other VE are untouched.
    root.sh("101", "echo changed > /etc/hostname.local; rm /etc/shells");
    assert!(root
        .dir
        .join("lib/templates/busybox/rootfs/etc/shells")
        .exists());
    assert_eq!(
        root.sh("102", "cat /etc/shells | head -1").trim(),
        "/bin/sh"
    );
    root.fails(&["template", "remove", "busybox"], 9);
    root.ok(&["destroy", "--force", "101"]);
    root.ok(&["destroy", "--force", "102"]);
    root.ok(&["template", "remove", "busybox"]);
    assert!(!root.dir.join("lib/templates/busybox").exists());
    root.finish();
}

/// An import is bounded (a small compressed file cannot fill the disk)
/// and takes no file owned by an id outside the VE's 65536.
#[test]
fn imports_are_bounded_and_foreign_owners_refused() {
    let root = TestRoot::new("tpl-bounds");
    let tar = root.dir.join("t.tar");
    let tar_path = tar.to_str().expect("path");
    let run_fails = |name: &str, toml: &str, want: &str| {
        fs::write(root.dir.join("lib/kennel.toml"), toml).expect("write kennel.toml");
        let err = root.fails(&["template", "import", name, tar_path], 9);
        assert!(err.contains(want), "{err}");
        assert!(
            !root.dir.join("lib/templates").join(name).exists(),
            "a refused import leaves no template"
        );
        let staged: Vec<_> = fs::read_dir(root.dir.join("lib/templates"))
            .into_iter()
            .flatten()
            .flatten()
            .map(|e| e.file_name())
            .collect();
        assert!(staged.is_empty(), "nothing half-made is left: {staged:?}");
    };
    fs::create_dir_all(root.dir.join("lib")).expect("mkdir");
    let mut t = RawTar::default();
    t.file("etc/a", b"a")
        .file("etc/b", b"b")
        .file("big", &vec![7u8; 2 << 20]);
    fs::write(&tar, t.finish()).expect("write tar");
    run_fails("big", "import_max_size = \"1M\"\n", "import_max_size");
    run_fails("many", "import_max_entries = 2\n", "import_max_entries");
    // A 2 MiB GNU long name: the parser would hold it in memory.
    let mut t = RawTar::default();
    t.add(
        "././@LongLink",
        tar::EntryType::GNULongName,
        &vec![b'a'; 2 << 20],
        None,
        0o644,
        0,
    )
    .file("x", b"x");
    fs::write(&tar, t.finish()).expect("write tar");
    run_fails("longname", "", "headers");
    fs::remove_file(root.dir.join("lib/kennel.toml")).expect("rm kennel.toml");
    let mut t = RawTar::default();
    // The refused member's data is skipped, and the next one still read.
    t.file("etc/mine", b"ok")
        .add(
            "etc/foreign",
            tar::EntryType::Regular,
            &vec![b'x'; 2 << 20],
            None,
            0o644,
            70_000,
        )
        .file("etc/after", b"ok");
    fs::write(&tar, t.finish()).expect("write tar");
    let out = root.run(&["template", "import", "own", tar_path]);
    assert!(out.status.success(), "{out:?}");
    let said = String::from_utf8_lossy(&out.stderr);
    assert!(
        said.contains("refused 1"),
        "the refusal is reported: {said}"
    );
    let rootfs = root.dir.join("lib/templates/own/rootfs");
    assert!(rootfs.join("etc/mine").exists());
    assert!(rootfs.join("etc/after").exists());
    assert!(
        !rootfs.join("etc/foreign").exists(),
        "a file owned by uid 70000 is not taken"
    );
    root.finish();
}

/// What Kennel printed holds nothing a terminal would act on: valid UTF-8,
/// no control character but line ends, no reordering control, short lines.
fn assert_terminal_safe(what: &str, bytes: &[u8]) {
    let text =
        std::str::from_utf8(bytes).unwrap_or_else(|e| panic!("{what}: not UTF-8 ({e}): {bytes:?}"));
    for c in text.chars() {
        assert!(
            c == '\n' || !(c.is_control() || ('\u{202a}'..='\u{202e}').contains(&c)),
            "{what}: raw {c:?} reached the terminal: {text:?}"
        );
    }
    for line in text.lines() {
        assert!(
            line.chars().count() <= 1000,
            "{what}: a line of {} characters",
            line.chars().count()
        );
    }
}

/// `kennel ARGS`, with both output streams checked for terminal safety.
fn run_safe(root: &TestRoot, args: &[&str]) -> std::process::Output {
    let out = root.run(args);
    assert_terminal_safe(&format!("stdout of {args:?}"), &out.stdout);
    assert_terminal_safe(&format!("stderr of {args:?}"), &out.stderr);
    out
}

#[test]
fn hostile_member_names_never_reach_the_terminal_raw() {
    let root = TestRoot::new("tpl-names");
    let tar = root.dir.join("names.tar");
    let tar_path = tar.to_str().expect("path");
    // A name that would clear the screen, set the window title, start a new
    // line, reverse the text and hold bytes that are not UTF-8; and one of
    // 600 KB (a GNU long name).
    let evil: &[u8] = b"e\x1b[2J\x1b]0;pwned\x07\nfake: line\xe2\x80\xae\xff\x9b31m";
    let long: Vec<u8> = [b"long\x1b[31m".as_slice(), &vec![b'x'; 600_000]].concat();
    let long_link = [long.as_slice(), b"/../escape"].concat();
    // Refused members: `..`, not UTF-8 (each named in the refusal report).
    let mut t = RawTar::default();
    t.file("bin/sh", b"#!")
        .add(
            [evil, b"/../x"].concat(),
            tar::EntryType::Regular,
            b"x",
            None,
            0o644,
            0,
        )
        .add(evil, tar::EntryType::Regular, b"x", None, 0o644, 0)
        .add(
            "././@LongLink",
            tar::EntryType::GNULongName,
            &[long_link.as_slice(), b"\0"].concat(),
            None,
            0o644,
            0,
        )
        .file("truncated", b"x")
        .file(
            "etc/os-release",
            b"NAME=x\nPRETTY_NAME=\"Evil \x1b]0;title\x07\x1b[2J\xe2\x80\xae OS\"\n",
        );
    fs::write(&tar, t.finish()).expect("write tar");
    let out = run_safe(&root, &["template", "import", "names", tar_path]);
    assert!(out.status.success(), "{out:?}");
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("refused 3 unsafe entries")
            && err.contains("'e\\x1b[2J\\x1b]0;pwned\\x07\\nfake"),
        "the refusal names the member, escaped: {err}"
    );
    // The OS name comes from the tarball: `template list` shows it escaped.
    let list = run_safe(&root, &["template", "list"]);
    let list = String::from_utf8_lossy(&list.stdout);
    assert!(
        list.contains("Evil \\x1b]0;title\\x07\\x1b[2J\\u{202e} OS"),
        "{list}"
    );
    let json = run_safe(&root, &["template", "list", "--json"]);
    let v: serde_json::Value = serde_json::from_slice(&json.stdout).expect("json");
    let os = v[0]["os"].as_str().expect("os");
    assert!(!os.contains('\x1b') && os.contains("Evil"), "{os:?}");

    // A member that makes the import fail: the error names it escaped, on
    // one line, however long the name.
    let evil_utf8: &[u8] = b"e\x1b[2J\x1b]0;pwned\x07\nfake: line\xe2\x80\xae";
    for name in [evil_utf8.to_vec(), long.clone()] {
        let mut t = RawTar::default();
        let dir = [name.as_slice(), b"/"].concat();
        let inside = [name.as_slice(), b"/inside"].concat();
        for (member, kind) in [
            (&dir, tar::EntryType::Directory),
            (&inside, tar::EntryType::Regular),
            (&name, tar::EntryType::Regular),
        ] {
            if member.len() > 99 {
                t.add(
                    "././@LongLink",
                    tar::EntryType::GNULongName,
                    &[member.as_slice(), b"\0"].concat(),
                    None,
                    0o644,
                    0,
                );
                t.add("placeholder", kind, b"x", None, 0o755, 0);
            } else {
                t.add(member, kind, b"x", None, 0o755, 0);
            }
        }
        fs::write(&tar, t.finish()).expect("write tar");
        let out = run_safe(&root, &["template", "import", "fails", tar_path]);
        assert_eq!(out.status.code(), Some(9), "{out:?}");
        let err = String::from_utf8_lossy(&out.stderr);
        assert!(
            err.lines().filter(|l| l.starts_with("kennel: ")).count() == 1 && err.contains("\\x1b"),
            "one escaped line: {err}"
        );
        assert!(!root.dir.join("lib/templates/fails").exists());
    }
    root.finish();
}

/// A tarball whose tree is deep and points at the host: 1,000 levels, a
/// hostile name, symlinks to the host's `file` and `dir`, a FIFO, an
/// unreadable directory.
fn deep_hostile_tar(file: &Path, dir: &Path) -> RawTar {
    let deep = format!("{}bottom", "d/".repeat(1000));
    let mut t = RawTar::default();
    t.add(
        "././@LongLink",
        tar::EntryType::GNULongName,
        format!("{deep}\0").as_bytes(),
        None,
        0o644,
        0,
    )
    .file("placeholder", b"bottom")
    .file("e\x1b[2J\x1b]0;t\x07", b"x")
    .add(
        "to-host-file",
        tar::EntryType::Symlink,
        b"",
        Some(&file.display().to_string()),
        0o777,
        0,
    )
    .add(
        "to-host-dir",
        tar::EntryType::Symlink,
        b"",
        Some(&dir.display().to_string()),
        0o777,
        0,
    )
    .add("fifo", tar::EntryType::Fifo, b"", None, 0o600, 0)
    .add("locked", tar::EntryType::Directory, b"", None, 0o000, 0)
    .add(
        "locked/secret",
        tar::EntryType::Regular,
        b"s",
        None,
        0o000,
        0,
    );
    t
}

#[test]
fn removing_a_template_or_a_failed_import_follows_nothing_out() {
    let root = TestRoot::new("tpl-remove");
    let canary = root.dir.join("canary.txt");
    let canary_dir = root.dir.join("canary-dir");
    fs::write(&canary, "keep me").expect("write canary");
    fs::create_dir(&canary_dir).expect("mkdir canary");
    fs::write(canary_dir.join("inside"), "keep me too").expect("write canary");
    let intact = || {
        assert_eq!(fs::read_to_string(&canary).expect("canary"), "keep me");
        assert_eq!(
            fs::read_to_string(canary_dir.join("inside")).expect("canary"),
            "keep me too"
        );
        assert_eq!(fs::read_dir(&canary_dir).expect("ls").count(), 1);
    };
    let tar = root.dir.join("deep.tar");
    let tar_path = tar.to_str().expect("path");
    fs::write(&tar, deep_hostile_tar(&canary, &canary_dir).finish()).expect("write tar");
    root.ok(&["template", "import", "deep", tar_path]);
    let rootfs = root.dir.join("lib/templates/deep/rootfs");
    assert!(rootfs.join("to-host-dir").is_symlink() && rootfs.join("fifo").exists());
    root.ok(&["template", "remove", "deep"]);
    assert!(!root.dir.join("lib/templates/deep").exists());
    intact();
    // The same tree, then a member that fails the import: what was
    // unpacked goes the same way.
    let mut t = deep_hostile_tar(&canary, &canary_dir);
    t.add("x", tar::EntryType::Directory, b"", None, 0o755, 0)
        .file("x/inside", b"x")
        .file("x", b"a file where a full directory is");
    fs::write(&tar, t.finish()).expect("write tar");
    root.fails(&["template", "import", "deep", tar_path], 9);
    let left: Vec<_> = fs::read_dir(root.dir.join("lib/templates"))
        .expect("ls")
        .flatten()
        .map(|e| e.file_name())
        .collect();
    assert!(left.is_empty(), "a failed import leaves nothing: {left:?}");
    intact();
    root.finish();
}

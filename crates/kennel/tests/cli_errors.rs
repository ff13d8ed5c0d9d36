//! Bad input and wrong states: one clear line, the documented exit status,
//! and nothing changed on the host.
#![allow(clippy::expect_used)] // test code: a failed expectation is a failed test

mod common;

use std::fs;
use std::process::{Command, Stdio};

use common::TestRoot;

/// Everything below the root except lock files and the remembered cgroup
/// layout, which are harmless and kept on purpose.
fn snapshot(root: &TestRoot) -> Vec<String> {
    let mut out = Vec::new();
    let mut stack = vec![root.dir.clone()];
    while let Some(d) = stack.pop() {
        for e in fs::read_dir(&d).into_iter().flatten().flatten() {
            let p = e.path();
            if p.components()
                .any(|c| c.as_os_str() == "locks" || c.as_os_str() == "cgroup-hierarchies")
            {
                continue;
            }
            out.push(
                p.strip_prefix(&root.dir)
                    .expect("below root")
                    .display()
                    .to_string(),
            );
            if e.file_type().expect("type").is_dir() {
                stack.push(p);
            }
        }
    }
    out.sort();
    out
}

fn cgroups_of(root: &TestRoot, id: &str) -> Vec<std::path::PathBuf> {
    root.cgroup_dirs(id)
        .into_iter()
        .filter(|d| d.exists())
        .collect()
}

#[test]
fn bad_input_is_refused_and_changes_nothing() {
    let root = TestRoot::new("errors");
    root.busybox();
    root.ok(&["create", "101", "--template", "busybox"]);
    let before = snapshot(&root);
    let cases: &[(&[&str], i32, &str)] = &[
        (
            &["create", "Bad_Id", "--template", "busybox"],
            2,
            "invalid VE id",
        ),
        (&["create", "-x", "--template", "busybox"], 2, ""),
        (
            &["create", "102", "--template", "nope"],
            9,
            "template 'nope' does not exist",
        ),
        (
            &["create", "102", "--template", "busybox", "--memory", "12Q"],
            2,
            "invalid size '12Q'",
        ),
        (
            &["create", "102", "--template", "busybox", "--memory", "1M"],
            2,
            "too small",
        ),
        (
            &["create", "102", "--template", "busybox", "--cpus", "0"],
            2,
            "CPU count",
        ),
        (
            &[
                "create",
                "102",
                "--template",
                "busybox",
                "--numproc",
                "lots",
            ],
            2,
            "--numproc",
        ),
        (
            &[
                "create",
                "102",
                "--template",
                "busybox",
                "--hostname",
                "bad_host",
            ],
            2,
            "invalid hostname",
        ),
        (
            &["create", "101", "--template", "busybox"],
            5,
            "already exists",
        ),
        (&["start", "999"], 4, "VE 999 does not exist"),
        (&["stop", "101"], 7, "is not running"),
        (&["exec", "101", "--", "true"], 7, "is not running"),
        (&["console", "101"], 7, "is not running"),
        (&["list", "-o", "id,bogus"], 2, "unknown field 'bogus'"),
        (
            &["template", "create", "x", "--from", "windows"],
            9,
            "unknown template source",
        ),
        (
            &["template", "import", "x", "/nonexistent.tar"],
            2,
            "is not a file",
        ),
        (&["template", "remove", "busybox"], 9, "used by VE 101"),
        (&["destroy", "999"], 4, "does not exist"),
        (
            &["set", "101", "--onboot", "maybe"],
            2,
            "invalid --onboot 'maybe'",
        ),
        (
            &["set", "101", "--boot-order=-1"],
            2,
            "invalid --boot-order '-1'",
        ),
        (&["set", "101", "--boot-order", "first"], 2, "--boot-order"),
        (&["boot", "--parallel", "0"], 2, "--parallel"),
        (&["shutdown", "--timeout", "soon"], 2, "--timeout"),
    ];
    for (args, code, msg) in cases {
        let err = root.fails(args, *code);
        assert!(
            err.contains(msg),
            "kennel {args:?}: message {err:?} should contain {msg:?}"
        );
        assert_eq!(
            snapshot(&root),
            before,
            "kennel {args:?} changed the state root"
        );
        assert!(
            cgroups_of(&root, "102").is_empty(),
            "kennel {args:?} left cgroups"
        );
    }
    root.finish();
}

#[test]
fn wrong_states_are_refused() {
    let root = TestRoot::new("states");
    root.start_busybox("101", &[]);
    let err = root.fails(&["start", "101"], 6);
    assert!(err.contains("already running"), "{err}");
    let err = root.fails(&["destroy", "101"], 6);
    assert!(err.contains("is running"), "{err}");
    assert!(
        root.dir.join("lib/ve/101/ve.conf").exists(),
        "a refused destroy keeps the VE"
    );
    root.ok(&["stop", "101", "--timeout", "10"]);
    root.fails(&["stop", "101"], 7);
    root.fails(&["kill", "101"], 7);
    root.finish();
}

#[test]
fn broken_or_copied_configurations_are_caught() {
    let root = TestRoot::new("conf");
    root.busybox();
    root.ok(&["create", "101", "--template", "busybox"]);
    root.ok(&["create", "102", "--template", "busybox"]);
    // A VE directory copied by hand keeps the other VE's id and id range.
    let copy = std::process::Command::new("cp")
        .arg("-a")
        .arg(root.dir.join("lib/ve/101"))
        .arg(root.dir.join("lib/ve/103"))
        .status()
        .expect("cp");
    assert!(copy.success());
    let err = root.fails(&["start", "103"], 2);
    assert!(err.contains("belongs to VE 103"), "{err}");
    fs::remove_dir_all(root.dir.join("lib/ve/103")).expect("rm");
    // An id range that would make the VE's root the host's root.
    let conf = root.dir.join("lib/ve/102/ve.conf");
    let text = fs::read_to_string(&conf).expect("read");
    let base = root.config("102")["idmap"]["uid_base"]
        .as_u64()
        .expect("base");
    fs::write(
        &conf,
        text.replace(&format!("uid_base = {base}"), "uid_base = 0"),
    )
    .expect("write");
    let err = root.fails(&["start", "102"], 2);
    assert!(err.contains("invalid [idmap]"), "{err}");
    // While a configuration is unreadable, its id range stays its own:
    // the claims index holds it (building the index from unreadable
    // configurations is refused instead: tests/scale.rs).
    root.ok(&["create", "104", "--template", "busybox"]);
    let b104 = root.config("104")["idmap"]["uid_base"]
        .as_u64()
        .expect("base");
    assert_ne!(b104, base, "VE 102's range is never handed out");
    root.ok(&["destroy", "104"]);
    // One broken VE does not hide the others.
    let list = root.run(&["list", "--all"]);
    assert!(list.status.success());
    assert!(String::from_utf8_lossy(&list.stdout).contains("101"));
    assert!(String::from_utf8_lossy(&list.stderr).contains("VE 102 left out"));
    // Nor is a template removed that the broken VE might use.
    root.ok(&["destroy", "101"]);
    let err = root.fails(&["template", "remove", "busybox"], 2);
    assert!(err.contains("cannot tell whether VE 102"), "{err}");
    assert!(root.dir.join("lib/templates/busybox").exists());
    fs::write(&conf, text).expect("restore");
    root.finish();
}

#[test]
fn bad_root_is_refused() {
    let out = Command::new(common::KENNEL)
        .args(["--root", "relative/dir", "list"])
        .output()
        .expect("run");
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("invalid state root"));
}

#[test]
fn non_root_is_refused() {
    let dir = common::test_dir().join(format!("nonroot-{}", std::process::id()));
    let out = Command::new("setpriv")
        .args([
            "--reuid=65534",
            "--regid=65534",
            "--clear-groups",
            common::KENNEL,
            "--root",
        ])
        .arg(&dir)
        .args(["list"])
        .stdin(Stdio::null())
        .output()
        .expect("run setpriv");
    assert_eq!(
        out.status.code(),
        Some(3),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(String::from_utf8_lossy(&out.stderr).contains("must run as root"));
    assert!(!dir.exists(), "a refused command creates nothing");
}

/// The state directories are root's alone, whatever happened to them
/// between two commands, and a state path that is not a directory is
/// refused rather than followed.
#[test]
fn state_directories_stay_private() {
    use std::os::unix::fs::{MetadataExt, PermissionsExt};
    let root = TestRoot::new("cli-private");
    root.ok(&["list"]);
    let lib = root.dir.join("lib");
    let run = root.dir.join("run");
    for d in [&lib, &run] {
        fs::set_permissions(d, fs::Permissions::from_mode(0o755)).expect("chmod");
        std::os::unix::fs::chown(d, Some(1000), Some(1000)).expect("chown");
    }
    root.ok(&["list"]);
    for d in [&lib, &run] {
        let md = fs::metadata(d).expect("stat");
        assert_eq!(
            md.mode() & 0o7777,
            0o700,
            "{} is root-only again",
            d.display()
        );
        assert_eq!((md.uid(), md.gid()), (0, 0), "{}", d.display());
    }
    fs::remove_dir_all(&run).expect("rm run");
    std::os::unix::fs::symlink("/tmp", &run).expect("symlink");
    let err = root.fails(&["list"], 2);
    assert!(err.contains("not a directory"), "{err}");
    fs::remove_file(&run).expect("rm symlink");
    root.finish();
}

/// `kennel ... | head -1`: a reader that goes away is not an error, and
/// never a panic.
#[test]
fn a_closed_standard_output_is_not_an_error() {
    let root = TestRoot::new("cli-pipe");
    root.busybox();
    for args in [
        &["template", "list"][..],
        &["check"],
        &["list", "--all"],
        &["completions", "bash"],
    ] {
        let (reader, writer) = rustix::pipe::pipe().expect("pipe");
        drop(reader);
        let out = root
            .cmd()
            .args(args)
            .stdout(Stdio::from(writer))
            .output()
            .expect("run");
        assert_eq!(out.status.code(), Some(0), "kennel {args:?}: {out:?}");
        assert!(out.stderr.is_empty(), "kennel {args:?}: {out:?}");
    }
    root.finish();
}

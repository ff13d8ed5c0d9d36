//! Shell completions and man pages, made from kennel's own grammar: they
//! know every command and option, hide the internal ones, and need neither
//! root nor a state root (packaging makes them).
#![allow(clippy::expect_used)] // test code: a failed expectation is a failed test

mod common;

use std::fs;
use std::process::{Command, Output, Stdio};

fn kennel(args: &[&str]) -> Output {
    Command::new(common::KENNEL)
        .args(args)
        .stdin(Stdio::null())
        .env_remove("KENNEL_ROOT")
        .output()
        .expect("run kennel")
}

fn stdout_of(args: &[&str]) -> String {
    let out = kennel(args);
    assert!(out.status.success(), "kennel {args:?}: {out:?}");
    String::from_utf8_lossy(&out.stdout).into_owned()
}

#[test]
fn completions_know_the_commands() {
    let bash = stdout_of(&["completions", "bash"]);
    assert!(bash.contains("complete -F _kennel"), "a bash completion");
    // The top level's words: every command, none of the internal ones.
    let top = bash
        .lines()
        .find(|l| l.trim_start().starts_with("opts=") && l.contains(" template "))
        .expect("the top level's words");
    for cmd in [
        "start",
        "stop",
        "snapshot",
        "boot",
        "shutdown",
        "completions",
        "man",
    ] {
        assert!(top.split_whitespace().any(|w| w == cmd), "{cmd}: {top}");
    }
    assert!(!bash.contains("__ve-exited") && !bash.contains("__batch-worker"));
    // Options of commands, and subcommands of subcommands.
    assert!(bash.contains("--onboot") && bash.contains("--boot-order"));
    assert!(bash.contains("rollback"));
    for shell in ["zsh", "fish", "elvish", "powershell"] {
        let s = stdout_of(&["completions", shell]);
        assert!(s.contains("snapshot") && s.contains("boot"), "{shell}");
    }
    // No root needed: packaging runs it.
    let out = Command::new("setpriv")
        .args(["--reuid=65534", "--regid=65534", "--clear-groups"])
        .args([common::KENNEL, "completions", "bash"])
        .stdin(Stdio::null())
        .output()
        .expect("run setpriv");
    assert!(out.status.success(), "{out:?}");
    assert_eq!(String::from_utf8_lossy(&out.stdout), bash);
    // A shell it does not know: one line, exit 2.
    let out = kennel(&["completions", "tcsh"]);
    assert_eq!(out.status.code(), Some(2), "{out:?}");
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(err.lines().count(), 1, "{err}");
    assert!(err.starts_with("kennel: ") && err.contains("tcsh"), "{err}");
}

#[test]
fn man_pages_for_every_command() {
    let dir = common::test_dir().join(format!("man-{}", std::process::id()));
    let _ = fs::remove_dir_all(&dir);
    let pages = dir.join("share/man1");
    let out = stdout_of(&["man", pages.to_str().expect("utf-8")]);
    assert!(
        out.starts_with("Wrote ") && out.contains(" man pages to "),
        "{out}"
    );
    let names: Vec<String> = fs::read_dir(&pages)
        .expect("pages")
        .map(|e| e.expect("entry").file_name().to_string_lossy().into_owned())
        .collect();
    for page in [
        "kennel.1",
        "kennel-start.1",
        "kennel-snapshot.1",
        "kennel-snapshot-create.1",
        "kennel-boot.1",
        "kennel-shutdown.1",
    ] {
        assert!(names.iter().any(|n| n == page), "{page} in {names:?}");
    }
    assert!(
        names
            .iter()
            .all(|n| !n.contains("__") && !n.starts_with('.')),
        "no internal command, no temporary file: {names:?}"
    );
    let start = fs::read_to_string(pages.join("kennel-start.1")).expect("kennel-start.1");
    assert!(start.starts_with(".ie \\n(.g .ds Aq"), "roff: {start:.40}");
    assert!(start.contains("kennel start") && start.contains("parallel"));
    let set = fs::read_to_string(pages.join("kennel-set.1")).expect("kennel-set.1");
    assert!(set.contains("onboot"), "set's page has --onboot");
    // Again over the same pages: they are replaced.
    stdout_of(&["-q", "man", pages.to_str().expect("utf-8")]);
    // A file where the directory should be: one line, exit 2.
    let file = dir.join("file");
    fs::write(&file, "x").expect("write");
    let out = kennel(&["man", file.to_str().expect("utf-8")]);
    assert_eq!(out.status.code(), Some(2), "{out:?}");
    assert!(String::from_utf8_lossy(&out.stderr).contains("is not a directory"));
    fs::remove_dir_all(&dir).expect("clean up");
}

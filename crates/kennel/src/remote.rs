//! `kennel --remote URL COMMAND...` is run by `kennel-remote` beside
//! this program (crates/kennel-remote), the way git hands `https://`
//! remotes to `git-remote-https`: this binary stays free of an HTTP and
//! TLS stack that every local command would load.

use std::ffi::OsString;
use std::os::unix::ffi::OsStrExt;
use std::os::unix::process::CommandExt;
use std::process::{Command, ExitCode};

/// Whether `args` (without the program) ask for a remote host: a
/// `--remote` before any `--` (after which the words are a command's
/// to run in a VE).
fn wants_remote(args: &[OsString]) -> bool {
    args.iter()
        .take_while(|a| a.as_bytes() != b"--")
        .any(|a| a.as_bytes() == b"--remote" || a.as_bytes().starts_with(b"--remote="))
}

/// Runs `kennel-remote` in this process's place when `args` ask for a
/// remote host; `None` otherwise.
pub fn hand_over(args: &[OsString]) -> Option<ExitCode> {
    let rest = args.get(1..).unwrap_or_default();
    if !wants_remote(rest) {
        return None;
    }
    let exe = match std::env::current_exe() {
        Ok(p) => p.with_file_name("kennel-remote"),
        Err(e) => {
            eprintln!("kennel: cannot find the kennel executable: {e}");
            return Some(ExitCode::from(1));
        }
    };
    let err = Command::new(&exe).args(rest).exec();
    eprintln!(
        "kennel: --remote needs {}: {err} (install kennel-remote beside kennel)",
        exe.display()
    );
    Some(ExitCode::from(1))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn args(a: &[&str]) -> Vec<OsString> {
        a.iter().map(OsString::from).collect()
    }

    #[test]
    fn only_a_remote_option_of_kennels_own_counts() {
        assert!(wants_remote(&args(&["--remote", "https://h", "list"])));
        assert!(wants_remote(&args(&["list", "--remote=https://h"])));
        assert!(!wants_remote(&args(&["list"])));
        assert!(!wants_remote(&args(&[
            "exec", "7", "--", "tool", "--remote", "x"
        ])));
        assert!(!wants_remote(&args(&["exec", "7", "--", "--remote"])));
    }
}

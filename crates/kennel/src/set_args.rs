//! The options of `create` and `set` that are not the network's: the pty
//! limit, features, a user's password, and the boot settings.

use std::io::{BufRead, IsTerminal, Read, Write};

use anyhow::Result;
use kennel_runtime::features::Features;
use kennel_ve::lifecycle::{SetRequest, UserPassword};
use kennel_ve::VeError;

use crate::cli::SetArgs;

pub fn numpty(s: &str) -> Result<u32, VeError> {
    s.trim().parse::<u32>().map_err(|_| {
        VeError::BadInput(format!(
            "invalid --numpty '{s}': give a whole number of ptys such as 64"
        ))
    })
}

pub fn features(s: &str) -> Result<Features, VeError> {
    Features::parse_list(s).map_err(|e| VeError::BadInput(format!("invalid --features: {e}")))
}

/// `--onboot yes|no`.
pub fn onboot(s: &str) -> Result<bool, VeError> {
    match s {
        "yes" => Ok(true),
        "no" => Ok(false),
        _ => Err(VeError::BadInput(format!(
            "invalid --onboot '{}': use yes (start the VE at the host's boot) or no",
            s.escape_debug()
        ))),
    }
}

/// `--boot-order N|none`: `None` removes the order.
pub fn boot_order(s: &str) -> Result<Option<u32>, VeError> {
    if s == "none" {
        return Ok(None);
    }
    s.parse::<u32>().map(Some).map_err(|_| {
        VeError::BadInput(format!(
            "invalid --boot-order '{}': give a whole number from 0 to {} (higher starts earlier), or none",
            s.escape_debug(),
            u32::MAX
        ))
    })
}

/// Adds the resource options, `--features`, `--userpasswd` and the boot
/// settings to `req`.
pub fn add_to_request(a: &SetArgs, req: &mut SetRequest) -> Result<()> {
    req.resources = crate::resource_args::resources(&a.resources)?;
    req.features = a.features.as_deref().map(features).transpose()?;
    req.disk = a
        .disk
        .disk
        .as_deref()
        .map(|s| crate::resource_args::size_with_unit(s, "--disk"))
        .transpose()?;
    req.disk_inodes = a
        .disk
        .disk_inodes
        .as_deref()
        .map(crate::storage_cmds::inode_count)
        .transpose()?;
    req.onboot = a.onboot.as_deref().map(onboot).transpose()?;
    req.boot_order = a.boot_order.as_deref().map(boot_order).transpose()?;
    if let Some(spec) = &a.userpasswd {
        req.userpasswd = Some(user_password(spec)?);
    }
    Ok(())
}

/// `USER:PASSWORD`, or `USER` with the password on standard input (asked
/// for, without echo, on a terminal).
fn user_password(spec: &str) -> Result<UserPassword> {
    let (user, password) = match spec.split_once(':') {
        Some((u, p)) => (u.to_string(), p.to_string()),
        None => (spec.to_string(), read_password(spec)?),
    };
    Ok(UserPassword::new(&user, &password)?)
}

/// The longest password read from standard input.
const PASSWORD_MAX: usize = 4096;

fn read_password(user: &str) -> Result<String> {
    let stdin = std::io::stdin();
    if !stdin.is_terminal() {
        let mut line = String::new();
        stdin
            .lock()
            .take(PASSWORD_MAX as u64 + 1)
            .read_line(&mut line)
            .map_err(|e| {
                VeError::BadInput(format!("cannot read the password from standard input: {e}"))
            })?;
        if line.len() > PASSWORD_MAX {
            return Err(too_long().into());
        }
        return Ok(line.trim_end_matches(['\n', '\r']).to_string());
    }
    let mut err = std::io::stderr();
    let _ = write!(err, "Password for {user}: ");
    let _ = err.flush();
    let typed = {
        let _quiet = kennel_runtime::pty::TerminalMode::password(rustix::stdio::stdin());
        type_password(rustix::stdio::stdin())
    };
    eprintln!();
    Ok(typed?)
}

fn too_long() -> VeError {
    VeError::BadInput(format!(
        "the password is longer than {PASSWORD_MAX} bytes: give a shorter one"
    ))
}

/// Reads a password key by key from a terminal in
/// [`TerminalMode::password`](kennel_runtime::pty::TerminalMode::password).
fn type_password(tty: std::os::fd::BorrowedFd<'_>) -> Result<String, VeError> {
    let mut line = Vec::new();
    let mut key = [0u8; 1];
    loop {
        let n = match rustix::io::read(tty, &mut key) {
            Ok(n) => n,
            Err(rustix::io::Errno::INTR) => continue,
            Err(e) => {
                return Err(VeError::BadInput(format!(
                    "cannot read the password from the terminal: {e}"
                )))
            }
        };
        let step = if n == 0 {
            Typing::Cancelled
        } else {
            password_key(&mut line, key[0])
        };
        match step {
            Typing::More if line.len() > PASSWORD_MAX => return Err(too_long()),
            Typing::More => {}
            Typing::Done => {
                return String::from_utf8(line)
                    .map_err(|_| VeError::BadInput("the password typed is not UTF-8 text".into()))
            }
            Typing::Cancelled => {
                return Err(VeError::BadInput(
                    "no password given (cancelled): nothing was changed".into(),
                ))
            }
        }
    }
}

/// Where typing a password stands after a key.
#[derive(Debug, PartialEq, Eq)]
enum Typing {
    More,
    Done,
    Cancelled,
}

/// What `key` does to the password typed so far: Enter ends it, Ctrl-C
/// (or Ctrl-D on an empty line) cancels, Backspace takes back the last
/// character, Ctrl-U all of them.
fn password_key(line: &mut Vec<u8>, key: u8) -> Typing {
    match key {
        b'\r' | b'\n' => return Typing::Done,
        0x03 => return Typing::Cancelled,
        0x04 if line.is_empty() => return Typing::Cancelled,
        0x04 => {}
        0x7f | 0x08 => {
            // A whole UTF-8 character: its continuation bytes, then its
            // first byte.
            while line.last().is_some_and(|b| b & 0xc0 == 0x80) {
                line.pop();
            }
            line.pop();
        }
        0x15 => line.clear(),
        k => line.push(k),
    }
    Typing::More
}

/// Overwrites the password of `--userpasswd USER:PASSWORD` in this
/// process's own command line, which `ps` shows to every user of the host.
/// Call once the arguments have been copied. What `ps` saw in the first
/// milliseconds cannot be taken back: the standard-input form avoids even
/// that.
pub fn hide_password_in_cmdline(args: &[std::ffi::OsString]) {
    let spans = password_spans(args);
    if !spans.is_empty() {
        kennel_runtime::procfs::overwrite_own_cmdline(&spans, b'x');
    }
}

/// Where, in `/proc/self/cmdline` (the arguments joined by NUL bytes),
/// the passwords of `--userpasswd USER:PASSWORD` and
/// `--userpasswd=USER:PASSWORD` stand: (byte offset, length).
fn password_spans(args: &[std::ffi::OsString]) -> Vec<(usize, usize)> {
    use std::os::unix::ffi::OsStrExt;
    let mut spans = Vec::new();
    let mut offset = 0usize;
    let mut after_flag = false;
    for a in args {
        let b = a.as_bytes();
        let value = if after_flag {
            Some((0, b))
        } else {
            b.strip_prefix(b"--userpasswd=")
                .map(|v| (b"--userpasswd=".len(), v))
        };
        if let Some((start, v)) = value {
            if let Some(colon) = v.iter().position(|&c| c == b':') {
                spans.push((offset + start + colon + 1, v.len() - colon - 1));
            }
        }
        after_flag = b == b"--userpasswd";
        offset += b.len() + 1;
    }
    spans
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn passwords_are_found_in_the_command_line() {
        let args: Vec<std::ffi::OsString> = [
            "kennel",
            "set",
            "101",
            "--userpasswd",
            "root:s3cret",
            "--userpasswd=bob:pw",
            "--userpasswd",
            "alice",
        ]
        .iter()
        .map(Into::into)
        .collect();
        let joined = args
            .iter()
            .map(|a| a.to_str().unwrap_or_default())
            .collect::<Vec<_>>()
            .join("\0");
        let shown: Vec<&str> = password_spans(&args)
            .iter()
            .map(|&(at, n)| &joined[at..at + n])
            .collect();
        assert_eq!(shown, ["s3cret", "pw"]);
    }

    #[test]
    fn keys_edit_a_password() {
        let typed = |keys: &[u8]| {
            let mut line = Vec::new();
            let mut last = Typing::More;
            for &k in keys {
                last = password_key(&mut line, k);
                if last != Typing::More {
                    break;
                }
            }
            (String::from_utf8_lossy(&line).into_owned(), last)
        };
        assert_eq!(typed(b"abc\r"), ("abc".into(), Typing::Done));
        assert_eq!(typed(b"abx\x7fc\n"), ("abc".into(), Typing::Done));
        assert_eq!(
            typed("aé\x7f\x7fb\r".as_bytes()),
            ("b".into(), Typing::Done)
        );
        assert_eq!(typed(b"wrong\x15ok\r"), ("ok".into(), Typing::Done));
        assert_eq!(typed(b"ab\x03"), ("ab".into(), Typing::Cancelled));
        assert_eq!(typed(b"\x04"), ("".into(), Typing::Cancelled));
        assert_eq!(typed(b"a\x04b\r"), ("ab".into(), Typing::Done));
    }

    #[test]
    fn numbers_and_features_are_checked() {
        assert_eq!(numpty(" 64 ").ok(), Some(64));
        assert!(numpty("lots").is_err());
        assert!(features("tun,fuse").is_ok());
        let e = features("tun,floppy").expect_err("floppy");
        assert!(e.to_string().contains("'floppy'"), "{e}");
    }

    #[test]
    fn boot_settings_are_checked() {
        assert_eq!(onboot("yes").ok(), Some(true));
        assert_eq!(onboot("no").ok(), Some(false));
        for bad in ["", "Yes", "true", "1", "maybe"] {
            let e = onboot(bad).expect_err(bad);
            assert!(e.to_string().contains("use yes"), "{e}");
        }
        assert_eq!(boot_order("0").ok(), Some(Some(0)));
        assert_eq!(boot_order("4294967295").ok(), Some(Some(u32::MAX)));
        assert_eq!(boot_order("none").ok(), Some(None));
        for bad in ["", "-1", "4294967296", "1.5", " 3", "high"] {
            let e = boot_order(bad).expect_err(bad);
            assert!(e.to_string().contains("whole number"), "{e}");
        }
    }

    #[test]
    fn user_and_password_in_one_argument() {
        let up = user_password("root:a:b").expect("root");
        assert_eq!((up.user.as_str(), up.password.as_str()), ("root", "a:b"));
        assert!(user_password("ro ot:x").is_err());
        assert!(user_password("root:").is_err());
    }
}

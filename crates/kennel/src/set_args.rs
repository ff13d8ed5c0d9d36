//! The options of `create` and `set` that are not the network's: the pty
//! limit, features, and a user's password.

use std::io::{BufRead, IsTerminal, Write};

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

/// Adds `--numpty`, `--features` and `--userpasswd` to `req`.
pub fn add_to_request(a: &SetArgs, req: &mut SetRequest) -> Result<()> {
    req.numpty = a.numpty.as_deref().map(numpty).transpose()?;
    req.features = a.features.as_deref().map(features).transpose()?;
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

fn read_password(user: &str) -> Result<String> {
    let stdin = std::io::stdin();
    let echo_off = if stdin.is_terminal() {
        let mut err = std::io::stderr();
        let _ = write!(err, "Password for {user}: ");
        let _ = err.flush();
        kennel_runtime::pty::EchoOff::enable(rustix::stdio::stdin())
    } else {
        None
    };
    let mut line = String::new();
    let read = stdin.lock().read_line(&mut line);
    if echo_off.is_some() {
        eprintln!();
    }
    drop(echo_off);
    read.map_err(|e| {
        VeError::BadInput(format!("cannot read the password from standard input: {e}"))
    })?;
    Ok(line.trim_end_matches(['\n', '\r']).to_string())
}

/// Overwrites the password of `--userpasswd USER:PASSWORD` in this
/// process's own command line, which `ps` shows to every user of the host.
/// Call once the arguments have been copied. What `ps` saw in the first
/// milliseconds cannot be taken back: the standard-input form avoids even
/// that.
pub fn hide_password_in_cmdline(args: &[std::ffi::OsString]) {
    use std::os::unix::ffi::OsStrExt;
    // Byte offsets, in /proc/self/cmdline, of every password to hide.
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
    if !spans.is_empty() {
        kennel_runtime::procfs::overwrite_own_cmdline(&spans, b'x');
    }
}

//! The audit log: one JSON line per change asked of the service (who,
//! what, on which VE, when, from where, and how it ended), appended to
//! `<lib>/api/audit.log` (root's alone). Reads are not logged.

use std::fs::{File, OpenOptions};
use std::io::Write;
use std::os::unix::fs::OpenOptionsExt;
use std::path::{Path, PathBuf};
use std::sync::Mutex;
use std::time::SystemTime;

use serde_json::json;

use crate::access::{Caller, Peer};
use crate::error::ApiError;

#[derive(Debug)]
pub struct Audit {
    path: PathBuf,
    file: Mutex<Option<File>>,
}

impl Audit {
    pub fn new(lib: &Path) -> Self {
        Audit {
            path: lib.join("api").join("audit.log"),
            file: Mutex::new(None),
        }
    }

    /// Records that `who` asked for `action` (on VE `ve`), and how it
    /// ended. A log that cannot be written is said in the service's log;
    /// the change itself is done.
    pub fn record<T>(
        &self,
        caller: &Caller,
        action: &str,
        target: Option<&str>,
        result: &Result<T, ApiError>,
    ) {
        let (who, peer) = (&caller.0, caller.1);
        let (outcome, code, message) = match result {
            Ok(_) => ("ok", None, None),
            Err(e) => ("error", Some(e.code), Some(e.message.as_str())),
        };
        let line = json!({
            "time": humantime::format_rfc3339_millis(SystemTime::now()).to_string(),
            "who": who.who(),
            "token": who.token,
            "tenant": who.tenant,
            "from": match peer {
                Peer::Tcp(ip) => ip.to_string(),
                Peer::Unix { uid } => format!("unix uid {uid}"),
            },
            "action": action,
            "target": target,
            "result": outcome,
            "code": code,
            "message": message,
        });
        if let Err(e) = self.append(&line.to_string()) {
            tracing::error!("cannot write the audit log {}: {e}", self.path.display());
        }
    }

    fn append(&self, line: &str) -> std::io::Result<()> {
        let mut guard = self.file.lock().unwrap_or_else(|e| e.into_inner());
        if guard.is_none() {
            if let Some(dir) = self.path.parent() {
                std::fs::create_dir_all(dir)?;
            }
            *guard = Some(
                OpenOptions::new()
                    .create(true)
                    .append(true)
                    .mode(0o600)
                    .custom_flags(libc::O_NOFOLLOW | libc::O_CLOEXEC)
                    .open(&self.path)?,
            );
        }
        match guard.as_mut() {
            Some(f) => writeln!(f, "{line}"),
            None => Ok(()),
        }
    }
}

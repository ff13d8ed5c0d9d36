//! Locks: one per VE (two commands never work on one VE at once) and one
//! for the host (allocating ids and id ranges). `flock(2)` locks die with
//! their process, so a crashed command never leaves a VE locked.

use std::fs::{self, File, OpenOptions};
use std::os::unix::fs::OpenOptionsExt;
use std::path::Path;
use std::time::{Duration, Instant};

use rustix::fs::{flock, FlockOperation};
use rustix::io::Errno;

use crate::error::{io, Result, VeError};

/// A held lock; released when dropped.
#[derive(Debug)]
pub struct Lock {
    _file: File,
}

/// How long a command waits for a lock before reporting "busy".
pub const WAIT: Duration = Duration::from_secs(20);

impl Lock {
    /// Takes the exclusive lock on `path`, waiting up to `wait`; `busy`
    /// names what is locked in the error.
    pub fn acquire(path: &Path, wait: Duration, busy: &str) -> Result<Lock> {
        if let Some(dir) = path.parent() {
            fs::create_dir_all(dir).map_err(io(format!("create {}", dir.display())))?;
        }
        let file = OpenOptions::new()
            .create(true)
            .truncate(false)
            .write(true)
            .mode(0o600)
            .custom_flags(libc::O_NOFOLLOW | libc::O_CLOEXEC)
            .open(path)
            .map_err(io(format!("open {}", path.display())))?;
        let deadline = Instant::now() + wait;
        loop {
            match flock(&file, FlockOperation::NonBlockingLockExclusive) {
                Ok(()) => return Ok(Lock { _file: file }),
                Err(Errno::WOULDBLOCK) | Err(Errno::INTR) if Instant::now() < deadline => {
                    std::thread::sleep(Duration::from_millis(10));
                }
                Err(Errno::WOULDBLOCK) => return Err(VeError::Busy(busy.to_string())),
                Err(e) => return Err(io(format!("lock {}", path.display()))(e.into())),
            }
        }
    }

    /// Takes the lock only if it is free right now.
    pub fn try_acquire(path: &Path) -> Option<Lock> {
        Lock::acquire(path, Duration::ZERO, "").ok()
    }
}

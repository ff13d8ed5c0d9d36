//! inotify, reduced to what the watcher needs: watches that each stand
//! for something ([`Target`]), and a wait that returns which of them saw
//! a change (or that the kernel's queue overflowed, so that nothing
//! short of looking at everything is safe).
//!
//! Why inotify and not only a sweep: a start or a stop is a file that
//! appears or goes in a VE's run directory, and a client should hear of
//! it within milliseconds, not at the next sweep.

use std::collections::HashMap;
use std::io;
use std::mem::MaybeUninit;
use std::os::fd::OwnedFd;
use std::path::Path;
use std::time::Duration;

use kennel_ve::VeId;
use rustix::event::{poll, PollFd, PollFlags, Timespec};
use rustix::fs::inotify::{self, CreateFlags, ReadFlags, WatchFlags};

/// What a watch is on.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum Target {
    /// `<lib>` or `<run>`: for their `ve` directory to appear.
    Root,
    /// `<lib>/ve`: VEs made and deleted.
    LibVes,
    /// `<run>/ve`: run directories made and removed.
    RunVes,
    /// `<run>/ve/<id>`: a VE's run files (`state.json`, `exit.json`).
    RunDir(VeId),
    /// A counter file of a running VE's cgroup.
    Counter(VeId),
}

/// What a wait saw.
#[derive(Debug, Default)]
pub struct Seen {
    /// Targets with a change, and the name in them that changed.
    pub changes: Vec<(Target, Option<String>)>,
    /// Events were lost: look at everything.
    pub overflow: bool,
}

#[derive(Debug)]
pub struct Notify {
    fd: OwnedFd,
    targets: HashMap<i32, Target>,
    buf: Vec<MaybeUninit<u8>>,
}

/// Directory changes: entries made, removed, renamed in or out, and
/// files written.
pub fn dir_flags() -> WatchFlags {
    WatchFlags::CREATE
        | WatchFlags::DELETE
        | WatchFlags::MOVED_FROM
        | WatchFlags::MOVED_TO
        | WatchFlags::CLOSE_WRITE
        | WatchFlags::ONLYDIR
}

/// A counter file's change (cgroup files announce theirs as a modify).
pub fn file_flags() -> WatchFlags {
    WatchFlags::MODIFY
}

impl Notify {
    pub fn new() -> io::Result<Self> {
        let fd = inotify::init(CreateFlags::CLOEXEC | CreateFlags::NONBLOCK)?;
        Ok(Notify {
            fd,
            targets: HashMap::new(),
            buf: vec![MaybeUninit::uninit(); 64 << 10],
        })
    }

    /// Watches `path` for `flags`, standing for `target`.
    pub fn watch(&mut self, path: &Path, flags: WatchFlags, target: Target) -> io::Result<i32> {
        let wd = inotify::add_watch(&self.fd, path, flags)?;
        self.targets.insert(wd, target);
        Ok(wd)
    }

    /// Ends watch `wd` (one the kernel already ended is no error).
    pub fn unwatch(&mut self, wd: i32) {
        if self.targets.remove(&wd).is_some() {
            let _ = inotify::remove_watch(&self.fd, wd);
        }
    }

    /// Whether watch `wd` is still in place.
    pub fn is_live(&self, wd: i32) -> bool {
        self.targets.contains_key(&wd)
    }

    /// Waits up to `timeout` for changes, and returns all there are.
    pub fn wait(&mut self, timeout: Duration) -> io::Result<Seen> {
        let ts = Timespec {
            tv_sec: i64::try_from(timeout.as_secs()).unwrap_or(i64::MAX),
            tv_nsec: i64::from(timeout.subsec_nanos()),
        };
        let mut fds = [PollFd::new(&self.fd, PollFlags::IN)];
        match poll(&mut fds, Some(&ts)) {
            Ok(0) => return Ok(Seen::default()),
            Ok(_) => {}
            Err(rustix::io::Errno::INTR) => return Ok(Seen::default()),
            Err(e) => return Err(e.into()),
        }
        let mut seen = Seen::default();
        let mut ended = Vec::new();
        let mut reader = inotify::Reader::new(&self.fd, &mut self.buf[..]);
        loop {
            let ev = match reader.next() {
                Ok(ev) => ev,
                Err(rustix::io::Errno::AGAIN) => break,
                Err(rustix::io::Errno::INTR) => continue,
                Err(e) => return Err(e.into()),
            };
            let flags = ev.events();
            if flags.contains(ReadFlags::QUEUE_OVERFLOW) {
                seen.overflow = true;
                continue;
            }
            let Some(target) = self.targets.get(&ev.wd()) else {
                continue;
            };
            let name = ev.file_name().map(|n| n.to_string_lossy().into_owned());
            seen.changes.push((target.clone(), name));
            if flags.contains(ReadFlags::IGNORED) {
                // The kernel ended the watch (its file is gone).
                ended.push(ev.wd());
            }
        }
        for wd in ended {
            self.targets.remove(&wd);
        }
        Ok(seen)
    }
}

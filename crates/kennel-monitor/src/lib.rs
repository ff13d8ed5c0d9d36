//! The per-VE monitor.
//!
//! One monitor runs for every running VE, so it is kept small: one thread,
//! no async runtime, no allocation after start-up, only `rustix` for
//! system calls, and no Rust runtime set-up (see the `kennel-monitor`
//! program). What an idle monitor keeps, and why, is in docs/DENSITY.md
//! ("Memory per VE"). `kennel start` execs it
//! once the VE's init runs (see `kennel_runtime::launch`), handing it:
//!
//! | fd | what |
//! |----|------|
//! | 3 | pidfd of the VE's init (its child) |
//! | 4 | console pty master |
//! | 5 | console pty peer (held so the master never sees a hangup) |
//! | 6 | listening socket for `kennel console` |
//! | 7 | a mount of the VE's devpts (`kennel set --numpty` reaches it with `pidfd_getfd`) |
//!
//! Its loop keeps the last 16 KiB (`ring::CAPACITY`) of console output,
//! lends the console to one `kennel console` client at a time, and reaps
//! init. When init ends it closes everything and execs the command it was
//! given after `--` (kennel's teardown), adding how init ended.

mod args;
mod event_loop;
mod ring;

use std::os::fd::{FromRawFd, OwnedFd};

/// Runs the monitor; never returns.
pub fn main() -> ! {
    let backlog = ring::Ring::new();
    let args = match args::Args::parse(std::env::args().skip(1)) {
        Ok(a) => a,
        Err(msg) => {
            eprintln!("kennel-monitor: {msg}");
            eprintln!("usage: kennel-monitor --id ID -- TEARDOWN-COMMAND...");
            eprintln!("(started by `kennel start`; not meant to be run by hand)");
            std::process::exit(2);
        }
    };
    // SAFETY: `kennel start` passes these descriptors to the monitor and
    // nothing else in this process refers to them.
    let fds = unsafe {
        event_loop::Inherited {
            pidfd: OwnedFd::from_raw_fd(3),
            master: OwnedFd::from_raw_fd(4),
            peer: OwnedFd::from_raw_fd(5),
            listener: OwnedFd::from_raw_fd(6),
        }
    };
    // SAFETY: as above; the monitor only holds it, for `kennel set`.
    let devpts = unsafe { OwnedFd::from_raw_fd(7) };
    // The teardown command must not inherit the console or the pidfd.
    for fd in [&fds.pidfd, &fds.master, &fds.peer, &fds.listener, &devpts] {
        let _ = rustix::io::fcntl_setfd(fd, rustix::io::FdFlags::CLOEXEC);
    }
    let how = event_loop::run(fds, &args.id, backlog);
    drop(devpts);
    let err = args.exec_teardown(&how);
    eprintln!(
        "kennel-monitor: VE {}: cannot run the teardown {:?}: {err}",
        args.id, args.teardown
    );
    std::process::exit(1);
}

//! The per-VE monitor.
//!
//! One monitor runs for every running VE, so it is kept small: one thread,
//! no allocation, no C library and no `std` (its own entry point and
//! system calls: [`rt`], [`sys`]), its console backlog in bss. What an idle
//! monitor keeps, and why, is in docs/DENSITY.md ("Memory per VE").
//! `kennel start` execs it once the VE's init runs (see
//! `kennel_runtime::launch`), handing it:
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
#![cfg_attr(not(test), no_std)]

mod args;
mod event_loop;
mod ring;
pub mod rt;
pub mod sys;

use sys::Fd;

/// The console backlog's memory: in bss, so that its pages cost nothing
/// until the console writes to them.
static mut BACKLOG: [u8; ring::CAPACITY] = [0; ring::CAPACITY];

/// Runs the monitor; never returns. Called once, by the program's entry
/// point ([`program!`]).
pub fn main(process: rt::Process) -> ! {
    // SAFETY: `main` runs once, on the program's only thread, and this is
    // the one reference to the backlog ever made.
    let backlog = unsafe { &mut *core::ptr::addr_of_mut!(BACKLOG) };
    let args = match args::Args::parse(process.args()) {
        Ok(a) => a,
        Err(msg) => {
            report!("kennel-monitor: {msg}");
            report!("usage: kennel-monitor --id ID -- TEARDOWN-COMMAND...");
            report!("(started by `kennel start`; not meant to be run by hand)");
            sys::exit(2);
        }
    };
    // SAFETY: `kennel start` passes these descriptors to the monitor and
    // nothing else in this process refers to them.
    let (fds, devpts) = unsafe {
        (
            event_loop::Inherited {
                pidfd: Fd::from_raw(3),
                master: Fd::from_raw(4),
                peer: Fd::from_raw(5),
                listener: Fd::from_raw(6),
            },
            // The monitor only holds it, for `kennel set`.
            Fd::from_raw(7),
        )
    };
    // The teardown command must not inherit the console or the pidfd.
    for fd in [&fds.pidfd, &fds.master, &fds.peer, &fds.listener, &devpts] {
        let _ = sys::set_cloexec(fd);
    }
    let ended = event_loop::run(fds, args.id, ring::Ring::new(backlog));
    drop(devpts);
    let mut line = args::Line::new();
    let how = args::describe(ended, &mut line);
    let argv = args.teardown_argv(how);
    // The teardown inherits the monitor's signal dispositions and mask
    // (`kennel start` ignores the terminal's signals and SIGPIPE before it
    // forks the monitor); `kennel` sets its own at start anyway.
    let prog = args.teardown()[0];
    let err = sys::execve(prog, &argv, process.envp());
    report!(
        "kennel-monitor: VE {}: cannot run the teardown {}: {err}",
        event_loop::shown(args.id),
        event_loop::shown(prog)
    );
    sys::exit(1);
}

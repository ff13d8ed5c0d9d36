//! `kennel-attack`: the hostile tenant's toolbox, for Kennel's security
//! suite (`crates/kennel/tests/security`). Test-only, never installed.
//!
//! The busybox template has a shell and little else; the attacks need raw
//! system calls (`open_by_handle_at`, `mount` of kernel filesystems,
//! `int 0x80`, packet sockets, `reboot`). The suite copies this static
//! binary into a VE and runs one subcommand per attack, as the VE's root.
//! Each prints at most some `INFO` lines and then ONE verdict line:
//!
//! * `BLOCKED <what stopped it>`, exit 0;
//! * `ESCAPED <what it reached>`, exit 1;
//! * `ERROR <why the probe could not run>`, exit 2;
//! * `WORKS <what>`, exit 0, from feature probes (`fuse-hello`): what an
//!   opt-in feature gives does work.
//!
//! Probes never do harm when they get through: they open host knobs for
//! writing without writing, pass arguments the kernel rejects after its
//! permission checks, and set the clock to the time it has. Whether an
//! effect stayed inside the VE (a hostname, a reboot, a forged frame) is
//! for the suite to check on the host and at the receivers.

mod probes;
mod sys;
mod verdict;

use probes::{devices, exe, fuse, kernel, mounts, net, procs, res, walk};
use verdict::Verdict;

type Probe = fn(&[String]) -> Verdict;

const PROBES: &[(&str, Probe, &str)] = &[
    (
        "cwd-check",
        walk::cwd_check,
        "is the working directory inside the VE",
    ),
    (
        "proc-scan",
        walk::proc_scan,
        "any /proc/PID/{cwd,root,fd} leading out",
    ),
    (
        "mount-fs",
        mounts::mount_fs,
        "TYPE [SOURCE] [OPTIONS] [nested]: mount a filesystem",
    ),
    (
        "mount-proc",
        mounts::mount_proc,
        "[COMM...]: a new procfs shows only the VE",
    ),
    (
        "mount-sysfs",
        mounts::mount_sysfs,
        "a new sysfs, then write host knobs",
    ),
    ("unmask", mounts::unmask, "r|w PATH...: strip masks, open"),
    (
        "remount-rw",
        mounts::remount_rw,
        "MOUNTPOINT FILE: remount rw, open FILE for writing",
    ),
    (
        "release-agent",
        mounts::release_agent,
        "[nested]: cgroup v1 release_agent",
    ),
    ("umount-force", mounts::umount_force, "umount2(MNT_FORCE)"),
    (
        "mknod-open",
        devices::mknod_open,
        "b|c MAJOR MINOR: make a device node and read it",
    ),
    (
        "open-by-handle",
        devices::open_by_handle,
        "open_by_handle_at, own and forged handles",
    ),
    ("sys", kernel::sys_calls, "NAME...: host-wide system calls"),
    (
        "set-names",
        kernel::set_names,
        "NAME: sethostname and setdomainname",
    ),
    ("reboot", kernel::reboot, "restart|poweroff|halt"),
    (
        "procs-see",
        procs::procs_see,
        "COMM...: foreign processes visible",
    ),
    (
        "kill-scan",
        procs::kill_scan,
        "MAX: PIDs that answer signal 0",
    ),
    ("kill-all", procs::kill_all, "kill(-1, SIGKILL)"),
    (
        "ptrace-all",
        procs::ptrace_all,
        "PTRACE_SEIZE every visible process",
    ),
    ("rlimits", res::rlimits, "the limits of a VE process"),
    (
        "pty-exhaust",
        res::pty_exhaust,
        "MAX: open the VE's ptys; holds",
    ),
    (
        "devpts-exhaust",
        res::devpts_exhaust,
        "ptys of an own devpts; holds",
    ),
    (
        "devpts-remount",
        res::devpts_remount,
        "raise the VE's devpts max",
    ),
    (
        "fd-exhaust",
        res::fd_exhaust,
        "descriptors until refused; holds",
    ),
    (
        "inotify-instances",
        res::inotify_instances,
        "inotify instances; holds",
    ),
    (
        "inotify-watches",
        res::inotify_watches,
        "inotify watches; holds",
    ),
    (
        "keys-exhaust",
        res::keys_exhaust,
        "user keys until refused; holds",
    ),
    (
        "tcp-hold",
        res::tcp_hold,
        "MIB: hold MIB in loopback TCP queues",
    ),
    (
        "fork-bomb",
        res::fork_bomb,
        "processes until refused; holds",
    ),
    (
        "console-flood",
        res::console_flood,
        "MIB: write to /dev/console",
    ),
    (
        "exe-race",
        exe::exe_race,
        "SECONDS: open host binaries via /proc/PID/exe for writing",
    ),
    (
        "stdio",
        exe::stdio,
        "the standard streams are relayed pipes",
    ),
    (
        "reopen-stdio",
        exe::reopen_stdio,
        "SECRET: reopen a stream to read the caller's file",
    ),
    (
        "send-frame",
        net::send_frame,
        "IFACE HEX [COUNT]: a raw Ethernet frame",
    ),
    (
        "sniff",
        net::sniff,
        "IFACE MILLIS OWN_MAC [IPV4...]: promiscuous listening",
    ),
    (
        "socket32",
        kernel::socket32,
        "FAMILY: a 32-bit socketcall opens a socket (a feature probe)",
    ),
    (
        "fuse-hello",
        fuse::fuse_hello,
        "DIR: a FUSE mount works (the fuse feature)",
    ),
    (
        "fuse-stall",
        fuse::fuse_stall,
        "DIR: mount a FUSE filesystem whose server never answers; leaves it",
    ),
    (
        "nft-flush",
        net::nft_flush,
        "delete every nftables table of the VE's netns",
    ),
];

fn main() {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let verdict = match args.first().map(String::as_str) {
        None | Some("help") | Some("--help") => {
            for (name, _, what) in PROBES {
                println!("{name:18} {what}");
            }
            return;
        }
        Some(name) => match PROBES.iter().find(|(n, _, _)| *n == name) {
            Some((_, probe, _)) => probe(&args[1..]),
            None => verdict::error(format!("unknown probe {name} (try help)")),
        },
    };
    println!("{verdict}");
    std::process::exit(verdict.code());
}

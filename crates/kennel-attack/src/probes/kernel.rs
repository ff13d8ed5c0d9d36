//! Host-wide system calls: each is made with arguments that would do no
//! harm if the call got through (a missing file, an invalid flag, the
//! current time), so that a failure of the policy shows as an error the
//! kernel gives only *after* its permission checks (ENOENT, EINVAL,
//! EFAULT, EBADF), never as damage to the host.

use crate::sys::{self, ename, Res};
use crate::verdict::{all, blocked, error, escaped, Verdict};

/// `Ok` or an errno outside `refusals`: the call got past the checks.
fn judge(r: Res<isize>, refusals: &[i32]) -> Verdict {
    match r {
        Ok(v) => escaped(format!("the call succeeded ({v})")),
        Err(e) if refusals.contains(&e) => blocked(ename(e)),
        Err(e) => escaped(format!(
            "got past the permission checks (failed later with {})",
            ename(e)
        )),
    }
}

/// Refusals: no permission, or no such call in this kernel (or the filter).
const DENY: &[i32] = &[libc::EPERM, libc::EACCES, libc::ENOSYS];

fn call(nr: libc::c_long, a: [usize; 6]) -> Res<isize> {
    // SAFETY: every caller passes null or pointers to live values of the
    // layout system call `nr` reads.
    unsafe { sys::syscall(nr, a) }
}

fn p<T>(r: &T) -> usize {
    r as *const T as usize
}

fn now() -> libc::timespec {
    let mut ts = libc::timespec {
        tv_sec: 0,
        tv_nsec: 0,
    };
    // SAFETY: ts is a valid timespec.
    unsafe { libc::clock_gettime(libc::CLOCK_REALTIME, &mut ts) };
    ts
}

type Probe = fn() -> Verdict;

/// The named system-call probes (`sys NAME...`).
pub const CALLS: &[(&str, Probe)] = &[
    ("init_module", || {
        judge(
            call(
                libc::SYS_init_module,
                [0, 0, c"".as_ptr() as usize, 0, 0, 0],
            ),
            DENY,
        )
    }),
    ("finit_module", || {
        judge(
            call(
                libc::SYS_finit_module,
                [usize::MAX, c"".as_ptr() as usize, 0, 0, 0, 0],
            ),
            DENY,
        )
    }),
    ("delete_module", || {
        let name = c"kennel_attack_none";
        judge(
            call(
                libc::SYS_delete_module,
                [
                    name.as_ptr() as usize,
                    libc::O_NONBLOCK as usize,
                    0,
                    0,
                    0,
                    0,
                ],
            ),
            DENY,
        )
    }),
    ("kexec_load", || {
        judge(
            call(libc::SYS_kexec_load, [0, 0, 0, 0xdead_0000, 0, 0]),
            DENY,
        )
    }),
    ("kexec_file_load", || {
        judge(
            call(
                libc::SYS_kexec_file_load,
                [usize::MAX, usize::MAX, 0, 0, 0xdead_0000, 0],
            ),
            DENY,
        )
    }),
    ("iopl", || {
        judge(call(libc::SYS_iopl, [3, 0, 0, 0, 0, 0]), DENY)
    }),
    ("ioperm", || {
        judge(call(libc::SYS_ioperm, [0x80, 1, 1, 0, 0, 0]), DENY)
    }),
    ("swapon", || {
        let f = c"/nonexistent-kennel-attack";
        judge(
            call(libc::SYS_swapon, [f.as_ptr() as usize, 0, 0, 0, 0, 0]),
            DENY,
        )
    }),
    ("swapoff", || {
        let f = c"/nonexistent-kennel-attack";
        judge(
            call(libc::SYS_swapoff, [f.as_ptr() as usize, 0, 0, 0, 0, 0]),
            DENY,
        )
    }),
    ("acct", || {
        let f = c"/nonexistent-kennel-attack";
        judge(
            call(libc::SYS_acct, [f.as_ptr() as usize, 0, 0, 0, 0, 0]),
            DENY,
        )
    }),
    ("syslog", || {
        // SYSLOG_ACTION_SIZE_BUFFER: reads nothing.
        judge(call(libc::SYS_syslog, [10, 0, 0, 0, 0, 0]), DENY)
    }),
    ("perf_event_open", || {
        judge(
            call(
                libc::SYS_perf_event_open,
                [0, usize::MAX, 0, usize::MAX, 0, 0],
            ),
            DENY,
        )
    }),
    ("vsock", || {
        // A socket only: nothing is connected or bound.
        let r = call(
            libc::SYS_socket,
            [
                libc::AF_VSOCK as usize,
                libc::SOCK_STREAM as usize,
                0,
                0,
                0,
                0,
            ],
        );
        if let Ok(fd) = r {
            // SAFETY: the descriptor the call just made.
            unsafe { libc::close(fd as i32) };
        }
        judge(r, &[libc::EAFNOSUPPORT])
    }),
    ("io_uring_setup", || {
        judge(
            call(libc::SYS_io_uring_setup, [1, 0, 0, 0, 0, 0]),
            &[libc::ENOSYS],
        )
    }),
    ("io_uring_register", || {
        judge(
            call(libc::SYS_io_uring_register, [usize::MAX, 0, 0, 0, 0, 0]),
            &[libc::ENOSYS],
        )
    }),
    ("bpf_prog_load", bpf_prog_load),
    ("bpf_map_create", || {
        let mut attr = [0u32; 32];
        attr[0] = 1; // BPF_MAP_TYPE_HASH
        attr[1] = 4;
        attr[2] = 4;
        attr[3] = 1;
        judge(
            call(
                libc::SYS_bpf,
                [0, p(&attr), std::mem::size_of_val(&attr), 0, 0, 0],
            ),
            DENY,
        )
    }),
    ("userfaultfd", || {
        match call(
            libc::SYS_userfaultfd,
            [libc::O_CLOEXEC as usize, 0, 0, 0, 0, 0],
        ) {
            Ok(fd) => {
                let _ = sys::own(fd as i32);
                escaped("a userfaultfd that handles kernel faults")
            }
            Err(e) => judge(Err(e), DENY),
        }
    }),
    ("clock_settime", || {
        let ts = now();
        judge(
            call(
                libc::SYS_clock_settime,
                [libc::CLOCK_REALTIME as usize, p(&ts), 0, 0, 0, 0],
            ),
            DENY,
        )
    }),
    ("settimeofday", || {
        let ts = now();
        let tv = libc::timeval {
            tv_sec: ts.tv_sec,
            tv_usec: ts.tv_nsec / 1000,
        };
        judge(call(libc::SYS_settimeofday, [p(&tv), 0, 0, 0, 0, 0]), DENY)
    }),
    ("adjtimex", || {
        // SAFETY: an all-zero timex is valid.
        let mut tx: libc::timex = unsafe { std::mem::zeroed() };
        if let Err(e) = call(libc::SYS_adjtimex, [p(&tx), 0, 0, 0, 0, 0]) {
            return error(format!("read the clock's frequency: {}", ename(e)));
        }
        // Set the frequency it already has.
        tx.modes = libc::ADJ_FREQUENCY;
        judge(call(libc::SYS_adjtimex, [p(&tx), 0, 0, 0, 0, 0]), DENY)
    }),
    ("sched_fifo", || {
        let sp = libc::sched_param { sched_priority: 1 };
        let r = call(
            libc::SYS_sched_setscheduler,
            [0, libc::SCHED_FIFO as usize, p(&sp), 0, 0, 0],
        );
        if r.is_ok() {
            let back = libc::sched_param { sched_priority: 0 };
            let _ = call(
                libc::SYS_sched_setscheduler,
                [0, libc::SCHED_OTHER as usize, p(&back), 0, 0, 0],
            );
        }
        judge(r, DENY)
    }),
    ("nice_negative", || {
        judge(
            call(
                libc::SYS_setpriority,
                [libc::PRIO_PROCESS as usize, 0, -20isize as usize, 0, 0, 0],
            ),
            DENY,
        )
    }),
    ("keyctl", || {
        // KEYCTL_GET_KEYRING_ID of the session keyring.
        judge(
            call(libc::SYS_keyctl, [0, -3isize as usize, 0, 0, 0, 0]),
            &[libc::ENOSYS],
        )
    }),
    ("add_key", || {
        let (t, d, v) = (c"user", c"kennel-attack", c"x");
        judge(
            call(
                libc::SYS_add_key,
                [
                    t.as_ptr() as usize,
                    d.as_ptr() as usize,
                    v.as_ptr() as usize,
                    1,
                    -2isize as usize,
                    0,
                ],
            ),
            &[libc::ENOSYS],
        )
    }),
    ("request_key", || {
        let (t, d) = (c"user", c"kennel-attack");
        judge(
            call(
                libc::SYS_request_key,
                [t.as_ptr() as usize, d.as_ptr() as usize, 0, 0, 0, 0],
            ),
            &[libc::ENOSYS],
        )
    }),
    ("keyctl_join", || {
        let n = c"kennel-attack";
        // KEYCTL_JOIN_SESSION_KEYRING
        judge(
            call(libc::SYS_keyctl, [1, n.as_ptr() as usize, 0, 0, 0, 0]),
            &[libc::ENOSYS],
        )
    }),
    ("tiocsti", || tty_ioctl(libc::TIOCSTI as usize)),
    ("tioclinux", || tty_ioctl(libc::TIOCLINUX as usize)),
    ("reboot_cad_off", || {
        reboot_cmd(libc::LINUX_REBOOT_CMD_CAD_OFF)
    }),
    ("reboot_kexec", || reboot_cmd(libc::LINUX_REBOOT_CMD_KEXEC)),
    ("reboot_sw_suspend", || {
        reboot_cmd(libc::LINUX_REBOOT_CMD_SW_SUSPEND)
    }),
    ("i386_io_uring_setup", || i386(425, &[libc::ENOSYS])),
    ("i386_perf_event_open", || i386(336, DENY)),
    ("i386_open_by_handle_at", || i386(342, DENY)),
    ("i386_kexec_load", || i386(283, DENY)),
    ("i386_init_module", || i386(128, DENY)),
    ("i386_syslog", || i386(103, DENY)),
    ("i386_add_key", || i386(286, &[libc::ENOSYS])),
    ("x32_perf_event_open", || x32(298, DENY)),
    ("x32_open_by_handle_at", || x32(304, DENY)),
    ("x32_kexec_load", || x32(528, DENY)),
];

fn bpf_prog_load() -> Verdict {
    // r0 = 0; exit: the smallest valid socket filter.
    let insns: [u64; 2] = [0x0000_0000_0000_00b7, 0x0000_0000_0000_0095];
    let license = c"GPL";
    let mut attr = [0u64; 16];
    attr[0] = 1 | (2 << 32); // BPF_PROG_TYPE_SOCKET_FILTER, 2 instructions
    attr[1] = insns.as_ptr() as u64;
    attr[2] = license.as_ptr() as u64;
    match call(
        libc::SYS_bpf,
        [5, p(&attr), std::mem::size_of_val(&attr), 0, 0, 0],
    ) {
        Ok(fd) => {
            let _ = sys::own(fd as i32);
            escaped("loaded a BPF program")
        }
        Err(e) => judge(Err(e), DENY),
    }
}

fn tty_ioctl(req: usize) -> Verdict {
    let c = b'x';
    let mut parts = Vec::new();
    for path in ["/dev/console", "/proc/self/fd/0"] {
        let Ok(fd) = sys::open(path, libc::O_RDWR | libc::O_NOCTTY | libc::O_NONBLOCK) else {
            continue;
        };
        let r = call(
            libc::SYS_ioctl,
            [
                std::os::fd::AsRawFd::as_raw_fd(&fd) as usize,
                req,
                p(&c),
                0,
                0,
                0,
            ],
        );
        parts.push((path.to_string(), judge(r, &[libc::EPERM])));
    }
    if parts.is_empty() {
        return error("no terminal to try");
    }
    all(parts)
}

fn reboot_cmd(cmd: libc::c_int) -> Verdict {
    judge(
        call(
            libc::SYS_reboot,
            [
                libc::LINUX_REBOOT_MAGIC1 as u32 as usize,
                libc::LINUX_REBOOT_MAGIC2 as usize,
                cmd as u32 as usize,
                0,
                0,
                0,
            ],
        ),
        &[libc::EPERM, libc::EINVAL],
    )
}

fn i386(nr: u32, refusals: &[i32]) -> Verdict {
    match sys::syscall_i386_zero(nr) {
        Err(libc::ENOSYS) if !refusals.contains(&libc::ENOSYS) => {
            // Either the filter's ENOSYS or no 32-bit entry at all: both stop it.
            blocked("ENOSYS")
        }
        r => judge(r.map(|v| v as isize), refusals),
    }
}

fn x32(nr: libc::c_long, refusals: &[i32]) -> Verdict {
    const X32: libc::c_long = 0x4000_0000;
    match call(nr | X32, [0; 6]) {
        Err(libc::ENOSYS) => blocked("ENOSYS (no x32 entry, or the filter)"),
        r => judge(r, refusals),
    }
}

/// `sys NAME...`: the named system calls, one verdict for all.
pub fn sys_calls(args: &[String]) -> Verdict {
    if args.is_empty() {
        return error("name at least one call");
    }
    let mut parts = Vec::new();
    for name in args {
        match CALLS.iter().find(|(n, _)| n == name) {
            Some((_, f)) => parts.push((name.clone(), f())),
            None => return error(format!("unknown call {name}")),
        }
    }
    all(parts)
}

/// `sethostname NAME` / `setdomainname NAME`: allowed in the VE's own UTS
/// namespace; the suite checks that the host's and the neighbour's stay.
pub fn set_names(args: &[String]) -> Verdict {
    let Some(name) = args.first() else {
        return error("name the new host name");
    };
    let b = name.as_bytes();
    // SAFETY: b is a valid buffer of its length.
    let h = unsafe { libc::sethostname(b.as_ptr().cast(), b.len()) };
    let he = sys::errno();
    // SAFETY: as above.
    let d = unsafe { libc::setdomainname(b.as_ptr().cast(), b.len()) };
    let de = sys::errno();
    let show = |r: i32, e: i32| if r == 0 { "set".to_string() } else { ename(e) };
    blocked(format!(
        "hostname {}, domainname {} (in the VE's own UTS namespace)",
        show(h, he),
        show(d, de)
    ))
}

/// `reboot restart|poweroff`: in a PID namespace this ends only that
/// namespace; returns only if the call failed.
pub fn reboot(args: &[String]) -> Verdict {
    let cmd = match args.first().map(String::as_str) {
        Some("restart") => libc::RB_AUTOBOOT,
        Some("poweroff") => libc::RB_POWER_OFF,
        Some("halt") => libc::RB_HALT_SYSTEM,
        _ => return error("restart, poweroff or halt"),
    };
    // SAFETY: no pointers.
    unsafe { libc::sync() };
    // SAFETY: no pointers; in a PID namespace this kills its init.
    let r = unsafe { libc::reboot(cmd) };
    if r == 0 {
        blocked("reboot returned (the PID namespace ends)")
    } else {
        blocked(format!("reboot: {}", ename(sys::errno())))
    }
}

/// `socket32 FAMILY`: a feature probe of the 32-bit ABI: does
/// `socketcall(SYS_SOCKET, {FAMILY, SOCK_STREAM, 0})` through `int 0x80`
/// open a socket? (A filter rule on `socket`'s family must not refuse
/// every 32-bit socket: the multiplexer's arguments are out of its reach.)
pub fn socket32(args: &[String]) -> Verdict {
    let Some(family) = args.first().and_then(|a| a.parse::<u32>().ok()) else {
        return error("usage: socket32 FAMILY (a number: 2 for AF_INET)");
    };
    // The arguments must lie below 4 GiB for the 32-bit entry to read them.
    // SAFETY: an anonymous private mapping; unmapped below.
    let page = unsafe {
        libc::mmap(
            std::ptr::null_mut(),
            4096,
            libc::PROT_READ | libc::PROT_WRITE,
            libc::MAP_PRIVATE | libc::MAP_ANONYMOUS | libc::MAP_32BIT,
            -1,
            0,
        )
    };
    if page == libc::MAP_FAILED {
        return error("mmap below 4 GiB");
    }
    let words = [family, libc::SOCK_STREAM as u32, 0u32];
    // SAFETY: the page holds 4096 bytes; three u32 fit.
    unsafe { std::ptr::copy_nonoverlapping(words.as_ptr(), page.cast::<u32>(), 3) };
    const SOCKETCALL: u32 = 102;
    const SYS_SOCKET: u32 = 1;
    let r = sys::syscall_i386(SOCKETCALL, [SYS_SOCKET, page as usize as u32, 0]);
    // SAFETY: the mapping made above.
    unsafe { libc::munmap(page, 4096) };
    match r {
        Ok(fd) => {
            // SAFETY: the descriptor the call just made.
            unsafe { libc::close(fd) };
            crate::verdict::works(format!("32-bit socketcall opened a family {family} socket"))
        }
        Err(e) => blocked(format!("32-bit socketcall: {}", ename(e))),
    }
}

//! Host-wide system calls from the VE's root: modules, kexec, raw I/O,
//! swap, accounting, the kernel log, perf, io_uring, BPF, userfaultfd,
//! the clock, real-time scheduling, keyrings, terminal injection, reboot
//! commands, and the 32-bit and x32 entries that a filter for x86_64
//! alone would miss. The host's clock, sysctls (ctrl-alt-del) and the
//! neighbour are checked after each by the lab.

use super::lab::{case, Case, Lab, ATT, NB, TOOL};

fn sys(l: &Lab, calls: &[&str]) -> Result<(), String> {
    let mut a = vec!["sys"];
    a.extend_from_slice(calls);
    l.blocked(&a).map(|_| ())
}

pub const CASES: &[Case] = &[
    case("module_loading", |l: &mut Lab| {
        sys(l, &["init_module", "finit_module", "delete_module"])
    }),
    case("kexec", |l| {
        sys(l, &["kexec_load", "kexec_file_load", "reboot_kexec"])
    }),
    case("raw_io_ports", |l| sys(l, &["iopl", "ioperm"])),
    case("swap", |l| sys(l, &["swapon", "swapoff"])),
    case("process_accounting", |l| sys(l, &["acct"])),
    case("syslog_syscall", |l| sys(l, &["syslog"])),
    case("perf_event_open", |l| sys(l, &["perf_event_open"])),
    case("io_uring", |l| {
        sys(l, &["io_uring_setup", "io_uring_register"])
    }),
    case("bpf", |l| sys(l, &["bpf_prog_load", "bpf_map_create"])),
    // Found by a hostile-tenant review: vsock is not namespaced and
    // bypasses the VE's network and its filter.
    case("vsock_socket", |l| sys(l, &["vsock"])),
    case("userfaultfd_kernel_faults", |l| sys(l, &["userfaultfd"])),
    case("host_time", |l| {
        sys(l, &["clock_settime", "settimeofday", "adjtimex"])
    }),
    case("realtime_and_nice", |l| {
        sys(l, &["sched_fifo", "nice_negative"])
    }),
    case("keyring_add_key", |l| sys(l, &["add_key"])),
    case("keyring_keyctl_host_keys", |l| {
        sys(l, &["keyctl", "keyctl_join"])
    }),
    case("keyring_request_key", |l| sys(l, &["request_key"])),
    case("tiocsti_tioclinux", |l| sys(l, &["tiocsti", "tioclinux"])),
    case("reboot_cad_and_suspend", |l| {
        sys(l, &["reboot_cad_off", "reboot_sw_suspend"])
    }),
    // Found by a hostile-tenant review: a filter rule on `socket`'s
    // family turned, through libseccomp, into a refusal of every 32-bit
    // socketcall: 32-bit programs in a VE had no network at all.
    case("seccomp_leaves_32bit_sockets_working", |l| {
        let (_, out) = l.sh(ATT, &format!("{TOOL} socket32 2"), 20);
        if out.contains("WORKS") || out.contains("socketcall: ENOSYS") {
            Ok(())
        } else {
            Err(format!(
                "a 32-bit program cannot open an AF_INET socket: {out}"
            ))
        }
    }),
    case("seccomp_i386_entry", |l| {
        sys(
            l,
            &[
                "i386_io_uring_setup",
                "i386_perf_event_open",
                "i386_open_by_handle_at",
                "i386_kexec_load",
                "i386_init_module",
                "i386_syslog",
                "i386_add_key",
            ],
        )
    }),
    case("seccomp_x32_entry", |l| {
        sys(
            l,
            &[
                "x32_perf_event_open",
                "x32_open_by_handle_at",
                "x32_kexec_load",
            ],
        )
    }),
    case("sethostname_stays_in_ve", |l| {
        l.blocked(&["set-names", "pwned-by-att"])?;
        let (_, name) = l.sh(ATT, "hostname", 10);
        // Put the VE's own name back for the cases after this one.
        l.sh(ATT, &format!("hostname {ATT}"), 10);
        let host = std::fs::read_to_string("/proc/sys/kernel/hostname").unwrap_or_default();
        let (_, nb) = l.sh(NB, "hostname", 10);
        if name.trim() != "pwned-by-att" {
            return Err(format!("control: the VE's own name did not change: {name}"));
        }
        if host.contains("pwned") || nb.contains("pwned") {
            return Err(format!(
                "the name reached the host ({host}) or the neighbour ({nb})"
            ));
        }
        Ok(())
    }),
];

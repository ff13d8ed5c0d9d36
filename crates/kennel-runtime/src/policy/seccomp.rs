//! The default seccomp filter of a VE: allow everything except system
//! calls whose effect reaches beyond the VE.
//!
//! Compiled once per start with libseccomp; the VE's init and every
//! `kennel exec` load the same compiled program.

use std::io::{Read, Seek, SeekFrom};

use libseccomp::{
    ScmpAction, ScmpArch, ScmpArgCompare, ScmpCompareOp, ScmpFilterContext, ScmpSyscall,
};

use crate::error::{Result, RuntimeError};

/// System calls that fail with EPERM, and why.
pub const DENIED: &[(&str, &str)] = &[
    ("kexec_load", "replaces the host's kernel"),
    ("kexec_file_load", "replaces the host's kernel"),
    ("init_module", "loads code into the host's kernel"),
    ("finit_module", "loads code into the host's kernel"),
    ("delete_module", "unloads host kernel modules"),
    ("iopl", "raw I/O port access"),
    ("ioperm", "raw I/O port access"),
    ("swapon", "host swap devices"),
    ("swapoff", "host swap devices"),
    ("acct", "host-wide process accounting"),
    ("syslog", "reads and clears the host's kernel log"),
    (
        "open_by_handle_at",
        "opens files by handle, bypassing the VE's mount tree (the 'shocker' escape)",
    ),
    ("lookup_dcookie", "host-wide profiling"),
    (
        "perf_event_open",
        "observes the host (performance counters, tracepoints)",
    ),
    ("vm86", "32-bit virtual 8086 mode (i386 entry points only)"),
    ("vm86old", "as vm86"),
    ("uselib", "obsolete library loader"),
    ("nfsservctl", "obsolete kernel NFS server control"),
];

/// System calls that fail with ENOSYS (as if the kernel lacked them, so
/// programs use their fallback), and why.
pub const NOT_IMPLEMENTED: &[(&str, &str)] = &[
    (
        "io_uring_setup",
        "io_uring is a large kernel attack surface; programs fall back to classic I/O",
    ),
    ("io_uring_enter", "as io_uring_setup"),
    ("io_uring_register", "as io_uring_setup"),
];

/// System calls that succeed without doing anything, and why.
///
/// `sync(2)` writes back every filesystem of the host, not the caller's:
/// every VE's disk, and, through each disk's loop device, an `fsync` of
/// every disk image. A busybox VE runs `sync` when it stops; with 5,000
/// VEs on their own disks, stopping them made 3,500 `sync`s wait on one
/// another for minutes (docs/DENSITY.md), and one VE looping on `sync`
/// stalls every other VE's I/O. In a VE it does nothing and succeeds, as
/// Virtuozzo can have it: the VE's data still reaches its disk (the
/// journal commits every 5 s, `fsync`, `fdatasync` and `syncfs` stay
/// real), and a stop unmounts the VE's disk, which writes all of it.
pub const NO_OP: &[(&str, &str)] = &[(
    "sync",
    "flushes every filesystem on the host; the VE's own stay flushed by their journal, fsync and syncfs",
)];

/// The kernel keyring: ENOSYS unless the VE has the `keyring` feature.
/// Keys are not namespaced, their memory is charged to no memory cgroup,
/// and the key quotas (`kernel.keys.maxkeys`, `maxbytes`) count per host
/// uid, of which a VE has 65,536: one VE could pin far more unswappable
/// kernel memory than its limit. Programs (systemd, runtimes) take ENOSYS
/// as "no keyring here" and go on.
pub const KEYRING: &[(&str, &str)] = &[
    (
        "add_key",
        "keys are not namespaced, nor charged to the VE's memory (quotas count per host uid)",
    ),
    ("keyctl", "as add_key"),
    ("request_key", "as add_key"),
];

/// Socket families that are not namespaced, refused with EAFNOSUPPORT (as
/// if the kernel lacked them): `AF_VSOCK` reaches the hypervisor's and
/// the host's vsock services past the VE's network, its filter included.
pub const DENIED_SOCKET_FAMILIES: &[(u64, &str)] = &[(40, "AF_VSOCK")];

/// `umount2(..., MNT_FORCE)` fails with EPERM: a forced unmount acts on
/// the filesystem for every mount of it, not just the VE's.
const MNT_FORCE: u64 = 1;

/// `ioctl` requests that fail with EPERM: pushing input into a terminal
/// (TIOCSTI) and the virtual console's special functions (TIOCLINUX),
/// against a terminal that reached the VE from outside.
pub const DENIED_IOCTLS: &[(u64, &str)] = &[(0x5412, "TIOCSTI"), (0x541c, "TIOCLINUX")];

/// What the filter of one VE depends on.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Hash)]
pub struct FilterOptions {
    /// The `keyring` feature: the keyring calls are allowed.
    pub keyring: bool,
}

impl FilterOptions {
    pub fn for_features(f: &crate::features::Features) -> Self {
        FilterOptions {
            keyring: f.has(crate::features::Feature::Keyring),
        }
    }
}

fn seccomp_err(e: libseccomp::error::SeccompError) -> RuntimeError {
    RuntimeError::Seccomp(e.to_string())
}

/// Compiles the filter for the native architecture plus the 32-bit x86
/// ABIs (so 32-bit programs in a VE work and cannot bypass it).
///
/// The rules that look at a `socket` argument go only into the part for
/// the native and x32 ABIs: on i386 `socket` is also reached through the
/// `socketcall` multiplexer, whose arguments a filter cannot read, and
/// libseccomp would then refuse *every* 32-bit socket (found by a
/// hostile-tenant review). A 32-bit program can therefore still open an
/// `AF_VSOCK` socket; SECURITY.md says so.
pub fn compile(opts: FilterOptions) -> Result<Vec<kennel_sys::seccomp::SockFilter>> {
    let mut native = common_rules(None, opts)?;
    deny_socket_families(&mut native)?;
    if cfg!(target_arch = "x86_64") {
        let mut x32 = common_rules(Some(ScmpArch::X32), opts)?;
        deny_socket_families(&mut x32)?;
        native.merge(x32).map_err(seccomp_err)?;
        native
            .merge(common_rules(Some(ScmpArch::X86), opts)?)
            .map_err(seccomp_err)?;
    }
    export(&native)
}

/// A filter with every rule but the socket ones, for `arch` alone (`None`:
/// the native one).
fn common_rules(arch: Option<ScmpArch>, opts: FilterOptions) -> Result<ScmpFilterContext> {
    let err = seccomp_err;
    let mut f = ScmpFilterContext::new(ScmpAction::Allow).map_err(err)?;
    // Never set no_new_privs: setuid programs in the VE (su, passwd) must
    // keep working; init holds CAP_SYS_ADMIN in its user namespace instead.
    f.set_ctl_nnp(false).map_err(err)?;
    if let Some(a) = arch {
        f.add_arch(a).map_err(err)?;
        f.remove_arch(ScmpArch::Native).map_err(err)?;
    }
    let keyring: &[(&str, &str)] = if opts.keyring { &[] } else { KEYRING };
    for (errno, list) in [
        (libc::EPERM, DENIED),
        (libc::ENOSYS, NOT_IMPLEMENTED),
        (libc::ENOSYS, keyring),
        (0, NO_OP),
    ] {
        for (call, _) in list {
            // Unknown on this arch (vm86 on x86_64): nothing to deny.
            let here = arch.unwrap_or(ScmpArch::Native);
            if ScmpSyscall::from_name_by_arch(call, here).is_err() {
                continue;
            }
            // Rules take the native number (or libseccomp's pseudo number
            // of a call the native arch lacks) and map it for each arch.
            let sc = ScmpSyscall::from_name(call).map_err(err)?;
            f.add_rule(ScmpAction::Errno(errno), sc).map_err(err)?;
        }
    }
    let umount2 = ScmpSyscall::from_name("umount2").map_err(err)?;
    f.add_rule_conditional(
        ScmpAction::Errno(libc::EPERM),
        umount2,
        &[ScmpArgCompare::new(
            1,
            ScmpCompareOp::MaskedEqual(MNT_FORCE),
            MNT_FORCE,
        )],
    )
    .map_err(err)?;
    let ioctl = ScmpSyscall::from_name("ioctl").map_err(err)?;
    for (request, _) in DENIED_IOCTLS {
        f.add_rule_conditional(
            ScmpAction::Errno(libc::EPERM),
            ioctl,
            &[ScmpArgCompare::new(
                1,
                ScmpCompareOp::MaskedEqual(0xffff_ffff),
                *request,
            )],
        )
        .map_err(err)?;
    }
    Ok(f)
}

/// [`DENIED_SOCKET_FAMILIES`], for a filter without the i386 ABI.
fn deny_socket_families(f: &mut ScmpFilterContext) -> Result<()> {
    let socket = ScmpSyscall::from_name("socket").map_err(seccomp_err)?;
    for (family, _) in DENIED_SOCKET_FAMILIES {
        f.add_rule_conditional(
            ScmpAction::Errno(libc::EAFNOSUPPORT),
            socket,
            &[ScmpArgCompare::new(
                0,
                ScmpCompareOp::MaskedEqual(0xffff_ffff),
                *family,
            )],
        )
        .map_err(seccomp_err)?;
    }
    Ok(())
}

fn export(f: &ScmpFilterContext) -> Result<Vec<kennel_sys::seccomp::SockFilter>> {
    let mut out = memfd()?;
    f.export_bpf(&out).map_err(seccomp_err)?;
    let mut bytes = Vec::new();
    out.seek(SeekFrom::Start(0))
        .map_err(|e| RuntimeError::Seccomp(e.to_string()))?;
    out.read_to_end(&mut bytes)
        .map_err(|e| RuntimeError::Seccomp(e.to_string()))?;
    kennel_sys::seccomp::parse(&bytes).map_err(|e| RuntimeError::Seccomp(e.to_string()))
}

fn memfd() -> Result<std::fs::File> {
    let fd = rustix::fs::memfd_create("kennel-seccomp", rustix::fs::MemfdFlags::CLOEXEC)
        .map_err(|e| RuntimeError::Seccomp(format!("memfd: {e}")))?;
    Ok(std::fs::File::from(fd))
}

/// The program for `opts`, compiled once per policy and kept in `dir` (a
/// root-only directory): a start then reads a few hundred bytes instead of
/// running libseccomp's compiler.
pub fn cached(
    dir: &std::path::Path,
    opts: FilterOptions,
) -> Result<Vec<kennel_sys::seccomp::SockFilter>> {
    let path = dir.join(format!("default-{:016x}.bpf", fingerprint(opts)));
    if let Ok(bytes) = std::fs::read(&path) {
        if let Ok(prog) = kennel_sys::seccomp::parse(&bytes) {
            return Ok(prog);
        }
    }
    let prog = compile(opts)?;
    let tmp = path.with_extension(format!("tmp-{}", std::process::id()));
    let saved = std::fs::create_dir_all(dir)
        .and_then(|()| std::fs::write(&tmp, to_bytes(&prog)))
        .and_then(|()| std::fs::rename(&tmp, &path));
    if saved.is_err() {
        let _ = std::fs::remove_file(&tmp);
    }
    Ok(prog)
}

/// Identifies the policy (this module's source: its lists and how they
/// are compiled; the options; the architecture) so that a changed policy
/// never reuses an old program, even within one version.
fn fingerprint(opts: FilterOptions) -> u64 {
    use std::hash::{Hash, Hasher};
    // The standard hasher is stable for one build: enough for a cache.
    let mut h = std::collections::hash_map::DefaultHasher::new();
    (
        include_str!("seccomp.rs"),
        opts,
        std::env::consts::ARCH,
        env!("CARGO_PKG_VERSION"),
    )
        .hash(&mut h);
    h.finish()
}

/// Serialises a program for the VE's run directory (`seccomp.bpf`).
pub fn to_bytes(prog: &[kennel_sys::seccomp::SockFilter]) -> Vec<u8> {
    let mut out = Vec::with_capacity(prog.len() * kennel_sys::seccomp::INSN_LEN);
    for i in prog {
        out.extend_from_slice(&i.code.to_ne_bytes());
        out.push(i.jt);
        out.push(i.jf);
        out.extend_from_slice(&i.k.to_ne_bytes());
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn compiles_and_round_trips() {
        let prog = compile(FilterOptions::default()).expect("compile");
        assert!(prog.len() > 10);
        let back = kennel_sys::seccomp::parse(&to_bytes(&prog)).expect("parse");
        assert_eq!(back.len(), prog.len());
        assert!(back
            .iter()
            .zip(&prog)
            .all(|(a, b)| a.code == b.code && a.k == b.k && a.jt == b.jt && a.jf == b.jf));
        let with_keyring = compile(FilterOptions { keyring: true }).expect("compile");
        assert!(
            with_keyring.len() < prog.len(),
            "the keyring rules are left out"
        );
    }
}

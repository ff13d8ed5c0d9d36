//! Resource limits and shared pools: rlimits, ptys, descriptors, inotify,
//! processes. The exhausting probes print `HOLDING N` once they hold all
//! they could get and keep it until their standard input ends (or 30 s),
//! so that the suite can check the host and the neighbour meanwhile.

use std::io::{Read, Write};
use std::os::fd::{AsRawFd, OwnedFd};

use crate::sys::{self, ename};
use crate::verdict::{blocked, error, escaped, info, Verdict};

/// Prints `HOLDING n` and waits for stdin to end.
fn hold(n: usize) {
    println!("HOLDING {n}");
    let _ = std::io::stdout().flush();
    let mut pfd = libc::pollfd {
        fd: 0,
        events: libc::POLLIN,
        revents: 0,
    };
    let end = std::time::Instant::now() + std::time::Duration::from_secs(30);
    let mut buf = [0u8; 256];
    while std::time::Instant::now() < end {
        // SAFETY: pfd is one valid pollfd.
        let r = unsafe { libc::poll(&mut pfd, 1, 200) };
        if r > 0 {
            match std::io::stdin().read(&mut buf) {
                Ok(0) | Err(_) => return,
                Ok(_) => {}
            }
        }
    }
}

fn rlimit(res: libc::__rlimit_resource_t) -> (u64, u64) {
    let mut rl = libc::rlimit {
        rlim_cur: 0,
        rlim_max: 0,
    };
    // SAFETY: rl is a valid rlimit.
    unsafe { libc::getrlimit(res, &mut rl) };
    (rl.rlim_cur, rl.rlim_max)
}

/// Raises the soft descriptor limit to the hard one.
fn max_nofile() -> u64 {
    let (_, hard) = rlimit(libc::RLIMIT_NOFILE);
    let rl = libc::rlimit {
        rlim_cur: hard,
        rlim_max: hard,
    };
    // SAFETY: rl is a valid rlimit.
    unsafe { libc::setrlimit(libc::RLIMIT_NOFILE, &rl) };
    hard
}

/// `rlimits`: the limits every VE process must have, whatever its caller
/// had; then tries to raise RTPRIO and NICE (needs CAP_SYS_RESOURCE on
/// the host).
pub fn rlimits(_: &[String]) -> Verdict {
    let mut bad = Vec::new();
    let show = |v: u64| {
        if v == libc::RLIM_INFINITY {
            "unlimited".to_string()
        } else {
            v.to_string()
        }
    };
    let mut want = |name: &str, res, ok: &dyn Fn(u64, u64) -> bool| {
        let (s, h) = rlimit(res);
        info(format!("{name} {}/{}", show(s), show(h)));
        if !ok(s, h) {
            bad.push(format!("{name} {}/{}", show(s), show(h)));
        }
    };
    want("RTPRIO", libc::RLIMIT_RTPRIO, &|s, h| s == 0 && h == 0);
    want("NICE", libc::RLIMIT_NICE, &|s, h| s == 0 && h == 0);
    want("MEMLOCK", libc::RLIMIT_MEMLOCK, &|s, h| {
        s == 8 << 20 && h == 8 << 20
    });
    want("NOFILE", libc::RLIMIT_NOFILE, &|s, h| {
        s == 1024 && h <= 524288
    });
    want("CORE", libc::RLIMIT_CORE, &|s, _| s == 0);
    for res in [libc::RLIMIT_RTPRIO, libc::RLIMIT_NICE] {
        let rl = libc::rlimit {
            rlim_cur: 99,
            rlim_max: 99,
        };
        // SAFETY: rl is a valid rlimit.
        if unsafe { libc::setrlimit(res, &rl) } == 0 {
            bad.push(format!("raised limit {res} to 99"));
        }
    }
    if bad.is_empty() {
        blocked("RTPRIO 0/0, NICE 0/0, MEMLOCK 8M/8M, NOFILE 1024/<=524288, CORE 0, and they cannot be raised")
    } else {
        escaped(format!("limits: {}", bad.join(", ")))
    }
}

fn open_ptys(ptmx: &str) -> (Vec<OwnedFd>, i32) {
    let mut held = Vec::new();
    loop {
        match sys::open(ptmx, libc::O_RDWR | libc::O_NOCTTY) {
            Ok(fd) => {
                // SAFETY: fd is an open pty master.
                unsafe { libc::unlockpt(fd.as_raw_fd()) };
                held.push(fd);
                if held.len() >= 100_000 {
                    return (held, 0);
                }
            }
            Err(e) => return (held, e),
        }
    }
}

/// `pty-exhaust MAX`: opens the VE's ptys until the kernel refuses; more
/// than MAX (its numpty) is an escape. Holds them (see [`hold`]).
pub fn pty_exhaust(args: &[String]) -> Verdict {
    let Some(max) = args.first().and_then(|s| s.parse::<usize>().ok()) else {
        return error("usage: pty-exhaust MAX");
    };
    max_nofile();
    let (held, e) = open_ptys("/dev/ptmx");
    hold(held.len());
    if held.len() > max {
        escaped(format!("opened {} ptys (numpty {max})", held.len()))
    } else {
        blocked(format!("{} ptys, then {}", held.len(), ename(e)))
    }
}

/// `devpts-exhaust`: a devpts instance of the VE's own, opened until the
/// kernel's shared pool refuses; holds them.
pub fn devpts_exhaust(_: &[String]) -> Verdict {
    if let Err(e) = sys::private_mount_ns() {
        return error(format!("private mount namespace: {}", ename(e)));
    }
    let dir = match sys::scratch_dir("pts") {
        Ok(d) => d,
        Err(e) => return error(format!("scratch dir: {}", ename(e))),
    };
    if let Err(e) = sys::mount(
        Some("devpts"),
        &dir,
        Some("devpts"),
        0,
        Some("newinstance,ptmxmode=0666"),
    ) {
        hold(0);
        return blocked(format!("mount devpts: {}", ename(e)));
    }
    let limit = max_nofile();
    let (held, e) = open_ptys(&format!("{dir}/ptmx"));
    info(format!(
        "own devpts: {} ptys, then {} (nofile {limit})",
        held.len(),
        ename(e)
    ));
    hold(held.len());
    blocked(format!(
        "own devpts: {} ptys, then {}",
        held.len(),
        ename(e)
    ))
}

/// `devpts-remount`: raise the VE's devpts `max` by remounting it.
pub fn devpts_remount(_: &[String]) -> Verdict {
    let before = pts_options();
    let r = sys::mount(None, "/dev/pts", None, libc::MS_REMOUNT, Some("max=4096"));
    let after = pts_options();
    info(format!("/dev/pts before: {before}; after: {after}"));
    match r {
        Err(e) => blocked(format!("remount /dev/pts: {}", ename(e))),
        Ok(()) if after != before => escaped(format!("remounted /dev/pts: {after}")),
        Ok(()) => blocked("remount accepted but changed nothing"),
    }
}

fn pts_options() -> String {
    sys::read_text("/proc/self/mountinfo")
        .unwrap_or_default()
        .lines()
        .filter(|l| l.split(' ').nth(4) == Some("/dev/pts"))
        .filter_map(|l| l.rsplit(' ').next().map(str::to_string))
        .next_back()
        .unwrap_or_default()
}

/// `fd-exhaust`: descriptors until the kernel refuses; ENFILE (the host's
/// whole file table) is an escape, EMFILE (our own limit) is not.
pub fn fd_exhaust(_: &[String]) -> Verdict {
    let limit = max_nofile();
    let mut held = Vec::new();
    let e = loop {
        match sys::open("/dev/null", libc::O_RDONLY) {
            Ok(fd) => held.push(fd),
            Err(e) => break e,
        }
    };
    hold(held.len());
    match e {
        libc::ENFILE => escaped(format!(
            "the host's file table is full after {}",
            held.len()
        )),
        _ => blocked(format!(
            "{} descriptors (limit {limit}), then {}",
            held.len(),
            ename(e)
        )),
    }
}

/// `inotify-instances`: inotify instances until refused; holds them.
pub fn inotify_instances(_: &[String]) -> Verdict {
    max_nofile();
    let mut held = Vec::new();
    let e = loop {
        // SAFETY: no pointers.
        let fd = unsafe { libc::inotify_init1(libc::IN_CLOEXEC) };
        if fd < 0 {
            break sys::errno();
        }
        held.push(sys::own(fd));
        if held.len() >= 100_000 {
            break 0;
        }
    };
    hold(held.len());
    blocked(format!(
        "{} inotify instances, then {}",
        held.len(),
        ename(e)
    ))
}

/// `inotify-watches`: watches on every inode the VE can reach (in up to
/// 64 instances) until refused; holds them.
pub fn inotify_watches(_: &[String]) -> Verdict {
    max_nofile();
    let mut dirs = Vec::new();
    for top in [
        "/sys",
        "/proc/sys",
        "/usr",
        "/bin",
        "/sbin",
        "/etc",
        "/lib",
        "/dev",
    ] {
        walk(std::path::Path::new(top), &mut dirs, 0);
    }
    info(format!("{} paths to watch", dirs.len()));
    let mut watches = 0usize;
    let mut instances = Vec::new();
    let mut err = 0;
    'outer: for _ in 0..64 {
        // SAFETY: no pointers.
        let fd = unsafe { libc::inotify_init1(libc::IN_CLOEXEC) };
        if fd < 0 {
            err = sys::errno();
            break;
        }
        let fd = sys::own(fd);
        for d in &dirs {
            // SAFETY: d is a valid C string.
            let r = unsafe { libc::inotify_add_watch(fd.as_raw_fd(), d.as_ptr(), libc::IN_MODIFY) };
            if r < 0 {
                let e = sys::errno();
                if e == libc::ENOSPC || e == libc::ENOMEM {
                    err = e;
                    instances.push(fd);
                    break 'outer;
                }
            } else {
                watches += 1;
            }
        }
        instances.push(fd);
    }
    hold(watches);
    blocked(format!(
        "{watches} watches in {} instances, then {}",
        instances.len(),
        ename(err)
    ))
}

fn walk(p: &std::path::Path, out: &mut Vec<std::ffi::CString>, depth: usize) {
    if depth > 12 || out.len() > 400_000 {
        return;
    }
    if let Ok(c) = std::ffi::CString::new(p.as_os_str().as_encoded_bytes()) {
        out.push(c);
    }
    let Ok(md) = std::fs::symlink_metadata(p) else {
        return;
    };
    if !md.is_dir() {
        return;
    }
    for e in std::fs::read_dir(p).into_iter().flatten().flatten() {
        walk(&e.path(), out, depth + 1);
    }
}

/// `keys-exhaust`: user keys in the process keyring until refused (the
/// key quota is per host user: the VE's must be its own); holds them.
pub fn keys_exhaust(_: &[String]) -> Verdict {
    let (t, v) = (c"user", c"x");
    let mut n = 0usize;
    let e = loop {
        let Ok(desc) = std::ffi::CString::new(format!("kennel-attack-{n}")) else {
            break libc::EINVAL;
        };
        // SAFETY: valid C strings and a 1-byte payload; -2 is the
        // process keyring.
        let r = unsafe {
            libc::syscall(
                libc::SYS_add_key,
                t.as_ptr(),
                desc.as_ptr(),
                v.as_ptr(),
                1usize,
                -2isize,
            )
        };
        if r < 0 {
            break sys::errno();
        }
        n += 1;
        if n >= 100_000 {
            break 0;
        }
    };
    hold(n);
    blocked(format!("{n} keys, then {}", ename(e)))
}

/// `fork-bomb`: processes until refused; holds them, then kills them.
pub fn fork_bomb(_: &[String]) -> Verdict {
    let mut kids = Vec::new();
    let e = loop {
        // SAFETY: the child only pauses until it is killed.
        match unsafe { libc::fork() } {
            0 => loop {
                // SAFETY: no arguments.
                unsafe { libc::pause() };
            },
            -1 => break sys::errno(),
            pid => kids.push(pid),
        }
        if kids.len() >= 100_000 {
            break 0;
        }
    };
    hold(kids.len());
    for &k in &kids {
        // SAFETY: our own children.
        unsafe { libc::kill(k, libc::SIGKILL) };
    }
    for _ in &kids {
        // SAFETY: a null status pointer is allowed.
        unsafe { libc::wait(std::ptr::null_mut()) };
    }
    blocked(format!("{} processes, then {}", kids.len(), ename(e)))
}

/// `console-flood MIB`: writes MIB mebibytes to /dev/console (which the
/// monitor relays into a bounded ring).
pub fn console_flood(args: &[String]) -> Verdict {
    let mib: usize = args.first().and_then(|s| s.parse().ok()).unwrap_or(64);
    let Ok(mut f) = std::fs::OpenOptions::new().write(true).open("/dev/console") else {
        return error("open /dev/console");
    };
    let chunk = vec![b'A'; 1 << 20];
    for i in 0..mib {
        if let Err(e) = f.write_all(&chunk) {
            return blocked(format!("console write stopped after {i} MiB: {e}"));
        }
    }
    blocked(format!("wrote {mib} MiB to the console"))
}

/// `tcp-hold MIB [SECS]`: holds up to MIB MiB in loopback TCP queues (a receiver
/// that never reads), for at most 4096 connections; reports how much the
/// kernel took. Blocked when it took well less than asked: the VE's memory
/// cgroup was charged and stopped it.
pub fn tcp_hold(args: &[String]) -> Verdict {
    use std::io::Write;
    use std::net::{TcpListener, TcpStream};
    let mib: usize = args.first().and_then(|s| s.parse().ok()).unwrap_or(256);
    let want = mib << 20;
    let Ok(listener) = TcpListener::bind("127.0.0.1:0") else {
        return error("listen on loopback");
    };
    let Ok(addr) = listener.local_addr() else {
        return error("listener address");
    };
    let chunk = vec![0u8; 1 << 16];
    let mut held = 0usize;
    let mut keep = Vec::new();
    let mut why = String::from("stopped");
    'outer: while held < want && keep.len() < 4096 {
        let c = match TcpStream::connect(addr) {
            Ok(c) => c,
            Err(e) => {
                why = format!("connect: {e}");
                break;
            }
        };
        let s = match listener.accept() {
            Ok((s, _)) => s,
            Err(e) => {
                why = format!("accept: {e}");
                break;
            }
        };
        if c.set_nonblocking(true).is_err() {
            return error("non-blocking socket");
        }
        let mut c = c;
        let mut took = 0;
        loop {
            match c.write(&chunk) {
                Ok(n) if n > 0 => {
                    held += n;
                    took += n;
                    if held >= want {
                        break 'outer;
                    }
                }
                _ => break,
            }
        }
        keep.push((c, s));
        if took == 0 {
            why = "the queues took nothing more".into();
            break;
        }
    }
    info(format!(
        "{} connections, {} MiB queued ({why})",
        keep.len(),
        held >> 20
    ));
    if let Some(secs) = args.get(1).and_then(|s| s.parse::<u64>().ok()) {
        std::thread::sleep(std::time::Duration::from_secs(secs));
    }
    if held >= want {
        escaped(format!("held {mib} MiB in TCP queues"))
    } else {
        blocked(format!(
            "the kernel took {} of {mib} MiB ({why})",
            held >> 20
        ))
    }
}

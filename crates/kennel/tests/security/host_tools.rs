//! The host's tools touching what the VE prepared: `kennel exec` and
//! `enter` resolving a working directory through planted magic links
//! (runc CVE-2024-21626), `kennel set` writing files the VE replaced with
//! kernel files, FIFOs, huge files and links to the host, the kennel
//! binary run inside the VE through `#!/proc/self/exe` (CVE-2019-5736),
//! `destroy` of a tree full of traps, the shared template under a VE that
//! writes and sets setuid bits (CVE-2023-0386 class), and `set
//! --userpasswd` running a program the VE chose.

use std::fs;
use std::os::unix::fs::MetadataExt;
use std::time::{Duration, Instant};

use super::common::{self, pty::PtySession};
use super::lab::{case, parse, Case, Lab, Verdict, ATT, TOOL};

const FDS: std::ops::RangeInclusive<u32> = 3..=40;

fn magic(n: u32) -> String {
    format!("/proc/self/fd/{n}/../../../../../../../..")
}

/// `kennel exec [-t] -w DIR -- kennel-attack cwd-check`: the command must
/// not run, or run inside the VE.
fn exec_in(l: &Lab, dir: &str) -> Result<(), String> {
    let mut c = l.root.cmd();
    c.args(["exec", "-w", dir, ATT, "--", TOOL, "cwd-check"]);
    let (st, out, err) = common::output_within(&mut c, common::secs(10));
    match parse(st, &out, &err) {
        Verdict::Blocked(_) => Ok(()),
        Verdict::Error(_) if st.and_then(|s| s.code()) == Some(126) => {
            let lines: Vec<&str> = err.lines().collect();
            if lines.len() == 1 && lines[0].starts_with("kennel: ") {
                Ok(())
            } else {
                Err(format!(
                    "-w {dir}: exit 126 but not a one-line error: {err:?}"
                ))
            }
        }
        v => Err(format!("-w {dir}: {v:?} (stderr {err:?})")),
    }
}

fn plant_fd_links(l: &Lab) {
    let script: String = FDS
        .map(|n| format!("ln -sfn {} /w{n}; ", magic(n)))
        .collect();
    l.root.sh(ATT, &script);
}

fn on_pty(l: &Lab, args: &[&str], send: &str, want: &str) -> Result<String, String> {
    let mut c = l.root.cmd();
    c.args(args);
    let mut s = PtySession::spawn(c);
    if !send.is_empty() {
        // Type only once the shell prompts: input typed before the relay
        // makes the terminal raw may be flushed.
        let end = Instant::now() + common::secs(5);
        while Instant::now() < end && !s.seen.contains('#') {
            s.read_for(Duration::from_millis(20));
        }
        s.send(send.as_bytes());
    }
    let end = Instant::now() + common::secs(10);
    while Instant::now() < end && !s.seen.contains(want) {
        if let Ok(Some(_)) = s.child.try_wait() {
            break;
        }
        s.read_for(Duration::from_millis(50));
    }
    s.read_for(Duration::from_millis(50));
    let st = s.child.try_wait().ok().flatten();
    Ok(format!("{} [exit: {st:?}]", s.seen))
}

/// Every 16-hex-digit token that is not all zeros (a kernel address).
fn kernel_addresses(text: &str) -> Vec<String> {
    text.split_whitespace()
        .filter(|w| {
            w.len() == 16 && w.chars().all(|c| c.is_ascii_hexdigit()) && w.chars().any(|c| c != '0')
        })
        .map(str::to_string)
        .take(3)
        .collect()
}

/// Reads the attacker's /etc from the host side (its upper layer) and
/// from inside; nothing may hold a kernel address or `marker`.
fn etc_is_clean(l: &Lab, marker: Option<&str>) -> Result<(), String> {
    l.root
        .with_upper(ATT, |upper| upper_etc_is_clean(&upper.join("etc"), marker))
}

fn upper_etc_is_clean(upper: &std::path::Path, marker: Option<&str>) -> Result<(), String> {
    for e in fs::read_dir(upper).into_iter().flatten().flatten() {
        let p = e.path();
        let Ok(md) = fs::symlink_metadata(&p) else {
            continue;
        };
        if !md.is_file() || md.len() > 1 << 20 {
            continue;
        }
        let text = String::from_utf8_lossy(&fs::read(&p).unwrap_or_default()).into_owned();
        let addrs = kernel_addresses(&text);
        if !addrs.is_empty() {
            return Err(format!("{} holds kernel addresses {addrs:?}", p.display()));
        }
        let kernel_log = text.lines().any(|l| {
            l.starts_with('<')
                && l[1..]
                    .split_once('>')
                    .is_some_and(|(n, _)| n.parse::<u8>().is_ok())
        });
        if kernel_log || marker.is_some_and(|m| text.contains(m)) {
            return Err(format!("{} holds the host's kernel log", p.display()));
        }
    }
    Ok(())
}

/// `kennel set ATT ARGS` must return within 10 s with status 0.
fn set_promptly(l: &Lab, args: &[&str]) -> Result<(), String> {
    let mut a = vec!["set", ATT];
    a.extend_from_slice(args);
    let t = Instant::now();
    let (code, _, err) = l.kennel(&a, 30);
    if code.is_none() || t.elapsed() > common::secs(10) {
        return Err(format!("kennel set {args:?} hung ({:?})", t.elapsed()));
    }
    if code != Some(0) {
        return Err(format!("kennel set {args:?} failed ({code:?}): {err}"));
    }
    Ok(())
}

/// Plants `setup` over /etc/FILE, runs `kennel set`, checks /etc, undoes.
fn planted_set(
    l: &Lab,
    file: &str,
    setup: &str,
    set: &[&str],
    marker: Option<&str>,
) -> Result<(), String> {
    l.root.sh(
        ATT,
        &format!("cp -a /etc/{file} /root/{file}.orig 2>/dev/null; {setup}"),
    );
    let r = set_promptly(l, set).and_then(|_| etc_is_clean(l, marker));
    l.sh(
        ATT,
        &format!("umount -l /etc/{file} 2>/dev/null; rm -f /etc/{file}; cp -a /root/{file}.orig /etc/{file} 2>/dev/null; true"),
        10,
    );
    let _ = l.kennel(&["set", ATT, "--hostname", ATT], 10);
    r
}

/// Bytes of the kernel log not yet read through /proc/kmsg (syslog(2)
/// SIZE_UNREAD: only a query).
fn syslog_unread() -> i32 {
    // SAFETY: action 9 reads no buffer (null, length 0).
    unsafe { libc::klogctl(9, std::ptr::null_mut(), 0) }
}

/// True if the host's kernel log (`/dev/kmsg`) holds `marker`.
fn kmsg_has(marker: &str) -> bool {
    use std::io::Read;
    use std::os::unix::fs::OpenOptionsExt;
    let Ok(mut f) = fs::OpenOptions::new()
        .read(true)
        .custom_flags(libc::O_NONBLOCK)
        .open("/dev/kmsg")
    else {
        return false;
    };
    let mut buf = vec![0u8; 8192];
    loop {
        match f.read(&mut buf) {
            Ok(n) if n > 0 => {
                if String::from_utf8_lossy(&buf[..n]).contains(marker) {
                    return true;
                }
            }
            Ok(_) => return false,
            Err(e) if e.raw_os_error() == Some(libc::EPIPE) => continue,
            Err(_) => return false,
        }
    }
}

pub const CASES: &[Case] = &[
    case("exec_workdir_through_proc_self_fd", |l: &mut Lab| {
        plant_fd_links(l);
        for n in FDS {
            exec_in(l, &format!("/w{n}"))?;
        }
        Ok(())
    }),
    case("exec_workdir_root_replaced_by_fd_link", |l| {
        l.root.sh(ATT, "mv /root /r0");
        let mut r = Ok(());
        for n in FDS {
            l.root
                .sh(ATT, &format!("rm -f /root; ln -s {} /root", magic(n)));
            r = exec_in(l, "/root");
            if r.is_err() {
                break;
            }
        }
        l.root.sh(ATT, "rm -f /root; mv /r0 /root");
        r
    }),
    case("exec_t_workdir_through_proc_self_fd", |l| {
        plant_fd_links(l);
        for n in FDS {
            let dir = format!("/w{n}");
            let seen = on_pty(
                l,
                &["exec", "-t", "-w", &dir, ATT, "--", TOOL, "cwd-check"],
                "",
                "BLOCKED",
            )?;
            if seen.contains("ESCAPED") {
                return Err(format!("exec -t -w {dir}: {seen}"));
            }
        }
        Ok(())
    }),
    case("enter_with_root_replaced_by_fd_link", |l| {
        l.root.sh(ATT, "mv /root /r0");
        let mut r = Ok(());
        for n in FDS {
            l.root
                .sh(ATT, &format!("rm -f /root; ln -s {} /root", magic(n)));
            let seen = on_pty(
                l,
                &["enter", ATT],
                &format!("{TOOL} cwd-check; exit\n"),
                "BLOCKED",
            )?;
            if seen.contains("ESCAPED") || !seen.contains("BLOCKED") {
                r = Err(format!("enter with /root -> fd {n}: {seen}"));
                break;
            }
        }
        l.root.sh(ATT, "rm -f /root; mv /r0 /root");
        r
    }),
    case("proc_pid_cwd_of_exec_processes", |l| {
        plant_fd_links(l);
        let kids: Vec<_> = FDS
            .map(|n| {
                let mut c = l.root.cmd();
                c.args(["exec", "-w", &format!("/w{n}"), ATT, "--", "sleep", "3"])
                    .stdout(std::process::Stdio::null())
                    .stderr(std::process::Stdio::null());
                c.spawn().expect("spawn exec")
            })
            .collect();
        std::thread::sleep(Duration::from_millis(300));
        let v = l.attack(&["proc-scan"]);
        for mut k in kids {
            let _ = k.kill();
            let _ = k.wait();
        }
        match v {
            Verdict::Blocked(_) => Ok(()),
            v => Err(format!("{v:?}")),
        }
    }),
    case("set_hostname_hosts_bound_to_kallsyms", |l| {
        planted_set(
            l,
            "hosts",
            "mount --bind /proc/kallsyms /etc/hosts",
            &["--hostname", "x1"],
            None,
        )
    }),
    case("set_hostname_hosts_bound_to_kmsg", |l| {
        let marker = format!("kennel-suite-marker-{}", std::process::id());
        fs::write("/dev/kmsg", format!("{marker}\n"))
            .map_err(|e| format!("write /dev/kmsg: {e}"))?;
        // What a reader of /proc/kmsg (a klogd) has yet to read: a host
        // tool reading it for the VE would take it from the klogd.
        let unread = syslog_unread();
        planted_set(
            l,
            "hosts",
            "mount --bind /proc/kmsg /etc/hosts",
            &["--hostname", "x2"],
            Some(&marker),
        )?;
        if !kmsg_has(&marker) {
            return Err("the host's kernel log lost its marker".into());
        }
        let after = syslog_unread();
        if unread > 0 && after == 0 {
            return Err(format!(
                "the host's unread kernel log was drained ({unread} -> {after} bytes)"
            ));
        }
        Ok(())
    }),
    case("set_hostname_hosts_is_a_fifo", |l| {
        planted_set(
            l,
            "hosts",
            "rm -f /etc/hosts; mkfifo /etc/hosts",
            &["--hostname", "x3"],
            None,
        )
    }),
    case("set_hostname_hosts_is_2g_sparse", |l| {
        planted_set(
            l,
            "hosts",
            "rm -f /etc/hosts; truncate -s 2G /etc/hosts",
            &["--hostname", "x4"],
            None,
        )
    }),
    case("set_hostname_hosts_bound_to_dev_zero", |l| {
        planted_set(
            l,
            "hosts",
            "mount --bind /dev/zero /etc/hosts",
            &["--hostname", "x5"],
            None,
        )
    }),
    case("set_hostname_hosts_links_to_proc1_root", |l| {
        let target = l.canary_dir.join("hosts");
        planted_set(
            l,
            "hosts",
            &format!(
                "rm -f /etc/hosts; ln -s /proc/1/root{} /etc/hosts",
                target.display()
            ),
            &["--hostname", "x6"],
            None,
        )
    }),
    case("set_nameserver_resolv_bound_to_kallsyms", |l| {
        planted_set(
            l,
            "resolv.conf",
            "touch /etc/resolv.conf; mount --bind /proc/kallsyms /etc/resolv.conf",
            &["--nameserver", "192.0.2.53"],
            None,
        )
    }),
    case("set_hostname_etc_links_to_proc1_root", |l| {
        l.root.sh(
            ATT,
            &format!(
                "mv /etc /etc0 && /etc0/../bin/ln -s /proc/1/root{} /etc",
                l.canary_dir.display()
            ),
        );
        // Refusing with a one-line error is as good as a note: what
        // matters is that nothing lands in the host's canary directory.
        let t = Instant::now();
        let (code, _, err) = l.kennel(&["set", ATT, "--hostname", "x7"], 30);
        let r = match code {
            None => Err(format!("kennel set hung ({:?})", t.elapsed())),
            Some(0) => Ok(()),
            Some(_) if err.lines().count() == 1 && err.starts_with("kennel: ") => Ok(()),
            Some(c) => Err(format!("exit {c}: {err}")),
        };
        l.root.sh(ATT, "rm /etc; mv /etc0 /etc");
        let _ = l.kennel(&["set", ATT, "--hostname", ATT], 10);
        r
    }),
    case("start_writes_hostname_through_planted_link", |l| {
        l.root.sh(
            ATT,
            &format!(
                "rm -f /etc/hostname; ln -s /proc/1/root{}/secret /etc/hostname",
                l.canary_dir.display()
            ),
        );
        let (code, _, err) = l.kennel(&["restart", ATT], 30);
        l.sh(
            ATT,
            &format!("rm -f /etc/hostname; echo {ATT} > /etc/hostname"),
            10,
        );
        if code != Some(0) {
            return Err(format!("restart: {err}"));
        }
        Ok(())
    }),
    case("start_with_planted_network_files", |l| {
        // At start Kennel writes /etc/hostname, /etc/hosts and (with a
        // nameserver) /etc/resolv.conf inside the VE: FIFOs and links to
        // the host's files planted there must neither hang the start nor
        // lead out.
        let canary = l.canary_dir.display().to_string();
        let _ = l.kennel(&["set", ATT, "--nameserver", "192.0.2.53"], 10);
        l.root.sh(
            ATT,
            &format!(
                "cp /etc/hosts /root/hosts.orig; rm -f /etc/hosts /etc/resolv.conf /etc/hostname; mkfifo /etc/hosts; \
                 ln -s /proc/1/root{canary}/secret /etc/resolv.conf; ln -s /proc/self/fd/3/../../../../../../..{canary}/hosts /etc/hostname"
            ),
        );
        let t = Instant::now();
        let (code, _, err) = l.kennel(&["restart", ATT], 30);
        let took = t.elapsed();
        l.sh(
            ATT,
            &format!("rm -f /etc/hosts /etc/resolv.conf /etc/hostname; cp /root/hosts.orig /etc/hosts; echo {ATT} > /etc/hostname"),
            10,
        );
        let _ = l.kennel(&["set", ATT, "--nameserver", "none"], 10);
        if code != Some(0) || took > common::secs(10) {
            return Err(format!("restart ({code:?} after {took:?}): {err}"));
        }
        Ok(())
    }),
    case("exec_t_with_a_planted_ptmx", |l| {
        // The VE replaces its /dev/pts/ptmx: a FIFO (an open that blocks),
        // a link to the caller's terminal, /dev/null bound over it.
        let mut problems = Vec::new();
        for plant in [
            "mkfifo /dev/pts/ptmx",
            "ln -s /proc/self/fd/0 /dev/pts/ptmx",
            "touch /dev/pts/ptmx && mount --bind /dev/null /dev/pts/ptmx",
        ] {
            l.root.sh(
                ATT,
                &format!("umount -l /dev/pts; mount -t tmpfs none /dev/pts; {plant}"),
            );
            let mut c = l.root.cmd();
            c.args([
                "exec",
                "-t",
                ATT,
                "--",
                "/bin/sh",
                "-c",
                "echo RAN-ON-$(tty)",
            ]);
            let mut s = PtySession::spawn(c);
            let end = Instant::now() + common::secs(10);
            while Instant::now() < end {
                if let Ok(Some(_)) = s.child.try_wait() {
                    break;
                }
                s.read_for(Duration::from_millis(50));
            }
            let seen = s.read_for(Duration::from_millis(100));
            if !matches!(s.child.try_wait(), Ok(Some(_))) {
                problems.push(format!("{plant}: kennel exec -t hung"));
            } else if seen.contains("RAN-ON-") && !seen.contains("RAN-ON-/dev/pts/") {
                problems.push(format!("{plant}: ran on {seen}"));
            }
            let _ = l.restart_attacker();
        }
        if problems.is_empty() {
            Ok(())
        } else {
            Err(problems.join("; "))
        }
    })
    .restarts(),
    case("cve_2019_5736_proc_self_exe", |l| {
        let before = fs::read(common::KENNEL).map_err(|e| e.to_string())?;
        l.root.sh(
            ATT,
            "rm /bin/sh; printf '#!/proc/self/exe\\n' > /bin/sh; /bin/busybox chmod 755 /bin/sh",
        );
        let mut race = l.root.cmd();
        race.args(["exec", ATT, "--", TOOL, "exe-race", "6"]);
        let racer = std::thread::spawn(move || {
            let (st, out, err) = common::output_within(&mut race, common::secs(30));
            parse(st, &out, &err)
        });
        std::thread::sleep(Duration::from_millis(300));
        for _ in 0..12 {
            let _ = l.kennel(&["exec", ATT, "--", "/bin/sh", "-c", "true"], 10);
            std::thread::sleep(Duration::from_millis(200));
        }
        let v = racer.join().map_err(|_| "racer panicked".to_string())?;
        eprintln!("    exe-race: {v:?}");
        l.repair_sh();
        let after = fs::read(common::KENNEL).map_err(|e| e.to_string())?;
        if before != after {
            return Err("the host's kennel binary changed".into());
        }
        match v {
            Verdict::Blocked(_) => Ok(()),
            v => Err(format!("{v:?}")),
        }
    }),
    case("destroy_a_tree_of_traps", |l| {
        let canary = l.canary_dir.display().to_string();
        l.root.ok(&["create", "trap", "--template", "busybox"]);
        l.root.ok(&["start", "trap"]);
        l.root.sh(
            "trap",
            &format!(
                "ln -s {canary} /root/abs; ln -s /proc/1/root{canary} /root/proc1; ln -s ../../../../../../.. /root/up; \
                 mkfifo /root/fifo; mkdir /root/deep; cd /root/deep; i=0; while [ $i -lt 1500 ]; do mkdir d; cd d; i=$((i+1)); done; \
                 ln -s {canary}/secret leaf"
            ),
        );
        // As an administrator's shell runs it: 1024 descriptors.
        let t = Instant::now();
        let mut c = std::process::Command::new("prlimit");
        c.args(["--nofile=1024:1024", "--", common::KENNEL, "--root"])
            .arg(&l.root.dir)
            .args(["destroy", "--force", "trap"])
            .stdin(std::process::Stdio::null());
        let (st, _, err) = common::output_within(&mut c, common::secs(60));
        let left: Vec<String> = fs::read_dir(l.root.dir.join("lib/ve"))
            .into_iter()
            .flatten()
            .flatten()
            .map(|e| e.file_name().to_string_lossy().into_owned())
            .filter(|n| n.contains("trap"))
            .collect();
        if st.map(|s| s.success()) != Some(true) {
            return Err(format!(
                "destroy failed ({st:?}, {:?}): {err} (left behind: {left:?})",
                t.elapsed()
            ));
        }
        if !left.is_empty() {
            return Err(format!("destroy left {left:?} behind"));
        }
        Ok(())
    }),
    case("template_writes_stay_in_the_ve", |l| {
        let (_, nb_before) = l.sh(
            super::lab::NB,
            "md5sum /bin/busybox /etc/passwd; ls -l /bin/busybox",
            10,
        );
        l.root.sh(ATT, "echo 'pwned:x:0:0::/:/bin/sh' >> /etc/passwd; chmod 6755 /bin/busybox; echo x >> /etc/inittab");
        let (_, nb_after) = l.sh(
            super::lab::NB,
            "md5sum /bin/busybox /etc/passwd; ls -l /bin/busybox",
            10,
        );
        let tpl = l.root.dir.join("lib/templates/busybox/rootfs");
        let passwd = fs::read_to_string(tpl.join("etc/passwd")).unwrap_or_default();
        let mode = fs::metadata(tpl.join("bin/busybox"))
            .map(|m| m.mode())
            .unwrap_or(0);
        l.root.sh(
            ATT,
            "sed -i '/^pwned:/d' /etc/passwd; chmod 755 /bin/busybox",
        );
        if nb_before != nb_after {
            return Err(format!(
                "the neighbour's files changed: {nb_before} -> {nb_after}"
            ));
        }
        if passwd.contains("pwned") || mode & 0o6000 != 0 {
            return Err("the shared template changed".into());
        }
        Ok(())
    }),
    case("overlay_copy_up_keeps_ve_ids", |l| {
        // Copy-ups of template files (owned by host root on disk) into
        // the VE's layer, and the VE's own overlay over them: nothing in
        // the VE's layer may belong to anyone but the VE's own ids.
        // (An overlay's upper layer cannot be on an overlay: the VE's own
        // overlay takes a tmpfs for it, and its copy-up is looked at
        // through /proc/PID/root, as the CVE-2023-0386 exploit's was.)
        let (_, nested) = l.sh(
            ATT,
            "chmod 4755 /bin/busybox; chown 0:0 /etc/passwd; chmod u+s /etc/passwd; \
             mkdir -p /tmp/ov && mount -t tmpfs none /tmp/ov && mkdir -p /tmp/ov/u /tmp/ov/w /tmp/ov/m && \
             mount -t overlay overlay -o lowerdir=/bin,upperdir=/tmp/ov/u,workdir=/tmp/ov/w /tmp/ov/m && \
             chmod 4755 /tmp/ov/m/busybox && echo NESTED-OK",
            10,
        );
        let base = l.root.config(ATT)["idmap"]["uid_base"]
            .as_u64()
            .unwrap_or(0) as u32;
        let mut bad = Vec::new();
        if nested.contains("NESTED-OK") {
            let init = l.root.init_pid(ATT);
            match fs::symlink_metadata(format!("/proc/{init}/root/tmp/ov/u/busybox")) {
                Ok(md) if md.uid() < base || md.uid() >= base + 65536 => bad.push(format!(
                    "the VE's own overlay copied busybox up as host uid {} mode {:o}",
                    md.uid(),
                    md.mode()
                )),
                Ok(_) => {}
                Err(e) => bad.push(format!("control: no copy-up in the VE's own overlay: {e}")),
            }
        } else {
            eprintln!("    (the VE could not mount an overlay of its own: {nested})");
        }
        l.root.with_upper(ATT, |upper| {
            let mut stack = vec![upper.to_path_buf()];
            while let Some(d) = stack.pop() {
                for e in fs::read_dir(&d).into_iter().flatten().flatten() {
                    let Ok(md) = fs::symlink_metadata(e.path()) else {
                        continue;
                    };
                    let foreign = |id: u32| id < base || id >= base + 65536;
                    if (foreign(md.uid()) || foreign(md.gid())) && bad.len() < 5 {
                        bad.push(format!(
                            "{} {}:{} {:o}",
                            e.path().display(),
                            md.uid(),
                            md.gid(),
                            md.mode()
                        ));
                    }
                    if md.is_dir() {
                        stack.push(e.path());
                    }
                }
            }
        });
        l.sh(
            ATT,
            "umount /tmp/ov/m; umount /tmp/ov; rm -rf /tmp/ov; chmod 755 /bin/busybox; chmod 644 /etc/passwd",
            10,
        );
        if bad.is_empty() {
            Ok(())
        } else {
            Err(format!(
                "files of foreign owners in the VE's layer: {bad:?}"
            ))
        }
    }),
    // Found by a hostile-tenant review: after `kennel exec` (the
    // password's chpasswd) the CLI kept the VE's PID namespace for its
    // later children, so the helper that writes the VE's files and the
    // host's nft and tc ran as processes the VE could see and signal. The
    // VE makes that helper's work long (many stale network files to
    // remove) and watches its PID namespace meanwhile.
    case("host_helpers_outside_the_ves_pid_namespace", |l| {
        l.root.sh(
            ATT,
            "mkdir -p /etc/systemd/network && cd /etc/systemd/network && i=0; \
             while [ $i -lt 3000 ]; do : > 10-kennel-stale$i.network; i=$((i+1)); done; \
             for d in /usr/sbin /usr/bin /sbin /bin; do mkdir -p $d; \
               printf '#!/bin/sh\n( i=0; while [ $i -lt 400 ]; do for p in /proc/[0-9]*; do cat $p/comm 2>/dev/null; done; i=$((i+1)); done | sort -u > /tmp/seen ) </dev/null >/dev/null 2>&1 &\ncat > /dev/null\n' > $d/chpasswd; chmod 755 $d/chpasswd; done",
        );
        let (code, _, err) = l.kennel(
            &[
                "set",
                ATT,
                "--userpasswd",
                "root:x",
                "--hostname",
                "helpers",
            ],
            60,
        );
        let (_, seen) = l.sh(ATT, "sleep 3; cat /tmp/seen; rm -f /tmp/seen /usr/sbin/chpasswd /usr/bin/chpasswd /sbin/chpasswd; ls /etc/systemd/network | wc -l", 30);
        if code != Some(0) {
            return Err(format!("kennel set failed ({code:?}): {err}"));
        }
        if seen
            .lines()
            .any(|c| c.trim() == "kennel" || c.trim() == "nft" || c.trim() == "tc")
        {
            return Err(format!("host processes in the VE's PID namespace: {seen}"));
        }
        Ok(())
    }),
    // Found by a hostile-tenant review: a chpasswd that never ends held
    // `kennel set`, and the VE's lock, for ever.
    case("set_userpasswd_has_a_deadline", |l| {
        l.root.sh(
            ATT,
            "for d in /usr/sbin /usr/bin /sbin /bin; do mkdir -p $d; printf '#!/bin/sh\nexec sleep 100000\n' > $d/chpasswd; chmod 755 $d/chpasswd; done",
        );
        let t = Instant::now();
        let (code, _, err) = l.kennel(&["set", ATT, "--userpasswd", "root:x"], 90);
        let took = t.elapsed();
        let _ = l.sh(
            ATT,
            "rm -f /usr/sbin/chpasswd /usr/bin/chpasswd /sbin/chpasswd; true",
            10,
        );
        if code == Some(0) || code.is_none() || took > std::time::Duration::from_secs(60) {
            return Err(format!("kennel set ended {code:?} after {took:?}: {err}"));
        }
        // The VE's lock is free again.
        let (code, _, err) = l.kennel(&["set", ATT, "--hostname", "after-deadline"], 30);
        if code != Some(0) {
            return Err(format!("the VE stayed locked ({code:?}): {err}"));
        }
        Ok(())
    }),
    case("set_userpasswd_runs_contained", |l| {
        let probe = format!(
            "#!/bin/sh\n{{ {TOOL} cwd-check; {TOOL} proc-scan; ls -l /proc/$$/fd/; }} > /tmp/chpasswd.out 2>&1\ncat > /dev/null\n"
        );
        l.root.sh(ATT, &format!("for d in /usr/sbin /usr/bin /sbin /bin; do mkdir -p $d; printf '%s' '{probe}' > $d/chpasswd; chmod 755 $d/chpasswd; done"));
        let (code, _, err) = l.kennel(&["set", ATT, "--userpasswd", "root:kennel-test"], 20);
        let (_, out) = l.sh(ATT, "cat /tmp/chpasswd.out; rm -f /tmp/chpasswd.out /usr/sbin/chpasswd /usr/bin/chpasswd /sbin/chpasswd", 10);
        if code != Some(0) {
            return Err(format!("kennel set --userpasswd failed ({code:?}): {err}"));
        }
        // The script's own streams (listed through /proc/$$/fd, not the
        // redirection above): Kennel's pipes, nothing of the host's.
        let pipes = ["0 -> pipe:", "1 -> pipe:", "2 -> pipe:"]
            .iter()
            .all(|p| out.contains(p));
        if out.contains("ESCAPED")
            || !out.contains("BLOCKED")
            || !pipes
            || out.contains("/var/")
            || out.contains("/work/")
        {
            return Err(format!("the VE's chpasswd saw: {out}"));
        }
        Ok(())
    }),
];

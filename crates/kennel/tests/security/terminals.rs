//! Terminals and standard streams: a host terminal or file handed to a
//! VE process (bubblewrap CVE-2017-5226, lxc-attach), the VE's pty pool
//! (numpty, a devpts of its own, remounting `max`), and the relays of
//! `console` and `exec -t` when the VE stops reading its terminal.

use std::fs;
use std::time::{Duration, Instant};

use super::common::{self, pty::PtySession};
use super::lab::{case, parse, Case, Lab, Verdict, ATT, NB, TOOL};

/// `kennel exec ATT -- kennel-attack ARGS` with a host file as stdin and
/// host files as stdout and stderr; the verdict from the stdout file.
fn exec_with_files(l: &Lab, args: &[&str], secret: &str) -> Verdict {
    let dir = l.root.dir.join("streams");
    fs::create_dir_all(&dir).expect("streams dir");
    let (inp, out, err) = (dir.join("in"), dir.join("out"), dir.join("err"));
    fs::write(&inp, "what the command may read\n").expect("in");
    fs::write(&out, format!("{secret}\n")).expect("out");
    let mut c = l.root.cmd();
    c.args(["exec", ATT, "--", TOOL])
        .args(args)
        .stdin(fs::File::open(&inp).expect("open in"))
        .stdout(
            fs::OpenOptions::new()
                .append(true)
                .open(&out)
                .expect("open out"),
        )
        .stderr(fs::File::create(&err).expect("err"));
    let mut child = c.spawn().expect("spawn");
    let end = Instant::now() + common::secs(20);
    let st = loop {
        if let Ok(Some(st)) = child.try_wait() {
            break Some(st);
        }
        if Instant::now() > end {
            let _ = child.kill();
            let _ = child.wait();
            break None;
        }
        std::thread::sleep(Duration::from_millis(10));
    };
    let text = fs::read_to_string(&out).unwrap_or_default();
    parse(st, &text, &fs::read_to_string(&err).unwrap_or_default())
}

/// `kennel console` with every reader of the VE's console stopped and the
/// input flooded still ends on `key` (or on SIGTERM without one).
fn console_ends_with_input_full(l: &Lab, key: Option<u8>) -> Result<(), String> {
    // Stop whatever reads the VE's console.
    l.sh(
        ATT,
        "for p in /proc/[0-9]*; do [ \"$(readlink $p/fd/0)\" = /dev/console ] && [ ${p#/proc/} != 1 ] && kill -STOP ${p#/proc/}; done; true",
        10,
    );
    let mut s = on_terminal(l, &["console", ATT]);
    s.read_for(Duration::from_millis(300));
    flood(&mut s, common::secs(2));
    let pid = s.child.id();
    let r = ends_after(&mut s, key, pid);
    drop(s);
    l.sh(ATT, "kill -CONT -1; true", 10);
    r
}

fn on_terminal(l: &Lab, args: &[&str]) -> PtySession {
    let mut c = l.root.cmd();
    c.args(args);
    PtySession::spawn(c)
}

/// Pushes input into a terminal whose reader stopped, for `dur`; true
/// if the terminal still took all of it.
fn flood(s: &mut PtySession, dur: Duration) -> usize {
    let chunk = [b'a'; 1024];
    let end = Instant::now() + dur;
    let mut took = 0;
    while Instant::now() < end {
        took += s.try_send(&chunk);
        s.read_for(Duration::from_millis(5));
    }
    took
}

/// Sends `key` until the terminal takes it, then waits for the relay to
/// end: it must within a few seconds.
fn ends_after(s: &mut PtySession, key: Option<u8>, pid: u32) -> Result<(), String> {
    let end = Instant::now() + common::secs(5);
    match key {
        Some(k) => {
            while s.try_send(&[k]) == 0 {
                if Instant::now() > end {
                    return Err("the relay stopped reading its terminal (input full)".into());
                }
                s.read_for(Duration::from_millis(20));
            }
        }
        None => {
            let _ = std::process::Command::new("kill")
                .args(["-TERM", &pid.to_string()])
                .status();
        }
    }
    let end = Instant::now() + common::secs(5);
    while Instant::now() < end {
        if let Ok(Some(_)) = s.child.try_wait() {
            return Ok(());
        }
        s.read_for(Duration::from_millis(20));
    }
    Err(format!(
        "the relay did not end after {}",
        if key.is_some() {
            "its detach key"
        } else {
            "SIGTERM"
        }
    ))
}

pub const CASES: &[Case] = &[
    case(
        "exec_T_cannot_write_or_read_the_callers_terminal_later",
        |l: &mut Lab| {
            let mut s = on_terminal(
                l,
                &[
                    "exec",
                    "-T",
                    ATT,
                    "--",
                    "/bin/sh",
                    "-c",
                    "(sleep 1; echo INJECTED >&1; cat > /tmp/stolen) &",
                ],
            );
            let _ = s.wait(common::secs(10));
            s.read_for(common::secs(2));
            s.send(b"TYPED-SECRET\n");
            let seen = s.read_for(Duration::from_millis(500));
            let (_, stolen) = l.sh(
                ATT,
                "cat /tmp/stolen 2>/dev/null; rm -f /tmp/stolen; pkill cat 2>/dev/null; true",
                10,
            );
            if seen.contains("INJECTED") {
                return Err(
                    "a VE process wrote into the caller's terminal after exec returned".into(),
                );
            }
            if stolen.contains("TYPED-SECRET") {
                return Err("a VE process read what was typed after exec returned".into());
            }
            Ok(())
        },
    ),
    case("exec_T_streams_on_a_terminal_are_pipes", |l| {
        let mut s = on_terminal(l, &["exec", "-T", ATT, "--", TOOL, "stdio"]);
        let _ = s.wait(common::secs(10));
        let seen = s.read_for(Duration::from_millis(200));
        if seen.contains("BLOCKED") && !seen.contains("ESCAPED") {
            Ok(())
        } else {
            Err(seen)
        }
    }),
    case(
        "exec_streams_from_files_are_pipes",
        |l| match exec_with_files(l, &["stdio"], "host-secret-1") {
            Verdict::Blocked(_) => Ok(()),
            v => Err(format!("{v:?}")),
        },
    ),
    case(
        "exec_stream_reopened_reads_the_callers_file",
        |l| match exec_with_files(l, &["reopen-stdio", "host-secret-2"], "host-secret-2") {
            Verdict::Blocked(_) => Ok(()),
            v => Err(format!("{v:?}")),
        },
    ),
    case("exec_T_tiocsti_into_the_callers_terminal", |l| {
        let mut s = on_terminal(l, &["exec", "-T", ATT, "--", TOOL, "sys", "tiocsti"]);
        let _ = s.wait(common::secs(10));
        let seen = s.read_for(Duration::from_millis(200));
        if seen.contains("BLOCKED") {
            Ok(())
        } else {
            Err(seen)
        }
    }),
    case("pty_exhaustion_stops_at_numpty", |l| {
        // The lab's VEs have the default numpty, 16.
        let h = l.hold(&["pty-exhaust", "16"], 20)?;
        let n = h.count;
        let v = h.release();
        match v {
            Verdict::Blocked(_) if n <= 16 => Ok(()),
            v => Err(format!("{n} ptys: {v:?}")),
        }
    })
    .restarts(),
    case("devpts_remount_max", |l| {
        l.blocked(&["devpts-remount"]).map(|_| ())
    })
    .restarts(),
    case("own_devpts_exhausted_neighbour_still_usable", |l| {
        let h = l.hold(&["devpts-exhaust"], 30)?;
        let held = h.count;
        let mut problems = Vec::new();
        let mut s = on_terminal(
            l,
            &[
                "exec",
                "-t",
                NB,
                "--",
                "/bin/sh",
                "-c",
                "echo TTY-$((40+2))",
            ],
        );
        let _ = s.wait(common::secs(10));
        if !s.read_for(Duration::from_millis(200)).contains("TTY-42") {
            problems.push(format!("exec -t into the neighbour failed: {}", s.seen));
        }
        let mut e = on_terminal(l, &["enter", NB]);
        e.send(b"echo ENTER-$((40+3)); exit\n");
        let _ = e.wait(common::secs(10));
        if !e.read_for(Duration::from_millis(200)).contains("ENTER-43") {
            problems.push(format!("enter into the neighbour failed: {}", e.seen));
        }
        let (code, _, err) = l.kennel(&["create", "fresh", "--template", "busybox"], 20);
        let started = code == Some(0) && l.kennel(&["start", "fresh"], 30).0 == Some(0);
        if !started {
            problems.push(format!("a new VE could not start: {err}"));
        }
        let _ = l.kennel(&["destroy", "--force", "fresh"], 30);
        let v = h.release();
        if let Verdict::Escaped(s) = v {
            problems.push(s);
        }
        if problems.is_empty() {
            Ok(())
        } else {
            Err(format!("with {held} ptys held: {}", problems.join("; ")))
        }
    })
    .restarts(),
    case(
        "console_written_a_byte_at_a_time_cannot_spin_the_monitor",
        |l| {
            // The monitor's CPU is charged to no VE: one-byte writes must not
            // wake it per byte (100 reads a second at most).
            let mon = l.root.monitor_pid(ATT);
            let woken = || {
                fs::read_to_string(format!("/proc/{mon}/status"))
                    .ok()
                    .and_then(|s| {
                        s.lines()
                            .find_map(|l| l.strip_prefix("voluntary_ctxt_switches:"))
                            .and_then(|v| v.trim().parse::<u64>().ok())
                    })
                    .ok_or_else(|| "the monitor's status is unreadable".to_string())
            };
            let before = woken()?;
            let t = Instant::now();
            l.sh(
                ATT,
                "timeout 3 sh -c 'while :; do echo -n x; done > /dev/console'; true",
                20,
            );
            let secs = t.elapsed().as_secs() + 1;
            let woke = woken()? - before;
            if woke > 100 * secs + 50 {
                return Err(format!(
                    "the monitor woke {woke} times in about {secs} s of one-byte console writes"
                ));
            }
            Ok(())
        },
    ),
    case("console_detach_key_with_the_ves_input_full", |l| {
        console_ends_with_input_full(l, Some(0x1d))
    })
    .restarts(),
    case("console_sigterm_with_the_ves_input_full", |l| {
        console_ends_with_input_full(l, None)
    })
    .restarts(),
    case("enter_sigterm_with_the_shells_input_full", |l| {
        let mut s = on_terminal(l, &["enter", ATT]);
        s.read_for(Duration::from_millis(300));
        s.send(b"exec sleep 30\n");
        s.read_for(Duration::from_millis(300));
        flood(&mut s, common::secs(2));
        let pid = s.child.id();
        ends_after(&mut s, None, pid)
    }),
    case("exec_t_sigterm_with_the_commands_input_full", |l| {
        let mut s = on_terminal(l, &["exec", "-t", ATT, "--", "sleep", "30"]);
        s.read_for(Duration::from_millis(300));
        flood(&mut s, common::secs(2));
        let pid = s.child.id();
        ends_after(&mut s, None, pid)
    }),
];

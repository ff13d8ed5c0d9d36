//! Interactive use: `kennel enter`, `kennel exec -t` and `kennel console`,
//! each driven through a real pseudo-terminal.
#![allow(clippy::expect_used)] // test code: a failed expectation is a failed test

mod common;

use std::time::Duration;

use common::pty::PtySession;
use common::TestRoot;

fn t() -> Duration {
    common::secs(10)
}

/// `kennel exec FLAG 101 -- /bin/sh -c SCRIPT` on a new pseudo-terminal.
fn exec_on_a_terminal(root: &TestRoot, flag: &str, script: &str) -> PtySession {
    let mut c = root.cmd();
    c.args(["exec", flag, "101", "--", "/bin/sh", "-c", script]);
    PtySession::spawn(c)
}

#[test]
fn enter_gives_a_root_shell_on_the_ves_own_pty() {
    let root = TestRoot::new("term-enter");
    root.start_busybox("101", &[]);
    let mut s = PtySession::spawn({
        let mut c = root.cmd();
        c.args(["enter", "101"]);
        c
    });
    s.send(b"echo MARK$((6*7)) $(id -u) $(tty) $(stty size)\n");
    let out = s.expect("MARK42", t());
    s.expect("/dev/pts/", t());
    assert!(out.contains("MARK42 0 /dev/pts/"), "{out}");
    s.expect("30 100", t()); // the window size of our terminal reached the VE
    s.send(b"ls /proc/self/fd | wc -l\n");
    s.send(b"exit 5\n");
    let st = s.wait(t());
    assert_eq!(st.code(), Some(5), "enter returns the shell's status");
    root.finish();
}

#[test]
fn exec_with_a_terminal() {
    let root = TestRoot::new("term-exec");
    root.start_busybox("101", &[]);
    let mut s = exec_on_a_terminal(
        &root,
        "-t",
        "tty; [ -t 0 ] && echo IS_TTY; read x; echo got:$x",
    );
    s.expect("IS_TTY", t());
    s.send(b"abc\n");
    s.expect("got:abc", t());
    assert!(
        s.seen.contains("/dev/pts/"),
        "the command's terminal is a pty of the VE: {}",
        s.seen
    );
    assert_eq!(s.wait(t()).code(), Some(0));
    root.finish();
}

#[test]
fn exec_without_a_pty_gets_pipes_not_the_terminal() {
    // Run from a terminal with -T, the command's streams are pipes that
    // kennel relays: the caller's terminal never enters the VE, so the
    // command has no terminal at all (no /dev/tty, nothing to inject into).
    let root = TestRoot::new("term-notty");
    root.start_busybox("101", &[]);
    let script = concat!(
        "[ -t 0 ] || [ -t 1 ] || [ -t 2 ] || echo NO-TERMINAL; ",
        "for f in 0 1 2; do readlink /proc/self/fd/$f; done | grep -c '^pipe:' | sed 's/^/PIPES=/'; ",
        "echo x > /dev/tty 2>/dev/null || echo NO-CTTY; ",
        "echo TTY_NR=$(cut -d' ' -f7 /proc/self/stat)"
    );
    let mut s = exec_on_a_terminal(&root, "-T", script);
    let out = s.expect("TTY_NR=", t());
    s.wait(t());
    assert!(out.contains("NO-TERMINAL"), "{out}");
    assert!(out.contains("PIPES=3"), "{out}");
    assert!(out.contains("NO-CTTY"), "{out}");
    assert!(s.seen.contains("TTY_NR=0"), "{}", s.seen);
    root.finish();
}

/// The escape the hostile-tenant review found: a VE process that keeps the
/// streams `kennel exec` gave it must not reach the administrator's
/// terminal once `kennel exec` returned: neither write into it nor read
/// what is typed there next.
#[test]
fn a_ve_process_cannot_reach_the_terminal_after_exec_returns() {
    let root = TestRoot::new("term-after");
    root.start_busybox("101", &[]);
    // The administrator's shell: runs kennel exec, then reads a line.
    let admin = format!(
        "{} --root {} exec -T 101 -- /bin/sh -c '(sleep 1; echo INJECTED; echo INJECTED >&2; read x; echo \"$x\" > /stolen) & echo STARTED';          echo EXEC-DONE; read line; echo TYPED:$line; sleep 2; echo ADMIN-END",
        common::KENNEL,
        root.dir.display()
    );
    let mut s = PtySession::spawn({
        let mut c = std::process::Command::new("/bin/sh");
        c.args(["-c", &admin]);
        c
    });
    s.expect("EXEC-DONE", t());
    std::thread::sleep(Duration::from_millis(1500));
    s.send(b"SECRET\n");
    s.expect("TYPED:SECRET", t());
    s.expect("ADMIN-END", t());
    assert!(s.wait(t()).success());
    assert!(
        !s.seen.contains("INJECTED"),
        "a VE process wrote into the terminal after exec returned:\n{}",
        s.seen
    );
    let stolen = root.run(&["exec", "101", "--", "cat", "/stolen"]);
    assert!(
        !String::from_utf8_lossy(&stolen.stdout).contains("SECRET"),
        "a VE process read the administrator's keystrokes"
    );
    root.finish();
}

/// With a pty too: processes the command leaves behind that keep writing
/// to the pty (and reading it) neither keep `kennel exec -t` relaying nor
/// get what is typed after the command ended (found by a hostile-tenant
/// review: an invisible escape sequence in a loop kept the relay alive).
#[test]
fn exec_t_stops_relaying_when_the_command_ends() {
    let root = TestRoot::new("term-linger");
    root.start_busybox("101", &[]);
    let inner = r#"T=$(tty)
for n in 1 2 3 4; do ( trap "" HUP INT TERM; exec 0<$T; while :; do printf "[0m"; done ) & done
( trap "" HUP INT TERM; exec cat < $T > /tmp/stolen 2>/dev/null ) &
sleep 0.5; echo SHELL-EXITS; exit 0"#;
    let mut s = exec_on_a_terminal(&root, "-t", inner);
    s.expect("SHELL-EXITS", t());
    std::thread::sleep(Duration::from_millis(200));
    s.send_what_fits(b"typed-after\r");
    let st = s.wait(common::secs(3));
    assert_eq!(st.code(), Some(0), "{st:?}");
    let stolen = root.sh("101", "cat /tmp/stolen; kill -9 $(ps -o pid,args | awk 'NR>1 && $1!=1 && !/getty/ && !/awk/ {print $1}') 2>/dev/null; true");
    assert!(!stolen.contains("typed-after"), "{stolen}");
    root.finish();
}

/// A VE that stops reading its terminal (the pty's input queue full)
/// cannot wedge the relay: signals and the detach key still work.
#[test]
fn relays_answer_while_the_ve_does_not_read() {
    let root = TestRoot::new("term-stuck");
    root.start_busybox("101", &[]);
    // Raw mode: the line discipline then stops taking input once its
    // buffer is full (in canonical mode it throws the excess away).
    let mut s = exec_on_a_terminal(&root, "-t", "stty raw -echo; echo READY; sleep 60");
    s.expect("READY", t());
    let junk = vec![b'a'; 256 * 1024];
    let sent = s.send_what_fits(&junk);
    std::thread::sleep(Duration::from_millis(300));
    s.send_what_fits(&junk);
    let pid = rustix::process::Pid::from_raw(s.child.id() as i32).expect("pid");
    rustix::process::kill_process(pid, rustix::process::Signal::TERM).expect("SIGTERM");
    let st = s.wait(t());
    assert!(
        !st.success(),
        "exec -t ended by SIGTERM: {st:?} (sent {sent} bytes)"
    );
    // The console: its getty stopped, input piling up, Ctrl-] detaches.
    root.sh(
        "101",
        "for p in /proc/[0-9]*; do grep -q getty $p/comm 2>/dev/null && kill -STOP ${p#/proc/}; done; \
         stty -F /dev/console raw -echo",
    );
    let mut c = PtySession::spawn({
        let mut c = root.cmd();
        c.args(["console", "101"]);
        c
    });
    c.expect("Connected to VE 101's console", t());
    // Keep reading what comes back (the pty echoes), as a terminal would.
    for _ in 0..20 {
        c.send_what_fits(&junk[..16 * 1024]);
        c.read_for(Duration::from_millis(20));
    }
    c.send(&[0x1d]);
    c.expect("Detached from VE 101's console", t());
    assert_eq!(c.wait(t()).code(), Some(0));
    root.finish();
}

#[test]
fn ctrl_c_reaches_a_command_without_a_pty() {
    // The command runs in a session of its own (see above), so the
    // terminal's Ctrl-C reaches only `kennel exec`, which passes it on.
    let root = TestRoot::new("term-intr");
    root.start_busybox("101", &[]);
    let mut s = exec_on_a_terminal(&root, "-T", "echo READY; sleep 60");
    s.expect("READY", t());
    s.send(b"\x03");
    let st = s.wait(t());
    assert_eq!(st.code(), Some(130), "killed by SIGINT: {st:?}");
    // Like a terminal, the whole process group got it: no sleep is left.
    let ps = root.sh("101", "ps -o args");
    assert!(!ps.contains("sleep 60"), "{ps}");
    root.finish();
}

#[test]
fn console_shows_the_getty_and_detaches() {
    let root = TestRoot::new("term-console");
    root.start_busybox("101", &[]);
    // Give root a password so that we can log in on the console.
    root.sh(
        "101",
        "h=$(mkpasswd -m sha512 s3cret) && sed -i \"s|^root:[^:]*:|root:$h:|\" /etc/shadow",
    );
    let mut s = PtySession::spawn({
        let mut c = root.cmd();
        c.args(["console", "101"]);
        c
    });
    s.expect("Connected to VE 101's console", t());
    s.send(b"\n");
    s.expect("login:", t());
    s.send(b"root\n");
    s.expect("Password:", t());
    s.send(b"s3cret\n");
    s.send(b"echo ON-$(tty)\n");
    s.expect("ON-/dev/console", t());
    s.send(&[0x1d]); // Ctrl-]
    s.expect("Detached from VE 101's console", t());
    assert_eq!(s.wait(t()).code(), Some(0));
    // While nobody is attached the monitor keeps the console's output; the
    // next client sees it replayed.
    root.sh("101", "echo WHILE-DETACHED > /dev/console");
    let mut s2 = PtySession::spawn({
        let mut c = root.cmd();
        c.args(["console", "101"]);
        c
    });
    s2.expect("WHILE-DETACHED", t());
    // ...but only one at a time.
    let busy = root.run(&["console", "101"]);
    assert_eq!(
        busy.status.code(),
        Some(11),
        "{}",
        String::from_utf8_lossy(&busy.stderr)
    );
    assert!(String::from_utf8_lossy(&busy.stderr).contains("in use"));
    s2.send(&[0x1d]);
    s2.wait(t());
    root.finish();
}

#[test]
fn console_ends_when_the_ve_stops() {
    let root = TestRoot::new("term-console-stop");
    root.start_busybox("101", &[]);
    let mut s = PtySession::spawn({
        let mut c = root.cmd();
        c.args(["console", "101"]);
        c
    });
    s.expect("Connected", t());
    root.ok(&["kill", "101"]);
    s.wait(t());
    root.finish();
}

/// Started with its standard input and error closed, `kennel` still runs
/// commands in a VE and changes its files: no descriptor it opens takes a
/// standard stream's number, where the child's streams go (Rust's runtime
/// opens /dev/null on closed ones before `main`).
#[test]
fn closed_standard_streams_are_no_trouble() {
    let root = TestRoot::new("term-closed");
    root.start_busybox("101", &[]);
    let closed = |args: &[&str]| {
        let mut c = std::process::Command::new("sh");
        c.args(["-c", "exec \"$@\" <&- 2>&-", "sh", common::KENNEL, "--root"])
            .arg(&root.dir)
            .args(args);
        c.output().expect("run kennel")
    };
    let out = closed(&[
        "exec",
        "101",
        "--",
        "/bin/sh",
        "-c",
        "echo out:$(cat | wc -c)",
    ]);
    assert!(out.status.success(), "exec: {out:?}");
    assert_eq!(String::from_utf8_lossy(&out.stdout).trim(), "out:0");
    let out = closed(&["set", "101", "--hostname", "closed1"]);
    assert!(out.status.success(), "set: {out:?}");
    assert_eq!(root.sh("101", "cat /etc/hostname").trim(), "closed1");
    root.finish();
}

/// Ctrl-] ends an `exec -t` (or `enter`) session whatever the command
/// does with its terminal: it is hung up on, and killed if it ignores
/// that.
#[test]
fn the_escape_key_ends_a_session_with_a_command_that_ignores_everything() {
    let root = TestRoot::new("term-escape");
    root.start_busybox("101", &[]);
    let mut s = exec_on_a_terminal(
        &root,
        "-t",
        "trap '' HUP INT TERM QUIT; stty raw -echo; echo READY; while :; do sleep 1; done",
    );
    s.expect("READY", t());
    let t0 = std::time::Instant::now();
    s.send(b"\x1d");
    let st = s.wait(t());
    assert!(
        t0.elapsed() < Duration::from_secs(8),
        "took {:?}",
        t0.elapsed()
    );
    assert_eq!(st.code(), Some(137), "killed after the hangup: {}", s.seen);
    assert_eq!(
        root.sh("101", "pgrep -c 'while' ; ps -o comm | grep -c sleep; true")
            .lines()
            .last()
            .map(str::trim),
        Some("0"),
        "nothing of the session is left in the VE"
    );
    root.finish();
}

/// A command that closed its terminal and ignores signals (a shell the VE
/// replaced) cannot hold the administrator: once its pty is gone the
/// terminal is the administrator's again, and a second Ctrl-C kills it.
#[test]
fn a_second_interrupt_kills_a_command_that_ignores_the_first() {
    let root = TestRoot::new("term-int2");
    root.start_busybox("101", &[]);
    let mut s = exec_on_a_terminal(
        &root,
        "-t",
        "trap '' HUP INT TERM QUIT; echo READY; exec </dev/null >/dev/null 2>&1; while :; do sleep 1; done",
    );
    s.expect("READY", t());
    std::thread::sleep(Duration::from_millis(500));
    s.send(b"\x03");
    std::thread::sleep(Duration::from_millis(500));
    s.send(b"\x03");
    assert_eq!(s.wait(t()).code(), Some(137), "{}", s.seen);
    // Without a terminal, the same with signals to `kennel exec` itself.
    let mut c = root.cmd();
    c.args([
        "exec",
        "-T",
        "101",
        "--",
        "/bin/sh",
        "-c",
        "trap '' INT TERM; while :; do sleep 1; done",
    ]);
    let mut child = c.spawn().expect("spawn");
    std::thread::sleep(Duration::from_millis(800));
    let pid = rustix::process::Pid::from_child(&child);
    for _ in 0..2 {
        let _ = rustix::process::kill_process(pid, rustix::process::Signal::INT);
        std::thread::sleep(Duration::from_millis(300));
    }
    let end = std::time::Instant::now() + Duration::from_secs(10);
    let st = loop {
        if let Some(st) = child.try_wait().expect("try_wait") {
            break Some(st);
        }
        if std::time::Instant::now() > end {
            let _ = child.kill();
            break None;
        }
        std::thread::sleep(Duration::from_millis(50));
    };
    assert_eq!(st.and_then(|s| s.code()), Some(137), "killed by the second");
    root.finish();
}

/// Modes a VE's program switches on in the administrator's terminal
/// (alternate screen, hidden cursor) are switched off when the session
/// ends, whatever the program did.
#[test]
fn a_sessions_end_resets_the_terminal() {
    let root = TestRoot::new("term-clean");
    root.start_busybox("101", &[]);
    let mut s = exec_on_a_terminal(
        &root,
        "-t",
        "printf 'DONE\\033[?1049h\\033[?25l\\033[?1000h'",
    );
    // The last of the resets: everything before it has arrived.
    s.expect("\x1b[?2004l", t());
    s.wait(t());
    let after = s.seen.split("DONE").nth(1).unwrap_or_default().to_string();
    for reset in ["\x1b[?1049l", "\x1b[?25h", "\x1b[?1000l", "\x1b[!p"] {
        assert!(after.contains(reset), "{reset:?} missing in {after:?}");
    }
    root.finish();
}

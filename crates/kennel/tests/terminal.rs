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
fn exec_without_a_pty_gets_no_controlling_terminal() {
    // Passed a host terminal as its streams (-T on a terminal), the command
    // can use them but cannot make that terminal its own: no /dev/tty, no
    // input injection (TIOCSTI needs the controlling terminal, and the
    // seccomp filter refuses it anyway).
    let root = TestRoot::new("term-notty");
    root.start_busybox("101", &[]);
    let script = concat!(
        "[ -t 0 ] && echo STDIN-IS-A-TTY; ",
        "echo x > /dev/tty || echo NO-CTTY; ",
        "echo TTY_NR=$(cut -d' ' -f7 /proc/self/stat)"
    );
    let mut s = exec_on_a_terminal(&root, "-T", script);
    let out = s.expect("TTY_NR=", t());
    s.wait(t());
    assert!(out.contains("STDIN-IS-A-TTY"), "{out}");
    assert!(out.contains("NO-CTTY"), "{out}");
    assert!(s.seen.contains("TTY_NR=0"), "{}", s.seen);
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

//! Running a command on a pseudo-terminal, for `enter`, `exec -t` and
//! `console` tests.

use std::fs::File;
use std::io::{Read, Write};
use std::os::fd::OwnedFd;
use std::os::unix::process::CommandExt;
use std::process::{Child, Command, ExitStatus, Stdio};
use std::time::{Duration, Instant};

pub struct PtySession {
    master: File,
    pub child: Child,
    pub seen: String,
}

impl PtySession {
    /// Starts `cmd` with a new pty as its controlling terminal and stdio.
    pub fn spawn(mut cmd: Command) -> Self {
        let master =
            rustix::pty::openpt(rustix::pty::OpenptFlags::RDWR | rustix::pty::OpenptFlags::NOCTTY)
                .expect("openpt");
        rustix::pty::grantpt(&master).expect("grantpt");
        rustix::pty::unlockpt(&master).expect("unlockpt");
        let peer: OwnedFd = rustix::pty::ioctl_tiocgptpeer(
            &master,
            rustix::pty::OpenptFlags::RDWR | rustix::pty::OpenptFlags::NOCTTY,
        )
        .expect("pty peer");
        let ws = rustix::termios::Winsize {
            ws_row: 30,
            ws_col: 100,
            ws_xpixel: 0,
            ws_ypixel: 0,
        };
        rustix::termios::tcsetwinsize(&master, ws).expect("winsize");
        let peer_file = File::from(peer);
        cmd.stdin(Stdio::from(peer_file.try_clone().expect("dup")))
            .stdout(Stdio::from(peer_file.try_clone().expect("dup")))
            .stderr(Stdio::from(peer_file));
        // SAFETY: between fork and exec only async-signal-safe calls
        // (setsid, ioctl) run in the child.
        unsafe {
            cmd.pre_exec(|| {
                rustix::process::setsid()?;
                rustix::process::ioctl_tiocsctty(rustix::stdio::stdin())?;
                Ok(())
            });
        }
        let child = cmd.spawn().expect("spawn on pty");
        let _ = rustix::io::ioctl_fionbio(&master, true);
        PtySession {
            master: File::from(master),
            child,
            seen: String::new(),
        }
    }

    /// Reads until `pat` appears (asserts within `timeout`); returns all
    /// output seen so far.
    pub fn expect(&mut self, pat: &str, timeout: Duration) -> String {
        let end = Instant::now() + timeout;
        let mut buf = [0u8; 4096];
        while !self.seen.contains(pat) {
            assert!(
                Instant::now() < end,
                "timed out waiting for {pat:?}; output so far:\n{}",
                self.seen
            );
            let mut p = [rustix::event::PollFd::new(
                &self.master,
                rustix::event::PollFlags::IN,
            )];
            let _ = rustix::event::poll(
                &mut p,
                Some(&rustix::event::Timespec {
                    tv_sec: 0,
                    tv_nsec: 50_000_000,
                }),
            );
            match self.master.read(&mut buf) {
                Ok(n) if n > 0 => self.seen.push_str(&String::from_utf8_lossy(&buf[..n])),
                _ => {}
            }
        }
        self.seen.clone()
    }

    pub fn send(&mut self, s: &[u8]) {
        self.master.write_all(s).expect("write to pty");
    }

    /// Writes what the terminal takes now (it may be full: the program
    /// stopped reading); returns how many bytes it took.
    pub fn try_send(&mut self, s: &[u8]) -> usize {
        self.master.write(s).unwrap_or(0)
    }

    /// Writes what the pty takes of `s` now, in as many writes as it
    /// takes, without waiting; returns how much.
    pub fn send_what_fits(&mut self, s: &[u8]) -> usize {
        let mut done = 0;
        while done < s.len() {
            match self.master.write(&s[done..]) {
                Ok(0) | Err(_) => break,
                Ok(n) => done += n,
            }
        }
        done
    }

    /// Collects output for `dur` (whatever arrives), returns all seen.
    pub fn read_for(&mut self, dur: Duration) -> String {
        let end = Instant::now() + dur;
        let mut buf = [0u8; 4096];
        while Instant::now() < end {
            match self.master.read(&mut buf) {
                Ok(n) if n > 0 => self.seen.push_str(&String::from_utf8_lossy(&buf[..n])),
                _ => std::thread::sleep(Duration::from_millis(10)),
            }
        }
        self.seen.clone()
    }

    /// Waits for the command to end (asserts within `timeout`), draining the pty.
    pub fn wait(&mut self, timeout: Duration) -> ExitStatus {
        let end = Instant::now() + timeout;
        let mut buf = [0u8; 4096];
        loop {
            if let Some(st) = self.child.try_wait().expect("try_wait") {
                return st;
            }
            assert!(
                Instant::now() < end,
                "command did not end; output:\n{}",
                self.seen
            );
            if let Ok(n) = self.master.read(&mut buf) {
                self.seen.push_str(&String::from_utf8_lossy(&buf[..n]));
            }
            std::thread::sleep(Duration::from_millis(20));
        }
    }
}

impl Drop for PtySession {
    fn drop(&mut self) {
        if let Ok(None) = self.child.try_wait() {
            let _ = self.child.kill();
            let _ = self.child.wait();
        }
    }
}

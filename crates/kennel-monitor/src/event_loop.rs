//! The monitor's poll loop.

use crate::ring::Ring;
use crate::sys::{self, Ended, Errno, Fd, POLLIN};

/// How fast the monitor takes a VE's console output into its ring, with
/// the same amount as the burst: a console needs little, and the monitor's
/// CPU time is not charged to the VE. A VE that writes faster blocks on
/// its own console (the pty fills), as on a slow serial line.
const CONSOLE_BYTES_PER_SEC: usize = 64 * 1024;

/// How often a second the monitor reads the console: a VE that writes a
/// byte at a time would otherwise wake it for each (200,000 wake-ups in
/// 5 s, a sixth of a core, charged to no VE: hostile review s5). Between
/// reads its bytes wait in the pty and come together.
const CONSOLE_READS_PER_SEC: u32 = 100;

#[derive(Debug)]
pub(crate) struct Inherited {
    pub pidfd: Fd,
    pub master: Fd,
    /// Never used, only held: while one peer stays open the console never
    /// hangs up, whatever the VE's processes do with theirs.
    pub peer: Fd,
    pub listener: Fd,
}

/// The console's budget: [`CONSOLE_BYTES_PER_SEC`] and
/// [`CONSOLE_READS_PER_SEC`] each second.
#[derive(Debug)]
struct Budget {
    left: usize,
    reads_left: u32,
    refill_at_ms: u64,
}

impl Budget {
    fn new(now_ms: u64) -> Budget {
        Budget {
            left: CONSOLE_BYTES_PER_SEC,
            reads_left: CONSOLE_READS_PER_SEC,
            refill_at_ms: now_ms + 1000,
        }
    }

    /// Whether any of this second's budget went (the clock need not be
    /// read while none did: an idle console costs no system call but the
    /// poll).
    fn used(&self) -> bool {
        self.left < CONSOLE_BYTES_PER_SEC || self.reads_left < CONSOLE_READS_PER_SEC
    }

    /// Counts one read of `n` bytes.
    fn spend(&mut self, n: usize) {
        self.left = self.left.saturating_sub(n);
        self.reads_left = self.reads_left.saturating_sub(1);
    }

    /// Refills the budget once its second is over.
    fn tick(&mut self, now_ms: u64) {
        if now_ms >= self.refill_at_ms {
            *self = Budget::new(now_ms);
        }
    }

    /// How long to sleep before the console may be read again, if it may
    /// not be now.
    fn wait_ms(&self, now_ms: u64) -> Option<u64> {
        (self.left == 0 || self.reads_left == 0).then(|| self.refill_at_ms.saturating_sub(now_ms))
    }
}

/// Runs until the VE's init has ended and been reaped; returns how it
/// ended.
pub(crate) fn run(fds: Inherited, id: &core::ffi::CStr, mut ring: Ring<'_>) -> sys::Result<Ended> {
    let _ = sys::set_nonblocking(&fds.master);
    let mut client: Option<Fd> = None;
    let mut budget = Budget::new(sys::now_ms());
    loop {
        let mut wait = None;
        if budget.used() {
            let now = sys::now_ms();
            budget.tick(now);
            wait = budget.wait_ms(now);
        }
        // The console is read here only while no client has it, and
        // within its budget.
        let third = client.as_ref().unwrap_or(&fds.master);
        let third_events = if client.is_none() && wait.is_some() {
            0
        } else {
            POLLIN
        };
        let mut pfds = [
            sys::pollfd(&fds.pidfd, POLLIN),
            sys::pollfd(&fds.listener, POLLIN),
            sys::pollfd(third, third_events),
        ];
        match sys::poll(&mut pfds, wait.filter(|_| client.is_none())) {
            Ok(_) => {}
            Err(Errno::INTR) => continue,
            Err(e) => {
                crate::report!("kennel-monitor: VE {}: poll: {e}", shown(id));
                let _ = sys::poll(&mut [], Some(100));
                continue;
            }
        }
        if pfds[0].revents != 0 {
            return reap(&fds.pidfd);
        }
        if pfds[1].revents != 0 {
            if let Ok(conn) = sys::accept(&fds.listener) {
                if client.is_some() {
                    let _ = sys::send(&conn, b"BUSY");
                } else if lend_console(&conn, &fds.master, ring.as_slices()) {
                    client = Some(conn);
                }
            }
        }
        if pfds[2].revents != 0 {
            match &client {
                Some(c) => {
                    // The client only ever closes its end; any readiness
                    // here means it is gone.
                    let mut buf = [0u8; 64];
                    match sys::read(c, &mut buf) {
                        Ok(0) | Err(_) => client = None,
                        Ok(_) => {}
                    }
                }
                None => {
                    // Every read counts, one that fails too.
                    let n = ring.read_from(&fds.master, budget.left).unwrap_or(0);
                    budget.spend(n);
                }
            }
        }
    }
}

/// Sends the console master and the backlog (in its ring's two pieces) to
/// a `kennel console` client.
fn lend_console(conn: &Fd, master: &Fd, backlog: (&[u8], &[u8])) -> bool {
    let mut hello = [0u8; 6];
    hello[..2].copy_from_slice(b"OK");
    hello[2..].copy_from_slice(&((backlog.0.len() + backlog.1.len()) as u32).to_le_bytes());
    if sys::send_with_fd(conn, &hello, master).is_err() {
        return false;
    }
    for mut rest in [backlog.0, backlog.1] {
        while !rest.is_empty() {
            match sys::send(conn, rest) {
                Ok(n) => rest = &rest[n..],
                Err(Errno::INTR) => {}
                Err(_) => return false,
            }
        }
    }
    true
}

fn reap(pidfd: &Fd) -> sys::Result<Ended> {
    loop {
        match sys::wait_pidfd(pidfd) {
            Err(Errno::INTR) => continue,
            other => return other,
        }
    }
}

/// A word from the command line for a message: ASCII as it is, anything
/// else as `?` (no control bytes in the log).
pub(crate) fn shown(word: &core::ffi::CStr) -> Shown<'_> {
    Shown(word.to_bytes())
}

pub(crate) struct Shown<'a>(&'a [u8]);

impl core::fmt::Display for Shown<'_> {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        for &b in self.0 {
            let c = if b.is_ascii_graphic() { b as char } else { '?' };
            core::fmt::Write::write_char(f, c)?;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_budget_refills_each_second_and_says_how_long_to_wait() {
        let mut b = Budget::new(1_000);
        assert_eq!(b.wait_ms(1_000), None);
        b.left = 0;
        assert_eq!(b.wait_ms(1_400), Some(600));
        b.tick(1_999);
        assert_eq!(b.left, 0, "not before its second is over");
        b.tick(2_000);
        assert_eq!(b.left, CONSOLE_BYTES_PER_SEC);
        assert_eq!(b.refill_at_ms, 3_000);
        assert_eq!(b.wait_ms(2_500), None);
    }

    #[test]
    fn reads_are_counted_as_well_as_bytes() {
        let mut b = Budget::new(0);
        assert!(!b.used());
        for _ in 0..CONSOLE_READS_PER_SEC {
            assert_eq!(b.wait_ms(10), None);
            b.spend(1);
        }
        assert!(b.used());
        assert_eq!(
            b.wait_ms(10),
            Some(990),
            "a byte at a time: wait for the second"
        );
        b.tick(1_000);
        assert_eq!(b.wait_ms(1_000), None);
        b.spend(CONSOLE_BYTES_PER_SEC + 5);
        assert_eq!(b.left, 0, "never below nothing");
        assert_eq!(b.wait_ms(1_500), Some(500));
    }

    #[test]
    fn ids_are_shown_without_control_bytes() {
        assert_eq!(format!("{}", shown(c"ve-1")), "ve-1");
        assert_eq!(format!("{}", shown(c"a\x1b[2Jb")), "a?[2Jb");
    }
}

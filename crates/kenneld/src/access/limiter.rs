//! Failed authentication, counted per client address: after
//! [`MAX_FAILS`] failures within [`WINDOW`], the address is refused
//! without any token check until the window has passed. The table is
//! bounded: when full, the oldest entries go first.

use std::collections::HashMap;
use std::net::IpAddr;
use std::sync::Mutex;
use std::time::{Duration, Instant};

pub const MAX_FAILS: u32 = 10;
pub const WINDOW: Duration = Duration::from_secs(60);
const MAX_ADDRESSES: usize = 65_536;

#[derive(Debug, Default)]
pub struct FailLimiter {
    table: Mutex<HashMap<IpAddr, (Instant, u32)>>,
}

impl FailLimiter {
    /// How long `ip` must still wait, if it is refused now.
    pub fn blocked(&self, ip: IpAddr) -> Option<Duration> {
        self.blocked_at(ip, Instant::now())
    }

    pub fn fail(&self, ip: IpAddr) {
        self.fail_at(ip, Instant::now());
    }

    fn blocked_at(&self, ip: IpAddr, now: Instant) -> Option<Duration> {
        let table = self.table.lock().unwrap_or_else(|e| e.into_inner());
        let &(since, n) = table.get(&ip)?;
        let left = WINDOW.checked_sub(now.saturating_duration_since(since))?;
        (n >= MAX_FAILS && !left.is_zero()).then_some(left)
    }

    fn fail_at(&self, ip: IpAddr, now: Instant) {
        let mut table = self.table.lock().unwrap_or_else(|e| e.into_inner());
        if table.len() >= MAX_ADDRESSES && !table.contains_key(&ip) {
            table.retain(|_, (since, _)| now.saturating_duration_since(*since) < WINDOW);
            if table.len() >= MAX_ADDRESSES {
                if let Some(oldest) = table.iter().min_by_key(|(_, (s, _))| *s).map(|(k, _)| *k) {
                    table.remove(&oldest);
                }
            }
        }
        let e = table.entry(ip).or_insert((now, 0));
        if now.saturating_duration_since(e.0) >= WINDOW {
            *e = (now, 0);
        }
        e.1 += 1;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_address_is_refused_after_too_many_failures_then_let_in_again() {
        let l = FailLimiter::default();
        let ip: IpAddr = "192.0.2.7".parse().expect("ip");
        let other: IpAddr = "192.0.2.8".parse().expect("ip");
        let t0 = Instant::now();
        for _ in 0..MAX_FAILS - 1 {
            l.fail_at(ip, t0);
        }
        assert_eq!(l.blocked_at(ip, t0), None);
        l.fail_at(ip, t0);
        assert!(l.blocked_at(ip, t0).is_some());
        assert_eq!(l.blocked_at(other, t0), None, "per address");
        assert_eq!(l.blocked_at(ip, t0 + WINDOW), None, "the window passes");
        l.fail_at(ip, t0 + WINDOW);
        assert_eq!(l.blocked_at(ip, t0 + WINDOW), None, "counting starts over");
    }
}

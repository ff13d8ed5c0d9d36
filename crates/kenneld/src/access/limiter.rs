//! Failed authentication, counted per client address: after
//! [`MAX_FAILS`] failures (`--auth-failures N`) within [`WINDOW`], the address is refused
//! without any token check until the window has passed. The table is
//! bounded: when full, the oldest entries go first.

use std::collections::HashMap;
use std::net::IpAddr;
use std::sync::Mutex;
use std::time::{Duration, Instant};

pub const MAX_FAILS: u32 = 10;
pub const WINDOW: Duration = Duration::from_secs(60);
const MAX_ADDRESSES: usize = 65_536;

#[derive(Debug)]
pub struct FailLimiter {
    table: Mutex<HashMap<IpAddr, (Instant, u32)>>,
    max: u32,
}

impl Default for FailLimiter {
    fn default() -> Self {
        FailLimiter::new(MAX_FAILS)
    }
}

impl FailLimiter {
    /// At most `max` failures a minute per address (at least 1).
    pub fn new(max: u32) -> Self {
        FailLimiter {
            table: Mutex::new(HashMap::new()),
            max: max.max(1),
        }
    }

    /// Counts an attempt from `ip` that is not yet known to succeed, if
    /// the address is not blocked; else how long it must wait. Checking
    /// and counting are one step, under one lock: a burst of requests
    /// cannot all pass the check before any is counted.
    pub fn attempt(&self, ip: IpAddr) -> Result<(), Duration> {
        self.attempt_at(ip, Instant::now())
    }

    /// Takes back an attempt of `ip` that succeeded.
    pub fn forgive(&self, ip: IpAddr) {
        let mut table = self.table.lock().unwrap_or_else(|e| e.into_inner());
        if let Some(e) = table.get_mut(&ip) {
            e.1 = e.1.saturating_sub(1);
        }
    }

    fn attempt_at(&self, ip: IpAddr, now: Instant) -> Result<(), Duration> {
        let mut table = self.table.lock().unwrap_or_else(|e| e.into_inner());
        if let Some(&(since, n)) = table.get(&ip) {
            let left = WINDOW.saturating_sub(now.saturating_duration_since(since));
            if n >= self.max && !left.is_zero() {
                return Err(left);
            }
        }
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
        Ok(())
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
        for _ in 0..MAX_FAILS {
            assert_eq!(l.attempt_at(ip, t0), Ok(()));
        }
        assert!(l.attempt_at(ip, t0).is_err(), "the next one is refused");
        assert_eq!(l.attempt_at(other, t0), Ok(()), "per address");
        l.forgive(ip);
        assert_eq!(l.attempt_at(ip, t0), Ok(()), "a success is taken back");
        assert!(l.attempt_at(ip, t0).is_err());
        assert_eq!(l.attempt_at(ip, t0 + WINDOW), Ok(()), "the window passes");
    }
}

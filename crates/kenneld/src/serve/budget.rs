//! How many connections the service holds: a budget for TCP, at most
//! [`PER_ADDRESS`] of it for one client address, and a budget of its own
//! for root's Unix socket, so that clients on the network, however many
//! idle connections they hold, never lock root out. Both fit below the
//! process's open-files limit, raised to its hard limit at start.

use std::collections::HashMap;
use std::net::IpAddr;
use std::sync::{Arc, Mutex};

use tokio::sync::{OwnedSemaphorePermit, Semaphore};

/// TCP connections at most by default (`--max-connections`; less if
/// the open-files limit is lower).
pub const MAX_TCP: usize = 8192;
/// TCP connections at most from one address (an IPv6 client: its /64).
pub const PER_ADDRESS: usize = 512;
/// Unix-socket connections at most.
pub const MAX_UNIX: usize = 256;
/// Descriptors kept for everything else (VEs' files read, workers' pipes).
const RESERVED_FILES: u64 = 1024;

#[derive(Debug)]
pub struct Budget {
    tcp: Arc<Semaphore>,
    pub unix: Arc<Semaphore>,
    per_address: Arc<Mutex<HashMap<IpAddr, usize>>>,
}

/// One TCP connection's share; given back when dropped.
#[derive(Debug)]
pub struct TcpShare {
    _permit: OwnedSemaphorePermit,
    key: IpAddr,
    per_address: Arc<Mutex<HashMap<IpAddr, usize>>>,
}

impl Drop for TcpShare {
    fn drop(&mut self) {
        let mut m = self.per_address.lock().unwrap_or_else(|e| e.into_inner());
        if let Some(n) = m.get_mut(&self.key) {
            *n -= 1;
            if *n == 0 {
                m.remove(&self.key);
            }
        }
    }
}

/// The address connections are counted under: an IPv6 client holds a
/// whole /64.
fn key(ip: IpAddr) -> IpAddr {
    match ip {
        IpAddr::V6(v6) if v6.to_ipv4_mapped().is_none() => {
            let s = v6.segments();
            IpAddr::from([s[0], s[1], s[2], s[3], 0, 0, 0, 0])
        }
        other => other,
    }
}

impl Budget {
    /// The budget for this process: the open-files limit raised to its
    /// hard limit (no privilege needed), at most `max_tcp` HTTPS
    /// connections below it.
    pub fn for_this_process(max_tcp: usize) -> Self {
        use rustix::process::{getrlimit, setrlimit, Resource};
        let mut lim = getrlimit(Resource::Nofile);
        if lim.current < lim.maximum {
            lim.current = lim.maximum;
            if let Err(e) = setrlimit(Resource::Nofile, lim) {
                tracing::warn!("cannot raise the open-files limit: {e}");
            }
        }
        let files = getrlimit(Resource::Nofile).current.unwrap_or(u64::MAX);
        let room = files.saturating_sub(RESERVED_FILES + MAX_UNIX as u64) as usize;
        let tcp = max_tcp.min(room).max(16);
        if tcp < max_tcp {
            tracing::warn!(
                "the open-files limit ({files}) allows {tcp} HTTPS connections: raise LimitNOFILE for more"
            );
        }
        Budget::new(tcp)
    }

    pub fn new(tcp: usize) -> Self {
        Budget {
            tcp: Arc::new(Semaphore::new(tcp)),
            unix: Arc::new(Semaphore::new(MAX_UNIX)),
            per_address: Arc::new(Mutex::new(HashMap::new())),
        }
    }

    /// A share for a connection from `ip`, if the budget has one.
    pub fn tcp(&self, ip: IpAddr) -> Option<TcpShare> {
        let key = key(ip);
        let permit = Arc::clone(&self.tcp).try_acquire_owned().ok()?;
        let mut m = self.per_address.lock().unwrap_or_else(|e| e.into_inner());
        let n = m.entry(key).or_insert(0);
        if *n >= PER_ADDRESS {
            return None;
        }
        *n += 1;
        Some(TcpShare {
            _permit: permit,
            key,
            per_address: Arc::clone(&self.per_address),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn one_address_cannot_take_the_whole_budget() {
        let b = Budget::new(PER_ADDRESS + 10);
        let a: IpAddr = "192.0.2.1".parse().expect("ip");
        let held: Vec<_> = (0..PER_ADDRESS).map(|_| b.tcp(a).expect("share")).collect();
        assert!(b.tcp(a).is_none(), "the address is at its cap");
        assert!(
            b.tcp("192.0.2.2".parse().expect("ip")).is_some(),
            "others still get in"
        );
        // An IPv6 client's whole /64 counts as one.
        let v6a: IpAddr = "2001:db8::1".parse().expect("ip");
        let v6b: IpAddr = "2001:db8::2".parse().expect("ip");
        assert_eq!(key(v6a), key(v6b));
        drop(held);
        assert!(b.tcp(a).is_some(), "shares come back");
    }
}

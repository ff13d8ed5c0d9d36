//! What a VE claims, as pure data: the things one VE may not share with
//! another (its id range's slots, its uuid, its addresses, MACs and
//! forwarded host ports), each with the path its claim has in the index.

use std::net::IpAddr;
use std::path::PathBuf;

use kennel_net::model::{Mac, Proto};

use crate::config::{IdRange, VeConfig};
use crate::host_config::IDS_PER_VE;

/// The grid id ranges are allocated on: slot `i` is the 65,536 host ids
/// from `base + i * 65536`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Grid {
    pub base: u32,
    pub slots: u32,
}

impl Grid {
    /// The first host id of slot `i`.
    pub fn slot_base(&self, i: u32) -> u32 {
        self.base + i * IDS_PER_VE
    }

    /// The grid slots `range` overlaps: one for every range Kennel
    /// allocated, several (or none) for a hand-edited one off the grid.
    pub fn slots_of(&self, range: &IdRange) -> std::ops::Range<u32> {
        let (start, end) = (
            u64::from(range.uid_base),
            u64::from(range.uid_base) + u64::from(range.size),
        );
        let (base, step) = (u64::from(self.base), u64::from(IDS_PER_VE));
        let first = start.saturating_sub(base) / step;
        let last = end.saturating_sub(base).div_ceil(step);
        let clamp = |v: u64| v.min(u64::from(self.slots)) as u32;
        clamp(first)..clamp(last)
    }
}

/// One thing a VE holds alone.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Thing {
    /// A slot of the id range grid (its index).
    Slot(u32),
    Uuid(String),
    Addr(IpAddr),
    Mac(Mac),
    /// A forwarded host port, on one host address or (`None`) on all.
    Port {
        proto: Proto,
        port: u16,
        addr: Option<IpAddr>,
    },
}

impl Thing {
    /// Its claim's path below the index directory. A port's claims share
    /// a directory per protocol and port: a port forwarded on every
    /// address clashes with any other forward of that port.
    pub fn path(&self) -> PathBuf {
        match self {
            Thing::Slot(i) => PathBuf::from(format!("range/{i}")),
            Thing::Uuid(u) => PathBuf::from(format!("uuid/{u}")),
            Thing::Addr(a) => PathBuf::from(format!("addr/{a}")),
            Thing::Mac(m) => PathBuf::from(format!("mac/{m}")),
            Thing::Port { proto, port, addr } => {
                let dir = port_dir(*proto, *port);
                dir.join(addr.map_or_else(|| ANY.to_string(), |a| a.to_string()))
            }
        }
    }

    /// Whether holding `self` and `other` at once is two VEs sharing one
    /// thing.
    pub fn clashes_with(&self, other: &Thing) -> bool {
        match (self, other) {
            (
                Thing::Port { proto, port, addr },
                Thing::Port {
                    proto: p2,
                    port: n2,
                    addr: a2,
                },
            ) => proto == p2 && port == n2 && (addr.is_none() || a2.is_none() || addr == a2),
            _ => self == other,
        }
    }

    /// The error for a VE wanting what VE `other` holds: what to do
    /// about it, as the checks before the index said it.
    pub fn taken_message(&self, other: &str) -> String {
        match self {
            Thing::Slot(_) => format!("an id range slot is already VE {other}'s"),
            Thing::Uuid(u) => format!("uuid {u} is already VE {other}'s"),
            Thing::Addr(ip) => format!(
                "address {ip} is already used by VE {other}: give another, or remove it there first (kennel set {other} --ip-del {ip})"
            ),
            Thing::Mac(m) => format!(
                "MAC {m} is already used by VE {other}: give another, or leave mac= out to get a new one"
            ),
            Thing::Port { proto, port, .. } => format!(
                "host port {} {port} is already forwarded to VE {other}: pick another port",
                proto.as_str()
            ),
        }
    }
}

/// The claim name of a port forwarded on every host address.
pub(crate) const ANY: &str = "any";

/// The directory of the claims of one protocol's port.
pub(crate) fn port_dir(proto: Proto, port: u16) -> PathBuf {
    PathBuf::from(format!("port/{}-{port}", proto.as_str()))
}

/// Parses a port claim's name back (`any` or an address).
pub(crate) fn port_thing(proto: Proto, port: u16, name: &str) -> Option<Thing> {
    let addr = if name == ANY {
        None
    } else {
        Some(name.parse().ok()?)
    };
    Some(Thing::Port { proto, port, addr })
}

/// Everything VE `cfg` holds alone, on `grid`, without duplicates.
pub(crate) fn things_of(cfg: &VeConfig, grid: &Grid) -> Vec<Thing> {
    let mut out: Vec<Thing> = grid.slots_of(&cfg.idmap).map(Thing::Slot).collect();
    // Only a real uuid names a claim (a hand-edited one could hold `/`).
    if let Ok(u) = uuid::Uuid::parse_str(&cfg.uuid) {
        out.push(Thing::Uuid(u.hyphenated().to_string()));
    }
    out.extend(network_things(&cfg.network));
    out
}

/// The network part of [`things_of`]: addresses, MACs, forwarded ports.
pub(crate) fn network_things(net: &kennel_net::VeNetwork) -> Vec<Thing> {
    let mut out = Vec::new();
    let mut push = |t: Thing| {
        if !out.contains(&t) {
            out.push(t);
        }
    };
    for ip in net.all_ips() {
        push(Thing::Addr(ip));
    }
    for n in &net.netifs {
        push(Thing::Mac(n.mac));
    }
    for f in &net.forwards {
        push(Thing::Port {
            proto: f.proto,
            port: f.host_port,
            addr: f.host_addr,
        });
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    const GRID: Grid = Grid {
        base: 100_000,
        slots: 4,
    };

    fn range(base: u32, size: u32) -> IdRange {
        IdRange {
            uid_base: base,
            gid_base: base,
            size,
        }
    }

    #[test]
    fn an_allocated_range_is_one_slot() {
        assert_eq!(GRID.slots_of(&range(100_000, IDS_PER_VE)), 0..1);
        assert_eq!(GRID.slots_of(&range(GRID.slot_base(2), IDS_PER_VE)), 2..3);
    }

    #[test]
    fn an_odd_range_claims_every_slot_it_touches() {
        assert_eq!(GRID.slots_of(&range(100_000 + 30_000, IDS_PER_VE)), 0..2);
        assert_eq!(GRID.slots_of(&range(100_000, 3 * IDS_PER_VE)), 0..3);
        // Below the grid: only what reaches into it.
        assert_eq!(GRID.slots_of(&range(65_536, IDS_PER_VE)), 0..1);
        assert_eq!(GRID.slots_of(&range(65_536, 30_000)), 0..0);
        // Beyond the grid's last slot: nothing.
        assert_eq!(GRID.slots_of(&range(GRID.slot_base(9), IDS_PER_VE)), 4..4);
    }

    #[test]
    fn ports_clash_on_any_address_or_the_same_one() {
        let p = |addr: Option<&str>| Thing::Port {
            proto: Proto::Tcp,
            port: 8080,
            addr: addr.map(|a| a.parse().expect("addr")),
        };
        assert!(p(None).clashes_with(&p(Some("192.0.2.1"))));
        assert!(p(Some("192.0.2.1")).clashes_with(&p(None)));
        assert!(p(Some("192.0.2.1")).clashes_with(&p(Some("192.0.2.1"))));
        assert!(!p(Some("192.0.2.1")).clashes_with(&p(Some("192.0.2.2"))));
        let udp = Thing::Port {
            proto: Proto::Udp,
            port: 8080,
            addr: None,
        };
        assert!(!udp.clashes_with(&p(None)));
        assert_eq!(
            port_thing(Proto::Tcp, 8080, "192.0.2.1"),
            Some(p(Some("192.0.2.1")))
        );
        assert_eq!(port_thing(Proto::Tcp, 8080, ANY), Some(p(None)));
        assert_eq!(port_thing(Proto::Tcp, 8080, "junk"), None);
    }

    #[test]
    fn a_config_claims_its_slot_uuid_and_network() {
        let mut cfg = crate::config::tests::sample();
        cfg.idmap = range(GRID.slot_base(1), IDS_PER_VE);
        cfg.network.ips = vec!["192.0.2.7/32".parse().expect("ip")];
        let things = things_of(&cfg, &GRID);
        assert_eq!(things[0], Thing::Slot(1));
        assert_eq!(things[1], Thing::Uuid(cfg.uuid.clone()));
        assert!(things.contains(&Thing::Addr("192.0.2.7".parse().expect("ip"))));
        assert_eq!(
            Thing::Addr("2001:db8::7".parse().expect("ip")).path(),
            PathBuf::from("addr/2001:db8::7")
        );
    }
}
